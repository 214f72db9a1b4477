//! Chains of AES rounds on AArch64 (one block per register), for
//! [`crate::kernel::limit`], with as many independent chains as the caller
//! asks for: enough to cover the rounds' latency (throughput), or one (the
//! latency of a serial CBC encryption). Each iteration is one AES-128
//! block's instructions: nine `AESE`+`AESMC` pairs, then the last round's
//! `AESE` and `EOR` with the last round key, so the figure is what a mode
//! could reach, and `scripts/aarch64-mca.sh` models the same loop.
//!
//! With [`Work::AesAndCrc`], every block's rounds are followed by one CRC
//! fold of the block into an accumulator of its chain's own (two `PMULL`s
//! and two `EOR`s, as the kernel folds a page's checksum); [`Work::Crc`] is
//! the folds alone.
//!
//! Detection is `is_aarch64_feature_detected!` here, independent of the
//! kernel's own.

use core::arch::aarch64::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::kernel::limit::Work;

/// Whether this CPU has the ARMv8 Cryptography Extensions' AES.
pub(crate) fn is_detected() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
}

/// Whether this CPU also has `PMULL` on 64-bit lanes.
fn has_pmull() -> bool {
    is_detected() && std::arch::is_aarch64_feature_detected!("pmull")
}

/// The chain counts [`time_rounds`] accepts (32 vector registers; with
/// `crc`, 12 or fewer keep the accumulators in registers too).
pub(crate) const CHAIN_COUNTS: &[usize] = &[1, 8, 12, 16, 24];

/// The time of `iterations` AES-128 blocks of `work` on each of `chains`
/// independent registers; `None` without the AES extension (or PMULL) or
/// for a count that is not one of [`CHAIN_COUNTS`].
pub(crate) fn time_rounds(chains: usize, iterations: u64, work: Work) -> Option<Duration> {
    let detected = match work {
        Work::Aes => is_detected(),
        Work::AesAndCrc | Work::Crc => has_pmull(),
    };
    if !detected {
        return None;
    }
    macro_rules! timed {
        ($n:literal) => {{
            let start = Instant::now();
            // SAFETY: `is_detected()` (with folds, `has_pmull()`) above
            // checked the "aes" feature, which includes PMULL in Rust's
            // AArch64 features and is the only one `neon` enables beyond
            // NEON (part of every AArch64 target); it touches no memory.
            black_box(unsafe {
                match work {
                    Work::Aes => neon::<$n, true, false>(iterations),
                    Work::AesAndCrc => neon::<$n, true, true>(iterations),
                    Work::Crc => neon::<$n, false, true>(iterations),
                }
            });
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
/// two more; their values do not change the cost of a round (or of a
/// fold). With `CRC` (which the caller checked PMULL for), `N`
/// accumulators more; without `AES`, no rounds.
#[target_feature(enable = "neon,aes")]
fn neon<const N: usize, const AES: bool, const CRC: bool>(iterations: u64) -> uint8x16_t {
    let key = vdupq_n_u8(black_box(0x3c));
    let last = vdupq_n_u8(black_box(0xa5));
    let mut state: [uint8x16_t; N] = core::array::from_fn(|i| vdupq_n_u8(black_box(i as u8)));
    let mut acc: [uint8x16_t; N] = [vdupq_n_u8(black_box(7)); N];
    let fold_keys = vreinterpretq_u64_u8(key);
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
        if AES {
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
        if CRC {
            for (a, s) in acc.iter_mut().zip(state.iter()) {
                let x = vreinterpretq_u64_u8(*a);
                let lo = vmull_p64(vgetq_lane_u64::<0>(x), vgetq_lane_u64::<0>(fold_keys));
                let hi = vmull_p64(vgetq_lane_u64::<1>(x), vgetq_lane_u64::<1>(fold_keys));
                let lo = vreinterpretq_u8_p128(lo);
                let hi = vreinterpretq_u8_p128(hi);
                *a = veorq_u8(veorq_u8(lo, hi), *s);
            }
        }
    }
    let state = state.iter().fold(vdupq_n_u8(0), |x, &s| veorq_u8(x, s));
    acc.iter().fold(state, |x, &a| veorq_u8(x, a))
}
