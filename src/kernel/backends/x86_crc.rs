//! The last step of the CRC that the VAES-512 multi-buffer CBC fuses into
//! its lanes, with PCLMULQDQ on 128-bit registers: append a job's partial
//! tail to its folded 128-bit accumulator and reduce it to the 32-bit CRC.
//! Once per job. The mathematics and the constants are in `kernel::crc`.

use core::arch::x86_64::*;

use super::x86::ClmulToken;
use crate::kernel::Job;
use crate::kernel::crc::consts::{FOLD_128, REDUCTION};

/// Stores the CRC value of every job that asks for one, from the
/// accumulator the lanes left in its request: the job's tail (its last
/// `len % 16` bytes) appended, then reduced to 32 bits. A job without a
/// whole block never reached a lane and is computed directly. Must run
/// before the CBC tail rule overwrites the tails.
pub(crate) fn finish_jobs(token: ClmulToken, jobs: &mut [Job<'_>]) {
    let _ = token;
    // SAFETY: a `ClmulToken` is only made after `x86::has` found the
    // PCLMULQDQ bit and the AES-NI bits (which include SSSE3 and SSE4.1)
    // in CPUID.
    unsafe { finish_jobs_impl(jobs) }
}

/// # Safety
/// The CPU must have PCLMULQDQ, SSSE3 and SSE4.1.
#[target_feature(enable = "pclmulqdq,sse2,ssse3,sse4.1")]
unsafe fn finish_jobs_impl(jobs: &mut [Job<'_>]) {
    for job in jobs.iter_mut() {
        let Some(crc) = &mut job.crc else { continue };
        let input = job.io.input();
        // The last 16 input bytes hold the tail in their last `len % 16`.
        crc.value = Some(match input.last_chunk::<16>() {
            Some(last) => finish(&crc.fold, last, input.len() % 16),
            None => crc.compute(input),
        });
    }
}

/// zlib's CRC value of a job whose whole blocks are folded into `fold`,
/// followed by the last `r` (< 16) bytes of `last`.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2,ssse3,sse4.1")]
fn finish(fold: &[u8; 16], last: &[u8; 16], r: usize) -> u32 {
    let x = load(fold);
    let x = if r == 0 {
        x
    } else {
        append_partial(x, load(last), r)
    };
    !reduce(x)
}

#[inline]
#[target_feature(enable = "sse2")]
fn load(block: &[u8; 16]) -> __m128i {
    // SAFETY: `block` is 16 readable bytes; loadu has no alignment requirement.
    unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
}

/// `x` folded forward by the distance `keys` (`[lo, hi]`) encode.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
fn fold128(x: __m128i, keys: __m128i) -> __m128i {
    _mm_xor_si128(
        _mm_clmulepi64_si128::<0x00>(x, keys),
        _mm_clmulepi64_si128::<0x11>(x, keys),
    )
}

/// Appends the last `r` (1..=15) message bytes, held in the last `r` bytes
/// of `last`, to the lane `x`: splits `x` after its first `r` bytes, and
/// folds those by 128 bits onto the rest followed by the new bytes.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2,ssse3,sse4.1")]
fn append_partial(x: __m128i, last: __m128i, r: usize) -> __m128i {
    debug_assert!((1..16).contains(&r));
    let index = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // Byte k: k + r − 16, negative (high bit set: zero) for k < 16 − r.
    let head_ctl = _mm_add_epi8(index, _mm_set1_epi8(r as i8 - 16));
    // Byte k: k + r (mod 16) for k < 16 − r, high bit set from 16 − r on.
    let rest_ctl = _mm_xor_si128(head_ctl, _mm_set1_epi8(i8::MIN));
    let head = _mm_shuffle_epi8(x, head_ctl);
    let rest = _mm_blendv_epi8(_mm_shuffle_epi8(x, rest_ctl), last, rest_ctl);
    let keys = _mm_set_epi64x(FOLD_128[1] as i64, FOLD_128[0] as i64);
    _mm_xor_si128(fold128(head, keys), rest)
}

/// `X·x^32 mod P` for the 128-bit lane `X`: the CRC register.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2,ssse3,sse4.1")]
fn reduce(x: __m128i) -> u32 {
    let low32 = _mm_setr_epi32(-1, 0, 0, 0);
    let k96 = _mm_set_epi64x(0, REDUCTION.k96 as i64);
    let k64 = _mm_set_epi64x(0, REDUCTION.k64 as i64);
    let mu = _mm_set_epi64x(0, REDUCTION.mu as i64);
    let poly = _mm_set_epi64x(0, REDUCTION.poly as i64);
    // 128 → 96 bits: the first 64 bits times x^96.
    let x = _mm_xor_si128(_mm_clmulepi64_si128::<0x00>(x, k96), _mm_srli_si128::<8>(x));
    // 96 → 64 bits: the first 32 bits times x^64.
    let x = _mm_xor_si128(
        _mm_clmulepi64_si128::<0x00>(_mm_and_si128(x, low32), k64),
        _mm_srli_si128::<4>(x),
    );
    // Barrett: q = ⌊hi·µ / x^32⌋, remainder = lo + q·P mod x^32.
    let q = _mm_clmulepi64_si128::<0x00>(_mm_and_si128(x, low32), mu);
    let qp = _mm_clmulepi64_si128::<0x00>(_mm_and_si128(q, low32), poly);
    _mm_extract_epi32::<1>(_mm_xor_si128(x, qp)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::crc::finish_portable;

    #[test]
    fn matches_the_portable_reduction() {
        let Some(token) = ClmulToken::detect() else {
            use std::io::Write;
            // Not captured by the test harness: a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: matches_the_portable_reduction: no PCLMULQDQ"
            );
            return;
        };
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let _ = token;
        let finish = |fold: &[u8; 16], last: &[u8; 16], r| {
            // SAFETY: the token proves PCLMULQDQ, SSSE3 and SSE4.1.
            unsafe { finish(fold, last, r) }
        };
        for _ in 0..2000 {
            let fold: [u8; 16] = ((u128::from(next()) << 64) | u128::from(next())).to_le_bytes();
            // The bytes before the tail must not matter.
            let last: [u8; 16] = ((u128::from(next()) << 64) | u128::from(next())).to_le_bytes();
            for r in 0..16 {
                assert_eq!(
                    finish(&fold, &last, r),
                    finish_portable(&fold, &last[16 - r..]),
                    "{r} tail bytes"
                );
            }
        }
        assert_eq!(finish(&[0; 16], &[0; 16], 0), 0xffff_ffff);
    }
}
