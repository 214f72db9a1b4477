//! Encrypting and decrypting whole pages of one table, as the server's page
//! hooks do (`storage/maria/ma_crypt.c`).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use super::header::{CryptData, TableGeometry, TableHeader};
use super::page::{
    CRC_LEN, Layout, PageFile, PageKind, page_crc, page_crc_finish, page_iv, read_le32,
};
use crate::Error;
use crate::error::{HeaderFault, PageFault};
use crate::kernel::{Aes, Backend, Job, Mode};
use crate::keys::{KeyProvider, is_valid_version};
use crate::policy::{self, TableKind};

/// What happened to a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageStatus {
    /// An encrypted page, processed with this key version (the version
    /// stamped in it for decryption, the latest for encryption).
    Encrypted {
        /// The key version.
        key_version: u32,
    },
    /// `.MAI` header bytes: never encrypted, left unchanged.
    Header,
    /// A bitmap page: never encrypted, left unchanged.
    Bitmap,
    /// All zero bytes: never written, left unchanged.
    Unwritten,
}

/// A page of a batch: its number in its file and its bytes.
#[derive(Debug)]
pub struct PageRef<'a> {
    /// Page number (`offset / block_size`).
    pub number: u32,
    /// The page, one block long.
    pub data: &'a mut [u8],
}

/// How many (key id, version) local keys a table keeps; the server keeps
/// three per table.
const KEY_CACHE_CAPACITY: usize = 8;

/// The per-table key cache: (key id, version) to the AES key schedule of
/// the local key, so a page never pays for key setup.
struct KeyCache {
    entries: RwLock<Vec<(u32, u32, Arc<Aes>)>>,
}

impl KeyCache {
    fn get(&self, key_id: u32, version: u32) -> Option<Arc<Aes>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|(id, v, _)| *id == key_id && *v == version)
            .map(|(_, _, aes)| Arc::clone(aes))
    }

    fn insert(&self, key_id: u32, version: u32, aes: Arc<Aes>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries
            .iter()
            .any(|(id, v, _)| *id == key_id && *v == version)
        {
            return;
        }
        if entries.len() == KEY_CACHE_CAPACITY {
            entries.remove(0);
        }
        entries.push((key_id, version, aes));
    }
}

/// Encrypts and decrypts the pages of one table.
///
/// Holds the table's crypt data, the key id and algorithm, a key provider
/// and a bounded cache of local keys. It is `Send + Sync`: share one per
/// table between threads.
pub struct TableCipher {
    geometry: TableGeometry,
    crypt: CryptData,
    key_id: u32,
    mode: Mode,
    backend: Backend,
    provider: Arc<dyn KeyProvider>,
    cache: KeyCache,
    index_path: Option<PathBuf>,
    data_path: Option<PathBuf>,
}

impl fmt::Debug for TableCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableCipher")
            .field("geometry", &self.geometry)
            .field("crypt", &self.crypt)
            .field("key_id", &self.key_id)
            .field("mode", &self.mode)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl TableCipher {
    /// A cipher for a table's pages with an explicit key id.
    pub fn new(
        geometry: TableGeometry,
        crypt: CryptData,
        key_id: u32,
        mode: Mode,
        provider: Arc<dyn KeyProvider>,
    ) -> Self {
        TableCipher {
            geometry,
            crypt,
            key_id,
            mode,
            backend: Backend::active(),
            provider,
            cache: KeyCache {
                entries: RwLock::new(Vec::new()),
            },
            index_path: None,
            data_path: None,
        }
    }

    /// A cipher for an encrypted table, with the key id the server would
    /// use (see [`policy::key_id`]).
    ///
    /// # Errors
    /// [`Error::Header`] if the table is not encrypted;
    /// [`Error::KeyProvider`] if the provider fails to say whether it has
    /// the temporary-table key (see [`policy::try_key_id`]).
    pub fn for_table(
        header: &TableHeader,
        mode: Mode,
        provider: Arc<dyn KeyProvider>,
    ) -> Result<Self, Error> {
        let crypt = header.crypt.ok_or(Error::Header {
            path: None,
            fault: HeaderFault::NotEncrypted,
        })?;
        let key_id = policy::try_key_id(TableKind::of(header), &*provider)?;
        Ok(Self::new(header.geometry, crypt, key_id, mode, provider))
    }

    /// Runs AES on `backend` instead of [`Backend::active`].
    ///
    /// # Errors
    /// [`Error::UnsupportedBackend`] if this CPU cannot run it.
    pub fn with_backend(mut self, backend: Backend) -> Result<Self, Error> {
        if !backend.is_supported() {
            return Err(Error::UnsupportedBackend(backend));
        }
        self.backend = backend;
        self.cache = KeyCache {
            entries: RwLock::new(Vec::new()),
        };
        Ok(self)
    }

    /// Names the table's files in error messages.
    pub fn with_files(mut self, index: impl Into<PathBuf>, data: impl Into<PathBuf>) -> Self {
        self.index_path = Some(index.into());
        self.data_path = Some(data.into());
        self
    }

    /// The table's geometry.
    pub fn geometry(&self) -> &TableGeometry {
        &self.geometry
    }

    /// The table's crypt data.
    pub fn crypt(&self) -> &CryptData {
        &self.crypt
    }

    /// The key id in use.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// CBC or CTR.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The AES backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The key provider.
    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    fn page_error(&self, file: PageFile, page: u32, fault: PageFault) -> Error {
        let path = match file {
            PageFile::Index => self.index_path.clone(),
            PageFile::Data => self.data_path.clone(),
        };
        Error::Page {
            path,
            file,
            page,
            fault,
        }
    }

    /// The latest version of the table's key, as the server asks on every
    /// write.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] if the provider has no such key id,
    /// [`Error::KeyVersionNotFound`] if its latest version is 0 or
    /// 0xFFFFFFFF, [`Error::KeyProvider`] if the provider failed.
    pub fn latest_version(&self) -> Result<u32, Error> {
        let version = self
            .provider
            .try_latest_version(self.key_id)?
            .ok_or(Error::KeyNotFound {
                key_id: self.key_id,
            })?;
        if !is_valid_version(version) {
            return Err(Error::KeyVersionNotFound {
                key_id: self.key_id,
                version,
            });
        }
        Ok(version)
    }

    /// The AES-128 schedule of the table's local key for `version`:
    /// `AES-ECB(global key, scheme_iv)`, derived once and cached.
    ///
    /// # Errors
    /// What the provider returns for an unknown key id or version.
    pub fn local_key(&self, version: u32) -> Result<Arc<Aes>, Error> {
        if let Some(aes) = self.cache.get(self.key_id, version) {
            return Ok(aes);
        }
        let global = self.provider.key(self.key_id, version)?;
        let mut local = Zeroizing::new(self.crypt.scheme_iv);
        Aes::with_backend(global.as_bytes(), self.backend)?.encrypt_block(&mut local);
        let aes = Arc::new(Aes::with_backend(&*local, self.backend)?);
        self.cache.insert(self.key_id, version, Arc::clone(&aes));
        Ok(aes)
    }

    /// The local key for a version stamped in, or to be stamped in, a page.
    fn page_key(&self, version: u32) -> Result<Arc<Aes>, PageFault> {
        if !is_valid_version(version) {
            return Err(PageFault::KeyVersion(version));
        }
        self.local_key(version)
            .map_err(|e| PageFault::from_key_error(e, self.key_id, Some(version)))
    }

    fn classify(&self, file: PageFile, page_no: u32, page: &[u8]) -> Result<PageKind, Error> {
        self.geometry
            .classify(file, page_no, page)
            .map_err(|fault| self.page_error(file, page_no, fault))
    }

    /// Encrypts a plaintext page in place as the server's write hook does:
    /// zero the key-version field, store the checksum, encrypt, stamp the
    /// latest key version. Header, bitmap and all-zero pages are left
    /// unchanged. On error the page is unchanged.
    ///
    /// # Errors
    /// [`Error::Page`] for a page of the wrong size or with a bad
    /// `page_used`, or when the key is not available.
    pub fn encrypt_page(
        &self,
        file: PageFile,
        page_no: u32,
        page: &mut [u8],
    ) -> Result<PageStatus, Error> {
        let mut pages = [PageRef {
            number: page_no,
            data: page,
        }];
        self.encrypt_pages(file, &mut pages)
            .pop()
            .unwrap_or(Ok(PageStatus::Unwritten))
    }

    /// Decrypts an encrypted page in place as the server's read hook does:
    /// decrypt with the stamped key version, zero the stamp, verify the
    /// checksum. Header, bitmap and all-zero pages are left unchanged. On
    /// error the page is unchanged.
    ///
    /// # Errors
    /// [`Error::Page`]: a key version of 0 or 0xFFFFFFFF, a key the
    /// provider does not have, a bad `page_used`, or a checksum mismatch
    /// (wrong key, wrong algorithm or corrupt page).
    pub fn decrypt_page(
        &self,
        file: PageFile,
        page_no: u32,
        page: &mut [u8],
    ) -> Result<PageStatus, Error> {
        let mut pages = [PageRef {
            number: page_no,
            data: page,
        }];
        self.decrypt_pages(file, &mut pages)
            .pop()
            .unwrap_or(Ok(PageStatus::Unwritten))
    }

    /// [`encrypt_page`](Self::encrypt_page) from `src` into `dst`; `src` is
    /// never modified.
    ///
    /// # Errors
    /// As `encrypt_page`, and [`Error::LengthMismatch`].
    pub fn encrypt_page_to(
        &self,
        file: PageFile,
        page_no: u32,
        src: &[u8],
        dst: &mut [u8],
    ) -> Result<PageStatus, Error> {
        copy_page(src, dst)?;
        self.encrypt_page(file, page_no, dst)
    }

    /// [`decrypt_page`](Self::decrypt_page) from `src` into `dst`; `src` is
    /// never modified.
    ///
    /// # Errors
    /// As `decrypt_page`, and [`Error::LengthMismatch`].
    pub fn decrypt_page_to(
        &self,
        file: PageFile,
        page_no: u32,
        src: &[u8],
        dst: &mut [u8],
    ) -> Result<PageStatus, Error> {
        copy_page(src, dst)?;
        self.decrypt_page(file, page_no, dst)
    }

    /// Encrypts many plaintext pages of one file with the latest key
    /// version, through the kernel's multi-buffer path (a buffer-pool
    /// flush). Returns one result per page; a page that fails is unchanged.
    pub fn encrypt_pages(
        &self,
        file: PageFile,
        pages: &mut [PageRef<'_>],
    ) -> Vec<Result<PageStatus, Error>> {
        // As the server: the latest version of the key on every write.
        let version = self.latest_version().map_err(|e| match e {
            Error::KeyProvider { .. } => PageFault::from_key_error(e, self.key_id, None),
            _ => PageFault::NoKey {
                key_id: self.key_id,
            },
        });
        self.encrypt_with_version(file, pages, version)
    }

    /// [`encrypt_pages`](Self::encrypt_pages) with an explicit key version
    /// instead of the latest one (to reproduce a page exactly, or to write
    /// a version the provider does not call latest).
    pub fn encrypt_pages_as(
        &self,
        file: PageFile,
        pages: &mut [PageRef<'_>],
        key_version: u32,
    ) -> Vec<Result<PageStatus, Error>> {
        self.encrypt_with_version(file, pages, Ok(key_version))
    }

    fn encrypt_with_version(
        &self,
        file: PageFile,
        pages: &mut [PageRef<'_>],
        version: Result<u32, PageFault>,
    ) -> Vec<Result<PageStatus, Error>> {
        // Looked up once for the batch; reported only by the pages that
        // need it.
        let key = version.and_then(|v| Ok((v, self.page_key(v)?)));
        let mut results = Vec::with_capacity(pages.len());
        // The checksum covers the header with the key version zeroed and
        // then the body (`crc_end == body.end` for every page kind): the
        // kernel computes it as the CRC of the body with the header as its
        // prefix, while it encrypts the body (the VAES-512 CBC batch inside
        // its SIMD lanes). The checksum slot is past the body, so storing
        // it after encryption gives the same bytes as storing it before.
        let mut jobs = Vec::with_capacity(pages.len());
        // Per job: where its checksum goes.
        let mut crc_slots = Vec::with_capacity(pages.len());
        for page in pages.iter_mut() {
            let layout = match self.classify(file, page.number, page.data) {
                Ok(PageKind::Encrypted(layout)) => layout,
                Ok(kind) => {
                    results.push(Ok(skipped(&kind)));
                    continue;
                }
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let version = match &key {
                Ok((version, _)) => *version,
                Err(fault) => {
                    results.push(Err(self.page_error(file, page.number, fault.clone())));
                    continue;
                }
            };
            debug_assert_eq!(layout.crc_end, layout.body.end);
            let data = &mut *page.data;
            let header = layout.checksummed_header(data);
            let iv = page_iv(self.crypt.space, page.number, data);
            let (head, rest) = data.split_at_mut(layout.body.start);
            let (body, after) = rest.split_at_mut(layout.body.len());
            jobs.push(
                Job::in_place(iv, body).with_prefixed_crc(page.number, &header[..head.len()]),
            );
            let slot_at = after.len() - CRC_LEN;
            crc_slots.push(&mut after[slot_at..]);
            write_le32(head, layout.key_version_at, version);
            results.push(Ok(PageStatus::Encrypted {
                key_version: version,
            }));
        }
        let Ok((_, aes)) = key else { return results };
        aes.encrypt_batch(self.mode, &mut jobs);
        for (job, slot) in jobs.iter().zip(crc_slots) {
            // Every job asked for its checksum.
            if let Some(crc) = job.crc() {
                slot.copy_from_slice(&page_crc_finish(crc).to_le_bytes());
            }
        }
        results
    }

    /// Decrypts many pages of one file, each with the key version stamped
    /// in it, and verifies every checksum. Returns one result per page; a
    /// page that fails is left exactly as it was.
    pub fn decrypt_pages(
        &self,
        file: PageFile,
        pages: &mut [PageRef<'_>],
    ) -> Vec<Result<PageStatus, Error>> {
        let mut results: Vec<Result<PageStatus, Error>> = Vec::with_capacity(pages.len());
        // (layout, key, version) for the pages to decrypt.
        let mut work: Vec<Option<(Layout, Arc<Aes>, u32)>> = Vec::with_capacity(pages.len());
        for page in pages.iter() {
            let (result, prepared) = match self.classify(file, page.number, page.data) {
                Ok(PageKind::Encrypted(layout)) => {
                    let version = layout.key_version(page.data);
                    match self.page_key(version) {
                        Ok(aes) => (
                            Ok(PageStatus::Encrypted {
                                key_version: version,
                            }),
                            Some((layout, aes, version)),
                        ),
                        Err(fault) => (Err(self.page_error(file, page.number, fault)), None),
                    }
                }
                Ok(kind) => (Ok(skipped(&kind)), None),
                Err(e) => (Err(e), None),
            };
            results.push(result);
            work.push(prepared);
        }

        // Decrypt, grouped by key so each group is one kernel batch.
        let mut done = vec![false; pages.len()];
        for first in 0..pages.len() {
            let Some((_, aes, _)) = &work[first] else {
                continue;
            };
            if done[first] {
                continue;
            }
            let aes = Arc::clone(aes);
            let mut jobs = Vec::new();
            for ((page, w), done) in pages.iter_mut().zip(&work).zip(done.iter_mut()).skip(first) {
                let Some((layout, key, _)) = w else { continue };
                if *done || !Arc::ptr_eq(key, &aes) {
                    continue;
                }
                *done = true;
                let iv = page_iv(self.crypt.space, page.number, page.data);
                jobs.push(Job::in_place(iv, &mut page.data[layout.body.clone()]));
            }
            aes.decrypt_batch(self.mode, &mut jobs);
        }

        // Verify; restore the pages that fail.
        for ((page, w), result) in pages.iter_mut().zip(&work).zip(results.iter_mut()) {
            let Some((layout, aes, version)) = w else {
                continue;
            };
            let data = &mut *page.data;
            write_le32(data, layout.key_version_at, 0);
            let computed = page_crc(page.number, &data[..layout.crc_end]);
            let stored = read_le32(data, data.len() - CRC_LEN);
            if computed != stored {
                // CBC and CTR are permutations: encrypting the output gives
                // back the exact input bytes.
                let iv = page_iv(self.crypt.space, page.number, data);
                aes.encrypt(self.mode, &iv, &mut data[layout.body.clone()]);
                write_le32(data, layout.key_version_at, *version);
                *result = Err(self.page_error(
                    file,
                    page.number,
                    PageFault::Checksum { stored, computed },
                ));
            }
        }
        results
    }
}

fn skipped(kind: &PageKind) -> PageStatus {
    match kind {
        PageKind::Header => PageStatus::Header,
        PageKind::Bitmap => PageStatus::Bitmap,
        _ => PageStatus::Unwritten,
    }
}

fn write_le32(page: &mut [u8], at: usize, value: u32) {
    if let Some(field) = page.get_mut(at..at + 4) {
        field.copy_from_slice(&value.to_le_bytes());
    }
}

fn copy_page(src: &[u8], dst: &mut [u8]) -> Result<(), Error> {
    if src.len() != dst.len() {
        return Err(Error::LengthMismatch {
            src: src.len(),
            dst: dst.len(),
        });
    }
    dst.copy_from_slice(src);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyMaterial, VersionedKeyProvider};

    const BS: usize = 4096;
    const VERSION: u32 = 3;

    fn cipher(mode: Mode, backend: Backend, transactional: bool) -> TableCipher {
        let mut keys = VersionedKeyProvider::new();
        keys.insert(1, VERSION, KeyMaterial::new(&[0x42; 32]).unwrap())
            .unwrap();
        let geometry = TableGeometry {
            block_size: BS as u32,
            keystart: BS as u64,
            transactional,
        };
        let crypt = CryptData {
            space: 0x0bad_cafe,
            scheme_iv: [0x5e; 16],
        };
        TableCipher::new(geometry, crypt, 1, mode, Arc::new(keys))
            .with_backend(backend)
            .unwrap()
    }

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    /// The write hook written out step by step, one page at a time, as the
    /// spec orders it: checksum of the plaintext, encrypt, stamp.
    fn reference(cipher: &TableCipher, file: PageFile, page_no: u32, page: &mut [u8]) {
        let Ok(PageKind::Encrypted(layout)) = cipher.geometry.classify(file, page_no, page) else {
            return;
        };
        write_le32(page, layout.key_version_at, 0);
        let crc = page_crc(page_no, &page[..layout.crc_end]);
        write_le32(page, BS - CRC_LEN, crc);
        let iv = page_iv(cipher.crypt.space, page_no, page);
        let aes = cipher.local_key(VERSION).unwrap();
        aes.encrypt(cipher.mode, &iv, &mut page[layout.body.clone()]);
        write_le32(page, layout.key_version_at, VERSION);
    }

    /// The CRC-32 table entry for `index` (reflected 0xEDB88320).
    fn table(index: u32) -> u32 {
        (0..8).fold(index, |c, _| {
            (c >> 1) ^ (0xedb8_8320 & (c & 1).wrapping_neg())
        })
    }

    /// Sets the four bytes before `end` so that zlib's CRC-32 of
    /// `page[..end]` seeded with `page_no` is `target`: the register after
    /// four message bytes `x` from register `r` is `F(r ^ x)`, with `F`
    /// four zero-byte steps, which can be undone one byte at a time (the
    /// table's top bytes are all different).
    fn forge(page_no: u32, page: &mut [u8], end: usize, target: u32) {
        let mut hasher = crc32fast::Hasher::new_with_initial(page_no);
        hasher.update(&page[..end - 4]);
        let before = !hasher.finalize();
        let mut r = !target;
        for _ in 0..4 {
            let index = (0..256).find(|&i| table(i) >> 24 == r >> 24).unwrap();
            r = ((r ^ table(index)) << 8) | index;
        }
        page[end - 4..end].copy_from_slice(&(r ^ before).to_le_bytes());
        assert_eq!(page_crc(page_no, &page[..end]), 0xffff_fffd);
        let mut check = crc32fast::Hasher::new_with_initial(page_no);
        check.update(&page[..end]);
        assert_eq!(check.finalize(), target);
    }

    /// Data pages of every type, two of them forged to the "no checksum"
    /// CRC values, at page numbers 1..
    fn data_pages(count: usize) -> Vec<u8> {
        let mut pool = bytes(11, count * BS);
        for (n, page) in pool.chunks_exact_mut(BS).enumerate() {
            page[7] = n as u8 % 4;
            let page_no = n as u32 + 1;
            // The checksum covers the key version as zero (types 1 and 2).
            if matches!(n, 1 | 2) {
                page[12..16].fill(0);
            }
            match n {
                1 => forge(page_no, page, BS - CRC_LEN, 0xffff_ffff),
                2 => forge(page_no, page, BS - CRC_LEN, 0xffff_fffe),
                _ => {}
            }
        }
        pool
    }

    /// Index pages with every kind of `page_used`: header only (an empty
    /// body), a few bytes, whole blocks, the whole page; two forged.
    fn index_pages(count: usize, kh: usize) -> Vec<u8> {
        let mut pool = bytes(12, count * BS);
        for (n, page) in pool.chunks_exact_mut(BS).enumerate() {
            let used = match n % 7 {
                0 => kh,
                1 => kh + 1,
                2 => kh + 15,
                3 => kh + 16,
                4 => kh + 160,
                5 => BS - CRC_LEN,
                _ => kh + 1000 + n,
            };
            page[kh - 2..kh].copy_from_slice(&(used as u16).to_be_bytes());
            let page_no = n as u32 + 1;
            // The checksum covers the key version as zero.
            page[kh - 8..kh - 4].fill(0);
            match n {
                4 => forge(page_no, page, used, 0xffff_ffff),
                5 => forge(page_no, page, used, 0xffff_fffe),
                _ => {}
            }
        }
        pool
    }

    fn refs(pool: &mut [u8]) -> Vec<PageRef<'_>> {
        pool.chunks_exact_mut(BS)
            .enumerate()
            .map(|(n, data)| PageRef {
                number: n as u32 + 1,
                data,
            })
            .collect()
    }

    /// The batch write hook, where the kernel continues the header's CRC
    /// over the body, gives the bytes of the step-by-step one, on every
    /// backend and for both modes, and the result decrypts and verifies.
    #[test]
    fn batch_checksums_match_page_by_page() {
        for &backend in Backend::supported() {
            for mode in [Mode::Cbc, Mode::Ctr] {
                for transactional in [true, false] {
                    let cipher = cipher(mode, backend, transactional);
                    let kh = cipher.geometry.index_header_len();
                    for (file, plain) in [
                        (PageFile::Data, data_pages(40)),
                        (PageFile::Index, index_pages(40, kh)),
                    ] {
                        let mut want = plain.clone();
                        for (n, page) in want.chunks_exact_mut(BS).enumerate() {
                            reference(&cipher, file, n as u32 + 1, page);
                        }
                        let mut got = plain.clone();
                        let results = cipher.encrypt_pages_as(file, &mut refs(&mut got), VERSION);
                        assert!(results.iter().all(Result::is_ok));
                        for (n, (a, b)) in got.chunks(BS).zip(want.chunks(BS)).enumerate() {
                            assert!(a == b, "{backend} {mode} {file} page {n}");
                        }
                        // The forged pages store the substitute value.
                        let forged = if file == PageFile::Data {
                            [1, 2]
                        } else {
                            [4, 5]
                        };
                        for n in forged {
                            assert_eq!(read_le32(&got, (n + 1) * BS - CRC_LEN), 0xffff_fffd);
                        }
                        // Decryption verifies every checksum.
                        let results = cipher.decrypt_pages(file, &mut refs(&mut got));
                        assert!(results.iter().all(Result::is_ok), "{results:?}");
                    }
                }
            }
        }
    }
}
