//! The Callbacks HTTP API over a [`callback_store::Store`].
//!
//! [`router`] (or [`Api::router`]) is an axum [`Router`](axum::Router) to
//! mount in your own service; [`serve`] runs it on a listener with the
//! webhook dispatcher, stale recovery and graceful shutdown, as the
//! `callback-store serve` command does. [`run_workers`] runs the dispatcher
//! and recovery alone, as `callback-store worker` does.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use callback_store::Store;
//!
//! let store = Store::open("callbacks.db").expect("open the store");
//! let app = axum::Router::new().nest("/callbacks-api", callback_store_http::router(store));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! The store is synchronous: every call to it runs on tokio's blocking pool.

mod connection;
mod error;
mod feed_routes;
mod metrics;
pub mod openapi;
mod policy_routes;
pub mod request;
mod routes;
mod stats_routes;
mod ui;
mod webhook;
mod worker;

use std::future::{Future, IntoFuture};
use std::time::Duration;

use callback_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use connection::{JsonErrorListener, JsonErrors};
pub use error::{status_of, ApiError, INTERNAL_ERROR, MAX_BODY_BYTES, METHOD_NOT_ALLOWED};
pub use metrics::{metrics_router, serve_metrics, Metrics, CONTENT_TYPE as METRICS_CONTENT_TYPE};
pub use routes::{router, Api};
pub use tokio_util::task::TaskTracker;
pub use webhook::{place_and_record, Webhook};
pub use worker::{run_dispatcher, run_recovery, run_workers, DispatcherOptions, WorkerOptions};

/// How [`serve`] runs besides answering requests.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The background loops, as [`run_workers`] runs them. With a webhook,
    /// `POST …/dispatch` places calls through it too; without one, dispatch
    /// leaves callbacks `dispatching` for the caller's dialer, and nothing
    /// is claimed in the background.
    pub workers: WorkerOptions,
    /// After the shutdown signal, how long in-flight requests may take
    /// before the server stops waiting for them.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: WorkerOptions::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests and calls being placed finish (up to
/// `shutdown_grace` for requests), and returns. The background loops run
/// meanwhile ([`run_workers`]), and stop claiming at the shutdown signal.
/// Connections go through [`JsonErrorListener`], so that even the answers
/// hyper writes itself to a request it cannot read (400, 414, 431) carry the
/// API's JSON error body.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let mut api = Api::new(store.clone()).closing_on(stop.clone());
    let mut options = options;
    if let Some(webhook) = &mut options.workers.webhook {
        // The dispatcher's calls are counted with the requests' ones.
        *webhook = webhook.clone().with_metrics(api.metrics().clone());
        api = api.with_webhook(webhook.clone());
    }
    let workers = run_workers(
        store,
        options.workers,
        api.tasks().clone(),
        stop.clone().cancelled_owned(),
    );

    let signalled = stop.clone();
    // Hyper's own answers to unreadable requests get JSON bodies too.
    let server =
        axum::serve(JsonErrorListener(listener), api.router()).with_graceful_shutdown(async move {
            shutdown.await;
            signalled.cancel();
        });
    let grace = options.shutdown_grace;
    let gave_up = stop.clone();
    let serving = async move {
        let result = tokio::select! {
            result = server.into_future() => result,
            () = async move { gave_up.cancelled().await; tokio::time::sleep(grace).await } => {
                worker::log(&format!("requests still running {} s after the shutdown signal were dropped", grace.as_secs()));
                Ok(())
            }
        };
        stop.cancel(); // the background loops stop too if the server failed
        result
    };
    let (result, ()) = tokio::join!(serving, workers);
    // Calls that requests started after the loops stopped.
    api.tasks().close();
    api.tasks().wait().await;
    drop(api);
    result
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are
/// installed by this call (inside a tokio runtime), so a signal that
/// arrives before the future is first polled is not lost.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
