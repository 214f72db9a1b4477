//! The page layer's hot path allocates nothing (issue 12 §4): once the
//! table's keys are cached, a contiguous batch (in place or out of place,
//! up to 8 key versions on read) and a single-page call make no heap
//! allocation, counted by an instrumented global allocator. One test only:
//! the counter is process-wide.

use std::alloc::System;
use std::sync::Arc;

use mariadb_aria_crypt::Error;
use mariadb_aria_crypt::aria::{
    CryptData, PageFile, PageStatus, TableCipher, TableGeometry, WriteOptions,
};
use mariadb_aria_crypt::kernel::{Backend, Mode};
use mariadb_aria_crypt::keys::{KeyMaterial, VersionedKeyProvider};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BS: usize = 4096;
/// More than one kernel chunk of pages.
const PAGES: usize = 150;

fn plain_pages(file: PageFile, kh: usize) -> Vec<u8> {
    let mut pool = vec![0u8; PAGES * BS];
    for (n, page) in pool.chunks_exact_mut(BS).enumerate() {
        for (i, b) in page.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(13) ^ n as u8;
        }
        page[0] |= 1;
        match file {
            PageFile::Data => {
                page[7] = 1;
                page[12..16].fill(0);
            }
            PageFile::Index => {
                let used = (kh + 100 + n * 7) as u16;
                page[kh - 2..kh].copy_from_slice(&used.to_be_bytes());
                page[kh - 8..kh - 4].fill(0);
            }
        }
    }
    pool
}

/// Runs `f` and returns how many allocations it made.
fn allocations(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    region.change().allocations
}

#[test]
fn hot_paths_allocate_nothing() {
    let mut keys = VersionedKeyProvider::new();
    for version in 1..=8 {
        keys.insert(1, version, KeyMaterial::new(&[version as u8; 32]).unwrap())
            .unwrap();
    }
    let keys = Arc::new(keys);
    for &backend in Backend::supported() {
        for mode in [Mode::Cbc, Mode::Ctr] {
            for transactional in [true, false] {
                let geometry = TableGeometry {
                    block_size: BS as u32,
                    keystart: BS as u64,
                    transactional,
                };
                let crypt = CryptData {
                    space: 99,
                    scheme_iv: [4; 16],
                };
                let cipher = TableCipher::new(geometry, crypt, 1, mode, keys.clone())
                    .with_backend(backend)
                    .unwrap();
                for file in [PageFile::Data, PageFile::Index] {
                    let plain = plain_pages(file, geometry.index_header_len());
                    let mut results: Vec<Result<PageStatus, Error>> =
                        (0..PAGES).map(|_| Ok(PageStatus::Unwritten)).collect();
                    // Pages of all 8 versions, which also fills the key
                    // cache (deriving a key allocates).
                    let mut mixed = plain.clone();
                    for (n, page) in mixed.chunks_exact_mut(BS).enumerate() {
                        let options = WriteOptions::exact(n as u32 % 8 + 1);
                        cipher
                            .encrypt_page_with(file, n as u32 + 1, page, options)
                            .unwrap();
                    }
                    let mut buf = plain.clone();
                    let mut out = vec![0u8; plain.len()];
                    let mut back = vec![0u8; plain.len()];
                    let label = format!("{backend} {mode} {file} transactional {transactional}");

                    let n = allocations(|| {
                        cipher
                            .encrypt_contiguous(
                                file,
                                1,
                                &mut buf,
                                WriteOptions::new(),
                                &mut results,
                            )
                            .unwrap();
                    });
                    assert!(results.iter().all(Result::is_ok));
                    assert_eq!(n, 0, "{label}: encrypt_contiguous");

                    let n = allocations(|| {
                        cipher
                            .encrypt_contiguous_to(
                                file,
                                1,
                                &plain,
                                &mut out,
                                WriteOptions::new(),
                                &mut results,
                            )
                            .unwrap();
                    });
                    assert!(results.iter().all(Result::is_ok));
                    assert_eq!(n, 0, "{label}: encrypt_contiguous_to");

                    let n = allocations(|| {
                        cipher
                            .decrypt_contiguous_to(file, 1, &mixed, &mut back, &mut results)
                            .unwrap();
                    });
                    assert!(results.iter().all(Result::is_ok));
                    assert_eq!(n, 0, "{label}: decrypt_contiguous_to, 8 versions");

                    let n = allocations(|| {
                        cipher
                            .decrypt_contiguous(file, 1, &mut mixed, &mut results)
                            .unwrap();
                    });
                    assert!(results.iter().all(Result::is_ok));
                    assert_eq!(n, 0, "{label}: decrypt_contiguous, 8 versions");

                    let (one, rest) = out.split_at_mut(BS);
                    let n = allocations(|| {
                        cipher.decrypt_page(file, 1, &mut buf[..BS]).unwrap();
                        cipher.encrypt_page(file, 1, &mut buf[..BS]).unwrap();
                        cipher.encrypt_page_to(file, 1, &plain[..BS], one).unwrap();
                        cipher
                            .decrypt_page_to(file, 1, one, &mut rest[..BS])
                            .unwrap();
                    });
                    assert_eq!(n, 0, "{label}: single pages");

                    // The counter counts: the `Vec`-returning form allocates.
                    let n = allocations(|| {
                        let pages = &mut [mariadb_aria_crypt::aria::PageRef {
                            number: 1,
                            data: &mut buf[..BS],
                        }];
                        cipher.decrypt_pages(file, pages).pop().unwrap().unwrap();
                    });
                    assert!(n > 0, "{label}: the counter saw nothing");
                }
            }
        }
    }
}
