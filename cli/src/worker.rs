//! `worker`: the webhook dispatcher and stale recovery of `serve`, without
//! the HTTP API, until SIGINT or SIGTERM; and the flags both commands share.

use std::future::Future;
use std::time::Duration;

use callback_store::Error;
use callback_store_http::{
    serve_metrics, DispatcherOptions, Metrics, TaskTracker, Webhook, WorkerOptions,
};
use clap::{Arg, Args};

use crate::{when, Failure, Global};

/// The webhook, dispatcher and recovery flags of `serve` and `worker`.
#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Place calls by POSTing each due callback's JSON to this URL; a 2xx JSON
    /// answer with a created_session_id completes it, anything else fails it.
    #[arg(long, visible_alias = "webhook-url", value_name = "URL")]
    pub dispatch_webhook: Option<String>,
    /// How long the webhook may take to answer.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub webhook_timeout: String,
    /// How often the dispatcher looks for due callbacks.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub dispatch_interval: String,
    /// How many due callbacks one claim takes (their calls run concurrently).
    #[arg(long, default_value_t = 16)]
    pub dispatch_batch: u32,
    /// Fail callbacks left `dispatching` longer than this (dispatch_interrupted).
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub stale_after: String,
    /// How often stale callbacks are looked for.
    #[arg(long, default_value = "1m", value_name = "DURATION")]
    pub recover_interval: String,
    /// Do not fail stale callbacks (another process does it).
    #[arg(long)]
    pub no_recovery: bool,
}

/// `worker`'s flags: the dispatcher's, and its metrics port.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub dispatch: DispatchArgs,
    /// Serve GET /metrics on this address (like 127.0.0.1:9464; port 0 picks a
    /// free port): this worker's claims, call outcomes and webhook
    /// latencies, its busy retries, and the store's gauges. It takes a
    /// bearer token as `serve`'s /metrics does: an operator key sees
    /// everything, an organization's key its own organization's gauges.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
}

/// `worker`'s spelling of `--dispatch-webhook`: `--webhook-url`, required
/// (a worker with nothing to call is a mistake); the other name still works.
pub fn required_webhook_url(arg: Arg) -> Arg {
    arg.required(true)
        .long("webhook-url")
        .alias(None)
        .visible_alias("dispatch-webhook")
}

pub fn run(global: &Global, args: WorkerArgs) -> Result<(), Failure> {
    let WorkerArgs {
        dispatch: args,
        metrics_addr,
    } = args;
    let mut options = options(&args)?;
    let metrics_addr = metrics_addr
        .map(|text| crate::serve::address("metrics_addr", &text))
        .transpose()?;
    let metrics = Metrics::new();
    if let Some(webhook) = &mut options.webhook {
        *webhook = webhook.clone().with_metrics(metrics.clone());
    }
    let Some(webhook) = &options.webhook else {
        // clap requires the flag; this is for a caller that bypasses it.
        return Err(Error::validation("dispatch_webhook", "worker needs --webhook-url URL").into());
    };
    let recovery = match options.stale_after {
        Some(_) => format!(
            "failing callbacks dispatching over {} every {}",
            args.stale_after, args.recover_interval
        ),
        None => "off".to_owned(),
    };
    let store = crate::commands::open(global)?;
    let start = format!(
        "callback-store: worker on {}: placing due calls through {}, polling every {} ({} at a time); recovery: {recovery}",
        crate::database::shown(&global.db),
        webhook.url(),
        args.dispatch_interval,
        options.dispatcher.batch,
    );
    runtime()?.block_on(async move {
        // Handlers first: a SIGTERM right after the start line stops it cleanly.
        let signal = shutdown_signal()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let exporter = match metrics_addr {
            Some(address) => {
                let (listener, local) = crate::serve::listen(address).await?;
                eprintln!("callback-store: metrics on http://{local}/metrics");
                let mut stopped = stopped;
                let until = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                let served = serve_metrics(listener, store.clone(), metrics, until);
                Some(tokio::spawn(served))
            }
            None => None,
        };
        eprintln!("{start}");
        callback_store_http::run_workers(store, options, TaskTracker::new(), signal).await;
        // The port answers until the last call is recorded, then closes.
        let _ = stop.send(true);
        if let Some(exporter) = exporter {
            match exporter.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("callback-store: the metrics port failed: {e}"),
                Err(e) => eprintln!("callback-store: the metrics port failed: {e}"),
            }
        }
        eprintln!("callback-store: stopped");
        Ok(())
    })
}

/// The multi-threaded runtime `serve` and `worker` run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the runtime: {e}")))
}

/// SIGINT or SIGTERM; call it inside the runtime.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, Failure> {
    callback_store_http::shutdown_signal()
        .map_err(|e| Failure::Other(format!("cannot handle signals: {e}")))
}

/// The background loops the flags ask for; a bad value is a VALIDATION_ERROR
/// naming the flag.
pub fn options(args: &DispatchArgs) -> Result<WorkerOptions, Error> {
    let webhook_timeout = when::duration("webhook_timeout", &args.webhook_timeout)?;
    let stale_after = when::duration("stale_after", &args.stale_after)?;
    let webhook = args
        .dispatch_webhook
        .as_deref()
        .map(|url| {
            Webhook::new(url, positive("webhook_timeout", webhook_timeout)?)
                .map_err(|e| Error::validation("dispatch_webhook", e))
        })
        .transpose()?;
    if !(1..=callback_store::MAX_CLAIM).contains(&args.dispatch_batch) {
        return Err(Error::validation(
            "dispatch_batch",
            format!(
                "must be between 1 and {}, got {}",
                callback_store::MAX_CLAIM,
                args.dispatch_batch
            ),
        ));
    }
    if webhook.is_some() && !args.no_recovery && webhook_timeout >= stale_after {
        return Err(Error::validation(
            "stale_after",
            "must be longer than the webhook timeout, or calls still being placed would be failed",
        ));
    }
    Ok(WorkerOptions {
        webhook,
        dispatcher: DispatcherOptions {
            interval: positive(
                "dispatch_interval",
                when::duration("dispatch_interval", &args.dispatch_interval)?,
            )?,
            batch: args.dispatch_batch,
        },
        stale_after: (!args.no_recovery)
            .then(|| positive("stale_after", stale_after))
            .transpose()?,
        recover_interval: positive(
            "recover_interval",
            when::duration("recover_interval", &args.recover_interval)?,
        )?,
    })
}

fn positive(field: &str, duration: Duration) -> Result<Duration, Error> {
    if duration.is_zero() {
        Err(Error::validation(field, "must be above zero"))
    } else {
        Ok(duration)
    }
}
