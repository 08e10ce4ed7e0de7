//! Every error status of the server and its JSON body: validation (query,
//! path, body, content type), limits, unknown routes and methods, oversized
//! bodies, and a busy database. Never HTML or plain text.

mod common;

use std::time::Duration;

use callback_store::NewCallback;
use common::*;
use serde_json::json;

#[test]
fn limit_defaults_to_25_accepts_1_and_100_and_refuses_0_101_and_abc() {
    let (db, _server, api) = server_with_token(Options::default());
    let store = db.store();
    let when = chrono::Utc::now();
    let batch = (0..101)
        .map(|_| NewCallback::new("+12015551234", when))
        .collect();
    store
        .organization("org_a")
        .unwrap()
        .create_many(batch)
        .unwrap();
    let count = |query: &str| {
        let resp = api.get(&format!("/v1/callbacks{query}"));
        assert_eq!(resp.status, 200, "{query}: {}", resp.text);
        resp.json()["callbacks"].as_array().unwrap().len()
    };
    assert_eq!(count(""), 25);
    assert_eq!(count("?limit=1"), 1);
    assert_eq!(count("?limit=100"), 100);
    for bad in ["0", "101", "abc", "-1", "", "2.5"] {
        let msg = api
            .get(&format!("/v1/callbacks?limit={bad}"))
            .assert_error(400, "VALIDATION_ERROR");
        assert!(msg.starts_with("limit: "), "{bad}: {msg}");
        assert!(msg.contains("100"), "{bad}: {msg}");
    }
}

#[test]
fn unknown_query_parameters_are_a_validation_error_naming_them() {
    let (_db, _server, api) = server_with_token(Options::default());
    let msg = api
        .get("/v1/callbacks?status=scheduled&colour=red&size=9")
        .assert_error(400, "VALIDATION_ERROR");
    assert!(msg.contains("colour") && msg.contains("size"), "{msg}");
    let cb = api.create(json!({}));
    let id = cb["id"].as_str().unwrap();
    let msg = api
        .get(&format!("/v1/callbacks/{id}?verbose=1"))
        .assert_error(400, "VALIDATION_ERROR");
    assert!(msg.contains("verbose"), "{msg}");
    let msg = api
        .post(&format!("/v1/callbacks/{id}/dispatch?force=true"), None)
        .assert_error(400, "VALIDATION_ERROR");
    assert!(msg.contains("force"), "{msg}");
    // Nothing happened to the callback.
    assert_eq!(
        api.get(&format!("/v1/callbacks/{id}")).json()["status"],
        "scheduled"
    );
}

#[test]
fn bad_query_values_are_validation_errors_naming_the_parameter() {
    let (_db, _server, api) = server_with_token(Options::default());
    for (query, field) in [
        ("status=done", "status"),
        ("order=random", "order"),
        ("scheduled_after=yesterday", "scheduled_after"),
        ("scheduled_before=2030-01-01T00:00:00", "scheduled_before"),
        ("to_number=12345", "to_number"),
        ("cursor=not-a-cursor", "cursor"),
        ("limit=1&limit=2", "limit"),
        (
            "scheduled_after=2030-02-01T00:00:00Z&scheduled_before=2030-01-01T00:00:00Z",
            "scheduled_after",
        ),
    ] {
        let msg = api
            .get(&format!("/v1/callbacks?{query}"))
            .assert_error(400, "VALIDATION_ERROR");
        assert!(msg.starts_with(&format!("{field}: ")), "{query}: {msg}");
    }
}

#[test]
fn a_cursor_from_another_query_is_refused() {
    let (_db, _server, api) = server_with_token(Options::default());
    for _ in 0..3 {
        api.create(json!({"source_session_id": "s1"}));
    }
    let page = api.get("/v1/callbacks?limit=1&source_session_id=s1").json();
    let cursor = page["next_cursor"].as_str().unwrap();
    api.get(&format!(
        "/v1/callbacks?limit=1&source_session_id=s2&cursor={cursor}"
    ))
    .assert_error(400, "VALIDATION_ERROR");
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_with_allow_in_json() {
    let (_db, server, api) = server_with_token(Options::default());
    let client = client();
    for path in [
        "/",
        "/v2/callbacks",
        "/v1/callbacks/",
        "/v1/callbacks/x/y/z",
        "/v1/callbacks/x/explode",
    ] {
        let msg = send(client.get(server.url(path)).bearer_auth(&api.token))
            .assert_error(404, "NOT_FOUND");
        assert!(msg.contains(path), "{path}: {msg}");
    }
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/v1/callbacks", "GET,HEAD,POST"),
        (reqwest::Method::PUT, "/v1/callbacks/cb_1", "GET,HEAD"),
        (reqwest::Method::GET, "/v1/callbacks/cb_1/cancel", "POST"),
        (reqwest::Method::POST, "/healthz", "GET,HEAD"),
    ] {
        let resp = send(
            client
                .request(method.clone(), server.url(path))
                .bearer_auth(&api.token),
        );
        resp.assert_error(405, "METHOD_NOT_ALLOWED");
        assert_eq!(resp.header("allow"), Some(allow), "{method} {path}");
    }
}

/// Sends a request over a plain socket (the body from another thread, its
/// errors ignored: the server may answer and close before reading it all)
/// and reads the answer: (status, body).
fn raw_request(base: &str, head: String, body: Vec<u8>) -> (u16, String) {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&body);
    });
    let mut answer = Vec::new();
    let mut reader = stream;
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some((headers, body)) = text.split_once("\r\n\r\n") {
            let length: usize = headers
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    let _ = sender.join();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).unwrap_or("0").parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn bodies_over_256_kib_are_413_announced_or_streamed() {
    let (_db, _server, api) = server_with_token(Options::default());
    let big = json!({
        "to_number": "+12015551234",
        "scheduled_at": "2030-01-01T00:00:00Z",
        "summary": "x".repeat(300 * 1024),
    })
    .to_string();
    let head = |framing: String| {
        format!(
            "POST /v1/callbacks HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\nconnection: close\r\n{framing}\r\n",
            api.token
        )
    };
    let expected = r#"{"error":"body: must be at most 262144 bytes","code":"VALIDATION_ERROR"}"#;
    // Announced by Content-Length: refused before the body is read.
    let announced = raw_request(
        &api.base,
        head(format!("content-length: {}\r\n", big.len())),
        big.clone().into_bytes(),
    );
    assert_eq!(announced, (413, expected.to_owned()));
    // Chunked, without a length: refused once 256 KiB have been read.
    let mut chunked = Vec::new();
    for chunk in big.as_bytes().chunks(16 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let streamed = raw_request(
        &api.base,
        head("transfer-encoding: chunked\r\n".to_owned()),
        chunked,
    );
    assert_eq!(streamed, (413, expected.to_owned()));
    // Just under the limit is read (and refused by the 64 KiB text rule).
    let under = json!({"to_number": "+12015551234", "scheduled_at": "2030-01-01T00:00:00Z", "summary": "x".repeat(200 * 1024)});
    let msg = api
        .post("/v1/callbacks", Some(&under))
        .assert_error(400, "VALIDATION_ERROR");
    assert!(msg.starts_with("summary: "), "{msg}");
}

#[test]
fn malformed_json_wrong_content_type_and_bad_fields_are_400_naming_the_problem() {
    let (_db, _server, api) = server_with_token(Options::default());
    let url = format!("{}/v1/callbacks", api.base);
    let raw = |content_type: Option<&str>, body: &str| {
        let mut request = api
            .client
            .post(&url)
            .bearer_auth(&api.token)
            .body(body.to_owned());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        send(request)
    };
    let valid = r#"{"to_number":"+12015551234","scheduled_at":"2030-01-01T00:00:00Z"}"#;
    let cases = [
        (
            Some("application/json"),
            r#"{"to_number": "+1201"#,
            "body: malformed JSON",
        ),
        (
            Some("application/json"),
            "[1, 2]",
            "body: must be a JSON object, got an array",
        ),
        (
            Some("application/json"),
            "",
            "body: a JSON object is required",
        ),
        (
            Some("text/plain"),
            valid,
            "Content-Type: must be application/json",
        ),
        (None, valid, "Content-Type: must be application/json"),
        (
            Some("application/json"),
            r#"{"scheduled_at":"2030-01-01T00:00:00Z"}"#,
            "to_number: is required",
        ),
        (
            Some("application/json"),
            r#"{"to_number":"555-1234","scheduled_at":"2030-01-01T00:00:00Z"}"#,
            "to_number: must be an E.164 number",
        ),
        (
            Some("application/json"),
            r#"{"to_number":"+12015551234","scheduled_at":"next tuesday"}"#,
            "scheduled_at: must be an RFC 3339",
        ),
        (
            Some("application/json"),
            r#"{"to_number":"+12015551234","scheduled_at":"2030-01-01T00:00:00Z","metadata":[1]}"#,
            "metadata: must be a JSON object, got an array",
        ),
        (
            Some("application/json"),
            r#"{"to_number":"+12015551234","scheduled_at":"2030-01-01T00:00:00Z","status":"dispatched"}"#,
            "body: unknown field status",
        ),
        (
            Some("application/json"),
            r#"{"to_number":"+12015551234","scheduled_at":"2030-01-01T00:00:00Z","agent_id":7}"#,
            "agent_id: must be a string or null",
        ),
    ];
    for (content_type, body, expected) in cases {
        let msg = raw(content_type, body).assert_error(400, "VALIDATION_ERROR");
        assert!(msg.starts_with(expected), "{body}: {msg}");
    }
    assert_eq!(
        raw(Some("application/json; charset=utf-8"), valid).status,
        201
    );
    // Action bodies follow the same rules.
    let id = api.create(json!({}))["id"].as_str().unwrap().to_owned();
    for (action, body, expected) in [
        (
            "cancel",
            r#"{"reason": 5}"#,
            "reason: must be a string or null",
        ),
        ("cancel", r#"{"why": "x"}"#, "body: unknown field why"),
        ("reschedule", "{}", "scheduled_at: is required"),
        (
            "complete",
            r#"{"created_session_id": ""}"#,
            "created_session_id: must be 1 to 255 bytes",
        ),
        (
            "fail",
            r#"{"failure_cause": ""}"#,
            "failure_cause: must not be empty",
        ),
    ] {
        let resp = send(
            api.client
                .post(format!("{}/v1/callbacks/{id}/{action}", api.base))
                .bearer_auth(&api.token)
                .header("content-type", "application/json")
                .body(body),
        );
        let msg = resp.assert_error(400, "VALIDATION_ERROR");
        assert!(msg.starts_with(expected), "{action} {body}: {msg}");
    }
}

/// On SQLite another writer holds the database; on PostgreSQL another
/// session holds the callback's row (`SELECT … FOR UPDATE`). Either way a
/// write past the busy timeout is a busy STORAGE_ERROR: 503, `Retry-After`.
#[test]
fn a_write_held_up_past_the_busy_timeout_is_503_with_retry_after_then_succeeds() {
    let db = TestDb::new();
    let token = db.token("org_a");
    let server = db.serve(Options {
        busy_timeout: Duration::from_millis(200),
        ..Options::default()
    });
    let api = Api::new(&server.base, &token);
    let id = api.create(json!({}))["id"].as_str().unwrap().to_owned();
    let cancel = format!("/v1/callbacks/{id}/cancel");
    let lock = HeldLock::on_callback(&db, &id);
    let resp = api.post(&cancel, Some(&json!({"reason": "held up"})));
    let msg = resp.assert_error(503, "STORAGE_ERROR");
    assert!(msg.contains("busy timeout"), "{msg}");
    assert_eq!(resp.header("retry-after"), Some("1"));
    // Reads go on while the writer holds its lock.
    let got = api.get(&format!("/v1/callbacks/{id}"));
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json()["status"], "scheduled");
    lock.release();
    let cancelled = eventually(Duration::from_secs(5), || {
        let resp = api.post(&cancel, Some(&json!({"reason": "held up"})));
        (resp.status == 200).then_some(resp)
    });
    assert_eq!(cancelled.json()["status"], "cancelled");
}

#[test]
fn invalid_path_ids_are_validation_errors_not_server_errors() {
    let (_db, _server, api) = server_with_token(Options::default());
    let long = "x".repeat(300);
    api.get(&format!("/v1/callbacks/{long}"))
        .assert_error(400, "VALIDATION_ERROR");
    api.get("/v1/callbacks/%FF%FE")
        .assert_error(400, "VALIDATION_ERROR");
    api.get("/v1/callbacks/a%00b")
        .assert_error(400, "VALIDATION_ERROR");
}
