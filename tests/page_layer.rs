//! The page layer never leaves plaintext behind and never slows to a crawl
//! on hostile files (issue 16), and its write path never reuses an IV
//! (issue 12): one test per defect, each failing on the code before its
//! fix, and a property test over every backend.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mariadb_aria_crypt::aria::{
    CryptData, EncryptedKind, Layout, LsnPolicy, PageFile, PageKind, PageRef, PageStatus,
    TableCipher, TableGeometry, TableHeader, WriteOptions, page_crc, page_iv, try_page_lsn,
};
use mariadb_aria_crypt::kernel::{Backend, Mode};
use mariadb_aria_crypt::keys::{DebugKeyProvider, KeyMaterial, KeyProvider};
use mariadb_aria_crypt::policy::rekey_pages;
use mariadb_aria_crypt::{BatchFault, Error, PageFault};
use proptest::prelude::*;

const CRYPT: CryptData = CryptData {
    space: 0x1234_5678,
    scheme_iv: [0x3c; 16],
};

/// A provider that serves every version of key 1 (as
/// `debug_key_management` does), counts `key()` calls, and fails them once
/// `fail_after` calls have been made or when the version is in `fails`.
#[derive(Debug)]
struct Provider {
    latest: Option<u32>,
    calls: AtomicUsize,
    fail_after: usize,
    fails: Vec<u32>,
}

impl Provider {
    fn new(latest: u32) -> Self {
        Provider {
            latest: Some(latest),
            calls: AtomicUsize::new(0),
            fail_after: usize::MAX,
            fails: Vec::new(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl KeyProvider for Provider {
    fn latest_version(&self, key_id: u32) -> Option<u32> {
        self.latest.filter(|_| key_id == 1)
    }

    fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error> {
        let made = self.calls.fetch_add(1, Ordering::SeqCst);
        if key_id != 1 || made >= self.fail_after || self.fails.contains(&version) {
            // A KMS that is down.
            return Err(Error::KeyVersionNotFound { key_id, version });
        }
        KeyMaterial::new(&DebugKeyProvider::key_bytes(version))
    }
}

fn geometry(block_size: u32, transactional: bool) -> TableGeometry {
    TableGeometry {
        block_size,
        keystart: u64::from(block_size),
        transactional,
    }
}

fn cipher(
    geometry: TableGeometry,
    mode: Mode,
    backend: Backend,
    provider: Arc<dyn KeyProvider>,
) -> TableCipher {
    TableCipher::new(geometry, CRYPT, 1, mode, provider)
        .with_backend(backend)
        .unwrap()
}

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// A plaintext page: random bytes, a data page type or an index
/// `page_used`, the key-version field zero; never all zero.
fn plain_page(geometry: &TableGeometry, file: PageFile, seed: u64, used: usize) -> Vec<u8> {
    let bs = geometry.block_size as usize;
    let mut page = bytes(seed, bs);
    page[0] |= 1;
    match file {
        PageFile::Index => {
            let kh = geometry.index_header_len();
            page[kh - 2..kh].copy_from_slice(&(used as u16).to_be_bytes());
            page[kh - 8..kh - 4].fill(0);
        }
        PageFile::Data => {
            if page[7] & 7 >= 3 {
                page[8..12].fill(0);
            } else {
                page[12..16].fill(0);
            }
        }
    }
    page
}

fn layout(geometry: &TableGeometry, file: PageFile, number: u32, page: &[u8]) -> Layout {
    match geometry.classify(file, number, page) {
        Ok(PageKind::Encrypted(layout)) => layout,
        other => panic!("not an encrypted page: {other:?}"),
    }
}

/// The server's write hook written out with RustCrypto: checksum of the
/// plaintext, encryption, stamp; zeroes past an index page's `page_used`.
fn reference(
    geometry: &TableGeometry,
    mode: Mode,
    file: PageFile,
    number: u32,
    plain: &[u8],
    version: u32,
) -> Vec<u8> {
    let bs = plain.len();
    let l = layout(geometry, file, number, plain);
    let mut page = plain.to_vec();
    page[l.key_version_at..l.key_version_at + 4].fill(0);
    let crc = page_crc(number, &page[..l.body.end]);
    page[bs - 4..].copy_from_slice(&crc.to_le_bytes());
    page[l.body.end..bs - 4].fill(0);
    let local = common::ecb_encrypt(&DebugKeyProvider::key_bytes(version), &CRYPT.scheme_iv);
    let iv = page_iv(CRYPT.space, number, &page);
    let body = match mode {
        Mode::Cbc => common::cbc_encrypt(&local, &iv, &page[l.body.clone()]),
        _ => common::ctr(&local, &iv, &page[l.body.clone()]),
    };
    page[l.body.clone()].copy_from_slice(&body);
    page[l.key_version_at..l.key_version_at + 4].copy_from_slice(&version.to_le_bytes());
    page
}

// ---------------------------------------------------------------------------
// Issue 16, item 1: nothing of the caller's past `page_used`.

/// The repro: a 4096-byte index page with `page_used` = 64 and a secret in
/// bytes 64..4092. Every write entry point zeroes those bytes, in place
/// and out of place, on every backend; the server-defined bytes are the
/// reference's.
#[test]
fn index_bytes_past_page_used_never_reach_the_output() {
    let g = geometry(4096, false);
    let secret = b"SECRET-ROW-BYTES";
    let mut plain = plain_page(&g, PageFile::Index, 7, 64);
    for (i, b) in plain[64..4092].iter_mut().enumerate() {
        *b = secret[i % secret.len()];
    }
    let keep = WriteOptions::exact(1);
    for &backend in Backend::supported() {
        for mode in [Mode::Cbc, Mode::Ctr] {
            let c = cipher(g, mode, backend, Arc::new(Provider::new(1)));
            let want = reference(&g, mode, PageFile::Index, 1, &plain, 1);
            let check = |out: &[u8], how: &str| {
                assert!(
                    out[64..4092].iter().all(|&b| b == 0),
                    "{backend} {mode} {how}: caller bytes past page_used"
                );
                assert!(out == want, "{backend} {mode} {how}: not the reference");
            };

            let mut page = plain.clone();
            let r = c.encrypt_page_with(PageFile::Index, 1, &mut page, keep);
            assert_eq!(r.unwrap(), PageStatus::Encrypted { key_version: 1 });
            check(&page, "encrypt_page_with");

            let mut page = plain.clone();
            let r = c.encrypt_pages_with(
                PageFile::Index,
                &mut [PageRef {
                    number: 1,
                    data: &mut page,
                }],
                keep,
            );
            assert!(r[0].is_ok());
            check(&page, "encrypt_pages_with");

            let mut page = plain.clone();
            let mut results = [const { Ok(PageStatus::Unwritten) }; 1];
            c.encrypt_contiguous(PageFile::Index, 1, &mut page, keep, &mut results)
                .unwrap();
            assert!(results[0].is_ok());
            check(&page, "encrypt_contiguous");

            let mut dst = vec![0xee; 4096];
            c.encrypt_contiguous_to(PageFile::Index, 1, &plain, &mut dst, keep, &mut results)
                .unwrap();
            assert!(results[0].is_ok());
            check(&dst, "encrypt_contiguous_to");

            // The latest version and a fresh LSN: the gap is zero all the same.
            let mut dst = vec![0xee; 4096];
            c.encrypt_page_to(PageFile::Index, 1, &plain, &mut dst)
                .unwrap();
            assert!(dst[64..4092].iter().all(|&b| b == 0));
        }
    }
}

// ---------------------------------------------------------------------------
// Issue 16, item 2: rekey never leaves a failed page decrypted.

/// 20 pages with 10 key versions; `from`'s provider fails after `k` key
/// calls (a KMS outage) and `to` has no key. Every page fails and every
/// page is byte-identical to what it was, for every `k` (the repro had
/// `k` = 20, which left pages 1, 2, 11 and 12 as plaintext).
#[test]
fn rekey_with_failing_providers_leaves_every_page_as_it_was() {
    let g = geometry(4096, true);
    let writer = cipher(g, Mode::Cbc, Backend::active(), Arc::new(Provider::new(1)));
    let mut encrypted = Vec::new();
    for n in 0..20u32 {
        let mut page = plain_page(&g, PageFile::Data, u64::from(n) + 100, 0);
        page[7] = 1;
        page[12..16].fill(0);
        let version = n % 10 + 1;
        writer
            .encrypt_page_with(
                PageFile::Data,
                n + 1,
                &mut page,
                WriteOptions::exact(version),
            )
            .unwrap();
        encrypted.extend_from_slice(&page);
    }
    let mut to_keys = Provider::new(1);
    to_keys.latest = None;
    let to = cipher(g, Mode::Cbc, Backend::active(), Arc::new(to_keys));
    for k in 0..=30 {
        let mut keys = Provider::new(1);
        keys.fail_after = k;
        let from = cipher(g, Mode::Cbc, Backend::active(), Arc::new(keys));
        let mut pool = encrypted.clone();
        let mut refs = page_refs(&mut pool, 4096);
        let results = rekey_pages(&from, &to, PageFile::Data, &mut refs);
        drop(refs);
        assert!(results.iter().all(Result::is_err), "k = {k}: {results:?}");
        for (n, (a, b)) in pool.chunks(4096).zip(encrypted.chunks(4096)).enumerate() {
            assert!(a == b, "k = {k}: page {} changed", n + 1);
        }
    }
}

// ---------------------------------------------------------------------------
// Issue 16, item 3: rekey refuses ciphers of different geometry.

#[test]
fn rekey_refuses_a_target_of_other_geometry() {
    let keys: Arc<dyn KeyProvider> = Arc::new(Provider::new(1));
    let from_g = TableGeometry {
        block_size: 4096,
        keystart: 4096,
        transactional: true,
    };
    let to_g = TableGeometry {
        keystart: 32768,
        ..from_g
    };
    let from = cipher(from_g, Mode::Cbc, Backend::active(), Arc::clone(&keys));
    let to = cipher(to_g, Mode::Cbc, Backend::active(), keys);
    let mut page = plain_page(&from_g, PageFile::Index, 3, 900);
    from.encrypt_page_with(PageFile::Index, 1, &mut page, WriteOptions::exact(1))
        .unwrap();
    let before = page.clone();
    let results = rekey_pages(
        &from,
        &to,
        PageFile::Index,
        &mut [PageRef {
            number: 1,
            data: &mut page,
        }],
    );
    assert!(
        matches!(&results[..], [Err(Error::GeometryMismatch { from, to })] if *from == from_g && *to == to_g),
        "{results:?}"
    );
    assert!(page == before);
}

// ---------------------------------------------------------------------------
// Issue 16, item 4: one derivation per distinct version, linear work.

/// `n` data pages of table geometry `g`, page `i` encrypted with
/// `version(i)`.
fn pages_with_versions(g: &TableGeometry, n: usize, version: impl Fn(usize) -> u32) -> Vec<u8> {
    let writer = cipher(*g, Mode::Ctr, Backend::active(), Arc::new(Provider::new(1)));
    let bs = g.block_size as usize;
    let template = {
        let mut p = plain_page(g, PageFile::Data, 5, 0);
        p[7] = 1;
        p[12..16].fill(0);
        p
    };
    let mut pool = Vec::with_capacity(n * bs);
    for i in 0..n {
        let mut page = template.clone();
        writer
            .encrypt_page_with(
                PageFile::Data,
                i as u32 + 1,
                &mut page,
                WriteOptions::exact(version(i)),
            )
            .unwrap();
        pool.extend_from_slice(&page);
    }
    pool
}

/// 8,000 pages with 9 versions ask the provider 9 times (the old code
/// asked 7,992 times), and a crafted batch with a version per page asks
/// once per page, never more; every page decrypts.
#[test]
fn decryption_derives_each_distinct_version_once() {
    let g = geometry(1024, true);
    // (Fewer than 2721 pages where every page has its own version: page
    // 2721 of a 1024-byte table is a bitmap page, never encrypted.)
    for (pages, distinct) in [(8000usize, 9u32), (2700, 2700), (500, 1)] {
        let pool = pages_with_versions(&g, pages, |i| (i as u32 * 7919) % distinct + 1);
        let keys = Arc::new(Provider::new(1));
        let reader = cipher(g, Mode::Ctr, Backend::active(), keys.clone());
        let mut buf = pool.clone();
        let mut results: Vec<Result<PageStatus, Error>> = unwritten(pages);
        reader
            .decrypt_contiguous(PageFile::Data, 1, &mut buf, &mut results)
            .unwrap();
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(keys.calls(), distinct as usize, "{pages} pages");

        // The PageRef batch too, with a fresh cipher (an empty cache).
        let keys = Arc::new(Provider::new(1));
        let reader = cipher(g, Mode::Ctr, Backend::active(), keys.clone());
        let mut buf = pool.clone();
        let mut refs = page_refs(&mut buf, 1024);
        let results = reader.decrypt_pages(PageFile::Data, &mut refs);
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(keys.calls(), distinct as usize, "{pages} pages");
    }
}

/// A failing version is asked for once per batch, not once per page.
#[test]
fn a_failing_version_is_asked_for_once_per_batch() {
    let g = geometry(1024, true);
    let pool = pages_with_versions(&g, 2000, |i| i as u32 % 20 + 1);
    let mut keys = Provider::new(1);
    keys.fails = (1..=20).filter(|v| v % 2 == 0).collect();
    let keys = Arc::new(keys);
    let reader = cipher(g, Mode::Ctr, Backend::active(), keys.clone());
    let mut buf = pool.clone();
    let mut results: Vec<Result<PageStatus, Error>> = unwritten(2000);
    reader
        .decrypt_contiguous(PageFile::Data, 1, &mut buf, &mut results)
        .unwrap();
    assert_eq!(keys.calls(), 20);
    for (i, (r, (a, b))) in results
        .iter()
        .zip(buf.chunks(1024).zip(pool.chunks(1024)))
        .enumerate()
    {
        if (i % 20 + 1) % 2 == 0 {
            assert!(
                matches!(
                    r,
                    Err(Error::Page {
                        fault: PageFault::KeyUnavailable { .. },
                        ..
                    })
                ),
                "{r:?}"
            );
            assert!(a == b);
        } else {
            assert!(r.is_ok());
        }
    }
}

/// Figures for the report: decryption time and `key()` calls for 8,000,
/// 16,000 and 32,000 pages with 9 versions. Run with
/// `cargo test --release --test page_layer -- --ignored --nocapture`.
#[test]
#[ignore = "timing figures, not a check"]
fn decryption_time_with_nine_versions() {
    let g = geometry(4096, true);
    for pages in [8000usize, 16000, 32000] {
        let pool = pages_with_versions(&g, pages, |i| i as u32 % 9 + 1);
        let keys = Arc::new(Provider::new(1));
        let reader = cipher(g, Mode::Ctr, Backend::active(), keys.clone());
        let mut buf = pool.clone();
        let mut refs = page_refs(&mut buf, 4096);
        let start = std::time::Instant::now();
        let results = reader.decrypt_pages(PageFile::Data, &mut refs);
        let took = start.elapsed();
        assert!(results.iter().all(Result::is_ok));
        println!(
            "{pages} pages, 9 versions: {:.3} s, {} key() calls",
            took.as_secs_f64(),
            keys.calls()
        );
    }
}

// ---------------------------------------------------------------------------
// Issue 16, item 5: `page_used == block_size - 4` is refused, as the server
// refuses it.

#[test]
fn page_used_up_to_the_checksum_is_refused_naming_the_page() {
    for transactional in [true, false] {
        let g = geometry(4096, transactional);
        let c = cipher(g, Mode::Cbc, Backend::active(), Arc::new(Provider::new(1)));
        let kh = g.index_header_len();
        // Encrypted with the largest valid `page_used`, then the field set
        // to block_size - 4 (it is plaintext).
        let mut page = plain_page(&g, PageFile::Index, 9, 4091);
        c.encrypt_page_with(PageFile::Index, 3, &mut page, WriteOptions::exact(1))
            .unwrap();
        page[kh - 2..kh].copy_from_slice(&4092u16.to_be_bytes());
        let before = page.clone();
        let e = c.decrypt_page(PageFile::Index, 3, &mut page).unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Page {
                    file: PageFile::Index,
                    page: 3,
                    fault: PageFault::PageUsed {
                        value: 4092,
                        max: 4091,
                        ..
                    },
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("page 3"), "{e}");
        assert!(page == before);
    }
}

// ---------------------------------------------------------------------------
// Issue 16, item 6: `Layout` with hand-made offsets never panics.

#[test]
#[allow(deprecated)]
fn layout_with_any_offsets_is_total() {
    for at in [usize::MAX, usize::MAX - 3, usize::MAX - 4, 4093, 4096] {
        let l = Layout {
            kind: EncryptedKind::Head,
            key_version_at: at,
            body: 16..4092,
            crc_end: 4092,
        };
        assert_eq!(l.try_key_version(&[1; 4096]), None, "at {at}");
        assert_eq!(l.key_version(&[1; 4096]), 0, "at {at}");
    }
    let l = Layout {
        kind: EncryptedKind::Head,
        key_version_at: 4092,
        body: 16..4092,
        crc_end: 4092,
    };
    assert_eq!(l.try_key_version(&[1; 4096]), Some(0x0101_0101));
}

// ---------------------------------------------------------------------------
// Issue 12, section 5: a page whose key-version field is set is refused.

#[test]
fn encrypting_an_encrypted_page_is_refused() {
    for &backend in Backend::supported() {
        let g = geometry(4096, true);
        let c = cipher(g, Mode::Ctr, backend, Arc::new(Provider::new(4)));
        for (file, used) in [(PageFile::Data, 0), (PageFile::Index, 2000)] {
            let mut page = plain_page(&g, file, 11, used);
            c.encrypt_page(file, 2, &mut page).unwrap();
            let once = page.clone();
            let e = c.encrypt_page(file, 2, &mut page).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Page {
                        page: 2,
                        fault: PageFault::AlreadyEncrypted { key_version: 4 },
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(page == once);
            let mut dst = vec![0x77; 4096];
            assert!(c.encrypt_page_to(file, 2, &once, &mut dst).is_err());
            assert!(dst.iter().all(|&b| b == 0x77));
        }
    }
}

// ---------------------------------------------------------------------------
// Issue 12, section 1: no IV reuse on tables that are not logging.

fn fixture(case: &str) -> (TableHeader, TableCipher, Vec<u8>, Vec<u8>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case);
    let header = TableHeader::read(dir.join("t1.MAI")).unwrap();
    let mode = if case.starts_with("ctr") {
        Mode::Ctr
    } else {
        Mode::Cbc
    };
    let keys =
        mariadb_aria_crypt::keys::FileKeyProvider::from_path(dir.join("keys.txt"), None).unwrap();
    let c = TableCipher::for_table(&header, mode, Arc::new(keys)).unwrap();
    (
        header,
        c,
        std::fs::read(dir.join("t1.MAI")).unwrap(),
        std::fs::read(dir.join("t1.MAD")).unwrap(),
    )
}

/// One way of writing a plaintext page: its encrypted bytes.
type Write<'a> = dyn Fn(&[u8]) -> Vec<u8> + 'a;

/// The first encrypted page of `file`, decrypted: (number, plaintext).
fn first_plain(c: &TableCipher, file: PageFile, bytes: &[u8]) -> (u32, Vec<u8>) {
    let bs = c.geometry().block_size as usize;
    for (n, page) in bytes.chunks_exact(bs).enumerate() {
        let mut page = page.to_vec();
        if let Ok(PageStatus::Encrypted { .. }) = c.decrypt_page(file, n as u32, &mut page) {
            return (n as u32, page);
        }
    }
    panic!("no encrypted page");
}

/// On the non-transactional fixtures (CBC and CTR), two writes of one page
/// with different contents get different LSNs and no XOR relation, for
/// data and index pages, through every write entry point.
#[test]
fn rewrites_of_a_non_transactional_page_share_no_iv() {
    for case in ["ctr_nontrans_256", "cbc_nontrans_256"] {
        let (header, c, mai, mad) = fixture(case);
        assert!(!header.geometry.transactional && !c.is_logging());
        for (file, bytes) in [(PageFile::Data, &mad), (PageFile::Index, &mai)] {
            let (n, p1) = first_plain(&c, file, bytes);
            let l = layout(&header.geometry, file, n, &p1);
            // An update of one byte near the end of the body.
            let mut p2 = p1.clone();
            p2[l.body.end - 1] ^= 0x55;
            let bs = p1.len();
            let writes: [&Write; 5] = [
                &|p| {
                    let mut page = p.to_vec();
                    c.encrypt_page(file, n, &mut page).unwrap();
                    page
                },
                &|p| {
                    let mut dst = vec![0; bs];
                    c.encrypt_page_to(file, n, p, &mut dst).unwrap();
                    dst
                },
                &|p| {
                    let mut page = p.to_vec();
                    let r = c.encrypt_pages(
                        file,
                        &mut [PageRef {
                            number: n,
                            data: &mut page,
                        }],
                    );
                    r[0].as_ref().unwrap();
                    page
                },
                &|p| {
                    let mut page = p.to_vec();
                    let mut r = [const { Ok(PageStatus::Unwritten) }; 1];
                    c.encrypt_contiguous(file, n, &mut page, WriteOptions::new(), &mut r)
                        .unwrap();
                    r[0].as_ref().unwrap();
                    page
                },
                &|p| {
                    let mut dst = vec![0; bs];
                    let mut r = [const { Ok(PageStatus::Unwritten) }; 1];
                    c.encrypt_contiguous_to(file, n, p, &mut dst, WriteOptions::new(), &mut r)
                        .unwrap();
                    r[0].as_ref().unwrap();
                    dst
                },
            ];
            for (w, write) in writes.iter().enumerate() {
                let c1 = write(&p1);
                let c2 = write(&p2);
                assert_ne!(c1[..7], c2[..7], "{case} {file} write {w}: same LSN");
                assert_ne!(c1[..7], p1[..7], "{case} {file} write {w}: LSN kept");
                let body = l.body.clone();
                // The plaintexts differ in one byte; with a shared IV the
                // ciphertexts' XOR would be that byte (CTR) or the common
                // prefix would show (CBC).
                let xor_c: Vec<u8> = c1[body.clone()]
                    .iter()
                    .zip(&c2[body.clone()])
                    .map(|(a, b)| a ^ b)
                    .collect();
                let xor_p: Vec<u8> = p1[body.clone()]
                    .iter()
                    .zip(&p2[body.clone()])
                    .map(|(a, b)| a ^ b)
                    .collect();
                assert_ne!(xor_c, xor_p, "{case} {file} write {w}: XOR relation");
                assert_ne!(
                    c1[body.start..body.start + 16],
                    c2[body.start..body.start + 16],
                    "{case} {file} write {w}: common prefix shows"
                );
                // Each still decrypts, to its plaintext with the new LSN.
                for (ct, pt) in [(&c1, &p1), (&c2, &p2)] {
                    let mut back = ct.clone();
                    c.decrypt_page(file, n, &mut back).unwrap();
                    let mut want = pt.clone();
                    want[..7].copy_from_slice(&ct[..7]);
                    want[l.body.end..bs - 4].fill(0);
                    want[bs - 4..].copy_from_slice(&back[bs - 4..]);
                    assert!(back == want, "{case} {file} write {w}");
                }
            }
            // In place, the caller's page keeps the LSN it was written with,
            // as the server's cache page does; out of place, `src` is
            // untouched.
            let mut page = p1.clone();
            c.encrypt_page(file, n, &mut page).unwrap();
            let src = p1.clone();
            let mut dst = vec![0; bs];
            c.encrypt_page_to(file, n, &src, &mut dst).unwrap();
            assert!(src == p1);
            // Explicit exact re-encryption keeps the LSN: the server's bytes
            // (up to what lies past `page_used`).
            let mut again = p1.clone();
            let on_disk = &bytes[n as usize * bs..][..bs];
            let version = layout(&header.geometry, file, n, on_disk)
                .try_key_version(on_disk)
                .unwrap();
            c.encrypt_page_with(file, n, &mut again, WriteOptions::exact(version))
                .unwrap();
            let mut disk = bytes[n as usize * bs..][..bs].to_vec();
            disk[l.body.end..bs - 4].fill(0);
            assert!(again == disk, "{case} {file}: exact re-encryption");
        }
    }
}

/// A transactional table keeps its LSN (the server's bytes again); while
/// it says it is not logging, and under `LsnPolicy::Fresh`, it gets fresh
/// ones; `LsnPolicy::Keep` keeps the LSN of a non-transactional table.
#[test]
fn transactional_tables_keep_their_lsn_unless_not_logging() {
    let (header, c, _, mad) = fixture("cbc_trans_256");
    assert_eq!(header.geometry.block_size, 8192);
    assert!(c.is_logging());
    let bs = header.geometry.block_size as usize;
    let (n, p) = first_plain(&c, PageFile::Data, &mad);
    let disk = &mad[n as usize * bs..][..bs];
    let mut page = p.clone();
    c.encrypt_page(PageFile::Data, n, &mut page).unwrap();
    assert!(page == disk, "logging: the server's bytes");

    c.set_logging(false);
    assert!(!c.is_logging());
    let mut page = p.clone();
    c.encrypt_page(PageFile::Data, n, &mut page).unwrap();
    assert_ne!(page[..7], disk[..7], "not logging: a fresh LSN");
    c.set_logging(true);

    let mut page = p.clone();
    let fresh = WriteOptions::new().with_lsn(LsnPolicy::Fresh);
    c.encrypt_page_with(PageFile::Data, n, &mut page, fresh)
        .unwrap();
    assert_ne!(page[..7], disk[..7], "LsnPolicy::Fresh");

    let (header, c, _, mad) = fixture("ctr_nontrans_256");
    assert_eq!(header.geometry.block_size, 8192);
    c.set_logging(true);
    assert!(!c.is_logging(), "a non-transactional table never logs");
    let (n, p) = first_plain(&c, PageFile::Data, &mad);
    let mut page = p.clone();
    let keep = WriteOptions::new().with_lsn(LsnPolicy::Keep);
    c.encrypt_page_with(PageFile::Data, n, &mut page, keep)
        .unwrap();
    assert!(page == mad[n as usize * bs..][..bs], "LsnPolicy::Keep");
}

// ---------------------------------------------------------------------------
// Issue 12, section 4: contiguous and out-of-place batches.

/// Out of place gives what in place gives; shape errors touch nothing.
#[test]
fn contiguous_batches_in_and_out_of_place_agree() {
    let g = geometry(4096, false);
    for &backend in Backend::supported() {
        for mode in [Mode::Cbc, Mode::Ctr] {
            let c = cipher(g, mode, backend, Arc::new(Provider::new(2)));
            let mut plain = Vec::new();
            for i in 0..70u64 {
                let file = PageFile::Data;
                let mut page = plain_page(&g, file, i, 0);
                if i % 9 == 4 {
                    page.fill(0); // unwritten
                }
                if i == 5 {
                    page[7] = 1;
                    page[12..16].copy_from_slice(&3u32.to_le_bytes()); // refused
                }
                plain.extend_from_slice(&page);
            }
            let pages = plain.len() / 4096;
            let keep = WriteOptions::new().with_lsn(LsnPolicy::Keep);
            let mut r1: Vec<Result<PageStatus, Error>> = unwritten(pages);
            let mut r2: Vec<Result<PageStatus, Error>> = unwritten(pages);
            let mut in_place = plain.clone();
            c.encrypt_contiguous(PageFile::Data, 1, &mut in_place, keep, &mut r1)
                .unwrap();
            let mut out = vec![0xab; plain.len()];
            c.encrypt_contiguous_to(PageFile::Data, 1, &plain, &mut out, keep, &mut r2)
                .unwrap();
            for (i, (a, b)) in r1.iter().zip(&r2).enumerate() {
                assert_eq!(format!("{a:?}"), format!("{b:?}"));
                let (x, y) = (&in_place[i * 4096..][..4096], &out[i * 4096..][..4096]);
                if i == 5 {
                    assert!(a.is_err() && x == &plain[i * 4096..][..4096]);
                    assert!(y.iter().all(|&b| b == 0xab), "failed page's dst written");
                } else {
                    assert!(a.is_ok() && x == y, "{backend} {mode} page {i}");
                }
            }
            // Back again, out of place and in place.
            let mut back = vec![0; plain.len()];
            c.decrypt_contiguous_to(PageFile::Data, 1, &out, &mut back, &mut r2)
                .unwrap();
            c.decrypt_contiguous(PageFile::Data, 1, &mut in_place, &mut r1)
                .unwrap();
            for (i, (a, b)) in back.chunks(4096).zip(in_place.chunks(4096)).enumerate() {
                // Page 5 failed on the way in: its dst page was not written.
                assert!(i == 5 || a == b, "page {i}");
            }
            for (i, r) in r2.iter().enumerate() {
                let want = &plain[i * 4096..][..4096];
                let got = &back[i * 4096..][..4096];
                match r {
                    Ok(PageStatus::Encrypted { key_version: 2 }) => {
                        assert_eq!(got[..4092], want[..4092]);
                    }
                    Ok(PageStatus::Unwritten) => assert!(got == want),
                    // Page 5 was never encrypted: its version 3 has no CRC.
                    Err(_) => assert!(i == 5 && got == &out[i * 4096..][..4096]),
                    other => panic!("{other:?}"),
                }
            }

            // Shapes that do not fit: errors, nothing touched.
            let mut r: Vec<Result<PageStatus, Error>> = Vec::new();
            let mut buf = plain[..4096 * 2].to_vec();
            let e = c
                .decrypt_contiguous(PageFile::Data, 1, &mut buf, &mut r)
                .unwrap_err();
            assert!(matches!(
                e,
                Error::Batch(BatchFault::Results {
                    pages: 2,
                    results: 0
                })
            ));
            let mut r: Vec<Result<PageStatus, Error>> = unwritten(2);
            let e = c
                .encrypt_contiguous(PageFile::Data, u32::MAX, &mut buf, keep, &mut r)
                .unwrap_err();
            assert!(matches!(e, Error::Batch(BatchFault::PageNumbers { .. })));
            let e = c
                .encrypt_contiguous(PageFile::Data, 1, &mut buf[..5000], keep, &mut r)
                .unwrap_err();
            assert!(matches!(
                e,
                Error::Batch(BatchFault::NotWholePages { len: 5000, .. })
            ));
            let mut dst = vec![0; 4096];
            let e = c
                .encrypt_contiguous_to(PageFile::Data, 1, &buf, &mut dst, keep, &mut r)
                .unwrap_err();
            assert!(matches!(e, Error::LengthMismatch { .. }));
            assert!(buf == plain[..4096 * 2] && dst.iter().all(|&b| b == 0));
        }
    }
}

// ---------------------------------------------------------------------------
// The property: no plaintext in a page reported encrypted; a page reported
// failed is its input.

/// What the property runs: a batch of pages with random kinds, `page_used`
/// and key versions, a provider that fails for some versions or after some
/// calls, and one of the page-layer calls.
#[derive(Clone, Debug)]
struct Case {
    block_size: u32,
    transactional: bool,
    index: bool,
    mode: Mode,
    /// (seed, `page_used` fraction, version, encrypted first, unwritten)
    pages: Vec<(u64, u16, u32, bool, bool)>,
    latest: Option<u32>,
    fail_after: usize,
    fails: Vec<u32>,
    call: u8,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(1024u32), Just(4096), Just(8192)],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(Mode::Cbc), Just(Mode::Ctr)],
        proptest::collection::vec(
            (
                any::<u64>(),
                any::<u16>(),
                prop_oneof![Just(0u32), Just(u32::MAX), 1u32..6, any::<u32>()],
                any::<bool>(),
                prop::bool::weighted(0.1),
            ),
            1..24,
        ),
        prop_oneof![Just(None), Just(Some(0)), (1u32..6).prop_map(Some)],
        prop_oneof![Just(usize::MAX), 0usize..12],
        proptest::collection::vec(1u32..6, 0..3),
        0u8..8,
    )
        .prop_map(
            |(block_size, transactional, index, mode, pages, latest, fail_after, fails, call)| {
                Case {
                    block_size,
                    transactional,
                    index,
                    mode,
                    pages,
                    latest,
                    fail_after,
                    fails,
                    call,
                }
            },
        )
}

/// Builds the batch: plaintext pages (some encrypted first with their
/// version and a provider that works, some unwritten), and their inputs.
fn build(case: &Case, g: &TableGeometry, file: PageFile) -> (Vec<u8>, Vec<Option<u32>>) {
    let bs = g.block_size as usize;
    let writer = cipher(*g, case.mode, Backend::Soft, Arc::new(Provider::new(1)));
    let mut pool = Vec::new();
    let mut versions = Vec::new();
    for (i, &(seed, used, version, encrypt, unwritten)) in case.pages.iter().enumerate() {
        let kh = g.index_header_len();
        // Any `page_used`, valid ones most of the time.
        let used = if used % 8 == 0 {
            usize::from(used)
        } else {
            kh + usize::from(used) % (bs - 4 - kh)
        };
        let mut page = plain_page(g, file, seed, used);
        if unwritten {
            page.fill(0);
        }
        let mut stamped = None;
        if encrypt
            && !unwritten
            && writer
                .encrypt_page_with(file, i as u32 + 1, &mut page, WriteOptions::exact(version))
                .is_ok()
        {
            stamped = Some(version);
        }
        pool.extend_from_slice(&page);
        versions.push(stamped);
    }
    (pool, versions)
}

/// One result slot per page for the calls that fill a caller's slice,
/// each holding an error no call returns: a slot a call skips stays
/// visibly unwritten, where `Ok(PageStatus::Unwritten)` would pass for the
/// status of an all-zero page.
fn unwritten(pages: usize) -> Vec<Result<PageStatus, Error>> {
    (0..pages)
        .map(|_| Err(Error::UnknownMode(NEVER_WRITTEN.into())))
        .collect()
}

const NEVER_WRITTEN: &str = "result slot never written";

/// Whether a call left `result` as [`unwritten`] made it.
fn never_written(result: &Result<PageStatus, Error>) -> bool {
    matches!(result, Err(Error::UnknownMode(m)) if m == NEVER_WRITTEN)
}

fn page_refs(buf: &mut [u8], bs: usize) -> Vec<PageRef<'_>> {
    buf.chunks_exact_mut(bs)
        .enumerate()
        .map(|(i, data)| PageRef {
            number: i as u32 + 1,
            data,
        })
        .collect()
}

fn run_case(case: &Case, backend: Backend) -> Result<(), TestCaseError> {
    let g = geometry(case.block_size, case.transactional);
    let bs = g.block_size as usize;
    let file = if case.index {
        PageFile::Index
    } else {
        PageFile::Data
    };
    let (input, _) = build(case, &g, file);
    let pages = input.len() / bs;
    let provider = Arc::new(Provider {
        latest: case.latest,
        calls: AtomicUsize::new(0),
        fail_after: case.fail_after,
        fails: case.fails.clone(),
    });
    let c = cipher(g, case.mode, backend, provider);
    let mut results: Vec<Result<PageStatus, Error>> = unwritten(pages);
    let mut buf = input.clone();
    let mut dst = vec![0xa5u8; input.len()];
    let out_of_place = matches!(case.call, 1 | 3 | 5);
    let encrypting = case.call < 4 || case.call == 7;
    let refs = |buf| page_refs(buf, bs);
    let options = WriteOptions::new();
    match case.call {
        0 => results = c.encrypt_pages(file, &mut refs(&mut buf)),
        1 => c
            .encrypt_contiguous_to(file, 1, &input, &mut dst, options, &mut results)
            .unwrap(),
        2 => c
            .encrypt_contiguous(file, 1, &mut buf, options, &mut results)
            .unwrap(),
        3 => {
            for (i, (s, d)) in input.chunks(bs).zip(dst.chunks_mut(bs)).enumerate() {
                results[i] = c.encrypt_page_to(file, i as u32 + 1, s, d);
            }
        }
        4 => results = c.decrypt_pages(file, &mut refs(&mut buf)),
        5 => c
            .decrypt_contiguous_to(file, 1, &input, &mut dst, &mut results)
            .unwrap(),
        6 => c
            .decrypt_contiguous(file, 1, &mut buf, &mut results)
            .unwrap(),
        _ => {
            // Rekey from a cipher that can read to this one.
            let from = cipher(g, case.mode, backend, Arc::new(Provider::new(1)));
            results = rekey_pages(&from, &c, file, &mut refs(&mut buf));
        }
    }
    if out_of_place {
        prop_assert!(buf == input, "src modified");
    }
    let output = if out_of_place { &dst } else { &buf };
    prop_assert_eq!(results.len(), pages);
    for (i, result) in results.iter().enumerate() {
        prop_assert!(!never_written(result), "page {}: no result", i + 1);
        let before = &input[i * bs..][..bs];
        let after = &output[i * bs..][..bs];
        let number = i as u32 + 1;
        match result {
            Err(_) if out_of_place && encrypting => {
                prop_assert!(
                    after.iter().all(|&b| b == 0xa5),
                    "page {}: dst written",
                    number
                );
            }
            Err(_) => prop_assert!(after == before, "page {}: failed but changed", number),
            Ok(PageStatus::Encrypted { key_version }) if encrypting => {
                // What went in: the input's plaintext (decrypted first for
                // a rekey), with the LSN the write chose.
                let mut plain = before.to_vec();
                if case.call == 7 {
                    let from = cipher(g, case.mode, Backend::Soft, Arc::new(Provider::new(1)));
                    from.decrypt_page(file, number, &mut plain).unwrap();
                    prop_assert!(after[..7] == before[..7], "rekey changed the LSN");
                }
                plain[..7].copy_from_slice(&after[..7]);
                let want = reference(&g, case.mode, file, number, &plain, *key_version);
                prop_assert!(after == &want[..], "page {}: not the reference", number);
            }
            Ok(PageStatus::Encrypted { .. }) => {
                // Decrypted: re-encrypting with the stamped version and the
                // same LSN gives the input back, up to the gap.
                let version = layout(&g, file, number, before)
                    .try_key_version(before)
                    .unwrap();
                let want = reference(&g, case.mode, file, number, after, version);
                let mut disk = before.to_vec();
                let l = layout(&g, file, number, before);
                disk[l.body.end..bs - 4].fill(0);
                prop_assert!(
                    want == disk,
                    "page {}: decrypted to the wrong bytes",
                    number
                );
            }
            Ok(_) => prop_assert!(after == before, "page {}: skipped but changed", number),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn no_plaintext_in_encrypted_pages_and_failed_pages_unchanged(case in case()) {
        for &backend in Backend::supported() {
            run_case(&case, backend)?;
        }
    }
}

/// `try_page_lsn` reads `lsn_korr` (3-byte log number, 4-byte offset, both
/// little-endian) from every page of the transactional fixtures, and says
/// `None` for a buffer too short to hold one instead of LSN 0, which is a
/// valid LSN and was what `page_lsn` returned for it.
#[test]
fn page_lsn_of_a_short_buffer_is_none_not_zero() {
    let mut nonzero = 0;
    for case in ["cbc_trans_256", "ctr_trans_256"] {
        let (header, _, mai, mad) = fixture(case);
        let bs = header.geometry.block_size as usize;
        for page in mai.chunks_exact(bs).chain(mad.chunks_exact(bs)) {
            let b = &page[..7];
            let by_hand = (u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16) << 32
                | u64::from(u32::from_le_bytes([b[3], b[4], b[5], b[6]]));
            nonzero += usize::from(by_hand != 0);
            assert_eq!(try_page_lsn(page), Some(by_hand));
            assert_eq!(try_page_lsn(b), Some(by_hand));
            for len in 0..7 {
                assert_eq!(try_page_lsn(&page[..len]), None, "{len} bytes");
            }
        }
    }
    assert!(nonzero > 0, "the fixtures hold pages with an LSN");
    #[allow(deprecated)]
    let old = mariadb_aria_crypt::aria::page_lsn(&[0xff; 6]);
    assert_eq!(old, 0, "the deprecated shim keeps its old answer");
}
