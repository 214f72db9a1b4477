//! The per-page IV and the page checksum, from a page's LSN (spec §4.2,
//! §5.1).

/// The 7-byte LSN at the start of a page: a 3-byte log file number and a
/// 4-byte offset, both little-endian (`lsn_korr`); `None` for a buffer
/// shorter than 7 bytes, which no page is.
pub fn try_page_lsn(page: &[u8]) -> Option<u64> {
    page.first_chunk::<LSN_LEN>().map(lsn_of)
}

/// [`try_page_lsn`], with 0 for a buffer shorter than 7 bytes: a valid
/// LSN, so a short buffer cannot be told from a page at LSN 0.
#[deprecated(
    note = "use `try_page_lsn`, which returns `None` for a buffer shorter than 7 bytes instead of LSN 0"
)]
pub fn page_lsn(page: &[u8]) -> u64 {
    try_page_lsn(page).unwrap_or(0)
}

/// The LSN of a page's first seven bytes.
pub(crate) fn lsn_of(b: &[u8; LSN_LEN]) -> u64 {
    let file = u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16;
    let offset = u64::from(u32::from_le_bytes([b[3], b[4], b[5], b[6]]));
    file << 32 | offset
}

/// The LSN field: the first seven bytes of every data and index page.
pub(crate) const LSN_LEN: usize = 7;

/// The page IV: `LE32(space) ‖ LE32(page number) ‖ LE64(lsn)` (spec §4.2).
/// A buffer shorter than the 7-byte LSN gets LSN 0: check its length, or
/// read the LSN with [`try_page_lsn`], where that can happen.
pub fn page_iv(space: u32, page_no: u32, page: &[u8]) -> [u8; 16] {
    iv_of(space, page_no, try_page_lsn(page).unwrap_or(0))
}

/// The page IV from an LSN already read.
pub(crate) fn iv_of(space: u32, page_no: u32, lsn: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&space.to_le_bytes());
    iv[4..8].copy_from_slice(&page_no.to_le_bytes());
    iv[8..].copy_from_slice(&lsn.to_le_bytes());
    iv
}

/// The Aria page checksum: zlib CRC-32 seeded with the page number, with
/// the two "no checksum" values mapped to 0xFFFFFFFD (spec §5.1).
pub fn page_crc(page_no: u32, data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(page_no);
    hasher.update(data);
    page_crc_finish(hasher.finalize())
}

/// The stored checksum for a zlib CRC-32 (seeded with the page number)
/// computed elsewhere, e.g. by the kernel while it encrypts the body: the
/// two "no checksum" values 0xFFFFFFFE and 0xFFFFFFFF become 0xFFFFFFFD
/// (spec §5.1).
pub(crate) fn page_crc_finish(crc: u32) -> u32 {
    match crc {
        0xffff_fffe | 0xffff_ffff => 0xffff_fffd,
        crc => crc,
    }
}
