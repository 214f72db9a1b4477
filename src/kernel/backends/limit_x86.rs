//! Chains of AES rounds on x86-64 registers, for [`crate::kernel::limit`]:
//! `AESENC xmm` (AES-NI), `VAESENC ymm` and `VAESENC zmm` (VAES), with as
//! many independent chains as the caller asks for, so that the rounds in
//! flight cover the instruction's latency (throughput) or do not (one
//! chain: the latency of a serial CBC encryption).
//!
//! With [`Work::AesAndCrc`], every block's rounds are followed by one CRC
//! fold of the block into an accumulator of its chain's own (two
//! carry-less multiplies and two XORs, as the kernel folds a page's
//! checksum): the bound of a loop that checksums what it encrypts or
//! decrypts. [`Work::Crc`] is the folds alone.
//!
//! Each function detects the features it needs with
//! `is_x86_feature_detected!` itself and returns `None` without them: the
//! figure must not depend on the kernel's own detection, which it checks.

use core::arch::x86_64::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::kernel::limit::Work;

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

    /// Whether this CPU also has the carry-less multiply of this width.
    fn has_clmul(self) -> bool {
        self.is_detected()
            && match self {
                Width::Xmm => is_x86_feature_detected!("pclmulqdq"),
                Width::Ymm | Width::Zmm => is_x86_feature_detected!("vpclmulqdq"),
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

/// The time of `iterations` blocks of `work` on each of `chains`
/// independent registers of `width`; `None` if the CPU lacks an
/// instruction or the count is not one of [`chain_counts`].
pub(crate) fn time_rounds(
    width: Width,
    chains: usize,
    iterations: u64,
    work: Work,
) -> Option<Duration> {
    let detected = match work {
        Work::Aes => width.is_detected(),
        Work::AesAndCrc | Work::Crc => width.has_clmul(),
    };
    if !detected {
        return None;
    }
    macro_rules! timed {
        ($aes:ident, $both:ident, $crc:ident::<$n:literal>) => {{
            let start = Instant::now();
            // SAFETY: `is_detected()` (and for the functions with folds
            // `has_clmul()`) above checked with `is_x86_feature_detected!`
            // every feature the function enables; it touches no memory.
            black_box(unsafe {
                match work {
                    Work::Aes => $aes::<$n>(iterations),
                    Work::AesAndCrc => $both::<$n>(iterations),
                    Work::Crc => $crc::<$n>(iterations),
                }
            });
            Some(start.elapsed())
        }};
    }
    match (width, chains) {
        (Width::Xmm, 1) => timed!(xmm, xmm_crc, xmm_folds::<1>),
        (Width::Xmm, 8) => timed!(xmm, xmm_crc, xmm_folds::<8>),
        (Width::Xmm, 12) => timed!(xmm, xmm_crc, xmm_folds::<12>),
        (Width::Ymm, 1) => timed!(ymm, ymm_crc, ymm_folds::<1>),
        (Width::Ymm, 8) => timed!(ymm, ymm_crc, ymm_folds::<8>),
        (Width::Ymm, 12) => timed!(ymm, ymm_crc, ymm_folds::<12>),
        (Width::Zmm, 1) => timed!(zmm, zmm_crc, zmm_folds::<1>),
        (Width::Zmm, 8) => timed!(zmm, zmm_crc, zmm_folds::<8>),
        (Width::Zmm, 16) => timed!(zmm, zmm_crc, zmm_folds::<16>),
        (Width::Zmm, 24) => timed!(zmm, zmm_crc, zmm_folds::<24>),
        _ => None,
    }
}

/// Three functions per width: rounds, rounds with the CRC folds, folds
/// alone. The state lives in registers (the loops over `N` unroll), the key
/// in one more, and the folds' accumulators in `N` more. The key's value
/// does not change the cost of a round, so one stands for all ten (and for
/// the fold constants).
macro_rules! chains {
    (
        $name:ident, $crc_name:ident, $folds_name:ident, $features:literal,
        $crc_features:literal, $reg:ty, $splat:expr, $round:path, $xor:path, $clmul:path
    ) => {
        #[target_feature(enable = $features)]
        fn $name<const N: usize>(iterations: u64) -> $reg {
            chains!(@body $reg, $splat, $round, $xor, iterations, true, |_acc, _state, _key| {})
        }

        #[target_feature(enable = $crc_features)]
        fn $crc_name<const N: usize>(iterations: u64) -> $reg {
            chains!(@body $reg, $splat, $round, $xor, iterations, true, |acc, state, key| {
                for (a, s) in acc.iter_mut().zip(state.iter()) {
                    *a = $xor($xor($clmul(*a, key, 0x00), $clmul(*a, key, 0x11)), *s);
                }
            })
        }

        #[target_feature(enable = $crc_features)]
        fn $folds_name<const N: usize>(iterations: u64) -> $reg {
            chains!(@body $reg, $splat, $round, $xor, iterations, false, |acc, state, key| {
                for (a, s) in acc.iter_mut().zip(state.iter()) {
                    *a = $xor($xor($clmul(*a, key, 0x00), $clmul(*a, key, 0x11)), *s);
                }
            })
        }
    };
    (@body $reg:ty, $splat:expr, $round:path, $xor:path, $iterations:ident, $aes:literal,
        |$acc:ident, $state:ident, $key:ident| $fold:block) => {{
        let $key: $reg = $splat(black_box(0x0f1e_2d3c));
        let mut $state: [$reg; N] = core::array::from_fn(|i| $splat(black_box(i as i32)));
        let mut $acc: [$reg; N] = [$splat(black_box(7)); N];
        for _ in 0..$iterations {
            if $aes {
                for _ in 0..ROUNDS {
                    for s in $state.iter_mut() {
                        *s = $round(*s, $key);
                    }
                }
            }
            let _ = (&mut $acc, &$state);
            $fold
        }
        let folded = $state.iter().fold($splat(0), |x, &s| $xor(x, s));
        $acc.iter().fold(folded, |x, &a| $xor(x, a))
    }};
}

chains!(
    xmm,
    xmm_crc,
    xmm_folds,
    "aes,sse2",
    "aes,sse2,pclmulqdq",
    __m128i,
    _mm_set1_epi32,
    _mm_aesenc_si128,
    _mm_xor_si128,
    _mm_clmulepi64_si128
);
chains!(
    ymm,
    ymm_crc,
    ymm_folds,
    "vaes,avx2",
    "vaes,avx2,vpclmulqdq",
    __m256i,
    _mm256_set1_epi32,
    _mm256_aesenc_epi128,
    _mm256_xor_si256,
    _mm256_clmulepi64_epi128
);
chains!(
    zmm,
    zmm_crc,
    zmm_folds,
    "vaes,avx512f",
    "vaes,avx512f,vpclmulqdq",
    __m512i,
    _mm512_set1_epi32,
    _mm512_aesenc_epi128,
    _mm512_xor_si512,
    _mm512_clmulepi64_epi128
);
