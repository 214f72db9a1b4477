//! The CRC-32 a batch job can ask for ([`Job::with_crc`](super::Job::with_crc),
//! [`Job::with_prefixed_crc`](super::Job::with_prefixed_crc)):
//! zlib's CRC-32 (CRC-32/ISO-HDLC, reflected polynomial `0xEDB88320`,
//! register preset and final XOR `0xFFFFFFFF`) of the bytes a job reads,
//! continued from an initial value exactly as
//! `crc32fast::Hasher::new_with_initial(initial)` + `update` + `finalize`.
//! It is the checksum of every Aria page (spec §5.1), which the write hook
//! computes over the plaintext it is about to encrypt.
//!
//! # Where it is computed
//! In multi-buffer CBC encryption on every backend with carry-less multiply
//! (AES-NI with PCLMULQDQ, VAES-256 and VAES-512 with VPCLMULQDQ, ARMv8
//! with PMULL), each SIMD lane keeps a 128-bit CRC accumulator beside its
//! CBC chain and folds in the plaintext block it has just gathered for AES
//! (the lane driver's `Clmul::fold`), so the carry-less multiplications
//! fill the idle issue slots of the latency-bound AES loop instead of
//! reading the data a second time. Everywhere else (the portable backend,
//! CTR, decryption) the generic code runs `crc32fast` over the job's input
//! before the backend touches it.
//!
//! # Folding
//! Read a 16-byte block as a polynomial of degree < 128, its first byte
//! holding the highest coefficients and bit 0 of each byte the highest of
//! that byte (the reflected order). The CRC register after a message `M` of
//! `n` bytes started from the register `s` (the 32-bit register is zlib's
//! value inverted) is `s·x^(8n) + M·x^32 mod P`; XORing `s` into the first
//! four message bytes gives `s·x^(8n−32) + M`, so from there on only the
//! message polynomial modulo `P` matters.
//!
//! A lane's accumulator `A` starts from a seed congruent to
//! `s·x^(8p−32) + Q` for a prefix `Q` of `p` bytes that the CRC covers
//! before the job's input (`Job::with_prefixed_crc`; `p = 0` for
//! `Job::with_crc`): with `p ≥ 4` that is `Q`'s bytes with `s` XORed into
//! the first four, no multiplication (`CrcRequest::seed`). Each block `B`
//! of the job is folded in as
//! `A ← A·x^128 + B`, computed modulo `P` by splitting `A = H·x^64 + L`
//! (`H` its first eight bytes):
//!
//! ```text
//! A·x^128 = H·x^192 + L·x^128 ≡ H·(x^160 mod P)·x^32 + L·(x^96 mod P)·x^32
//! ```
//!
//! that is two carry-less 64×33-bit products whose sum is congruent to
//! `A·x^128` and has degree < 128, with the constants `[x^160 mod P,
//! x^96 mod P]` stored as 33-bit reflected values (`consts::fold_keys`): the
//! factor `x^32` comes free from how reflected products line up. After the
//! last whole block the accumulator `X` is congruent to the message so far;
//! the register is `X·x^32 mod P`, the register of a CRC over the 16 bytes
//! of `X` started from zero. The job's last `len % 16` bytes (the part CBC
//! handles with MariaDB's tail rule, outside the lanes) are appended and
//! the register reduced to 32 bits by `crc32fast` over those at most 31
//! bytes ([`finish`]), once per job.

/// The folding constants and their derivation from the polynomial,
/// computed at compile time.
pub(crate) mod consts {
    /// The CRC-32 generator polynomial in normal (most significant first) form
    /// without its `x^32` term.
    pub(crate) const POLY: u32 = 0x04c1_1db7;

    /// `x^n mod P` in normal form (bit `d` is the coefficient of `x^d`), for any
    /// `n`, negative ones included (`x` is invertible because `P(0) = 1`).
    /// Linear in `|n|`; meant for constants.
    pub(crate) const fn xpow_mod(n: i32) -> u32 {
        let mut r: u32 = 1;
        let mut i = 0;
        if n >= 0 {
            while i < n {
                // r·x: shift up; a carry out of x^31 is x^32 ≡ POLY.
                let carry = r & 0x8000_0000 != 0;
                r <<= 1;
                if carry {
                    r ^= POLY;
                }
                i += 1;
            }
        } else {
            while i < -n {
                // r·x^-1: an even r is divisible by x; an odd one becomes even
                // after adding P, whose x^32 term lands on x^31.
                r = if r & 1 == 0 {
                    r >> 1
                } else {
                    ((r ^ POLY) >> 1) | 0x8000_0000
                };
                i += 1;
            }
        }
        r
    }

    /// A polynomial of degree ≤ 32 (normal form) as the 33-bit reflected
    /// operand the carry-less folds take: bit `j` holds the coefficient of
    /// `x^(32−j)`.
    pub(crate) const fn reflect33(normal: u64) -> u64 {
        normal.reverse_bits() >> 31
    }

    /// The pair `[x^(D+32) mod P, x^(D−32) mod P]`, reflected, that folds a
    /// 128-bit lane forward by `bits` = `D` bits: the first multiplies the
    /// lane's low (first) quadword, the second its high quadword.
    pub(crate) const fn fold_keys(bits: i32) -> [u64; 2] {
        [
            reflect33(xpow_mod(bits + 32) as u64),
            reflect33(xpow_mod(bits - 32) as u64),
        ]
    }

    /// The constants that fold an accumulator forward by one block (128 bits).
    #[cfg(test)]
    pub(crate) const FOLD_128: [u64; 2] = fold_keys(128);

    /// For a prefix of `p < 4` bytes, the product `s·x^(8p−32) mod P`
    /// (`CrcRequest::seed`) as a 32×32 bit matrix: column `i` is what bit
    /// `i` of the reflected register `s` (the coefficient of `x^(31−i)`)
    /// contributes, `x^(8p−1−i) mod P`, reflected.
    pub(crate) const SHORT_PREFIX_COLUMNS: [[u32; 32]; 4] = {
        let mut columns = [[0; 32]; 4];
        let mut p = 0;
        while p < 4 {
            let mut i = 0;
            while i < 32 {
                columns[p][i] = xpow_mod(8 * p as i32 - 1 - i as i32).reverse_bits();
                i += 1;
            }
            p += 1;
        }
        columns
    };
}

/// The block a fused lane's fold multiplies by to fold one block forward.
pub(crate) const FOLD_128_BLOCK: [u8; 16] = fold_block(128);

/// [`consts::fold_keys`]`(bits)` as the block a fold multiplies by, to
/// fold an accumulator forward by `bits` bits. For constants (linear in
/// `bits`).
pub(crate) const fn fold_block(bits: i32) -> [u8; 16] {
    let keys = consts::fold_keys(bits);
    ((keys[1] as u128) << 64 | keys[0] as u128).to_le_bytes()
}

/// Stores the CRC value of every job that asks for one, from the
/// accumulator the lanes left in its request: the job's tail (its last
/// `len % 16` bytes) appended, then reduced to 32 bits, once per job. A job
/// without a whole block never reached a lane and is computed directly.
/// Must run before the CBC tail rule overwrites the tails.
pub(crate) fn finish_jobs(jobs: &mut [super::Job<'_>]) {
    for job in jobs.iter_mut() {
        let Some(crc) = &mut job.crc else { continue };
        let input = job.io.input();
        let tail = &input[input.len() / 16 * 16..];
        crc.value = Some(if input.len() >= 16 {
            finish(&crc.fold, tail)
        } else {
            crc.compute(input)
        });
    }
}

/// zlib's `crc32(initial, data)` through `crc32fast`: what every path that
/// does not fuse the CRC computes, and the reference for the one that does.
fn crc32(initial: u32, data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(initial);
    hasher.update(data);
    hasher.finalize()
}

/// Most prefix bytes a request keeps; a longer prefix is hashed down to
/// its last `PREFIX_MAX` bytes when the request is made.
const PREFIX_MAX: usize = 16;

/// A job's CRC request and, after a batch operation, its result.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CrcRequest {
    /// zlib's running value the CRC continues from, before the prefix.
    initial: u32,
    /// The bytes the CRC covers before the job's input, in the last
    /// `prefix_len` bytes.
    prefix: [u8; PREFIX_MAX],
    prefix_len: usize,
    /// The result of the latest batch operation.
    pub(crate) value: Option<u32>,
    /// Fused path only: the job's accumulator after its last whole block,
    /// left here by the lane scheduler for the final reduction.
    pub(crate) fold: [u8; 16],
    /// Whether the CRC is of the job's output rather than its input
    /// (`Job::with_output_crc`).
    pub(crate) of_output: bool,
    /// Whether the kernel folded the output into `fold`, for the final
    /// reduction once the tail is written.
    pub(crate) folded: bool,
}

impl CrcRequest {
    /// The CRC of `prefix` followed by the job's input, continued from
    /// `initial`.
    #[inline]
    pub(crate) fn new(initial: u32, prefix: &[u8]) -> Self {
        let (hashed, kept) = prefix.split_at(prefix.len().saturating_sub(PREFIX_MAX));
        let mut request = CrcRequest {
            initial: if hashed.is_empty() {
                initial
            } else {
                crc32(initial, hashed)
            },
            prefix: [0; PREFIX_MAX],
            prefix_len: kept.len(),
            value: None,
            fold: [0; 16],
            of_output: false,
            folded: false,
        };
        // One 16-byte move for a whole block (a data page's header).
        match kept.try_into() {
            Ok(block) => request.prefix = block,
            Err(_) => request.prefix[PREFIX_MAX - kept.len()..].copy_from_slice(kept),
        }
        request
    }

    /// The prefix bytes the request kept.
    fn prefix(&self) -> &[u8] {
        &self.prefix[PREFIX_MAX - self.prefix_len..]
    }

    /// The CRC of the prefix and then `input`, computed directly.
    pub(crate) fn compute(&self, input: &[u8]) -> u32 {
        crc32(crc32(self.initial, self.prefix()), input)
    }

    /// The accumulator a fused lane starts from, so that folding the job's
    /// blocks onto it gives the CRC of prefix and input: congruent to
    /// `s·x^(8p−32) + prefix` for the register `s` (zlib's value inverted)
    /// and a prefix of `p` bytes (see the module documentation).
    ///
    /// The prefix term is the prefix itself, right-aligned in the block.
    /// With `p ≥ 4` the register term is `s` XORed into the prefix's first
    /// four bytes. With `p < 4` it is `s·x^(8p−32)` reduced modulo `P` to
    /// 32 bits and put in the block's last four bytes (its lowest
    /// coefficients): the register times a constant matrix, without
    /// branches or lookups that depend on `s`. (A 64-iteration carry-less
    /// product here cost a batch of 64 jobs of `Job::with_crc` about 50 ns
    /// a job, as much as the rest of the CRC's work.)
    pub(crate) fn seed(&self) -> [u8; 16] {
        let register = !self.initial;
        let p = self.prefix_len;
        // Whole-register arithmetic: a 4-byte store into the block read
        // back as 16 bytes would stall store-to-load forwarding.
        let term = if p >= 4 {
            u128::from(register) << (8 * (PREFIX_MAX - p))
        } else {
            u128::from(short_prefix_term(register, p)) << 96
        };
        (u128::from_le_bytes(self.prefix) ^ term).to_le_bytes()
    }
}

/// `s·x^(8p−32) mod P` for the register `s` and a prefix of `p < 4` bytes,
/// reflected. Out of line, so that `seed` stays small enough to inline
/// into the lanes' scheduler (every page's request has a longer prefix);
/// returned in a register, not through memory.
#[inline(never)]
fn short_prefix_term(register: u32, p: usize) -> u32 {
    let columns = &consts::SHORT_PREFIX_COLUMNS[p.min(3)];
    columns.iter().enumerate().fold(0, |t, (i, column)| {
        t ^ (column & 0u32.wrapping_sub((register >> i) & 1))
    })
}

/// The 64×64-bit carry-less product, as PCLMULQDQ computes it: the tests'
/// portable model of a lane's fold.
#[cfg(test)]
fn clmul64(a: u64, b: u64) -> u128 {
    (0..64)
        .filter(|i| (b >> i) & 1 == 1)
        .fold(0, |r, i| r ^ (u128::from(a) << i))
}

/// The zlib value for a folded accumulator `fold` (see the module
/// documentation) followed by the `tail` bytes: a CRC from register zero
/// (zlib's `0xFFFFFFFF`) over the accumulator's 16 bytes, then the tail;
/// at most 31 bytes, once per job.
pub(crate) fn finish(fold: &[u8; 16], tail: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(0xffff_ffff);
    hasher.update(fold);
    hasher.update(tail);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::consts::*;
    use super::*;

    /// Carry-less product of two normal-form polynomials, reduced mod P.
    fn mulmod(a: u32, b: u32) -> u32 {
        let mut r = 0u32;
        for d in (0..32).rev() {
            let carry = r & 0x8000_0000 != 0;
            r <<= 1;
            if carry {
                r ^= POLY;
            }
            if (b >> d) & 1 == 1 {
                r ^= a;
            }
        }
        r
    }

    /// One fold step of a lane as the SIMD loop does it, on a little-endian
    /// 128-bit value: `clmul(lo, k0) ^ clmul(hi, k1) ^ block`.
    fn fold_step(acc: u128, block: u128) -> u128 {
        clmul64(acc as u64, FOLD_128[0]) ^ clmul64((acc >> 64) as u64, FOLD_128[1]) ^ block
    }

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn powers_of_x() {
        assert_eq!(xpow_mod(0), 1);
        assert_eq!(xpow_mod(31), 0x8000_0000);
        assert_eq!(xpow_mod(32), POLY);
        for n in [-100, -33, -32, -1, 1, 7, 64, 1000] {
            assert_eq!(mulmod(xpow_mod(n), xpow_mod(-n)), 1, "x^{n}·x^-{n}");
            assert_eq!(mulmod(xpow_mod(n), xpow_mod(5)), xpow_mod(n + 5));
        }
    }

    /// The constants published with the PCLMULQDQ CRC paper and used by
    /// `crc32fast`, zlib-ng and Linux, derived here from the polynomial.
    #[test]
    fn constants_match_the_published_ones() {
        assert_eq!(FOLD_128, [0x1_7519_97d0, 0x0_ccaa_009e]);
        assert_eq!(fold_keys(512), [0x1_5444_2bd4, 0x1_c6e4_1596]);
        assert_eq!(reflect33(u64::from(POLY)) >> 1, 0xedb8_8320);
    }

    /// The lane computation of the fused path, in portable code: start
    /// from the seed, fold every whole block, finish with the tail. Checks
    /// the seed for every prefix length (hashed down past 16 bytes), the
    /// constants, the byte order and `finish_portable` together.
    #[test]
    fn folding_a_lane_gives_the_crc() {
        let data = bytes(0x5eed, 600);
        let header = bytes(0x4ead, 40);
        for len in (16..=600).step_by(7).chain([16, 17, 31, 32, 33, 512]) {
            for (k, initial) in [
                0,
                1,
                0xffff_ffff,
                0x8000_0000,
                (len as u32).wrapping_mul(0x9e37_79b9),
            ]
            .into_iter()
            .enumerate()
            {
                for p in [0, 1, 2, 3, 4, 5, 15, 16, 17, 21, 40, (len + k) % 41] {
                    let prefix = &header[..p];
                    let req = CrcRequest::new(initial, prefix);
                    let message = &data[..len];
                    let (blocks, tail) = message.as_chunks::<16>();
                    let mut acc = u128::from_le_bytes(req.seed());
                    for block in blocks {
                        acc = fold_step(acc, u128::from_le_bytes(*block));
                    }
                    let whole: Vec<u8> = prefix.iter().chain(message).copied().collect();
                    let want = crc32(initial, &whole);
                    assert_eq!(
                        finish(&acc.to_le_bytes(), tail),
                        want,
                        "{len} bytes after a {p}-byte prefix from {initial:#x}"
                    );
                    assert_eq!(req.compute(message), want);
                }
            }
        }
    }
}
