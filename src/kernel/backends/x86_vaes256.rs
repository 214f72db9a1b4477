//! VAES on 256-bit registers: two blocks per instruction, needing only AVX2
//! register state (Zen 3, Alder Lake and later have VAES without AVX-512).
//!
//! Parallel modes keep `WIDE` registers in flight; CBC encryption runs
//! `LANES` independent buffers, two per register. Single blocks, serial CBC
//! and the last odd block of a buffer go through AES-NI.

use core::arch::x86_64::*;

use super::x86::Vaes256Token;
use super::x86_aesni::{self, by_rounds, load, store};
use crate::kernel::key_schedule::{MAX_ROUND_KEYS, RoundKeys};
use crate::kernel::lanes::{self, Lanes, MAX_LANES, Scratch};
use crate::kernel::{InOut, Job};

/// 256-bit registers per iteration of the parallel modes (2 blocks each).
const WIDE: usize = 8;
/// Multi-buffer CBC lanes (two per register).
const LANES: usize = 16;
// The scheduler's lane state arrays hold `MAX_LANES` entries.
const _: () = assert!(LANES <= lanes::MAX_LANES);
const LANE_REGS: usize = LANES / 2;
/// Steps by which each lane starts after the previous one.
const STAGGER: usize = 1;

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
fn broadcast_keys(keys: &[[u8; 16]; MAX_ROUND_KEYS]) -> [__m256i; MAX_ROUND_KEYS] {
    // SAFETY: each round key is a 16-byte array.
    core::array::from_fn(|i| _mm256_broadcastsi128_si256(unsafe { load(keys[i].as_ptr()) }))
}

/// # Safety
/// `ptr` must be valid for reading 32 bytes.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
unsafe fn load2(ptr: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; no alignment needed.
    unsafe { _mm256_loadu_si256(ptr.cast()) }
}

/// # Safety
/// `ptr` must be valid for writing 32 bytes.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
unsafe fn store2(ptr: *mut u8, x: __m256i) {
    // SAFETY: the caller guarantees 32 writable bytes; no alignment needed.
    unsafe { _mm256_storeu_si256(ptr.cast(), x) }
}

/// Rounds 1..=NR of encryption; round key 0 is already XORed in.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
fn encrypt_rounds<const NR: usize, const N: usize>(
    k: &[__m256i; MAX_ROUND_KEYS],
    x: &mut [__m256i; N],
) {
    for key in &k[1..NR] {
        for b in x.iter_mut() {
            *b = _mm256_aesenc_epi128(*b, *key);
        }
    }
    for b in x.iter_mut() {
        *b = _mm256_aesenclast_epi128(*b, k[NR]);
    }
}

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
fn encrypt_par<const NR: usize, const N: usize>(
    k: &[__m256i; MAX_ROUND_KEYS],
    x: &mut [__m256i; N],
) {
    for b in x.iter_mut() {
        *b = _mm256_xor_si256(*b, k[0]);
    }
    encrypt_rounds::<NR, N>(k, x);
}

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
fn decrypt_par<const NR: usize, const N: usize>(
    k: &[__m256i; MAX_ROUND_KEYS],
    x: &mut [__m256i; N],
) {
    for b in x.iter_mut() {
        *b = _mm256_xor_si256(*b, k[0]);
    }
    for key in &k[1..NR] {
        for b in x.iter_mut() {
            *b = _mm256_aesdec_epi128(*b, *key);
        }
    }
    for b in x.iter_mut() {
        *b = _mm256_aesdeclast_epi128(*b, k[NR]);
    }
}

pub(super) fn encrypt_block(token: Vaes256Token, keys: &RoundKeys, block: &mut [u8; 16]) {
    x86_aesni::encrypt_block(token.aesni(), keys, block);
}

pub(super) fn decrypt_block(token: Vaes256Token, keys: &RoundKeys, block: &mut [u8; 16]) {
    x86_aesni::decrypt_block(token.aesni(), keys, block);
}

pub(super) fn cbc_encrypt(token: Vaes256Token, keys: &RoundKeys, iv: &[u8; 16], io: InOut<'_>) {
    x86_aesni::cbc_encrypt(token.aesni(), keys, iv, io);
}

/// Hands the blocks from `done` on to AES-NI.
fn finish_with_aesni(mut io: InOut<'_>, done: usize, f: impl FnOnce(InOut<'_>)) {
    let start = done * 16;
    if start < io.len() {
        let len = io.len();
        f(io.slice(start, len));
    }
}

pub(super) fn ecb_encrypt(token: Vaes256Token, keys: &RoundKeys, mut io: InOut<'_>) {
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: the token proves the CPU features; `src`/`dst` hold `blocks`
    // whole blocks and are equal or disjoint.
    let done = unsafe { by_rounds!(keys, ecb_impl(&keys.enc, src, dst, blocks, false)) };
    finish_with_aesni(io, done, |io| {
        x86_aesni::ecb_encrypt(token.aesni(), keys, io)
    });
}

pub(super) fn ecb_decrypt(token: Vaes256Token, keys: &RoundKeys, mut io: InOut<'_>) {
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: as in `ecb_encrypt`.
    let done = unsafe { by_rounds!(keys, ecb_impl(&keys.dec, src, dst, blocks, true)) };
    finish_with_aesni(io, done, |io| {
        x86_aesni::ecb_decrypt(token.aesni(), keys, io)
    });
}

/// ECB over whole pairs of blocks; returns how many blocks it did.
///
/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
unsafe fn ecb_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
    decrypt: bool,
) -> usize {
    let k = broadcast_keys(k);
    let mut i = 0;
    while i + 2 * WIDE <= blocks {
        // SAFETY: blocks i .. i + 2 * WIDE are inside `src`.
        let mut x: [__m256i; WIDE] =
            core::array::from_fn(|g| unsafe { load2(src.add((i + 2 * g) * 16)) });
        if decrypt {
            decrypt_par::<NR, WIDE>(&k, &mut x);
        } else {
            encrypt_par::<NR, WIDE>(&k, &mut x);
        }
        for (g, b) in x.iter().enumerate() {
            // SAFETY: blocks i .. i + 2 * WIDE are inside `dst`.
            unsafe { store2(dst.add((i + 2 * g) * 16), *b) };
        }
        i += 2 * WIDE;
    }
    while i + 2 <= blocks {
        // SAFETY: blocks i .. i + 2 are inside `src` and `dst`.
        let mut x = [unsafe { load2(src.add(i * 16)) }];
        if decrypt {
            decrypt_par::<NR, 1>(&k, &mut x);
        } else {
            encrypt_par::<NR, 1>(&k, &mut x);
        }
        // SAFETY: as above.
        unsafe { store2(dst.add(i * 16), x[0]) };
        i += 2;
    }
    i
}

pub(super) fn cbc_decrypt(token: Vaes256Token, keys: &RoundKeys, iv: &[u8; 16], mut io: InOut<'_>) {
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
        x86_aesni::cbc_decrypt(token.aesni(), keys, &last, io)
    });
}

/// CBC decryption of whole pairs of blocks; returns how many blocks it did
/// and leaves the last ciphertext block in `iv`.
///
/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
unsafe fn cbc_decrypt_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    iv: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) -> usize {
    let k = broadcast_keys(k);
    // The high block of `last` is the ciphertext before the current group.
    // SAFETY: `iv` is 16 bytes.
    let mut last = _mm256_broadcastsi128_si256(unsafe { load(iv.as_ptr()) });
    let mut i = 0;
    while i + 2 * WIDE <= blocks {
        // SAFETY: blocks i .. i + 2 * WIDE are inside `src`; all are read
        // before any is written (in place they alias).
        let c: [__m256i; WIDE] =
            core::array::from_fn(|g| unsafe { load2(src.add((i + 2 * g) * 16)) });
        let mut x = c;
        decrypt_par::<NR, WIDE>(&k, &mut x);
        for g in 0..WIDE {
            // [previous high block, c0]: the ciphertext one block back.
            let prev =
                _mm256_permute2x128_si256::<0x21>(if g == 0 { last } else { c[g - 1] }, c[g]);
            // SAFETY: blocks i .. i + 2 * WIDE are inside `dst`.
            unsafe { store2(dst.add((i + 2 * g) * 16), _mm256_xor_si256(x[g], prev)) };
        }
        last = c[WIDE - 1];
        i += 2 * WIDE;
    }
    while i + 2 <= blocks {
        // SAFETY: blocks i .. i + 2 are inside `src` and `dst`.
        let c = unsafe { load2(src.add(i * 16)) };
        let mut x = [c];
        decrypt_par::<NR, 1>(&k, &mut x);
        let prev = _mm256_permute2x128_si256::<0x21>(last, c);
        // SAFETY: as above.
        unsafe { store2(dst.add(i * 16), _mm256_xor_si256(x[0], prev)) };
        last = c;
        i += 2;
    }
    // SAFETY: `iv` is 16 writable bytes.
    unsafe { store(iv.as_mut_ptr(), _mm256_extracti128_si256::<1>(last)) };
    i
}

pub(super) fn ctr(token: Vaes256Token, keys: &RoundKeys, counter: &[u8; 16], mut io: InOut<'_>) {
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    let mut counter = u128::from_be_bytes(*counter);
    let mut done = 0;
    // Split where the low 64 bits of the counter wrap, so each stretch can
    // count in one 64-bit lane and the carry into the high half is exact.
    while done + 2 <= blocks {
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

/// CTR over whole pairs of blocks; returns how many blocks it did.
///
/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or
/// disjoint; `counter + blocks - 1` must not carry out of the low 64 bits.
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
unsafe fn ctr_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    counter: u128,
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) -> usize {
    let k = broadcast_keys(k);
    let swap = _mm256_broadcastsi128_si256(_mm_set_epi8(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ));
    // Lane j holds the counter + j as (low, high) 64-bit halves.
    let start = _mm256_broadcastsi128_si256(_mm_set_epi64x((counter >> 64) as i64, counter as i64));
    let mut base = _mm256_add_epi64(start, _mm256_set_epi64x(0, 1, 0, 0));
    let step: [__m256i; WIDE] =
        core::array::from_fn(|g| _mm256_set_epi64x(0, 2 * g as i64, 0, 2 * g as i64));
    let advance = _mm256_set_epi64x(0, 2 * WIDE as i64, 0, 2 * WIDE as i64);
    let two = _mm256_set_epi64x(0, 2, 0, 2);
    let mut i = 0;
    while i + 2 * WIDE <= blocks {
        let mut x: [__m256i; WIDE] =
            core::array::from_fn(|g| _mm256_shuffle_epi8(_mm256_add_epi64(base, step[g]), swap));
        encrypt_par::<NR, WIDE>(&k, &mut x);
        for (g, ks) in x.iter().enumerate() {
            // SAFETY: blocks i .. i + 2 * WIDE are inside `src` and `dst`.
            unsafe {
                let p = load2(src.add((i + 2 * g) * 16));
                store2(dst.add((i + 2 * g) * 16), _mm256_xor_si256(p, *ks));
            }
        }
        base = _mm256_add_epi64(base, advance);
        i += 2 * WIDE;
    }
    while i + 2 <= blocks {
        let mut x = [_mm256_shuffle_epi8(base, swap)];
        encrypt_par::<NR, 1>(&k, &mut x);
        // SAFETY: blocks i .. i + 2 are inside `src` and `dst`.
        unsafe {
            let p = load2(src.add(i * 16));
            store2(dst.add(i * 16), _mm256_xor_si256(p, x[0]));
        }
        base = _mm256_add_epi64(base, two);
        i += 2;
    }
    i
}

pub(super) fn cbc_encrypt_multi(token: Vaes256Token, keys: &RoundKeys, jobs: &mut [Job<'_>]) {
    let _ = token;
    let mut scratch = Scratch::new();
    let mut sched = Lanes::new(jobs, LANES, STAGGER, &mut scratch);
    // SAFETY: the token proves the CPU features.
    unsafe { by_rounds!(keys, cbc_multi(&keys.enc, &mut sched)) }
}

/// Multi-buffer CBC encryption of the scheduler's jobs, two lanes per
/// register.
///
/// # Safety
/// The CPU must have VAES and AVX2.
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
unsafe fn cbc_multi<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    sched: &mut Lanes<'_, '_, '_, false>,
) {
    let k = broadcast_keys(k);
    let mut chain = load_lanes(&sched.chain);
    loop {
        let steps = sched.begin_run();
        if steps == 0 {
            break;
        }
        for step in 0..steps {
            let mut x: [__m256i; LANE_REGS] = core::array::from_fn(|g| {
                // SAFETY: the `Lanes` guarantees a readable block for
                // every lane and step of the run.
                let gathered = unsafe {
                    _mm256_set_m128i(
                        load(sched.src_at(2 * g + 1, step)),
                        load(sched.src_at(2 * g, step)),
                    )
                };
                _mm256_xor_si256(_mm256_xor_si256(gathered, chain[g]), k[0])
            });
            encrypt_rounds::<NR, LANE_REGS>(&k, &mut x);
            for (g, c) in x.iter().enumerate() {
                // SAFETY: the `Lanes` guarantees a writable block for
                // every lane and step, disjoint between lanes; every lane's
                // block was read above, before this write.
                unsafe {
                    store(sched.dst_at(2 * g, step), _mm256_castsi256_si128(*c));
                    store(
                        sched.dst_at(2 * g + 1, step),
                        _mm256_extracti128_si256::<1>(*c),
                    );
                }
            }
            chain = x;
        }
        // Lanes that take a new job restart from its IV.
        store_lanes(&mut sched.chain, &chain);
        if sched.end_run() != 0 {
            chain = load_lanes(&sched.chain);
        }
    }
}

/// Lanes 2g and 2g + 1 of a per-lane state array, as register g.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
fn load_lanes(state: &[[u8; 16]; MAX_LANES]) -> [__m256i; LANE_REGS] {
    let state = state.as_flattened().as_ptr();
    // SAFETY: register g is the 32 bytes at 32 * g < 16 * LANES <=
    // 16 * MAX_LANES.
    core::array::from_fn(|g| unsafe { load2(state.add(32 * g)) })
}

/// The inverse of [`load_lanes`].
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1,avx,avx2,vaes")]
fn store_lanes(state: &mut [[u8; 16]; MAX_LANES], regs: &[__m256i; LANE_REGS]) {
    let state = state.as_flattened_mut().as_mut_ptr();
    for (g, r) in regs.iter().enumerate() {
        // SAFETY: as in `load_lanes`.
        unsafe { store2(state.add(32 * g), *r) };
    }
}
