//! The tool's table walker and verifier on a directory of arbitrary small
//! files: truncated tables, mismatched `.MAI`/`.MAD`, wrong block sizes,
//! unpaired files, corrupt rekey journals and control files.
//!
//! Input: records of `name selector (1 byte) ‖ length (LE16) ‖ bytes`; the
//! selector picks a name from `NAMES` (tables in the directory and in
//! subdirectories, odd extensions, a rekey journal, `aria_log_control`).
//! The files are written to a fresh directory, then, as `aria-crypt verify`
//! does (through the tool's narrow `tool_support` surface): the walk over
//! the directory (and over one file and one stem), then for every table the
//! rekey-journal and server checks, opening it, counting its pages and
//! verifying it with the fixtures' key file and with debug_key_management. Never a panic; every `.MAI` with its `.MAD` is a
//! table and every file without its partner a problem; and nothing in the
//! directory changes.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use mariadb_aria_crypt::tool_support::{verify_all, walk_tables, with_ext};

const NAMES: [&str; 20] = [
    "t1.MAI",
    "t1.MAD",
    "t2.MAI",
    "t2.MAD",
    "sub/t3.MAI",
    "sub/t3.MAD",
    "a.b.MAI",
    "a.b.MAD",
    "sub/deep/t5.MAI",
    "sub/deep/t5.MAD",
    "t6.MAI",
    "t7.MAD",
    "t1.mai",
    "t1.MAD.MAI",
    "t1.aria-crypt-journal",
    "t1.MAI.aria-crypt-new",
    "aria_log_control",
    "sub/aria_log_control",
    "keys.txt",
    "README",
];
/// Largest file the target writes.
const MAX_FILE: usize = 96 * 1024;

const KEY_FILE: &str = "1;000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
2;a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
7;F5502320F8429037B8DAEF761B189D12
";

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("aria-fuzz-walker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fn key_file() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = scratch().join("keys.txt");
        std::fs::write(&path, KEY_FILE).unwrap();
        path
    })
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let key_file = key_file();
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = scratch().join(format!("d{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap();

    // Write the files.
    let mut rest = input;
    while let [sel, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1]))
            .min(tail.len())
            .min(MAX_FILE);
        let name = NAMES[usize::from(*sel) % NAMES.len()];
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &tail[..len]).unwrap();
        rest = &tail[len..];
    }
    let before = snapshot(&dir);

    let (tables, _) = walk_tables(std::slice::from_ref(&dir));
    // Pairing: a table for every .MAI with a .MAD (as regular files).
    for path in before.keys() {
        if path.extension().is_some_and(|e| e == "MAI") {
            let stem = path.with_extension("");
            let paired = before.contains_key(&with_ext(&stem, "MAD"));
            let listed = tables.iter().any(|t| t.mai == *path);
            assert_eq!(
                paired,
                listed,
                "{} paired {paired} listed {listed}",
                path.display()
            );
        }
    }
    for t in &tables {
        // A journaled table may lack its index file: a rekey puts it in
        // place last, and the walker lists the table for recovery.
        let journaled = before.contains_key(&with_ext(&t.stem, "aria-crypt-journal"));
        assert!(
            (before.contains_key(&t.mai) || journaled) && before.contains_key(&t.mad),
            "{t:?}"
        );
    }
    // Single-file and stem arguments name the same table.
    if let Some(t) = tables.first() {
        let (one, problems) =
            walk_tables(&[t.mai.clone(), t.stem.clone(), dir.join("no-such-table")]);
        assert!(one.iter().all(|x| x.mai == t.mai));
        assert!(problems > 0, "a missing table is a problem");
    }

    verify_all(&dir, key_file);

    assert!(
        snapshot(&dir) == before,
        "the walker or verifier changed a file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
});
