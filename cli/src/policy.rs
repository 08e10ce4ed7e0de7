//! `policy`: the calling policy of the organization, or one agent's
//! override: when callbacks may ring and how many attempts they get
//! (DESIGN.md, "Calling policy"). The policy is read from JSON (the body of
//! the HTTP API) by the core's reader, and the flags only fill its fields:
//! every rule of a policy is checked once, by the store.

use std::io::Read;
use std::path::{Path, PathBuf};

use callback_store::{input, CallingPolicy, Error, FieldPath, Organization, Weekday};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the calling policy: the organization's (the default, UTC, any
    /// time, one attempt, until one is set), or with --agent that agent's
    /// override (NOT_FOUND when it has none).
    Get {
        /// The agent whose override to print.
        #[arg(long, visible_alias = "agent-id", value_name = "AGENT")]
        agent: Option<String>,
    },
    /// Replace the calling policy (the organization's, or with --agent that
    /// agent's override) and print the policy stored.
    ///
    /// The policy is a JSON object, the body of `PUT /v1/calling-policy`:
    /// {"timezone": "America/New_York", "windows": [{"days": ["mon", "tue",
    /// "wed", "thu", "fri"], "start": "08:00", "end": "21:00"}],
    /// "max_attempts": 3, "retry_intervals": ["2h", "1d"], "retry_on":
    /// ["no_answer", "busy", "voicemail"]}, from --file, FILE or stdin (`-`).
    /// Each flag below replaces its field; the fields neither gives take
    /// their defaults (timezone UTC, no windows: any time, max_attempts 1,
    /// retry_intervals 1h, retry_on no_answer, busy, voicemail). The whole
    /// policy is replaced, never merged with the one stored. A bad policy is
    /// a VALIDATION_ERROR naming the field, and the stored policy is left
    /// unchanged. The scheduled callbacks it governs follow it at once:
    /// when each may next ring is recomputed in the same transaction (their
    /// scheduled_at stays).
    Set(SetArgs),
    /// Remove an agent's override: the organization's policy governs its
    /// callbacks again. NOT_FOUND when the agent had none.
    Clear {
        /// The agent whose override to remove.
        #[arg(long, visible_alias = "agent-id", value_name = "AGENT")]
        agent: String,
    },
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("policy")
        .required(true)
        .multiple(true)
        .args(["file", "path", "timezone", "windows", "max_attempts", "retry_intervals", "retry_on"])
))]
pub struct SetArgs {
    /// Set this agent's override instead of the organization's policy.
    #[arg(long, visible_alias = "agent-id", value_name = "AGENT")]
    pub agent: Option<String>,
    /// A file holding the policy's JSON object; `-` reads stdin.
    #[arg(long, value_name = "PATH", conflicts_with = "path")]
    pub file: Option<PathBuf>,
    /// The same as --file: a path, or `-` for stdin.
    #[arg(value_name = "FILE")]
    pub path: Option<PathBuf>,
    /// The IANA time zone of callbacks that name none (America/New_York).
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// A calling window, `DAYS HH:MM-HH:MM` in local time: days as a list
    /// and ranges (`mon-fri`, `sat,sun`, `mon,wed-fri`), the end excluded
    /// (`24:00` is midnight). Repeat the flag for several windows.
    #[arg(long = "window", value_name = "DAYS HH:MM-HH:MM")]
    pub windows: Vec<String>,
    /// Attempts in all, the first call included (1 to 20).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// The waits before each follow-up, comma-separated (2h,1d); the last
    /// one repeats.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub retry_intervals: Option<Vec<String>>,
    /// The call outcomes that earn a follow-up, comma-separated, of
    /// no_answer, busy, voicemail, failed.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub retry_on: Option<Vec<String>>,
}

pub fn run(org: &Organization, command: PolicyCommand) -> Result<Value, Failure> {
    let policy = match command {
        PolicyCommand::Get { agent: None } => org.calling_policy()?,
        PolicyCommand::Get { agent: Some(agent) } => org
            .agent_calling_policy(&agent)?
            .ok_or_else(|| Error::agent_policy_not_found(&agent))?,
        PolicyCommand::Set(args) => {
            let policy = policy_of(&args)?;
            match &args.agent {
                Some(agent) => org.set_agent_calling_policy(agent, &policy)?,
                None => org.set_calling_policy(&policy)?,
            }
        }
        PolicyCommand::Clear { agent } => {
            org.clear_agent_calling_policy(&agent)?;
            return Ok(json!({"agent_id": agent, "cleared": true}));
        }
    };
    Ok(serde_json::to_value(&policy).expect("a policy serializes"))
}

/// The policy `set` stores: the JSON (or `{}`), each flag replacing its
/// field, read by the core's reader (which names fields and refuses unknown
/// ones). Its rules are checked by the store when it is set.
fn policy_of(args: &SetArgs) -> Result<CallingPolicy, Failure> {
    let mut map = match args.file.as_deref().or(args.path.as_deref()) {
        Some(path) => callback_store_http::request::json_object("body", &read(path)?)?,
        None => Map::new(),
    };
    if let Some(zone) = &args.timezone {
        map.insert("timezone".into(), json!(zone));
    }
    if !args.windows.is_empty() {
        let windows = args
            .windows
            .iter()
            .enumerate()
            .map(|(i, text)| {
                window(text).map_err(|rule| match args.windows.len() {
                    1 => Error::validation("window", rule),
                    _ => Error::validation(FieldPath::item("window", i), rule),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        map.insert("windows".into(), Value::Array(windows));
    }
    if let Some(n) = args.max_attempts {
        map.insert("max_attempts".into(), json!(n));
    }
    if let Some(intervals) = &args.retry_intervals {
        map.insert("retry_intervals".into(), json!(intervals));
    }
    if let Some(outcomes) = &args.retry_on {
        map.insert("retry_on".into(), json!(outcomes));
    }
    Ok(input::calling_policy(map)?)
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    result.map_err(|e| Failure::Other(format!("cannot read {}: {e}", path.display())))?;
    Ok(bytes)
}

/// `--window "mon-fri 08:00-21:00"` as the JSON window
/// `{"days": ["mon", …, "fri"], "start": "08:00", "end": "21:00"}`. Only the
/// shorthand is read here: the times' rules (format, end after start) are
/// the store's. The error is the rule broken.
pub fn window(text: &str) -> Result<Value, String> {
    let bad = |why: &str| {
        format!(
            "must be DAYS HH:MM-HH:MM, like \"mon-fri 08:00-21:00\" or \"sat,sun 10:00-14:00\"; {why}; got {:?}",
            text.chars().take(64).collect::<String>()
        )
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [days, hours] = parts[..] else {
        return Err(bad("days and hours are separated by one space"));
    };
    let (start, end) = hours
        .split_once('-')
        .ok_or_else(|| bad("the hours are START-END"))?;
    let day = |name: &str| {
        name.parse::<Weekday>()
            .map_err(|_| bad("days are mon, tue, wed, thu, fri, sat, sun"))
    };
    let mut listed = Vec::new();
    for item in days.split(',') {
        match item.split_once('-') {
            // A range runs forward through the week: fri-mon is fri, sat, sun, mon.
            Some((first, last)) => {
                let (first, last) = (day(first)? as usize, day(last)? as usize);
                let length = (last + 7 - first) % 7 + 1;
                listed.extend((0..length).map(|k| Weekday::ALL[(first + k) % 7]));
            }
            None => listed.push(day(item)?),
        }
    }
    let days: Vec<&str> = listed.iter().map(|d| d.as_str()).collect();
    Ok(json!({"days": days, "start": start, "end": end}))
}

/// A JSON window in the `--window` shorthand, for tables: runs of three or
/// more consecutive days as a range (`mon-fri 08:00-21:00`).
pub fn window_text(window: &Value) -> String {
    let days: Vec<&str> = window["days"]
        .as_array()
        .map(|days| days.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let index = |d: &str| Weekday::ALL.iter().position(|w| w.as_str() == d);
    let mut groups: Vec<String> = Vec::new();
    let mut i = 0;
    while i < days.len() {
        let mut j = i;
        while j + 1 < days.len()
            && matches!((index(days[j]), index(days[j + 1])), (Some(a), Some(b)) if b == a + 1)
        {
            j += 1;
        }
        if j >= i + 2 {
            groups.push(format!("{}-{}", days[i], days[j]));
        } else {
            groups.extend(days[i..=j].iter().map(|d| d.to_string()));
        }
        i = j + 1;
    }
    let time = |key: &str| window[key].as_str().unwrap_or("?").to_owned();
    format!("{} {}-{}", groups.join(","), time("start"), time("end"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_shorthand_expands_lists_and_ranges_and_wraps_the_week() {
        assert_eq!(
            window("mon-fri 08:00-21:00").unwrap(),
            json!({"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "21:00"})
        );
        assert_eq!(
            window(" sat,sun  10:00-24:00 ").unwrap(),
            json!({"days": ["sat", "sun"], "start": "10:00", "end": "24:00"})
        );
        assert_eq!(
            window("fri-mon,wed 9:00-x").unwrap()["days"],
            json!(["fri", "sat", "sun", "mon", "wed"])
        );
        // The times are passed on as typed: their rules are the store's.
        assert_eq!(window("mon 9:00-x").unwrap()["start"], "9:00");
    }

    #[test]
    fn a_malformed_window_says_the_shape_it_must_have() {
        for bad in [
            "",
            "mon-fri",
            "mon-fri 08:00 21:00",
            "monday 08:00-21:00",
            "mon-fry 08:00-21:00",
            "mon,,tue 08:00-21:00",
            "mon 0800",
        ] {
            let rule = window(bad).unwrap_err();
            assert!(
                rule.starts_with("must be DAYS HH:MM-HH:MM"),
                "{bad}: {rule}"
            );
        }
    }

    #[test]
    fn tables_show_windows_in_the_shorthand_the_flag_reads() {
        for text in [
            "mon-fri 08:00-21:00",
            "sat,sun 10:00-14:00",
            "mon,tue 00:00-24:00",
            "mon,wed-sun 09:00-17:00",
        ] {
            assert_eq!(window_text(&window(text).unwrap()), text);
        }
    }
}
