//! Which AES implementation runs: the public [`Backend`] names, the
//! environment override, and the one place that runs CPU detection and
//! caches it ([`detection`]); capability tokens are minted from that cache.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use super::Error;
#[cfg(target_arch = "aarch64")]
use super::backends::aarch64;
#[cfg(target_arch = "x86_64")]
use super::backends::x86;

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
        detection().supported.contains(&self)
    }

    /// The backends this CPU supports, slowest (always [`Backend::Soft`])
    /// first, fastest last.
    pub fn supported() -> &'static [Backend] {
        &detection().supported
    }

    /// The fastest backend this CPU supports.
    pub fn best() -> Backend {
        // The list always holds at least `Soft`.
        detection()
            .supported
            .last()
            .copied()
            .unwrap_or(Backend::Soft)
    }

    /// The backend that [`Aes::new`](crate::kernel::Aes::new) uses: the one
    /// named by [`BACKEND_ENV`] if it is set, valid and supported, otherwise
    /// [`Backend::best`]. Use [`Backend::from_env`] to see why an override
    /// was not honoured.
    pub fn active() -> Backend {
        detection().active
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
        requested(&value, &detection().supported)
    }
}

/// The backend `value` names, if `supported` holds it.
fn requested(value: &str, supported: &[Backend]) -> Result<Option<Backend>, Error> {
    let backend: Backend = value.parse()?;
    if supported.contains(&backend) {
        Ok(Some(backend))
    } else {
        Err(Error::UnsupportedBackend(backend))
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

/// What detection found, once per process.
pub(crate) struct Detection {
    /// The x86-64 features the tokens are minted from.
    #[cfg(target_arch = "x86_64")]
    pub(crate) x86: x86::Features,
    /// The AArch64 features the token is minted from.
    #[cfg(target_arch = "aarch64")]
    pub(crate) aarch64: aarch64::Features,
    /// Slowest (`Soft`) first.
    supported: Vec<Backend>,
    /// [`Backend::active`]: the environment's choice, or the fastest.
    active: Backend,
}

/// The detection cache: the CPU is read here and nowhere else, on first use.
pub(crate) fn detection() -> &'static Detection {
    static DETECTION: OnceLock<Detection> = OnceLock::new();
    DETECTION.get_or_init(|| {
        let mut supported = vec![Backend::Soft];
        #[cfg(target_arch = "x86_64")]
        let x86 = x86::Features::read();
        #[cfg(target_arch = "x86_64")]
        {
            if x86.aesni().is_some() {
                supported.push(Backend::AesNi);
            }
            if x86.vaes256().is_some() {
                supported.push(Backend::Vaes256);
            }
            if x86.vaes512().is_some() {
                supported.push(Backend::Vaes512);
            }
        }
        #[cfg(target_arch = "aarch64")]
        let aarch64 = aarch64::Features::read();
        #[cfg(target_arch = "aarch64")]
        if aarch64.armv8().is_some() {
            supported.push(Backend::Armv8);
        }
        let best = supported.last().copied().unwrap_or(Backend::Soft);
        let env = std::env::var_os(BACKEND_ENV);
        let env = env.as_ref().map(|value| value.to_string_lossy());
        let active = match env.filter(|value| !value.is_empty()) {
            Some(value) => requested(&value, &supported).ok().flatten().unwrap_or(best),
            None => best,
        };
        Detection {
            #[cfg(target_arch = "x86_64")]
            x86,
            #[cfg(target_arch = "aarch64")]
            aarch64,
            supported,
            active,
        }
    })
}
