//! VAES on 256-bit registers: two blocks per instruction, needing only AVX2
//! register state (Zen 3, Alder Lake and later have VAES without AVX-512).
//! 8 registers in flight in the parallel modes, 16 CBC lanes (two per
//! register), 8 for batches of at most eight jobs; with VPCLMULQDQ the
//! lanes also fold the CRC.

use core::arch::x86_64::*;

use super::modes::{self, Clmul, Simd, by_rounds, entries};
use super::x86::{Vaes256ClmulToken, Vaes256Token};
use super::x86_aesni::AesNi;
use crate::kernel::Job;
use crate::kernel::inout::InOut;
use crate::kernel::key_schedule::{MAX_ROUND_KEYS, RoundKeys};
use crate::kernel::lanes::{Lanes, Scratch};

/// The VAES-256 primitives.
pub(crate) struct Vaes256;

impl Simd for Vaes256 {
    type Reg = __m256i;
    const BLOCKS: usize = 2;
    type Narrow = AesNi;

    /// `ymm_reg` operands need AVX in the function that holds them; it
    /// inlines into every entry, which has it.
    #[inline]
    #[target_feature(enable = "avx")]
    unsafe fn in_step<const N: usize>(x: &mut [__m256i; N]) {
        super::x86::in_step!(ymm_reg, x);
    }

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: the caller is in the target features (AVX).
        unsafe { _mm256_setzero_si256() }
    }

    #[inline(always)]
    unsafe fn load(ptr: *const u8) -> __m256i {
        // SAFETY: the caller's contract (32 readable bytes); no alignment needed.
        unsafe { _mm256_loadu_si256(ptr.cast()) }
    }

    #[inline(always)]
    unsafe fn store(ptr: *mut u8, x: __m256i) {
        // SAFETY: the caller's contract (32 writable bytes); no alignment needed.
        unsafe { _mm256_storeu_si256(ptr.cast(), x) }
    }

    #[inline(always)]
    unsafe fn splat(block: &[u8; 16]) -> __m256i {
        // SAFETY: `block` is 16 readable bytes; in the target features.
        unsafe { _mm256_broadcastsi128_si256(AesNi::splat(block)) }
    }

    #[inline(always)]
    unsafe fn xor(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the caller is in the target features.
        unsafe { _mm256_xor_si256(a, b) }
    }

    #[inline(always)]
    unsafe fn enc_round(x: __m256i, k: __m256i) -> __m256i {
        // SAFETY: the caller is in the target features.
        unsafe { _mm256_aesenc_epi128(x, k) }
    }

    #[inline(always)]
    unsafe fn enc_last(x: __m256i, k: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_aesenclast_epi128(x, k) }
    }

    #[inline(always)]
    unsafe fn dec_round(x: __m256i, k: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_aesdec_epi128(x, k) }
    }

    #[inline(always)]
    unsafe fn dec_last(x: __m256i, k: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_aesdeclast_epi128(x, k) }
    }

    #[inline(always)]
    unsafe fn shift_in(prev: __m256i, cur: __m256i) -> __m256i {
        // SAFETY: the caller is in the target features.
        unsafe { _mm256_permute2x128_si256::<0x21>(prev, cur) }
    }

    #[inline(always)]
    unsafe fn last(x: __m256i) -> __m128i {
        // SAFETY: the caller is in the target features.
        unsafe { _mm256_extracti128_si256::<1>(x) }
    }

    #[inline(always)]
    unsafe fn counters(counter: u128) -> __m256i {
        // SAFETY: the caller is in the target features.
        unsafe {
            let start = _mm256_broadcastsi128_si256(AesNi::counters(counter));
            _mm256_add_epi64(start, _mm256_set_epi64x(0, 1, 0, 0))
        }
    }

    #[inline(always)]
    unsafe fn add_counter(x: __m256i, n: u64) -> __m256i {
        let n = n as i64;
        // SAFETY: the caller is in the target features.
        unsafe { _mm256_add_epi64(x, _mm256_set_epi64x(0, n, 0, n)) }
    }

    #[inline(always)]
    unsafe fn counter_blocks(x: __m256i) -> __m256i {
        // SAFETY: the caller is in the target features (AVX2).
        unsafe {
            let swap = _mm256_broadcastsi128_si256(_mm_set_epi8(
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
            ));
            _mm256_shuffle_epi8(x, swap)
        }
    }

    const CTR_BYTE_ADDS: bool = true;

    #[inline(always)]
    unsafe fn add_last_byte(x: __m256i, n: u8) -> __m256i {
        let n = i32::from(n) << 24;
        // SAFETY: the caller is in the target features (AVX2).
        unsafe { _mm256_add_epi8(x, _mm256_set_epi32(n, 0, 0, 0, n, 0, 0, 0)) }
    }

    #[inline(always)]
    unsafe fn gather(ptr: impl Fn(usize) -> *const u8) -> __m256i {
        // SAFETY: the caller's contract.
        unsafe { _mm256_set_m128i(AesNi::load(ptr(1)), AesNi::load(ptr(0))) }
    }

    #[inline(always)]
    unsafe fn scatter(ptr: impl Fn(usize) -> *mut u8, x: __m256i) {
        // SAFETY: the caller's contract.
        unsafe {
            AesNi::store(ptr(0), _mm256_castsi256_si128(x));
            AesNi::store(ptr(1), _mm256_extracti128_si256::<1>(x));
        }
    }
}

impl Clmul for Vaes256 {
    #[inline(always)]
    unsafe fn fold(acc: __m256i, keys: __m256i, block: __m256i) -> __m256i {
        // SAFETY: the caller is in the target features with VPCLMULQDQ.
        unsafe {
            Self::xor3(
                _mm256_clmulepi64_epi128::<0x00>(acc, keys),
                _mm256_clmulepi64_epi128::<0x11>(acc, keys),
                block,
            )
        }
    }
}

entries!(
    Vaes256,
    token: Vaes256Token,
    features: "aes,ssse3,sse4.1,avx,avx2,vaes",
    wide: 8,
    lanes: 8, 16, stagger: 4 steps per 4 lanes,
    wide_lanes: 8, 16, from: usize::MAX,
    few_lanes: 4, 8, upto: 8,
    clmul: Vaes256ClmulToken, "aes,ssse3,sse4.1,avx,avx2,vaes,pclmulqdq,vpclmulqdq"
);
