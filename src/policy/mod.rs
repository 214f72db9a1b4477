//! The thin policy layer: which key id a table uses, and re-keying pages
//! from one cipher to another (rotation, a new key source, the other
//! algorithm, a fresh per-table key), which MariaDB itself cannot do.

use crate::Error;
use crate::aria::{PageFile, PageRef, PageStatus, TableCipher, TableHeader};
use crate::keys::KeyProvider;

/// The key id of ordinary tables (MariaDB's `ENCRYPTION_KEY_SYSTEM_DATA`).
pub const SYSTEM_KEY_ID: u32 = 1;
/// The key id of temporary tables when the provider has it
/// (`ENCRYPTION_KEY_TEMPORARY_DATA`).
pub const TEMPORARY_KEY_ID: u32 = 2;

/// What the key-id rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// An ordinary table.
    User,
    /// `CREATE TEMPORARY TABLE` or an internal temporary table: the header's
    /// temporary-table option bit.
    Temporary,
}

impl TableKind {
    /// Decided from the `.MAI` header's temporary-table bit, as the server does.
    pub fn of(header: &TableHeader) -> Self {
        if header.is_temporary() {
            TableKind::Temporary
        } else {
            TableKind::User
        }
    }
}

/// The key id MariaDB uses for a table (`get_encryption_key_id` in
/// `ma_crypt.c`): key 2 for temporary tables if the provider has it,
/// otherwise key 1. The decision is not recorded in the files; the server
/// makes it again every time it opens the table.
///
/// Key 1 is taken for a temporary table only when the provider says it has
/// no key 2; a provider that fails to answer fails the rule, rather than
/// putting the table silently on the wrong key.
///
/// # Errors
/// [`Error::KeyProvider`] when the provider fails to say whether it has
/// key 2 (only asked for temporary tables).
pub fn try_key_id(kind: TableKind, provider: &dyn KeyProvider) -> Result<u32, Error> {
    match kind {
        TableKind::Temporary => match provider.try_latest_version(TEMPORARY_KEY_ID)? {
            Some(_) => Ok(TEMPORARY_KEY_ID),
            None => Ok(SYSTEM_KEY_ID),
        },
        TableKind::User => Ok(SYSTEM_KEY_ID),
    }
}

/// [`try_key_id`] for a provider that cannot fail: a provider failure is
/// taken as "no key 2", so a temporary table lands on key 1.
#[deprecated(
    note = "use `policy::try_key_id`, which fails when the provider fails instead of falling back to key 1"
)]
pub fn key_id(kind: TableKind, provider: &dyn KeyProvider) -> u32 {
    try_key_id(kind, provider).unwrap_or(SYSTEM_KEY_ID)
}

/// Re-encrypts pages of one file: each is decrypted and verified with
/// `from`, then encrypted with the latest key version of `to`. A page that
/// fails is left exactly as it was; pages `from` leaves alone (header,
/// bitmap, unwritten) stay as they are.
///
/// `from` and `to` may differ in key provider, key id, algorithm and crypt
/// data (a fresh `space`/`scheme_iv`); they describe the same table, so
/// they must have the same geometry.
pub fn rekey_pages(
    from: &TableCipher,
    to: &TableCipher,
    file: PageFile,
    pages: &mut [PageRef<'_>],
) -> Vec<Result<PageStatus, Error>> {
    let mut results = from.decrypt_pages(file, pages);
    let decrypted: Vec<Option<u32>> = results
        .iter()
        .map(|r| match r {
            Ok(PageStatus::Encrypted { key_version }) => Some(*key_version),
            _ => None,
        })
        .collect();
    let mut plain: Vec<PageRef<'_>> = pages
        .iter_mut()
        .zip(&decrypted)
        .filter(|(_, v)| v.is_some())
        .map(|(page, _)| PageRef {
            number: page.number,
            data: &mut *page.data,
        })
        .collect();
    let mut encrypted = to.encrypt_pages(file, &mut plain).into_iter();
    drop(plain);
    for ((page, result), original) in pages.iter_mut().zip(results.iter_mut()).zip(&decrypted) {
        let Some(original) = original else { continue };
        match encrypted.next() {
            Some(Ok(status)) => *result = Ok(status),
            Some(Err(e)) => {
                // Back to the exact original bytes: same key, version, IV.
                let mut undo = [PageRef {
                    number: page.number,
                    data: &mut *page.data,
                }];
                from.encrypt_pages_as(file, &mut undo, *original);
                *result = Err(e);
            }
            None => {}
        }
    }
    results
}
