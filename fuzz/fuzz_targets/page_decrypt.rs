//! Page decryption (and encryption) on arbitrary bytes.
//!
//! Input: a 32-byte parameter block, then the page (zero-padded or cut to
//! the block size):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | bit 0: `.MAD` (else `.MAI`); bit 1: transactional; bit 2: CTR (else CBC); bits 3-4: key provider (0 the fixtures' key file, with cbc_key128's key as id 7 and cbc_key192's as id 3, 1 debug_key_management latest 3, 2 versioned 1..=5, 3 debug latest 0xFFFFFFFE); bit 5: construct (treat the page as plaintext, encrypt it, then flip one bit); bits 6-7: key id 1, 2, 7 or 3 (3 is missing from every provider but the key file) |
//! | 1 | block size: 0..=28 → 4096 + 1024·n; above: one of `SPECIAL` (invalid ones included) |
//! | 2 | key version to encrypt with (0, 0xFFFFFFFF and 0xFFFFFFFE at the ends) |
//! | 3..7 | page number, LE32 |
//! | 7..11 | `space`, LE32 (as in the crypt block) |
//! | 11..27 | `scheme_iv` |
//! | 27..31 | bit to flip (construct mode), LE32 |
//! | 31 | bits 0-1: `keystart` = block size × n (`0xff`: u64::MAX); bits 2-6: AES backend (index into the supported ones); bit 7: the cipher knows its file names |
//!
//! A block size no table can have (`SPECIAL` holds some): `BlockSize` from
//! every call, nothing changed. (The first run of this target found the
//! panic that check now prevents: block sizes below 25.)
//!
//! Decrypt mode: an error or a page, never a panic; a page that decrypts
//! and verifies re-encrypts (`encrypt_pages_with` and `WriteOptions::exact` with its version) to the
//! same bytes and matches the independent reference; a page that fails, or
//! that is not encrypted, is unchanged; the error names the file and page;
//! single, buffer-to-buffer and batch calls agree.
//!
//! Construct mode: the encryption equals the reference byte for byte,
//! decrypts back, and a flipped bit is caught (strictly where the spec says
//! the CRC must catch it) or at least never yields the original plaintext.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mariadb_aria_crypt::aria::{
    CryptData, PageFile, PageKind, PageRef, PageStatus, TableCipher, TableGeometry, WriteOptions,
    is_valid_block_size,
};
use mariadb_aria_crypt::kernel::{Backend, Mode};
use mariadb_aria_crypt::keys::{
    DebugKeyProvider, FileKeyProvider, KeyMaterial, KeyProvider, VersionedKeyProvider,
};
use mariadb_aria_crypt::{Error, PageFault};
use mariadb_aria_crypt_fuzz::{
    RefAes, assert_no_key, cbc, ctr, local_key, page_crc, page_iv, ref_layout,
};

const PREFIX: usize = 32;
const SPECIAL: [u32; 19] = [
    0, 1, 4, 10, 16, 20, 21, 24, 25, 28, 32, 64, 1000, 1024, 2048, 3072, 40_000, 65_536, 8192,
];
const KEY_FILE: &str = "# the fixtures' keys.txt
1;000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
2;a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
7;F5502320F8429037B8DAEF761B189D12 # 128-bit: cbc_key128's key 1
3;8899aabbccddeeff0011223344556677c0c1c2c3c4c5c6c7 # cbc_key192's key 1
";

fn providers() -> &'static [Arc<dyn KeyProvider>; 4] {
    static P: OnceLock<[Arc<dyn KeyProvider>; 4]> = OnceLock::new();
    P.get_or_init(|| {
        let file = FileKeyProvider::parse(KEY_FILE.as_bytes(), None, "keys.txt").unwrap();
        let mut versioned = VersionedKeyProvider::new();
        for v in 1..=5u32 {
            let key: Vec<u8> = (0..24)
                .map(|i| (i as u8).wrapping_mul(31) ^ v as u8)
                .collect();
            versioned
                .insert(1, v, KeyMaterial::new(&key).unwrap())
                .unwrap();
        }
        for v in 1..=2u32 {
            let key: Vec<u8> = (0..16).map(|i| 0xc0 ^ i as u8 ^ (v as u8) << 4).collect();
            versioned
                .insert(2, v, KeyMaterial::new(&key).unwrap())
                .unwrap();
        }
        [
            Arc::new(file),
            Arc::new(DebugKeyProvider::new(3).unwrap()),
            Arc::new(versioned),
            Arc::new(DebugKeyProvider::new(u32::MAX - 1).unwrap()),
        ]
    })
}

struct Params {
    file: PageFile,
    transactional: bool,
    mode: Mode,
    provider: usize,
    construct: bool,
    key_id: u32,
    block_size: u32,
    version: u32,
    page_no: u32,
    crypt: CryptData,
    flip: u32,
    keystart: u64,
    backend: Backend,
    named: bool,
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn params(p: &[u8; PREFIX]) -> Params {
    let flags = p[0];
    let block_size = match p[1] {
        n @ 0..=28 => 4096 + 1024 * u32::from(n),
        n => SPECIAL[usize::from(n - 29) % SPECIAL.len()],
    };
    let version = match p[2] {
        0 => 0,
        255 => u32::MAX,
        254 => u32::MAX - 1,
        253 => 0x8000_0000,
        v => u32::from(v),
    };
    let mut scheme_iv = [0u8; 16];
    scheme_iv.copy_from_slice(&p[11..27]);
    let supported = Backend::supported();
    Params {
        file: if flags & 1 != 0 {
            PageFile::Data
        } else {
            PageFile::Index
        },
        transactional: flags & 2 != 0,
        mode: if flags & 4 != 0 { Mode::Ctr } else { Mode::Cbc },
        provider: usize::from(flags >> 3 & 3),
        construct: flags & 0x20 != 0,
        key_id: [1, 2, 7, 3][usize::from(flags >> 6)],
        block_size,
        version,
        page_no: le32(&p[3..7]),
        crypt: CryptData {
            space: le32(&p[7..11]),
            scheme_iv,
        },
        flip: le32(&p[27..31]),
        keystart: if p[31] == 0xff {
            u64::MAX
        } else {
            u64::from(block_size) * u64::from(p[31] & 3)
        },
        backend: supported[usize::from(p[31] >> 2 & 0x1f) % supported.len()],
        named: p[31] & 0x80 != 0,
    }
}

/// Asserts two pages are equal, naming the first byte that differs (a
/// plain `assert_eq!` would print 64 KiB of numbers).
#[track_caller]
fn same(a: &[u8], b: &[u8], what: &str) {
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        panic!("{what}: byte {i} differs ({:#04x} vs {:#04x})", a[i], b[i]);
    }
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
}

fn write_le32(page: &mut [u8], at: usize, v: u32) {
    page[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Checks what every page error must say: this file and page number, and
/// no key bytes.
fn check_error(e: &Error, p: &Params, provider: &dyn KeyProvider) {
    match e {
        Error::Page {
            file, page, path, ..
        } => {
            assert_eq!(*file, p.file, "{e}");
            assert_eq!(*page, p.page_no, "{e}");
            let text = e.to_string();
            assert!(text.contains(&format!("page {}", p.page_no)), "{text}");
            let name = if p.named {
                format!("t1.{}", p.file.extension())
            } else {
                format!(".{}", p.file.extension())
            };
            assert!(text.contains(&name), "{text} does not name {name}");
            assert_eq!(path.is_some(), p.named);
            for v in [1, 2, 3, p.version] {
                if let Ok(key) = provider.key(p.key_id, v) {
                    assert_no_key(&text, key.as_bytes(), "page error");
                    assert_no_key(&format!("{e:?}"), key.as_bytes(), "page error Debug");
                }
            }
        }
        other => panic!("a page operation returned a non-page error: {other:?}"),
    }
}

fn result_key(r: &Result<PageStatus, Error>) -> String {
    match r {
        Ok(s) => format!("{s:?}"),
        Err(e) => e.to_string(),
    }
}

/// The reference encryption of plaintext `plain` (version field zero, CRC
/// set) at `version`.
fn reference_encrypt(
    p: &Params,
    provider: &dyn KeyProvider,
    layout: &mariadb_aria_crypt_fuzz::RefLayout,
    plain: &[u8],
    version: u32,
) -> Vec<u8> {
    let global = provider.key(p.key_id, version).expect("key was available");
    let local = local_key(global.as_bytes(), &p.crypt.scheme_iv);
    let aes = RefAes::new(&local).unwrap();
    let iv = page_iv(p.crypt.space, p.page_no, plain);
    let body = &plain[layout.body.clone()];
    let enc = match p.mode {
        Mode::Cbc => cbc(&aes, false, &iv, body),
        Mode::Ctr => ctr(&aes, &iv, body),
    };
    let mut out = plain.to_vec();
    out[layout.body.clone()].copy_from_slice(&enc);
    write_le32(&mut out, layout.version_at, version);
    out
}

fn decrypt_mode(p: &Params, cipher: &TableCipher, provider: &dyn KeyProvider, original: &[u8]) {
    let kind = cipher.geometry().classify(p.file, p.page_no, original);
    let mut page = original.to_vec();
    let result = cipher.decrypt_page(p.file, p.page_no, &mut page);
    match &result {
        Ok(PageStatus::Encrypted { key_version }) => {
            let Ok(PageKind::Encrypted(layout)) = &kind else {
                panic!("decrypted a page classified {kind:?}");
            };
            assert_eq!(Some(*key_version), layout.try_key_version(original));
            assert_eq!(
                layout.try_key_version(&page),
                Some(0),
                "version field not zeroed"
            );
            let bs = page.len();
            assert_eq!(
                page_crc(p.page_no, &page[..layout.body.end]),
                le32(&page[bs - 4..]),
                "a page that verified has a bad CRC"
            );
            // Outside the body only the version field changed.
            for i in (0..bs).filter(|i| !layout.body.contains(i)) {
                if !(layout.key_version_at..layout.key_version_at + 4).contains(&i) {
                    assert_eq!(page[i], original[i], "byte {i} outside the body changed");
                }
            }
            // The independent reference agrees.
            let r = ref_layout(
                p.file == PageFile::Index,
                p.transactional,
                bs,
                p.keystart,
                p.page_no,
                original,
            );
            let r = r.unwrap().unwrap();
            same(
                &reference_encrypt(p, provider, &r, &page, *key_version),
                original,
                "reference re-encryption",
            );
            // And it re-encrypts to the same bytes, up to what lies past an
            // index page's `page_used`, which writes zero.
            let mut again = page.clone();
            let res = cipher.encrypt_pages_with(
                p.file,
                &mut [PageRef {
                    number: p.page_no,
                    data: &mut again,
                }],
                WriteOptions::exact(*key_version),
            );
            assert!(
                matches!(res[..], [Ok(PageStatus::Encrypted { key_version: v })] if v == *key_version)
            );
            let mut want = original.to_vec();
            want[layout.body.end..bs - 4].fill(0);
            assert!(again == want, "re-encryption differs");
        }
        Ok(status) => {
            assert!(page == original, "a page left alone ({status:?}) changed");
            let expected = match kind {
                Ok(PageKind::Header) => PageStatus::Header,
                Ok(PageKind::Bitmap) => PageStatus::Bitmap,
                Ok(PageKind::Unwritten) => PageStatus::Unwritten,
                other => panic!("{status:?} for a page classified {other:?}"),
            };
            assert_eq!(*status, expected);
        }
        Err(e) => {
            assert!(page == original, "a page that failed ({e}) changed");
            check_error(e, p, provider);
            if let Err(fault) = &kind {
                assert!(matches!(e, Error::Page { fault: f, .. } if f == fault));
            }
        }
    }

    // Buffer to buffer gives the same.
    let mut dst = vec![0x3c; original.len()];
    let to = cipher.decrypt_page_to(p.file, p.page_no, original, &mut dst);
    assert_eq!(result_key(&to), result_key(&result));
    assert!(dst == page, "decrypt_page_to differs from decrypt_page");

    // A batch of the same bytes at three page numbers agrees with single calls.
    let numbers = [p.page_no, p.page_no ^ 1, p.page_no.wrapping_add(1)];
    let mut copies: Vec<Vec<u8>> = numbers.iter().map(|_| original.to_vec()).collect();
    let mut refs: Vec<PageRef> = copies
        .iter_mut()
        .zip(numbers)
        .map(|(data, number)| PageRef { number, data })
        .collect();
    let batch = cipher.decrypt_pages(p.file, &mut refs);
    drop(refs);
    assert_eq!(batch.len(), 3);
    for ((number, copy), r) in numbers.iter().zip(&copies).zip(&batch) {
        let mut single = original.to_vec();
        let s = cipher.decrypt_page(p.file, *number, &mut single);
        assert_eq!(
            result_key(&s),
            result_key(r),
            "batch and single differ for page {number}"
        );
        assert!(
            single == *copy,
            "batch and single bytes differ for page {number}"
        );
    }
}

fn construct_mode(p: &Params, cipher: &TableCipher, provider: &dyn KeyProvider, plain: &[u8]) {
    let kind = cipher.geometry().classify(p.file, p.page_no, plain);
    // A plaintext page has a zero key-version field; one time in eight the
    // field is left as the input has it, to check that a set field is
    // refused.
    let mut plain = plain.to_vec();
    if let Ok(PageKind::Encrypted(layout)) = &kind
        && p.flip % 8 != 0
    {
        write_le32(&mut plain, layout.key_version_at, 0);
    }
    let plain = &plain[..];
    let stamped = match &kind {
        Ok(PageKind::Encrypted(layout)) => layout.try_key_version(plain),
        _ => None,
    };
    let mut page = plain.to_vec();
    let result = cipher
        .encrypt_pages_with(
            p.file,
            &mut [PageRef {
                number: p.page_no,
                data: &mut page,
            }],
            WriteOptions::exact(p.version),
        )
        .pop()
        .expect("one result per page");
    let layout = match (&result, &kind) {
        (Ok(PageStatus::Encrypted { key_version }), Ok(PageKind::Encrypted(layout))) => {
            assert_eq!(*key_version, p.version);
            layout.clone()
        }
        (Ok(status), _) => {
            assert!(page == plain, "{status:?} page changed");
            assert!(!matches!(status, PageStatus::Encrypted { .. }), "{kind:?}");
            return;
        }
        (Err(e), _) => {
            assert!(page == plain, "a page that failed to encrypt changed");
            check_error(e, p, provider);
            let Error::Page { fault, .. } = e else {
                unreachable!()
            };
            match &kind {
                Err(k) => assert_eq!(fault, k),
                Ok(_) if stamped.is_some_and(|v| v != 0) => assert_eq!(
                    *fault,
                    PageFault::AlreadyEncrypted {
                        key_version: stamped.unwrap_or(0)
                    }
                ),
                Ok(_) if p.version == 0 || p.version == u32::MAX => {
                    assert_eq!(*fault, PageFault::KeyVersion(p.version));
                }
                // No such key id: `NoKey`; the id without this version:
                // `KeyUnavailable`.
                Ok(_) => match provider.key(p.key_id, p.version) {
                    Err(Error::KeyNotFound { key_id }) => {
                        assert_eq!(*fault, PageFault::NoKey { key_id });
                    }
                    Err(_) => assert_eq!(
                        *fault,
                        PageFault::KeyUnavailable {
                            key_id: p.key_id,
                            version: p.version
                        }
                    ),
                    Ok(_) => panic!("{e}, but the provider has the key"),
                },
            }
            return;
        }
    };

    // The plaintext the server would have: version field 0, CRC stored.
    let bs = plain.len();
    let mut expected = plain.to_vec();
    let r = ref_layout(
        p.file == PageFile::Index,
        p.transactional,
        bs,
        p.keystart,
        p.page_no,
        plain,
    )
    .unwrap()
    .unwrap();
    assert_eq!(r.version_at, layout.key_version_at);
    assert_eq!(r.body, layout.body);
    assert_eq!(
        r.crc_end, layout.body.end,
        "the checksum covers exactly the header and the body"
    );
    write_le32(&mut expected, r.version_at, 0);
    let crc = page_crc(p.page_no, &expected[..r.crc_end]);
    write_le32(&mut expected, bs - 4, crc);
    // Nothing of the caller's past an index page's `page_used`.
    expected[r.crc_end..bs - 4].fill(0);
    let reference = reference_encrypt(p, provider, &r, &expected, p.version);
    assert!(page == reference, "encryption differs from the reference");

    // The latest version, when it is this one, gives the same bytes when
    // the LSN is kept (a transactional table keeps it by default; other
    // tables get a fresh one).
    if cipher.latest_version().ok() == Some(p.version) && p.transactional {
        let mut latest = plain.to_vec();
        let s = cipher.encrypt_page(p.file, p.page_no, &mut latest);
        assert!(matches!(s, Ok(PageStatus::Encrypted { key_version }) if key_version == p.version));
        assert!(latest == page);
        let mut to = vec![0x99; bs];
        let s = cipher.encrypt_page_to(p.file, p.page_no, plain, &mut to);
        assert!(matches!(s, Ok(PageStatus::Encrypted { key_version }) if key_version == p.version));
        assert!(to == page, "encrypt_page_to differs from encrypt_page");
    }

    // It decrypts back.
    let mut back = page.clone();
    let d = cipher.decrypt_page(p.file, p.page_no, &mut back);
    assert!(
        matches!(d, Ok(PageStatus::Encrypted { key_version }) if key_version == p.version),
        "{d:?}"
    );
    assert!(back == expected, "decrypt(encrypt(page)) differs");

    // One flipped bit.
    let bit = p.flip as usize % (bs * 8);
    let byte = bit / 8;
    let mut flipped = page.clone();
    flipped[byte] ^= 1 << (bit % 8);
    let copy = flipped.clone();
    let d = cipher.decrypt_page(p.file, p.page_no, &mut flipped);
    let in_crc = byte >= bs - 4;
    let uncovered = (r.crc_end..bs - 4).contains(&byte);
    let in_body = r.body.contains(&byte);
    let version_field = (r.version_at..r.version_at + 4).contains(&byte);
    let kh = if p.transactional { 21 } else { 15 };
    let layout_byte = match p.file {
        PageFile::Data => byte == 7,
        PageFile::Index => (kh - 2..kh).contains(&byte),
    };
    let lsn = byte < 7;
    // The CRC itself, a plaintext header byte, or (CTR) one body bit: the
    // plaintext differs in exactly one bit, which CRC-32 always detects.
    let strict = in_crc
        || (!uncovered && !in_body && !version_field && !layout_byte && !lsn)
        || (in_body && p.mode == Mode::Ctr);
    match &d {
        Ok(_) if uncovered => {
            let mut want = expected.clone();
            want[byte] ^= 1 << (bit % 8);
            assert!(
                flipped == want,
                "the uncovered index tail changed in decryption"
            );
        }
        Ok(status) => {
            assert!(
                !strict,
                "flipped bit {bit} (byte {byte}) not detected: {status:?}"
            );
            assert!(
                flipped != expected,
                "flipped bit {bit} decrypted to the original"
            );
        }
        Err(e) => {
            assert!(!uncovered, "a bit in the uncovered index tail failed: {e}");
            assert!(flipped == copy, "a page that failed changed");
            check_error(e, p, provider);
            if strict {
                assert!(
                    matches!(
                        e,
                        Error::Page {
                            fault: PageFault::Checksum { .. },
                            ..
                        }
                    ),
                    "flipped bit {bit}: {e}"
                );
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some((prefix, rest)) = bytes.split_first_chunk::<PREFIX>() else {
        return;
    };
    let p = params(prefix);
    let provider = &providers()[p.provider];
    let geometry = TableGeometry {
        block_size: p.block_size,
        keystart: p.keystart,
        transactional: p.transactional,
    };
    let mut cipher = TableCipher::new(geometry, p.crypt, p.key_id, p.mode, Arc::clone(provider))
        .with_backend(p.backend)
        .expect("a supported backend");
    if p.named {
        cipher = cipher.with_files("/db/t1.MAI", "/db/t1.MAD");
    }
    let bs = p.block_size as usize;
    let mut page = vec![0u8; bs];
    let n = rest.len().min(bs);
    page[..n].copy_from_slice(&rest[..n]);

    // A page of the wrong length: a typed error, nothing changed.
    let mut wrong = page[..bs.saturating_sub(1).min(bs)].to_vec();
    if wrong.len() != bs {
        let before = wrong.clone();
        match cipher.decrypt_page(p.file, p.page_no, &mut wrong) {
            Err(Error::Page {
                fault: PageFault::Size { expected, actual },
                page,
                ..
            }) => {
                assert_eq!((expected, actual, page), (bs, bs - 1, p.page_no));
            }
            Err(
                e @ Error::Page {
                    fault: PageFault::BlockSize(_),
                    ..
                },
            ) => {
                assert!(!is_valid_block_size(p.block_size), "{e}");
                check_error(&e, &p, &**provider);
            }
            other => panic!("short page: {other:?}"),
        }
        assert!(wrong == before);
    }

    // A geometry no table can have: every call says so, nothing changes.
    if !is_valid_block_size(p.block_size) {
        assert_eq!(
            geometry.classify(p.file, p.page_no, &page),
            Err(PageFault::BlockSize(p.block_size))
        );
        let before = page.clone();
        for r in [
            cipher.decrypt_page(p.file, p.page_no, &mut page),
            cipher.encrypt_page(p.file, p.page_no, &mut page),
        ] {
            match r {
                Err(
                    e @ Error::Page {
                        fault: PageFault::BlockSize(_),
                        ..
                    },
                ) => check_error(&e, &p, &**provider),
                other => panic!("block size {}: {other:?}", p.block_size),
            }
        }
        assert!(page == before);
        return;
    }

    if p.construct {
        construct_mode(&p, &cipher, &**provider, &page);
    } else {
        decrypt_mode(&p, &cipher, &**provider, &page);
    }
});
