//! ARMv8 Cryptography Extensions on 128-bit NEON registers: 8 blocks in
//! flight for ECB, CBC decryption and CTR, 8 lanes for multi-buffer CBC
//! encryption.
//!
//! The round structure differs from x86: `AESE` is AddRoundKey, SubBytes and
//! ShiftRows, `AESMC` is MixColumns. A round is `AESMC(AESE(x, k))`, kept
//! as an adjacent pair so cores that fuse the two do; the last round is
//! `AESE(x, k[NR - 1]) ^ k[NR]`. Decryption mirrors it with `AESD` and
//! `AESIMC` over the equivalent-inverse-cipher keys of [`RoundKeys::dec`].
//!
//! Current cores have 2-4 AES pipes with a latency of 2-3 cycles per fused
//! pair, so 8 independent blocks keep them busy; 8 blocks with up to 15
//! round keys also fit the 32 vector registers.

use core::arch::aarch64::*;

use crate::kernel::key_schedule::{MAX_ROUND_KEYS, RoundKeys};
use crate::kernel::lanes::{Lanes, Scratch};
use crate::kernel::{InOut, Job};

/// Blocks processed per iteration of the parallel modes.
const WIDTH: usize = 8;
/// Lanes of the multi-buffer CBC encryption.
const LANES: usize = 8;
/// Steps by which each multi-buffer lane starts later than the previous one.
const STAGGER: usize = 1;

// `AT_HWCAP` on Linux and Android (AES and PMULL), `true` on Apple silicon,
// `false` on other systems unless the build already targets the feature.

/// Proof that the ARMv8 AES instructions (`AESE`, `AESD`, `AESMC`,
/// `AESIMC`) are available.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Armv8Token(());

/// The CPU's features. Made only by [`Features::read`], which
/// `select::detection` runs once and caches; the token is minted from it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Features {
    aes: bool,
}

impl Features {
    /// Runs detection. Only `select::detection` calls it.
    pub(crate) fn read() -> Features {
        Features {
            aes: cpuid_aes::get(),
        }
    }

    pub(crate) fn armv8(self) -> Option<Armv8Token> {
        self.aes.then_some(Armv8Token(()))
    }
}

cpufeatures::new!(cpuid_aes, "aes");

impl Armv8Token {
    /// `Some` on CPUs with the Cryptography Extensions; `None` otherwise
    /// (a Cortex-A72 without them, for example), and then no AES
    /// instruction ever runs. Reads the detection cache.
    pub(crate) fn detect() -> Option<Self> {
        crate::kernel::select::detection().aarch64.armv8()
    }
}

/// Runs `$f::<NR>` for the key's round count (10, 12 or 14).
macro_rules! by_rounds {
    ($keys:expr, $f:ident($($arg:expr),*)) => {
        match $keys.rounds {
            10 => $f::<10>($($arg),*),
            12 => $f::<12>($($arg),*),
            _ => $f::<14>($($arg),*),
        }
    };
}

/// Expands a 16-, 24- or 32-byte key (constant time). Returns `None` for
/// any other length.
pub(crate) fn expand_key(token: Armv8Token, key: &[u8]) -> Option<RoundKeys> {
    let _ = token;
    // SAFETY: the token proves the AES extension is available.
    unsafe { expand_key_impl(key) }
}

#[target_feature(enable = "aes,neon")]
fn expand_key_impl(key: &[u8]) -> Option<RoundKeys> {
    RoundKeys::expand(key, |w| sub_word(w), |b| inv_mix_columns(b))
}

/// `SubWord` of FIPS-197: `AESE` with a zero round key on a vector holding
/// `word` in all four columns. Every row is then constant, so ShiftRows
/// changes nothing and column 0 is the S-box of each byte of `word`.
#[target_feature(enable = "aes,neon")]
fn sub_word(word: u32) -> u32 {
    let x = vreinterpretq_u8_u32(vdupq_n_u32(word));
    let y = vaeseq_u8(x, vdupq_n_u8(0));
    vgetq_lane_u32::<0>(vreinterpretq_u32_u8(y))
}

#[target_feature(enable = "aes,neon")]
fn inv_mix_columns(block: &mut [u8; 16]) {
    // SAFETY: `block` is 16 readable and writable bytes; `LD1`/`ST1` of
    // bytes need no alignment.
    unsafe {
        let x = vld1q_u8(block.as_ptr());
        vst1q_u8(block.as_mut_ptr(), vaesimcq_u8(x));
    }
}

/// Loads 16 bytes from `ptr`.
///
/// # Safety
/// `ptr` must be valid for reading 16 bytes.
#[inline]
#[target_feature(enable = "aes,neon")]
unsafe fn load(ptr: *const u8) -> uint8x16_t {
    // SAFETY: the caller guarantees 16 readable bytes; no alignment needed.
    unsafe { vld1q_u8(ptr) }
}

/// Stores 16 bytes to `ptr`.
///
/// # Safety
/// `ptr` must be valid for writing 16 bytes.
#[inline]
#[target_feature(enable = "aes,neon")]
unsafe fn store(ptr: *mut u8, x: uint8x16_t) {
    // SAFETY: the caller guarantees 16 writable bytes; no alignment needed.
    unsafe { vst1q_u8(ptr, x) }
}

#[inline]
#[target_feature(enable = "aes,neon")]
fn load_keys(keys: &[[u8; 16]; MAX_ROUND_KEYS]) -> [uint8x16_t; MAX_ROUND_KEYS] {
    // SAFETY: each round key is a 16-byte array.
    core::array::from_fn(|i| unsafe { load(keys[i].as_ptr()) })
}

/// Encrypts the array of blocks `$x` (`&mut [uint8x16_t; N]`) in place with
/// the `$nr`-round keys `$k`, round by round across the blocks.
///
/// A macro, not a function, so it is always inlined: LLVM outlined some
/// instances of a function version (AES-128 over 8 blocks among them) and
/// passed the blocks through memory, and `#[inline(always)]` cannot be
/// combined with `#[target_feature]`. Use it only inside functions with
/// `#[target_feature(enable = "aes,neon")]`.
macro_rules! encrypt_par {
    ($nr:expr, $k:expr, $x:expr) => {{
        let k: &[uint8x16_t; MAX_ROUND_KEYS] = $k;
        let x = $x;
        for key in &k[..$nr - 1] {
            for b in x.iter_mut() {
                *b = vaesmcq_u8(vaeseq_u8(*b, *key));
            }
        }
        for b in x.iter_mut() {
            *b = veorq_u8(vaeseq_u8(*b, k[$nr - 1]), k[$nr]);
        }
    }};
}

/// Decrypts the array of blocks `$x` in place with the decryption round
/// keys `$k`; see `encrypt_par!`.
macro_rules! decrypt_par {
    ($nr:expr, $k:expr, $x:expr) => {{
        let k: &[uint8x16_t; MAX_ROUND_KEYS] = $k;
        let x = $x;
        for key in &k[..$nr - 1] {
            for b in x.iter_mut() {
                *b = vaesimcq_u8(vaesdq_u8(*b, *key));
            }
        }
        for b in x.iter_mut() {
            *b = veorq_u8(vaesdq_u8(*b, k[$nr - 1]), k[$nr]);
        }
    }};
}

pub(super) fn encrypt_block(token: Armv8Token, keys: &RoundKeys, block: &mut [u8; 16]) {
    let _ = token;
    // SAFETY: the token proves the AES extension is available.
    unsafe { by_rounds!(keys, encrypt_block_impl(&keys.enc, block)) }
}

#[target_feature(enable = "aes,neon")]
fn encrypt_block_impl<const NR: usize>(k: &[[u8; 16]; MAX_ROUND_KEYS], block: &mut [u8; 16]) {
    // SAFETY: `block` is 16 bytes, readable and writable.
    let mut x = [unsafe { load(block.as_ptr()) }];
    encrypt_par!(NR, &load_keys(k), &mut x);
    // SAFETY: as above.
    unsafe { store(block.as_mut_ptr(), x[0]) }
}

pub(super) fn decrypt_block(token: Armv8Token, keys: &RoundKeys, block: &mut [u8; 16]) {
    let _ = token;
    // SAFETY: the token proves the AES extension is available.
    unsafe { by_rounds!(keys, decrypt_block_impl(&keys.dec, block)) }
}

#[target_feature(enable = "aes,neon")]
fn decrypt_block_impl<const NR: usize>(k: &[[u8; 16]; MAX_ROUND_KEYS], block: &mut [u8; 16]) {
    // SAFETY: `block` is 16 bytes, readable and writable.
    let mut x = [unsafe { load(block.as_ptr()) }];
    decrypt_par!(NR, &load_keys(k), &mut x);
    // SAFETY: as above.
    unsafe { store(block.as_mut_ptr(), x[0]) }
}

pub(super) fn ecb_encrypt(token: Armv8Token, keys: &RoundKeys, mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: the token proves the AES extension is available; `src` and
    // `dst` hold `blocks` whole blocks (the `InOut` invariant: equal
    // lengths) and are equal or disjoint.
    unsafe { by_rounds!(keys, ecb_impl(&keys.enc, src, dst, blocks, false)) }
}

pub(super) fn ecb_decrypt(token: Armv8Token, keys: &RoundKeys, mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: as in `ecb_encrypt`.
    unsafe { by_rounds!(keys, ecb_impl(&keys.dec, src, dst, blocks, true)) }
}

/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,neon")]
unsafe fn ecb_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
    decrypt: bool,
) {
    let k = load_keys(k);
    let mut i = 0;
    while i + WIDTH <= blocks {
        // SAFETY: blocks `i..i + WIDTH` are inside `src` and `dst`.
        unsafe { ecb_group::<NR, WIDTH>(&k, src.add(i * 16), dst.add(i * 16), decrypt) };
        i += WIDTH;
    }
    // The last few blocks one at a time: they are independent, so the
    // core still overlaps them, and a short input costs no wasted blocks.
    while i < blocks {
        // SAFETY: block `i` is inside `src` and `dst`.
        unsafe { ecb_group::<NR, 1>(&k, src.add(i * 16), dst.add(i * 16), decrypt) };
        i += 1;
    }
}

/// ECB over `N` consecutive blocks.
///
/// # Safety
/// `src` readable and `dst` writable for `N * 16` bytes, equal or disjoint.
#[inline]
#[target_feature(enable = "aes,neon")]
unsafe fn ecb_group<const NR: usize, const N: usize>(
    k: &[uint8x16_t; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
    decrypt: bool,
) {
    // SAFETY: block j < N is inside `src`; every load precedes every store.
    let mut x: [uint8x16_t; N] = core::array::from_fn(|j| unsafe { load(src.add(j * 16)) });
    if decrypt {
        decrypt_par!(NR, k, &mut x);
    } else {
        encrypt_par!(NR, k, &mut x);
    }
    for (j, b) in x.iter().enumerate() {
        // SAFETY: block j < N is inside `dst`.
        unsafe { store(dst.add(j * 16), *b) };
    }
}

pub(super) fn cbc_encrypt(token: Armv8Token, keys: &RoundKeys, iv: &[u8; 16], mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: the token proves the AES extension is available; `src` and
    // `dst` hold `blocks` whole blocks (the `InOut` invariant) and are
    // equal or disjoint.
    unsafe { by_rounds!(keys, cbc_encrypt_impl(&keys.enc, iv, src, dst, blocks)) }
}

/// Serial CBC encryption with no XOR on the chain.
///
/// `AESE` XORs its key first, so the previous block's final key, the next
/// plaintext block and round key 0 fold into one key for the first `AESE`
/// of the next block: the chain carries the previous block's last `AESE`
/// output `y` (ciphertext `c = y ^ k[NR]`), and the next block starts with
/// `AESE(y, p ^ k[0] ^ k[NR])` = `SubBytes(ShiftRows(c ^ p ^ k[0]))`.
/// That key does not depend on the chain, so it is ready in advance, and
/// the ciphertext XOR is off the chain too.
///
/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,neon")]
unsafe fn cbc_encrypt_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    iv: &[u8; 16],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    let k = load_keys(k);
    let k_first_last = veorq_u8(k[0], k[NR]);
    // The IV plays the previous ciphertext: y = iv ^ k[NR].
    // SAFETY: `iv` is 16 bytes.
    let mut y = veorq_u8(unsafe { load(iv.as_ptr()) }, k[NR]);
    for i in 0..blocks {
        // SAFETY: block i < blocks is inside `src`. In place, block i - 1
        // has been written already; block i has not.
        let first = veorq_u8(unsafe { load(src.add(i * 16)) }, k_first_last);
        let mut x = vaesmcq_u8(vaeseq_u8(y, first));
        for key in &k[1..NR - 1] {
            x = vaesmcq_u8(vaeseq_u8(x, *key));
        }
        y = vaeseq_u8(x, k[NR - 1]);
        // SAFETY: block i < blocks is inside `dst`.
        unsafe { store(dst.add(i * 16), veorq_u8(y, k[NR])) };
    }
}

pub(super) fn cbc_decrypt(token: Armv8Token, keys: &RoundKeys, iv: &[u8; 16], mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    // SAFETY: as in `cbc_encrypt`.
    unsafe { by_rounds!(keys, cbc_decrypt_impl(&keys.dec, iv, src, dst, blocks)) }
}

/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,neon")]
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
        // SAFETY: blocks `i..i + WIDTH` are inside `src` and `dst`.
        prev =
            unsafe { cbc_decrypt_group::<NR, WIDTH>(&k, prev, src.add(i * 16), dst.add(i * 16)) };
        i += WIDTH;
    }
    while i < blocks {
        // SAFETY: block `i` is inside `src` and `dst`.
        prev = unsafe { cbc_decrypt_group::<NR, 1>(&k, prev, src.add(i * 16), dst.add(i * 16)) };
        i += 1;
    }
}

/// CBC-decrypts `N` consecutive blocks after the ciphertext `prev`, and
/// returns the last ciphertext block of the group.
///
/// The stores go from the last block down, so each block's predecessor is
/// still ciphertext when it is read again for the XOR, even in place; the
/// ciphertext need not stay in registers beside the round keys.
///
/// # Safety
/// `src` readable and `dst` writable for `N * 16` bytes, equal or disjoint.
#[inline]
#[target_feature(enable = "aes,neon")]
unsafe fn cbc_decrypt_group<const NR: usize, const N: usize>(
    k: &[uint8x16_t; MAX_ROUND_KEYS],
    prev: uint8x16_t,
    src: *const u8,
    dst: *mut u8,
) -> uint8x16_t {
    // SAFETY: block j < N is inside `src`; read before any store.
    let mut x: [uint8x16_t; N] = core::array::from_fn(|j| unsafe { load(src.add(j * 16)) });
    let last = x[N - 1];
    decrypt_par!(NR, k, &mut x);
    for j in (1..N).rev() {
        // SAFETY: blocks j - 1 and j are inside `src` and `dst`; only
        // blocks above j - 1 have been stored, so block j - 1 of `src` is
        // still ciphertext.
        unsafe {
            let c = load(src.add((j - 1) * 16));
            store(dst.add(j * 16), veorq_u8(x[j], c));
        }
    }
    // SAFETY: block 0 is inside `dst`.
    unsafe { store(dst, veorq_u8(x[0], prev)) };
    last
}

pub(super) fn ctr(token: Armv8Token, keys: &RoundKeys, counter: &[u8; 16], mut io: InOut<'_>) {
    let _ = token;
    let blocks = io.len() / 16;
    let (src, dst) = io.ptrs();
    let counter = u128::from_be_bytes(*counter);
    // SAFETY: the token proves the AES extension is available; `src` and
    // `dst` hold `blocks` whole blocks (the `InOut` invariant) and are
    // equal or disjoint.
    unsafe { by_rounds!(keys, ctr_impl(&keys.enc, counter, src, dst, blocks)) }
}

/// The counter block of `counter`: its 16 big-endian bytes.
///
/// The counter is a `u128` in general registers, so each increment carries
/// exactly across all 16 bytes (`ADDS`/`ADC`); `to_be` on each half and the
/// byte view of a vector agree on either byte order.
#[inline]
#[target_feature(enable = "aes,neon")]
fn counter_block(counter: u128) -> uint8x16_t {
    let high = vcreate_u64(((counter >> 64) as u64).to_be());
    let low = vcreate_u64((counter as u64).to_be());
    vreinterpretq_u8_u64(vcombine_u64(high, low))
}

/// # Safety
/// `src` readable and `dst` writable for `blocks * 16` bytes, equal or disjoint.
#[target_feature(enable = "aes,neon")]
unsafe fn ctr_impl<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    counter: u128,
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    let k = load_keys(k);
    let mut counter = counter;
    let mut i = 0;
    while i + WIDTH <= blocks {
        // SAFETY: blocks `i..i + WIDTH` are inside `src` and `dst`.
        unsafe { ctr_group::<NR, WIDTH>(&k, counter, src.add(i * 16), dst.add(i * 16)) };
        counter = counter.wrapping_add(WIDTH as u128);
        i += WIDTH;
    }
    while i < blocks {
        // SAFETY: block `i` is inside `src` and `dst`.
        unsafe { ctr_group::<NR, 1>(&k, counter, src.add(i * 16), dst.add(i * 16)) };
        counter = counter.wrapping_add(1);
        i += 1;
    }
}

/// CTR over `N` consecutive blocks starting at `counter`.
///
/// # Safety
/// `src` readable and `dst` writable for `N * 16` bytes, equal or disjoint.
#[inline]
#[target_feature(enable = "aes,neon")]
unsafe fn ctr_group<const NR: usize, const N: usize>(
    k: &[uint8x16_t; MAX_ROUND_KEYS],
    counter: u128,
    src: *const u8,
    dst: *mut u8,
) {
    let mut x: [uint8x16_t; N] =
        core::array::from_fn(|j| counter_block(counter.wrapping_add(j as u128)));
    encrypt_par!(NR, k, &mut x);
    for (j, ks) in x.iter().enumerate() {
        // SAFETY: block j < N is inside `src` and `dst`; it is read before
        // it is written.
        unsafe {
            let p = load(src.add(j * 16));
            store(dst.add(j * 16), veorq_u8(p, *ks));
        }
    }
}

pub(super) fn cbc_encrypt_multi(token: Armv8Token, keys: &RoundKeys, jobs: &mut [Job<'_>]) {
    let _ = token;
    let mut scratch = Scratch::new();
    let mut sched = Lanes::new(jobs, LANES, STAGGER, &mut scratch);
    // SAFETY: the token proves the AES extension is available.
    unsafe { by_rounds!(keys, cbc_multi(&keys.enc, &mut sched)) }
}

/// Multi-buffer CBC encryption of the scheduler's jobs, one lane per
/// register.
///
/// # Safety
/// The CPU must have the AES extension.
#[target_feature(enable = "aes,neon")]
unsafe fn cbc_multi<const NR: usize>(
    k: &[[u8; 16]; MAX_ROUND_KEYS],
    sched: &mut Lanes<'_, '_, '_, false>,
) {
    let k = load_keys(k);
    // SAFETY: each chain is a 16-byte array.
    let mut chain: [uint8x16_t; LANES] =
        core::array::from_fn(|l| unsafe { load(sched.chain[l].as_ptr()) });
    loop {
        let steps = sched.begin_run();
        if steps == 0 {
            break;
        }
        for step in 0..steps {
            let mut x: [uint8x16_t; LANES] = core::array::from_fn(|l| {
                // SAFETY: the `Lanes` guarantees a readable block for
                // every lane and step of the run.
                veorq_u8(unsafe { load(sched.src_at(l, step)) }, chain[l])
            });
            encrypt_par!(NR, &k, &mut x);
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
