//! `GET /metrics`: the process's counters and the store's gauges in the
//! OpenMetrics text format (which Prometheus scrapes), through the
//! Prometheus project's `prometheus-client` crate. docs/metrics.md lists
//! every series.
//!
//! Who sees what (a bearer token, as every API route): an operator key sees
//! every series, the store's gauges of every organization included; an
//! organization's key sees only its own organization's store gauges. The
//! process's counters (claims, outcomes, webhook and HTTP latencies, busy
//! retries) add up every organization's traffic, so they are the
//! operator's: an organization could read another's activity from them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use callback_store::{CallOutcome, Callback, Caller, OrganizationStats, Status, Store};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::error::ApiError;

/// What `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every series' name starts with this (and `_`).
const PREFIX: &str = "callback_store";

/// The label of a request that matched no route: the raw path is never a
/// label (it carries ids, and any client could make series without end).
const UNMATCHED: &str = "unmatched";

/// How a call placed through the webhook can end (`Metrics::placed`).
const OUTCOMES: [&str; 6] = [
    "dispatched",
    "no_answer",
    "busy",
    "voicemail",
    "failed",
    "refused",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrganizationLabels {
    organization_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    organization_id: String,
    status: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 5 ms to ~41 s: a webhook or a request, from a quick answer to a timeout.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The counters of one process: a server's (its requests, the calls its
/// dispatcher and `POST …/dispatch` place) or a worker's. Cheap to clone;
/// each observation is an atomic add or two.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Counters>,
}

#[derive(Debug)]
struct Counters {
    registry: Registry,
    claims: Counter,
    outcomes: Family<OutcomeLabels, Counter>,
    webhook_seconds: Histogram,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RouteLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let claims = Counter::default();
        registry.register(
            "claims",
            "Callbacks this process claimed (claim_due, POST …/dispatch)",
            claims.clone(),
        );
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        // Every outcome from the start, at zero: a rate over a series that
        // appears only with its first call would miss that call.
        for outcome in OUTCOMES {
            drop(outcomes.get_or_create(&OutcomeLabels { outcome }));
        }
        registry.register(
            "dispatch_outcomes",
            "Calls this process placed through the webhook, by how they ended: dispatched, \
             no_answer, busy, voicemail, failed (not placed), refused (a stale claim, or the \
             outcome could not be recorded)",
            outcomes.clone(),
        );
        let webhook_seconds = latency();
        registry.register(
            "webhook_duration_seconds",
            "How long the webhook took to answer a call (place_call over HTTP), timeouts included",
            webhook_seconds.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let request_seconds: Histograms<RouteLabels> = Family::new_with_constructor(latency);
        registry.register(
            "http_request_duration_seconds",
            "How long HTTP requests took to answer, by method and route template",
            request_seconds.clone(),
        );
        Metrics {
            inner: Arc::new(Counters {
                registry,
                claims,
                outcomes,
                webhook_seconds,
                requests,
                request_seconds,
            }),
        }
    }

    pub(crate) fn claimed(&self, count: usize) {
        self.inner.claims.inc_by(count as u64);
    }

    pub(crate) fn webhook_answered(&self, took: Duration) {
        self.inner.webhook_seconds.observe(took.as_secs_f64());
    }

    /// How a call placed through the webhook ended: the callback as
    /// recorded, or the error that kept it from being placed or recorded.
    pub(crate) fn placed<E>(&self, result: &Result<Callback, E>) {
        let outcome = match result {
            Ok(callback) if callback.status == Status::Dispatched => "dispatched",
            // A call that did not reach the person is recorded with the
            // outcome's name as its cause; any other cause is a failure.
            Ok(callback) => CallOutcome::ALL
                .into_iter()
                .map(CallOutcome::as_str)
                .find(|o| *o != "failed" && callback.failure_cause.as_deref() == Some(*o))
                .unwrap_or("failed"),
            Err(_) => "refused",
        };
        self.inner
            .outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn answered(&self, method: &str, route: &str, status: StatusCode, took: Duration) {
        let (method, route) = (method.to_owned(), route.to_owned());
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                method: method.clone(),
                route: route.clone(),
                status: status.as_u16(),
            })
            .inc();
        self.inner
            .request_seconds
            .get_or_create(&RouteLabels { method, route })
            .observe(took.as_secs_f64());
    }

    /// The exposition for `caller`: the store's gauges it may see, and for
    /// an operator the process's counters too.
    fn render(&self, store: &Store, caller: &Caller) -> callback_store::Result<String> {
        let now = store.now();
        let (stats, operator) = match caller {
            Caller::Operator => (store.stats(now)?, true),
            Caller::Organization(org) => (vec![org.stats(now)?], false),
        };
        let gauges = store_gauges(store, &stats, now, operator);
        let mut text = String::new();
        let encoded = (|| {
            if operator {
                encode_registry(&mut text, &self.inner.registry)?;
            }
            encode_registry(&mut text, &gauges)?;
            encode_eof(&mut text)
        })();
        encoded
            .map_err(|_| callback_store::Error::storage("the metrics cannot be encoded", false))?;
        Ok(text)
    }
}

/// The series read from the store at scrape time: its gauges, and for an
/// operator the store handle's own counters.
fn store_gauges(
    store: &Store,
    stats: &[OrganizationStats],
    now: callback_store::Timestamp,
    operator: bool,
) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    let callbacks = Family::<StatusLabels, Gauge>::default();
    let due = Family::<OrganizationLabels, Gauge>::default();
    let oldest = Family::<OrganizationLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for org in stats {
        let labels = OrganizationLabels {
            organization_id: org.organization_id.clone(),
        };
        for (status, count) in &org.counts {
            let labels = StatusLabels {
                organization_id: org.organization_id.clone(),
                status: status.as_str(),
            };
            callbacks.get_or_create(&labels).set(gauge(*count));
        }
        due.get_or_create(&labels).set(gauge(org.due));
        oldest
            .get_or_create(&labels)
            .set(org.oldest_due_age(now).as_secs_f64());
    }
    registry.register(
        "callbacks",
        "Callbacks in the store, by organization and status, at scrape time",
        callbacks,
    );
    registry.register(
        "due_callbacks",
        "Callbacks a worker's claim_due would take at scrape time (the backlog), by organization",
        due,
    );
    registry.register(
        "oldest_due_age_seconds",
        "How long the longest-waiting due callback has been claimable, by organization (0 when none is due)",
        oldest,
    );
    if operator {
        let counters = [
            (
                "busy_retries",
                "Times this process's store operations found the database busy and tried again",
                store.busy_retries(),
            ),
            (
                "follow_ups_created",
                "Follow-up attempts this process created (retry, or a failed call its policy retries)",
                store.follow_ups_created(),
            ),
        ];
        for (name, help, value) in counters {
            let counter = Counter::<u64>::default();
            counter.inc_by(value);
            registry.register(name, help, counter);
        }
    }
    registry
}

/// A count as a gauge's value (an i64); no store holds 2^63 callbacks.
fn gauge(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// What `/metrics` needs: the store for its gauges and callers, and the
/// process's counters.
#[derive(Debug, Clone)]
pub(crate) struct Exporter {
    pub store: Store,
    pub metrics: Metrics,
}

/// `GET /metrics`, authenticated as the rest of the API: no token or a
/// bad one is 401; the exposition depends on the caller (module comment).
pub(crate) async fn handler(State(exporter): State<Exporter>, headers: HeaderMap) -> Response {
    let authorization = match crate::routes::authorization(&headers) {
        Ok(authorization) => authorization,
        Err(e) => return e.into_response(),
    };
    let rendered = tokio::task::spawn_blocking(move || {
        let caller = exporter.store.authenticate_caller(&authorization)?;
        exporter.metrics.render(&exporter.store, &caller)
    })
    .await;
    match rendered {
        Ok(Ok(text)) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            text,
        )
            .into_response(),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => ApiError::internal(format!("the metrics task failed: {e}")).into_response(),
    }
}

/// The middleware that counts and times every request by its route
/// template (`/v1/callbacks/{id}`), never the raw path.
pub(crate) async fn observe(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.answered(&method, &route, response.status(), started.elapsed());
    response
}

/// A router that serves only `GET /metrics` of `store` with `metrics`: a
/// worker's metrics port (`callback-store worker --metrics-addr`).
pub fn metrics_router(store: Store, metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(handler))
        .fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                ApiError::route_not_found(method.as_str(), uri.path())
            },
        )
        .with_state(Exporter { store, metrics })
}

/// Serves [`metrics_router`] on `listener` until `shutdown` completes.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    store: Store,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(store, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}
