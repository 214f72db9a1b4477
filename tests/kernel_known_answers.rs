//! Known answers for every backend this CPU supports (the software one
//! included): FIPS-197 Appendix C, NIST SP 800-38A F.2 (CBC) and F.5 (CTR),
//! and the worked examples of the Aria spec §7 (MariaDB's CBC tail rule,
//! the CTR carry, per-table key derivation).

mod common;

use hex_literal::hex;
use mariadb_aria_crypt::kernel::{Aes, Backend, Job, Mode};

fn each_backend(mut test: impl FnMut(Backend)) {
    for &backend in common::backends() {
        test(backend);
    }
}

fn aes(key: &[u8], backend: Backend) -> Aes {
    let aes = Aes::with_backend(key, backend).unwrap();
    assert_eq!(aes.backend(), backend);
    aes
}

#[test]
fn fips197_appendix_c() {
    let plain = hex!("00112233445566778899aabbccddeeff");
    let cases: [(&[u8], [u8; 16]); 3] = [
        (
            &hex!("000102030405060708090a0b0c0d0e0f"),
            hex!("69c4e0d86a7b0430d8cdb78070b4c55a"),
        ),
        (
            &hex!("000102030405060708090a0b0c0d0e0f1011121314151617"),
            hex!("dda97ca4864cdfe06eaf70a0ec0d7191"),
        ),
        (
            &hex!("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
            hex!("8ea2b7ca516745bfeafc49904b496089"),
        ),
    ];
    each_backend(|backend| {
        for (key, cipher) in cases {
            let aes = aes(key, backend);
            let mut block = plain;
            aes.encrypt_block(&mut block);
            assert_eq!(block, cipher, "{backend} AES-{} encrypt", key.len() * 8);
            aes.decrypt_block(&mut block);
            assert_eq!(block, plain, "{backend} AES-{} decrypt", key.len() * 8);

            // The same block through wide ECB, at every position of a batch.
            let mut many = plain.repeat(37);
            aes.ecb_encrypt(&mut many).unwrap();
            assert!(many.chunks(16).all(|b| b == cipher), "{backend} wide ECB");
            aes.ecb_decrypt(&mut many).unwrap();
            assert!(
                many.chunks(16).all(|b| b == plain),
                "{backend} wide ECB decrypt"
            );
        }
    });
}

const SP800_38A_PLAIN: [u8; 64] = hex!(
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710"
);
const KEY128: [u8; 16] = hex!("2b7e151628aed2a6abf7158809cf4f3c");
const KEY192: [u8; 24] = hex!("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b");
const KEY256: [u8; 32] = hex!("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");

#[test]
fn sp800_38a_f2_cbc() {
    let iv = hex!("000102030405060708090a0b0c0d0e0f");
    let cases: [(&[u8], [u8; 64]); 3] = [
        (
            &KEY128,
            hex!(
                "7649abac8119b246cee98e9b12e9197d"
                "5086cb9b507219ee95db113a917678b2"
                "73bed6b8e3c1743b7116e69e22229516"
                "3ff1caa1681fac09120eca307586e1a7"
            ),
        ),
        (
            &KEY192,
            hex!(
                "4f021db243bc633d7178183a9fa071e8"
                "b4d9ada9ad7dedf4e5e738763f69145a"
                "571b242012fb7ae07fa9baac3df102e0"
                "08b0e27988598881d920a9e64f5615cd"
            ),
        ),
        (
            &KEY256,
            hex!(
                "f58c4c04d6e5f1ba779eabfb5f7bfbd6"
                "9cfc4e967edb808d679f777bc6702c7d"
                "39f23369a9d9bacfa530e26304231461"
                "b2eb05e2c39be9fcda6c19078c6a9d1b"
            ),
        ),
    ];
    each_backend(|backend| {
        for (key, cipher) in cases {
            let aes = aes(key, backend);
            let bits = key.len() * 8;

            let mut buf = SP800_38A_PLAIN;
            aes.encrypt(Mode::Cbc, &iv, &mut buf);
            assert_eq!(buf, cipher, "{backend} CBC-AES{bits} encrypt");
            aes.decrypt(Mode::Cbc, &iv, &mut buf);
            assert_eq!(buf, SP800_38A_PLAIN, "{backend} CBC-AES{bits} decrypt");

            let mut out = [0u8; 64];
            aes.encrypt_to(Mode::Cbc, &iv, &SP800_38A_PLAIN, &mut out)
                .unwrap();
            assert_eq!(
                out, cipher,
                "{backend} CBC-AES{bits} encrypt buffer to buffer"
            );

            // The multi-buffer path: the vector in every lane.
            let mut bufs = vec![SP800_38A_PLAIN; 40];
            let mut jobs: Vec<Job> = bufs.iter_mut().map(|b| Job::in_place(iv, b)).collect();
            aes.encrypt_batch(Mode::Cbc, &mut jobs);
            assert!(
                bufs.iter().all(|b| *b == cipher),
                "{backend} CBC-AES{bits} batch"
            );
        }
    });
}

#[test]
fn sp800_38a_f5_ctr() {
    let counter = hex!("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    let cases: [(&[u8], [u8; 64]); 3] = [
        (
            &KEY128,
            hex!(
                "874d6191b620e3261bef6864990db6ce"
                "9806f66b7970fdff8617187bb9fffdff"
                "5ae4df3edbd5d35e5b4f09020db03eab"
                "1e031dda2fbe03d1792170a0f3009cee"
            ),
        ),
        (
            &KEY192,
            hex!(
                "1abc932417521ca24f2b0459fe7e6e0b"
                "090339ec0aa6faefd5ccc2c6f4ce8e94"
                "1e36b26bd1ebc670d1bd1d665620abf7"
                "4f78a7f6d29809585a97daec58c6b050"
            ),
        ),
        (
            &KEY256,
            hex!(
                "601ec313775789a5b7a7f504bbf3d228"
                "f443e3ca4d62b59aca84e990cacaf5c5"
                "2b0930daa23de94ce87017ba2d84988d"
                "dfc9c58db67aada613c2dd08457941a6"
            ),
        ),
    ];
    each_backend(|backend| {
        for (key, cipher) in cases {
            let aes = aes(key, backend);
            let bits = key.len() * 8;
            let mut buf = SP800_38A_PLAIN;
            aes.encrypt(Mode::Ctr, &counter, &mut buf);
            assert_eq!(buf, cipher, "{backend} CTR-AES{bits}");
            aes.decrypt(Mode::Ctr, &counter, &mut buf);
            assert_eq!(buf, SP800_38A_PLAIN, "{backend} CTR-AES{bits} decrypt");
            // A partial last block takes the first bytes of its keystream.
            let mut short = SP800_38A_PLAIN[..53].to_vec();
            aes.encrypt(Mode::Ctr, &counter, &mut short);
            assert_eq!(short, cipher[..53], "{backend} CTR-AES{bits} partial block");
        }
    });
}

/// Spec §7.6 and §7.1: the local key is AES-ECB(global key, scheme_iv) for
/// global keys of every size.
#[test]
fn spec_local_key_derivation() {
    let cases: [(&[u8], [u8; 16], [u8; 16]); 3] = [
        (
            &hex!("f5502320f8429037b8daef761b189d12"),
            hex!("b247da6c0f56d96b85fabcb797f1caa4"),
            hex!("b363517303b1b4e743c326e4dcb06412"),
        ),
        (
            &hex!("8899aabbccddeeff0011223344556677c0c1c2c3c4c5c6c7"),
            hex!("8b2f456f7bbe05cf031efe3bf0a28fec"),
            hex!("c468ef93bb3cf125471bb42338389af6"),
        ),
        (
            &hex!("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
            hex!("5ea51aa47a659c0588e9305d4b370b37"),
            hex!("487b81f3fee8522ecb46646e790dc92a"),
        ),
    ];
    each_backend(|backend| {
        for (global, scheme_iv, local) in cases {
            let mut block = scheme_iv;
            aes(global, backend).encrypt_block(&mut block);
            assert_eq!(
                block,
                local,
                "{backend} local key from a {}-byte key",
                global.len()
            );
        }
    });
}

/// Spec §7.1 and §7.2: CBC of a page body, and the tail rule: the last
/// `len % 16` bytes are XORed with AES-ECB(key, iv), not chained.
#[test]
fn spec_cbc_tail_rule() {
    struct Case {
        key: [u8; 16],
        iv: [u8; 16],
        head_plain: [u8; 32],
        head_cipher: [u8; 32],
        mask: [u8; 16],
        tail_plain: &'static [u8],
        tail_cipher: &'static [u8],
        len: usize,
    }
    let cases = [
        // §7.1: head data page, range [16, 8188): 510 blocks + 12 bytes.
        Case {
            key: hex!("487b81f3fee8522ecb46646e790dc92a"),
            iv: hex!("ec816fc101000000afb1060001000000"),
            head_plain: hex!("0002fe00010000000b476e616d655f303030303031415249412d4d41524b4552"),
            head_cipher: hex!("da5f9bc163328d504c76708b4b4711a223b3786ede1a4288cc606637be2064da"),
            mask: hex!("40ef327e24b2c4a1ba6d7772c513c9a1"),
            tail_plain: &hex!("c8005c006c005c0010005c00"),
            tail_cipher: &hex!("88ef6e7e48b298a1aa6d2b72"),
            len: 8172,
        },
        // §7.2: non-transactional index page, range [15, 3543): 220 blocks + 8 bytes.
        Case {
            key: hex!("079b05ccd057229029116408f5e08106"),
            iv: hex!("1aa9b8a601000000d4a8a2755e846300"),
            head_plain: hex!("0000000100000002000000000200000002020000000300000002040000000400"),
            head_cipher: hex!("5cb690e6efc0d8a5cc3f3e1e29b3d7eefa7e5f2eaedf2073651450f412ded184"),
            mask: hex!("cc2d52ad0261fe3a9942e5ca4f11fdaa"),
            tail_plain: &hex!("00018f0000000c20"),
            tail_cipher: &hex!("cc2cddad0261f21a"),
            len: 3528,
        },
    ];
    each_backend(|backend| {
        for case in &cases {
            let aes = aes(&case.key, backend);
            let mut mask = case.iv;
            aes.encrypt_block(&mut mask);
            assert_eq!(mask, case.mask, "{backend} tail mask");

            // The region with the known bytes at its start and its end.
            let mut region = vec![0u8; case.len];
            region[..32].copy_from_slice(&case.head_plain);
            let tail_at = case.len - case.tail_plain.len();
            region[tail_at..].copy_from_slice(case.tail_plain);
            let plain = region.clone();
            aes.encrypt(Mode::Cbc, &case.iv, &mut region);
            assert_eq!(region[..32], case.head_cipher, "{backend} CBC head");
            assert_eq!(&region[tail_at..], case.tail_cipher, "{backend} CBC tail");
            aes.decrypt(Mode::Cbc, &case.iv, &mut region);
            assert_eq!(region, plain, "{backend} CBC round trip");

            // A region shorter than a block is only the tail.
            let mut short = case.tail_plain.to_vec();
            aes.encrypt(Mode::Cbc, &case.iv, &mut short);
            assert_eq!(short, case.tail_cipher, "{backend} tail-only region");
        }
    });
}

/// Spec §7.5: CTR over a head page body. Block 510 carries from counter
/// byte 15 into byte 14 (the IV ends in `01 00`, +510 = `01 fe` ... `02 fe`).
#[test]
fn spec_ctr_page_and_carry() {
    let key = hex!("b437c044f4f8dc0973a64a1da5b389aa");
    let iv = hex!("b5cd4d8e01000000afb1060001000000");
    each_backend(|backend| {
        let aes = aes(&key, backend);
        let mut first = iv;
        aes.encrypt_block(&mut first);
        assert_eq!(
            first,
            hex!("30e503a37fc9482c4a2ec1dc61a523c2"),
            "{backend} keystream 0"
        );

        let mut region = vec![0u8; 8172];
        region[..32].copy_from_slice(&hex!(
            "0002fe00010000000b476e616d655f303030303031415249412d4d41524b4552"
        ));
        region[8160..].copy_from_slice(&hex!("c8005c006c005c0010005c00"));
        aes.encrypt(Mode::Ctr, &iv, &mut region);
        assert_eq!(
            region[..32],
            hex!("30e7fda37ec9482c4169afbd0cc07cf253280b80679d5569431857589545f1b1"),
            "{backend} CTR head"
        );
        assert_eq!(
            region[8160..],
            hex!("b78172c1eda303d0d8b8470e"),
            "{backend} CTR tail"
        );
    });
}

/// A counter whose low nine bytes are all `ff` carries into byte 6.
#[test]
fn ctr_carry_across_many_bytes() {
    let key = [0x5au8; 32];
    let counter = hex!("0102030405060708ffffffffffffffff");
    let expected_counters = [
        hex!("0102030405060708ffffffffffffffff"),
        hex!("01020304050607090000000000000000"),
        hex!("01020304050607090000000000000001"),
    ];
    each_backend(|backend| {
        let aes = aes(&key, backend);
        // Long enough that the wide paths, not only the tail, cross the carry.
        let blocks = 67;
        let mut data = vec![0u8; blocks * 16];
        aes.encrypt(Mode::Ctr, &counter, &mut data);
        for (i, ctr) in expected_counters.iter().enumerate() {
            let mut ks = *ctr;
            aes.encrypt_block(&mut ks);
            assert_eq!(data[i * 16..][..16], ks, "{backend} counter block {i}");
        }
        assert_eq!(
            data,
            common::ctr(&key, &counter, &vec![0u8; blocks * 16]),
            "{backend}"
        );
        // The all-ones counter wraps to zero.
        let mut wrap = [0u8; 32];
        aes.encrypt(Mode::Ctr, &[0xff; 16], &mut wrap);
        let mut zero = [0u8; 16];
        aes.encrypt_block(&mut zero);
        assert_eq!(wrap[16..], zero, "{backend} 128-bit wrap");
    });
}
