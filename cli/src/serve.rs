//! `serve`: the Callbacks HTTP API on a loopback (or any) address, with the
//! webhook dispatcher and stale recovery, until SIGINT or SIGTERM.

use std::net::SocketAddr;

use callback_store::Error;
use callback_store_http::ServeOptions;
use clap::Args;

use crate::worker::{self, DispatchArgs};
use crate::{when, Failure, Global};

/// The organization a fresh database's first key is made for, without --org.
const DEFAULT_ORG: &str = "org_default";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub dispatch: DispatchArgs,
    /// After SIGINT/SIGTERM, how long running requests may take to finish.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub shutdown_grace: String,
}

/// A socket address flag; a bad one is a VALIDATION_ERROR naming `field`.
pub fn address(field: &str, text: &str) -> Result<SocketAddr, Error> {
    text.parse().map_err(|e| {
        Error::validation(
            field,
            format!("must be an address like 127.0.0.1:8080, got {text:?} ({e})"),
        )
    })
}

/// A listener on `address`, and the address it got (port 0 picks one).
pub async fn listen(address: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), Failure> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| Failure::Other(format!("cannot listen on {address}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Other(format!("cannot read the bound address: {e}")))?;
    Ok((listener, local))
}

pub fn run(global: &Global, args: ServeArgs) -> Result<(), Failure> {
    let options = ServeOptions {
        workers: worker::options(&args.dispatch)?,
        shutdown_grace: when::duration("shutdown_grace", &args.shutdown_grace)?,
    };
    let address = address("listen", &args.listen)?;
    let store = crate::commands::open(global)?;
    // New is what the open found (an empty file or PostgreSQL schema), not
    // whether a file exists: a URL names no file.
    let first_key = if store.is_new() {
        let org = global.org.as_deref().unwrap_or(DEFAULT_ORG);
        Some(store.create_api_key(org, "serve")?)
    } else {
        None
    };

    worker::runtime()?.block_on(async move {
        let (listener, local) = listen(address).await?;
        let signal = worker::shutdown_signal()?;
        let base = format!("http://{}", reachable(local));
        if let Some(created) = &first_key {
            eprintln!(
                "callback-store: created {} with an API key for organization {} (shown once):\n  {}",
                crate::database::shown(&global.db),
                created.key.organization_id,
                created.token
            );
            eprintln!(
                "callback-store: try it:\n  curl -s {base}/v1/callbacks -H 'Authorization: Bearer {}'",
                created.token
            );
        }
        if let Some(webhook) = &options.workers.webhook {
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
