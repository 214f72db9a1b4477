//! The multi-buffer lane scheduler on every backend this CPU supports, in
//! batches small enough for Miri (`scripts/miri.sh`) yet with more jobs
//! than lanes (16, or 32 for batches of 32 jobs and more on VAES-512),
//! and with a few (at most eight: eight lanes on the VAES backends): jobs
//! of different lengths finish at different steps, so lanes are refilled
//! mid-run or go idle; in place and buffer to buffer, empty jobs, tails, and
//! CRC requests (fused into the lanes on every hardware backend with
//! carry-less multiply). Every
//! output is compared with RustCrypto `cbc` and MariaDB's tail rule
//! (`common`), every CRC with `crc32fast`.

mod common;

use mariadb_aria_crypt::kernel::{Aes, Job, Mode};

/// One job: its input, IV, whether it runs in place, and its CRC request
/// (initial value and prefix).
struct Spec {
    input: Vec<u8>,
    iv: [u8; 16],
    in_place: bool,
    crc: Option<(u32, Vec<u8>)>,
}

fn specs(count: usize) -> Vec<Spec> {
    (0..count)
        .map(|i| {
            // 0..=2 whole blocks, and a tail on every fourth job.
            let len = (i * 7) % 3 * 16 + if i % 4 == 0 { 5 } else { 0 };
            Spec {
                input: (0..len).map(|b| (b * 13 + i * 101) as u8).collect(),
                iv: [i as u8 ^ 0x5a; 16],
                in_place: i % 2 == 0,
                crc: (i % 3 != 1).then(|| (i as u32, vec![i as u8; i % 5])),
            }
        })
        .collect()
}

fn crc32(initial: u32, prefix: &[u8], data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(initial);
    hasher.update(prefix);
    hasher.update(data);
    hasher.finalize()
}

/// Runs `specs` as one CBC batch; returns the outputs and CRCs.
fn run(aes: &Aes, specs: &[Spec], encrypt: bool) -> (Vec<Vec<u8>>, Vec<Option<u32>>) {
    let mut outputs: Vec<Vec<u8>> = specs
        .iter()
        .map(|spec| {
            if spec.in_place {
                spec.input.clone()
            } else {
                vec![0xa5; spec.input.len()]
            }
        })
        .collect();
    let mut jobs: Vec<Job<'_>> = outputs
        .iter_mut()
        .zip(specs)
        .map(|(out, spec)| {
            let job = if spec.in_place {
                Job::in_place(spec.iv, out)
            } else {
                Job::buf_to_buf(spec.iv, &spec.input, out).unwrap()
            };
            match &spec.crc {
                Some((initial, prefix)) => job.with_prefixed_crc(*initial, prefix),
                None => job,
            }
        })
        .collect();
    if encrypt {
        aes.encrypt_batch(Mode::Cbc, &mut jobs);
    } else {
        aes.decrypt_batch(Mode::Cbc, &mut jobs);
    }
    let crcs = jobs.iter().map(Job::crc).collect();
    drop(jobs);
    (outputs, crcs)
}

#[test]
fn batches_with_more_jobs_than_lanes_match_the_reference() {
    for (key, count) in [(vec![0x17u8; 16], 20), (vec![0xc3u8; 32], 35)] {
        check_batch(&key, count);
    }
}

/// Batches of at most eight jobs, which the VAES backends run in eight
/// lanes rather than sixteen.
#[test]
fn batches_of_a_few_jobs_match_the_reference() {
    for (key, count) in [
        (vec![0x29u8; 16], 2),
        (vec![0x3eu8; 24], 5),
        (vec![0x71u8; 32], 8),
    ] {
        check_batch(&key, count);
    }
}

/// `count` jobs of `specs` encrypted and decrypted on every backend, against
/// the reference and `crc32fast`.
fn check_batch(key: &[u8], count: usize) {
    let specs = specs(count);
    let ciphers: Vec<Vec<u8>> = specs
        .iter()
        .map(|spec| common::cbc_encrypt(key, &spec.iv, &spec.input))
        .collect();
    for &backend in common::backends() {
        let aes = Aes::with_backend(key, backend).unwrap();
        let (outputs, crcs) = run(&aes, &specs, true);
        for (i, spec) in specs.iter().enumerate() {
            let what = format!(
                "{backend}, {count} jobs, job {i} ({} bytes)",
                spec.input.len()
            );
            assert!(outputs[i] == ciphers[i], "{what}: ciphertext");
            let want = spec.crc.as_ref().map(|(c, p)| crc32(*c, p, &spec.input));
            assert_eq!(crcs[i], want, "{what}: CRC of the plaintext");
        }
        let decrypt: Vec<Spec> = specs
            .iter()
            .zip(&ciphers)
            .map(|(spec, cipher)| Spec {
                input: cipher.clone(),
                iv: spec.iv,
                in_place: !spec.in_place,
                crc: spec.crc.clone(),
            })
            .collect();
        let (plains, crcs) = run(&aes, &decrypt, false);
        for (i, spec) in specs.iter().enumerate() {
            assert!(plains[i] == spec.input, "{backend}: job {i} decrypts");
            let want = spec.crc.as_ref().map(|(c, p)| crc32(*c, p, &ciphers[i]));
            assert_eq!(crcs[i], want, "{backend}: job {i} CRC of the ciphertext");
        }
    }
}
