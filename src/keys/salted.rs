//! `Salted__` key files: `openssl enc -aes-256-cbc -md sha1`, as the
//! server's `file_key_management` decrypts them with its `filekey`. Behind
//! the default-on `salted-key-files` feature, the only user of `sha1`.

use std::path::Path;

use sha1::{Digest, Sha1};
use zeroize::{Zeroize, Zeroizing};

use super::file::key_file_error;
use crate::Error;
use crate::fault::KeyFileFault;
use crate::kernel::{Aes, BLOCK, Mode};

/// What `openssl enc` writes before the salt.
const SALTED: &[u8; 8] = b"Salted__";
const SALT_LEN: usize = 8;

/// AES-256 key and IV of an `openssl enc` file, wiped on drop.
struct Derived {
    key: [u8; 32],
    iv: [u8; BLOCK],
}

impl Drop for Derived {
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

/// OpenSSL's `EVP_BytesToKey` with SHA-1 and one iteration, as `openssl enc
/// -md sha1` and the server's `bytes_to_key`: `D1 = SHA1(secret ‖ salt)`,
/// `Di = SHA1(D(i-1) ‖ secret ‖ salt)`; key = 32 bytes, IV = next 16.
fn bytes_to_key(secret: &[u8], salt: &[u8; SALT_LEN]) -> Derived {
    let mut material = Zeroizing::new([0u8; 60]);
    let mut previous = Zeroizing::new([0u8; 20]);
    for (round, chunk) in material.chunks_exact_mut(20).enumerate() {
        let mut hasher = Sha1::new();
        if round > 0 {
            hasher.update(&previous[..]);
        }
        hasher.update(secret);
        hasher.update(salt);
        let mut digest = hasher.finalize();
        previous.copy_from_slice(&digest);
        chunk.copy_from_slice(&digest);
        digest.as_mut_slice().zeroize();
    }
    let mut derived = Derived {
        key: [0; 32],
        iv: [0; BLOCK],
    };
    let (key, rest) = material.split_at(32);
    derived.key.copy_from_slice(key);
    for (iv, byte) in derived.iv.iter_mut().zip(rest) {
        *iv = *byte;
    }
    derived
}

/// Decrypts an `openssl enc -aes-256-cbc -md sha1` file (`Salted__`, salt,
/// AES-256-CBC with PKCS#7 padding). Wiped on drop.
pub(super) fn decrypt_salted(
    bytes: &[u8],
    secret: &[u8],
    origin: &Path,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let fail = |fault| key_file_error(origin, None, fault);
    let (salt, body) = bytes
        .get(SALTED.len()..)
        .and_then(|rest| rest.split_first_chunk::<SALT_LEN>())
        .ok_or_else(|| fail(KeyFileFault::Truncated))?;
    // The server leaves these to OpenSSL ("Wrong key?"); the file is short.
    if body.is_empty() || !body.len().is_multiple_of(BLOCK) {
        return Err(fail(KeyFileFault::Truncated));
    }
    let derived = bytes_to_key(secret, salt);
    let aes = Aes::new(&derived.key)?;
    let mut text = Zeroizing::new(body.to_vec());
    aes.decrypt(Mode::Cbc, &derived.iv, &mut text);
    let pad = pkcs7_padding(&text).ok_or_else(|| fail(KeyFileFault::WrongSecret))?;
    let len = text.len().saturating_sub(pad);
    text.truncate(len);
    Ok(text)
}

/// The PKCS#7 padding length of `text` (1..=16), checking every padding byte
/// as OpenSSL does, without branching on the bytes.
fn pkcs7_padding(text: &[u8]) -> Option<usize> {
    let last_block = text.last_chunk::<BLOCK>()?;
    let pad = last_block[BLOCK - 1];
    let mut bad = u8::from(pad == 0) | u8::from(usize::from(pad) > BLOCK);
    for (distance, &byte) in last_block.iter().rev().enumerate() {
        bad |= u8::from(distance < usize::from(pad)) & u8::from(byte != pad);
    }
    (bad == 0).then_some(usize::from(pad))
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;

    use super::*;

    #[test]
    fn bytes_to_key_matches_spec_7_8() {
        let derived = bytes_to_key(b"aria-fixture-filekey-secret", &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            derived.key,
            hex!("7427e663f007601211fa6435d440d9efa8322915292f98d6c857d66e35ebb722")
        );
        assert_eq!(derived.iv, hex!("50615f53a8203ba57e0dccf761a46541"));
    }

    #[test]
    fn bytes_to_key_empty_secret_is_sha1_of_salt() {
        let salt = [9u8; 8];
        let derived = bytes_to_key(b"", &salt);
        let d1 = Sha1::digest(salt);
        assert_eq!(&derived.key[..20], &d1[..]);
    }

    #[test]
    fn pkcs7_checks_every_padding_byte() {
        let mut block = [0x41u8; 16];
        assert_eq!(pkcs7_padding(&block), None, "0x41 > 16");
        block[15] = 1;
        assert_eq!(pkcs7_padding(&block), Some(1));
        block[15] = 3;
        block[14] = 3;
        assert_eq!(pkcs7_padding(&block), None, "byte 13 is not 3");
        block[13] = 3;
        assert_eq!(pkcs7_padding(&block), Some(3));
        let full = [16u8; 16];
        assert_eq!(pkcs7_padding(&full), Some(16));
        let mut almost = [16u8; 16];
        almost[0] = 15;
        assert_eq!(pkcs7_padding(&almost), None);
        block[15] = 0;
        assert_eq!(pkcs7_padding(&block), None, "0 is never a padding length");
        block[15] = 17;
        assert_eq!(pkcs7_padding(&block), None);
        assert_eq!(pkcs7_padding(&[1u8; 15]), None, "shorter than a block");
        // Only the last block counts.
        let mut two = [0u8; 32];
        two[31] = 1;
        assert_eq!(pkcs7_padding(&two), Some(1));
    }
}
