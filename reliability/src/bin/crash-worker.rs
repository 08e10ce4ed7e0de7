//! The worker processes of the reliability suites.
//!
//! - `crash-worker churn --db F --log L --seed S --run R [--ring-us U]`: works
//!   on the store forever (batches of creations, claims, calls placed
//!   through `Store::place_call` and, 4 at a time, `dispatch_due_with`,
//!   cancels, reschedules) until it is killed.
//!   Its dialer (`LoggedDialer`, the one `place_call` invokes once the claim
//!   is spent) appends `dialed <id> r<R>` to the log and fsyncs it, then
//!   rings for up to U microseconds (default 5000) before answering or not,
//!   so that kills land between a spent claim and its completion too. After
//!   a batch commits it appends `committed <batch> <size>`. Prints `ready`
//!   once the store is open.
//! - `crash-worker race --db F --log L --ids I --threads T --seed S --process P`:
//!   T threads, two by two sharing a `Store` on the file (so that writes
//!   race both across stores and inside one store's group commits), claim, dispatch,
//!   cancel, reschedule, complete and fail the callbacks listed in I
//!   (`<organization> <id>` per line) at random until none is left to claim;
//!   a claim is mostly placed through `place_call` (its dialer logs
//!   `dialed <id> p<P>`), sometimes finished by hand with its token.
//!   Logs `claimed <id>` for every successful claim or dispatch and prints a
//!   JSON summary with the errors counted by code. A busy error reaching the
//!   caller, or any error but INVALID_TRANSITION, makes it exit with 1.
//! - `crash-worker figures DIR OUT`: merges the suites' `DIR/*.json` into OUT.
//!
//! `--db` is what `Store::open` takes: an SQLite file or a `postgres://` URL.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use callback_store::{
    Claim, DispatchOptions, Error, ErrorCode, ListQuery, NewCallback, Order, Organization, Status,
    Store,
};
use callback_store_reliability::{LoggedDialer, Rng, WorkLog};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

const ORGS: [&str; 2] = ["org_a", "org_b"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("churn") => churn(&options(&args[1..])),
        Some("race") => race(&options(&args[1..])),
        Some("figures") if args.len() == 3 => figures(Path::new(&args[1]), Path::new(&args[2])),
        _ => Err("usage: crash-worker churn|race --key value… | figures DIR OUT".to_owned()),
    };
    if let Err(message) = result {
        eprintln!("crash-worker: {message}");
        exit(1);
    }
}

fn options(args: &[String]) -> HashMap<String, String> {
    args.chunks(2)
        .map(|pair| {
            let key = pair[0].trim_start_matches("--").to_owned();
            let value = pair.get(1).cloned().unwrap_or_default();
            (key, value)
        })
        .collect()
}

fn opt<'a>(options: &'a HashMap<String, String>, key: &str) -> Result<&'a str, String> {
    options
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("--{key} is required"))
}

fn number(options: &HashMap<String, String>, key: &str) -> Result<u64, String> {
    opt(options, key)?
        .parse()
        .map_err(|e| format!("--{key}: {e}"))
}

fn fail(what: &str, e: Error) -> String {
    format!("{what}: {} {e}", e.code())
}

// ---------------------------------------------------------------- churn

fn churn(options: &HashMap<String, String>) -> Result<(), String> {
    let db = PathBuf::from(opt(options, "db")?);
    let log_path = Path::new(opt(options, "log")?);
    let open_log =
        || WorkLog::open(log_path, true).map_err(|e| format!("cannot open the log: {e}"));
    let mut log = open_log()?;
    let seed = number(options, "seed")?;
    let mut rng = Rng::new(seed);
    let run = number(options, "run")?;
    let ring = match options.get("ring-us") {
        Some(_) => number(options, "ring-us")?,
        None => 5_000,
    };
    // 80% of the calls are answered; the others fail as unanswered.
    let dialer = LoggedDialer::new(
        open_log()?,
        Rng::new(!seed),
        &format!("r{run}"),
        StdDuration::from_micros(ring),
        80,
    );
    let store = Store::open(&db).map_err(|e| fail("open", e))?;
    let orgs: Vec<Organization> = ORGS
        .iter()
        .map(|o| store.organization(o))
        .collect::<Result<_, _>>()
        .map_err(|e| fail("organization", e))?;
    println!("ready");
    let mut batches = 0u64;
    loop {
        let org = &orgs[rng.below(2) as usize];
        let now = Utc::now();
        match rng.below(100) {
            0..=34 => {
                batches += 1;
                let batch = format!("r{run}-b{batches}");
                let size = rng.between(1, 8);
                let items = (0..size)
                    .map(|item| churn_callback(&mut rng, &batch, size, item))
                    .collect();
                org.create_many(items).map_err(|e| fail("create_many", e))?;
                log.line(&format!("committed {batch} {size}"))
                    .map_err(|e| e.to_string())?;
            }
            35..=46 => {
                // Calls placed 4 at a time: their spends and completions
                // share commits (group commit), and kills land inside groups.
                let limit = rng.between(1, 8) as u32;
                let options = DispatchOptions { concurrency: 4 };
                let done = store
                    .dispatch_due_with(&dialer, now, limit, &options)
                    .map_err(|e| fail("dispatch_due_with", e));
                if let Some(e) = dialer.take_error() {
                    return Err(e);
                }
                done?;
            }
            47..=59 => {
                let limit = rng.between(1, 4) as u32;
                for claim in store
                    .claim_due(now, limit)
                    .map_err(|e| fail("claim_due", e))?
                {
                    place(&store, &dialer, &claim)?;
                }
            }
            60..=66 => {
                if let Some(cb) = pick_scheduled(org, &mut rng)? {
                    match org.dispatch(&cb.id) {
                        Ok(claim) => place(&store, &dialer, &claim)?,
                        // The only worker on the file: a refusal can only be
                        // the deadline, which must then have passed.
                        Err(e)
                            if e.code() == ErrorCode::InvalidTransition
                                && cb.expires_at.is_some_and(|d| d <= Utc::now()) => {}
                        Err(e) => return Err(fail("dispatch", e)),
                    }
                }
            }
            67..=69 => {
                store
                    .expire_overdue(now, rng.between(1, 8) as u32)
                    .map_err(|e| fail("expire_overdue", e))?;
            }
            70..=84 => {
                if let Some(cb) = pick_scheduled(org, &mut rng)? {
                    org.cancel(&cb.id, Some("churn"))
                        .map_err(|e| fail("cancel", e))?;
                }
            }
            _ => {
                if let Some(cb) = pick_scheduled(org, &mut rng)? {
                    // Mostly still due, sometimes later (then only dispatch
                    // takes it); never at or past its deadline, which the
                    // store refuses.
                    let minutes = rng.between(0, 120) as i64 - 100;
                    let at = now + Duration::minutes(minutes);
                    if cb.expires_at.is_none_or(|d| at < d) {
                        org.reschedule(&cb.id, at)
                            .map_err(|e| fail("reschedule", e))?;
                    }
                }
            }
        }
    }
}

fn churn_callback(rng: &mut Rng, batch: &str, size: u64, item: u64) -> NewCallback {
    let mut metadata = serde_json::Map::new();
    metadata.insert("batch".into(), json!(batch));
    metadata.insert("batch_size".into(), json!(size));
    metadata.insert("item".into(), json!(item));
    let minutes = rng.between(0, 60) as i64 - 50;
    let scheduled_at = Utc::now() + Duration::minutes(minutes);
    // A third have a deadline, some already past: claim_due and the sweep
    // expire those, and the audit checks none was claimed at or after it.
    let expires_at =
        (rng.below(3) == 0).then(|| scheduled_at + Duration::seconds(rng.between(1, 3600) as i64));
    NewCallback {
        reason: Some(format!("churn {batch} item {item}")),
        metadata,
        expires_at,
        ..NewCallback::new(format!("+1201555{:04}", rng.below(10_000)), scheduled_at)
    }
}

/// A scheduled callback of `org`, if any, among the next ones due.
fn pick_scheduled(
    org: &Organization,
    rng: &mut Rng,
) -> Result<Option<callback_store::Callback>, String> {
    let page = org
        .list(&ListQuery {
            status: Some(Status::Scheduled),
            order: Order::ScheduledAsc,
            limit: 20,
            ..ListQuery::default()
        })
        .map_err(|e| fail("list", e))?;
    if page.callbacks.is_empty() {
        return Ok(None);
    }
    let i = rng.below(page.callbacks.len() as u64) as usize;
    Ok(page.callbacks.into_iter().nth(i))
}

/// Places a claim's call: `place_call` spends the claim, then the dialer
/// logs the dial and rings, then the callback is completed or failed. The
/// only worker on the file, this never loses a claim: any error is a bug.
fn place(store: &Store, dialer: &LoggedDialer, claim: &Claim) -> Result<(), String> {
    let done = store
        .place_call(dialer, claim)
        .map_err(|e| fail("place_call", e));
    if let Some(e) = dialer.take_error() {
        return Err(e);
    }
    match done?.status {
        Status::Dispatched | Status::Failed => Ok(()),
        other => Err(format!("place_call left {} {other}", claim.id())),
    }
}

// ---------------------------------------------------------------- race

/// What one racing thread saw.
struct Tally {
    /// When the call being answered started (roughly: the end of the last).
    mark: Instant,
    ops: u64,
    claimed: u64,
    errors: BTreeMap<String, u64>,
    busy: u64,
    unexpected: Vec<String>,
}

impl Tally {
    /// Counts an answer; true when it succeeded.
    fn new() -> Self {
        Tally {
            mark: Instant::now(),
            ops: 0,
            claimed: 0,
            errors: BTreeMap::new(),
            busy: 0,
            unexpected: Vec::new(),
        }
    }

    fn note<T>(&mut self, what: &str, answer: &Result<T, Error>) -> bool {
        self.ops += 1;
        let took = std::mem::replace(&mut self.mark, Instant::now()).elapsed();
        let Err(e) = answer else { return true };
        *self.errors.entry(e.code().as_str().to_owned()).or_insert(0) += 1;
        if e.is_busy() {
            self.busy += 1;
        }
        if e.code() != ErrorCode::InvalidTransition && self.unexpected.len() < 10 {
            self.unexpected.push(format!(
                "{what}: {} {e} (after {} ms)",
                e.code(),
                took.as_millis()
            ));
        }
        false
    }
}

fn race(options: &HashMap<String, String>) -> Result<(), String> {
    let db = PathBuf::from(opt(options, "db")?);
    let log_path = Path::new(opt(options, "log")?);
    let open_log =
        || WorkLog::open(log_path, false).map_err(|e| format!("cannot open the log: {e}"));
    let log = Arc::new(Mutex::new(open_log()?));
    let ids_text = std::fs::read_to_string(opt(options, "ids")?)
        .map_err(|e| format!("cannot read the ids: {e}"))?;
    let ids: Arc<Vec<(String, String)>> = Arc::new(
        ids_text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(o, i)| (o.to_owned(), i.to_owned()))
            .collect(),
    );
    let threads = number(options, "threads")?;
    let seed = number(options, "seed")?;
    let process = number(options, "process")?;
    // One dialer for the process's threads, as one dialing service; it
    // answers at once: the race is about who places, not about timing.
    let dialer = Arc::new(LoggedDialer::new(
        open_log()?,
        Rng::new(seed ^ (process << 32)),
        &format!("p{process}"),
        StdDuration::ZERO,
        80,
    ));
    let started = Instant::now();
    let stores = (0..threads.div_ceil(2))
        .map(|_| Store::open(&db).map_err(|e| fail("open", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (ids, log) = (Arc::clone(&ids), Arc::clone(&log));
            let store = stores[(t / 2) as usize].clone();
            let dialer = Arc::clone(&dialer);
            let rng = Rng::new(seed ^ (process << 16) ^ t);
            std::thread::spawn(move || race_thread(&store, &ids, &log, &dialer, rng))
        })
        .collect();
    let mut total = Tally::new();
    for handle in handles {
        let tally = handle
            .join()
            .map_err(|_| "a racing thread panicked".to_owned())??;
        total.ops += tally.ops;
        total.claimed += tally.claimed;
        total.busy += tally.busy;
        for (code, n) in tally.errors {
            *total.errors.entry(code).or_insert(0) += n;
        }
        total.unexpected.extend(tally.unexpected);
    }
    if let Some(e) = dialer.take_error() {
        total.unexpected.push(e);
    }
    println!(
        "{}",
        json!({
            "process": process,
            "ops": total.ops,
            "claimed": total.claimed,
            "errors": total.errors,
            "busy": total.busy,
            "unexpected": total.unexpected,
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    if total.busy > 0 {
        return Err(format!("{} busy errors reached a caller", total.busy));
    }
    if !total.unexpected.is_empty() {
        return Err(format!("unexpected errors: {:?}", total.unexpected));
    }
    Ok(())
}

fn race_thread(
    store: &Store,
    ids: &[(String, String)],
    log: &Mutex<WorkLog>,
    dialer: &LoggedDialer,
    mut rng: Rng,
) -> Result<Tally, String> {
    let mut tally = Tally::new();
    let claimed = |tally: &mut Tally, claim: &Claim| -> Result<(), String> {
        tally.claimed += 1;
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        log.line(&format!("claimed {}", claim.id()))
            .map_err(|e| e.to_string())
    };
    // A claim is mostly placed; sometimes its holder reports an outcome by
    // hand with its token, as a dialer outside the store would.
    let finish = |tally: &mut Tally, rng: &mut Rng, claim: &Claim| {
        if rng.chance(75) {
            tally.note("place_call", &store.place_call(dialer, claim));
            return;
        }
        let org = store
            .organization(&claim.callback().organization_id)
            .expect("valid id");
        let token = Some(claim.token());
        if rng.chance(80) {
            let answer = org.complete_dispatch(claim.id(), &format!("sess_{}", claim.id()), token);
            tally.note("complete_dispatch", &answer);
        } else {
            let answer = org.fail_dispatch(claim.id(), "no answer", token);
            tally.note("fail_dispatch", &answer);
        }
    };
    // Finishing someone else's claim: without a token (an operator), or
    // with a forged one, which must always lose.
    let forged = "0123456789abcdef0123456789abcdef";
    // Bounded, so that a store that never runs out of work fails the suite
    // instead of hanging it.
    for _ in 0..ids.len() * 20 + 1000 {
        let (org_id, id) = &ids[rng.below(ids.len() as u64) as usize];
        let org = store
            .organization(org_id)
            .map_err(|e| fail("organization", e))?;
        let now = Utc::now();
        tally.mark = Instant::now();
        match rng.below(100) {
            0..=39 => {
                let answer = store.claim_due(now, rng.between(1, 4) as u32);
                if tally.note("claim_due", &answer) {
                    let batch = answer.expect("checked");
                    if batch.is_empty() {
                        // Everything due is taken, and nothing goes back to
                        // scheduled: this thread's work is done.
                        return Ok(tally);
                    }
                    for claim in &batch {
                        claimed(&mut tally, claim)?;
                        finish(&mut tally, &mut rng, claim);
                    }
                }
            }
            40..=59 => {
                let answer = org.dispatch(id);
                if tally.note("dispatch", &answer) {
                    let claim = answer.expect("checked");
                    claimed(&mut tally, &claim)?;
                    finish(&mut tally, &mut rng, &claim);
                }
            }
            60..=74 => {
                tally.note("cancel", &org.cancel(id, Some("race")));
            }
            75..=89 => {
                let minutes = rng.between(1, 600) as i64;
                let answer = org.reschedule(id, now - Duration::minutes(minutes));
                tally.note("reschedule", &answer);
            }
            90..=94 => {
                let token = rng.chance(50).then_some(forged);
                let answer = org.complete_dispatch(id, "sess_stolen", token);
                tally.note("complete_dispatch", &answer);
            }
            _ => {
                let token = rng.chance(50).then_some(forged);
                tally.note("fail_dispatch", &org.fail_dispatch(id, "stolen", token));
            }
        }
    }
    Err("a thread ran out of steps before the callbacks ran out".to_owned())
}

// ---------------------------------------------------------------- figures

fn figures(dir: &Path, out: &Path) -> Result<(), String> {
    let mut merged = serde_json::Map::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p != out)
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        merged.insert(name, value);
    }
    let text = serde_json::to_string_pretty(&Value::Object(merged)).map_err(|e| e.to_string())?;
    std::fs::write(out, &text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("{text}");
    Ok(())
}
