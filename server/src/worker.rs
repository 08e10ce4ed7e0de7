//! The background loops of a server or a worker process: the webhook
//! dispatcher, which claims due callbacks and places their calls, and stale
//! recovery, which fails callbacks left `dispatching` by a process that
//! died. [`run_workers`] runs both until shutdown. Each round of either loop
//! also sweeps the callbacks still `scheduled` at their deadline
//! (`expires_at`), failing them with cause `expired`: `claim_due` expires
//! only those it meets, the sweep reaches the rest (outside their calling
//! window, say).

use std::future::Future;
use std::time::Duration;

use callback_store::{Callback, Status, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::webhook::{self, Webhook};

/// How the dispatcher claims.
#[derive(Debug, Clone)]
pub struct DispatcherOptions {
    /// How often due callbacks are looked for when the last claim was not full.
    pub interval: Duration,
    /// How many callbacks one claim takes; their calls are placed concurrently.
    pub batch: u32,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        DispatcherOptions {
            interval: Duration::from_secs(1),
            batch: 16,
        }
    }
}

/// Which background loops [`run_workers`] runs, and how.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Where calls are placed: the dispatcher claims due callbacks and POSTs
    /// each to it. None: no dispatcher runs.
    pub webhook: Option<Webhook>,
    pub dispatcher: DispatcherOptions,
    /// Callbacks `dispatching` for longer than this are failed with cause
    /// `dispatch_interrupted`. None: no recovery runs.
    pub stale_after: Option<Duration>,
    /// How often recovery runs.
    pub recover_interval: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            webhook: None,
            dispatcher: DispatcherOptions::default(),
            stale_after: Some(Duration::from_secs(600)),
            recover_interval: Duration::from_secs(60),
        }
    }
}

/// Runs the dispatcher (with a webhook) and stale recovery (with
/// `stale_after`) until `shutdown` completes; then stops claiming, and
/// returns once every call being placed, every task of `tasks`, has been
/// recorded. The dispatcher places its calls as tasks of `tasks`: give it
/// a `TaskTracker::new()`, or [`crate::Api::tasks`] to wait for the calls
/// of `POST …/dispatch` as well.
pub async fn run_workers(
    store: Store,
    options: WorkerOptions,
    tasks: TaskTracker,
    shutdown: impl Future<Output = ()> + Send,
) {
    let stop = CancellationToken::new();
    let mut loops = Vec::new();
    if let Some(webhook) = options.webhook {
        loops.push(tokio::spawn(run_dispatcher(
            store.clone(),
            webhook,
            options.dispatcher,
            tasks.clone(),
            stop.clone(),
        )));
    }
    if let Some(stale_after) = options.stale_after {
        loops.push(tokio::spawn(run_recovery(
            store.clone(),
            stale_after,
            options.recover_interval,
            stop.clone(),
        )));
    }
    shutdown.await;
    stop.cancel();
    for task in loops {
        if let Err(e) = task.await {
            log(&format!("a background loop failed: {e}"));
        }
    }
    tasks.close();
    tasks.wait().await;
    // Dropping the last handle is safe here: the core drops a PostgreSQL
    // pool on a thread of its own.
    drop(store);
}

/// Claims due callbacks and places them through the webhook until
/// `shutdown`; calls already placed are recorded before it returns. Each
/// round first expires the overdue callbacks.
pub async fn run_dispatcher(
    store: Store,
    webhook: Webhook,
    options: DispatcherOptions,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let batch = options.batch.clamp(1, callback_store::MAX_CLAIM);
    while !shutdown.is_cancelled() {
        expire_overdue(&store).await;
        let claimed = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.claim_due(store.now(), batch)).await
        };
        let claimed = match claimed {
            Ok(Ok(claimed)) => claimed,
            Ok(Err(e)) => {
                log(&format!("dispatcher: claim_due failed: {e}"));
                Vec::new()
            }
            Err(e) => {
                log(&format!("dispatcher: claim_due task failed: {e}"));
                Vec::new()
            }
        };
        if let Some(metrics) = webhook.metrics() {
            metrics.claimed(claimed.len());
        }
        let full = claimed.len() as u32 == batch;
        let handles: Vec<_> = claimed
            .into_iter()
            .map(|claim| {
                let (store, webhook) = (store.clone(), webhook.clone());
                let id = claim.id().to_owned();
                let handle = tasks
                    .spawn(async move { webhook::place_and_record(&store, &webhook, claim).await });
                (id, handle)
            })
            .collect();
        for (id, handle) in handles {
            match handle.await {
                Ok(Ok(done)) => log_outcome(&done),
                // The store's message says which step refused: the spend of a
                // stale claim (nobody called) or the recording of the outcome.
                Ok(Err(e)) => log(&format!("dispatcher: {id}: {}", e.error)),
                Err(e) => log(&format!("dispatcher: placing {id} failed: {e}")),
            }
        }
        if full {
            continue; // more may be due already
        }
        tokio::select! {
            _ = tokio::time::sleep(options.interval) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Every `interval`, expires the overdue callbacks and fails those
/// `dispatching` for longer than `stale_after` (cause
/// `dispatch_interrupted`), until `shutdown`.
pub async fn run_recovery(
    store: Store,
    stale_after: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        expire_overdue(&store).await;
        let result = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.recover_stale(store.now(), stale_after)).await
        };
        match result {
            Ok(Ok(recovered)) => {
                for callback in recovered {
                    log(&format!(
                        "recovery: {} was dispatching for over {} s: failed, {}",
                        callback.id,
                        stale_after.as_secs(),
                        callback_store::DISPATCH_INTERRUPTED
                    ));
                }
            }
            Ok(Err(e)) => log(&format!("recovery: recover_stale failed: {e}")),
            Err(e) => log(&format!("recovery: task failed: {e}")),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// How many overdue callbacks one sweep transaction fails: short
/// transactions, so that claims and requests are not kept waiting.
const EXPIRE_BATCH: u32 = 500;

/// Fails every callback still `scheduled` at its deadline (cause
/// `expired`), a batch at a time while full batches come back. Another
/// process sweeping at the same time is harmless: each callback expires
/// once.
async fn expire_overdue(store: &Store) {
    loop {
        let result = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.expire_overdue(store.now(), EXPIRE_BATCH))
                .await
        };
        match result {
            Ok(Ok(expired)) => {
                for callback in &expired {
                    log(&format!(
                        "expiry: {} was still scheduled at its deadline {}: failed, {}",
                        callback.id,
                        callback
                            .expires_at
                            .map_or_else(|| "?".to_owned(), callback_store::format_timestamp),
                        callback_store::EXPIRED
                    ));
                }
                if expired.len() < EXPIRE_BATCH as usize {
                    return;
                }
            }
            Ok(Err(e)) => return log(&format!("expiry: expire_overdue failed: {e}")),
            Err(e) => return log(&format!("expiry: task failed: {e}")),
        }
    }
}

fn log_outcome(callback: &Callback) {
    match callback.status {
        Status::Dispatched => log(&format!(
            "dispatcher: {} dispatched, session {}",
            callback.id,
            callback.created_session_id.as_deref().unwrap_or("?")
        )),
        _ => log(&format!(
            "dispatcher: {} failed: {}",
            callback.id,
            callback.failure_cause.as_deref().unwrap_or("?")
        )),
    }
}

pub(crate) fn log(line: &str) {
    eprintln!("callback-store: {line}");
}
