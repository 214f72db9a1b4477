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

    /// `dst[from..] = src[from..] ^ mask[..]` for the bytes past `from`.
    pub(crate) fn xor_tail(&mut self, from: usize, mask: &[u8; BLOCK]) {
        match self.src {
            Some(src) => {
                for ((d, s), m) in self.dst[from..].iter_mut().zip(&src[from..]).zip(mask) {
                    *d = s ^ m;
                }
            }
            None => {
                for (d, m) in self.dst[from..].iter_mut().zip(mask) {
                    *d ^= m;
                }
            }
        }
    }
}
