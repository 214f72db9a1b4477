//! Stand-ins for the x86 instructions Miri cannot execute, compiled only
//! under Miri (`cfg(miri)`), so that `scripts/miri.sh` can run the SIMD
//! backends and the lane scheduler there. Normal builds never see this
//! module: the real intrinsics are used unchanged.
//!
//! Miri has no CPUID or XGETBV (features come from the build's target
//! features instead, in `x86::read_cpuid`), no `AESKEYGENASSIST` and no
//! `VPTERNLOG`. Each stand-in has the intrinsic's name and signature, so a
//! `use` of it under `cfg(miri)` shadows the `core::arch` one.
//! Neither is constant time; Miri runs tests, not secrets.

use core::arch::x86_64::{
    __m128i, __m512i, _mm_extract_epi32, _mm_setr_epi32, _mm512_and_si512, _mm512_or_si512,
    _mm512_set1_epi64, _mm512_setzero_si512, _mm512_xor_si512,
};

/// `AESKEYGENASSIST`: dwords `[SubWord(X1), RotWord(SubWord(X1)) ^ RCON,
/// SubWord(X3), RotWord(SubWord(X3)) ^ RCON]` of the input `[X0..X3]`.
#[target_feature(enable = "sse4.1")]
pub(crate) fn _mm_aeskeygenassist_si128<const RCON: i32>(a: __m128i) -> __m128i {
    let x1 = sub_word(_mm_extract_epi32::<1>(a) as u32);
    let x3 = sub_word(_mm_extract_epi32::<3>(a) as u32);
    let rcon = RCON as u32 & 0xff;
    _mm_setr_epi32(
        x1 as i32,
        (x1.rotate_right(8) ^ rcon) as i32,
        x3 as i32,
        (x3.rotate_right(8) ^ rcon) as i32,
    )
}

/// `VPTERNLOGQ`: bit `4a + 2b + c` of `IMM8` is the result for input bits
/// `a`, `b`, `c`.
#[target_feature(enable = "avx512f")]
pub(crate) fn _mm512_ternarylogic_epi64<const IMM8: i32>(
    a: __m512i,
    b: __m512i,
    c: __m512i,
) -> __m512i {
    let ones = _mm512_set1_epi64(-1);
    let pick = |x: __m512i, set: bool| if set { x } else { _mm512_xor_si512(x, ones) };
    let mut result = _mm512_setzero_si512();
    for row in 0..8 {
        if IMM8 >> row & 1 != 0 {
            let term = _mm512_and_si512(
                _mm512_and_si512(pick(a, row & 4 != 0), pick(b, row & 2 != 0)),
                pick(c, row & 1 != 0),
            );
            result = _mm512_or_si512(result, term);
        }
    }
    result
}

/// FIPS-197 `SubWord`: the S-box on each byte.
fn sub_word(word: u32) -> u32 {
    u32::from_le_bytes(word.to_le_bytes().map(s_box))
}

/// The S-box from its definition: the inverse in GF(2^8) (`x^254`, 0 for
/// 0), then the affine map.
fn s_box(x: u8) -> u8 {
    let mut inverse = 1u8;
    let mut power = x;
    let mut exponent = 254u32;
    while exponent != 0 {
        if exponent & 1 != 0 {
            inverse = gf_mul(inverse, power);
        }
        power = gf_mul(power, power);
        exponent >>= 1;
    }
    let b = inverse;
    b ^ b.rotate_left(1) ^ b.rotate_left(2) ^ b.rotate_left(3) ^ b.rotate_left(4) ^ 0x63
}

/// Multiplication modulo x^8 + x^4 + x^3 + x + 1.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        a = (a << 1) ^ if a & 0x80 != 0 { 0x1b } else { 0 };
        b >>= 1;
    }
    product
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_box_matches_fips197() {
        // FIPS-197 figure 7: row 0, row 5 and the last entry.
        assert_eq!(s_box(0x00), 0x63);
        assert_eq!(s_box(0x01), 0x7c);
        assert_eq!(s_box(0x53), 0xed);
        assert_eq!(s_box(0xff), 0x16);
        assert_eq!(sub_word(0x0001_53ff), 0x637c_ed16);
    }
}
