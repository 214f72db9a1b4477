//! What is wrong, below the crate's [`Error`](crate::Error): with a batch's
//! buffers, a key file, a `.MAI` header, one page, and a key provider's own
//! error. The lowest layer: it names nothing of the crate, so the page
//! format and the error type can both build on it.

use std::fmt;
use std::sync::Arc;

/// Why the buffers of a batch call do not fit together.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchFault {
    /// A page buffer that is not a whole number of pages.
    NotWholePages {
        /// The buffer's length.
        len: usize,
        /// The block size.
        block_size: usize,
    },
    /// A results slice with a slot count other than the page count.
    Results {
        /// Pages in the batch.
        pages: usize,
        /// Result slots given.
        results: usize,
    },
    /// Page numbers that would run past 4294967295.
    PageNumbers {
        /// The first page number.
        first: u32,
        /// Pages in the batch.
        pages: usize,
    },
}

/// What is wrong with a key file (MariaDB `file_key_management` rules).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFileFault {
    /// A key id that is not a decimal number in 1..=4294967295.
    KeyId,
    /// A line that is not `id;hexkey` (the `;` is missing).
    Syntax,
    /// A key version that is not a decimal number in 1..=4294967294
    /// (versioned key files only).
    KeyVersion,
    /// A key that is not hex digit pairs (a bad digit, or an odd digit out).
    KeyHex,
    /// A key of this many bytes; AES keys are 16, 24 or 32 bytes.
    KeyLength(usize),
    /// Key id 1 is missing: MariaDB refuses to start without it.
    MissingKey1,
    /// The file is larger than MariaDB reads (1 MiB); its size.
    TooLarge(u64),
    /// A secret was given but the file does not start with `Salted__`.
    NotEncrypted,
    /// The `Salted__` file does not decrypt with this secret (bad padding).
    WrongSecret,
    /// A `Salted__` file too short to hold its salt and one block.
    Truncated,
    /// The secret file given with `FILE:` is empty or longer than 256 bytes.
    Secret,
    /// A `Salted__` (encrypted) key file, and the crate was built without
    /// its `salted-key-files` feature.
    SaltedUnsupported,
}

/// What is wrong with a `.MAI` file header.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderFault {
    /// Fewer bytes than the header needs.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The file does not start with the Aria magic `FE FE 09 03`.
    Magic([u8; 4]),
    /// A block size that is not a multiple of 1024 in 1024..=32768.
    BlockSize(u32),
    /// A header field with an impossible value.
    Field {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A crypt block whose type or length byte is not 1 / 20.
    CryptScheme {
        /// Scheme type byte (must be 1).
        kind: u8,
        /// Length byte (must be 20).
        len: u8,
    },
    /// The table is not encrypted, so it has no crypt block.
    NotEncrypted,
}

/// What is wrong with one page.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageFault {
    /// A page buffer whose length is not the table's block size.
    Size {
        /// The block size.
        expected: usize,
        /// The buffer's length.
        actual: usize,
    },
    /// A key version of 0 or 0xFFFFFFFF stamped in (or asked for) a page.
    KeyVersion(u32),
    /// The key provider has no key with this id.
    NoKey {
        /// The key id.
        key_id: u32,
    },
    /// The key provider cannot supply this key id and version.
    KeyUnavailable {
        /// The key id.
        key_id: u32,
        /// The version.
        version: u32,
    },
    /// The key provider failed while asked for this key (see
    /// [`Error::KeyProvider`](crate::Error::KeyProvider)); the provider's
    /// error is the [`source`](std::error::Error::source) of the page's
    /// [`Error`](crate::Error).
    KeyProvider {
        /// The key id.
        key_id: u32,
        /// The version; `None` when the latest was asked for.
        version: Option<u32>,
        /// The provider's error.
        source: ProviderError,
    },
    /// The checksum of the decrypted page does not match: a wrong key, a
    /// wrong algorithm (CBC/CTR) or a corrupt page. [`crate::diagnose`]
    /// tells them apart.
    Checksum {
        /// The CRC stored in the page.
        stored: u32,
        /// The CRC of the decrypted page.
        computed: u32,
    },
    /// An index page whose `page_used` is outside `[header, block_size - 5]`
    /// (the server refuses `page_used >= block_size - 4`).
    PageUsed {
        /// The stored value.
        value: u32,
        /// Smallest valid value (the page header length).
        min: u32,
        /// Largest valid value.
        max: u32,
    },
    /// A table geometry whose block size no Aria table can have.
    BlockSize(u32),
    /// A page given to encryption whose key-version field is not zero: it
    /// is already encrypted (a buffer-pool state bug), or not a page of
    /// this kind. The server zeroes that field in every plaintext page.
    AlreadyEncrypted {
        /// The value in the key-version field.
        key_version: u32,
    },
}

/// "key provider failed for key id 2 version 3: <the provider's error>".
pub(crate) fn provider_failure(
    f: &mut fmt::Formatter<'_>,
    key_id: u32,
    version: Option<u32>,
    source: &ProviderError,
) -> fmt::Result {
    write!(f, "key provider failed for key id {key_id}")?;
    if let Some(version) = version {
        write!(f, " version {version}")?;
    }
    write!(f, ": {source}")
}

impl fmt::Display for BatchFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchFault::NotWholePages { len, block_size } => write!(
                f,
                "a buffer of {len} bytes is not a whole number of {block_size}-byte pages"
            ),
            BatchFault::Results { pages, results } => {
                write!(f, "{results} result slots for {pages} pages")
            }
            BatchFault::PageNumbers { first, pages } => write!(
                f,
                "{pages} pages from page {first} run past page number 4294967295"
            ),
        }
    }
}

impl fmt::Display for KeyFileFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileFault::KeyId => f.write_str("key id must be a number from 1 to 4294967295"),
            KeyFileFault::Syntax => f.write_str("syntax error: expected <key id>;<hex key>"),
            KeyFileFault::KeyVersion => {
                f.write_str("key version must be a number from 1 to 4294967294")
            }
            KeyFileFault::KeyHex => f.write_str("key is not an even number of hex digits"),
            KeyFileFault::KeyLength(n) => {
                write!(f, "key of {n} bytes (AES keys are 16, 24 or 32 bytes)")
            }
            KeyFileFault::MissingKey1 => f.write_str("key id 1 is missing (MariaDB requires it)"),
            KeyFileFault::TooLarge(n) => {
                write!(
                    f,
                    "file of {n} bytes is larger than the 1 MiB MariaDB reads"
                )
            }
            KeyFileFault::NotEncrypted => f.write_str(
                "a key-file secret was given but the file is not encrypted (no Salted__ header)",
            ),
            KeyFileFault::WrongSecret => {
                f.write_str("cannot decrypt the key file: wrong secret (bad padding)")
            }
            KeyFileFault::Truncated => f.write_str("encrypted key file is truncated"),
            KeyFileFault::Secret => f.write_str("the key-file secret must be 1 to 256 bytes"),
            KeyFileFault::SaltedUnsupported => f.write_str(
                "the key file is encrypted (Salted__) and this build lacks the salted-key-files feature",
            ),
        }
    }
}

impl fmt::Display for HeaderFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderFault::Truncated { need, have } => {
                write!(f, "truncated: {have} bytes, the header needs {need}")
            }
            HeaderFault::Magic(m) => write!(
                f,
                "not an Aria index file (magic {:02x}{:02x}{:02x}{:02x}, expected fefe0903)",
                m[0], m[1], m[2], m[3]
            ),
            HeaderFault::BlockSize(bs) => write!(
                f,
                "block size {bs} (Aria uses multiples of 1024 from 1024 to 32768)"
            ),
            HeaderFault::Field { field, value } => write!(f, "impossible {field} {value}"),
            HeaderFault::CryptScheme { kind, len } => write!(
                f,
                "unsupported crypt scheme (type {kind}, length {len}; expected type 1, length 20)"
            ),
            HeaderFault::NotEncrypted => f.write_str("the table is not encrypted"),
        }
    }
}

impl fmt::Display for PageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageFault::Size { expected, actual } => {
                write!(f, "page buffer of {actual} bytes, block size is {expected}")
            }
            PageFault::KeyVersion(v) => write!(
                f,
                "invalid key version {v} (0 and 4294967295 are never valid)"
            ),
            PageFault::NoKey { key_id } => write!(f, "no key with id {key_id}"),
            PageFault::KeyUnavailable { key_id, version } => {
                write!(f, "key id {key_id} version {version} is not available")
            }
            PageFault::KeyProvider {
                key_id,
                version,
                source,
            } => provider_failure(f, *key_id, *version, source),
            PageFault::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch after decryption (stored {stored:08x}, computed {computed:08x}): wrong key, wrong algorithm or corrupt page"
            ),
            PageFault::PageUsed { value, min, max } => {
                write!(f, "index page_used {value} outside {min}..={max}")
            }
            PageFault::BlockSize(bs) => write!(
                f,
                "block size {bs} (Aria uses multiples of 1024 from 1024 to 32768)"
            ),
            PageFault::AlreadyEncrypted { key_version } => write!(
                f,
                "refusing to encrypt: the key-version field holds {key_version}, not 0 (already encrypted?)"
            ),
        }
    }
}

/// A key provider's own error, kept as the cause of an
/// [`Error`](crate::Error). Cheap to clone (shared), so page faults stay
/// `Clone`; two are equal only if one is a clone of the other.
#[derive(Clone)]
pub struct ProviderError(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl ProviderError {
    /// Wraps a provider's error (any error type, or a message).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ProviderError(Arc::from(error.into()))
    }

    /// The provider's error, to downcast or walk its own sources.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for ProviderError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ProviderError {}
