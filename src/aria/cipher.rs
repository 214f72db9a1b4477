//! Encrypting and decrypting whole pages of one table, as the server's page
//! hooks do (`storage/maria/ma_crypt.c`).
//!
//! Encryption refuses a page whose key-version field is not zero
//! ([`PageFault::AlreadyEncrypted`]): no plaintext page of the server
//! carries one. Its read hooks (`ma_crypt_data_post_read_hook`,
//! `ma_crypt_index_post_read_hook` in `ma_crypt.c`) zero the field of
//! every page they decrypt ("clear key version to get correct crc"), pages
//! are created with zeroed headers (`make_empty_page` in `ma_blockrec.c`,
//! `_ma_dispose` in `ma_page.c`: `bzero` of the page header), and the write
//! hooks stamp the version only into the separate output buffer, never
//! into the cached page. The checksum the write hook stores covers the
//! field as it is and the read hook checks it with the field zeroed, so a
//! plaintext page with a non-zero field could never be read back anyway.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use zeroize::Zeroizing;

use super::header::{CryptData, TableHeader};
use super::page::{LSN_LEN, iv_of, lsn_of, page_crc_finish, try_page_lsn};
use crate::Error;
use crate::fault::{BatchFault, HeaderFault, PageFault};
use crate::geometry::{
    CRC_LEN, HEADER_MAX, PageFile, PageKind, TableGeometry, is_valid_block_size, read_le32,
};
use crate::kernel::{Aes, Backend, InOut, Job, Mode};
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

/// What a write does with a page's LSN (bytes 0..7), which is part of the
/// page's IV (spec §4.2): two writes with one LSN and one key share an IV,
/// and CTR then shares its keystream (`c1 ^ c2 == p1 ^ p2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LsnPolicy {
    /// As the server: a table that is logging
    /// ([`TableCipher::is_logging`]) keeps the page's LSN, its log
    /// position, so re-encryption is byte-exact with the server; any other
    /// table (non-transactional, temporary, or transactional with logging
    /// turned off) gets a fresh LSN from the operating system's CSPRNG
    /// (the server uses `rand()`, which repeats across restarts).
    #[default]
    Table,
    /// A fresh random LSN, whatever the table.
    Fresh,
    /// The page's own LSN: a page decrypted from disk re-encrypts to the
    /// same bytes (rekey, tests). Writing changed contents of a table that
    /// is not logging this way reuses the IV of the old contents.
    Keep,
}

/// How an encryption call picks the key version and the LSN. The default
/// ([`WriteOptions::new`]) is the server's: the latest key version and
/// [`LsnPolicy::Table`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WriteOptions {
    key_version: Option<u32>,
    lsn: LsnPolicy,
}

impl WriteOptions {
    /// The latest key version and [`LsnPolicy::Table`].
    pub const fn new() -> Self {
        WriteOptions {
            key_version: None,
            lsn: LsnPolicy::Table,
        }
    }

    /// Exact re-encryption: `key_version` and each page's own LSN
    /// ([`LsnPolicy::Keep`]).
    pub const fn exact(key_version: u32) -> Self {
        WriteOptions {
            key_version: Some(key_version),
            lsn: LsnPolicy::Keep,
        }
    }

    /// Writes `key_version` instead of the latest version.
    #[must_use]
    pub const fn with_key_version(mut self, key_version: u32) -> Self {
        self.key_version = Some(key_version);
        self
    }

    /// Chooses what happens to the LSN.
    #[must_use]
    pub const fn with_lsn(mut self, lsn: LsnPolicy) -> Self {
        self.lsn = lsn;
        self
    }

    /// The explicit key version, if any (`None`: the latest).
    pub const fn key_version(&self) -> Option<u32> {
        self.key_version
    }

    /// The LSN choice.
    pub const fn lsn(&self) -> LsnPolicy {
        self.lsn
    }
}

/// How many (key id, version) local keys a table keeps in its bounded
/// cache, beside the [`PINNED_KEYS`] pinned ones; the server keeps three
/// per table.
const KEY_CACHE_CAPACITY: usize = 8;

/// How many of a table's first (key id, version) local keys it pins for
/// its life (see [`KeyCache`]).
const PINNED_KEYS: usize = 4;

/// A cached local key: (key id, version, its AES key schedule).
type CachedKey = (u32, u32, Arc<Aes>);

/// The per-table key cache: (key id, version) to the AES key schedule of
/// the local key, so a page never pays for key setup.
///
/// The first [`PINNED_KEYS`] keys a table uses stay for its life, each set
/// once and read without a lock or a reference count: threads sharing the
/// table would otherwise all write the lock's and the key's counters on
/// every call (measured, two threads decrypting one page a call through
/// one shared table: 790-800 ns a page against 510-520 ns with a table
/// each). Further keys go to a bounded cache behind a lock.
struct KeyCache {
    /// Filled in order: an empty slot means none after it is set.
    pinned: [OnceLock<CachedKey>; PINNED_KEYS],
    entries: RwLock<Vec<CachedKey>>,
}

/// A local key for one call: borrowed from the pinned keys, or shared from
/// the bounded cache.
#[derive(Clone, Debug)]
enum LocalKey<'c> {
    Pinned(&'c Arc<Aes>),
    Cached(Arc<Aes>),
}

impl LocalKey<'_> {
    fn into_arc(self) -> Arc<Aes> {
        match self {
            LocalKey::Pinned(aes) => Arc::clone(aes),
            LocalKey::Cached(aes) => aes,
        }
    }
}

impl std::ops::Deref for LocalKey<'_> {
    type Target = Aes;

    fn deref(&self) -> &Aes {
        match self {
            LocalKey::Pinned(aes) => aes,
            LocalKey::Cached(aes) => aes,
        }
    }
}

impl KeyCache {
    fn new() -> KeyCache {
        KeyCache {
            pinned: Default::default(),
            entries: RwLock::new(Vec::new()),
        }
    }

    fn get(&self, key_id: u32, version: u32) -> Option<LocalKey<'_>> {
        let is = |(id, v, _): &CachedKey| *id == key_id && *v == version;
        for slot in &self.pinned {
            match slot.get() {
                Some(entry @ (.., aes)) if is(entry) => return Some(LocalKey::Pinned(aes)),
                Some(_) => {}
                // Slots fill in order: the key is in none of them, nor in
                // the bounded cache, which is used once they are full.
                None => return None,
            }
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (.., aes) = entries.iter().find(|entry| is(entry))?;
        Some(LocalKey::Cached(Arc::clone(aes)))
    }

    /// Caches `aes` (unless another thread cached that key first, whose
    /// copy is kept) and returns the cached key.
    fn insert(&self, key_id: u32, version: u32, aes: Arc<Aes>) -> LocalKey<'_> {
        let is = |(id, v, _): &CachedKey| *id == key_id && *v == version;
        for slot in &self.pinned {
            // Another thread may fill this slot between `get` and `set`:
            // then it is read again, and holds that key or another.
            let _ = slot.set((key_id, version, Arc::clone(&aes)));
            if let Some(entry @ (.., pinned)) = slot.get()
                && is(entry)
            {
                return LocalKey::Pinned(pinned);
            }
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some((.., cached)) = entries.iter().find(|entry| is(entry)) {
            return LocalKey::Cached(Arc::clone(cached));
        }
        if entries.len() == KEY_CACHE_CAPACITY {
            entries.remove(0);
        }
        entries.push((key_id, version, Arc::clone(&aes)));
        LocalKey::Cached(aes)
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
    /// The server's `now_transactional`: see [`TableCipher::set_logging`].
    logging: AtomicBool,
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
            .field("logging", &self.is_logging())
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
            cache: KeyCache::new(),
            logging: AtomicBool::new(true),
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
        self.cache = KeyCache::new();
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
        self.cached_key(version).map(LocalKey::into_arc)
    }

    /// [`local_key`](Self::local_key), borrowed where it is pinned.
    fn cached_key(&self, version: u32) -> Result<LocalKey<'_>, Error> {
        self.key_or(version, |e| e)
    }

    /// The cached key for `version`, or the derived one with a failure as
    /// `on_error` makes it. The conversion runs on the derivation's path
    /// only: converting a cached key's `Result<_, Error>` afterwards moved
    /// every cached key through the stack (a page read stalled on it).
    #[inline(always)]
    fn key_or<E>(
        &self,
        version: u32,
        on_error: impl FnOnce(Error) -> E,
    ) -> Result<LocalKey<'_>, E> {
        match self.cache.get(self.key_id, version) {
            Some(aes) => Ok(aes),
            None => self.derive_key(version).map_err(on_error),
        }
    }

    /// A key not cached yet: asked of the provider, derived, cached. Out
    /// of line: the cached path stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn derive_key(&self, version: u32) -> Result<LocalKey<'_>, Error> {
        let global = self.provider.key(self.key_id, version)?;
        let mut local = Zeroizing::new(self.crypt.scheme_iv);
        Aes::with_backend(global.as_bytes(), self.backend)?.encrypt_block(&mut local);
        let aes = Arc::new(Aes::with_backend(&*local, self.backend)?);
        Ok(self.cache.insert(self.key_id, version, aes))
    }

    /// The local key for a version stamped in, or to be stamped in, a page.
    fn page_key(&self, version: u32) -> Result<LocalKey<'_>, PageFault> {
        if !is_valid_version(version) {
            return Err(PageFault::KeyVersion(version));
        }
        self.key_or(version, |e| e.into_page_fault(self.key_id, Some(version)))
    }

    fn classify(&self, file: PageFile, page_no: u32, page: &[u8]) -> Result<PageKind, Error> {
        self.geometry
            .classify(file, page_no, page)
            .map_err(|fault| self.page_error(file, page_no, fault))
    }

    /// Says whether the table is logging now, the server's
    /// `share->now_transactional`. A transactional table starts logging;
    /// the server turns logging off for some bulk operations (a bulk
    /// insert into an empty table, `ALTER TABLE`), and while it is off
    /// the page LSN is no log position, so [`LsnPolicy::Table`] writes
    /// fresh random LSNs. A non-transactional table never logs: `true`
    /// changes nothing for it. Safe to call while other threads write.
    pub fn set_logging(&self, logging: bool) {
        self.logging.store(logging, Ordering::Relaxed);
    }

    /// Whether writes keep the page LSN under [`LsnPolicy::Table`]: the
    /// table is transactional and [`set_logging`](Self::set_logging) has
    /// not turned logging off.
    pub fn is_logging(&self) -> bool {
        self.geometry.transactional && self.logging.load(Ordering::Relaxed)
    }

    /// Encrypts a plaintext page in place as the server's write hook does:
    /// the LSN per [`LsnPolicy::Table`] (a table that is not logging gets
    /// a fresh random LSN, written into `page`), the checksum, encryption
    /// with the latest key version, the version stamped. An index page's
    /// bytes between `page_used` and the checksum are zeroed. Header,
    /// bitmap and all-zero pages are left unchanged. On error the page is
    /// unchanged.
    ///
    /// # Errors
    /// [`Error::Page`] for a page of the wrong size, with a bad
    /// `page_used`, with a non-zero key-version field
    /// ([`PageFault::AlreadyEncrypted`]), or when the key is not available;
    /// [`Error::Rng`] when a fresh LSN cannot be drawn.
    pub fn encrypt_page(
        &self,
        file: PageFile,
        page_no: u32,
        page: &mut [u8],
    ) -> Result<PageStatus, Error> {
        self.encrypt_page_with(file, page_no, page, WriteOptions::new())
    }

    /// [`encrypt_page`](Self::encrypt_page) with an explicit key version
    /// and LSN choice ([`WriteOptions`]): the LSN is kept, or a fresh one
    /// is written into `page`, as `options.lsn()` says.
    ///
    /// # Errors
    /// As `encrypt_page`.
    pub fn encrypt_page_with(
        &self,
        file: PageFile,
        page_no: u32,
        page: &mut [u8],
        options: WriteOptions,
    ) -> Result<PageStatus, Error> {
        let mut one = [PageRef {
            number: page_no,
            data: page,
        }];
        let mut result = [Ok(PageStatus::Unwritten)];
        self.encrypt_into(file, &mut Pages::Refs(&mut one), options, &mut result);
        let [result] = result;
        result
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
        let mut one = [PageRef {
            number: page_no,
            data: page,
        }];
        let mut result = [Ok(PageStatus::Unwritten)];
        self.decrypt_into(file, &mut Pages::Refs(&mut one), &mut result);
        let [result] = result;
        result
    }

    /// [`encrypt_page`](Self::encrypt_page) from `src` into `dst`, as the
    /// server encrypts into a separate buffer: `src` is never modified, and
    /// a fresh LSN ([`LsnPolicy::Table`]) is written into `dst` only. On
    /// error `dst` is not written, so no plaintext reaches it.
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
        check_lengths(src, dst)?;
        let mut result = [Ok(PageStatus::Unwritten)];
        let mut one = Pages::One {
            number: page_no,
            src,
            dst,
        };
        self.encrypt_into(file, &mut one, WriteOptions::new(), &mut result);
        let [result] = result;
        result
    }

    /// [`decrypt_page`](Self::decrypt_page) from `src` into `dst`; `src` is
    /// never modified. On error `dst` holds a copy of `src`.
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
        check_lengths(src, dst)?;
        let mut result = [Ok(PageStatus::Unwritten)];
        let mut one = Pages::One {
            number: page_no,
            src,
            dst,
        };
        self.decrypt_into(file, &mut one, &mut result);
        let [result] = result;
        result
    }

    /// Encrypts many plaintext pages of one file in place with the latest
    /// key version and [`LsnPolicy::Table`], through the kernel's
    /// multi-buffer path (a buffer-pool flush). Returns one result per
    /// page; a page that fails is unchanged. Each page is handled as by
    /// [`encrypt_page`](Self::encrypt_page).
    pub fn encrypt_pages(
        &self,
        file: PageFile,
        pages: &mut [PageRef<'_>],
    ) -> Vec<Result<PageStatus, Error>> {
        self.encrypt_pages_with(file, pages, WriteOptions::new())
    }

    /// [`encrypt_pages`](Self::encrypt_pages) with an explicit key version
    /// instead of the latest one, keeping every page's LSN: exact
    /// re-encryption, whatever the table.
    #[deprecated(
        note = "use `encrypt_pages_with(file, pages, WriteOptions::exact(key_version))`; \
                keeping the LSN of a changed page of a table that is not logging reuses its IV"
    )]
    pub fn encrypt_pages_as(
        &self,
        file: PageFile,
        pages: &mut [PageRef<'_>],
        key_version: u32,
    ) -> Vec<Result<PageStatus, Error>> {
        self.encrypt_pages_with(file, pages, WriteOptions::exact(key_version))
    }

    /// [`encrypt_pages`](Self::encrypt_pages) with an explicit key version
    /// and LSN choice ([`WriteOptions`]): each page keeps its LSN, or gets
    /// a fresh one written into it, as `options.lsn()` says.
    pub fn encrypt_pages_with(
        &self,
        file: PageFile,
        pages: &mut [PageRef<'_>],
        options: WriteOptions,
    ) -> Vec<Result<PageStatus, Error>> {
        let mut results: Vec<Result<PageStatus, Error>> = (0..pages.len())
            .map(|_| Ok(PageStatus::Unwritten))
            .collect();
        self.encrypt_into(file, &mut Pages::Refs(pages), options, &mut results);
        results
    }

    /// Decrypts many pages of one file in place, each with the key
    /// version stamped in it, and verifies every checksum. Returns one
    /// result per page; a page that fails is left exactly as it was.
    ///
    /// Each distinct key version in the batch is looked up once; see
    /// [`decrypt_contiguous`](Self::decrypt_contiguous) for the bound on
    /// the work a batch can cause.
    pub fn decrypt_pages(
        &self,
        file: PageFile,
        pages: &mut [PageRef<'_>],
    ) -> Vec<Result<PageStatus, Error>> {
        let mut results: Vec<Result<PageStatus, Error>> = (0..pages.len())
            .map(|_| Ok(PageStatus::Unwritten))
            .collect();
        self.decrypt_into(file, &mut Pages::Refs(pages), &mut results);
        results
    }

    /// Encrypts consecutive pages in place: `pages` holds whole pages,
    /// the first of them page `first_page` of `file`. Writes one result
    /// per page into `results`; each page is handled as by
    /// [`encrypt_page_with`](Self::encrypt_page_with) (a fresh LSN, when
    /// `options` and the table call for one, is written into the page),
    /// with one key lookup for the whole call and no heap allocation.
    ///
    /// # Errors
    /// [`Error::Batch`], with nothing touched, if `pages` is not a whole
    /// number of pages, `results` has another length, or the page numbers
    /// would pass 4294967295. Per-page errors go into `results`.
    pub fn encrypt_contiguous(
        &self,
        file: PageFile,
        first_page: u32,
        pages: &mut [u8],
        options: WriteOptions,
        results: &mut [Result<PageStatus, Error>],
    ) -> Result<(), Error> {
        self.check_run(first_page, pages.len(), results.len())?;
        let mut run = Pages::Run {
            first: first_page,
            block: self.geometry.block_size as usize,
            buf: pages,
        };
        self.encrypt_into(file, &mut run, options, results);
        Ok(())
    }

    /// [`encrypt_contiguous`](Self::encrypt_contiguous) from `src` into
    /// `dst` (a buffer-pool flush into a write buffer): `src` is never
    /// modified, fresh LSNs are written into `dst` only, and the `dst`
    /// page of a page that fails is not written, so no plaintext reaches
    /// it. Header, bitmap and all-zero pages are copied.
    ///
    /// # Errors
    /// As `encrypt_contiguous`, and [`Error::LengthMismatch`] if `src` and
    /// `dst` differ in length.
    pub fn encrypt_contiguous_to(
        &self,
        file: PageFile,
        first_page: u32,
        src: &[u8],
        dst: &mut [u8],
        options: WriteOptions,
        results: &mut [Result<PageStatus, Error>],
    ) -> Result<(), Error> {
        check_lengths(src, dst)?;
        self.check_run(first_page, src.len(), results.len())?;
        let mut run = Pages::RunTo {
            first: first_page,
            block: self.geometry.block_size as usize,
            src,
            dst,
        };
        self.encrypt_into(file, &mut run, options, results);
        Ok(())
    }

    /// Decrypts consecutive pages in place: `pages` holds whole pages, the
    /// first of them page `first_page` of `file`. Writes one result per
    /// page into `results`; a page that fails is left exactly as it was.
    ///
    /// Work is bounded whatever the pages hold: every page is decrypted
    /// once, and once more only to restore a page that fails its checksum;
    /// the provider is asked for a key at most once per distinct key
    /// version stamped in the call's pages (so at most once per page, even
    /// for a crafted file with a different version in every page). A call
    /// with up to 8 distinct versions allocates nothing; more versions
    /// cost one sort of the remaining pages by version.
    ///
    /// # Errors
    /// As [`encrypt_contiguous`](Self::encrypt_contiguous).
    pub fn decrypt_contiguous(
        &self,
        file: PageFile,
        first_page: u32,
        pages: &mut [u8],
        results: &mut [Result<PageStatus, Error>],
    ) -> Result<(), Error> {
        self.check_run(first_page, pages.len(), results.len())?;
        let mut run = Pages::Run {
            first: first_page,
            block: self.geometry.block_size as usize,
            buf: pages,
        };
        self.decrypt_into(file, &mut run, results);
        Ok(())
    }

    /// [`decrypt_contiguous`](Self::decrypt_contiguous) from `src` into
    /// `dst` (a read into the buffer pool): `src` is never modified; the
    /// `dst` page of a page that fails holds a copy of its `src` page.
    ///
    /// # Errors
    /// As `decrypt_contiguous`, and [`Error::LengthMismatch`] if `src` and
    /// `dst` differ in length.
    pub fn decrypt_contiguous_to(
        &self,
        file: PageFile,
        first_page: u32,
        src: &[u8],
        dst: &mut [u8],
        results: &mut [Result<PageStatus, Error>],
    ) -> Result<(), Error> {
        check_lengths(src, dst)?;
        self.check_run(first_page, src.len(), results.len())?;
        let mut run = Pages::RunTo {
            first: first_page,
            block: self.geometry.block_size as usize,
            src,
            dst,
        };
        self.decrypt_into(file, &mut run, results);
        Ok(())
    }

    /// The checks of a contiguous call, before anything is touched.
    fn check_run(&self, first: u32, len: usize, results: usize) -> Result<(), Error> {
        if !is_valid_block_size(self.geometry.block_size) {
            return Err(Error::Batch(BatchFault::NotWholePages {
                len,
                block_size: self.geometry.block_size as usize,
            }));
        }
        let block = self.geometry.block_size as usize;
        if !len.is_multiple_of(block) {
            return Err(Error::Batch(BatchFault::NotWholePages {
                len,
                block_size: block,
            }));
        }
        let pages = len / block;
        if results != pages {
            return Err(Error::Batch(BatchFault::Results { pages, results }));
        }
        let last = u64::from(first) + (pages as u64).saturating_sub(1);
        if last > u64::from(u32::MAX) {
            return Err(Error::Batch(BatchFault::PageNumbers { first, pages }));
        }
        Ok(())
    }

    /// The key version and local key of a write, looked up once per call.
    fn write_key(&self, version: Option<u32>) -> Result<(u32, LocalKey<'_>), PageFault> {
        let version = match version {
            Some(version) => version,
            // As the server: the latest version of the key on every write.
            // A latest version no page can carry is the provider's
            // mistake; any other error keeps what the provider said (an
            // absent key stays absent, anything else is its failure).
            None => self.latest_version().map_err(|e| match e {
                Error::KeyVersionNotFound { version, .. } => PageFault::KeyVersion(version),
                e => e.into_page_fault(self.key_id, None),
            })?,
        };
        Ok((version, self.page_key(version)?))
    }

    /// Whether a write under `policy` draws a fresh LSN.
    fn fresh_lsn(&self, policy: LsnPolicy) -> bool {
        match policy {
            LsnPolicy::Table => !self.is_logging(),
            LsnPolicy::Fresh => true,
            LsnPolicy::Keep => false,
        }
    }

    /// The write path shared by every encryption entry point: `results[i]`
    /// is written for every page `i`.
    fn encrypt_into(
        &self,
        file: PageFile,
        pages: &mut Pages<'_, '_>,
        options: WriteOptions,
        results: &mut [Result<PageStatus, Error>],
    ) {
        // Looked up once for the call; reported only by the pages that
        // need it.
        let key = self.write_key(options.key_version);
        // The schedule borrowed before the chunk loop: see [`schedule`].
        let key = key.as_ref().map(|(version, local)| (*version, &**local));
        let fresh = self.fresh_lsn(options.lsn);
        // A lone page (the server's write hook hands them over one at a
        // time) in arrays of one: setting up a chunk of 64 took longer
        // than the page's checksum (about 0.4 µs, a tenth of its
        // encryption).
        if results.len() == 1 {
            self.encrypt_chunks::<1>(file, pages, fresh, key, results);
        } else {
            self.encrypt_chunks::<WRITE_CHUNK>(file, pages, fresh, key, results);
        }
    }

    /// [`encrypt_into`](Self::encrypt_into) in chunks of up to `CHUNK`
    /// pages, each one kernel batch.
    fn encrypt_chunks<const CHUNK: usize>(
        &self,
        file: PageFile,
        pages: &mut Pages<'_, '_>,
        fresh: bool,
        key: Result<(u32, &Aes), &PageFault>,
        results: &mut [Result<PageStatus, Error>],
    ) {
        let count = pages.len();
        let mut start = 0;
        while start < count {
            let mut slots: [Option<Slot<'_>>; CHUNK] = [const { None }; CHUNK];
            let n = pages.slots(start, &mut slots);
            if n == 0 {
                break;
            }
            // One draw from the operating system per chunk.
            let mut lsns = [[0u8; LSN_LEN]; CHUNK];
            let drawn = if fresh {
                fill_random(lsns[..n].as_flattened_mut())
            } else {
                Ok(())
            };
            // The checksum covers the header with the key version zeroed
            // and then the body (`[0, body.end)` for every page kind): the
            // kernel computes it as the CRC of the body with the header as
            // its prefix, while it encrypts the body (the VAES-512 CBC batch
            // inside its SIMD lanes). The checksum slot
            // is past the body, so storing it after encryption gives the
            // same bytes as storing it before.
            let mut jobs: [Job<'_>; CHUNK] =
                std::array::from_fn(|_| Job::in_place([0; 16], &mut []));
            let mut crc_slots: [Option<&mut [u8]>; CHUNK] = [const { None }; CHUNK];
            let mut queued = 0;
            for (i, slot) in slots[..n].iter_mut().enumerate() {
                let Some(slot) = slot.take() else { continue };
                let lsn = fresh.then(|| drawn.map(|()| lsns[i]));
                results[start + i] = match self.prepare_write(file, slot, key, lsn) {
                    Ok(Prepared::Skipped(status)) => Ok(status),
                    Ok(Prepared::Job { status, job, crc }) => {
                        jobs[queued] = job;
                        crc_slots[queued] = Some(crc);
                        queued += 1;
                        Ok(status)
                    }
                    Err(e) => Err(e),
                };
            }
            if let Ok((_, aes)) = key {
                aes.encrypt_batch(self.mode, &mut jobs[..queued]);
            }
            for (job, slot) in jobs.iter().zip(&mut crc_slots).take(queued) {
                // Every queued job asked for its checksum.
                if let (Some(crc), Some(slot)) = (job.crc(), slot) {
                    slot.copy_from_slice(&page_crc_finish(crc).to_le_bytes());
                }
            }
            start += n;
        }
    }

    /// One page of a write, up to its kernel job: every check first, then
    /// the header, the zeroed gap past an index page's `page_used` and
    /// the job. A page that fails a check is not touched. Inlined into
    /// both sizes of chunk: out of line, its result (a job, some 150
    /// bytes) went through memory, and batches of 64 pages ran 5% slower.
    #[inline(always)]
    fn prepare_write<'a>(
        &self,
        file: PageFile,
        slot: Slot<'a>,
        key: Result<(u32, &Aes), &PageFault>,
        lsn: Option<Result<[u8; LSN_LEN], getrandom::Error>>,
    ) -> Result<Prepared<'a>, Error> {
        let Slot { number, src, dst } = slot;
        let input: &[u8] = src.unwrap_or(dst);
        let layout = match self.classify(file, number, input)? {
            PageKind::Encrypted(layout) => layout,
            kind => {
                if let Some(src) = src {
                    dst.copy_from_slice(src);
                }
                return Ok(Prepared::Skipped(skipped(&kind)));
            }
        };
        let fault = |fault| self.page_error(file, number, fault);
        let size = || {
            fault(PageFault::Size {
                expected: self.geometry.block_size as usize,
                actual: input.len(),
            })
        };
        // The server zeroes the key-version field of every plaintext page
        // (see `AlreadyEncrypted`'s check in the module docs); a non-zero
        // one is a page encrypted already.
        match layout.try_key_version(input) {
            Some(0) => {}
            Some(key_version) => return Err(fault(PageFault::AlreadyEncrypted { key_version })),
            None => return Err(size()),
        }
        let (version, _) = key.map_err(|f| fault(f.clone()))?;
        // `None`: the LSN is kept.
        let fresh = lsn.transpose().map_err(crate::error::rng_error)?;
        let head_len = layout.body.start;
        let mut head = [0u8; HEADER_MAX];
        let (Some(head_dst), Some(head_src)) = (head.get_mut(..head_len), input.get(..head_len))
        else {
            return Err(size());
        };
        head_dst.copy_from_slice(head_src);
        if let Some(fresh) = fresh {
            head[..LSN_LEN].copy_from_slice(&fresh);
        }
        let lsn = lsn_of(&std::array::from_fn(|i| head[i]));
        let iv = iv_of(self.crypt.space, number, lsn);
        let checksummed = layout.checksummed_header(&head);
        let gap_end = input.len().checked_sub(CRC_LEN).ok_or_else(size)?;
        if layout.body.end > gap_end {
            return Err(size());
        }

        // Checked: now write.
        let (dst_head, rest) = dst.split_at_mut(head_len);
        let (body, after) = rest.split_at_mut(layout.body.len());
        let (gap, crc) = after.split_at_mut(gap_end - layout.body.end);
        let job = match src {
            None => Job::in_place(iv, body),
            Some(src) => Job::buf_to_buf(iv, &src[layout.body.clone()], body)?,
        };
        dst_head.copy_from_slice(&head[..head_len]);
        write_le32(dst_head, layout.key_version_at, version);
        // The server encrypts into a fresh buffer and never copies the
        // bytes past `page_used` (spec §5.4): zeroes here, so that nothing
        // of the caller's reaches the output there.
        gap.fill(0);
        Ok(Prepared::Job {
            status: PageStatus::Encrypted {
                key_version: version,
            },
            job: job.with_prefixed_crc(number, &checksummed[..head_len]),
            crc,
        })
    }

    /// The read path shared by every decryption entry point: `results[i]`
    /// is written for every page `i`.
    fn decrypt_into(
        &self,
        file: PageFile,
        pages: &mut Pages<'_, '_>,
        results: &mut [Result<PageStatus, Error>],
    ) {
        let mut keys = VersionKeys::default();
        let count = pages.len();
        for i in 0..count {
            let (number, input) = pages.input(i);
            let kind = self.geometry.classify(file, number, input);
            if let Ok(PageKind::Encrypted(layout)) = &kind
                && let Some(version) = layout.try_key_version(input)
                && keys.find(version).is_none()
                && keys.is_full()
            {
                // More distinct versions than the small table holds:
                // group the rest by version so that each is derived once.
                self.decrypt_grouped(file, pages, i, &keys, results);
                return;
            }
            let slot = pages.slot(i);
            results[i] = self.decrypt_one(file, slot, &kind, |version| {
                schedule(keys.get_or_derive(version, || self.page_key(version)))
            });
        }
    }

    /// Decrypts pages `from..` grouped by their stamped version, each
    /// version's key derived once (or taken from `known`).
    fn decrypt_grouped(
        &self,
        file: PageFile,
        pages: &mut Pages<'_, '_>,
        from: usize,
        known: &VersionKeys,
        results: &mut [Result<PageStatus, Error>],
    ) {
        // (version, page); 0, never a valid stamp, for the pages whose
        // version is not read.
        let mut order: Vec<(u32, usize)> = (from..pages.len())
            .map(|i| {
                let (number, input) = pages.input(i);
                let version = match self.geometry.classify(file, number, input) {
                    Ok(PageKind::Encrypted(layout)) => layout.try_key_version(input).unwrap_or(0),
                    _ => 0,
                };
                (version, i)
            })
            .collect();
        order.sort_unstable();
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let version = group[0].0;
            let key = match known.find(version) {
                Some(known) => known.clone(),
                None if version == 0 => Err(PageFault::KeyVersion(0)),
                None => self.page_key(version),
            };
            let key = schedule(&key);
            for &(_, i) in group {
                let (number, input) = pages.input(i);
                let kind = self.geometry.classify(file, number, input);
                let slot = pages.slot(i);
                results[i] = self.decrypt_one(file, slot, &kind, |_| key);
            }
        }
    }

    /// One page of a read: decrypt, zero the stamp, verify; a page that
    /// fails is restored (in place) or its `dst` gets a copy of `src`.
    fn decrypt_one<'k>(
        &self,
        file: PageFile,
        slot: Slot<'_>,
        kind: &Result<PageKind, PageFault>,
        key_for: impl FnOnce(u32) -> Result<&'k Aes, &'k PageFault>,
    ) -> Result<PageStatus, Error> {
        let Slot { number, src, dst } = slot;
        let restore = |dst: &mut [u8]| {
            if let Some(src) = src {
                dst.copy_from_slice(src);
            }
        };
        let layout = match kind {
            Ok(PageKind::Encrypted(layout)) => layout,
            Ok(kind) => {
                restore(dst);
                return Ok(skipped(kind));
            }
            Err(fault) => {
                restore(dst);
                return Err(self.page_error(file, number, fault.clone()));
            }
        };
        let input: &[u8] = src.unwrap_or(dst);
        let len = input.len();
        let fault = |fault| self.page_error(file, number, fault);
        let Some(version) = layout.try_key_version(input) else {
            restore(dst);
            return Err(fault(PageFault::Size {
                expected: self.geometry.block_size as usize,
                actual: len,
            }));
        };
        let aes = match key_for(version) {
            Ok(aes) => aes,
            Err(f) => {
                restore(dst);
                return Err(fault(f.clone()));
            }
        };
        // Classified, so one block long: a short page is refused, never
        // read at LSN 0.
        let Some(lsn) = try_page_lsn(input) else {
            restore(dst);
            return Err(fault(PageFault::Size {
                expected: self.geometry.block_size as usize,
                actual: len,
            }));
        };
        let iv = iv_of(self.crypt.space, number, lsn);
        let body = layout.body.clone();
        // The checksum covers the header with the key version zeroed, then
        // the plaintext: the kernel folds it as the plaintext leaves the
        // cipher, so the page is not read again to verify it.
        let checksummed = layout.checksummed_header(input);
        let Some(prefix) = checksummed.get(..body.start) else {
            restore(dst);
            return Err(fault(PageFault::Size {
                expected: self.geometry.block_size as usize,
                actual: len,
            }));
        };
        let crc = match src {
            None => {
                let io = InOut::in_place(&mut dst[body.clone()]);
                aes.decrypt_with_crc(self.mode, &iv, io, number, prefix)
            }
            Some(src) => {
                dst[..body.start].copy_from_slice(&src[..body.start]);
                let io = InOut::buf_to_buf(&src[body.clone()], &mut dst[body.clone()])?;
                let crc = aes.decrypt_with_crc(self.mode, &iv, io, number, prefix);
                dst[body.end..].copy_from_slice(&src[body.end..]);
                crc
            }
        };
        write_le32(dst, layout.key_version_at, 0);
        let computed = page_crc_finish(crc);
        let stored = read_le32(dst, len.saturating_sub(CRC_LEN));
        if stored == Some(computed) {
            return Ok(PageStatus::Encrypted {
                key_version: version,
            });
        }
        match src {
            // CBC and CTR are permutations: encrypting the output gives
            // back the exact input bytes.
            None => {
                aes.encrypt(self.mode, &iv, &mut dst[body]);
                write_le32(dst, layout.key_version_at, version);
            }
            Some(src) => dst.copy_from_slice(src),
        }
        Err(fault(PageFault::Checksum {
            stored: stored.unwrap_or(0),
            computed,
        }))
    }
}

/// Pages handed to the kernel per write batch: enough to keep every SIMD
/// lane busy, small enough for the stack.
const WRITE_CHUNK: usize = 64;

/// Distinct key versions a read keeps keys for without allocating.
const SMALL_VERSIONS: usize = 8;

/// One page of a call: in place (`src` is `None`), or read from `src` and
/// written to `dst`.
struct Slot<'a> {
    number: u32,
    src: Option<&'a [u8]>,
    dst: &'a mut [u8],
}

/// The pages of one call, in any of the forms the entry points take. The
/// contiguous forms have been checked to hold whole pages with page
/// numbers that fit in `u32`.
enum Pages<'p, 'a> {
    Refs(&'p mut [PageRef<'a>]),
    Run {
        first: u32,
        block: usize,
        buf: &'p mut [u8],
    },
    RunTo {
        first: u32,
        block: usize,
        src: &'p [u8],
        dst: &'p mut [u8],
    },
    One {
        number: u32,
        src: &'p [u8],
        dst: &'p mut [u8],
    },
}

impl Pages<'_, '_> {
    fn len(&self) -> usize {
        match self {
            Pages::Refs(pages) => pages.len(),
            Pages::Run { block, buf, .. } => buf.len() / block,
            Pages::RunTo { block, src, .. } => src.len() / block,
            Pages::One { .. } => 1,
        }
    }

    fn number(first: u32, i: usize) -> u32 {
        first.wrapping_add(i as u32)
    }

    /// Page `i`'s number and the bytes to read.
    fn input(&self, i: usize) -> (u32, &[u8]) {
        match self {
            Pages::Refs(pages) => (pages[i].number, &*pages[i].data),
            Pages::Run { first, block, buf } => {
                (Self::number(*first, i), &buf[i * block..(i + 1) * block])
            }
            Pages::RunTo {
                first, block, src, ..
            } => (Self::number(*first, i), &src[i * block..(i + 1) * block]),
            Pages::One { number, src, .. } => (*number, src),
        }
    }

    /// Page `i` as a slot.
    fn slot(&mut self, i: usize) -> Slot<'_> {
        match self {
            Pages::Refs(pages) => {
                let page = &mut pages[i];
                Slot {
                    number: page.number,
                    src: None,
                    dst: &mut *page.data,
                }
            }
            Pages::Run { first, block, buf } => Slot {
                number: Self::number(*first, i),
                src: None,
                dst: &mut buf[i * *block..(i + 1) * *block],
            },
            Pages::RunTo {
                first,
                block,
                src,
                dst,
            } => Slot {
                number: Self::number(*first, i),
                src: Some(&src[i * *block..(i + 1) * *block]),
                dst: &mut dst[i * *block..(i + 1) * *block],
            },
            Pages::One { number, src, dst } => Slot {
                number: *number,
                src: Some(src),
                dst,
            },
        }
    }

    /// Pages `start..` as slots, as many as `out` holds; returns how many.
    fn slots<'s>(&'s mut self, start: usize, out: &mut [Option<Slot<'s>>]) -> usize {
        let room = out.len();
        let mut n = 0;
        let mut put = |slot| {
            out[n] = Some(slot);
            n += 1;
        };
        match self {
            Pages::Refs(pages) => {
                for page in pages.iter_mut().skip(start).take(room) {
                    put(Slot {
                        number: page.number,
                        src: None,
                        dst: &mut *page.data,
                    });
                }
            }
            Pages::Run { first, block, buf } => {
                for (i, dst) in buf
                    .chunks_exact_mut(*block)
                    .enumerate()
                    .skip(start)
                    .take(room)
                {
                    put(Slot {
                        number: Self::number(*first, i),
                        src: None,
                        dst,
                    });
                }
            }
            Pages::RunTo {
                first,
                block,
                src,
                dst,
            } => {
                let pairs = src.chunks_exact(*block).zip(dst.chunks_exact_mut(*block));
                for (i, (src, dst)) in pairs.enumerate().skip(start).take(room) {
                    put(Slot {
                        number: Self::number(*first, i),
                        src: Some(src),
                        dst,
                    });
                }
            }
            Pages::One { number, src, dst } => {
                if start == 0 {
                    put(Slot {
                        number: *number,
                        src: Some(src),
                        dst,
                    });
                }
            }
        }
        n
    }
}

/// A page of a write, checked and set up.
enum Prepared<'a> {
    /// Left as it is (copied, out of place).
    Skipped(PageStatus),
    /// Header written; the body waits for the kernel, then the checksum.
    Job {
        status: PageStatus,
        job: Job<'a>,
        crc: &'a mut [u8],
    },
}

/// A version's local key, or why the provider could not give it.
type VersionKey<'c> = Result<LocalKey<'c>, PageFault>;

/// The AES schedule of a key lookup, borrowed; what the page loops take
/// (the write path does the same with its version beside the key). Taken
/// before a loop, not matched inside it: there the compiler hoisted the
/// match on [`LocalKey`] above the check for `Ok`, a branch on the unset
/// bytes of an `Err` (no wrong output, but valgrind memcheck fails on it).
fn schedule<'a>(key: &'a VersionKey<'_>) -> Result<&'a Aes, &'a PageFault> {
    key.as_ref().map(|local| &**local)
}

/// The keys of a read for up to [`SMALL_VERSIONS`] versions, each derived
/// (or its failure recorded) once.
#[derive(Default)]
struct VersionKeys<'c> {
    /// The versions of the filled entries of `keys`, in order (0 for none).
    versions: [u32; SMALL_VERSIONS],
    /// Filled in order. Apart from the versions, so that a key is written
    /// once, where it was made (a tuple of both was assembled on the stack
    /// and copied, and the read of the key then stalled on that copy).
    keys: [Option<VersionKey<'c>>; SMALL_VERSIONS],
}

impl<'c> VersionKeys<'c> {
    fn find(&self, version: u32) -> Option<&VersionKey<'c>> {
        let at = self.position(version)?;
        self.keys[at].as_ref()
    }

    fn is_full(&self) -> bool {
        self.keys.iter().all(Option::is_some)
    }

    /// The filled entry for `version`, if any.
    fn position(&self, version: u32) -> Option<usize> {
        self.keys
            .iter()
            .zip(&self.versions)
            .take_while(|(key, _)| key.is_some())
            .position(|(_, &v)| v == version)
    }

    /// The key for `version`; a version not seen yet takes a free entry.
    /// With none free (the read path groups such batches instead) it
    /// replaces the last one: never another version's key.
    fn get_or_derive(
        &mut self,
        version: u32,
        derive: impl FnOnce() -> VersionKey<'c>,
    ) -> &VersionKey<'c> {
        let at = self.position(version).unwrap_or_else(|| {
            let free = self.keys.iter().position(Option::is_none);
            let at = free.unwrap_or(SMALL_VERSIONS - 1);
            self.versions[at] = version;
            self.keys[at] = None;
            at
        });
        self.keys[at].get_or_insert_with(derive)
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
    if let Some(field) = at.checked_add(4).and_then(|end| page.get_mut(at..end)) {
        field.copy_from_slice(&value.to_le_bytes());
    }
}

fn check_lengths(src: &[u8], dst: &[u8]) -> Result<(), Error> {
    if src.len() != dst.len() {
        return Err(Error::LengthMismatch {
            src: src.len(),
            dst: dst.len(),
        });
    }
    Ok(())
}

/// Random bytes from the operating system's CSPRNG, for fresh LSNs.
#[cfg(not(test))]
fn fill_random(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(buf)
}

#[cfg(test)]
thread_local! {
    /// Makes this thread's draws fail, to test the error path.
    static RNG_FAILS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn fill_random(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    if RNG_FAILS.get() {
        return Err(getrandom::Error::UNSUPPORTED);
    }
    getrandom::fill(buf)
}

#[cfg(test)]
mod tests {
    use super::super::page::page_crc;
    use super::*;
    use crate::aria::page_iv;
    use crate::keys::{KeyMaterial, VersionedKeyProvider};

    const BS: usize = 4096;
    const VERSION: u32 = 3;

    fn cipher(mode: Mode, backend: Backend, transactional: bool) -> TableCipher {
        let mut keys = VersionedKeyProvider::new();
        keys.insert(1, VERSION, KeyMaterial::new(&[0x42; 32]).unwrap())
            .unwrap();
        cipher_with(keys, mode, transactional)
            .with_backend(backend)
            .unwrap()
    }

    /// A table of key 1 with the keys of `keys`.
    fn cipher_with(keys: VersionedKeyProvider, mode: Mode, transactional: bool) -> TableCipher {
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
        let crc = page_crc(page_no, &page[..layout.body.end]);
        write_le32(page, BS - CRC_LEN, crc);
        // Nothing of the caller's past `page_used`.
        page[layout.body.end..BS - CRC_LEN].fill(0);
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
            // A plaintext page's key version is zero.
            if n % 4 == 3 {
                page[8..12].fill(0);
            } else {
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
                5 => BS - CRC_LEN - 1,
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
                        let results = cipher.encrypt_pages_with(
                            file,
                            &mut refs(&mut got),
                            WriteOptions::exact(VERSION),
                        );
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
                            assert_eq!(read_le32(&got, (n + 1) * BS - CRC_LEN), Some(0xffff_fffd));
                        }
                        // Decryption verifies every checksum.
                        let results = cipher.decrypt_pages(file, &mut refs(&mut got));
                        assert!(results.iter().all(Result::is_ok), "{results:?}");
                    }
                }
            }
        }
    }

    /// A failed draw from the operating system's generator is
    /// `Error::Rng` for every page that needs a fresh LSN, and those pages
    /// are not touched, in place or out of place; pages that keep their
    /// LSN are still written.
    #[test]
    fn rng_failure_is_a_typed_error_and_touches_nothing() {
        let cipher = cipher(Mode::Ctr, Backend::active(), false);
        let plain = data_pages(3);
        let mut pool = plain.clone();
        RNG_FAILS.set(true);
        let results = cipher.encrypt_pages(PageFile::Data, &mut refs(&mut pool));
        let mut dst = vec![0x5a; plain.len()];
        let mut out = [const { Ok(PageStatus::Unwritten) }; 3];
        cipher
            .encrypt_contiguous_to(
                PageFile::Data,
                1,
                &plain,
                &mut dst,
                WriteOptions::new(),
                &mut out,
            )
            .unwrap();
        let kept = cipher.encrypt_pages_with(
            PageFile::Data,
            &mut refs(&mut pool.clone()),
            WriteOptions::exact(VERSION),
        );
        RNG_FAILS.set(false);
        for r in results.iter().chain(&out) {
            assert!(matches!(r, Err(Error::Rng { .. })), "{r:?}");
        }
        assert!(pool == plain);
        assert!(dst.iter().all(|&b| b == 0x5a));
        assert!(kept.iter().all(Result::is_ok));
    }

    /// However many threads ask at once, each version's local key is
    /// derived into one schedule that every caller shares: the first
    /// [`PINNED_KEYS`] pinned, the rest in the bounded cache, every version
    /// its own key, equal to one derived by a table with an empty cache.
    #[test]
    fn concurrent_key_lookups_share_one_schedule_per_version() {
        const VERSIONS: u32 = 12;
        let table = || {
            let mut keys = VersionedKeyProvider::new();
            for version in 1..=VERSIONS {
                keys.insert(1, version, KeyMaterial::new(&[version as u8; 32]).unwrap())
                    .unwrap();
            }
            cipher_with(keys, Mode::Cbc, true)
        };
        let shared = table();
        let threads = 8;
        let seen: Vec<Vec<Arc<Aes>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let shared = &shared;
                    scope.spawn(move || {
                        // Each thread asks in another order, twice.
                        let mut keys: Vec<Option<Arc<Aes>>> = vec![None; VERSIONS as usize];
                        for round in 0..2 {
                            for i in 0..VERSIONS {
                                let version = (i + t * 5 + round) % VERSIONS + 1;
                                let aes = shared.local_key(version).unwrap();
                                let slot = &mut keys[version as usize - 1];
                                if let Some(first) = slot {
                                    assert!(Arc::ptr_eq(first, &aes), "version {version} twice");
                                }
                                *slot = Some(aes);
                            }
                        }
                        keys.into_iter().map(Option::unwrap).collect()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let block = |aes: &Aes| {
            let mut block = [0x3c; 16];
            aes.encrypt_block(&mut block);
            block
        };
        let mut outputs = Vec::new();
        for version in 1..=VERSIONS {
            let i = version as usize - 1;
            for keys in &seen[1..] {
                assert!(
                    Arc::ptr_eq(&keys[i], &seen[0][i]),
                    "version {version}: two schedules"
                );
            }
            let fresh = table().local_key(version).unwrap();
            assert_eq!(
                block(&seen[0][i]),
                block(&fresh),
                "version {version}: another key"
            );
            outputs.push(block(&fresh));
        }
        outputs.sort_unstable();
        outputs.dedup();
        assert_eq!(outputs.len(), VERSIONS as usize, "versions sharing a key");
        let pinned = shared
            .cache
            .pinned
            .iter()
            .filter(|slot| slot.get().is_some());
        assert_eq!(pinned.count(), PINNED_KEYS);
        let cached = shared.cache.entries.read().unwrap().len();
        assert_eq!(cached, VERSIONS as usize - PINNED_KEYS);
    }

    /// A full key table asked for a version it does not hold gives that
    /// version's key, not the last entry's (another version's key, which
    /// would fail the page's checksum as if the page were damaged).
    #[test]
    fn a_full_key_table_never_hands_out_another_versions_key() {
        // Failed lookups are keys of their own version: easy to tell apart.
        let key = |version| -> VersionKey { Err(PageFault::KeyVersion(version)) };
        let of = |key: &VersionKey| match key {
            Err(PageFault::KeyVersion(version)) => *version,
            other => panic!("{other:?}"),
        };
        let mut keys = VersionKeys::default();
        for version in 1..=SMALL_VERSIONS as u32 {
            assert_eq!(of(keys.get_or_derive(version, || key(version))), version);
        }
        assert!(keys.is_full());
        assert_eq!(of(keys.get_or_derive(3, || key(0))), 3, "kept");
        let ninth = SMALL_VERSIONS as u32 + 1;
        assert_eq!(of(keys.get_or_derive(ninth, || key(ninth))), ninth);
        assert_eq!(keys.find(ninth).map(of), Some(ninth));
    }
}
