//! The FIPS-197 key expansion shared by the hardware backends.
//!
//! x86 `AESENC`/`AESDEC` and ARMv8 `AESE`/`AESD` consume the same round keys:
//! the FIPS-197 schedule for encryption and the "equivalent inverse cipher"
//! schedule (reversed, `InvMixColumns` applied to the inner keys) for
//! decryption. Only the two non-linear helpers differ per instruction set,
//! so each backend passes its own constant-time `SubWord` and
//! `InvMixColumns`.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Maximum number of round keys (AES-256: 14 rounds + 1).
pub(crate) const MAX_ROUND_KEYS: usize = 15;

/// Expanded encryption and decryption round keys, wiped on drop.
#[derive(Clone)]
#[repr(C, align(64))]
pub(crate) struct RoundKeys {
    /// Encryption round keys `0..=rounds`.
    pub(crate) enc: [[u8; 16]; MAX_ROUND_KEYS],
    /// Decryption round keys `0..=rounds` (equivalent inverse cipher).
    pub(crate) dec: [[u8; 16]; MAX_ROUND_KEYS],
    /// 10, 12 or 14.
    pub(crate) rounds: usize,
}

// By hand rather than derived: the derive would pull `syn` into every
// dependent's build for three structs.
impl Zeroize for RoundKeys {
    fn zeroize(&mut self) {
        self.enc.zeroize();
        self.dec.zeroize();
        self.rounds.zeroize();
    }
}

impl Drop for RoundKeys {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for RoundKeys {}

impl RoundKeys {
    /// Expands `key` (16, 24 or 32 bytes; `None` otherwise) with the
    /// backend's `SubWord` and `InvMixColumns`.
    pub(crate) fn expand(
        key: &[u8],
        mut sub_word: impl FnMut(u32) -> u32,
        mut inv_mix_columns: impl FnMut(&mut [u8; 16]),
    ) -> Option<RoundKeys> {
        const RCON: [u8; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];
        let nk = match key.len() {
            16 | 24 | 32 => key.len() / 4,
            _ => return None,
        };
        let rounds = nk + 6;
        let total_words = 4 * (rounds + 1);

        let mut words = [0u32; 4 * MAX_ROUND_KEYS];
        for (word, bytes) in words.iter_mut().zip(key.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in nk..total_words {
            let mut temp = words[i - 1];
            if i % nk == 0 {
                // RotWord on little-endian words is a right rotation by one byte.
                temp = sub_word(temp).rotate_right(8) ^ u32::from(RCON[i / nk - 1]);
            } else if nk > 6 && i % nk == 4 {
                temp = sub_word(temp);
            }
            words[i] = words[i - nk] ^ temp;
        }

        let mut keys = RoundKeys {
            enc: [[0; 16]; MAX_ROUND_KEYS],
            dec: [[0; 16]; MAX_ROUND_KEYS],
            rounds,
        };
        for (round_key, chunk) in keys.enc.iter_mut().zip(words.chunks_exact(4)) {
            for (dst, word) in round_key.chunks_exact_mut(4).zip(chunk) {
                dst.copy_from_slice(&word.to_le_bytes());
            }
        }
        words.zeroize();

        keys.dec[0] = keys.enc[rounds];
        keys.dec[rounds] = keys.enc[0];
        for r in 1..rounds {
            keys.dec[r] = keys.enc[rounds - r];
            inv_mix_columns(&mut keys.dec[r]);
        }
        Some(keys)
    }
}
