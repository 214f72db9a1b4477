//! Counting a table's pages: by kind, by key version, verified or failed,
//! with the problems found; [`census`] counts without keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::outcome::ToolError;
use super::progress::Progress;
use super::scan::PagedFile;
use super::table::Table;
use crate::aria::{PageFile, PageKind, TableGeometry};
use crate::diagnose::Cause;

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
