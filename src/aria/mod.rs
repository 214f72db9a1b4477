//! The Aria on-disk format: the `.MAI` header and its crypt block, page
//! kinds and layouts, page IVs and checksums, and [`TableCipher`], which
//! encrypts and decrypts whole pages byte for byte as MariaDB does.

mod cipher;
mod header;
mod open;
mod page;

pub use cipher::{LsnPolicy, PageRef, PageStatus, TableCipher, WriteOptions};
// The table geometry and page layouts live below the crate's error type,
// which names them; this is their public path.
pub use crate::geometry::{
    CRC_LEN, EncryptedKind, Layout, PageFile, PageKind, TableGeometry, is_valid_block_size,
    pages_covered,
};
pub use header::{
    CRYPT_BLOCK_LEN, CryptData, EXTRA_OPTION_ENCRYPTED, MAGIC, MAX_HEADER_LEN,
    OPTION_PAGE_CHECKSUM, OPTION_TMP_TABLE, RowFormat, TableHeader,
};
#[allow(deprecated)]
pub use page::page_lsn;
pub use page::{page_crc, page_iv, try_page_lsn};
