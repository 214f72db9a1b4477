//! Kernel differential: a random key (16/24/32 bytes) and a random batch of
//! buffers (lengths, IVs, counters near a 64-bit wrap, in place or buffer to
//! buffer). Every backend this CPU supports must give the bytes of an
//! independent reference (RustCrypto's block cipher with the modes written
//! out in `fuzz/src/lib.rs`) for ECB, CBC (MariaDB tail rule) and CTR, single
//! and batch, in place and buffer to buffer; batch jobs that ask for a CRC
//! (`Job::with_crc`, or `Job::with_prefixed_crc` with a prefix of up to 40
//! bytes; fused into the lanes by VAES-512 with VPCLMULQDQ) get crc32fast's
//! value of the prefix and their input; decrypt(encrypt(x)) == x; the
//! error paths (unaligned ECB, length mismatch, unsupported backend) change
//! nothing.

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mariadb_aria_crypt::kernel::Error;
use mariadb_aria_crypt::kernel::{Aes, Backend, Job, Mode};
use mariadb_aria_crypt_fuzz::{RefAes, SplitMix, cbc, ctr, ecb};

/// Upper bound on the bytes of one input, to keep executions fast.
const MAX_TOTAL: usize = 32 * 1024;

struct Buf {
    iv: [u8; 16],
    data: Vec<u8>,
    in_place: bool,
    /// `Job::with_crc(initial)` in batches, or `with_prefixed_crc` when
    /// `prefix` is not empty.
    crc: Option<u32>,
    prefix: Vec<u8>,
}

struct Case {
    key: Vec<u8>,
    bufs: Vec<Buf>,
}

fn iv(u: &mut Unstructured) -> Result<[u8; 16]> {
    let mut iv: [u8; 16] = u.arbitrary()?;
    match u.int_in_range(0u8..=7)? {
        // The low 64 bits of the counter a few blocks before they wrap.
        0 | 1 => {
            let back = u64::from(u.int_in_range(0u8..=40)?);
            iv[8..].copy_from_slice(&u64::MAX.wrapping_sub(back).to_be_bytes());
        }
        // The whole 128-bit counter about to wrap.
        2 => {
            let back = u128::from(u.int_in_range(0u8..=40)?);
            iv = u128::MAX.wrapping_sub(back).to_be_bytes();
        }
        _ => {}
    }
    Ok(iv)
}

fn len(u: &mut Unstructured) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => usize::from(u.int_in_range(0u8..=16)?),
        1 => 16 * usize::from(u.int_in_range(0u8..=80)?),
        2 => usize::from(u.int_in_range(0u16..=33_000)?),
        // Page bodies: head/tail, blob, index pages of every block size.
        3 => {
            let bs = 1024 * usize::from(u.int_in_range(4u8..=32)?);
            bs - [20, 16, 4][usize::from(u.int_in_range(0u8..=2)?)]
        }
        _ => usize::from(u.int_in_range(0u16..=2100)?),
    })
}

fn case(u: &mut Unstructured) -> Result<Case> {
    let key_len = [16, 24, 32][usize::from(u.int_in_range(0u8..=2)?)];
    let key = u.bytes(key_len)?.to_vec();
    let mut rng = SplitMix(u.arbitrary()?);
    let count = match u.int_in_range(0u8..=3)? {
        0 => 1,
        1 => usize::from(u.int_in_range(1u8..=8)?),
        _ => usize::from(u.int_in_range(1u8..=140)?),
    };
    let mut bufs = Vec::new();
    let mut total = 0;
    for _ in 0..count {
        let n = len(u)?;
        if total + n > MAX_TOTAL {
            break;
        }
        total += n;
        let mut data = vec![0u8; n];
        // Take what the input has, expand the rest.
        let take = u.len().min(n).min(64);
        data[..take].copy_from_slice(u.bytes(take)?);
        rng.fill(&mut data[take..]);
        bufs.push(Buf {
            iv: iv(u)?,
            data,
            in_place: u.arbitrary()?,
            crc: if u.arbitrary()? {
                Some(u.arbitrary()?)
            } else {
                None
            },
            prefix: {
                let n = usize::from(u.int_in_range(0u8..=40)?);
                u.bytes(n.min(u.len()))?.to_vec()
            },
        });
    }
    if bufs.is_empty() {
        bufs.push(Buf {
            iv: [0; 16],
            data: vec![1; 33],
            in_place: true,
            crc: Some(0),
            prefix: Vec::new(),
        });
    }
    Ok(Case { key, bufs })
}

fn reference(r: &RefAes, mode: Mode, decrypt: bool, iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    match mode {
        Mode::Cbc => cbc(r, decrypt, iv, data),
        Mode::Ctr => ctr(r, iv, data),
    }
}

/// Runs a batch over copies of `inputs` with each buffer's own in-place
/// choice; returns the outputs.
fn batch(aes: &Aes, mode: Mode, decrypt: bool, bufs: &[Buf], inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut outs: Vec<Vec<u8>> = inputs
        .iter()
        .zip(bufs)
        .map(|(input, b)| {
            if b.in_place {
                input.clone()
            } else {
                vec![0xa5; input.len()]
            }
        })
        .collect();
    let mut jobs: Vec<Job> = outs
        .iter_mut()
        .zip(bufs)
        .zip(inputs)
        .map(|((out, b), input)| {
            let job = if b.in_place {
                Job::in_place(b.iv, out)
            } else {
                Job::buf_to_buf(b.iv, input, out).expect("equal lengths")
            };
            match b.crc {
                Some(initial) if b.prefix.is_empty() => job.with_crc(initial),
                Some(initial) => job.with_prefixed_crc(initial, &b.prefix),
                None => job,
            }
        })
        .collect();
    for (job, input) in jobs.iter().zip(inputs) {
        assert_eq!(job.len(), input.len());
        assert_eq!(job.is_empty(), input.is_empty());
        assert_eq!(job.crc(), None, "a CRC before the batch ran");
    }
    if decrypt {
        aes.decrypt_batch(mode, &mut jobs);
    } else {
        aes.encrypt_batch(mode, &mut jobs);
    }
    // The CRC of the prefix and what each job read (zlib's crc32 continued
    // from `initial`), whichever way the backend computed it (fused into the
    // VAES-512 CBC lanes, or crc32fast first).
    for (i, ((job, b), input)) in jobs.iter().zip(bufs).zip(inputs).enumerate() {
        let expected = b.crc.map(|initial| {
            let mut h = crc32fast::Hasher::new_with_initial(initial);
            h.update(&b.prefix);
            h.update(input);
            h.finalize()
        });
        assert_eq!(
            job.crc(),
            expected,
            "{} {mode} {}: CRC of job {i} ({} bytes)",
            aes.backend(),
            if decrypt { "decrypt" } else { "encrypt" },
            input.len()
        );
    }
    drop(jobs);
    outs
}

fn check_backend(backend: Backend, c: &Case, r: &RefAes) {
    let aes = Aes::with_backend(&c.key, backend).expect("supported backend");
    assert_eq!(aes.backend(), backend);
    assert_eq!(aes.key_len(), c.key.len());

    // Single blocks.
    let first = &c.bufs[0];
    let mut block = first.iv;
    aes.encrypt_block(&mut block);
    let mut expected = first.iv;
    r.encrypt(&mut expected);
    assert_eq!(block, expected, "{backend}: encrypt_block");
    aes.decrypt_block(&mut block);
    assert_eq!(block, first.iv, "{backend}: decrypt_block");

    for mode in [Mode::Cbc, Mode::Ctr] {
        let plains: Vec<Vec<u8>> = c.bufs.iter().map(|b| b.data.clone()).collect();
        let ciphers: Vec<Vec<u8>> = c
            .bufs
            .iter()
            .map(|b| reference(r, mode, false, &b.iv, &b.data))
            .collect();
        for (i, b) in c.bufs.iter().enumerate() {
            let n = b.data.len();
            // In place.
            let mut buf = b.data.clone();
            aes.encrypt(mode, &b.iv, &mut buf);
            assert!(buf == ciphers[i], "{backend} {mode}: encrypt of {n} bytes");
            aes.decrypt(mode, &b.iv, &mut buf);
            assert!(buf == b.data, "{backend} {mode}: decrypt of {n} bytes");
            // Buffer to buffer; the source is never written.
            let mut out = vec![0x5a; n];
            aes.encrypt_to(mode, &b.iv, &b.data, &mut out).unwrap();
            assert!(
                out == ciphers[i],
                "{backend} {mode}: encrypt_to of {n} bytes"
            );
            let mut back = vec![0x5a; n];
            aes.decrypt_to(mode, &b.iv, &out, &mut back).unwrap();
            assert!(back == b.data, "{backend} {mode}: decrypt_to of {n} bytes");
            // Lengths that differ: an error, nothing written.
            let mut short = vec![0x77; n + 1];
            match aes.encrypt_to(mode, &b.iv, &b.data, &mut short) {
                Err(Error::LengthMismatch { src, dst }) => {
                    assert_eq!((src, dst), (n, n + 1));
                }
                other => panic!("{backend}: length mismatch gave {other:?}"),
            }
            assert!(short.iter().all(|&x| x == 0x77));
            match aes.decrypt_to(mode, &b.iv, &short, &mut back) {
                Err(Error::LengthMismatch { src, dst }) => assert_eq!((src, dst), (n + 1, n)),
                other => panic!("{backend}: length mismatch gave {other:?}"),
            }
            assert!(back == b.data);
            assert!(Job::buf_to_buf(b.iv, &b.data, &mut short).is_err());
        }
        // Batches, mixing in-place and buffer-to-buffer jobs.
        let enc = batch(&aes, mode, false, &c.bufs, &plains);
        for (i, out) in enc.iter().enumerate() {
            assert!(
                *out == ciphers[i],
                "{backend} {mode}: batch encrypt, job {i} of {} ({} bytes)",
                c.bufs.len(),
                out.len()
            );
        }
        let dec = batch(&aes, mode, true, &c.bufs, &ciphers);
        for (i, out) in dec.iter().enumerate() {
            assert!(
                *out == plains[i],
                "{backend} {mode}: batch decrypt, job {i} of {}",
                c.bufs.len()
            );
        }
    }

    // ECB: whole blocks only.
    for b in &c.bufs {
        let n = b.data.len();
        let aligned = &b.data[..n / 16 * 16];
        let expected = ecb(r, false, aligned);
        let mut buf = aligned.to_vec();
        aes.ecb_encrypt(&mut buf).unwrap();
        assert!(
            buf == expected,
            "{backend}: ecb_encrypt of {} bytes",
            aligned.len()
        );
        let mut out = vec![0u8; aligned.len()];
        aes.ecb_decrypt_to(&buf, &mut out).unwrap();
        assert!(out == aligned, "{backend}: ecb_decrypt_to");
        aes.ecb_encrypt_to(aligned, &mut out).unwrap();
        assert!(out == expected, "{backend}: ecb_encrypt_to");
        aes.ecb_decrypt(&mut buf).unwrap();
        assert!(buf == aligned, "{backend}: ecb_decrypt");
        if n % 16 != 0 {
            let mut unaligned = b.data.clone();
            for result in [
                aes.ecb_encrypt(&mut unaligned),
                aes.ecb_decrypt(&mut unaligned),
            ] {
                assert!(matches!(result, Err(Error::NotBlockAligned(l)) if l == n));
            }
            assert!(
                unaligned == b.data,
                "{backend}: unaligned ECB changed the buffer"
            );
            let mut out = vec![0x11; n];
            assert!(matches!(
                aes.ecb_encrypt_to(&b.data, &mut out),
                Err(Error::NotBlockAligned(l)) if l == n
            ));
            assert!(out.iter().all(|&x| x == 0x11));
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut u = Unstructured::new(bytes);
    let Ok(c) = case(&mut u) else { return };
    let r = RefAes::new(&c.key).unwrap();
    for &backend in Backend::supported() {
        check_backend(backend, &c, &r);
    }
    for backend in Backend::ALL {
        if !backend.is_supported() {
            assert!(matches!(
                Aes::with_backend(&c.key, backend),
                Err(Error::UnsupportedBackend(b)) if b == backend
            ));
        }
    }
    // Bad key lengths.
    let mut long = c.key.clone();
    long.push(0);
    for bad in [&c.key[..c.key.len() - 1], &long[..], &[][..]] {
        assert!(matches!(Aes::new(bad), Err(Error::KeyLength(l)) if l == bad.len()));
    }
});
