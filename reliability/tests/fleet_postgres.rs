//! Many machines, one database (issue 12), simulated with processes on
//! loopback: 3 `callback-store serve` and 8 `callback-store worker`
//! processes (the real binary) on one PostgreSQL database, placing
//! `RELIABILITY_FLEET_CALLBACKS` (20,000) due callbacks through one fake
//! webhook that logs every call it receives by callback id.
//!
//! Mid-dispatch, one server and two workers are killed with SIGKILL while
//! the webhook holds calls of theirs; the survivors (`--stale-after 5s`)
//! fail the claims the dead left `dispatching` with `recover_stale`. Then,
//! while two clients keep POSTing creations to the two surviving servers,
//! PostgreSQL is stopped, held down for 3 s and started again
//! (`scripts/pg.sh stop`, then `start`: a bare `restart` can be shorter
//! than the servers' 1 s busy timeout, and then requests only wait):
//! requests answer 503 (STORAGE_ERROR, Retry-After) during the outage and
//! 201 after it, with no process restarted; each 503 is sent again with
//! its idempotency key and makes exactly one callback. Every node must
//! stop with status 0 on SIGTERM at the end. At the end every callback is placed at
//! most once (exactly once for every `dispatched` one), every one ends
//! `dispatched` or failed by recovery (`dispatch_interrupted`), and every
//! creation answered 2xx is in the database.
//!
//! The test needs PostgreSQL (`CALLBACK_STORE_TEST_POSTGRES` set, like
//! every PostgreSQL-only test) but restarts a cluster of its own, never the
//! shared one: it starts it with `scripts/pg.sh` on port
//! `CALLBACK_STORE_FLEET_PG_PORT` (55433) under `target/pg-fleet`, works
//! in a fresh schema, and stops the cluster when it ends (its data stays
//! for the next run). It runs `callback-store` from the test's own profile
//! folder (`target/debug`), or `CALLBACK_STORE_BIN`: build it first
//! (`cargo build -p callback-store-cli`; `cargo test --workspace` does).
//! The node logs are kept in `target/reliability/fleet/`.
//!
//! The cluster, the webhook, the nodes and the database reads are in
//! `callback_store_reliability::fleet`; this file is the scenario.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callback_store::{NewCallback, Status, Store, StoreOptions, DISPATCH_INTERRUPTED};
use callback_store_reliability::audit::{self, assert_none};
use callback_store_reliability::fleet::{
    binary, count, counts, repo, stored_requests, wait_for, Cluster, Node, Webhook,
};
use callback_store_reliability::{env_usize, write_figures};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

const SERVERS: usize = 3;
const WORKERS: usize = 8;
/// How long PostgreSQL stays down: well past the servers' busy timeout.
const OUTAGE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------- clients

/// One answer to a creation.
struct Answer {
    sent: Instant,
    answered: Instant,
    status: u16,
    id: Option<String>,
    request: String,
    /// The JSON sent, to send again with the same idempotency key.
    body: String,
    /// For an error: its code and whether Retry-After was there.
    code: Option<String>,
    retry_after: bool,
    transport_error: Option<String>,
}

/// POSTs one creation, `request`, with the idempotency key `fleet-<request>`.
fn post_create(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    request: String,
    body: String,
) -> Answer {
    let sent = Instant::now();
    let answer = http
        .post(format!("{base}/v1/callbacks"))
        .bearer_auth(token)
        .header("idempotency-key", format!("fleet-{request}"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .and_then(|r| {
            let status = r.status().as_u16();
            let retry_after = r.headers().contains_key("retry-after");
            r.text().map(|text| (status, retry_after, text))
        });
    let mut entry = Answer {
        sent,
        answered: Instant::now(),
        status: 0,
        id: None,
        request,
        body,
        code: None,
        retry_after: false,
        transport_error: None,
    };
    match answer {
        Ok((status, retry_after, text)) => {
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            entry.status = status;
            entry.retry_after = retry_after;
            entry.id = value["id"].as_str().map(str::to_owned);
            entry.code = value["code"].as_str().map(str::to_owned);
        }
        Err(e) => entry.transport_error = Some(e.to_string()),
    }
    entry
}

/// POSTs creations of due callbacks to `base` one after the other until
/// `stop`; each with its own idempotency key and `metadata.fleet_request`.
fn create_until(
    base: &str,
    token: &str,
    client_no: usize,
    stop: &AtomicBool,
    created: &AtomicUsize,
) -> Vec<Answer> {
    let http = testkit::client();
    let mut answers = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let request = format!("c{client_no}-{n}");
        let due = (Utc::now() - chrono::Duration::minutes(1))
            .to_rfc3339_opts(SecondsFormat::Micros, true);
        let body = json!({
            "to_number": "+12015550123",
            "scheduled_at": due,
            "metadata": {"fleet_request": request},
        });
        let answer = post_create(&http, base, token, request, body.to_string());
        match answer.status {
            201 => {
                created.fetch_add(1, Ordering::Relaxed);
            }
            0 => std::thread::sleep(Duration::from_millis(100)),
            _ => {}
        }
        answers.push(answer);
    }
    answers
}

// ---------------------------------------------------------------- the test

#[test]
fn a_fleet_on_one_postgres_database_places_every_call_at_most_once_through_kills_and_a_restart() {
    testkit::require_postgres();
    let callbacks = env_usize("RELIABILITY_FLEET_CALLBACKS", 20_000);
    let started = Instant::now();
    let bin = binary();
    let cluster = Cluster::start();
    let db = cluster.fresh_schema();
    let logs = repo().join("target/reliability/fleet");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();

    // The due callbacks, in batches of 500 through the core API.
    let store = Store::open_with(&db, StoreOptions::default()).expect("open the fleet schema");
    let org = store.organization("org_fleet").unwrap();
    let token = store.create_api_key("org_fleet", "fleet").unwrap().token;
    let t = Instant::now();
    let due = Utc::now() - chrono::Duration::minutes(5);
    // Batches of 500 by 4 threads: the time is in round trips.
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let org = &org;
            scope.spawn(move || {
                for first in (thread * 500..callbacks).step_by(4 * 500) {
                    let batch = (first..(first + 500).min(callbacks))
                        .map(|i| {
                            NewCallback::new(
                                format!("+1201555{:04}", i % 10_000),
                                due + chrono::Duration::milliseconds(i as i64),
                            )
                        })
                        .collect();
                    org.create_many(batch).expect("create_many");
                }
            });
        }
    });
    let create_seconds = t.elapsed().as_secs_f64();
    println!("fleet: {callbacks} due callbacks created in {create_seconds:.1} s");

    // 3 servers and 8 workers on the schema, one webhook.
    let webhook = Webhook::start();
    let t_dispatch = Instant::now();
    let mut nodes: Vec<Node> = (0..SERVERS)
        .map(|i| format!("s{i}"))
        .chain((0..WORKERS).map(|i| format!("w{i}")))
        .map(|name| Node::spawn(&bin, &db, &name, &webhook.url, &logs))
        .collect();
    for node in &mut nodes {
        node.wait_started();
    }
    let victims = ["s0", "w0", "w1"];

    // Kill one server and two workers mid-dispatch: once a sixth of the
    // calls are placed, the webhook holds the victims' calls, and each
    // victim is killed as soon as calls of its own ring.
    let reached = wait_for(Duration::from_secs(240), || {
        webhook.placed_count() >= callbacks / 6
    });
    assert!(
        reached,
        "the fleet placed only {} calls in 240 s ({:?})",
        webhook.placed_count(),
        counts(&store)
    );
    for victim in victims {
        webhook.hold(victim, true);
    }
    let mut ringing_at_kill = BTreeMap::new();
    let kill_deadline = Instant::now() + Duration::from_secs(60);
    while ringing_at_kill.len() < victims.len() {
        for node in nodes.iter_mut() {
            let name = node.name.clone();
            let ringing = webhook.ringing(&name);
            if victims.contains(&name.as_str())
                && !ringing_at_kill.contains_key(&name)
                && ringing > 0
            {
                node.child.kill().expect("SIGKILL");
                node.child.wait().unwrap();
                webhook.hold(&name, false);
                ringing_at_kill.insert(name, ringing);
            }
        }
        assert!(
            Instant::now() < kill_deadline,
            "the victims placed no call for 60 s: killed only {ringing_at_kill:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let placed_at_kill = webhook.placed_count();
    let dispatching_at_kill = count(&counts(&store), "dispatching");
    println!(
        "fleet: killed {victims:?} after {placed_at_kill} calls, {:.1} s in; calls ringing: {ringing_at_kill:?}",
        t_dispatch.elapsed().as_secs_f64()
    );

    // Two clients POST creations to the surviving servers throughout an
    // outage of PostgreSQL.
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = nodes
        .iter()
        .filter(|n| n.base.is_some() && !victims.contains(&n.name.as_str()))
        .enumerate()
        .map(|(i, n)| {
            let (base, token) = (n.base.clone().unwrap(), token.clone());
            let (stop, created) = (Arc::clone(&stop), Arc::clone(&created));
            std::thread::spawn(move || create_until(&base, &token, i, &stop, &created))
        })
        .collect();
    assert_eq!(clients.len(), SERVERS - 1);
    // A few creations succeed first, then PostgreSQL goes down for OUTAGE.
    let warmed = wait_for(Duration::from_secs(60), || {
        created.load(Ordering::Relaxed) >= 10
    });
    assert!(warmed, "the servers did not create 10 callbacks in 60 s");
    let due_at_outage = count(&counts(&store), "scheduled");
    let outage_start = Instant::now();
    cluster.pg_sh("stop");
    std::thread::sleep(OUTAGE);
    cluster.pg_sh("start");
    let outage_end = Instant::now();
    println!(
        "fleet: PostgreSQL down for {:.1} s with {due_at_outage} callbacks still due",
        (outage_end - outage_start).as_secs_f64()
    );
    // Requests succeed again, the same processes answering: 10 more.
    let before_end = created.load(Ordering::Relaxed);
    let recovered_in = wait_for(Duration::from_secs(60), || {
        created.load(Ordering::Relaxed) >= before_end + 10
    });
    stop.store(true, Ordering::Relaxed);
    assert!(
        recovered_in,
        "the servers did not create 10 callbacks in 60 s after the outage"
    );
    let answers: Vec<Answer> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client thread"))
        .collect();
    // A 503 does not say whether the creation was made (the commit may
    // have landed before the connection broke): the client sends it again
    // with its idempotency key, and gets the one callback.
    counts(&store); // replaces the test's pooled connections the restart closed
    let stored_before_retry = stored_requests(&store);
    let http = testkit::client();
    let retry_base = nodes
        .iter()
        .find(|n| n.name == "s1")
        .and_then(|n| n.base.clone())
        .expect("s1 serves");
    let retries: Vec<(Answer, bool)> = answers
        .iter()
        .filter(|a| a.status == 503)
        .map(|a| {
            let retry = post_create(
                &http,
                &retry_base,
                &token,
                a.request.clone(),
                a.body.clone(),
            );
            (retry, stored_before_retry.contains(&a.request))
        })
        .collect();
    let survivors_running = nodes
        .iter_mut()
        .filter(|n| !victims.contains(&n.name.as_str()))
        .all(Node::running);

    // Every callback ends: the victims' claims by the survivors' recovery.
    let drained = wait_for(Duration::from_secs(120), || {
        let c = counts(&store);
        count(&c, "scheduled") == 0 && count(&c, "dispatching") == 0
    });
    let dispatch_seconds = t_dispatch.elapsed().as_secs_f64();
    let final_counts = counts(&store);
    let mut stops = BTreeMap::new();
    for node in &mut nodes {
        if node.running() {
            stops.insert(node.name.clone(), node.stop());
        }
    }

    // ---- the audit
    let snap = audit::read(&store).expect("the final snapshot");
    let calls = webhook.take_calls();
    let dials: HashMap<String, usize> = calls
        .placed
        .iter()
        .map(|(id, nodes)| (id.clone(), nodes.len()))
        .collect();
    let twice: Vec<String> = calls
        .placed
        .iter()
        .filter(|(_, n)| n.len() > 1)
        .map(|(id, n)| format!("{id} placed {} times, by {n:?}", n.len()))
        .collect();
    let mut problems = snap.dial_problems(&dials);
    problems.extend(snap.claim_problems());
    problems.extend(snap.history_problems());
    let mut recovered = Vec::new();
    let mut lost = Vec::new();
    for cb in &snap.callbacks {
        let placed = dials.get(&cb.id).copied().unwrap_or(0);
        match cb.status {
            Status::Dispatched if placed == 1 => {}
            Status::Dispatched => {
                lost.push(format!("{} is dispatched, placed {placed} times", cb.id))
            }
            Status::Failed if cb.failure_cause.as_deref() == Some(DISPATCH_INTERRUPTED) => {
                recovered.push(cb)
            }
            _ => problems.push(format!(
                "{} ended {} ({:?}), placed {placed} times",
                cb.id, cb.status, cb.failure_cause
            )),
        }
    }
    // Who left the recovered ones: a victim that placed the call, a
    // survivor whose place_call failed (the outage), or nobody placed it
    // (claimed, or spent, by a victim before it called).
    let survivor_errors: HashSet<String> = nodes
        .iter()
        .filter(|n| !victims.contains(&n.name.as_str()))
        .flat_map(|n| {
            n.log_text()
                .lines()
                .filter_map(|l| l.strip_prefix("callback-store: dispatcher: "))
                .filter_map(|l| l.split(':').next())
                .filter(|id| id.starts_with("cb_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let recoveries_by_node: BTreeMap<String, usize> = nodes
        .iter()
        .map(|n| {
            let k = n
                .log_text()
                .lines()
                .filter(|l| l.starts_with("callback-store: recovery: cb_"))
                .count();
            (n.name.clone(), k)
        })
        .filter(|(_, k)| *k > 0)
        .collect();
    let (mut by_victims, mut by_survivors, mut unplaced, mut unplaced_survivors) = (0, 0, 0, 0);
    for cb in &recovered {
        match calls.placed.get(&cb.id).and_then(|n| n.first()) {
            Some(node) if victims.contains(&node.as_str()) => by_victims += 1,
            Some(node) => {
                by_survivors += 1;
                if !survivor_errors.contains(&cb.id) {
                    problems.push(format!(
                        "{} was placed by {node}, which logged no failure, yet recovered",
                        cb.id
                    ));
                }
            }
            // A survivor logs the refused spend of a claim recovered
            // before its turn; otherwise a victim held it.
            None if survivor_errors.contains(&cb.id) => unplaced_survivors += 1,
            None => unplaced += 1,
        }
    }
    // The creations answered 2xx are all there; none made twice.
    let in_db: HashSet<&str> = snap.callbacks.iter().map(|c| c.id.as_str()).collect();
    let mut requests_in_db: HashMap<&str, usize> = HashMap::new();
    for cb in &snap.callbacks {
        if let Some(r) = cb.metadata.get("fleet_request").and_then(Value::as_str) {
            *requests_in_db.entry(r).or_insert(0) += 1;
        }
    }
    let created: Vec<&Answer> = answers.iter().filter(|a| a.status == 201).collect();
    let missing: Vec<String> = created
        .iter()
        .filter(|a| !a.id.as_deref().is_some_and(|id| in_db.contains(id)))
        .map(|a| {
            format!(
                "request {} answered 201 {:?}, not in the database",
                a.request, a.id
            )
        })
        .collect();
    let doubled: Vec<String> = requests_in_db
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(r, n)| format!("request {r} made {n} callbacks"))
        .collect();
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    let bad_busy: Vec<String> = busy
        .iter()
        .filter(|a| !a.retry_after || a.code.as_deref() != Some("STORAGE_ERROR"))
        .map(|a| {
            format!(
                "503 to {} without Retry-After or STORAGE_ERROR: {:?}",
                a.request, a.code
            )
        })
        .collect();
    let other: Vec<String> = answers
        .iter()
        .filter(|a| a.status != 201 && a.status != 503)
        .map(|a| {
            format!(
                "request {}: {} {:?} {:?}",
                a.request, a.status, a.code, a.transport_error
            )
        })
        .collect();
    let during = |a: &&Answer| a.answered >= outage_start && a.sent <= outage_end;
    let busy_in_outage = busy.iter().filter(|a| during(a)).count();
    let created_after = created.iter().filter(|a| a.sent > outage_end).count();
    let created_before = created.iter().filter(|a| a.answered < outage_start).count();
    let answered_in_db_after_503 = retries.iter().filter(|(_, made)| *made).count();
    let bad_retries: Vec<String> = retries
        .iter()
        .filter(|(r, _)| {
            !matches!(r.status, 200 | 201) || !r.id.as_deref().is_some_and(|id| in_db.contains(id))
        })
        .map(|(r, _)| {
            format!(
                "retry of {}: {} {:?} {:?}",
                r.request, r.status, r.code, r.transport_error
            )
        })
        .collect();
    let outage_answer_ms: Vec<u128> = busy
        .iter()
        .map(|a| (a.answered - a.sent).as_millis())
        .collect();
    let first_201_after_restart_ms = created
        .iter()
        .filter(|a| a.answered > outage_end)
        .map(|a| (a.answered - outage_end).as_millis())
        .min();
    let created_ms_max = created
        .iter()
        .map(|a| (a.answered - a.sent).as_millis())
        .max();
    let figures = json!({
        "callbacks_due": callbacks,
        "callbacks_in_database": snap.callbacks.len(),
        "servers": SERVERS,
        "workers": WORKERS,
        "seconds_creating_the_due_callbacks": create_seconds,
        "seconds_dispatching": dispatch_seconds,
        "seconds_total": started.elapsed().as_secs_f64(),
        "calls_placed": calls.placed.len(),
        "calls_placed_twice": twice.len(),
        "dispatched": snap.count(Status::Dispatched),
        "dispatched_not_placed_once": lost.len(),
        "failed_by_recovery": recovered.len(),
        "recovered_placed_by_victims": by_victims,
        "recovered_claimed_by_victims_never_placed": unplaced,
        "recovered_claimed_by_survivors_never_placed": unplaced_survivors,
        "recovered_placed_by_survivors_whose_completion_failed": by_survivors,
        "recoveries_by_node": recoveries_by_node,
        "killed": victims,
        "calls_ringing_per_victim_at_kill": ringing_at_kill,
        "calls_placed_at_kill": placed_at_kill,
        "dispatching_at_kill": dispatching_at_kill,
        "due_when_postgres_stopped": due_at_outage,
        "outage_seconds": (outage_end - outage_start).as_secs_f64(),
        "creations_sent": answers.len(),
        "creations_201": created.len(),
        "creations_201_before_outage": created_before,
        "creations_201_after_outage": created_after,
        "creations_201_answer_ms_max": created_ms_max,
        "first_201_ms_after_postgres_was_back": first_201_after_restart_ms,
        "creations_503": busy.len(),
        "creations_503_during_outage": busy_in_outage,
        "creations_503_made_anyway_found_before_the_retry": answered_in_db_after_503,
        "creations_503_retried_with_their_key_2xx": retries.len() - bad_retries.len(),
        "creations_503_answer_ms_max": outage_answer_ms.iter().max(),
        "creations_other_answers": other.len(),
        "creations_201_missing": missing.len(),
        "survivors_never_restarted": survivors_running,
        "stops": stops,
        "final_counts": final_counts,
        "garbage_webhook_requests": calls.garbage,
    });
    write_figures("fleet_postgres", &figures);

    assert!(drained, "callbacks left unfinished: {final_counts:?}");
    assert_none("callbacks placed twice", &twice);
    assert_none("dispatched callbacks not placed exactly once", &lost);
    assert_none("audit problems", &problems);
    assert_none("creations answered 201 and lost", &missing);
    assert_none("creations made twice", &doubled);
    assert_none("bad 503 answers", &bad_busy);
    assert_none("503s whose retry with the same key failed", &bad_retries);
    assert_none("answers neither 201 nor 503", &other);
    assert_eq!(
        calls.garbage, 0,
        "the webhook got requests without a callback"
    );
    assert!(
        survivors_running,
        "a surviving node stopped during the test"
    );
    for (name, status) in &stops {
        assert!(
            status.contains("exit status: 0"),
            "{name} did not stop cleanly: {status}"
        );
    }
    assert!(
        by_victims + unplaced > 0,
        "no claim of the killed nodes was left for recovery: the kills proved nothing"
    );
    assert!(
        busy_in_outage > 0,
        "no request answered 503 while PostgreSQL was down"
    );
    assert!(
        created_after > 0,
        "no creation succeeded after PostgreSQL came back"
    );
    assert!(
        created_before > 0,
        "no creation succeeded before the outage"
    );
    assert!(
        due_at_outage > 0,
        "the outage came after the dispatching ended"
    );
    assert_eq!(
        snap.count(Status::Dispatched) + recovered.len(),
        snap.callbacks.len()
    );
}
