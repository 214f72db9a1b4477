//! The crate's error type. Messages never contain key material.
//!
//! It sits above [`fault`](crate::fault) and [`geometry`](crate::geometry),
//! whose types it carries, and below every layer that returns it; it
//! imports nothing from those layers' own modules (`aria`, `keys`).

use std::fmt;
use std::path::PathBuf;

// Also the faults' crate-internal path `crate::error::PageFault` etc.
pub(crate) use crate::fault::{
    BatchFault, HeaderFault, KeyFileFault, PageFault, ProviderError, provider_failure,
};
use crate::geometry::{PageFile, TableGeometry};
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::kernel::Error as K;
        match self {
            // The kernel's own errors, in the kernel's words.
            Error::KeyLength(len) => K::KeyLength(*len).fmt(f),
            Error::LengthMismatch { src, dst } => K::LengthMismatch {
                src: *src,
                dst: *dst,
            }
            .fmt(f),
            Error::NotBlockAligned(len) => K::NotBlockAligned(*len).fmt(f),
            Error::UnsupportedBackend(backend) => K::UnsupportedBackend(*backend).fmt(f),
            Error::UnknownBackend(name) => K::UnknownBackend(name.clone()).fmt(f),
            Error::UnknownMode(name) => K::UnknownMode(name.clone()).fmt(f),
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

impl Error {
    /// The page fault for a key lookup of `key_id` at `version` (`None`:
    /// the latest) that failed with this error: an absent key id or version
    /// stays absent, anything else is a provider failure that keeps its
    /// cause.
    pub(crate) fn into_page_fault(self, key_id: u32, version: Option<u32>) -> PageFault {
        match self {
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
