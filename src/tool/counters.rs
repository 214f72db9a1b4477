//! Page passes the tool makes, counted in unit tests only: the proof that
//! a command reads each page as few times as it says. A pass is one page
//! through the library's batch decryption or encryption (each classifies
//! the page first) or through the tool's own classification ([`Tally`]
//! counting).
//!
//! [`Tally`]: super::tally::Tally

#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};

/// What the tool did to pages.
#[derive(Clone, Copy, Debug)]
pub enum Pass {
    /// Decrypted (and classified) by the library.
    Decrypt,
    /// Encrypted (and classified) by the library.
    Encrypt,
    /// Classified by the tool to count it.
    Classify,
}

#[cfg(test)]
static PASSES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Counts `pages` pages through `pass` (nothing outside unit tests).
#[inline]
pub fn add(pass: Pass, pages: usize) {
    #[cfg(test)]
    PASSES[pass as usize].fetch_add(pages as u64, Ordering::Relaxed);
    #[cfg(not(test))]
    let _ = (pass, pages);
}

/// The pages counted through `pass` so far.
#[cfg(test)]
pub fn get(pass: Pass) -> u64 {
    PASSES[pass as usize].load(Ordering::Relaxed)
}
