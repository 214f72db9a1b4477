//! Several versions per key id, built in code or read from a versioned key
//! file: what key rotation needs and `file_key_management` cannot give (it
//! knows version 1 only).
//!
//! # Versioned key file format
//!
//! This crate's own format (MariaDB has none): MariaDB's `file_key_management`
//! syntax with an optional version field, so every MariaDB key file is also
//! a versioned key file whose keys all have version 1.
//!
//! ```text
//! # comment
//! 1;000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
//! 1;2;a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
//! 2;7;f5502320f8429037b8daef761b189d12   # key id 2, version 7
//! ```
//!
//! * `<id>;<hex>` is key `id`, version 1; `<id>;<version>;<hex>` is key
//!   `id` at `version`, a decimal number in 1..=4294967294 (0 and
//!   0xFFFFFFFF are never valid page stamps) written with at most 31 digits.
//!   A key has at least 32 hex digits, so a line MariaDB accepts is never
//!   read as a versioned one.
//! * Everything else as in a MariaDB key file (see [`FileKeyProvider`]):
//!   leading blanks, `#` comments and blank lines, key ids 1..=4294967295,
//!   16/24/32-byte keys in hex of either case, the rest of the line ignored
//!   unless it starts with a hex digit, text ending at the first NUL, at most
//!   1 MiB, and `Salted__` files (`openssl enc -aes-256-cbc -md sha1`)
//!   decrypted with the secret, which a plain file must not be given.
//! * A later line with the same id and version replaces the earlier one.
//! * Key id 1 is not required, and a file may hold no key at all: a
//!   rotation target may serve only the ids it rotates. A caller that needs
//!   an id gets [`Error::KeyNotFound`] when it asks.
//! * The latest version of an id is its highest version;
//!   [`VersionedKeyProvider::set_latest`] can override that in code.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::file::{FromKeyLines, IdList, KeyLine, LineSyntax, key_file_constructors};
use super::{FileKeyProvider, KeyMaterial, KeyProvider, is_valid_version};
use crate::Error;

/// Keys with any number of versions per key id.
///
/// `Debug` lists key ids, versions and latest versions only; the keys are
/// wiped when it is dropped.
#[derive(Default)]
pub struct VersionedKeyProvider {
    keys: BTreeMap<u32, Versions>,
}

#[derive(Default)]
struct Versions {
    by_version: BTreeMap<u32, KeyMaterial>,
    /// Set by `set_latest`; otherwise the highest version is the latest.
    latest: Option<u32>,
}

impl Versions {
    fn latest(&self) -> Option<u32> {
        self.latest
            .or_else(|| self.by_version.keys().next_back().copied())
    }
}

impl VersionedKeyProvider {
    /// A provider with no keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `key_id` at `version`.
    ///
    /// # Errors
    /// [`Error::KeyVersionNotFound`] for versions 0 and 0xFFFFFFFF: no page
    /// can carry them, so no lookup could ever find such a key.
    pub fn insert(&mut self, key_id: u32, version: u32, key: KeyMaterial) -> Result<(), Error> {
        if !is_valid_version(version) {
            return Err(Error::KeyVersionNotFound { key_id, version });
        }
        self.keys
            .entry(key_id)
            .or_default()
            .by_version
            .insert(version, key);
        Ok(())
    }

    /// Makes `version` the latest of `key_id` (the version new pages get),
    /// instead of the highest; it stays so until [`clear_latest`](Self::clear_latest).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] or [`Error::KeyVersionNotFound`] if the
    /// provider does not hold that key.
    pub fn set_latest(&mut self, key_id: u32, version: u32) -> Result<(), Error> {
        let versions = self
            .keys
            .get_mut(&key_id)
            .ok_or(Error::KeyNotFound { key_id })?;
        if !versions.by_version.contains_key(&version) {
            return Err(Error::KeyVersionNotFound { key_id, version });
        }
        versions.latest = Some(version);
        Ok(())
    }

    /// Makes the highest version of `key_id` its latest again.
    pub fn clear_latest(&mut self, key_id: u32) {
        if let Some(versions) = self.keys.get_mut(&key_id) {
            versions.latest = None;
        }
    }

    key_file_constructors! {
        file: "a versioned key file (format in the module docs)",
        errors: "Key id 1 may be missing; a bad version field: \
                 [`KeyFileFault::KeyVersion`](crate::KeyFileFault::KeyVersion).",
    }

    /// The key ids, in increasing order.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// The versions of `key_id`, in increasing order (none if unknown).
    pub fn versions(&self, key_id: u32) -> impl Iterator<Item = u32> + '_ {
        self.keys
            .get(&key_id)
            .into_iter()
            .flat_map(|versions| versions.by_version.keys().copied())
    }
}

impl From<FileKeyProvider> for VersionedKeyProvider {
    /// Every key of the file at version 1, as the server sees them.
    fn from(file: FileKeyProvider) -> Self {
        let keys = file
            .into_keys()
            .into_iter()
            .map(|(key_id, key)| {
                let versions = Versions {
                    by_version: BTreeMap::from([(1, key)]),
                    latest: None,
                };
                (key_id, versions)
            })
            .collect();
        VersionedKeyProvider { keys }
    }
}

impl FromKeyLines for VersionedKeyProvider {
    const SYNTAX: LineSyntax = LineSyntax::Versioned;

    fn from_key_lines(lines: Vec<KeyLine>, _origin: &Path) -> Result<Self, Error> {
        let mut provider = Self::new();
        for line in lines {
            // The line parser accepts valid versions only.
            provider.insert(line.id, line.version.unwrap_or(1), line.key)?;
        }
        Ok(provider)
    }
}

impl KeyProvider for VersionedKeyProvider {
    fn latest_version(&self, key_id: u32) -> Option<u32> {
        self.keys.get(&key_id)?.latest()
    }

    fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error> {
        let versions = self
            .keys
            .get(&key_id)
            .ok_or(Error::KeyNotFound { key_id })?;
        versions
            .by_version
            .get(&version)
            .cloned()
            .ok_or(Error::KeyVersionNotFound { key_id, version })
    }
}

impl fmt::Debug for VersionedKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedKeyProvider")
            .field("keys", &self.keys)
            .finish()
    }
}

impl fmt::Debug for Versions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versions")
            .field("versions", &IdList(&self.by_version))
            .field("latest", &self.latest())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> KeyMaterial {
        KeyMaterial::new(&[byte; 16]).unwrap()
    }

    #[test]
    fn latest_is_highest_unless_overridden() {
        let mut p = VersionedKeyProvider::new();
        p.insert(1, 3, key(3)).unwrap();
        p.insert(1, 1, key(1)).unwrap();
        assert_eq!(p.latest_version(1), Some(3));
        p.set_latest(1, 1).unwrap();
        assert_eq!(p.latest_version(1), Some(1));
        p.insert(1, 5, key(5)).unwrap();
        assert_eq!(p.latest_version(1), Some(1), "an override stays");
        p.clear_latest(1);
        assert_eq!(p.latest_version(1), Some(5));
        assert_eq!(p.versions(1).collect::<Vec<_>>(), [1, 3, 5]);
        assert_eq!(p.versions(9).count(), 0);
        assert_eq!(p.latest_version(9), None);
    }

    #[test]
    fn insert_and_set_latest_refuse_what_cannot_be() {
        let mut p = VersionedKeyProvider::new();
        for version in [0, u32::MAX] {
            assert!(matches!(
                p.insert(1, version, key(0)),
                Err(Error::KeyVersionNotFound { key_id: 1, version: v }) if v == version
            ));
        }
        assert_eq!(p.key_ids().count(), 0, "a refused insert adds no key id");
        assert!(matches!(
            p.set_latest(1, 1),
            Err(Error::KeyNotFound { key_id: 1 })
        ));
        p.insert(1, 2, key(2)).unwrap();
        assert!(matches!(
            p.set_latest(1, 3),
            Err(Error::KeyVersionNotFound {
                key_id: 1,
                version: 3
            })
        ));
    }

    #[test]
    fn insert_replaces() {
        let mut p = VersionedKeyProvider::new();
        p.insert(4, 2, key(1)).unwrap();
        p.insert(4, 2, key(2)).unwrap();
        assert_eq!(p.key(4, 2).unwrap(), key(2));
        assert_eq!(p.versions(4).collect::<Vec<_>>(), [2]);
    }
}
