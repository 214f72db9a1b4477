//! `aria-crypt bench`: whole-page throughput of every AES backend this CPU
//! has, on one core and on all of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::json;

use super::Ctx;
use crate::aria::{CryptData, PageFile, TableCipher, TableGeometry};
use crate::kernel::{Backend, Mode};
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
    }
    buf
}

type Work<'a> = &'a (dyn Fn(u32, &mut [u8]) + Sync);

/// One pass of `work` over every batch of `buf`.
fn pass(buf: &mut [u8], bs: usize, parallel: bool, work: Work<'_>) -> Duration {
    let chunk = BATCH_PAGES * bs;
    let start = Instant::now();
    if parallel {
        buf.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| work((i * BATCH_PAGES + 1) as u32, c));
    } else {
        buf.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| work((i * BATCH_PAGES + 1) as u32, c));
    }
    start.elapsed()
}

/// Pages per second of encryption and of decryption, alternating passes
/// so that each one works on what the server would hand it: encryption on
/// plaintext pages, decryption on valid encrypted ones. `buf` starts and
/// ends as plaintext.
fn rates(
    buf: &mut [u8],
    bs: usize,
    seconds: f64,
    parallel: bool,
    encrypt: Work<'_>,
    decrypt: Work<'_>,
) -> (f64, f64) {
    let pages = (buf.len() / bs) as f64;
    let (mut enc, mut dec, mut passes) = (Duration::ZERO, Duration::ZERO, 0u32);
    while passes == 0 || (enc + dec).as_secs_f64() < seconds {
        enc += pass(buf, bs, parallel, encrypt);
        dec += pass(buf, bs, parallel, decrypt);
        passes += 1;
    }
    let per_sec = |d: Duration| pages * f64::from(passes) / d.as_secs_f64().max(1e-9);
    (per_sec(enc), per_sec(dec))
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
    if !ctx.json {
        out(format!(
            "Whole {bs}-byte pages (checksum + encrypt + stamp; decrypt + verify), {} pages, active backend: {active}",
            args.pages
        ));
        out(format!(
            "{:<9} {:<4} {:>8} {:>14} {:>10} {:>14} {:>10}",
            "backend", "mode", "threads", "encrypt pg/s", "MB/s", "decrypt pg/s", "MB/s"
        ));
    }
    for &backend in Backend::supported() {
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
            let encrypt = |first: u32, c: &mut [u8]| {
                let mut pages = page_refs(first, c, bs);
                let _ = cipher.encrypt_pages(PageFile::Data, &mut pages);
            };
            let decrypt = |first: u32, c: &mut [u8]| {
                let mut pages = page_refs(first, c, bs);
                let _ = cipher.decrypt_pages(PageFile::Data, &mut pages);
            };
            for (parallel, n) in [(false, 1usize), (true, threads)] {
                if parallel && threads == 1 {
                    continue;
                }
                let (enc, dec) = rates(
                    &mut plain,
                    bs,
                    args.seconds / 2.0,
                    parallel,
                    &encrypt,
                    &decrypt,
                );
                let mb = |pps: f64| pps * bs as f64 / 1e6;
                if !ctx.json {
                    out(format!(
                        "{:<9} {:<4} {:>8} {:>14.0} {:>10.0} {:>14.0} {:>10.0}{}",
                        backend.name(),
                        mode.name(),
                        n,
                        enc,
                        mb(enc),
                        dec,
                        mb(dec),
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
                    "decrypt_pages_per_sec": dec.round(),
                    "decrypt_mb_per_sec": mb(dec).round(),
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
    report.set("results", serde_json::Value::Array(rows));
    report.finish()
}
