//! `GET /v1/stats`: the queue at a glance for a dashboard, as JSON. An
//! organization's key gets its organization's stats; an operator key gets
//! every organization's (`{"organizations": [...]}`). The numbers are the
//! core's (`Organization::stats`, `Store::stats`), at the store's clock.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use callback_store::{Caller, OrganizationStats};
use serde::Serialize;

use crate::error::ApiError;
use crate::routes::{authorization, json, no_query, Api};

/// The operator's answer.
#[derive(Serialize)]
struct Organizations {
    organizations: Vec<OrganizationStats>,
}

pub(crate) async fn stats(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let authorization = match authorization(&headers) {
        Ok(authorization) => authorization,
        Err(e) => return e.into_response(),
    };
    let store = app.store().clone();
    let answered = tokio::task::spawn_blocking(move || -> Result<Response, ApiError> {
        // Authentication first: without a valid token, nothing but 401.
        let caller = store.authenticate_caller(&authorization)?;
        no_query(&query)?;
        let now = store.now();
        Ok(match caller {
            Caller::Organization(org) => json(StatusCode::OK, &org.stats(now)?),
            Caller::Operator => json(
                StatusCode::OK,
                &Organizations {
                    organizations: store.stats(now)?,
                },
            ),
        })
    })
    .await;
    match answered {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(format!("the stats task failed: {e}")).into_response(),
    }
}
