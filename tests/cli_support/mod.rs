//! Shared helpers of the `aria-crypt` integration tests: running the binary
//! (through `ARIA_CRYPT_TEST_RUNNER` when set, e.g. `qemu-aarch64`), copies
//! of the committed fixtures in temporary directories, snapshots of file
//! bytes, and the fixtures' row markers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// The committed fixtures (read only: tests work on copies).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A command running `aria-crypt`, prefixed by `ARIA_CRYPT_TEST_RUNNER`
/// (split on whitespace) when it is set: an emulated test binary cannot
/// always start another emulated binary by itself.
pub fn command() -> Command {
    let bin = env!("CARGO_BIN_EXE_aria-crypt");
    let runner = std::env::var("ARIA_CRYPT_TEST_RUNNER").unwrap_or_default();
    let mut parts = runner.split_whitespace();
    let mut cmd = match parts.next() {
        Some(first) => {
            let mut cmd = Command::new(first);
            cmd.args(parts).arg(bin);
            cmd
        }
        None => Command::new(bin),
    };
    // Failpoints are set per test only.
    cmd.env_remove("ARIA_CRYPT_FAILPOINT");
    cmd
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Stdout as the one JSON document it must be.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics with the output unless the exit code is `code`.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `aria-crypt args...` in `dir`.
pub fn run_in<I, S>(dir: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_env(dir, args, &[])
}

/// Runs `aria-crypt args...` in `dir` with extra environment variables.
pub fn run_env<I, S>(dir: &Path, args: I, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command();
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("aria-crypt starts"))
}

/// Starts `aria-crypt args...` in `dir` without waiting.
pub fn spawn_in<I, S>(dir: &Path, args: I) -> Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aria-crypt starts")
}

/// A copy of fixture case `name` in a fresh temporary directory; returns
/// the directory and the case's path in it.
pub fn copy_case(name: &str) -> (TempDir, PathBuf) {
    let tmp = TempDir::new().expect("temp dir");
    let to = tmp.path().join(name);
    copy_dir(&fixtures().join(name), &to);
    (tmp, to)
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir` with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Asserts nothing under `dir` changed since `before`.
pub fn assert_unchanged(dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let after = snapshot(dir);
    let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(before), names(&after), "files appeared or vanished");
    for (path, bytes) in before {
        assert!(after[path] == *bytes, "{} changed", path.display());
    }
}

/// The case's `case.json`.
pub fn case_json(case_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(case_dir.join("case.json")).unwrap()).unwrap()
}

/// Key options of a case, as `case.json` describes them (relative
/// `FILE:` secrets resolved against the case directory).
pub fn key_args(case_dir: &Path) -> Vec<String> {
    let json = case_json(case_dir);
    if let Some(n) = json["debug_key_management"].as_u64() {
        return vec!["--debug-key-management".into(), n.to_string()];
    }
    let mut args = vec![
        "--key-file".into(),
        case_dir
            .join(json["key_file"].as_str().unwrap())
            .display()
            .to_string(),
    ];
    if let Some(key) = json["key_file_key"].as_str() {
        args.push("--key-file-key".into());
        args.push(match key.strip_prefix("FILE:") {
            Some(path) => format!("FILE:{}", case_dir.join(path).display()),
            None => key.to_string(),
        });
    }
    args
}

/// The row markers of a table (`<table>.rows`).
pub fn markers(table_stem: &Path) -> Vec<String> {
    std::fs::read_to_string(table_stem.with_extension("rows"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Decrypts `table` with `keys` into a fresh directory and asserts every
/// marker is in the plaintext data file.
pub fn assert_markers(dir: &Path, table: &Path, keys: &[String], markers: &[String]) {
    let out = TempDir::new().unwrap();
    let mut args: Vec<String> = vec!["decrypt".into()];
    args.extend(keys.iter().cloned());
    args.extend([
        "--out-dir".into(),
        out.path().display().to_string(),
        table.display().to_string(),
    ]);
    run_in(dir, &args).expect(0);
    let name = table.file_name().unwrap().to_string_lossy().into_owned();
    let plain = std::fs::read(out.path().join(format!("{name}.MAD"))).unwrap();
    let text = String::from_utf8_lossy(&plain);
    for marker in markers {
        assert!(
            text.contains(marker.as_str()),
            "marker {marker} missing from the decrypted {}",
            table.display()
        );
    }
}

/// Owned strings from string slices.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}
