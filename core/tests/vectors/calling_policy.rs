//! The calling policy's ops of the vector runner (tests/vectors/README.md,
//! "Operations"): policies of an organization and of its agents, and retry.

use callback_store::input;
use callback_store::policy::{CallOutcome, CallingPolicy};
use callback_store::Error;
use serde_json::{Map, Value};

use super::{check_keys, object, string, to_json, OrgCall, VectorResult};

/// The call of an organization op of the calling policy, or None when `op`
/// is not one.
pub fn organization_op(op: &str, a: &Map<String, Value>) -> VectorResult<Option<OrgCall>> {
    Ok(Some(match op {
        "calling_policy" => Box::new(|o| o.calling_policy().map(to_json)),
        "set_calling_policy" => {
            let policy = calling_policy(a.get("policy").ok_or("no policy")?)?;
            Box::new(move |o| policy.and_then(|p| o.set_calling_policy(&p)).map(to_json))
        }
        "agent_calling_policy" => {
            let agent = string(a, "agent_id")?;
            Box::new(move |o| o.agent_calling_policy(&agent).map(to_json))
        }
        "set_agent_calling_policy" => {
            let agent = string(a, "agent_id")?;
            let policy = calling_policy(a.get("policy").ok_or("no policy")?)?;
            Box::new(move |o| {
                policy
                    .and_then(|p| o.set_agent_calling_policy(&agent, &p))
                    .map(to_json)
            })
        }
        "clear_agent_calling_policy" => {
            let agent = string(a, "agent_id")?;
            Box::new(move |o| o.clear_agent_calling_policy(&agent).map(|()| Value::Null))
        }
        "retry" => {
            let id = string(a, "id")?;
            let outcome = string(a, "outcome")?;
            // Every binding takes an outcome as its enum: a name that is
            // not one is a broken vector, not an outcome of the store.
            let outcome: CallOutcome = outcome
                .parse()
                .map_err(|_| format!("{outcome:?} is not a call outcome"))?;
            Box::new(move |o| o.retry(&id, outcome).map(to_json))
        }
        _ => return Ok(None),
    }))
}

/// A CallingPolicy from its JSON (absent fields: the defaults), by the
/// core's reader: a key it does not know is a broken vector; a value the
/// store refuses is the step's outcome.
fn calling_policy(value: &Value) -> VectorResult<Result<CallingPolicy, Error>> {
    let map = object(value, "policy")?;
    check_keys(map, &input::CALLING_POLICY_FIELDS, "policy")?;
    if let Some(windows) = map.get("windows") {
        for window in windows.as_array().ok_or("windows must be an array")? {
            check_keys(
                object(window, "window")?,
                &input::CALLING_WINDOW_FIELDS,
                "window",
            )?;
        }
    }
    Ok(input::calling_policy(map.clone()))
}
