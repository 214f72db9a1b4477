//! The ciphers of a table with the tool's options, and the key-id rule.

use std::sync::Arc;

use super::keys::Keys;
use super::outcome::ToolError;
use super::table::Table;
use crate::aria::{CryptData, TableCipher, TableGeometry};
use crate::kernel::{Backend, Mode};
use crate::policy::{self, TableKind};

/// Builds ciphers for one table with the tool's options.
#[derive(Clone, Copy, Debug)]
pub struct CipherFactory<'a> {
    /// The table.
    pub table: &'a Table,
    /// `--backend`.
    pub backend: Option<Backend>,
}

impl CipherFactory<'_> {
    /// A cipher for the table with this key id, mode and provider; `crypt`
    /// replaces the table's own crypt data (a fresh per-table key).
    ///
    /// # Errors
    /// Exit status 2 for an unencrypted table or an unsupported backend.
    pub fn cipher(
        &self,
        keys: &Keys,
        key_id: u32,
        mode: Mode,
        crypt: Option<CryptData>,
    ) -> Result<TableCipher, ToolError> {
        let crypt = crypt.or(self.table.header.crypt).ok_or_else(|| {
            ToolError::input(format!("{}: the table is not encrypted", self.table.name()))
        })?;
        self.with_geometry(self.table.header.geometry, crypt, keys, key_id, mode)
    }

    fn with_geometry(
        &self,
        geometry: TableGeometry,
        crypt: CryptData,
        keys: &Keys,
        key_id: u32,
        mode: Mode,
    ) -> Result<TableCipher, ToolError> {
        let cipher = TableCipher::new(geometry, crypt, key_id, mode, Arc::clone(&keys.provider))
            .with_files(&self.table.files.mai, &self.table.files.mad);
        match self.backend {
            Some(backend) => cipher.with_backend(backend).map_err(ToolError::lib),
            None => Ok(cipher),
        }
    }
}

/// The key id of a table: `--key-id`, or the server's rule.
///
/// # Errors
/// The provider's failure when the rule has to ask it.
pub fn key_id_for(table: &Table, keys: &Keys) -> Result<(u32, bool), crate::Error> {
    match keys.key_id {
        Some(id) => Ok((id, true)),
        None => Ok((
            policy::try_key_id(TableKind::of(&table.header), &*keys.provider)?,
            false,
        )),
    }
}
