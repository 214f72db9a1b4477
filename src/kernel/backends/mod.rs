//! The AES implementations, one module per instruction set, and the single
//! point that dispatches to them.
//!
//! Every backend module offers the same functions over whole blocks (the
//! tail rules live in the caller): `encrypt_block`, `decrypt_block`,
//! `ecb_encrypt`, `ecb_decrypt`, `cbc_encrypt`, `cbc_decrypt`, `ctr` and
//! `cbc_encrypt_multi`. Hardware backends take a capability token that only
//! detection can create, so calling one without checking the CPU does not
//! compile. The backend is chosen once per call; the loops inside are
//! monomorphised for the key size, with no dispatch per block.
//!
//! One operation is outside that common set: multi-buffer CBC encryption
//! with the CRC of each job's plaintext fused into the lanes
//! ([`Engine::cbc_encrypt_multi_crc`]), which only VAES-512 with VPCLMULQDQ
//! offers; for every other backend the caller computes the CRC first.

pub(crate) mod soft;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "CPUID, XGETBV and AES-NI intrinsics")]
pub(crate) mod x86;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "AES-NI intrinsics on raw block pointers")]
mod x86_aesni;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "PCLMULQDQ intrinsics for the fused CRC")]
mod x86_crc;
#[cfg(all(target_arch = "x86_64", miri))]
mod x86_miri;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "VAES intrinsics on raw block pointers")]
mod x86_vaes256;
#[cfg(target_arch = "x86_64")]
#[allow(
    unsafe_code,
    reason = "VAES and AVX-512 intrinsics on raw block pointers"
)]
mod x86_vaes512;

#[cfg(target_arch = "aarch64")]
#[allow(
    unsafe_code,
    reason = "ARMv8 Crypto Extension intrinsics on raw block pointers"
)]
pub(crate) mod aarch64;

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
}

/// Calls `$f` of the engine's backend module with its token and keys.
macro_rules! dispatch {
    ($engine:expr, $f:ident($($arg:expr),*)) => {
        match $engine {
            Engine::Soft(keys) => soft::$f(keys, $($arg),*),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(keys, token) => x86_aesni::$f(*token, keys, $($arg),*),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(keys, token) => x86_vaes256::$f(*token, keys, $($arg),*),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(keys, token) => x86_vaes512::$f(*token, keys, $($arg),*),
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(keys, token) => aarch64::$f(*token, keys, $($arg),*),
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
                Some(Engine::Armv8(aarch64::expand_key(token, key)?, token))
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
            Engine::Armv8(..) => Backend::Armv8,
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
    /// CPU) does not fuse the CRC: the caller then computes the CRCs itself
    /// and calls `cbc_encrypt_multi`. Must run before the CBC tail rule.
    pub(crate) fn cbc_encrypt_multi_crc(&self, jobs: &mut [Job<'_>]) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(keys, token) => match token.clmul() {
                Some(token) => {
                    x86_vaes512::cbc_encrypt_multi_crc(token, keys, jobs);
                    true
                }
                None => false,
            },
            _ => {
                let _ = jobs;
                false
            }
        }
    }
}
