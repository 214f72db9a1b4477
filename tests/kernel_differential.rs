//! Every backend this CPU supports against independent implementations
//! (RustCrypto `aes`, `cbc`, `ctr`, with MariaDB's tail rule computed
//! separately): random keys of all sizes, random IVs including counters
//! that end in `ff` bytes, every length remainder, in place and buffer to
//! buffer, single buffers and batches of mixed lengths.
//!
//! Case counts follow `PROPTEST_CASES` (default 256), so slow targets such
//! as emulated aarch64 can run fewer without changing this file.

mod common;

use mariadb_aria_crypt::kernel::{Aes, Job, Mode};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 16),
        prop::collection::vec(any::<u8>(), 24),
        prop::collection::vec(any::<u8>(), 32),
    ]
}

/// Random IVs, often ending in a run of `ff` bytes so CTR carries.
fn iv() -> impl Strategy<Value = [u8; 16]> {
    (any::<[u8; 16]>(), 0usize..=16, any::<bool>()).prop_map(|(mut iv, ff, carry)| {
        if carry {
            iv[16 - ff..].fill(0xff);
        }
        iv
    })
}

/// Lengths 0..=32768 with every remainder mod 16; short ones often.
fn data(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..=80),
        prop::collection::vec(any::<u8>(), 0..=max),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Cbc), Just(Mode::Ctr)]
}

fn reference_encrypt(mode: Mode, key: &[u8], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    match mode {
        Mode::Cbc => common::cbc_encrypt(key, iv, data),
        Mode::Ctr => common::ctr(key, iv, data),
    }
}

fn reference_decrypt(mode: Mode, key: &[u8], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    match mode {
        Mode::Cbc => common::cbc_decrypt(key, iv, data),
        Mode::Ctr => common::ctr(key, iv, data),
    }
}

fn encrypt(aes: &Aes, mode: Mode, iv: &[u8; 16], input: &[u8], in_place: bool) -> Vec<u8> {
    let mut out = input.to_vec();
    if in_place {
        aes.encrypt(mode, iv, &mut out);
    } else {
        aes.encrypt_to(mode, iv, input, &mut out).unwrap();
    }
    out
}

fn decrypt(aes: &Aes, mode: Mode, iv: &[u8; 16], input: &[u8], in_place: bool) -> Vec<u8> {
    let mut out = input.to_vec();
    if in_place {
        aes.decrypt(mode, iv, &mut out);
    } else {
        aes.decrypt_to(mode, iv, input, &mut out).unwrap();
    }
    out
}

/// CTR from every value of the counter's last byte, so that its wrap falls
/// at every position of a backend's group of registers, with and without a
/// carry through the bytes before it: the x86 backends add to the last
/// byte directly until it wraps.
#[test]
fn ctr_from_every_last_byte() {
    let key = [0x5au8; 16];
    // 95 whole blocks and a tail: several groups of every backend.
    let plain: Vec<u8> = (0..95 * 16 + 7).map(|i| i as u8).collect();
    let ciphers: Vec<Aes> = common::backends()
        .iter()
        .map(|&backend| Aes::with_backend(&key, backend).unwrap())
        .collect();
    for prefix in [[0x11u8; 15], [0xffu8; 15]] {
        for last in 0..=255u8 {
            let mut iv = [0u8; 16];
            iv[..15].copy_from_slice(&prefix);
            iv[15] = last;
            let expected = common::ctr(&key, &iv, &plain);
            for aes in &ciphers {
                let backend = aes.backend();
                let mut out = plain.clone();
                aes.encrypt(Mode::Ctr, &iv, &mut out);
                assert_eq!(out, expected, "{backend} CTR from {iv:02x?}");
            }
        }
    }
}

proptest! {
    #[test]
    fn single_buffer_matches_reference(
        key in key(), iv in iv(), mode in mode(), plain in data(32768), in_place in any::<bool>(),
    ) {
        let expected = reference_encrypt(mode, &key, &iv, &plain);
        prop_assert_eq!(reference_decrypt(mode, &key, &iv, &expected), plain.clone());
        for &backend in common::backends() {
            let aes = Aes::with_backend(&key, backend).unwrap();
            let cipher = encrypt(&aes, mode, &iv, &plain, in_place);
            prop_assert_eq!(&cipher, &expected, "{} {} encrypt, {} bytes", backend, mode, plain.len());
            let back = decrypt(&aes, mode, &iv, &cipher, in_place);
            prop_assert_eq!(&back, &plain, "{} {} decrypt, {} bytes", backend, mode, plain.len());
        }
    }

    #[test]
    fn ecb_matches_reference(key in key(), plain in data(32768), in_place in any::<bool>()) {
        let plain = &plain[..plain.len() / 16 * 16];
        let expected = common::ecb_encrypt(&key, plain);
        for &backend in common::backends() {
            let aes = Aes::with_backend(&key, backend).unwrap();
            let mut out = plain.to_vec();
            if in_place {
                aes.ecb_encrypt(&mut out).unwrap();
            } else {
                aes.ecb_encrypt_to(plain, &mut out).unwrap();
            }
            prop_assert_eq!(&out, &expected, "{} ECB encrypt", backend);
            let mut back = out.clone();
            if in_place {
                aes.ecb_decrypt(&mut back).unwrap();
            } else {
                aes.ecb_decrypt_to(&out, &mut back).unwrap();
            }
            prop_assert_eq!(&back[..], plain, "{} ECB decrypt", backend);
            prop_assert_eq!(common::ecb_decrypt(&key, &out), plain.to_vec());
        }
    }
}

fn batch() -> impl Strategy<Value = Vec<([u8; 16], Vec<u8>, bool)>> {
    prop::collection::vec((iv(), data(32768), any::<bool>()), 1..=64)
}

/// Batch CBC encryption of pages in a pool, in place, at strides that
/// make the lane scheduler pick another stagger than the backends' (16
/// bytes past a multiple of 4 KiB cancels a stagger of one block) and at
/// one that does not, every backend against the reference.
#[test]
fn batch_at_buffer_pool_strides() {
    let key = [0x3cu8; 16];
    for stride in [8192, 8208, 12304] {
        let pages = 40;
        let pool: Vec<u8> = (0..pages * stride)
            .map(|i| (i * 7 + i / 4099) as u8)
            .collect();
        let iv = |n: usize| [n as u8 ^ 0xa5; 16];
        let expected: Vec<Vec<u8>> = pool
            .chunks_exact(stride)
            .enumerate()
            .map(|(n, page)| common::cbc_encrypt(&key, &iv(n), &page[16..8188]))
            .collect();
        for &backend in common::backends() {
            let aes = Aes::with_backend(&key, backend).unwrap();
            let mut frames = pool.clone();
            let mut jobs: Vec<Job> = frames
                .chunks_exact_mut(stride)
                .enumerate()
                .map(|(n, page)| Job::in_place(iv(n), &mut page[16..8188]))
                .collect();
            aes.encrypt_batch(Mode::Cbc, &mut jobs);
            drop(jobs);
            for (n, (frame, want)) in frames.chunks_exact(stride).zip(&expected).enumerate() {
                assert_eq!(
                    &frame[16..8188],
                    &want[..],
                    "{backend} stride {stride} page {n}"
                );
                assert_eq!(
                    frame[..16],
                    pool[n * stride..][..16],
                    "{backend}: bytes before the body"
                );
                assert_eq!(
                    frame[8188..],
                    pool[n * stride + 8188..(n + 1) * stride],
                    "{backend}: bytes after it"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: (ProptestConfig::default().cases / 4).max(1),
        ..ProptestConfig::default()
    })]

    #[test]
    fn batch_matches_reference(key in key(), mode in mode(), jobs in batch()) {
        let expected: Vec<Vec<u8>> = jobs
            .iter()
            .map(|(iv, plain, _)| reference_encrypt(mode, &key, iv, plain))
            .collect();
        for &backend in common::backends() {
            let aes = Aes::with_backend(&key, backend).unwrap();
            // Each job in place or buffer to buffer, mixed within the batch.
            let mut bufs: Vec<Vec<u8>> = jobs
                .iter()
                .map(|(_, plain, in_place)| if *in_place { plain.clone() } else { vec![0; plain.len()] })
                .collect();
            let mut batch: Vec<Job> = bufs
                .iter_mut()
                .zip(&jobs)
                .map(|(buf, (iv, plain, in_place))| {
                    if *in_place {
                        Job::in_place(*iv, buf)
                    } else {
                        Job::buf_to_buf(*iv, plain, buf).unwrap()
                    }
                })
                .collect();
            aes.encrypt_batch(mode, &mut batch);
            drop(batch);
            for (i, (buf, want)) in bufs.iter().zip(&expected).enumerate() {
                prop_assert_eq!(buf, want, "{} {} batch encrypt, job {} of {}", backend, mode, i, jobs.len());
            }
            let mut batch: Vec<Job> = bufs
                .iter_mut()
                .zip(&jobs)
                .map(|(buf, (iv, _, _))| Job::in_place(*iv, buf))
                .collect();
            aes.decrypt_batch(mode, &mut batch);
            drop(batch);
            for (i, (buf, (_, plain, _))) in bufs.iter().zip(&jobs).enumerate() {
                prop_assert_eq!(buf, plain, "{} {} batch decrypt, job {}", backend, mode, i);
            }
        }
    }
}
