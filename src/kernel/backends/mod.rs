//! The AES implementations, one module per instruction set, the modes
//! written once over their primitives ([`modes`]), and the single point that
//! dispatches to them.
//!
//! A SIMD backend implements [`modes::Simd`] (registers, loads and stores,
//! rounds) and, with carry-less multiply, [`modes::Clmul`]; `modes::entries!`
//! gives it the same operations over whole blocks (the tail rules live in
//! the caller): `encrypt_block`, `decrypt_block`, `ecb_encrypt`,
//! `ecb_decrypt`, `cbc_encrypt`, `cbc_decrypt`, `ctr`, `cbc_encrypt_multi`
//! and `cbc_encrypt_multi_crc`. Each takes a capability token that only
//! detection can mint, so calling one without checking the CPU does not
//! compile. The backend is chosen once per call; the loops inside are
//! monomorphised for the key size, with no dispatch per block. The
//! portable backend (`soft`) offers the same functions over RustCrypto
//! `aes` and shares the lane driver.

#[allow(
    unsafe_code,
    reason = "the modes over the backends' raw-pointer primitives"
)]
mod modes;
pub(crate) mod soft;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "CPUID, XGETBV and AES-NI intrinsics")]
pub(crate) mod x86;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "AES-NI and PCLMULQDQ intrinsics")]
mod x86_aesni;
#[cfg(all(target_arch = "x86_64", miri))]
mod x86_miri;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "VAES and VPCLMULQDQ intrinsics")]
mod x86_vaes256;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "VAES, VPCLMULQDQ and AVX-512 intrinsics")]
mod x86_vaes512;

#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code, reason = "ARMv8 Cryptography Extension intrinsics")]
pub(crate) mod aarch64;

// The AES-limit microbenchmark (`kernel::limit`): rounds on registers only.
#[cfg(all(target_arch = "aarch64", not(miri)))]
#[allow(unsafe_code, reason = "ARMv8 Crypto Extension intrinsics on registers")]
pub(crate) mod limit_aarch64;
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[allow(unsafe_code, reason = "AES-NI and VAES intrinsics on registers")]
pub(crate) mod limit_x86;

#[cfg(target_arch = "aarch64")]
use aarch64::{Armv8, Armv8Eor3};
#[cfg(target_arch = "x86_64")]
use x86_aesni::AesNi;
#[cfg(target_arch = "x86_64")]
use x86_vaes256::Vaes256;
#[cfg(target_arch = "x86_64")]
use x86_vaes512::Vaes512;

use super::key_schedule::RoundKeys;
use super::{Backend, InOut, Job};

/// A key schedule together with the backend that runs it.
pub(crate) enum Engine {
    Soft(soft::Ciphers),
    #[cfg(target_arch = "x86_64")]
    AesNi(RoundKeys, x86::AesNiToken),
    #[cfg(target_arch = "x86_64")]
    Vaes256(RoundKeys, x86::Vaes256Token),
    #[cfg(target_arch = "x86_64")]
    Vaes512(RoundKeys, x86::Vaes512Token),
    #[cfg(target_arch = "aarch64")]
    Armv8(RoundKeys, aarch64::Armv8Token),
    /// The ARMv8 backend on a CPU with `EOR3` (still [`Backend::Armv8`]).
    #[cfg(target_arch = "aarch64")]
    Armv8Eor3(RoundKeys, aarch64::Armv8Eor3Token),
}

/// Calls `$f` of the engine's backend with its token and keys.
macro_rules! dispatch {
    ($engine:expr, $f:ident($($arg:expr),*)) => {
        match $engine {
            Engine::Soft(keys) => soft::$f(keys, $($arg),*),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(keys, token) => AesNi::$f(*token, keys, $($arg),*),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(keys, token) => Vaes256::$f(*token, keys, $($arg),*),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(keys, token) => Vaes512::$f(*token, keys, $($arg),*),
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(keys, token) => Armv8::$f(*token, keys, $($arg),*),
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8Eor3(keys, token) => Armv8Eor3::$f(*token, keys, $($arg),*),
        }
    };
}

impl Engine {
    /// Builds the key schedule for `backend`; `None` if the CPU cannot run
    /// it or the key length is not 16, 24 or 32.
    pub(crate) fn new(backend: Backend, key: &[u8]) -> Option<Engine> {
        match backend {
            Backend::Soft => soft::Ciphers::new(key).map(Engine::Soft),
            #[cfg(target_arch = "x86_64")]
            Backend::AesNi => {
                let token = x86::AesNiToken::detect()?;
                Some(Engine::AesNi(x86::expand_key(token, key)?, token))
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Vaes256 => {
                let token = x86::Vaes256Token::detect()?;
                Some(Engine::Vaes256(x86::expand_key(token.aesni(), key)?, token))
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Vaes512 => {
                let token = x86::Vaes512Token::detect()?;
                Some(Engine::Vaes512(x86::expand_key(token.aesni(), key)?, token))
            }
            #[cfg(target_arch = "aarch64")]
            Backend::Armv8 => {
                let token = aarch64::Armv8Token::detect()?;
                let keys = aarch64::expand_key(token, key)?;
                Some(match token.eor3() {
                    Some(token) => Engine::Armv8Eor3(keys, token),
                    None => Engine::Armv8(keys, token),
                })
            }
            #[allow(unreachable_patterns, reason = "backends of other architectures")]
            _ => None,
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Engine::Soft(_) => Backend::Soft,
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(..) => Backend::AesNi,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(..) => Backend::Vaes256,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(..) => Backend::Vaes512,
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(..) | Engine::Armv8Eor3(..) => Backend::Armv8,
        }
    }

    #[inline]
    pub(crate) fn encrypt_block(&self, block: &mut [u8; 16]) {
        dispatch!(self, encrypt_block(block))
    }

    #[inline]
    pub(crate) fn decrypt_block(&self, block: &mut [u8; 16]) {
        dispatch!(self, decrypt_block(block))
    }

    pub(crate) fn ecb_encrypt(&self, io: InOut<'_>) {
        dispatch!(self, ecb_encrypt(io))
    }

    pub(crate) fn ecb_decrypt(&self, io: InOut<'_>) {
        dispatch!(self, ecb_decrypt(io))
    }

    pub(crate) fn cbc_encrypt(&self, iv: &[u8; 16], io: InOut<'_>) {
        dispatch!(self, cbc_encrypt(iv, io))
    }

    pub(crate) fn cbc_decrypt(&self, iv: &[u8; 16], io: InOut<'_>) {
        dispatch!(self, cbc_decrypt(iv, io))
    }

    pub(crate) fn ctr(&self, counter: &[u8; 16], io: InOut<'_>) {
        dispatch!(self, ctr(counter, io))
    }

    pub(crate) fn cbc_encrypt_multi(&self, jobs: &mut [Job<'_>]) {
        dispatch!(self, cbc_encrypt_multi(jobs))
    }

    /// `cbc_encrypt_multi` with the CRC of every job that asks for one
    /// (`Job::with_crc`) computed inside the lanes, its value stored in the
    /// job. Returns `false`, having done nothing, when this backend (or
    /// CPU) has no carry-less multiply: the caller then computes the CRCs
    /// itself and calls `cbc_encrypt_multi`. Must run before the CBC tail
    /// rule.
    pub(crate) fn cbc_encrypt_multi_crc(&self, jobs: &mut [Job<'_>]) -> bool {
        dispatch_clmul!(self, |B, token, keys| {
            B::cbc_encrypt_multi_crc(token, keys, jobs);
            true
        })
    }

    /// `cbc_decrypt` that also folds the plaintext into the CRC accumulator
    /// `fold` (see `kernel::crc`). Returns `false`, having done nothing,
    /// when this backend (or CPU) has no carry-less multiply.
    pub(crate) fn cbc_decrypt_crc(
        &self,
        iv: &[u8; 16],
        io: InOut<'_>,
        fold: &mut [u8; 16],
    ) -> bool {
        dispatch_clmul!(self, |B, token, keys| {
            B::cbc_decrypt_crc(token, keys, iv, io, fold);
            true
        })
    }

    /// `ctr` that also folds the output into the CRC accumulator `fold`.
    /// Returns `false`, having done nothing, without carry-less multiply or
    /// where the counter's low 64 bits wrap inside `io`.
    pub(crate) fn ctr_crc(&self, counter: &[u8; 16], io: InOut<'_>, fold: &mut [u8; 16]) -> bool {
        dispatch_clmul!(self, |B, token, keys| B::ctr_crc(
            token, keys, counter, io, fold
        ))
    }
}

/// Runs `$body` with `$B` the engine's backend, `$token` its carry-less
/// multiply token and `$keys` its keys; `false` where there is no such
/// token (the portable backend, or a CPU without the instructions).
macro_rules! dispatch_clmul {
    ($engine:expr, |$B:ident, $token:ident, $keys:ident| $body:expr) => {{
        macro_rules! with {
            ($b:ident, $k:expr, $t:expr) => {
                match $t.clmul() {
                    Some($token) => {
                        use $b as $B;
                        let $keys = $k;
                        $body
                    }
                    None => false,
                }
            };
        }
        match $engine {
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(keys, token) => with!(AesNi, keys, token),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(keys, token) => with!(Vaes256, keys, token),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(keys, token) => with!(Vaes512, keys, token),
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(keys, token) => with!(Armv8, keys, token),
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8Eor3(keys, token) => with!(Armv8Eor3, keys, token),
            Engine::Soft(_) => false,
        }
    }};
}
use dispatch_clmul;
