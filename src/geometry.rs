//! Where a table's pages are and what each one holds: the two files, the
//! table's geometry, page kinds and where an encrypted page keeps its key
//! version, ciphertext and checksum (spec §5, §6). Below the crate's
//! [`Error`](crate::Error), which names [`PageFile`] and [`TableGeometry`];
//! re-exported from [`aria`](crate::aria).

use std::fmt;
use std::ops::Range;

use crate::fault::PageFault;

/// Which of a table's two files a page belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageFile {
    /// The `.MAI` file: header, then index pages from `keystart`.
    Index,
    /// The `.MAD` file: bitmap and data pages.
    Data,
}

impl PageFile {
    /// `"MAI"` or `"MAD"`.
    pub const fn extension(self) -> &'static str {
        match self {
            PageFile::Index => "MAI",
            PageFile::Data => "MAD",
        }
    }
}

impl fmt::Display for PageFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ".{}", self.extension())
    }
}

/// The kind of an encrypted page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncryptedKind {
    /// Data page type 0: unallocated (encrypted like a head page once written).
    Unallocated,
    /// Data page type 1: head page (row directory).
    Head,
    /// Data page type 2: tail page.
    Tail,
    /// Data page type 3 and above: full page (BLOB data).
    Full,
    /// An index (B-tree) page of the `.MAI` file.
    Index,
}

impl EncryptedKind {
    /// Short lowercase name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            EncryptedKind::Unallocated => "unallocated",
            EncryptedKind::Head => "head",
            EncryptedKind::Tail => "tail",
            EncryptedKind::Full => "full",
            EncryptedKind::Index => "index",
        }
    }
}

/// Where an encrypted page keeps its key version, its ciphertext and the
/// bytes its checksum covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Which kind of page.
    pub kind: EncryptedKind,
    /// Offset of the 4-byte little-endian key version.
    pub key_version_at: usize,
    /// The encrypted bytes (empty when an index page holds only its header).
    pub body: Range<usize>,
    /// Always `body.end`: the checksum covers the header and then the body
    /// of the plaintext, `[0, body.end)`, for every kind Aria has. Still
    /// filled by [`TableGeometry::classify`].
    #[deprecated(note = "equals body.end; use body.end")]
    pub crc_end: usize,
}

/// Room for the longest page header (21 bytes, a transactional index page).
pub(crate) const HEADER_MAX: usize = 32;

impl Layout {
    /// The key version stamped in `page`, or 0 when the field is not
    /// inside `page` (0 is never a valid version).
    #[deprecated(
        since = "0.1.1",
        note = "use `try_key_version`, which tells a field outside the page from a stamped 0"
    )]
    pub fn key_version(&self, page: &[u8]) -> u32 {
        self.try_key_version(page).unwrap_or(0)
    }

    /// The key version stamped in `page`; `None` when the 4-byte field at
    /// `key_version_at` is not inside `page` (a `Layout` built by hand, or
    /// a page shorter than its layout).
    pub fn try_key_version(&self, page: &[u8]) -> Option<u32> {
        read_le32(page, self.key_version_at)
    }

    /// The first `HEADER_MAX` bytes of `page` as the checksum reads them,
    /// with the key version zeroed; the header is the first `body.start`.
    /// Masked in registers instead of zeroed in the page: a 4-byte store
    /// read back as 16 bytes (the CRC prefix) would stall store-to-load
    /// forwarding once per page. The mask is a window into a constant, two
    /// vector loads: built with shifts of `u128` and byte-wise array
    /// copies, this took about 230 instructions a page (callgrind), half of
    /// what a page read costs beside its cipher; a comparison of each
    /// byte's index, about 10 times what the window takes.
    pub(crate) fn checksummed_header(&self, page: &[u8]) -> [u8; HEADER_MAX] {
        let mut header = match page.first_chunk::<HEADER_MAX>() {
            Some(first) => *first,
            None => {
                let mut short = [0; HEADER_MAX];
                short[..page.len()].copy_from_slice(page);
                short
            }
        };
        // A field past the first 32 bytes masks nothing; one that straddles
        // the 32nd byte, its bytes before it.
        let mask = HEADER_MAX
            .checked_sub(self.key_version_at)
            .and_then(|from| VERSION_WINDOW[from..].first_chunk::<HEADER_MAX>())
            .unwrap_or(&[0; HEADER_MAX]);
        for (byte, mask) in header.iter_mut().zip(mask) {
            *byte &= !mask;
        }
        header
    }
}

/// The key version's mask for the checksummed header: the `HEADER_MAX`
/// bytes from `HEADER_MAX - at` cover the version's bytes at `at`.
const VERSION_WINDOW: [u8; 2 * HEADER_MAX] = {
    let mut window = [0; 2 * HEADER_MAX];
    let mut i = 0;
    while i < size_of::<u32>() {
        window[HEADER_MAX + i] = 0xff;
        i += 1;
    }
    window
};

/// What a page is, from its plaintext header bytes (which encryption never
/// touches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// `.MAI` bytes below `keystart`: file header, never encrypted.
    Header,
    /// A `.MAD` bitmap page, never encrypted.
    Bitmap,
    /// All zero bytes: never written (a hole or preallocation).
    Unwritten,
    /// An encrypted page.
    Encrypted(Layout),
}

/// Data pages covered by one bitmap page, plus the bitmap itself.
pub fn pages_covered(block_size: u32) -> u32 {
    let covered = u64::from(block_size.saturating_sub(4)) / 6 * 16 + 1;
    u32::try_from(covered).unwrap_or(u32::MAX)
}

/// Block sizes a table can have: multiples of 1024 up to 32768 (MariaDB's
/// `aria_block_size` range, with 1024 and 2048 kept for old tables).
pub fn is_valid_block_size(block_size: u32) -> bool {
    (1024..=32768).contains(&block_size) && block_size.is_multiple_of(1024)
}

/// Data page header: LSN (7), type, directory count, first free entry,
/// free space (2), key version (4).
const DATA_HEADER: usize = 16;
const DATA_KEY_VERSION_AT: usize = 12;
/// Full page header: LSN (7), type, key version (4).
const FULL_HEADER: usize = 12;
const FULL_KEY_VERSION_AT: usize = 8;
const PAGE_TYPE_AT: usize = 7;
const PAGE_TYPE_MASK: u8 = 7;
/// The page checksum: the last four bytes of every page.
pub const CRC_LEN: usize = 4;

/// What the page layer needs to know about a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableGeometry {
    /// Page size in bytes.
    pub block_size: u32,
    /// Byte offset of the first index page in the `.MAI` file.
    pub keystart: u64,
    /// `TRANSACTIONAL=1` at creation: index pages carry a transaction id
    /// and a 21-byte header; otherwise 15 bytes (7 of them a random nonce).
    pub transactional: bool,
}

impl TableGeometry {
    /// Index page header length: key version at `kh - 8`, `page_used` at
    /// `kh - 2` (spec §5.4).
    pub fn index_header_len(&self) -> usize {
        if self.transactional { 21 } else { 15 }
    }

    /// The first page number of the index pages in the `.MAI` file.
    pub fn first_index_page(&self) -> u64 {
        self.keystart / u64::from(self.block_size.max(1))
    }

    /// Classifies page `page_no` of `file` from its bytes.
    ///
    /// # Errors
    /// [`PageFault::Size`] if `page` is not one block long,
    /// [`PageFault::PageUsed`] for an index page whose `page_used` is out of
    /// range: below the page header, or at or past `block_size - 4`, which
    /// the server's read hook refuses (`ma_crypt_index_post_read_hook`:
    /// `page_used >= block_size - CRC_SIZE` is `HA_ERR_DECRYPTION_FAILED`).
    pub fn classify(
        &self,
        file: PageFile,
        page_no: u32,
        page: &[u8],
    ) -> Result<PageKind, PageFault> {
        if !is_valid_block_size(self.block_size) {
            return Err(PageFault::BlockSize(self.block_size));
        }
        let bs = self.block_size as usize;
        if page.len() != bs {
            return Err(PageFault::Size {
                expected: bs,
                actual: page.len(),
            });
        }
        match file {
            PageFile::Index if u64::from(page_no) < self.first_index_page() => Ok(PageKind::Header),
            PageFile::Data if page_no.is_multiple_of(pages_covered(self.block_size)) => {
                Ok(PageKind::Bitmap)
            }
            _ if page.iter().all(|&b| b == 0) => Ok(PageKind::Unwritten),
            PageFile::Index => {
                let kh = self.index_header_len();
                let used = usize::from(u16::from_be_bytes([page[kh - 2], page[kh - 1]]));
                // As the server's read hook: `page_used` counts the header
                // and must end before the checksum.
                let max = bs - CRC_LEN - 1;
                if !(kh..=max).contains(&used) {
                    return Err(PageFault::PageUsed {
                        value: used as u32,
                        min: kh as u32,
                        max: max as u32,
                    });
                }
                #[allow(deprecated, reason = "crc_end is still filled for old callers")]
                Ok(PageKind::Encrypted(Layout {
                    kind: EncryptedKind::Index,
                    key_version_at: kh - 8,
                    body: kh..used,
                    crc_end: used,
                }))
            }
            PageFile::Data => {
                let (kind, header, version_at) = match page[PAGE_TYPE_AT] & PAGE_TYPE_MASK {
                    0 => (EncryptedKind::Unallocated, DATA_HEADER, DATA_KEY_VERSION_AT),
                    1 => (EncryptedKind::Head, DATA_HEADER, DATA_KEY_VERSION_AT),
                    2 => (EncryptedKind::Tail, DATA_HEADER, DATA_KEY_VERSION_AT),
                    _ => (EncryptedKind::Full, FULL_HEADER, FULL_KEY_VERSION_AT),
                };
                #[allow(deprecated, reason = "crc_end is still filled for old callers")]
                Ok(PageKind::Encrypted(Layout {
                    kind,
                    key_version_at: version_at,
                    body: header..bs - CRC_LEN,
                    crc_end: bs - CRC_LEN,
                }))
            }
        }
    }
}

/// The little-endian `u32` at `at`, or `None` when those four bytes are
/// not all inside `page`.
pub(crate) fn read_le32(page: &[u8], at: usize) -> Option<u32> {
    let bytes = page.get(at..at.checked_add(4)?)?.first_chunk::<4>()?;
    Some(u32::from_le_bytes(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The register masking gives what zeroing the version in a copy gives,
    /// for every position a version field can take in the first 32 bytes
    /// (Aria's are 7, 8, 12 and 13), and for a page shorter than 32 bytes.
    #[test]
    fn checksummed_header_zeroes_exactly_the_version() {
        let page: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(37) | 1).collect();
        // Inside the header, straddling its end, and past it.
        for at in 0..HEADER_MAX + 8 {
            #[allow(deprecated, reason = "crc_end is still a field")]
            let layout = Layout {
                kind: EncryptedKind::Head,
                key_version_at: at,
                body: 16..60,
                crc_end: 60,
            };
            for len in [64, 31, 20] {
                let mut expected = [0u8; HEADER_MAX];
                let n = len.min(HEADER_MAX);
                expected[..n].copy_from_slice(&page[..n]);
                expected[at.min(HEADER_MAX)..(at + 4).min(HEADER_MAX)].fill(0);
                assert_eq!(
                    layout.checksummed_header(&page[..len]),
                    expected,
                    "version at {at}, page of {len} bytes"
                );
            }
        }
    }
}
