//! What a transition's UPDATE writes and builds, read from EXPLAIN.

use super::*;
use crate::db::explain;
use crate::time::Timestamp;
use rusqlite::Connection;

/// The indexes the UPDATE of a transition from `from` to `to` setting
/// `changes` opens for writing, by name.
fn indexes_written(
    conn: &Connection,
    (from, to): (Status, Status),
    changes: &Changes<'_>,
) -> Vec<String> {
    let columns: Vec<&str> = changes.columns().map(|(c, _)| c).collect();
    let shape = Shape {
        status: from != to,
        touch: changes.changes_record(),
        columns: &columns,
        new_claim: changes.new_claim,
        guard_token: true,
        guard_unspent: changes.claim_spent_at.is_some(),
    };
    explain::written(conn, &transition_sql(shape))
        .into_iter()
        .filter(|(kind, _)| kind == "index")
        .map(|(_, name)| name)
        .collect()
}

#[test]
fn a_transition_builds_no_ephemeral_table_but_the_check_constraints() {
    let mut conn = Connection::open_in_memory().unwrap();
    crate::schema::migrate(&mut conn).unwrap();
    let now = Timestamp::UNIX_EPOCH;
    let changes = Changes {
        created_session_id: Some("sess_1"),
        dispatched_at: Some(now),
        ..Changes::default()
    };
    let columns: Vec<&str> = changes.columns().map(|(c, _)| c).collect();
    let shape = Shape {
        status: true,
        touch: true,
        columns: &columns,
        new_claim: false,
        guard_token: true,
        guard_unspent: false,
    };
    let opcodes: Vec<String> = explain::program(&conn, &transition_sql(shape))
        .into_iter()
        .map(|(opcode, _)| opcode)
        .collect();
    assert!(opcodes.iter().any(|o| o == "OpenWrite"), "{opcodes:?}");
    // One is left: the table's CHECK (status IN (…)), from V1; only a
    // rebuild of the table can rewrite it. Neither the returned row nor
    // a partial index's predicate (V5) builds one any more.
    let ephemeral = opcodes.iter().filter(|o| *o == "OpenEphemeral").count();
    assert_eq!(ephemeral, 1, "{opcodes:?}");
}

#[test]
fn a_transition_rewrites_only_the_indexes_over_the_columns_it_sets() {
    let mut conn = Connection::open_in_memory().unwrap();
    crate::schema::migrate(&mut conn).unwrap();
    let now = Timestamp::UNIX_EPOCH;
    let cases = [
        (
            "complete_dispatch",
            Changes {
                created_session_id: Some("sess_1"),
                dispatched_at: Some(now),
                ..Changes::default()
            },
        ),
        (
            "cancel",
            Changes {
                cancelled_at: Some(now),
                ..Changes::default()
            },
        ),
        (
            "fail_dispatch",
            Changes {
                failure_cause: Some("no answer"),
                ..Changes::default()
            },
        ),
    ];
    for (what, changes) in &cases {
        let written = indexes_written(&conn, (Status::Dispatching, Status::Failed), changes);
        assert!(
            written.contains(&"callbacks_by_org_status".to_owned()),
            "{what}: {written:?}"
        );
        for untouched in [
            "callbacks_by_org",
            "callbacks_by_org_scheduled",
            "callbacks_by_org_source",
            "callbacks_by_org_to_number",
            "callbacks_idempotency",
        ] {
            assert!(
                !written.contains(&untouched.to_owned()),
                "{what} rewrites {untouched}: {written:?}"
            );
        }
    }
    let reschedule = Changes {
        scheduled_at: Some(now),
        ..Changes::default()
    };
    let written = indexes_written(&conn, (Status::Scheduled, Status::Scheduled), &reschedule);
    assert!(written.contains(&"callbacks_by_org_scheduled".to_owned()));
    // A reschedule keeps the status: naming it would rewrite the status
    // indexes for nothing.
    assert!(
        !written.contains(&"callbacks_by_org_status".to_owned()),
        "{written:?}"
    );
}

#[test]
fn spending_a_claim_rewrites_no_index() {
    // place_call spends the claim right before every call: it sets
    // claim_spent_at, which no index covers, and names neither status
    // nor updated_at (the record does not change), so the spend costs
    // the row's own page and the history entry, no index page.
    let mut conn = Connection::open_in_memory().unwrap();
    crate::schema::migrate(&mut conn).unwrap();
    let spend = Changes {
        claim_spent_at: Some(Timestamp::UNIX_EPOCH),
        ..Changes::default()
    };
    let written = indexes_written(&conn, (Status::Dispatching, Status::Dispatching), &spend);
    // Every transition opens the unique index on id, through which it
    // finds the row, with a write cursor; id is never set, so no entry
    // of it is rewritten.
    assert_eq!(written, vec!["sqlite_autoindex_callbacks_1".to_owned()]);
}
