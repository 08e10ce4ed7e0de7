//! `callback-store watch`: the change feed as JSON Lines, for jq and for
//! scripts that react to changes.

use std::io::Write;
use std::time::Duration;

use callback_store::{Caller, ChangePage, Error, Since, Store};
use clap::Args;

use crate::commands::{open, organization};
use crate::output::Format;
use crate::{Failure, Global};

/// How long one read waits for a change while following: the feed's reads
/// are long polls, answered at once when a change commits.
const FOLLOW_WAIT: Duration = Duration::from_secs(25);

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Where to start: `now` (only what happens from now on), `start` (the
    /// oldest event kept), or the `cursor` of a line printed earlier, to go
    /// on after it without missing or repeating a change.
    #[arg(long, default_value = "now", value_name = "now|start|CURSOR")]
    pub since: String,
    /// Every organization's changes (an operator's view of the whole
    /// store), instead of --org's. With --token, an operator key
    /// (`keys create --operator`) reads every organization's as well.
    #[arg(long, conflicts_with = "org")]
    pub all: bool,
    /// Stop once caught up, instead of following until interrupted.
    #[arg(long)]
    pub no_follow: bool,
    /// Changes per read, 1 to 1000.
    #[arg(long, default_value_t = callback_store::DEFAULT_CHANGES)]
    pub limit: u32,
}

/// Whose changes the command reads.
enum Reader {
    Organization(callback_store::Organization),
    Everyone(Store),
}

pub fn run(global: &Global, args: WatchArgs) -> Result<(), Failure> {
    let store = open(global)?;
    let reader = match (&global.token, args.all) {
        (Some(token), _) => match store.authenticate_caller(token)? {
            Caller::Organization(org) => Reader::Organization(org),
            Caller::Operator => Reader::Everyone(store),
        },
        (None, true) => Reader::Everyone(store),
        (None, false) => Reader::Organization(organization(&store, global)?),
    };
    let read = |since: &Since, wait: Duration| -> Result<ChangePage, Error> {
        match &reader {
            Reader::Organization(org) => org.changes(since, args.limit, wait),
            Reader::Everyone(store) => store.changes(since, args.limit, wait),
        }
    };
    let wait = if args.no_follow {
        Duration::ZERO
    } else {
        FOLLOW_WAIT
    };
    let mut since = Since::from(args.since.as_str());
    let mut out = std::io::stdout().lock();
    loop {
        let page = read(&since, wait)?;
        for change in &page.changes {
            let line = match global.format {
                Format::Json => serde_json::to_string(change).expect("a change serializes"),
                Format::Table => {
                    let event = &change.event;
                    format!(
                        "{}  {}  {}  {:<17}  {} -> {}",
                        callback_store::format_timestamp(event.at),
                        change.organization_id,
                        event.callback_id,
                        event.action.as_str(),
                        event.from.map_or("-", |s| s.as_str()),
                        event.to.as_str(),
                    )
                }
            };
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                // The reader went away (`| head`): nothing left to do.
                return Ok(());
            }
        }
        if args.no_follow && page.changes.is_empty() {
            return Ok(());
        }
        since = Since::Cursor(page.next_cursor);
    }
}
