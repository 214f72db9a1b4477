//! Reading a table's files: positioned reads in parallel batches.
//!
//! Files are read with positioned reads, one batch of [`BATCH_PAGES`] pages
//! per task, so every core reads and decrypts at once and only a few
//! batches are in memory, whatever the size of the table.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rayon::prelude::*;

use super::outcome::ToolError;
use super::progress::Progress;
use crate::aria::{PageFile, PageRef};

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
