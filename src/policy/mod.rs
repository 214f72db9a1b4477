//! The thin policy layer: which key id a table uses, and re-keying pages
//! from one cipher to another (rotation, a new key source, the other
//! algorithm, a fresh per-table key), which MariaDB itself cannot do.

use crate::aria::{
    LsnPolicy, PageFile, PageRef, PageStatus, TableCipher, TableHeader, WriteOptions,
};
use crate::keys::KeyProvider;
use crate::{Error, PageFault};

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
/// `from`, then encrypted with the latest key version of `to`, keeping its
/// LSN ([`WriteOptions`] with [`LsnPolicy::Keep`]: the LSN of a
/// transactional table is its log position, and a page whose contents do
/// not change needs no fresh IV). Pages `from` leaves alone (header,
/// bitmap, unwritten) stay as they are.
///
/// A page that fails is left exactly as it was, whatever the providers do:
/// the original bytes of the batch are kept and copied back, never
/// re-derived.
///
/// `from` and `to` may differ in key provider, key id, algorithm and crypt
/// data (a fresh `space`/`scheme_iv`); they describe the same table, so
/// they must have the same geometry: otherwise every page fails with
/// [`Error::GeometryMismatch`] and none is touched.
pub fn rekey_pages(
    from: &TableCipher,
    to: &TableCipher,
    file: PageFile,
    pages: &mut [PageRef<'_>],
) -> Vec<Result<PageStatus, Error>> {
    if from.geometry() != to.geometry() {
        return pages
            .iter()
            .map(|_| {
                Err(Error::GeometryMismatch {
                    from: *from.geometry(),
                    to: *to.geometry(),
                })
            })
            .collect();
    }
    let originals: Vec<u8> = pages
        .iter()
        .flat_map(|page| page.data.iter().copied())
        .collect();
    let mut results = from.decrypt_pages(file, pages);
    let mut plain: Vec<PageRef<'_>> = pages
        .iter_mut()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(PageStatus::Encrypted { .. })))
        .map(|(page, _)| PageRef {
            number: page.number,
            data: &mut *page.data,
        })
        .collect();
    let keep_lsn = WriteOptions::new().with_lsn(LsnPolicy::Keep);
    let mut encrypted = to
        .encrypt_pages_with(file, &mut plain, keep_lsn)
        .into_iter();
    drop(plain);
    for (page, result) in pages.iter().zip(results.iter_mut()) {
        if let Ok(PageStatus::Encrypted { .. }) = result {
            *result = match encrypted.next() {
                Some(Ok(status @ PageStatus::Encrypted { .. })) => Ok(status),
                Some(Err(e)) => Err(e),
                // Decrypted by `from`, but `to` saw no page to encrypt (a
                // page that decrypts to all zeros): never leave it plain.
                Some(Ok(_)) | None => Err(Error::Page {
                    path: None,
                    file,
                    page: page.number,
                    fault: PageFault::KeyVersion(0),
                }),
            };
        }
    }
    // Every page that failed gets its original bytes back.
    let mut at = 0;
    for (page, result) in pages.iter_mut().zip(&results) {
        let len = page.data.len();
        if result.is_err() {
            page.data.copy_from_slice(&originals[at..at + len]);
        }
        at += len;
    }
    results
}
