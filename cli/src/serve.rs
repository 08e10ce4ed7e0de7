//! `serve`: the Callbacks HTTP API on a loopback (or any) address, with the
//! webhook dispatcher and stale recovery, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use callback_store::Error;
use callback_store_http::{DispatcherOptions, ServeOptions, Webhook};
use clap::Args;

use crate::{when, Failure, Global};

/// The organization a fresh database's first key is made for, without --org.
const DEFAULT_ORG: &str = "org_default";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Place calls by POSTing each due callback's JSON to this URL; a 2xx JSON
    /// answer with a created_session_id completes it, anything else fails it.
    #[arg(long, value_name = "URL")]
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
    /// After SIGINT/SIGTERM, how long running requests may take to finish.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub shutdown_grace: String,
}

pub fn run(global: &Global, args: ServeArgs) -> Result<(), Failure> {
    let options = options(&args)?;
    let address: SocketAddr = args.listen.parse().map_err(|e| {
        Error::validation(
            "listen",
            format!(
                "must be an address like 127.0.0.1:8080, got {:?} ({e})",
                args.listen
            ),
        )
    })?;
    let fresh = !global.db.exists();
    let store = crate::commands::open(global)?;
    let first_key = if fresh {
        let org = global.org.as_deref().unwrap_or(DEFAULT_ORG);
        Some(store.create_api_key(org, "serve")?)
    } else {
        None
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| Failure::Other(format!("cannot listen on {address}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Failure::Other(format!("cannot read the bound address: {e}")))?;
        let signal = callback_store_http::shutdown_signal()
            .map_err(|e| Failure::Other(format!("cannot handle signals: {e}")))?;
        let base = format!("http://{}", reachable(local));
        if let Some(created) = &first_key {
            eprintln!(
                "callback-store: created {} with an API key for organization {} (shown once):\n  {}",
                global.db.display(),
                created.key.organization_id,
                created.token
            );
            eprintln!(
                "callback-store: try it:\n  curl -s {base}/v1/callbacks -H 'Authorization: Bearer {}'",
                created.token
            );
        }
        if let Some(webhook) = &options.webhook {
            eprintln!("callback-store: placing calls through {}", webhook.url());
        }
        eprintln!("callback-store: listening on http://{local}");
        callback_store_http::serve(listener, store, options, signal)
            .await
            .map_err(|e| Failure::Other(format!("the server failed: {e}")))?;
        eprintln!("callback-store: stopped");
        Ok(())
    })
}

/// The address a local client can reach: a wildcard listen becomes loopback.
fn reachable(local: SocketAddr) -> SocketAddr {
    let mut addr = local;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

fn options(args: &ServeArgs) -> Result<ServeOptions, Error> {
    let webhook_timeout = when::duration("webhook_timeout", &args.webhook_timeout)?;
    let stale_after = when::duration("stale_after", &args.stale_after)?;
    let positive = |field: &str, d: Duration| {
        if d.is_zero() {
            Err(Error::validation(field, "must be above zero"))
        } else {
            Ok(d)
        }
    };
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
    Ok(ServeOptions {
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
        shutdown_grace: when::duration("shutdown_grace", &args.shutdown_grace)?,
    })
}
