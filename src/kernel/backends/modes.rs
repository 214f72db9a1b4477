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
use crate::kernel::lanes::{LaneBlocks, LaneKernel, Lanes, MAX_LANES, Run, Step};

/// The primitives of one instruction set.
pub(crate) trait Simd {
    /// A vector of `BLOCKS` AES blocks.
    type Reg: Copy;
    /// Blocks per register (1, 2 or 4).
    const BLOCKS: usize;
    /// Whether CBC decryption keeps a group's ciphertext in registers
    /// (32-register ISAs) rather than reloading it. With 16 registers the
    /// rounds held in step fill them (VAES-256 on Zen 3: reloading was
    /// 1.05× as fast once the rounds were in step).
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

    /// Whether CTR stores a group's output after the XORs of all its
    /// blocks rather than each block's after its own. Only the order of
    /// the instructions LLVM is given: set where a model of the core
    /// measured it faster (see the ARMv8 backend).
    const CTR_STORES_LAST: bool = false;

    /// Called after each AES round of `N` registers, so that a backend
    /// can hold their rounds in step (the x86 backends' `in_step!`);
    /// nothing by default.
    #[inline(always)]
    unsafe fn in_step<const N: usize>(x: &mut [Self::Reg; N]) {
        let _ = x;
    }

    /// Whether multi-buffer lanes with a CRC multiply every accumulator
    /// forward before a step reads its blocks, and XOR each block in as it
    /// arrives, instead of one [`Clmul::fold`] per block after the read.
    /// The product goes through [`Self::opaque`], so LLVM cannot merge the
    /// two XORs again (into an `EOR3` that keeps the block live until the
    /// multiplies are done). Only the grouping of the instructions LLVM is
    /// given: set where a model of the core measured it faster (see the
    /// ARMv8 backend). Not on x86: VAES-256, which has no three-way XOR,
    /// ran a batch of 64 pages with their CRC 10-17% slower with it (Intel
    /// Xeon, family 6 model 167).
    const CRC_MULTIPLY_AHEAD: bool = false;

    /// `x`, through an operation the optimiser cannot see into; only
    /// [`Self::CRC_MULTIPLY_AHEAD`] backends need more than `x` itself.
    #[inline(always)]
    unsafe fn opaque(x: Self::Reg) -> Self::Reg {
        x
    }

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
                Self::in_step(x);
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
                Self::in_step(x);
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
    /// Whether CTR counts in the big-endian counter blocks themselves,
    /// adding to their last byte with [`add_last_byte`](Simd::add_last_byte)
    /// while it does not wrap, rather than converting each register from
    /// the counter form: one vector addition per register instead of an
    /// addition and a byte shuffle. Set where the shuffle competes with
    /// AES for the vector pipes (measured on AMD Zen 3).
    const CTR_BYTE_ADDS: bool = false;
    /// Adds `n` to the last byte of every block of `x`, without carry (the
    /// caller makes sure it does not wrap). Through memory by default; a
    /// backend that sets [`CTR_BYTE_ADDS`](Simd::CTR_BYTE_ADDS) overrides
    /// it with a vector addition.
    #[inline(always)]
    unsafe fn add_last_byte(x: Self::Reg, n: u8) -> Self::Reg {
        // One register: at most four blocks (a 512-bit register).
        let mut blocks = [[0u8; 16]; 4];
        let blocks = &mut blocks[..Self::BLOCKS];
        // SAFETY: the caller is in the target features; `blocks` holds
        // one register.
        unsafe { Self::store(blocks.as_flattened_mut().as_mut_ptr(), x) };
        for block in blocks.iter_mut() {
            block[15] = block[15].wrapping_add(n);
        }
        // SAFETY: as above.
        unsafe { Self::load(blocks.as_flattened().as_ptr()) }
    }
    /// The big-endian counter blocks of register `g` of a CTR group whose
    /// first counter is `first`, held in counter form by `base`. From
    /// `base` by default; a backend whose vector pipes are the scarce ones
    /// builds them from `first` in general registers instead.
    #[inline(always)]
    unsafe fn group_counters(base: Self::Reg, first: u128, g: usize) -> Self::Reg {
        let _ = first;
        // SAFETY: the caller is in the backend's target features.
        unsafe { Self::counter_blocks(Self::add_counter(base, (g * Self::BLOCKS) as u64)) }
    }
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

/// A parallel mode, run a group of registers at a time by [`groups`], with
/// one register of state carried from group to group: CBC decryption's
/// last ciphertext, CTR's next counters, nothing for ECB. Methods, not
/// closures: closures would not inherit the entry's target features.
trait Parallel<const NR: usize> {
    /// One group, `span`, after `carry`; returns the carry for the next
    /// and the `W` registers it stored, in order (for an [`Output`]; the
    /// compiler drops them where nothing reads them).
    ///
    /// # Safety
    /// In `C`'s target features; `W == span.regs`.
    unsafe fn group<C: Simd, const W: usize>(
        &self,
        span: Span<'_, C>,
        carry: C::Reg,
    ) -> (C::Reg, [C::Reg; W]);

    /// The carry at block `at` for `B::Narrow`, from `B`'s `carry` there.
    ///
    /// # Safety
    /// In `B`'s target features.
    unsafe fn narrow_carry<B: Simd>(&self, carry: B::Reg, at: usize) -> <B::Narrow as Simd>::Reg;
}

/// A parallel mode's buffer and round keys.
struct Buf<B: Simd> {
    k: [B::Reg; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
}

/// `regs` registers of blocks from block `at` of a buffer: one group. Made
/// only by [`groups`], inside the buffer.
struct Span<'b, C: Simd> {
    buf: &'b Buf<C>,
    at: usize,
    regs: usize,
}

impl<C: Simd> Span<'_, C> {
    /// Where register `g` starts, in bytes.
    #[inline(always)]
    fn offset(&self, g: usize) -> usize {
        (self.at + g * C::BLOCKS) * 16
    }

    /// The group's input, `W >= regs` registers (the rest zero).
    ///
    /// # Safety
    /// In `C`'s target features.
    #[inline(always)]
    unsafe fn load<const W: usize>(&self) -> [C::Reg; W] {
        // SAFETY: a `Span` lies inside the buffer; the target features are
        // the caller's contract.
        unsafe {
            let mut x = [C::zero(); W];
            for (g, x) in x.iter_mut().enumerate().take(self.regs) {
                *x = self.load_back(g, 0);
            }
            x
        }
    }

    /// Input register `g < regs`, or the register `back` bytes before it
    /// (`back` no more than the bytes of the buffer before it).
    ///
    /// # Safety
    /// As [`Span::load`].
    #[inline(always)]
    unsafe fn load_back(&self, g: usize, back: usize) -> C::Reg {
        // SAFETY: as in `load`, and the caller's bound on `back`.
        unsafe { C::load(self.buf.src.add(self.offset(g) - back)) }
    }

    /// Writes output register `g < regs`.
    ///
    /// # Safety
    /// As [`Span::load`].
    #[inline(always)]
    unsafe fn store(&self, g: usize, x: C::Reg) {
        // SAFETY: as in `load`.
        unsafe { C::store(self.buf.dst.add(self.offset(g)), x) }
    }
}

/// Runs `mode` over `blocks` blocks from `carry`: groups of `W` registers
/// of `B` (fewer for the last), then the last `n < B::BLOCKS` blocks, if
/// any, on the narrow backend; every group's output also goes to `out`,
/// which is returned. By value: a local whose address never escapes can
/// stay in registers, where through a reference every store to `dst`
/// could, for all the compiler knows, change it.
///
/// # Safety
/// In `B`'s target features (and `out`'s); `src` readable, `dst` writable
/// for `blocks * 16` bytes, equal or disjoint.
#[inline(always)]
unsafe fn groups<B: Simd, const NR: usize, const W: usize, O: Output<B>>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    (src, dst): (*const u8, *mut u8),
    blocks: usize,
    mode: impl Parallel<NR>,
    mut carry: B::Reg,
    mut out: O,
) -> O {
    const { assert!(W <= 8 && B::BLOCKS <= 4) };
    // One group of `$n` registers of `$C` at block `$at`, its output to
    // `out.$take`.
    macro_rules! group {
        ($C:ty, $n:expr, $buf:expr, $at:expr, $carry:expr, $take:ident) => {{
            let (carry, x) = mode.group::<$C, { $n }>(
                Span {
                    buf: $buf,
                    at: $at,
                    regs: $n,
                },
                $carry,
            );
            out.$take(&x);
            carry
        }};
    }
    // SAFETY: the caller's contract; every group below lies inside the
    // `blocks` blocks (comments give the bound).
    unsafe {
        let buf = Buf {
            k: round_keys::<B>(keys),
            src,
            dst,
        };
        let mut at = 0;
        // Whole groups with a constant register count, so the loads and
        // stores stay in registers; then one shorter group.
        while blocks - at >= W * B::BLOCKS {
            carry = group!(B, W, &buf, at, carry, wide);
            at += W * B::BLOCKS;
        }
        // The last group with a constant count too: a variable count turns
        // the register arrays into memory copies (`regs < W <= 8`).
        let regs = (blocks - at) / B::BLOCKS;
        carry = match regs {
            0 => carry,
            1 => group!(B, 1, &buf, at, carry, wide),
            2 => group!(B, 2, &buf, at, carry, wide),
            3 => group!(B, 3, &buf, at, carry, wide),
            4 => group!(B, 4, &buf, at, carry, wide),
            5 => group!(B, 5, &buf, at, carry, wide),
            6 => group!(B, 6, &buf, at, carry, wide),
            _ => group!(B, 7, &buf, at, carry, wide),
        };
        out.end_wide();
        at += regs * B::BLOCKS;
        // The last `blocks - at < BLOCKS <= 4` blocks.
        let left = blocks - at;
        if left == 0 {
            return out;
        }
        let buf = Buf::<B::Narrow> {
            k: round_keys::<B::Narrow>(keys),
            src,
            dst,
        };
        let carry = mode.narrow_carry::<B>(carry, at);
        match left {
            1 => group!(B::Narrow, 1, &buf, at, carry, narrow),
            2 => group!(B::Narrow, 2, &buf, at, carry, narrow),
            _ => group!(B::Narrow, 3, &buf, at, carry, narrow),
        };
        out
    }
}

/// What a parallel mode's output goes to besides `dst`: nothing
/// ([`NoOutput`]), or the CRC folded over it ([`OutputCrc`]). Called by
/// [`groups`] in the order of the output: `wide` for each group of `B`
/// registers, `end_wide` once, then `narrow` for the last blocks.
pub(crate) trait Output<B: Simd> {
    /// # Safety
    /// In the target features of `B` and of the output.
    unsafe fn wide(&mut self, x: &[B::Reg]);
    /// # Safety
    /// As `wide`.
    unsafe fn end_wide(&mut self);
    /// # Safety
    /// As `wide`.
    unsafe fn narrow(&mut self, x: &[<B::Narrow as Simd>::Reg]);
}

/// The output goes only to `dst`.
pub(crate) struct NoOutput;

impl<B: Simd> Output<B> for NoOutput {
    #[inline(always)]
    unsafe fn wide(&mut self, _: &[B::Reg]) {}
    #[inline(always)]
    unsafe fn end_wide(&mut self) {}
    #[inline(always)]
    unsafe fn narrow(&mut self, _: &[<B::Narrow as Simd>::Reg]) {}
}

/// The CRC of the output, folded as it leaves the cipher (see
/// `kernel::crc`), so a page is not read again to check its checksum.
///
/// Output register `r` goes to accumulator `acc[r % 2]`, each of whose
/// `BLOCKS` blocks is a stream of the blocks at one position of the
/// registers: two fold chains, each with two registers of AES work to hide
/// its latency behind. Accumulator 1's last block starts as the seed, the
/// block before block 0. At the end of the wide part the two accumulators
/// are combined (the earlier one folded forward by one register), then
/// their blocks (folded forward by one block each, in order) into one
/// 128-bit accumulator, which the narrow blocks continue.
pub(crate) struct OutputCrc<B: Simd> {
    acc: [B::Reg; 2],
    /// Output registers so far.
    regs: usize,
    /// Folds forward by two registers, then by one.
    by_pair: B::Reg,
    by_reg: B::Reg,
    /// The accumulator after the wide part, and its constant for one block.
    narrow: <B::Narrow as Simd>::Reg,
    by_block: <B::Narrow as Simd>::Reg,
}

impl<B: Clmul> OutputCrc<B>
where
    B::Narrow: Clmul,
{
    /// Starts from `seed` ([`crate::kernel::crc`]'s `CrcRequest::seed`).
    ///
    /// # Safety
    /// In `B`'s target features.
    #[inline(always)]
    pub(crate) unsafe fn new(seed: &[u8; 16]) -> Self {
        use crate::kernel::crc::fold_block;
        // SAFETY: the caller's contract; `blocks` holds one register.
        unsafe {
            let mut blocks = [[0u8; 16]; 4];
            blocks[B::BLOCKS - 1] = *seed;
            OutputCrc {
                acc: [B::zero(), B::load(blocks.as_flattened().as_ptr())],
                regs: 0,
                by_pair: B::splat(&const { fold_block(256 * B::BLOCKS as i32) }),
                by_reg: B::splat(&const { fold_block(128 * B::BLOCKS as i32) }),
                narrow: B::Narrow::zero(),
                by_block: B::Narrow::splat(&const { fold_block(128) }),
            }
        }
    }

    /// The accumulator after the last block (whole blocks only).
    ///
    /// # Safety
    /// In `B`'s target features.
    #[inline(always)]
    pub(crate) unsafe fn fold(&self) -> [u8; 16] {
        let mut block = [0u8; 16];
        // SAFETY: the caller's contract; 16 writable bytes.
        unsafe { B::Narrow::store(block.as_mut_ptr(), self.narrow) };
        block
    }
}

impl<B: Clmul> Output<B> for OutputCrc<B>
where
    B::Narrow: Clmul,
{
    #[inline(always)]
    unsafe fn wide(&mut self, x: &[B::Reg]) {
        debug_assert!(self.regs.is_multiple_of(2), "a group after an odd one");
        for (g, x) in x.iter().enumerate() {
            // SAFETY: the caller's contract.
            self.acc[g % 2] = unsafe { B::fold(self.acc[g % 2], self.by_pair, *x) };
        }
        self.regs += x.len();
    }

    #[inline(always)]
    unsafe fn end_wide(&mut self) {
        // The accumulator that took the last register goes second.
        let [first, second] = if self.regs.is_multiple_of(2) {
            self.acc
        } else {
            [self.acc[1], self.acc[0]]
        };
        // SAFETY: the caller's contract; `blocks` holds one register.
        unsafe {
            let both = B::fold(first, self.by_reg, second);
            let mut blocks = [[0u8; 16]; 4];
            B::store(blocks.as_flattened_mut().as_mut_ptr(), both);
            let mut acc = B::Narrow::zero();
            for block in &blocks[..B::BLOCKS] {
                acc = B::Narrow::fold(acc, self.by_block, B::Narrow::load(block.as_ptr()));
            }
            self.narrow = acc;
        }
    }

    #[inline(always)]
    unsafe fn narrow(&mut self, x: &[<B::Narrow as Simd>::Reg]) {
        for x in x {
            // SAFETY: the caller's contract.
            self.narrow = unsafe { B::Narrow::fold(self.narrow, self.by_block, *x) };
        }
    }
}

/// ECB: every block on its own.
struct Ecb<const DECRYPT: bool>;

impl<const NR: usize, const DECRYPT: bool> Parallel<NR> for Ecb<DECRYPT> {
    /// The cipher runs on all `W` registers, so a short group costs one
    /// latency, not `regs`.
    #[inline(always)]
    unsafe fn group<C: Simd, const W: usize>(
        &self,
        span: Span<'_, C>,
        carry: C::Reg,
    ) -> (C::Reg, [C::Reg; W]) {
        // SAFETY: the caller's contract.
        unsafe {
            let mut x = span.load::<W>();
            if DECRYPT {
                C::decrypt::<NR, W>(&span.buf.k, &mut x);
            } else {
                C::encrypt::<NR, W>(&span.buf.k, &mut x);
            }
            for (g, x) in x.iter().enumerate().take(span.regs) {
                span.store(g, *x);
            }
            (carry, x)
        }
    }

    #[inline(always)]
    unsafe fn narrow_carry<B: Simd>(&self, _: B::Reg, _: usize) -> <B::Narrow as Simd>::Reg {
        // SAFETY: the caller's contract.
        unsafe { B::Narrow::zero() }
    }
}

/// ECB over `blocks` blocks, `W` registers in flight.
///
/// # Safety
/// As [`groups`].
#[inline(always)]
pub(crate) unsafe fn ecb<B: Simd, const NR: usize, const W: usize, const DECRYPT: bool>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let io = (src, dst);
        groups::<B, NR, W, _>(keys, io, blocks, Ecb::<DECRYPT>, B::zero(), NoOutput);
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

/// CBC decryption; the carry's last block is the ciphertext before the
/// group.
struct CbcDecrypt;

impl<const NR: usize> Parallel<NR> for CbcDecrypt {
    #[inline(always)]
    unsafe fn group<C: Simd, const W: usize>(
        &self,
        span: Span<'_, C>,
        prev: C::Reg,
    ) -> (C::Reg, [C::Reg; W]) {
        // SAFETY: the caller's contract. In place, every ciphertext block
        // is read before a store can overwrite it: all are loaded first,
        // and the stores go from the last register down, each after the
        // load of the ciphertext one block back (which lies in its own or
        // the previous, not yet written, register).
        unsafe {
            let c = span.load::<W>();
            let mut x = c;
            C::decrypt::<NR, W>(&span.buf.k, &mut x);
            for g in (1..span.regs).rev() {
                // Kept in registers where there are enough of them;
                // otherwise reloaded: eight ciphertexts beside eight states
                // and up to fifteen round keys would spill on 16-register
                // ISAs. (One block back from register g >= 1 is inside the
                // span.)
                let back = if C::KEEP_CIPHERTEXT {
                    C::shift_in(c[g - 1], c[g])
                } else {
                    span.load_back(g, 16)
                };
                x[g] = C::xor(x[g], back);
                span.store(g, x[g]);
            }
            x[0] = C::xor(x[0], C::shift_in(prev, c[0]));
            span.store(0, x[0]);
            (c[span.regs - 1], x)
        }
    }

    #[inline(always)]
    unsafe fn narrow_carry<B: Simd>(&self, prev: B::Reg, _: usize) -> <B::Narrow as Simd>::Reg {
        // SAFETY: the caller's contract.
        unsafe { B::last(prev) }
    }
}

/// CBC decryption of `blocks` blocks, `W` registers in flight, the
/// plaintext also to `out`.
///
/// # Safety
/// As [`ecb`], and in `out`'s target features.
#[inline(always)]
pub(crate) unsafe fn cbc_decrypt<B: Simd, const NR: usize, const W: usize, O: Output<B>>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    iv: &[u8; 16],
    (src, dst): (*const u8, *mut u8),
    blocks: usize,
    out: O,
) -> O {
    // SAFETY: the caller's contract.
    unsafe { groups::<B, NR, W, O>(keys, (src, dst), blocks, CbcDecrypt, B::splat(iv), out) }
}

/// CTR over `blocks` blocks from the big-endian counter block `counter`,
/// `W` registers in flight, the output also to `out`. Split where the low
/// 64 bits of the counter wrap, so each stretch counts in one 64-bit half
/// and the carry into the high half is exact; `out` then sees one
/// [`groups`] run per stretch, which [`OutputCrc`] does not follow: with it,
/// the blocks must not reach a wrap ([`ctr_wraps`]).
///
/// # Safety
/// As [`cbc_decrypt`].
#[inline(always)]
pub(crate) unsafe fn ctr<B: Simd, const NR: usize, const W: usize, O: Output<B>>(
    keys: &[[u8; 16]; MAX_ROUND_KEYS],
    counter: &[u8; 16],
    (src, dst): (*const u8, *mut u8),
    blocks: usize,
    mut out: O,
) -> O {
    let mut counter = u128::from_be_bytes(*counter);
    let mut done = 0;
    while done < blocks {
        let until_wrap = u128::from(u64::MAX - counter as u64) + 1;
        let n = ((blocks - done) as u128).min(until_wrap) as usize;
        // SAFETY: the caller's contract, for blocks `done .. done + n`.
        unsafe {
            let io = (src.add(done * 16), dst.add(done * 16));
            let start = Ctr::carry::<B>(counter);
            out = groups::<B, NR, W, O>(keys, io, n, Ctr { counter }, start, out);
        }
        counter = counter.wrapping_add(n as u128);
        done += n;
    }
    out
}

/// Whether CTR over `blocks` blocks from `counter` crosses a wrap of the
/// counter's low 64 bits (so that [`ctr`] splits it).
pub(crate) fn ctr_wraps(counter: &[u8; 16], blocks: usize) -> bool {
    let low = u64::from_be_bytes(*counter[8..].first_chunk().expect("16 bytes"));
    u128::from(u64::MAX - low) + 1 < blocks as u128
}

/// CTR over a stretch whose counters start at `counter` and do not wrap
/// the low 64 bits; the carry holds the counters of the next group, in
/// counter form or, with [`Simd::CTR_BYTE_ADDS`], as its first register's
/// counter blocks.
struct Ctr {
    counter: u128,
}

impl Ctr {
    /// The carry for a group whose first counter is `counter`.
    ///
    /// # Safety
    /// In `B`'s target features.
    #[inline(always)]
    unsafe fn carry<B: Simd>(counter: u128) -> B::Reg {
        // SAFETY: the caller's contract.
        unsafe {
            if B::CTR_BYTE_ADDS {
                B::counter_blocks(B::counters(counter))
            } else {
                B::counters(counter)
            }
        }
    }
}

impl<const NR: usize> Parallel<NR> for Ctr {
    /// Returns the carry of the group after a full one.
    #[inline(always)]
    unsafe fn group<C: Simd, const W: usize>(
        &self,
        span: Span<'_, C>,
        carry: C::Reg,
    ) -> (C::Reg, [C::Reg; W]) {
        // SAFETY: the caller's contract.
        unsafe {
            let first = self.counter + span.at as u128;
            let blocks = W * C::BLOCKS;
            let mut x = [C::zero(); W];
            let next = if C::CTR_BYTE_ADDS {
                // Blocks from `first` on before the last byte wraps: within
                // them the counter blocks are the carry plus a last byte.
                let room = 256 - usize::from(first as u8);
                if blocks <= room {
                    for (g, x) in x.iter_mut().enumerate() {
                        *x = C::add_last_byte(carry, (g * C::BLOCKS) as u8);
                    }
                } else {
                    let base = C::counters(first);
                    for (g, x) in x.iter_mut().enumerate() {
                        *x = C::group_counters(base, first, g);
                    }
                }
                if blocks + C::BLOCKS <= room {
                    C::add_last_byte(carry, blocks as u8)
                } else {
                    Ctr::carry::<C>(first.wrapping_add(blocks as u128))
                }
            } else {
                for (g, x) in x.iter_mut().enumerate() {
                    *x = C::group_counters(carry, first, g);
                }
                C::add_counter(carry, blocks as u64)
            };
            C::encrypt::<NR, W>(&span.buf.k, &mut x);
            for (g, x) in x.iter_mut().enumerate().take(span.regs) {
                *x = C::xor(span.load_back(g, 0), *x);
                if !C::CTR_STORES_LAST {
                    span.store(g, *x);
                }
            }
            if C::CTR_STORES_LAST {
                for (g, x) in x.iter().enumerate().take(span.regs) {
                    span.store(g, *x);
                }
            }
            (next, x)
        }
    }

    #[inline(always)]
    unsafe fn narrow_carry<B: Simd>(&self, _: B::Reg, at: usize) -> <B::Narrow as Simd>::Reg {
        // SAFETY: the caller's contract.
        unsafe { Ctr::carry::<B::Narrow>(self.counter + at as u128) }
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
        // In place, the loop reads one pointer array instead of two: the
        // lanes' pointers are reloaded in every step (pinned A/B, a batch
        // of 64 pages: VAES-512 1.07×, VAES-256 1.08×, AES-NI 1.04×).
        match run.in_place() {
            Some(in_place) => self.steps(run, &in_place),
            None => self.steps(run, run),
        }
    }
}

impl<B, const NR: usize, const R: usize, const CRC: bool, F> LaneRegs<B, NR, R, CRC, F>
where
    B: Simd,
    F: Fn(B::Reg, B::Reg) -> B::Reg,
{
    /// The steps of `run`, whose blocks `blocks` locates.
    #[inline(always)]
    fn steps<const N: usize>(&mut self, run: &Run<'_, N>, blocks: &impl LaneBlocks<N>) {
        // SAFETY: made in the target features; the `Run` (or its in-place
        // view) makes every lane's block of each of its steps valid
        // (N == R * BLOCKS).
        unsafe {
            for step in run.steps() {
                if CRC && B::CRC_MULTIPLY_AHEAD {
                    // `fold` of a zero block: the multiplies alone.
                    for acc in self.acc.iter_mut() {
                        *acc = B::opaque((self.fold)(*acc, B::zero()));
                    }
                }
                let plain = gather::<B, R, N>(blocks, step);
                if CRC {
                    // Before the rounds, so the plaintext registers are
                    // free during them (they would spill with 32 lanes).
                    for (acc, plain) in self.acc.iter_mut().zip(&plain) {
                        *acc = if B::CRC_MULTIPLY_AHEAD {
                            B::xor(*acc, *plain)
                        } else {
                            (self.fold)(*acc, *plain)
                        };
                    }
                }
                let mut x = plain;
                B::encrypt_xor::<NR, R>(&self.k, &mut x, &self.chain);
                scatter::<B, R, N>(blocks, step, &x);
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
unsafe fn gather<'x, B: Simd, const R: usize, const N: usize>(
    blocks: &'x impl LaneBlocks<N>,
    step: Step<'x>,
) -> [B::Reg; R] {
    // SAFETY: the `Run` behind `blocks` makes every lane's block of `step`
    // readable.
    unsafe {
        let mut x = [B::zero(); R];
        for (g, x) in x.iter_mut().enumerate() {
            *x = B::gather(|j| blocks.src(B::BLOCKS * g + j, step));
        }
        x
    }
}

/// Writes every lane's block of `step`, after [`gather`] read them.
///
/// # Safety
/// As [`gather`].
#[inline(always)]
unsafe fn scatter<'x, B: Simd, const R: usize, const N: usize>(
    blocks: &'x impl LaneBlocks<N>,
    step: Step<'x>,
    x: &[B::Reg; R],
) {
    // With more lanes than general registers hold, every lane's pointer
    // first: a store through one of them could, for all the compiler knows,
    // change the run's pointer array, which would then be read again
    // before each of the following stores (measured: 7% on VAES-512 with
    // 16 lanes). With few lanes the pointers stay in registers anyway, and
    // the copy only adds moves (llvm-mca: 93% of the AES limit against 100%
    // on neoverse-n1 with 8 lanes).
    if N > 8 {
        let mut dst = [core::ptr::null_mut(); N];
        for (lane, dst) in dst.iter_mut().enumerate() {
            *dst = blocks.dst(lane, step);
        }
        for (g, x) in x.iter().enumerate() {
            // SAFETY: the `Run` behind `blocks` makes every lane's block of
            // `step` writable.
            unsafe { B::scatter(|j| dst[B::BLOCKS * g + j], *x) };
        }
    } else {
        for (g, x) in x.iter().enumerate() {
            // SAFETY: as above.
            unsafe { B::scatter(|j| blocks.dst(B::BLOCKS * g + j, step), *x) };
        }
    }
}

/// Makes a backend's entry points: for each operation one function that
/// takes the backend's token (proof of its CPU features), picks the round
/// count, and calls a `#[target_feature]` function into which the generic
/// mode above inlines.
///
/// CBC encryption runs `lanes` (registers, lanes); from a batch of `from`
/// jobs on, `wide_lanes`; for a batch of at most `upto`, `few_lanes`. With
/// `narrow_on: S, R3, R, when: cond`, the few and the ordinary lanes run
/// on `R3` and `R` registers of the narrower `S` (whose features the
/// backend's include) where `cond` holds.
macro_rules! entries {
    (
        $B:ty, token: $T:ty, features: $f:literal, wide: $W:expr,
        lanes: $R:expr, $N:expr, stagger: $steps:literal $(steps per $group:literal lanes)?,
        wide_lanes: $R2:expr, $N2:expr, from: $min:expr,
        few_lanes: $R3:expr, $N3:expr, upto: $max:expr,
        $(narrow_on: $H:ty, $RH3:expr, $RH:expr, when: $on_h:expr,)?
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
                let io = io.ptrs();
                // SAFETY: as in `ecb_encrypt`.
                unsafe { by_rounds!(keys, cbc_decrypt::<NR>(&keys.dec, iv, io, blocks)) }
            }

            pub(crate) fn ctr(_: $T, keys: &RoundKeys, counter: &[u8; 16], mut io: InOut<'_>) {
                let blocks = io.blocks();
                let io = io.ptrs();
                // SAFETY: as in `ecb_encrypt`.
                unsafe { by_rounds!(keys, ctr::<NR>(&keys.enc, counter, io, blocks)) }
            }

            /// [`Self::cbc_decrypt`] that also folds the plaintext into the
            /// CRC accumulator `fold` (see `kernel::crc`).
            pub(crate) fn cbc_decrypt_crc(
                _: $CT,
                keys: &RoundKeys,
                iv: &[u8; 16],
                mut io: InOut<'_>,
                fold: &mut [u8; 16],
            ) {
                let blocks = io.blocks();
                let io = io.ptrs();
                // SAFETY: the token proves the CPU features with carry-less
                // multiply; `io` as in `ecb_encrypt`.
                unsafe {
                    by_rounds!(
                        keys,
                        with_output_crc::<NR, false>(&keys.dec, iv, io, blocks, fold)
                    )
                }
            }

            /// [`Self::ctr`] that also folds the output into the CRC
            /// accumulator `fold`; `false`, having done nothing, where the
            /// counter's low 64 bits wrap inside the buffer.
            pub(crate) fn ctr_crc(
                _: $CT,
                keys: &RoundKeys,
                counter: &[u8; 16],
                mut io: InOut<'_>,
                fold: &mut [u8; 16],
            ) -> bool {
                let blocks = io.blocks();
                if modes::ctr_wraps(counter, blocks) {
                    return false;
                }
                let io = io.ptrs();
                // SAFETY: as in `cbc_decrypt_crc`; no wrap, as `with_output_crc`
                // needs.
                unsafe {
                    by_rounds!(
                        keys,
                        with_output_crc::<NR, true>(&keys.enc, counter, io, blocks, fold)
                    )
                }
                true
            }

            pub(crate) fn cbc_encrypt_multi(_: $T, keys: &RoundKeys, jobs: &mut [Job<'_>]) {
                in_lanes::<false>(
                    jobs,
                    // SAFETY: the token proves the CPU features.
                    |lanes| unsafe {
                        by_rounds!(keys, lanes_of::<NR, { $R3 }, { 0 $(+ $RH3)? }, { $N3 }>(&keys.enc, lanes))
                    },
                    // SAFETY: as above.
                    |lanes| unsafe {
                        by_rounds!(keys, lanes_of::<NR, { $R }, { 0 $(+ $RH)? }, { $N }>(&keys.enc, lanes))
                    },
                    // SAFETY: as above.
                    |lanes| unsafe {
                        by_rounds!(keys, run_lanes::<NR, $B, { $R2 }, { $N2 }>(&keys.enc, lanes))
                    },
                );
            }

            /// [`Self::cbc_encrypt_multi`] with the CRC of every job that
            /// asks for one folded in the lanes and finished (see
            /// `kernel::crc`). Before the CBC tail rule overwrites tails.
            pub(crate) fn cbc_encrypt_multi_crc(_: $CT, keys: &RoundKeys, jobs: &mut [Job<'_>]) {
                in_lanes::<true>(
                    jobs,
                    // SAFETY: the token proves the CPU features with
                    // carry-less multiply.
                    |lanes| unsafe {
                        by_rounds!(keys, crc_lanes_of::<NR, { $R3 }, { 0 $(+ $RH3)? }, { $N3 }>(&keys.enc, lanes))
                    },
                    // SAFETY: as above.
                    |lanes| unsafe {
                        by_rounds!(keys, crc_lanes_of::<NR, { $R }, { 0 $(+ $RH)? }, { $N }>(&keys.enc, lanes))
                    },
                    // SAFETY: as above.
                    |lanes| unsafe {
                        by_rounds!(keys, run_lanes_crc::<NR, $B, { $R2 }, { $N2 }>(&keys.enc, lanes))
                    },
                );
                $crate::kernel::crc::finish_jobs(jobs);
            }
        }

        /// Runs `jobs` through `few` lanes (a batch of at most `$max`
        /// jobs), `wide` ones (from a batch of `$min` jobs on) or else
        /// `narrow` ones.
        fn in_lanes<const CRC: bool>(
            jobs: &mut [Job<'_>],
            few: impl FnOnce(&mut Lanes<'_, '_, '_, { $N3 }, CRC>),
            narrow: impl FnOnce(&mut Lanes<'_, '_, '_, { $N }, CRC>),
            wide: impl FnOnce(&mut Lanes<'_, '_, '_, { $N2 }, CRC>),
        ) {
            let mut scratch = Scratch::new();
            // One lane to a group unless the backend names a group.
            let group = 1 $(+ $group - 1)?;
            let stagger = $crate::kernel::lanes::Stagger::vector($steps, group);
            if jobs.len() >= $min {
                wide(&mut Lanes::new(jobs, stagger, &mut scratch));
            } else if jobs.len() <= $max {
                few(&mut Lanes::new(jobs, stagger, &mut scratch));
            } else {
                narrow(&mut Lanes::new(jobs, stagger, &mut scratch));
            }
        }

        /// `N` lanes on `R` of the backend's registers, or on `RH` of the
        /// narrower ones where `narrow_on` says (without it `RH` is 0 and
        /// unused).
        ///
        /// # Safety
        /// As `run_lanes`.
        #[inline(always)]
        unsafe fn lanes_of<const NR: usize, const R: usize, const RH: usize, const N: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            lanes: &mut Lanes<'_, '_, '_, N, false>,
        ) {
            $(if $on_h {
                // SAFETY: the caller's contract.
                return unsafe { run_lanes::<NR, $H, RH, N>(keys, lanes) };
            })?
            // SAFETY: the caller's contract.
            unsafe { run_lanes::<NR, $B, R, N>(keys, lanes) }
        }

        /// [`lanes_of`] with the CRC folds.
        ///
        /// # Safety
        /// As `run_lanes_crc`.
        #[inline(always)]
        unsafe fn crc_lanes_of<const NR: usize, const R: usize, const RH: usize, const N: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            lanes: &mut Lanes<'_, '_, '_, N, true>,
        ) {
            $(if $on_h {
                // SAFETY: the caller's contract.
                return unsafe { run_lanes_crc::<NR, $H, RH, N>(keys, lanes) };
            })?
            // SAFETY: the caller's contract.
            unsafe { run_lanes_crc::<NR, $B, R, N>(keys, lanes) }
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
            io: (*const u8, *mut u8),
            blocks: usize,
        ) {
            let out = modes::NoOutput;
            // SAFETY: the caller's contract.
            unsafe { modes::cbc_decrypt::<$B, NR, { $W }, _>(keys, iv, io, blocks, out) };
        }

        #[target_feature(enable = $f)]
        unsafe fn ctr<const NR: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            counter: &[u8; 16],
            io: (*const u8, *mut u8),
            blocks: usize,
        ) {
            let out = modes::NoOutput;
            // SAFETY: the caller's contract.
            unsafe { modes::ctr::<$B, NR, { $W }, _>(keys, counter, io, blocks, out) };
        }

        /// CBC decryption (with the decryption keys) or, with `CTR`, CTR
        /// (`iv` the counter block), the output's CRC folded into `fold`.
        #[target_feature(enable = $cf)]
        unsafe fn with_output_crc<const NR: usize, const CTR: bool>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            iv: &[u8; 16],
            io: (*const u8, *mut u8),
            blocks: usize,
            fold: &mut [u8; 16],
        ) {
            // An even `W`: every group but the last starts at an even
            // register, as `OutputCrc` needs.
            const { assert!($W % 2 == 0) };
            // SAFETY: the caller's contract (features with carry-less
            // multiply, so the `OutputCrc` may run; for CTR, a counter
            // that does not wrap, so `ctr` runs `groups` once).
            unsafe {
                let out = modes::OutputCrc::<$B>::new(fold);
                let out = if CTR {
                    modes::ctr::<$B, NR, { $W }, _>(keys, iv, io, blocks, out)
                } else {
                    modes::cbc_decrypt::<$B, NR, { $W }, _>(keys, iv, io, blocks, out)
                };
                *fold = out.fold();
            }
        }

        /// The lanes on `S`'s registers: the backend's own, or the narrower
        /// ones its features include (`narrow_on`).
        #[target_feature(enable = $f)]
        unsafe fn run_lanes<const NR: usize, S: Simd, const R: usize, const N: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            lanes: &mut Lanes<'_, '_, '_, N, false>,
        ) {
            // SAFETY: the caller's contract; `$f` includes `S`'s features.
            unsafe { modes::cbc_encrypt_lanes::<S, NR, R, N, false>(keys, lanes, |a, _| a) }
        }

        /// [`run_lanes`] with the CRC folds, in the features with
        /// carry-less multiply.
        #[target_feature(enable = $cf)]
        unsafe fn run_lanes_crc<const NR: usize, S: Simd + Clmul, const R: usize, const N: usize>(
            keys: &[[u8; 16]; MAX_ROUND_KEYS],
            lanes: &mut Lanes<'_, '_, '_, N, true>,
        ) {
            // SAFETY: the caller's contract (features with carry-less
            // multiply, so `Clmul::fold` may run); `$cf` includes `S`'s
            // features.
            unsafe {
                let k = <S as Simd>::splat(&$crate::kernel::crc::FOLD_128_BLOCK);
                modes::cbc_encrypt_lanes::<S, NR, R, N, true>(keys, lanes, |a, b| {
                    <S as Clmul>::fold(a, k, b)
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
