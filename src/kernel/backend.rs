//! Which AES implementation runs: detection (once, cached), the environment
//! override, and the public [`Backend`] names.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::Error;

/// An AES implementation of the kernel.
///
/// Every backend produces identical bytes; they differ only in speed. Use
/// [`Backend::supported`] to see what this CPU offers and
/// [`Aes::with_backend`](crate::kernel::Aes::with_backend) to pick one
/// explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Backend {
    /// Constant-time portable code: RustCrypto `aes` (fixsliced when built
    /// with `--cfg aes_backend="soft"`, otherwise that crate's own
    /// hardware detection applies underneath).
    Soft,
    /// x86-64 AES-NI on 128-bit registers.
    AesNi,
    /// x86-64 VAES on 256-bit registers (AVX2 state only; Zen 3, Alder Lake).
    Vaes256,
    /// x86-64 VAES on 512-bit registers (AVX-512).
    Vaes512,
    /// AArch64 ARMv8 Cryptography Extensions (`AESE`/`AESD`).
    Armv8,
}

/// Environment variable that overrides the default backend for the whole
/// process (`soft`, `aesni`, `vaes256`, `vaes512`, `armv8`).
pub const BACKEND_ENV: &str = "ARIA_CRYPT_BACKEND";

impl Backend {
    /// Every backend the crate knows, slowest first.
    pub const ALL: [Backend; 5] = [
        Backend::Soft,
        Backend::AesNi,
        Backend::Vaes256,
        Backend::Vaes512,
        Backend::Armv8,
    ];

    /// Short lowercase name, as accepted by [`FromStr`] and [`BACKEND_ENV`].
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Soft => "soft",
            Backend::AesNi => "aesni",
            Backend::Vaes256 => "vaes256",
            Backend::Vaes512 => "vaes512",
            Backend::Armv8 => "armv8",
        }
    }

    /// Whether this CPU (and operating system) can run the backend.
    /// Detection runs once per process; later calls read a cached value.
    pub fn is_supported(self) -> bool {
        detected().contains(&self)
    }

    /// The backends this CPU supports, slowest (always [`Backend::Soft`])
    /// first, fastest last.
    pub fn supported() -> &'static [Backend] {
        detected()
    }

    /// The fastest backend this CPU supports.
    pub fn best() -> Backend {
        // `detected()` always holds at least `Soft`.
        detected().last().copied().unwrap_or(Backend::Soft)
    }

    /// The backend that [`Aes::new`](crate::kernel::Aes::new) uses: the one
    /// named by [`BACKEND_ENV`] if it is set, valid and supported, otherwise
    /// [`Backend::best`]. Use [`Backend::from_env`] to see why an override
    /// was not honoured.
    pub fn active() -> Backend {
        static ACTIVE: OnceLock<Backend> = OnceLock::new();
        *ACTIVE.get_or_init(|| match Backend::from_env() {
            Ok(Some(backend)) => backend,
            _ => Backend::best(),
        })
    }

    /// The backend requested through [`BACKEND_ENV`], if any.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] for a name that is not a backend,
    /// [`Error::UnsupportedBackend`] for one this CPU cannot run.
    pub fn from_env() -> Result<Option<Backend>, Error> {
        let Some(value) = std::env::var_os(BACKEND_ENV) else {
            return Ok(None);
        };
        let value = value.to_string_lossy();
        if value.is_empty() {
            return Ok(None);
        }
        let backend: Backend = value.parse()?;
        if backend.is_supported() {
            Ok(Some(backend))
        } else {
            Err(Error::UnsupportedBackend(backend))
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == wanted)
            .ok_or_else(|| Error::UnknownBackend(s.to_string()))
    }
}

/// The supported backends, detected on first use.
fn detected() -> &'static [Backend] {
    static DETECTED: OnceLock<Vec<Backend>> = OnceLock::new();
    DETECTED.get_or_init(|| {
        let mut found = vec![Backend::Soft];
        #[cfg(target_arch = "x86_64")]
        {
            use super::backends::x86;
            if x86::AesNiToken::detect().is_some() {
                found.push(Backend::AesNi);
            }
            if x86::Vaes256Token::detect().is_some() {
                found.push(Backend::Vaes256);
            }
            if x86::Vaes512Token::detect().is_some() {
                found.push(Backend::Vaes512);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if super::backends::aarch64::Armv8Token::detect().is_some() {
                found.push(Backend::Armv8);
            }
        }
        found
    })
}
