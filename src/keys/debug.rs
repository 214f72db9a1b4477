//! MariaDB's test-only `debug_key_management` plugin
//! (`plugin/debug_key_management/debug_key_management_plugin.cc`): key id 1
//! only; the key of version `v` is `BE32(v)` followed by 12 zero bytes, for
//! any version, whatever the latest; the latest is the server variable
//! `debug_key_management_version` (default 1, dynamic).
//!
//! The keys are public knowledge: this is for tests and for reading tables a
//! test server wrote, never for protecting data.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{KeyMaterial, KeyProvider, is_valid_version};
use crate::Error;

/// MariaDB's `debug_key_management`: key id 1 at any version.
pub struct DebugKeyProvider {
    /// `debug_key_management_version`; atomic because the server variable
    /// is dynamic and providers are shared between threads.
    latest: AtomicU32,
}

impl DebugKeyProvider {
    /// The only key id the plugin serves.
    pub const KEY_ID: u32 = 1;

    /// A provider whose latest version is `latest`, as the server with
    /// `debug_key_management_version = latest`.
    ///
    /// # Errors
    /// [`Error::KeyVersionNotFound`] for 0 and 0xFFFFFFFF. The server lets
    /// the variable take them, but they mean "not encrypted" and "invalid":
    /// no page can be written or read with them.
    pub fn new(latest: u32) -> Result<Self, Error> {
        check(latest)?;
        Ok(DebugKeyProvider {
            latest: AtomicU32::new(latest),
        })
    }

    /// The latest version (what new pages get).
    pub fn latest(&self) -> u32 {
        self.latest.load(Ordering::Relaxed)
    }

    /// Changes the latest version, as `SET GLOBAL debug_key_management_version`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn set_latest(&self, latest: u32) -> Result<(), Error> {
        check(latest)?;
        self.latest.store(latest, Ordering::Relaxed);
        Ok(())
    }

    /// The key of `version`: `BE32(version)` and 12 zero bytes (AES-128).
    pub fn key_bytes(version: u32) -> [u8; 16] {
        let mut key = [0u8; 16];
        for (byte, be) in key.iter_mut().zip(version.to_be_bytes()) {
            *byte = be;
        }
        key
    }
}

impl Default for DebugKeyProvider {
    /// Latest version 1, the server's default.
    fn default() -> Self {
        DebugKeyProvider {
            latest: AtomicU32::new(1),
        }
    }
}

fn check(version: u32) -> Result<(), Error> {
    if is_valid_version(version) {
        Ok(())
    } else {
        Err(Error::KeyVersionNotFound {
            key_id: DebugKeyProvider::KEY_ID,
            version,
        })
    }
}

impl KeyProvider for DebugKeyProvider {
    fn latest_version(&self, key_id: u32) -> Option<u32> {
        (key_id == Self::KEY_ID).then(|| self.latest())
    }

    /// Any valid version, also past the latest: the plugin's `get_key` does
    /// not look at the latest (a server at version 1 reads pages of version
    /// 9, spec §3.2).
    fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error> {
        if key_id != Self::KEY_ID {
            return Err(Error::KeyNotFound { key_id });
        }
        check(version)?;
        KeyMaterial::new(&Self::key_bytes(version))
    }
}

impl fmt::Debug for DebugKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebugKeyProvider")
            .field("latest", &self.latest())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_be32_version_then_zeros() {
        let p = DebugKeyProvider::new(1).unwrap();
        let k2 = p.key(1, 2).unwrap();
        // Spec §7.7: global key (id 1, v2) 00000002000000000000000000000000.
        assert_eq!(
            k2.as_bytes(),
            [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let k = p.key(1, 0x0102_0304).unwrap();
        assert_eq!(&k.as_bytes()[..4], [1, 2, 3, 4]);
        assert_eq!(k.len(), 16);
    }

    #[test]
    fn serves_any_valid_version_of_key_1_only() {
        let p = DebugKeyProvider::default();
        assert_eq!(p.latest_version(1), Some(1));
        assert_eq!(p.latest_version(2), None);
        assert!(p.key(1, 9).is_ok(), "versions past the latest are served");
        assert!(p.key(1, u32::MAX - 1).is_ok());
        assert!(matches!(p.key(2, 1), Err(Error::KeyNotFound { key_id: 2 })));
        for v in [0, u32::MAX] {
            assert!(matches!(
                p.key(1, v),
                Err(Error::KeyVersionNotFound { key_id: 1, version }) if version == v
            ));
        }
    }

    #[test]
    fn latest_is_checked_and_can_change_through_a_shared_reference() {
        assert!(DebugKeyProvider::new(0).is_err());
        assert!(DebugKeyProvider::new(u32::MAX).is_err());
        let p = DebugKeyProvider::new(3).unwrap();
        assert_eq!(p.latest_version(1), Some(3));
        let shared = &p;
        shared.set_latest(7).unwrap();
        assert_eq!(p.latest_version(1), Some(7));
        assert!(shared.set_latest(0).is_err());
        assert_eq!(p.latest(), 7, "a refused change keeps the old value");
    }
}
