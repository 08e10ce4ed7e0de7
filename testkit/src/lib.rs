//! Helpers shared by the end-to-end tests of the server (`server/tests`,
//! the server in-process) and of the command (`cli/tests`, the real
//! `callback-store serve`): a blocking HTTP client bound to a token, answers
//! read whole, requests of any bytes over a plain socket, and a fake dialer
//! on loopback. Every wait here is bounded.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod db;
mod dialer;
mod raw;

pub use db::{postgres_server, require_postgres, TestDb, BACKEND_ENV, POSTGRES_ENV};
pub use dialer::{Dialer, Received};
pub use raw::{raw_exchange, RawAnswer};

/// The 21 keys of the reference's callback object, in its order.
pub const CALLBACK_KEYS: [&str; 21] = [
    "id",
    "organization_id",
    "source_session_id",
    "created_session_id",
    "agent_id",
    "phone_number_id",
    "to_number",
    "from_number",
    "scheduled_at",
    "status",
    "reason",
    "instructions",
    "summary",
    "pipeline_config",
    "metadata",
    "failure_cause",
    "attempted_at",
    "dispatched_at",
    "cancelled_at",
    "created_at",
    "updated_at",
];

pub const UNAUTHORIZED_BODY: &str = r#"{"error":"Unauthorized","code":"UNAUTHORIZED"}"#;

/// An answer, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error answer: the status, the code, JSON content type.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        let keys = keys_of(&body);
        assert_eq!(keys, ["error", "code"], "{}", self.text);
        assert_eq!(body["code"], code, "{}", self.text);
        body["error"].as_str().unwrap().to_owned()
    }
}

pub fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .no_proxy()
        .build()
        .unwrap()
}

pub fn send(request: reqwest::blocking::RequestBuilder) -> Resp {
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().unwrap();
    Resp {
        status,
        headers,
        text,
    }
}

/// A client bound to a server and a token.
pub struct Api {
    pub client: reqwest::blocking::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    /// A client of the server at `base` (`http://host:port`).
    pub fn new(base: &str, token: &str) -> Api {
        Api {
            client: client(),
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        send(
            self.client
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token),
        )
    }

    pub fn post(&self, path: &str, body: Option<&Value>) -> Resp {
        self.call("POST", path, body)
    }

    /// `POST …/dispatch` of `id`, which must answer 200 with the callback
    /// and its claim's token in the Claim-Token header: both.
    pub fn dispatch(&self, id: &str) -> (Value, String) {
        let resp = self.post(&format!("/v1/callbacks/{id}/dispatch"), None);
        assert_eq!(resp.status, 200, "{}", resp.text);
        let callback = resp.json();
        assert_callback_shape(&callback);
        let token = resp.header("claim-token").unwrap_or_default().to_owned();
        assert!(is_claim_token(&Value::from(token.as_str())), "{resp:?}");
        (callback, token)
    }

    /// `method` (`GET`, `POST`…) of `path` with a JSON `body`, if any.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        send(request)
    }

    /// Every page of a list, cursors followed: the callbacks' JSON.
    pub fn list_all(&self, query: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/callbacks?limit=100{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&path);
            assert_eq!(page.status, 200, "{path}: {}", page.text);
            let page = page.json();
            all.extend(page["callbacks"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return all,
            }
        }
    }

    /// Creates a callback to +12015551234 with `extra` fields; its JSON.
    pub fn create(&self, extra: Value) -> Value {
        let mut body = json!({
            "to_number": "+12015551234",
            "scheduled_at": "2030-03-05T10:00:00Z",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = self.post("/v1/callbacks", Some(&body));
        assert_eq!(resp.status, 201, "{}", resp.text);
        resp.json()
    }
}

/// Every route that names a callback, with a body where it takes one:
/// (method, path, body).
pub fn callback_routes(id: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let cb = format!("/v1/callbacks/{id}");
    vec![
        ("GET", cb.clone(), None),
        ("GET", format!("{cb}/events"), None),
        ("POST", format!("{cb}/cancel"), Some(json!({"reason": "x"}))),
        ("POST", format!("{cb}/dispatch"), None),
        (
            "POST",
            format!("{cb}/complete"),
            Some(json!({"created_session_id": "sess_intruder"})),
        ),
        (
            "POST",
            format!("{cb}/fail"),
            Some(json!({"failure_cause": "intruder"})),
        ),
        (
            "POST",
            format!("{cb}/reschedule"),
            Some(json!({"scheduled_at": "2031-01-01T00:00:00Z"})),
        ),
    ]
}

/// The keys of a JSON object, in their order.
pub fn keys_of(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The actions of a history (`{"events": [...]}`), oldest first.
pub fn actions_of(history: &Value) -> Vec<&str> {
    history["events"]
        .as_array()
        .unwrap_or_else(|| panic!("not a history: {history}"))
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

/// The extension keys of DESIGN.md ("The callback record") that follow the
/// reference's 21 in every record, in order: written here from the
/// contract, so that a test of a door compares it with the contract rather
/// than with the core's own list.
pub const DESIGN_EXTENSION_KEYS: [&str; 4] =
    ["timezone", "expires_at", "attempt", "previous_callback_id"];

/// Asserts that a JSON value is a callback with exactly the reference's
/// keys, in order, then DESIGN's extension keys.
pub fn assert_callback_shape(callback: &Value) {
    let keys = keys_of(callback);
    let expected: Vec<&str> = CALLBACK_KEYS
        .iter()
        .chain(DESIGN_EXTENSION_KEYS.iter())
        .copied()
        .collect();
    assert_eq!(keys, expected);
}

/// Whether a value is a claim token: 32 lowercase hex digits.
pub fn is_claim_token(value: &Value) -> bool {
    value.as_str().is_some_and(|t| {
        t.len() == 32
            && t.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Polls `check` every 50 ms for at most `limit`.
pub fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
