//! `aria-crypt bench`: whole-page throughput of every AES backend this CPU
//! has, on one core and on all of them, beside the AES limit of the core
//! (`kernel::aes_limit`) measured in the same run. Only pages that were
//! encrypted or decrypted without error count; failures are reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::json;

use super::Ctx;
use crate::aria::{CryptData, PageFile, TableCipher, TableGeometry};
use crate::kernel::{
    Backend, Limit, Mode, aes_crc_limit, aes_latency_bound, aes_limit, crc_fold_limit,
};
use crate::keys::DebugKeyProvider;
use crate::tool::cli::BenchArgs;
use crate::tool::outcome::{Status, ToolError};
use crate::tool::report::{Report, out};
use crate::tool::scan::{BATCH_PAGES, page_refs};

/// Head data pages with pseudo-random rows: what a table's data file holds.
fn generate(pages: usize, bs: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; pages * bs];
    for (n, page) in buf.chunks_exact_mut(bs).enumerate() {
        for chunk in page.chunks_exact_mut(8) {
            // xorshift64: fast, and the bytes do not matter to AES.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        page[..7].copy_from_slice(&(n as u64).to_le_bytes()[..7]);
        page[7] = 1; // head page
        // Key version 0: a plaintext page, as the server hands it over
        // (any other value is refused as "already encrypted").
        page[12..16].fill(0);
    }
    buf
}

/// Encrypts or decrypts one batch of pages (the first numbered as given)
/// and returns how many of them failed.
type Work<'a> = &'a (dyn Fn(u32, &mut [u8]) -> u64 + Sync);

/// Pages done and pages failed by one kind of work, over all passes.
#[derive(Default)]
struct Count {
    time: Duration,
    pages: u64,
    failed: u64,
}

impl Count {
    /// Pages per second that succeeded.
    fn rate(&self) -> f64 {
        (self.pages - self.failed) as f64 / self.time.as_secs_f64().max(1e-9)
    }
}

/// One pass of `work` over every batch of `buf`.
fn pass(buf: &mut [u8], bs: usize, parallel: bool, work: Work<'_>, count: &mut Count) {
    let chunk = BATCH_PAGES * bs;
    let failed = AtomicU64::new(0);
    let batch = |(i, c): (usize, &mut [u8])| {
        let n = work((i * BATCH_PAGES + 1) as u32, c);
        failed.fetch_add(n, Ordering::Relaxed);
    };
    let start = Instant::now();
    if parallel {
        buf.par_chunks_mut(chunk).enumerate().for_each(batch);
    } else {
        buf.chunks_mut(chunk).enumerate().for_each(batch);
    }
    count.time += start.elapsed();
    count.pages += (buf.len() / bs) as u64;
    count.failed += failed.into_inner();
}

/// Encryption and decryption counts, alternating passes so that each one
/// works on what the server would hand it: encryption on plaintext pages,
/// decryption on valid encrypted ones. `buf` starts and ends as plaintext
/// (if every page succeeds).
fn rates(
    buf: &mut [u8],
    bs: usize,
    seconds: f64,
    parallel: bool,
    encrypt: Work<'_>,
    decrypt: Work<'_>,
) -> (Count, Count) {
    let (mut enc, mut dec) = (Count::default(), Count::default());
    while enc.pages == 0 || (enc.time + dec.time).as_secs_f64() < seconds {
        pass(buf, bs, parallel, encrypt, &mut enc);
        pass(buf, bs, parallel, decrypt, &mut dec);
    }
    (enc, dec)
}

/// A share of a bound as text: "93.5%", or "-" without a bound.
fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "-".to_string(), |s| format!("{:.1}%", s * 100.0))
}

/// Runs the command.
pub fn run(ctx: Ctx, args: &BenchArgs) -> Status {
    let mut report = Report::new("bench", ctx.json);
    let bs = args.block_size as usize;
    if !args.block_size.is_multiple_of(1024) {
        report.error(&ToolError::input(format!(
            "--block-size {}: Aria block sizes are multiples of 1024",
            args.block_size
        )));
        return report.finish();
    }
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 60.0) {
        report.error(&ToolError::input(
            "--seconds must be more than 0 and at most 60",
        ));
        return report.finish();
    }
    let geometry = TableGeometry {
        block_size: args.block_size,
        keystart: u64::from(args.block_size),
        transactional: true,
    };
    let crypt = CryptData {
        space: 0x5eed_0001,
        scheme_iv: *b"aria-crypt-bench",
    };
    let provider = Arc::new(DebugKeyProvider::default());
    let active = ctx.backend.unwrap_or_else(Backend::active);
    let threads = rayon::current_num_threads();
    let mut plain = generate(args.pages as usize, bs);
    let mut rows = Vec::new();
    // Per backend: the AES limit, the latency bound, the limit with CRC
    // folds, the folds alone.
    let limits: Vec<BackendLimits> = Backend::supported()
        .iter()
        .map(|&b| BackendLimits {
            backend: b,
            limit: aes_limit(b),
            serial: aes_latency_bound(b),
            with_crc: aes_crc_limit(b),
            crc_alone: crc_fold_limit(b),
        })
        .collect();
    if !ctx.json {
        out(
            "AES limit of this core, one thread (AES-128 equivalent: independent chains of AES rounds at the backend's width; latency: one chain; with CRC: each block also folded into a CRC; CRC: the folds alone)",
        );
        out(
            "Whole pages checksum what they cipher: against a bare cipher at the AES limit they reach at most the fused share (with CRC / limit) or the two-pass share (1 / (1 + limit / CRC))",
        );
        out(format!(
            "{:<9} {:>11} {:>13} {:>14} {:>9} {:>7} {:>9}",
            "backend",
            "limit MB/s",
            "latency MB/s",
            "with CRC MB/s",
            "CRC MB/s",
            "fused",
            "2 passes"
        ));
        for l in &limits {
            let mb = |l: &Option<Limit>| {
                l.map_or_else(|| "-".into(), |l| format!("{:.0}", l.bytes_per_sec / 1e6))
            };
            let pct = |share: Option<f64>| {
                share.map_or_else(|| "-".into(), |s| format!("{:.0}%", 100.0 * s))
            };
            out(format!(
                "{:<9} {:>11} {:>13} {:>14} {:>9} {:>7} {:>9}",
                l.backend.name(),
                mb(&l.limit),
                mb(&l.serial),
                mb(&l.with_crc),
                mb(&l.crc_alone),
                pct(l.fused_share()),
                pct(l.two_pass_share())
            ));
        }
        out(format!(
            "Whole {bs}-byte pages (checksum + encrypt + stamp; decrypt + verify), {} pages, active backend: {active}",
            args.pages
        ));
        out(
            "Shares are of the one-thread AES limit (CTR, CBC decryption, and CBC encryption of many pages at once), in bytes of whole pages",
        );
        out(format!(
            "{:<9} {:<4} {:>8} {:>14} {:>10} {:>7} {:>14} {:>10} {:>7}",
            "backend",
            "mode",
            "threads",
            "encrypt pg/s",
            "MB/s",
            "share",
            "decrypt pg/s",
            "MB/s",
            "share"
        ));
    }
    let mut failures = 0u64;
    for &backend in Backend::supported() {
        let limit = limits
            .iter()
            .find(|l| l.backend == backend)
            .and_then(|l| l.limit);
        for mode in [Mode::Cbc, Mode::Ctr] {
            let cipher = match TableCipher::new(geometry, crypt, 1, mode, provider.clone())
                .with_backend(backend)
            {
                Ok(c) => c,
                Err(err) => {
                    report.error(&ToolError::lib(err));
                    continue;
                }
            };
            let failed =
                |results: Vec<Result<_, _>>| results.iter().filter(|r| r.is_err()).count() as u64;
            let encrypt = |first: u32, c: &mut [u8]| {
                let mut pages = page_refs(first, c, bs);
                failed(cipher.encrypt_pages(PageFile::Data, &mut pages))
            };
            let decrypt = |first: u32, c: &mut [u8]| {
                let mut pages = page_refs(first, c, bs);
                failed(cipher.decrypt_pages(PageFile::Data, &mut pages))
            };
            for (parallel, n) in [(false, 1usize), (true, threads)] {
                if parallel && threads == 1 {
                    continue;
                }
                let (enc_count, dec_count) = rates(
                    &mut plain,
                    bs,
                    args.seconds / 2.0,
                    parallel,
                    &encrypt,
                    &decrypt,
                );
                let (enc, dec) = (enc_count.rate(), dec_count.rate());
                let mb = |pps: f64| pps * bs as f64 / 1e6;
                // A thread's share of one core's limit; with more threads
                // the machine's cores set the bound, not one core's.
                let share = |pps: f64| limit.filter(|_| n == 1).map(|l| l.share(pps * bs as f64));
                let (enc_failed, dec_failed) = (enc_count.failed, dec_count.failed);
                for (what, count) in [("encrypted", &enc_count), ("decrypted", &dec_count)] {
                    if count.failed > 0 {
                        failures += count.failed;
                        report.error(&ToolError::input(format!(
                            "{backend} {mode}, {n} thread(s): {} of {} pages could not be {what}; they are not counted",
                            count.failed, count.pages
                        )));
                    }
                }
                if !ctx.json {
                    out(format!(
                        "{:<9} {:<4} {:>8} {:>14.0} {:>10.0} {:>7} {:>14.0} {:>10.0} {:>7}{}",
                        backend.name(),
                        mode.name(),
                        n,
                        enc,
                        mb(enc),
                        percent(share(enc)),
                        dec,
                        mb(dec),
                        percent(share(dec)),
                        if backend == active { "  (active)" } else { "" }
                    ));
                }
                rows.push(json!({
                    "backend": backend.name(),
                    "active": backend == active,
                    "mode": mode.name(),
                    "threads": n,
                    "encrypt_pages_per_sec": enc.round(),
                    "encrypt_mb_per_sec": mb(enc).round(),
                    "encrypt_share_of_limit": share(enc),
                    "encrypt_failed_pages": enc_failed,
                    "decrypt_pages_per_sec": dec.round(),
                    "decrypt_mb_per_sec": mb(dec).round(),
                    "decrypt_share_of_limit": share(dec),
                    "decrypt_failed_pages": dec_failed,
                }));
            }
        }
    }
    report.set("block_size", json!(bs));
    report.set("pages", json!(args.pages));
    report.set("active_backend", json!(active.name()));
    report.set(
        "supported_backends",
        json!(
            Backend::supported()
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
        ),
    );
    report.set("threads", json!(threads));
    report.set(
        "aes_limit",
        serde_json::Value::Array(
            limits
                .iter()
                .map(|l| {
                    json!({
                        "backend": l.backend.name(),
                        "bytes_per_sec": l.limit.map(|l| l.bytes_per_sec.round()),
                        "chains": l.limit.map(|l| l.chains),
                        "blocks_per_instruction": l.limit.map(|l| l.lanes),
                        "latency_bound_bytes_per_sec": l.serial.map(|l| l.bytes_per_sec.round()),
                        "with_crc_bytes_per_sec": l.with_crc.map(|l| l.bytes_per_sec.round()),
                        "crc_bytes_per_sec": l.crc_alone.map(|l| l.bytes_per_sec.round()),
                    })
                })
                .collect(),
        ),
    );
    report.set("failed_pages", json!(failures));
    report.set("results", serde_json::Value::Array(rows));
    report.finish()
}

/// One backend's bounds on this core (`kernel::aes_limit` and friends).
struct BackendLimits {
    backend: Backend,
    limit: Option<Limit>,
    serial: Option<Limit>,
    with_crc: Option<Limit>,
    crc_alone: Option<Limit>,
}

impl BackendLimits {
    /// The most whole pages that fold their checksum into the cipher loop
    /// can reach against a bare cipher at the AES limit.
    fn fused_share(&self) -> Option<f64> {
        Some(self.limit?.share(self.with_crc?.bytes_per_sec))
    }

    /// The most whole pages that run the cipher and then the checksum can
    /// reach against a bare cipher at the AES limit: each byte takes at
    /// least the time of both bounds.
    fn two_pass_share(&self) -> Option<f64> {
        let (limit, crc) = (self.limit?.bytes_per_sec, self.crc_alone?.bytes_per_sec);
        Some(1.0 / (1.0 + limit / crc))
    }
}
