//! Verifying every page of a table and saying why a page fails, with the
//! library's [`Diagnoser`] (the other algorithm, the key file's other key
//! ids, neighbouring page numbers, a key version it lacks, and the rest of
//! the table), and the sentences that explain it.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::ciphers::CipherFactory;
use super::counters::{self, Pass};
use super::detect::Choice;
use super::keys::Keys;
use super::outcome::ToolError;
use super::progress::Progress;
use super::scan::{PagedFile, page_refs};
use super::table::Table;
use super::tally::Problem;
use super::tally::Tally;
use crate::aria::{PageFile, PageStatus, TableCipher};
pub use crate::diagnose::Cause;
use crate::diagnose::{Diagnoser, Page};

/// Failing pages that get alternatives tried; past this, a table is broken
/// throughout and more diagnosis only costs time.
const DIAGNOSE_MAX: usize = 4096;

/// Bytes of the data file the block-size probe reads: its first pages at
/// the largest block size.
const PROBE_BYTES: u64 = 4 * 32768;

/// A batch of pages after verification, as a sink sees it.
#[derive(Debug)]
pub struct Checked<'b> {
    /// Number of its first page.
    pub first: u32,
    /// Its pages: plaintext where `plain` says so, else as on disk.
    pub pages: &'b mut [u8],
    /// Which pages were decrypted (encrypted pages that verified).
    pub plain: &'b [bool],
    /// No page of the batch failed.
    pub clean: bool,
}

/// The ciphers that verify a table and diagnose its failures.
pub struct Checker<'a> {
    keys: &'a Keys,
    choice: Choice,
    diagnoser: Diagnoser,
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
        let diagnoser = Diagnoser::new(primary)
            .with_key_ids(keys.key_ids())
            .with_limit(DIAGNOSE_MAX);
        Ok(Checker {
            keys,
            choice,
            diagnoser,
        })
    }

    /// The cipher that verifies.
    pub fn cipher(&self) -> &TableCipher {
        self.diagnoser.cipher()
    }

    /// Decrypts a batch in place, counts it and diagnoses its failures.
    /// Failing pages are left as on disk; the second value says which pages
    /// now hold plaintext.
    pub fn check_batch(
        &self,
        file: PageFile,
        path: &Path,
        first: u32,
        buf: &mut [u8],
    ) -> (Tally, Vec<bool>) {
        let bs = self.cipher().geometry().block_size as usize;
        let geometry = *self.cipher().geometry();
        let mut tally = Tally::default();
        for (page, number) in buf.chunks_exact(bs).zip(first..) {
            tally.count(&geometry, file, number, page);
        }
        let mut refs = page_refs(first, buf, bs);
        counters::add(Pass::Classify, refs.len());
        counters::add(Pass::Decrypt, refs.len());
        let results = self.cipher().decrypt_pages(file, &mut refs);
        let mut plain = Vec::with_capacity(refs.len());
        for (page, result) in refs.iter().zip(results) {
            plain.push(matches!(result, Ok(PageStatus::Encrypted { .. })));
            match result {
                Ok(PageStatus::Encrypted { .. }) => tally.verified += 1,
                Ok(_) => {}
                Err(err) => {
                    tally.failed += 1;
                    let on_disk = Page {
                        file,
                        number: page.number,
                        data: page.data,
                    };
                    let cause = self.diagnoser.explain(on_disk, &err);
                    tally.problems.push(Problem {
                        path: path.to_path_buf(),
                        page: Some(page.number),
                        cause,
                        message: String::new(),
                    });
                }
            }
        }
        (tally, plain)
    }

    /// Verifies every page of one file; `sink` sees each batch after
    /// decryption.
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
        S: Fn(Checked<'_>) -> Result<(), ToolError> + Sync,
    {
        let mut tally = Tally::default();
        let parts = file.for_batches(progress, |first, buf| {
            let (part, plain) = self.check_batch(file.kind, file.path, first, buf);
            sink(Checked {
                first,
                pages: buf,
                plain: &plain,
                clean: part.failed == 0,
            })?;
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
            tally.merge(self.scan_file(&file, progress, |_| Ok(()))?);
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
            problem.cause = problem.cause.clone().settle(verified > 0);
        }
        if verified == 0
            && tally.failed > 0
            && let Some(actual) = self.probe_block_size(table)?
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
            Cause::KeyId {
                key_id: id,
                mode: m,
            } if *m == mode => format!(
                "checksum mismatch with key id {key_id}, the page verifies with key id {id}: wrong key id (use --key-id {id})"
            ),
            Cause::KeyId {
                key_id: id,
                mode: m,
            } => format!(
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
            Cause::KeyProvider { key_id } => format!(
                "the key provider failed for key id {key_id} ({})",
                keys.name()
            ),
            Cause::PageNumber(number) => format!(
                "checksum mismatch, the bytes verify as page {number}: written or read at the wrong place"
            ),
            Cause::Damaged { stored, computed } => format!(
                "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the page content is damaged; {verified} other encrypted pages verify and no other key id or algorithm decrypts it"
            ),
            Cause::PageUsed { value, min, max } => {
                format!("index page header damaged: page_used {value} outside {min}..={max}")
            }
            Cause::WrongKey => {
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

    /// When nothing verifies: do the data pages decrypt as pages of another
    /// size? Then the header's block size does not match the pages.
    fn probe_block_size(&self, table: &Table) -> Result<Option<u32>, ToolError> {
        let path = &table.files.mad;
        let mut head = Vec::new();
        File::open(path)
            .and_then(|file| file.take(PROBE_BYTES).read_to_end(&mut head))
            .map_err(|e| ToolError::io(path, &e))?;
        Ok(self.diagnoser.probe_block_size(&head))
    }
}
