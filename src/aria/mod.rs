//! The Aria on-disk format: the `.MAI` header and its crypt block, page
//! kinds and layouts, page IVs and checksums, and [`TableCipher`], which
//! encrypts and decrypts whole pages byte for byte as MariaDB does.

mod cipher;
mod header;
mod open;
mod page;

pub use cipher::{LsnPolicy, PageRef, PageStatus, TableCipher, WriteOptions};
pub use header::{
    CRYPT_BLOCK_LEN, CryptData, EXTRA_OPTION_ENCRYPTED, MAGIC, MAX_HEADER_LEN,
    OPTION_PAGE_CHECKSUM, OPTION_TMP_TABLE, RowFormat, TableGeometry, TableHeader,
};
#[allow(deprecated)]
pub use page::page_lsn;
pub use page::{
    CRC_LEN, EncryptedKind, Layout, PageFile, PageKind, is_valid_block_size, page_crc, page_iv,
    pages_covered, try_page_lsn,
};
