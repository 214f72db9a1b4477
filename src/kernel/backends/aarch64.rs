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
//!
//! Where the CPU has the SHA-3 extension's three-way XOR (`EOR3`, FEAT_SHA3:
//! Neoverse V1 and later, Apple M1 and later, not Neoverse N1), the entries
//! are compiled with it ([`Armv8Eor3`]), and CBC decryption and CTR merge
//! the last round key and the other operand into one `EOR3`: on the cores
//! with four vector pipes the XORs otherwise take a share of the AES
//! instructions' issue slots.

use core::arch::aarch64::*;

use super::modes::{self, Clmul, Simd, by_rounds, entries};
use crate::kernel::Job;
use crate::kernel::inout::InOut;
use crate::kernel::key_schedule::{MAX_ROUND_KEYS, RoundKeys};
use crate::kernel::lanes::{Lanes, Scratch};

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
    pmull: bool,
    sha3: bool,
}

impl Features {
    /// Runs detection. Only `select::detection` calls it.
    pub(crate) fn read() -> Features {
        let aes = cpuid_aes::get();
        Features {
            aes,
            pmull: aes && std::arch::is_aarch64_feature_detected!("pmull"),
            sha3: aes && std::arch::is_aarch64_feature_detected!("sha3"),
        }
    }

    pub(crate) fn armv8(self) -> Option<Armv8Token> {
        self.aes.then_some(Armv8Token(()))
    }

    fn armv8_clmul(self) -> Option<Armv8ClmulToken> {
        self.pmull.then_some(Armv8ClmulToken(()))
    }

    fn armv8_eor3(self) -> Option<Armv8Eor3Token> {
        self.sha3.then_some(Armv8Eor3Token(()))
    }

    fn armv8_eor3_clmul(self) -> Option<Armv8Eor3ClmulToken> {
        (self.sha3 && self.pmull).then_some(Armv8Eor3ClmulToken(()))
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

    /// The token for the fused CRC, if the CPU also has PMULL.
    pub(crate) fn clmul(self) -> Option<Armv8ClmulToken> {
        crate::kernel::select::detection().aarch64.armv8_clmul()
    }

    /// The token for the primitives with `EOR3`, if the CPU also has the
    /// SHA-3 extension.
    pub(crate) fn eor3(self) -> Option<Armv8Eor3Token> {
        crate::kernel::select::detection().aarch64.armv8_eor3()
    }
}

/// Proof of everything [`Armv8Token`] proves, and of PMULL (`PMULL`,
/// `PMULL2` on 64-bit lanes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Armv8ClmulToken(());

/// Proof of everything [`Armv8Token`] proves, and of the SHA-3 extension
/// (`EOR3`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Armv8Eor3Token(());

impl Armv8Eor3Token {
    /// The token for the fused CRC, if the CPU also has PMULL.
    pub(crate) fn clmul(self) -> Option<Armv8Eor3ClmulToken> {
        crate::kernel::select::detection()
            .aarch64
            .armv8_eor3_clmul()
    }
}

/// Proof of everything [`Armv8Eor3Token`] and [`Armv8ClmulToken`] prove.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Armv8Eor3ClmulToken(());

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

/// The ARMv8 primitives. `EOR3` tells apart the two sets of entries made
/// from them ([`Armv8`], [`Armv8Eor3`]); the primitives are the same.
pub(crate) struct Armv8Simd<const EOR3: bool>;

/// The ARMv8 backend as every CPU with the AES extension runs it.
pub(crate) type Armv8 = Armv8Simd<false>;

/// The ARMv8 backend on CPUs that also have the SHA-3 extension: the same
/// primitives, its entries compiled with the extension's features (module
/// `eor3`).
pub(crate) type Armv8Eor3 = Armv8Simd<true>;

// The AES and PMULL intrinsics are `#[inline(always)]` with the `aes`
// feature, which these primitives lack; they inline into the
// `#[target_feature(enable = "aes,neon")]` entries, and the intrinsics with
// them there (checked in the disassembly: no calls in the entries).
#[allow(unknown_lints, inline_always_mismatching_target_features)]
impl<const EOR3: bool> Simd for Armv8Simd<EOR3> {
    type Reg = uint8x16_t;
    const BLOCKS: usize = 1;
    type Narrow = Self;
    /// With `EOR3`: llvm-mca's `neoverse-v1` model puts CTR at 91% of the
    /// AES limit with the stores last and at 85% without, while without
    /// `EOR3` they cost (`neoverse-n1` 98% instead of 100%, `neoverse-v1`
    /// 81% instead of 82%).
    const CTR_STORES_LAST: bool = EOR3;

    /// llvm-mca's `neoverse-v1` model put the multi-buffer loop with CRC
    /// folds at 83% of its bound in the `EOR3` entries (LLVM merged each
    /// fold's XORs into an `EOR3` that kept the eight plaintext blocks live
    /// through the rounds: 19 vector moves and 28 stack accesses per eight
    /// blocks) and 89% in the others; 91% in both with the multiplies ahead
    /// (2 moves, 6 stack accesses), near the 92% that CBC's own XOR and
    /// store leave there (see the README). `neoverse-n1` 99% → 102%,
    /// `apple-a14` 98% → 100%.
    const CRC_MULTIPLY_AHEAD: bool = true;

    #[inline(always)]
    unsafe fn opaque(mut x: uint8x16_t) -> uint8x16_t {
        // SAFETY: an empty template: `x` stays in its register unchanged,
        // and nothing is read or written.
        unsafe { core::arch::asm!("/* {0:v} */", inout(vreg) x, options(pure, nomem, nostack)) };
        x
    }

    #[inline(always)]
    unsafe fn zero() -> uint8x16_t {
        // SAFETY: NEON is part of AArch64.
        unsafe { vdupq_n_u8(0) }
    }

    #[inline(always)]
    unsafe fn load(ptr: *const u8) -> uint8x16_t {
        // SAFETY: the caller's contract (16 readable bytes); `LD1` of bytes
        // needs no alignment.
        unsafe { vld1q_u8(ptr) }
    }

    #[inline(always)]
    unsafe fn store(ptr: *mut u8, x: uint8x16_t) {
        // SAFETY: the caller's contract (16 writable bytes).
        unsafe { vst1q_u8(ptr, x) }
    }

    #[inline(always)]
    unsafe fn splat(block: &[u8; 16]) -> uint8x16_t {
        // SAFETY: `block` is 16 readable bytes.
        unsafe { Self::load(block.as_ptr()) }
    }

    #[inline(always)]
    unsafe fn xor(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
        // SAFETY: NEON is part of AArch64.
        unsafe { veorq_u8(a, b) }
    }

    // The x86 round shapes (`AESE` XORs its key first, so a zero key and
    // an XOR after): for completeness; the bulk methods below do not use
    // them.
    #[inline(always)]
    unsafe fn enc_round(x: uint8x16_t, k: uint8x16_t) -> uint8x16_t {
        // SAFETY: the caller is in the AES extension's target features.
        unsafe { veorq_u8(vaesmcq_u8(vaeseq_u8(x, vdupq_n_u8(0))), k) }
    }

    #[inline(always)]
    unsafe fn enc_last(x: uint8x16_t, k: uint8x16_t) -> uint8x16_t {
        // SAFETY: as above.
        unsafe { veorq_u8(vaeseq_u8(x, vdupq_n_u8(0)), k) }
    }

    #[inline(always)]
    unsafe fn dec_round(x: uint8x16_t, k: uint8x16_t) -> uint8x16_t {
        // SAFETY: as above.
        unsafe { veorq_u8(vaesimcq_u8(vaesdq_u8(x, vdupq_n_u8(0))), k) }
    }

    #[inline(always)]
    unsafe fn dec_last(x: uint8x16_t, k: uint8x16_t) -> uint8x16_t {
        // SAFETY: as above.
        unsafe { veorq_u8(vaesdq_u8(x, vdupq_n_u8(0)), k) }
    }

    #[inline(always)]
    unsafe fn encrypt<const NR: usize, const N: usize>(
        k: &[uint8x16_t; MAX_ROUND_KEYS],
        x: &mut [uint8x16_t; N],
    ) {
        // SAFETY: the caller is in the AES extension's target features.
        unsafe { rounds::<NR, N, false>(k, x) }
    }

    /// `AESE` XORs round key 0 itself: XOR `y` in, then encrypt.
    #[inline(always)]
    unsafe fn encrypt_xor<const NR: usize, const N: usize>(
        k: &[uint8x16_t; MAX_ROUND_KEYS],
        x: &mut [uint8x16_t; N],
        y: &[uint8x16_t; N],
    ) {
        // SAFETY: as above.
        unsafe {
            for (x, y) in x.iter_mut().zip(y) {
                *x = veorq_u8(*x, *y);
            }
            Self::encrypt::<NR, N>(k, x);
        }
    }

    #[inline(always)]
    unsafe fn decrypt<const NR: usize, const N: usize>(
        k: &[uint8x16_t; MAX_ROUND_KEYS],
        x: &mut [uint8x16_t; N],
    ) {
        // SAFETY: as above.
        unsafe { rounds::<NR, N, true>(k, x) }
    }

    #[inline(always)]
    unsafe fn shift_in(prev: uint8x16_t, _: uint8x16_t) -> uint8x16_t {
        prev
    }

    #[inline(always)]
    unsafe fn last(x: uint8x16_t) -> uint8x16_t {
        x
    }

    #[inline(always)]
    unsafe fn counters(counter: u128) -> uint8x16_t {
        // SAFETY: NEON is part of AArch64.
        unsafe {
            let low = vcreate_u64(counter as u64);
            let high = vcreate_u64((counter >> 64) as u64);
            vreinterpretq_u8_u64(vcombine_u64(low, high))
        }
    }

    #[inline(always)]
    unsafe fn add_counter(x: uint8x16_t, n: u64) -> uint8x16_t {
        // SAFETY: NEON is part of AArch64.
        unsafe {
            let n = vcombine_u64(vcreate_u64(n), vcreate_u64(0));
            vreinterpretq_u8_u64(vaddq_u64(vreinterpretq_u64_u8(x), n))
        }
    }

    #[inline(always)]
    unsafe fn counter_blocks(x: uint8x16_t) -> uint8x16_t {
        // Each half byte-reversed, then the halves swapped: the 128-bit
        // big-endian block.
        // SAFETY: NEON is part of AArch64.
        unsafe {
            let x = vrev64q_u8(x);
            vextq_u8::<8>(x, x)
        }
    }

    /// From the integer, not the counter form: the byte swaps and the add
    /// run in general registers and two moves bring the halves into the
    /// vector, leaving the vector pipes to the AES rounds. The counter-form
    /// add, swap and rotate (three vector instructions a block) modelled at
    /// 55% of the AES limit on `neoverse-v1`, this at 84% (the README's
    /// aarch64 table; a variant that inserts only the low half into a copy
    /// of a constant high half modelled at 81%).
    #[inline(always)]
    unsafe fn group_counters(_: uint8x16_t, first: u128, g: usize) -> uint8x16_t {
        let counter = first.wrapping_add(g as u128);
        // SAFETY: NEON is part of AArch64.
        unsafe {
            let high = vcreate_u64(((counter >> 64) as u64).to_be());
            let low = vcreate_u64((counter as u64).to_be());
            vreinterpretq_u8_u64(vcombine_u64(high, low))
        }
    }

    #[inline(always)]
    unsafe fn gather(ptr: impl Fn(usize) -> *const u8) -> uint8x16_t {
        // SAFETY: the caller's contract.
        unsafe { Self::load(ptr(0)) }
    }

    #[inline(always)]
    unsafe fn scatter(ptr: impl Fn(usize) -> *mut u8, x: uint8x16_t) {
        // SAFETY: the caller's contract.
        unsafe { Self::store(ptr(0), x) }
    }

    /// Round key 0 is folded into the previous block's last round key and
    /// the next plaintext into the first `AESE`, so the chain is the AES
    /// instructions only.
    #[inline(always)]
    unsafe fn cbc_encrypt_chain<const NR: usize>(
        k: &[uint8x16_t; MAX_ROUND_KEYS],
        iv: &[u8; 16],
        src: *const u8,
        dst: *mut u8,
        blocks: usize,
    ) {
        // SAFETY: the caller's contract: blocks `0..blocks` of `src` and
        // `dst`; block i is read before it is written.
        unsafe {
            let k_first_last = veorq_u8(k[0], k[NR]);
            // `y ^ k[NR]` is the previous ciphertext (the IV at first).
            let mut y = veorq_u8(Self::splat(iv), k[NR]);
            for i in 0..blocks {
                let first = veorq_u8(Self::load(src.add(i * 16)), k_first_last);
                let mut x = round::<false>(y, first);
                for key in &k[1..NR - 1] {
                    x = round::<false>(x, *key);
                }
                y = vaeseq_u8(x, k[NR - 1]);
                Self::store(dst.add(i * 16), veorq_u8(y, k[NR]));
            }
        }
    }
}

/// All rounds over `N` registers: a round is `AESMC(AESE(x, k))` (or
/// `AESIMC(AESD(x, k))`), kept as an adjacent pair so cores that fuse the
/// two do; the last is `AESE(x, k[NR - 1]) ^ k[NR]`.
///
/// # Safety
/// In the AES extension's target features.
#[allow(unknown_lints, inline_always_mismatching_target_features)]
#[inline(always)]
unsafe fn rounds<const NR: usize, const N: usize, const DECRYPT: bool>(
    k: &[uint8x16_t; MAX_ROUND_KEYS],
    x: &mut [uint8x16_t; N],
) {
    // SAFETY: the caller's contract.
    unsafe {
        if NR == 10 {
            // LLVM unrolls this loop itself, and what it schedules then
            // models better than the same rounds unrolled by hand (CTR on
            // `neoverse-v1`: 91% against 85% of the limit).
            for key in &k[..NR - 1] {
                for b in x.iter_mut() {
                    *b = round::<DECRYPT>(*b, *key);
                }
            }
        } else {
            // By hand for AES-192 and AES-256, which LLVM kept as a loop (a
            // round key load, an add, a compare and a branch per round; the
            // mode's loads, XORs and stores outside it). A macro, not a
            // closure: LLVM left a closure out of line in CBC decryption.
            macro_rules! middle_rounds {
                ($($r:literal)*) => {$(
                    if $r < NR - 1 {
                        for b in x.iter_mut() {
                            *b = round::<DECRYPT>(*b, k[$r]);
                        }
                    }
                )*};
            }
            middle_rounds!(0 1 2 3 4 5 6 7 8 9 10 11 12);
        }
        for b in x.iter_mut() {
            let last = if DECRYPT {
                vaesdq_u8(*b, k[NR - 1])
            } else {
                vaeseq_u8(*b, k[NR - 1])
            };
            *b = veorq_u8(last, k[NR]);
        }
    }
}

/// One middle round: `AESMC(AESE(x, key))`, or `AESIMC(AESD(x, key))`.
///
/// # Safety
/// In the AES extension's target features.
#[allow(unknown_lints, inline_always_mismatching_target_features)]
#[inline(always)]
unsafe fn round<const DECRYPT: bool>(x: uint8x16_t, key: uint8x16_t) -> uint8x16_t {
    // SAFETY: the caller's contract.
    unsafe {
        if DECRYPT {
            vaesimcq_u8(vaesdq_u8(x, key))
        } else {
            vaesmcq_u8(vaeseq_u8(x, key))
        }
    }
}

// The AES and PMULL intrinsics are `#[inline(always)]` with the `aes`
// feature, which these primitives lack; they inline into the
// `#[target_feature(enable = "aes,neon")]` entries, and the intrinsics with
// them there (checked in the disassembly: no calls in the entries).
#[allow(unknown_lints, inline_always_mismatching_target_features)]
impl<const EOR3: bool> Clmul for Armv8Simd<EOR3> {
    #[inline(always)]
    unsafe fn fold(acc: uint8x16_t, keys: uint8x16_t, block: uint8x16_t) -> uint8x16_t {
        // SAFETY: the caller is in the target features with PMULL.
        unsafe {
            let a = vreinterpretq_u64_u8(acc);
            let k = vreinterpretq_u64_u8(keys);
            let lo = vmull_p64(vgetq_lane_u64::<0>(a), vgetq_lane_u64::<0>(k));
            let hi = vmull_p64(vgetq_lane_u64::<1>(a), vgetq_lane_u64::<1>(k));
            let lo: uint8x16_t = core::mem::transmute(lo);
            let hi: uint8x16_t = core::mem::transmute(hi);
            veorq_u8(veorq_u8(lo, hi), block)
        }
    }
}

entries!(
    Armv8,
    token: Armv8Token,
    features: "aes,neon",
    wide: 8,
    lanes: 8, 8, stagger: 1,
    wide_lanes: 8, 8, from: usize::MAX,
    few_lanes: 8, 8, upto: 0,
    clmul: Armv8ClmulToken, "aes,neon"
);

/// The same primitives compiled with the SHA-3 extension's features, for
/// CPUs that have it: LLVM then merges the XORs of a block's last round key
/// and of the mode's other operand (the input in CTR, the previous
/// ciphertext in CBC decryption) into one `EOR3`. In a module of their own:
/// `entries!` also makes the `#[target_feature]` functions they call.
mod eor3 {
    use super::*;

    entries!(
        Armv8Eor3,
        token: Armv8Eor3Token,
        features: "aes,neon,sha3",
        wide: 8,
        lanes: 8, 8, stagger: 1,
        wide_lanes: 8, 8, from: usize::MAX,
        few_lanes: 8, 8, upto: 0,
        clmul: Armv8Eor3ClmulToken, "aes,neon,sha3"
    );
}
