//! AES-NI on 128-bit registers: 8 blocks in flight (AES latency 4 cycles ×
//! 2 instructions per cycle), 8 CBC lanes in the multi-buffer path.
//!
//! The single-block, ECB-of-one and serial CBC-encryption routines here are
//! also used by the VAES backends: wide registers do not help a chain.

use core::arch::x86_64::*;

use super::x86::AesNiToken;
use crate::kernel::key_schedule::{MAX_ROUND_KEYS, RoundKeys};
use crate::kernel::lanes::{Lanes, Scratch};
use crate::kernel::{InOut, Job};

/// Blocks processed per iteration of the parallel modes, and CBC lanes.
const WIDTH: usize = 8;

/// Runs `$f::<NR>` for the key's round count (10, 12 or 14).
macro_rules! by_rounds {
    ($keys:expr, $f:ident($($arg:expr),*)) => {
        match $keys.rounds {
            10 => $f::<10>($($arg),*),
            12 => $f::<12>($($arg),*),
            _ => $f::<14>($($arg),*),
        }
    };
    // A function with one more const parameter after the round count.
    ($keys:expr, $f:ident::<NR, $g:tt>($($arg:expr),*)) => {
        match $keys.rounds {
            10 => $f::<10, $g>($($arg),*),
            12 => $f::<12, $g>($($arg),*),
            _ => $f::<14, $g>($($arg),*),
        }
    };
}
pub(super) use by_rounds;

/// Loads 16 bytes from `ptr`.
///
/// # Safety
/// `ptr` must be valid for reading 16 bytes.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
pub(super) unsafe fn load(ptr: *const u8) -> __m128i {
    // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment requirement.
    unsafe { _mm_loadu_si128(ptr.cast()) }
}

/// Stores 16 bytes to `ptr`.
///
/// # Safety
/// `ptr` must be valid for writing 16 bytes.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
pub(super) unsafe fn store(ptr: *mut u8, x: __m128i) {
    // SAFETY: the caller guarantees 16 writable bytes; storeu has no alignment requirement.
    unsafe { _mm_storeu_si128(ptr.cast(), x) }
}

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
pub(super) fn load_keys(keys: &[[u8; 16]; MAX_ROUND_KEYS]) -> [__m128i; MAX_ROUND_KEYS] {
    // SAFETY: each round key is a 16-byte array.
    core::array::from_fn(|i| unsafe { load(keys[i].as_ptr()) })
}

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn encrypt_par<const NR: usize, const N: usize>(
    k: &[__m128i; MAX_ROUND_KEYS],
    x: &mut [__m128i; N],
) {
    for b in x.iter_mut() {
        *b = _mm_xor_si128(*b, k[0]);
    }
    for key in &k[1..NR] {
        for b in x.iter_mut() {
            *b = _mm_aesenc_si128(*b, *key);
        }
    }
    for b in x.iter_mut() {
        *b = _mm_aesenclast_si128(*b, k[NR]);
    }
}

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn decrypt_par<const NR: usize, const N: usize>(
    k: &[__m128i; MAX_ROUND_KEYS],
    x: &mut [__m128i; N],
) {
    for b in x.iter_mut() {
        *b = _mm_xor_si128(*b, k[0]);
    }
    for key in &k[1..NR] {
        for b in x.iter_mut() {
            *b = _mm_aesdec_si128(*b, *key);
        }
    }
    for b in x.iter_mut() {
        *b = _mm_aesdeclast_si128(*b, k[NR]);
    }
}

pub(super) fn encrypt_block(token: AesNiToken, keys: &RoundKeys, block: &mut [u8; 16]) {
    let _ = token;
    // SAFETY: the token proves AES-NI, SSSE3 and SSE4.1 are available.
    unsafe { by_rounds!(keys, encrypt_block_impl(&keys.enc, block)) }
}

#[target_feature(enable = "aes,ssse3,sse4.1")]
fn encrypt_block_impl<const NR: usize>(k: &[[u8; 16]; MAX_ROUND_KEYS], block: &mut [u8; 16]) {
    // SAFETY: `block` is 16 bytes, readable and writable.
    let mut x = [unsafe { load(block.as_ptr()) }];
    encrypt_par::<NR, 1>(&load_keys(k), &mut x);
    // SAFETY: as above.
    unsafe { store(block.as_mut_ptr(), x[0]) }
}

pub(super) fn decrypt_block(token: AesNiToken, keys: &RoundKeys, block: &mut [u8; 16]) {
    let _ = token;
    // SAFETY: the token proves AES-NI, SSSE3 and SSE4.1 are available.
    unsafe { by_rounds!(keys, decrypt_block_impl(&keys.dec, block)) }
}

#[target_feature(enable = "aes,ssse3,sse4.1")]
fn decrypt_block_impl<const NR: usize>(k: &[[u8; 16]; MAX_ROUND_KEYS], block: &mut [u8; 16]) {
    // SAFETY: `block` is 16 bytes, readable and writable.
    let mut x = [unsafe { load(block.as_ptr()) }];
    decrypt_par::<NR, 1>(&load_keys(k), &mut x);
    // SAFETY: as above.
    unsafe { store(block.as_mut_ptr(), x[0]) }
}

pub(super) fn ecb_encrypt(token: AesNiToken, keys: &RoundKeys, mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: the token proves the CPU features; `src` and `dst` hold
    // `blocks` whole blocks (an `InOut` has equal lengths) and are equal or disjoint.
    unsafe { by_rounds!(keys, ecb_impl(&keys.enc, src, dst, blocks, false)) }
}

pub(super) fn ecb_decrypt(token: AesNiToken, keys: &RoundKeys, mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: as in `ecb_encrypt`.
    unsafe { by_rounds!(keys, ecb_impl(&keys.dec, src, dst, blocks, true)) }
}

/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,ssse3,sse4.1")]
unsafe fn ecb_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
    decrypt: bool,
) {
    let k = load_keys(k);
    let mut i = 0;
    while i < blocks {
        let n = WIDTH.min(blocks - i);
        let mut x = [_mm_setzero_si128(); WIDTH];
        for (j, b) in x.iter_mut().enumerate().take(n) {
            // SAFETY: block i + j < blocks is inside `src`.
            *b = unsafe { load(src.add((i + j) * 16)) };
        }
        if decrypt {
            decrypt_par::<NR, WIDTH>(&k, &mut x);
        } else {
            encrypt_par::<NR, WIDTH>(&k, &mut x);
        }
        for (j, b) in x.iter().enumerate().take(n) {
            // SAFETY: block i + j < blocks is inside `dst`.
            unsafe { store(dst.add((i + j) * 16), *b) };
        }
        i += n;
    }
}

pub(super) fn cbc_encrypt(token: AesNiToken, keys: &RoundKeys, iv: &[u8; 16], mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: the token proves the CPU features; `src`/`dst` hold `blocks`
    // whole blocks and are equal or disjoint.
    unsafe { by_rounds!(keys, cbc_encrypt_impl(&keys.enc, iv, src, dst, blocks)) }
}

/// Serial CBC encryption. The next plaintext block and round key 0 are
/// folded into the last round key (`AESENCLAST` XORs its key last), so the
/// chain is 10/12/14 AES instructions per block with no XOR between them.
///
/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,ssse3,sse4.1")]
unsafe fn cbc_encrypt_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    iv: &[u8; 16],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    if blocks == 0 {
        return;
    }
    let k = load_keys(k);
    // SAFETY: `iv` is 16 bytes; block 0 exists.
    let mut x = _mm_xor_si128(unsafe { load(iv.as_ptr()) }, unsafe { load(src) });
    x = _mm_xor_si128(x, k[0]);
    for i in 0..blocks {
        for key in &k[1..NR] {
            x = _mm_aesenc_si128(x, *key);
        }
        if i + 1 < blocks {
            // SAFETY: block i + 1 < blocks is inside `src`; read before
            // block i is written, which matters only in place and then
            // touches a different block.
            let next = _mm_xor_si128(unsafe { load(src.add((i + 1) * 16)) }, k[0]);
            let y = _mm_aesenclast_si128(x, _mm_xor_si128(k[NR], next));
            // SAFETY: block i < blocks is inside `dst`.
            unsafe { store(dst.add(i * 16), _mm_xor_si128(y, next)) };
            x = y;
        } else {
            // SAFETY: block i < blocks is inside `dst`.
            unsafe { store(dst.add(i * 16), _mm_aesenclast_si128(x, k[NR])) };
        }
    }
}

pub(super) fn cbc_decrypt(token: AesNiToken, keys: &RoundKeys, iv: &[u8; 16], mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: as in `cbc_encrypt`.
    unsafe { by_rounds!(keys, cbc_decrypt_impl(&keys.dec, iv, src, dst, blocks)) }
}

/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,ssse3,sse4.1")]
unsafe fn cbc_decrypt_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    iv: &[u8; 16],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    let k = load_keys(k);
    // SAFETY: `iv` is 16 bytes.
    let mut prev = unsafe { load(iv.as_ptr()) };
    let mut i = 0;
    while i + WIDTH <= blocks {
        // SAFETY: blocks i .. i + WIDTH are inside `src`.
        let mut x: [__m128i; WIDTH] =
            core::array::from_fn(|j| unsafe { load(src.add((i + j) * 16)) });
        let last = x[WIDTH - 1];
        decrypt_par::<NR, WIDTH>(&k, &mut x);
        // From the last block down, so each block's predecessor is read
        // from `src` before a store can overwrite it (in place). Keeping
        // all eight ciphertexts in registers would spill: AES-NI code has
        // 16 of them and the round keys take up to 15.
        for j in (1..WIDTH).rev() {
            // SAFETY: blocks i + j - 1 and i + j are inside `src` and `dst`;
            // block i + j - 1 is not written yet.
            unsafe {
                let c = load(src.add((i + j - 1) * 16));
                store(dst.add((i + j) * 16), _mm_xor_si128(x[j], c));
            }
        }
        // SAFETY: block i is inside `dst`.
        unsafe { store(dst.add(i * 16), _mm_xor_si128(x[0], prev)) };
        prev = last;
        i += WIDTH;
    }
    while i < blocks {
        // SAFETY: block i is inside `src` and `dst`; it is read before written.
        let c = unsafe { load(src.add(i * 16)) };
        let mut x = [c];
        decrypt_par::<NR, 1>(&k, &mut x);
        // SAFETY: as above.
        unsafe { store(dst.add(i * 16), _mm_xor_si128(x[0], prev)) };
        prev = c;
        i += 1;
    }
}

/// Byte reversal of a 128-bit lane: big-endian counter <-> little-endian.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn bswap_mask() -> __m128i {
    _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

pub(super) fn ctr(token: AesNiToken, keys: &RoundKeys, counter: &[u8; 16], mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    let mut counter = u128::from_be_bytes(*counter);
    let mut done = 0;
    // Split where the low 64 bits of the counter wrap, so each stretch can
    // count in one 64-bit lane and the carry into the high half is exact.
    while done < blocks {
        let low = counter as u64;
        let until_wrap = (u64::MAX - low) as u128 + 1;
        let n = ((blocks - done) as u128).min(until_wrap) as usize;
        // SAFETY: the token proves the CPU features; blocks `done..done + n`
        // are inside `src`/`dst`, which are equal or disjoint.
        unsafe {
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
        counter = counter.wrapping_add(n as u128);
        done += n;
    }
}

/// CTR over `blocks` blocks whose counters do not wrap the low 64 bits.
///
/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or
/// disjoint; `counter + blocks - 1` must not carry out of the low 64 bits.
#[target_feature(enable = "aes,ssse3,sse4.1")]
unsafe fn ctr_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    counter: u128,
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    let k = load_keys(k);
    let swap = bswap_mask();
    // Counter as (low, high) 64-bit lanes: the byte reversal of the block.
    let mut base = _mm_set_epi64x((counter >> 64) as i64, counter as i64);
    let step: [__m128i; WIDTH] = core::array::from_fn(|j| _mm_set_epi64x(0, j as i64));
    let advance = _mm_set_epi64x(0, WIDTH as i64);
    let mut i = 0;
    while i < blocks {
        let n = WIDTH.min(blocks - i);
        let mut x: [__m128i; WIDTH] =
            core::array::from_fn(|j| _mm_shuffle_epi8(_mm_add_epi64(base, step[j]), swap));
        encrypt_par::<NR, WIDTH>(&k, &mut x);
        for (j, ks) in x.iter().enumerate().take(n) {
            // SAFETY: block i + j < blocks is inside `src` and `dst`.
            unsafe {
                let p = load(src.add((i + j) * 16));
                store(dst.add((i + j) * 16), _mm_xor_si128(p, *ks));
            }
        }
        base = _mm_add_epi64(base, advance);
        i += n;
    }
}

pub(super) fn cbc_encrypt_multi(token: AesNiToken, keys: &RoundKeys, jobs: &mut [Job<'_>]) {
    let _ = token;
    let mut scratch = Scratch::new();
    let mut sched = Lanes::new(jobs, WIDTH, 1, &mut scratch);
    // SAFETY: the token proves the CPU features.
    unsafe { by_rounds!(keys, cbc_multi(&keys.enc, &mut sched)) }
}

/// Multi-buffer CBC encryption of the scheduler's jobs, one lane per
/// register.
///
/// # Safety
/// The CPU must have AES-NI, SSSE3 and SSE4.1.
#[target_feature(enable = "aes,ssse3,sse4.1")]
unsafe fn cbc_multi<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    sched: &mut Lanes<'_, '_, '_, false>,
) {
    let k = load_keys(k);
    // SAFETY: each chain is a 16-byte array.
    let mut chain: [__m128i; WIDTH] =
        core::array::from_fn(|l| unsafe { load(sched.chain[l].as_ptr()) });
    loop {
        let steps = sched.begin_run();
        if steps == 0 {
            break;
        }
        for step in 0..steps {
            let mut x: [__m128i; WIDTH] = core::array::from_fn(|l| {
                // SAFETY: the `Lanes` guarantees a readable block for
                // every lane and step of the run.
                _mm_xor_si128(unsafe { load(sched.src_at(l, step)) }, chain[l])
            });
            encrypt_par::<NR, WIDTH>(&k, &mut x);
            for (l, c) in x.iter().enumerate() {
                // SAFETY: the `Lanes` guarantees a writable block for
                // every lane and step, disjoint between lanes; a lane's
                // block is read above before it is written here.
                unsafe { store(sched.dst_at(l, step), *c) };
            }
            chain = x;
        }
        let started = sched.end_run();
        for (l, c) in chain.iter_mut().enumerate() {
            if started & (1 << l) != 0 {
                // SAFETY: each chain is a 16-byte array.
                *c = unsafe { load(sched.chain[l].as_ptr()) };
            }
        }
    }
}
