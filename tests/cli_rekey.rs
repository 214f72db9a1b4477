//! `aria-crypt rekey` on copies of the MariaDB fixtures: rotation, a move
//! to another key file, CBC to CTR, a fresh per-table key, the refusals
//! (failing pages, a running server, a process holding the files) and what
//! it keeps (owner, permissions, symlinks).

// The tool and its binary need the `cli` feature.
#![cfg(feature = "cli")]

mod cli_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cli_support::*;
use serde_json::Value;
use tempfile::TempDir;

const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn rekey_json(dir: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut argv = vec!["rekey", "--json"];
    argv.extend(extra);
    let run = run_in(dir, &argv);
    let doc = run.json();
    (run.code, doc)
}

fn verify_doc(dir: &Path, extra: &[&str]) -> Value {
    let mut argv = vec!["verify", "--json"];
    argv.extend(extra);
    run_in(dir, &argv).expect(0).json()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("aria-crypt"))
        .collect()
}

#[test]
fn rotation_to_a_new_debug_key_management_version() {
    let (_tmp, dir) = copy_case("debug_versions");
    let (code, doc) = rekey_json(&dir, &["--debug-key-management", "4", "t1"]);
    assert_eq!(code, Some(0), "{doc}");
    let t = &doc["tables"][0];
    assert_eq!(t["action"], "rekeyed");
    assert_eq!(t["ok"], true);
    assert_eq!(t["key_id"], 1);
    assert_eq!(t["algorithm"], "cbc");
    assert_eq!(
        t["key_versions"].as_object().unwrap().len(),
        3,
        "source versions 1, 2, 3"
    );
    assert_eq!(t["to"]["key_version"], 4);
    for k in ["total", "encrypted", "verified", "failed", "skipped"] {
        assert!(t["pages"][k].is_u64(), "pages.{k}");
    }
    let v = verify_doc(&dir, &["--debug-key-management", "4", "t1"]);
    let versions = v["tables"][0]["key_versions"].as_object().unwrap();
    assert_eq!(versions.keys().collect::<Vec<_>>(), ["4"]);
    assert_eq!(versions["4"], t["pages"]["encrypted"]);
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    assert_markers(
        &dir,
        &dir.join("t1"),
        &args(&["--debug-key-management", "4"]),
        &markers(&dir.join("t1")),
    );
    // Run again: nothing to do.
    let (code, doc) = rekey_json(&dir, &["--debug-key-management", "4", "t1"]);
    assert_eq!(code, Some(0));
    assert_eq!(doc["tables"][0]["action"], "unchanged");
}

#[test]
fn rotation_with_a_versioned_key_file() {
    let (tmp, dir) = copy_case("cbc_trans_256");
    let keys = tmp.path().join("versioned.txt");
    std::fs::write(
        &keys,
        format!("# versioned\n1;{K1}\n1;2;a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n"),
    )
    .unwrap();
    let keys = keys.display().to_string();
    // file_key_management serves version 1 only: refused unless intended.
    let before = snapshot(&dir);
    let run = run_in(&dir, ["rekey", "--key-file", &keys, "t1"]).expect(1);
    assert!(
        run.stderr
            .contains("file_key_management serves version 1 only")
            && run.stderr.contains("--allow-unusual-key"),
        "{}",
        run.stderr
    );
    assert_unchanged(&dir, &before);
    run_in(
        &dir,
        ["rekey", "--key-file", &keys, "--allow-unusual-key", "t1"],
    )
    .expect(0);
    let v = verify_doc(&dir, &["--key-file", &keys, "t1"]);
    assert_eq!(
        v["tables"][0]["key_versions"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["2"]
    );
    // The plain MariaDB file (version 1 only) no longer reads it.
    let run = run_in(&dir, ["verify", "--key-file", "keys.txt", "t1"]).expect(1);
    assert!(
        run.stdout
            .contains("key version 2 of key id 1 is not in the key file"),
        "{}",
        run.stdout
    );
}

#[test]
fn move_to_another_key_file_and_ctr_with_a_new_table_key() {
    let (tmp, dir) = copy_case("cbc_trans_256");
    let new_keys = tmp.path().join("new.txt");
    std::fs::write(
        &new_keys,
        "1;c0ffee00c0ffee01c0ffee02c0ffee03c0ffee04c0ffee05\n",
    )
    .unwrap();
    let new_keys = new_keys.display().to_string();
    let before_mai = std::fs::read(dir.join("t1.MAI")).unwrap();
    let info_before = run_in(&dir, ["info", "--json", "t1"]).expect(0).json();
    let (code, doc) = rekey_json(
        &dir,
        &[
            "--key-file",
            "keys.txt",
            "--to-key-file",
            &new_keys,
            "--to-algorithm",
            "ctr",
            "--new-table-key",
            "t1",
        ],
    );
    assert_eq!(code, Some(0), "{doc}");
    let to = &doc["tables"][0]["to"];
    assert_eq!(to["algorithm"], "ctr");
    assert_eq!(to["new_table_key"], true);
    let info_after = run_in(&dir, ["info", "--json", "t1"]).expect(0).json();
    let (b, a) = (&info_before["tables"][0], &info_after["tables"][0]);
    assert_ne!(b["space"], a["space"]);
    assert_ne!(b["scheme_iv"], a["scheme_iv"]);
    assert_eq!(a["space"], to["space"]);
    assert_eq!(a["scheme_iv"], to["scheme_iv"]);
    // Only the crypt block of the header changed.
    let after_mai = std::fs::read(dir.join("t1.MAI")).unwrap();
    let header_length = usize::from(u16::from_be_bytes([before_mai[6], before_mai[7]]));
    let crypt = header_length - 22..header_length;
    for i in 0..8192 {
        if !crypt.contains(&i) {
            assert_eq!(before_mai[i], after_mai[i], "header byte {i}");
        }
    }
    let v = verify_doc(&dir, &["--key-file", &new_keys, "t1"]);
    assert_eq!(v["tables"][0]["algorithm"], "ctr", "detected");
    run_in(&dir, ["verify", "--key-file", "keys.txt", "t1"]).expect(1);
    assert_markers(
        &dir,
        &dir.join("t1"),
        &args(&["--key-file", &new_keys]),
        &markers(&dir.join("t1")),
    );
    // The same command again: the table is already under the target keys.
    let (code, doc) = rekey_json(
        &dir,
        &[
            "--key-file",
            "keys.txt",
            "--to-key-file",
            &new_keys,
            "--to-algorithm",
            "ctr",
            "t1",
        ],
    );
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["tables"][0]["action"], "unchanged");
}

#[test]
fn cbc_to_ctr_and_back_keeps_every_row() {
    let (_tmp, dir) = copy_case("blob");
    let before = std::fs::read(dir.join("t1.MAD")).unwrap();
    run_in(
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
    .expect(0);
    assert_eq!(
        verify_doc(&dir, &["--key-file", "keys.txt", "t1"])["tables"][0]["algorithm"],
        "ctr"
    );
    run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "cbc",
            "t1",
        ],
    )
    .expect(0);
    // Same key, version, IV and plaintext: the server's bytes again.
    assert!(
        std::fs::read(dir.join("t1.MAD")).unwrap() == before,
        "CBC -> CTR -> CBC gives the original bytes"
    );
    assert_markers(
        &dir,
        &dir.join("t1"),
        &args(&["--key-file", "keys.txt"]),
        &markers(&dir.join("t1")),
    );
}

#[test]
fn temporary_table_moves_from_key_2_to_key_1() {
    let (tmp, dir) = copy_case("tmp_key2");
    let only1 = tmp.path().join("only1.txt");
    std::fs::write(&only1, format!("1;{K1}\n")).unwrap();
    let only1 = only1.display().to_string();
    let (code, doc) = rekey_json(
        &dir,
        &["--key-file", "keys.txt", "--to-key-file", &only1, "tmp1"],
    );
    assert_eq!(code, Some(0), "{doc}");
    let t = &doc["tables"][0];
    assert_eq!(t["key_id"], 2);
    assert_eq!(
        t["to"]["key_id"], 1,
        "the server's rule with a key file without key 2"
    );
    let v = verify_doc(&dir, &["--key-file", &only1, "tmp1"]);
    assert_eq!(v["tables"][0]["key_id"], 1);
}

#[test]
fn refuses_and_changes_nothing_when_a_page_fails() {
    let (tmp, dir) = copy_case("cbc_trans_256");
    let mad = dir.join("t1.MAD");
    let mut bytes = std::fs::read(&mad).unwrap();
    bytes[2 * 8192 + 40] ^= 1;
    std::fs::write(&mad, &bytes).unwrap();
    let before = snapshot(tmp.path());
    let (code, doc) = rekey_json(&dir, &["--debug-key-management", "2", "t1"]);
    assert_eq!(code, Some(1));
    assert_eq!(doc["tables"][0]["action"], "refused");
    assert_unchanged(tmp.path(), &before);
    let (code, doc) = rekey_json(
        &dir,
        &["--key-file", "keys.txt", "--to-algorithm", "ctr", "t1"],
    );
    assert_eq!(code, Some(1));
    let t = &doc["tables"][0];
    assert_eq!(t["action"], "refused");
    assert_eq!(t["problems"][0]["page"], 2);
    let text = run_in(
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
    .expect(1)
    .stdout;
    assert!(
        text.contains("nothing changed") && text.contains("t1.MAD page 2"),
        "{text}"
    );
    assert_unchanged(tmp.path(), &before);
    // A wrong source key, a target without the key id: also nothing.
    let wrong = fixtures().join("cbc_key128/keys.txt").display().to_string();
    run_in(&dir, ["rekey", "--key-file", &wrong, "t1"]).expect(1);
    assert_unchanged(tmp.path(), &before);
}

/// Rekey verifies while it writes the new files: a page that fails after
/// many pages were already written (the last page of the data file, the
/// index file done) still leaves nothing behind, and every failing page of
/// both files is named.
#[test]
fn a_failing_last_page_found_while_writing_leaves_nothing() {
    let (tmp, dir) = copy_case("cbc_trans_256");
    let mad = dir.join("t1.MAD");
    let mut bytes = std::fs::read(&mad).unwrap();
    let last = bytes.len() / 8192 - 1;
    bytes[last * 8192 + 100] ^= 0x80;
    std::fs::write(&mad, &bytes).unwrap();
    let before = snapshot(tmp.path());
    for extra in [&["--new-table-key"][..], &["--to-algorithm", "ctr"]] {
        let mut args = vec!["--key-file", "keys.txt"];
        args.extend_from_slice(extra);
        args.push("t1");
        let (code, doc) = rekey_json(&dir, &args);
        assert_eq!(code, Some(1), "{doc}");
        let t = &doc["tables"][0];
        assert_eq!(t["action"], "refused", "{doc}");
        assert_eq!(t["problems"][0]["page"], last, "{doc}");
        assert_eq!(t["pages"]["failed"], 1, "{doc}");
        assert!(t["pages"]["verified"].as_u64().unwrap() > 1, "{doc}");
        assert_unchanged(tmp.path(), &before);
    }
}

#[test]
fn target_without_the_key_id_and_dry_run_change_nothing() {
    let (tmp, dir) = copy_case("cbc_trans_256");
    let only2 = tmp.path().join("only2.txt");
    std::fs::write(
        &only2,
        "2;a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n",
    )
    .unwrap();
    let only2 = only2.display().to_string();
    let before = snapshot(tmp.path());
    let run = run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-key-file",
            &only2,
            "t1",
        ],
    )
    .expect(2);
    assert!(run.stderr.contains("have no key id 1"), "{}", run.stderr);
    let (code, doc) = rekey_json(
        &dir,
        &[
            "--dry-run",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "ctr",
            "t1",
        ],
    );
    assert_eq!(code, Some(0));
    assert_eq!(doc["tables"][0]["action"], "would_rekey");
    assert_unchanged(tmp.path(), &before);
}

#[test]
fn refuses_while_a_server_holds_the_control_file_lock() {
    let (_tmp, dir) = copy_case("datadir");
    // Reading aria_log_control would drop this process's lock on it (POSIX
    // locks go with any close): compare the database directory only.
    let db = dir.join("db1");
    let before = snapshot(&db);
    // This test process plays the server: it holds the write lock MariaDB
    // takes on aria_log_control for as long as it runs.
    let lock =
        match mariadb_aria_crypt::tool_support::take_lock(&dir.join("aria_log_control")).unwrap() {
            mariadb_aria_crypt::tool_support::LockOutcome::Taken(lock) => lock,
            other => panic!("could not lock: {other:?}"),
        };
    let run = run_in(
        &dir,
        [
            "rekey",
            "--debug-key-management",
            "2",
            "--key-file",
            "keys.txt",
            "db1/enc1",
        ],
    );
    assert_eq!(
        run.code,
        Some(2),
        "conflicting key options are a usage error"
    );
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
        run.stderr
            .contains("a MariaDB server is running on this data directory")
            && run.stderr.contains(&format!("pid {}", std::process::id())),
        "{}",
        run.stderr
    );
    assert_unchanged(&db, &before);
    // Also for a bare table name in the database directory.
    let run = run_in(
        &db,
        [
            "rekey",
            "--key-file",
            "../keys.txt",
            "--to-algorithm",
            "ctr",
            "enc1",
        ],
    )
    .expect(1);
    assert!(
        run.stderr.contains("a MariaDB server is running"),
        "{}",
        run.stderr
    );
    let run = run_in(&db, ["verify", "--key-file", "../keys.txt", "enc1"]).expect(0);
    assert!(
        run.stderr.contains("a MariaDB server is running"),
        "{}",
        run.stderr
    );
    assert_unchanged(&db, &before);
    // verify and audit only warn.
    let run = run_in(&dir, ["verify", "--key-file", "keys.txt", "db1/enc1"]).expect(0);
    assert!(
        run.stderr.contains("a MariaDB server is running"),
        "{}",
        run.stderr
    );
    let doc = run_in(&dir, ["audit", "--json", "."]).expect(1).json();
    assert_eq!(doc["server"]["running"], true);
    // --force goes on.
    let run = run_in(
        &dir,
        [
            "rekey",
            "--force",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "ctr",
            "db1/enc1",
        ],
    )
    .expect(0);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    drop(lock);
    // A control file nobody locks (a stopped or crashed server): goes on.
    run_in(
        &dir,
        [
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-algorithm",
            "cbc",
            "db1/enc1",
        ],
    )
    .expect(0);
    let doc = run_in(&dir, ["audit", "--json", "."]).expect(1).json();
    assert_eq!(doc["server"]["running"], false);
}

#[test]
fn refuses_while_another_process_has_the_table_open() {
    let (tmp, dir) = copy_case("cbc_trans_256");
    let before = snapshot(tmp.path());
    let open = std::fs::File::open(dir.join("t1.MAD")).unwrap();
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
    assert!(
        run.stderr.contains("has") && run.stderr.contains("t1.MAD"),
        "{}",
        run.stderr
    );
    drop(open);
    assert_unchanged(tmp.path(), &before);
    run_in(
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
    .expect(0);
}

#[test]
fn keeps_permissions_owner_and_symlinks() {
    let (tmp, dir) = copy_case("cbc_nontrans_256");
    // The data file lives elsewhere (MariaDB's DATA DIRECTORY).
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(dir.join("t1.MAD"), elsewhere.join("t1.MAD")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("t1.MAD"), dir.join("t1.MAD")).unwrap();
    std::fs::set_permissions(dir.join("t1.MAI"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let mine = std::fs::metadata(dir.join("t1.MAI")).unwrap();
    let owner = if mine.uid() == 0 {
        // As root, give the files another owner, as the server's files are
        // owned by the mysql user.
        std::os::unix::fs::chown(dir.join("t1.MAI"), Some(4242), Some(4343)).unwrap();
        (4242, 4343)
    } else {
        (mine.uid(), mine.gid())
    };
    run_in(
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
    .expect(0);
    let meta = std::fs::metadata(dir.join("t1.MAI")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), owner);
    assert!(
        std::fs::symlink_metadata(dir.join("t1.MAD"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(leftovers(&dir).is_empty() && leftovers(&elsewhere).is_empty());
    assert_eq!(
        verify_doc(&dir, &["--key-file", "keys.txt", "t1"])["tables"][0]["algorithm"],
        "ctr"
    );
}

#[test]
fn unencrypted_tables_are_skipped_and_recover_needs_no_keys() {
    let (_tmp, dir) = copy_case("datadir");
    let (code, doc) = rekey_json(
        &dir,
        &["--key-file", "keys.txt", "--to-algorithm", "ctr", "."],
    );
    assert_eq!(code, Some(0), "{doc}");
    let actions: Vec<&str> = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["skipped", "rekeyed", "skipped"]);
    let (code, doc) = rekey_json(&dir, &["--recover", "."]);
    assert_eq!(code, Some(0));
    assert!(
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["action"] == "nothing_to_recover")
    );
    let empty = TempDir::new().unwrap();
    run_in(empty.path(), ["rekey", "--key-file", "x.txt", "nothing"]).expect(2);
}
