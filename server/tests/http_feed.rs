//! `GET /v1/events`: the change feed over HTTP, as JSON pages with long
//! polling and as Server-Sent Events, per organization or (operator key)
//! store-wide.

mod common;

use std::io::{BufRead, BufReader};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn changes(resp: &Resp) -> Vec<(String, String)> {
    let page = resp.json();
    page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["callback_id"].as_str().unwrap().to_owned(),
                c["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_feed_pages_every_change_of_the_keys_organization_and_the_operator_key_sees_all() {
    let db = TestDb::new();
    let server = db.serve(Options::default());
    let a = Api::new(&server.base, &db.token("org_a"));
    let b = Api::new(&server.base, &db.token("org_b"));
    let operator = Api::new(
        &server.base,
        &db.store().create_operator_key("ops").unwrap().token,
    );
    let mine = a.create(json!({}));
    let theirs = b.create(json!({}));
    let id = mine["id"].as_str().unwrap();
    a.post(
        &format!("/v1/callbacks/{id}/cancel"),
        Some(&json!({"reason": "asked"})),
    );

    let first = a.get("/v1/events?limit=1");
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(changes(&first), [(id.to_owned(), "create".to_owned())]);
    let change = &first.json()["changes"][0];
    assert_eq!(
        keys_of(change),
        [
            "cursor",
            "organization_id",
            "callback_id",
            "action",
            "from",
            "to",
            "at",
            "detail"
        ]
    );
    let next = first.json()["next_cursor"].as_str().unwrap().to_owned();
    let rest = a.get(&format!("/v1/events?since={next}"));
    assert_eq!(changes(&rest), [(id.to_owned(), "cancel".to_owned())]);
    assert_eq!(rest.json()["changes"][0]["detail"], "asked");

    // Another organization's key cannot replay the cursor.
    b.get(&format!("/v1/events?since={next}"))
        .assert_error(400, "VALIDATION_ERROR");
    // The operator reads every organization's changes, in commit order.
    let all = operator.get("/v1/events?since=start");
    assert_eq!(all.status, 200, "{}", all.text);
    let orgs: Vec<Value> = all.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["organization_id"].clone())
        .collect();
    assert_eq!(orgs, [json!("org_a"), json!("org_b"), json!("org_a")]);
    assert_eq!(changes(&all)[1].0, theirs["id"].as_str().unwrap());
    // An operator key acts for no organization.
    operator
        .get("/v1/callbacks")
        .assert_error(401, "UNAUTHORIZED");
    // No key, no feed.
    let anonymous = send(client().get(server.url("/v1/events")));
    anonymous.assert_error(401, "UNAUTHORIZED");
}

#[test]
fn bad_feed_parameters_are_validation_errors_naming_the_parameter() {
    let db = TestDb::new();
    let server = db.serve(Options::default());
    let a = Api::new(&server.base, &db.token("org_a"));
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("wait=61", "wait"),
        ("wait=-1", "wait"),
        ("since=garbage", "since"),
        ("from=start", "query"),
    ] {
        let message = a
            .get(&format!("/v1/events?{query}"))
            .assert_error(400, "VALIDATION_ERROR");
        assert!(message.contains(field), "{query}: {message}");
    }
}

#[test]
fn a_long_poll_is_answered_when_a_change_commits() {
    let db = TestDb::new();
    let server = db.serve(Options::default());
    let a = Api::new(&server.base, &db.token("org_a"));
    let now = a.get("/v1/events?since=now").json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let writer = {
        let a = Api::new(&server.base, &a.token);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            a.create(json!({}))
        })
    };
    let started = Instant::now();
    let page = a.get(&format!("/v1/events?since={now}&wait=30"));
    let made = writer.join().unwrap();
    assert_eq!(
        changes(&page),
        [(made["id"].as_str().unwrap().to_owned(), "create".to_owned())]
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "answered at the deadline, not the commit"
    );
}

/// The events of a text/event-stream, read line by line: (id, event, data).
struct EventStream {
    lines: BufReader<reqwest::blocking::Response>,
}

impl EventStream {
    fn open(server: &Server, token: &str, query: &str, last_event_id: Option<&str>) -> EventStream {
        let mut request = client()
            .get(server.url(&format!("/v1/events{query}")))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream {
            lines: BufReader::new(response),
        }
    }

    /// The next event (comments skipped).
    fn next(&mut self) -> (String, String, Value) {
        let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
        loop {
            let mut line = String::new();
            assert!(
                self.lines.read_line(&mut line).unwrap() > 0,
                "the stream ended"
            );
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() && !event.is_empty() {
                return (id, event, serde_json::from_str(&data).unwrap());
            }
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_owned()
            }
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned()
            }
            if let Some(v) = line.strip_prefix("data: ") {
                data = v.to_owned()
            }
        }
    }
}

#[test]
fn an_event_stream_follows_the_feed_and_resumes_from_last_event_id() {
    let db = TestDb::new();
    let server = db.serve(Options::default());
    let a = Api::new(&server.base, &db.token("org_a"));
    let b = Api::new(&server.base, &db.token("org_b"));
    let first = a.create(json!({}));
    let mut stream = EventStream::open(&server, &a.token, "?since=start", None);
    let (id, event, data) = stream.next();
    assert_eq!(event, "change");
    assert_eq!(data["callback_id"], first["id"]);
    assert_eq!(data["cursor"], id.as_str());
    // Changes committed while the stream is open arrive on it; another
    // organization's never do.
    b.create(json!({}));
    let second = a.create(json!({}));
    let (second_id, _, data) = stream.next();
    assert_eq!(data["callback_id"], second["id"]);
    drop(stream);
    // A reconnecting client names the last event it got: the stream goes
    // on after it, whatever `since` says.
    let third = a.create(json!({}));
    let mut resumed = EventStream::open(&server, &a.token, "?since=start", Some(&id));
    assert_eq!(resumed.next().2["callback_id"], second["id"]);
    assert_eq!(resumed.next().2["callback_id"], third["id"]);
    drop(resumed);
    let mut after_second = EventStream::open(&server, &a.token, "", Some(&second_id));
    assert_eq!(after_second.next().2["callback_id"], third["id"]);
}

#[test]
fn an_event_stream_with_a_bad_cursor_is_refused_before_it_starts() {
    let db = TestDb::new();
    let server = db.serve(Options::default());
    let token = db.token("org_a");
    let resp = send(
        client()
            .get(server.url("/v1/events?since=garbage"))
            .bearer_auth(&token)
            .header("accept", "text/event-stream"),
    );
    resp.assert_error(400, "VALIDATION_ERROR");
}

#[test]
fn open_event_streams_and_long_polls_do_not_hold_up_a_shutdown() {
    let db = TestDb::new();
    let server = db.serve(Options::default());
    let token = db.token("org_a");
    let stream = EventStream::open(&server, &token, "?since=now", None);
    let poller = {
        let api = Api::new(&server.base, &token);
        thread::spawn(move || api.get("/v1/events?since=now&wait=60"))
    };
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.stop().unwrap();
    // The grace period is 30 s and the long poll 60 s: the feed's waits
    // end at the shutdown signal instead.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the shutdown waited {:?}",
        started.elapsed()
    );
    let answered = poller.join().unwrap();
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(answered.json()["changes"], json!([]));
    drop(stream);
}
