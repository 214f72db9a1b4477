//! What the x86-64 backends share: CPU feature detection, the capability
//! tokens that prove it ran, and the AES-NI key expansion.
//!
//! Carry-less multiplication (PCLMULQDQ, and VPCLMULQDQ on 256- and
//! 512-bit registers) is detected too: a backend's multi-buffer CBC folds
//! the CRC of its plaintext into its lanes only with its `*ClmulToken`.
//! Every VAES CPU shipped so far has VPCLMULQDQ, but the CPUID bits are
//! separate, so they are checked.
//!
//! `cpufeatures` 0.3 treats VAES as needing AVX-512 register state, so CPUs
//! with VAES but no AVX-512 (Zen 3, Alder Lake) would never get the 256-bit
//! backend. We read CPUID and XCR0 ourselves instead.

#[cfg(not(miri))]
use core::arch::x86_64::{__cpuid, __cpuid_count, _mm_aeskeygenassist_si128, _xgetbv};
use core::arch::x86_64::{
    __m128i, _mm_aesimc_si128, _mm_cvtsi32_si128, _mm_cvtsi128_si32, _mm_loadu_si128,
    _mm_shuffle_epi32, _mm_storeu_si128,
};

#[cfg(miri)]
use super::x86_miri::_mm_aeskeygenassist_si128;
use crate::kernel::key_schedule::RoundKeys;
use crate::kernel::select;

const AES: u32 = 1 << 0;
const YMM: u32 = 1 << 1; // AVX + AVX2 + OS saves YMM state
const VAES: u32 = 1 << 2;
const ZMM: u32 = 1 << 3; // AVX-512 F/BW/VL + OS saves opmask and ZMM state
const CLMUL: u32 = 1 << 4; // PCLMULQDQ
const VPCLMUL: u32 = 1 << 5; // VPCLMULQDQ (VEX/EVEX forms on YMM/ZMM)
/// Two 512-bit AES pipes (AMD family 1Ah, Zen 5), or the override below:
/// not a CPUID feature but a property of the core the lane count follows.
const ZMM_AES_X2: u32 = 1 << 6;
/// 512-bit instructions split into two 256-bit halves (AMD family 19h, Zen
/// 4), or the override below: a property of the core, as above.
const ZMM_SPLIT: u32 = 1 << 7;

/// Overrides the VAES-512 lanes that the core decides (`16` or `32` on
/// 512-bit registers, `ymm` for 16 on 256-bit ones; small batches' 8 lanes
/// follow `ymm` too), so that each path can be tested and measured on any
/// machine.
pub(crate) const VAES512_LANES_ENV: &str = "ARIA_CRYPT_VAES512_LANES";

/// The CPU's features as CPUID and XCR0 report them. Made only by
/// [`Features::read`], which `select::detection` runs once and caches; the
/// tokens below are minted from it and nowhere else.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Features(u32);

impl Features {
    /// Runs detection. Only `select::detection` calls it.
    pub(crate) fn read() -> Features {
        let found = read_cpuid();
        let lanes = std::env::var(VAES512_LANES_ENV);
        Features(match lanes.as_deref() {
            Ok("32") => found & !ZMM_SPLIT | ZMM_AES_X2,
            Ok("16") => found & !(ZMM_AES_X2 | ZMM_SPLIT),
            Ok("ymm") => found & !ZMM_AES_X2 | ZMM_SPLIT,
            _ => found,
        })
    }

    fn has(self, required: u32) -> bool {
        self.0 & required == required
    }

    pub(crate) fn aesni(self) -> Option<AesNiToken> {
        self.has(AES).then_some(AesNiToken(()))
    }

    pub(crate) fn vaes256(self) -> Option<Vaes256Token> {
        self.has(AES | YMM | VAES).then_some(Vaes256Token(()))
    }

    pub(crate) fn vaes512(self) -> Option<Vaes512Token> {
        self.has(AES | YMM | VAES | ZMM).then_some(Vaes512Token(()))
    }

    fn aesni_clmul(self) -> Option<AesNiClmulToken> {
        self.has(AES | CLMUL).then_some(AesNiClmulToken(()))
    }

    fn vaes256_clmul(self) -> Option<Vaes256ClmulToken> {
        self.has(AES | YMM | VAES | CLMUL | VPCLMUL)
            .then_some(Vaes256ClmulToken(()))
    }

    fn vaes512_clmul(self) -> Option<Vaes512ClmulToken> {
        self.has(AES | YMM | VAES | ZMM | CLMUL | VPCLMUL)
            .then_some(Vaes512ClmulToken(()))
    }
}

/// The cached features.
fn features() -> Features {
    select::detection().x86
}

/// The batch size from which VAES-512 CBC encryption runs 32 lanes instead
/// of 16: 32 where the core has two 512-bit AES pipes (their rounds need
/// twice the chains in flight), never elsewhere (a core with one pipe is
/// covered by 16, and more lanes only cost moving blocks; measured on an
/// Intel core, 16 lanes are 1.07-1.15 times as fast as 32 for batches of
/// 32 and 64 pages).
pub(crate) fn vaes512_wide_lanes_from() -> usize {
    if features().has(ZMM_AES_X2) {
        32
    } else {
        usize::MAX
    }
}

/// Whether VAES-512's 16 lanes of CBC encryption (and the 8 of small
/// batches) run on 256-bit registers (eight of them, or four; VAES-256's
/// primitives with AVX-512's 32 registers):
/// where the core splits 512-bit instructions, inserting a block into a
/// 512-bit lane or extracting it costs two shuffles, which take cycles from
/// the AES rounds (on Zen 4, the 16 blocks moved in and out per step cost
/// more than the 40 `vaesenc` themselves; 256-bit lanes run a batch of 64
/// pages 1.3 times as fast). With the CRC folded too: twice the carry-less
/// multiplies at half the width, and 256-bit lanes still 1.04-1.06 times as
/// fast (best of many alternating runs; criterion's medians on this shared
/// core could not tell them apart).
pub(crate) fn vaes512_on_ymm() -> bool {
    features().has(ZMM_SPLIT)
}

// `__cpuid` became a safe function in newer Rust; the MSRV still needs the
// `unsafe` blocks.
#[cfg(not(miri))]
#[allow(unused_unsafe)]
fn read_cpuid() -> u32 {
    let bit = |reg: u32, n: u32| reg & (1 << n) != 0;
    // SAFETY: CPUID exists on every x86-64 processor.
    let leaf0 = unsafe { __cpuid(0) };
    // SAFETY: as above.
    let leaf1 = unsafe { __cpuid(1) };
    let mut found = 0;
    // "AuthenticAMD", family 1Ah and later (base 0Fh plus extended).
    let amd = (leaf0.ebx, leaf0.edx, leaf0.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
    let family = ((leaf1.eax >> 8) & 0xf) + ((leaf1.eax >> 20) & 0xff);
    if amd && family >= 0x1a {
        found |= ZMM_AES_X2;
    } else if amd && family == 0x19 {
        // Zen 3 has no AVX-512; only Zen 4 makes this bit matter.
        found |= ZMM_SPLIT;
    }
    // SSSE3 (pshufb) and SSE4.1 come with every AES-NI CPU, but check anyway.
    if bit(leaf1.ecx, 25) && bit(leaf1.ecx, 9) && bit(leaf1.ecx, 19) {
        found |= AES;
    }
    if bit(leaf1.ecx, 1) {
        found |= CLMUL;
    }
    let osxsave = bit(leaf1.ecx, 27);
    let avx = bit(leaf1.ecx, 28);
    if !(osxsave && avx) || leaf0.eax < 7 {
        return found;
    }
    // SAFETY: CPUID.1:ECX.OSXSAVE (bit 27) is set, so XGETBV is enabled.
    let xcr0 = unsafe { _xgetbv(0) };
    // SAFETY: leaf 7 exists (the maximum leaf checked above).
    let leaf7 = unsafe { __cpuid_count(7, 0) };
    let ymm_state = xcr0 & 0b110 == 0b110;
    let zmm_state = xcr0 & 0b1110_0110 == 0b1110_0110;
    if ymm_state && bit(leaf7.ebx, 5) {
        found |= YMM;
    }
    if bit(leaf7.ecx, 9) {
        found |= VAES;
    }
    if bit(leaf7.ecx, 10) {
        found |= VPCLMUL;
    }
    // AVX-512 F (16), BW (30), VL (31).
    if zmm_state && bit(leaf7.ebx, 16) && bit(leaf7.ebx, 30) && bit(leaf7.ebx, 31) {
        found |= ZMM;
    }
    found
}

/// Miri has no CPUID or XGETBV: the features the build enables
/// (`RUSTFLAGS='-C target-feature=...'`, see `scripts/miri.sh`) stand in.
#[cfg(miri)]
fn read_cpuid() -> u32 {
    let mut found = 0;
    if cfg!(all(
        target_feature = "aes",
        target_feature = "ssse3",
        target_feature = "sse4.1"
    )) {
        found |= AES;
    }
    if cfg!(target_feature = "pclmulqdq") {
        found |= CLMUL;
    }
    if cfg!(all(target_feature = "avx", target_feature = "avx2")) {
        found |= YMM;
    }
    if cfg!(target_feature = "vaes") {
        found |= VAES;
    }
    if cfg!(target_feature = "vpclmulqdq") {
        found |= VPCLMUL;
    }
    if cfg!(all(
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vl"
    )) {
        found |= ZMM;
    }
    found
}

/// Proof that AES-NI (with SSSE3 and SSE4.1) is available.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AesNiToken(());

/// Proof that VAES on 256-bit registers (with AVX2) is available.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vaes256Token(());

/// Proof that VAES on 512-bit registers (with AVX-512 F/BW/VL) is available.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vaes512Token(());

/// Proof of everything [`AesNiToken`] proves, and of PCLMULQDQ.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AesNiClmulToken(());

/// Proof of everything [`Vaes256Token`] proves, and of PCLMULQDQ and
/// VPCLMULQDQ.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vaes256ClmulToken(());

/// Proof of everything [`Vaes512Token`] proves, and of PCLMULQDQ and
/// VPCLMULQDQ.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vaes512ClmulToken(());

// The tokens' fields are private to this module: a token is minted by
// `Features` (detection) or derived here from a token that proves more.

impl AesNiToken {
    pub(crate) fn detect() -> Option<Self> {
        features().aesni()
    }

    /// The token for the fused CRC, if the CPU also has PCLMULQDQ.
    pub(crate) fn clmul(self) -> Option<AesNiClmulToken> {
        features().aesni_clmul()
    }
}

impl Vaes256Token {
    pub(crate) fn detect() -> Option<Self> {
        features().vaes256()
    }

    /// Every VAES CPU has AES-NI (checked with it).
    pub(crate) fn aesni(self) -> AesNiToken {
        AesNiToken(())
    }

    /// The token for the fused CRC, if the CPU also has (V)PCLMULQDQ.
    pub(crate) fn clmul(self) -> Option<Vaes256ClmulToken> {
        features().vaes256_clmul()
    }
}

impl Vaes512Token {
    pub(crate) fn detect() -> Option<Self> {
        features().vaes512()
    }

    /// Every VAES CPU has AES-NI (checked with it).
    pub(crate) fn aesni(self) -> AesNiToken {
        AesNiToken(())
    }

    /// The token for the fused CRC, if the CPU also has (V)PCLMULQDQ.
    pub(crate) fn clmul(self) -> Option<Vaes512ClmulToken> {
        features().vaes512_clmul()
    }
}

/// Expands a 16-, 24- or 32-byte key with `AESKEYGENASSIST` (constant time).
/// Returns `None` for any other length.
pub(crate) fn expand_key(_: AesNiToken, key: &[u8]) -> Option<RoundKeys> {
    // SAFETY: the token proves AES-NI, SSSE3 and SSE4.1 are available.
    unsafe { expand_key_aesni(key) }
}

#[target_feature(enable = "aes,ssse3,sse4.1")]
fn expand_key_aesni(key: &[u8]) -> Option<RoundKeys> {
    RoundKeys::expand(key, |w| sub_word(w), |b| inv_mix_columns(b))
}

/// `SubWord` of FIPS-197 through `AESKEYGENASSIST`, whose dword 0 is
/// `SubWord(X1)` for the dword X1 of its input.
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn sub_word(word: u32) -> u32 {
    let x = _mm_shuffle_epi32::<0b00_00_00_00>(_mm_cvtsi32_si128(word as i32));
    _mm_cvtsi128_si32(_mm_aeskeygenassist_si128::<0>(x)) as u32
}

#[target_feature(enable = "aes,ssse3,sse4.1")]
fn inv_mix_columns(block: &mut [u8; 16]) {
    // SAFETY: `block` is 16 readable and writable bytes; unaligned access is allowed.
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        _mm_storeu_si128(block.as_mut_ptr().cast::<__m128i>(), _mm_aesimc_si128(x));
    }
}

/// Holds the rounds of up to 8 registers in step: an empty `asm!` that
/// takes them all, in registers of `$class`, after each round, so every
/// register finishes round `r` before any starts round `r + 1` in the
/// instruction order. Without it, where the state, the round keys (and for
/// CBC decryption the ciphertext) outnumber the 16 vector registers,
/// LLVM's scheduler saves registers by running each register's rounds
/// one after the other: eight chains of ten dependent instructions, which
/// the core's out-of-order window cannot all see at once. In step, the
/// round keys are reloaded from memory instead, as operands of the AES
/// instructions (on Zen 3 1.1-1.4× as fast; CHANGELOG has the figures).
/// Miri runs no `asm!`; nothing is held there. VAES-512 (32 registers)
/// does not use it: LLVM already emits its rounds round by round.
macro_rules! in_step {
    ($class:ident, $x:expr) => {{
        let x = $x;
        $crate::kernel::backends::x86::at_most_eight(x);
        #[cfg(miri)]
        let _ = x;
        // SAFETY: the template is empty: no instruction, no memory, no
        // flags; the registers come back as they went in.
        #[cfg(not(miri))]
        unsafe {
            use $crate::kernel::backends::x86::hold;
            match x.as_mut_slice() {
                [a, b] => hold!($class: a b),
                [a, b, c] => hold!($class: a b c),
                [a, b, c, d] => hold!($class: a b c d),
                [a, b, c, d, e] => hold!($class: a b c d e),
                [a, b, c, d, e, f] => hold!($class: a b c d e f),
                [a, b, c, d, e, f, g] => hold!($class: a b c d e f g),
                [a, b, c, d, e, f, g, h] => hold!($class: a b c d e f g h),
                // One register has nothing to keep in step with.
                _ => {}
            }
        }
    }};
}
pub(crate) use in_step;

/// [`in_step`] takes at most eight registers (groups and lanes have no
/// more): checked when it is compiled.
#[inline(always)]
pub(crate) fn at_most_eight<T, const N: usize>(_: &[T; N]) {
    const { assert!(N <= 8, "in_step! holds up to 8 registers") };
}

/// The empty `asm!` of [`in_step`]: the template names every operand (in a
/// `/* */` comment) and emits nothing.
#[cfg(not(miri))]
macro_rules! hold {
    ($class:ident: $($r:ident)+) => {
        core::arch::asm!(
            concat!("/*", $(" {", stringify!($r), "}",)+ " */"),
            $($r = inout($class) *$r,)+
            options(pure, nomem, nostack, preserves_flags)
        )
    };
}
#[cfg(not(miri))]
pub(crate) use hold;

#[cfg(test)]
mod tests {
    use super::*;

    /// The lanes follow the override, so that `.ci/run` can test each path
    /// on a core that would not pick it.
    #[test]
    fn vaes512_lanes_follow_the_override() {
        let (from, on_ymm) = (vaes512_wide_lanes_from(), vaes512_on_ymm());
        match std::env::var(VAES512_LANES_ENV).as_deref() {
            Ok("32") => assert_eq!((from, on_ymm), (32, false)),
            Ok("16") => assert_eq!((from, on_ymm), (usize::MAX, false)),
            Ok("ymm") => assert_eq!((from, on_ymm), (usize::MAX, true)),
            // A core never has both properties.
            _ => assert!(from == usize::MAX || !on_ymm, "{from} {on_ymm}"),
        }
    }
}
