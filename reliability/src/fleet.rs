//! The machinery of the fleet test (`tests/fleet_postgres.rs`): its own
//! PostgreSQL cluster (`scripts/pg.sh` on a port of its own), the fake
//! webhook that logs every call it receives by callback id and node, the
//! `callback-store serve` and `worker` processes it starts and kills, and
//! the reads of the database it polls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callback_store::Store;
use serde_json::Value;

use crate::lock;

/// How long the fake webhook holds each call: kills land while calls ring.
pub const RING: Duration = Duration::from_millis(20);
/// The survivors fail claims older than this (the victims' orphans).
pub const STALE_AFTER: &str = "5s";
/// The nodes' webhook timeout: above `HOLD_LIMIT` with room for a loaded
/// machine (at 2 s, two held calls answered after 1.5 s timed out during a
/// run beside three builds, and the audit rightly counted them as placed
/// yet failed), and below `STALE_AFTER`, so that a call still ringing is
/// never taken for an orphan.
pub const WEBHOOK_TIMEOUT: &str = "4s";
/// The servers' busy timeout: past it, a request in the outage is a 503.
pub const SERVER_BUSY_TIMEOUT: &str = "1s";

/// The workspace folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

// ---------------------------------------------------------------- cluster

/// The test's own PostgreSQL cluster, stopped when dropped.
pub struct Cluster {
    port: String,
    dir: PathBuf,
    url: String,
}

impl Cluster {
    pub fn start() -> Cluster {
        let port = std::env::var("CALLBACK_STORE_FLEET_PG_PORT").unwrap_or("55433".to_owned());
        let dir = repo().join("target/pg-fleet");
        let mut cluster = Cluster {
            port,
            dir,
            url: String::new(),
        };
        cluster.url = cluster.pg_sh("start");
        cluster
    }

    /// Runs `scripts/pg.sh action` on this cluster: its last line of output.
    pub fn pg_sh(&self, action: &str) -> String {
        let out = Command::new("bash")
            .arg(repo().join("scripts/pg.sh"))
            .arg(action)
            .env("CALLBACK_STORE_PG_PORT", &self.port)
            .env("CALLBACK_STORE_PG_DIR", &self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("bash runs scripts/pg.sh");
        assert!(
            out.status.success(),
            "scripts/pg.sh {action} (port {}) failed: {}",
            self.port,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout.lines().last().unwrap_or_default().trim().to_owned()
    }

    /// A fresh schema (earlier runs' are dropped): the URL that selects it.
    pub fn fresh_schema(&self) -> String {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach the fleet cluster at {}: {e}", self.url));
        let old: Vec<String> = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'fleet\\_%'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for schema in old {
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .unwrap();
        }
        let schema = format!("fleet_{}", std::process::id());
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        format!("{}?options=-csearch_path%3D{schema}", self.url)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stopped = Command::new("bash")
            .arg(repo().join("scripts/pg.sh"))
            .arg("stop")
            .env("CALLBACK_STORE_PG_PORT", &self.port)
            .env("CALLBACK_STORE_PG_DIR", &self.dir)
            .status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!("could not stop the fleet cluster on port {}", self.port);
        }
    }
}

// ---------------------------------------------------------------- webhook

/// What the fake webhook saw.
#[derive(Default)]
pub struct Calls {
    /// Callback id → the nodes that placed its call, in order.
    pub placed: HashMap<String, Vec<String>>,
    /// Node → calls received and not yet answered.
    pub ringing: HashMap<String, usize>,
    /// Requests that were not a callback's JSON.
    pub garbage: usize,
    /// Nodes whose calls are held unanswered (up to `HOLD_LIMIT`) until
    /// they leave this set: the victims, just before they are killed.
    pub held: HashSet<String>,
}

/// The longest a held call is kept: below the nodes' webhook timeout.
pub const HOLD_LIMIT: Duration = Duration::from_millis(1500);

/// A fake dialer on loopback: every node POSTs to `<url>/<node>`; each call
/// is logged by callback id and node when its request is read, then held
/// for `RING` and answered 200 with a created_session_id. Keep-alive, one
/// thread per connection.
pub struct Webhook {
    pub url: String,
    calls: Arc<Mutex<Calls>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/place-call", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Calls::default()));
        let shared = Arc::clone(&calls);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let calls = Arc::clone(&shared);
                std::thread::spawn(move || serve_connection(stream, &calls));
            }
        });
        Webhook { url, calls }
    }

    pub fn placed_count(&self) -> usize {
        lock(&self.calls).placed.len()
    }

    pub fn ringing(&self, node: &str) -> usize {
        lock(&self.calls).ringing.get(node).copied().unwrap_or(0)
    }

    /// Everything the webhook saw so far, taken out of it.
    pub fn take_calls(&self) -> Calls {
        std::mem::take(&mut *lock(&self.calls))
    }

    pub fn hold(&self, node: &str, held: bool) {
        let mut calls = lock(&self.calls);
        if held {
            calls.held.insert(node.to_owned());
        } else {
            calls.held.remove(node);
        }
    }
}

fn serve_connection(stream: TcpStream, calls: &Mutex<Calls>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let node = path.rsplit('/').next().unwrap_or("?").to_owned();
        let id = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned));
        let Some(id) = id else {
            lock(calls).garbage += 1;
            let _ = writer.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            return;
        };
        {
            let mut calls = lock(calls);
            calls
                .placed
                .entry(id.clone())
                .or_default()
                .push(node.clone());
            *calls.ringing.entry(node.clone()).or_insert(0) += 1;
        }
        std::thread::sleep(RING);
        let held_since = Instant::now();
        while lock(calls).held.contains(&node) && held_since.elapsed() < HOLD_LIMIT {
            std::thread::sleep(Duration::from_millis(2));
        }
        let answer = format!(r#"{{"created_session_id":"sess_{id}"}}"#);
        let written = write!(
            writer,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if let Some(n) = lock(calls).ringing.get_mut(&node) {
            *n -= 1;
        }
        if written.and_then(|()| writer.flush()).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- nodes

/// The `callback-store` binary of this test's profile.
pub fn binary() -> PathBuf {
    let bin = match std::env::var_os("CALLBACK_STORE_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().expect("the test's path");
            // target/<profile>/deps/<test> → target/<profile>/callback-store
            exe.parent()
                .and_then(Path::parent)
                .expect("the profile folder")
                .join("callback-store")
        }
    };
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build -p callback-store-cli` \
         (or set CALLBACK_STORE_BIN)",
        bin.display()
    );
    bin
}

/// One `serve` or `worker` process, its stderr in a log file.
pub struct Node {
    pub name: String,
    pub child: Child,
    log: PathBuf,
    /// `http://127.0.0.1:port` of a server.
    pub base: Option<String>,
}

impl Node {
    pub fn spawn(bin: &Path, db: &str, name: &str, webhook: &str, logs: &Path) -> Node {
        let server = name.starts_with('s');
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(["--db", db]);
        if server {
            cmd.args(["--busy-timeout", SERVER_BUSY_TIMEOUT, "serve"]);
            cmd.args(["--listen", "127.0.0.1:0"]);
        } else {
            cmd.arg("worker");
        }
        cmd.args(["--webhook-url", &format!("{webhook}/{name}")])
            .args(["--webhook-timeout", WEBHOOK_TIMEOUT])
            .args(["--dispatch-interval", "200ms"])
            .args(["--dispatch-batch", "16"])
            .args(["--stale-after", STALE_AFTER])
            .args(["--recover-interval", "500ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        let child = cmd.spawn().expect("callback-store starts");
        Node {
            name: name.to_owned(),
            child,
            log,
            base: None,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a server's "listening on" line (or a worker's start line).
    pub fn wait_started(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.log_text();
            if let Some(at) = text.find("listening on http://") {
                let rest = &text[at + "listening on ".len()..];
                self.base = Some(rest.lines().next().unwrap_or("").trim().to_owned());
                return;
            }
            if self.base.is_none() && !self.name.starts_with('s') && text.contains(": worker on ") {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} stopped at start ({status}): {text}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start within 60 s: {text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then up to 30 s for a clean stop; SIGKILL after that.
    pub fn stop(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.to_string();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        "killed after 30 s without stopping".to_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------- the database

/// The `fleet_request` of every callback a client created, as stored now.
pub fn stored_requests(store: &Store) -> HashSet<String> {
    let rows = store
        .with_postgres(|c| {
            c.query(
                "SELECT metadata FROM callbacks WHERE metadata LIKE '%fleet_request%'",
                &[],
            )
        })
        .expect("a PostgreSQL store")
        .expect("a client")
        .expect("the metadata");
    rows.iter()
        .filter_map(|r| {
            let text: String = r.get(0);
            let value: Value = serde_json::from_str(&text).ok()?;
            value["fleet_request"].as_str().map(str::to_owned)
        })
        .collect()
}

/// Callbacks per status, read in the database. A pooled connection the
/// restart closed fails once and is replaced: tries for up to 30 s.
pub fn counts(store: &Store) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = store
            .with_postgres(|c| {
                c.query(
                    "SELECT status, count(*) FROM callbacks GROUP BY status",
                    &[],
                )
            })
            .expect("a PostgreSQL store");
        match rows {
            Ok(Ok(rows)) => return rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
            Ok(Err(e)) if Instant::now() < deadline => eprintln!("fleet: counting: {e}"),
            Err(e) if Instant::now() < deadline => eprintln!("fleet: counting: {e}"),
            other => panic!("cannot count the callbacks: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The count of `status` in `counts` (0 when absent).
pub fn count(counts: &BTreeMap<String, i64>, status: &str) -> i64 {
    counts.get(status).copied().unwrap_or(0)
}

/// Polls `done` every 200 ms for at most `limit`; false when it never held.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done()
}
