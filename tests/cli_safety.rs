//! `aria-crypt` keeps tables safe in the layouts operators use (issue 11):
//! server signals other than the data directory's control file, tables
//! not closed cleanly, symlinked database directories, files that cannot
//! be replaced, failed writes, plaintext output, truncated files, targets
//! the server cannot read, and what the tool says about odd tables.
//! The cases that need a live server are in `scripts/mariadb-deployments.sh`.

// The tool and its binary need the `cli` feature.
#![cfg(feature = "cli")]

mod cli_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use cli_support::*;
use mariadb_aria_crypt::tool_support::{LockOutcome, take_lock};

/// The tests that hold a lock as a "server" run one at a time, so that no
/// other test's child process inherits a descriptor on their files.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn leftovers(dir: &Path) -> Vec<String> {
    snapshot(dir)
        .keys()
        .map(|p| p.display().to_string())
        .filter(|n| n.contains("aria-crypt"))
        .collect()
}

/// A data directory with two databases of the `datadir` fixture's
/// encrypted table: `datadir/db1/enc1`, `datadir/db2/enc1`.
fn two_databases() -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = copy_case("datadir");
    copy_dir(&dir.join("db1"), &dir.join("db2"));
    (tmp, dir)
}

/// Sets the open count in a `.MAI` header's state, as a server does while
/// it has changed the table (and leaves it so when it crashes).
fn set_open_count(mai: &Path, count: u16) {
    let mut bytes = std::fs::read(mai).unwrap();
    bytes[24..26].copy_from_slice(&count.to_be_bytes());
    std::fs::write(mai, bytes).unwrap();
}

#[test]
fn a_running_server_is_named_once_per_data_directory() {
    let _serial = one_at_a_time();
    let (_tmp, dir) = two_databases();
    let before = snapshot(&dir);
    let LockOutcome::Taken(lock) = take_lock(&dir.join("aria_log_control")).unwrap() else {
        panic!("could not lock")
    };
    let run = run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "ctr",
            ".",
        ],
    )
    .expect(1);
    drop(lock);
    let named = run.stderr.matches("holds the lock on").count();
    assert_eq!(named, 1, "once per data directory:\n{}", run.stderr);
    assert!(run.stdout.contains("REFUSED"), "{}", run.stdout);
    assert_unchanged(&dir, &before);
}

#[test]
fn innodb_lock_and_an_aria_log_elsewhere_are_signals_too() {
    let _serial = one_at_a_time();
    let (tmp, dir) = copy_case("datadir");
    // The Aria log lives elsewhere: no control file in the data directory.
    let logs = tmp.path().join("aria-logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::rename(dir.join("aria_log_control"), logs.join("aria_log_control")).unwrap();
    std::fs::write(dir.join("ibdata1"), vec![0u8; 4096]).unwrap();
    let before = snapshot(&dir);
    let rekey = |extra: &[&str]| {
        let mut argv = vec!["rekey", "--key-file", "keys.txt", "--to-algorithm", "ctr"];
        argv.extend(extra);
        argv.push("db1/enc1");
        run_in(&dir, &argv)
    };
    // InnoDB's lock on its system tablespace.
    let LockOutcome::Taken(innodb) = take_lock(&dir.join("ibdata1")).unwrap() else {
        panic!("could not lock ibdata1")
    };
    let run = rekey(&[]).expect(1);
    assert!(
        run.stderr.contains("InnoDB's lock") && run.stderr.contains("ibdata1"),
        "{}",
        run.stderr
    );
    drop(innodb);
    assert_unchanged(&dir, &before);
    // The Aria control file in the log directory named by --aria-log-dir.
    let LockOutcome::Taken(aria) = take_lock(&logs.join("aria_log_control")).unwrap() else {
        panic!("could not lock the control file")
    };
    let logs_arg = logs.display().to_string();
    let run = rekey(&["--aria-log-dir", &logs_arg]).expect(1);
    assert!(
        run.stderr
            .contains("holds the lock on the Aria control file")
            && run.stderr.contains(&logs_arg),
        "{}",
        run.stderr
    );
    drop(aria);
    assert_unchanged(&dir, &before);
    // Nothing holds anything: it goes ahead.
    rekey(&["--aria-log-dir", &logs_arg]).expect(0);
}

#[test]
fn a_table_not_closed_cleanly_is_named_and_not_rekeyed_without_force() {
    let (_tmp, dir) = copy_case("datadir");
    set_open_count(&dir.join("db1/enc1.MAI"), 1);
    let before = snapshot(&dir);
    for cmd in [
        vec!["info", "db1/enc1"],
        vec!["verify", "--key-file", "keys.txt", "db1/enc1"],
        vec!["audit", "."],
    ] {
        let run = run_in(&dir, &cmd);
        assert!(
            run.stderr.contains("not closed cleanly") || run.stdout.contains("not closed cleanly"),
            "{cmd:?}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    let run = run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "ctr",
            "db1/enc1",
        ],
    )
    .expect(1);
    assert!(
        run.stderr.contains("not closed cleanly") && run.stderr.contains("recovery"),
        "{}",
        run.stderr
    );
    assert_unchanged(&dir, &before);
    let run = run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "ctr",
            "--force",
            "db1/enc1",
        ],
    )
    .expect(0);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
}

#[test]
fn a_symlinked_database_directory_is_followed_once_and_skips_are_errors() {
    let (tmp, dir) = two_databases();
    // db2 moved to another disk and linked back.
    let ext = tmp.path().join("ext");
    std::fs::create_dir(&ext).unwrap();
    std::fs::rename(dir.join("db2"), ext.join("db2")).unwrap();
    std::os::unix::fs::symlink(ext.join("db2"), dir.join("db2")).unwrap();
    // A loop back to the data directory, and a second name of db1.
    std::os::unix::fs::symlink(&dir, ext.join("db2/loop")).unwrap();
    std::os::unix::fs::symlink(dir.join("db1"), dir.join("db1-alias")).unwrap();
    let doc = run_in(&dir, ["info", "--json", "."]).expect(0).json();
    let mut names: Vec<String> = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "./db1/dyn1",
            "./db1/enc1",
            "./db1/fix1",
            "./db2/dyn1",
            "./db2/enc1",
            "./db2/fix1"
        ],
        "every table once, through the link"
    );
    run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "ctr",
            ".",
        ],
    )
    .expect(0);
    let doc = run_in(
        &dir,
        [
            "verify",
            "--json",
            "--key-file",
            "keys.txt",
            "--algorithm",
            "ctr",
            ".",
        ],
    )
    .expect(0)
    .json();
    let encrypted = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["encrypted"] == true)
        .count();
    assert_eq!(encrypted, 2, "both encrypted tables re-keyed: {doc}");
    // A link that leads nowhere (a database on a disk not mounted) is a
    // skipped table: reported, and the exit status says so.
    std::os::unix::fs::symlink(tmp.path().join("not-mounted/db3"), dir.join("db3")).unwrap();
    let run = run_in(
        &dir,
        [
            "verify",
            "--key-file",
            "keys.txt",
            "--algorithm",
            "ctr",
            ".",
        ],
    )
    .expect(2);
    assert!(
        run.stderr.contains("db3: a link that cannot be followed"),
        "{}",
        run.stderr
    );
}

/// Whether `chattr +i` works here (root on a filesystem with inode flags).
fn immutable(path: &Path, on: bool) -> bool {
    std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn an_immutable_file_is_found_before_anything_is_written() {
    let (_tmp, dir) = copy_case("cbc_trans_256");
    let mad = dir.join("t1.MAD");
    if !immutable(&mad, true) {
        eprintln!(
            "skipped: chattr +i does not work here (not root, or no inode flags on this filesystem)"
        );
        return;
    }
    let before = snapshot(&dir);
    let run = run_in(
        &dir,
        ["rekey", "--key-file", "keys.txt", "--new-table-key", "t1"],
    );
    immutable(&mad, false);
    let run = run.expect(1);
    assert!(
        run.stderr.contains("t1.MAD: has the immutable attribute")
            && run.stderr.contains("nothing was written"),
        "{}",
        run.stderr
    );
    assert_unchanged(&dir, &before);
}

#[test]
fn a_failed_rename_is_rolled_back() {
    let (_tmp, dir) = copy_case("cbc_trans_256");
    let before = snapshot(&dir);
    let run = run_env(
        &dir,
        ["rekey", "--key-file", "keys.txt", "--new-table-key", "t1"],
        &[("ARIA_CRYPT_FAILPOINT", "rename=enospc")],
    )
    .expect(1);
    assert!(
        run.stderr.contains("rolled back: the table is unchanged"),
        "{}",
        run.stderr
    );
    assert_unchanged(&dir, &before);
}

#[test]
fn failed_writes_leave_nothing_behind_and_say_what_was_deleted() {
    for point in ["new-file-write", "journal-write"] {
        let (_tmp, dir) = copy_case("cbc_trans_256");
        let before = snapshot(&dir);
        let run = run_env(
            &dir,
            [
                "rekey",
                "--key-file",
                "keys.txt",
                "--to-algorithm",
                "ctr",
                "t1",
            ],
            &[("ARIA_CRYPT_FAILPOINT", &format!("{point}=enospc"))],
        )
        .expect(1);
        assert!(
            run.stderr.contains("No space left on device")
                && run
                    .stderr
                    .contains("nothing changed (deleted what it had written:"),
            "{point}: {}",
            run.stderr
        );
        assert!(leftovers(&dir).is_empty(), "{point}: {:?}", leftovers(&dir));
        assert_unchanged(&dir, &before);
    }
}

#[test]
fn a_non_utf8_table_name_is_refused_before_writing() {
    use std::os::unix::ffi::OsStrExt;
    let (_tmp, dir) = copy_case("cbc_trans_256");
    let stem = std::ffi::OsStr::from_bytes(b"t\xff");
    for ext in ["MAI", "MAD"] {
        let mut name = stem.to_os_string();
        name.push(format!(".{ext}"));
        std::fs::rename(dir.join(format!("t1.{ext}")), dir.join(name)).unwrap();
    }
    let before = snapshot(&dir);
    let run = run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "ctr",
            ".",
        ],
    )
    .expect(2);
    assert!(run.stderr.contains("not a UTF-8 path"), "{}", run.stderr);
    assert_unchanged(&dir, &before);
}

#[test]
fn decrypted_copies_are_private_and_never_inside_a_data_directory() {
    let (tmp, dir) = copy_case("datadir");
    let out = tmp.path().join("forensics/deep");
    let command = format!(
        "umask 000; exec \"$0\" decrypt --key-file keys.txt --out-dir '{}' db1/enc1",
        out.display()
    );
    let status = std::process::Command::new("sh")
        .current_dir(&dir)
        .args(["-c", &command, env!("CARGO_BIN_EXE_aria-crypt")])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out.join("enc1.MAD")), 0o600);
    assert_eq!(mode(&out.join("enc1.MAI")), 0o600);
    assert_eq!(mode(&out), 0o700);
    assert_eq!(mode(&tmp.path().join("forensics")), 0o700);
    // Beside the mysql system database: inside a data directory.
    let (_tmp2, dir2) = copy_case("cbc_trans_256");
    std::fs::create_dir(dir2.join("mysql")).unwrap();
    let run = run_in(
        &dir2,
        [
            "decrypt",
            "--key-file",
            "keys.txt",
            "--out-dir",
            "copies",
            "t1",
        ],
    )
    .expect(2);
    assert!(
        run.stderr.contains("inside the MariaDB data directory") && !dir2.join("copies").exists(),
        "{}",
        run.stderr
    );
    // audit names a decrypted copy as plaintext.
    copy_dir(&out, &dir.join("db9"));
    let doc = run_in(&dir, ["audit", "--json", "."]).expect(1).json();
    let found = doc.to_string();
    assert!(found.contains("decrypted_copy"), "{doc}");
    assert!(!found.contains("cannot be read"), "{doc}");
}

#[test]
fn a_data_file_shorter_than_the_header_says_fails() {
    for cut in ["empty", "two pages short"] {
        let (_tmp, dir) = copy_case("cbc_trans_256");
        let mad = dir.join("t1.MAD");
        let bytes = std::fs::read(&mad).unwrap();
        let keep = if cut == "empty" {
            0
        } else {
            bytes.len() - 2 * 8192
        };
        std::fs::write(&mad, &bytes[..keep]).unwrap();
        let before = snapshot(&dir);
        let run = run_in(&dir, ["verify", "--key-file", "keys.txt", "t1"]).expect(1);
        let want = format!(
            "t1.MAD: {keep} bytes, but the table header records {}",
            bytes.len()
        );
        assert!(run.stderr.contains(&want), "{cut}: {}", run.stderr);
        let run = run_in(
            &dir,
            [
                "rekey",
                "--key-file",
                "keys.txt",
                "--to-algorithm",
                "ctr",
                "t1",
            ],
        )
        .expect(1);
        assert!(run.stderr.contains(&want), "{cut}: {}", run.stderr);
        assert_unchanged(&dir, &before);
    }
}

#[test]
fn a_key_id_the_server_does_not_use_is_refused_unless_intended() {
    let (tmp, dir) = copy_case("cbc_trans_256");
    let keys = tmp.path().join("two.txt");
    std::fs::write(
        &keys,
        "1;000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n2;a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n",
    )
    .unwrap();
    let keys = keys.display().to_string();
    let before = snapshot(&dir);
    let run = run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-key-file",
            &keys,
            "--to-key-id",
            "2",
            "t1",
        ],
    )
    .expect(1);
    assert!(
        run.stderr.contains("--to-key-id 2") && run.stderr.contains("key id 1"),
        "{}",
        run.stderr
    );
    assert_unchanged(&dir, &before);
    run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-key-file",
            &keys,
            "--to-key-id",
            "2",
            "--allow-unusual-key",
            "t1",
        ],
    )
    .expect(0);
}

#[test]
fn the_journal_and_new_files_get_the_tables_mode_and_owner() {
    let (_tmp, dir) = copy_case("cbc_trans_256");
    for f in ["t1.MAI", "t1.MAD"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o660)).unwrap();
        if std::fs::metadata(dir.join(f)).unwrap().uid() == 0 {
            std::os::unix::fs::chown(dir.join(f), Some(4242), Some(4343)).unwrap();
        }
    }
    let run = run_env(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "ctr",
            "t1",
        ],
        &[("ARIA_CRYPT_FAILPOINT", "journal-committed")],
    );
    assert!(run.code.is_none(), "{}", run.stderr);
    let table = std::fs::metadata(dir.join("t1.MAI")).unwrap();
    for f in [
        "t1.aria-crypt-journal",
        "t1.MAI.aria-crypt-new",
        "t1.MAD.aria-crypt-new",
    ] {
        let m = std::fs::metadata(dir.join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o660, "{f}");
        assert_eq!((m.uid(), m.gid()), (table.uid(), table.gid()), "{f}");
    }
}

#[test]
fn an_empty_table_and_a_swapped_index_file_are_described_as_such() {
    // An empty PAGE table: its header and index root area, one bitmap page.
    let (_tmp, dir) = copy_case("cbc_trans_256");
    let mut mai = std::fs::read(dir.join("t1.MAI")).unwrap();
    let base = usize::from(u16::from_be_bytes([mai[12], mai[13]]));
    let keystart = u64::from_be_bytes(mai[base + 16..base + 24].try_into().unwrap());
    mai.truncate(keystart as usize);
    mai[89..97].copy_from_slice(&keystart.to_be_bytes());
    mai[97..105].copy_from_slice(&8192u64.to_be_bytes());
    let mad = std::fs::read(dir.join("t1.MAD")).unwrap();
    std::fs::write(dir.join("e.MAI"), &mai).unwrap();
    std::fs::write(dir.join("e.MAD"), &mad[..8192]).unwrap();
    let run = run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "ctr",
            "e",
        ],
    )
    .expect(0);
    assert!(
        run.stdout.contains("no encrypted pages") && !run.stdout.contains("versions  ("),
        "{}",
        run.stdout
    );

    // t1.MAI from a copy that got a new table key: its .MAD is the old one.
    let (_tmp2, other) = copy_case("cbc_trans_256");
    run_in(
        &other,
        ["rekey", "--key-file", "keys.txt", "--new-table-key", "t1"],
    )
    .expect(0);
    std::fs::copy(other.join("t1.MAI"), dir.join("t1.MAI")).unwrap();
    let run = run_in(&dir, ["verify", "--key-file", "keys.txt", "t1"]).expect(1);
    assert!(
        run.stdout.contains("not of the same table") && run.stdout.contains("swapped"),
        "{}",
        run.stdout
    );
}
