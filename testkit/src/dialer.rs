//! The fake dialer the webhook tests place calls through.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One request the fake dialer received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A fake dialer on loopback: answers by the callback's `metadata.mode`:
/// `ok` (200 with a session), `error` (503), `slow` (200 after 2.5 s),
/// `garbage` (200, not JSON), anything else (200 without a session).
pub struct Dialer {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Dialer {
    /// Serves at most `max_requests` requests, then stops listening.
    pub fn start(max_requests: usize) -> Dialer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/place-call", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max_requests) {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || answer(stream, &log));
            }
        });
        Dialer { url, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn answer(mut stream: TcpStream, log: &Mutex<Vec<Received>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = Vec::new();
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let callback: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    log.lock().unwrap().push(Received {
        headers,
        body: body.clone(),
    });
    let id = callback["id"].as_str().unwrap_or("?").to_owned();
    let (status, text) = match callback["metadata"]["mode"].as_str().unwrap_or("ok") {
        "ok" => (
            "200 OK",
            format!(r#"{{"created_session_id":"sess_for_{id}"}}"#),
        ),
        "error" => ("503 Service Unavailable", "dialer is down".to_owned()),
        "slow" => {
            std::thread::sleep(Duration::from_millis(2500));
            (
                "200 OK",
                format!(r#"{{"created_session_id":"sess_slow_{id}"}}"#),
            )
        }
        "garbage" => ("200 OK", "<html>surprise</html>".to_owned()),
        _ => ("200 OK", r#"{"placed":true}"#.to_owned()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
}
