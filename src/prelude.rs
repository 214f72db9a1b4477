//! What an engine needs, in one import:
//!
//! ```
//! use mariadb_aria_crypt::prelude::*;
//! # fn open(keys: std::sync::Arc<FileKeyProvider>) -> Result<TableCipher, Error> {
//! TableCipher::open("t1.MAI", Mode::Cbc, keys)
//! # }
//! ```

pub use crate::aria::{
    CryptData, LsnPolicy, PageFile, PageRef, PageStatus, TableCipher, TableHeader, WriteOptions,
};
pub use crate::kernel::Mode;
pub use crate::keys::{
    DebugKeyProvider, FileKeyProvider, KeyMaterial, KeyProvider, VersionedKeyProvider,
};
pub use crate::policy::TableKind;
pub use crate::{Error, ErrorKind, PageFault};
