//! Races between processes:
//! - 4 processes x 2 threads, each thread with its own `Store` on one file,
//!   claim, dispatch, cancel, reschedule, place, complete and fail the same
//!   callbacks at random until none is left to claim;
//! - one claim handed as id + token to 2 processes that both place it at
//!   once, round after round: exactly one call each time.
//!
//! The backend is the run's (`testkit::TestDb`): an SQLite file, or with
//! `CALLBACK_STORE_TEST_BACKEND=postgres` and `CALLBACK_STORE_TEST_POSTGRES`
//! a fresh schema on that server (figures `races_postgres`,
//! `claim_race_postgres`).
//!
//! Sizes: `RELIABILITY_RACE_CALLBACKS` (1000 here, 5000 in
//! scripts/reliability.sh), `RELIABILITY_RACE_PROCESSES` (4),
//! `RELIABILITY_RACE_THREADS` (2), `RELIABILITY_CLAIM_ROUNDS` (200 here,
//! 1000 in scripts/reliability.sh), `RELIABILITY_SEED`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use callback_store::{Claim, NewCallback, Status, Store};
use callback_store_reliability::audit::{self, assert_none};
use callback_store_reliability::{env_usize, figures_name, read_log, seed, write_figures};
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use testkit::TestDb;

const WORKER: &str = env!("CARGO_BIN_EXE_crash-worker");
const RACER: &str = env!("CARGO_BIN_EXE_claim-racer");
const ORGS: [&str; 2] = ["org_a", "org_b"];

#[test]
fn racing_processes_claim_every_callback_at_most_once_and_no_busy_error_reaches_a_caller() {
    let callbacks = env_usize("RELIABILITY_RACE_CALLBACKS", 1000);
    let processes = env_usize("RELIABILITY_RACE_PROCESSES", 4);
    let threads = env_usize("RELIABILITY_RACE_THREADS", 2);
    let seed = seed(6_000_002);
    let test_db = TestDb::new();
    let db = test_db.location();
    let dir = tempfile::tempdir().unwrap();

    // Due callbacks in two organizations, created before the race.
    let store = Store::open(&db).unwrap();
    let mut ids = String::new();
    let due = Utc::now() - Duration::hours(1);
    let mut made = 0;
    while made < callbacks {
        let org_id = ORGS[made / 100 % 2];
        let org = store.organization(org_id).unwrap();
        let n = (callbacks - made).min(100);
        // A third carry a deadline that passes during the race: claim_due
        // and dispatch must leave them alone once it has.
        let batch = (0..n)
            .map(|i| NewCallback {
                expires_at: (i % 3 == 0)
                    .then(|| Utc::now() + Duration::milliseconds((i as i64 * 37) % 3000)),
                ..NewCallback::new("+12015551234", due + Duration::seconds(i as i64))
            })
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
                .args(["race", "--db", &db])
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
    // failed later): no duplicate. And every call its dialer placed.
    let mut claimed: HashMap<String, usize> = HashMap::new();
    let mut dials: HashMap<String, usize> = HashMap::new();
    for log in &logs {
        for words in read_log(log) {
            let counts = match words[0].as_str() {
                "claimed" => &mut claimed,
                "dialed" => &mut dials,
                _ => panic!("unexpected log line {words:?}"),
            };
            *counts.entry(words[1].clone()).or_insert(0) += 1;
        }
    }
    let duplicates: Vec<String> = claimed
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("{id} claimed {n} times"))
        .collect();

    // The file agrees: valid histories, one claim event per logged claim.
    let store = Store::open(&db).unwrap();
    audit::check_integrity(&store).unwrap();
    let snap = audit::read(&store).unwrap();
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

    // Every dial on a claim spent once, none twice; and with no process
    // killed, no claim spent without its dial.
    let mut claim_problems = snap.dial_problems(&dials);
    claim_problems.extend(snap.claim_problems());
    claim_problems.extend(snap.deadline_problems(&dials));
    claim_problems.extend(
        snap.spent_undialed(&dials)
            .iter()
            .map(|c| format!("{}: spent but never dialed", c.id)),
    );

    write_figures(
        &figures_name("races", &store),
        &json!({
            "backend": store.backend_name(),
            "callbacks": callbacks,
            "processes": processes,
            "threads_per_process": threads,
            "operations": ops,
            "claims": claimed.len(),
            "duplicate_claims": duplicates.len(),
            "calls_dialed": dials.len(),
            "duplicate_dials": dials.values().filter(|n| **n > 1).count(),
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
    assert_none("claims spent or dialed wrongly", &claim_problems);
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

/// A `claim-racer` process and its pipes.
struct Racer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Racer {
    fn spawn(db: &str, dials: &Path, process: usize) -> Racer {
        let mut child = Command::new(RACER)
            .args(["--db", db])
            .arg("--dials")
            .arg(dials)
            .args(["--process", &process.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the claim-racer binary starts");
        Racer {
            stdin: child.stdin.take().expect("piped"),
            stdout: BufReader::new(child.stdout.take().expect("piped")),
            child,
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .expect("the racer reads its commands");
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("the racer answers");
        assert!(
            !line.is_empty(),
            "a racer died: {:?}",
            self.child.try_wait()
        );
        line.trim().to_owned()
    }
}

/// The dial lines of callback `id`: the tag of the process that dialed.
fn dials_of(log: &Path, id: &str) -> Vec<String> {
    read_log(log)
        .into_iter()
        .filter(|w| w.len() == 3 && w[0] == "dialed" && w[1] == id)
        .map(|w| w[2].clone())
        .collect()
}

#[test]
fn one_claim_placed_from_two_processes_at_once_places_exactly_one_call() {
    let rounds = env_usize("RELIABILITY_CLAIM_ROUNDS", 200);
    let seed = seed(6_000_003);
    let test_db = TestDb::new();
    let db = test_db.location();
    let dir = tempfile::tempdir().unwrap();
    let dial_log = dir.path().join("dials.log");
    let store = Store::open(&db).unwrap();
    let org = store.organization("org_claims").unwrap();
    let mut racers = [
        Racer::spawn(&db, &dial_log, 0),
        Racer::spawn(&db, &dial_log, 1),
    ];
    let started = Instant::now();
    let mut problems = Vec::new();
    let (mut both_claimed, mut lost_at_claim, mut lost_at_place) = (0, 0, 0);
    let mut wins = [0; 2];
    for round in 0..rounds {
        // The claim comes from dispatch in even rounds, claim_due in odd ones.
        let claim: Claim = if round % 2 == 0 {
            let cb = org
                .create(NewCallback::new(
                    "+12015551234",
                    Utc::now() + Duration::days(1),
                ))
                .unwrap();
            org.dispatch(&cb.id).unwrap()
        } else {
            org.create(NewCallback::new(
                "+12015551234",
                Utc::now() - Duration::minutes(1),
            ))
            .unwrap();
            let mut claims = store.claim_due(Utc::now(), 10).unwrap();
            assert_eq!(claims.len(), 1, "round {round}: one callback is due");
            claims.remove(0)
        };
        let (id, token) = (claim.id(), claim.token());
        // Who is told first alternates with the seed and the round.
        let first = ((seed as usize) ^ round) % 2;
        let order = [first, 1 - first];
        // Three rounds in four, both hold the live claim before either
        // places it: then only place_call's guarded spend can stop the
        // second call. In the fourth, each claims and places at once.
        let together = round % 4 != 3;
        if together {
            for &p in &order {
                racers[p].send(&format!("claim {id} {token}"));
            }
            for racer in &mut racers {
                let answer = racer.answer();
                assert_eq!(answer, "claimed", "round {round}: a live claim was refused");
            }
            both_claimed += 1;
            for &p in &order {
                racers[p].send("place");
            }
        } else {
            for &p in &order {
                racers[p].send(&format!("claim-place {id} {token}"));
            }
        }
        let answers = [racers[0].answer(), racers[1].answer()];
        let winners: Vec<usize> = (0..2)
            .filter(|&p| answers[p].starts_with("placed"))
            .collect();
        let dialed = dials_of(&dial_log, id);
        let spends = org
            .history(id)
            .unwrap()
            .iter()
            .filter(|e| e.action.as_str() == "place_call")
            .count();
        let status = org.get(id).unwrap().status;
        match winners.as_slice() {
            [w] if answers[*w] == "placed dispatched"
                && answers[1 - w] == "refused INVALID_TRANSITION"
                && dialed == [format!("p{w}")]
                && spends == 1
                && status == Status::Dispatched =>
            {
                wins[*w] += 1;
                if together {
                    lost_at_place += 1;
                } else {
                    lost_at_claim += 1;
                }
            }
            _ => problems.push(format!(
                "round {round} ({}): answers {answers:?}, dials by {dialed:?}, {spends} spends, {status}",
                if together { "both claimed" } else { "claim-place" }
            )),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    for mut racer in racers {
        drop(racer.stdin);
        let status = racer.child.wait().unwrap();
        assert!(status.success(), "a racer failed: {status}");
    }
    write_figures(
        &figures_name("claim_race", &store),
        &json!({
            "backend": store.backend_name(),
            "rounds": rounds,
            "processes": 2,
            "rounds_both_held_the_claim": both_claimed,
            "losers_refused_by_place_call": lost_at_place,
            "rounds_claim_and_place_at_once": rounds - both_claimed,
            "wins_by_process": wins,
            "rounds_with_one_call": wins[0] + wins[1],
            "rounds_failed": problems.len(),
            "seed": seed,
            "seconds": seconds,
        }),
    );
    assert_none("rounds without exactly one call", &problems);
    assert_eq!(wins[0] + wins[1], rounds);
    // The loser of a claim-place round may lose at claim_by_token or at the
    // spend; both answer INVALID_TRANSITION, counted together.
    assert_eq!(lost_at_place + lost_at_claim, rounds);
    assert_eq!(
        read_log(&dial_log).len(),
        rounds,
        "one dial per round in all"
    );
}
