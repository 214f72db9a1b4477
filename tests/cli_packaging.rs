//! What packages install beside the binary: the man pages (`aria-crypt
//! manpages DIR`, hidden) and the shell completions (`aria-crypt
//! completions SHELL`), both generated from the clap definitions, so they
//! must name every command and option `--help` shows.

// The tool and its binary need the `cli` feature.
#![cfg(feature = "cli")]

mod cli_support;

use std::collections::BTreeSet;
use std::fs::File;
use std::process::Stdio;

use cli_support::*;
use tempfile::TempDir;

/// The commands `aria-crypt --help` lists, without clap's `help`.
fn commands_in_help() -> Vec<String> {
    let help = run_in(&fixtures(), ["--help"]).expect(0).stdout;
    let section = help
        .split("Commands:\n")
        .nth(1)
        .expect("--help has a Commands section");
    let names: Vec<String> = section
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 7, "commands in --help: {names:?}");
    names
}

/// Every `--long` option `aria-crypt ARGS --help` documents.
fn long_options_in_help(args: &[&str]) -> BTreeSet<String> {
    let mut args = args.to_vec();
    args.push("--help");
    let help = run_in(&fixtures(), &args).expect(0).stdout;
    // Option lines are indented 2 (`  -j, --jobs`) or 6 (`      --json`)
    // spaces; descriptions and wrapped prose are not.
    help.lines()
        .filter(|line| {
            let indent = line.len() - line.trim_start().len();
            (2..=6).contains(&indent) && line.trim_start().starts_with('-')
        })
        .filter_map(|line| {
            line.split([' ', ','])
                .find(|word| word.starts_with("--") && word.len() > 2)
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn man_pages_cover_every_command_and_option_of_help() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("man/man1");
    let run = run_in(tmp.path(), ["manpages".as_ref(), dir.as_os_str()]).expect(0);

    let mut expected: BTreeSet<String> = commands_in_help()
        .iter()
        .map(|c| format!("aria-crypt-{c}.1"))
        .collect();
    expected.insert("aria-crypt.1".into());
    let written: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, expected, "one page per command, nothing else");
    assert_eq!(run.stdout.lines().count(), expected.len(), "{}", run.stdout);

    let mut pages = vec![(String::from("aria-crypt.1"), Vec::new())];
    pages.extend(
        commands_in_help()
            .into_iter()
            .map(|c| (format!("aria-crypt-{c}.1"), vec![c])),
    );
    for (file, command) in pages {
        let roff = std::fs::read_to_string(dir.join(&file)).unwrap();
        // roff escapes every hyphen.
        let text = roff.replace("\\-", "-");
        assert!(
            roff.starts_with(".ie \\n(.g") || roff.contains(".TH"),
            "{file} is roff"
        );
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let options = long_options_in_help(&args);
        assert!(
            options.contains("--json") && options.contains("--help"),
            "{options:?}"
        );
        for option in options {
            assert!(
                text.contains(&format!("\\fB{option}\\fR")),
                "{file} documents {option}"
            );
        }
        if let Some(command) = command.first() {
            let help = run_in(&fixtures(), ["help", command]).expect(0).stdout;
            let example = help
                .lines()
                .find(|line| line.trim_start().starts_with("aria-crypt "))
                .expect("help has examples");
            assert!(
                text.contains(example.trim()),
                "{file} has the examples of --help ({example})"
            );
        }
    }
    assert!(
        !written.iter().any(|f| f.contains("manpages")),
        "the packagers' command stays hidden"
    );
}

#[test]
fn man_pages_replace_old_pages_and_fail_cleanly_on_a_file_in_the_way() {
    let tmp = TempDir::new().unwrap();
    let old = tmp.path().join("aria-crypt.1");
    std::fs::write(&old, "stale").unwrap();
    run_in(tmp.path(), ["manpages", "."]).expect(0);
    assert_ne!(std::fs::read(&old).unwrap(), b"stale");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".1"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );

    let blocker = tmp.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let run = run_in(tmp.path(), ["manpages", "not-a-dir"]).expect(1);
    assert!(run.stderr.contains("not-a-dir"), "{}", run.stderr);
    assert_eq!(std::fs::read(&blocker).unwrap(), b"x");
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_command_and_option() {
    let commands = commands_in_help();
    let rekey_options = long_options_in_help(&["rekey"]);
    assert!(rekey_options.contains("--to-key-file") && rekey_options.contains("--json"));
    for shell in ["bash", "zsh", "fish"] {
        let run = run_in(&fixtures(), ["completions", shell]).expect(0);
        for command in &commands {
            assert!(
                run.stdout.contains(command.as_str()),
                "{shell} completes {command}"
            );
        }
        for option in &rekey_options {
            // fish spells long options `-l name`.
            let name = option.trim_start_matches('-');
            assert!(
                run.stdout.contains(option.as_str()) || run.stdout.contains(&format!("-l {name}")),
                "{shell} completes rekey {option}"
            );
        }
    }
    // The bash script at least parses.
    let tmp = TempDir::new().unwrap();
    let script = tmp.path().join("aria-crypt.bash");
    std::fs::write(&script, run_in(&fixtures(), ["completions", "bash"]).stdout).unwrap();
    let bash = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .expect("bash runs");
    assert!(bash.success(), "bash -n accepts the completion script");
}

#[test]
fn completions_reject_unknown_shells_and_json_and_report_a_failed_write() {
    let run = run_in(&fixtures(), ["completions", "tcsh"]).expect(2);
    assert!(run.stderr.contains("tcsh"), "{}", run.stderr);

    for args in [
        ["completions", "--json", "bash"],
        ["manpages", "--json", "x"],
    ] {
        let run = run_in(&fixtures(), args).expect(2);
        assert_eq!(run.json()["exit_code"], 2);
    }

    // A full disk (or a closed pipe) is an error message, not a panic.
    let full = File::options().write(true).open("/dev/full").unwrap();
    let out = command()
        .args(["completions", "bash"])
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("completion script"));
}
