//! Tables written by a real MariaDB 10.11 server (`tests/fixtures/`, made by
//! `scripts/mariadb-fixtures.sh`): every page decrypts with a verified
//! checksum, the rows the server stored are in the plaintext and not in the
//! files, and re-encrypting every page gives back the server's exact bytes.
//! On every AES backend this CPU supports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mariadb_aria_crypt::aria::{
    PageFile, PageKind, PageRef, PageStatus, RowFormat, TableCipher, TableHeader, WriteOptions,
};
use mariadb_aria_crypt::kernel::{Backend, Mode};
use mariadb_aria_crypt::keys::{DebugKeyProvider, FileKeyProvider, KeyProvider};
use mariadb_aria_crypt::{Error, PageFault};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Case {
    name: String,
    dir: PathBuf,
    json: Value,
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| {
            let dir = e.unwrap().path();
            let text = std::fs::read_to_string(dir.join("case.json")).ok()?;
            Some(Case {
                name: dir.file_name()?.to_string_lossy().into_owned(),
                json: serde_json::from_str(&text).unwrap(),
                dir,
            })
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        cases.len() >= 16,
        "expected the committed fixtures, found {}",
        cases.len()
    );
    // Without the feature a `Salted__` key file is refused (the library's
    // own tests check that); the tables under it cannot be opened.
    cases.retain(|case| {
        let salted = case.json["key_file"].as_str() == Some("keys.enc");
        if salted && !cfg!(feature = "salted-key-files") {
            eprintln!(
                "skipped: {}: its key file is Salted__ and this build lacks the salted-key-files feature",
                case.name
            );
            return false;
        }
        true
    });
    cases
}

fn provider(case: &Case) -> Arc<dyn KeyProvider> {
    if let Some(n) = case.json["debug_key_management"].as_u64() {
        return Arc::new(DebugKeyProvider::new(n as u32).unwrap());
    }
    let file = case.dir.join(case.json["key_file"].as_str().unwrap());
    let filekey = case.json["key_file_key"]
        .as_str()
        .map(|k| match k.strip_prefix("FILE:") {
            Some(path) => format!("FILE:{}", case.dir.join(path).display()),
            None => k.to_string(),
        });
    Arc::new(FileKeyProvider::from_path(&file, filekey.as_deref()).unwrap())
}

fn mode(case: &Case) -> Mode {
    case.json["algorithm"].as_str().unwrap().parse().unwrap()
}

/// The encrypted tables of a case (the datadir case also has plain ones).
fn tables(case: &Case) -> Vec<PathBuf> {
    case.json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| case.dir.join(t.as_str().unwrap()))
        .filter(|t| {
            TableHeader::read(t.with_extension("MAI"))
                .unwrap()
                .is_encrypted()
        })
        .collect()
}

#[derive(Default, Debug)]
struct Counts {
    kinds: BTreeMap<&'static str, usize>,
    versions: BTreeMap<u32, usize>,
}

/// Decrypts every page of one file one by one and in one batch, checks
/// both agree and that re-encryption restores the file; returns the
/// plaintext.
fn check_file(cipher: &TableCipher, file: PageFile, bytes: &[u8], counts: &mut Counts) -> Vec<u8> {
    let bs = cipher.geometry().block_size as usize;
    assert_eq!(bytes.len() % bs, 0, "file is a whole number of pages");
    let mut plain = bytes.to_vec();
    for (n, page) in plain.chunks_exact_mut(bs).enumerate() {
        let kind = cipher.geometry().classify(file, n as u32, page).unwrap();
        let status = cipher
            .decrypt_page(file, n as u32, page)
            .unwrap_or_else(|e| panic!("{file} page {n}: {e}"));
        let name = match (&kind, status) {
            (PageKind::Encrypted(layout), PageStatus::Encrypted { key_version }) => {
                *counts.versions.entry(key_version).or_default() += 1;
                layout.kind.name()
            }
            (PageKind::Header, PageStatus::Header) => "header",
            (PageKind::Bitmap, PageStatus::Bitmap) => "bitmap",
            (PageKind::Unwritten, PageStatus::Unwritten) => "unwritten",
            other => panic!("{file} page {n}: kind and status disagree: {other:?}"),
        };
        *counts.kinds.entry(name).or_default() += 1;
    }

    // The batch path gives the same plaintext.
    let mut batch = bytes.to_vec();
    let mut pages: Vec<PageRef> = batch
        .chunks_exact_mut(bs)
        .enumerate()
        .map(|(n, data)| PageRef {
            number: n as u32,
            data,
        })
        .collect();
    let results = cipher.decrypt_pages(file, &mut pages);
    assert!(
        results.iter().all(Result::is_ok),
        "{file}: batch decryption failed"
    );
    assert!(
        batch == plain,
        "{file}: batch and single-page decryption differ"
    );

    // Re-encrypt with each page's own version and LSN: the server's bytes
    // again, wherever the server defines them. Past an index page's
    // `page_used` the server writes whatever its buffer held; the crate
    // writes zeroes there.
    let mut again = plain.clone();
    for (n, (page, original)) in again
        .chunks_exact_mut(bs)
        .zip(bytes.chunks_exact(bs))
        .enumerate()
    {
        let mut original = original.to_vec();
        if let PageKind::Encrypted(layout) = cipher
            .geometry()
            .classify(file, n as u32, &original)
            .unwrap()
        {
            let version = layout.try_key_version(&original).unwrap();
            original[layout.body.end..bs - 4].fill(0);
            let mut one = [PageRef {
                number: n as u32,
                data: page,
            }];
            cipher.encrypt_pages_with(file, &mut one, WriteOptions::exact(version))[0]
                .as_ref()
                .unwrap();
        }
        assert!(
            *page == original[..],
            "{file} page {n} re-encrypts to different bytes"
        );
    }
    plain
}

/// The text from every occurrence of `ARIA-MARKER-` in `bytes`, sorted, so
/// a marker can be looked up by binary search instead of a scan per marker.
fn marker_sites(bytes: &[u8]) -> Vec<&[u8]> {
    const PREFIX: &[u8] = b"ARIA-MARKER-";
    let mut sites: Vec<&[u8]> = bytes
        .windows(PREFIX.len())
        .enumerate()
        .filter(|(_, w)| *w == PREFIX)
        .map(|(at, _)| &bytes[at..(at + 96).min(bytes.len())])
        .collect();
    sites.sort_unstable();
    sites
}

fn has_marker(sites: &[&[u8]], marker: &str) -> bool {
    let marker = marker.as_bytes();
    let at = sites.partition_point(|site| *site < marker);
    sites.get(at).is_some_and(|site| site.starts_with(marker))
}

#[test]
fn every_page_of_every_fixture_round_trips() {
    for &backend in Backend::supported() {
        for case in cases() {
            let provider = provider(&case);
            for table in tables(&case) {
                let mai = table.with_extension("MAI");
                let header = TableHeader::read(&mai).unwrap();
                assert_eq!(header.row_format, RowFormat::Page);
                assert_eq!(
                    header.geometry.block_size as u64,
                    case.json["block_size"].as_u64().unwrap()
                );
                assert_eq!(
                    header.is_transactional(),
                    case.json["transactional"].as_bool().unwrap()
                );
                assert_eq!(
                    header.is_temporary(),
                    case.json["temporary"].as_bool().unwrap()
                );
                let cipher = TableCipher::for_table(&header, mode(&case), provider.clone())
                    .unwrap()
                    .with_backend(backend)
                    .unwrap();
                assert_eq!(
                    u64::from(cipher.key_id()),
                    case.json["key_id"].as_u64().unwrap(),
                    "{}: key id from the policy",
                    case.name
                );
                let mut counts = Counts::default();
                let index = std::fs::read(&mai).unwrap();
                check_file(&cipher, PageFile::Index, &index, &mut counts);
                let data = std::fs::read(table.with_extension("MAD")).unwrap();
                let plain = check_file(&cipher, PageFile::Data, &data, &mut counts);

                let rows = std::fs::read_to_string(table.with_extension("rows")).unwrap();
                let markers: Vec<&str> = rows.lines().filter(|l| !l.is_empty()).collect();
                assert!(!markers.is_empty(), "{}: no expected rows", case.name);
                let in_plain = marker_sites(&plain);
                let in_file = marker_sites(&data);
                for marker in &markers {
                    assert!(
                        has_marker(&in_plain, marker),
                        "{}: {marker} not in the plaintext",
                        case.name
                    );
                    assert!(
                        !has_marker(&in_file, marker),
                        "{}: {marker} stored in clear",
                        case.name
                    );
                }
                let expected: BTreeSet<u32> = case.json["expected_key_versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect();
                let seen: BTreeSet<u32> = counts.versions.keys().copied().collect();
                assert_eq!(seen, expected, "{}: key versions in the pages", case.name);
                if backend == Backend::active() {
                    eprintln!(
                        "{:<20} {:<6} {} pages {:?} versions {:?} ({} markers)",
                        case.name,
                        table.file_name().unwrap().to_string_lossy(),
                        counts.kinds.values().sum::<usize>(),
                        counts.kinds,
                        counts.versions,
                        markers.len()
                    );
                }
            }
        }
    }
}

/// Decrypting with the wrong key id or the wrong algorithm fails every
/// encrypted page with a checksum error, and leaves each page as it was.
#[test]
fn wrong_key_id_or_algorithm_fails_and_changes_nothing() {
    for case in cases() {
        let provider = provider(&case);
        let Some(table) = tables(&case).into_iter().next() else {
            continue;
        };
        let header = TableHeader::read(table.with_extension("MAI")).unwrap();
        let right = TableCipher::for_table(&header, mode(&case), provider.clone()).unwrap();
        let other_mode = if mode(&case) == Mode::Cbc {
            Mode::Ctr
        } else {
            Mode::Cbc
        };
        let crypt = header.crypt.unwrap();
        let mut wrong = vec![TableCipher::new(
            header.geometry,
            crypt,
            right.key_id(),
            other_mode,
            provider.clone(),
        )];
        for other_id in [1, 2, 7] {
            if other_id != right.key_id() && provider.latest_version(other_id).is_some() {
                wrong.push(TableCipher::new(
                    header.geometry,
                    crypt,
                    other_id,
                    mode(&case),
                    provider.clone(),
                ));
            }
        }
        let data = std::fs::read(table.with_extension("MAD")).unwrap();
        let bs = header.geometry.block_size as usize;
        for cipher in &wrong {
            let mut failed = 0;
            for (n, page) in data.chunks_exact(bs).enumerate() {
                let mut copy = page.to_vec();
                match cipher.decrypt_page(PageFile::Data, n as u32, &mut copy) {
                    Err(Error::Page {
                        fault: PageFault::Checksum { .. },
                        page: p,
                        ..
                    }) => {
                        assert_eq!(p as usize, n);
                        assert!(copy == page, "{}: failed page {n} was modified", case.name);
                        failed += 1;
                    }
                    Ok(PageStatus::Encrypted { .. }) => {
                        panic!("{}: page {n} passed with {cipher:?}", case.name)
                    }
                    Ok(_) => {}
                    Err(e) => panic!("{}: page {n}: unexpected {e}", case.name),
                }
            }
            assert!(failed > 0, "{}: no encrypted page checked", case.name);
        }
    }
}
