//! Reading a table's pages: positioned reads in parallel batches, the
//! ciphers of a table, and page counts by kind and key version.
//!
//! Files are read with positioned reads, one batch of [`BATCH_PAGES`] pages
//! per task, so every core reads and decrypts at once and only a few
//! batches are in memory, whatever the size of the table.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use super::diagnose::Problem;
use super::keys::Keys;
use super::outcome::ToolError;
use super::progress::Progress;
use super::table::Table;
use crate::aria::{CryptData, PageFile, PageKind, PageRef, TableCipher, TableGeometry};
use crate::kernel::{Backend, Mode};
use crate::policy::{self, TableKind};

/// Pages per batch: enough for the kernel's multi-buffer lanes, small
/// enough that every core gets work on small tables.
pub const BATCH_PAGES: usize = 64;

/// One file of a table, opened for positioned reads.
#[derive(Debug)]
pub struct PagedFile<'a> {
    /// Index or data file.
    pub kind: PageFile,
    /// Its path.
    pub path: &'a Path,
    file: File,
    /// Its length.
    pub len: u64,
    block_size: usize,
}

impl<'a> PagedFile<'a> {
    /// Opens `path` for reading.
    ///
    /// # Errors
    /// Exit status 2 if it cannot be opened, or has more pages than Aria's
    /// 32-bit page numbers allow.
    pub fn open(kind: PageFile, path: &'a Path, block_size: usize) -> Result<Self, ToolError> {
        let file = File::open(path).map_err(|e| ToolError::io(path, &e))?;
        let len = file.metadata().map_err(|e| ToolError::io(path, &e))?.len();
        if len / block_size as u64 > u64::from(u32::MAX) {
            return Err(ToolError::input(format!(
                "{}: {len} bytes is more pages than Aria can number",
                path.display()
            )));
        }
        Ok(PagedFile {
            kind,
            path,
            file,
            len,
            block_size,
        })
    }

    /// Whole pages.
    pub fn pages(&self) -> u64 {
        self.len / self.block_size as u64
    }

    /// Bytes of a partial last page (0 if the file is whole pages).
    pub fn tail(&self) -> u64 {
        self.len % self.block_size as u64
    }

    /// Reads whole pages from page `first` into `buf`.
    ///
    /// # Errors
    /// Exit status 2 on a read error.
    pub fn read_pages(&self, first: u64, buf: &mut [u8]) -> Result<(), ToolError> {
        self.file
            .read_exact_at(buf, first * self.block_size as u64)
            .map_err(|e| ToolError::io(self.path, &e))
    }

    /// Runs `f(first_page, pages)` on every batch of whole pages, in
    /// parallel; results in file order.
    ///
    /// # Errors
    /// The first read error or error of `f`.
    pub fn for_batches<T, F>(&self, progress: &Progress, f: F) -> Result<Vec<T>, ToolError>
    where
        T: Send,
        F: Fn(u32, &mut [u8]) -> Result<T, ToolError> + Sync,
    {
        let pages = self.pages();
        let bs = self.block_size;
        (0..pages.div_ceil(BATCH_PAGES as u64))
            .into_par_iter()
            .map_init(Vec::new, |buf, batch| {
                let first = batch * BATCH_PAGES as u64;
                let count = (pages - first).min(BATCH_PAGES as u64) as usize;
                buf.resize(count * bs, 0);
                self.read_pages(first, buf)?;
                // `pages` fits 32-bit page numbers (checked in `open`).
                let result = f(first as u32, buf);
                progress.inc(buf.len() as u64);
                result
            })
            .collect()
    }
}

/// The pages of a buffer as a batch for the library.
pub fn page_refs(first: u32, buf: &mut [u8], block_size: usize) -> Vec<PageRef<'_>> {
    buf.chunks_exact_mut(block_size)
        .zip(first..)
        .map(|(data, number)| PageRef { number, data })
        .collect()
}

/// Builds ciphers for one table with the tool's options.
#[derive(Clone, Copy, Debug)]
pub struct CipherFactory<'a> {
    /// The table.
    pub table: &'a Table,
    /// `--backend`.
    pub backend: Option<Backend>,
}

impl CipherFactory<'_> {
    /// A cipher for the table with this key id, mode and provider; `crypt`
    /// replaces the table's own crypt data (a fresh per-table key).
    ///
    /// # Errors
    /// Exit status 2 for an unencrypted table or an unsupported backend.
    pub fn cipher(
        &self,
        keys: &Keys,
        key_id: u32,
        mode: Mode,
        crypt: Option<CryptData>,
    ) -> Result<TableCipher, ToolError> {
        let crypt = crypt.or(self.table.header.crypt).ok_or_else(|| {
            ToolError::input(format!("{}: the table is not encrypted", self.table.name()))
        })?;
        self.with_geometry(self.table.header.geometry, crypt, keys, key_id, mode)
    }

    fn with_geometry(
        &self,
        geometry: TableGeometry,
        crypt: CryptData,
        keys: &Keys,
        key_id: u32,
        mode: Mode,
    ) -> Result<TableCipher, ToolError> {
        let cipher = TableCipher::new(geometry, crypt, key_id, mode, Arc::clone(&keys.provider))
            .with_files(&self.table.files.mai, &self.table.files.mad);
        match self.backend {
            Some(backend) => cipher.with_backend(backend).map_err(ToolError::lib),
            None => Ok(cipher),
        }
    }
}

/// The key id of a table: `--key-id`, or the server's rule.
///
/// # Errors
/// The provider's failure when the rule has to ask it.
pub fn key_id_for(table: &Table, keys: &Keys) -> Result<(u32, bool), crate::Error> {
    match keys.key_id {
        Some(id) => Ok((id, true)),
        None => Ok((
            policy::try_key_id(TableKind::of(&table.header), &*keys.provider)?,
            false,
        )),
    }
}

/// Page counts and problems of a scan.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// All pages, a partial last page included.
    pub total: u64,
    /// Encrypted pages (verified + failed).
    pub encrypted: u64,
    /// Encrypted pages whose checksum verified.
    pub verified: u64,
    /// Encrypted pages that failed, and partial pages.
    pub failed: u64,
    /// Header, bitmap and never-written pages: nothing to decrypt.
    pub skipped: u64,
    /// Stamped key version → encrypted pages.
    pub versions: BTreeMap<u32, u64>,
    /// (file, page kind) → pages.
    pub kinds: BTreeMap<(&'static str, &'static str), u64>,
    /// Failures, in file and page order.
    pub problems: Vec<Problem>,
}

impl Tally {
    /// Adds another part's counts and problems.
    pub fn merge(&mut self, other: Tally) {
        self.total += other.total;
        self.encrypted += other.encrypted;
        self.verified += other.verified;
        self.failed += other.failed;
        self.skipped += other.skipped;
        for (v, n) in other.versions {
            *self.versions.entry(v).or_default() += n;
        }
        for (k, n) in other.kinds {
            *self.kinds.entry(k).or_default() += n;
        }
        self.problems.extend(other.problems);
    }

    /// Counts one page from its bytes (no keys needed); returns whether it
    /// is an encrypted page.
    pub fn count(
        &mut self,
        geometry: &TableGeometry,
        file: PageFile,
        number: u32,
        page: &[u8],
    ) -> bool {
        self.total += 1;
        let ext = file.extension();
        match geometry.classify(file, number, page) {
            Ok(PageKind::Encrypted(layout)) => {
                self.encrypted += 1;
                *self
                    .versions
                    .entry(layout.try_key_version(page).unwrap_or(0))
                    .or_default() += 1;
                *self.kinds.entry((ext, layout.kind.name())).or_default() += 1;
                true
            }
            Ok(kind) => {
                self.skipped += 1;
                let name = match kind {
                    PageKind::Header => "header",
                    PageKind::Bitmap => "bitmap",
                    _ => "unwritten",
                };
                *self.kinds.entry((ext, name)).or_default() += 1;
                false
            }
            Err(_) => {
                // An impossible index header: still an encrypted page, one
                // that fails.
                self.encrypted += 1;
                *self.kinds.entry((ext, "damaged")).or_default() += 1;
                true
            }
        }
    }

    /// Whether every encrypted page verified and no page is cut short.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.problems.is_empty()
    }
}

/// Reads every page of an encrypted PAGE table without keys: kinds and
/// stamped key versions.
///
/// # Errors
/// Exit status 2 on a read error.
pub fn census(table: &Table, progress: &Progress) -> Result<Tally, ToolError> {
    let bs = table.block_size();
    let geometry = table.header.geometry;
    let mut tally = Tally::default();
    for (kind, path, _) in table.files() {
        if kind == PageFile::Data && !table.paged_data() {
            tally.total += table.mad_len.div_ceil(bs as u64);
            tally.skipped += table.mad_len.div_ceil(bs as u64);
            continue;
        }
        let file = PagedFile::open(kind, path, bs)?;
        let parts = file.for_batches(progress, |first, buf| {
            let mut part = Tally::default();
            for (page, number) in buf.chunks_exact(bs).zip(first..) {
                if table.header.is_encrypted() {
                    part.count(&geometry, kind, number, page);
                } else {
                    part.count_plain(&geometry, kind, number, page);
                }
            }
            Ok(part)
        })?;
        for part in parts {
            tally.merge(part);
        }
        if file.tail() > 0 {
            tally.total += 1;
            tally.skipped += 1;
            *tally
                .kinds
                .entry((kind.extension(), "partial"))
                .or_default() += 1;
        }
    }
    Ok(tally)
}

impl Tally {
    /// Counts a page of an unencrypted table by kind only.
    fn count_plain(&mut self, geometry: &TableGeometry, file: PageFile, number: u32, page: &[u8]) {
        self.total += 1;
        self.skipped += 1;
        let name = match geometry.classify(file, number, page) {
            Ok(PageKind::Header) => "header",
            Ok(PageKind::Bitmap) => "bitmap",
            Ok(PageKind::Unwritten) => "unwritten",
            Ok(PageKind::Encrypted(layout)) => layout.kind.name(),
            Err(_) => "other",
        };
        *self.kinds.entry((file.extension(), name)).or_default() += 1;
    }
}
