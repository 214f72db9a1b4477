//! Chains of AES rounds on AArch64 (one block per register), for
//! [`crate::kernel::limit`], with as many independent chains as the caller
//! asks for: enough to cover the rounds' latency (throughput), or one (the
//! latency of a serial CBC encryption). Each iteration is one AES-128
//! block's instructions: nine `AESE`+`AESMC` pairs, then the last round's
//! `AESE` and `EOR` with the last round key, so the figure is what a mode
//! could reach, and `scripts/aarch64-mca.sh` models the same loop.
//!
//! Detection is `is_aarch64_feature_detected!` here, independent of the
//! kernel's own.

use core::arch::aarch64::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Whether this CPU has the ARMv8 Cryptography Extensions' AES.
pub(crate) fn is_detected() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
}

/// The chain counts [`time_rounds`] accepts (32 vector registers).
pub(crate) const CHAIN_COUNTS: &[usize] = &[1, 8, 12, 16, 24];

/// The time of `iterations` AES-128 blocks' rounds on each of `chains`
/// independent registers; `None` without the AES extension or for a count
/// that is not one of [`CHAIN_COUNTS`].
pub(crate) fn time_rounds(chains: usize, iterations: u64) -> Option<Duration> {
    if !is_detected() {
        return None;
    }
    macro_rules! timed {
        ($n:literal) => {{
            let start = Instant::now();
            // SAFETY: `is_detected()` above checked the "aes" feature that
            // `neon` enables (NEON is part of every AArch64 target); it
            // touches no memory.
            black_box(unsafe { neon::<$n>(iterations) });
            Some(start.elapsed())
        }};
    }
    match chains {
        1 => timed!(1),
        8 => timed!(8),
        12 => timed!(12),
        16 => timed!(16),
        24 => timed!(24),
        _ => None,
    }
}

/// The state lives in registers (the loop over `N` unrolls), the keys in
/// two more; their values do not change the cost of a round.
#[target_feature(enable = "neon,aes")]
fn neon<const N: usize>(iterations: u64) -> uint8x16_t {
    let key = vdupq_n_u8(black_box(0x3c));
    let last = vdupq_n_u8(black_box(0xa5));
    let mut state: [uint8x16_t; N] = core::array::from_fn(|i| vdupq_n_u8(black_box(i as u8)));
    // The nine full rounds written out, so that one loop iteration is one
    // block of every chain (the compiler keeps a counted loop of rounds
    // for larger N, which a model of straight-line code cannot take).
    macro_rules! round {
        () => {
            for s in state.iter_mut() {
                *s = vaesmcq_u8(vaeseq_u8(*s, key));
            }
        };
    }
    for _ in 0..iterations {
        round!();
        round!();
        round!();
        round!();
        round!();
        round!();
        round!();
        round!();
        round!();
        for s in state.iter_mut() {
            *s = veorq_u8(vaeseq_u8(*s, key), last);
        }
    }
    state.iter().fold(vdupq_n_u8(0), |acc, &s| veorq_u8(acc, s))
}
