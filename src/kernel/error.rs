//! The kernel's own error type: what can be wrong with a key, a buffer or a
//! name given to the kernel. It knows nothing of pages or files; the crate's
//! [`Error`](crate::Error) converts from it (`?` works across).

use std::fmt;

use super::Backend;

/// Why a kernel call was refused; nothing was written.
#[derive(Clone, Debug, PartialEq, Eq)]
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
        }
    }
}

impl std::error::Error for Error {}
