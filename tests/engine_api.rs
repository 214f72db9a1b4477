//! The library as an engine crate uses it: one import, one call to open a
//! table, file names in errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mariadb_aria_crypt::HeaderFault;
use mariadb_aria_crypt::prelude::*;

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
}

#[test]
fn open_reads_the_header_and_names_both_files_in_errors() {
    let dir = fixture("cbc_trans_256");
    let keys = Arc::new(FileKeyProvider::from_path(dir.join("keys.txt"), None).unwrap());
    let cipher = TableCipher::open(dir.join("t1.MAI"), Mode::Cbc, keys).unwrap();
    assert_eq!(cipher.key_id(), 1);
    let bs = cipher.geometry().block_size as usize;

    let data = std::fs::read(dir.join("t1.MAD")).unwrap();
    let mut page = data[bs..2 * bs].to_vec();
    assert_eq!(
        cipher.decrypt_page(PageFile::Data, 1, &mut page).unwrap(),
        PageStatus::Encrypted { key_version: 1 }
    );
    let mut damaged = data[bs..2 * bs].to_vec();
    damaged[99] ^= 1;
    let err = cipher
        .decrypt_page(PageFile::Data, 1, &mut damaged)
        .unwrap_err();
    assert_eq!(err.path(), Some(dir.join("t1.MAD").as_path()));
    assert!(
        err.to_string()
            .starts_with(&format!("{} page 1: ", dir.join("t1.MAD").display())),
        "{err}"
    );
    let index = std::fs::read(dir.join("t1.MAI")).unwrap();
    let first = cipher.geometry().keystart as usize / bs;
    let mut damaged = index[first * bs..(first + 1) * bs].to_vec();
    damaged[99] ^= 1;
    let err = cipher
        .decrypt_page(PageFile::Index, first as u32, &mut damaged)
        .unwrap_err();
    assert_eq!(err.path(), Some(dir.join("t1.MAI").as_path()));
}

#[test]
fn open_names_the_file_of_a_table_that_is_not_encrypted() {
    let mai = fixture("datadir/db1/dyn1.MAI");
    let keys = Arc::new(DebugKeyProvider::default());
    let err = TableCipher::open(&mai, Mode::Cbc, keys.clone()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Header { path: Some(path), fault: HeaderFault::NotEncrypted } if *path == mai
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Header);
    let err = TableCipher::open(fixture("no/such.MAI"), Mode::Cbc, keys).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.path(), Some(fixture("no/such.MAI").as_path()));
}
