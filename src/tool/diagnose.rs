//! Verifying every page of a table and saying why a page fails: by trying
//! the alternatives (the other algorithm, the key file's other key ids, a
//! key version it lacks) and by looking at the rest of the table (then the
//! page itself is damaged).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::detect::Choice;
use super::keys::Keys;
use super::outcome::ToolError;
use super::progress::Progress;
use super::scan::{CipherFactory, PagedFile, Tally, page_refs};
use super::table::Table;
use crate::aria::{PageFile, PageStatus, TableCipher, TableGeometry};
use crate::kernel::Mode;
use crate::{Error, PageFault};

/// Failing pages that get alternatives tried; past this, a table is broken
/// throughout and more diagnosis only costs time.
const DIAGNOSE_MAX: usize = 4096;

/// At most this many other key ids are tried when a page fails.
const OTHER_KEY_IDS_MAX: usize = 16;

/// Why a page (or a table) fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The page verifies with the other algorithm.
    Algorithm(Mode),
    /// The page verifies with another key id of the provider (and this
    /// algorithm).
    KeyId(u32, Mode),
    /// The provider has no key with the table's key id.
    MissingKeyId(u32),
    /// The provider lacks the version stamped in the page.
    MissingVersion {
        /// Key id.
        key_id: u32,
        /// The stamped version.
        version: u32,
    },
    /// Version 0 or 0xFFFFFFFF stamped in the page.
    InvalidVersion(u32),
    /// The checksum fails, the rest of the table verifies and no
    /// alternative decrypts the page: its bytes are damaged.
    Content {
        /// Stored CRC.
        stored: u32,
        /// CRC of the decrypted page.
        computed: u32,
    },
    /// An index page whose `page_used` is impossible.
    PageUsed {
        /// The stored value.
        value: u32,
        /// Smallest valid.
        min: u32,
        /// Largest valid.
        max: u32,
    },
    /// No page of the table verifies with any key id or algorithm tried.
    Key,
    /// A partial last page of this many bytes.
    Truncated {
        /// Bytes present.
        have: u64,
    },
    /// The pages are this size, not the header's block size.
    BlockSize(u32),
    /// A checksum failure left undiagnosed (too many failing pages).
    Undiagnosed,
    /// A checksum failure not yet classified (resolved after the scan).
    Unexplained {
        /// Stored CRC.
        stored: u32,
        /// CRC of the decrypted page.
        computed: u32,
    },
}

impl Cause {
    /// Which of key id, key version, algorithm, page content (or the key
    /// itself, or the block size) is wrong: the JSON `cause`.
    pub fn class(&self) -> &'static str {
        match self {
            Cause::Algorithm(_) => "algorithm",
            Cause::KeyId(..) | Cause::MissingKeyId(_) => "key_id",
            Cause::MissingVersion { .. } | Cause::InvalidVersion(_) => "key_version",
            Cause::Content { .. }
            | Cause::PageUsed { .. }
            | Cause::Truncated { .. }
            | Cause::Unexplained { .. } => "page_content",
            Cause::Key | Cause::Undiagnosed => "key",
            Cause::BlockSize(_) => "block_size",
        }
    }

    /// A stable name of the precise cause, for JSON and grouping.
    pub fn name(&self) -> &'static str {
        match self {
            Cause::Algorithm(_) => "wrong_algorithm",
            Cause::KeyId(..) => "wrong_key_id",
            Cause::MissingKeyId(_) => "missing_key_id",
            Cause::MissingVersion { .. } => "missing_key_version",
            Cause::InvalidVersion(_) => "invalid_key_version",
            Cause::Content { .. } | Cause::Unexplained { .. } => "corrupt_page",
            Cause::PageUsed { .. } => "corrupt_index_header",
            Cause::Key => "wrong_key",
            Cause::Truncated { .. } => "truncated",
            Cause::BlockSize(_) => "block_size_mismatch",
            Cause::Undiagnosed => "undiagnosed",
        }
    }
}

/// One problem: a page (or a whole file) and why it fails.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// Page number, if the problem is one page.
    pub page: Option<u32>,
    /// Why.
    pub cause: Cause,
    /// The sentence that explains it.
    pub message: String,
}

/// The ciphers that verify a table and diagnose its failures.
pub struct Checker<'a> {
    keys: &'a Keys,
    choice: Choice,
    primary: TableCipher,
    /// Other algorithm, other key ids: what a failing page is tried with.
    alternatives: Vec<(Cause, TableCipher)>,
    diagnosed: AtomicUsize,
}

impl std::fmt::Debug for Checker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("choice", &self.choice)
            .finish_non_exhaustive()
    }
}

impl<'a> Checker<'a> {
    /// Ciphers for `choice` and its alternatives.
    ///
    /// # Errors
    /// As [`CipherFactory::cipher`].
    pub fn new(
        factory: CipherFactory<'_>,
        keys: &'a Keys,
        choice: Choice,
    ) -> Result<Self, ToolError> {
        let primary = factory.cipher(keys, choice.key_id, choice.mode, None)?;
        let other = match choice.mode {
            Mode::Cbc => Mode::Ctr,
            Mode::Ctr => Mode::Cbc,
        };
        let mut alternatives = vec![(
            Cause::Algorithm(other),
            factory.cipher(keys, choice.key_id, other, None)?,
        )];
        for id in keys
            .key_ids()
            .into_iter()
            .filter(|&id| id != choice.key_id)
            .take(OTHER_KEY_IDS_MAX)
        {
            for mode in [choice.mode, other] {
                alternatives.push((
                    Cause::KeyId(id, mode),
                    factory.cipher(keys, id, mode, None)?,
                ));
            }
        }
        Ok(Checker {
            keys,
            choice,
            primary,
            alternatives,
            diagnosed: AtomicUsize::new(0),
        })
    }

    /// The cipher that verifies.
    pub fn cipher(&self) -> &TableCipher {
        &self.primary
    }

    /// Why page `number` (still as on disk in `page`) failed with `err`.
    fn diagnose(&self, file: PageFile, number: u32, page: &[u8], err: &Error) -> Cause {
        let Error::Page { fault, .. } = err else {
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
            _ => {}
        }
        if self.diagnosed.fetch_add(1, Ordering::Relaxed) < DIAGNOSE_MAX {
            let mut scratch = page.to_vec();
            for (cause, cipher) in &self.alternatives {
                scratch.copy_from_slice(page);
                if let Ok(PageStatus::Encrypted { .. }) =
                    cipher.decrypt_page(file, number, &mut scratch)
                {
                    return cause.clone();
                }
            }
        } else if matches!(fault, PageFault::Checksum { .. }) {
            return Cause::Undiagnosed;
        }
        match fault {
            PageFault::KeyUnavailable { key_id, .. } | PageFault::NoKey { key_id }
                if self.keys.latest(*key_id).is_none() =>
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

    /// Decrypts a batch in place, counts it and diagnoses its failures.
    /// Failing pages are left as on disk.
    pub fn check_batch(&self, file: PageFile, path: &Path, first: u32, buf: &mut [u8]) -> Tally {
        let bs = self.primary.geometry().block_size as usize;
        let geometry = *self.primary.geometry();
        let mut tally = Tally::default();
        for (page, number) in buf.chunks_exact(bs).zip(first..) {
            tally.count(&geometry, file, number, page);
        }
        let mut refs = page_refs(first, buf, bs);
        let results = self.primary.decrypt_pages(file, &mut refs);
        for (page, result) in refs.iter().zip(results) {
            match result {
                Ok(PageStatus::Encrypted { .. }) => tally.verified += 1,
                Ok(_) => {}
                Err(err) => {
                    tally.failed += 1;
                    let cause = self.diagnose(file, page.number, page.data, &err);
                    tally.problems.push(Problem {
                        path: path.to_path_buf(),
                        page: Some(page.number),
                        cause,
                        message: String::new(),
                    });
                }
            }
        }
        tally
    }

    /// Verifies every page of one file; `sink` sees each batch after
    /// decryption (pages that fail are left as on disk).
    ///
    /// # Errors
    /// A read error, or the first error of `sink`.
    pub fn scan_file<S>(
        &self,
        file: &PagedFile<'_>,
        progress: &Progress,
        sink: S,
    ) -> Result<Tally, ToolError>
    where
        S: Fn(u32, &[u8]) -> Result<(), ToolError> + Sync,
    {
        let mut tally = Tally::default();
        let parts = file.for_batches(progress, |first, buf| {
            let part = self.check_batch(file.kind, file.path, first, buf);
            sink(first, buf)?;
            Ok(part)
        })?;
        for part in parts {
            tally.merge(part);
        }
        if file.tail() > 0 {
            // A page that should be there and cannot be read whole.
            tally.total += 1;
            tally.encrypted += 1;
            tally.failed += 1;
            tally.problems.push(Problem {
                path: file.path.to_path_buf(),
                page: u32::try_from(file.pages()).ok(),
                cause: Cause::Truncated { have: file.tail() },
                message: String::new(),
            });
        }
        Ok(tally)
    }

    /// Verifies every page of the table.
    ///
    /// # Errors
    /// Exit status 2 on a read error.
    pub fn verify(&self, table: &Table, progress: &Progress) -> Result<Tally, ToolError> {
        let bs = table.block_size();
        let mut tally = Tally::default();
        for (kind, path, _) in table.files() {
            let file = PagedFile::open(kind, path, bs)?;
            tally.merge(self.scan_file(&file, progress, |_, _| Ok(()))?);
        }
        self.conclude(table, &mut tally)?;
        Ok(tally)
    }

    /// Settles what a page-level look could not: damaged pages versus a
    /// wrong key, a block size that does not match; writes the messages.
    ///
    /// # Errors
    /// Exit status 2 on a read error.
    pub fn conclude(&self, table: &Table, tally: &mut Tally) -> Result<(), ToolError> {
        let verified = tally.verified;
        for problem in &mut tally.problems {
            if let Cause::Unexplained { stored, computed } = problem.cause {
                problem.cause = if verified > 0 {
                    Cause::Content { stored, computed }
                } else {
                    Cause::Key
                };
            }
        }
        if verified == 0
            && tally.failed > 0
            && let Some(actual) = probe_block_size(table, self.keys, self.choice.key_id)?
        {
            tally.problems.insert(
                0,
                Problem {
                    path: table.files.mai.clone(),
                    page: None,
                    cause: Cause::BlockSize(actual),
                    message: String::new(),
                },
            );
        }
        let bs = table.block_size() as u64;
        for problem in &mut tally.problems {
            problem.message = self.explain(problem, verified, bs, tally.encrypted);
        }
        Ok(())
    }

    fn explain(&self, problem: &Problem, verified: u64, bs: u64, encrypted: u64) -> String {
        let Choice { key_id, mode, .. } = self.choice;
        let keys = self.keys;
        match &problem.cause {
            Cause::Algorithm(other) => format!(
                "checksum mismatch with {mode}, the page verifies with {other}: wrong algorithm (use --algorithm {other})"
            ),
            Cause::KeyId(id, m) if *m == mode => format!(
                "checksum mismatch with key id {key_id}, the page verifies with key id {id}: wrong key id (use --key-id {id})"
            ),
            Cause::KeyId(id, m) => format!(
                "checksum mismatch with key id {key_id} and {mode}, the page verifies with key id {id} and {m}: wrong key id and algorithm (use --key-id {id} --algorithm {m})"
            ),
            Cause::MissingKeyId(id) => format!(
                "key id {id} is not in {} (it has key id {}): wrong or missing key id",
                keys.name(),
                super::keys::list(&keys.key_ids())
            ),
            Cause::MissingVersion { key_id, version } => format!(
                "key version {version} of key id {key_id} is not in {} (it has version {}): missing key version",
                keys.name(),
                super::keys::list(&keys.versions(*key_id).unwrap_or_default())
            ),
            Cause::InvalidVersion(v) => format!(
                "invalid key version {v} stamped in the page (0 and 4294967295 are never written): the page header is damaged"
            ),
            Cause::Content { stored, computed } => format!(
                "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the page content is damaged; {verified} other encrypted pages verify and no other key id or algorithm decrypts it"
            ),
            Cause::PageUsed { value, min, max } => {
                format!("index page header damaged: page_used {value} outside {min}..={max}")
            }
            Cause::Key => {
                let others = keys
                    .key_ids()
                    .into_iter()
                    .filter(|&id| id != key_id)
                    .collect::<Vec<_>>();
                let tried = if others.is_empty() {
                    "nor with the other algorithm".to_string()
                } else {
                    format!(
                        "nor with key id {} or the other algorithm",
                        super::keys::list(&others)
                    )
                };
                format!(
                    "checksum mismatch: wrong key; none of the {encrypted} encrypted pages verifies with key id {key_id} of {} ({mode}), {tried}",
                    keys.name()
                )
            }
            Cause::Truncated { have } => format!(
                "cut short ({have} of {bs} bytes): truncated file, or a block size that does not match"
            ),
            Cause::BlockSize(actual) => format!(
                "block size mismatch: the header says {bs} bytes but the pages decrypt as {actual}-byte pages"
            ),
            Cause::Undiagnosed | Cause::Unexplained { .. } => {
                "checksum mismatch (not diagnosed: too many failing pages)".to_string()
            }
        }
    }
}

/// When nothing verifies: do the data pages decrypt as pages of another
/// size? Then the header's block size does not match the pages.
fn probe_block_size(table: &Table, keys: &Keys, key_id: u32) -> Result<Option<u32>, ToolError> {
    let Some(crypt) = table.header.crypt else {
        return Ok(None);
    };
    let file = File::open(&table.files.mad).map_err(|e| ToolError::io(&table.files.mad, &e))?;
    let header_bs = table.header.geometry.block_size;
    for bs in (4096..=32768u32)
        .step_by(1024)
        .filter(|&bs| bs != header_bs)
    {
        let geometry = TableGeometry {
            block_size: bs,
            keystart: u64::from(bs),
            transactional: table.header.geometry.transactional,
        };
        for mode in [Mode::Cbc, Mode::Ctr] {
            let cipher =
                TableCipher::new(geometry, crypt, key_id, mode, Arc::clone(&keys.provider));
            for number in 1..4u32 {
                let mut page = vec![0u8; bs as usize];
                if file
                    .read_exact_at(&mut page, u64::from(number) * u64::from(bs))
                    .is_err()
                {
                    break;
                }
                if let Ok(PageStatus::Encrypted { .. }) =
                    cipher.decrypt_page(PageFile::Data, number, &mut page)
                {
                    return Ok(Some(bs));
                }
            }
        }
    }
    Ok(None)
}
