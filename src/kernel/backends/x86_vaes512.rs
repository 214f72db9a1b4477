//! VAES on 512-bit registers (AVX-512): four blocks per instruction.
//!
//! Parallel modes keep `WIDE` registers in flight; CBC encryption runs
//! `LANES` independent buffers, four per register, or `WIDE_LANES` when the
//! batch has that many. Single blocks, serial CBC and the last few blocks
//! of a buffer go through AES-NI.
//!
//! With VPCLMULQDQ the multi-buffer CBC can also fold the CRC-32 of each
//! lane's plaintext into a per-lane accumulator (`cbc_encrypt_multi_crc`):
//! two carry-less multiplications per register and step beside ten
//! `vaesenc`. With 16 lanes they fill the gaps of the latency-bound rounds;
//! with 32 lanes they share the AES pipes and cost about 15%.

use core::arch::x86_64::*;

#[cfg(miri)]
use super::x86_miri::_mm512_ternarylogic_epi64;

use super::x86::{Vaes512ClmulToken, Vaes512Token};
use super::x86_aesni::{self, by_rounds, load, store};
use super::x86_crc;
use crate::kernel::crc::consts::FOLD_128;
use crate::kernel::key_schedule::{MAX_ROUND_KEYS, RoundKeys};
use crate::kernel::lanes::{self, Lanes, MAX_LANES, Scratch};
use crate::kernel::{InOut, Job};

/// 512-bit registers per iteration of the parallel modes (4 blocks each).
const WIDE: usize = 4;
/// Multi-buffer CBC lanes (four per register).
const LANES: usize = 16;
// The scheduler's lane state arrays hold `MAX_LANES` entries.
const _: () = assert!(LANES <= lanes::MAX_LANES);
const LANE_REGS: usize = LANES / 4;
/// Lanes for batches of at least this many jobs. Sixteen lanes (four
/// registers) cover the AES latency of one pipe; on a core with two
/// 512-bit AES pipes (Zen 5) eight registers keep both busy. Smaller
/// batches stay at sixteen: idle lanes would cost throughput.
const WIDE_LANES: usize = 32;
const _: () = assert!(WIDE_LANES <= lanes::MAX_LANES);
/// Steps by which each lane starts after the previous one (see
/// `kernel::multibuffer`).
const STAGGER: usize = 1;

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
fn broadcast_keys(keys: &[[u8; 16]; MAX_ROUND_KEYS]) -> [__m512i; MAX_ROUND_KEYS] {
    // SAFETY: each round key is a 16-byte array.
    core::array::from_fn(|i| _mm512_broadcast_i32x4(unsafe { load(keys[i].as_ptr()) }))
}

/// # Safety
/// `ptr` must be valid for reading 64 bytes.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
unsafe fn load4(ptr: *const u8) -> __m512i {
    // SAFETY: the caller guarantees 64 readable bytes; no alignment needed.
    unsafe { _mm512_loadu_si512(ptr.cast()) }
}

/// # Safety
/// `ptr` must be valid for writing 64 bytes.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
unsafe fn store4(ptr: *mut u8, x: __m512i) {
    // SAFETY: the caller guarantees 64 writable bytes; no alignment needed.
    unsafe { _mm512_storeu_si512(ptr.cast(), x) }
}

/// Rounds 1..=NR of encryption; round key 0 is already XORed in.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
fn encrypt_rounds<const NR: usize, const N: usize>(
    k: &[__m512i; MAX_ROUND_KEYS],
    x: &mut [__m512i; N],
) {
    for key in &k[1..NR] {
        for b in x.iter_mut() {
            *b = _mm512_aesenc_epi128(*b, *key);
        }
    }
    for b in x.iter_mut() {
        *b = _mm512_aesenclast_epi128(*b, k[NR]);
    }
}

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
fn encrypt_par<const NR: usize, const N: usize>(
    k: &[__m512i; MAX_ROUND_KEYS],
    x: &mut [__m512i; N],
) {
    for b in x.iter_mut() {
        *b = _mm512_xor_si512(*b, k[0]);
    }
    encrypt_rounds::<NR, N>(k, x);
}

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
fn decrypt_par<const NR: usize, const N: usize>(
    k: &[__m512i; MAX_ROUND_KEYS],
    x: &mut [__m512i; N],
) {
    for b in x.iter_mut() {
        *b = _mm512_xor_si512(*b, k[0]);
    }
    for key in &k[1..NR] {
        for b in x.iter_mut() {
            *b = _mm512_aesdec_epi128(*b, *key);
        }
    }
    for b in x.iter_mut() {
        *b = _mm512_aesdeclast_epi128(*b, k[NR]);
    }
}

pub(super) fn encrypt_block(token: Vaes512Token, keys: &RoundKeys, block: &mut [u8; 16]) {
    x86_aesni::encrypt_block(token.aesni(), keys, block);
}

pub(super) fn decrypt_block(token: Vaes512Token, keys: &RoundKeys, block: &mut [u8; 16]) {
    x86_aesni::decrypt_block(token.aesni(), keys, block);
}

pub(super) fn cbc_encrypt(token: Vaes512Token, keys: &RoundKeys, iv: &[u8; 16], io: InOut<'_>) {
    x86_aesni::cbc_encrypt(token.aesni(), keys, iv, io);
}

pub(super) fn ecb_encrypt(token: Vaes512Token, keys: &RoundKeys, mut io: InOut<'_>) {
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: the token proves the CPU features; `src`/`dst` hold `blocks`
    // whole blocks and are equal or disjoint.
    let done = unsafe { by_rounds!(keys, ecb_impl(&keys.enc, src, dst, blocks, false)) };
    finish_with_aesni(io, done, |io| {
        x86_aesni::ecb_encrypt(token.aesni(), keys, io)
    });
}

pub(super) fn ecb_decrypt(token: Vaes512Token, keys: &RoundKeys, mut io: InOut<'_>) {
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: as in `ecb_encrypt`.
    let done = unsafe { by_rounds!(keys, ecb_impl(&keys.dec, src, dst, blocks, true)) };
    finish_with_aesni(io, done, |io| {
        x86_aesni::ecb_decrypt(token.aesni(), keys, io)
    });
}

/// Hands the blocks from `done` on to AES-NI.
fn finish_with_aesni(mut io: InOut<'_>, done: usize, f: impl FnOnce(InOut<'_>)) {
    let start = done * 16;
    if start < io.len() {
        let len = io.len();
        f(io.slice(start, len));
    }
}

/// ECB over whole groups of four blocks; returns how many blocks it did.
///
/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
unsafe fn ecb_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
    decrypt: bool,
) -> usize {
    let k = broadcast_keys(k);
    let mut i = 0;
    while i + 4 * WIDE <= blocks {
        // SAFETY: blocks i .. i + 4 * WIDE are inside `src`.
        let mut x: [__m512i; WIDE] =
            core::array::from_fn(|g| unsafe { load4(src.add((i + 4 * g) * 16)) });
        if decrypt {
            decrypt_par::<NR, WIDE>(&k, &mut x);
        } else {
            encrypt_par::<NR, WIDE>(&k, &mut x);
        }
        for (g, b) in x.iter().enumerate() {
            // SAFETY: blocks i .. i + 4 * WIDE are inside `dst`.
            unsafe { store4(dst.add((i + 4 * g) * 16), *b) };
        }
        i += 4 * WIDE;
    }
    while i + 4 <= blocks {
        // SAFETY: blocks i .. i + 4 are inside `src` and `dst`.
        let mut x = [unsafe { load4(src.add(i * 16)) }];
        if decrypt {
            decrypt_par::<NR, 1>(&k, &mut x);
        } else {
            encrypt_par::<NR, 1>(&k, &mut x);
        }
        // SAFETY: as above.
        unsafe { store4(dst.add(i * 16), x[0]) };
        i += 4;
    }
    i
}

pub(super) fn cbc_decrypt(token: Vaes512Token, keys: &RoundKeys, iv: &[u8; 16], mut io: InOut<'_>) {
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    let mut last = *iv;
    // SAFETY: the token proves the CPU features; `src`/`dst` hold `blocks`
    // whole blocks and are equal or disjoint.
    let done = unsafe {
        by_rounds!(
            keys,
            cbc_decrypt_impl(&keys.dec, &mut last, src, dst, blocks)
        )
    };
    finish_with_aesni(io, done, |io| {
        x86_aesni::cbc_decrypt(token.aesni(), keys, &last, io);
    });
}

/// CBC decryption of whole groups of four blocks; returns how many blocks
/// it did and leaves the last ciphertext block in `iv`.
///
/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
unsafe fn cbc_decrypt_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    iv: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) -> usize {
    let k = broadcast_keys(k);
    // Block 3 of `last` is the ciphertext before the current group.
    // SAFETY: `iv` is 16 bytes.
    let mut last = _mm512_broadcast_i32x4(unsafe { load(iv.as_ptr()) });
    let mut i = 0;
    while i + 4 * WIDE <= blocks {
        // SAFETY: blocks i .. i + 4 * WIDE are inside `src`; all are read
        // before any is written (in place they alias).
        let c: [__m512i; WIDE] =
            core::array::from_fn(|g| unsafe { load4(src.add((i + 4 * g) * 16)) });
        let mut x = c;
        decrypt_par::<NR, WIDE>(&k, &mut x);
        for g in 0..WIDE {
            // [previous block 3, c0, c1, c2]: the ciphertext one block back.
            let prev = _mm512_alignr_epi64::<6>(c[g], if g == 0 { last } else { c[g - 1] });
            // SAFETY: blocks i .. i + 4 * WIDE are inside `dst`.
            unsafe { store4(dst.add((i + 4 * g) * 16), _mm512_xor_si512(x[g], prev)) };
        }
        last = c[WIDE - 1];
        i += 4 * WIDE;
    }
    while i + 4 <= blocks {
        // SAFETY: blocks i .. i + 4 are inside `src` and `dst`.
        let c = unsafe { load4(src.add(i * 16)) };
        let mut x = [c];
        decrypt_par::<NR, 1>(&k, &mut x);
        let prev = _mm512_alignr_epi64::<6>(c, last);
        // SAFETY: as above.
        unsafe { store4(dst.add(i * 16), _mm512_xor_si512(x[0], prev)) };
        last = c;
        i += 4;
    }
    // SAFETY: `iv` is 16 writable bytes.
    unsafe { store(iv.as_mut_ptr(), _mm512_extracti32x4_epi32::<3>(last)) };
    i
}

pub(super) fn ctr(token: Vaes512Token, keys: &RoundKeys, counter: &[u8; 16], mut io: InOut<'_>) {
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    let mut counter = u128::from_be_bytes(*counter);
    let mut done = 0;
    // Split where the low 64 bits of the counter wrap, so each stretch can
    // count in one 64-bit lane and the carry into the high half is exact.
    while done + 4 <= blocks {
        let until_wrap = (u64::MAX - counter as u64) as u128 + 1;
        let n = ((blocks - done) as u128).min(until_wrap) as usize;
        // SAFETY: the token proves the CPU features; blocks `done..done + n`
        // are inside `src`/`dst`, which are equal or disjoint.
        let did = unsafe {
            by_rounds!(
                keys,
                ctr_impl(
                    &keys.enc,
                    counter,
                    src.add(done * 16),
                    dst.add(done * 16),
                    n
                )
            )
        };
        counter = counter.wrapping_add(did as u128);
        done += did;
        if did < n {
            break;
        }
    }
    let counter = counter.to_be_bytes();
    finish_with_aesni(io, done, |io| {
        x86_aesni::ctr(token.aesni(), keys, &counter, io)
    });
}

/// CTR over whole groups of four blocks; returns how many blocks it did.
///
/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or
/// disjoint; `counter + blocks - 1` must not carry out of the low 64 bits.
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
unsafe fn ctr_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    counter: u128,
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) -> usize {
    let k = broadcast_keys(k);
    let swap = _mm512_broadcast_i32x4(_mm_set_epi8(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ));
    // Lane j holds the counter + j as (low, high) 64-bit halves.
    let start = _mm512_broadcast_i32x4(_mm_set_epi64x((counter >> 64) as i64, counter as i64));
    let mut base = _mm512_add_epi64(start, _mm512_set_epi64(0, 3, 0, 2, 0, 1, 0, 0));
    let step: [__m512i; WIDE] = core::array::from_fn(|g| {
        _mm512_set_epi64(
            0,
            4 * g as i64,
            0,
            4 * g as i64,
            0,
            4 * g as i64,
            0,
            4 * g as i64,
        )
    });
    let advance = _mm512_set_epi64(
        0,
        4 * WIDE as i64,
        0,
        4 * WIDE as i64,
        0,
        4 * WIDE as i64,
        0,
        4 * WIDE as i64,
    );
    let four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    let mut i = 0;
    while i + 4 * WIDE <= blocks {
        let mut x: [__m512i; WIDE] =
            core::array::from_fn(|g| _mm512_shuffle_epi8(_mm512_add_epi64(base, step[g]), swap));
        encrypt_par::<NR, WIDE>(&k, &mut x);
        for (g, ks) in x.iter().enumerate() {
            // SAFETY: blocks i .. i + 4 * WIDE are inside `src` and `dst`.
            unsafe {
                let p = load4(src.add((i + 4 * g) * 16));
                store4(dst.add((i + 4 * g) * 16), _mm512_xor_si512(p, *ks));
            }
        }
        base = _mm512_add_epi64(base, advance);
        i += 4 * WIDE;
    }
    while i + 4 <= blocks {
        let mut x = [_mm512_shuffle_epi8(base, swap)];
        encrypt_par::<NR, 1>(&k, &mut x);
        // SAFETY: blocks i .. i + 4 are inside `src` and `dst`.
        unsafe {
            let p = load4(src.add(i * 16));
            store4(dst.add(i * 16), _mm512_xor_si512(p, x[0]));
        }
        base = _mm512_add_epi64(base, four);
        i += 4;
    }
    i
}

pub(super) fn cbc_encrypt_multi(token: Vaes512Token, keys: &RoundKeys, jobs: &mut [Job<'_>]) {
    let _ = token;
    let mut scratch = Scratch::new();
    if jobs.len() >= WIDE_LANES {
        let mut sched = Lanes::new(jobs, WIDE_LANES, STAGGER, &mut scratch);
        // SAFETY: the token proves the CPU features.
        unsafe {
            by_rounds!(
                keys,
                cbc_multi::<NR, { WIDE_LANES / 4 }>(&keys.enc, &mut sched)
            )
        }
    } else {
        let mut sched = Lanes::new(jobs, LANES, STAGGER, &mut scratch);
        // SAFETY: the token proves the CPU features.
        unsafe { by_rounds!(keys, cbc_multi::<NR, LANE_REGS>(&keys.enc, &mut sched)) }
    }
}

/// [`cbc_encrypt_multi`] that also computes the CRC of each job's
/// plaintext for the jobs that ask for one (`Job::with_crc`): every lane
/// folds the block it gathers for AES into a CRC accumulator (see
/// `kernel::crc`); each finished job's accumulator is then reduced and its
/// tail appended. Must run before the CBC tail rule overwrites the tails.
pub(super) fn cbc_encrypt_multi_crc(
    token: Vaes512ClmulToken,
    keys: &RoundKeys,
    jobs: &mut [Job<'_>],
) {
    let mut scratch = Scratch::new();
    if jobs.len() >= WIDE_LANES {
        let mut sched = Lanes::new(jobs, WIDE_LANES, STAGGER, &mut scratch);
        // SAFETY: the token proves the CPU features (VAES, AVX-512 F/BW/VL,
        // VPCLMULQDQ).
        unsafe {
            by_rounds!(
                keys,
                cbc_multi_crc::<NR, { WIDE_LANES / 4 }>(&keys.enc, &mut sched)
            )
        }
    } else {
        let mut sched = Lanes::new(jobs, LANES, STAGGER, &mut scratch);
        // SAFETY: as above.
        unsafe { by_rounds!(keys, cbc_multi_crc::<NR, LANE_REGS>(&keys.enc, &mut sched)) }
    }
    x86_crc::finish_jobs(token.clmul(), jobs);
}

/// Lanes 4g .. 4g + 4 of a per-lane state array, as register g.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
fn load_lanes<const REGS: usize>(state: &[[u8; 16]; MAX_LANES]) -> [__m512i; REGS] {
    const { assert!(4 * REGS <= MAX_LANES) };
    let state = state.as_flattened().as_ptr();
    // SAFETY: register g is the 64 bytes at 64 * g < 16 * MAX_LANES.
    core::array::from_fn(|g| unsafe { load4(state.add(64 * g)) })
}

/// The inverse of [`load_lanes`].
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
fn store_lanes<const REGS: usize>(state: &mut [[u8; 16]; MAX_LANES], regs: &[__m512i; REGS]) {
    const { assert!(4 * REGS <= MAX_LANES) };
    let state = state.as_flattened_mut().as_mut_ptr();
    for (g, r) in regs.iter().enumerate() {
        // SAFETY: register g is the 64 bytes at 64 * g < 16 * MAX_LANES.
        unsafe { store4(state.add(64 * g), *r) };
    }
}

/// Every lane's block of step `step`, four lanes per register.
///
/// # Safety
/// Inside a run of `sched` of more than `step` steps (the `Lanes`
/// guarantee then makes every lane's block readable).
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
unsafe fn gather<const REGS: usize, const CRC: bool>(
    sched: &Lanes<'_, '_, '_, CRC>,
    step: usize,
) -> [__m512i; REGS] {
    core::array::from_fn(|g| {
        let p = |j| sched.src_at(4 * g + j, step);
        // SAFETY: the caller's contract.
        unsafe {
            let x = _mm512_castsi128_si512(load(p(0)));
            let x = _mm512_inserti32x4::<1>(x, load(p(1)));
            let x = _mm512_inserti32x4::<2>(x, load(p(2)));
            _mm512_inserti32x4::<3>(x, load(p(3)))
        }
    })
}

/// Writes every lane's block of step `step`.
///
/// # Safety
/// As [`gather`], for writing; every lane's block must have been read
/// before.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
unsafe fn scatter<const REGS: usize, const CRC: bool>(
    sched: &Lanes<'_, '_, '_, CRC>,
    step: usize,
    x: &[__m512i; REGS],
) {
    for (g, c) in x.iter().enumerate() {
        let p = |j| sched.dst_at(4 * g + j, step);
        // SAFETY: the caller's contract.
        unsafe {
            store(p(0), _mm512_castsi512_si128(*c));
            store(p(1), _mm512_extracti32x4_epi32::<1>(*c));
            store(p(2), _mm512_extracti32x4_epi32::<2>(*c));
            store(p(3), _mm512_extracti32x4_epi32::<3>(*c));
        }
    }
}

/// Multi-buffer CBC encryption of the scheduler's jobs in `4 * REGS`
/// lanes.
///
/// # Safety
/// The CPU must have VAES and AVX-512 F/BW/VL.
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl")]
unsafe fn cbc_multi<const NR: usize, const REGS: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    sched: &mut Lanes<'_, '_, '_, false>,
) {
    let k = broadcast_keys(k);
    let mut chain = load_lanes::<REGS>(&sched.chain);
    loop {
        let steps = sched.begin_run();
        if steps == 0 {
            break;
        }
        for step in 0..steps {
            // SAFETY: inside the run, `step < steps`.
            let plain = unsafe { gather::<REGS, false>(sched, step) };
            // plaintext ^ chain ^ round key 0 in one instruction.
            let mut x = core::array::from_fn(|g| {
                _mm512_ternarylogic_epi64::<0x96>(plain[g], chain[g], k[0])
            });
            encrypt_rounds::<NR, REGS>(&k, &mut x);
            // SAFETY: as above; the blocks were read by `gather`.
            unsafe { scatter(sched, step, &x) };
            chain = x;
        }
        // Lanes that take a new job restart from its IV.
        store_lanes(&mut sched.chain, &chain);
        if sched.end_run() != 0 {
            chain = load_lanes(&sched.chain);
        }
    }
}

/// [`cbc_multi`] that also folds every lane's plaintext into its CRC
/// accumulator, which starts from the job's seed (`CrcRequest::seed`).
/// The fold comes before the AES rounds in program order, so the plaintext
/// registers are free during the rounds: with 32 lanes they would
/// otherwise spill (measured slower).
///
/// # Safety
/// As [`cbc_multi`], and the CPU must have VPCLMULQDQ.
#[target_feature(
    enable = "aes,ssse3,sse4.1,avx,avx2,vaes,avx512f,avx512bw,avx512vl,pclmulqdq,vpclmulqdq"
)]
unsafe fn cbc_multi_crc<const NR: usize, const REGS: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    sched: &mut Lanes<'_, '_, '_, true>,
) {
    let k = broadcast_keys(k);
    let fold = _mm512_broadcast_i32x4(_mm_set_epi64x(FOLD_128[1] as i64, FOLD_128[0] as i64));
    let mut chain = load_lanes::<REGS>(&sched.chain);
    let mut acc = load_lanes::<REGS>(&sched.crc);
    loop {
        let steps = sched.begin_run();
        if steps == 0 {
            break;
        }
        for step in 0..steps {
            // SAFETY: inside the run, `step < steps`.
            let plain = unsafe { gather::<REGS, true>(sched, step) };
            let mut x: [__m512i; REGS] = core::array::from_fn(|g| {
                _mm512_ternarylogic_epi64::<0x96>(plain[g], chain[g], k[0])
            });
            for g in 0..REGS {
                acc[g] = fold_crc(acc[g], fold, plain[g]);
            }
            encrypt_rounds::<NR, REGS>(&k, &mut x);
            // SAFETY: as above; the blocks were read by `gather`.
            unsafe { scatter(sched, step, &x) };
            chain = x;
        }
        store_lanes(&mut sched.chain, &chain);
        store_lanes(&mut sched.crc, &acc);
        if sched.end_run() != 0 {
            chain = load_lanes(&sched.chain);
            acc = load_lanes(&sched.crc);
        }
    }
}

/// The four CRC accumulators of `acc` folded forward by one block, XORed
/// with the next blocks: `clmul(lo, k0) ^ clmul(hi, k1) ^ block` per lane.
#[inline]
#[target_feature(enable = "avx512f,vpclmulqdq")]
fn fold_crc(acc: __m512i, keys: __m512i, block: __m512i) -> __m512i {
    _mm512_ternarylogic_epi64::<0x96>(
        _mm512_clmulepi64_epi128::<0x00>(acc, keys),
        _mm512_clmulepi64_epi128::<0x11>(acc, keys),
        block,
    )
}
