//! Chains of AES rounds on AArch64 (`AESE` + `AESMC` pairs, one block per
//! register), for [`crate::kernel::limit`], with as many independent chains
//! as the caller asks for: enough to cover the pair's latency
//! (throughput), or one (the latency of a serial CBC encryption).
//!
//! Detection is `is_aarch64_feature_detected!` here, independent of the
//! kernel's own.

use core::arch::aarch64::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// AES-128 rounds per block: one iteration of every chain.
const ROUNDS: usize = 10;

/// Whether this CPU has the ARMv8 Cryptography Extensions' AES.
pub(crate) fn is_detected() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
}

/// The chain counts [`time_rounds`] accepts (32 vector registers).
pub(crate) const CHAIN_COUNTS: &[usize] = &[1, 8, 12, 16, 24];

/// The time of `iterations` × 10 `AESE`+`AESMC` pairs on each of `chains`
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

/// The state lives in registers (the loop over `N` unrolls), the key in
/// one more; its value does not change the cost of a round.
#[target_feature(enable = "neon,aes")]
fn neon<const N: usize>(iterations: u64) -> uint8x16_t {
    let key = vdupq_n_u8(black_box(0x3c));
    let mut state: [uint8x16_t; N] = core::array::from_fn(|i| vdupq_n_u8(black_box(i as u8)));
    for _ in 0..iterations {
        for _ in 0..ROUNDS {
            for s in state.iter_mut() {
                *s = vaesmcq_u8(vaeseq_u8(*s, key));
            }
        }
    }
    state.iter().fold(vdupq_n_u8(0), |acc, &s| veorq_u8(acc, s))
}
