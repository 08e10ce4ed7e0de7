//! Shared pieces of the reliability suites: a seeded random generator, the
//! fsynced work logs the worker processes keep, the dialer that logs every
//! call it places, the audit of a store file after a crash or a race, the
//! fleet test's cluster, webhook and processes, and the figures the long
//! runs report.
//!
//! The suites themselves are in `tests/`; the worker processes they spawn
//! and kill are the `crash-worker` binary (`src/bin/crash-worker.rs`) and
//! the `claim-racer` binary (`src/bin/claim-racer.rs`).

pub mod audit;
pub mod fleet;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use callback_store::{Callback, Dispatcher, Store};

/// SplitMix64: small, seedable, good enough to pick operations and delays.
/// The same seed gives the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A size of a suite, from the environment (the long runs raise them).
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
        Err(_) => default,
    }
}

/// The seed of a suite: `RELIABILITY_SEED`, or the suite's fixed default.
pub fn seed(default: u64) -> u64 {
    env_usize("RELIABILITY_SEED", default as usize) as u64
}

/// An append-only log of facts a worker must not forget across a crash:
/// each line is written with one `write` and fsynced before the worker goes
/// on, so a line in the log happened, whatever happens next.
#[derive(Debug)]
pub struct WorkLog {
    file: File,
    sync: bool,
}

impl WorkLog {
    pub fn open(path: &Path, sync: bool) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(WorkLog { file, sync })
    }

    pub fn line(&mut self, line: &str) -> std::io::Result<()> {
        self.file.write_all(format!("{line}\n").as_bytes())?;
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// The fake dialer of the suites, the one `Store::place_call` invokes: a
/// call counts as placed once its line `dialed <id> <tag>` is in the log
/// (fsynced when the log is), as a real call is placed once the carrier
/// took it. Only then does it "ring" for a random pause of up to
/// `max_ring`, so that a kill can land between the spent claim and its
/// completion, and answer (a session id) or not ("no answer").
///
/// A log that cannot be written is kept as an error for the worker to
/// report (`take_error`): the dialer itself can only fail the call.
#[derive(Debug)]
pub struct LoggedDialer {
    log: Mutex<WorkLog>,
    rng: Mutex<Rng>,
    tag: String,
    max_ring: Duration,
    answer_percent: u64,
    error: Mutex<Option<String>>,
}

impl LoggedDialer {
    pub fn new(log: WorkLog, rng: Rng, tag: &str, max_ring: Duration, answer_percent: u64) -> Self {
        LoggedDialer {
            log: Mutex::new(log),
            rng: Mutex::new(rng),
            tag: tag.to_owned(),
            max_ring,
            answer_percent,
            error: Mutex::new(None),
        }
    }

    /// The first failure to write the log, if any.
    pub fn take_error(&self) -> Option<String> {
        lock(&self.error).take()
    }
}

/// A poisoned lock only means another thread panicked; the data is a log
/// handle or a generator, still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dispatcher for LoggedDialer {
    fn place_call(&self, callback: &Callback) -> Result<String, String> {
        let line = format!("dialed {} {}", callback.id, self.tag);
        if let Err(e) = lock(&self.log).line(&line) {
            let message = format!("the dial log failed: {e}");
            lock(&self.error).get_or_insert(message.clone());
            return Err(message);
        }
        let (ring, answered) = {
            let mut rng = lock(&self.rng);
            let max = self.max_ring.as_micros() as u64;
            let ring = if max == 0 { 0 } else { rng.below(max + 1) };
            (ring, rng.chance(self.answer_percent))
        };
        std::thread::sleep(Duration::from_micros(ring));
        if answered {
            Ok(format!("sess_{}", callback.id))
        } else {
            Err("no answer".to_owned())
        }
    }
}

/// The complete lines of a work log, split into words. A last line without
/// its newline (a write cut short) is ignored: it was never acknowledged.
pub fn read_log(path: &Path) -> Vec<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .filter(|words: &Vec<String>| !words.is_empty())
        .collect()
}

/// Where the suites write their figures: `RELIABILITY_FIGURES_DIR` (set by
/// scripts/reliability.sh to `target/reliability`), or else
/// `target/reliability/short`, so a short run never mixes with a long one.
pub fn figures_dir() -> PathBuf {
    match std::env::var_os("RELIABILITY_FIGURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/reliability/short"),
    }
}

/// The name a suite's figures are written under: `suite` on SQLite,
/// `suite_postgres` on PostgreSQL, so that the runs of both backends are
/// kept side by side.
pub fn figures_name(suite: &str, store: &Store) -> String {
    match store.backend_name() {
        "sqlite" => suite.to_owned(),
        backend => format!("{suite}_{backend}"),
    }
}

/// Records one suite's figures as `<figures_dir>/<suite>.json` and prints
/// them, so that a test run shows what it proved.
pub fn write_figures(suite: &str, figures: &serde_json::Value) {
    let text = serde_json::to_string_pretty(figures).expect("figures are JSON");
    println!("figures of {suite}: {text}");
    let dir = figures_dir();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{suite}.json")), &text));
    if let Err(e) = written {
        eprintln!(
            "could not write the figures of {suite} to {}: {e}",
            dir.display()
        );
    }
}
