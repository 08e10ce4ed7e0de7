//! Races between processes: 4 processes x 2 threads, each thread with its
//! own `Store` on one file, claim, dispatch, cancel, reschedule, complete and
//! fail the same callbacks at random until none is left to claim.
//!
//! Sizes: `RELIABILITY_RACE_CALLBACKS` (1000 here, 5000 in
//! scripts/reliability.sh), `RELIABILITY_RACE_PROCESSES` (4),
//! `RELIABILITY_RACE_THREADS` (2), `RELIABILITY_SEED`.

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::Instant;

use callback_store::{NewCallback, Status, Store};
use callback_store_reliability::audit::{self, assert_none};
use callback_store_reliability::{env_usize, read_log, seed, write_figures};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

const WORKER: &str = env!("CARGO_BIN_EXE_crash-worker");
const ORGS: [&str; 2] = ["org_a", "org_b"];

#[test]
fn racing_processes_claim_every_callback_at_most_once_and_no_busy_error_reaches_a_caller() {
    let callbacks = env_usize("RELIABILITY_RACE_CALLBACKS", 1000);
    let processes = env_usize("RELIABILITY_RACE_PROCESSES", 4);
    let threads = env_usize("RELIABILITY_RACE_THREADS", 2);
    let seed = seed(6_000_002);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("race.db");

    // Due callbacks in two organizations, created before the race.
    let store = Store::open(&db).unwrap();
    let mut ids = String::new();
    let due = Utc::now() - Duration::hours(1);
    let mut made = 0;
    while made < callbacks {
        let org_id = ORGS[made / 100 % 2];
        let org = store.organization(org_id).unwrap();
        let n = (callbacks - made).min(100);
        let batch = (0..n)
            .map(|i| NewCallback::new("+12015551234", due + Duration::seconds(i as i64)))
            .collect();
        for cb in org.create_many(batch).unwrap() {
            ids.push_str(&format!("{org_id} {}\n", cb.id));
        }
        made += n;
    }
    drop(store);
    let ids_path = dir.path().join("ids.txt");
    std::fs::write(&ids_path, ids).unwrap();

    let started = Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|p| {
            let log = dir.path().join(format!("claims-{p}.log"));
            let child = Command::new(WORKER)
                .args(["race", "--db"])
                .arg(&db)
                .arg("--log")
                .arg(&log)
                .arg("--ids")
                .arg(&ids_path)
                .args(["--threads", &threads.to_string()])
                .args(["--seed", &seed.to_string(), "--process", &p.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the crash-worker binary starts");
            (child, log)
        })
        .collect();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut ops, mut busy) = (0, 0);
    let mut failures = Vec::new();
    let mut logs = Vec::new();
    for (p, (child, log)) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The worker prints its summary also when it fails.
        if let Ok(summary) = serde_json::from_str::<Value>(stdout.trim()) {
            ops += summary["ops"].as_u64().unwrap_or(0);
            busy += summary["busy"].as_u64().unwrap_or(0);
            for (code, n) in summary["errors"].as_object().into_iter().flatten() {
                *errors.entry(code.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
            }
        }
        if !out.status.success() {
            failures.push(format!(
                "process {p} ({}): {stdout} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        logs.push(log);
    }
    let seconds = started.elapsed().as_secs_f64();
    // Every claim or dispatch that succeeded, in any process (also one that
    // failed later): no duplicate.
    let mut claimed: HashMap<String, usize> = HashMap::new();
    for log in &logs {
        for words in read_log(log) {
            assert_eq!(words[0], "claimed", "{words:?}");
            *claimed.entry(words[1].clone()).or_insert(0) += 1;
        }
    }
    let duplicates: Vec<String> = claimed
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("{id} claimed {n} times"))
        .collect();

    // The file agrees: valid histories, one claim event per logged claim.
    let store = Store::open(&db).unwrap();
    store.with_connection(audit::integrity).unwrap();
    let snap = store.with_connection(audit::snapshot).unwrap();
    let mismatched: Vec<String> = snap
        .claims()
        .iter()
        .filter(|(id, n)| claimed.get(**id).copied().unwrap_or(0) != **n)
        .map(|(id, n)| {
            format!(
                "{id}: {n} claim events, {:?} logged claims",
                claimed.get(*id)
            )
        })
        .collect();

    write_figures(
        "races",
        &json!({
            "callbacks": callbacks,
            "processes": processes,
            "threads_per_process": threads,
            "operations": ops,
            "claims": claimed.len(),
            "duplicate_claims": duplicates.len(),
            "errors_by_code": errors,
            "busy_errors": busy,
            "failed_processes": failures.len(),
            "dispatched": snap.count(Status::Dispatched),
            "failed": snap.count(Status::Failed),
            "cancelled": snap.count(Status::Cancelled),
            "seed": seed,
            "seconds": seconds,
        }),
    );
    assert_none("callbacks claimed more than once", &duplicates);
    assert_eq!(snap.callbacks.len(), callbacks);
    assert_none("invalid histories", &snap.history_problems());
    assert_none("claims the logs and the file disagree on", &mismatched);
    // Then the workers' own verdicts: a busy error reached a caller, or an
    // error other than a lost race.
    assert_none("racing processes failed", &failures);
    assert_eq!(snap.count(Status::Scheduled), 0, "callbacks left scheduled");
    assert_eq!(
        snap.count(Status::Dispatching),
        0,
        "callbacks left dispatching"
    );
    // A race where nobody lost proves nothing: the threads must collide.
    assert!(
        errors.get("INVALID_TRANSITION").copied().unwrap_or(0) > 0,
        "no thread ever lost a race"
    );
}
