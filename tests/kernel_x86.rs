//! The x86-64 backends' place: the kernel's own CPUID reading agrees with
//! the standard library's `is_x86_feature_detected!`, and the backends
//! found are the ones CI says its machine has.
//!
//! Every kernel suite loops over [`Backend::supported`]. If detection
//! shrank (say, to `[Soft, AesNi]`), each would still pass, on fewer
//! backends. These tests make that a failure: the first against an
//! independent detection, the second against a list `.ci/run` derives from
//! `/proc/cpuinfo` (`ARIA_CRYPT_EXPECT_BACKENDS`). On aarch64,
//! `tests/kernel_armv8.rs` does the same.

#![cfg(target_arch = "x86_64")]

use std::io::Write;

use mariadb_aria_crypt::kernel::Backend;

/// Comma-separated names of the backends this machine must support, in
/// [`Backend::supported`] order (`soft,aesni,vaes256,vaes512`).
const EXPECT_ENV: &str = "ARIA_CRYPT_EXPECT_BACKENDS";

macro_rules! cpu_has {
    ($($feature:tt),+) => { $(std::arch::is_x86_feature_detected!($feature))&&+ };
}

/// A line the test harness does not capture: a skip must be seen.
fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

#[test]
fn detection_agrees_with_std() {
    let aesni = cpu_has!("aes", "ssse3", "sse4.1");
    let vaes256 = aesni && cpu_has!("avx", "avx2", "vaes");
    let vaes512 = vaes256 && cpu_has!("avx512f", "avx512bw", "avx512vl");
    let expected: Vec<Backend> = [
        (Backend::Soft, true),
        (Backend::AesNi, aesni),
        (Backend::Vaes256, vaes256),
        (Backend::Vaes512, vaes512),
    ]
    .into_iter()
    .filter_map(|(backend, found)| found.then_some(backend))
    .collect();
    assert_eq!(Backend::supported(), expected.as_slice());
    assert!(!Backend::Armv8.is_supported(), "armv8 reported on x86-64");
    assert_eq!(Backend::best(), *expected.last().unwrap());
}

#[test]
fn machine_has_the_backends_ci_expects() {
    let Some(list) = std::env::var(EXPECT_ENV).ok().filter(|l| !l.is_empty()) else {
        skipped(&format!(
            "machine_has_the_backends_ci_expects: {EXPECT_ENV} is not set"
        ));
        return;
    };
    let expected: Vec<Backend> = list
        .split(',')
        .map(|name| {
            name.parse()
                .unwrap_or_else(|e| panic!("{EXPECT_ENV}={list}: {e}"))
        })
        .collect();
    assert_eq!(
        Backend::supported(),
        expected.as_slice(),
        "{EXPECT_ENV}={list}"
    );
}
