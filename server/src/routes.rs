//! The routes of the Callbacks API and their handlers. Every store call
//! (authentication included) runs on tokio's blocking pool.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use callback_store::{Callback, Error, Organization, Store};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{ApiError, MAX_BODY_BYTES};
use callback_store::input::{self, Fields};

use crate::feed_routes;
use crate::metrics::{self, Metrics};
use crate::policy_routes;
use crate::request;
use crate::stats_routes;
use crate::webhook::{self, Webhook};

/// The API over one store: build its [`Router`] with [`Api::router`] and
/// mount it in your own service, or run it with [`crate::serve`].
#[derive(Debug, Clone)]
pub struct Api {
    store: Store,
    webhook: Option<Webhook>,
    tasks: TaskTracker,
    /// Cancelled when the server begins to shut down: long polls and event
    /// streams of the change feed end then, rather than hold it up.
    closing: CancellationToken,
    metrics: Metrics,
}

impl Api {
    /// Without a webhook, `POST …/dispatch` leaves the callback
    /// `dispatching` for the caller's own dialer to complete or fail.
    pub fn new(store: Store) -> Api {
        Api {
            store,
            webhook: None,
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
            metrics: Metrics::new(),
        }
    }

    /// Long polls and event streams of the change feed end once `closing`
    /// is cancelled ([`crate::serve`] cancels it at the shutdown signal).
    pub fn closing_on(mut self, closing: CancellationToken) -> Api {
        self.closing = closing;
        self
    }

    pub(crate) fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// With a webhook, `POST …/dispatch` places the call through it and
    /// answers with the callback `dispatched` or `failed`.
    pub fn with_webhook(mut self, webhook: Webhook) -> Api {
        self.webhook = Some(webhook.with_metrics(self.metrics.clone()));
        self
    }

    /// This API's counters, served at `GET /metrics`; give them to the
    /// background loops' webhook (`Webhook::with_metrics`) to count their
    /// calls there too, as `serve` does.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Calls being placed for `POST …/dispatch`: they run to their end even
    /// if the client goes away; wait on this before the process exits.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route(
                "/metrics",
                get(metrics::handler).with_state(self.exporter()),
            )
            .route("/v1/stats", get(stats_routes::stats))
            .route("/openapi.json", get(openapi))
            .route("/v1/callbacks", get(list).post(create))
            .route("/v1/callbacks/{id}", get(get_one))
            .route("/v1/callbacks/{id}/events", get(events))
            .route("/v1/callbacks/{id}/cancel", post(cancel))
            .route("/v1/callbacks/{id}/dispatch", post(dispatch))
            .route("/v1/callbacks/{id}/complete", post(complete))
            .route("/v1/callbacks/{id}/fail", post(fail))
            .route("/v1/callbacks/{id}/reschedule", post(reschedule))
            .route("/v1/callbacks/{id}/retry", post(retry))
            .route("/v1/events", get(feed_routes::changes))
            .route(
                "/v1/calling-policy",
                get(policy_routes::get_organization).put(policy_routes::put_organization),
            )
            .route(
                "/v1/agents/{agent_id}/calling-policy",
                put(policy_routes::put_agent)
                    .get(policy_routes::get_agent)
                    .delete(policy_routes::delete_agent),
            )
            .merge(crate::ui::routes())
            .fallback(route_not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(middleware::from_fn(guard))
            .layer(middleware::from_fn_with_state(
                self.metrics.clone(),
                metrics::observe,
            ))
            .with_state(self.clone())
    }

    fn exporter(&self) -> metrics::Exporter {
        metrics::Exporter {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The router of an API over `store`, without a webhook.
pub fn router(store: Store) -> Router {
    Api::new(store).router()
}

/// Refuses announced oversized bodies before anything reads them, and turns
/// any error answer that is not already JSON into the API's error body.
async fn guard(request: Request, next: Next) -> Response {
    let too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64);
    if too_large {
        return ApiError::body_too_large().into_response();
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::route_not_found(method.as_str(), &path),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(method.as_str(), &path),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(),
        s if s.is_client_error() => ApiError::validation("request", s),
        s => ApiError::internal(format!("the server failed: {s}")),
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut replaced = error.into_response();
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::route_not_found(method.as_str(), uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("cannot encode the answer: {e}")).into_response(),
    }
}

/// Up, and the version of the time zone database that calling windows
/// are computed with (a server and its workers should agree on it).
async fn healthz() -> Response {
    let health = serde_json::json!({
        "status": "ok",
        "tzdb_version": callback_store::tzdb_version(),
    });
    json(StatusCode::OK, &health)
}

async fn openapi() -> Response {
    match crate::openapi::json() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// The Authorization header's value, if it is a well-formed bearer
/// credential; the store decides whether the token is valid.
pub(crate) fn authorization(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::unauthorized)?;
    match value.trim().split_once(' ') {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => Ok(value.to_owned()),
        _ => Err(ApiError::unauthorized()),
    }
}

/// Authenticates, then, if the request parsed, runs `op` for the caller's
/// organization; all on the blocking pool. Authentication comes first, so
/// a request without a valid token learns nothing but 401.
pub(crate) async fn run<P, T>(
    app: &Api,
    headers: &HeaderMap,
    parsed: Result<P, ApiError>,
    op: impl FnOnce(&Organization, P) -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError>
where
    P: Send + 'static,
    T: Send + 'static,
{
    let authorization = authorization(headers)?;
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || -> Result<T, ApiError> {
        let org = store.authenticate(&authorization)?;
        let parsed = parsed?;
        Ok(op(&org, parsed)?)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the store task failed: {e}")))?
}

pub(crate) fn no_query(query: &Option<String>) -> Result<(), ApiError> {
    request::query_pairs(query.as_deref(), &[])?;
    Ok(())
}

fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|e| ApiError::validation("id", format!("cannot be read from the path ({e})")))
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(),
        _ => ApiError::validation("body", format!("cannot be read ({e})")),
    })
}

/// The path's callback id and what `read` takes from the transition's JSON
/// body, which may hold only `fields`; the query string must be empty.
/// With `optional_body`, an empty body reads as `{}`.
fn id_and_body<T>(
    query: &Option<String>,
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    (fields, optional_body): (&[&str], bool),
    read: impl FnOnce(&mut Fields) -> Result<T, Error>,
) -> Result<(String, T), ApiError> {
    id_and_json(query, path, headers, body, optional_body, |map| {
        read(&mut Fields::new(map, fields, "body")?)
    })
}

/// A callback route's id and its JSON body, read by `read` (a reader of
/// the core's `input`): no query string, the id from the path, the body's
/// object (absent is `{}` when `optional_body`).
fn id_and_json<T>(
    query: &Option<String>,
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    optional_body: bool,
    read: impl FnOnce(Map<String, Value>) -> Result<T, Error>,
) -> Result<(String, T), ApiError> {
    no_query(query)?;
    let id = path_id(path)?;
    let bytes = body_bytes(body)?;
    let map: Map<String, Value> = request::json_body(headers, &bytes, optional_body)?;
    Ok((id, read(map)?))
}

/// The optional body field carrying the token of the caller's claim: the
/// store checks it (format and match) when it is given.
const CLAIM_TOKEN: &str = "claim_token";

/// The answer header carrying the token of the claim a dispatch made.
const CLAIM_TOKEN_HEADER: &str = "claim-token";

async fn list(State(app): State<Api>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let parsed = request::list_query(query.as_deref()).map_err(ApiError::from);
    match run(&app, &headers, parsed, |org, q| org.list(&q)).await {
        Ok(page) => json(StatusCode::OK, &page),
        Err(e) => e.into_response(),
    }
}

async fn create(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = (|| -> Result<_, ApiError> {
        no_query(&query)?;
        let bytes = body_bytes(body)?;
        let map = request::json_body(&headers, &bytes, false)?;
        let mut new = input::new_callback(map)?;
        if let Some(value) = headers.get("idempotency-key") {
            let key = value.to_str().map_err(|_| {
                ApiError::validation("Idempotency-Key", "must be visible ASCII text")
            })?;
            match &new.idempotency_key {
                Some(in_body) if in_body != key => {
                    return Err(ApiError::validation(
                        "Idempotency-Key",
                        "differs from the body's idempotency_key; give one or make them equal",
                    ))
                }
                _ => new.idempotency_key = Some(key.to_owned()),
            }
        }
        Ok(new)
    })();
    match run(&app, &headers, parsed, |org, new| org.create(new)).await {
        Ok(callback) => {
            let mut response = json(StatusCode::CREATED, &callback);
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/callbacks/{}", callback.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

fn callback_response(result: Result<Callback, ApiError>) -> Response {
    match result {
        Ok(callback) => json(StatusCode::OK, &callback),
        Err(e) => e.into_response(),
    }
}

async fn get_one(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let parsed = no_query(&query).and_then(|()| path_id(path));
    callback_response(run(&app, &headers, parsed, |org, id| org.get(&id)).await)
}

#[derive(Serialize)]
struct Events {
    events: Vec<callback_store::CallbackEvent>,
}

async fn events(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let parsed = no_query(&query).and_then(|()| path_id(path));
    match run(&app, &headers, parsed, |org, id| org.history(&id)).await {
        Ok(events) => json(StatusCode::OK, &Events { events }),
        Err(e) => e.into_response(),
    }
}

async fn cancel(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = id_and_body(&query, path, &headers, body, (&["reason"], true), |f| {
        f.optional_string("reason")
    });
    let result = run(&app, &headers, parsed, |org, (id, reason)| {
        org.cancel(&id, reason.as_deref())
    })
    .await;
    callback_response(result)
}

/// `scheduled` → `dispatching`: the callback is answered as a record, and
/// the token of the claim this dispatch made goes in the Claim-Token header
/// (for `complete` and `fail`'s `claim_token`). With a webhook, the server
/// spends the claim placing the call before it answers.
async fn dispatch(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let parsed = no_query(&query).and_then(|()| path_id(path));
    let claim = match run(&app, &headers, parsed, |org, id| org.dispatch(&id)).await {
        Ok(claim) => claim,
        Err(e) => return e.into_response(),
    };
    app.metrics.claimed(1);
    // A token is 32 hex digits, always a valid header value.
    let token = match HeaderValue::from_str(claim.token()) {
        Ok(token) => token,
        Err(e) => {
            let error = format!("the claim token is not a header value: {e}");
            return ApiError::internal(error).into_response();
        }
    };
    let mut response = match app.webhook.clone() {
        None => json(StatusCode::OK, claim.callback()),
        Some(webhook) => {
            // A task of its own: the call is placed and recorded even if
            // the client hangs up, and shutdown waits for it.
            let store = app.store.clone();
            let placed = app
                .tasks
                .spawn(async move { webhook::place_and_record(&store, &webhook, claim).await })
                .await;
            match placed {
                Ok(result) => callback_response(result),
                Err(e) => {
                    ApiError::internal(format!("the dispatch task failed: {e}")).into_response()
                }
            }
        }
    };
    if response.status().is_success() {
        response.headers_mut().insert(CLAIM_TOKEN_HEADER, token);
    }
    response
}

/// What finishes a dispatch: `complete_dispatch` or `fail_dispatch`, given
/// the id, the route's text field and the optional claim token.
type Finish = fn(&Organization, &str, &str, Option<&str>) -> Result<Callback, Error>;

/// `complete` and `fail`: the same body (one required text field and the
/// optional `claim_token`), the same answer.
async fn finish_dispatch(
    app: Api,
    headers: HeaderMap,
    query: Option<String>,
    (path, body): (
        Result<Path<String>, PathRejection>,
        Result<Bytes, BytesRejection>,
    ),
    field: &'static str,
    finish: Finish,
) -> Response {
    let fields = [field, CLAIM_TOKEN];
    let parsed = id_and_body(&query, path, &headers, body, (&fields, false), |f| {
        Ok((f.string(field)?, f.optional_string(CLAIM_TOKEN)?))
    });
    let result = run(&app, &headers, parsed, move |org, (id, (text, token))| {
        finish(org, &id, &text, token.as_deref())
    })
    .await;
    callback_response(result)
}

async fn complete(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let finish: Finish = |org, id, session, token| org.complete_dispatch(id, session, token);
    finish_dispatch(
        app,
        headers,
        query,
        (path, body),
        "created_session_id",
        finish,
    )
    .await
}

async fn fail(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let finish: Finish = |org, id, cause, token| org.fail_dispatch(id, cause, token);
    finish_dispatch(app, headers, query, (path, body), "failure_cause", finish).await
}

async fn reschedule(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = id_and_body(
        &query,
        path,
        &headers,
        body,
        (&["scheduled_at"], false),
        |f| f.timestamp("scheduled_at"),
    );
    let result = run(&app, &headers, parsed, |org, (id, at)| {
        org.reschedule(&id, at)
    })
    .await;
    callback_response(result)
}

/// The follow-up attempt of a dispatched or failed callback whose call
/// ended in the body's `outcome`: created by the first request, the same
/// one answered to every repeat. The store decides whether the policy
/// allows it (409 INVALID_TRANSITION saying why when not).
async fn retry(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = id_and_json(&query, path, &headers, body, false, input::call_outcome);
    let result = run(&app, &headers, parsed, |org, (id, outcome)| {
        org.retry(&id, outcome)
    })
    .await;
    callback_response(result)
}
