//! Shared by the benchmarks: criterion setup, and a closing table that
//! reads criterion's own median estimates and prints GB/s and the ratio of
//! every implementation to the baseline measured in the same run.

#![allow(dead_code)]

use std::path::PathBuf;

use criterion::Criterion;

/// Where criterion writes its estimates (set explicitly so the summary
/// reads the same place).
pub fn output_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CRITERION_HOME") {
        return dir.into();
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("criterion")
}

pub fn criterion() -> Criterion {
    Criterion::default()
        .output_directory(&output_dir())
        .configure_from_args()
}

/// One row of the summary: a benchmark group, the bytes each iteration
/// processes, and the id of its baseline within the group.
pub struct Row {
    pub group: String,
    pub bytes: u64,
    pub baseline: &'static str,
    pub ids: Vec<String>,
}

fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = output_dir()
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Prints `group | id | median | GB/s | × baseline` for every row that ran.
pub fn print_summary(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<34} {:<12} {:>12} {:>9} {:>12}",
        "benchmark", "impl", "median", "GB/s", "vs baseline"
    );
    for row in rows {
        let Some(base) = median_ns(&row.group, row.baseline) else {
            continue;
        };
        for id in &row.ids {
            let Some(ns) = median_ns(&row.group, id) else {
                continue;
            };
            let gbps = row.bytes as f64 / ns;
            let median = if ns >= 1000.0 {
                format!("{:.2} µs", ns / 1000.0)
            } else {
                format!("{ns:.1} ns")
            };
            println!(
                "{:<34} {:<12} {:>12} {:>9.2} {:>11.2}×",
                row.group,
                id,
                median,
                gbps,
                base / ns
            );
        }
    }
}
