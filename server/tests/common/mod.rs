//! The real server in-process, for the HTTP end-to-end tests: [`serve`] on
//! a free loopback port, on its own thread with its own multi-threaded tokio
//! runtime (as `callback-store serve` runs it), over a fresh database of the
//! run's backend ([`TestDb`]: an SQLite file in a temporary folder, or with
//! `CALLBACK_STORE_TEST_BACKEND=postgres` a new PostgreSQL schema). [`Options`] are the command's flags with the command's defaults,
//! assembled into [`ServeOptions`] as `callback-store serve` does. The HTTP
//! client and the fake dialer are testkit's, shared with the command's
//! tests. Every wait here is bounded.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::Duration;

use callback_store::{ManualClock, Store, StoreOptions};
use callback_store_http::{serve, DispatcherOptions, ServeOptions, Webhook, WorkerOptions};

pub use testkit::*;

/// The store and the server on a [`TestDb`].
pub trait InProcess {
    /// The store on the database, as another process would open it.
    fn store(&self) -> Store;

    /// A new API key for `org`, made by the store on the same database: its token.
    fn token(&self, org: &str) -> String {
        self.store().create_api_key(org, "test").unwrap().token
    }

    /// Starts the server on the database.
    fn serve(&self, options: Options) -> Server;
}

impl InProcess for TestDb {
    fn store(&self) -> Store {
        Store::open(self.location()).unwrap()
    }

    fn serve(&self, options: Options) -> Server {
        Server::start(&self.location(), options)
    }
}

/// The flags of `callback-store serve` that the tests set; the defaults
/// are the command's.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--dispatch-webhook`.
    pub webhook: Option<String>,
    /// `--webhook-timeout`.
    pub webhook_timeout: Duration,
    /// `--dispatch-interval` and `--dispatch-batch`.
    pub dispatcher: DispatcherOptions,
    /// `--stale-after`; None is `--no-recovery`.
    pub stale_after: Option<Duration>,
    /// `--recover-interval`.
    pub recover_interval: Duration,
    /// `--shutdown-grace`.
    pub shutdown_grace: Duration,
    /// `--busy-timeout`.
    pub busy_timeout: Duration,
    /// The server's clock, which the test sets (the command has no such
    /// flag); None: the machine's clock.
    pub clock: Option<ManualClock>,
}

impl Default for Options {
    fn default() -> Self {
        let serve = ServeOptions::default();
        Options {
            webhook: None,
            webhook_timeout: Duration::from_secs(10),
            dispatcher: serve.workers.dispatcher,
            stale_after: serve.workers.stale_after,
            recover_interval: serve.workers.recover_interval,
            shutdown_grace: serve.shutdown_grace,
            busy_timeout: StoreOptions::default().busy_timeout,
            clock: None,
        }
    }
}

impl Options {
    /// What `callback-store serve` hands to [`serve`] for these flags.
    fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            workers: WorkerOptions {
                webhook: self
                    .webhook
                    .as_deref()
                    .map(|url| Webhook::new(url, self.webhook_timeout).unwrap()),
                dispatcher: self.dispatcher.clone(),
                stale_after: self.stale_after,
                recover_interval: self.recover_interval,
            },
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// Panics on a server's threads, by the name all its threads share.
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static NEXT_SERVER: AtomicUsize = AtomicUsize::new(0);

/// Records every panic on a server's thread (then reports it as before),
/// as the command's log would show it.
fn watch_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(name) = std::thread::current().name() {
                if name.starts_with("test-server-") {
                    let mut panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
                    panics.push((name.to_owned(), info.to_string()));
                }
            }
            previous(info)
        }));
    });
}

/// A running server, stopped (its shutdown future completed, then waited
/// for) by [`Server::stop`] or on drop.
pub struct Server {
    pub base: String,
    /// The database's file or URL.
    pub location: String,
    name: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: mpsc::Receiver<std::io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(location: &str, options: Options) -> Server {
        watch_panics();
        let name = format!(
            "test-server-{}",
            NEXT_SERVER.fetch_add(1, Ordering::Relaxed)
        );
        let mut store_options = StoreOptions {
            busy_timeout: options.busy_timeout,
            ..StoreOptions::default()
        };
        if let Some(clock) = &options.clock {
            store_options.clock = std::sync::Arc::new(clock.clone());
        }
        let store = Store::open_with(location, store_options).unwrap();
        let serve_options = options.serve_options();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, address) = mpsc::channel();
        let (finished, done) = mpsc::channel();
        let runtime_name = name.clone();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name(runtime_name)
                    .build()
                    .unwrap();
                let result = runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    bound.send(listener.local_addr()?).unwrap();
                    serve(listener, store, serve_options, async {
                        let _ = stopped.await;
                    })
                    .await
                });
                let _ = finished.send(result);
            })
            .unwrap();
        let address = match address.recv_timeout(Duration::from_secs(20)) {
            Ok(address) => address,
            Err(_) => panic!("the server did not start: {:?}", done.try_recv()),
        };
        Server {
            base: format!("http://{address}"),
            location: location.to_owned(),
            name,
            stop: Some(stop),
            done,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The panics on the server's threads so far.
    pub fn panics(&self) -> Vec<String> {
        let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
        panics
            .iter()
            .filter(|(name, _)| *name == self.name)
            .map(|(_, message)| message.clone())
            .collect()
    }

    /// Completes the shutdown future and waits (at most 20 s) for `serve`
    /// to return: its result.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.shutdown()
            .expect("serve did not return within 20 s of its shutdown")
    }

    fn shutdown(&mut self) -> Option<std::io::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = self.done.recv_timeout(Duration::from_secs(20)).ok()?;
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        Some(result)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}

/// A server on a fresh database, with a token of org_a.
pub fn server_with_token(options: Options) -> (TestDb, Server, Api) {
    let db = TestDb::new();
    let token = db.token("org_a");
    let server = db.serve(options);
    let api = Api::new(&server.base, &token);
    (db, server, api)
}

/// A server on a fresh database placing calls through `dialer`, with a
/// token of org_a. Its defaults (a 1 s webhook timeout, a dispatcher polling
/// every hour so that only `POST …/dispatch` places calls) are set before
/// `configure` changes what a test needs.
pub fn webhook_server(
    dialer: &Dialer,
    configure: impl FnOnce(&mut Options),
) -> (TestDb, Server, Api) {
    let mut options = Options {
        webhook: Some(dialer.url.clone()),
        webhook_timeout: Duration::from_secs(1),
        ..Options::default()
    };
    options.dispatcher.interval = Duration::from_secs(3600);
    configure(&mut options);
    server_with_token(options)
}

/// The one integer a `SELECT COUNT(*) …` (of SQL both backends read alike)
/// answers, read beside the server's rules on either backend.
pub fn count(store: &Store, sql: &str) -> i64 {
    if let Some(count) = store.with_postgres(|c| c.query_one(sql, &[]).unwrap().get(0)) {
        return count.unwrap();
    }
    store.with_connection(|c| c.query_row(sql, [], |r| r.get(0)).unwrap())
}

/// A write lock another session holds until [`HeldLock::release`]: on
/// SQLite the whole database's (`BEGIN IMMEDIATE`), on PostgreSQL the
/// callback's row (`SELECT … FOR UPDATE` in an open transaction). A write
/// to the callback waits for it until the store's busy timeout.
pub struct HeldLock {
    /// A store of one connection: the session holding the lock.
    holder: Store,
}

impl HeldLock {
    pub fn on_callback(db: &TestDb, id: &str) -> HeldLock {
        let holder = Store::open_with(
            db.location(),
            StoreOptions {
                max_connections: 1,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let locked = holder.with_postgres(|c| {
            c.batch_execute("BEGIN").unwrap();
            c.execute("SELECT 1 FROM callbacks WHERE id = $1 FOR UPDATE", &[&id])
                .unwrap()
        });
        match locked {
            Some(rows) => assert_eq!(rows.unwrap(), 1, "no row {id} to lock"),
            None => holder.with_connection(|c| c.execute_batch("BEGIN IMMEDIATE").unwrap()),
        }
        HeldLock { holder }
    }

    /// Ends the holder's transaction.
    pub fn release(self) {
        if let Some(done) = self.holder.with_postgres(|c| c.batch_execute("ROLLBACK")) {
            return done.unwrap().unwrap();
        }
        self.holder
            .with_connection(|c| c.execute_batch("ROLLBACK").unwrap());
    }
}

/// Runs `f` on a thread of its own, outside any tokio runtime: the
/// PostgreSQL backend's client blocks on a runtime of its own, which tokio
/// refuses inside another's (the server, too, calls the store from its
/// blocking pool).
pub fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().unwrap())
}
