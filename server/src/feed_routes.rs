//! `GET /v1/events`: the change feed (core/src/feed.rs) over HTTP, as JSON
//! pages (long polling with `wait`) or, for a client that accepts
//! `text/event-stream`, as Server-Sent Events that follow the feed for as
//! long as the connection lasts.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use callback_store::input::ChangesQuery;
use callback_store::{Caller, Change, ChangePage, Error, Organization, Since, Store};
use futures_util::stream::{self, Stream};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::request;
use crate::routes::{authorization, json, Api};

/// How long one poll of an event stream waits for a change before it asks
/// again: well under the idle timeouts of common proxies (60 s), with
/// keep-alive comments in between.
const STREAM_POLL: Duration = Duration::from_secs(25);
/// The longest one call into the store waits: a long poll is a series of
/// these, so that a closing server or a client gone away holds a blocking
/// thread for at most this long.
const SLICE: Duration = Duration::from_secs(1);

/// Whose changes a token reads: its organization's, or with an operator
/// key every organization's.
enum Reader {
    Organization(Organization),
    Operator(Store),
}

impl Reader {
    fn changes(&self, since: &Since, limit: u32, wait: Duration) -> Result<ChangePage, Error> {
        match self {
            Reader::Organization(org) => org.changes(since, limit, wait),
            Reader::Operator(store) => store.changes(since, limit, wait),
        }
    }
}

pub(crate) async fn changes(
    State(app): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match answer(app, headers, query).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn answer(app: Api, headers: HeaderMap, query: Option<String>) -> Result<Response, ApiError> {
    let stream = accepts_event_stream(&headers);
    let parsed = request::changes_query(query.as_deref())
        .map_err(ApiError::from)
        .and_then(|mut q| {
            // A reconnecting EventSource repeats the URL and names the last
            // change it received: it reads on from there.
            if let Some(last) = last_event_id(&headers, stream)? {
                q.since = Since::Cursor(last);
            }
            Ok(q)
        });
    // Authentication first: a request without a valid token learns
    // nothing but 401.
    let authorization = authorization(&headers)?;
    let store = app.store().clone();
    let reader = blocking(move || {
        Ok(match store.authenticate_caller(&authorization)? {
            Caller::Organization(org) => Reader::Organization(org),
            Caller::Operator => Reader::Operator(store),
        })
    })
    .await?;
    let query = parsed?;
    let reader = Arc::new(reader);
    if !stream {
        let page = long_poll(&reader, query.since, query.limit, query.wait, app.closing()).await?;
        return Ok(json(StatusCode::OK, &page));
    }
    // The first page at once, so that a bad cursor is a 400 rather than an
    // error in the middle of a stream.
    let first = {
        let reader = reader.clone();
        let since = query.since.clone();
        blocking(move || Ok(reader.changes(&since, query.limit, Duration::ZERO)?)).await?
    };
    let events = follow(reader, first, query, app.closing().clone());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The stream of an event stream: the first page's changes, then each
/// long poll's, one `change` event each (its `id` the change's cursor),
/// until the client goes away; a store error ends the stream with one
/// `error` event holding the API's error body.
fn follow(
    reader: Arc<Reader>,
    first: ChangePage,
    query: ChangesQuery,
    closing: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Following {
        reader: Arc<Reader>,
        since: Since,
        pending: VecDeque<Change>,
        ended: bool,
    }
    let state = Following {
        reader,
        since: Since::Cursor(first.next_cursor),
        pending: first.changes.into(),
        ended: false,
    };
    let limit = query.limit;
    stream::unfold(state, move |mut state| {
        let closing = closing.clone();
        async move {
            loop {
                if let Some(change) = state.pending.pop_front() {
                    let data = serde_json::to_string(&change).unwrap_or_default();
                    let event = Event::default()
                        .id(change.cursor)
                        .event("change")
                        .data(data);
                    return Some((Ok(event), state));
                }
                if state.ended || closing.is_cancelled() {
                    return None;
                }
                let since = state.since.clone();
                match long_poll(&state.reader, since, limit, STREAM_POLL, &closing).await {
                    Ok(page) => {
                        state.since = Since::Cursor(page.next_cursor);
                        state.pending.extend(page.changes);
                    }
                    Err(error) => {
                        state.ended = true;
                        let body = serde_json::json!({"error": error.error, "code": error.code});
                        let event = Event::default().event("error").data(body.to_string());
                        return Some((Ok(event), state));
                    }
                }
            }
        }
    })
}

/// Changes after `since`, waiting up to `wait` for the first one, in
/// slices of at most `SLICE` (see there); an empty page once `closing` is
/// cancelled.
async fn long_poll(
    reader: &Arc<Reader>,
    since: Since,
    limit: u32,
    wait: Duration,
    closing: &CancellationToken,
) -> Result<ChangePage, ApiError> {
    let deadline = Instant::now() + wait;
    let mut since = since;
    loop {
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(SLICE);
        let page = {
            let reader = reader.clone();
            blocking(move || Ok(reader.changes(&since, limit, slice)?)).await?
        };
        if !page.changes.is_empty() || Instant::now() >= deadline || closing.is_cancelled() {
            return Ok(page);
        }
        since = Since::Cursor(page.next_cursor);
    }
}

/// Runs a store call on the blocking pool: a long poll blocks its thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the store task failed: {e}")))?
}

/// Whether the client asks for an event stream (`Accept` names
/// `text/event-stream`, as every EventSource does); anything else gets JSON.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let essence = range.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("text/event-stream")
        })
}

/// The `Last-Event-ID` of a reconnecting event stream, if any.
fn last_event_id(headers: &HeaderMap, stream: bool) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("last-event-id").filter(|_| stream) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::validation("Last-Event-ID", "must be a cursor this server sent"))?;
    Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
}
