//! `aria-crypt` end to end on the committed MariaDB fixtures (on copies in
//! temporary directories): info, verify, decrypt, audit, bench, the JSON
//! documents, the exit codes of every failure class, and that failing runs
//! write nothing.

// The tool and its binary need the `cli` feature.
#![cfg(feature = "cli")]

mod cli_support;

use std::path::Path;

use cli_support::*;
use serde_json::Value;
use tempfile::TempDir;

/// Every fixture case that has a `case.json`.
fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.path()
                .join("case.json")
                .exists()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 16, "the committed fixtures are missing");
    names
}

/// The encrypted tables of a case.
fn encrypted_tables(case_dir: &Path) -> Vec<String> {
    let json = case_json(case_dir);
    json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .filter(|t| !t.ends_with("dyn1") && !t.ends_with("fix1"))
        .collect()
}

#[test]
fn help_explains_every_command_with_examples() {
    let dir = fixtures();
    let top = run_in(&dir, ["--help"]).expect(0);
    for command in ["info", "verify", "rekey", "decrypt", "audit", "bench"] {
        assert!(top.stdout.contains(command), "--help lists {command}");
        let help = run_in(&dir, ["help", command]).expect(0);
        assert!(
            help.stdout.contains("Examples:")
                && help.stdout.contains(&format!("aria-crypt {command}")),
            "`help {command}` has examples:\n{}",
            help.stdout
        );
    }
    let verify = run_in(&dir, ["verify", "--help"]).expect(0);
    assert!(
        verify.stdout.contains("versioned format"),
        "--key-file documents the versioned format"
    );
    assert!(verify.stdout.contains("--key-file-key"));
    assert!(top.stdout.contains("Exit status"));
}

#[test]
fn info_describes_every_fixture_without_keys() {
    for case in cases() {
        let dir = fixtures().join(&case);
        let json = case_json(&dir);
        let tables: Vec<String> = json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let mut argv = vec!["info".to_string(), "--json".into()];
        argv.extend(tables.iter().cloned());
        let doc = run_in(&dir, &argv).expect(0).json();
        assert_eq!(doc["command"], "info");
        assert_eq!(doc["ok"], true);
        for t in doc["tables"].as_array().unwrap() {
            let name = t["table"].as_str().unwrap();
            if name.ends_with("dyn1") || name.ends_with("fix1") {
                assert_eq!(t["encrypted"], false, "{case}/{name}");
                assert!(t["space"].is_null());
                continue;
            }
            assert_eq!(t["encrypted"], true, "{case}/{name}");
            assert_eq!(t["row_format"], "PAGE");
            assert_eq!(t["block_size"], json["block_size"], "{case}");
            assert_eq!(t["transactional"], json["transactional"], "{case}");
            assert_eq!(t["temporary"], json["temporary"], "{case}");
            assert!(t["space"].as_str().unwrap().starts_with("0x"));
            assert_eq!(t["scheme_iv"].as_str().unwrap().len(), 32);
            let versions: Vec<u64> = t["key_versions"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            let expected: Vec<u64> = json["expected_key_versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(versions, expected, "{case}: key versions without keys");
            assert!(t["pages"]["by_kind"]["MAD"]["head"].as_u64().unwrap() > 0);
            if json["temporary"] == true {
                assert!(t["key_id"].is_null());
                assert_eq!(
                    t["key_id_rule"],
                    "1, or 2 if the key provider has key 2 (temporary table)"
                );
            } else {
                assert_eq!(t["key_id"], 1);
            }
        }
    }
}

#[test]
fn info_human_output_and_temporary_key_id_with_keys() {
    let dir = fixtures().join("tmp_key2");
    let text = run_in(&dir, ["info", "tmp1"]).expect(0).stdout;
    for label in [
        "row format",
        "PAGE",
        "block size",
        "8192",
        "temporary",
        "space",
        "scheme_iv",
        "key versions",
    ] {
        assert!(text.contains(label), "info shows {label}:\n{text}");
    }
    assert!(text.contains("1, or 2 if the key provider has key 2"));
    let doc = run_in(
        &dir,
        ["info", "--json", "--key-file", "keys.txt", "tmp1.MAI"],
    )
    .expect(0)
    .json();
    assert_eq!(doc["tables"][0]["key_id"], 2);
    let one = fixtures().join("tmp_key1");
    let doc = run_in(
        &one,
        ["info", "--json", "--key-file", "keys.txt", "tmp1.MAD"],
    )
    .expect(0)
    .json();
    assert_eq!(doc["tables"][0]["key_id"], 1);
}

#[test]
fn verify_passes_on_every_fixture_and_detects_the_algorithm() {
    for case in cases() {
        let dir = fixtures().join(&case);
        let json = case_json(&dir);
        let mut argv = vec!["verify".to_string(), "--json".into()];
        argv.extend(key_args(&dir));
        argv.extend(encrypted_tables(&dir));
        let doc = run_in(&dir, &argv).expect(0).json();
        assert_eq!(doc["command"], "verify");
        assert_eq!(doc["ok"], true, "{case}");
        assert_eq!(doc["exit_code"], 0);
        for t in doc["tables"].as_array().unwrap() {
            assert_eq!(t["ok"], true, "{case}");
            assert_eq!(
                t["algorithm"], json["algorithm"],
                "{case}: detected algorithm"
            );
            assert_eq!(t["algorithm_source"], "detected");
            assert_eq!(t["key_id"], json["key_id"], "{case}: key id");
            let p = &t["pages"];
            let n = |k: &str| p[k].as_u64().unwrap();
            assert!(n("encrypted") > 0);
            assert_eq!(n("verified"), n("encrypted"));
            assert_eq!(n("failed"), 0);
            assert_eq!(n("total"), n("encrypted") + n("skipped"));
            let counted: u64 = t["key_versions"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            assert_eq!(counted, n("encrypted"));
            assert!(t["problems"].as_array().unwrap().is_empty());
        }
    }
}

#[test]
fn verify_whole_data_directory_reports_plain_tables_as_nothing_to_verify() {
    let dir = fixtures().join("datadir");
    let run = run_in(&dir, ["verify", "--key-file", "keys.txt", "."]).expect(0);
    assert!(run.stdout.contains("OK    ./db1/enc1"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("PLAIN ./db1/dyn1: not encrypted (ROW_FORMAT=DYNAMIC)")
    );
    assert!(
        run.stdout
            .contains("PLAIN ./db1/fix1: not encrypted (ROW_FORMAT=FIXED)")
    );
}

fn verify_json(dir: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut argv = vec!["verify", "--json"];
    argv.extend(extra);
    let run = run_in(dir, &argv);
    let doc = run.json();
    (run.code, doc)
}

fn reasons(doc: &Value) -> Vec<String> {
    doc["tables"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn verify_names_the_wrong_algorithm() {
    let dir = fixtures().join("ctr_trans_256");
    let (code, doc) = verify_json(
        &dir,
        &["--key-file", "keys.txt", "--algorithm", "cbc", "t1"],
    );
    assert_eq!(code, Some(1));
    let t = &doc["tables"][0];
    assert_eq!(t["ok"], false);
    assert_eq!(t["algorithm_source"], "option");
    assert!(reasons(&doc).iter().all(|r| r == "wrong_algorithm"));
    assert_eq!(t["problems"][0]["cause"], "algorithm");
    let text = run_in(
        &dir,
        [
            "verify",
            "--key-file",
            "keys.txt",
            "--algorithm",
            "cbc",
            "t1",
        ],
    )
    .expect(1)
    .stdout;
    assert!(text.contains("use --algorithm ctr"), "{text}");
    assert!(text.contains("t1.MAD pages"), "{text}");
}

#[test]
fn verify_names_the_wrong_key_id() {
    // The server used key 2 for this temporary table.
    let dir = fixtures().join("tmp_key2");
    let (code, doc) = verify_json(&dir, &["--key-file", "keys.txt", "--key-id", "1", "tmp1"]);
    assert_eq!(code, Some(1));
    assert!(reasons(&doc).iter().all(|r| r == "wrong_key_id"));
    assert_eq!(doc["tables"][0]["problems"][0]["cause"], "key_id");
    let text = run_in(
        &dir,
        ["verify", "--key-file", "keys.txt", "--key-id", "1", "tmp1"],
    )
    .expect(1)
    .stdout;
    assert!(text.contains("use --key-id 2"), "{text}");
}

#[test]
fn verify_names_a_missing_key_id() {
    let tmp = TempDir::new().unwrap();
    let keys = tmp.path().join("only2.txt");
    std::fs::write(
        &keys,
        "2;a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n",
    )
    .unwrap();
    let dir = fixtures().join("cbc_trans_256");
    let keys = keys.display().to_string();
    let (code, doc) = verify_json(&dir, &["--key-file", &keys, "t1"]);
    assert_eq!(code, Some(1), "a missing key id is a failed verification");
    assert!(reasons(&doc).iter().all(|r| r == "missing_key_id"), "{doc}");
    let text = run_in(&dir, ["verify", "--key-file", &keys, "t1"])
        .expect(1)
        .stdout;
    assert!(
        text.contains("key id 1 is not in the key file (it has key id 2)"),
        "{text}"
    );
}

#[test]
fn verify_names_a_missing_key_version() {
    // debug_key_management version 1 only, as a versioned key file.
    let tmp = TempDir::new().unwrap();
    let keys = tmp.path().join("v1.txt");
    std::fs::write(&keys, "1;1;00000001000000000000000000000000\n").unwrap();
    let keys = keys.display().to_string();
    let dir = fixtures().join("debug_versions");
    let (code, doc) = verify_json(&dir, &["--key-file", &keys, "t1"]);
    assert_eq!(code, Some(1));
    let t = &doc["tables"][0];
    let reasons = reasons(&doc);
    assert!(
        reasons.iter().all(|r| r == "missing_key_version"),
        "{reasons:?}"
    );
    assert_eq!(
        t["pages"]["verified"], t["key_versions"]["1"],
        "version-1 pages verify"
    );
    let text = run_in(&dir, ["verify", "--key-file", &keys, "t1"])
        .expect(1)
        .stdout;
    assert!(
        text.contains("key version 2 of key id 1 is not in the key file (it has version 1)"),
        "{text}"
    );
    // With both versions in the file, everything verifies.
    std::fs::write(
        tmp.path().join("v123.txt"),
        "1;00000001000000000000000000000000\n1;2;00000002000000000000000000000000\n1;3;00000003000000000000000000000000\n",
    )
    .unwrap();
    let all = tmp.path().join("v123.txt").display().to_string();
    run_in(&dir, ["verify", "--key-file", &all, "t1"]).expect(0);
}

#[test]
fn verify_says_wrong_key_when_nothing_decrypts() {
    let dir = fixtures().join("cbc_key192");
    let other = fixtures().join("cbc_key128/keys.txt").display().to_string();
    let (code, doc) = verify_json(&dir, &["--key-file", &other, "t1"]);
    assert_eq!(code, Some(1));
    assert!(reasons(&doc).iter().all(|r| r == "wrong_key"));
    assert_eq!(doc["tables"][0]["pages"]["verified"], 0);
    let text = run_in(&dir, ["verify", "--key-file", &other, "t1"])
        .expect(1)
        .stdout;
    // One line per file, not one per page.
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("wrong key"));
}

#[test]
fn verify_names_a_damaged_page_and_writes_nothing() {
    let (tmp, dir) = copy_case("cbc_trans_256");
    // Flip one ciphertext bit in .MAD page 3.
    let mad = dir.join("t1.MAD");
    let mut bytes = std::fs::read(&mad).unwrap();
    bytes[3 * 8192 + 100] ^= 0x10;
    std::fs::write(&mad, &bytes).unwrap();
    let before = snapshot(tmp.path());
    let (code, doc) = verify_json(&dir, &["--key-file", "keys.txt", "t1"]);
    assert_eq!(code, Some(1));
    let t = &doc["tables"][0];
    assert_eq!(t["pages"]["failed"], 1);
    let problems = t["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0]["page"], 3);
    assert_eq!(problems[0]["cause"], "page_content");
    assert!(problems[0]["file"].as_str().unwrap().ends_with("t1.MAD"));
    let text = run_in(&dir, ["verify", "--key-file", "keys.txt", "t1"])
        .expect(1)
        .stdout;
    assert!(text.contains("t1.MAD page 3: checksum mismatch"), "{text}");
    assert!(text.contains("page content is damaged"), "{text}");
    assert_unchanged(tmp.path(), &before);
}

#[test]
fn verify_reports_truncated_files_and_block_size_mismatch() {
    let (_tmp, dir) = copy_case("cbc_nontrans_256");
    let mad = dir.join("t1.MAD");
    let bytes = std::fs::read(&mad).unwrap();
    std::fs::write(&mad, &bytes[..bytes.len() - 5000]).unwrap();
    let (code, doc) = verify_json(&dir, &["--key-file", "keys.txt", "t1"]);
    assert_eq!(code, Some(1), "a cut .MAD is a failed page");
    let p = &doc["tables"][0]["problems"][0];
    assert_eq!(p["reason"], "truncated");
    assert_eq!(p["page"], (bytes.len() / 8192 - 1) as u64);
    // A .MAI cut inside its header is unreadable input.
    let mai = dir.join("t1.MAI");
    let head = std::fs::read(&mai).unwrap();
    std::fs::write(&mai, &head[..300]).unwrap();
    let run = run_in(&dir, ["verify", "--key-file", "keys.txt", "t1"]).expect(2);
    assert!(
        run.stderr.contains("t1.MAI: bad Aria header: truncated"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);

    // A 16384-byte table whose header claims 8192-byte pages.
    let (_tmp, dir) = copy_case("bs16384");
    let mai = dir.join("t1.MAI");
    let mut head = std::fs::read(&mai).unwrap();
    let base = usize::from(u16::from_be_bytes([head[12], head[13]]));
    assert_eq!(
        u16::from_be_bytes([head[base + 100], head[base + 101]]),
        16384
    );
    head[base + 100..base + 102].copy_from_slice(&8192u16.to_be_bytes());
    std::fs::write(&mai, &head).unwrap();
    let (code, doc) = verify_json(&dir, &["--key-file", "keys.txt", "t1"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        doc["tables"][0]["problems"][0]["cause"], "block_size",
        "{doc}"
    );
    let text = run_in(&dir, ["verify", "--key-file", "keys.txt", "t1"])
        .expect(1)
        .stdout;
    assert!(
        text.contains("the header says 8192 bytes but the pages decrypt as 16384-byte pages"),
        "{text}"
    );
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_file() {
    let (_tmp, dir) = copy_case("cbc_trans_256");
    let check = |args: &[&str], needle: &str| {
        let run = run_in(&dir, args).expect(2);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "nothing on stdout: {}", run.stdout);
    };
    let keys = ["verify", "--key-file", "keys.txt"];
    let with = |extra: &[&'static str]| [&keys[..], extra].concat();
    check(&with(&["nothere"]), "nothere: no such table");
    // .MAD without .MAI and the reverse.
    std::fs::copy(dir.join("t1.MAD"), dir.join("lonely.MAD")).unwrap();
    std::fs::copy(dir.join("t1.MAI"), dir.join("alone.MAI")).unwrap();
    check(
        &with(&["lonely.MAD"]),
        "lonely.MAD: data file without its index file (lonely.MAI is missing)",
    );
    check(
        &with(&["alone"]),
        "alone.MAI: index file without its data file",
    );
    // A directory reports both orphans and still verifies t1.
    let run = run_in(&dir, with(&["."])).expect(2);
    assert!(run.stdout.contains("OK    ./t1"), "{}", run.stdout);
    assert!(run.stderr.contains("lonely.MAD") && run.stderr.contains("alone.MAI"));
    std::fs::remove_file(dir.join("lonely.MAD")).unwrap();
    std::fs::remove_file(dir.join("alone.MAI")).unwrap();
    // Not a table; an empty directory.
    check(&with(&["case.json"]), "case.json: not an Aria table file");
    std::fs::create_dir(dir.join("empty")).unwrap();
    check(&with(&["empty"]), "empty: no Aria tables");
    // Bad magic; bad crypt block.
    let good = std::fs::read(dir.join("t1.MAI")).unwrap();
    let mut bad = good.clone();
    bad[0] = 0;
    std::fs::write(dir.join("t1.MAI"), &bad).unwrap();
    check(
        &with(&["t1"]),
        "t1.MAI: bad Aria header: not an Aria index file",
    );
    let mut bad = good.clone();
    let header_length = usize::from(u16::from_be_bytes([good[6], good[7]]));
    bad[header_length - 22] = 2;
    std::fs::write(dir.join("t1.MAI"), &bad).unwrap();
    check(&with(&["t1"]), "unsupported crypt scheme");
    std::fs::write(dir.join("t1.MAI"), &good).unwrap();
    // An unreadable data file (a directory where the file should be).
    std::fs::rename(dir.join("t1.MAD"), dir.join("t1.keep")).unwrap();
    std::fs::create_dir(dir.join("t1.MAD")).unwrap();
    check(&with(&["t1.MAI"]), "t1.MAD");
    std::fs::remove_dir(dir.join("t1.MAD")).unwrap();
    std::fs::rename(dir.join("t1.keep"), dir.join("t1.MAD")).unwrap();
    // Key files: missing, bad hex, wrong secret, secret for a plain file.
    check(&["verify", "--key-file", "none.txt", "t1"], "none.txt");
    std::fs::write(dir.join("bad.txt"), "1;00zz\n").unwrap();
    check(&["verify", "--key-file", "bad.txt", "t1"], "bad.txt line 1");
    let enc = fixtures()
        .join("enc_keyfile_secret/keys.enc")
        .display()
        .to_string();
    check(
        &[
            "verify",
            "--key-file",
            &enc,
            "--key-file-key",
            "wrong",
            "t1",
        ],
        "wrong secret",
    );
    check(
        &[
            "verify",
            "--key-file",
            "keys.txt",
            "--key-file-key",
            "x",
            "t1",
        ],
        "not encrypted",
    );
    // No keys at all.
    check(&["verify", "t1"], "verify needs keys");
    // Backends.
    check(
        &[
            "verify",
            "--backend",
            "nonsense",
            "--key-file",
            "keys.txt",
            "t1",
        ],
        "unknown AES backend",
    );
}

#[test]
fn usage_errors_exit_2_and_json_still_prints_one_document() {
    let dir = fixtures();
    for args in [
        vec!["verify", "--no-such-flag", "x"],
        vec![
            "verify",
            "--key-file",
            "a",
            "--debug-key-management",
            "2",
            "x",
        ],
        vec!["decrypt", "--key-file", "a", "x"],
        vec!["verify", "--algorithm", "gcm", "x"],
        vec!["info"],
        vec!["frobnicate"],
    ] {
        let run = run_in(&dir, &args).expect(2);
        assert!(run.stderr.starts_with("error:"), "{args:?}: {}", run.stderr);
        let mut json = args.clone();
        json.push("--json");
        let doc = run_in(&dir, &json).expect(2).json();
        assert_eq!(doc["ok"], false);
        assert_eq!(doc["exit_code"], 2);
    }
}

#[test]
fn encrypted_key_files_with_secret_or_file_secret() {
    for case in ["enc_keyfile_secret", "enc_keyfile_file"] {
        let dir = fixtures().join(case);
        let mut argv = vec!["verify".to_string()];
        argv.extend(key_args(&dir));
        argv.push("t1".into());
        run_in(&dir, &argv).expect(0);
    }
    let dir = fixtures().join("enc_keyfile_file");
    run_in(
        &dir,
        [
            "verify",
            "--key-file",
            "keys.enc",
            "--key-file-key",
            "FILE:filekey.txt",
            "t1",
        ],
    )
    .expect(0);
}

#[test]
fn decrypt_writes_plaintext_copies_and_never_touches_the_input() {
    let (tmp, dir) = copy_case("datadir");
    let before = snapshot(&dir);
    let out = tmp.path().join("out");
    let out_s = out.display().to_string();
    let doc = run_in(
        &dir,
        [
            "decrypt",
            "--json",
            "--key-file",
            "keys.txt",
            "--out-dir",
            &out_s,
            ".",
        ],
    )
    .expect(0)
    .json();
    assert_eq!(doc["command"], "decrypt");
    assert_eq!(doc["tables"].as_array().unwrap().len(), 3);
    assert_unchanged(&dir, &before);
    for table in ["enc1", "dyn1", "fix1"] {
        for ext in ["MAI", "MAD"] {
            let input = std::fs::read(dir.join(format!("db1/{table}.{ext}"))).unwrap();
            let output = std::fs::read(out.join(format!("db1/{table}.{ext}"))).unwrap();
            assert_eq!(input.len(), output.len(), "{table}.{ext}: same size");
            if table != "enc1" {
                assert!(
                    input == output,
                    "unencrypted {table}.{ext} copied unchanged"
                );
            }
        }
    }
    // Plaintext: the row markers; key-version fields zeroed; header and
    // bitmap page copied.
    let plain = std::fs::read(out.join("db1/enc1.MAD")).unwrap();
    let text = String::from_utf8_lossy(&plain);
    for marker in markers(&dir.join("db1/enc1")) {
        assert!(text.contains(&marker), "{marker}");
    }
    let cipher = std::fs::read(dir.join("db1/enc1.MAD")).unwrap();
    assert_eq!(plain[..8192], cipher[..8192], "bitmap page copied");
    for page in plain.chunks(8192).skip(1) {
        if page.iter().any(|&b| b != 0) {
            assert_eq!(page[12..16], [0, 0, 0, 0], "key version zeroed");
        }
    }
    let mai_in = std::fs::read(dir.join("db1/enc1.MAI")).unwrap();
    let mai_out = std::fs::read(out.join("db1/enc1.MAI")).unwrap();
    assert_eq!(mai_in[..8192], mai_out[..8192], "header page copied");

    // Existing files: refused without --overwrite, replaced with it.
    let run = run_in(
        &dir,
        [
            "decrypt",
            "--key-file",
            "keys.txt",
            "--out-dir",
            &out_s,
            ".",
        ],
    )
    .expect(2);
    assert!(
        run.stderr.contains("already exists (use --overwrite"),
        "{}",
        run.stderr
    );
    run_in(
        &dir,
        [
            "decrypt",
            "--key-file",
            "keys.txt",
            "--out-dir",
            &out_s,
            "--overwrite",
            ".",
        ],
    )
    .expect(0);
    // Never into the table's own directory.
    let run = run_in(
        &dir,
        [
            "decrypt",
            "--key-file",
            "keys.txt",
            "--out-dir",
            "db1",
            "--overwrite",
            "db1/enc1",
        ],
    )
    .expect(2);
    // (Here the data directory's own refusal comes first.)
    assert!(
        run.stderr
            .contains("refusing to write into the table's own directory")
            || run.stderr.contains("inside the MariaDB data directory"),
        "{}",
        run.stderr
    );
    assert_unchanged(&dir, &before);
}

#[test]
fn decrypt_with_a_wrong_key_writes_nothing_unless_partial() {
    let (tmp, dir) = copy_case("cbc_trans_256");
    let out = tmp.path().join("out");
    let out_s = out.display().to_string();
    let wrong = fixtures().join("cbc_key128/keys.txt").display().to_string();
    let before = snapshot(&dir);
    let run = run_in(
        &dir,
        ["decrypt", "--key-file", &wrong, "--out-dir", &out_s, "t1"],
    )
    .expect(1);
    assert!(run.stdout.contains("nothing written"), "{}", run.stdout);
    assert!(
        std::fs::read_dir(&out).map_or(true, |mut d| d.next().is_none()),
        "no output files"
    );
    run_in(
        &dir,
        [
            "decrypt",
            "--key-file",
            &wrong,
            "--out-dir",
            &out_s,
            "--partial",
            "t1",
        ],
    )
    .expect(1);
    assert!(out.join("t1.MAD").exists());
    assert_unchanged(&dir, &before);
}

#[test]
fn audit_finds_plaintext_tables_logs_and_key_versions() {
    let dir = fixtures().join("datadir");
    let doc = run_in(&dir, ["audit", "--json", "."]).expect(1).json();
    assert_eq!(doc["command"], "audit");
    assert_eq!(doc["unencrypted_tables"], 2);
    assert_eq!(doc["encrypted_tables"], 1);
    let logs = doc["aria_logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["file"], "aria_log.00000001");
    assert_eq!(doc["key_versions"]["1"]["1"]["tables"], 1);
    assert_eq!(doc["control_file"]["block_size"], 8192);
    let kinds: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    for kind in ["unencrypted_table", "aria_log", "key_file_in_datadir"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let formats: Vec<String> = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["encrypted"] == false)
        .map(|t| t["row_format"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(formats, ["DYNAMIC", "FIXED"]);
    let text = run_in(&dir, ["audit", "."]).expect(1).stdout;
    assert!(
        text.contains("MariaDB never encrypts DYNAMIC tables"),
        "{text}"
    );
    assert!(text.contains("in plaintext"), "{text}");
    // With keys: the versions the key file has and nothing uses.
    let doc = run_in(&dir, ["audit", "--json", "--key-file", "keys.txt", "."])
        .expect(1)
        .json();
    let unused: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "unused_key_version")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        unused.iter().any(|m| m.starts_with("key id 2 version 1")),
        "{unused:?}"
    );
}

#[test]
fn audit_exits_0_without_plaintext_and_reads_versions_without_keys() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    copy_dir(&fixtures().join("debug_versions"), &data.join("db"));
    let doc = run_in(tmp.path(), ["audit", "--json", "data"])
        .expect(0)
        .json();
    let versions = doc["key_versions"]["1"].as_object().unwrap();
    assert_eq!(versions.keys().collect::<Vec<_>>(), ["1", "2", "3"]);
    // Temporary tables without keys: "1 or 2".
    copy_dir(&fixtures().join("tmp_key2"), &data.join("tmp"));
    std::fs::remove_file(data.join("tmp/keys.txt")).unwrap();
    let doc = run_in(tmp.path(), ["audit", "--json", "data"])
        .expect(0)
        .json();
    assert!(doc["key_versions"]["1 or 2"].is_object(), "{doc}");
    let run = run_in(tmp.path(), ["audit", "nothere"]).expect(2);
    assert!(run.stderr.contains("nothere: not a directory"));
}

#[test]
fn bench_lists_every_backend_and_the_active_one() {
    let doc = run_in(
        &fixtures(),
        ["bench", "--json", "--pages", "64", "--seconds", "0.01"],
    )
    .expect(0)
    .json();
    let supported = doc["supported_backends"].as_array().unwrap();
    assert!(supported.iter().any(|b| b == "soft"));
    let results = doc["results"].as_array().unwrap();
    for backend in supported {
        for mode in ["cbc", "ctr"] {
            assert!(
                results
                    .iter()
                    .any(|r| r["backend"] == *backend && r["mode"] == mode && r["threads"] == 1),
                "{backend} {mode}"
            );
        }
    }
    assert_eq!(
        results.iter().filter(|r| r["active"] == true).count() % 2,
        0
    );
    assert!(supported.contains(&doc["active_backend"]));
    // Every page succeeded, so every rate counts real pages.
    assert_eq!(doc["failed_pages"], 0, "{doc}");
    for r in results {
        for op in ["encrypt", "decrypt"] {
            assert_eq!(r[format!("{op}_failed_pages")], 0, "{r}");
            assert!(
                r[format!("{op}_pages_per_sec")].as_f64().unwrap() > 0.0,
                "{r}"
            );
        }
    }
    // The AES limit and latency bound of every supported backend, measured.
    // No comparison of the two: they are timings, and under a sanitizer or
    // on a loaded machine either can come out ahead.
    let limits = doc["aes_limit"].as_array().unwrap();
    assert_eq!(limits.len(), supported.len(), "{doc}");
    for l in limits {
        assert!(supported.contains(&l["backend"]), "{l}");
        assert!(l["chains"].as_u64().unwrap() >= 1, "{l}");
        for figure in ["bytes_per_sec", "latency_bound_bytes_per_sec"] {
            assert!(l[figure].as_f64().unwrap() > 0.0, "{l}");
        }
        // With CRC folds, and the folds alone: measured for the hardware
        // backends with carry-less multiply (every x86 and aarch64 CPU with
        // the AES instructions has it in practice), never for the software
        // backend.
        for figure in ["with_crc_bytes_per_sec", "crc_bytes_per_sec"] {
            let value = &l[figure];
            if l["backend"] == "soft" {
                assert!(value.is_null(), "{l}");
            } else {
                assert!(value.is_null() || value.as_f64().unwrap() > 0.0, "{l}");
            }
        }
        assert_eq!(
            l["with_crc_bytes_per_sec"].is_null(),
            l["crc_bytes_per_sec"].is_null(),
            "{l}"
        );
    }
    let text = run_in(
        &fixtures(),
        [
            "bench",
            "--pages",
            "64",
            "--seconds",
            "0.01",
            "--backend",
            "soft",
        ],
    )
    .expect(0)
    .stdout;
    assert!(text.contains("active backend: soft"), "{text}");
}

#[test]
fn every_command_prints_one_json_document() {
    let (tmp, dir) = copy_case("datadir");
    let out = tmp.path().join("o").display().to_string();
    for args in [
        vec!["info", "--json", "."],
        vec!["verify", "--json", "--key-file", "keys.txt", "."],
        vec![
            "rekey",
            "--json",
            "--dry-run",
            "--key-file",
            "keys.txt",
            ".",
        ],
        vec![
            "decrypt",
            "--json",
            "--key-file",
            "keys.txt",
            "--out-dir",
            &out,
            ".",
        ],
        vec!["audit", "--json", "."],
        vec!["verify", "--json", "--key-file", "keys.txt", "missing"],
    ] {
        let run = run_in(&dir, &args);
        let doc = run.json();
        assert_eq!(doc["command"], args[0]);
        assert_eq!(doc["exit_code"].as_i64(), run.code.map(i64::from));
        assert!(doc["errors"].is_array() && doc["warnings"].is_array());
    }
}
