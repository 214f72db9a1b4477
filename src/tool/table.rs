//! An opened table: its header and the sizes of its files.

use std::path::Path;

use super::outcome::ToolError;
use super::walk::TableRef;
use crate::aria::{PageFile, RowFormat, TableHeader};

/// A table whose `.MAI` header parsed.
#[derive(Debug)]
pub struct Table {
    /// Its files.
    pub files: TableRef,
    /// The parsed `.MAI` header.
    pub header: TableHeader,
    /// `.MAI` length in bytes.
    pub mai_len: u64,
    /// `.MAD` length in bytes.
    pub mad_len: u64,
}

impl Table {
    /// Reads the header and the file sizes.
    ///
    /// # Errors
    /// Exit status 2: a file cannot be read, or the `.MAI` header is not a
    /// valid Aria header.
    pub fn open(files: &TableRef) -> Result<Table, ToolError> {
        let len = |path: &Path| {
            let meta = std::fs::metadata(path).map_err(|e| ToolError::io(path, &e))?;
            if !meta.is_file() {
                return Err(ToolError::input(format!(
                    "{}: not a regular file",
                    path.display()
                )));
            }
            Ok(meta.len())
        };
        let mai_len = len(&files.mai)?;
        let mad_len = len(&files.mad)?;
        let header = TableHeader::read(&files.mai).map_err(ToolError::lib)?;
        Ok(Table {
            files: files.clone(),
            header,
            mai_len,
            mad_len,
        })
    }

    /// The table as the operator named it.
    pub fn name(&self) -> String {
        self.files.stem.display().to_string()
    }

    /// Page size.
    pub fn block_size(&self) -> usize {
        self.header.geometry.block_size as usize
    }

    /// Both files: kind, path, length.
    pub fn files(&self) -> [(PageFile, &Path, u64); 2] {
        [
            (PageFile::Index, self.files.mai.as_path(), self.mai_len),
            (PageFile::Data, self.files.mad.as_path(), self.mad_len),
        ]
    }

    /// Whether the `.MAD` file is made of pages (only PAGE tables).
    pub fn paged_data(&self) -> bool {
        self.header.row_format == RowFormat::Page
    }

    /// Total pages of both files, a partial last page counted.
    pub fn page_count(&self) -> u64 {
        let bs = self.block_size() as u64;
        self.mai_len.div_ceil(bs) + self.mad_len.div_ceil(bs)
    }
}
