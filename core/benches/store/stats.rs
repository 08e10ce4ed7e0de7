//! Timing helpers and the result rows of the report.

use std::time::{Duration, Instant};

use serde::Serialize;

pub fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// Latency percentiles of `reps` runs of `f`, after a short warm-up.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
}

pub fn latency(reps: usize, mut f: impl FnMut(usize)) -> Latency {
    for i in 0..reps.min(20) {
        f(i);
    }
    let mut samples: Vec<Duration> = (0..reps)
        .map(|i| {
            let start = Instant::now();
            f(i);
            start.elapsed()
        })
        .collect();
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    Latency {
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}

/// Whether bigger or smaller ratios are better.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    AtLeast,
    AtMost,
}

/// One line of the report: a figure, its baseline from the same run, and
/// the ratio the target is about.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub workload: String,
    pub ours: f64,
    pub baseline: f64,
    pub unit: String,
    pub ratio: f64,
    pub goal: Goal,
    /// None for a figure the issue sets no target for (null in the JSON).
    pub target: Option<f64>,
    pub met: Option<bool>,
    pub note: String,
}

impl Row {
    /// `ratio` = ours / baseline.
    pub fn new(
        id: &str,
        workload: &str,
        ours: f64,
        baseline: f64,
        unit: &str,
        goal: Goal,
        target: f64,
    ) -> Row {
        let ratio = ours / baseline;
        let met = match goal {
            Goal::AtLeast => ratio >= target,
            Goal::AtMost => ratio <= target,
        };
        Row {
            id: id.into(),
            workload: workload.into(),
            ours,
            baseline,
            unit: unit.into(),
            ratio,
            goal,
            target: Some(target),
            met: Some(met),
            note: String::new(),
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// The ratio measured otherwise than ours / baseline (the median of
    /// paired runs' ratios), with `met` judged on it.
    pub fn paired_ratio(mut self, ratio: f64) -> Row {
        self.ratio = ratio;
        if let Some(target) = self.target {
            self.met = Some(match self.goal {
                Goal::AtLeast => ratio >= target,
                Goal::AtMost => ratio <= target,
            });
        }
        self
    }

    /// A figure reported without a target.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub fn no_target(mut self) -> Row {
        self.target = None;
        self.met = None;
        self
    }
}

/// The median of `values` and their spread (min, max).
pub fn median_spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

pub fn print_table(rows: &[Row]) {
    println!(
        "\n{:<4} {:<58} {:>14} {:>14} {:>9} {:>8}  met",
        "id", "workload", "ours", "baseline", "ratio", "target"
    );
    for r in rows {
        let target = match (r.goal, r.target) {
            (_, None) => "-".to_owned(),
            (Goal::AtLeast, Some(t)) => format!(">={t}"),
            (Goal::AtMost, Some(t)) => format!("<={t}"),
        };
        println!(
            "{:<4} {:<58} {:>10.1} {:<3} {:>10.1} {:<3} {:>9.2} {:>8}  {}{}",
            r.id,
            r.workload,
            r.ours,
            r.unit,
            r.baseline,
            r.unit,
            r.ratio,
            target,
            match r.met {
                None => "-",
                Some(true) => "yes",
                Some(false) => "NO",
            },
            if r.note.is_empty() {
                String::new()
            } else {
                format!("  ({})", r.note)
            }
        );
    }
}
