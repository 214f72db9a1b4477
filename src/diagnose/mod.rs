//! Telling a wrong key from a damaged page.
//!
//! A page that does not decrypt fails its checksum whatever went wrong: a
//! wrong key, a wrong algorithm, a page of another table, right bytes read
//! under the wrong page number, a single flipped bit. MariaDB records
//! neither the key id nor the algorithm in the files, so the only way to
//! tell is to try: a [`Diagnoser`] decrypts a failing page again with the
//! other algorithm, the provider's other key ids and the neighbouring page
//! numbers, and looks at the rest of the table (if other pages verify, the
//! page itself is damaged).
//!
//! ```
//! use std::sync::Arc;
//! use mariadb_aria_crypt::aria::{PageFile, TableCipher, TableHeader};
//! use mariadb_aria_crypt::diagnose::{Cause, Diagnoser};
//! use mariadb_aria_crypt::kernel::Mode;
//! use mariadb_aria_crypt::keys::{FileKeyProvider, KeyProvider};
//!
//! let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cbc_trans_256");
//! let keys = Arc::new(FileKeyProvider::from_path(dir.join("keys.txt"), None)?);
//! let header = TableHeader::read(dir.join("t1.MAI"))?;
//! let mut data = std::fs::read(dir.join("t1.MAD"))?;
//! data[2 * 8192 + 100] ^= 0x10; // one flipped bit in data page 2
//!
//! // Which algorithm? The table's key id, both algorithms, sampled pages.
//! let diagnoser = Diagnoser::new(TableCipher::for_table(&header, Mode::Ctr, keys.clone())?)
//!     .with_key_ids(keys.key_ids());
//! let detection = diagnoser.detect_mode(&Diagnoser::pages(PageFile::Data, &data, 8192));
//! assert_eq!(detection.mode, Some(Mode::Cbc));
//!
//! // Which pages are damaged, and are the keys right?
//! let diagnoser = Diagnoser::new(TableCipher::for_table(&header, Mode::Cbc, keys.clone())?)
//!     .with_key_ids(keys.key_ids());
//! let diagnosis = diagnoser.check_file(PageFile::Data, &data);
//! assert_eq!(diagnosis.key_problem(), None);
//! assert_eq!(diagnosis.damaged_pages().collect::<Vec<_>>(), [(PageFile::Data, 2)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cause;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use cause::Cause;

use crate::Error;
use crate::aria::{PageFile, PageKind, PageStatus, TableCipher, TableGeometry, TableHeader};
use crate::error::PageFault;
use crate::kernel::Mode;
use crate::keys::KeyProvider;

/// Failing pages that get the alternatives tried by default; past this a
/// table is broken throughout and more diagnosis only costs time.
pub const DEFAULT_LIMIT: usize = 4096;

/// At most this many other key ids are tried.
const OTHER_KEY_IDS_MAX: usize = 16;

/// A failing page is tried as the pages this far before and after it.
const PAGE_NUMBER_WINDOW: u32 = 16;

/// Failing pages that get the page-number window tried: a misplaced page
/// is rare, a table that fails throughout is not.
const PAGE_NUMBER_PROBES_MAX: usize = 256;

/// A page as read from its file (still encrypted).
#[derive(Clone, Copy, Debug)]
pub struct Page<'a> {
    /// Index (`.MAI`) or data (`.MAD`) file.
    pub file: PageFile,
    /// Page number (`offset / block_size`).
    pub number: u32,
    /// The page's bytes, one block.
    pub data: &'a [u8],
}

/// Which algorithm pages verify with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detection {
    /// The algorithm more pages verify with (CBC on a tie); `None` when no
    /// page verifies with either.
    pub mode: Option<Mode>,
    /// Pages that verify with `mode`.
    pub verified: usize,
    /// Encrypted pages tried (header, bitmap and unwritten pages are not).
    pub sampled: usize,
}

/// What a set of pages says: how many verify and why the others fail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// Encrypted pages that decrypt and verify.
    pub verified: usize,
    /// Header, bitmap and unwritten pages (never encrypted).
    pub unencrypted: usize,
    /// The pages that fail, with their page-level cause (checksum failures
    /// no alternative explains are [`Cause::Unexplained`]; the accessors
    /// settle them against the whole set).
    pub failures: Vec<(PageFile, u32, Cause)>,
}

impl Diagnosis {
    /// Adds the pages of another diagnosis (the other file of the table).
    pub fn merge(&mut self, other: Diagnosis) {
        self.verified += other.verified;
        self.unencrypted += other.unencrypted;
        self.failures.extend(other.failures);
    }

    /// Whether every encrypted page verifies.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }

    /// The failing pages and why, settled against the whole set: a checksum
    /// failure no alternative explains is damage if other pages verify, a
    /// wrong key if none does.
    pub fn causes(&self) -> impl Iterator<Item = (PageFile, u32, Cause)> + '_ {
        let others_verify = self.verified > 0;
        self.failures
            .iter()
            .map(move |(file, page, cause)| (*file, *page, cause.clone().settle(others_verify)))
    }

    /// The pages whose own bytes are damaged.
    pub fn damaged_pages(&self) -> impl Iterator<Item = (PageFile, u32)> + '_ {
        self.causes()
            .filter(|(_, _, cause)| cause.is_damage())
            .map(|(file, page, _)| (file, page))
    }

    /// The key or algorithm problem most failing pages share (a wrong key
    /// id, a wrong algorithm, a missing key, a wrong key), or `None` when
    /// the keys are not what fails.
    pub fn key_problem(&self) -> Option<Cause> {
        let mut counts: Vec<(Cause, usize)> = Vec::new();
        for (_, _, cause) in self.causes().filter(|(_, _, c)| c.is_key_problem()) {
            match counts.iter_mut().find(|(c, _)| *c == cause) {
                Some((_, n)) => *n += 1,
                None => counts.push((cause, 1)),
            }
        }
        // The first of the most common, so ties go to the earliest page.
        let most = counts.iter().map(|(_, n)| *n).max()?;
        counts
            .into_iter()
            .find(|(_, n)| *n == most)
            .map(|(cause, _)| cause)
    }
}

/// Decrypts failing pages again with the alternatives to say why they
/// fail. `Send + Sync`: one per table, shared between threads.
pub struct Diagnoser {
    primary: TableCipher,
    /// The same key id with the other algorithm.
    other_mode: TableCipher,
    /// Other key ids, with both algorithms.
    other_key_ids: Vec<(Cause, TableCipher)>,
    limit: usize,
    explained: AtomicUsize,
    probed: AtomicUsize,
}

impl fmt::Debug for Diagnoser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Diagnoser")
            .field("cipher", &self.primary)
            .field("other_key_ids", &self.other_key_ids.len())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Diagnoser {
    /// A diagnoser for pages that `cipher` (the key id and algorithm the
    /// table is believed to use) decrypts; it also tries the other
    /// algorithm. Add the provider's other key ids with
    /// [`with_key_ids`](Self::with_key_ids).
    pub fn new(cipher: TableCipher) -> Self {
        let other_mode = sibling(&cipher, cipher.key_id(), other(cipher.mode()));
        Diagnoser {
            primary: cipher,
            other_mode,
            other_key_ids: Vec::new(),
            limit: DEFAULT_LIMIT,
            explained: AtomicUsize::new(0),
            probed: AtomicUsize::new(0),
        }
    }

    /// [`new`](Self::new) with [`TableCipher::for_table`].
    ///
    /// # Errors
    /// As [`TableCipher::for_table`].
    pub fn for_table(
        header: &TableHeader,
        mode: Mode,
        provider: Arc<dyn KeyProvider>,
    ) -> Result<Self, Error> {
        Ok(Self::new(TableCipher::for_table(header, mode, provider)?))
    }

    /// Also tries these key ids of the provider (the first 16 other than
    /// the cipher's own), with both algorithms.
    pub fn with_key_ids(mut self, key_ids: impl IntoIterator<Item = u32>) -> Self {
        let mode = self.primary.mode();
        let own = self.primary.key_id();
        let ids: Vec<u32> = key_ids
            .into_iter()
            .filter(|&id| id != own)
            .take(OTHER_KEY_IDS_MAX)
            .collect();
        for key_id in ids {
            for mode in [mode, other(mode)] {
                let cipher = sibling(&self.primary, key_id, mode);
                self.other_key_ids
                    .push((Cause::KeyId { key_id, mode }, cipher));
            }
        }
        self
    }

    /// Tries the alternatives on at most `limit` failing pages (default
    /// [`DEFAULT_LIMIT`]); later checksum failures are
    /// [`Cause::Undiagnosed`].
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The cipher the pages are checked with.
    pub fn cipher(&self) -> &TableCipher {
        &self.primary
    }

    /// The whole pages of a file's bytes (a trailing partial page is left
    /// out), numbered from 0.
    pub fn pages(file: PageFile, bytes: &[u8], block_size: usize) -> Vec<Page<'_>> {
        bytes
            .chunks_exact(block_size.max(1))
            .zip(0u32..)
            .map(|(data, number)| Page { file, number, data })
            .collect()
    }

    /// Which algorithm the pages verify with, under the cipher's key id.
    /// Pages that are never encrypted are skipped.
    pub fn detect_mode(&self, pages: &[Page<'_>]) -> Detection {
        let geometry = self.primary.geometry();
        let encrypted: Vec<&Page<'_>> = pages
            .iter()
            .filter(|p| {
                matches!(
                    geometry.classify(p.file, p.number, p.data),
                    Ok(PageKind::Encrypted(_))
                )
            })
            .collect();
        let count = |cipher: &TableCipher| {
            encrypted
                .iter()
                .filter(|p| verifies(cipher, p.file, p.number, p.data))
                .count()
        };
        let (mine, theirs) = (count(&self.primary), count(&self.other_mode));
        let (cbc, ctr) = match self.primary.mode() {
            Mode::Cbc => (mine, theirs),
            Mode::Ctr => (theirs, mine),
        };
        let (mode, verified) = if ctr > cbc {
            (Mode::Ctr, ctr)
        } else {
            (Mode::Cbc, cbc)
        };
        Detection {
            mode: (verified > 0).then_some(mode),
            verified,
            sampled: encrypted.len(),
        }
    }

    /// Why `page` (its bytes as on disk) failed with `error` from the
    /// cipher: the alternative it verifies with, or what the error itself
    /// says. A checksum failure nothing explains is
    /// [`Cause::Unexplained`] until the rest of the table is known
    /// ([`Cause::settle`]).
    pub fn explain(&self, page: Page<'_>, error: &Error) -> Cause {
        let Some(fault) = error.page_fault() else {
            return Cause::Undiagnosed;
        };
        match fault {
            PageFault::KeyVersion(v) => return Cause::InvalidVersion(*v),
            PageFault::PageUsed { value, min, max } => {
                return Cause::PageUsed {
                    value: *value,
                    min: *min,
                    max: *max,
                };
            }
            PageFault::KeyProvider { key_id, .. } => return Cause::KeyProvider { key_id: *key_id },
            _ => {}
        }
        let checksum = matches!(fault, PageFault::Checksum { .. });
        if self.explained.fetch_add(1, Ordering::Relaxed) < self.limit {
            if let Some(cause) = self.alternative(page) {
                return cause;
            }
            if checksum
                && self.probed.fetch_add(1, Ordering::Relaxed) < PAGE_NUMBER_PROBES_MAX
                && let Some(number) = self.other_page_number(page)
            {
                return Cause::PageNumber(number);
            }
        } else if checksum {
            return Cause::Undiagnosed;
        }
        let provider = self.primary.provider();
        match fault {
            PageFault::KeyUnavailable { key_id, .. } | PageFault::NoKey { key_id }
                if matches!(provider.try_latest_version(*key_id), Ok(None)) =>
            {
                Cause::MissingKeyId(*key_id)
            }
            PageFault::KeyUnavailable { key_id, version } => Cause::MissingVersion {
                key_id: *key_id,
                version: *version,
            },
            PageFault::NoKey { key_id } => Cause::MissingKeyId(*key_id),
            PageFault::Checksum { stored, computed } => Cause::Unexplained {
                stored: *stored,
                computed: *computed,
            },
            _ => Cause::Undiagnosed,
        }
    }

    /// Checks pages (as on disk; they are not modified) and says why the
    /// failing ones fail.
    pub fn check<'a>(&self, pages: impl IntoIterator<Item = Page<'a>>) -> Diagnosis {
        let mut diagnosis = Diagnosis::default();
        let mut scratch = Vec::new();
        for page in pages {
            scratch.clear();
            scratch.extend_from_slice(page.data);
            match self
                .primary
                .decrypt_page(page.file, page.number, &mut scratch)
            {
                Ok(PageStatus::Encrypted { .. }) => diagnosis.verified += 1,
                Ok(_) => diagnosis.unencrypted += 1,
                Err(error) => {
                    let cause = self.explain(page, &error);
                    diagnosis.failures.push((page.file, page.number, cause));
                }
            }
        }
        diagnosis
    }

    /// Checks every page of a file's bytes; a partial last page is
    /// [`Cause::Truncated`].
    pub fn check_file(&self, file: PageFile, bytes: &[u8]) -> Diagnosis {
        let bs = self.primary.geometry().block_size as usize;
        let pages = Self::pages(file, bytes, bs);
        let whole = pages.len();
        let mut diagnosis = self.check(pages);
        let tail = bytes.len() - whole * bs.max(1);
        if tail > 0 {
            let number = u32::try_from(whole).unwrap_or(u32::MAX);
            let cause = Cause::Truncated { have: tail as u64 };
            diagnosis.failures.push((file, number, cause));
        }
        diagnosis
    }

    /// When nothing verifies: do the first data pages (`data_file`, the
    /// start of the `.MAD` file, 128 KiB is enough) decrypt as pages of
    /// another block size? Then the header's block size does not match
    /// the pages ([`Cause::BlockSize`]).
    pub fn probe_block_size(&self, data_file: &[u8]) -> Option<u32> {
        let table = self.primary.geometry();
        for bs in (4096..=32768u32)
            .step_by(1024)
            .filter(|&bs| bs != table.block_size)
        {
            let geometry = TableGeometry {
                block_size: bs,
                keystart: u64::from(bs),
                transactional: table.transactional,
            };
            for mode in [Mode::Cbc, Mode::Ctr] {
                let cipher = TableCipher::new(
                    geometry,
                    *self.primary.crypt(),
                    self.primary.key_id(),
                    mode,
                    Arc::clone(self.primary.provider()),
                );
                let pages = data_file.chunks_exact(bs as usize).zip(0u32..).skip(1);
                for (page, number) in pages.take(3) {
                    if verifies(&cipher, PageFile::Data, number, page) {
                        return Some(bs);
                    }
                }
            }
        }
        None
    }

    /// The alternative (algorithm, key id) the page verifies with.
    fn alternative(&self, page: Page<'_>) -> Option<Cause> {
        let other_mode = (Cause::Algorithm(self.other_mode.mode()), &self.other_mode);
        let key_ids = self
            .other_key_ids
            .iter()
            .map(|(cause, c)| (cause.clone(), c));
        std::iter::once(other_mode)
            .chain(key_ids)
            .find(|(_, cipher)| verifies(cipher, page.file, page.number, page.data))
            .map(|(cause, _)| cause)
    }

    /// The page number, near the page's own, under which its bytes verify.
    fn other_page_number(&self, page: Page<'_>) -> Option<u32> {
        (1..=PAGE_NUMBER_WINDOW)
            .flat_map(|d| [page.number.checked_sub(d), page.number.checked_add(d)])
            .flatten()
            .find(|&n| verifies(&self.primary, page.file, n, page.data))
    }
}

/// Whether `data` decrypts and verifies as encrypted page `number`.
fn verifies(cipher: &TableCipher, file: PageFile, number: u32, data: &[u8]) -> bool {
    let mut scratch = data.to_vec();
    matches!(
        cipher.decrypt_page(file, number, &mut scratch),
        Ok(PageStatus::Encrypted { .. })
    )
}

fn other(mode: Mode) -> Mode {
    match mode {
        Mode::Cbc => Mode::Ctr,
        Mode::Ctr => Mode::Cbc,
    }
}

/// A cipher for the same table and provider with another key id or
/// algorithm, on the same backend.
fn sibling(cipher: &TableCipher, key_id: u32, mode: Mode) -> TableCipher {
    let build = || {
        TableCipher::new(
            *cipher.geometry(),
            *cipher.crypt(),
            key_id,
            mode,
            Arc::clone(cipher.provider()),
        )
    };
    // The backend runs here: `cipher` was built with it.
    build()
        .with_backend(cipher.backend())
        .unwrap_or_else(|_| build())
}
