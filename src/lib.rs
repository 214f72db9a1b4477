//! MariaDB Aria page encryption, byte for byte as MariaDB does it. This is
//! confidentiality without integrity, as in MariaDB: the Aria format has no
//! room for a MAC, and a page's only check is a CRC-32 of its plaintext.
//!
//! # Layers
//! - [`kernel`]: bulk AES-128/192/256 over whole pages: ECB, CBC with
//!   MariaDB's no-padding tail rule, CTR with a 128-bit counter. Backends
//!   are picked at run time (VAES-512, VAES-256, AES-NI, ARMv8 Crypto
//!   Extensions, or constant-time software); CBC encryption of many pages
//!   interleaves them in SIMD lanes (multi-buffer).
//! - [`aria`]: the on-disk format: the `.MAI` header and its crypt block,
//!   page kinds, IVs and checksums, and [`aria::TableCipher`], which does
//!   what the server's page read and write hooks do.
//! - [`keys`]: key providers in the spirit of MariaDB's key-management
//!   plugins, with `file_key_management` (plain and `Salted__` key files)
//!   built in.
//! - [`policy`]: which key id a table uses, and re-keying pages.
//! - [`diagnose`]: which algorithm and key id a table uses, and whether a
//!   failing page has a wrong key or damaged bytes.
//!
//! # For engine authors
//! Depend on the library alone (`default-features = false` leaves out the
//! `aria-crypt` tool's dependencies). Open a table's crypt data, then
//! decrypt pages as you read them and encrypt them as you write them:
//!
//! ```
//! use std::sync::Arc;
//! use mariadb_aria_crypt::prelude::*;
//!
//! let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cbc_trans_256");
//! // The key file of MariaDB's file_key_management plugin.
//! let keys = Arc::new(FileKeyProvider::from_path(dir.join("keys.txt"), None)?);
//! // The table's `space` and `scheme_iv` from its .MAI header; the key id
//! // from the table kind (1, or 2 for temporary tables); the algorithm is
//! // configuration, as `file_key_management_encryption_algorithm`. Errors
//! // name the .MAI and .MAD files.
//! let cipher = TableCipher::open(dir.join("t1.MAI"), Mode::Cbc, keys)?;
//!
//! // Read hook: decrypt data page 1 and verify its checksum.
//! let bs = cipher.geometry().block_size as usize;
//! let file = std::fs::read(dir.join("t1.MAD"))?;
//! let mut page = file[bs..2 * bs].to_vec();
//! let status = cipher.decrypt_page(PageFile::Data, 1, &mut page)?;
//! assert_eq!(status, PageStatus::Encrypted { key_version: 1 });
//!
//! // Write hook: checksum, encrypt, stamp the latest key version. Same key,
//! // version and LSN: the server's exact bytes.
//! cipher.encrypt_page(PageFile::Data, 1, &mut page)?;
//! assert_eq!(page, file[bs..2 * bs]);
//!
//! // A buffer-pool flush or a table scan: many pages in one call, with the
//! // kernel's multi-buffer path underneath.
//! let mut pool = file.clone();
//! let mut pages: Vec<PageRef> = pool
//!     .chunks_exact_mut(bs)
//!     .enumerate()
//!     .map(|(n, data)| PageRef { number: n as u32, data })
//!     .collect();
//! for result in cipher.decrypt_pages(PageFile::Data, &mut pages) {
//!     result?; // a failed page is left as it was and named in the error
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`aria::TableCipher`] is `Send + Sync` and caches the derived
//! per-table keys; share one per table. Keys are wiped on drop and never
//! printed.
//!
//! A table that is not logging (non-transactional, temporary, or
//! [`aria::TableCipher::set_logging`]`(false)`) gets a fresh random LSN,
//! and so a fresh IV, on every write; [`aria::WriteOptions`] chooses the
//! key version and the LSN explicitly (exact re-encryption for rekey and
//! tests). A buffer pool reads and flushes whole runs of pages out of place
//! with [`aria::TableCipher::decrypt_contiguous_to`] and
//! [`aria::TableCipher::encrypt_contiguous_to`], one key lookup and no heap
//! allocation per call.
//!
//! Errors branch on [`Error::kind`] ([`Error::is_key_problem`],
//! [`Error::page_fault`]); a checksum mismatch can be a wrong key, a wrong
//! algorithm or a damaged page, and [`diagnose::Diagnoser`] tells which.
//! A key provider (a KMS) that can fail implements
//! [`keys::KeyProvider::try_latest_version`] and returns
//! [`Error::KeyProvider`] with its own error as the cause.
//!
//! # Features
//! - `cli` (default): the `aria-crypt` tool and its dependencies.
//! - `salted-key-files` (default, implied by `cli`): `Salted__`-encrypted
//!   key files; the only user of `sha1`.

// docs.rs (nightly, `--cfg docsrs`): label items with the cfg they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod aria;
pub mod diagnose;
pub mod kernel;
pub mod keys;
pub mod policy;
pub mod prelude;
#[cfg(feature = "cli")]
pub(crate) mod tool;
/// The `aria-crypt` binary's entry point and the little its tests and fuzz
/// targets drive directly; not a stable API.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub use tool::support as tool_support;

// Layers, lowest first: `fault` (what is wrong, in each layer's terms),
// `geometry` (where a table's pages are), `error` (the crate's error over
// both), then kernel, keys, aria, policy and diagnose.
mod error;
mod fault;
mod geometry;

pub use error::{Error, ErrorKind};
pub use fault::{BatchFault, HeaderFault, KeyFileFault, PageFault, ProviderError};
