//! I1: instructions per drained callback under `valgrind --tool=callgrind`,
//! the store against the raw baseline (issue 14). Seconds move with the
//! noise of a shared machine; instruction counts do not: the same binary,
//! data and workload count the same whatever else the machine does.
//!
//! Each side drains two copies of one file of due callbacks (claim by 100,
//! complete each in its own transaction), one of `SMALL` and one of `LARGE`
//! callbacks, each in a child process of this bench binary run under
//! callgrind. The difference of the two counts, over `LARGE - SMALL`, is
//! the cost of one drained callback, without the process's start, the
//! store's open and the file's first reads, which both runs share.

use std::path::{Path, PathBuf};
use std::process::Command;

use callback_store::{Durability, Timestamp};
use chrono::Duration;

use crate::data::{self, t0};
use crate::drain::{copy_of, drain, due_file, Finish};
use crate::raw;
use crate::stats::{Goal, Row};

const SMALL: usize = 300;
const LARGE: usize = 1300;

fn now() -> Timestamp {
    t0() + Duration::days(30)
}

/// The child's work: `--drain-for-callgrind ours|raw FILE`.
pub fn child(side: &str, db: &Path) {
    let drained = match side {
        "ours" => drain(
            &data::open(db, Durability::Normal),
            now(),
            Finish::CompleteWithToken,
        ),
        "raw" => raw::drain(&mut raw::open(db, Durability::Normal), now()),
        other => panic!("--drain-for-callgrind: unknown side {other}"),
    };
    println!("{drained}");
}

/// Instructions callgrind counted for one child run.
fn count(dir: &Path, side: &str, template: &Path, n: usize) -> u64 {
    let db = copy_of(template, dir, &format!("callgrind-{side}-{n}.db"));
    let out_file: PathBuf = dir.join(format!("callgrind-{side}-{n}.out"));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(std::env::current_exe().unwrap())
        .args(["--drain-for-callgrind", side])
        .arg(&db)
        .output()
        .expect("valgrind runs (apt-get install valgrind)");
    assert!(output.status.success(), "callgrind run of {side} failed");
    let drained: usize = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(drained, n, "{side} drained every due callback");
    // "==pid== Collected : 123456789" on stderr.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let collected = stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .expect("callgrind reports the instructions it collected");
    collected.trim().parse().unwrap()
}

pub fn i1_instructions_per_drained_callback(dir: &Path) -> Row {
    let per_callback = |side: &str| {
        let small = count(dir, side, &due_file(dir, SMALL), SMALL);
        let large = count(dir, side, &due_file(dir, LARGE), LARGE);
        large.saturating_sub(small) as f64 / (LARGE - SMALL) as f64
    };
    let ours = per_callback("ours");
    let base = per_callback("raw");
    Row::new(
        "I1",
        "instructions per drained callback (claim_due by 100 + complete_dispatch), callgrind",
        ours,
        base,
        "instr",
        Goal::AtMost,
        0.0,
    )
    .no_target()
    .note(format!(
        "difference of {LARGE}- and {SMALL}-callback drains; deterministic, whatever the load"
    ))
}
