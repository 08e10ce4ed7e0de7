//! The processes of the change feed suite (`tests/feed.rs`).
//!
//! `feed-worker write --db F --log L --writer W --ops N --seed S` creates,
//! cancels and reschedules callbacks of two organizations, one transaction
//! each, and logs each one once its commit returned:
//! `op <callback_id> <action> <started_ns> <ended_ns>` (wall-clock
//! nanoseconds around the call: an op that ended before another started
//! committed before it).
//!
//! `feed-worker read --db F --log L [--org O] --until D` follows the
//! change feed (every organization's, or O's) and logs each change as
//! `change <cursor> <callback_id> <action>`, fsynced, before it reads on.
//! Started again on the same log, it resumes after the cursor of the log's
//! last complete line: a reader killed at any moment misses nothing and
//! logs nothing twice. It stops once the file D exists (the writers are
//! done) and a read after that found nothing new.

use std::path::Path;
use std::process::exit;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callback_store::{Error, NewCallback, Since, Store};
use callback_store_reliability::{read_log, Rng, WorkLog};
use chrono::Utc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |key: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == key)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let required = |key: &str| {
        arg(key).unwrap_or_else(|| {
            eprintln!("feed-worker: {key} is missing");
            exit(2)
        })
    };
    let store = Store::open(required("--db")).unwrap_or_else(|e| die(&e));
    let log_path = Path::new(required("--log"));
    let outcome = match args.first().map(String::as_str) {
        Some("write") => write(
            &store,
            log_path,
            required("--writer"),
            required("--ops").parse().expect("--ops N"),
            required("--seed").parse().expect("--seed S"),
        ),
        Some("read") => read(
            &store,
            log_path,
            arg("--org"),
            Path::new(required("--until")),
        ),
        _ => {
            eprintln!("usage: feed-worker write|read ...");
            exit(2)
        }
    };
    if let Err(e) = outcome {
        die(&e)
    }
}

fn die(e: &Error) -> ! {
    eprintln!("feed-worker: {} {e}", e.code().as_str());
    exit(1)
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn log_line(log: &mut WorkLog, line: &str) {
    log.line(line).unwrap_or_else(|e| {
        eprintln!("feed-worker: cannot write the log: {e}");
        exit(1)
    })
}

fn write(store: &Store, log: &Path, writer: &str, ops: usize, seed: u64) -> Result<(), Error> {
    let mut log = WorkLog::open(log, false).expect("the writer's log");
    let mut rng = Rng::new(seed);
    let orgs = [store.organization("org_a")?, store.organization("org_b")?];
    // Callbacks this writer created and may still cancel or reschedule.
    let mut open: Vec<(usize, String)> = Vec::new();
    for i in 0..ops {
        let started = nanos();
        let (id, action) = if open.is_empty() || rng.chance(50) {
            let org = rng.below(2) as usize;
            let new = NewCallback {
                source_session_id: Some(format!("{writer}-{i}")),
                ..NewCallback::new("+12015551234", Utc::now() + chrono::Duration::days(1))
            };
            let id = orgs[org].create(new)?.id;
            open.push((org, id.clone()));
            (id, "create")
        } else {
            let (org, id) = open.swap_remove(rng.below(open.len() as u64) as usize);
            if rng.chance(50) {
                orgs[org].cancel(&id, Some(writer))?;
                (id, "cancel")
            } else {
                orgs[org].reschedule(&id, Utc::now() + chrono::Duration::days(2))?;
                (id, "reschedule")
            }
        };
        log_line(&mut log, &format!("op {id} {action} {started} {}", nanos()));
    }
    Ok(())
}

fn read(store: &Store, log_path: &Path, org: Option<&str>, until: &Path) -> Result<(), Error> {
    // Resume after the last change logged (a torn last line never counted).
    let mut since = read_log(log_path)
        .last()
        .map_or(Since::Start, |words| Since::Cursor(words[1].clone()));
    let mut log = WorkLog::open(log_path, true).expect("the reader's log");
    let org = org.map(|id| store.organization(id)).transpose()?;
    loop {
        let finishing = until.exists();
        let wait = Duration::from_millis(500);
        let page = match &org {
            Some(org) => org.changes(&since, 50, wait)?,
            None => store.changes(&since, 50, wait)?,
        };
        for change in &page.changes {
            let line = format!(
                "change {} {} {}",
                change.cursor,
                change.event.callback_id,
                change.event.action.as_str()
            );
            log_line(&mut log, &line);
        }
        if finishing && page.changes.is_empty() {
            return Ok(());
        }
        since = Since::Cursor(page.next_cursor);
    }
}
