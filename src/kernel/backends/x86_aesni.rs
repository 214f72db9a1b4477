//! AES-NI on 128-bit registers: 8 blocks in flight (AES latency 4 cycles ×
//! 2 instructions per cycle), 8 CBC lanes in the multi-buffer path, and
//! PCLMULQDQ for the fused CRC. Also the narrow backend of the VAES ones:
//! single blocks, serial CBC and the last blocks of a buffer.

use core::arch::x86_64::*;

use super::modes::{self, Clmul, Simd, by_rounds, entries};
use super::x86::{AesNiClmulToken, AesNiToken};
use crate::kernel::Job;
use crate::kernel::inout::InOut;
use crate::kernel::key_schedule::{MAX_ROUND_KEYS, RoundKeys};
use crate::kernel::lanes::{Lanes, Scratch};

/// The AES-NI primitives.
pub(crate) struct AesNi;

impl Simd for AesNi {
    type Reg = __m128i;
    const BLOCKS: usize = 1;
    type Narrow = AesNi;

    #[inline(always)]
    unsafe fn in_step<const N: usize>(x: &mut [__m128i; N]) {
        super::x86::in_step!(xmm_reg, x);
    }

    #[inline(always)]
    unsafe fn zero() -> __m128i {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { _mm_setzero_si128() }
    }

    #[inline(always)]
    unsafe fn load(ptr: *const u8) -> __m128i {
        // SAFETY: the caller's contract (16 readable bytes); no alignment needed.
        unsafe { _mm_loadu_si128(ptr.cast()) }
    }

    #[inline(always)]
    unsafe fn store(ptr: *mut u8, x: __m128i) {
        // SAFETY: the caller's contract (16 writable bytes); no alignment needed.
        unsafe { _mm_storeu_si128(ptr.cast(), x) }
    }

    #[inline(always)]
    unsafe fn splat(block: &[u8; 16]) -> __m128i {
        // SAFETY: `block` is 16 readable bytes.
        unsafe { Self::load(block.as_ptr()) }
    }

    #[inline(always)]
    unsafe fn xor(a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { _mm_xor_si128(a, b) }
    }

    #[inline(always)]
    unsafe fn enc_round(x: __m128i, k: __m128i) -> __m128i {
        // SAFETY: the caller is in AES-NI's target features.
        unsafe { _mm_aesenc_si128(x, k) }
    }

    #[inline(always)]
    unsafe fn enc_last(x: __m128i, k: __m128i) -> __m128i {
        // SAFETY: as above.
        unsafe { _mm_aesenclast_si128(x, k) }
    }

    #[inline(always)]
    unsafe fn dec_round(x: __m128i, k: __m128i) -> __m128i {
        // SAFETY: as above.
        unsafe { _mm_aesdec_si128(x, k) }
    }

    #[inline(always)]
    unsafe fn dec_last(x: __m128i, k: __m128i) -> __m128i {
        // SAFETY: as above.
        unsafe { _mm_aesdeclast_si128(x, k) }
    }

    #[inline(always)]
    unsafe fn shift_in(prev: __m128i, _: __m128i) -> __m128i {
        prev
    }

    #[inline(always)]
    unsafe fn last(x: __m128i) -> __m128i {
        x
    }

    #[inline(always)]
    unsafe fn counters(counter: u128) -> __m128i {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { _mm_set_epi64x((counter >> 64) as i64, counter as i64) }
    }

    #[inline(always)]
    unsafe fn add_counter(x: __m128i, n: u64) -> __m128i {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { _mm_add_epi64(x, _mm_set_epi64x(0, n as i64)) }
    }

    #[inline(always)]
    unsafe fn counter_blocks(x: __m128i) -> __m128i {
        // SAFETY: the caller is in the target features (SSSE3 included).
        unsafe {
            let swap = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            _mm_shuffle_epi8(x, swap)
        }
    }

    const CTR_BYTE_ADDS: bool = true;

    #[inline(always)]
    unsafe fn add_last_byte(x: __m128i, n: u8) -> __m128i {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { _mm_add_epi8(x, _mm_set_epi32(i32::from(n) << 24, 0, 0, 0)) }
    }

    #[inline(always)]
    unsafe fn gather(ptr: impl Fn(usize) -> *const u8) -> __m128i {
        // SAFETY: the caller's contract.
        unsafe { Self::load(ptr(0)) }
    }

    #[inline(always)]
    unsafe fn scatter(ptr: impl Fn(usize) -> *mut u8, x: __m128i) {
        // SAFETY: the caller's contract.
        unsafe { Self::store(ptr(0), x) }
    }

    /// The next plaintext block and round key 0 are folded into the last
    /// round key (`AESENCLAST` XORs its key last), so the chain is
    /// 10/12/14 AES instructions per block with no XOR between them.
    #[inline(always)]
    unsafe fn cbc_encrypt_chain<const NR: usize>(
        k: &[__m128i; MAX_ROUND_KEYS],
        iv: &[u8; 16],
        src: *const u8,
        dst: *mut u8,
        blocks: usize,
    ) {
        if blocks == 0 {
            return;
        }
        // SAFETY: the caller's contract: blocks `0..blocks` of `src` and
        // `dst`; block i + 1 is read before block i is written, which in
        // place touches a different block.
        unsafe {
            let mut x = _mm_xor_si128(Self::splat(iv), Self::load(src));
            x = _mm_xor_si128(x, k[0]);
            for i in 0..blocks {
                for key in &k[1..NR] {
                    x = _mm_aesenc_si128(x, *key);
                }
                if i + 1 < blocks {
                    let next = _mm_xor_si128(Self::load(src.add((i + 1) * 16)), k[0]);
                    let y = _mm_aesenclast_si128(x, _mm_xor_si128(k[NR], next));
                    Self::store(dst.add(i * 16), _mm_xor_si128(y, next));
                    x = y;
                } else {
                    Self::store(dst.add(i * 16), _mm_aesenclast_si128(x, k[NR]));
                }
            }
        }
    }
}

impl Clmul for AesNi {
    #[inline(always)]
    unsafe fn fold(acc: __m128i, keys: __m128i, block: __m128i) -> __m128i {
        // SAFETY: the caller is in the target features with PCLMULQDQ.
        unsafe {
            Self::xor3(
                _mm_clmulepi64_si128::<0x00>(acc, keys),
                _mm_clmulepi64_si128::<0x11>(acc, keys),
                block,
            )
        }
    }
}

entries!(
    AesNi,
    token: AesNiToken,
    features: "aes,ssse3,sse4.1",
    wide: 8,
    lanes: 8, 8, stagger: 4 steps per 4 lanes,
    wide_lanes: 8, 8, from: usize::MAX,
    few_lanes: 8, 8, upto: 0,
    clmul: AesNiClmulToken, "aes,ssse3,sse4.1,pclmulqdq"
);
