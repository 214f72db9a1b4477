//! Why a page, or a whole table, fails to decrypt.

use crate::kernel::Mode;

/// Why a page (or a table) fails. A checksum mismatch alone cannot say; a
/// [`Diagnoser`](super::Diagnoser) tries the alternatives and names the
/// one that explains the failure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The page verifies with the other algorithm: the table was written
    /// with this one.
    Algorithm(Mode),
    /// The page verifies with another key id of the provider (and this
    /// algorithm): the table uses that key id.
    KeyId {
        /// The key id the page verifies with.
        key_id: u32,
        /// The algorithm it verifies with.
        mode: Mode,
    },
    /// The provider has no key with the table's key id.
    MissingKeyId(u32),
    /// The provider lacks the version stamped in the page.
    MissingVersion {
        /// Key id.
        key_id: u32,
        /// The stamped version.
        version: u32,
    },
    /// The key provider failed (the cause is in the page's error).
    KeyProvider {
        /// Key id asked for.
        key_id: u32,
    },
    /// Version 0 or 0xFFFFFFFF stamped in the page: its header is damaged.
    InvalidVersion(u32),
    /// The bytes verify as this other page of the file: they were written
    /// or read at the wrong place.
    PageNumber(u32),
    /// The checksum fails, other pages of the table verify and no
    /// alternative decrypts the page: its bytes are damaged (a flipped bit,
    /// a page of another table, a torn write).
    Damaged {
        /// Stored CRC.
        stored: u32,
        /// CRC of the decrypted page.
        computed: u32,
    },
    /// An index page whose `page_used` is impossible: damaged.
    PageUsed {
        /// The stored value.
        value: u32,
        /// Smallest valid.
        min: u32,
        /// Largest valid.
        max: u32,
    },
    /// No page of the table verifies with any key id or algorithm tried:
    /// the key itself is wrong (same id, other bytes).
    WrongKey,
    /// A partial last page of this many bytes.
    Truncated {
        /// Bytes present.
        have: u64,
    },
    /// The pages are this size, not the header's block size.
    BlockSize(u32),
    /// A checksum failure left undiagnosed (past the diagnosis limit).
    Undiagnosed,
    /// A checksum failure that no alternative explains, before the rest of
    /// the table is known: [`settle`](Cause::settle) makes it
    /// [`Damaged`](Cause::Damaged) or [`WrongKey`](Cause::WrongKey).
    Unexplained {
        /// Stored CRC.
        stored: u32,
        /// CRC of the decrypted page.
        computed: u32,
    },
}

impl Cause {
    /// Resolves [`Unexplained`](Cause::Unexplained) once the rest of the
    /// table is known: damaged if other pages verify, else a wrong key.
    /// Other causes are returned as they are.
    pub fn settle(self, others_verify: bool) -> Cause {
        match self {
            Cause::Unexplained { stored, computed } if others_verify => {
                Cause::Damaged { stored, computed }
            }
            Cause::Unexplained { .. } => Cause::WrongKey,
            cause => cause,
        }
    }

    /// Whether the keys or the algorithm are wrong (not the page).
    pub fn is_key_problem(&self) -> bool {
        matches!(
            self,
            Cause::Algorithm(_)
                | Cause::KeyId { .. }
                | Cause::MissingKeyId(_)
                | Cause::MissingVersion { .. }
                | Cause::KeyProvider { .. }
                | Cause::WrongKey
        )
    }

    /// Whether the page's own bytes are damaged.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            Cause::Damaged { .. }
                | Cause::PageUsed { .. }
                | Cause::InvalidVersion(_)
                | Cause::Truncated { .. }
        )
    }

    /// Which of key id, key version, algorithm, page content, page place
    /// (or the key itself, the provider, the block size) is wrong.
    pub fn class(&self) -> &'static str {
        match self {
            Cause::Algorithm(_) => "algorithm",
            Cause::KeyId { .. } | Cause::MissingKeyId(_) => "key_id",
            Cause::MissingVersion { .. } | Cause::InvalidVersion(_) => "key_version",
            Cause::KeyProvider { .. } => "key_provider",
            Cause::PageNumber(_) => "page_number",
            Cause::Damaged { .. }
            | Cause::PageUsed { .. }
            | Cause::Truncated { .. }
            | Cause::Unexplained { .. } => "page_content",
            Cause::WrongKey | Cause::Undiagnosed => "key",
            Cause::BlockSize(_) => "block_size",
        }
    }

    /// A stable name of the precise cause.
    pub fn name(&self) -> &'static str {
        match self {
            Cause::Algorithm(_) => "wrong_algorithm",
            Cause::KeyId { .. } => "wrong_key_id",
            Cause::MissingKeyId(_) => "missing_key_id",
            Cause::MissingVersion { .. } => "missing_key_version",
            Cause::KeyProvider { .. } => "key_provider_failed",
            Cause::InvalidVersion(_) => "invalid_key_version",
            Cause::PageNumber(_) => "wrong_page_number",
            Cause::Damaged { .. } | Cause::Unexplained { .. } => "corrupt_page",
            Cause::PageUsed { .. } => "corrupt_index_header",
            Cause::WrongKey => "wrong_key",
            Cause::Truncated { .. } => "truncated",
            Cause::BlockSize(_) => "block_size_mismatch",
            Cause::Undiagnosed => "undiagnosed",
        }
    }
}
