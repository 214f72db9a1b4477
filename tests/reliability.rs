//! The reliability suite (issue 6): bad inputs built from copies of the real
//! MariaDB fixtures, each with the exact error the library must give and a
//! check that nothing was written; one shared `TableCipher` hammered from
//! several threads with pages of mixed key versions; no key bytes in any
//! `Debug` or message; no panic from a public function on extreme inputs.
//!
//! Every row of the bad-input table is printed (`cargo test --test
//! reliability -- --nocapture`) as `input => result`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mariadb_aria_crypt::aria::{
    CryptData, PageFile, PageKind, PageRef, PageStatus, TableCipher, TableGeometry, TableHeader,
    WriteOptions, is_valid_block_size, page_crc, page_iv, pages_covered, try_page_lsn,
};
use mariadb_aria_crypt::kernel::{Aes, Backend, Error as KernelError, Job, Mode};
use mariadb_aria_crypt::keys::{
    DebugKeyProvider, FileKeyProvider, KeyMaterial, KeyProvider, VersionedKeyProvider,
};
use mariadb_aria_crypt::policy::rekey_pages;
use mariadb_aria_crypt::{Error, HeaderFault, KeyFileFault, PageFault};
use proptest::prelude::*;

const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const K2: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
const K7: &str = "f5502320f8429037b8daef761b189d12";
const SECRET: &str = "aria-fixture-filekey-secret";

// ---------------------------------------------------------------------------
// Fixtures and helpers

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// One fixture table, read into memory, with a cipher that names its files.
struct Table {
    mai_path: PathBuf,
    mad_path: PathBuf,
    mai: Vec<u8>,
    mad: Vec<u8>,
    header: TableHeader,
    cipher: TableCipher,
}

impl Table {
    fn bs(&self) -> usize {
        self.header.geometry.block_size as usize
    }

    fn page(&self, file: PageFile, n: usize) -> Vec<u8> {
        let bytes = match file {
            PageFile::Index => &self.mai,
            PageFile::Data => &self.mad,
        };
        bytes[n * self.bs()..(n + 1) * self.bs()].to_vec()
    }

    /// The first encrypted page of `file` of the given kind, after `from`.
    fn find(&self, file: PageFile, from: usize, want: &[&str]) -> usize {
        let bytes = match file {
            PageFile::Index => &self.mai,
            PageFile::Data => &self.mad,
        };
        (from..bytes.len() / self.bs())
            .find(|&n| {
                matches!(
                    self.header.geometry.classify(file, n as u32, &self.page(file, n)),
                    Ok(PageKind::Encrypted(l)) if want.contains(&l.kind.name())
                )
            })
            .unwrap_or_else(|| panic!("no {want:?} page in {file}"))
    }
}

fn file_provider(case: &str) -> Arc<FileKeyProvider> {
    let dir = fixtures().join(case);
    Arc::new(FileKeyProvider::from_path(dir.join("keys.txt"), None).unwrap())
}

fn table(case: &str, mode: Mode) -> Table {
    let dir = fixtures().join(case);
    let mai_path = dir.join("t1.MAI");
    let mad_path = dir.join("t1.MAD");
    let header = TableHeader::read(&mai_path).unwrap();
    let cipher = TableCipher::for_table(&header, mode, file_provider(case))
        .unwrap()
        .with_files(&mai_path, &mad_path);
    Table {
        mai: std::fs::read(&mai_path).unwrap(),
        mad: std::fs::read(&mad_path).unwrap(),
        mai_path,
        mad_path,
        header,
        cipher,
    }
}

/// The printed table of bad inputs.
#[derive(Default)]
struct Rows(Vec<(String, String)>);

impl Rows {
    fn add(&mut self, input: impl Into<String>, result: impl std::fmt::Display) {
        self.0.push((input.into(), result.to_string()));
    }

    fn print(&self, title: &str) {
        eprintln!("\n{title}");
        for (input, result) in &self.0 {
            eprintln!("| {input} | {result} |");
        }
    }
}

/// A page error's fault, after checking it names this file and page and
/// that the message does (path and page number).
#[track_caller]
fn page_fault(e: &Error, file: PageFile, page: usize, path: &Path) -> PageFault {
    let Error::Page {
        path: p,
        file: f,
        page: n,
        fault,
    } = e
    else {
        panic!("expected a page error, got {e:?}");
    };
    assert_eq!((*f, *n as usize), (file, page), "{e}");
    assert_eq!(p.as_deref(), Some(path), "{e}");
    let text = e.to_string();
    let prefix = format!("{} page {page}: ", path.display());
    assert!(
        text.starts_with(&prefix),
        "{text:?} should start with {prefix:?}"
    );
    fault.clone()
}

/// Decrypts one page (in place and buffer to buffer) and returns the
/// result, after checking that a page that failed is unchanged and that
/// both calls agree.
fn decrypt(t: &Table, file: PageFile, n: usize, page: &[u8]) -> Result<PageStatus, Error> {
    let mut copy = page.to_vec();
    let result = t.cipher.decrypt_page(file, n as u32, &mut copy);
    let mut dst = vec![0u8; page.len()];
    let to = t.cipher.decrypt_page_to(file, n as u32, page, &mut dst);
    assert_eq!(format!("{result:?}"), format!("{to:?}"));
    assert!(copy == dst, "in place and buffer to buffer differ");
    if !matches!(result, Ok(PageStatus::Encrypted { .. })) {
        assert!(copy == page, "page {n} changed: {result:?}");
    }
    result
}

fn unique_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "aria-reliability-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------
// Truncated and damaged `.MAI` headers

#[test]
fn truncated_index_file_headers() {
    let t = table("cbc_trans_256", Mode::Cbc);
    let base = be16(&t.mai, 12);
    let hl = be16(&t.mai, 6);
    assert_eq!(usize::from(t.header.header_length), hl);
    let crypt = hl - 22;
    // (offset, what is cut there, expected fault)
    let cases: Vec<(usize, &str, HeaderFault)> = vec![
        (
            0,
            "empty file",
            HeaderFault::Truncated { need: 24, have: 0 },
        ),
        (
            3,
            "inside the magic",
            HeaderFault::Truncated { need: 24, have: 3 },
        ),
        (
            4,
            "after the magic",
            HeaderFault::Truncated { need: 24, have: 4 },
        ),
        (
            7,
            "inside header_length",
            HeaderFault::Truncated { need: 24, have: 7 },
        ),
        (
            13,
            "inside base_pos",
            HeaderFault::Truncated { need: 24, have: 13 },
        ),
        (
            23,
            "last byte of the file header",
            HeaderFault::Truncated { need: 24, have: 23 },
        ),
        (
            24,
            "end of the file header",
            HeaderFault::Truncated {
                need: base + 107,
                have: 24,
            },
        ),
        (
            base,
            "start of base info",
            HeaderFault::Truncated {
                need: base + 107,
                have: base,
            },
        ),
        (
            base + 20,
            "inside keystart",
            HeaderFault::Truncated {
                need: base + 107,
                have: base + 20,
            },
        ),
        (
            base + 91,
            "inside extra_options",
            HeaderFault::Truncated {
                need: base + 107,
                have: base + 91,
            },
        ),
        (
            base + 101,
            "inside block_size",
            HeaderFault::Truncated {
                need: base + 107,
                have: base + 101,
            },
        ),
        (
            base + 106,
            "before born_transactional",
            HeaderFault::Truncated {
                need: base + 107,
                have: base + 106,
            },
        ),
        (
            base + 107,
            "after the base info fields",
            HeaderFault::Truncated {
                need: hl,
                have: base + 107,
            },
        ),
        (
            crypt,
            "start of the crypt block",
            HeaderFault::Truncated {
                need: hl,
                have: crypt,
            },
        ),
        (
            crypt + 2,
            "inside the crypt block (space)",
            HeaderFault::Truncated {
                need: hl,
                have: crypt + 2,
            },
        ),
        (
            crypt + 10,
            "inside the crypt block (scheme_iv)",
            HeaderFault::Truncated {
                need: hl,
                have: crypt + 10,
            },
        ),
        (
            hl - 1,
            "last byte of the crypt block",
            HeaderFault::Truncated {
                need: hl,
                have: hl - 1,
            },
        ),
    ];
    let mut rows = Rows::default();
    let dir = unique_dir("truncated-mai");
    for (at, what, expected) in cases {
        let bytes = &t.mai[..at];
        match TableHeader::parse(bytes) {
            Err(Error::Header { path: None, fault }) => assert_eq!(fault, expected, "cut at {at}"),
            other => panic!("cut at {at} ({what}): {other:?}"),
        }
        // From a file: the error names it, and the file is not touched.
        let path = dir.join("t1.MAI");
        std::fs::write(&path, bytes).unwrap();
        let e = TableHeader::read(&path).unwrap_err();
        let Error::Header {
            path: Some(p),
            fault,
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!((p, fault), (&path, &expected));
        assert!(e.to_string().starts_with(&format!(
            "{}: bad Aria header: truncated: {at} bytes",
            path.display()
        )));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "read wrote to the file"
        );
        rows.add(
            format!(".MAI cut at {at} ({what})"),
            format!(
                "`{fault:?}`: \"{}\"",
                e.to_string().replace(&dir.display().to_string(), "…")
            ),
        );
    }
    // Cut anywhere from the end of the header information on: it parses.
    for at in [hl, hl + 1, t.bs(), t.mai.len()] {
        assert_eq!(TableHeader::parse(&t.mai[..at]).unwrap(), t.header);
    }
    rows.add(
        format!(".MAI cut at {hl} (header_length) or later"),
        "parses (the header needs only its first header_length bytes)",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    rows.print("truncated .MAI (cbc_trans_256; base_pos 263, header_length 590)");
}

#[test]
fn damaged_index_file_headers() {
    let t = table("cbc_trans_256", Mode::Cbc);
    let base = be16(&t.mai, 12);
    let hl = be16(&t.mai, 6);
    let crypt = hl - 22;
    let mut rows = Rows::default();
    let mut row = |what: &str, edit: &dyn Fn(&mut Vec<u8>), expected: HeaderFault| {
        let mut bytes = t.mai[..t.bs()].to_vec();
        edit(&mut bytes);
        let before = bytes.clone();
        let e = TableHeader::parse(&bytes).unwrap_err();
        match &e {
            Error::Header { path: None, fault } => assert_eq!(*fault, expected, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
        assert!(bytes == before);
        rows.add(what, format!("`{expected:?}`: \"{e}\""));
    };
    row(
        "crypt block type 2",
        &|b| b[crypt] = 2,
        HeaderFault::CryptScheme { kind: 2, len: 20 },
    );
    row(
        "crypt block type 0",
        &|b| b[crypt] = 0,
        HeaderFault::CryptScheme { kind: 0, len: 20 },
    );
    row(
        "crypt block length 19",
        &|b| b[crypt + 1] = 19,
        HeaderFault::CryptScheme { kind: 1, len: 19 },
    );
    row(
        "crypt block length 21",
        &|b| b[crypt + 1] = 21,
        HeaderFault::CryptScheme { kind: 1, len: 21 },
    );
    row(
        "crypt block type 255, length 0",
        &|b| {
            b[crypt] = 255;
            b[crypt + 1] = 0
        },
        HeaderFault::CryptScheme { kind: 255, len: 0 },
    );
    row(
        "header_length 21 bytes short (crypt block inside base info)",
        &|b| b[6..8].copy_from_slice(&((base + 135 + 21) as u16).to_be_bytes()),
        HeaderFault::Field {
            field: "header_length",
            value: (base + 135 + 21) as u64,
        },
    );
    row(
        "header_length past keystart",
        &|b| b[6..8].copy_from_slice(&9000u16.to_be_bytes()),
        HeaderFault::Field {
            field: "header_length",
            value: 9000,
        },
    );
    row(
        "bad magic",
        &|b| b[0] = 0xfd,
        HeaderFault::Magic([0xfd, 0xfe, 0x09, 0x03]),
    );
    row(
        "base_pos 10 (inside the file header)",
        &|b| b[12..14].copy_from_slice(&10u16.to_be_bytes()),
        HeaderFault::Field {
            field: "base_pos",
            value: 10,
        },
    );
    row(
        "base_info_length 100",
        &|b| b[10..12].copy_from_slice(&100u16.to_be_bytes()),
        HeaderFault::Field {
            field: "base_info_length",
            value: 100,
        },
    );
    for bs in [0u16, 512, 4000, 33792, 65535] {
        row(
            &format!("block_size {bs}"),
            &|b| b[base + 100..base + 102].copy_from_slice(&bs.to_be_bytes()),
            HeaderFault::BlockSize(u32::from(bs)),
        );
    }
    row(
        "keystart 0",
        &|b| b[base + 16..base + 24].copy_from_slice(&0u64.to_be_bytes()),
        HeaderFault::Field {
            field: "keystart",
            value: 0,
        },
    );
    row(
        "keystart 8193 (not a whole page)",
        &|b| b[base + 16..base + 24].copy_from_slice(&8193u64.to_be_bytes()),
        HeaderFault::Field {
            field: "keystart",
            value: 8193,
        },
    );
    // 1024..=3072 parse (old tables); the server raises aria_block_size
    // below 4096 (spec §1).
    let mut small = t.mai[..t.bs()].to_vec();
    small[base + 100..base + 102].copy_from_slice(&1024u16.to_be_bytes());
    assert_eq!(
        TableHeader::parse(&small).unwrap().geometry.block_size,
        1024
    );
    rows.add(
        "block_size 1024 (keystart 8192)",
        "parses (1024..=3072 are kept for old tables; the server itself raises them to 4096)",
    );

    // From a file, the path comes first.
    let dir = unique_dir("bad-crypt");
    let path = dir.join("t1.MAI");
    let mut bytes = t.mai.clone();
    bytes[crypt] = 2;
    std::fs::write(&path, &bytes).unwrap();
    let e = TableHeader::read(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: bad Aria header: unsupported crypt scheme (type 2, length 20; expected type 1, length 20)",
            path.display()
        )
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    std::fs::remove_dir_all(&dir).unwrap();

    // An unencrypted table has no crypt block, no cipher, nothing to write.
    let plain = TableHeader::read(fixtures().join("datadir/db1/dyn1.MAI")).unwrap();
    assert!(!plain.is_encrypted());
    let e = TableCipher::for_table(&plain, Mode::Cbc, file_provider("cbc_trans_256")).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Header {
                fault: HeaderFault::NotEncrypted,
                ..
            }
        ),
        "{e:?}"
    );
    let mut dyn1 = std::fs::read(fixtures().join("datadir/db1/dyn1.MAI")).unwrap();
    let before = dyn1.clone();
    let e2 = plain
        .write_crypt_block(&mut dyn1, &t.header.crypt.unwrap())
        .unwrap_err();
    assert!(matches!(
        e2,
        Error::Header {
            fault: HeaderFault::NotEncrypted,
            ..
        }
    ));
    assert!(dyn1 == before);
    rows.add(
        "unencrypted table (dyn1, DYNAMIC): `for_table`, `write_crypt_block`",
        format!("`NotEncrypted`: \"{e}\"; nothing written"),
    );
    // write_crypt_block into a buffer that ends inside the crypt block.
    let mut short = t.mai[..crypt + 5].to_vec();
    let e = t
        .header
        .write_crypt_block(&mut short, &t.header.crypt.unwrap())
        .unwrap_err();
    assert!(
        matches!(e, Error::Header { fault: HeaderFault::Truncated { need, have }, .. } if need == hl && have == crypt + 5)
    );
    assert!(short == t.mai[..crypt + 5]);
    rows.add(
        format!("`write_crypt_block` into {} bytes", crypt + 5),
        format!(
            "`Truncated {{ need: {hl}, have: {} }}`; nothing written",
            crypt + 5
        ),
    );
    rows.print("damaged .MAI headers (cbc_trans_256)");
}

// ---------------------------------------------------------------------------
// Pages: sizes, page_used, key versions, keys, algorithm, flipped bits

#[test]
fn truncated_data_file_and_wrong_block_size() {
    let t = table("cbc_trans_256", Mode::Cbc);
    let bs = t.bs();
    let pages = t.mad.len() / bs;
    let last = pages - 1;
    let mut rows = Rows::default();
    // A partial last page: the .MAD cut inside it.
    for cut in [1, 100, bs - 4, bs - 1] {
        let mad = &t.mad[..t.mad.len() - cut];
        let tail = &mad[last * bs..];
        let e = decrypt(&t, PageFile::Data, last, tail).unwrap_err();
        let fault = page_fault(&e, PageFile::Data, last, &t.mad_path);
        assert_eq!(
            fault,
            PageFault::Size {
                expected: bs,
                actual: bs - cut
            }
        );
        rows.add(
            format!(
                ".MAD cut {cut} bytes short: partial last page {last} ({} bytes)",
                bs - cut
            ),
            format!("`{fault:?}`: \"…t1.MAD page {last}: {}\"", fault),
        );
    }
    // Buffers of the wrong length, single and batch: each page its own error.
    for len in [0, 1, 4096, bs - 1, bs + 1, 16384] {
        let mut buf = vec![0x5au8; len];
        let e = t
            .cipher
            .decrypt_page(PageFile::Data, 1, &mut buf)
            .unwrap_err();
        assert_eq!(
            page_fault(&e, PageFile::Data, 1, &t.mad_path),
            PageFault::Size {
                expected: bs,
                actual: len
            }
        );
        assert!(buf.iter().all(|&b| b == 0x5a));
        let e = t
            .cipher
            .encrypt_page(PageFile::Data, 1, &mut buf)
            .unwrap_err();
        assert_eq!(
            page_fault(&e, PageFile::Data, 1, &t.mad_path),
            PageFault::Size {
                expected: bs,
                actual: len
            }
        );
        assert!(buf.iter().all(|&b| b == 0x5a));
    }
    rows.add(
        "page buffers of 0, 1, 4096, 8191, 8193, 16384 bytes (bs 8192), decrypt and encrypt",
        "`Size { expected: 8192, actual: n }` naming the page; buffer unchanged",
    );
    let good = t.find(PageFile::Data, 1, &["head", "tail", "full", "unallocated"]);
    let mut a = t.page(PageFile::Data, good);
    let mut b = vec![1u8; 100];
    let mut refs = [
        PageRef {
            number: good as u32,
            data: &mut a,
        },
        PageRef {
            number: 7,
            data: &mut b,
        },
    ];
    let results = t.cipher.decrypt_pages(PageFile::Data, &mut refs);
    assert!(matches!(
        results[0],
        Ok(PageStatus::Encrypted { key_version: 1 })
    ));
    assert_eq!(
        page_fault(
            results[1].as_ref().unwrap_err(),
            PageFile::Data,
            7,
            &t.mad_path
        ),
        PageFault::Size {
            expected: bs,
            actual: 100
        }
    );
    assert!(b.iter().all(|&x| x == 1));
    rows.add(
        "batch of a good page and a 100-byte buffer",
        "the good page decrypts; the other `Size { expected: 8192, actual: 100 }`, unchanged",
    );

    // A geometry that claims 16384 for a table of 8192-byte pages: reads two
    // pages as one; the bitmap is left alone, every other page fails its CRC.
    let wrong = TableGeometry {
        block_size: 16384,
        ..t.header.geometry
    };
    let cipher = TableCipher::new(
        wrong,
        t.header.crypt.unwrap(),
        1,
        Mode::Cbc,
        file_provider("cbc_trans_256"),
    )
    .with_files(&t.mai_path, &t.mad_path);
    let mut checksum = 0;
    for (n, chunk) in t.mad.chunks_exact(16384).enumerate() {
        let mut page = chunk.to_vec();
        match cipher.decrypt_page(PageFile::Data, n as u32, &mut page) {
            Ok(PageStatus::Bitmap) => assert_eq!(n, 0),
            Err(e) => {
                assert!(
                    matches!(
                        page_fault(&e, PageFile::Data, n, &t.mad_path),
                        PageFault::Checksum { .. } | PageFault::KeyUnavailable { .. }
                    ),
                    "{e}"
                );
                checksum += 1;
            }
            other => panic!("16384 over 8192 pages, page {n}: {other:?}"),
        }
        assert!(page == chunk);
    }
    assert!(checksum > 0);
    rows.add("block size 16384 assumed for 8192-byte pages", format!("page 0 `Bitmap` (unchanged), the other {checksum} `Checksum` (or `KeyUnavailable` when the stamp read is not version 1); all unchanged"));
    rows.print("truncated .MAD and block size mismatches (cbc_trans_256)");
}

#[test]
fn page_used_out_of_range() {
    let mut rows = Rows::default();
    for (case, kh) in [("cbc_trans_256", 21usize), ("cbc_nontrans_256", 15)] {
        let t = table(case, Mode::Cbc);
        let bs = t.bs();
        let n = t.find(PageFile::Index, 1, &["index"]);
        let original = t.page(PageFile::Index, n);
        let stored = be16(&original, kh - 2);
        for value in [0usize, 1, kh - 1, bs - 4, bs - 3, bs - 1, bs, 0xffff] {
            let mut page = original.clone();
            page[kh - 2..kh].copy_from_slice(&(value as u16).to_be_bytes());
            let e = decrypt(&t, PageFile::Index, n, &page).unwrap_err();
            let fault = page_fault(&e, PageFile::Index, n, &t.mai_path);
            assert_eq!(
                fault,
                PageFault::PageUsed {
                    value: value as u32,
                    min: kh as u32,
                    max: (bs - 5) as u32
                }
            );
            // Encryption refuses it too.
            let mut enc = page.clone();
            let e = t
                .cipher
                .encrypt_page(PageFile::Index, n as u32, &mut enc)
                .unwrap_err();
            assert_eq!(page_fault(&e, PageFile::Index, n, &t.mai_path), fault);
            assert!(enc == page);
            rows.add(
                format!("{case} .MAI page {n}: page_used {value} (stored {stored})"),
                format!("`{fault:?}`: \"…t1.MAI page {n}: {fault}\""),
            );
        }
        // The edges are in range: the page is read, and fails its CRC.
        for value in [kh, bs - 5] {
            let mut page = original.clone();
            page[kh - 2..kh].copy_from_slice(&(value as u16).to_be_bytes());
            let e = decrypt(&t, PageFile::Index, n, &page).unwrap_err();
            assert!(matches!(
                page_fault(&e, PageFile::Index, n, &t.mai_path),
                PageFault::Checksum { .. }
            ));
            rows.add(
                format!(
                    "{case} .MAI page {n}: page_used {value} (in range, not the stored {stored})"
                ),
                "`Checksum`, unchanged",
            );
        }
    }
    rows.print("page_used outside [kh, bs-5]");
}

#[test]
fn key_versions_keys_and_algorithm() {
    let t = table("cbc_trans_256", Mode::Cbc);
    let mut rows = Rows::default();
    let n = t.find(PageFile::Data, 1, &["head"]);
    let original = t.page(PageFile::Data, n);
    assert_eq!(le32(&original, 12), 1);
    for (version, expected) in [
        (0u32, PageFault::KeyVersion(0)),
        (u32::MAX, PageFault::KeyVersion(u32::MAX)),
        (
            2,
            PageFault::KeyUnavailable {
                key_id: 1,
                version: 2,
            },
        ),
        (
            u32::MAX - 1,
            PageFault::KeyUnavailable {
                key_id: 1,
                version: u32::MAX - 1,
            },
        ),
    ] {
        let mut page = original.clone();
        page[12..16].copy_from_slice(&version.to_le_bytes());
        let e = decrypt(&t, PageFile::Data, n, &page).unwrap_err();
        assert_eq!(page_fault(&e, PageFile::Data, n, &t.mad_path), expected);
        rows.add(
            format!(".MAD page {n} stamped with key version {version:#x}"),
            format!("`{expected:?}`: \"…t1.MAD page {n}: {expected}\""),
        );
    }
    // Encrypting with those versions: refused, page unchanged.
    let mut plain = original.clone();
    t.cipher
        .decrypt_page(PageFile::Data, n as u32, &mut plain)
        .unwrap();
    for (version, expected) in [
        (0u32, PageFault::KeyVersion(0)),
        (u32::MAX, PageFault::KeyVersion(u32::MAX)),
        (
            2,
            PageFault::KeyUnavailable {
                key_id: 1,
                version: 2,
            },
        ),
    ] {
        let mut page = plain.clone();
        let r = t.cipher.encrypt_pages_with(
            PageFile::Data,
            &mut [PageRef {
                number: n as u32,
                data: &mut page,
            }],
            WriteOptions::exact(version),
        );
        assert_eq!(
            page_fault(r[0].as_ref().unwrap_err(), PageFile::Data, n, &t.mad_path),
            expected
        );
        assert!(page == plain);
        rows.add(
            format!("`encrypt_pages_with` exact version {version:#x}"),
            format!("`{expected:?}`, page unchanged"),
        );
    }
    // Providers refuse to hold or serve versions 0 and 0xFFFFFFFF.
    for v in [0, u32::MAX] {
        assert!(
            matches!(DebugKeyProvider::new(v), Err(Error::KeyVersionNotFound { key_id: 1, version }) if version == v)
        );
        let mut p = VersionedKeyProvider::new();
        assert!(
            matches!(p.insert(1, v, KeyMaterial::new(&[1; 16]).unwrap()), Err(Error::KeyVersionNotFound { key_id: 1, version }) if version == v)
        );
        assert!(matches!(
            DebugKeyProvider::default().key(1, v),
            Err(Error::KeyVersionNotFound { .. })
        ));
    }
    rows.add(
        "DebugKeyProvider::new / VersionedKeyProvider::insert / key() with version 0 or 0xFFFFFFFF",
        "`KeyVersionNotFound { key_id: 1, version }`",
    );

    // A key id the key file does not have.
    let crypt = t.header.crypt.unwrap();
    let missing = TableCipher::new(
        t.header.geometry,
        crypt,
        5,
        Mode::Cbc,
        file_provider("cbc_trans_256"),
    )
    .with_files(&t.mai_path, &t.mad_path);
    let e = decrypt_with(&missing, PageFile::Data, n, &original).unwrap_err();
    assert_eq!(
        page_fault(&e, PageFile::Data, n, &t.mad_path),
        PageFault::NoKey { key_id: 5 }
    );
    rows.add(
        format!("key id 5 (not in keys.txt), decrypt .MAD page {n}"),
        format!("`NoKey {{ key_id: 5 }}`: \"…{e}\"")
            .replace(&t.mad_path.display().to_string(), "t1.MAD"),
    );
    let mut page = plain.clone();
    let e = missing
        .encrypt_page(PageFile::Data, n as u32, &mut page)
        .unwrap_err();
    assert_eq!(
        page_fault(&e, PageFile::Data, n, &t.mad_path),
        PageFault::NoKey { key_id: 5 }
    );
    assert!(page == plain);
    assert!(matches!(
        missing.latest_version(),
        Err(Error::KeyNotFound { key_id: 5 })
    ));
    rows.add(
        "key id 5, encrypt (latest version)",
        "`NoKey { key_id: 5 }`, page unchanged; `latest_version()` = `KeyNotFound { key_id: 5 }`",
    );

    // The temporary table written with key 2, read with a key file without
    // key 2: the policy falls back to key 1, and every page fails its CRC.
    let tmp = fixtures().join("tmp_key2");
    let header = TableHeader::read(tmp.join("tmp1.MAI")).unwrap();
    let only_1 =
        FileKeyProvider::parse(format!("1;{K1}\n").as_bytes(), None, Path::new("k")).unwrap();
    let cipher = TableCipher::for_table(&header, Mode::Cbc, Arc::new(only_1)).unwrap();
    assert_eq!(cipher.key_id(), 1);
    let mad = std::fs::read(tmp.join("tmp1.MAD")).unwrap();
    let (mut failed, mut ok) = (0, 0);
    for (i, page) in mad.chunks_exact(8192).enumerate() {
        let mut copy = page.to_vec();
        match cipher.decrypt_page(PageFile::Data, i as u32, &mut copy) {
            Err(Error::Page {
                fault: PageFault::Checksum { .. },
                page: p,
                ..
            }) => {
                assert_eq!(p as usize, i);
                assert!(copy == page);
                failed += 1;
            }
            Ok(PageStatus::Encrypted { .. }) => panic!("page {i} passed with key 1"),
            Ok(_) => ok += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(failed > 0);
    rows.add("temporary table tmp_key2 (written with key 2), key file without key 2", format!("policy picks key 1; {failed} encrypted pages `Checksum`, {ok} bitmap/unwritten left alone"));

    // The wrong algorithm: CTR over a CBC table.
    let ctr = table("cbc_trans_256", Mode::Ctr);
    let mut failed = 0;
    for file in [PageFile::Index, PageFile::Data] {
        let bytes = if file == PageFile::Index {
            &ctr.mai
        } else {
            &ctr.mad
        };
        for (i, page) in bytes.chunks_exact(ctr.bs()).enumerate() {
            if let Ok(PageKind::Encrypted(_)) = ctr.header.geometry.classify(file, i as u32, page) {
                let e = decrypt(&ctr, file, i, page).unwrap_err();
                let path = if file == PageFile::Index {
                    &ctr.mai_path
                } else {
                    &ctr.mad_path
                };
                assert!(matches!(
                    page_fault(&e, file, i, path),
                    PageFault::Checksum { .. }
                ));
                failed += 1;
            }
        }
    }
    rows.add(
        "CTR cipher on a CBC table (cbc_trans_256)",
        format!("all {failed} encrypted pages `Checksum`, each named, unchanged"),
    );
    rows.print("key versions, missing keys, wrong algorithm (cbc_trans_256)");
}

/// Decrypts with another cipher than the table's; a page that fails is
/// unchanged.
fn decrypt_with(
    c: &TableCipher,
    file: PageFile,
    n: usize,
    page: &[u8],
) -> Result<PageStatus, Error> {
    let mut copy = page.to_vec();
    let r = c.decrypt_page(file, n as u32, &mut copy);
    if r.is_err() {
        assert!(copy == page);
    }
    r
}

#[test]
fn key_files() {
    let mut rows = Rows::default();
    let origin = Path::new("keys.txt");
    let fault_of = |text: &str| match FileKeyProvider::parse(text.as_bytes(), None, origin) {
        Err(e @ Error::KeyFile { .. }) => {
            let Error::KeyFile { line, fault, .. } = &e else {
                unreachable!()
            };
            (*line, fault.clone(), e.to_string())
        }
        other => panic!("{text:?}: {other:?}"),
    };
    let k31 = &K1[..31];
    let table: Vec<(String, &str, Option<usize>, KeyFileFault)> = vec![
        (
            format!("1;{K1}\n2;{}\n", &K2[..63]),
            "key 2 with 63 hex digits (an odd digit out)",
            Some(2),
            KeyFileFault::KeyHex,
        ),
        (
            format!("1;{K1}\n2;{K2}0\n"),
            "key 2 with 65 hex digits",
            Some(2),
            KeyFileFault::KeyHex,
        ),
        (
            format!("1;{k31}\n"),
            "key 1 with 31 hex digits",
            Some(1),
            KeyFileFault::KeyHex,
        ),
        (
            format!("# c\n\n1;{}g{}\n", &K1[..20], &K1[21..]),
            "a 'g' at digit 21 (the run stops: 10 bytes)",
            Some(3),
            KeyFileFault::KeyLength(10),
        ),
        (
            format!("1;{}x{}\n", &K1[..31], &K1[32..]),
            "an 'x' at digit 32 (31 digits before it)",
            Some(1),
            KeyFileFault::KeyHex,
        ),
        (
            "1;\n".to_string(),
            "no key after the ';'",
            Some(1),
            KeyFileFault::KeyLength(0),
        ),
        (
            format!("1;{K1}00\n"),
            "33-byte key",
            Some(1),
            KeyFileFault::KeyLength(33),
        ),
        (
            format!("1;{K1}\n0;{K2}\n"),
            "key id 0",
            Some(2),
            KeyFileFault::KeyId,
        ),
        (
            format!("1;{K1}\n4294967296;{K2}\n"),
            "key id 2^32",
            Some(2),
            KeyFileFault::KeyId,
        ),
        (
            format!("1;{K1}\nkey;{K2}\n"),
            "a line that is not <id>;<hex>",
            Some(2),
            KeyFileFault::Syntax,
        ),
        (
            format!("1 ;{K1}\n"),
            "a blank before the ';'",
            Some(1),
            KeyFileFault::Syntax,
        ),
        (
            format!("1;{K1}\n   "),
            "a last line of blanks without a newline",
            Some(2),
            KeyFileFault::Syntax,
        ),
        (
            format!("2;{K2}\n7;{K7}\n"),
            "no key id 1",
            None,
            KeyFileFault::MissingKey1,
        ),
        (
            String::new(),
            "an empty file",
            None,
            KeyFileFault::MissingKey1,
        ),
    ];
    for (text, what, line, fault) in table {
        let (l, f, message) = fault_of(&text);
        assert_eq!((l, &f), (line, &fault), "{what}");
        rows.add(what, format!("`{fault:?}` line {line:?}: \"{message}\""));
        for key in [K1, K2, K7] {
            assert!(
                !message.contains(key) && !message.to_uppercase().contains(&key.to_uppercase())
            );
        }
    }
    // Too large: refused before anything else (the server reads 1 MiB).
    let mut big = format!("1;{K1}\n").into_bytes();
    big.resize(FileKeyProvider::MAX_FILE_SIZE as usize + 1, b'\n');
    assert!(matches!(
        FileKeyProvider::parse(&big, None, origin),
        Err(Error::KeyFile { line: None, fault: KeyFileFault::TooLarge(n), .. }) if n == (1 << 20) + 1
    ));
    big.pop();
    assert!(
        FileKeyProvider::parse(&big, None, origin).is_ok(),
        "exactly 1 MiB is read"
    );
    rows.add(
        "1 MiB + 1 byte",
        "`TooLarge(1048577)`; exactly 1 MiB parses",
    );

    // Salted__ files: the fixture's keys.enc.
    let enc = std::fs::read(fixtures().join("enc_keyfile_secret/keys.enc")).unwrap();
    let ok = FileKeyProvider::parse(&enc, Some(SECRET.as_bytes()), origin).unwrap();
    assert_eq!(ok.key_ids().collect::<Vec<_>>(), [1, 2, 7]);
    for (secret, what, expected) in [
        (
            Some("wrong-secret"),
            "keys.enc, wrong secret",
            KeyFileFault::WrongSecret,
        ),
        (
            Some("aria-fixture-filekey-secreT"),
            "keys.enc, secret with the last letter's case changed",
            KeyFileFault::WrongSecret,
        ),
        (
            None,
            "keys.enc, no secret (decrypted with the empty one)",
            KeyFileFault::WrongSecret,
        ),
    ] {
        let e = FileKeyProvider::parse(&enc, secret.map(str::as_bytes), origin).unwrap_err();
        assert!(
            matches!(&e, Error::KeyFile { line: None, fault, .. } if *fault == expected),
            "{what}: {e:?}"
        );
        let message = format!("{e} {e:?}");
        assert!(!message.contains(SECRET));
        if let Some(s) = secret {
            assert!(!message.contains(s), "the secret is echoed: {message}");
        }
        rows.add(what, format!("`{expected:?}`: \"{e}\""));
    }
    for cut in [9, 16, 17, enc.len() - 1] {
        let e = FileKeyProvider::parse(&enc[..cut], Some(SECRET.as_bytes()), origin).unwrap_err();
        assert!(
            matches!(
                e,
                Error::KeyFile {
                    line: None,
                    fault: KeyFileFault::Truncated,
                    ..
                }
            ),
            "cut {cut}: {e:?}"
        );
    }
    rows.add("keys.enc cut to 9, 16, 17 or len-1 bytes", "`Truncated`");
    let plain = std::fs::read(fixtures().join("cbc_trans_256/keys.txt")).unwrap();
    let e = FileKeyProvider::parse(&plain, Some(SECRET.as_bytes()), origin).unwrap_err();
    assert!(matches!(
        e,
        Error::KeyFile {
            line: None,
            fault: KeyFileFault::NotEncrypted,
            ..
        }
    ));
    assert!(!e.to_string().contains(SECRET));
    rows.add(
        "plain keys.txt with a secret",
        format!("`NotEncrypted`: \"{e}\""),
    );
    // From a path: a missing key file.
    let missing = fixtures().join("no-such-dir/keys.txt");
    let e = FileKeyProvider::from_path(&missing, None).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, source } if *path == missing && source.kind() == std::io::ErrorKind::NotFound)
    );
    rows.add(
        "key file path that does not exist",
        "`Io { path, NotFound }` naming the path",
    );
    rows.print("key files");
}

#[test]
fn flipped_bits() {
    let mut rows = Rows::default();
    for (case, mode) in [("cbc_trans_256", Mode::Cbc), ("ctr_trans_256", Mode::Ctr)] {
        let t = table(case, mode);
        let bs = t.bs();
        // A head page and an index page.
        let head = t.find(PageFile::Data, 1, &["head"]);
        let index = t.find(PageFile::Index, 1, &["index"]);
        let original = t.page(PageFile::Data, head);
        let crc = le32(&original, bs - 4);
        let positions: Vec<(usize, u8, &str)> = vec![
            (0, 0, "LSN byte 0 (changes the IV)"),
            (6, 7, "LSN byte 6"),
            (7, 1, "page type bit 1 (head 1 -> full 3)"),
            (7, 0, "page type bit 0 (head 1 -> unallocated 0)"),
            (8, 0, "directory count (plaintext header)"),
            (10, 3, "free space (plaintext header)"),
            (12, 0, "key version bit 0 (1 -> 0)"),
            (12, 1, "key version bit 1 (1 -> 3)"),
            (15, 7, "key version bit 31 (1 -> 0x80000001)"),
            (16, 0, "first body byte"),
            (bs / 2, 4, "middle of the body"),
            (bs - 5, 7, "last body byte (CBC: the tail XOR)"),
            (bs - 4, 0, "CRC byte 0"),
            (bs - 1, 7, "CRC byte 3"),
        ];
        for (byte, bit, what) in positions {
            let mut page = original.clone();
            page[byte] ^= 1 << bit;
            let result = decrypt(&t, PageFile::Data, head, &page);
            let e = result.as_ref().unwrap_err();
            let fault = page_fault(e, PageFile::Data, head, &t.mad_path);
            let version_at = if page[7] & 7 >= 3 { 8 } else { 12 };
            let stamped = le32(&page, version_at);
            match &fault {
                PageFault::Checksum { stored, computed } => {
                    assert_eq!(*stored, le32(&page, bs - 4));
                    if byte >= bs - 4 {
                        assert_eq!(*computed, crc, "a flipped CRC leaves the plaintext right");
                    }
                    assert_ne!(stored, computed);
                }
                PageFault::KeyVersion(v) => assert_eq!(*v, stamped),
                PageFault::KeyUnavailable { key_id: 1, version } => assert_eq!(*version, stamped),
                other => panic!("{what}: {other:?}"),
            }
            // One bit in a plaintext header byte or the CRC, or (CTR) in the
            // body: the plaintext differs in one bit, CRC-32 must see it.
            if byte >= bs - 4 || (8..12).contains(&byte) || (mode == Mode::Ctr && byte >= 16) {
                assert!(
                    matches!(fault, PageFault::Checksum { .. }),
                    "{what}: {fault:?}"
                );
            }
            rows.add(
                format!("{case} .MAD page {head}: {what}, byte {byte} bit {bit}"),
                format!("`{}`", short(&fault)),
            );
        }

        // Index page: the bytes past page_used are neither encrypted nor
        // covered by the CRC: a flip there is not detected (the format has
        // no integrity for them; the server never reads them).
        let original = t.page(PageFile::Index, index);
        let used = be16(&original, 19);
        let mut plain = original.clone();
        t.cipher
            .decrypt_page(PageFile::Index, index as u32, &mut plain)
            .unwrap();
        for (byte, what) in [
            (0, "LSN byte 0"),
            (7, "transaction id"),
            (13, "key version"),
            (17, "key number"),
            (19, "page_used high byte"),
            (20, "page_used low byte"),
            (21, "first body byte"),
            (used - 1, "last body byte"),
            (bs - 4, "CRC byte 0"),
        ] {
            let mut page = original.clone();
            page[byte] ^= 1;
            let e = decrypt(&t, PageFile::Index, index, &page).unwrap_err();
            let fault = page_fault(&e, PageFile::Index, index, &t.mai_path);
            assert!(
                matches!(
                    fault,
                    PageFault::Checksum { .. }
                        | PageFault::PageUsed { .. }
                        | PageFault::KeyUnavailable { .. }
                        | PageFault::KeyVersion(_)
                ),
                "{what}: {fault:?}"
            );
            rows.add(
                format!("{case} .MAI page {index}: {what}, byte {byte} bit 0"),
                format!("`{}`", short(&fault)),
            );
        }
        if used < bs - 4 {
            let mut page = original.clone();
            page[used] ^= 1;
            let mut out = page.clone();
            let r = t
                .cipher
                .decrypt_page(PageFile::Index, index as u32, &mut out);
            assert!(
                matches!(r, Ok(PageStatus::Encrypted { key_version: 1 })),
                "{r:?}"
            );
            let mut want = plain.clone();
            want[used] ^= 1;
            assert!(out == want);
            rows.add(
                format!(
                    "{case} .MAI page {index}: byte {used} (first byte past page_used {used}) bit 0"
                ),
                "decrypts `Ok` (not covered by the CRC; the bit stays flipped in the plaintext)",
            );
        }
    }
    rows.print("one flipped bit (the error names the file and page)");
}

fn short(fault: &PageFault) -> String {
    match fault {
        PageFault::Checksum { .. } => "Checksum { stored, computed }".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn missing_files_and_failed_rekey_change_nothing() {
    let mut rows = Rows::default();
    // A table directory with only the .MAD: the header cannot be read.
    let dir = unique_dir("missing");
    std::fs::copy(fixtures().join("cbc_trans_256/t1.MAD"), dir.join("t1.MAD")).unwrap();
    let e = TableHeader::read(dir.join("t1.MAI")).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, source } if *path == dir.join("t1.MAI") && source.kind() == std::io::ErrorKind::NotFound)
    );
    assert!(
        e.to_string()
            .starts_with(&dir.join("t1.MAI").display().to_string())
    );
    rows.add(
        "table with no .MAI: `TableHeader::read`",
        "`Io { path: …/t1.MAI, NotFound }`",
    );
    // With only the .MAI: the header reads, and the library has no call
    // that opens a .MAD (the caller reads the pages and names the file with
    // `with_files`); std::fs gives NotFound for it.
    std::fs::remove_file(dir.join("t1.MAD")).unwrap();
    std::fs::copy(fixtures().join("cbc_trans_256/t1.MAI"), dir.join("t1.MAI")).unwrap();
    assert!(TableHeader::read(dir.join("t1.MAI")).is_ok());
    assert_eq!(
        std::fs::read(dir.join("t1.MAD")).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    rows.add(
        "table with no .MAD",
        "the header reads; no library call opens a .MAD (the tool reports it)",
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // rekey_pages to a cipher whose key is missing: every page fails and
    // is back to its exact original bytes.
    let t = table("cbc_trans_256", Mode::Cbc);
    let crypt = t.header.crypt.unwrap();
    let to = TableCipher::new(
        t.header.geometry,
        CryptData {
            space: 7,
            scheme_iv: [7; 16],
        },
        9,
        Mode::Ctr,
        file_provider("cbc_trans_256"),
    );
    let mut data = t.mad.clone();
    let mut pages: Vec<PageRef> = data
        .chunks_exact_mut(t.bs())
        .enumerate()
        .map(|(n, data)| PageRef {
            number: n as u32,
            data,
        })
        .collect();
    let results = rekey_pages(&t.cipher, &to, PageFile::Data, &mut pages);
    drop(pages);
    assert!(data == t.mad, "a failed rekey changed the file");
    let failed = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(Error::Page {
                    fault: PageFault::NoKey { key_id: 9 },
                    ..
                })
            )
        })
        .count();
    assert!(failed > 0);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(PageStatus::Bitmap | PageStatus::Unwritten) | Err(_)))
    );
    rows.add(
        "`rekey_pages` to key id 9 (missing)",
        format!("{failed} pages `NoKey {{ key_id: 9 }}`, every byte as before"),
    );
    // And from the wrong cipher: nothing decrypts, nothing changes.
    let wrong_from = TableCipher::new(
        t.header.geometry,
        crypt,
        2,
        Mode::Cbc,
        file_provider("cbc_trans_256"),
    );
    let good_to = TableCipher::new(
        t.header.geometry,
        crypt,
        1,
        Mode::Ctr,
        file_provider("cbc_trans_256"),
    );
    let mut data = t.mad.clone();
    let mut pages: Vec<PageRef> = data
        .chunks_exact_mut(t.bs())
        .enumerate()
        .map(|(n, data)| PageRef {
            number: n as u32,
            data,
        })
        .collect();
    let results = rekey_pages(&wrong_from, &good_to, PageFile::Data, &mut pages);
    drop(pages);
    assert!(data == t.mad);
    assert!(results.iter().any(|r| matches!(
        r,
        Err(Error::Page {
            fault: PageFault::Checksum { .. },
            ..
        })
    )));
    rows.add(
        "`rekey_pages` from the wrong key (id 2)",
        "`Checksum` for every encrypted page, every byte as before",
    );
    rows.print("missing files, failed rekey");
}

// ---------------------------------------------------------------------------
// Concurrency

#[test]
fn shared_cipher_and_providers_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TableCipher>();
    send_sync::<Aes>();
    send_sync::<Arc<Aes>>();
    send_sync::<FileKeyProvider>();
    send_sync::<VersionedKeyProvider>();
    send_sync::<DebugKeyProvider>();
    send_sync::<KeyMaterial>();
    send_sync::<Arc<dyn KeyProvider>>();
    send_sync::<Error>();
    send_sync::<TableHeader>();
}

/// Plaintext pages of a fixture table (decrypted), for re-encryption.
fn plaintext_pages(
    case: &str,
    provider: Arc<dyn KeyProvider>,
) -> (TableHeader, Vec<(PageFile, u32, Vec<u8>)>) {
    let dir = fixtures().join(case);
    let header = TableHeader::read(dir.join("t1.MAI")).unwrap();
    let cipher = TableCipher::for_table(&header, Mode::Cbc, provider).unwrap();
    let bs = header.geometry.block_size as usize;
    let mut pages = Vec::new();
    for (file, name) in [(PageFile::Index, "t1.MAI"), (PageFile::Data, "t1.MAD")] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        for (n, page) in bytes.chunks_exact(bs).enumerate() {
            let mut page = page.to_vec();
            if let Ok(PageStatus::Encrypted { .. }) = cipher.decrypt_page(file, n as u32, &mut page)
            {
                // As an engine holds it: nothing past `page_used` (the
                // server leaves stale buffer bytes there on disk; writes
                // zero them).
                if let Ok(PageKind::Encrypted(layout)) =
                    header.geometry.classify(file, n as u32, &page)
                {
                    page[layout.body.end..bs - 4].fill(0);
                }
                pages.push((file, n as u32, page));
            }
        }
    }
    (header, pages)
}

fn hammer(cipher: Arc<TableCipher>, plain: &[(PageFile, u32, Vec<u8>)], versions: &[u32]) {
    // Encrypt every page with a version of its own (more versions than the
    // key cache holds, so threads evict each other's keys).
    let mut encrypted: Vec<(PageFile, u32, u32, Vec<u8>)> = Vec::new();
    for (i, (file, n, page)) in plain.iter().enumerate() {
        let version = versions[i % versions.len()];
        let mut enc = page.clone();
        let r = cipher.encrypt_pages_with(
            *file,
            &mut [PageRef {
                number: *n,
                data: &mut enc,
            }],
            WriteOptions::exact(version),
        );
        assert!(
            matches!(r[..], [Ok(PageStatus::Encrypted { key_version })] if key_version == version)
        );
        encrypted.push((*file, *n, version, enc));
    }
    let checked = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for thread in 0..4usize {
            let cipher = &cipher;
            let encrypted = &encrypted;
            let checked = &checked;
            s.spawn(move || {
                for round in 0..6usize {
                    // Single pages, in a thread-specific order.
                    for k in 0..encrypted.len() {
                        let i = (k * (2 * thread + 1) + round) % encrypted.len();
                        let (file, n, version, enc) = &encrypted[i];
                        let mut page = enc.clone();
                        let r = cipher.decrypt_page(*file, *n, &mut page);
                        assert!(matches!(r, Ok(PageStatus::Encrypted { key_version }) if key_version == *version), "{r:?}");
                        assert!(page == plain[i].2, "thread {thread}: page {n} of {file} differs");
                        checked.fetch_add(1, Ordering::Relaxed);
                    }
                    // Batches of mixed versions, per file.
                    for file in [PageFile::Index, PageFile::Data] {
                        let idx: Vec<usize> = (0..encrypted.len())
                            .filter(|&i| encrypted[i].0 == file)
                            .skip((thread + round) % 3)
                            .collect();
                        let mut bufs: Vec<Vec<u8>> = idx.iter().map(|&i| encrypted[i].3.clone()).collect();
                        let mut refs: Vec<PageRef> = bufs
                            .iter_mut()
                            .zip(&idx)
                            .map(|(data, &i)| PageRef { number: encrypted[i].1, data })
                            .collect();
                        let results = cipher.decrypt_pages(file, &mut refs);
                        drop(refs);
                        for ((r, buf), &i) in results.iter().zip(&bufs).zip(&idx) {
                            assert!(matches!(r, Ok(PageStatus::Encrypted { key_version }) if *key_version == encrypted[i].2), "{r:?}");
                            assert!(*buf == plain[i].2, "batch page differs");
                            checked.fetch_add(1, Ordering::Relaxed);
                        }
                        // And encrypt them back, as a batch, each with its version.
                        for &i in idx.iter().take(4) {
                            let mut page = plain[i].2.clone();
                            cipher.encrypt_pages_with(file, &mut [PageRef { number: encrypted[i].1, data: &mut page }], WriteOptions::exact(encrypted[i].2));
                            assert!(page == encrypted[i].3, "re-encryption differs");
                        }
                    }
                }
            });
        }
    });
    assert!(checked.load(Ordering::Relaxed) >= 4 * 6 * plain.len());
}

#[test]
fn one_cipher_many_threads_mixed_versions() {
    // debug_key_management: any version of key 1.
    let debug: Arc<dyn KeyProvider> = Arc::new(DebugKeyProvider::new(3).unwrap());
    let (header, plain) = plaintext_pages("debug_versions", Arc::clone(&debug));
    assert!(plain.len() > 20);
    for &backend in Backend::supported() {
        let cipher = Arc::new(
            TableCipher::for_table(&header, Mode::Cbc, Arc::clone(&debug))
                .unwrap()
                .with_backend(backend)
                .unwrap(),
        );
        hammer(
            cipher,
            &plain,
            &[
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                8,
                9,
                10,
                11,
                12,
                0x7fff_ffff,
                u32::MAX - 1,
            ],
        );
    }
    // A versioned provider with versions 1..=5 of key 1, CTR.
    let mut versioned = VersionedKeyProvider::new();
    for v in 1..=5u32 {
        let key: Vec<u8> = (0..32)
            .map(|i| (i as u8) ^ (v as u8).wrapping_mul(37))
            .collect();
        versioned
            .insert(1, v, KeyMaterial::new(&key).unwrap())
            .unwrap();
    }
    let versioned: Arc<dyn KeyProvider> = Arc::new(versioned);
    let cipher =
        Arc::new(TableCipher::for_table(&header, Mode::Ctr, Arc::clone(&versioned)).unwrap());
    hammer(cipher, &plain, &[1, 2, 3, 4, 5]);
}

#[test]
fn latest_version_changes_while_threads_write() {
    let debug = Arc::new(DebugKeyProvider::new(1).unwrap());
    let (header, plain) = plaintext_pages("debug_versions", debug.clone());
    let cipher = TableCipher::for_table(&header, Mode::Cbc, debug.clone()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..2000u32 {
                debug.set_latest(1 + i % 9).unwrap();
            }
        });
        for _ in 0..2 {
            s.spawn(|| {
                for (file, n, page) in plain.iter().cycle().take(300) {
                    let mut enc = page.clone();
                    let r = cipher.encrypt_page(*file, *n, &mut enc).unwrap();
                    let PageStatus::Encrypted { key_version } = r else {
                        panic!("{r:?}")
                    };
                    assert!((1..=9).contains(&key_version));
                    let mut back = enc.clone();
                    let d = cipher.decrypt_page(*file, *n, &mut back).unwrap();
                    assert_eq!(d, PageStatus::Encrypted { key_version });
                    assert!(back == *page);
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------
// No key bytes in Debug or messages

#[test]
fn debug_and_errors_never_print_key_bytes() {
    let keys = [hex(K1), hex(K2), hex(K7)];
    let text = format!("1;{K1}\n2;{K2}\n7;{}\n", K7.to_uppercase());
    let file = Arc::new(FileKeyProvider::parse(text.as_bytes(), None, Path::new("k")).unwrap());
    let mut versioned = VersionedKeyProvider::from(
        FileKeyProvider::parse(text.as_bytes(), None, Path::new("k")).unwrap(),
    );
    versioned
        .insert(1, 2, KeyMaterial::new(&keys[1]).unwrap())
        .unwrap();
    let t = table("cbc_trans_256", Mode::Cbc);
    let cipher = TableCipher::for_table(&t.header, Mode::Cbc, file.clone()).unwrap();
    // Force key derivation, so the cache holds the local key.
    let local = cipher.local_key(1).unwrap();
    // The local key, computed independently: AES-256-ECB(K1, scheme_iv).
    let local_bytes = {
        use aes::cipher::{BlockCipherEncrypt, KeyInit};
        let mut block = t.header.crypt.unwrap().scheme_iv;
        aes::Aes256::new_from_slice(&keys[0])
            .unwrap()
            .encrypt_block((&mut block).into());
        block.to_vec()
    };
    let mut printed = vec![
        format!("{file:?}"),
        format!("{versioned:?}"),
        format!("{:?}", DebugKeyProvider::new(0x1234_5678).unwrap()),
        format!("{cipher:?}"),
        format!("{local:?}"),
        format!("{:?}", file.key(1, 1).unwrap()),
        format!("{:?}", KeyMaterial::new(&keys[2]).unwrap()),
    ];
    for key in &keys {
        for backend in Backend::supported() {
            printed.push(format!("{:?}", Aes::with_backend(key, *backend).unwrap()));
        }
        printed.push(format!(
            "{:?}",
            Aes::with_backend(&key[..key.len() - 1], Backend::Soft).unwrap_err()
        ));
    }
    // Errors of every kind that a key could end up in.
    let mut page = t.page(PageFile::Data, 1);
    page[20] ^= 1;
    printed.push(format!(
        "{:?} {}",
        cipher
            .decrypt_page(PageFile::Data, 1, &mut page)
            .unwrap_err(),
        cipher
            .decrypt_page(PageFile::Data, 1, &mut page)
            .unwrap_err()
    ));
    for bad in [
        format!("1;{K1}0\n"),
        format!("1;{K1}{K2}\n"),
        format!("2;{K2}\n"),
        format!("1;{K1}\nx\n"),
    ] {
        let e = FileKeyProvider::parse(bad.as_bytes(), None, Path::new("k")).unwrap_err();
        printed.push(format!("{e} {e:?}"));
        let e = FileKeyProvider::parse(bad.as_bytes(), Some(SECRET.as_bytes()), Path::new("k"))
            .unwrap_err();
        printed.push(format!("{e} {e:?}"));
    }
    let debug_key = DebugKeyProvider::key_bytes(0x1234_5678);
    for text in &printed {
        let lower = text.to_lowercase();
        for key in keys
            .iter()
            .map(Vec::as_slice)
            .chain([&local_bytes[..], &debug_key[..]])
        {
            let h: String = key.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!lower.contains(&h), "key bytes {h} printed: {text}");
            // Any 8 bytes of it, too.
            for w in key.windows(8) {
                let h: String = w.iter().map(|b| format!("{b:02x}")).collect();
                if w.iter().filter(|&&b| b != 0).count() >= 4 {
                    assert!(!lower.contains(&h), "key bytes {h} printed: {text}");
                }
            }
            // Nor as a Rust byte array.
            assert!(!text.contains(&format!("{:?}", &key[..8])), "{text}");
        }
        assert!(!text.contains(SECRET), "the secret printed: {text}");
    }
}

// ---------------------------------------------------------------------------
// No panic on extreme inputs

/// Extreme lengths (empty, sub-block, a megabyte and a tail) and batches
/// (empty, of empty jobs, of many tiny jobs) on every backend, each output
/// compared with RustCrypto `aes`/`cbc`/`ctr` and MariaDB's tail rule
/// written out here, not only round-tripped (an identity cipher would
/// round-trip).
#[test]
fn kernel_extreme_lengths_and_batches() {
    use aes::cipher::{BlockCipherEncrypt, BlockModeEncrypt, KeyInit, KeyIvInit, StreamCipher};

    const KEY: [u8; 32] = [9; 32];
    fn reference_ecb(data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        let (blocks, _) = out.as_chunks_mut::<16>();
        let aes = aes::Aes256::new(&KEY.into());
        for block in blocks {
            aes.encrypt_block(block.into());
        }
        out
    }
    /// CBC over the whole blocks, then the last `len % 16` bytes XORed
    /// with `AES-ECB(key, iv)` (spec §4.3); or CTR, 128-bit big-endian.
    fn reference(mode: Mode, iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        match mode {
            Mode::Cbc => {
                let full = data.len() / 16 * 16;
                let mut cbc = cbc::Encryptor::<aes::Aes256>::new(&KEY.into(), iv.into());
                for block in out[..full].as_chunks_mut::<16>().0 {
                    cbc.encrypt_block(block.into());
                }
                let mask = reference_ecb(iv);
                for (byte, m) in out[full..].iter_mut().zip(mask) {
                    *byte ^= m;
                }
            }
            Mode::Ctr => {
                ctr::Ctr128BE::<aes::Aes256>::new(&KEY.into(), iv.into()).apply_keystream(&mut out)
            }
        }
        out
    }

    let huge = 1 << 20;
    let lengths = [0usize, 1, 15, 16, 17, 31, 1023, huge + 3];
    let pattern = |len: usize| -> Vec<u8> { (0..len).map(|i| (i * 31 + len) as u8).collect() };
    let mut expected = Vec::new();
    for len in lengths {
        let data = pattern(len);
        for mode in [Mode::Cbc, Mode::Ctr] {
            for iv in [[0xff; 16], [0; 16]] {
                expected.push(reference(mode, &iv, &data));
            }
        }
        expected.push(reference_ecb(&data[..len / 16 * 16]));
    }
    // Job `i` of the tiny batch: `i % 3` bytes of `i`, all under the
    // IV 0xff..ff, so only the tail rule or one keystream block applies.
    let tiny = |mode: Mode| -> Vec<Vec<u8>> {
        (0..300)
            .map(|i| reference(mode, &[0xff; 16], &vec![i as u8; i % 3]))
            .collect()
    };
    let tiny_expected = [tiny(Mode::Cbc), tiny(Mode::Ctr)];

    for &backend in Backend::supported() {
        let aes = Aes::with_backend(&KEY, backend).unwrap();
        let mut expected = expected.iter();
        for len in lengths {
            let data = pattern(len);
            for mode in [Mode::Cbc, Mode::Ctr] {
                let mut buf = data.clone();
                let in_place = expected.next().unwrap();
                aes.encrypt(mode, &[0xff; 16], &mut buf);
                assert!(buf == *in_place, "{backend} {mode} encrypt, {len} bytes");
                aes.decrypt(mode, &[0xff; 16], &mut buf);
                assert!(buf == data, "{backend} {mode} decrypt, {len} bytes");
                let mut out = vec![0u8; len];
                aes.encrypt_to(mode, &[0; 16], &data, &mut out).unwrap();
                assert!(
                    out == *expected.next().unwrap(),
                    "{backend} {mode} encrypt_to, {len} bytes"
                );
                assert!(
                    aes.encrypt_to(mode, &[0; 16], &data, &mut out[..len.saturating_sub(1)])
                        .is_err()
                        || len == 0
                );
            }
            let mut aligned = data[..len / 16 * 16].to_vec();
            aes.ecb_encrypt(&mut aligned).unwrap();
            assert!(
                aligned == *expected.next().unwrap(),
                "{backend} ECB, {len} bytes"
            );
            if len % 16 != 0 {
                let mut v = vec![1u8; len];
                assert!(
                    matches!(aes.ecb_encrypt(&mut v), Err(KernelError::NotBlockAligned(l)) if l == len)
                );
                assert!(v.iter().all(|&b| b == 1), "{backend}: failed ECB wrote");
            }
        }
        // Empty batches, batches of empty jobs, many tiny jobs.
        for (mode, tiny_expected) in [Mode::Cbc, Mode::Ctr].into_iter().zip(&tiny_expected) {
            aes.encrypt_batch(mode, &mut []);
            aes.decrypt_batch(mode, &mut []);
            let mut bufs: Vec<Vec<u8>> = (0..300).map(|i| vec![i as u8; i % 3]).collect();
            let mut jobs: Vec<Job> = bufs
                .iter_mut()
                .map(|b| Job::in_place([0xff; 16], b))
                .collect();
            aes.encrypt_batch(mode, &mut jobs);
            drop(jobs);
            assert!(bufs == *tiny_expected, "{backend} {mode} tiny batch");
            let mut jobs: Vec<Job> = bufs
                .iter_mut()
                .map(|b| Job::in_place([0xff; 16], b))
                .collect();
            aes.decrypt_batch(mode, &mut jobs);
            drop(jobs);
            for (i, b) in bufs.iter().enumerate() {
                assert!(b.iter().all(|&x| x == i as u8));
            }
        }
        let mut block = [0u8; 16];
        aes.encrypt_block(&mut block);
        assert_eq!(block.to_vec(), reference_ecb(&[0; 16]), "{backend}");
        aes.decrypt_block(&mut block);
        assert_eq!(block, [0; 16]);
    }
    for name in ["", "AESNI ", "vaes1024", "\u{0}", "soft\n"] {
        let _ = name.parse::<Backend>();
        let _ = name.parse::<Mode>();
    }
    assert!(matches!(Aes::new(&[]), Err(KernelError::KeyLength(0))));
    assert!(matches!(
        Aes::new(&[0; 64]),
        Err(KernelError::KeyLength(64))
    ));
}

#[test]
fn page_numbers_and_versions_at_the_extremes() {
    let t = table("cbc_trans_256", Mode::Cbc);
    let bs = t.bs();
    let head = t.find(PageFile::Data, 1, &["head"]);
    let mut plain = t.page(PageFile::Data, head);
    t.cipher
        .decrypt_page(PageFile::Data, head as u32, &mut plain)
        .unwrap();
    let index = t.find(PageFile::Index, 1, &["index"]);
    let mut iplain = t.page(PageFile::Index, index);
    t.cipher
        .decrypt_page(PageFile::Index, index as u32, &mut iplain)
        .unwrap();
    for number in [0u32, 1, pages_covered(8192), u32::MAX - 1, u32::MAX] {
        for (file, source) in [(PageFile::Data, &plain), (PageFile::Index, &iplain)] {
            for version in [0u32, 1, 2, u32::MAX - 1, u32::MAX] {
                let mut page = source.clone();
                let r = t.cipher.encrypt_pages_with(
                    file,
                    &mut [PageRef {
                        number,
                        data: &mut page,
                    }],
                    WriteOptions::exact(version),
                );
                match &r[0] {
                    Ok(PageStatus::Encrypted { key_version }) => {
                        assert_eq!(*key_version, version);
                        let mut back = page.clone();
                        let d = t.cipher.decrypt_page(file, number, &mut back);
                        assert!(
                            matches!(d, Ok(PageStatus::Encrypted { key_version }) if key_version == version),
                            "{d:?}"
                        );
                        let mut want = source.clone();
                        let crc = page_crc(
                            number,
                            &want[..if file == PageFile::Data {
                                bs - 4
                            } else {
                                be16(&want, 19)
                            }],
                        );
                        want[bs - 4..].copy_from_slice(&crc.to_le_bytes());
                        if file == PageFile::Index {
                            // Nothing of the caller's past `page_used`.
                            let used = be16(&want, 19);
                            want[used..bs - 4].fill(0);
                        }
                        assert!(back == want);
                    }
                    Ok(_) => assert!(page == *source),
                    Err(e) => {
                        assert!(page == *source);
                        assert!(matches!(e, Error::Page { page, .. } if *page == number));
                    }
                }
            }
            let mut page = source.clone();
            let _ = t.cipher.decrypt_page(file, number, &mut page);
            let _ = t.cipher.encrypt_page(file, number, &mut page);
        }
        let _ = page_iv(u32::MAX, number, &plain);
        let _ = page_crc(number, &[]);
    }
    assert_eq!(try_page_lsn(&[]), None);
    assert_eq!(try_page_lsn(&[0xff; 7]), Some(0x00ff_ffff_ffff_ffff));
    let _ = page_iv(0, 0, &[]);
    let _ = DebugKeyProvider::key_bytes(u32::MAX);
    assert!(KeyMaterial::new(&[]).is_err());
    assert!(matches!(
        KeyMaterial::new(&[0; 33]),
        Err(Error::KeyLength(33))
    ));
}

/// Issue 6: "no panic reachable from any public function on any input
/// (block sizes)". `TableGeometry` has public fields and `TableCipher::new`
/// takes any geometry: a block size no table can have is
/// `PageFault::BlockSize`, naming the page, with the page unchanged. (Found
/// by the page_decrypt fuzz target: block sizes below 25 panicked on an
/// index or data page header read.)
#[test]
fn geometry_with_an_impossible_block_size_is_an_error_not_a_panic() {
    let provider: Arc<dyn KeyProvider> = Arc::new(DebugKeyProvider::default());
    for bs in [0u32, 1, 4, 10, 16, 20, 21, 24, 25, 1000, 1024, 65536] {
        for transactional in [false, true] {
            for keystart in [0, u64::from(bs), u64::MAX] {
                let geometry = TableGeometry {
                    block_size: bs,
                    keystart,
                    transactional,
                };
                let _ = geometry.first_index_page();
                let _ = geometry.index_header_len();
                let cipher = TableCipher::new(
                    geometry,
                    CryptData {
                        space: 1,
                        scheme_iv: [2; 16],
                    },
                    1,
                    Mode::Cbc,
                    Arc::clone(&provider),
                );
                let valid = is_valid_block_size(bs);
                for file in [PageFile::Index, PageFile::Data] {
                    for fill in [0u8, 0x41, 0xff] {
                        for number in [0u32, 1, 2, u32::MAX] {
                            let original = vec![fill; bs as usize];
                            let kind = geometry.classify(file, number, &original);
                            if !valid {
                                assert_eq!(kind, Err(PageFault::BlockSize(bs)));
                            }
                            for encrypt in [true, false] {
                                let mut page = original.clone();
                                let r = if encrypt {
                                    cipher.encrypt_page(file, number, &mut page)
                                } else {
                                    cipher.decrypt_page(file, number, &mut page)
                                };
                                match r {
                                    Err(Error::Page { fault, page: n, .. }) => {
                                        assert_eq!(n, number);
                                        assert!(page == original);
                                        if !valid {
                                            assert_eq!(fault, PageFault::BlockSize(bs));
                                        }
                                    }
                                    Err(other) => panic!("{other:?}"),
                                    Ok(_) => assert!(valid || page == original),
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `pages_covered` overflowed (a panic in debug builds) past 1.6 GB.
#[test]
fn pages_covered_never_overflows() {
    for bs in [
        0,
        1,
        4,
        5,
        10,
        4096,
        8192,
        32768,
        65536,
        1 << 30,
        1 << 31,
        u32::MAX,
    ] {
        let covered = pages_covered(bs);
        assert!(covered >= 1, "{bs}");
    }
    assert_eq!(pages_covered(4096), 10913);
    assert_eq!(pages_covered(8192), 21825);
    assert_eq!(pages_covered(16384), 43681);
    assert_eq!(pages_covered(32768), 87361);
    assert_eq!(pages_covered(u32::MAX), u32::MAX);
}

proptest! {
    /// Any bytes as any page of a real table: an error or a page; on error
    /// the page is unchanged.
    #[test]
    fn arbitrary_pages_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        at in 0usize..8192,
        number in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>(), 0u32..16],
        index in any::<bool>(),
        mode in prop_oneof![Just(Mode::Cbc), Just(Mode::Ctr)],
    ) {
        let t = table("cbc_nontrans_256", mode);
        let file = if index { PageFile::Index } else { PageFile::Data };
        // A real page with the random bytes written into it.
        let mut original = t.page(file, 1);
        for (i, b) in bytes.iter().enumerate() {
            let i = (at + i) % original.len();
            original[i] = *b;
        }
        let mut page = original.clone();
        match t.cipher.decrypt_page(file, number, &mut page) {
            Ok(PageStatus::Encrypted { key_version }) => {
                let mut again = page.clone();
                t.cipher.encrypt_pages_with(file, &mut [PageRef { number, data: &mut again }], WriteOptions::exact(key_version));
                // Writes zero what lies past an index page's `page_used`.
                let mut want = original.clone();
                if let Ok(PageKind::Encrypted(layout)) = t.header.geometry.classify(file, number, &original) {
                    let bs = want.len();
                    want[layout.body.end..bs - 4].fill(0);
                }
                prop_assert!(again == want);
            }
            Ok(_) => prop_assert!(page == original),
            Err(e) => {
                prop_assert!(page == original);
                let is_page_error = matches!(e, Error::Page { page, file: f, .. } if page == number && f == file);
                prop_assert!(is_page_error);
            }
        }
    }

    /// A real header with random bytes written into it: parses or a typed
    /// header error.
    #[test]
    fn damaged_headers_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 1..8),
        at in 0usize..700,
        cut in 0usize..800,
    ) {
        let mai = std::fs::read(fixtures().join("cbc_trans_256/t1.MAI")).unwrap();
        let mut header = mai[..cut.min(mai.len())].to_vec();
        for (i, b) in bytes.iter().enumerate() {
            if let Some(x) = header.get_mut(at + i) {
                *x = *b;
            }
        }
        match TableHeader::parse(&header) {
            Ok(h) => {
                let mut copy = header.clone();
                if let Some(c) = h.crypt {
                    h.write_crypt_block(&mut copy, &c).unwrap();
                    prop_assert!(copy == header);
                }
            }
            Err(e) => {
                let is_header_error = matches!(e, Error::Header { path: None, .. });
                prop_assert!(is_header_error);
            }
        }
        let _ = CryptData::parse(&header);
    }

    /// Any bytes as a key file, with or without a secret.
    #[test]
    fn arbitrary_key_files_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        secret in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        salted in any::<bool>(),
    ) {
        let mut file = if salted { b"Salted__".to_vec() } else { Vec::new() };
        file.extend_from_slice(&bytes);
        let r = FileKeyProvider::parse(&file, secret.as_deref(), Path::new("k"));
        let is_ok_or_key_file_error = matches!(r, Ok(_) | Err(Error::KeyFile { .. }));
        prop_assert!(is_ok_or_key_file_error);
        let v = VersionedKeyProvider::parse(&file, secret.as_deref(), Path::new("k"));
        let is_ok_or_key_file_error = matches!(v, Ok(_) | Err(Error::KeyFile { .. }));
        prop_assert!(is_ok_or_key_file_error);
    }
}

// ---------------------------------------------------------------------------
// The tool on tables it must not rewrite (issue 11): refused before a byte
// is written, the table byte-identical, nothing left beside it.

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

/// A copy of the cbc_trans_256 fixture, changed by `setup`.
fn tool_case(name: &str, setup: impl FnOnce(&Path)) -> PathBuf {
    let dir = unique_dir(name);
    for f in ["t1.MAI", "t1.MAD", "keys.txt"] {
        std::fs::copy(fixtures().join("cbc_trans_256").join(f), dir.join(f)).unwrap();
    }
    setup(&dir);
    dir
}

/// A rekey that must be refused: what it is, how the copy is changed, the
/// extra options and environment, the exit code and a part of the message.
struct ToolRow(
    &'static str,
    Box<dyn FnOnce(&Path)>,
    Vec<&'static str>,
    &'static [(&'static str, &'static str)],
    i32,
    &'static str,
);

#[test]
fn tool_refuses_unsafe_rewrites_before_writing() {
    let mut rows = Rows::default();
    let bin = env!("CARGO_BIN_EXE_aria-crypt");
    let set_state = |mai: &Path, at: usize, bytes: &[u8]| {
        let mut b = std::fs::read(mai).unwrap();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        std::fs::write(mai, b).unwrap();
    };
    let cases: Vec<ToolRow> = vec![
        ToolRow(
            "empty .MAD of a table with rows",
            Box::new(|d: &Path| std::fs::write(d.join("t1.MAD"), b"").unwrap()),
            vec!["--to-algorithm", "ctr"],
            &[],
            1,
            "t1.MAD: 0 bytes, but the table header records",
        ),
        ToolRow(
            ".MAD missing its last two pages",
            Box::new(|d: &Path| {
                let b = std::fs::read(d.join("t1.MAD")).unwrap();
                std::fs::write(d.join("t1.MAD"), &b[..b.len() - 16384]).unwrap();
            }),
            vec!["--to-algorithm", "ctr"],
            &[],
            1,
            "but the table header records",
        ),
        ToolRow(
            "table not closed cleanly (open count 1)",
            Box::new(move |d: &Path| set_state(&d.join("t1.MAI"), 24, &1u16.to_be_bytes())),
            vec!["--to-algorithm", "ctr"],
            &[],
            1,
            "not closed cleanly",
        ),
        ToolRow(
            "table marked crashed by the server",
            Box::new(move |d: &Path| set_state(&d.join("t1.MAI"), 26, &0x01fbu16.to_be_bytes())),
            vec!["--to-algorithm", "ctr"],
            &[],
            1,
            "the server marked it crashed",
        ),
        ToolRow(
            "`--to-key-id 2` on an ordinary table",
            Box::new(|d: &Path| {
                std::fs::write(d.join("two.txt"), format!("1;{K1}\n2;{K2}\n")).unwrap();
            }),
            vec!["--to-key-file", "two.txt", "--to-key-id", "2"],
            &[],
            1,
            "--allow-unusual-key",
        ),
        ToolRow(
            "key version 2 from a key file (file_key_management serves 1)",
            Box::new(|d: &Path| {
                std::fs::write(d.join("v2.txt"), format!("1;{K1}\n1;2;{K2}\n")).unwrap();
            }),
            vec!["--to-key-file", "v2.txt"],
            &[],
            1,
            "serves version 1 only",
        ),
        ToolRow(
            "no space left while writing the new files",
            Box::new(|_: &Path| {}),
            vec!["--to-algorithm", "ctr"],
            &[("ARIA_CRYPT_FAILPOINT", "new-file-write=enospc")],
            1,
            "deleted what it had written",
        ),
        ToolRow(
            "no space left while writing the journal",
            Box::new(|_: &Path| {}),
            vec!["--to-algorithm", "ctr"],
            &[("ARIA_CRYPT_FAILPOINT", "journal-write=enospc")],
            1,
            "deleted what it had written",
        ),
        ToolRow(
            "a rename that fails after the journal",
            Box::new(|_: &Path| {}),
            vec!["--to-algorithm", "ctr"],
            &[("ARIA_CRYPT_FAILPOINT", "rename=enospc")],
            1,
            "rolled back: the table is unchanged",
        ),
    ];
    for ToolRow(input, setup, extra, env, code, message) in cases {
        let dir = tool_case("tool", setup);
        let before = tree(&dir);
        let mut cmd = std::process::Command::new(bin);
        cmd.current_dir(&dir)
            .env_remove("ARIA_CRYPT_FAILPOINT")
            .args(["rekey", "--key-file", "keys.txt"])
            .args(&extra)
            .arg("t1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{input}: {stderr}");
        assert!(stderr.contains(message), "{input}: {stderr}");
        assert!(tree(&dir) == before, "{input}: the files changed");
        let line = stderr
            .lines()
            .find(|l| l.contains("error:"))
            .unwrap_or_default()
            .replace(&dir.display().to_string(), "…");
        rows.add(
            format!("`rekey`: {input}"),
            format!(
                "exit {code}, nothing written: `{}`",
                line.trim_start_matches("aria-crypt: error: ")
            ),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    rows.print("The tool: rewrites refused before writing");
}
