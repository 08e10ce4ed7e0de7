//! The change feed across processes: 4 processes write (create, cancel,
//! reschedule in two organizations, one transaction each) while readers
//! in their own processes follow the feed: two store-wide, one of them
//! killed and started again from its log several times, and one of one
//! organization. Every reader must see every change of its scope exactly
//! once, all in the same order, and that order must be the commit order:
//! a change whose transaction ended before another's began comes first.
//!
//! On PostgreSQL a trigger (installed by the test in its own schema) makes
//! some transactions sleep between taking their event's seq and their
//! commit, so that later seqs commit first: the feed must not skip the
//! late ones (and the test checks that such commits happened).
//!
//! Sizes: `RELIABILITY_FEED_OPS` per writer (150), `RELIABILITY_SEED`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use callback_store::Store;
use callback_store_reliability::{env_usize, figures_name, read_log, seed, write_figures};
use serde_json::json;
use testkit::TestDb;

const WORKER: &str = env!("CARGO_BIN_EXE_feed-worker");
const WRITERS: usize = 4;

/// Sleeps in some transactions after their event took its seq: the event
/// commits after events with later seqs (PostgreSQL only).
const DELAYED_COMMITS: &str = "
    CREATE FUNCTION feed_test_delay() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF random() < 0.25 THEN PERFORM pg_sleep(0.02 + random() * 0.08); END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER feed_test_delay AFTER INSERT ON callback_events
        FOR EACH ROW EXECUTE FUNCTION feed_test_delay();";

struct Op {
    key: (String, String),
    started: u128,
    ended: u128,
}

fn reader(db: &str, log: &Path, org: Option<&str>, until: &Path) -> Child {
    let mut command = Command::new(WORKER);
    command
        .args(["read", "--db", db])
        .arg("--log")
        .arg(log)
        .arg("--until")
        .arg(until);
    if let Some(org) = org {
        command.args(["--org", org]);
    }
    command.spawn().unwrap()
}

/// A reader's log: (cursor, (callback id, action)) in the order read.
fn changes(log: &Path) -> Vec<(String, (String, String))> {
    read_log(log)
        .into_iter()
        .map(|w| (w[1].clone(), (w[2].clone(), w[3].clone())))
        .collect()
}

/// The one integer `sql` answers, on either backend.
fn count(store: &Store, sql: &str) -> i64 {
    if let Some(n) = store.with_postgres(|c| c.query_one(sql, &[]).unwrap().get(0)) {
        return n.unwrap();
    }
    store.with_connection(|c| c.query_row(sql, [], |r| r.get(0)).unwrap())
}

fn wait_for(child: &mut Child, what: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_follower_sees_every_change_once_in_commit_order_across_processes_and_restarts() {
    let ops = env_usize("RELIABILITY_FEED_OPS", 150);
    let seed = seed(15_000_001);
    let test_db = TestDb::new();
    let db = test_db.location();
    let store = Store::open(&db).unwrap();
    let postgres = test_db.is_postgres();
    if postgres {
        store
            .with_postgres(|c| c.batch_execute(DELAYED_COMMITS).unwrap())
            .unwrap()
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let done = path("writers-done");

    let mut steady = reader(&db, &path("steady.log"), None, &done);
    let mut restarted = reader(&db, &path("restarted.log"), None, &done);
    let mut org_a = reader(&db, &path("org_a.log"), Some("org_a"), &done);
    let mut writers: Vec<Child> = (0..WRITERS)
        .map(|w| {
            Command::new(WORKER)
                .args(["write", "--db", &db, "--writer", &format!("w{w}")])
                .arg("--log")
                .arg(path(&format!("writer-{w}.log")))
                .args([
                    "--ops",
                    &ops.to_string(),
                    "--seed",
                    &(seed + w as u64).to_string(),
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    // Kill one reader (SIGKILL) now and then while the writers run, and
    // start it again on its log.
    let mut restarts = 0;
    while writers.iter_mut().any(|w| w.try_wait().unwrap().is_none()) {
        std::thread::sleep(Duration::from_millis(150 + 50 * restarts));
        restarted.kill().unwrap();
        restarted.wait().unwrap();
        restarted = reader(&db, &path("restarted.log"), None, &done);
        restarts += 1;
    }
    for (w, writer) in writers.iter_mut().enumerate() {
        wait_for(writer, &format!("writer {w}"), Duration::from_secs(120));
    }
    std::fs::write(&done, "").unwrap();
    for (child, what) in [
        (&mut steady, "steady"),
        (&mut restarted, "restarted"),
        (&mut org_a, "org_a"),
    ] {
        wait_for(
            child,
            &format!("the {what} reader"),
            Duration::from_secs(120),
        );
    }

    // What the writers committed, with when.
    let mut committed: Vec<Op> = Vec::new();
    for w in 0..WRITERS {
        for words in read_log(&path(&format!("writer-{w}.log"))) {
            committed.push(Op {
                key: (words[1].clone(), words[2].clone()),
                started: words[3].parse().unwrap(),
                ended: words[4].parse().unwrap(),
            });
        }
    }
    assert_eq!(committed.len(), WRITERS * ops);
    let keys: HashSet<&(String, String)> = committed.iter().map(|op| &op.key).collect();
    assert_eq!(
        keys.len(),
        committed.len(),
        "each op is one distinct change"
    );

    // Every change once, in the same order for both store-wide readers.
    let steady_seen = changes(&path("steady.log"));
    let restarted_seen = changes(&path("restarted.log"));
    assert_eq!(
        steady_seen.len(),
        committed.len(),
        "the steady reader missed or repeated changes"
    );
    let seen: HashSet<&(String, String)> = steady_seen.iter().map(|(_, k)| k).collect();
    assert_eq!(seen, keys);
    assert_eq!(
        restarted_seen, steady_seen,
        "a reader killed {restarts} times and resumed from its log saw another feed"
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM callback_events") as usize,
        committed.len()
    );

    // The organization's reader: exactly org_a's changes, in the same order.
    let org_of: HashMap<String, String> = {
        let org = store.organization("org_a").unwrap();
        committed
            .iter()
            .filter(|op| op.key.1 == "create")
            .filter_map(|op| {
                org.get(&op.key.0)
                    .ok()
                    .map(|cb| (cb.id, "org_a".to_owned()))
            })
            .collect()
    };
    let org_a_expected: Vec<&(String, String)> = steady_seen
        .iter()
        .map(|(_, k)| k)
        .filter(|k| org_of.contains_key(&k.0))
        .collect();
    let org_a_seen: Vec<(String, String)> = changes(&path("org_a.log"))
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    assert_eq!(org_a_seen.iter().collect::<Vec<_>>(), org_a_expected);

    // Commit order: no change is read before one that committed before the
    // first began. With ops in feed order, each op's start must not come
    // after the end of any op read later.
    let at: HashMap<&(String, String), &Op> = committed.iter().map(|op| (&op.key, op)).collect();
    let in_feed_order: Vec<&Op> = steady_seen.iter().map(|(_, k)| at[k]).collect();
    let mut earliest_end_after = u128::MAX;
    let mut inversions_checked = 0;
    for op in in_feed_order.iter().rev() {
        assert!(
            earliest_end_after >= op.started,
            "{:?} is read before a change that had committed before it began",
            op.key
        );
        earliest_end_after = earliest_end_after.min(op.ended);
        inversions_checked += 1;
    }

    // On PostgreSQL, some events committed after events with later seqs.
    let late_commits = if postgres {
        count(
            &store,
            "SELECT COUNT(*) FROM (SELECT seq, lag(seq) OVER (ORDER BY feed_position) AS before
             FROM callback_events) o WHERE o.before > o.seq",
        )
    } else {
        0
    };
    if postgres {
        assert!(
            late_commits > 0,
            "no commit came late: the test proved nothing about them"
        );
    }
    write_figures(
        &figures_name("feed", &store),
        &json!({
            "writers": WRITERS,
            "changes": committed.len(),
            "readers": 3,
            "reader_restarts": restarts,
            "late_commits_positioned_after_later_seqs": late_commits,
            "order_checked": inversions_checked,
            "missed": 0,
            "repeated": 0,
        }),
    );
}
