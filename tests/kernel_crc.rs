//! The CRC a batch job can ask for (`Job::with_crc`,
//! `Job::with_prefixed_crc` with a prefix of 0..=40 bytes, and
//! `Job::with_output_crc`): on every backend this CPU supports, CBC and
//! CTR, batches of 1..=64 jobs of lengths 0..=32768 (every remainder mod
//! 16), in place and buffer to buffer, random initial values and a random
//! subset of jobs asking: each `crc()` equals `crc32fast` over the prefix
//! and the job's input (or output), and the output equals the same batch
//! without CRC requests. CBC encryption on a hardware backend with
//! carry-less multiply computes the input CRC inside its lanes, and
//! decryption there the output CRC as the plaintext leaves the cipher;
//! everything else with `crc32fast`.
//!
//! Case counts follow `PROPTEST_CASES` (default 256).

use mariadb_aria_crypt::kernel::{Aes, Backend, Job, Mode};
use proptest::prelude::*;

/// zlib's `crc32(initial, data)` through `crc32fast`.
fn reference(initial: u32, data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(initial);
    hasher.update(data);
    hasher.finalize()
}

/// Deterministic bytes (xorshift64*), so that megabytes of input need not
/// be generated and shrunk by proptest.
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

/// One job of a batch.
#[derive(Clone, Debug)]
struct Spec {
    len: usize,
    iv: [u8; 16],
    in_place: bool,
    /// The initial value, when the job asks for a CRC.
    crc: Option<u32>,
    /// What the CRC covers before the input (`with_crc` when empty).
    prefix: Vec<u8>,
    /// The CRC of the output (`with_output_crc`) instead of the input.
    output: bool,
}

/// Runs `specs` as one batch on `inputs`; returns the outputs and each
/// job's `crc()`. With `ask == false` no job asks for a CRC.
fn run_batch(
    aes: &Aes,
    mode: Mode,
    encrypt: bool,
    specs: &[Spec],
    inputs: &[Vec<u8>],
    ask: bool,
) -> (Vec<Vec<u8>>, Vec<Option<u32>>) {
    let mut outputs: Vec<Vec<u8>> = inputs
        .iter()
        .zip(specs)
        .map(|(input, spec)| {
            if spec.in_place {
                input.clone()
            } else {
                // Garbage that must be overwritten.
                vec![0xa5; input.len()]
            }
        })
        .collect();
    let mut jobs: Vec<Job> = outputs
        .iter_mut()
        .zip(specs)
        .zip(inputs)
        .map(|((out, spec), input)| {
            let job = if spec.in_place {
                Job::in_place(spec.iv, out)
            } else {
                Job::buf_to_buf(spec.iv, input, out).unwrap()
            };
            match spec.crc {
                Some(initial) if ask && spec.output => job.with_output_crc(initial, &spec.prefix),
                Some(initial) if ask && spec.prefix.is_empty() => job.with_crc(initial),
                Some(initial) if ask => job.with_prefixed_crc(initial, &spec.prefix),
                _ => job,
            }
        })
        .collect();
    assert!(jobs.iter().all(|job| job.crc().is_none()), "no CRC before");
    if encrypt {
        aes.encrypt_batch(mode, &mut jobs);
    } else {
        aes.decrypt_batch(mode, &mut jobs);
    }
    let crcs = jobs.iter().map(Job::crc).collect();
    drop(jobs);
    (outputs, crcs)
}

/// Checks `specs` on every supported backend, encrypting or decrypting.
fn check(key: &[u8], mode: Mode, encrypt: bool, specs: &[Spec], seed: u64) {
    let inputs: Vec<Vec<u8>> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| bytes(seed ^ (i as u64) << 32, spec.len))
        .collect();
    let mut first: Option<Vec<Vec<u8>>> = None;
    for &backend in Backend::supported() {
        let aes = Aes::with_backend(key, backend).unwrap();
        let (plain, none) = run_batch(&aes, mode, encrypt, specs, &inputs, false);
        assert!(
            none.iter().all(Option::is_none),
            "{backend}: CRC not asked for"
        );
        let (fused, crcs) = run_batch(&aes, mode, encrypt, specs, &inputs, true);
        for (i, ((spec, input), crc)) in specs.iter().zip(&inputs).zip(&crcs).enumerate() {
            let covered = if spec.output { &plain[i] } else { input };
            let want = spec.crc.map(|initial| {
                let whole: Vec<u8> = spec.prefix.iter().chain(covered).copied().collect();
                reference(initial, &whole)
            });
            assert_eq!(
                *crc,
                want,
                "{backend} {mode} encrypt={encrypt}: job {i} of {}, {} bytes, in place {}, \
                 of the output {}",
                specs.len(),
                spec.len,
                spec.in_place,
                spec.output
            );
            assert!(
                fused[i] == plain[i],
                "{backend} {mode}: job {i} output differs when CRCs are asked for"
            );
        }
        // Every backend gives the same bytes.
        match &first {
            None => first = Some(plain),
            Some(expected) => assert!(*expected == plain, "{backend} differs from the first"),
        }
    }
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 16),
        prop::collection::vec(any::<u8>(), 24),
        prop::collection::vec(any::<u8>(), 32),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Cbc), Just(Mode::Ctr)]
}

/// Lengths 0..=32768, every remainder; short ones and page bodies often.
fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=48,
        0usize..=2048,
        0usize..=32768,
        prop::sample::select(vec![8172usize, 8176, 8188, 16364, 32748, 4076, 1008]),
    ]
}

/// Prefixes of 0..=40 bytes; none and Aria's page headers (16 bytes for
/// data pages, 21 and 15 for index pages) often.
fn prefix() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..=40),
        prop::sample::select(vec![15usize, 16, 21])
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        len(),
        any::<[u8; 16]>(),
        any::<bool>(),
        prop::option::of(any::<u32>()),
        prefix(),
        any::<bool>(),
    )
        .prop_map(|(len, iv, in_place, crc, prefix, output)| Spec {
            len,
            iv,
            in_place,
            crc,
            prefix,
            output,
        })
}

/// 1..=64 jobs; sometimes all of one length (a buffer-pool flush, where
/// lanes finish in waves).
fn batch() -> impl Strategy<Value = Vec<Spec>> {
    prop_oneof![
        prop::collection::vec(spec(), 1..=64),
        (prop::collection::vec(spec(), 1..=64), len()).prop_map(|(mut specs, len)| {
            specs.iter_mut().for_each(|s| s.len = len);
            specs
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Megabytes per case: keep shrinking short.
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn encrypt_batch_crc_matches_crc32fast(
        key in key(),
        mode in mode(),
        specs in batch(),
        seed in any::<u64>(),
    ) {
        check(&key, mode, true, &specs, seed);
    }

    #[test]
    fn decrypt_batch_crc_is_of_the_input_or_the_output(
        key in key(),
        mode in mode(),
        specs in prop::collection::vec(spec(), 1..=16),
        seed in any::<u64>(),
    ) {
        check(&key, mode, false, &specs, seed);
    }
}

fn page_specs(count: usize, len: usize, every: usize) -> Vec<Spec> {
    (0..count)
        .map(|i| Spec {
            len,
            iv: [i as u8; 16],
            in_place: i % 3 != 1,
            crc: (i % every == 0).then_some(i as u32 + 1),
            // A data page's 16-byte header on some pages.
            prefix: if i % 2 == 0 {
                bytes(i as u64, 16)
            } else {
                Vec::new()
            },
            output: false,
        })
        .collect()
}

/// Page reads: 8 KiB and 16 KiB data-page bodies decrypted with the CRC of
/// the plaintext after a data page's 16-byte header or an index page's
/// 21-byte one, and short bodies that end in the narrow registers of the
/// wide backends (every block count 1..=40, with and without a tail), with
/// AES-128, -192 and -256.
#[test]
fn page_reads_with_the_crc_of_the_plaintext() {
    let lens = [8172, 8176, 16364, 16368]
        .into_iter()
        .chain((1..=40).flat_map(|blocks| [16 * blocks, 16 * blocks + 5]));
    let specs: Vec<Spec> = lens
        .enumerate()
        .map(|(i, len)| Spec {
            len,
            iv: [i as u8; 16],
            in_place: i % 3 != 1,
            crc: Some(i as u32 * 0x0101_0101),
            prefix: bytes(i as u64, [16, 21, 0, 3][i % 4]),
            output: true,
        })
        .collect();
    for key_len in [16, 24, 32] {
        let key = bytes(key_len as u64, key_len);
        for mode in [Mode::Cbc, Mode::Ctr] {
            check(&key, mode, false, &specs, 11);
        }
    }
}

/// CTR jobs whose counter's low 64 bits wrap inside or at the end of the
/// job (the fused path leaves those to `crc32fast`), decrypted with the
/// CRC of the output.
#[test]
fn ctr_output_crc_across_a_counter_wrap() {
    let specs: Vec<Spec> = (0..24)
        .map(|i| {
            let mut iv = [0xff; 16];
            iv[..8].copy_from_slice(&(i as u64).to_be_bytes());
            // Low half 2^64 - 1 - (i % 12): the wrap falls on block i % 12 + 1.
            iv[8..].copy_from_slice(&(u64::MAX - (i % 12) as u64).to_be_bytes());
            Spec {
                len: [16 * 12, 16 * 12 + 7, 8172][i % 3],
                iv,
                in_place: i % 2 == 0,
                crc: Some(i as u32),
                prefix: bytes(i as u64, 16),
                output: true,
            }
        })
        .collect();
    check(&[5; 16], Mode::Ctr, false, &specs, 13);
}

/// Buffer-pool flushes of 8 KiB data-page bodies (510 blocks and a 12-byte
/// tail) and full-page bodies (511 blocks), all or some asking for a CRC,
/// with AES-128, -192 and -256.
#[test]
fn page_batches() {
    for key_len in [16, 24, 32] {
        let key = bytes(key_len as u64, key_len);
        for (count, len, every) in [
            (64, 8172, 1),
            (64, 8176, 2),
            (17, 8172, 3),
            (1, 8172, 1),
            (33, 16364, 1),
        ] {
            check(&key, Mode::Cbc, true, &page_specs(count, len, every), 9);
        }
    }
}

/// Jobs without a whole block never reach a SIMD lane; an empty job's CRC
/// is its initial value.
#[test]
fn short_and_empty_jobs() {
    let specs: Vec<Spec> = (0..40)
        .map(|i| Spec {
            len: i % 20,
            iv: [3; 16],
            in_place: i % 2 == 0,
            crc: Some(0xffff_fff0u32.wrapping_add(i as u32)),
            prefix: bytes(i as u64, i % 23),
            output: i % 4 == 3,
        })
        .collect();
    for mode in [Mode::Cbc, Mode::Ctr] {
        check(&[1; 16], mode, true, &specs, 5);
        check(&[1; 16], mode, false, &specs, 5);
    }
    let mut empty = [];
    let mut jobs = [Job::in_place([0; 16], &mut empty).with_crc(0x1234_5678)];
    Aes::new(&[1; 16])
        .unwrap()
        .encrypt_batch(Mode::Cbc, &mut jobs);
    assert_eq!(jobs[0].crc(), Some(0x1234_5678));
}

/// A job run through two batch operations reports the CRC of the latest
/// one's input.
#[test]
fn crc_follows_the_latest_operation() {
    let plain = bytes(77, 8172);
    for &backend in Backend::supported() {
        let aes = Aes::with_backend(&[9; 32], backend).unwrap();
        let mut buf = plain.clone();
        let mut jobs = [Job::in_place([4; 16], &mut buf).with_crc(7)];
        aes.encrypt_batch(Mode::Cbc, &mut jobs);
        assert_eq!(jobs[0].crc(), Some(reference(7, &plain)), "{backend}");
        let cipher = jobs[0].output().to_vec();
        aes.decrypt_batch(Mode::Cbc, &mut jobs);
        assert_eq!(jobs[0].crc(), Some(reference(7, &cipher)), "{backend}");
        assert!(jobs[0].output() == plain.as_slice());
    }
}
