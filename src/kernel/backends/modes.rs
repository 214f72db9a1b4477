//! The modes, written once over a backend's primitives: ECB, serial CBC
//! encryption, CBC decryption, CTR (with its 64-bit counter-wrap split),
//! the hand-off of the last blocks to a narrower backend, and the
//! multi-buffer CBC encryption driver with the fused CRC as lane state.
//!
//! A backend implements [`Simd`]: a register type holding `BLOCKS` blocks,
//! loads and stores, the rounds over `N` registers, and the few shuffles
//! CBC decryption, CTR and the lanes need. Everything here is
//! `#[inline(always)]` and generic; [`entries!`] makes one
//! `#[target_feature]` function per operation and round count for a
//! backend, and the generic code inlines into it, so each backend and key
//! size gets its own loop with no dispatch per block.
//!
//! # Safety
//! The primitives are `unsafe fn`s: they may only run inside a function
//! that enables the backend's target features (an entry made by
//! [`entries!`], called with the backend's token), and those that take
//! pointers need `BLOCKS * 16` valid bytes. Every function here states the
//! pointer ranges it relies on; its callers are the entries (whose ranges
//! come from an `InOut`, equal lengths by construction) and the lane
//! driver (whose ranges come from a [`Run`]).

use crate::kernel::key_schedule::MAX_ROUND_KEYS;
use crate::kernel::lanes::{LaneKernel, Lanes, MAX_LANES, Run, Step};

/// The primitives of one instruction set.
pub(crate) trait Simd {
    /// A vector of `BLOCKS` AES blocks.
    type Reg: Copy;
    /// Blocks per register (1, 2 or 4).
    const BLOCKS: usize;
    /// Whether CBC decryption keeps a group's ciphertext in registers
    /// (32-register ISAs) rather than reloading it.
    const KEEP_CIPHERTEXT: bool = false;
    /// The one-block backend that takes the last `< BLOCKS` blocks of a
    /// buffer and serial CBC encryption (itself when `BLOCKS == 1`).
    type Narrow: Simd;

    /// # Safety
    /// In the backend's target features (as every primitive).
    unsafe fn zero() -> Self::Reg;
    /// # Safety
    /// `ptr` readable for `BLOCKS * 16` bytes.
    unsafe fn load(ptr: *const u8) -> Self::Reg;
    /// # Safety
    /// `ptr` writable for `BLOCKS * 16` bytes.
    unsafe fn store(ptr: *mut u8, x: Self::Reg);
    /// One block (a round key, an IV) in every block of a register.
    unsafe fn splat(block: &[u8; 16]) -> Self::Reg;
    unsafe fn xor(a: Self::Reg, b: Self::Reg) -> Self::Reg;
    /// One middle round (x86 `AESENC`: ShiftRows, SubBytes, MixColumns,
    /// then the round key XORed in).
    unsafe fn enc_round(x: Self::Reg, k: Self::Reg) -> Self::Reg;
    /// The last round (x86 `AESENCLAST`: no MixColumns).
    unsafe fn enc_last(x: Self::Reg, k: Self::Reg) -> Self::Reg;
    /// One middle round of the equivalent inverse cipher (x86 `AESDEC`).
    unsafe fn dec_round(x: Self::Reg, k: Self::Reg) -> Self::Reg;
    /// Its last round (x86 `AESDECLAST`).
    unsafe fn dec_last(x: Self::Reg, k: Self::Reg) -> Self::Reg;

    /// `a ^ b ^ c`; a backend with a three-way XOR overrides it.
    #[inline(always)]
    unsafe fn xor3(a: Self::Reg, b: Self::Reg, c: Self::Reg) -> Self::Reg {
        // SAFETY: the caller's contract.
        unsafe { Self::xor(Self::xor(a, b), c) }
    }

    /// `x = AES(k, x)` for `N` registers, round by round across them.
    #[inline(always)]
    unsafe fn encrypt<const NR: usize, const N: usize>(
        k: &[Self::Reg; MAX_ROUND_KEYS],
        x: &mut [Self::Reg; N],
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            for b in x.iter_mut() {
                *b = Self::xor(*b, k[0]);
            }
            Self::encrypt_rounds::<NR, N>(k, x);
        }
    }

    /// `x = AES(k, x ^ y)` for `N` registers.
    #[inline(always)]
    unsafe fn encrypt_xor<const NR: usize, const N: usize>(
        k: &[Self::Reg; MAX_ROUND_KEYS],
        x: &mut [Self::Reg; N],
        y: &[Self::Reg; N],
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            for (x, y) in x.iter_mut().zip(y) {
                *x = Self::xor3(*x, *y, k[0]);
            }
            Self::encrypt_rounds::<NR, N>(k, x);
        }
    }

    /// Rounds 1..=NR of encryption; round key 0 is already XORed in.
    #[inline(always)]
    unsafe fn encrypt_rounds<const NR: usize, const N: usize>(
        k: &[Self::Reg; MAX_ROUND_KEYS],
        x: &mut [Self::Reg; N],
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            for key in &k[1..NR] {
                for b in x.iter_mut() {
                    *b = Self::enc_round(*b, *key);
                }
            }
            for b in x.iter_mut() {
                *b = Self::enc_last(*b, k[NR]);
            }
        }
    }

    /// `x = AES⁻¹(k, x)` for `N` registers, with the decryption keys.
    #[inline(always)]
    unsafe fn decrypt<const NR: usize, const N: usize>(
        k: &[Self::Reg; MAX_ROUND_KEYS],
        x: &mut [Self::Reg; N],
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            for b in x.iter_mut() {
                *b = Self::xor(*b, k[0]);
            }
            for key in &k[1..NR] {
                for b in x.iter_mut() {
                    *b = Self::dec_round(*b, *key);
                }
            }
            for b in x.iter_mut() {
                *b = Self::dec_last(*b, k[NR]);
            }
        }
    }
    /// The blocks one position back: `[prev's last block, cur's blocks
    /// 0..BLOCKS-1]` (`prev` itself when `BLOCKS == 1`).
    unsafe fn shift_in(prev: Self::Reg, cur: Self::Reg) -> Self::Reg;
    /// The last block of `x`, for the narrow backend.
    unsafe fn last(x: Self::Reg) -> <Self::Narrow as Simd>::Reg;
    /// Block `j` holds `counter + j` in the counter form (low and high
    /// 64-bit halves as integers).
    unsafe fn counters(counter: u128) -> Self::Reg;
    /// Adds `n` to the low half of every block's counter (no carry: the
    /// CTR mode splits where the low half wraps).
    unsafe fn add_counter(x: Self::Reg, n: u64) -> Self::Reg;
    /// Counter form to the big-endian counter block AES encrypts.
    unsafe fn counter_blocks(x: Self::Reg) -> Self::Reg;
    /// Lanes `0..BLOCKS` of a register from the blocks at `ptr(j)`.
    ///
    /// # Safety
    /// Every `ptr(j)` readable for 16 bytes.
    unsafe fn gather(ptr: impl Fn(usize) -> *const u8) -> Self::Reg;
    /// # Safety
    /// Every `ptr(j)` writable for 16 bytes.
    unsafe fn scatter(ptr: impl Fn(usize) -> *mut u8, x: Self::Reg);

    /// Serial CBC encryption of `blocks` blocks; a backend with a faster
    /// chain overrides it.
    ///
    /// # Safety
    /// `src` readable, `dst` writable for `blocks * 16` bytes, equal or
    /// disjoint; `BLOCKS == 1`.
    #[inline(always)]
    unsafe fn cbc_encrypt_chain<const NR: usize>(
        k: &[Self::Reg; MAX_ROUND_KEYS],
        iv: &[u8; 16],
        src: *const u8,
        dst: *mut u8,
        blocks: usize,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            let mut chain = [Self::splat(iv)];
            for i in 0..blocks {
                let plain = [Self::load(src.add(i * 16))];
                let mut x = plain;
                Self::encrypt_xor::<NR, 1>(k, &mut x, &chain);
                Self::store(dst.add(i * 16), x[0]);
                chain = x;
            }
        }
    }
}

/// Carry-less multiplication, for the CRC fused into the lanes.
pub(crate) trait Clmul: Simd {
    /// Every block's 128-bit CRC accumulator folded forward by one block
    /// and XORed with the next block: `clmul(lo, k0) ^ clmul(hi, k1) ^ b`.
    ///
    /// # Safety
    /// In the backend's target features with carry-less multiply.
    unsafe fn fold(acc: Self::Reg, keys: Self::Reg, block: Self::Reg) -> Self::Reg;
}

/// The round keys in every block of a register.
#[inline(always)]
pub(crate) unsafe fn round_keys<B: Simd>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
) -> [B::Reg; MAX_ROUND_KEYS] {
    // A loop, not `array::from_fn`: a closure does not inherit the
    // entry's target features, and `from_fn` may stay a call.
    // SAFETY: the caller is in the backend's target features.
    unsafe {
        let mut k = [B::zero(); MAX_ROUND_KEYS];
        for (k, key) in k.iter_mut().zip(keys) {
            *k = B::splat(key);
        }
        k
    }
}

/// A parallel mode, a group of registers at a time (see [`groups`]).
/// Methods, not closures: closures would not inherit the entry's target
/// features.
trait Group<B: Simd> {
    /// `regs` (`1..=W`) registers of `B` from block `at`.
    ///
    /// # Safety
    /// In `B`'s target features; the blocks lie inside the mode's buffer.
    unsafe fn wide<const W: usize>(&mut self, at: usize, regs: usize);
    /// The last `K < B::BLOCKS` blocks from block `at`, on `B::Narrow`.
    ///
    /// # Safety
    /// As `wide`.
    unsafe fn narrow<const K: usize>(self, at: usize);
}

/// Runs a parallel mode over `blocks` blocks: groups of `W` registers of
/// `B` (fewer for the last), then the last `n < B::BLOCKS` blocks, if any,
/// on the narrow backend.
///
/// # Safety
/// As [`Group::wide`], for a buffer of `blocks` blocks.
#[inline(always)]
unsafe fn groups<B: Simd, const W: usize>(blocks: usize, mut mode: impl Group<B>) {
    let mut at = 0;
    // Whole groups with a constant register count, so the loads and stores
    // stay in registers; then one shorter group.
    while blocks - at >= W * B::BLOCKS {
        // SAFETY: the caller's contract; `at + W * BLOCKS <= blocks`.
        unsafe { mode.wide::<W>(at, W) };
        at += W * B::BLOCKS;
    }
    const { assert!(W <= 8) };
    // The last groups with constant counts too: a variable count turns
    // the register arrays into memory copies.
    let regs = (blocks - at) / B::BLOCKS;
    // SAFETY: as above, `at + regs * BLOCKS <= blocks` (`regs < W <= 8`).
    unsafe {
        match regs {
            0 => {}
            1 => mode.wide::<1>(at, 1),
            2 => mode.wide::<2>(at, 2),
            3 => mode.wide::<3>(at, 3),
            4 => mode.wide::<4>(at, 4),
            5 => mode.wide::<5>(at, 5),
            6 => mode.wide::<6>(at, 6),
            _ => mode.wide::<7>(at, 7),
        }
    }
    at += regs * B::BLOCKS;
    // SAFETY: as above, the last `blocks - at < BLOCKS <= 4` blocks.
    unsafe {
        match blocks - at {
            0 => {}
            1 => mode.narrow::<1>(at),
            2 => mode.narrow::<2>(at),
            _ => mode.narrow::<3>(at),
        }
    }
}

/// The buffer of a parallel mode and its round keys.
struct Buf<'k, B: Simd> {
    keys: &'k [[u8; 16]; MAX_ROUND_KEYS],
    k: [B::Reg; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
}

struct Ecb<'k, B: Simd, const NR: usize, const DECRYPT: bool>(Buf<'k, B>);

impl<B: Simd, const NR: usize, const DECRYPT: bool> Group<B> for Ecb<'_, B, NR, DECRYPT> {
    #[inline(always)]
    unsafe fn wide<const W: usize>(&mut self, at: usize, regs: usize) {
        let b = &self.0;
        // SAFETY: the caller's contract.
        unsafe { ecb_group::<B, NR, W, DECRYPT>(&b.k, b.src, b.dst, at, regs) }
    }

    #[inline(always)]
    unsafe fn narrow<const K: usize>(self, at: usize) {
        let b = self.0;
        // SAFETY: the caller's contract.
        unsafe {
            let k = round_keys::<B::Narrow>(b.keys);
            ecb_group::<B::Narrow, NR, K, DECRYPT>(&k, b.src, b.dst, at, K);
        }
    }
}

/// ECB over `blocks` blocks, `W` registers in flight.
///
/// # Safety
/// In `B`'s target features; `src` readable, `dst` writable for
/// `blocks * 16` bytes, equal or disjoint.
#[inline(always)]
pub(crate) unsafe fn ecb<B: Simd, const NR: usize, const W: usize, const DECRYPT: bool>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let k = round_keys::<B>(keys);
        let buf = Buf { keys, k, src, dst };
        groups::<B, W>(blocks, Ecb::<B, NR, DECRYPT>(buf));
    }
}

/// `regs` (`<= W`) registers of ECB from block `at`; the cipher runs on all
/// `W`, so a short group costs one latency, not `regs`.
///
/// # Safety
/// As [`ecb`], for blocks `at .. at + regs * BLOCKS`.
#[inline(always)]
unsafe fn ecb_group<B: Simd, const NR: usize, const W: usize, const DECRYPT: bool>(
    k: &[B::Reg; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
    at: usize,
    regs: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut x = [B::zero(); W];
        for (g, x) in x.iter_mut().enumerate().take(regs) {
            *x = B::load(src.add((at + g * B::BLOCKS) * 16));
        }
        if DECRYPT {
            B::decrypt::<NR, W>(k, &mut x);
        } else {
            B::encrypt::<NR, W>(k, &mut x);
        }
        for (g, x) in x.iter().enumerate().take(regs) {
            B::store(dst.add((at + g * B::BLOCKS) * 16), *x);
        }
    }
}

/// Serial CBC encryption (a chain: one block at a time, on the narrow
/// backend).
///
/// # Safety
/// As [`ecb`].
#[inline(always)]
pub(crate) unsafe fn cbc_encrypt<B: Simd, const NR: usize>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    iv: &[u8; 16],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let k = round_keys::<B::Narrow>(keys);
        B::Narrow::cbc_encrypt_chain::<NR>(&k, iv, src, dst, blocks);
    }
}

/// CBC decryption; `prev`'s last block is the ciphertext before the next
/// group.
struct CbcDecrypt<'k, B: Simd, const NR: usize> {
    buf: Buf<'k, B>,
    prev: B::Reg,
}

impl<B: Simd, const NR: usize> Group<B> for CbcDecrypt<'_, B, NR> {
    #[inline(always)]
    unsafe fn wide<const W: usize>(&mut self, at: usize, regs: usize) {
        let b = &self.buf;
        // SAFETY: the caller's contract.
        self.prev =
            unsafe { cbc_decrypt_group::<B, NR, W>(&b.k, self.prev, b.src, b.dst, at, regs) };
    }

    #[inline(always)]
    unsafe fn narrow<const K: usize>(self, at: usize) {
        let b = self.buf;
        // SAFETY: the caller's contract.
        unsafe {
            let k = round_keys::<B::Narrow>(b.keys);
            let prev = B::last(self.prev);
            cbc_decrypt_group::<B::Narrow, NR, K>(&k, prev, b.src, b.dst, at, K);
        }
    }
}

/// CBC decryption of `blocks` blocks, `W` registers in flight.
///
/// # Safety
/// As [`ecb`].
#[inline(always)]
pub(crate) unsafe fn cbc_decrypt<B: Simd, const NR: usize, const W: usize>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    iv: &[u8; 16],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let k = round_keys::<B>(keys);
        let buf = Buf { keys, k, src, dst };
        let prev = B::splat(iv);
        groups::<B, W>(blocks, CbcDecrypt::<B, NR> { buf, prev });
    }
}

/// `regs` (`1..=W`) registers of CBC decryption from block `at`, after the
/// ciphertext whose last block is `prev`'s; returns the group's last
/// ciphertext register.
///
/// # Safety
/// As [`ecb`], for blocks `at .. at + regs * BLOCKS`.
#[inline(always)]
unsafe fn cbc_decrypt_group<B: Simd, const NR: usize, const W: usize>(
    k: &[B::Reg; MAX_ROUND_KEYS],
    prev: B::Reg,
    src: *const u8,
    dst: *mut u8,
    at: usize,
    regs: usize,
) -> B::Reg {
    // SAFETY: the caller's contract. In place, every ciphertext block is
    // read before a store can overwrite it: all are loaded first, and the
    // stores go from the last register down, each after the load of the
    // ciphertext one block back (which lies in its own or the previous,
    // not yet written, register).
    unsafe {
        let block = |g: usize| (at + g * B::BLOCKS) * 16;
        let mut x = [B::zero(); W];
        for (g, x) in x.iter_mut().enumerate().take(regs) {
            *x = B::load(src.add(block(g)));
        }
        let c = x;
        B::decrypt::<NR, W>(k, &mut x);
        for g in (1..regs).rev() {
            // Kept in registers where there are enough of them; otherwise
            // reloaded: eight ciphertexts beside eight states and up to
            // fifteen round keys would spill on 16-register ISAs.
            let back = if B::KEEP_CIPHERTEXT {
                B::shift_in(c[g - 1], c[g])
            } else {
                B::load(src.add(block(g) - 16))
            };
            B::store(dst.add(block(g)), B::xor(x[g], back));
        }
        B::store(dst.add(block(0)), B::xor(x[0], B::shift_in(prev, c[0])));
        c[regs - 1]
    }
}

/// CTR over `blocks` blocks from the big-endian counter block `counter`,
/// `W` registers in flight. Split where the low 64 bits of the counter
/// wrap, so each stretch counts in one 64-bit half and the carry into the
/// high half is exact.
///
/// # Safety
/// As [`ecb`].
#[inline(always)]
pub(crate) unsafe fn ctr<B: Simd, const NR: usize, const W: usize>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    counter: &[u8; 16],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    let mut counter = u128::from_be_bytes(*counter);
    let mut done = 0;
    while done < blocks {
        let until_wrap = u128::from(u64::MAX - counter as u64) + 1;
        let n = ((blocks - done) as u128).min(until_wrap) as usize;
        // SAFETY: the caller's contract, for blocks `done .. done + n`.
        unsafe {
            ctr_stretch::<B, NR, W>(keys, counter, src.add(done * 16), dst.add(done * 16), n)
        };
        counter = counter.wrapping_add(n as u128);
        done += n;
    }
}

/// CTR from `counter`; `base` holds the counters of the next group.
struct Ctr<'k, B: Simd, const NR: usize> {
    buf: Buf<'k, B>,
    counter: u128,
    base: B::Reg,
}

impl<B: Simd, const NR: usize> Group<B> for Ctr<'_, B, NR> {
    #[inline(always)]
    unsafe fn wide<const W: usize>(&mut self, at: usize, regs: usize) {
        let b = &self.buf;
        // SAFETY: the caller's contract.
        self.base = unsafe { ctr_group::<B, NR, W>(&b.k, self.base, b.src, b.dst, at, regs) };
    }

    #[inline(always)]
    unsafe fn narrow<const K: usize>(self, at: usize) {
        let b = self.buf;
        // SAFETY: the caller's contract.
        unsafe {
            let k = round_keys::<B::Narrow>(b.keys);
            let base = B::Narrow::counters(self.counter + at as u128);
            ctr_group::<B::Narrow, NR, K>(&k, base, b.src, b.dst, at, K);
        }
    }
}

/// CTR over `blocks` blocks whose counters do not wrap the low 64 bits.
///
/// # Safety
/// As [`ecb`].
#[inline(always)]
unsafe fn ctr_stretch<B: Simd, const NR: usize, const W: usize>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    counter: u128,
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let k = round_keys::<B>(keys);
        let buf = Buf { keys, k, src, dst };
        let base = B::counters(counter);
        groups::<B, W>(blocks, Ctr::<B, NR> { buf, counter, base });
    }
}

/// `regs` (`<= W`) registers of CTR from block `at`, whose counters start at
/// `base`; returns the counters of the next group (after a full one).
///
/// # Safety
/// As [`ecb`], for blocks `at .. at + regs * BLOCKS`.
#[inline(always)]
unsafe fn ctr_group<B: Simd, const NR: usize, const W: usize>(
    k: &[B::Reg; MAX_ROUND_KEYS],
    base: B::Reg,
    src: *const u8,
    dst: *mut u8,
    at: usize,
    regs: usize,
) -> B::Reg {
    // SAFETY: the caller's contract.
    unsafe {
        let mut x = [B::zero(); W];
        for (g, x) in x.iter_mut().enumerate() {
            *x = B::counter_blocks(B::add_counter(base, (g * B::BLOCKS) as u64));
        }
        B::encrypt::<NR, W>(k, &mut x);
        for (g, ks) in x.iter().enumerate().take(regs) {
            let at = (at + g * B::BLOCKS) * 16;
            B::store(dst.add(at), B::xor(B::load(src.add(at)), *ks));
        }
        B::add_counter(base, (W * B::BLOCKS) as u64)
    }
}

/// The live state of the lanes of a multi-buffer CBC encryption in `R`
/// registers of `BLOCKS` lanes: chains, and with `CRC` the accumulators
/// (see `kernel::crc`), folded with `fold`. Made inside the backend's
/// target features ([`cbc_encrypt_lanes`]), so its methods may use them.
struct LaneRegs<B: Simd, const NR: usize, const R: usize, const CRC: bool, F> {
    k: [B::Reg; MAX_ROUND_KEYS],
    chain: [B::Reg; R],
    acc: [B::Reg; R],
    fold: F,
}

impl<B, const NR: usize, const R: usize, const N: usize, const CRC: bool, F> LaneKernel<N>
    for LaneRegs<B, NR, R, CRC, F>
where
    B: Simd,
    F: Fn(B::Reg, B::Reg) -> B::Reg,
{
    #[inline(always)]
    fn load(&mut self, chain: &[[u8; 16]; MAX_LANES], crc: &[[u8; 16]; MAX_LANES]) {
        // SAFETY: made in the target features; R * BLOCKS <= MAX_LANES.
        unsafe {
            load_lanes::<B, R>(&mut self.chain, chain);
            if CRC {
                load_lanes::<B, R>(&mut self.acc, crc);
            }
        }
    }

    #[inline(always)]
    fn restart(&mut self, lanes: u64, chain: &[[u8; 16]; MAX_LANES], crc: &[[u8; 16]; MAX_LANES]) {
        // SAFETY: as in `load`.
        unsafe {
            restart_lanes::<B, R>(&mut self.chain, chain, lanes);
            if CRC {
                restart_lanes::<B, R>(&mut self.acc, crc, lanes);
            }
        }
    }

    #[inline(always)]
    fn save_crc(&self, lanes: u64, crc: &mut [[u8; 16]; MAX_LANES]) {
        if CRC {
            // SAFETY: as in `load`.
            unsafe { store_lanes::<B, R>(&self.acc, crc, lanes) };
        }
    }

    #[inline(always)]
    fn run(&mut self, run: &Run<'_, N>) {
        // SAFETY: made in the target features; the `Run` makes every
        // lane's block of each of its steps valid (N == R * BLOCKS).
        unsafe {
            for step in run.steps() {
                let plain = gather::<B, R, N>(run, step);
                if CRC {
                    // Before the rounds, so the plaintext registers are
                    // free during them (they would spill with 32 lanes).
                    for (acc, plain) in self.acc.iter_mut().zip(&plain) {
                        *acc = (self.fold)(*acc, *plain);
                    }
                }
                let mut x = plain;
                B::encrypt_xor::<NR, R>(&self.k, &mut x, &self.chain);
                scatter::<B, R, N>(run, step, &x);
                self.chain = x;
            }
        }
    }
}

/// The first `R` registers of a lane state array.
///
/// # Safety
/// In `B`'s target features; `R * B::BLOCKS <= MAX_LANES`.
#[inline(always)]
unsafe fn load_lanes<B: Simd, const R: usize>(
    regs: &mut [B::Reg; R],
    state: &[[u8; 16]; MAX_LANES],
) {
    let state = state.as_flattened().as_ptr();
    for (g, r) in regs.iter_mut().enumerate() {
        // SAFETY: the caller's contract: register g is inside the array.
        *r = unsafe { B::load(state.add(16 * B::BLOCKS * g)) };
    }
}

/// The bits of `lanes` that register `g` holds.
#[inline(always)]
fn register_lanes<B: Simd>(lanes: u64, g: usize) -> u64 {
    (lanes >> (g * B::BLOCKS)) & (u64::MAX >> (64 - B::BLOCKS))
}

/// [`load_lanes`] for the lanes in `lanes` only: a register none of whose
/// lanes is in `lanes` is not touched, one with some goes through memory.
///
/// # Safety
/// As [`load_lanes`].
#[inline(always)]
unsafe fn restart_lanes<B: Simd, const R: usize>(
    regs: &mut [B::Reg; R],
    state: &[[u8; 16]; MAX_LANES],
    lanes: u64,
) {
    const { assert!(B::BLOCKS <= 4) };
    for (g, r) in regs.iter_mut().enumerate() {
        let mine = register_lanes::<B>(lanes, g);
        if mine == 0 {
            continue;
        }
        let from = &state[g * B::BLOCKS..][..B::BLOCKS];
        // One register: at most four blocks (a 512-bit register).
        let mut merged = [[0u8; 16]; 4];
        let merged = &mut merged[..B::BLOCKS];
        // SAFETY: the caller's contract; `merged` holds one register.
        unsafe { B::store(merged.as_flattened_mut().as_mut_ptr(), *r) };
        for (j, block) in merged.iter_mut().enumerate() {
            if mine & (1 << j) != 0 {
                *block = from[j];
            }
        }
        // SAFETY: as above.
        *r = unsafe { B::load(merged.as_flattened().as_ptr()) };
    }
}

/// Writes the registers that hold any lane of `lanes` to `state`.
///
/// # Safety
/// As [`load_lanes`].
#[inline(always)]
unsafe fn store_lanes<B: Simd, const R: usize>(
    regs: &[B::Reg; R],
    state: &mut [[u8; 16]; MAX_LANES],
    lanes: u64,
) {
    let state = state.as_flattened_mut().as_mut_ptr();
    for (g, r) in regs.iter().enumerate() {
        if register_lanes::<B>(lanes, g) != 0 {
            // SAFETY: the caller's contract: register g is inside the array.
            unsafe { B::store(state.add(16 * B::BLOCKS * g), *r) };
        }
    }
}

/// Multi-buffer CBC encryption of `lanes`' jobs in `R` registers of
/// `BLOCKS` lanes (`N = R * BLOCKS`); with `CRC`, every lane also folds its
/// plaintext into its CRC accumulator with `fold` (see `kernel::crc`).
///
/// # Safety
/// In `B`'s target features, and with `CRC` in those of `B`'s [`Clmul`]
/// (`fold` is `Clmul::fold` then).
#[inline(always)]
pub(crate) unsafe fn cbc_encrypt_lanes<
    B: Simd,
    const NR: usize,
    const R: usize,
    const N: usize,
    const CRC: bool,
>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    lanes: &mut Lanes<'_, '_, '_, N, CRC>,
    fold: impl Fn(B::Reg, B::Reg) -> B::Reg,
) {
    const { assert!(N <= MAX_LANES && N == R * B::BLOCKS) };
    // SAFETY: the caller's contract.
    let mut regs = unsafe {
        LaneRegs::<B, NR, R, CRC, _> {
            k: round_keys::<B>(keys),
            chain: [B::zero(); R],
            acc: [B::zero(); R],
            fold,
        }
    };
    lanes.drive(&mut regs);
}

/// Every lane's block of `step`, `BLOCKS` lanes per register.
///
/// # Safety
/// In `B`'s target features; `N == R * B::BLOCKS`.
#[inline(always)]
unsafe fn gather<B: Simd, const R: usize, const N: usize>(
    run: &Run<'_, N>,
    step: Step<'_>,
) -> [B::Reg; R] {
    // SAFETY: the `Run` makes every lane's block of `step` readable.
    unsafe {
        let mut x = [B::zero(); R];
        for (g, x) in x.iter_mut().enumerate() {
            *x = B::gather(|j| run.src(B::BLOCKS * g + j, step));
        }
        x
    }
}

/// Writes every lane's block of `step`, after [`gather`] read them.
///
/// # Safety
/// As [`gather`].
#[inline(always)]
unsafe fn scatter<B: Simd, const R: usize, const N: usize>(
    run: &Run<'_, N>,
    step: Step<'_>,
    x: &[B::Reg; R],
) {
    for (g, x) in x.iter().enumerate() {
        // SAFETY: the `Run` makes every lane's block of `step` writable.
        unsafe { B::scatter(|j| run.dst(B::BLOCKS * g + j, step), *x) };
    }
}

/// Makes a backend's entry points: for each operation one function that
/// takes the backend's token (proof of its CPU features), picks the round
/// count, and calls a `#[target_feature]` function into which the generic
/// mode above inlines.
macro_rules! entries {
    (
        $B:ty, token: $T:ty, features: $f:literal, wide: $W:expr,
        lanes: $R:expr, $N:expr, stagger: $stagger:expr,
        wide_lanes: $R2:expr, $N2:expr, from: $min:expr,
        clmul: $CT:ty, $cf:literal
    ) => {
        impl $B {
            pub(crate) fn encrypt_block(_: $T, keys: &RoundKeys, block: &mut [u8; 16]) {
                let p = block.as_mut_ptr();
                // SAFETY: the token proves the CPU features; one block.
                unsafe { by_rounds!(keys, ecb_narrow::<NR, false>(&keys.enc, p, p, 1)) }
            }

            pub(crate) fn decrypt_block(_: $T, keys: &RoundKeys, block: &mut [u8; 16]) {
                let p = block.as_mut_ptr();
                // SAFETY: as in `encrypt_block`.
                unsafe { by_rounds!(keys, ecb_narrow::<NR, true>(&keys.dec, p, p, 1)) }
            }

            pub(crate) fn ecb_encrypt(_: $T, keys: &RoundKeys, mut io: InOut<'_>) {
                let blocks = io.blocks();
                let (src, dst) = io.ptrs();
                // SAFETY: the token proves the CPU features; `src` and
                // `dst` hold `blocks` blocks (an `InOut` has equal lengths)
                // and are equal or disjoint.
                unsafe { by_rounds!(keys, ecb::<NR, false>(&keys.enc, src, dst, blocks)) }
            }

            pub(crate) fn ecb_decrypt(_: $T, keys: &RoundKeys, mut io: InOut<'_>) {
                let blocks = io.blocks();
                let (src, dst) = io.ptrs();
                // SAFETY: as in `ecb_encrypt`.
                unsafe { by_rounds!(keys, ecb::<NR, true>(&keys.dec, src, dst, blocks)) }
            }

            pub(crate) fn cbc_encrypt(_: $T, keys: &RoundKeys, iv: &[u8; 16], mut io: InOut<'_>) {
                let blocks = io.blocks();
                let (src, dst) = io.ptrs();
                // SAFETY: as in `ecb_encrypt`.
                unsafe { by_rounds!(keys, cbc_encrypt::<NR>(&keys.enc, iv, src, dst, blocks)) }
            }

            pub(crate) fn cbc_decrypt(_: $T, keys: &RoundKeys, iv: &[u8; 16], mut io: InOut<'_>) {
                let blocks = io.blocks();
                let (src, dst) = io.ptrs();
                // SAFETY: as in `ecb_encrypt`.
                unsafe { by_rounds!(keys, cbc_decrypt::<NR>(&keys.dec, iv, src, dst, blocks)) }
            }

            pub(crate) fn ctr(_: $T, keys: &RoundKeys, counter: &[u8; 16], mut io: InOut<'_>) {
                let blocks = io.blocks();
                let (src, dst) = io.ptrs();
                // SAFETY: as in `ecb_encrypt`.
                unsafe { by_rounds!(keys, ctr::<NR>(&keys.enc, counter, src, dst, blocks)) }
            }

            pub(crate) fn cbc_encrypt_multi(_: $T, keys: &RoundKeys, jobs: &mut [Job<'_>]) {
                let mut scratch = Scratch::new();
                if jobs.len() >= $min {
                    let mut lanes = Lanes::<{ $N2 }, false>::new(jobs, $stagger, &mut scratch);
                    // SAFETY: the token proves the CPU features.
                    unsafe {
                        by_rounds!(
                            keys,
                            run_lanes::<NR, { $R2 }, { $N2 }>(&keys.enc, &mut lanes)
                        )
                    }
                } else {
                    let mut lanes = Lanes::<{ $N }, false>::new(jobs, $stagger, &mut scratch);
                    // SAFETY: the token proves the CPU features.
                    unsafe {
                        by_rounds!(keys, run_lanes::<NR, { $R }, { $N }>(&keys.enc, &mut lanes))
                    }
                }
            }

            /// [`Self::cbc_encrypt_multi`] with the CRC of every job that
            /// asks for one folded in the lanes and finished (see
            /// `kernel::crc`). Before the CBC tail rule overwrites tails.
            pub(crate) fn cbc_encrypt_multi_crc(_: $CT, keys: &RoundKeys, jobs: &mut [Job<'_>]) {
                let mut scratch = Scratch::new();
                if jobs.len() >= $min {
                    let mut lanes = Lanes::<{ $N2 }, true>::new(jobs, $stagger, &mut scratch);
                    // SAFETY: the token proves the CPU features with
                    // carry-less multiply.
                    unsafe {
                        by_rounds!(
                            keys,
                            run_lanes_crc::<NR, { $R2 }, { $N2 }>(&keys.enc, &mut lanes)
                        )
                    }
                } else {
                    let mut lanes = Lanes::<{ $N }, true>::new(jobs, $stagger, &mut scratch);
                    // SAFETY: as above.
                    unsafe {
                        by_rounds!(
                            keys,
                            run_lanes_crc::<NR, { $R }, { $N }>(&keys.enc, &mut lanes)
                        )
                    }
                }
                $crate::kernel::crc::finish_jobs(jobs);
            }
        }

        #[target_feature(enable = $f)]
        unsafe fn ecb_narrow<const NR: usize, const DECRYPT: bool>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            src: *const u8,
            dst: *mut u8,
            blocks: usize,
        ) {
            // SAFETY: the caller's contract.
            unsafe { modes::ecb::<<$B as Simd>::Narrow, NR, 1, DECRYPT>(keys, src, dst, blocks) }
        }

        #[target_feature(enable = $f)]
        unsafe fn ecb<const NR: usize, const DECRYPT: bool>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            src: *const u8,
            dst: *mut u8,
            blocks: usize,
        ) {
            // SAFETY: the caller's contract.
            unsafe { modes::ecb::<$B, NR, { $W }, DECRYPT>(keys, src, dst, blocks) }
        }

        #[target_feature(enable = $f)]
        unsafe fn cbc_encrypt<const NR: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            iv: &[u8; 16],
            src: *const u8,
            dst: *mut u8,
            blocks: usize,
        ) {
            // SAFETY: the caller's contract.
            unsafe { modes::cbc_encrypt::<$B, NR>(keys, iv, src, dst, blocks) }
        }

        #[target_feature(enable = $f)]
        unsafe fn cbc_decrypt<const NR: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            iv: &[u8; 16],
            src: *const u8,
            dst: *mut u8,
            blocks: usize,
        ) {
            // SAFETY: the caller's contract.
            unsafe { modes::cbc_decrypt::<$B, NR, { $W }>(keys, iv, src, dst, blocks) }
        }

        #[target_feature(enable = $f)]
        unsafe fn ctr<const NR: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            counter: &[u8; 16],
            src: *const u8,
            dst: *mut u8,
            blocks: usize,
        ) {
            // SAFETY: the caller's contract.
            unsafe { modes::ctr::<$B, NR, { $W }>(keys, counter, src, dst, blocks) }
        }

        #[target_feature(enable = $f)]
        unsafe fn run_lanes<const NR: usize, const R: usize, const N: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            lanes: &mut Lanes<'_, '_, '_, N, false>,
        ) {
            // SAFETY: the caller's contract.
            unsafe { modes::cbc_encrypt_lanes::<$B, NR, R, N, false>(keys, lanes, |a, _| a) }
        }

        #[target_feature(enable = $cf)]
        unsafe fn run_lanes_crc<const NR: usize, const R: usize, const N: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            lanes: &mut Lanes<'_, '_, '_, N, true>,
        ) {
            // SAFETY: the caller's contract (features with carry-less
            // multiply, so `Clmul::fold` may run).
            unsafe {
                let k = <$B as Simd>::splat(&$crate::kernel::crc::FOLD_128_BLOCK);
                modes::cbc_encrypt_lanes::<$B, NR, R, N, true>(keys, lanes, |a, b| {
                    <$B as Clmul>::fold(a, k, b)
                })
            }
        }
    };
}
pub(crate) use entries;

/// Runs `$f::<NR, ..>` for the key's round count (10, 12 or 14).
macro_rules! by_rounds {
    ($keys:expr, $f:ident::<NR $(, $g:tt)*>($($arg:expr),*)) => {
        match $keys.rounds {
            10 => $f::<10 $(, $g)*>($($arg),*),
            12 => $f::<12 $(, $g)*>($($arg),*),
            _ => $f::<14 $(, $g)*>($($arg),*),
        }
    };
}
pub(crate) use by_rounds;
