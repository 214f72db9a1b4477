//! Opening a table's cipher from its `.MAI` file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cipher::TableCipher;
use super::header::TableHeader;
use crate::Error;
use crate::kernel::Mode;
use crate::keys::KeyProvider;

impl TableCipher {
    /// Reads the header of the `.MAI` file at `mai_path` and builds the
    /// table's cipher as [`for_table`](Self::for_table) does (the server's
    /// key id, the given algorithm). Errors of the cipher name the `.MAI`
    /// file and the `.MAD` file next to it (same name, extension `MAD`, or
    /// `mad` for a lower-case `mai`).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, [`Error::Header`] (with the
    /// path) if its header is not valid or the table is not encrypted, and
    /// what [`for_table`](Self::for_table) returns.
    pub fn open(
        mai_path: impl AsRef<Path>,
        mode: Mode,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Self, Error> {
        let mai_path = mai_path.as_ref();
        let header = TableHeader::read(mai_path)?;
        let cipher = Self::for_table(&header, mode, keys).map_err(|e| match e {
            Error::Header { path: None, fault } => Error::Header {
                path: Some(mai_path.to_path_buf()),
                fault,
            },
            other => other,
        })?;
        Ok(cipher.with_files(mai_path, data_path(mai_path)))
    }
}

/// The `.MAD` file of a `.MAI` file: the same name with the extension's
/// case kept.
fn data_path(mai_path: &Path) -> PathBuf {
    let lower = mai_path
        .extension()
        .is_some_and(|ext| ext.as_encoded_bytes() == b"mai");
    mai_path.with_extension(if lower { "mad" } else { "MAD" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_path_keeps_the_extension_case() {
        assert_eq!(data_path(Path::new("db/t1.MAI")), Path::new("db/t1.MAD"));
        assert_eq!(data_path(Path::new("db/t1.mai")), Path::new("db/t1.mad"));
        assert_eq!(data_path(Path::new("t1")), Path::new("t1.MAD"));
    }
}
