//! The background loops of a server: the webhook dispatcher, which claims
//! due callbacks and places their calls, and stale recovery, which fails
//! callbacks left `dispatching` by a process that died.

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

/// Claims due callbacks and places them through the webhook until
/// `shutdown`; calls already placed are recorded before it returns.
pub async fn run_dispatcher(
    store: Store,
    webhook: Webhook,
    options: DispatcherOptions,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let batch = options.batch.clamp(1, callback_store::MAX_CLAIM);
    while !shutdown.is_cancelled() {
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

/// Every `interval`, fails the callbacks `dispatching` for longer than
/// `stale_after` (cause `dispatch_interrupted`), until `shutdown`.
pub async fn run_recovery(
    store: Store,
    stale_after: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
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
