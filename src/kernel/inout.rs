//! [`InOut`]: a buffer processed in place, or copied from a source while
//! processed. Its fields are private to this module so that the invariant
//! the backends' unsafe code relies on, equal source and destination
//! lengths, holds by construction.

use super::{BLOCK, Error};

/// A buffer processed in place, or read from `src` and written to `dst`.
/// Invariant: `src`, when present, has the length of `dst`.
pub(crate) struct InOut<'a> {
    src: Option<&'a [u8]>,
    dst: &'a mut [u8],
}

impl<'a> InOut<'a> {
    pub(crate) fn in_place(buf: &'a mut [u8]) -> Self {
        InOut {
            src: None,
            dst: buf,
        }
    }

    /// # Errors
    /// [`Error::LengthMismatch`] if the lengths differ.
    pub(crate) fn buf_to_buf(src: &'a [u8], dst: &'a mut [u8]) -> Result<Self, Error> {
        if src.len() != dst.len() {
            return Err(Error::LengthMismatch {
                src: src.len(),
                dst: dst.len(),
            });
        }
        Ok(InOut {
            src: Some(src),
            dst,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.dst.len()
    }

    /// Whole 16-byte blocks.
    pub(crate) fn blocks(&self) -> usize {
        self.dst.len() / BLOCK
    }

    pub(crate) fn is_in_place(&self) -> bool {
        self.src.is_none()
    }

    /// Source and destination pointers for the backends, valid for
    /// `self.len()` bytes, equal (in place) or disjoint. Both come from one
    /// mutable borrow of `dst`: in place, a source pointer taken from a
    /// shared borrow would lose its right to read once the destination
    /// pointer is made or written through.
    pub(crate) fn ptrs(&mut self) -> (*const u8, *mut u8) {
        let dst = self.dst.as_mut_ptr();
        let src = match self.src {
            Some(src) => src.as_ptr(),
            None => dst.cast_const(),
        };
        (src, dst)
    }

    /// The bytes to be read: the source, or the buffer itself in place.
    pub(crate) fn input(&self) -> &[u8] {
        match self.src {
            Some(src) => src,
            None => self.dst,
        }
    }

    /// The bytes written.
    pub(crate) fn output(&self) -> &[u8] {
        self.dst
    }

    /// The separate source, if any, and the destination.
    pub(crate) fn split(&mut self) -> (Option<&[u8]>, &mut [u8]) {
        (self.src, self.dst)
    }

    /// The same buffer cut to bytes `from..to` (`from <= to <= self.len()`).
    pub(crate) fn slice(&mut self, from: usize, to: usize) -> InOut<'_> {
        InOut {
            src: self.src.map(|src| &src[from..to]),
            dst: &mut self.dst[from..to],
        }
    }

    /// The same buffer cut to its whole blocks.
    pub(crate) fn whole_blocks(&mut self) -> InOut<'_> {
        self.slice(0, self.blocks() * BLOCK)
    }

    /// `dst[from..] = src[from..] ^ mask[..]` for the bytes past `from`
    /// (at most 16). Written as two words, overlapping where the tail is
    /// not two words long, so that a later read of the tail in words (the
    /// checksum's) forwards from these stores: after byte stores each such
    /// read waited for them to reach the cache (`crc32fast`'s tail took
    /// 3.7% of a 64-page read's samples, 2.7% after).
    pub(crate) fn xor_tail(&mut self, from: usize, mask: &[u8; BLOCK]) {
        let len = self.dst.len().saturating_sub(from).min(BLOCK);
        if len == 0 {
            return;
        }
        let input = match self.src {
            Some(src) => &src[from..][..len],
            None => &self.dst[from..][..len],
        };
        // Words of `$w` bytes at 0 and at `len - $w` (`$w <= len <= 2 * $w`):
        // both read before either is written, as in place they overlap.
        macro_rules! two_words {
            ($t:ty) => {{
                const W: usize = size_of::<$t>();
                let word = |bytes: &[u8], at: usize| {
                    let mut word = [0u8; W];
                    word.copy_from_slice(&bytes[at..at + W]);
                    <$t>::from_le_bytes(word)
                };
                let high = len - W;
                let low_word = word(input, 0) ^ word(mask, 0);
                let high_word = word(input, high) ^ word(mask, high);
                let dst = &mut self.dst[from..];
                dst[..W].copy_from_slice(&low_word.to_le_bytes());
                dst[high..high + W].copy_from_slice(&high_word.to_le_bytes());
            }};
        }
        match len {
            8.. => two_words!(u64),
            4..8 => two_words!(u32),
            2..4 => two_words!(u16),
            _ => two_words!(u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail rule's XOR against a byte-by-byte model, for every tail
    /// length (0 to past a block) and offset, in place and copying: the
    /// bytes past `from` (at most 16) change, nothing else does.
    #[test]
    fn xor_tail_matches_bytewise_xor() {
        let mask: [u8; BLOCK] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
        for len in 0..40usize {
            for from in 0..=len {
                let src: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(11) ^ 0x3c)
                    .collect();
                let mut want = src.clone();
                for (d, m) in want[from..].iter_mut().zip(&mask) {
                    *d ^= m;
                }
                let mut in_place = src.clone();
                InOut::in_place(&mut in_place).xor_tail(from, &mask);
                assert_eq!(in_place, want, "in place, {len} bytes from {from}");
                let mut dst = vec![0xeeu8; len];
                InOut::buf_to_buf(&src, &mut dst)
                    .expect("equal lengths")
                    .xor_tail(from, &mask);
                let mut want_copy = vec![0xeeu8; len];
                for (i, w) in want_copy.iter_mut().enumerate().skip(from).take(BLOCK) {
                    *w = want[i];
                }
                assert_eq!(dst, want_copy, "copying, {len} bytes from {from}");
            }
        }
    }
}
