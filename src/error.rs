//! The crate's error type. Messages never contain key material.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::aria::{PageFile, TableGeometry};
use crate::kernel::Backend;

/// Everything that can go wrong, with enough context to act on it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An AES key that is not 16, 24 or 32 bytes long (its length).
    KeyLength(usize),
    /// Source and destination buffers of different lengths.
    LengthMismatch {
        /// Source length.
        src: usize,
        /// Destination length.
        dst: usize,
    },
    /// An ECB buffer whose length is not a multiple of 16 (its length).
    NotBlockAligned(usize),
    /// A backend this CPU cannot run.
    UnsupportedBackend(Backend),
    /// A backend name that is not one of [`Backend::ALL`].
    UnknownBackend(String),
    /// An algorithm name other than `cbc` or `ctr`.
    UnknownMode(String),
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A key file that cannot be used.
    KeyFile {
        /// The key file (or a description of where the text came from);
        /// empty for a key file parsed from memory.
        path: PathBuf,
        /// 1-based line number, when the fault is on one line.
        line: Option<usize>,
        /// What is wrong.
        fault: KeyFileFault,
    },
    /// The key provider has no key with this id.
    KeyNotFound {
        /// The key id.
        key_id: u32,
    },
    /// The key provider has the key id but not this version of it.
    KeyVersionNotFound {
        /// The key id.
        key_id: u32,
        /// The version asked for.
        version: u32,
    },
    /// The key provider failed: it cannot tell whether it has the key (an
    /// unreachable KMS, a refused request). Not the same as
    /// [`KeyNotFound`](Error::KeyNotFound): nothing is known to be absent.
    /// The provider's own error is the [`source`](std::error::Error::source).
    KeyProvider {
        /// The key id asked for.
        key_id: u32,
        /// The version asked for; `None` when the latest was asked for.
        version: Option<u32>,
        /// The provider's error.
        source: ProviderError,
    },
    /// A `.MAI` file header that cannot be parsed.
    Header {
        /// The `.MAI` file, when known.
        path: Option<PathBuf>,
        /// What is wrong.
        fault: HeaderFault,
    },
    /// The operating system's random generator failed (a fresh page LSN
    /// or new crypt data could not be drawn); nothing was written.
    Rng {
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The buffers of a batch call do not fit together; no page was
    /// touched.
    Batch(BatchFault),
    /// Two ciphers that must describe one table have different geometry
    /// (block size, `keystart` or transactional layout), so a page one of
    /// them decrypts would be misread by the other.
    GeometryMismatch {
        /// The geometry of the cipher the pages are read with.
        from: TableGeometry,
        /// The geometry of the cipher the pages are written with.
        to: TableGeometry,
    },
    /// A page that cannot be encrypted or decrypted.
    Page {
        /// The file, when known.
        path: Option<PathBuf>,
        /// Index (`.MAI`) or data (`.MAD`) file.
        file: PageFile,
        /// Page number within the file (`offset / block_size`).
        page: u32,
        /// What is wrong.
        fault: PageFault,
    },
}

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
    /// [`Error::KeyProvider`]); the provider's error is the
    /// [`source`](std::error::Error::source) of the page's [`Error`].
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KeyLength(len) => {
                write!(f, "AES key of {len} bytes (expected 16, 24 or 32)")
            }
            Error::LengthMismatch { src, dst } => write!(
                f,
                "source of {src} bytes and destination of {dst} bytes differ in length"
            ),
            Error::NotBlockAligned(len) => {
                write!(f, "{len} bytes is not a whole number of 16-byte AES blocks")
            }
            Error::UnsupportedBackend(backend) => {
                write!(f, "this CPU cannot run the {backend} AES backend")
            }
            Error::UnknownBackend(name) => write!(
                f,
                "unknown AES backend {name:?} (expected soft, aesni, vaes256, vaes512 or armv8)"
            ),
            Error::UnknownMode(name) => {
                write!(f, "unknown algorithm {name:?} (expected cbc or ctr)")
            }
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::KeyFile { path, line, fault } => {
                if path.as_os_str().is_empty() {
                    f.write_str("key file")?;
                } else {
                    write!(f, "{}", path.display())?;
                }
                if let Some(line) = line {
                    write!(f, " line {line}")?;
                }
                write!(f, ": {fault}")
            }
            Error::KeyNotFound { key_id } => write!(f, "no key with id {key_id}"),
            Error::KeyVersionNotFound { key_id, version } => {
                write!(f, "key id {key_id} has no version {version}")
            }
            Error::KeyProvider {
                key_id,
                version,
                source,
            } => provider_failure(f, *key_id, *version, source),
            Error::Header { path, fault } => {
                if let Some(path) = path {
                    write!(f, "{}: ", path.display())?;
                }
                write!(f, "bad Aria header: {fault}")
            }
            Error::Rng { source } => {
                write!(
                    f,
                    "the operating system's random generator failed: {source}"
                )
            }
            Error::Batch(fault) => write!(f, "batch call: {fault}"),
            Error::GeometryMismatch { from, to } => write!(
                f,
                "the two ciphers describe different tables: block size {} / {}, keystart {} / {}, transactional {} / {}",
                from.block_size,
                to.block_size,
                from.keystart,
                to.keystart,
                from.transactional,
                to.transactional
            ),
            Error::Page {
                path,
                file,
                page,
                fault,
            } => {
                match path {
                    Some(path) => write!(f, "{} page {page}: ", path.display())?,
                    None => write!(f, "{file} page {page}: ")?,
                }
                write!(f, "{fault}")
            }
        }
    }
}

/// "key provider failed for key id 2 version 3: <the provider's error>".
fn provider_failure(
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

/// [`Error::Rng`] for a failure of the operating system's generator, with
/// its OS error code when it has one.
pub(crate) fn rng_error(e: getrandom::Error) -> Error {
    let source = match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::other(e.to_string()),
    };
    Error::Rng { source }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Rng { source } => Some(source),
            Error::KeyProvider { source, .. }
            | Error::Page {
                fault: PageFault::KeyProvider { source, .. },
                ..
            } => Some(source.get_ref()),
            _ => None,
        }
    }
}

/// Each kernel refusal becomes the crate variant of the same name, so `?`
/// from kernel calls and matches on `Error::KeyLength` and its kin keep
/// working. The kernel error carries nothing more, so there is no
/// `source()` to keep.
impl From<crate::kernel::Error> for Error {
    fn from(err: crate::kernel::Error) -> Self {
        use crate::kernel::Error as K;
        match err {
            K::KeyLength(len) => Error::KeyLength(len),
            K::LengthMismatch { src, dst } => Error::LengthMismatch { src, dst },
            K::NotBlockAligned(len) => Error::NotBlockAligned(len),
            K::UnsupportedBackend(backend) => Error::UnsupportedBackend(backend),
            K::UnknownBackend(name) => Error::UnknownBackend(name),
            K::UnknownMode(name) => Error::UnknownMode(name),
        }
    }
}

/// What kind of problem an [`Error`] is, to branch on without matching
/// the nested `#[non_exhaustive]` enums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A caller's mistake: a key or buffer of the wrong length, an unknown
    /// backend or algorithm name, a backend this CPU cannot run, a page
    /// buffer that is not one block, a geometry no table can have, batch
    /// buffers that do not fit together, rekey ciphers of different
    /// geometry, a page given to encryption that is already encrypted.
    InvalidInput,
    /// Reading or writing a file failed.
    Io,
    /// A key file that cannot be used.
    KeyFile,
    /// The provider does not have the key id or version (for a page: the
    /// one the table uses or the one stamped in it).
    KeyNotFound,
    /// The provider failed to answer; the cause is the error's `source()`.
    KeyProvider,
    /// The operating system's random generator failed (a fresh LSN or
    /// table key could not be drawn); the cause is the error's `source()`.
    Rng,
    /// A `.MAI` header that cannot be parsed, or a table that is not
    /// encrypted.
    Header,
    /// A page's checksum does not match after decryption: a wrong key, a
    /// wrong algorithm or a damaged page ([`crate::diagnose`] tells which).
    Checksum,
    /// A page whose own bytes are impossible (a key version of 0 or
    /// 0xFFFFFFFF, an index `page_used` out of range): damaged.
    PageDamaged,
}

impl Error {
    /// What kind of problem this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::KeyLength(_)
            | Error::LengthMismatch { .. }
            | Error::NotBlockAligned(_)
            | Error::UnsupportedBackend(_)
            | Error::UnknownBackend(_)
            | Error::UnknownMode(_)
            | Error::Batch(_)
            | Error::GeometryMismatch { .. } => ErrorKind::InvalidInput,
            Error::Rng { .. } => ErrorKind::Rng,
            Error::Io { .. } => ErrorKind::Io,
            Error::KeyFile { .. } => ErrorKind::KeyFile,
            Error::KeyNotFound { .. } | Error::KeyVersionNotFound { .. } => ErrorKind::KeyNotFound,
            Error::KeyProvider { .. } => ErrorKind::KeyProvider,
            Error::Header { .. } => ErrorKind::Header,
            Error::Page { fault, .. } => match fault {
                PageFault::Size { .. } | PageFault::BlockSize(_) => ErrorKind::InvalidInput,
                PageFault::NoKey { .. } | PageFault::KeyUnavailable { .. } => {
                    ErrorKind::KeyNotFound
                }
                PageFault::KeyProvider { .. } => ErrorKind::KeyProvider,
                PageFault::Checksum { .. } => ErrorKind::Checksum,
                PageFault::AlreadyEncrypted { .. } => ErrorKind::InvalidInput,
                PageFault::KeyVersion(_) | PageFault::PageUsed { .. } => ErrorKind::PageDamaged,
            },
        }
    }

    /// Whether the keys are the problem for certain: a key id or version
    /// the provider does not have, a provider that failed, or a key file
    /// that cannot be used. A checksum mismatch is not counted: it may be
    /// a wrong key or a damaged page ([`crate::diagnose`] tells which).
    pub fn is_key_problem(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::KeyNotFound | ErrorKind::KeyProvider | ErrorKind::KeyFile
        )
    }

    /// What is wrong with the page, for an error about one page.
    pub fn page_fault(&self) -> Option<&PageFault> {
        match self {
            Error::Page { fault, .. } => Some(fault),
            _ => None,
        }
    }

    /// The file and page number, for an error about one page.
    pub fn page(&self) -> Option<(PageFile, u32)> {
        match self {
            Error::Page { file, page, .. } => Some((*file, *page)),
            _ => None,
        }
    }

    /// The file the error is about, when known.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. } => Some(path),
            Error::KeyFile { path, .. } => (!path.as_os_str().is_empty()).then_some(path.as_path()),
            Error::Header { path, .. } | Error::Page { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    /// A provider failure for `key_id` (at `version`, or its latest when
    /// `None`) caused by `error`: what a [`KeyProvider`](crate::keys::KeyProvider)
    /// returns when its backend fails.
    pub fn key_provider(
        key_id: u32,
        version: Option<u32>,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::KeyProvider {
            key_id,
            version,
            source: ProviderError::new(error),
        }
    }
}

impl PageFault {
    /// The page fault for a key lookup of `key_id` at `version` (`None`:
    /// the latest) that failed with `error`: an absent key id or version
    /// stays absent, anything else is a provider failure that keeps its
    /// cause.
    pub(crate) fn from_key_error(error: Error, key_id: u32, version: Option<u32>) -> Self {
        match error {
            Error::KeyNotFound { key_id } => PageFault::NoKey { key_id },
            Error::KeyVersionNotFound { key_id, version } => {
                PageFault::KeyUnavailable { key_id, version }
            }
            Error::KeyProvider {
                key_id,
                version,
                source,
            } => PageFault::KeyProvider {
                key_id,
                version,
                source,
            },
            other => PageFault::KeyProvider {
                key_id,
                version,
                source: ProviderError::new(other),
            },
        }
    }
}

/// A key provider's own error, kept as the cause of an [`Error`]. Cheap to
/// clone (shared), so page faults stay `Clone`; two are equal only if one
/// is a clone of the other.
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
