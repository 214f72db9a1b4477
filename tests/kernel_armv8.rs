//! The ARMv8 backend's place on aarch64: detection agrees with the standard
//! library's, Armv8 is the default wherever the CPU has the Cryptography
//! Extensions, and `ARIA_CRYPT_BACKEND` still wins.
//!
//! The known-answer and differential suites run every backend in
//! [`Backend::supported`]; these tests make sure Armv8 is in that list when
//! it should be, so those suites cannot silently fall back to the software
//! backend alone. `scripts/test-aarch64.sh` also sets
//! `ARIA_CRYPT_TEST_EXPECT_BACKEND` to the backend each of its runs must
//! have active (`armv8`, then `soft`).

#![cfg(target_arch = "aarch64")]

use std::io::Write;

use mariadb_aria_crypt::kernel::{Aes, Backend, Mode};

/// The backend that must be active in this run, when set.
const EXPECT_ENV: &str = "ARIA_CRYPT_TEST_EXPECT_BACKEND";

/// Independent of the crate's `cpufeatures` check: the standard library's
/// own `AT_HWCAP` / `sysctl` reading (`aes` includes PMULL in both).
fn cpu_has_aes() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
}

#[test]
fn detection_agrees_with_std() {
    assert_eq!(Backend::Armv8.is_supported(), cpu_has_aes());
    assert_eq!(Backend::supported().first(), Some(&Backend::Soft));
    for x86 in [Backend::AesNi, Backend::Vaes256, Backend::Vaes512] {
        assert!(!x86.is_supported(), "{x86} reported on aarch64");
    }
}

#[test]
fn armv8_is_best_when_present() {
    if cpu_has_aes() {
        assert_eq!(Backend::best(), Backend::Armv8);
        let aes = Aes::with_backend(&[0u8; 16], Backend::Armv8).unwrap();
        assert_eq!(aes.backend(), Backend::Armv8);
    } else {
        assert_eq!(Backend::best(), Backend::Soft);
        assert!(Aes::with_backend(&[0u8; 16], Backend::Armv8).is_err());
    }
}

#[test]
fn active_backend_follows_env() {
    let expected = match Backend::from_env() {
        Ok(Some(backend)) => backend,
        _ => Backend::best(),
    };
    assert_eq!(Backend::active(), expected);
    assert_eq!(Aes::new(&[0u8; 32]).unwrap().backend(), expected);
    if let Some(name) = std::env::var(EXPECT_ENV).ok().filter(|n| !n.is_empty()) {
        assert_eq!(Backend::active().name(), name, "{EXPECT_ENV}");
    }
}

/// Armv8 against the software backend on every key size and on lengths
/// around the 8-block groups and the single-block remainder loops.
#[test]
fn armv8_matches_soft_around_group_edges() {
    if !Backend::Armv8.is_supported() {
        // Not captured by the test harness: a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: armv8_matches_soft_around_group_edges: this CPU has no AES extension"
        );
        return;
    }
    for key_len in [16, 24, 32] {
        let key: Vec<u8> = (0..key_len as u8)
            .map(|b| b.wrapping_mul(29) ^ 0x5c)
            .collect();
        let armv8 = Aes::with_backend(&key, Backend::Armv8).unwrap();
        let soft = Aes::with_backend(&key, Backend::Soft).unwrap();
        let iv = [0xffu8; 16];
        for blocks in [0, 1, 7, 8, 9, 15, 16, 17, 24] {
            let plain: Vec<u8> = (0..blocks * 16 + 5)
                .map(|i| (i * 7 + key_len) as u8)
                .collect();
            for mode in [Mode::Cbc, Mode::Ctr] {
                let (mut a, mut s) = (plain.clone(), plain.clone());
                armv8.encrypt(mode, &iv, &mut a);
                soft.encrypt(mode, &iv, &mut s);
                assert_eq!(a, s, "{mode} encrypt, {key_len}-byte key, {blocks} blocks");
                armv8.decrypt(mode, &iv, &mut a);
                assert_eq!(
                    a, plain,
                    "{mode} decrypt, {key_len}-byte key, {blocks} blocks"
                );
            }
            let whole = &plain[..blocks * 16];
            let (mut a, mut s) = (whole.to_vec(), whole.to_vec());
            armv8.ecb_encrypt(&mut a).unwrap();
            soft.ecb_encrypt(&mut s).unwrap();
            assert_eq!(a, s, "ECB, {key_len}-byte key, {blocks} blocks");
            armv8.ecb_decrypt(&mut a).unwrap();
            assert_eq!(a, whole, "ECB decrypt, {key_len}-byte key, {blocks} blocks");
        }
    }
}
