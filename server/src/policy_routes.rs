//! The calling policy routes: the organization's policy
//! (`/v1/calling-policy`) and one agent's override of it
//! (`/v1/agents/{agent_id}/calling-policy`). Bodies are read by the core's
//! reader (`input::calling_policy`: absent fields take their defaults,
//! unknown ones are refused) and every rule of a policy is the store's, so
//! a bad policy is a VALIDATION_ERROR naming its field and nothing is
//! written.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use callback_store::input;
use callback_store::{CallingPolicy, Error};

use crate::error::ApiError;
use crate::request;
use crate::routes::{body_bytes, json, no_query, run, Api};

fn policy_response(result: Result<CallingPolicy, ApiError>) -> Response {
    match result {
        Ok(policy) => json(StatusCode::OK, &policy),
        Err(e) => e.into_response(),
    }
}

fn agent_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id).map_err(|e| {
        ApiError::validation("agent_id", format!("cannot be read from the path ({e})"))
    })
}

/// The policy of a PUT's body (required: `{}` is the default policy).
fn policy_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<CallingPolicy, ApiError> {
    let bytes = body_bytes(body)?;
    let map = request::json_body(headers, &bytes, false)?;
    Ok(input::calling_policy(map)?)
}

/// `GET /v1/calling-policy`: the organization's policy, or the default one
/// when none was set.
pub(crate) async fn get_organization(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let parsed = no_query(&query);
    policy_response(run(&app, &headers, parsed, |org, ()| org.calling_policy()).await)
}

/// `PUT /v1/calling-policy`: replaces the organization's policy; answers it.
pub(crate) async fn put_organization(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = no_query(&query).and_then(|()| policy_body(&headers, body));
    let result = run(&app, &headers, parsed, |org, policy| {
        org.set_calling_policy(&policy)
    })
    .await;
    policy_response(result)
}

/// `GET /v1/agents/{agent_id}/calling-policy`: the agent's override; 404
/// when it has none (its callbacks follow the organization's policy).
pub(crate) async fn get_agent(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let parsed = no_query(&query).and_then(|()| agent_id(path));
    let result = run(&app, &headers, parsed, |org, agent_id| {
        org.agent_calling_policy(&agent_id)?
            .ok_or_else(|| Error::agent_policy_not_found(&agent_id))
    })
    .await;
    policy_response(result)
}

/// `PUT /v1/agents/{agent_id}/calling-policy`: sets the agent's override.
pub(crate) async fn put_agent(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = (|| {
        no_query(&query)?;
        let agent_id = agent_id(path)?;
        Ok((agent_id, policy_body(&headers, body)?))
    })();
    let result = run(&app, &headers, parsed, |org, (agent_id, policy)| {
        org.set_agent_calling_policy(&agent_id, &policy)
    })
    .await;
    policy_response(result)
}

/// `DELETE /v1/agents/{agent_id}/calling-policy`: removes the override
/// (204); 404 when the agent had none.
pub(crate) async fn delete_agent(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let parsed = no_query(&query).and_then(|()| agent_id(path));
    let result = run(&app, &headers, parsed, |org, agent_id| {
        org.clear_agent_calling_policy(&agent_id)
    })
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
