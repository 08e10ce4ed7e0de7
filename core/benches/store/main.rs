//! `cargo bench -p callback-store`: the store against raw rusqlite doing the
//! same SQL work, side by side in one run. Prints a table and writes
//! target/bench/results.json. Sizes: BENCH_ROWS (P1, P4; default 100000),
//! BENCH_BIG (P3, P6, P7; default 1000000), BENCH_P5 (default 20000),
//! BENCH_REPS (latency samples; default 500), BENCH_P10 (scheduled
//! callbacks of P10; default 1000000), BENCH_P10_ROUNDS (default 5),
//! BENCH_ONLY (e.g. `P1,P3`;
//! `GET10K` is the 10k-table row of P6 alone, without the 1M data set: the
//! Rust figure bench/python/bench_peers.py pairs its `org.get(id)` with;
//! `I1` counts instructions per drained callback under valgrind's callgrind).
//!
//! With the core feature `postgres` (scripts/bench.sh builds it so), also
//! P8 and P9 on the PostgreSQL cluster of BENCH_PG_URL: BENCH_P8 (due
//! callbacks per run; default 5000), BENCH_P8_ROUNDS (default 5),
//! BENCH_P9_ROUNDS (default 5; BENCH_BIG is P9's big table too).

mod ceiling;
mod data;
mod drain;
mod groups;
mod instructions;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
mod pg_drain;
#[cfg(feature = "postgres")]
mod pg_list;
mod raw;
mod stats;
mod windows;
mod workloads;

use std::path::{Path, PathBuf};

use callback_store::Durability;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    dir
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--worker") => return drain::worker(Path::new(&args[2]), Path::new(&args[3])),
        Some("--p7") => return workloads::p7_child(Path::new(&args[2])),
        Some("--drain-for-callgrind") => return instructions::child(&args[2], Path::new(&args[3])),
        #[cfg(feature = "postgres")]
        Some("--pg-worker") => return pg_drain::worker(&args[2], &args[3], Path::new(&args[4])),
        _ => {}
    }
    let dir = bench_dir();
    let data_dir = dir.join("data");
    let rows_n = env_usize("BENCH_ROWS", 100_000);
    let big_n = env_usize("BENCH_BIG", 1_000_000);
    let p5_n = env_usize("BENCH_P5", 20_000);
    let reps = env_usize("BENCH_REPS", 500);

    // BENCH_ONLY: a comma-separated list of workload ids; unset or empty: all.
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty());
    let runs = |id: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == id));
    if let Some(o) = &only {
        let known = [
            "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "GET10K", "I1",
        ];
        if let Some(bad) = o.iter().find(|x| !known.contains(&x.as_str())) {
            eprintln!(
                "bench: unknown workload {bad} in BENCH_ONLY (known: {})",
                known.join(", ")
            );
            std::process::exit(2);
        }
        if cfg!(not(feature = "postgres")) && o.iter().any(|x| x == "P8" || x == "P9") {
            eprintln!("bench: P8 and P9 need the core feature postgres (--features postgres)");
            std::process::exit(2);
        }
    }

    let mut rows = Vec::new();
    let step = |name: &str| eprintln!("bench: {name}");
    if runs("P1") {
        step("P1");
        rows.push(workloads::p1_create_many(&data_dir, rows_n));
    }
    if runs("P2") {
        step("P2");
        rows.push(workloads::p2_create_one_by_one(
            &data_dir,
            5_000,
            Durability::Normal,
        ));
        rows.push(workloads::p2_create_one_by_one(
            &data_dir,
            500,
            Durability::Full,
        ));
    }
    let needs_big = runs("P3") || runs("P6") || runs("P7");
    let big = data_dir.join(format!("list-{big_n}-v2.db"));
    let small = data_dir.join("list-10000-v2.db");
    if needs_big || runs("GET10K") {
        step("building the list data sets (cached in target/bench/data)");
        if needs_big {
            drop(data::populated(&big, big_n));
        }
        drop(data::populated(&small, 10_000));
    }
    if runs("P3") {
        step("P3");
        rows.extend(workloads::p3_list(&big, &small, reps));
    }
    if runs("P4") {
        step("P4, with the machine's ceiling (C1-C5), the WAL frames per operation (W1-W4) and 8 threads sharing commits");
        let ceiling = ceiling::ceiling(&data_dir, rows_n);
        let p4 = drain::p4_claim_and_complete(&data_dir, rows_n);
        let p4_rate = p4[0].ours;
        rows.extend(ceiling.rows.iter().cloned());
        rows.extend(p4);
        rows.push(ceiling::p4_of_ceiling(p4_rate, &ceiling));
        let due = drain::due_file(&data_dir, rows_n);
        rows.extend(ceiling::wal_frames(&data_dir, &due, &ceiling));
        rows.extend(groups::p4_shared_commits(&data_dir, rows_n, &ceiling));
    }
    if runs("I1") {
        step("I1: instructions per drained callback under valgrind --tool=callgrind");
        rows.push(instructions::i1_instructions_per_drained_callback(
            &data_dir,
        ));
    }
    if runs("P5") {
        step("P5");
        rows.push(drain::p5_worker_processes(&data_dir, p5_n));
    }
    if runs("P6") || runs("GET10K") {
        step(if runs("P6") {
            "P6"
        } else {
            "GET10K (the 10k row of P6)"
        });
        let big = runs("P6").then_some(big.as_path());
        rows.extend(workloads::p6_get(big, &small, reps.max(2_000)));
    }
    if runs("P7") {
        step("P7");
        rows.push(workloads::p7_peak_memory(&big));
    }
    let p10_n = env_usize("BENCH_P10", 1_000_000);
    if runs("P10") {
        step("P10 (building its two data sets once, cached in target/bench/data)");
        let rounds = env_usize("BENCH_P10_ROUNDS", 5).max(1);
        rows.push(windows::p10_claim_outside_windows(&data_dir, p10_n, rounds));
    }

    #[cfg(feature = "postgres")]
    let pg_sizes = {
        let p8_n = env_usize("BENCH_P8", 5_000);
        let p8_rounds = env_usize("BENCH_P8_ROUNDS", 5).max(1);
        let p9_rounds = env_usize("BENCH_P9_ROUNDS", 5).max(1);
        if runs("P9") {
            step("P9 (PostgreSQL)");
            rows.extend(pg_list::p9_list(big_n, reps, p9_rounds));
        }
        if runs("P8") {
            step("P8 (PostgreSQL)");
            rows.extend(pg_drain::p8_worker_processes(&dir, p8_n, p8_rounds));
        }
        let server = (runs("P8") || runs("P9")).then(|| {
            let mut client = pg::connect(&pg::base_url());
            let show = |client: &mut postgres::Client, what: &str| -> String {
                client
                    .query_one(&format!("SHOW {what}"), &[])
                    .unwrap()
                    .get(0)
            };
            serde_json::json!({
                "server_version": show(&mut client, "server_version"),
                "fsync": show(&mut client, "fsync"),
                "synchronous_commit": show(&mut client, "synchronous_commit"),
                "shared_buffers": show(&mut client, "shared_buffers"),
            })
        });
        serde_json::json!({
            "p8": p8_n, "p8_rounds": p8_rounds, "p9_rounds": p9_rounds, "server": server,
        })
    };
    #[cfg(not(feature = "postgres"))]
    let pg_sizes = serde_json::Value::Null;

    stats::print_table(&rows);
    let report = serde_json::json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        },
        "sizes": {"rows": rows_n, "big": big_n, "p5": p5_n, "p10": p10_n, "reps": reps, "postgres": pg_sizes},
        "only": only,
        "rows": rows,
    });
    let out = dir.join("results.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    eprintln!("bench: wrote {}", out.display());
}
