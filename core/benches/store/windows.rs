//! P10: claim_due when most scheduled callbacks are outside their calling
//! window. The store keeps each scheduled callback's next eligible instant
//! and claim_due seeks that index, so callbacks waiting for tomorrow's
//! window must cost nothing at claim time: the time per claimed callback
//! with 99% of them outside their window, against the same claims from a
//! file of the same size where none is (same run, paired rounds).

use std::path::{Path, PathBuf};

use callback_store::{CallingPolicy, CallingWindow, Durability, NewCallback, Weekday};
use chrono::{Duration, TimeZone, Utc};

use crate::data;
use crate::stats::{median_spread, time, Goal, Row};
use crate::workloads::fresh;

/// Monday 2030-01-07 12:00Z: when the worker claims.
fn now() -> callback_store::Timestamp {
    Utc.with_ymd_and_hms(2030, 1, 7, 12, 0, 0).unwrap()
}

/// A file of `n` scheduled callbacks due in the ten hours before `now()`:
/// `open` of them in an organization with no windows, the others in one
/// whose only window is Tuesdays 08:00–09:00 UTC (eligible tomorrow).
fn template(dir: &Path, n: usize, open: usize) -> PathBuf {
    let path = dir.join(format!("p10-{n}-{open}-v2.db"));
    if path.exists() {
        return path;
    }
    let tmp = fresh(dir, "p10-building.db");
    let store = data::open(&tmp, Durability::Normal);
    let closed = store.organization("org_closed").unwrap();
    closed
        .set_calling_policy(&CallingPolicy {
            windows: vec![CallingWindow {
                days: vec![Weekday::Tue],
                start: "08:00".into(),
                end: "09:00".into(),
            }],
            ..CallingPolicy::default()
        })
        .unwrap();
    let opened = store.organization("org_open").unwrap();
    // The open callbacks first, then the closed ones: in both files the
    // callbacks claimed are neighbours in the table, so that the pair
    // differs only in what waits outside its window.
    let at = |i: usize, of: usize| {
        now() - Duration::hours(10) + Duration::milliseconds((i as i64 * 36_000_000) / of as i64)
    };
    for (org, count) in [(&opened, open), (&closed, n - open)] {
        for start in (0..count).step_by(1000) {
            let batch = (start..(start + 1000).min(count))
                .map(|i| NewCallback::new(format!("+1201555{:04}", i % 10_000), at(i, count)))
                .collect();
            org.create_many(batch).unwrap();
        }
    }
    store.with_connection(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap());
    drop(store);
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// A fresh copy of `template`, on disk before any clock starts (its
/// writeback would otherwise land inside the timed claims), opened.
fn copy(template: &Path, dir: &Path, name: &str) -> callback_store::Store {
    let path = fresh(dir, name);
    std::fs::copy(template, &path).unwrap();
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    data::open(&path, Durability::Normal)
}

/// Claims `count` callbacks by 100; returns the time per claimed callback
/// in microseconds.
fn claim(store: &callback_store::Store, count: usize) -> f64 {
    let (took, claimed) = time(|| {
        let mut claimed = 0;
        while claimed < count {
            let limit = (count - claimed).min(100) as u32;
            let batch = store.claim_due(now(), limit).unwrap();
            assert!(!batch.is_empty(), "fewer than {count} eligible callbacks");
            claimed += batch.len();
        }
        claimed
    });
    assert_eq!(claimed, count);
    took.as_secs_f64() * 1e6 / count as f64
}

/// P10: the time per claimed callback among `n` scheduled, 99% of them
/// outside their window, against `n` all inside.
pub fn p10_claim_outside_windows(dir: &Path, n: usize, rounds: usize) -> Row {
    let open = (n / 100).max(100);
    let mixed = copy(&template(dir, n, open), dir, "p10-mixed.db");
    let all_open = copy(&template(dir, n, n), dir, "p10-open.db");
    // Each round claims the next share of the eligible callbacks of both
    // files, alternating which goes first: no file is copied between rounds.
    let per_round = open / rounds;
    let mut ratios = Vec::new();
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (with_closed, without) = if round % 2 == 0 {
            let a = claim(&mixed, per_round);
            (a, claim(&all_open, per_round))
        } else {
            let b = claim(&all_open, per_round);
            (claim(&mixed, per_round), b)
        };
        ratios.push(with_closed / without);
        ours.push(with_closed);
        baseline.push(without);
    }
    let (ratio, low, high) = median_spread(&ratios);
    Row::new(
        "P10",
        &format!("claim_due by 100: {per_round} a round of {open} eligible among {n} scheduled, 99% outside their window"),
        median_spread(&ours).0,
        median_spread(&baseline).0,
        "us/claimed",
        Goal::AtMost,
        1.2,
    )
    .paired_ratio(ratio)
    .note(format!(
        "baseline: {n} scheduled, none outside; median of {rounds} paired rounds on one copy of each file, ratios {low:.2}-{high:.2}"
    ))
}
