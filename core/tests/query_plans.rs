//! Every statement the store runs on callbacks finds its rows through an
//! index, never by scanning the table, with no statistics (no ANALYZE): one
//! EXPLAIN QUERY PLAN per list filter combination and order, with and
//! without a cursor, and for claim_due, recover_stale, prune, get, the
//! guarded transition UPDATE, idempotency look-ups and history.
//!
//! The SQL is copied from core/src/db.rs, db/moves.rs and db/chain.rs; the first test fails
//! when they no longer contain these templates, so that the copies are kept in
//! step.

mod common;

use common::plans::{assert_searches, normalized, plan, plans_store};

use callback_store::transitions::{is_terminal, outcome, Action, Outcome};
use callback_store::Status;

const DB_RS: &str = concat!(
    include_str!("../src/db.rs"),
    include_str!("../src/db/moves.rs"),
    include_str!("../src/db/policies.rs"),
    include_str!("../src/db/chain.rs"),
    include_str!("../src/db/rows.rs"),
    include_str!("../src/db/stats.rs")
);

// ---- Copied from core/src/db.rs and core/src/db/moves.rs ----

const CALLBACK_COLUMNS: &str = "seq, id, organization_id, source_session_id, created_session_id, \
    agent_id, phone_number_id, to_number, from_number, scheduled_at, status, reason, instructions, \
    summary, pipeline_config, metadata, failure_cause, attempted_at, dispatched_at, cancelled_at, \
    created_at, updated_at, timezone, expires_at, attempt, previous_callback_id";

/// `Dao::list`: the organization, the optional filters in their order,
/// then one of four shapes by order and cursor.
const LIST_ORG: &str = "organization_id = :org";
const LIST_SELECT: &str = "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE {filter}";
const LIST_FILTERS: [&str; 6] = [
    "status = :status",
    "source_session_id = :source",
    "agent_id = :agent",
    "to_number = :to",
    "scheduled_at >= :after",
    "scheduled_at < :before",
];
/// The statements of each (order, cursor): created_desc, created_desc after
/// a cursor, scheduled_asc, and scheduled_asc after a cursor (the rest of
/// the tie, then the later times).
const LIST_SHAPES: [&str; 5] = [
    "{select} ORDER BY seq DESC LIMIT :rows",
    "{select} AND seq < :seq ORDER BY seq DESC LIMIT :rows",
    "{select} ORDER BY scheduled_at, seq LIMIT :rows",
    "{select} AND scheduled_at = :sort_key AND seq > :seq ORDER BY seq LIMIT :rows",
    "{select} AND scheduled_at > :sort_key ORDER BY scheduled_at, seq LIMIT :rows",
];

const GET: &str = "SELECT {CALLBACK_COLUMNS} FROM callbacks
             WHERE id = ?1 AND (?2 IS NULL OR organization_id = ?2)";

const FIND_BY_IDEMPOTENCY_KEY: &str = "SELECT {CALLBACK_COLUMNS}, request_hash FROM callbacks
             WHERE organization_id = ?1 AND idempotency_key = ?2";

/// `{set}` is the columns the transition sets, e.g. `status = :to,
/// dispatched_at = :dispatched_at`; `{guard}` the claim's conditions, when a
/// claim is given.
const APPLY_TRANSITION: &str = "UPDATE callbacks SET {set}
             WHERE id = :id AND (:org IS NULL OR organization_id = :org) AND status = :from{guard}";
/// The transitioned row, read back (no RETURNING: moves.rs says why).
const TRANSITIONED: &str = "SELECT {CALLBACK_COLUMNS}, claim_token FROM callbacks WHERE id = ?1";
const CLAIM_GUARD: [&str; 2] = [" AND claim_token = :token", " AND claim_spent_at IS NULL"];

/// A callback's events, walked back by rowid from the callback's last
/// event (`{callbacks}` selects the callbacks whose chains are walked).
const CHAIN: &str = "WITH RECURSIVE chain(seq) AS (
                 SELECT last_event_seq FROM callbacks WHERE {callbacks}
                 UNION ALL
                 SELECT e.previous_event_seq FROM callback_events e JOIN chain ON e.seq = chain.seq
                 WHERE e.previous_event_seq < e.seq
             )";
const HISTORY_CALLBACK: &str = "id = ?1 AND organization_id = ?2";
const HISTORY: &str = "SELECT {EVENT_COLUMNS}
             FROM chain CROSS JOIN callback_events e ON e.seq = chain.seq
                 CROSS JOIN callbacks c ON c.seq = e.callback_seq
             ORDER BY e.seq";
/// Appending an event reads the callback's last one by rowid.
const APPEND_EVENT: &str = "INSERT INTO callback_events
             (callback_seq, action, from_status, to_status, at, detail, previous_event_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT last_event_seq FROM callbacks WHERE seq = ?1))";
const LINK_EVENT: &str = "UPDATE callbacks SET last_event_seq = last_insert_rowid() WHERE seq = ?1";
const EVENT_COLUMNS: &str = "c.id, e.action, e.from_status, e.to_status, e.at, e.detail";

const CANDIDATE_COLUMNS: &str =
    "seq, organization_id, agent_id, timezone, scheduled_at, expires_at, window_ends_at";

/// claim_due's candidates: scheduled callbacks whose next eligible instant
/// has come.
const DUE_CANDIDATES: &str = "SELECT {CANDIDATE_COLUMNS} FROM callbacks
             WHERE status = '{from}' AND eligible_at <= ?1
             ORDER BY eligible_at, seq LIMIT ?2";

/// expire_overdue's sweep.
const OVERDUE: &str = "SELECT seq FROM callbacks
             WHERE status = '{from}' AND expires_at IS NOT NULL AND expires_at <= ?1
             ORDER BY expires_at, seq LIMIT ?2";

/// The store-wide moves of the callbacks picked (claim_due, expire).
const MOVE_PICKED: &str = "UPDATE callbacks SET {set}
             WHERE seq IN (SELECT value FROM json_each(:seqs)) AND status = '{from}'
             RETURNING {CALLBACK_COLUMNS}, claim_token";

const POLICIES: &str = "SELECT agent_id, policy FROM calling_policies
             WHERE organization_id = ?1 AND agent_id IN ('', ?2)";

const FOLLOW_UP_OF: &str =
    "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE previous_callback_id = ?1";
const NEW_TOKEN: &str = "lower(hex(randomblob(16)))";

const RECOVER_STALE: &str = "UPDATE callbacks SET {set}
             WHERE status = '{from}' AND attempted_at < :horizon
             RETURNING {CALLBACK_COLUMNS}";

/// prune: the finished callbacks `{doomed}` selects, their events by chain
/// first, then the callbacks.
const PRUNE_DOOMED: &str = "{finished} AND updated_at < ?1";
const PRUNE_EVENTS: &str = "DELETE FROM callback_events WHERE seq IN (SELECT seq FROM chain)";
const PRUNE: &str = "DELETE FROM callbacks WHERE {doomed}";

const COUNT_BY_STATUS: &str =
    "SELECT status, COUNT(*) FROM callbacks WHERE organization_id = ?1 GROUP BY status";

// ---- Copied from core/src/db/stats.rs ----

const COUNT_ALL_BY_STATUS: &str =
    "SELECT organization_id, status, COUNT(*) FROM callbacks GROUP BY organization_id, status";
/// The due callbacks (`{filter}`) of one organization (`{organization}`,
/// empty for all), inside their window or with their window closed.
const STATS_ORGANIZATION: &str = "organization_id = {org} AND scheduled_at <= {now} AND ";
const STATS_DUE: &str = "{organization}status = '{scheduled}' AND eligible_at <= {now} AND (expires_at IS NULL OR expires_at > {now})";
const STATS_DUE_IN_WINDOW: &str =
    "SELECT organization_id || '', COUNT(*), MIN(eligible_at) FROM callbacks
             WHERE {filter} AND (window_ends_at IS NULL OR window_ends_at > {now})
             GROUP BY organization_id || ''";
const STATS_DUE_WINDOW_CLOSED: &str = "SELECT {CANDIDATE_COLUMNS}, eligible_at FROM callbacks
             WHERE {filter} AND window_ends_at <= {now}";

// ---- end of the copies ----

/// `(from, to)` of a store-wide action, from the public transition table.
fn bulk_move(action: Action) -> (Status, Status) {
    let moves: Vec<(Status, Status)> = Status::ALL
        .into_iter()
        .filter_map(|from| match outcome(from, action) {
            Outcome::Move(to) => Some((from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(moves.len(), 1, "{action}");
    moves[0]
}

fn render(template: &str, action: Option<Action>) -> String {
    let mut sql = template
        .replace("{CALLBACK_COLUMNS}", CALLBACK_COLUMNS)
        .replace("{CANDIDATE_COLUMNS}", CANDIDATE_COLUMNS)
        .replace("{EVENT_COLUMNS}", EVENT_COLUMNS)
        .replace(
            "{set}",
            &format!("status = :to, dispatched_at = :dispatched_at, claim_token = {NEW_TOKEN}"),
        )
        .replace("{guard}", &CLAIM_GUARD.concat());
    if let Some(action) = action {
        let (from, to) = bulk_move(action);
        sql = sql
            .replace("{from}", from.as_str())
            .replace("{to}", to.as_str());
    }
    sql
}

/// The statements `Dao::list` runs for these filters (indexes into
/// LIST_FILTERS), this order (0 created_desc, 1 scheduled_asc) and, when
/// `cursor`, a keyset position.
fn list_sql(filters: &[usize], order: usize, cursor: bool) -> Vec<String> {
    let mut filter = LIST_ORG.to_owned();
    for &f in filters {
        filter.push_str(" AND ");
        filter.push_str(LIST_FILTERS[f]);
    }
    let select = render(LIST_SELECT, None).replace("{filter}", &filter);
    let shapes: &[&str] = match (order, cursor) {
        (0, false) => &LIST_SHAPES[0..1],
        (0, true) => &LIST_SHAPES[1..2],
        (_, false) => &LIST_SHAPES[2..3],
        (_, true) => &LIST_SHAPES[3..5],
    };
    shapes
        .iter()
        .map(|shape| shape.replace("{select}", &select))
        .collect()
}

/// prune's two statements: the events of the doomed callbacks, by chain,
/// then the callbacks.
fn prune_sql() -> [String; 2] {
    let finished: Vec<String> = Status::ALL
        .into_iter()
        .filter(|s| is_terminal(*s))
        .map(|s| format!("status = '{s}'"))
        .collect();
    let finished = format!("({})", finished.join(" OR "));
    let doomed = PRUNE_DOOMED.replace("{finished}", &finished);
    let chain = CHAIN.replace("{callbacks}", &doomed);
    [
        format!("{chain} {PRUNE_EVENTS}"),
        PRUNE.replace("{doomed}", &doomed),
    ]
}

fn history_sql() -> String {
    let chain = CHAIN.replace("{callbacks}", HISTORY_CALLBACK);
    format!("{chain} {}", render(HISTORY, None))
}

#[test]
fn the_sql_checked_here_is_the_sql_in_db_rs() {
    let source = normalized(DB_RS);
    let copies = [
        CALLBACK_COLUMNS.to_owned(),
        LIST_ORG.to_owned(),
        LIST_SELECT.to_owned(),
        GET.to_owned(),
        FIND_BY_IDEMPOTENCY_KEY.to_owned(),
        APPLY_TRANSITION.to_owned(),
        TRANSITIONED.to_owned(),
        CHAIN.to_owned(),
        format!("\"{HISTORY_CALLBACK}\""),
        HISTORY.to_owned(),
        APPEND_EVENT.to_owned(),
        LINK_EVENT.to_owned(),
        format!("\"{PRUNE_DOOMED}\""),
        PRUNE_EVENTS.to_owned(),
        format!("\"{EVENT_COLUMNS}\""),
        format!("\"{CANDIDATE_COLUMNS}\""),
        DUE_CANDIDATES.to_owned(),
        OVERDUE.to_owned(),
        MOVE_PICKED.to_owned(),
        POLICIES.to_owned(),
        FOLLOW_UP_OF.to_owned(),
        format!("\"{NEW_TOKEN}\""),
        RECOVER_STALE.to_owned(),
        format!("\"{COUNT_ALL_BY_STATUS}\""),
        format!("\"{STATS_ORGANIZATION}\""),
        format!("\"{STATS_DUE}"),
        STATS_DUE_IN_WINDOW.to_owned(),
        STATS_DUE_WINDOW_CLOSED.to_owned(),
        PRUNE.to_owned(),
        COUNT_BY_STATUS.to_owned(),
    ];
    let fragments = LIST_FILTERS
        .iter()
        .chain(&CLAIM_GUARD)
        .map(|f| format!("\"{f}\""));
    let shapes = LIST_SHAPES.iter().map(|s| s.to_string());
    for copy in copies.into_iter().chain(fragments).chain(shapes) {
        assert!(
            source.contains(&normalized(&copy)),
            "core/src/db.rs and db/moves.rs no longer contain this statement; update the copy here \
             and check its plan:\n{copy}"
        );
    }
    // The filters are appended in this order, so the combinations below are
    // the statements `Dao::list` can build.
    let positions: Vec<usize> = LIST_FILTERS
        .iter()
        .map(|f| source.find(&format!("\"{f}\"")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]));
}

#[test]
fn every_list_filter_combination_and_order_searches_an_organization_index() {
    let store = plans_store();
    let mut checked = 0;
    for mask in 0u32..(1 << LIST_FILTERS.len()) {
        let filters: Vec<usize> = (0..LIST_FILTERS.len())
            .filter(|f| mask & (1 << f) != 0)
            .collect();
        for order in [0, 1] {
            for cursor in [false, true] {
                for sql in list_sql(&filters, order, cursor) {
                    let lines = plan(&store, &sql);
                    assert_searches("list", &sql, &lines, &[]);
                    assert!(
                        lines.iter().any(|l| l.contains("INDEX callbacks_by_org")),
                        "list must search an index led by the organization\n{sql}\n{lines:#?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 64 * 5);
}

#[test]
fn a_list_by_one_filter_in_its_own_order_reads_its_index_in_order_without_sorting() {
    let store = plans_store();
    // (filter, order, index): the indexes the migration made for these.
    let cases: [(Option<usize>, usize, &str); 7] = [
        (None, 0, "callbacks_by_org"),
        (Some(0), 0, "callbacks_by_org_status"),
        (Some(1), 0, "callbacks_by_org_source"),
        (Some(2), 0, "callbacks_by_org_agent"),
        (Some(3), 0, "callbacks_by_org_to_number"),
        (None, 1, "callbacks_by_org_scheduled"),
        (Some(0), 1, "callbacks_by_org_status_scheduled"),
    ];
    for (filter, order, index) in cases {
        for cursor in [false, true] {
            let filters: Vec<usize> = filter.into_iter().collect();
            for sql in list_sql(&filters, order, cursor) {
                let lines = plan(&store, &sql);
                assert_searches("list", &sql, &lines, &[index]);
                assert!(
                    !lines.iter().any(|l| l.contains("TEMP B-TREE")),
                    "a page must not sort every match\n{sql}\n{lines:#?}"
                );
            }
        }
    }
}

#[test]
fn claim_due_searches_the_partial_index_of_next_eligible_instants() {
    // Callbacks outside their window have a later eligible_at: the seek
    // never reads them, however many there are.
    let store = plans_store();
    let sql = render(DUE_CANDIDATES, Some(Action::ClaimDue));
    assert!(sql.contains("status = 'scheduled'"));
    let lines = plan(&store, &sql);
    assert_searches("claim_due", &sql, &lines, &["callbacks_due"]);
    assert!(
        !lines.iter().any(|l| l.contains("TEMP B-TREE")),
        "the due index gives the order\n{lines:#?}"
    );
    for (what, template, action, index) in [
        ("claim_due's move", MOVE_PICKED, Action::ClaimDue, None),
        ("expire's move", MOVE_PICKED, Action::Expire, None),
        (
            "the deadline sweep",
            OVERDUE,
            Action::Expire,
            Some("callbacks_expiring"),
        ),
    ] {
        let sql = render(template, Some(action));
        let lines = plan(&store, &sql);
        assert_searches(what, &sql, &lines, index.as_slice());
        assert!(
            !lines.iter().any(|l| l.contains("TEMP B-TREE")),
            "{what}: {lines:#?}"
        );
    }
}

#[test]
fn policies_and_follow_ups_are_found_by_index() {
    let store = plans_store();
    for (what, template, index) in [
        ("policies", POLICIES, "sqlite_autoindex_calling_policies_1"),
        ("follow_up_of", FOLLOW_UP_OF, "callbacks_follow_up"),
    ] {
        let sql = render(template, None);
        assert_searches(what, &sql, &plan(&store, &sql), &[index]);
    }
}

#[test]
fn recover_stale_searches_the_partial_index_of_dispatching_callbacks() {
    let store = plans_store();
    let sql = render(RECOVER_STALE, Some(Action::RecoverStale));
    assert!(sql.contains("status = 'dispatching'"));
    let lines = plan(&store, &sql);
    assert_searches("recover_stale", &sql, &lines, &["callbacks_stale"]);
}

/// Fails unless every line of the plan that reads the events reads them by
/// rowid: with no index of events by callback (migration V5), anything
/// else would scan the whole log.
fn assert_events_by_rowid(what: &str, lines: &[String]) {
    let events: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.contains("callback_events") || l.starts_with("SEARCH e ") || l.starts_with("SCAN e")
        })
        .collect();
    assert!(!events.is_empty(), "{what} reads no event\n{lines:#?}");
    for line in events {
        assert!(
            line.starts_with("SEARCH ") && line.contains("INTEGER PRIMARY KEY (rowid=?)"),
            "{what} must read events by rowid: {line}\n{lines:#?}"
        );
    }
}

#[test]
fn prune_searches_the_partial_index_of_finished_callbacks_and_walks_their_events_by_rowid() {
    let store = plans_store();
    let [events, callbacks] = prune_sql();
    assert_eq!(
        callbacks,
        "DELETE FROM callbacks WHERE (status = 'dispatched' OR status = 'cancelled' \
         OR status = 'failed') AND updated_at < ?1"
    );
    let lines = plan(&store, &callbacks);
    assert_searches("prune", &callbacks, &lines, &["callbacks_finished"]);
    let lines = plan(&store, &events);
    assert_searches("prune's events", &events, &lines, &["callbacks_finished"]);
    assert_events_by_rowid("prune's events", &lines);
}

#[test]
fn appending_an_event_reads_the_callbacks_last_event_by_rowid() {
    let store = plans_store();
    for (what, sql) in [("append", APPEND_EVENT), ("link", LINK_EVENT)] {
        let lines = plan(&store, sql);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("SEARCH callbacks USING INTEGER PRIMARY KEY (rowid=?)")),
            "{what}: {lines:#?}"
        );
        assert!(
            !lines.iter().any(|l| l.starts_with("SCAN ")),
            "{what}: {lines:#?}"
        );
    }
}

#[test]
fn get_by_id_and_the_guarded_transition_search_the_unique_id_index() {
    let store = plans_store();
    for (what, template) in [
        ("get", GET),
        ("apply_transition", APPLY_TRANSITION),
        ("the transitioned row", TRANSITIONED),
    ] {
        let sql = render(template, None);
        let lines = plan(&store, &sql);
        assert_searches(what, &sql, &lines, &[]);
        assert!(
            lines.iter().any(|l| l.contains("(id=?)")),
            "{what} must look the id up\n{lines:#?}"
        );
    }
}

#[test]
fn history_searches_the_callback_by_id_and_walks_its_events_by_rowid() {
    let store = plans_store();
    let history = history_sql();
    let lines = plan(&store, &history);
    assert_searches("history", &history, &lines, &[]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("SEARCH callbacks ") && l.contains("(id=?)")),
        "history must look the callback up by id\n{lines:#?}"
    );
    assert_events_by_rowid("history", &lines);
}

#[test]
fn idempotency_lookups_and_counts_by_status_search_an_organization_index() {
    let store = plans_store();
    let sql = render(FIND_BY_IDEMPOTENCY_KEY, None);
    let lines = plan(&store, &sql);
    assert_searches(
        "find_by_idempotency_key",
        &sql,
        &lines,
        &["callbacks_idempotency"],
    );
    let lines = plan(&store, COUNT_BY_STATUS);
    assert_searches("count_by_status", COUNT_BY_STATUS, &lines, &[]);
}

/// The stats' due statements, for one organization and for all.
fn stats_due_sql() -> Vec<(String, String)> {
    let (scheduled, _) = bulk_move(Action::ClaimDue);
    let mut statements = Vec::new();
    for (who, organization, now) in [
        (
            "one organization",
            STATS_ORGANIZATION
                .replace("{org}", "?1")
                .replace("{now}", "?2"),
            "?2",
        ),
        ("every organization", String::new(), "?1"),
    ] {
        let filter = STATS_DUE
            .replace("{organization}", &organization)
            .replace("{scheduled}", scheduled.as_str())
            .replace("{now}", now);
        for (what, template) in [
            ("due_in_window", STATS_DUE_IN_WINDOW),
            ("due_window_closed", STATS_DUE_WINDOW_CLOSED),
        ] {
            let sql = render(template, None)
                .replace("{filter}", &filter)
                .replace("{now}", now);
            statements.push((format!("{what} of {who}"), sql));
        }
    }
    statements
}

#[test]
fn the_stats_due_backlog_searches_an_index_for_one_organization_and_for_all() {
    let store = plans_store();
    for (what, sql) in stats_due_sql() {
        let lines = plan(&store, &sql);
        assert_searches(&what, &sql, &lines, &[]);
    }
}

#[test]
fn the_stats_count_of_every_organization_reads_the_status_index_not_the_table() {
    // Counting every callback reads an entry of each; the index on
    // (organization_id, status) holds both columns, so the table is not read.
    let store = plans_store();
    let lines = plan(&store, COUNT_ALL_BY_STATUS);
    assert_eq!(
        lines,
        ["SCAN callbacks USING COVERING INDEX callbacks_by_org_status"],
        "{COUNT_ALL_BY_STATUS}"
    );
}

#[test]
fn the_plan_checker_rejects_a_full_scan() {
    let store = plans_store();
    let sql = "SELECT * FROM callbacks WHERE reason = 'x'";
    let lines = plan(&store, sql);
    assert!(
        lines.iter().any(|l| l.starts_with("SCAN callbacks")),
        "{lines:?}"
    );
    let caught = std::panic::catch_unwind(|| assert_searches("scan", sql, &lines, &[]));
    assert!(caught.is_err(), "a full scan must fail the check");
}
