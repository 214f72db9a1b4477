//! A small buffer pool over copies of two fixture tables, as an engine
//! would use the library: pages are read into frames through out-of-place
//! batch decryption, rows are changed in the frames, the key is rotated to
//! a new version by the engine's own key provider, and the dirty frames are
//! flushed through out-of-place batch encryption, a non-transactional
//! table's among them (fresh random LSNs, so no IV repeats). Every page
//! written is then read back and checked against its frame, and the whole
//! table is verified from disk by the crate's verify API
//! ([`mariadb_aria_crypt::diagnose::Diagnoser`]).
//!
//! `cargo run --no-default-features --example buffer_pool`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use mariadb_aria_crypt::aria::{
    PageFile, PageKind, PageStatus, TableCipher, TableHeader, WriteOptions,
};
use mariadb_aria_crypt::diagnose::Diagnoser;
use mariadb_aria_crypt::kernel::Mode;
use mariadb_aria_crypt::keys::{FileKeyProvider, KeyMaterial, KeyProvider};
use mariadb_aria_crypt::{Error, PageFault};

type Failure = Box<dyn std::error::Error>;

/// The engine's key service: versions of key 1, the latest one switchable
/// (a KMS with rotation).
#[derive(Debug)]
struct Kms {
    versions: RwLock<BTreeMap<u32, KeyMaterial>>,
    latest: AtomicU32,
}

impl Kms {
    fn rotate(&self, version: u32, key: KeyMaterial) {
        let mut versions = self.versions.write().unwrap_or_else(|e| e.into_inner());
        versions.insert(version, key);
        self.latest.store(version, Ordering::SeqCst);
    }
}

impl KeyProvider for Kms {
    fn latest_version(&self, key_id: u32) -> Option<u32> {
        (key_id == 1).then(|| self.latest.load(Ordering::SeqCst))
    }

    fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error> {
        if key_id != 1 {
            return Err(Error::KeyNotFound { key_id });
        }
        let versions = self.versions.read().unwrap_or_else(|e| e.into_inner());
        versions
            .get(&version)
            .cloned()
            .ok_or(Error::KeyVersionNotFound { key_id, version })
    }
}

/// One file of a table in memory: plaintext frames, a dirty flag per page.
struct Pool {
    path: PathBuf,
    file: PageFile,
    block: usize,
    frames: Vec<u8>,
    dirty: Vec<bool>,
}

impl Pool {
    /// Reads the whole file into frames with one batch decryption.
    fn load(cipher: &TableCipher, path: PathBuf, file: PageFile) -> Result<Self, Failure> {
        let block = cipher.geometry().block_size as usize;
        let disk = std::fs::read(&path)?;
        let mut frames = vec![0; disk.len()];
        let mut results = results(disk.len() / block);
        cipher.decrypt_contiguous_to(file, 0, &disk, &mut frames, &mut results)?;
        for result in results {
            result?;
        }
        let dirty = vec![false; disk.len() / block];
        Ok(Pool {
            path,
            file,
            block,
            frames,
            dirty,
        })
    }

    fn pages(&self) -> usize {
        self.dirty.len()
    }

    /// Writes each run of dirty frames with one out-of-place batch
    /// encryption into a write buffer; the frames keep their plaintext.
    fn flush(&mut self, cipher: &TableCipher) -> Result<usize, Failure> {
        use std::os::unix::fs::FileExt;
        let out = std::fs::OpenOptions::new().write(true).open(&self.path)?;
        let mut written = 0;
        let mut start = 0;
        while start < self.pages() {
            if !self.dirty[start] {
                start += 1;
                continue;
            }
            let end = (start..self.pages())
                .find(|&n| !self.dirty[n])
                .unwrap_or(self.pages());
            let frames = &self.frames[start * self.block..end * self.block];
            let mut buffer = vec![0; frames.len()];
            let mut results = results(end - start);
            cipher.encrypt_contiguous_to(
                self.file,
                start as u32,
                frames,
                &mut buffer,
                WriteOptions::new(),
                &mut results,
            )?;
            for result in results {
                result?;
            }
            out.write_all_at(&buffer, (start * self.block) as u64)?;
            written += end - start;
            self.dirty[start..end].fill(false);
            start = end;
        }
        out.sync_all()?;
        Ok(written)
    }
}

fn results(pages: usize) -> Vec<Result<PageStatus, Error>> {
    (0..pages).map(|_| Ok(PageStatus::Unwritten)).collect()
}

/// Copies a fixture table into `dir`; returns the copy's `.MAI` path.
fn copy_table(case: &str, dir: &Path) -> Result<PathBuf, Failure> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let table = dir.join(case);
    std::fs::create_dir_all(&table)?;
    for name in ["t1.MAI", "t1.MAD", "keys.txt"] {
        std::fs::copy(fixtures.join(case).join(name), table.join(name))?;
    }
    Ok(table.join("t1.MAI"))
}

/// Reads every page of `pool`'s file back from disk: each encrypted page
/// must decrypt with `version` and hold the frame's bytes (the LSN aside
/// where the table is not logging, and nothing past an index page's
/// `page_used`, which writes zero).
fn verify(cipher: &TableCipher, pool: &Pool, version: u32) -> Result<usize, Failure> {
    let disk = std::fs::read(&pool.path)?;
    let mut plain = vec![0; disk.len()];
    let mut results = results(pool.pages());
    cipher.decrypt_contiguous_to(pool.file, 0, &disk, &mut plain, &mut results)?;
    let mut encrypted = 0;
    for (n, result) in results.into_iter().enumerate() {
        let range = n * pool.block..(n + 1) * pool.block;
        let (got, frame) = (&plain[range.clone()], &pool.frames[range]);
        match result? {
            PageStatus::Encrypted { key_version } => {
                if key_version != version {
                    return Err(format!("page {n}: key version {key_version}").into());
                }
                let Ok(PageKind::Encrypted(layout)) =
                    cipher.geometry().classify(pool.file, n as u32, got)
                else {
                    return Err(format!("page {n}: not an encrypted page").into());
                };
                let from = if cipher.is_logging() { 0 } else { 7 };
                if got[from..layout.body.end] != frame[from..layout.body.end] {
                    return Err(format!("page {n}: differs from its frame").into());
                }
                if !cipher.is_logging() && got[..7] == frame[..7] {
                    return Err(format!("page {n}: LSN (and so IV) reused").into());
                }
                encrypted += 1;
            }
            _ if got == frame => {}
            status => return Err(format!("page {n}: {status:?} changed").into()),
        }
    }
    Ok(encrypted)
}

fn main() -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("aria-buffer-pool-{}", std::process::id()));
    let outcome = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn run(dir: &Path) -> Result<(), Failure> {
    for (case, mode) in [
        ("cbc_trans_256", Mode::Cbc),
        ("cbc_nontrans_256", Mode::Cbc),
    ] {
        let mai = copy_table(case, dir)?;
        let header = TableHeader::read(&mai)?;
        // The engine's KMS starts with the table's key as version 1.
        let fixture_keys = FileKeyProvider::from_path(mai.with_file_name("keys.txt"), None)?;
        let kms = Arc::new(Kms {
            versions: RwLock::new(BTreeMap::from([(1, fixture_keys.key(1, 1)?)])),
            latest: AtomicU32::new(1),
        });
        let cipher = TableCipher::for_table(&header, mode, kms.clone())?;

        let mut pools = [
            Pool::load(&cipher, mai.clone(), PageFile::Index)?,
            Pool::load(&cipher, mai.with_extension("MAD"), PageFile::Data)?,
        ];

        // Change a byte of a row in every encrypted data page (the last
        // byte before the checksum, inside the encrypted body).
        let data = &mut pools[1];
        for n in 0..data.pages() {
            let frame = &mut data.frames[n * data.block..(n + 1) * data.block];
            if let Ok(PageKind::Encrypted(layout)) =
                cipher.geometry().classify(PageFile::Data, n as u32, frame)
            {
                frame[layout.body.end - 1] ^= 0x5a;
                data.dirty[n] = true;
            }
        }
        // Rotate: version 2 is the latest from now on, and every encrypted
        // page is rewritten with it.
        kms.rotate(2, KeyMaterial::new(&[0x22; 32])?);
        for pool in &mut pools {
            for n in 0..pool.pages() {
                let frame = &pool.frames[n * pool.block..(n + 1) * pool.block];
                if let Ok(PageKind::Encrypted(_)) =
                    cipher.geometry().classify(pool.file, n as u32, frame)
                {
                    pool.dirty[n] = true;
                }
            }
        }
        let mut written = 0;
        for pool in &mut pools {
            written += pool.flush(&cipher)?;
        }

        let mut checked = 0;
        for pool in &pools {
            checked += verify(&cipher, pool, 2)?;
        }
        // The crate's verify API over the files as a fresh reader opens
        // them: every encrypted page verifies, none fails.
        let reader = Diagnoser::new(TableCipher::open(&mai, mode, kms.clone())?);
        let mut diagnosis = reader.check_file(PageFile::Index, &std::fs::read(&pools[0].path)?);
        diagnosis.merge(reader.check_file(PageFile::Data, &std::fs::read(&pools[1].path)?));
        if !diagnosis.is_clean() || diagnosis.verified != checked {
            return Err(format!(
                "verify: {} pages verified of {checked}, failures {:?}",
                diagnosis.verified,
                diagnosis.causes().collect::<Vec<_>>()
            )
            .into());
        }
        // The old key is gone from the files: version 1 alone reads none.
        let old = Arc::new(Kms {
            versions: RwLock::new(BTreeMap::from([(1, fixture_keys.key(1, 1)?)])),
            latest: AtomicU32::new(1),
        });
        let old = TableCipher::for_table(&header, mode, old)?;
        let mut page = std::fs::read(&pools[1].path)?[pools[1].block..2 * pools[1].block].to_vec();
        let refused = matches!(
            old.decrypt_page(PageFile::Data, 1, &mut page),
            Err(Error::Page {
                fault: PageFault::KeyUnavailable { version: 2, .. },
                ..
            })
        );
        if !refused {
            return Err("a page still reads with key version 1".into());
        }
        println!(
            "{case}: {written} pages flushed with key version 2, {checked} read back and verified{}",
            if cipher.is_logging() {
                ""
            } else {
                ", each with a fresh LSN"
            }
        );
    }
    Ok(())
}
