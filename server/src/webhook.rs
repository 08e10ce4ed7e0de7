//! The webhook dialer: a claimed callback's JSON is POSTed to a URL, and the
//! answer decides its end. A 2xx JSON answer with a `created_session_id`
//! string completes it; a 2xx JSON answer `{"outcome": "no_answer" | "busy"
//! | "voicemail"}` says the call was placed and did not reach the person: the
//! callback fails with that outcome as its cause, and gets a follow-up
//! attempt when its calling policy retries that outcome; anything else
//! (another status, a timeout, a refused connection, an answer without the
//! session) fails it with that cause.

use std::time::Duration;

use callback_store::{CallOutcome, CallResult, Callback, Claim, Dispatcher, Store};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// The most of a dialer's answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How much of an answer a failure cause quotes.
const QUOTE_CHARS: usize = 200;

/// Where and how calls are placed.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: reqwest::Url,
    client: reqwest::Client,
    timeout: Duration,
    /// Where its latencies and the calls' outcomes are counted, if anywhere.
    metrics: Option<Metrics>,
}

impl Webhook {
    /// A webhook at `url` (http or https), giving up on an answer after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Webhook, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{url} is not an http or https URL"));
        }
        if timeout.is_zero() {
            return Err("the webhook timeout must be above zero".to_owned());
        }
        // reqwest leaves the choice of TLS crypto to the program; ring is
        // the lighter of rustls' two to build. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("callback-store/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Webhook {
            url,
            client,
            timeout,
            metrics: None,
        })
    }

    /// The same webhook, timing its answers and counting the outcomes of
    /// the calls placed through it (`place_and_record`) in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Webhook {
        self.metrics = Some(metrics);
        self
    }

    pub(crate) fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Places the call: the created session id, or the failure cause (for
    /// a call that did not reach the person, the outcome's name, as the
    /// store records it).
    pub async fn place_call(&self, callback: &Callback) -> Result<String, String> {
        match self.place_call_for_result(callback).await {
            CallResult::Placed(session) => Ok(session),
            CallResult::NotReached(outcome) => Err(outcome.as_str().to_owned()),
            CallResult::Failed(message) => Err(message),
        }
    }

    /// Places the call and tells how it ended: placed (the session id), not
    /// reached (the answer's `outcome`), or failed (why).
    pub async fn place_call_for_result(&self, callback: &Callback) -> CallResult {
        let started = std::time::Instant::now();
        let result = self.post(callback).await;
        if let Some(metrics) = &self.metrics {
            metrics.webhook_answered(started.elapsed());
        }
        result
    }

    async fn post(&self, callback: &Callback) -> CallResult {
        let body = match serde_json::to_vec(callback) {
            Ok(body) => body,
            Err(e) => return CallResult::Failed(format!("cannot encode: {e}")),
        };
        let sent = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("idempotency-key", callback.id.as_str())
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return CallResult::Failed(self.transport_error(&e)),
        };
        let status = response.status();
        let answer = match read_limited(response).await {
            Ok(answer) => answer,
            Err(e) => return CallResult::Failed(self.transport_error(&e)),
        };
        if !status.is_success() {
            return CallResult::Failed(format!(
                "webhook answered HTTP {}: {}",
                status.as_u16(),
                quote(&answer)
            ));
        }
        if let Some(session) = session_of(&answer) {
            return CallResult::Placed(session);
        }
        if let Some(outcome) = not_reached(&answer) {
            return CallResult::NotReached(outcome);
        }
        CallResult::Failed(format!(
            "webhook answered HTTP {} without a created_session_id string \
             (or an outcome no_answer, busy or voicemail) in a JSON object: {}",
            status.as_u16(),
            quote(&answer)
        ))
    }

    fn transport_error(&self, err: &reqwest::Error) -> String {
        if err.is_timeout() {
            return format!("webhook timed out after {} ms", self.timeout.as_millis());
        }
        // The source chain says why (refused, reset, DNS...).
        let mut message = format!("webhook request failed: {err}");
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut answer = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES - answer.len();
        answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if answer.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(answer)
}

fn session_of(answer: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    match value.get("created_session_id")? {
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The outcome of an answer `{"outcome": "no_answer" | "busy" | "voicemail"}`:
/// a call placed that did not reach the person. `failed` is not one: a
/// dialer that could not place the call answers an error.
fn not_reached(answer: &[u8]) -> Option<CallOutcome> {
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let outcome = value.get("outcome")?.as_str()?.parse().ok()?;
    (outcome != CallOutcome::Failed).then_some(outcome)
}

fn quote(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut quoted: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().count() > QUOTE_CHARS {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

/// Places the call of a claim through the webhook and records the outcome
/// in the store: `dispatched` or `failed`.
///
/// The store spends the claim before the webhook is called, so a claim that
/// was already placed, recovered by `recover_stale` or finished since is
/// refused (409 INVALID_TRANSITION) and the webhook never hears of it: at
/// most one call per claim, whoever holds it. `Store::place_call` is
/// synchronous, so it runs on the blocking pool, and the webhook request it
/// makes in between is driven from there on the runtime's handle.
pub async fn place_and_record(
    store: &Store,
    webhook: &Webhook,
    claim: Claim,
) -> Result<Callback, ApiError> {
    let (store, dialer) = (store.clone(), webhook.clone());
    let runtime = tokio::runtime::Handle::current();
    let placed = tokio::task::spawn_blocking(move || {
        let dialer = Blocking {
            webhook: dialer,
            runtime,
        };
        store.place_call(&dialer, &claim)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the store task failed: {e}")))?
    .map_err(ApiError::from);
    if let Some(metrics) = webhook.metrics() {
        metrics.placed(&placed);
    }
    placed
}

/// The webhook as the store's synchronous `Dispatcher`, on a blocking-pool
/// thread: each request is driven on the runtime's handle.
/// (Handle::block_on is allowed there: a blocking-pool thread is not one of
/// the runtime's workers.)
struct Blocking {
    webhook: Webhook,
    runtime: tokio::runtime::Handle,
}

impl Dispatcher for Blocking {
    fn place_call(&self, callback: &Callback) -> Result<String, String> {
        self.runtime.block_on(self.webhook.place_call(callback))
    }

    fn place_call_for_result(&self, callback: &Callback) -> CallResult {
        self.runtime
            .block_on(self.webhook.place_call_for_result(callback))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_is_read_from_a_json_object_only() {
        assert_eq!(
            session_of(br#"{"created_session_id":"sess_1","x":1}"#).as_deref(),
            Some("sess_1")
        );
        for bad in [
            &b"sess_1"[..],
            br#"{"created_session_id":5}"#,
            br#"["sess_1"]"#,
            b"",
        ] {
            assert_eq!(session_of(bad), None);
        }
    }

    #[test]
    fn only_the_outcomes_of_a_call_placed_but_not_answered_are_read() {
        assert_eq!(
            not_reached(br#"{"outcome":"no_answer"}"#),
            Some(CallOutcome::NoAnswer)
        );
        assert_eq!(
            not_reached(br#"{"outcome":"busy"}"#),
            Some(CallOutcome::Busy)
        );
        assert_eq!(
            not_reached(br#"{"outcome":"voicemail","x":1}"#),
            Some(CallOutcome::Voicemail)
        );
        // `failed` is not an answer of a placed call; the rest is garbage.
        for bad in [
            &br#"{"outcome":"failed"}"#[..],
            br#"{"outcome":"hung_up"}"#,
            br#"{"outcome":1}"#,
            br#"["no_answer"]"#,
            b"no_answer",
        ] {
            assert_eq!(not_reached(bad), None);
        }
    }

    #[test]
    fn quotes_are_short_and_say_when_empty() {
        assert_eq!(quote(b"  "), "(empty body)");
        let long = "x".repeat(500);
        assert!(quote(long.as_bytes()).chars().count() < 210);
    }

    #[test]
    fn only_http_urls_and_positive_timeouts_are_accepted() {
        assert!(Webhook::new("ftp://example.test/", Duration::from_secs(1)).is_err());
        assert!(Webhook::new("not a url", Duration::from_secs(1)).is_err());
        assert!(Webhook::new("http://127.0.0.1:9/", Duration::ZERO).is_err());
        assert!(Webhook::new("http://127.0.0.1:9/", Duration::from_secs(1)).is_ok());
    }
}
