//! MariaDB Aria page encryption. Confidentiality without integrity, as in
//! MariaDB: the format has no MAC, and a page's only check is a CRC-32 of
//! its plaintext.

pub mod aria;
pub mod kernel;
pub mod keys;
pub mod policy;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod tool;

mod error;

pub use error::{Error, HeaderFault, KeyFileFault, PageFault};
