//! The kernel beside RustCrypto (`aes` 0.9 + `cbc`/`ctr`) on the same data in
//! the same run, for every backend this CPU supports: one 8172-byte Aria
//! page body (CBC encrypt, CBC decrypt, CTR), CBC encryption of batches of
//! 8-64 pages at an 8192-byte stride as in a buffer pool (and 64 at 8208
//! bytes, frames with a little metadata, a stride that defeats a fixed lane
//! stagger; and 64 encrypted from the pool into a second one laid out
//! alike, a flush into a write buffer), and one block.
//!
//! `cargo bench --bench kernel` prints criterion's report, the AES limit of
//! this core for every backend (`kernel::aes_limit`, measured before and
//! after, the higher figure kept), then a table of medians, GB/s, the
//! ratio to RustCrypto and each figure's share of its backend's limit
//! (one-page CBC encryption: of the single-chain latency bound; a batch of
//! fewer pages than the limit has chains: of that many chains; the
//! "rustcrypto" rows: of the software backend's). Build with
//! `RUSTFLAGS='--cfg aes_backend="soft"'` to compare the software backend
//! with RustCrypto's software path.

mod support;

use std::hint::black_box;

use aes::cipher::{
    BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit, StreamCipher,
    StreamCipherCoreWrapper, array::Array,
};
use criterion::{BenchmarkId, Criterion, Throughput};
use mariadb_aria_crypt::kernel::{Aes, Backend, Job, Mode};
use support::{Bound, Limits, Row};

/// An 8 KiB data page's encrypted body: bytes [16, 8188).
const PAGE_BODY: usize = 8172;
/// Buffer-pool stride between pages.
const STRIDE: usize = 8192;
/// Batches: pages, the stride between them, and whether they are
/// encrypted from the pool into a second pool laid out alike (a
/// buffer-pool flush into a write buffer) rather than in place.
const BATCHES: [(usize, usize, bool); 6] = [
    (8, STRIDE, false),
    (16, STRIDE, false),
    (32, STRIDE, false),
    (64, STRIDE, false),
    (64, STRIDE + 16, false),
    (64, STRIDE, true),
];
const KEY: [u8; 16] = [0x42; 16];
const BASELINE: &str = "rustcrypto";

type Blocks = [Array<u8, aes::cipher::consts::U16>];

fn blocks(data: &mut [u8]) -> &mut Blocks {
    Array::cast_slice_from_core_mut(data.as_chunks_mut::<16>().0)
}

/// RustCrypto CBC with MariaDB's tail rule, the same work as ours.
fn rustcrypto_cbc_encrypt(aes: &aes::Aes128, iv: &[u8; 16], data: &mut [u8]) {
    let full = data.len() / 16 * 16;
    cbc::Encryptor::<aes::Aes128>::inner_iv_init(aes.clone(), &(*iv).into())
        .encrypt_blocks(blocks(&mut data[..full]));
    rustcrypto_tail(aes, iv, &mut data[full..]);
}

/// [`rustcrypto_cbc_encrypt`] from `src` into `dst` (as long).
fn rustcrypto_cbc_encrypt_to(aes: &aes::Aes128, iv: &[u8; 16], src: &[u8], dst: &mut [u8]) {
    let full = src.len() / 16 * 16;
    let src_blocks = Array::cast_slice_from_core(src[..full].as_chunks::<16>().0);
    cbc::Encryptor::<aes::Aes128>::inner_iv_init(aes.clone(), &(*iv).into())
        .encrypt_blocks_b2b(src_blocks, blocks(&mut dst[..full]))
        .expect("equal lengths");
    dst[full..].copy_from_slice(&src[full..]);
    rustcrypto_tail(aes, iv, &mut dst[full..]);
}

fn rustcrypto_cbc_decrypt(aes: &aes::Aes128, iv: &[u8; 16], data: &mut [u8]) {
    let full = data.len() / 16 * 16;
    cbc::Decryptor::<aes::Aes128>::inner_iv_init(aes.clone(), &(*iv).into())
        .decrypt_blocks(blocks(&mut data[..full]));
    rustcrypto_tail(aes, iv, &mut data[full..]);
}

fn rustcrypto_tail(aes: &aes::Aes128, iv: &[u8; 16], tail: &mut [u8]) {
    if !tail.is_empty() {
        let mut mask = Array::from(*iv);
        aes.encrypt_block(&mut mask);
        tail.iter_mut().zip(mask.iter()).for_each(|(b, m)| *b ^= m);
    }
}

fn page_iv(n: usize) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    iv[4..8].copy_from_slice(&(n as u32).to_le_bytes());
    iv[8..15].copy_from_slice(&[0x5e, 0x84, 0x63, 0xd4, 0xa8, 0xa2, 0x75]);
    iv
}

fn ours(backend: Backend) -> Aes {
    Aes::with_backend(&KEY, backend).expect("supported backend")
}

fn single_page(c: &mut Criterion, rows: &mut Vec<Row>) {
    let rc = aes::Aes128::new(&KEY.into());
    let iv = page_iv(1);
    let ops: [(&str, Mode, bool); 3] = [
        ("page_cbc_encrypt", Mode::Cbc, true),
        ("page_cbc_decrypt", Mode::Cbc, false),
        ("page_ctr", Mode::Ctr, true),
    ];
    for (name, mode, encrypt) in ops {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(PAGE_BODY as u64));
        let mut page = vec![0xa5u8; PAGE_BODY];
        group.bench_function(BASELINE, |b| {
            b.iter(|| match (mode, encrypt) {
                (Mode::Cbc, true) => rustcrypto_cbc_encrypt(&rc, &iv, black_box(&mut page)),
                (Mode::Cbc, false) => rustcrypto_cbc_decrypt(&rc, &iv, black_box(&mut page)),
                (Mode::Ctr, _) => {
                    let core = ctr::CtrCore::<aes::Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(
                        rc.clone(),
                        &iv.into(),
                    );
                    StreamCipherCoreWrapper::from_core(core).apply_keystream(black_box(&mut page))
                }
            })
        });
        let mut ids = Vec::new();
        for &backend in Backend::supported() {
            let aes = ours(backend);
            group.bench_function(backend.name(), |b| {
                b.iter(|| {
                    if encrypt {
                        aes.encrypt(mode, &iv, black_box(&mut page));
                    } else {
                        aes.decrypt(mode, &iv, black_box(&mut page));
                    }
                })
            });
            ids.push(backend.name().to_string());
        }
        group.finish();
        rows.push(Row {
            group: name.to_string(),
            bytes: PAGE_BODY as u64,
            baseline: BASELINE,
            ids,
            // A chain: each block waits for the one before.
            bound: if encrypt && mode == Mode::Cbc {
                |_| Bound::Latency
            } else {
                |_| Bound::Limit
            },
            chains: usize::MAX,
            backend: None,
        });
    }
}

/// A pool of `pages` pages, `stride` bytes apart.
fn pool(pages: usize, stride: usize) -> Vec<u8> {
    vec![0x3cu8; pages * stride]
}

/// The page bodies of a pool.
fn bodies(pool: &mut [u8], stride: usize) -> impl Iterator<Item = &mut [u8]> {
    pool.chunks_exact_mut(stride)
        .map(|page| &mut page[16..16 + PAGE_BODY])
}

fn batch_cbc(c: &mut Criterion, rows: &mut Vec<Row>) {
    let rc = aes::Aes128::new(&KEY.into());
    for (pages, stride, to) in BATCHES {
        let name = match (stride == STRIDE, to) {
            (true, false) => format!("batch{pages}_cbc_encrypt"),
            (true, true) => format!("batch{pages}_cbc_encrypt_to"),
            (false, _) => format!("batch{pages}_cbc_encrypt_stride{stride}"),
        };
        let mut group = c.benchmark_group(&name);
        group.throughput(Throughput::Bytes((pages * PAGE_BODY) as u64));
        let mut buffers = pool(pages, stride);
        // Read only when `to`: the pages are encrypted from it into
        // `buffers`. Both pools are allocated alike (page-aligned).
        let source = pool(pages, stride);
        let sources = || {
            source
                .chunks_exact(stride)
                .map(|page| &page[16..16 + PAGE_BODY])
        };
        group.bench_function(BASELINE, |b| {
            b.iter(|| {
                let dsts = bodies(black_box(&mut buffers), stride);
                for (n, (dst, src)) in dsts.zip(sources()).enumerate() {
                    if to {
                        rustcrypto_cbc_encrypt_to(&rc, &page_iv(n), src, dst);
                    } else {
                        rustcrypto_cbc_encrypt(&rc, &page_iv(n), dst);
                    }
                }
            })
        });
        let mut ids = Vec::new();
        for &backend in Backend::supported() {
            let aes = ours(backend);
            group.bench_with_input(
                BenchmarkId::from_parameter(backend.name()),
                &pages,
                |b, _| {
                    b.iter(|| {
                        let dsts = bodies(black_box(&mut buffers), stride);
                        let mut jobs: Vec<Job> = dsts
                            .zip(sources())
                            .enumerate()
                            .map(|(n, (dst, src))| {
                                if to {
                                    Job::buf_to_buf(page_iv(n), src, dst).expect("equal lengths")
                                } else {
                                    Job::in_place(page_iv(n), dst)
                                }
                            })
                            .collect();
                        aes.encrypt_batch(Mode::Cbc, &mut jobs);
                    })
                },
            );
            ids.push(backend.name().to_string());
        }
        group.finish();
        rows.push(Row {
            group: name,
            bytes: (pages * PAGE_BODY) as u64,
            baseline: BASELINE,
            ids,
            bound: |_| Bound::Limit,
            chains: pages,
            backend: None,
        });
    }
}

fn one_block(c: &mut Criterion, rows: &mut Vec<Row>) {
    let name = "block_encrypt";
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(16));
    let rc = aes::Aes128::new(&KEY.into());
    let mut block = Array::from([7u8; 16]);
    group.bench_function(BASELINE, |b| {
        b.iter(|| rc.encrypt_block(black_box(&mut block)))
    });
    let mut ids = Vec::new();
    for &backend in Backend::supported() {
        let aes = ours(backend);
        let mut block = [7u8; 16];
        group.bench_function(backend.name(), |b| {
            b.iter(|| aes.encrypt_block(black_box(&mut block)))
        });
        ids.push(backend.name().to_string());
    }
    group.finish();
    rows.push(Row {
        group: name.to_string(),
        bytes: 16,
        baseline: BASELINE,
        ids,
        bound: |_| Bound::None,
        chains: usize::MAX,
        backend: None,
    });
}

fn main() {
    let mut c = support::criterion();
    let mut rows = Vec::new();
    let limits = Limits::measure();
    single_page(&mut c, &mut rows);
    batch_cbc(&mut c, &mut rows);
    one_block(&mut c, &mut rows);
    c.final_summary();
    let limits = limits.max(Limits::measure());
    let soft = if cfg!(aes_backend = "soft") {
        ", RustCrypto forced soft"
    } else {
        ""
    };
    support::print_summary(
        &format!(
            "AES-128 kernel vs RustCrypto (active backend: {}{soft})",
            Backend::active()
        ),
        &rows,
        &limits,
    );
}
