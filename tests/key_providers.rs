//! Key providers that can fail (a KMS that is down), seen from an engine
//! crate: absent keys and provider failures stay apart, and a failure
//! reaches the caller with the provider's own error as its cause.

use std::error::Error as _;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mariadb_aria_crypt::aria::{PageFile, PageStatus, TableCipher, TableHeader};
use mariadb_aria_crypt::kernel::Mode;
use mariadb_aria_crypt::keys::{FileKeyProvider, KeyMaterial, KeyProvider};
use mariadb_aria_crypt::policy::{self, SYSTEM_KEY_ID, TEMPORARY_KEY_ID, TableKind};
use mariadb_aria_crypt::{Error, PageFault};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
}

/// The KMS's own error type, which the engine wants back.
#[derive(Debug)]
struct KmsDown;

impl fmt::Display for KmsDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KMS unreachable")
    }
}

impl std::error::Error for KmsDown {}

/// A KMS-like provider over a key file that can be switched off.
struct Kms {
    keys: FileKeyProvider,
    down: AtomicBool,
}

impl Kms {
    fn new(case: &str) -> Self {
        Kms {
            keys: FileKeyProvider::from_path(fixture(case).join("keys.txt"), None).unwrap(),
            down: AtomicBool::new(false),
        }
    }

    fn check(&self, key_id: u32, version: Option<u32>) -> Result<(), Error> {
        if self.down.load(Ordering::Relaxed) {
            return Err(Error::key_provider(key_id, version, KmsDown));
        }
        Ok(())
    }
}

impl KeyProvider for Kms {
    fn latest_version(&self, key_id: u32) -> Option<u32> {
        self.try_latest_version(key_id).ok().flatten()
    }

    fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error> {
        self.check(key_id, Some(version))?;
        self.keys.key(key_id, version)
    }

    fn try_latest_version(&self, key_id: u32) -> Result<Option<u32>, Error> {
        self.check(key_id, None)?;
        self.keys.try_latest_version(key_id)
    }
}

/// A provider written before `try_latest_version` existed: it still
/// compiles and works.
struct Legacy(FileKeyProvider);

impl KeyProvider for Legacy {
    fn latest_version(&self, key_id: u32) -> Option<u32> {
        self.0.latest_version(key_id)
    }

    fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error> {
        self.0.key(key_id, version)
    }
}

/// Walks the `source()` chain to the KMS's error.
fn kms_cause(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if err.downcast_ref::<KmsDown>().is_some() {
            return true;
        }
        next = err.source();
    }
    false
}

#[test]
fn key_id_rule_falls_back_to_key_1_only_when_key_2_is_absent() {
    // tmp_key2's key file has key 2, tmp_key1's has key 1 only.
    let with_2 = Kms::new("tmp_key2");
    let without_2 = Kms::new("tmp_key1");
    let temp = TableKind::Temporary;
    assert_eq!(policy::try_key_id(temp, &with_2).unwrap(), TEMPORARY_KEY_ID);
    assert_eq!(policy::try_key_id(temp, &without_2).unwrap(), SYSTEM_KEY_ID);

    with_2.down.store(true, Ordering::Relaxed);
    let err = policy::try_key_id(temp, &with_2).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyProvider {
                key_id: TEMPORARY_KEY_ID,
                version: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(kms_cause(&err), "the KMS error is the source: {err:?}");
    // An ordinary table never asks: key 1 whatever the provider says.
    assert_eq!(
        policy::try_key_id(TableKind::User, &with_2).unwrap(),
        SYSTEM_KEY_ID
    );
    // The old rule silently put the temporary table on key 1.
    #[allow(deprecated)]
    let old = policy::key_id(temp, &with_2);
    assert_eq!(old, SYSTEM_KEY_ID);
}

#[test]
fn opening_a_temporary_table_fails_when_the_provider_fails() {
    let dir = fixture("tmp_key2");
    let header = TableHeader::read(dir.join("tmp1.MAI")).unwrap();
    assert!(header.is_temporary());
    let kms = Arc::new(Kms::new("tmp_key2"));
    kms.down.store(true, Ordering::Relaxed);
    let err = TableCipher::for_table(&header, Mode::Cbc, kms.clone()).unwrap_err();
    assert!(matches!(err, Error::KeyProvider { .. }), "{err:?}");
    assert!(kms_cause(&err));
    kms.down.store(false, Ordering::Relaxed);
    let cipher = TableCipher::for_table(&header, Mode::Cbc, kms).unwrap();
    assert_eq!(cipher.key_id(), TEMPORARY_KEY_ID);
}

/// Data page 1 of `cbc_trans_256` and a cipher for it over `kms`.
fn page_and_cipher(kms: Arc<Kms>) -> (Vec<u8>, TableCipher) {
    let dir = fixture("cbc_trans_256");
    let header = TableHeader::read(dir.join("t1.MAI")).unwrap();
    let bs = header.geometry.block_size as usize;
    let page = std::fs::read(dir.join("t1.MAD")).unwrap()[bs..2 * bs].to_vec();
    (
        page,
        TableCipher::for_table(&header, Mode::Cbc, kms).unwrap(),
    )
}

#[test]
fn a_failing_provider_reaches_the_page_caller_with_its_cause() {
    let kms = Arc::new(Kms::new("cbc_trans_256"));
    let (original, cipher) = page_and_cipher(kms.clone());
    kms.down.store(true, Ordering::Relaxed);

    let mut page = original.clone();
    let err = cipher
        .decrypt_page(PageFile::Data, 1, &mut page)
        .unwrap_err();
    assert!(
        matches!(
            err.page_fault(),
            Some(PageFault::KeyProvider {
                key_id: 1,
                version: Some(1),
                ..
            })
        ),
        "{err:?}"
    );
    assert!(kms_cause(&err), "decrypt keeps the cause: {err:?}");
    assert!(err.to_string().contains("KMS unreachable"), "{err}");
    assert_eq!(page, original, "a failed page is unchanged");

    // Writing asks for the latest version first (of a plaintext page: an
    // encrypted one is refused before any key is asked for).
    kms.down.store(false, Ordering::Relaxed);
    cipher.decrypt_page(PageFile::Data, 1, &mut page).unwrap();
    let plaintext = page.clone();
    kms.down.store(true, Ordering::Relaxed);
    let err = cipher
        .encrypt_page(PageFile::Data, 1, &mut page)
        .unwrap_err();
    assert!(
        matches!(
            err.page_fault(),
            Some(PageFault::KeyProvider { version: None, .. })
        ),
        "{err:?}"
    );
    assert!(kms_cause(&err), "encrypt keeps the cause: {err:?}");
    assert!(
        page == plaintext,
        "a failed write leaves the page unchanged"
    );
    assert!(matches!(
        cipher.latest_version(),
        Err(Error::KeyProvider { .. })
    ));

    kms.down.store(false, Ordering::Relaxed);
    cipher.encrypt_page(PageFile::Data, 1, &mut page).unwrap();
    assert_eq!(
        cipher.decrypt_page(PageFile::Data, 1, &mut page).unwrap(),
        PageStatus::Encrypted { key_version: 1 }
    );
}

#[test]
fn an_absent_key_is_not_a_provider_failure() {
    let kms = Arc::new(Kms::new("cbc_trans_256"));
    let (original, _) = page_and_cipher(kms.clone());
    let dir = fixture("cbc_trans_256");
    let header = TableHeader::read(dir.join("t1.MAI")).unwrap();
    let crypt = header.crypt.unwrap();
    let cipher = TableCipher::new(header.geometry, crypt, 9, Mode::Cbc, kms);
    let mut page = original.clone();
    let err = cipher
        .decrypt_page(PageFile::Data, 1, &mut page)
        .unwrap_err();
    assert!(
        matches!(err.page_fault(), Some(PageFault::NoKey { key_id: 9 })),
        "{err:?}"
    );
    assert!(err.source().is_none());
    assert_eq!(page, original);
}

/// A provider whose own store fails with an error of the crate's other
/// kinds (here I/O: its key file went away after it opened).
struct Unreadable(FileKeyProvider);

impl KeyProvider for Unreadable {
    fn latest_version(&self, key_id: u32) -> Option<u32> {
        self.0.latest_version(key_id)
    }

    fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error> {
        self.0.key(key_id, version)
    }

    fn try_latest_version(&self, _key_id: u32) -> Result<Option<u32>, Error> {
        Err(Error::Io {
            path: PathBuf::from("/kms/keys.txt"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    }
}

/// Every write asks for the latest version first; a provider error that is
/// neither "no such key" nor a provider failure used to become
/// `PageFault::NoKey`, losing the error and calling the key absent.
#[test]
fn a_write_keeps_a_provider_error_of_any_kind_as_its_cause() {
    let dir = fixture("cbc_trans_256");
    let keys = FileKeyProvider::from_path(dir.join("keys.txt"), None).unwrap();
    let header = TableHeader::read(dir.join("t1.MAI")).unwrap();
    let crypt = header.crypt.unwrap();
    let reader = TableCipher::for_table(&header, Mode::Cbc, Arc::new(keys)).unwrap();
    let writer = TableCipher::new(
        header.geometry,
        crypt,
        1,
        Mode::Cbc,
        Arc::new(Unreadable(
            FileKeyProvider::from_path(dir.join("keys.txt"), None).unwrap(),
        )),
    );
    let bs = header.geometry.block_size as usize;
    let mut plaintext = std::fs::read(dir.join("t1.MAD")).unwrap()[bs..2 * bs].to_vec();
    reader
        .decrypt_page(PageFile::Data, 1, &mut plaintext)
        .unwrap();

    let mut page = plaintext.clone();
    let one = writer
        .encrypt_page(PageFile::Data, 1, &mut page)
        .unwrap_err();
    let mut batch = plaintext.clone();
    let mut refs = [mariadb_aria_crypt::aria::PageRef {
        number: 1,
        data: &mut batch,
    }];
    let many = writer
        .encrypt_pages(PageFile::Data, &mut refs)
        .pop()
        .expect("one result per page")
        .unwrap_err();
    for err in [one, many] {
        assert!(
            matches!(
                err.page_fault(),
                Some(PageFault::KeyProvider {
                    key_id: 1,
                    version: None,
                    ..
                })
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), mariadb_aria_crypt::ErrorKind::KeyProvider);
        let cause = err.source().expect("the provider's error is the cause");
        assert!(
            matches!(cause.downcast_ref::<Error>(), Some(Error::Io { .. })),
            "{cause:?}"
        );
    }
    assert_eq!(page, plaintext, "a failed write leaves the page unchanged");
    assert_eq!(batch, plaintext, "a failed write leaves the page unchanged");
}

#[test]
fn providers_without_try_latest_version_keep_working() {
    let dir = fixture("cbc_trans_256");
    let legacy = Legacy(FileKeyProvider::from_path(dir.join("keys.txt"), None).unwrap());
    assert_eq!(legacy.try_latest_version(1).unwrap(), Some(1));
    assert_eq!(legacy.try_latest_version(5).unwrap(), None);
    // Through Arc and & the override is not lost.
    let kms = Arc::new(Kms::new("cbc_trans_256"));
    kms.down.store(true, Ordering::Relaxed);
    let shared: Arc<dyn KeyProvider> = kms.clone();
    assert!(shared.try_latest_version(1).is_err());
    assert!(KeyProvider::try_latest_version(&&*shared, 1).is_err());

    let (original, _) = page_and_cipher(Arc::new(Kms::new("cbc_trans_256")));
    let header = TableHeader::read(dir.join("t1.MAI")).unwrap();
    let cipher = TableCipher::for_table(&header, Mode::Cbc, Arc::new(legacy)).unwrap();
    let mut page = original;
    assert_eq!(
        cipher.decrypt_page(PageFile::Data, 1, &mut page).unwrap(),
        PageStatus::Encrypted { key_version: 1 }
    );
}

#[test]
fn key_files_parse_from_memory_without_a_path() {
    let text = std::fs::read(fixture("cbc_trans_256").join("keys.txt")).unwrap();
    let file = FileKeyProvider::from_bytes(&text, None).unwrap();
    assert_eq!(file.key_ids().collect::<Vec<_>>(), [1, 2, 7]);
    let versioned = mariadb_aria_crypt::keys::VersionedKeyProvider::from_bytes(
        b"3;2;000102030405060708090a0b0c0d0e0f\n",
        None,
    )
    .unwrap();
    assert_eq!(versioned.try_latest_version(3).unwrap(), Some(2));

    let err = FileKeyProvider::from_bytes(b"1;00\n", None).unwrap_err();
    assert_eq!(err.path(), None, "no file, no path: {err:?}");
    assert_eq!(err.kind(), mariadb_aria_crypt::ErrorKind::KeyFile);
    assert!(err.is_key_problem());
    assert_eq!(
        err.to_string(),
        "key file line 1: key of 1 bytes (AES keys are 16, 24 or 32 bytes)"
    );
    let err = FileKeyProvider::parse(b"1;00\n", None, "keys.txt").unwrap_err();
    assert_eq!(err.path(), Some(Path::new("keys.txt")));
}

#[test]
fn key_material_is_wiped() {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<KeyMaterial>();
    let mut key = KeyMaterial::new(&[7; 32]).unwrap();
    zeroize::Zeroize::zeroize(&mut key);
    assert!(key.is_empty());
    assert_eq!(key.as_bytes(), b"");
}
