//! Key providers, in the spirit of MariaDB's key-management plugins: a key
//! id has a latest version, and a key for each version it knows.
//!
//! Built in: [`FileKeyProvider`] (MariaDB's `file_key_management`, plain or
//! `Salted__`-encrypted key files), [`VersionedKeyProvider`] (several
//! versions per key id, from code or a versioned key file) and
//! [`DebugKeyProvider`] (MariaDB's `debug_key_management`, for tests).

mod debug;
mod file;
#[cfg(feature = "salted-key-files")]
mod salted;
mod versioned;

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

pub use debug::DebugKeyProvider;
pub use file::FileKeyProvider;
pub use versioned::VersionedKeyProvider;

use crate::Error;

/// Key version 0: "not encrypted" in MariaDB; never a valid page stamp.
pub const KEY_VERSION_NOT_ENCRYPTED: u32 = 0;
/// Key version 0xFFFFFFFF: "invalid" in MariaDB; never a valid page stamp.
pub const KEY_VERSION_INVALID: u32 = u32::MAX;

/// Whether `version` can be stamped in a page (neither 0 nor 0xFFFFFFFF).
pub const fn is_valid_version(version: u32) -> bool {
    version != KEY_VERSION_NOT_ENCRYPTED && version != KEY_VERSION_INVALID
}

/// Where keys come from. Implementations must be cheap to query: the page
/// cipher asks for the latest version on every write batch (as the server
/// does) and caches derived keys itself.
///
/// A provider tells a key it does not have from a failure to answer:
/// - absent: [`try_latest_version`](Self::try_latest_version) returns
///   `Ok(None)`, [`key`](Self::key) returns [`Error::KeyNotFound`] or
///   [`Error::KeyVersionNotFound`];
/// - failed (an unreachable KMS, a refused request): both return
///   [`Error::KeyProvider`] (build it with [`Error::key_provider`]), which
///   carries the provider's own error as its
///   [`source`](std::error::Error::source).
///
/// A provider that can fail implements `try_latest_version`, and
/// `latest_version` as `self.try_latest_version(key_id).ok().flatten()`.
/// The library only calls `try_latest_version`; providers written before it
/// existed get a default that cannot fail.
pub trait KeyProvider: Send + Sync {
    /// The latest version of `key_id`, or `None` if there is no such key
    /// (or, for a provider that can fail, if it failed: prefer
    /// [`try_latest_version`](Self::try_latest_version)).
    fn latest_version(&self, key_id: u32) -> Option<u32>;

    /// The key material of `key_id` at `version`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] or [`Error::KeyVersionNotFound`] when the
    /// provider does not have the key, [`Error::KeyProvider`] when it
    /// failed.
    fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error>;

    /// The latest version of `key_id`: `Ok(None)` if the provider knows it
    /// has no such key. The default asks
    /// [`latest_version`](Self::latest_version), which cannot fail.
    ///
    /// # Errors
    /// [`Error::KeyProvider`] when the provider cannot tell (it failed).
    fn try_latest_version(&self, key_id: u32) -> Result<Option<u32>, Error> {
        Ok(self.latest_version(key_id))
    }
}

/// Providers behind a pointer: every method forwarded, so an override of
/// a provided method (`try_latest_version`) is never lost.
macro_rules! forward_provider {
    ($($pointer:ty),*) => {$(
        impl<P: KeyProvider + ?Sized> KeyProvider for $pointer {
            fn latest_version(&self, key_id: u32) -> Option<u32> {
                (**self).latest_version(key_id)
            }

            fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error> {
                (**self).key(key_id, version)
            }

            fn try_latest_version(&self, key_id: u32) -> Result<Option<u32>, Error> {
                (**self).try_latest_version(key_id)
            }
        }
    )*};
}

forward_provider!(std::sync::Arc<P>, &P);

/// An AES key of 16, 24 or 32 bytes, wiped on drop and never printed.
/// Equality looks at every byte whatever the first difference, so comparing
/// keys takes the same time for any two keys of one length.
#[derive(Clone)]
pub struct KeyMaterial {
    bytes: [u8; 32],
    len: u8,
}

// By hand rather than derived: the derive would pull `syn` into every
// dependent's build.
impl Zeroize for KeyMaterial {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
        self.len.zeroize();
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for KeyMaterial {}

impl PartialEq for KeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        // OR of all byte differences, no early exit on the first one.
        let diff = self
            .bytes
            .iter()
            .zip(&other.bytes)
            .fold(self.len ^ other.len, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl Eq for KeyMaterial {}

impl KeyMaterial {
    /// Wraps a key of 16, 24 or 32 bytes.
    ///
    /// # Errors
    /// [`Error::KeyLength`] for any other length.
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(Error::KeyLength(key.len()));
        }
        let mut bytes = [0u8; 32];
        bytes[..key.len()].copy_from_slice(key);
        Ok(KeyMaterial {
            bytes,
            len: key.len() as u8,
        })
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// 16, 24 or 32.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a key has 16 to 32 bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial({} bits, redacted)", self.len() * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::KeyMaterial;

    #[test]
    fn key_equality_compares_every_byte_and_the_length() {
        let key = [7u8; 32];
        let a = KeyMaterial::new(&key).unwrap();
        assert_eq!(a, KeyMaterial::new(&key).unwrap());
        for i in 0..32 {
            let mut other = key;
            other[i] ^= 0x80;
            assert_ne!(a, KeyMaterial::new(&other).unwrap(), "byte {i}");
        }
        // Same leading bytes, other length: the padding is zero in both.
        let short = KeyMaterial::new(&key[..16]).unwrap();
        let mut padded = [0u8; 32];
        padded[..16].copy_from_slice(&key[..16]);
        assert_ne!(short, KeyMaterial::new(&padded).unwrap());
    }
}
