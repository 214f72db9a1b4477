//! An opened table: its header and the sizes of its files.

use std::io::Read;
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
    /// The header's state: open count, flags, recorded file lengths.
    pub state: TableState,
}

/// The part of a `.MAI` header's state (`MARIA_STATE_INFO`, right after the
/// 24-byte file header) that says whether the table was closed cleanly and
/// how long its files were when it was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableState {
    /// Opens that changed the table and have not closed it yet: not 0 while
    /// a server has changed it, or after a crash until recovery.
    pub open_count: u16,
    /// `STATE_*` flags.
    pub changed: u16,
    /// `.MAI` length when the state was last written.
    pub key_file_length: u64,
    /// `.MAD` length when the state was last written.
    pub data_file_length: u64,
}

/// `STATE_CRASHED`, `STATE_CRASHED_ON_REPAIR` and `STATE_IN_REPAIR`
/// (`storage/maria/maria_def.h`): the server marked the table crashed.
const STATE_CRASHED_FLAGS: u16 = 0x0002 | 0x0004 | 0x0400;
/// Offsets in the header (24-byte file header, open_count, changed, three
/// 7-byte LSNs, records, del, split, dellink, first_bitmap_with_space).
const OPEN_COUNT_AT: usize = 24;
const CHANGED_AT: usize = 26;
const KEY_FILE_LENGTH_AT: usize = 89;
const DATA_FILE_LENGTH_AT: usize = 97;
const STATE_END: usize = 105;

impl TableState {
    /// Reads the state from the first bytes of a `.MAI` file; `None` if
    /// there are too few.
    pub fn parse(bytes: &[u8]) -> Option<TableState> {
        let be16 = |at: usize| Some(u16::from_be_bytes(*bytes.get(at..)?.first_chunk()?));
        let be64 = |at: usize| Some(u64::from_be_bytes(*bytes.get(at..)?.first_chunk()?));
        Some(TableState {
            open_count: be16(OPEN_COUNT_AT)?,
            changed: be16(CHANGED_AT)?,
            key_file_length: be64(KEY_FILE_LENGTH_AT)?,
            data_file_length: be64(DATA_FILE_LENGTH_AT)?,
        })
    }

    /// Why the table was not closed cleanly, if it was not: a server has
    /// it open and changed, or crashed with it so, or marked it crashed.
    pub fn unclean(&self) -> Option<String> {
        if self.changed & STATE_CRASHED_FLAGS != 0 {
            Some("the server marked it crashed".into())
        } else if self.open_count != 0 {
            Some(format!(
                "it was not closed cleanly (open count {}): a server has it open, or crashed with it open",
                self.open_count
            ))
        } else {
            None
        }
    }
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
        let mut start = Vec::with_capacity(STATE_END);
        std::fs::File::open(&files.mai)
            .and_then(|f| f.take(STATE_END as u64).read_to_end(&mut start))
            .map_err(|e| ToolError::io(&files.mai, &e))?;
        let state = TableState::parse(&start).unwrap_or_default();
        Ok(Table {
            files: files.clone(),
            header,
            mai_len,
            mad_len,
            state,
        })
    }

    /// A file shorter than the header's state says, named with both
    /// lengths. Even an empty PAGE table's `.MAD` has its bitmap page.
    pub fn length_problem(&self) -> Option<String> {
        let mut data_min = self.state.data_file_length;
        if self.paged_data() {
            data_min = data_min.max(self.block_size() as u64);
        }
        let short = |path: &Path, have: u64, want: u64| {
            (have < want).then(|| {
                format!(
                    "{}: {have} bytes, but the table header records {want}: the file is truncated (restore it from a backup)",
                    path.display()
                )
            })
        };
        short(&self.files.mai, self.mai_len, self.state.key_file_length)
            .or_else(|| short(&self.files.mad, self.mad_len, data_min))
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
