//! The `.MAI` file header: what a reader needs to find and decrypt pages
//! (block size, `keystart`, options, the encrypted and transactional flags)
//! and the 22-byte crypt block holding the table's `space` and `scheme_iv`.
//!
//! All integers in the header are big-endian except `space`, which the
//! server stores little-endian (`int4store`).

use std::fmt;
use std::io::Read;
use std::path::Path;

use crate::Error;
use crate::fault::HeaderFault;
use crate::geometry::{TableGeometry, is_valid_block_size};

/// Aria index-file magic.
pub const MAGIC: [u8; 4] = [0xfe, 0xfe, 0x09, 0x03];
/// Length of the crypt block at the end of the header information.
pub const CRYPT_BLOCK_LEN: usize = 22;
/// `options` bit: temporary table (`HA_OPTION_TMP_TABLE`).
pub const OPTION_TMP_TABLE: u16 = 0x0010;
/// `options` bit: page checksums (`HA_OPTION_PAGE_CHECKSUM`).
pub const OPTION_PAGE_CHECKSUM: u16 = 0x0800;
/// `extra_options` bit: the table is encrypted.
pub const EXTRA_OPTION_ENCRYPTED: u16 = 0x0001;

const FILE_HEADER_LEN: usize = 24;
// Offsets within the base info block.
const BASE_KEYSTART: usize = 16;
const BASE_FIELDS: usize = 80;
const BASE_EXTRA_OPTIONS: usize = 90;
const BASE_BLOCK_SIZE: usize = 100;
const BASE_BORN_TRANSACTIONAL: usize = 106;
const BASE_MIN_LEN: usize = BASE_BORN_TRANSACTIONAL + 1;

/// The most header bytes [`TableHeader::read`] reads: `header_length` is a
/// 16-bit field.
pub const MAX_HEADER_LEN: usize = 65535;

/// The table's row format (`data_file_type`). Only [`RowFormat::Page`]
/// tables can be encrypted; MariaDB silently leaves the others in
/// plaintext even with `aria_encrypt_tables=ON`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowFormat {
    /// `ROW_FORMAT=FIXED` (static records).
    Fixed,
    /// `ROW_FORMAT=DYNAMIC`.
    Dynamic,
    /// Compressed (read-only, `aria_pack`).
    Compressed,
    /// `ROW_FORMAT=PAGE` (block records).
    Page,
    /// No data file.
    NoRecord,
    /// Any other value of the byte.
    Unknown(u8),
}

impl RowFormat {
    fn from_byte(b: u8) -> Self {
        match b {
            0 => RowFormat::Fixed,
            1 => RowFormat::Dynamic,
            2 => RowFormat::Compressed,
            3 => RowFormat::Page,
            4 => RowFormat::NoRecord,
            other => RowFormat::Unknown(other),
        }
    }
}

impl fmt::Display for RowFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowFormat::Fixed => f.write_str("FIXED"),
            RowFormat::Dynamic => f.write_str("DYNAMIC"),
            RowFormat::Compressed => f.write_str("COMPRESSED"),
            RowFormat::Page => f.write_str("PAGE"),
            RowFormat::NoRecord => f.write_str("NO_RECORD"),
            RowFormat::Unknown(b) => write!(f, "unknown ({b})"),
        }
    }
}

/// A table's per-table encryption parameters: the crypt block.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CryptData {
    /// Random at creation; the first four bytes of every page IV.
    pub space: u32,
    /// Random at creation; encrypted with the global key it gives the
    /// table's local key.
    pub scheme_iv: [u8; 16],
}

impl CryptData {
    /// Fresh `space` and `scheme_iv` from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`Error::Rng`] if the operating system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; 20];
        getrandom::fill(&mut bytes).map_err(crate::error::rng_error)?;
        let mut scheme_iv = [0u8; 16];
        scheme_iv.copy_from_slice(&bytes[4..]);
        Ok(CryptData {
            space: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            scheme_iv,
        })
    }

    /// Parses a 22-byte crypt block (type 1, length 20).
    ///
    /// # Errors
    /// [`HeaderFault::Truncated`] or [`HeaderFault::CryptScheme`].
    pub fn parse(block: &[u8]) -> Result<Self, HeaderFault> {
        let Some(block) = block.first_chunk::<CRYPT_BLOCK_LEN>() else {
            return Err(HeaderFault::Truncated {
                need: CRYPT_BLOCK_LEN,
                have: block.len(),
            });
        };
        if block[0] != 1 || block[1] != 20 {
            return Err(HeaderFault::CryptScheme {
                kind: block[0],
                len: block[1],
            });
        }
        let mut scheme_iv = [0u8; 16];
        scheme_iv.copy_from_slice(&block[6..22]);
        Ok(CryptData {
            space: u32::from_le_bytes([block[2], block[3], block[4], block[5]]),
            scheme_iv,
        })
    }

    /// The 22-byte crypt block as the server writes it.
    pub fn to_bytes(&self) -> [u8; CRYPT_BLOCK_LEN] {
        let mut block = [0u8; CRYPT_BLOCK_LEN];
        block[0] = 1;
        block[1] = 20;
        block[2..6].copy_from_slice(&self.space.to_le_bytes());
        block[6..].copy_from_slice(&self.scheme_iv);
        block
    }
}

/// `space` and `scheme_iv` are not secret, but they are table identity:
/// printed in hex for reports.
impl fmt::Debug for CryptData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptData")
            .field("space", &format_args!("{:#010x}", self.space))
            .field("scheme_iv", &format_args!("{}", hex(&self.scheme_iv)))
            .finish()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The parsed `.MAI` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableHeader {
    /// `options` (see [`OPTION_TMP_TABLE`], [`OPTION_PAGE_CHECKSUM`]).
    pub options: u16,
    /// Length of all header information; the crypt block is its last
    /// 22 bytes.
    pub header_length: u16,
    /// Offset of the base info block.
    pub base_pos: u16,
    /// Number of keys (indexes).
    pub keys: u8,
    /// Number of columns.
    pub fields: u16,
    /// Row format (`data_file_type`).
    pub row_format: RowFormat,
    /// `extra_options` (see [`EXTRA_OPTION_ENCRYPTED`]).
    pub extra_options: u16,
    /// Page size, position of the index pages, transactional flag.
    pub geometry: TableGeometry,
    /// The crypt block, for encrypted tables.
    pub crypt: Option<CryptData>,
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*bytes.get(at..)?.first_chunk::<2>()?))
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(*bytes.get(at..)?.first_chunk::<8>()?))
}

impl TableHeader {
    /// Parses the header from the first bytes of a `.MAI` file (at least
    /// `header_length` of them for an encrypted table).
    ///
    /// # Errors
    /// [`Error::Header`] with what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        Self::parse_fault(bytes).map_err(|fault| Error::Header { path: None, fault })
    }

    fn parse_fault(bytes: &[u8]) -> Result<Self, HeaderFault> {
        let truncated = |need: usize| HeaderFault::Truncated {
            need,
            have: bytes.len(),
        };
        let magic = bytes.first_chunk::<4>().ok_or(truncated(FILE_HEADER_LEN))?;
        if *magic != MAGIC {
            return Err(HeaderFault::Magic(*magic));
        }
        if bytes.len() < FILE_HEADER_LEN {
            return Err(truncated(FILE_HEADER_LEN));
        }
        let field = |at| be16(bytes, at).ok_or(truncated(FILE_HEADER_LEN));
        let options = field(4)?;
        let header_length = field(6)?;
        let base_info_length = field(10)?;
        let base_pos = field(12)?;
        let keys = bytes[18];
        let row_format = RowFormat::from_byte(bytes[22]);

        let base = usize::from(base_pos);
        if base < FILE_HEADER_LEN {
            return Err(HeaderFault::Field {
                field: "base_pos",
                value: base as u64,
            });
        }
        if usize::from(base_info_length) < BASE_MIN_LEN {
            return Err(HeaderFault::Field {
                field: "base_info_length",
                value: u64::from(base_info_length),
            });
        }
        let base_end = base + BASE_MIN_LEN;
        if bytes.len() < base_end {
            return Err(truncated(base_end));
        }
        let keystart = be64(bytes, base + BASE_KEYSTART).ok_or(truncated(base_end))?;
        let fields = be16(bytes, base + BASE_FIELDS).ok_or(truncated(base_end))?;
        let extra_options = be16(bytes, base + BASE_EXTRA_OPTIONS).ok_or(truncated(base_end))?;
        let block_size = u32::from(be16(bytes, base + BASE_BLOCK_SIZE).ok_or(truncated(base_end))?);
        let transactional = bytes[base + BASE_BORN_TRANSACTIONAL] != 0;

        if !is_valid_block_size(block_size) {
            return Err(HeaderFault::BlockSize(block_size));
        }
        if keystart == 0 || !keystart.is_multiple_of(u64::from(block_size)) {
            return Err(HeaderFault::Field {
                field: "keystart",
                value: keystart,
            });
        }
        let header_end = usize::from(header_length);
        if header_end < base + usize::from(base_info_length) || header_end as u64 > keystart {
            return Err(HeaderFault::Field {
                field: "header_length",
                value: u64::from(header_length),
            });
        }

        let crypt = if extra_options & EXTRA_OPTION_ENCRYPTED != 0 {
            let start = header_end
                .checked_sub(CRYPT_BLOCK_LEN)
                .filter(|&start| start >= base + usize::from(base_info_length))
                .ok_or(HeaderFault::Field {
                    field: "header_length",
                    value: u64::from(header_length),
                })?;
            let block = bytes.get(start..header_end).ok_or(truncated(header_end))?;
            Some(CryptData::parse(block)?)
        } else {
            None
        };

        Ok(TableHeader {
            options,
            header_length,
            base_pos,
            keys,
            fields,
            row_format,
            extra_options,
            geometry: TableGeometry {
                block_size,
                keystart,
                transactional,
            },
            crypt,
        })
    }

    /// Reads and parses the header of the `.MAI` file at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::Header`] (with the
    /// path) if it is not a valid Aria header.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_HEADER_LEN as u64)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        Self::parse(&bytes).map_err(|e| match e {
            Error::Header { fault, .. } => Error::Header {
                path: Some(path.to_path_buf()),
                fault,
            },
            other => other,
        })
    }

    /// Byte offset of the crypt block in the `.MAI` file.
    pub fn crypt_offset(&self) -> usize {
        usize::from(self.header_length).saturating_sub(CRYPT_BLOCK_LEN)
    }

    /// Whether the table is encrypted (`extra_options` bit 0).
    pub fn is_encrypted(&self) -> bool {
        self.crypt.is_some()
    }

    /// Whether the temporary-table option bit is set (`CREATE TEMPORARY
    /// TABLE` and the server's internal temporary tables).
    pub fn is_temporary(&self) -> bool {
        self.options & OPTION_TMP_TABLE != 0
    }

    /// Whether the table has page checksums.
    pub fn has_page_checksums(&self) -> bool {
        self.options & OPTION_PAGE_CHECKSUM != 0
    }

    /// Whether the table was created `TRANSACTIONAL=1`.
    pub fn is_transactional(&self) -> bool {
        self.geometry.transactional
    }

    /// Writes `crypt` into a copy of the header bytes of this table (the
    /// start of its `.MAI` file), for a table re-encrypted under a fresh
    /// per-table key.
    ///
    /// # Errors
    /// [`Error::Header`] if the table is not encrypted or `bytes` is too short.
    pub fn write_crypt_block(&self, bytes: &mut [u8], crypt: &CryptData) -> Result<(), Error> {
        let fault = |fault| Error::Header { path: None, fault };
        if !self.is_encrypted() {
            return Err(fault(HeaderFault::NotEncrypted));
        }
        let start = self.crypt_offset();
        let have = bytes.len();
        let block =
            bytes
                .get_mut(start..start + CRYPT_BLOCK_LEN)
                .ok_or(fault(HeaderFault::Truncated {
                    need: start + CRYPT_BLOCK_LEN,
                    have,
                }))?;
        block.copy_from_slice(&crypt.to_bytes());
        Ok(())
    }
}
