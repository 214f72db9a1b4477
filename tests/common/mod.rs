//! Independent reference implementations for the kernel tests: RustCrypto
//! `aes`, `cbc` and `ctr`, with MariaDB's CBC tail rule written out
//! separately from the crate's own code.

#![allow(dead_code)]

use aes::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit,
    StreamCipher, array::Array,
};
use mariadb_aria_crypt::kernel::Backend;

/// Runs `$body` with `$cipher` bound to the RustCrypto AES type for the key.
macro_rules! with_aes {
    ($key:expr, $cipher:ident => $body:expr) => {
        match $key.len() {
            16 => {
                type $cipher = aes::Aes128;
                $body
            }
            24 => {
                type $cipher = aes::Aes192;
                $body
            }
            32 => {
                type $cipher = aes::Aes256;
                $body
            }
            n => panic!("test key of {n} bytes"),
        }
    };
}

fn as_blocks(data: &mut [u8]) -> &mut [Array<u8, aes::cipher::consts::U16>] {
    Array::cast_slice_from_core_mut(data.as_chunks_mut::<16>().0)
}

pub fn ecb_encrypt(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    with_aes!(key, C => C::new_from_slice(key).unwrap().encrypt_blocks(as_blocks(&mut out)));
    out
}

pub fn ecb_decrypt(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    with_aes!(key, C => C::new_from_slice(key).unwrap().decrypt_blocks(as_blocks(&mut out)));
    out
}

/// `AES-ECB(key, iv)`: the mask of MariaDB's CBC tail rule.
pub fn tail_mask(key: &[u8], iv: &[u8; 16]) -> [u8; 16] {
    let out = ecb_encrypt(key, iv);
    out.try_into().unwrap()
}

/// CBC over the whole blocks by RustCrypto `cbc`, then the last `len % 16`
/// bytes XORed with `AES-ECB(key, iv)` (spec §4.3).
pub fn cbc_encrypt(key: &[u8], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let full = data.len() / 16 * 16;
    with_aes!(key, C => cbc::Encryptor::<C>::new_from_slices(key, iv)
        .unwrap()
        .encrypt_blocks(as_blocks(&mut out[..full])));
    xor_tail(&mut out[full..], &tail_mask(key, iv));
    out
}

pub fn cbc_decrypt(key: &[u8], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let full = data.len() / 16 * 16;
    with_aes!(key, C => cbc::Decryptor::<C>::new_from_slices(key, iv)
        .unwrap()
        .decrypt_blocks(as_blocks(&mut out[..full])));
    xor_tail(&mut out[full..], &tail_mask(key, iv));
    out
}

/// CTR with a 128-bit big-endian counter (RustCrypto `Ctr128BE`).
pub fn ctr(key: &[u8], counter: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    with_aes!(key, C => ctr::Ctr128BE::<C>::new_from_slices(key, counter)
        .unwrap()
        .apply_keystream(&mut out));
    out
}

fn xor_tail(tail: &mut [u8], mask: &[u8; 16]) {
    for (byte, m) in tail.iter_mut().zip(mask) {
        *byte ^= m;
    }
}

/// The backends every kernel test runs against: all that this CPU supports
/// (the software one is always among them).
pub fn backends() -> &'static [Backend] {
    Backend::supported()
}
