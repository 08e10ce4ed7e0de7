//! `copy`: every callback, event, API key and calling policy of one store into another,
//! empty one (an SQLite file to PostgreSQL, or back), verified.

use std::path::Path;

use callback_store::{Error, Store, StoreOptions};
use clap::Args;

use crate::{output, when, Failure, Global};

/// The two stores of `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy: an SQLite file (which must exist) or a
    /// postgres:// URL. It is only read, from one consistent snapshot.
    #[arg(long, value_name = "FILE_OR_URL")]
    pub from: String,
    /// The store to fill: an SQLite file (created if missing) or a
    /// postgres:// URL. It must hold no callback, event or API key.
    #[arg(long, value_name = "FILE_OR_URL")]
    pub to: String,
}

pub fn run(global: &Global, args: CopyArgs) -> Result<(), Failure> {
    if args.from == args.to {
        return Err(Error::validation("to", "names the same store as --from").into());
    }
    let is_url = |s: &str| s.starts_with("postgres://") || s.starts_with("postgresql://");
    // Opening a file creates it: a mistyped source would copy nothing.
    if !is_url(&args.from) && !Path::new(&args.from).exists() {
        return Err(Failure::Other(format!(
            "copy --from {}: no such file (the source must be an existing store)",
            args.from
        )));
    }
    let options = || -> Result<StoreOptions, Failure> {
        Ok(StoreOptions {
            busy_timeout: when::duration("busy_timeout", &global.busy_timeout)?,
            group_commit: !global.no_group_commit,
            ..StoreOptions::default()
        })
    };
    let source = Store::open_with(&args.from, options()?)?;
    let target = Store::open_with(&args.to, options()?)?;
    let report = source.copy_into(&target)?;
    let value = serde_json::to_value(&report).expect("a copy report serializes");
    output::print(global.format, &value).map_err(|e| Failure::Other(format!("stdout: {e}")))
}
