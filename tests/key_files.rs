//! Key files as MariaDB 10.11 reads them (spec §3.3, §3.4, §7.8): the line
//! rules, the `Salted__` encrypted files and `file_key_management_filekey`,
//! the versioned key file of this crate, `debug_key_management`, and that no
//! provider prints a key.
//!
//! The line table below was checked against `mariadbd` 10.11.19 (Debian 12):
//! every row the server accepts, it accepts with the same key ids, and every
//! row it refuses, it refuses on the same line with the matching message
//! (see `dump_line_table_for_server_check`).

mod common;

use std::path::{Path, PathBuf};

use mariadb_aria_crypt::keys::{
    DebugKeyProvider, FileKeyProvider, KeyMaterial, KeyProvider, VersionedKeyProvider,
};
use mariadb_aria_crypt::{Error, KeyFileFault};
use proptest::prelude::*;

const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const K2: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
const K7: &str = "f5502320f8429037b8daef761b189d12";
const K24: &str = "8899aabbccddeeff0011223344556677c0c1c2c3c4c5c6c7";
const SECRET: &str = "aria-fixture-filekey-secret";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn origin() -> &'static Path {
    Path::new("test-keys.txt")
}

/// The fault, line and path of a key file error.
fn fault(err: Error) -> (KeyFileFault, Option<usize>, PathBuf) {
    match err {
        Error::KeyFile { path, line, fault } => (fault, line, path),
        other => panic!("expected a key file error, got {other:?}"),
    }
}

/// (id, key bytes) of every key of a file provider.
fn file_keys(p: &FileKeyProvider) -> Vec<(u32, Vec<u8>)> {
    p.key_ids()
        .map(|id| {
            assert_eq!(p.latest_version(id), Some(1));
            (id, p.key(id, 1).unwrap().as_bytes().to_vec())
        })
        .collect()
}

/// A temporary file, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, content: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("aria-key-files-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Plain key files: the line table (spec §3.3, parser.cc `parse_line`)
// ---------------------------------------------------------------------------

/// Expected outcome of a key file: its keys, or a fault with its line.
enum Expect {
    Keys(&'static [(u32, &'static str)]),
    Fault(KeyFileFault, Option<usize>),
}

use Expect::{Fault, Keys};

/// (name, file text, expected result as `file_key_management` reads it).
fn line_table() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let k16 = &K1[..32];
    let t = |s: String| s.into_bytes();
    vec![
        (
            "two keys",
            t(format!("1;{K1}\n2;{K2}\n")),
            Keys(&[(1, K1), (2, K2)]),
        ),
        (
            "comment and empty line",
            t(format!("# c\n\n1;{K1}\n")),
            Keys(&[(1, K1)]),
        ),
        (
            "indented comment",
            t(format!("  \t# c\n1;{K1}\n")),
            Keys(&[(1, K1)]),
        ),
        (
            "blanks-only line",
            t(format!(" \t\r\x0b\x0c\n1;{K1}\n")),
            Keys(&[(1, K1)]),
        ),
        (
            "every leading blank",
            t(format!(" \t\r\x0b\x0c1;{K1}\n")),
            Keys(&[(1, K1)]),
        ),
        (
            "CRLF line ends",
            t(format!("1;{K1}\r\n2;{K2}\r\n")),
            Keys(&[(1, K1), (2, K2)]),
        ),
        ("no final newline", t(format!("1;{K1}")), Keys(&[(1, K1)])),
        (
            "comment as last line without newline",
            t(format!("1;{K1}\n#")),
            Keys(&[(1, K1)]),
        ),
        (
            "blanks as last line without newline",
            t(format!("1;{K1}\n   ")),
            Fault(KeyFileFault::Syntax, Some(2)),
        ),
        (
            "CR as last line without newline",
            t(format!("1;{K1}\n\r")),
            Fault(KeyFileFault::Syntax, Some(2)),
        ),
        (
            "trailing comment",
            t(format!("1;{K1} # note\n")),
            Keys(&[(1, K1)]),
        ),
        (
            "trailing non-hex text",
            t(format!("1;{K1}g\n2;{K2};x\n")),
            Keys(&[(1, K1), (2, K2)]),
        ),
        (
            "hex after a blank is ignored",
            t(format!("1;{k16} {k16}\n")),
            Keys(&[(1, "000102030405060708090a0b0c0d0e0f")]),
        ),
        (
            "upper-case hex",
            t(format!("1;{}\n", K7.to_uppercase())),
            Keys(&[(1, K7)]),
        ),
        (
            "mixed-case hex",
            t(format!("1;{}{}\n", &K1[..32].to_uppercase(), &K1[32..])),
            Keys(&[(1, K1)]),
        ),
        ("128-bit key", t(format!("1;{K7}\n")), Keys(&[(1, K7)])),
        ("192-bit key", t(format!("1;{K24}\n")), Keys(&[(1, K24)])),
        (
            "leading zeros in the id",
            t(format!("0001;{K1}\n")),
            Keys(&[(1, K1)]),
        ),
        (
            "largest id",
            t(format!("1;{K1}\n4294967295;{K2}\n")),
            Keys(&[(1, K1), (4294967295, K2)]),
        ),
        (
            "id overflow",
            t(format!("1;{K1}\n4294967296;{K2}\n")),
            Fault(KeyFileFault::KeyId, Some(2)),
        ),
        (
            "long id overflow",
            t(format!("1;{K1}\n99999999999999999999;{K2}\n")),
            Fault(KeyFileFault::KeyId, Some(2)),
        ),
        (
            "id 0",
            t(format!("0;{K1}\n")),
            Fault(KeyFileFault::KeyId, Some(1)),
        ),
        (
            "id 000",
            t(format!("1;{K1}\n000;{K1}\n")),
            Fault(KeyFileFault::KeyId, Some(2)),
        ),
        (
            "blank before ;",
            t(format!("1 ;{K1}\n")),
            Fault(KeyFileFault::Syntax, Some(1)),
        ),
        (
            "colon instead of ;",
            t(format!("1:{K1}\n")),
            Fault(KeyFileFault::Syntax, Some(1)),
        ),
        (
            "id alone",
            t("1\n".to_string()),
            Fault(KeyFileFault::Syntax, Some(1)),
        ),
        (
            "letter first",
            t(format!("a;{K1}\n")),
            Fault(KeyFileFault::Syntax, Some(1)),
        ),
        (
            "sign first",
            t(format!("1;{K1}\n-2;{K2}\n")),
            Fault(KeyFileFault::Syntax, Some(2)),
        ),
        (
            "non-ASCII first",
            b"\xc2\xa01;00\n".to_vec(),
            Fault(KeyFileFault::Syntax, Some(1)),
        ),
        (
            "empty key",
            t("1;\n".to_string()),
            Fault(KeyFileFault::KeyLength(0), Some(1)),
        ),
        (
            "blank before the key",
            t(format!("1; {K1}\n")),
            Fault(KeyFileFault::KeyLength(0), Some(1)),
        ),
        (
            "odd hex digit out",
            t(format!("1;{K1}0\n")),
            Fault(KeyFileFault::KeyHex, Some(1)),
        ),
        (
            "33-byte key",
            t(format!("1;{K1}00\n")),
            Fault(KeyFileFault::KeyLength(33), Some(1)),
        ),
        (
            "15-byte key",
            t(format!("1;{}\n", &K1[..30])),
            Fault(KeyFileFault::KeyLength(15), Some(1)),
        ),
        (
            "20-byte key",
            t(format!("1;{}\n", &K1[..40])),
            Fault(KeyFileFault::KeyLength(20), Some(1)),
        ),
        (
            "versioned line",
            t(format!("1;2;{K1}\n")),
            Fault(KeyFileFault::KeyHex, Some(1)),
        ),
        (
            "later line replaces",
            t(format!("1;{K1}\n1;{K2}\n")),
            Keys(&[(1, K2)]),
        ),
        (
            "key 1 missing",
            t(format!("2;{K2}\n")),
            Fault(KeyFileFault::MissingKey1, None),
        ),
        (
            "empty file",
            Vec::new(),
            Fault(KeyFileFault::MissingKey1, None),
        ),
        (
            "comments only",
            t("# a\n\n".to_string()),
            Fault(KeyFileFault::MissingKey1, None),
        ),
        (
            "NUL ends the text",
            t(format!("1;{K1}\n2;{K2}\0\n3;{K2}\n")),
            Keys(&[(1, K1), (2, K2)]),
        ),
        (
            "NUL at a line start",
            t(format!("1;{K1}\n\0{K2}\n")),
            Keys(&[(1, K1)]),
        ),
        (
            "NUL after blanks",
            t(format!("1;{K1}\n  \0\n")),
            Fault(KeyFileFault::Syntax, Some(2)),
        ),
        (
            "NUL inside a key",
            t(format!("1;{}\0{}\n", &K1[..16], &K1[16..])),
            Fault(KeyFileFault::KeyLength(8), Some(1)),
        ),
        (
            "NUL ends a whole key",
            t(format!("1;{k16}\0{k16}\n")),
            Keys(&[(1, "000102030405060708090a0b0c0d0e0f")]),
        ),
        (
            "NUL before key 1",
            t(format!("\0\n1;{K1}\n")),
            Fault(KeyFileFault::MissingKey1, None),
        ),
        (
            "line numbers count every line",
            t(format!("# a\n\n1;{K1}\nx\n")),
            Fault(KeyFileFault::Syntax, Some(4)),
        ),
        (
            "first fault wins",
            t(format!("1;{K1}\nbad\n0;{K1}\n")),
            Fault(KeyFileFault::Syntax, Some(2)),
        ),
        (
            "Salted__ alone is plain text",
            t("Salted__".to_string()),
            Fault(KeyFileFault::Syntax, Some(1)),
        ),
    ]
}

#[test]
fn line_table_as_mariadb() {
    for (name, text, expect) in line_table() {
        let got = FileKeyProvider::parse(&text, None, origin());
        match (expect, got) {
            (Keys(keys), Ok(p)) => {
                let want: Vec<(u32, Vec<u8>)> = keys.iter().map(|&(id, k)| (id, hex(k))).collect();
                assert_eq!(file_keys(&p), want, "{name}");
            }
            (Fault(want, line), Err(err)) => {
                let (got, got_line, path) = fault(err);
                assert_eq!((got, got_line), (want, line), "{name}");
                assert_eq!(path, origin(), "{name}");
            }
            (Keys(_), Err(err)) => panic!("{name}: expected keys, got {err}"),
            (Fault(want, _), Ok(p)) => panic!("{name}: expected {want:?}, got {p:?}"),
        }
    }
}

/// Both providers read key files through one parser: a file of the
/// server-checked line table that `file_key_management` refuses is refused
/// as a versioned key file on the same line for the same fault, except a
/// missing key 1 (a versioned file may lack it) and `id;version;hex`
/// lines (versioned syntax). Accepted files:
/// `every_mariadb_key_file_is_a_versioned_file`.
#[test]
fn versioned_provider_refuses_what_mariadb_refuses() {
    let mut compared = 0;
    for (name, text, expect) in line_table() {
        let Fault(want, line) = expect else { continue };
        match (&want, VersionedKeyProvider::parse(&text, None, origin())) {
            (KeyFileFault::MissingKey1, Ok(v)) => {
                assert!(v.key_ids().all(|id| id != 1), "{name}");
            }
            (_, Err(err)) => {
                let (got, got_line, path) = fault(err);
                assert_eq!((got, got_line), (want, line), "{name}");
                assert_eq!(path, origin(), "{name}");
                compared += 1;
            }
            (KeyFileFault::KeyHex, Ok(_)) if text.windows(3).any(|w| w[1] == b';') => {}
            (want, Ok(v)) => panic!("{name}: {want:?} for MariaDB, {v:?} versioned"),
        }
    }
    assert!(compared >= 20, "only {compared} refused files compared");
}

/// Writes the line table as key files for a check against a real server:
/// `ARIA_KEYFILE_TABLE_DIR=dir cargo test --test key_files -- --ignored`
/// writes `NN.txt` and `NN.expect` (`ok <ids>` or `err <fault> <line>`);
/// start `mariadbd --plugin-load-add=file_key_management
/// --file-key-management-filename=dir/NN.txt` on each and compare the log.
#[test]
#[ignore = "writes files for a manual check against mariadbd"]
fn dump_line_table_for_server_check() {
    let Some(dir) = std::env::var_os("ARIA_KEYFILE_TABLE_DIR") else {
        eprintln!("ARIA_KEYFILE_TABLE_DIR not set: nothing written");
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (n, (name, text, expect)) in line_table().into_iter().enumerate() {
        std::fs::write(dir.join(format!("{n:02}.txt")), &text).unwrap();
        let expect = match expect {
            Keys(keys) => {
                let ids: Vec<String> = keys.iter().map(|(id, _)| id.to_string()).collect();
                format!("ok {}", ids.join(" "))
            }
            Fault(fault, line) => format!("err {fault:?} {}", line.unwrap_or(0)),
        };
        std::fs::write(
            dir.join(format!("{n:02}.expect")),
            format!("{expect}\n# {name}\n"),
        )
        .unwrap();
    }
}

#[test]
fn every_fixture_key_file_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path().join("keys.txt");
        if !path.exists() {
            continue;
        }
        seen += 1;
        let p = FileKeyProvider::from_path(&path, None).unwrap();
        let ids: Vec<u32> = p.key_ids().collect();
        assert!(
            ids == [1] || ids == [1, 2, 7],
            "{}: {ids:?}",
            path.display()
        );
        if ids == [1, 2, 7] {
            let want = vec![(1, hex(K1)), (2, hex(K2)), (7, hex(K7))];
            assert_eq!(file_keys(&p), want, "{}", path.display());
        }
    }
    assert!(seen >= 10, "only {seen} fixture key files");
    let k128 = FileKeyProvider::from_path(fixtures().join("cbc_key128/keys.txt"), None).unwrap();
    assert_eq!(file_keys(&k128), [(1, hex(K7))]);
    let k192 = FileKeyProvider::from_path(fixtures().join("cbc_key192/keys.txt"), None).unwrap();
    assert_eq!(file_keys(&k192), [(1, hex(K24))]);
}

#[test]
fn file_provider_serves_version_1_only() {
    let p = FileKeyProvider::parse(format!("1;{K1}\n7;{K7}\n").as_bytes(), None, origin()).unwrap();
    assert_eq!(p.key_ids().collect::<Vec<_>>(), [1, 7]);
    assert_eq!(p.latest_version(1), Some(1));
    assert_eq!(p.latest_version(7), Some(1));
    assert_eq!(p.latest_version(2), None);
    assert_eq!(p.key(7, 1).unwrap().as_bytes(), hex(K7));
    for version in [0, 2, 9, u32::MAX] {
        assert!(matches!(
            p.key(1, version),
            Err(Error::KeyVersionNotFound { key_id: 1, version: v }) if v == version
        ));
    }
    assert!(matches!(p.key(2, 1), Err(Error::KeyNotFound { key_id: 2 })));
}

#[test]
fn errors_name_the_file_and_line() {
    let err =
        FileKeyProvider::parse(format!("1;{K1}\n2;zz\n").as_bytes(), None, origin()).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("test-keys.txt line 2: "), "{message}");
    let path = fixtures().join("does-not-exist.txt");
    let err = FileKeyProvider::from_path(&path, None).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// Size limit (10.11 refuses a key file over 1 MiB: "File too large")
// ---------------------------------------------------------------------------

/// A key file of exactly `len` bytes: key 1, a long comment, key 2 last.
fn padded_key_file(len: usize) -> Vec<u8> {
    let head = format!("1;{K1}\n#");
    let tail = format!("\n2;{K2}\n");
    let mut text = head.into_bytes();
    text.resize(len - tail.len(), b'x');
    text.extend_from_slice(tail.as_bytes());
    assert_eq!(text.len(), len);
    text
}

#[test]
fn one_mebibyte_is_the_limit() {
    assert_eq!(FileKeyProvider::MAX_FILE_SIZE, 1 << 20);
    let exact = padded_key_file(1 << 20);
    let p = FileKeyProvider::parse(&exact, None, origin()).unwrap();
    assert_eq!(p.key_ids().collect::<Vec<_>>(), [1, 2]);
    let file = TempFile::new("exact-1mib.txt", &exact);
    assert!(FileKeyProvider::from_path(&file.0, None).is_ok());

    let over = padded_key_file((1 << 20) + 1);
    let (f, line, _) = fault(FileKeyProvider::parse(&over, None, origin()).unwrap_err());
    assert_eq!((f, line), (KeyFileFault::TooLarge((1 << 20) + 1), None));
    let file = TempFile::new("over-1mib.txt", &over);
    let (f, _, path) = fault(FileKeyProvider::from_path(&file.0, None).unwrap_err());
    assert_eq!(f, KeyFileFault::TooLarge((1 << 20) + 1));
    assert_eq!(path, file.0);
    let (f, _, _) = fault(VersionedKeyProvider::parse(&over, None, origin()).unwrap_err());
    assert_eq!(f, KeyFileFault::TooLarge((1 << 20) + 1));
    // The limit is on the file, encrypted or not.
    let mut salted = b"Salted__".to_vec();
    salted.resize((1 << 20) + 16, 0);
    let (f, _, _) = fault(FileKeyProvider::parse(&salted, Some(b"x"), origin()).unwrap_err());
    assert_eq!(f, KeyFileFault::TooLarge((1 << 20) + 16));
}

// ---------------------------------------------------------------------------
// Versioned key files
// ---------------------------------------------------------------------------

/// (id, version, key bytes) of every key, and the latest of each id.
fn versioned_keys(p: &VersionedKeyProvider) -> Vec<(u32, u32, Vec<u8>)> {
    let mut out = Vec::new();
    for id in p.key_ids() {
        for version in p.versions(id) {
            out.push((id, version, p.key(id, version).unwrap().as_bytes().to_vec()));
        }
    }
    out
}

#[test]
fn versioned_file() {
    let text = format!(
        "# rotation target\n\
         1;{K1}\n\
         1;2;{K2}\n\
         \t2;0000000007;{K7} # seven\n\
         2;3;{K24}\n\
         1;1;{K7}\n"
    );
    let p = VersionedKeyProvider::parse(text.as_bytes(), None, origin()).unwrap();
    assert_eq!(
        versioned_keys(&p),
        [
            (1, 1, hex(K7)),
            (1, 2, hex(K2)),
            (2, 3, hex(K24)),
            (2, 7, hex(K7))
        ]
    );
    assert_eq!(p.latest_version(1), Some(2));
    assert_eq!(p.latest_version(2), Some(7));
    assert_eq!(p.latest_version(3), None);
    assert!(matches!(
        p.key(1, 3),
        Err(Error::KeyVersionNotFound {
            key_id: 1,
            version: 3
        })
    ));
    assert!(matches!(p.key(3, 1), Err(Error::KeyNotFound { key_id: 3 })));
}

#[test]
fn versioned_file_faults() {
    let cases: &[(String, KeyFileFault, usize)] = &[
        (format!("1;{K1}\n1;0;{K2}\n"), KeyFileFault::KeyVersion, 2),
        (format!("1;4294967295;{K2}\n"), KeyFileFault::KeyVersion, 1),
        (format!("1;99999999999;{K2}\n"), KeyFileFault::KeyVersion, 1),
        (format!("1;2;;{K2}\n"), KeyFileFault::KeyLength(0), 1),
        (format!("1;2;3;{K2}\n"), KeyFileFault::KeyHex, 1),
        (format!("0;2;{K2}\n"), KeyFileFault::KeyId, 1),
        (format!("1;2{K2}\n"), KeyFileFault::KeyHex, 1),
        (format!("1;{K1}\n  "), KeyFileFault::Syntax, 2),
    ];
    for (text, want, line) in cases {
        let err = VersionedKeyProvider::parse(text.as_bytes(), None, origin()).unwrap_err();
        assert_eq!(
            fault(err),
            (want.clone(), Some(*line), origin().to_path_buf()),
            "{text:?}"
        );
    }
}

#[test]
fn versioned_file_needs_no_key_1() {
    let p = VersionedKeyProvider::parse(format!("2;5;{K2}\n").as_bytes(), None, origin()).unwrap();
    assert_eq!(p.key_ids().collect::<Vec<_>>(), [2]);
    assert_eq!(p.versions(2).collect::<Vec<_>>(), [5]);
    let empty = VersionedKeyProvider::parse(b"# nothing yet\n", None, origin()).unwrap();
    assert_eq!(empty.key_ids().count(), 0);
}

#[test]
fn every_mariadb_key_file_is_a_versioned_file() {
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let dir = entry.unwrap().path();
        let (path, filekey) = if dir.join("keys.txt").exists() {
            (dir.join("keys.txt"), None)
        } else if cfg!(feature = "salted-key-files") && dir.join("keys.enc").exists() {
            (dir.join("keys.enc"), Some(SECRET))
        } else {
            continue;
        };
        let file = FileKeyProvider::from_path(&path, filekey).unwrap();
        let versioned = VersionedKeyProvider::from_path(&path, filekey).unwrap();
        let want: Vec<_> = file_keys(&file)
            .into_iter()
            .map(|(id, k)| (id, 1, k))
            .collect();
        assert_eq!(versioned_keys(&versioned), want, "{}", path.display());
        let converted = VersionedKeyProvider::from(file);
        assert_eq!(versioned_keys(&converted), want, "{}", path.display());
        for id in converted.key_ids() {
            assert_eq!(converted.latest_version(id), Some(1));
        }
    }
    for (name, text, expect) in line_table() {
        if let Keys(_) = expect {
            let file = FileKeyProvider::parse(&text, None, origin()).unwrap();
            let versioned = VersionedKeyProvider::parse(&text, None, origin()).unwrap();
            let want: Vec<_> = file_keys(&file)
                .into_iter()
                .map(|(id, k)| (id, 1, k))
                .collect();
            assert_eq!(versioned_keys(&versioned), want, "{name}");
        }
    }
}

// ---------------------------------------------------------------------------
// debug_key_management
// ---------------------------------------------------------------------------

#[test]
fn debug_provider_as_the_plugin() {
    let p = DebugKeyProvider::new(1).unwrap();
    assert_eq!(p.latest_version(1), Some(1));
    assert_eq!(p.latest_version(2), None);
    // §7.7: key id 1, version 2 = 00000002 and 12 zero bytes.
    assert_eq!(
        p.key(1, 2).unwrap().as_bytes(),
        hex("00000002000000000000000000000000")
    );
    // Versions past the latest are served (§3.2: version 9 read at latest 1).
    assert_eq!(
        p.key(1, 9).unwrap().as_bytes(),
        hex("00000009000000000000000000000000")
    );
    assert_eq!(
        DebugKeyProvider::key_bytes(0xdead_beef)[..4],
        hex("deadbeef")
    );
    assert!(matches!(p.key(2, 1), Err(Error::KeyNotFound { key_id: 2 })));
    assert!(matches!(
        p.key(1, 0),
        Err(Error::KeyVersionNotFound {
            key_id: 1,
            version: 0
        })
    ));
    assert!(DebugKeyProvider::new(0).is_err());
    assert!(DebugKeyProvider::new(u32::MAX).is_err());
    p.set_latest(3).unwrap();
    assert_eq!(p.latest_version(1), Some(3));
}

// ---------------------------------------------------------------------------
// Providers print no keys and can be shared between threads
// ---------------------------------------------------------------------------

#[test]
fn debug_output_holds_no_key() {
    let file = FileKeyProvider::from_path(fixtures().join("cbc_trans_256/keys.txt"), None).unwrap();
    let mut versioned = VersionedKeyProvider::from(
        FileKeyProvider::from_path(fixtures().join("cbc_trans_256/keys.txt"), None).unwrap(),
    );
    versioned
        .insert(1, 2, KeyMaterial::new(&hex(K24)).unwrap())
        .unwrap();
    let debug = DebugKeyProvider::new(0x1234_5678).unwrap();
    let outputs = [
        format!("{file:?}"),
        format!("{file:#?}"),
        format!("{versioned:?}"),
        format!("{versioned:#?}"),
        format!("{debug:?}"),
    ];
    for out in &outputs {
        for key in [K1, K2, K7, K24, "12345678000000000000000000000000"] {
            for form in [key.to_string(), key.to_uppercase(), key[..8].to_string()] {
                assert!(!out.contains(&form), "{out} contains {form}");
            }
            // Nor as a list of decimal bytes.
            let bytes = hex(key);
            let decimal = format!("{}, {}, {}, {}", bytes[0], bytes[1], bytes[2], bytes[3]);
            assert!(!out.contains(&decimal), "{out} contains {decimal}");
        }
    }
    assert_eq!(outputs[0], "FileKeyProvider { key_ids: [1, 2, 7] }");
    assert!(outputs[2].contains("versions: [1, 2]"), "{}", outputs[2]);
    assert_eq!(outputs[4], "DebugKeyProvider { latest: 305419896 }");
}

#[test]
fn providers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FileKeyProvider>();
    assert_send_sync::<VersionedKeyProvider>();
    assert_send_sync::<DebugKeyProvider>();
    let shared: std::sync::Arc<dyn KeyProvider> = std::sync::Arc::new(DebugKeyProvider::default());
    let handle = std::thread::spawn(move || shared.latest_version(1));
    assert_eq!(handle.join().unwrap(), Some(1));
}

// ---------------------------------------------------------------------------
// Any input: no panic, and the versioned reader extends the MariaDB one
// ---------------------------------------------------------------------------

/// Bytes that matter to the line rules, weighted towards valid lines.
fn key_file_text() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(format!("1;{K1}\n").into_bytes()),
        Just(format!("2;{K7}\n").into_bytes()),
        Just(format!("3;2;{K24}\n").into_bytes()),
        Just(b"# comment\n".to_vec()),
        Just(b"\n".to_vec()),
        proptest::collection::vec(
            prop_oneof![
                Just(b'0'),
                Just(b'1'),
                Just(b'9'),
                Just(b'a'),
                Just(b'F'),
                Just(b'g'),
                Just(b';'),
                Just(b'#'),
                Just(b' '),
                Just(b'\t'),
                Just(b'\r'),
                Just(b'\n'),
                Just(b'\0'),
                Just(0x0b),
                Just(0x0c),
                Just(0xff),
            ],
            0..80,
        ),
    ];
    proptest::collection::vec(line, 0..8).prop_map(|lines| lines.concat())
}

proptest! {
    #[test]
    fn any_bytes_parse_without_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        secret in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        salted in any::<bool>(),
    ) {
        let bytes = if salted { [b"Salted__".as_slice(), &bytes].concat() } else { bytes };
        let _ = FileKeyProvider::parse(&bytes, secret.as_deref(), origin());
        let _ = VersionedKeyProvider::parse(&bytes, secret.as_deref(), origin());
    }

    #[test]
    fn versioned_reader_extends_mariadb(text in key_file_text()) {
        let file = FileKeyProvider::parse(&text, None, origin());
        let versioned = VersionedKeyProvider::parse(&text, None, origin());
        if let Ok(file) = file {
            let want: Vec<_> = file_keys(&file).into_iter().map(|(id, k)| (id, 1, k)).collect();
            prop_assert_eq!(versioned_keys(&versioned.unwrap()), want);
        }
    }
}

// ---------------------------------------------------------------------------
// Salted__ files and file_key_management_filekey (spec §3.4, §7.8): the
// `salted-key-files` feature (`cargo test --no-default-features` leaves
// them out; `salted_files_need_the_feature` in the library covers that)
// ---------------------------------------------------------------------------

#[cfg(feature = "salted-key-files")]
mod salted {
    use std::process::Command;

    use sha1::{Digest, Sha1};

    use super::*;

    /// `EVP_BytesToKey(SHA-1, 1 round)`, written out independently of the crate.
    fn evp_bytes_to_key(secret: &[u8], salt: &[u8]) -> ([u8; 32], [u8; 16]) {
        let d1 = Sha1::new()
            .chain_update(secret)
            .chain_update(salt)
            .finalize();
        let d2 = Sha1::new()
            .chain_update(d1)
            .chain_update(secret)
            .chain_update(salt)
            .finalize();
        let d3 = Sha1::new()
            .chain_update(d2)
            .chain_update(secret)
            .chain_update(salt)
            .finalize();
        let all = [d1.as_slice(), d2.as_slice(), d3.as_slice()].concat();
        (
            all[..32].try_into().unwrap(),
            all[32..48].try_into().unwrap(),
        )
    }

    /// What `openssl enc -aes-256-cbc -md sha1` writes, by RustCrypto `cbc`.
    fn salted_encrypt(text: &[u8], secret: &[u8], salt: [u8; 8]) -> Vec<u8> {
        let (key, iv) = evp_bytes_to_key(secret, &salt);
        let pad = 16 - text.len() % 16;
        let mut padded = text.to_vec();
        padded.resize(text.len() + pad, pad as u8);
        [
            b"Salted__".as_slice(),
            &salt,
            &common::cbc_encrypt(&key, &iv, &padded),
        ]
        .concat()
    }

    fn three_keys() -> Vec<(u32, Vec<u8>)> {
        vec![(1, hex(K1)), (2, hex(K2)), (7, hex(K7))]
    }

    #[test]
    fn worked_example_7_8() {
        let enc = std::fs::read(fixtures().join("enc_keyfile_secret/keys.enc")).unwrap();
        assert_eq!(&enc[..16], b"Salted__\x01\x02\x03\x04\x05\x06\x07\x08");
        assert_eq!(enc[16..24], hex("6447a8e472ff0b50"));
        let (key, iv) = evp_bytes_to_key(SECRET.as_bytes(), &enc[8..16]);
        assert_eq!(
            key.to_vec(),
            hex("7427e663f007601211fa6435d440d9efa8322915292f98d6c857d66e35ebb722")
        );
        assert_eq!(iv.to_vec(), hex("50615f53a8203ba57e0dccf761a46541"));
        // The reference decryption and the crate's agree on every byte.
        let reference = common::cbc_decrypt(&key, &iv, &enc[16..]);
        let pad = usize::from(*reference.last().unwrap());
        let reference = &reference[..reference.len() - pad];
        let text = FileKeyProvider::plaintext(&enc, Some(SECRET.as_bytes()), origin()).unwrap();
        assert_eq!(text.as_slice(), reference);
        assert!(text.starts_with(b"# test-only key file"));
        assert!(text.ends_with(b"\n"));
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.contains(&format!("\n1;{K1}\n2;{K2}\n")));
        assert!(text.contains(&format!("\n7;{}", K7.to_uppercase())));
    }

    #[test]
    fn salted_fixture_with_the_secret() {
        let path = fixtures().join("enc_keyfile_secret/keys.enc");
        let p = FileKeyProvider::from_path(&path, Some(SECRET)).unwrap();
        assert_eq!(file_keys(&p), three_keys());
        // A NUL ends the secret, as the C string the server passes on.
        let bytes = std::fs::read(&path).unwrap();
        let with_nul = format!("{SECRET}\0ignored");
        let p = FileKeyProvider::parse(&bytes, Some(with_nul.as_bytes()), &path).unwrap();
        assert_eq!(file_keys(&p), three_keys());
    }

    #[test]
    fn salted_fixture_with_a_filekey_file() {
        let dir = fixtures().join("enc_keyfile_file");
        let filekey = format!("FILE:{}", dir.join("filekey.txt").display());
        let p = FileKeyProvider::from_path(dir.join("keys.enc"), Some(&filekey)).unwrap();
        assert_eq!(file_keys(&p), three_keys());
        // The secret file holds the secret and "\n"; the line break is not part of it.
        assert_eq!(
            std::fs::read(dir.join("filekey.txt")).unwrap(),
            format!("{SECRET}\n").as_bytes()
        );
        // Relative paths are relative to the current directory (the package
        // root under `cargo test`).
        let relative = "FILE:tests/fixtures/enc_keyfile_file/filekey.txt";
        assert!(FileKeyProvider::from_path(dir.join("keys.enc"), Some(relative)).is_ok());
        // The same secret given directly works too; the two files differ in salt.
        let p = FileKeyProvider::from_path(dir.join("keys.enc"), Some(SECRET)).unwrap();
        assert_eq!(file_keys(&p), three_keys());
    }

    #[test]
    fn filekey_file_rules() {
        let text = format!("1;{K1}\n");
        let a256 = "a".repeat(256);
        let enc = TempFile::new(
            "a256.enc",
            &salted_encrypt(text.as_bytes(), a256.as_bytes(), [7; 8]),
        );
        let plain = TempFile::new("plain.txt", text.as_bytes());
        let read = |key_file: &TempFile, secret_file: &[u8], name: &str| {
            let secret = TempFile::new(name, secret_file);
            FileKeyProvider::from_path(&key_file.0, Some(&format!("FILE:{}", secret.0.display())))
        };
        // Trailing CR/LF go; the server reads 257 bytes, so a 256-byte secret
        // with a line break and anything after it is fine.
        assert!(read(&enc, format!("{a256}\r\n\n").as_bytes(), "s1").is_ok());
        assert!(read(&enc, format!("{a256}\nmore text").as_bytes(), "s2").is_ok());
        // Longer than 256 bytes, or an empty file: refused, naming the secret file.
        for (content, name) in [
            ("a".repeat(257), "s3"),
            ("a".repeat(300), "s4"),
            (String::new(), "s5"),
        ] {
            let (f, line, path) = fault(read(&enc, content.as_bytes(), name).unwrap_err());
            assert_eq!((f, line), (KeyFileFault::Secret, None), "{name}");
            assert!(path.ends_with(format!("aria-key-files-{}-{name}", std::process::id())));
        }
        // Only line breaks: the empty secret (observed on 10.11), so a plain file reads.
        assert!(read(&plain, b"\n\r\n", "s6").is_ok());
        // A missing secret file is an I/O error on that file.
        let missing = fixtures().join("no-such-secret");
        let err =
            FileKeyProvider::from_path(&plain.0, Some(&format!("FILE:{}", missing.display())))
                .unwrap_err();
        assert!(
            matches!(&err, Error::Io { path, .. } if *path == missing),
            "{err:?}"
        );
        // "FILE:" is case-sensitive: "file:x" is a secret, and the file is plain.
        let (f, _, _) = fault(FileKeyProvider::from_path(&plain.0, Some("file:x")).unwrap_err());
        assert_eq!(f, KeyFileFault::NotEncrypted);
    }

    #[test]
    fn secret_with_a_plain_file_is_refused() {
        let path = fixtures().join("cbc_trans_256/keys.txt");
        let (f, line, p) = fault(FileKeyProvider::from_path(&path, Some(SECRET)).unwrap_err());
        assert_eq!(
            (f, line, p),
            (KeyFileFault::NotEncrypted, None, path.clone())
        );
        // An empty secret is no secret.
        assert!(FileKeyProvider::from_path(&path, Some("")).is_ok());
        let bytes = std::fs::read(&path).unwrap();
        assert!(FileKeyProvider::parse(&bytes, Some(b""), &path).is_ok());
        assert!(FileKeyProvider::parse(&bytes, Some(b"\0x"), &path).is_ok());
    }

    #[test]
    fn salted_file_without_a_secret_uses_the_empty_one() {
        // The fixture needs its secret: the empty one fails as on the server
        // ("Cannot decrypt ... Wrong key?").
        let path = fixtures().join("enc_keyfile_secret/keys.enc");
        let (f, _, _) = fault(FileKeyProvider::from_path(&path, None).unwrap_err());
        assert_eq!(f, KeyFileFault::WrongSecret);
        // A file encrypted with the empty secret needs none.
        let text = format!("1;{K1}\n");
        let enc = salted_encrypt(text.as_bytes(), b"", [3; 8]);
        let p = FileKeyProvider::parse(&enc, None, origin()).unwrap();
        assert_eq!(file_keys(&p), [(1, hex(K1))]);
    }

    /// A wrong secret fails the padding check about 255 times in 256. Otherwise
    /// the "text" is noise that the line rules refuse (in practice on line 1):
    /// never keys. The parser cannot tell that case from a damaged key file, so
    /// it reports the line fault it finds.
    #[test]
    fn wrong_secrets_never_give_keys() {
        let bytes = std::fs::read(fixtures().join("enc_keyfile_secret/keys.enc")).unwrap();
        let mut wrong_secret = 0;
        let mut padding_passed = Vec::new();
        for n in 0..2000 {
            let secret = format!("wrong-{n}");
            match FileKeyProvider::parse(&bytes, Some(secret.as_bytes()), origin()) {
                Ok(p) => panic!("secret {secret:?} gave keys {p:?}"),
                Err(err) => match fault(err).0 {
                    KeyFileFault::WrongSecret => wrong_secret += 1,
                    KeyFileFault::Syntax
                    | KeyFileFault::KeyId
                    | KeyFileFault::KeyHex
                    | KeyFileFault::KeyLength(_)
                    | KeyFileFault::MissingKey1 => padding_passed.push(secret),
                    other => panic!("secret {secret:?}: {other:?}"),
                },
            }
        }
        eprintln!(
            "2000 wrong secrets: {wrong_secret} bad padding, {} passed the padding check",
            padding_passed.len()
        );
        assert!(wrong_secret >= 1900, "{wrong_secret}");
        assert!(
            !padding_passed.is_empty(),
            "expected some ~1/256 padding passes"
        );
        // openssl agrees on which wrong secrets pass the padding check.
        if let Some(openssl) = Openssl::find() {
            let file = TempFile::new("wrong.enc", &bytes);
            for secret in padding_passed.iter().take(3) {
                let ours = FileKeyProvider::plaintext(&bytes, Some(secret.as_bytes()), origin());
                let theirs = openssl
                    .decrypt(&file.0, secret)
                    .expect("openssl also accepts");
                let ours = ours.unwrap();
                // Our text stops at the first NUL; openssl's does not.
                assert_eq!(ours.as_slice(), &theirs[..ours.len()]);
            }
            for n in 0..5 {
                let secret = format!("wrong-{n}");
                if !padding_passed.contains(&secret) {
                    assert!(openssl.decrypt(&file.0, &secret).is_none(), "{secret}");
                }
            }
        }
    }

    #[test]
    fn truncated_salted_files() {
        let bytes = std::fs::read(fixtures().join("enc_keyfile_secret/keys.enc")).unwrap();
        for len in [9, 15, 16, 17, 31, 40, bytes.len() - 1] {
            let (f, line, _) = fault(
                FileKeyProvider::parse(&bytes[..len], Some(SECRET.as_bytes()), origin())
                    .unwrap_err(),
            );
            assert_eq!((f, line), (KeyFileFault::Truncated, None), "{len} bytes");
        }
        // Cut at a block boundary, the file looks whole: the last block's
        // "padding" is key file text, so it fails as a wrong secret would.
        let (f, _, _) = fault(
            FileKeyProvider::parse(&bytes[..48], Some(SECRET.as_bytes()), origin()).unwrap_err(),
        );
        assert_eq!(f, KeyFileFault::WrongSecret);
    }

    #[test]
    fn decrypted_text_is_a_c_string() {
        let text = format!("1;{K1}\n2;{K2}\0\n7;{K7}\n");
        let enc = salted_encrypt(text.as_bytes(), b"s", [5; 8]);
        let plain = FileKeyProvider::plaintext(&enc, Some(b"s"), origin()).unwrap();
        assert_eq!(plain.as_slice(), format!("1;{K1}\n2;{K2}").as_bytes());
        let p = FileKeyProvider::parse(&enc, Some(b"s"), origin()).unwrap();
        assert_eq!(p.key_ids().collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn padding_of_every_length() {
        // Texts of 0..=33 bytes cover pads of 1..=16, a whole padding block included.
        for len in 0..=33 {
            let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let enc = salted_encrypt(&text, b"k", [len as u8; 8]);
            let plain = FileKeyProvider::plaintext(&enc, Some(b"k"), origin()).unwrap();
            assert_eq!(plain.as_slice(), text.as_slice(), "{len}");
        }
    }

    /// The `openssl` binary, if there is one.
    struct Openssl;

    impl Openssl {
        fn find() -> Option<Openssl> {
            let ok = Command::new("openssl")
                .arg("version")
                .output()
                .is_ok_and(|out| out.status.success());
            if !ok {
                eprintln!("openssl not found: skipping the openssl comparison");
            }
            ok.then_some(Openssl)
        }

        fn decrypt(&self, path: &Path, secret: &str) -> Option<Vec<u8>> {
            let out = Command::new("openssl")
                .args([
                    "enc",
                    "-d",
                    "-aes-256-cbc",
                    "-md",
                    "sha1",
                    "-k",
                    secret,
                    "-in",
                ])
                .arg(path)
                .output()
                .unwrap();
            out.status.success().then_some(out.stdout)
        }

        fn encrypt(&self, text: &[u8], secret: &str, name: &str) -> Vec<u8> {
            let input = TempFile::new(name, text);
            let out = Command::new("openssl")
                .args(["enc", "-aes-256-cbc", "-md", "sha1", "-k", secret, "-in"])
                .arg(&input.0)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }

    #[test]
    fn openssl_decrypts_the_fixtures_to_the_same_text() {
        let Some(openssl) = Openssl::find() else {
            return;
        };
        for case in ["enc_keyfile_secret", "enc_keyfile_file"] {
            let path = fixtures().join(case).join("keys.enc");
            let bytes = std::fs::read(&path).unwrap();
            let theirs = openssl
                .decrypt(&path, SECRET)
                .expect("openssl decrypts the fixture");
            let ours = FileKeyProvider::plaintext(&bytes, Some(SECRET.as_bytes()), &path).unwrap();
            assert_eq!(ours.as_slice(), theirs.as_slice(), "{case}");
            // The fixture is the standard three-key file.
            let plain = std::fs::read(fixtures().join("cbc_trans_256/keys.txt")).unwrap();
            assert_eq!(theirs, plain, "{case}");
        }
    }

    #[test]
    fn openssl_encrypted_files_read_back() {
        let Some(openssl) = Openssl::find() else {
            return;
        };
        let versioned = format!("1;{K1}\n1;2;{K2}\n7;3;{K7}\n");
        let texts = [
            format!("1;{K1}\n"),
            format!("1;{K1}\n2;{K2}\n7;{K7} # x\n"),
            versioned,
        ];
        for (n, text) in texts.iter().enumerate() {
            for secret in ["s", "a longer secret with spaces", SECRET] {
                let enc = openssl.encrypt(text.as_bytes(), secret, &format!("in-{n}.txt"));
                assert!(
                    enc.starts_with(b"Salted__"),
                    "openssl 3 writes the header by default"
                );
                let ours =
                    FileKeyProvider::plaintext(&enc, Some(secret.as_bytes()), origin()).unwrap();
                assert_eq!(ours.as_slice(), text.as_bytes());
                let p =
                    VersionedKeyProvider::parse(&enc, Some(secret.as_bytes()), origin()).unwrap();
                assert!(p.key_ids().any(|id| id == 1));
            }
        }
    }

    #[test]
    fn versioned_salted_file_and_filekey() {
        let text = format!("1;{K1}\n1;2;{K2}\n");
        let enc = TempFile::new(
            "versioned.enc",
            &salted_encrypt(text.as_bytes(), b"pw", [9; 8]),
        );
        let secret = TempFile::new("versioned.secret", b"pw\n");
        let filekey = format!("FILE:{}", secret.0.display());
        let p = VersionedKeyProvider::from_path(&enc.0, Some(&filekey)).unwrap();
        assert_eq!(versioned_keys(&p), [(1, 1, hex(K1)), (1, 2, hex(K2))]);
        let (f, _, _) = fault(VersionedKeyProvider::from_path(&enc.0, Some("nope")).unwrap_err());
        assert_eq!(f, KeyFileFault::WrongSecret);
        let plain = TempFile::new("versioned.txt", text.as_bytes());
        let (f, _, _) = fault(VersionedKeyProvider::from_path(&plain.0, Some("pw")).unwrap_err());
        assert_eq!(f, KeyFileFault::NotEncrypted);
    }

    proptest! {
        #[test]
        fn salted_round_trip(
            text in proptest::collection::vec(1u8..=255, 0..100),
            secret in proptest::collection::vec(1u8..=255, 0..20),
            salt in any::<[u8; 8]>(),
        ) {
            let enc = salted_encrypt(&text, &secret, salt);
            let plain = FileKeyProvider::plaintext(&enc, Some(&secret), origin()).unwrap();
            prop_assert_eq!(plain.as_slice(), text.as_slice());
        }
    }
}
