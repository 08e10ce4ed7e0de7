//! The command's end-to-end tests: the real `callback-store` binary on a
//! fresh database of the run's backend ([`TestDb`]: an SQLite file in a
//! temporary folder, or with `CALLBACK_STORE_TEST_BACKEND=postgres` a new
//! PostgreSQL schema, `--db` its URL), and `callback-store serve` and
//! `worker` as processes. The HTTP client and the fake dialer are
//! testkit's, shared with the server's tests. Every wait here is bounded.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use testkit::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_callback-store");

/// The `callback-store` command on a [`TestDb`] (`--db` its location).
pub trait Commands {
    /// Runs the command with `--db` set; stdin from `input`.
    fn run_with_input(&self, args: &[&str], input: &[u8]) -> Run;

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, b"")
    }

    /// Runs the command and expects success; its stdout as JSON.
    fn ok(&self, args: &[&str]) -> Value {
        let run = self.run(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        run.json()
    }

    /// Creates a callback of `org` to +12015551234 at `at` (RFC 3339 or
    /// relative): its id.
    fn create_at(&self, org: &str, at: &str) -> String {
        let cb = self.ok(&["--org", org, "create", "--to", "+12015551234", "--at", at]);
        cb["id"].as_str().unwrap().to_owned()
    }

    /// A new API key for `org`, made by `keys create`: its token.
    fn token(&self, org: &str) -> String {
        let created = self.ok(&["--org", org, "keys", "create", "--label", "test"]);
        created["token"].as_str().unwrap().to_owned()
    }

    /// Starts `serve` on a free loopback port.
    fn serve(&self, extra: &[&str]) -> Server;

    /// Starts `worker` with `extra` flags; returns once it said what it runs.
    fn worker(&self, extra: &[&str]) -> Process;
}

impl Commands for TestDb {
    fn run_with_input(&self, args: &[&str], input: &[u8]) -> Run {
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(self.location())
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

    fn serve(&self, extra: &[&str]) -> Server {
        Server::start(&self.location(), extra)
    }

    fn worker(&self, extra: &[&str]) -> Process {
        let mut args = vec!["worker"];
        args.extend_from_slice(extra);
        Process::start(&self.location(), &args, "worker on ").0
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

/// A running `callback-store` process, its stderr collected line by line;
/// killed on drop if it still runs.
pub struct Process {
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `callback-store --db DB ARGS` and waits (at most 20 s) for a
    /// line on its stderr containing `ready`: the process, and the rest of
    /// that line after `ready`.
    pub fn start(db: &str, args: &[&str], ready: &str) -> (Process, String) {
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(args)
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
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let rest = line.split(&ready).nth(1).map(|r| r.trim().to_owned());
                lines.lock().unwrap().push(line);
                if let Some(rest) = rest {
                    let _ = tx.send(rest);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(rest) => (
                Process {
                    child: Some(child),
                    log,
                },
                rest,
            ),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} did not start: {:?}", log.lock().unwrap());
            }
        }
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
                panic!("the process did not stop within 20 s of SIGTERM");
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

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `callback-store serve` on a free loopback port: a [`Process`]
/// and the base URL it listens on.
pub struct Server {
    process: Process,
    pub base: String,
}

impl Server {
    pub fn start(db: &str, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (process, base) = Process::start(db, &args, "listening on ");
        Server { process, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(self) -> ExitStatus {
        self.process.stop()
    }
}

impl Deref for Server {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// A server on a fresh database placing calls through `dialer`, with a
/// token of org_a. The defaults (a 1 s webhook timeout, a dispatcher polling
/// every hour so that only `POST …/dispatch` places calls) come first:
/// `extra` overrides them.
pub fn webhook_server(dialer: &Dialer, extra: &[&str]) -> (TestDb, Server, Api) {
    let db = TestDb::new();
    let token = db.token("org_a");
    let mut args = vec![
        "--dispatch-webhook",
        dialer.url.as_str(),
        "--webhook-timeout",
        "1s",
        "--dispatch-interval",
        "1h",
    ];
    args.extend_from_slice(extra);
    let server = db.serve(&args);
    let api = Api::new(&server.base, &token);
    (db, server, api)
}

/// How many calls the dialer received for each callback id.
pub fn calls_by_id(dialer: &Dialer) -> HashMap<String, usize> {
    let mut calls = HashMap::new();
    for received in dialer.received() {
        let callback: Value = serde_json::from_str(&received.body).unwrap();
        *calls
            .entry(callback["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    calls
}

/// The schema of a PostgreSQL test database (`search_path` in its URL).
pub fn schema_of(db: &TestDb) -> Option<String> {
    match db {
        TestDb::Sqlite { .. } => None,
        TestDb::Postgres { url } => url.split("search_path%3D").nth(1).map(str::to_owned),
    }
}

/// A store on a fresh schema of `db`'s PostgreSQL server: SQL run through
/// it reads or writes `db`'s schema without opening (and so migrating) it.
fn beside(db: &TestDb) -> callback_store::Store {
    let TestDb::Postgres { url } = db else {
        panic!("beside: {} is not on PostgreSQL", db.location());
    };
    let server = url.split("options=").next().unwrap();
    let server = server.trim_end_matches(['?', '&']);
    callback_store::Store::open(TestDb::postgres(server).location()).unwrap()
}

/// Runs `sql` on `db`'s PostgreSQL server from another schema.
pub fn execute_beside(db: &TestDb, sql: &str) {
    beside(db)
        .with_postgres(|c| c.batch_execute(sql).unwrap())
        .unwrap()
        .unwrap();
}

/// The first column of `sql`'s rows as text, read on `db`'s PostgreSQL
/// server from another schema.
pub fn texts_beside(db: &TestDb, sql: &str) -> Vec<String> {
    beside(db)
        .with_postgres(|c| {
            let rows = c.query(sql, &[]).unwrap();
            rows.iter().map(|r| r.get(0)).collect()
        })
        .unwrap()
        .unwrap()
}

/// The tables of a PostgreSQL test database's schema, read from another.
pub fn tables_of(db: &TestDb) -> Vec<String> {
    let schema = schema_of(db).expect("a PostgreSQL test database");
    texts_beside(
        db,
        &format!(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = '{schema}' ORDER BY 1"
        ),
    )
}

/// Whether the command created the database: on SQLite its file exists; on
/// PostgreSQL its schema holds tables.
pub fn database_created(db: &TestDb) -> bool {
    match db {
        TestDb::Sqlite { path, .. } => path.exists(),
        TestDb::Postgres { .. } => !tables_of(db).is_empty(),
    }
}
