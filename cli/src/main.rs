//! `callback-store`: scheduled callbacks from a shell, the HTTP API server
//! (`callback-store serve`) and the webhook worker (`callback-store worker`).

mod commands;
mod copy;
mod database;
mod import;
mod output;
mod policy;
mod serve;
mod stats;
mod watch;
mod when;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use callback_store::ErrorCode;
use clap::{Args, Parser, Subcommand};

use output::Format;

const EXIT_STATUS: &str = "\
Output is the API's JSON (a callback, or {\"callbacks\": [...], \"next_cursor\": ...}; \
`dispatch` prints a claim {\"callback\": ..., \"token\": ...}, `claim-due` {\"claims\": [...]}, \
`policy` a calling policy), \
one line when piped (for jq), or a table with --format table.

Errors print the API's error body {\"error\": \"...\", \"code\": \"...\"} on stderr.
Exit status:
  0  success
  1  failure outside the store (a file cannot be read, the address cannot be listened on)
  2  usage error (unknown flag, missing argument)
  3  UNAUTHORIZED        missing, unknown or revoked token
  4  NOT_FOUND           no such callback (or key) in this organization
  5  INVALID_TRANSITION  the action is not allowed from the callback's status, or by its calling policy
  6  CONFLICT            idempotency key reused with a different payload
  7  VALIDATION_ERROR    bad input; the message names the field and the rule
  8  STORAGE_ERROR       the database failed (busy past the timeout, unreachable, disk full, read-only, corrupt)
  9  SCHEMA_ERROR        not a callback store, or migrated by a newer version";

#[derive(Debug, Parser)]
#[command(
    name = "callback-store",
    version,
    about = "Scheduled callbacks for AI voice agents, over one SQLite file or a PostgreSQL database: store, list, cancel and dispatch them within calling policies, serve the Callbacks HTTP API, or place due calls through a webhook.",
    after_help = EXIT_STATUS,
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The database: an SQLite file's path, or a PostgreSQL database's
    /// `postgres://` or `postgresql://` URL (the schema is chosen with
    /// `options=-csearch_path%3D<schema>` in the URL); created or migrated
    /// on first use.
    #[arg(
        long,
        global = true,
        env = "CALLBACK_STORE_DB",
        default_value = "./callbacks.db",
        value_name = "PATH|URL"
    )]
    pub db: PathBuf,
    /// The organization to act for.
    #[arg(long, global = true, env = "CALLBACK_STORE_ORG")]
    pub org: Option<String>,
    /// An API token: act for its organization, authenticated as the server does.
    #[arg(
        long,
        global = true,
        env = "CALLBACK_STORE_TOKEN",
        conflicts_with = "org"
    )]
    pub token: Option<String>,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// How long a write waits for another writer before a busy STORAGE_ERROR;
    /// on PostgreSQL, the deadline of each operation, connecting and
    /// retries included.
    #[arg(
        long,
        global = true,
        env = "CALLBACK_STORE_BUSY_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub busy_timeout: String,
    /// SQLite: commit every write by itself. By default, writes that arrive
    /// while another one runs (the server's requests, a worker's calls)
    /// share its transaction and one commit, each answered once that commit
    /// is durable (group commit); switching it off is for comparing the two.
    #[arg(long, global = true)]
    pub no_group_commit: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and migrate the database.
    Init,
    /// Create a scheduled callback.
    Create(CreateArgs),
    /// Create callbacks from JSON Lines (a file, or stdin), in one transaction.
    Import {
        /// One JSON object a line, with the fields of `create`; `-` or nothing for stdin.
        file: Option<PathBuf>,
    },
    /// List callbacks, newest first; filters combine with AND.
    List(ListArgs),
    /// Show one callback.
    Get { id: String },
    /// Cancel a scheduled callback.
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Dispatch now: `scheduled` → `dispatching`. Prints the claim
    /// ({"callback": ..., "token": ...}); place the call, then complete or
    /// fail it with `--claim TOKEN`.
    Dispatch { id: String },
    /// Record the placed call of a dispatching callback: → `dispatched`.
    Complete {
        id: String,
        /// The session id of the new call.
        #[arg(long)]
        session: String,
        /// The claim's token (from `dispatch` or `claim-due`): refused with
        /// INVALID_TRANSITION if it is not the callback's live claim (the
        /// callback was recovered or finished since, or the token is wrong),
        /// so a late or confused dialer cannot finish it.
        #[arg(long, value_name = "TOKEN")]
        claim: Option<String>,
    },
    /// Record that the call of a dispatching callback failed: → `failed`.
    Fail {
        id: String,
        /// Why the call could not be placed.
        #[arg(long)]
        cause: String,
        /// The claim's token, checked as in `complete --claim`.
        #[arg(long, value_name = "TOKEN")]
        claim: Option<String>,
    },
    /// Move a scheduled callback to another time.
    Reschedule {
        id: String,
        /// RFC 3339 (2030-03-05T10:00:00Z), `now`, or relative (+2d, -30m).
        #[arg(long, allow_hyphen_values = true)]
        at: String,
    },
    /// The callback's creation and every transition since.
    History { id: String },
    /// Create the next attempt of a dispatched or failed callback whose call
    /// ended in --outcome, as its calling policy allows, and print it.
    ///
    /// The follow-up has attempt + 1 (previous_callback_id the callback's
    /// id) and the same fields, and is scheduled one retry interval of the
    /// policy from now, in its next calling window, before the same
    /// deadline; the callback itself is unchanged. Asked again, it prints
    /// the same follow-up (`fail` already made it when the policy's retry_on
    /// lists `failed`). Refused with INVALID_TRANSITION, saying why, when the
    /// callback is not dispatched or failed, the policy does not retry the
    /// outcome, the attempts are used up (max_attempts), or no window opens
    /// before the deadline.
    Retry {
        id: String,
        /// How the call ended: no_answer, busy, voicemail or failed (the
        /// call could not be placed).
        #[arg(long)]
        outcome: String,
    },
    /// The calling policy: when callbacks may ring (windows in the callee's
    /// time zone) and how many attempts they get; the organization's, or an
    /// agent's override.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Worker: take due callbacks of every organization, marking them
    /// `dispatching`. Prints {"claims": [{"callback": ..., "token": ...}]}:
    /// place each call, then complete or fail it with `--claim TOKEN`.
    ClaimDue {
        /// How many at most (1 to 10000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The time callbacks must be due by (default: now).
        #[arg(long, allow_hyphen_values = true)]
        now: Option<String>,
    },
    /// Fail callbacks left `dispatching` for longer than a duration.
    RecoverStale {
        #[arg(long, default_value = "10m")]
        older_than: String,
    },
    /// Delete finished callbacks (dispatched, cancelled, failed) last changed before a duration ago.
    Prune {
        #[arg(long)]
        older_than: String,
    },
    /// Follow the change feed: each change as one JSON line, for jq.
    ///
    /// Every event of the callbacks' history (creations and transitions)
    /// once, in commit order, as {"cursor", "organization_id",
    /// "callback_id", "action", "from", "to", "at", "detail"}: the
    /// organization's (--org or --token), or every organization's with
    /// --all. Follows until interrupted (each read waits for the next
    /// commit), or with --no-follow stops once caught up. Save the last
    /// line's cursor and start again with --since CURSOR: nothing is missed
    /// or repeated, across restarts and processes.
    Watch(watch::WatchArgs),
    /// The queue at a glance: each status's count, the due backlog (what a
    /// worker would claim now) and the oldest due callback, of the
    /// organization (--org or --token) or, with --all, of every
    /// organization. The JSON is `GET /v1/stats`'s: {"organization_id": ...,
    /// "counts": {...every status...}, "due": N, "oldest_due_at": ...}, or
    /// {"organizations": [...]} with --all; --format table prints a row per
    /// organization.
    Stats {
        /// Every organization that has callbacks (--org and --token are not used).
        #[arg(long)]
        all: bool,
    },
    /// API keys for the HTTP API.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Serve the Callbacks HTTP API.
    Serve(serve::ServeArgs),
    /// Place due calls through a webhook, without the HTTP API.
    ///
    /// Runs what `serve --dispatch-webhook` runs in the background: claims
    /// the due callbacks of every organization, POSTs each one's JSON to
    /// --webhook-url and completes or fails it by the answer; expires
    /// overdue callbacks (still scheduled at their expires_at: failed with
    /// cause `expired`, never dialed); and, unless --no-recovery, fails the
    /// callbacks left `dispatching` longer than --stale-after. Only
    /// callbacks inside their calling policy's windows are claimed. Each callback is claimed once, so several workers on
    /// one database share the work without calling anyone twice. Logs each
    /// call on stderr. On SIGINT or SIGTERM it stops claiming, lets the calls
    /// being placed finish and be recorded, and exits 0.
    #[command(mut_arg("dispatch_webhook", worker::required_webhook_url))]
    Worker(worker::WorkerArgs),
    /// Copy every callback, event, API key and calling policy into another, empty store.
    ///
    /// Moves a whole store between backends: an SQLite file to PostgreSQL
    /// (to grow from the embedded file to a server) or back, with every
    /// callback's history, idempotency keys, claims, API keys (revoked
    /// ones stay revoked) and calling policies, and the cursor secret, so list cursors keep
    /// working. --db is not used. The target must be empty (no callback,
    /// event, API key or calling policy; a store just created is): otherwise
    /// VALIDATION_ERROR, naming what it holds, and nothing is written. The
    /// source is read from one snapshot; the target is written in one
    /// transaction, so a failure leaves it empty. The copy is verified: the
    /// target is read back and its counts and SHA-256 checksum must equal
    /// the source's, else STORAGE_ERROR. Prints {"callbacks": N, "events":
    /// N, "api_keys": N, "checksum": "<hex>"}.
    Copy(copy::CopyArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// E.164 number to call (+12015551234).
    #[arg(long = "to-number", visible_alias = "to")]
    pub to_number: String,
    /// When to call: RFC 3339, `now`, or relative (+2d).
    #[arg(
        long = "scheduled-at",
        visible_alias = "at",
        allow_hyphen_values = true
    )]
    pub scheduled_at: String,
    #[arg(long)]
    pub source_session_id: Option<String>,
    #[arg(long)]
    pub agent_id: Option<String>,
    #[arg(long)]
    pub phone_number_id: Option<String>,
    /// E.164 number to call from.
    #[arg(long = "from-number", visible_alias = "from")]
    pub from_number: Option<String>,
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub instructions: Option<String>,
    #[arg(long)]
    pub summary: Option<String>,
    /// A JSON object.
    #[arg(long)]
    pub pipeline_config: Option<String>,
    /// A JSON object.
    #[arg(long)]
    pub metadata: Option<String>,
    /// The callee's IANA time zone (America/New_York); default: the calling
    /// policy's. Calling windows are read in it.
    #[arg(long)]
    pub timezone: Option<String>,
    /// The deadline: still scheduled then, the callback is never dialed and
    /// fails with cause `expired`. RFC 3339, or relative (+5d).
    #[arg(long, allow_hyphen_values = true)]
    pub expires_at: Option<String>,
    /// Creating again with the same key returns the first callback.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub source_session_id: Option<String>,
    #[arg(long)]
    pub agent_id: Option<String>,
    #[arg(long)]
    pub to_number: Option<String>,
    /// Scheduled at or after this time.
    #[arg(long, allow_hyphen_values = true)]
    pub scheduled_after: Option<String>,
    /// Scheduled before this time.
    #[arg(long, allow_hyphen_values = true)]
    pub scheduled_before: Option<String>,
    /// created_desc (default) or scheduled_asc.
    #[arg(long)]
    pub order: Option<String>,
    /// Page size, 1 to 100.
    #[arg(long, default_value_t = 25)]
    pub limit: u32,
    /// The next_cursor of the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow the cursors and print every matching callback.
    #[arg(long, conflicts_with = "cursor")]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for the organization (--org); the token is shown once.
    Create {
        #[arg(long, default_value = "cli")]
        label: String,
        /// An operator key instead, for no organization: it reads the
        /// store-wide change feed and every organization's metrics and
        /// stats, and no callback route (there it is UNAUTHORIZED).
        #[arg(long)]
        operator: bool,
    },
    /// List the organization's keys (never their tokens).
    List {
        /// The operator keys instead.
        #[arg(long)]
        operator: bool,
    },
    /// Revoke a key at once.
    Revoke { key_id: String },
}

/// Why the command failed.
#[derive(Debug)]
pub enum Failure {
    /// An error of the store: its body on stderr, its own exit status.
    Store(callback_store::Error),
    /// Anything else (files, sockets): exit status 1.
    Other(String),
}

impl From<callback_store::Error> for Failure {
    fn from(err: callback_store::Error) -> Self {
        Failure::Store(err)
    }
}

/// The exit status of each error code (also in `--help` and the README).
pub fn exit_status(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::Unauthorized => 3,
        ErrorCode::NotFound => 4,
        ErrorCode::InvalidTransition => 5,
        ErrorCode::Conflict => 6,
        ErrorCode::ValidationError => 7,
        ErrorCode::StorageError => 8,
        ErrorCode::SchemaError => 9,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.global.format;
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Store(err)) => {
            match format {
                Format::Json => eprintln!(
                    "{}",
                    serde_json::to_string(&err.body()).expect("the error body serializes")
                ),
                Format::Table => eprintln!("error: {err} ({})", err.code()),
            }
            ExitCode::from(exit_status(err.code()))
        }
        Err(Failure::Other(message)) => {
            eprintln!("callback-store: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_error_code_has_its_own_exit_status_listed_in_help() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let status = exit_status(code);
            assert!(status > 2 && seen.insert(status), "{code}");
            assert!(
                EXIT_STATUS.contains(&format!("  {status}  {}", code.as_str())),
                "{code}"
            );
        }
    }
}
