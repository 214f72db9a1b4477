//! The library's diagnosis on fixture tables: every way a page can fail its
//! checksum (wrong key, wrong key id, wrong algorithm, a page of another
//! table, the wrong page number, a flipped bit) is told apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mariadb_aria_crypt::aria::{PageFile, TableCipher, TableHeader};
use mariadb_aria_crypt::diagnose::{Cause, Diagnoser, Page};
use mariadb_aria_crypt::kernel::Mode;
use mariadb_aria_crypt::keys::{FileKeyProvider, KeyMaterial, KeyProvider, VersionedKeyProvider};
use mariadb_aria_crypt::{ErrorKind, PageFault};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
}

/// A table's header, data file and key file.
struct Table {
    header: TableHeader,
    data: Vec<u8>,
    keys: Arc<FileKeyProvider>,
}

impl Table {
    fn open(case: &str) -> Self {
        let dir = fixture(case);
        Table {
            header: TableHeader::read(dir.join("t1.MAI")).unwrap(),
            data: std::fs::read(dir.join("t1.MAD")).unwrap(),
            keys: Arc::new(FileKeyProvider::from_path(dir.join("keys.txt"), None).unwrap()),
        }
    }

    fn bs(&self) -> usize {
        self.header.geometry.block_size as usize
    }

    fn page(&self, number: usize) -> &[u8] {
        &self.data[number * self.bs()..(number + 1) * self.bs()]
    }

    /// A cipher for the table with this key id, algorithm and provider.
    fn cipher(&self, key_id: u32, mode: Mode, keys: Arc<dyn KeyProvider>) -> TableCipher {
        let crypt = self.header.crypt.unwrap();
        TableCipher::new(self.header.geometry, crypt, key_id, mode, keys)
    }

    /// A diagnoser with this key id and algorithm, trying the key file's
    /// other key ids.
    fn diagnoser(&self, key_id: u32, mode: Mode) -> Diagnoser {
        Diagnoser::new(self.cipher(key_id, mode, self.keys.clone()))
            .with_key_ids(self.keys.key_ids())
    }

    fn check(&self, diagnoser: &Diagnoser, data: &[u8]) -> Vec<(u32, Cause)> {
        let diagnosis = diagnoser.check_file(PageFile::Data, data);
        diagnosis
            .causes()
            .map(|(file, page, cause)| {
                assert_eq!(file, PageFile::Data);
                (page, cause)
            })
            .collect()
    }
}

/// Data pages 1..=13 of the standard fixtures are encrypted.
const DATA_PAGES: usize = 13;

#[test]
fn a_clean_table_verifies_and_its_algorithm_is_detected() {
    for (case, mode) in [("cbc_trans_256", Mode::Cbc), ("ctr_trans_256", Mode::Ctr)] {
        let t = Table::open(case);
        let d = t.diagnoser(1, Mode::Cbc);
        let pages = Diagnoser::pages(PageFile::Data, &t.data, t.bs());
        let detection = d.detect_mode(&pages);
        assert_eq!(detection.mode, Some(mode), "{case}");
        assert_eq!(detection.verified, DATA_PAGES);
        assert_eq!(detection.sampled, DATA_PAGES, "the bitmap page is skipped");

        let d = t.diagnoser(1, mode);
        let diagnosis = d.check_file(PageFile::Data, &t.data);
        assert!(diagnosis.is_clean(), "{case}: {diagnosis:?}");
        assert_eq!(diagnosis.verified, DATA_PAGES);
        assert_eq!(diagnosis.unencrypted, 1);
        assert_eq!(diagnosis.key_problem(), None);
    }
}

#[test]
fn wrong_algorithm() {
    let t = Table::open("ctr_trans_256");
    let d = t.diagnoser(1, Mode::Cbc);
    let causes = t.check(&d, &t.data);
    assert_eq!(causes.len(), DATA_PAGES);
    assert!(
        causes
            .iter()
            .all(|(_, c)| *c == Cause::Algorithm(Mode::Ctr))
    );
    let diagnosis = d.check_file(PageFile::Data, &t.data);
    assert_eq!(diagnosis.key_problem(), Some(Cause::Algorithm(Mode::Ctr)));
    assert_eq!(diagnosis.damaged_pages().count(), 0);
}

#[test]
fn wrong_key_id() {
    let t = Table::open("cbc_trans_256");
    // Key id 2 is in the key file, 9 is not: both verify with key id 1.
    for wrong in [2, 9] {
        let diagnosis = t
            .diagnoser(wrong, Mode::Cbc)
            .check_file(PageFile::Data, &t.data);
        let key_1 = Cause::KeyId {
            key_id: 1,
            mode: Mode::Cbc,
        };
        assert_eq!(diagnosis.key_problem(), Some(key_1), "key id {wrong}");
        assert_eq!(diagnosis.failures.len(), DATA_PAGES);
    }
    // Without the other key ids to try: key id 9 is missing.
    let lone = Diagnoser::new(t.cipher(9, Mode::Cbc, t.keys.clone()));
    assert_eq!(
        lone.check_file(PageFile::Data, &t.data).key_problem(),
        Some(Cause::MissingKeyId(9))
    );
}

#[test]
fn wrong_key() {
    let t = Table::open("cbc_trans_256");
    // Key 1 with other bytes, as a key file from another server.
    let mut other = VersionedKeyProvider::new();
    other
        .insert(1, 1, KeyMaterial::new(&[0x5a; 32]).unwrap())
        .unwrap();
    let d = Diagnoser::new(t.cipher(1, Mode::Cbc, Arc::new(other)));
    let diagnosis = d.check_file(PageFile::Data, &t.data);
    assert_eq!(diagnosis.verified, 0);
    assert_eq!(diagnosis.key_problem(), Some(Cause::WrongKey));
    assert_eq!(
        diagnosis.damaged_pages().count(),
        0,
        "nothing verifies: the key, not every page, is wrong"
    );
    let mut page = t.page(1).to_vec();
    let err = d
        .cipher()
        .decrypt_page(PageFile::Data, 1, &mut page)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Checksum);
    assert!(!err.is_key_problem(), "a checksum alone does not say");
    assert!(matches!(err.page_fault(), Some(PageFault::Checksum { .. })));
    assert_eq!(err.page(), Some((PageFile::Data, 1)));
}

#[test]
fn a_flipped_bit_is_damage() {
    let t = Table::open("cbc_trans_256");
    let mut data = t.data.clone();
    data[5 * t.bs() + 1234] ^= 0x04;
    let d = t.diagnoser(1, Mode::Cbc);
    let diagnosis = d.check_file(PageFile::Data, &data);
    assert_eq!(diagnosis.verified, DATA_PAGES - 1);
    assert_eq!(
        diagnosis.damaged_pages().collect::<Vec<_>>(),
        [(PageFile::Data, 5)]
    );
    assert!(matches!(
        t.check(&d, &data)[..],
        [(5, Cause::Damaged { .. })]
    ));
    assert_eq!(diagnosis.key_problem(), None);
}

#[test]
fn a_page_of_another_table_is_damage() {
    let t = Table::open("cbc_trans_256");
    // Same key file, same algorithm, other table (other per-table key).
    let other = Table::open("cbc_nontrans_256");
    assert_eq!(other.bs(), t.bs());
    let mut data = t.data.clone();
    let bs = t.bs();
    data[3 * bs..4 * bs].copy_from_slice(other.page(3));
    let d = t.diagnoser(1, Mode::Cbc);
    let diagnosis = d.check_file(PageFile::Data, &data);
    assert_eq!(
        diagnosis.damaged_pages().collect::<Vec<_>>(),
        [(PageFile::Data, 3)]
    );
    assert_eq!(diagnosis.key_problem(), None);
}

#[test]
fn right_bytes_under_the_wrong_page_number() {
    let t = Table::open("cbc_trans_256");
    let d = t.diagnoser(1, Mode::Cbc);
    // Page 4 read as page 6 (an offset off by two blocks).
    let misread = Page {
        file: PageFile::Data,
        number: 6,
        data: t.page(4),
    };
    let diagnosis = d.check([misread]);
    assert_eq!(
        diagnosis.failures,
        [(PageFile::Data, 6, Cause::PageNumber(4))]
    );
    assert_eq!(diagnosis.damaged_pages().count(), 0);
    assert_eq!(diagnosis.key_problem(), None);
    assert_eq!(Cause::PageNumber(4).name(), "wrong_page_number");
}

#[test]
fn a_partial_last_page_is_truncated() {
    let t = Table::open("cbc_trans_256");
    let d = t.diagnoser(1, Mode::Cbc);
    let cut = &t.data[..t.data.len() - 100];
    let diagnosis = d.check_file(PageFile::Data, cut);
    let causes: Vec<_> = diagnosis.causes().collect();
    assert_eq!(
        causes,
        [(
            PageFile::Data,
            DATA_PAGES as u32,
            Cause::Truncated {
                have: t.bs() as u64 - 100
            }
        )]
    );
}

#[test]
fn a_block_size_that_does_not_match_is_found() {
    let t = Table::open("cbc_trans_256");
    let mut geometry = t.header.geometry;
    geometry.block_size = 16384;
    geometry.keystart = 16384;
    let crypt = t.header.crypt.unwrap();
    let cipher = TableCipher::new(geometry, crypt, 1, Mode::Cbc, t.keys.clone());
    let d = Diagnoser::new(cipher);
    assert_eq!(d.check_file(PageFile::Data, &t.data).verified, 0);
    assert_eq!(d.probe_block_size(&t.data), Some(8192));
    let right = t.diagnoser(1, Mode::Cbc);
    assert_eq!(right.probe_block_size(&t.data), None);
}
