//! Shared by the benchmarks: criterion setup, the AES limit of the running
//! core, and a closing table that reads criterion's own median estimates
//! and prints GB/s, the ratio of every implementation to the baseline and
//! its share of the limit, all measured in the same run.

#![allow(dead_code)]

use std::path::PathBuf;

use criterion::Criterion;
use mariadb_aria_crypt::kernel::{Backend, Limit, aes_crc_limit, aes_latency_bound, aes_limit};

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
/// processes, the id of its baseline within the group, and the bound each
/// id's figure is a share of.
pub struct Row {
    pub group: String,
    pub bytes: u64,
    pub baseline: &'static str,
    pub ids: Vec<String>,
    pub bound: fn(&str) -> Bound,
    /// Independent CBC chains in the row's work (the jobs of a batch to
    /// encrypt): fewer than the lanes cannot reach the limit, and the bound
    /// is then that many times the latency bound. `usize::MAX` where the
    /// work is parallel.
    pub chains: usize,
    /// The backend every id runs on; `None`: the id names it (a backend
    /// name, or "rustcrypto", which is the software backend's engine).
    pub backend: Option<Backend>,
}

/// What a row's figures are compared with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The backend's AES limit (parallel work: independent blocks).
    Limit,
    /// One chain of dependent rounds (serial CBC encryption).
    Latency,
    /// The AES limit with every block folded into a CRC (whole pages,
    /// which checksum what they cipher); the AES limit where the backend
    /// has no carry-less multiply.
    WithCrc,
    /// Nothing (call overhead dominates).
    None,
}

/// The AES limit, latency bound and limit with CRC folds of every
/// supported backend.
pub struct Limits(Vec<(Limit, Limit, Option<Limit>)>);

impl Limits {
    /// Measures every supported backend (some tens of milliseconds each).
    pub fn measure() -> Limits {
        Limits(
            Backend::supported()
                .iter()
                .filter_map(|&b| Some((aes_limit(b)?, aes_latency_bound(b)?, aes_crc_limit(b))))
                .collect(),
        )
    }

    /// The higher figure of two measurements: interference from other
    /// processes only ever lowers one.
    pub fn max(self, other: Limits) -> Limits {
        let best = |a: Limit, b: Limit| {
            if b.bytes_per_sec > a.bytes_per_sec {
                b
            } else {
                a
            }
        };
        Limits(
            self.0
                .into_iter()
                .map(|(limit, serial, crc)| {
                    match other.0.iter().find(|(l, ..)| l.backend == limit.backend) {
                        Some(&(l, s, c)) => (
                            best(limit, l),
                            best(serial, s),
                            match (crc, c) {
                                (Some(a), Some(b)) => Some(best(a, b)),
                                (a, b) => a.or(b),
                            },
                        ),
                        None => (limit, serial, crc),
                    }
                })
                .collect(),
        )
    }

    /// The bound, and whether `chains` lowered it.
    fn get(&self, backend: Backend, bound: Bound, chains: usize) -> Option<(Limit, bool)> {
        let &(limit, serial, crc) = self.0.iter().find(|(l, ..)| l.backend == backend)?;
        let mut bound = match bound {
            Bound::Limit => limit,
            Bound::Latency => return Some((serial, false)),
            Bound::WithCrc => crc.unwrap_or(limit),
            Bound::None => return None,
        };
        let by_chains = serial.bytes_per_sec * chains as f64;
        let capped = by_chains < bound.bytes_per_sec;
        if capped {
            bound.bytes_per_sec = by_chains;
        }
        Some((bound, capped))
    }

    pub fn print(&self) {
        println!(
            "\nAES limit of this core (AES-128 equivalent: independent chains of rounds at each backend's width; latency: one chain; with CRC: each block also folded into a CRC, and that as a share of the limit)"
        );
        println!(
            "{:<12} {:>11} {:>14} {:>15} {:>14} {:>7}",
            "backend", "limit GB/s", "chains×blocks", "latency GB/s", "with CRC GB/s", "share"
        );
        for (limit, serial, crc) in &self.0 {
            let (with_crc, share) = crc.map_or(("-".into(), "-".into()), |crc| {
                (
                    format!("{:.2}", crc.gb_per_sec()),
                    format!("{:.0}%", 100.0 * limit.share(crc.bytes_per_sec)),
                )
            });
            println!(
                "{:<12} {:>11.2} {:>14} {:>15.2} {:>14} {:>7}",
                limit.backend.name(),
                limit.gb_per_sec(),
                format!("{}×{}", limit.chains, limit.lanes),
                serial.gb_per_sec(),
                with_crc,
                share
            );
        }
    }
}

fn read_json(group: &str, id: &str, file: &str) -> Option<serde_json::Value> {
    let path = output_dir().join(group).join(id).join("new").join(file);
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn median_ns(group: &str, id: &str) -> Option<f64> {
    read_json(group, id, "estimates.json")?["median"]["point_estimate"].as_f64()
}

/// The time per iteration of criterion's fastest sample: on a shared
/// machine, the figure other processes disturbed least.
fn fastest_ns(group: &str, id: &str) -> Option<f64> {
    let sample = read_json(group, id, "sample.json")?;
    let iters = sample["iters"].as_array()?;
    let times = sample["times"].as_array()?;
    iters
        .iter()
        .zip(times)
        .filter_map(|(n, t)| Some(t.as_f64()? / n.as_f64()?))
        .min_by(f64::total_cmp)
}

/// Prints `group | id | median | GB/s | × baseline | share of the bound`
/// for every row that ran; the share is of the AES limit of the id's
/// backend, or of its latency bound where marked "serial", for the median
/// and for criterion's fastest sample.
pub fn print_summary(title: &str, rows: &[Row], limits: &Limits) {
    limits.print();
    println!("\n{title}");
    println!(
        "{:<34} {:<15} {:>12} {:>9} {:>12} {:>16} {:>8}",
        "benchmark", "impl", "median", "GB/s", "vs baseline", "of AES limit", "fastest"
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
            let backend = row.backend.or_else(|| match id.as_str() {
                "rustcrypto" => Some(Backend::Soft),
                name => name.parse().ok(),
            });
            let bound = backend.and_then(|b| limits.get(b, (row.bound)(id), row.chains));
            let limit = bound.map(|(limit, _)| limit);
            let share = bound.map_or(String::new(), |(limit, capped)| {
                let kind = match ((row.bound)(id), capped) {
                    (Bound::Latency, _) => " serial".to_string(),
                    (_, true) => format!(" {}×serial", row.chains),
                    (Bound::WithCrc, false) => " +CRC".to_string(),
                    _ => String::new(),
                };
                format!("{:.1}%{kind}", limit.share(gbps * 1e9) * 100.0)
            });
            let fastest = limit
                .zip(fastest_ns(&row.group, id))
                .map_or(String::new(), |(limit, ns)| {
                    format!("{:.1}%", limit.share(row.bytes as f64 / ns * 1e9) * 100.0)
                });
            println!(
                "{:<34} {:<15} {:>12} {:>9.2} {:>11.2}× {:>16} {:>8}",
                row.group,
                id,
                median,
                gbps,
                base / ns,
                share,
                fastest
            );
        }
    }
}
