//! Independent references shared by the fuzz targets.
//!
//! Nothing here calls the crate under test: AES is RustCrypto's block cipher
//! (one block at a time), and the modes (MariaDB's CBC tail rule, the 128-bit
//! big-endian CTR counter), the page IV and checksum and OpenSSL's
//! `EVP_BytesToKey` are written out from the spec, so a target that compares
//! the crate with them checks the crate, not the crate against itself.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes192, Aes256};
use sha1::{Digest, Sha1};

/// An AES key schedule of any of the three sizes.
pub enum RefAes {
    A128(Aes128),
    A192(Aes192),
    A256(Aes256),
}

impl RefAes {
    /// `None` for a key that is not 16, 24 or 32 bytes.
    pub fn new(key: &[u8]) -> Option<Self> {
        Some(match key.len() {
            16 => RefAes::A128(Aes128::new_from_slice(key).ok()?),
            24 => RefAes::A192(Aes192::new_from_slice(key).ok()?),
            32 => RefAes::A256(Aes256::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    pub fn encrypt(&self, block: &mut [u8; 16]) {
        match self {
            RefAes::A128(c) => c.encrypt_block(block.into()),
            RefAes::A192(c) => c.encrypt_block(block.into()),
            RefAes::A256(c) => c.encrypt_block(block.into()),
        }
    }

    pub fn decrypt(&self, block: &mut [u8; 16]) {
        match self {
            RefAes::A128(c) => c.decrypt_block(block.into()),
            RefAes::A192(c) => c.decrypt_block(block.into()),
            RefAes::A256(c) => c.decrypt_block(block.into()),
        }
    }

    fn encrypted(&self, mut block: [u8; 16]) -> [u8; 16] {
        self.encrypt(&mut block);
        block
    }

    fn decrypted(&self, mut block: [u8; 16]) -> [u8; 16] {
        self.decrypt(&mut block);
        block
    }
}

fn block_at(data: &[u8], i: usize) -> [u8; 16] {
    let mut b = [0u8; 16];
    b.copy_from_slice(&data[i * 16..i * 16 + 16]);
    b
}

fn xor16(a: [u8; 16], b: [u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for i in 0..16 {
        out[i] = a[i] ^ b[i];
    }
    out
}

/// ECB over whole blocks (`data.len()` must be a multiple of 16).
pub fn ecb(aes: &RefAes, decrypt: bool, data: &[u8]) -> Vec<u8> {
    assert_eq!(data.len() % 16, 0);
    let mut out = Vec::with_capacity(data.len());
    for i in 0..data.len() / 16 {
        let b = block_at(data, i);
        out.extend_from_slice(&if decrypt {
            aes.decrypted(b)
        } else {
            aes.encrypted(b)
        });
    }
    out
}

/// MariaDB's no-padding CBC (spec §4.3): CBC over the whole blocks, the last
/// `len % 16` bytes XORed with `AES-ECB(key, iv)`.
pub fn cbc(aes: &RefAes, decrypt: bool, iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let full = data.len() / 16;
    let mut out = Vec::with_capacity(data.len());
    let mut chain = *iv;
    for i in 0..full {
        let b = block_at(data, i);
        if decrypt {
            out.extend_from_slice(&xor16(aes.decrypted(b), chain));
            chain = b;
        } else {
            chain = aes.encrypted(xor16(b, chain));
            out.extend_from_slice(&chain);
        }
    }
    let mask = aes.encrypted(*iv);
    for (i, &byte) in data[full * 16..].iter().enumerate() {
        out.push(byte ^ mask[i]);
    }
    out
}

/// CTR with the whole 16-byte block as one big-endian counter (spec §4.4).
pub fn ctr(aes: &RefAes, counter: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut c = u128::from_be_bytes(*counter);
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(16) {
        let ks = aes.encrypted(c.to_be_bytes());
        c = c.wrapping_add(1);
        out.extend(chunk.iter().zip(ks).map(|(a, b)| a ^ b));
    }
    out
}

/// The table's local key: `AES-ECB(global, scheme_iv)` (spec §4.1).
pub fn local_key(global: &[u8], scheme_iv: &[u8; 16]) -> [u8; 16] {
    RefAes::new(global)
        .expect("provider key length")
        .encrypted(*scheme_iv)
}

/// `LE32(space) ‖ LE32(page) ‖ LE64(lsn)`, the LSN decoded from the first
/// seven page bytes as `(LE24 << 32) | LE32` (spec §4.2).
pub fn page_iv(space: u32, page_no: u32, page: &[u8]) -> [u8; 16] {
    let lsn = (u64::from(page[0]) | u64::from(page[1]) << 8 | u64::from(page[2]) << 16) << 32
        | u64::from(u32::from_le_bytes([page[3], page[4], page[5], page[6]]));
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&space.to_le_bytes());
    iv[4..8].copy_from_slice(&page_no.to_le_bytes());
    iv[8..].copy_from_slice(&lsn.to_le_bytes());
    iv
}

/// zlib CRC-32 seeded with the page number; the two "no checksum" values
/// become 0xFFFFFFFD (spec §5.1).
pub fn page_crc(page_no: u32, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(page_no);
    h.update(data);
    match h.finalize() {
        0xffff_fffe | 0xffff_ffff => 0xffff_fffd,
        c => c,
    }
}

/// Where an encrypted page keeps its key version, its encrypted body and
/// the end of its checksummed bytes (spec §5.2, §5.4); `None` if the page
/// is not an encrypted one (header, bitmap, all zero) or is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefLayout {
    pub version_at: usize,
    pub body: std::ops::Range<usize>,
    pub crc_end: usize,
}

/// Classifies a page the way spec §6 step 1–2 does. `Err(())` for an index
/// page whose `page_used` is outside `[kh, bs - 4]`.
#[allow(clippy::result_unit_err, reason = "the only error is one fault")]
pub fn ref_layout(
    index: bool,
    transactional: bool,
    block_size: usize,
    keystart: u64,
    page_no: u32,
    page: &[u8],
) -> Result<Option<RefLayout>, ()> {
    let bs = block_size;
    if index {
        if u64::from(page_no) < keystart / bs as u64 {
            return Ok(None);
        }
    } else {
        let covered = ((bs as u32 - 4) / 6) * 16 + 1;
        if page_no.is_multiple_of(covered) {
            return Ok(None);
        }
    }
    if page.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    if index {
        let kh = if transactional { 21 } else { 15 };
        let used = usize::from(u16::from_be_bytes([page[kh - 2], page[kh - 1]]));
        if used < kh || used > bs - 4 {
            return Err(());
        }
        Ok(Some(RefLayout {
            version_at: kh - 8,
            body: kh..used,
            crc_end: used,
        }))
    } else if page[7] & 7 >= 3 {
        Ok(Some(RefLayout {
            version_at: 8,
            body: 12..bs - 4,
            crc_end: bs - 4,
        }))
    } else {
        Ok(Some(RefLayout {
            version_at: 12,
            body: 16..bs - 4,
            crc_end: bs - 4,
        }))
    }
}

/// OpenSSL `EVP_BytesToKey(SHA-1, 1 iteration)`: 32 key bytes, 16 IV bytes.
pub fn bytes_to_key(secret: &[u8], salt: &[u8; 8]) -> ([u8; 32], [u8; 16]) {
    let mut material = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    while material.len() < 48 {
        let mut h = Sha1::new();
        h.update(&prev);
        h.update(secret);
        h.update(salt);
        prev = h.finalize().to_vec();
        material.extend_from_slice(&prev);
    }
    let mut key = [0u8; 32];
    let mut iv = [0u8; 16];
    key.copy_from_slice(&material[..32]);
    iv.copy_from_slice(&material[32..48]);
    (key, iv)
}

/// `openssl enc -aes-256-cbc -md sha1` of `text` with `secret` and `salt`:
/// `Salted__`, the salt, AES-256-CBC with PKCS#7 padding.
pub fn openssl_enc(text: &[u8], secret: &[u8], salt: &[u8; 8]) -> Vec<u8> {
    let (key, iv) = bytes_to_key(secret, salt);
    let aes = RefAes::new(&key).unwrap();
    let pad = 16 - text.len() % 16;
    let mut padded = text.to_vec();
    padded.extend(std::iter::repeat_n(pad as u8, pad));
    let body = cbc(&aes, false, &iv, &padded);
    let mut out = b"Salted__".to_vec();
    out.extend_from_slice(salt);
    out.extend_from_slice(&body);
    out
}

/// Lowercase and uppercase hex of `bytes`.
pub fn hex_both(bytes: &[u8]) -> [String; 2] {
    let lower: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let upper = lower.to_ascii_uppercase();
    [lower, upper]
}

/// Panics if `text` contains `key` in hex (either case), or any 8-byte
/// window of it that has at least four distinct byte values (so that runs of
/// zeros, which other fields may print, do not count).
pub fn assert_no_key(text: &str, key: &[u8], what: &str) {
    let windows = key.windows(8).filter(|w| {
        let mut seen = w.to_vec();
        seen.sort_unstable();
        seen.dedup();
        seen.len() >= 4
    });
    for window in std::iter::once(key).chain(windows) {
        for hex in hex_both(window) {
            assert!(
                !text.contains(&hex),
                "{what} prints key bytes {hex}: {text}"
            );
        }
    }
}

/// A small deterministic generator (SplitMix64) to expand a few fuzz bytes
/// into long buffers.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
