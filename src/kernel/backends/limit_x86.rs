//! Chains of AES rounds on x86-64 registers, for [`crate::kernel::limit`]:
//! `AESENC xmm` (AES-NI), `VAESENC ymm` and `VAESENC zmm` (VAES), with as
//! many independent chains as the caller asks for, so that the rounds in
//! flight cover the instruction's latency (throughput) or do not (one
//! chain: the latency of a serial CBC encryption).
//!
//! Each function detects the features it needs with
//! `is_x86_feature_detected!` itself and returns `None` without them: the
//! figure must not depend on the kernel's own detection, which it checks.

use core::arch::x86_64::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// AES-128 rounds per block: one iteration of every chain.
const ROUNDS: usize = 10;

/// The register width the rounds run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// 128-bit `AESENC` (one block per instruction).
    Xmm,
    /// 256-bit `VAESENC` (two blocks).
    Ymm,
    /// 512-bit `VAESENC` (four blocks).
    Zmm,
}

impl Width {
    /// Blocks one instruction works on.
    pub(crate) const fn lanes(self) -> usize {
        match self {
            Width::Xmm => 1,
            Width::Ymm => 2,
            Width::Zmm => 4,
        }
    }

    /// Whether this CPU runs the instruction.
    pub(crate) fn is_detected(self) -> bool {
        match self {
            Width::Xmm => is_x86_feature_detected!("aes"),
            Width::Ymm => is_x86_feature_detected!("vaes") && is_x86_feature_detected!("avx2"),
            Width::Zmm => is_x86_feature_detected!("vaes") && is_x86_feature_detected!("avx512f"),
        }
    }
}

/// The chain counts [`time_rounds`] accepts: xmm and ymm code has 16
/// registers without AVX-512 (one holds the key), zmm code has 32.
pub(crate) const fn chain_counts(width: Width) -> &'static [usize] {
    match width {
        Width::Xmm | Width::Ymm => &[1, 8, 12],
        Width::Zmm => &[1, 8, 16, 24],
    }
}

/// The time of `iterations` × 10 rounds on each of `chains` independent
/// registers of `width`; `None` if the CPU lacks the instruction or the
/// count is not one of [`chain_counts`].
pub(crate) fn time_rounds(width: Width, chains: usize, iterations: u64) -> Option<Duration> {
    if !width.is_detected() {
        return None;
    }
    macro_rules! timed {
        ($f:ident::<$n:literal>) => {{
            let start = Instant::now();
            // SAFETY: `width.is_detected()` above checked with
            // `is_x86_feature_detected!` every feature `$f` enables; it
            // touches no memory.
            black_box(unsafe { $f::<$n>(iterations) });
            Some(start.elapsed())
        }};
    }
    match (width, chains) {
        (Width::Xmm, 1) => timed!(xmm::<1>),
        (Width::Xmm, 8) => timed!(xmm::<8>),
        (Width::Xmm, 12) => timed!(xmm::<12>),
        (Width::Ymm, 1) => timed!(ymm::<1>),
        (Width::Ymm, 8) => timed!(ymm::<8>),
        (Width::Ymm, 12) => timed!(ymm::<12>),
        (Width::Zmm, 1) => timed!(zmm::<1>),
        (Width::Zmm, 8) => timed!(zmm::<8>),
        (Width::Zmm, 16) => timed!(zmm::<16>),
        (Width::Zmm, 24) => timed!(zmm::<24>),
        _ => None,
    }
}

/// One function per width; the state lives in registers (the loops over
/// `N` unroll), the key in one more. The key's value does not change the
/// cost of a round, so one stands for all ten.
macro_rules! chains {
    ($name:ident, $features:literal, $reg:ty, $splat:expr, $round:path, $xor:path) => {
        #[target_feature(enable = $features)]
        fn $name<const N: usize>(iterations: u64) -> $reg {
            let key: $reg = $splat(black_box(0x0f1e_2d3c));
            let mut state: [$reg; N] = core::array::from_fn(|i| $splat(black_box(i as i32)));
            for _ in 0..iterations {
                for _ in 0..ROUNDS {
                    for s in state.iter_mut() {
                        *s = $round(*s, key);
                    }
                }
            }
            state.iter().fold($splat(0), |acc, &s| $xor(acc, s))
        }
    };
}

chains!(
    xmm,
    "aes,sse2",
    __m128i,
    _mm_set1_epi32,
    _mm_aesenc_si128,
    _mm_xor_si128
);
chains!(
    ymm,
    "vaes,avx2",
    __m256i,
    _mm256_set1_epi32,
    _mm256_aesenc_epi128,
    _mm256_xor_si256
);
chains!(
    zmm,
    "vaes,avx512f",
    __m512i,
    _mm512_set1_epi32,
    _mm512_aesenc_epi128,
    _mm512_xor_si512
);
