//! Each subcommand: open the store, do one thing, print the API's JSON.

use callback_store::{
    validate, Callback, Error, ListQuery, NewCallback, Order, Organization, Page, Status, Store,
    StoreOptions,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::output;
use crate::{when, Cli, Command, CreateArgs, Failure, Global, KeysCommand, ListArgs};

pub fn run(cli: Cli) -> Result<(), Failure> {
    let Cli { global, command } = cli;
    let command = match command {
        Command::Serve(args) => return crate::serve::run(&global, args),
        Command::Worker(args) => return crate::worker::run(&global, args),
        Command::Copy(args) => return crate::copy::run(&global, args),
        Command::Watch(args) => return crate::watch::run(&global, args),
        command => command,
    };
    let store = open(&global)?;
    let value = match command {
        Command::Init => json!({"database": crate::database::shown(&global.db)}),
        Command::Create(args) => {
            to_value(&organization(&store, &global)?.create(new_callback(&store, args)?)?)?
        }
        Command::Import { file } => {
            crate::import::run(&organization(&store, &global)?, file.as_deref())?
        }
        Command::List(args) => to_value(&list(&organization(&store, &global)?, args)?)?,
        Command::Get { id } => to_value(&organization(&store, &global)?.get(&id)?)?,
        Command::Cancel { id, reason } => {
            to_value(&organization(&store, &global)?.cancel(&id, reason.as_deref())?)?
        }
        Command::Dispatch { id } => to_value(&organization(&store, &global)?.dispatch(&id)?)?,
        Command::Complete { id, session, claim } => to_value(
            &organization(&store, &global)?.complete_dispatch(&id, &session, claim.as_deref())?,
        )?,
        Command::Fail { id, cause, claim } => to_value(
            &organization(&store, &global)?.fail_dispatch(&id, &cause, claim.as_deref())?,
        )?,
        Command::Reschedule { id, at } => {
            let org = organization(&store, &global)?;
            let at = when::time("at", &at, store.now())?;
            to_value(&org.reschedule(&id, at)?)?
        }
        Command::Retry { id, outcome } => {
            to_value(&organization(&store, &global)?.retry(&id, outcome.parse()?)?)?
        }
        Command::Policy { command } => {
            crate::policy::run(&organization(&store, &global)?, command)?
        }
        Command::History { id } => {
            json!({"events": to_value(&organization(&store, &global)?.history(&id)?)?})
        }
        Command::ClaimDue { limit, now } => {
            let now = match now {
                Some(text) => when::time("now", &text, store.now())?,
                None => store.now(),
            };
            json!({"claims": to_value(&store.claim_due(now, limit)?)?})
        }
        Command::RecoverStale { older_than } => {
            let older_than = when::duration("older_than", &older_than)?;
            callbacks(store.recover_stale(store.now(), older_than)?)?
        }
        Command::Prune { older_than } => {
            let age = when::duration("older_than", &older_than)?;
            let age = chrono::Duration::from_std(age)
                .map_err(|_| Error::validation("older_than", "is too large"))?;
            let before = store
                .now()
                .checked_sub_signed(age)
                .filter(|t| *t >= callback_store::min_timestamp())
                .ok_or_else(|| Error::validation("older_than", "reaches before 1970"))?;
            json!({
                "deleted": store.prune(before)?,
                "before": callback_store::format_timestamp(before),
            })
        }
        Command::Stats { all } => crate::stats::run(&store, &global, all)?,
        Command::Keys { command } => keys(&store, &global, command)?,
        Command::Serve(_) | Command::Worker(_) | Command::Copy(_) | Command::Watch(_) => {
            unreachable!("run above")
        }
    };
    output::print(global.format, &value).map_err(|e| Failure::Other(format!("stdout: {e}")))
}

pub fn open(global: &Global) -> Result<Store, Failure> {
    let options = StoreOptions {
        busy_timeout: when::duration("busy_timeout", &global.busy_timeout)?,
        group_commit: !global.no_group_commit,
        ..StoreOptions::default()
    };
    Ok(Store::open_with(&global.db, options)?)
}

/// The organization of `--token` (authenticated) or `--org`.
pub fn organization(store: &Store, global: &Global) -> Result<Organization, Error> {
    match (&global.token, &global.org) {
        (Some(token), _) => store.authenticate(token),
        (None, Some(org)) => store.organization(org),
        (None, None) => Err(Error::validation(
            "organization",
            "give --org ORG or --token TOKEN (or set CALLBACK_STORE_ORG or CALLBACK_STORE_TOKEN)",
        )),
    }
}

/// A record as the API's JSON. A callback's metadata and pipeline_config
/// are the stored text, parsed here: only a column changed by hand outside
/// the store fails to parse, a STORAGE_ERROR.
fn to_value<T: Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| {
        Error::storage(
            format!("a stored record cannot be shown as JSON ({e})"),
            false,
        )
    })
}

fn callbacks(list: Vec<Callback>) -> Result<Value, Error> {
    Ok(json!({"callbacks": to_value(&list)?}))
}

fn new_callback(store: &Store, args: CreateArgs) -> Result<NewCallback, Error> {
    let object = |field: &str, text: Option<String>| {
        text.map(|t| validate::parse_json_object(field, &t))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(NewCallback {
        to_number: args.to_number,
        scheduled_at: when::time("scheduled_at", &args.scheduled_at, store.now())?,
        source_session_id: args.source_session_id,
        agent_id: args.agent_id,
        phone_number_id: args.phone_number_id,
        from_number: args.from_number,
        reason: args.reason,
        instructions: args.instructions,
        summary: args.summary,
        pipeline_config: object("pipeline_config", args.pipeline_config)?,
        metadata: object("metadata", args.metadata)?,
        timezone: args.timezone,
        expires_at: args
            .expires_at
            .map(|t| when::time("expires_at", &t, store.now()))
            .transpose()?,
        idempotency_key: args.idempotency_key,
    })
}

fn list(org: &Organization, args: ListArgs) -> Result<Page, Error> {
    let now = org.store().now();
    let time =
        |field: &str, text: Option<String>| text.map(|t| when::time(field, &t, now)).transpose();
    let mut query = ListQuery {
        status: args.status.map(|s| s.parse::<Status>()).transpose()?,
        source_session_id: args.source_session_id,
        agent_id: args.agent_id,
        to_number: args.to_number,
        scheduled_after: time("scheduled_after", args.scheduled_after)?,
        scheduled_before: time("scheduled_before", args.scheduled_before)?,
        order: args
            .order
            .map(|o| o.parse::<Order>())
            .transpose()?
            .unwrap_or_default(),
        limit: args.limit,
        cursor: args.cursor,
    };
    let mut page = org.list(&query)?;
    if !args.all {
        return Ok(page);
    }
    let mut all = std::mem::take(&mut page.callbacks);
    while let Some(cursor) = page.next_cursor.take() {
        query.cursor = Some(cursor);
        page = org.list(&query)?;
        all.append(&mut page.callbacks);
    }
    Ok(Page {
        callbacks: all,
        next_cursor: None,
    })
}

fn keys(store: &Store, global: &Global, command: KeysCommand) -> Result<Value, Error> {
    Ok(match command {
        KeysCommand::Create {
            label,
            operator: true,
        } => to_value(&store.create_operator_key(&label)?)?,
        KeysCommand::Create { label, .. } => {
            let org = organization(store, global)?;
            to_value(&store.create_api_key(org.id(), &label)?)?
        }
        KeysCommand::List { operator: true } => {
            json!({"keys": to_value(&store.list_operator_keys()?)?})
        }
        KeysCommand::List { .. } => {
            let org = organization(store, global)?;
            json!({"keys": to_value(&store.list_api_keys(org.id())?)?})
        }
        KeysCommand::Revoke { key_id } => to_value(&store.revoke_api_key(&key_id)?)?,
    })
}
