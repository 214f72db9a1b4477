//! VAES on 512-bit registers (AVX-512): four blocks per instruction, 4
//! registers in flight in the parallel modes; CBC encryption runs 16
//! lanes. Sixteen lanes (four registers) cover the AES latency of one pipe;
//! on a core with two 512-bit AES pipes (Zen 5) batches of 32 jobs and more
//! run 32 lanes, as eight registers keep both pipes busy (smaller batches
//! stay at sixteen, as idle lanes would cost throughput). See
//! `x86::vaes512_wide_lanes_from`. Batches of at most eight jobs run eight
//! lanes (two registers), as the idle half of sixteen would still cost its
//! rounds. On a core that splits 512-bit instructions in halves (Zen 4)
//! the sixteen and the eight run on 256-bit registers (eight and four):
//! `x86::vaes512_on_ymm`.
//!
//! With VPCLMULQDQ the lanes also fold the CRC-32 of their plaintext: two
//! carry-less multiplications per register and step beside ten `vaesenc`.
//! With 16 lanes they fill the gaps of the latency-bound rounds; with 32
//! lanes they share the AES pipes and cost about 15%.

use core::arch::x86_64::*;

#[cfg(miri)]
use super::x86_miri::_mm512_ternarylogic_epi64;

use super::modes::{self, Clmul, Simd, by_rounds, entries};
use super::x86::{Vaes512ClmulToken, Vaes512Token};
use super::x86_aesni::AesNi;
use super::x86_vaes256::Vaes256;
use crate::kernel::Job;
use crate::kernel::inout::InOut;
use crate::kernel::key_schedule::{MAX_ROUND_KEYS, RoundKeys};
use crate::kernel::lanes::{Lanes, Scratch};

/// The VAES-512 primitives.
pub(crate) struct Vaes512;

impl Simd for Vaes512 {
    type Reg = __m512i;
    const BLOCKS: usize = 4;
    const KEEP_CIPHERTEXT: bool = true;
    type Narrow = AesNi;

    #[inline(always)]
    unsafe fn zero() -> __m512i {
        // SAFETY: the caller is in the target features (AVX-512 F).
        unsafe { _mm512_setzero_si512() }
    }

    #[inline(always)]
    unsafe fn load(ptr: *const u8) -> __m512i {
        // SAFETY: the caller's contract (64 readable bytes); no alignment needed.
        unsafe { _mm512_loadu_si512(ptr.cast()) }
    }

    #[inline(always)]
    unsafe fn store(ptr: *mut u8, x: __m512i) {
        // SAFETY: the caller's contract (64 writable bytes); no alignment needed.
        unsafe { _mm512_storeu_si512(ptr.cast(), x) }
    }

    #[inline(always)]
    unsafe fn splat(block: &[u8; 16]) -> __m512i {
        // SAFETY: `block` is 16 readable bytes; in the target features.
        unsafe { _mm512_broadcast_i32x4(AesNi::splat(block)) }
    }

    #[inline(always)]
    unsafe fn xor(a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: the caller is in the target features.
        unsafe { _mm512_xor_si512(a, b) }
    }

    /// In one instruction.
    #[inline(always)]
    unsafe fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        // SAFETY: the caller is in the target features.
        unsafe { _mm512_ternarylogic_epi64::<0x96>(a, b, c) }
    }

    #[inline(always)]
    unsafe fn enc_round(x: __m512i, k: __m512i) -> __m512i {
        // SAFETY: the caller is in the target features.
        unsafe { _mm512_aesenc_epi128(x, k) }
    }

    #[inline(always)]
    unsafe fn enc_last(x: __m512i, k: __m512i) -> __m512i {
        // SAFETY: as above.
        unsafe { _mm512_aesenclast_epi128(x, k) }
    }

    #[inline(always)]
    unsafe fn dec_round(x: __m512i, k: __m512i) -> __m512i {
        // SAFETY: as above.
        unsafe { _mm512_aesdec_epi128(x, k) }
    }

    #[inline(always)]
    unsafe fn dec_last(x: __m512i, k: __m512i) -> __m512i {
        // SAFETY: as above.
        unsafe { _mm512_aesdeclast_epi128(x, k) }
    }

    #[inline(always)]
    unsafe fn shift_in(prev: __m512i, cur: __m512i) -> __m512i {
        // SAFETY: the caller is in the target features.
        unsafe { _mm512_alignr_epi64::<6>(cur, prev) }
    }

    #[inline(always)]
    unsafe fn last(x: __m512i) -> __m128i {
        // SAFETY: the caller is in the target features.
        unsafe { _mm512_extracti32x4_epi32::<3>(x) }
    }

    #[inline(always)]
    unsafe fn counters(counter: u128) -> __m512i {
        // SAFETY: the caller is in the target features.
        unsafe {
            let start = _mm512_broadcast_i32x4(AesNi::counters(counter));
            _mm512_add_epi64(start, _mm512_set_epi64(0, 3, 0, 2, 0, 1, 0, 0))
        }
    }

    #[inline(always)]
    unsafe fn add_counter(x: __m512i, n: u64) -> __m512i {
        let n = n as i64;
        // SAFETY: the caller is in the target features.
        unsafe { _mm512_add_epi64(x, _mm512_set_epi64(0, n, 0, n, 0, n, 0, n)) }
    }

    #[inline(always)]
    unsafe fn counter_blocks(x: __m512i) -> __m512i {
        // SAFETY: the caller is in the target features (AVX-512 BW).
        unsafe {
            let swap = _mm512_broadcast_i32x4(_mm_set_epi8(
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
            ));
            _mm512_shuffle_epi8(x, swap)
        }
    }

    #[inline(always)]
    unsafe fn gather(ptr: impl Fn(usize) -> *const u8) -> __m512i {
        // SAFETY: the caller's contract.
        unsafe {
            let x = _mm512_castsi128_si512(AesNi::load(ptr(0)));
            let x = _mm512_inserti32x4::<1>(x, AesNi::load(ptr(1)));
            let x = _mm512_inserti32x4::<2>(x, AesNi::load(ptr(2)));
            _mm512_inserti32x4::<3>(x, AesNi::load(ptr(3)))
        }
    }

    #[inline(always)]
    unsafe fn scatter(ptr: impl Fn(usize) -> *mut u8, x: __m512i) {
        // SAFETY: the caller's contract.
        unsafe {
            AesNi::store(ptr(0), _mm512_castsi512_si128(x));
            AesNi::store(ptr(1), _mm512_extracti32x4_epi32::<1>(x));
            AesNi::store(ptr(2), _mm512_extracti32x4_epi32::<2>(x));
            AesNi::store(ptr(3), _mm512_extracti32x4_epi32::<3>(x));
        }
    }
}

impl Clmul for Vaes512 {
    #[inline(always)]
    unsafe fn fold(acc: __m512i, keys: __m512i, block: __m512i) -> __m512i {
        // SAFETY: the caller is in the target features with VPCLMULQDQ.
        unsafe {
            Self::xor3(
                _mm512_clmulepi64_epi128::<0x00>(acc, keys),
                _mm512_clmulepi64_epi128::<0x11>(acc, keys),
                block,
            )
        }
    }
}

entries!(
    Vaes512,
    token: Vaes512Token,
    features: "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl",
    wide: 4,
    lanes: 4, 16, stagger: 4 steps per 4 lanes,
    wide_lanes: 8, 32, from: super::x86::vaes512_wide_lanes_from(),
    few_lanes: 2, 8, upto: 8,
    narrow_on: Vaes256, 4, 8, when: super::x86::vaes512_on_ymm(),
    clmul: Vaes512ClmulToken,
        "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl,pclmulqdq,vpclmulqdq"
);
