//! Whole-page work as an engine calls it, beside the bare kernel on the same
//! bytes: checksum + encrypt + stamp (the server's write hook) and
//! decrypt + verify (its read hook), for one 8 KiB head page and for
//! batches of 8 and 64 pages (a small and a large buffer-pool flush),
//! AES-CBC on the active backend.
//!
//! `cargo bench --bench aria` prints criterion's report, the AES limit of
//! this core, then a table with GB/s, each row's speed relative to the bare
//! kernel (batch CBC encryption for "encrypt", CBC decryption page by page
//! for "decrypt") and its share of the active backend's AES limit (of
//! whole 8 KiB pages, of which AES covers 8172 bytes; one page's
//! encryption: of the single-chain latency bound; eight pages' encryption:
//! of eight chains, where that is below the limit). Between the two, the
//! bare kernel asked for the checksum's CRC ("kernel_crc",
//! "kernel_decrypt_crc") splits what whole pages cost beyond the kernel
//! into the CRC and the work per page. Last, threads reading one page a
//! call through one shared table, against a table each.

mod support;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput};
use mariadb_aria_crypt::aria::{CryptData, PageFile, PageRef, TableCipher, TableGeometry};
use mariadb_aria_crypt::kernel::{Backend, Job, Mode};
use mariadb_aria_crypt::keys::{KeyMaterial, VersionedKeyProvider};
use support::{Bound, Limits, Row};

const BS: usize = 8192;
const BATCH: usize = 64;
const KERNEL: &str = "kernel";
const KERNEL_DECRYPT: &str = "kernel_decrypt";
/// The bare kernel asked for the checksum's CRC as whole pages ask for it
/// (the header as its prefix), so that the rows split what whole pages
/// cost beyond the kernel into the CRC and the per-page work.
const KERNEL_CRC: &str = "kernel_crc";
const KERNEL_DECRYPT_CRC: &str = "kernel_decrypt_crc";

fn cipher() -> TableCipher {
    let mut keys = VersionedKeyProvider::new();
    keys.insert(1, 1, KeyMaterial::new(&[0x11; 32]).unwrap())
        .unwrap();
    let geometry = TableGeometry {
        block_size: BS as u32,
        keystart: BS as u64,
        transactional: true,
    };
    let crypt = CryptData {
        space: 0x1234_5678,
        scheme_iv: [0x5e; 16],
    };
    TableCipher::new(geometry, crypt, 1, Mode::Cbc, Arc::new(keys))
}

/// Head pages (type 1) with a plausible header and arbitrary row bytes.
fn head_pages(n: usize) -> Vec<u8> {
    let mut pages = vec![0u8; n * BS];
    for (i, page) in pages.chunks_exact_mut(BS).enumerate() {
        page[..7].copy_from_slice(&[1, 0, 0, (i as u8).wrapping_add(3), 0xb1, 6, 0]);
        page[7] = 1;
        for (j, b) in page[16..BS - 4].iter_mut().enumerate() {
            *b = (j as u8).wrapping_mul(31) ^ i as u8;
        }
    }
    pages
}

fn refs(pool: &mut [u8]) -> Vec<PageRef<'_>> {
    pool.chunks_exact_mut(BS)
        .enumerate()
        // Data page 0 is a bitmap page; start at 1.
        .map(|(i, data)| PageRef {
            number: i as u32 + 1,
            data,
        })
        .collect()
}

fn bench(c: &mut Criterion, rows: &mut Vec<Row>) {
    let cipher = cipher();
    let local = cipher.local_key(1).unwrap();
    for pages in [1, 8, BATCH] {
        let name = format!("pages{pages}");
        let mut group = c.benchmark_group(&name);
        group.throughput(Throughput::Bytes((pages * BS) as u64));
        let plain = head_pages(pages);

        // The bare kernel: CBC over the same page bodies, nothing else.
        let mut pool = plain.clone();
        group.bench_function(KERNEL, |b| {
            b.iter(|| {
                let mut jobs: Vec<Job> = black_box(&mut pool)
                    .chunks_exact_mut(BS)
                    .map(|page| Job::in_place([7; 16], &mut page[16..BS - 4]))
                    .collect();
                local.encrypt_batch(Mode::Cbc, &mut jobs);
            })
        });
        group.bench_function(KERNEL_CRC, |b| {
            b.iter(|| {
                let mut jobs: Vec<Job> = black_box(&mut pool)
                    .chunks_exact_mut(BS)
                    .map(|page| {
                        let (header, rest) = page.split_at_mut(16);
                        Job::in_place([7; 16], &mut rest[..BS - 20]).with_prefixed_crc(!0, header)
                    })
                    .collect();
                local.encrypt_batch(Mode::Cbc, &mut jobs);
                jobs.iter().map(Job::crc).fold(0, |a, c| a ^ c.unwrap_or(0))
            })
        });
        // And bare CBC decryption of the same bodies, page by page, the
        // baseline of decrypt + verify (decrypting any bytes is the same
        // work, so this too runs in place).
        group.bench_function(KERNEL_DECRYPT, |b| {
            b.iter(|| {
                for page in black_box(&mut pool).chunks_exact_mut(BS) {
                    local.decrypt(Mode::Cbc, &[7; 16], &mut page[16..BS - 4]);
                }
            })
        });

        group.bench_function(KERNEL_DECRYPT_CRC, |b| {
            b.iter(|| {
                let mut crcs = 0;
                for page in black_box(&mut pool).chunks_exact_mut(BS) {
                    let (header, rest) = page.split_at_mut(16);
                    let body = &mut rest[..BS - 20];
                    let mut job = [Job::in_place([7; 16], body).with_output_crc(!0, header)];
                    local.decrypt_batch(Mode::Cbc, &mut job);
                    crcs ^= job[0].crc().unwrap_or(0);
                }
                crcs
            })
        });

        // Encryption refuses a page whose key-version field is set (one
        // already encrypted), so every iteration gets fresh plaintext
        // pages, copied outside the timing, as decryption gets fresh
        // encrypted ones. Both are checked to succeed first: a refusal is
        // far cheaper than the work.
        let mut encrypted = plain.clone();
        let results = cipher.encrypt_pages(PageFile::Data, &mut refs(&mut encrypted));
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let mut check = encrypted.clone();
        let results = cipher.decrypt_pages(PageFile::Data, &mut refs(&mut check));
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // The rows come back (the header and checksum carry what the
        // write stamped).
        let body = |pool: &[u8]| -> Vec<u8> {
            pool.chunks_exact(BS)
                .flat_map(|p| p[16..BS - 4].to_vec())
                .collect()
        };
        assert!(body(&check) == body(&plain), "decryption gave other rows");
        group.bench_function("encrypt", |b| {
            b.iter_batched_ref(
                || plain.clone(),
                |pool| {
                    let mut pages = refs(pool);
                    cipher.encrypt_pages(PageFile::Data, &mut pages)
                },
                criterion::BatchSize::LargeInput,
            )
        });

        group.bench_function("decrypt", |b| {
            b.iter_batched_ref(
                || encrypted.clone(),
                |pool| {
                    let mut pages = refs(pool);
                    cipher.decrypt_pages(PageFile::Data, &mut pages)
                },
                criterion::BatchSize::LargeInput,
            )
        });
        pool.clear();
        group.finish();
        // One page is one CBC chain to encrypt; decryption is parallel.
        // Whole pages also checksum what they cipher: their bound is the
        // limit with CRC folds, the bare kernel's the AES limit.
        let encrypt_bound: fn(&str) -> Bound = if pages == 1 {
            |_| Bound::Latency
        } else {
            |id| {
                if id == KERNEL {
                    Bound::Limit
                } else {
                    Bound::WithCrc
                }
            }
        };
        rows.push(Row {
            group: name.clone(),
            bytes: (pages * BS) as u64,
            baseline: KERNEL,
            ids: vec![KERNEL.into(), KERNEL_CRC.into(), "encrypt".into()],
            bound: encrypt_bound,
            chains: pages,
            backend: Some(Backend::active()),
        });
        rows.push(Row {
            group: name,
            bytes: (pages * BS) as u64,
            baseline: KERNEL_DECRYPT,
            ids: vec![
                KERNEL_DECRYPT.into(),
                KERNEL_DECRYPT_CRC.into(),
                "decrypt".into(),
            ],
            bound: |id| {
                if id == KERNEL_DECRYPT {
                    Bound::Limit
                } else {
                    Bound::WithCrc
                }
            },
            chains: usize::MAX,
            backend: Some(Backend::active()),
        });
    }
}

/// Threads reading one page a call (the server's read hook on several
/// connections), through one shared table or through a table each: what
/// sharing costs (the key cache's lock and counters, written by every call
/// of every thread, used to cost two threads 1.6 times the time a page).
fn shared_table(c: &mut Criterion, rows: &mut Vec<Row>) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    if threads < 2 {
        return;
    }
    let name = format!("read_one_page_{threads}_threads");
    let mut group = c.benchmark_group(&name);
    group.throughput(Throughput::Bytes((threads * BS) as u64));
    let mut encrypted = head_pages(1);
    let writer = cipher();
    writer
        .encrypt_page(PageFile::Data, 1, &mut encrypted)
        .unwrap();
    // `iters` pages on every thread, in parallel; the wall time.
    let run = |tables: &[&TableCipher], iters: u64| {
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            for &table in tables {
                let encrypted = &encrypted;
                scope.spawn(move || {
                    let mut page = encrypted.clone();
                    for _ in 0..iters {
                        page.copy_from_slice(encrypted);
                        let read = table.decrypt_page(PageFile::Data, 1, black_box(&mut page));
                        assert!(read.is_ok(), "{read:?}");
                    }
                });
            }
        });
        start.elapsed()
    };
    let own: Vec<TableCipher> = (0..threads).map(|_| cipher()).collect();
    group.bench_function("own", |b| {
        b.iter_custom(|iters| run(&own.iter().collect::<Vec<_>>(), iters))
    });
    let shared = cipher();
    group.bench_function("shared", |b| {
        b.iter_custom(|iters| run(&vec![&shared; threads], iters))
    });
    group.finish();
    rows.push(Row {
        group: name,
        bytes: (threads * BS) as u64,
        baseline: "own",
        ids: vec!["own".into(), "shared".into()],
        bound: |_| Bound::None,
        chains: usize::MAX,
        backend: Some(Backend::active()),
    });
}

fn main() {
    let mut c = support::criterion();
    let mut rows = Vec::new();
    let limits = Limits::measure();
    bench(&mut c, &mut rows);
    shared_table(&mut c, &mut rows);
    c.final_summary();
    let limits = limits.max(Limits::measure());
    support::print_summary(
        &format!(
            "Whole 8 KiB pages (AES-CBC, backend {}) vs the bare kernel (batch encryption; decryption)",
            Backend::active()
        ),
        &rows,
        &limits,
    );
}
