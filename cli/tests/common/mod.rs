//! Shared by the command's and the server's end-to-end tests: the real
//! `callback-store` binary on a temporary database, a real HTTP client, and
//! a small fake dialer on loopback. Every wait here is bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod dialer;
// Only the webhook tests use the dialer.
#[allow(unused_imports)]
pub use dialer::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_callback-store");

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

/// A temporary folder with a database path in it.
pub struct Db {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Db {
    pub fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callbacks.db");
        Db { dir, path }
    }

    /// Runs the command with `--db` set; stdin from `input`.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Run {
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(&self.path)
            .args(args)
            .env_remove("CALLBACK_STORE_ORG")
            .env_remove("CALLBACK_STORE_TOKEN")
            .env_remove("CALLBACK_STORE_DB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Run::from(output)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, b"")
    }

    /// Runs the command and expects success; its stdout as JSON.
    pub fn ok(&self, args: &[&str]) -> Value {
        let run = self.run(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        run.json()
    }

    /// Creates a callback of `org` to +12015551234 at `at` (RFC 3339 or
    /// relative): its id.
    pub fn create_at(&self, org: &str, at: &str) -> String {
        let cb = self.ok(&["--org", org, "create", "--to", "+12015551234", "--at", at]);
        cb["id"].as_str().unwrap().to_owned()
    }

    /// A new API key for `org`: its token.
    pub fn token(&self, org: &str) -> String {
        let created = self.ok(&["--org", org, "keys", "create", "--label", "test"]);
        created["token"].as_str().unwrap().to_owned()
    }

    /// Starts `serve` on a free loopback port.
    pub fn serve(&self, extra: &[&str]) -> Server {
        Server::start(&self.path, extra)
    }
}

/// A finished command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// The API error body printed on stderr.
    pub fn error(&self) -> Value {
        serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not an error body ({e}): {}", self.stderr))
    }
}

/// A running `callback-store serve`, stopped (SIGTERM, then kill) on drop.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("CALLBACK_STORE_ORG")
            .env_remove("CALLBACK_STORE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not start: {:?}", log.lock().unwrap());
            }
        };
        Server {
            child: Some(child),
            base,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (at most 20 s) for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate();
        self.wait()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

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
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
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
    pub fn new(server: &Server, token: &str) -> Api {
        Api {
            client: client(),
            base: server.base.clone(),
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
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        send(request)
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

    /// Creates a callback to +12015551234 with `extra` fields; its JSON.
    pub fn create(&self, extra: Value) -> Value {
        let mut body = serde_json::json!({
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

/// Asserts that a JSON value is a callback with exactly the reference's keys, in order.
pub fn assert_callback_shape(callback: &Value) {
    let keys: Vec<&str> = callback
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {callback}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, CALLBACK_KEYS);
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

/// An answer read off a plain socket.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request over a plain socket, so that any bytes can be sent,
/// even those a client library refuses (a NUL in a header, a 64 KiB
/// target): `host`, `connection: close` and, with a body, `content-length`
/// are added. The body goes from another thread, its errors ignored (the
/// server may answer and close before reading it all). Reads the answer.
pub fn raw_exchange(
    base: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> RawAnswer {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method == "POST" {
        head.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let body = body.to_vec();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&head);
        let _ = writer.write_all(&body);
    });
    let mut answer = Vec::new();
    let mut reader = stream;
    let mut buf = [0u8; 16384];
    let split = |answer: &[u8]| answer.windows(4).position(|w| w == b"\r\n\r\n");
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = split(&answer) {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| answer.len() >= end + 4 + n) {
                break;
            }
        }
    }
    let _ = sender.join();
    let end = split(&answer).unwrap_or_else(|| {
        panic!(
            "{method} {}: no answer ({:?})",
            &target[..target.len().min(80)],
            String::from_utf8_lossy(&answer)
        )
    });
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawAnswer {
        status,
        head,
        body: answer[end + 4..].to_vec(),
    }
}
