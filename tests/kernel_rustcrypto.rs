//! `kernel::Aes` as a RustCrypto block cipher: the same blocks as the `aes`
//! crate on every backend this CPU runs, single and in parallel batches,
//! and usable by RustCrypto's `cbc` mode.

use aes::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit,
    KeyInit, KeyIvInit, array::Array,
};
use mariadb_aria_crypt::kernel::{Aes, Backend};

/// Deterministic bytes (xorshift), enough for test vectors.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn blocks(data: &mut [u8]) -> &mut [Array<u8, aes::cipher::consts::U16>] {
    Array::cast_slice_from_core_mut(data.as_chunks_mut::<16>().0)
}

/// `aes`'s ECB over `data` for a key of any length.
fn reference(key: &[u8], data: &[u8], encrypt: bool) -> Vec<u8> {
    let mut out = data.to_vec();
    macro_rules! run {
        ($t:ty) => {{
            let c = <$t>::new_from_slice(key).unwrap();
            if encrypt {
                c.encrypt_blocks(blocks(&mut out));
            } else {
                c.decrypt_blocks(blocks(&mut out));
            }
        }};
    }
    match key.len() {
        16 => run!(aes::Aes128),
        24 => run!(aes::Aes192),
        _ => run!(aes::Aes256),
    }
    out
}

#[test]
fn block_cipher_traits_match_the_aes_crate_on_every_backend() {
    for &backend in Backend::supported() {
        for (seed, key_len) in [(1, 16), (2, 24), (3, 32)] {
            let key = bytes(seed, key_len);
            let aes = Aes::with_backend(&key, backend).unwrap();
            // 19 blocks: two parallel batches of 8 and a tail of 3.
            let plain = bytes(seed + 10, 19 * 16);
            let mut data = plain.clone();
            BlockCipherEncrypt::encrypt_blocks(&aes, blocks(&mut data));
            assert_eq!(
                data,
                reference(&key, &plain, true),
                "{backend} AES-{}",
                key_len * 8
            );
            BlockCipherDecrypt::decrypt_blocks(&aes, blocks(&mut data));
            assert_eq!(data, plain, "{backend}");

            let mut one = Array::try_from(&plain[..16]).unwrap();
            BlockCipherEncrypt::encrypt_block(&aes, &mut one);
            assert_eq!(one.as_slice(), &reference(&key, &plain[..16], true)[..]);
        }
    }
}

#[test]
fn plugs_into_rustcrypto_cbc() {
    let key = bytes(7, 32);
    let iv = bytes(8, 16);
    let plain = bytes(9, 64 * 16);

    let mut ours = plain.clone();
    let aes = Aes::new(&key).unwrap();
    cbc::Encryptor::<Aes>::inner_iv_init(aes, iv.as_slice().try_into().unwrap())
        .encrypt_blocks(blocks(&mut ours));

    let mut theirs = plain.clone();
    cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
        .unwrap()
        .encrypt_blocks(blocks(&mut theirs));
    assert_eq!(ours, theirs);

    let aes = Aes::new(&key).unwrap();
    cbc::Decryptor::<Aes>::inner_iv_init(aes, iv.as_slice().try_into().unwrap())
        .decrypt_blocks(blocks(&mut ours));
    assert_eq!(ours, plain);
}
