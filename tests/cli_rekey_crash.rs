//! Crash safety of `aria-crypt rekey`: the process dies at every step of a
//! rekey (deterministic failpoints, `ARIA_CRYPT_FAILPOINT`) and at random
//! moments (`SIGKILL` after spread delays, on a larger synthetic table).
//! After each crash the tool's next run must leave the table either exactly
//! the old one or the new one, every page must verify, and every row marker
//! must still be in the decrypted data.

// The tool and its binary need the `cli` feature.
#![cfg(feature = "cli")]

mod cli_support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use cli_support::*;
use mariadb_aria_crypt::aria::{PageFile, PageRef, TableCipher, TableHeader};
use mariadb_aria_crypt::kernel::Mode;
use mariadb_aria_crypt::keys::FileKeyProvider;
use tempfile::TempDir;

/// Every named step of a rekey and of its recovery, with the hit to stop
/// at (`NAME:N`).
const FAILPOINTS: &[&str] = &[
    "verified",
    "created:1",
    "batch-written:1",
    "created:2",
    "batch-written:2",
    "synced:1",
    "synced:2",
    "checked",
    "new-files-ready",
    "journal-written",
    "journal-committed",
    "index-removed",
    "renamed:1",
    "renamed:2",
    "renames-synced",
    "done",
];

/// The tests of this file run one at a time: a child that one test forks
/// holds the files another test has open until it execs, and `rekey`
/// rightly refuses a table that another process has open.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Old,
    New,
}

struct Scenario {
    dir: PathBuf,
    table: PathBuf,
    original: (Vec<u8>, Vec<u8>),
    rekey: Vec<String>,
    target_keys: Vec<String>,
    target_version: &'static str,
    target_algorithm: &'static str,
}

impl Scenario {
    fn files(&self) -> (Vec<u8>, Vec<u8>) {
        (
            std::fs::read(self.table.with_extension("MAI")).unwrap(),
            std::fs::read(self.table.with_extension("MAD")).unwrap(),
        )
    }

    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("aria-crypt"))
            .collect()
    }

    fn journal(&self) -> bool {
        self.table.with_extension("aria-crypt-journal").exists()
    }

    /// Old bytes exactly, or a table that verifies under the target.
    fn state(&self) -> State {
        assert!(
            self.leftovers().is_empty(),
            "leftovers: {:?}",
            self.leftovers()
        );
        if self.files() == self.original {
            return State::Old;
        }
        let mut argv = args(&["verify", "--json"]);
        argv.extend(self.target_keys.iter().cloned());
        argv.push(self.table.display().to_string());
        let run = run_in(&self.dir, &argv);
        assert_eq!(
            run.code,
            Some(0),
            "neither the old table nor the new one:\n{}",
            run.stdout
        );
        let doc = run.json();
        let t = &doc["tables"][0];
        assert_eq!(t["algorithm"], self.target_algorithm);
        let versions: Vec<&String> = t["key_versions"].as_object().unwrap().keys().collect();
        assert_eq!(
            versions,
            [self.target_version],
            "every page at the target version"
        );
        State::New
    }

    fn rekey_args(&self) -> Vec<String> {
        let mut argv = self.rekey.clone();
        argv.push(self.table.display().to_string());
        argv
    }

    fn recover(&self) -> Run {
        run_in(
            &self.dir,
            ["rekey", "--recover", self.table.to_str().unwrap()],
        )
        .expect(0)
    }
}

/// debug_versions (versions 1, 2, 3, CBC) to version 5, CTR, new table key.
fn fixture_scenario() -> (TempDir, Scenario) {
    let (tmp, dir) = copy_case("debug_versions");
    let table = dir.join("t1");
    let s = Scenario {
        original: (
            std::fs::read(dir.join("t1.MAI")).unwrap(),
            std::fs::read(dir.join("t1.MAD")).unwrap(),
        ),
        dir,
        table,
        rekey: args(&[
            "rekey",
            "--debug-key-management",
            "5",
            "--to-algorithm",
            "ctr",
            "--new-table-key",
        ]),
        target_keys: args(&["--debug-key-management", "5"]),
        target_version: "5",
        target_algorithm: "ctr",
    };
    (tmp, s)
}

/// A journal means roll forward; without one the new files are dropped,
/// unless the rekey had already finished.
fn expected(point: &str, journaled: bool) -> State {
    if journaled || point == "done" {
        State::New
    } else {
        State::Old
    }
}

fn crash_at(s: &Scenario, point: &str) -> Run {
    let run = run_env(&s.dir, s.rekey_args(), &[("ARIA_CRYPT_FAILPOINT", point)]);
    let name = point.split(':').next().unwrap();
    assert!(
        run.code.is_none() && run.stderr.contains(&format!("failpoint {name} reached")),
        "{point}: the rekey did not stop there: {:?}\n{}",
        run.code,
        run.stderr
    );
    run
}

#[test]
fn every_failpoint_leaves_the_old_or_the_new_table() {
    let _serial = one_at_a_time();
    let markers = markers(&fixtures().join("debug_versions/t1"));
    let mut seen = Vec::new();
    for (i, point) in FAILPOINTS.iter().enumerate() {
        let (_tmp, s) = fixture_scenario();
        crash_at(&s, point);
        let journaled = s.journal();
        // Other commands say an interrupted rekey is pending.
        if journaled || !s.leftovers().is_empty() {
            let run = run_in(&s.dir, ["info", "t1"]);
            assert!(
                run.stderr.contains("interrupted rekey"),
                "{point}: {}",
                run.stderr
            );
        }
        // Then the next run: `rekey --recover`, or the same rekey again.
        let state = if i % 2 == 0 {
            let run = s.recover();
            let state = s.state();
            assert_eq!(
                state,
                expected(point, journaled),
                "{point}: a journal means roll forward, none means roll back\n{}",
                run.stdout
            );
            run_in(&s.dir, s.rekey_args()).expect(0);
            state
        } else {
            run_in(&s.dir, s.rekey_args()).expect(0);
            expected(point, journaled)
        };
        assert_eq!(s.state(), State::New, "{point}: the rekey completes");
        assert_markers(&s.dir, &s.table, &s.target_keys, &markers);
        seen.push((point, journaled, state));
    }
    // Both outcomes were exercised.
    assert!(seen.iter().any(|(_, j, _)| *j) && seen.iter().any(|(_, j, _)| !*j));
    eprintln!("failpoints: {seen:?}");
}

#[test]
fn a_crash_during_recovery_is_recovered_too() {
    let _serial = one_at_a_time();
    let (_tmp, s) = fixture_scenario();
    crash_at(&s, "journal-committed");
    // Each recovery run renames what is left: the first rename of the
    // first run is the index file, of the second the data file.
    for point in ["renamed:1", "renamed:1", "renames-synced"] {
        let run = run_env(
            &s.dir,
            ["rekey", "--recover", s.table.to_str().unwrap()],
            &[("ARIA_CRYPT_FAILPOINT", point)],
        );
        assert!(run.code.is_none(), "{point}: {}", run.stderr);
        assert!(s.journal(), "the journal outlives an interrupted recovery");
    }
    let run = s.recover();
    assert!(
        run.stdout.contains("completed the interrupted rekey"),
        "{}",
        run.stdout
    );
    assert_eq!(s.state(), State::New);
    assert_markers(
        &s.dir,
        &s.table,
        &s.target_keys,
        &markers(&fixtures().join("debug_versions/t1")),
    );
}

/// A table of `pages` data pages: the header and index pages of the
/// cbc_trans_256 fixture, and head pages that each carry a marker,
/// encrypted with the library for that table's crypt data and key 1.
fn synthetic(dir: &Path, pages: u32) -> PathBuf {
    let case = fixtures().join("cbc_trans_256");
    let table = dir.join("big");
    std::fs::copy(case.join("t1.MAI"), table.with_extension("MAI")).unwrap();
    std::fs::copy(case.join("keys.txt"), dir.join("keys.txt")).unwrap();
    let header = TableHeader::read(case.join("t1.MAI")).unwrap();
    let provider = FileKeyProvider::from_path(case.join("keys.txt"), None).unwrap();
    let cipher = TableCipher::for_table(&header, Mode::Cbc, Arc::new(provider)).unwrap();
    let bs = 8192;
    let original = std::fs::read(case.join("t1.MAD")).unwrap();
    let mut data = vec![0u8; pages as usize * bs];
    data[..bs].copy_from_slice(&original[..bs]); // the bitmap page
    for (n, page) in data.chunks_exact_mut(bs).enumerate().skip(1) {
        page[7] = 1; // head page, LSN 0
        let marker = synthetic_marker(n);
        page[16..16 + marker.len()].copy_from_slice(marker.as_bytes());
        for (i, b) in page[64..bs - 4].iter_mut().enumerate() {
            *b = (i * 31 + n * 7) as u8;
        }
    }
    for (batch, chunk) in data.chunks_mut(64 * bs).enumerate() {
        let mut refs: Vec<PageRef> = chunk
            .chunks_exact_mut(bs)
            .enumerate()
            .map(|(i, data)| PageRef {
                number: (batch * 64 + i) as u32,
                data,
            })
            .collect();
        assert!(
            cipher
                .encrypt_pages(PageFile::Data, &mut refs)
                .iter()
                .all(Result::is_ok)
        );
    }
    std::fs::write(table.with_extension("MAD"), &data).unwrap();
    table
}

fn synthetic_marker(page: usize) -> String {
    format!("SYNTH-MARKER-{page:06}")
}

/// Every synthetic page's marker is in the decrypted data file.
fn assert_synthetic_markers(s: &Scenario, pages: usize) {
    let out = TempDir::new().unwrap();
    let mut argv = args(&["decrypt"]);
    argv.extend(s.target_keys.iter().cloned());
    argv.extend([
        "--out-dir".into(),
        out.path().display().to_string(),
        "big".into(),
    ]);
    run_in(&s.dir, &argv).expect(0);
    let plain = std::fs::read(out.path().join("big.MAD")).unwrap();
    for (n, page) in plain.chunks_exact(8192).enumerate().skip(1).take(pages) {
        let marker = synthetic_marker(n);
        assert_eq!(&page[16..16 + marker.len()], marker.as_bytes(), "page {n}");
    }
}

#[test]
fn sigkill_at_random_moments_of_a_large_rekey() {
    let _serial = one_at_a_time();
    // 24 MB of data pages; less where the tests usually run emulated
    // (qemu-aarch64 is some 30 times slower).
    const PAGES: u32 = if cfg!(target_arch = "x86_64") {
        3000
    } else {
        1000
    };
    const KILLS: u32 = 12;
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("db");
    std::fs::create_dir(&dir).unwrap();
    let table = synthetic(&dir, PAGES);
    std::fs::write(
        dir.join("new.txt"),
        "1;c0ffee00c0ffee01c0ffee02c0ffee03c0ffee04c0ffee05\n",
    )
    .unwrap();
    let pristine = (
        std::fs::read(table.with_extension("MAI")).unwrap(),
        std::fs::read(table.with_extension("MAD")).unwrap(),
    );
    let s = Scenario {
        dir: dir.clone(),
        table: table.clone(),
        original: pristine.clone(),
        rekey: args(&[
            "rekey",
            "--key-file",
            "keys.txt",
            "--to-key-file",
            "new.txt",
            "--to-algorithm",
            "ctr",
            "--new-table-key",
        ]),
        target_keys: args(&["--key-file", "new.txt"]),
        target_version: "1",
        target_algorithm: "ctr",
    };
    let restore = || {
        std::fs::write(dir.join("big.MAI"), &pristine.0).unwrap();
        std::fs::write(dir.join("big.MAD"), &pristine.1).unwrap();
    };
    // How long one uninterrupted rekey takes here (the shortest of three),
    // to spread the kills over it: a delay, nothing is asserted about it.
    let mut span = std::time::Duration::MAX;
    for _ in 0..3 {
        restore();
        let start = Instant::now();
        run_in(&dir, s.rekey_args()).expect(0);
        span = span.min(start.elapsed());
    }
    assert_eq!(s.state(), State::New);
    assert_synthetic_markers(&s, PAGES as usize - 1);

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut outcomes = Vec::new();
    for i in 0..KILLS {
        restore();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Evenly spread over the run, jittered within each slot.
        let slot = (f64::from(i) + (seed % 1000) as f64 / 1000.0) / f64::from(KILLS);
        let delay = span.mul_f64(slot * 0.9);
        let mut child = spawn_in(&dir, s.rekey_args());
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let journaled = s.journal();
        s.recover();
        let state = s.state();
        if journaled {
            assert_eq!(state, State::New, "a journal rolls forward");
        }
        // Every row is there, in whichever table is left.
        let keys = if state == State::Old {
            args(&["--key-file", "keys.txt"])
        } else {
            s.target_keys.clone()
        };
        let check = Scenario {
            target_keys: keys,
            dir: s.dir.clone(),
            table: s.table.clone(),
            original: (Vec::new(), Vec::new()),
            rekey: Vec::new(),
            target_version: "1",
            target_algorithm: "",
        };
        assert_synthetic_markers(&check, PAGES as usize - 1);
        outcomes.push((delay, status.code().is_none(), journaled, state));
    }
    eprintln!("one rekey: {span:?}; kills (delay, killed, journal, state): {outcomes:?}");
    assert!(
        outcomes.iter().filter(|o| o.1).count() >= KILLS as usize / 3,
        "runs were really killed mid-way"
    );
}

/// What a server starting now would open: both old files, both new ones,
/// or no table at all (no `.MAI`); never an index file with the data
/// file of another generation.
fn as_a_server_sees_it(s: &Scenario, new: &(Vec<u8>, Vec<u8>)) -> &'static str {
    let mai = std::fs::read(s.table.with_extension("MAI")).ok();
    let mad = std::fs::read(s.table.with_extension("MAD")).unwrap();
    match mai {
        None => "no table",
        Some(mai) if (&mai, &mad) == (&s.original.0, &s.original.1) => "old",
        Some(mai) if (&mai, &mad) == (&new.0, &new.1) => "new",
        Some(_) => "half replaced",
    }
}

/// A server marks a table it cannot read crashed: open count and the
/// crashed flag in the `.MAI` state (bytes 24..28).
fn server_rewrites_header(mai: &Path) {
    let mut bytes = std::fs::read(mai).unwrap();
    bytes[24..26].copy_from_slice(&1u16.to_be_bytes());
    bytes[27] |= 0x02;
    std::fs::write(mai, bytes).unwrap();
}

/// The new files a completed rekey of the scenario writes (its table key is
/// random: taken from the new files the crash left).
fn new_files_left(s: &Scenario) -> (Vec<u8>, Vec<u8>) {
    let real = |ext: &str| {
        let target = s.table.with_extension(ext);
        let new = s.dir.join(format!("t1.{ext}.aria-crypt-new"));
        std::fs::read(&new).unwrap_or_else(|_| std::fs::read(target).unwrap())
    };
    (real("MAI"), real("MAD"))
}

#[test]
fn a_server_starting_between_the_renames_never_sees_a_half_replaced_table() {
    let _serial = one_at_a_time();
    for point in ["index-removed", "renamed:1"] {
        let (_tmp, s) = fixture_scenario();
        crash_at(&s, "journal-committed");
        let new = new_files_left(&s);
        // Run the renames again from the journal and stop at `point`.
        let run = run_env(
            &s.dir,
            ["rekey", "--recover", s.table.to_str().unwrap()],
            &[("ARIA_CRYPT_FAILPOINT", point)],
        );
        assert!(run.code.is_none(), "{point}: {}", run.stderr);
        let seen = as_a_server_sees_it(&s, &new);
        assert_eq!(seen, "no table", "{point}: a server would open {seen}");
        // A server that opened what it found would rewrite the header.
        if s.table.with_extension("MAI").exists() {
            server_rewrites_header(&s.table.with_extension("MAI"));
        }
        let run = s.recover();
        assert!(
            run.stdout.contains("completed the interrupted rekey"),
            "{point}: {}",
            run.stdout
        );
        assert_eq!(s.state(), State::New, "{point}");
    }
}

#[test]
fn a_crash_between_the_renames_then_the_server_then_recover() {
    // The order a rekey replaces the files in: after any crash, a server
    // finds no index file until the table is whole again.
    let _serial = one_at_a_time();
    let (_tmp, s) = fixture_scenario();
    crash_at(&s, "renamed:1");
    let mai = s.table.with_extension("MAI");
    assert!(
        !mai.exists(),
        "the index file is put in place last: none while the data file is replaced"
    );
    let run = run_in(&s.dir, ["info", "t1"]);
    assert!(run.stderr.contains("interrupted rekey"), "{}", run.stderr);
    s.recover();
    assert_eq!(s.state(), State::New);
}

#[test]
fn recovery_rolls_back_when_the_old_table_changed_after_the_journal() {
    let _serial = one_at_a_time();
    let (_tmp, s) = fixture_scenario();
    crash_at(&s, "journal-committed");
    // A server started on the old table before any rename and wrote to it.
    let mai = s.table.with_extension("MAI");
    server_rewrites_header(&mai);
    let changed = s.files();
    let run = s.recover();
    assert!(
        run.stdout.contains("rolled back") && run.stderr.contains("changed after the journal"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(s.files(), changed, "the server's table is kept as it is");
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[test]
fn recovery_that_can_neither_finish_nor_roll_back_names_the_files_and_commands() {
    let _serial = one_at_a_time();
    let (_tmp, s) = fixture_scenario();
    crash_at(&s, "renamed:1");
    // The new index file and the old data file are lost (by hand).
    std::fs::remove_file(s.dir.join("t1.MAI.aria-crypt-new")).unwrap();
    std::fs::remove_file(s.dir.join("t1.MAD.aria-crypt-old")).unwrap();
    let run = run_in(&s.dir, ["rekey", "--recover", "t1"]).expect(1);
    for needle in [
        "neither finishing nor rolling back is possible",
        "t1.MAI.aria-crypt-old (present)",
        "t1.MAD.aria-crypt-old (missing)",
        "restore the table from a backup",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    assert!(s.journal(), "the journal is kept");
}

#[test]
fn a_version_1_journal_completes_although_the_server_rewrote_the_header() {
    // What an earlier aria-crypt left: the .MAI replaced first, the .MAD
    // not yet; a server then opened the table, marked it crashed and
    // rewrote the .MAI header.
    let _serial = one_at_a_time();
    let (_tmp, s) = fixture_scenario();
    crash_at(&s, "journal-committed");
    let new = new_files_left(&s);
    for f in [
        "t1.MAI.aria-crypt-new",
        "t1.MAD.aria-crypt-new",
        "t1.MAI.aria-crypt-old",
        "t1.MAD.aria-crypt-old",
        "t1.aria-crypt-journal",
    ] {
        let _ = std::fs::remove_file(s.dir.join(f));
    }
    let crc = |b: &[u8]| format!("{:08x}", crc32fast::hash(b));
    let journal = serde_json::json!({
        "format": "aria-crypt rekey journal",
        "version": 1,
        "files": [
            {"new": s.dir.join("t1.MAI.aria-crypt-new"), "target": s.dir.join("t1.MAI"), "size": new.0.len(), "crc32": crc(&new.0)},
            {"new": s.dir.join("t1.MAD.aria-crypt-new"), "target": s.dir.join("t1.MAD"), "size": new.1.len(), "crc32": crc(&new.1)},
        ]
    });
    std::fs::write(s.dir.join("t1.aria-crypt-journal"), journal.to_string()).unwrap();
    std::fs::write(s.dir.join("t1.MAI"), &new.0).unwrap();
    std::fs::write(s.dir.join("t1.MAD.aria-crypt-new"), &new.1).unwrap();
    server_rewrites_header(&s.dir.join("t1.MAI"));
    let run = s.recover();
    assert!(
        run.stdout.contains("completed the interrupted rekey")
            && run.stderr.contains("changed after it was replaced"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(std::fs::read(s.dir.join("t1.MAD")).unwrap(), new.1);
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}
