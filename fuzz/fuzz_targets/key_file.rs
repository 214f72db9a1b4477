//! Key files (plain and `Salted__`) on arbitrary bytes, against a
//! straightforward re-implementation of spec §3.3/§3.4 written here, with the
//! rules the crate established on the real server (`src/keys/file.rs`): more
//! than 1 MiB is refused before anything else; a `Salted__` file longer than
//! 8 bytes is always decrypted (empty secret when none); a secret with a
//! plain file is refused; the text ends at its first NUL; a last line of
//! blanks without `\n` is a syntax error; the first bad line stops parsing.
//!
//! Input: byte 0 = flags (bits 0-1: 0 no secret, 1 the secret, 2 encrypt the
//! file with the secret first (`openssl enc`), 3 an empty secret; bits 2-7:
//! 1 pad (`\n`, then `#`s) to exactly 1 MiB, 2 to 1 MiB + 1, else as is), byte 1 = secret
//! length, then the secret, then the key file.
//!
//! Checked: `FileKeyProvider::parse` gives the reference's keys, or its
//! fault on its line, naming the origin; the versioned parser accepts every
//! file the MariaDB parser accepts, with the same keys at version 1, and
//! fails the same way before the lines; no `Debug` or message prints a key.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mariadb_aria_crypt::keys::{FileKeyProvider, KeyProvider, VersionedKeyProvider};
use mariadb_aria_crypt::{Error, KeyFileFault};
use mariadb_aria_crypt_fuzz::{RefAes, assert_no_key, bytes_to_key, cbc, openssl_enc};

const MIB: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq)]
enum Fault {
    KeyId,
    Syntax,
    KeyHex,
    KeyLength(usize),
    MissingKey1,
    TooLarge(u64),
    NotEncrypted,
    WrongSecret,
    Truncated,
}

type Keys = BTreeMap<u32, Vec<u8>>;
type RefResult = Result<Keys, (Option<usize>, Fault)>;

fn until_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\r' || c == 0x0b || c == 0x0c
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// §3.3, line by line.
fn ref_lines(text: &[u8]) -> RefResult {
    let mut keys = Keys::new();
    let mut number = 0;
    let mut rest = text;
    while !rest.is_empty() {
        number += 1;
        let (line, ended) = match rest.iter().position(|&c| c == b'\n') {
            Some(nl) => {
                let line = &rest[..nl];
                rest = &rest[nl + 1..];
                (line, true)
            }
            None => {
                let line = rest;
                rest = &[];
                (line, false)
            }
        };
        let start = line
            .iter()
            .position(|&c| !is_blank(c))
            .unwrap_or(line.len());
        let line = &line[start..];
        let fail = |fault| Err((Some(number), fault));
        let Some(&first) = line.first() else {
            // End of the line is a comment; end of the text is not.
            if ended {
                continue;
            }
            return fail(Fault::Syntax);
        };
        if first == b'#' {
            continue;
        }
        if !first.is_ascii_digit() {
            return fail(Fault::Syntax);
        }
        let digits = line.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut id: u64 = 0;
        let mut overflow = false;
        for &d in &line[..digits] {
            id = id * 10 + u64::from(d - b'0');
            if id > u64::from(u32::MAX) {
                overflow = true;
                id = u64::from(u32::MAX) + 1;
            }
        }
        if overflow || id == 0 {
            return fail(Fault::KeyId);
        }
        if line.get(digits) != Some(&b';') {
            return fail(Fault::Syntax);
        }
        let hex: Vec<u8> = line[digits + 1..]
            .iter()
            .map_while(|&c| hex_digit(c))
            .collect();
        if hex.len() % 2 == 1 {
            return fail(Fault::KeyHex);
        }
        let key: Vec<u8> = hex.chunks(2).map(|p| p[0] << 4 | p[1]).collect();
        if ![16, 24, 32].contains(&key.len()) {
            return fail(Fault::KeyLength(key.len()));
        }
        keys.insert(id as u32, key);
    }
    if !keys.contains_key(&1) {
        return Err((None, Fault::MissingKey1));
    }
    Ok(keys)
}

/// §3.4: the text of a file, decrypted if it is `Salted__`.
fn ref_text(bytes: &[u8], secret: &[u8]) -> Result<Vec<u8>, (Option<usize>, Fault)> {
    if bytes.len() > MIB {
        return Err((None, Fault::TooLarge(bytes.len() as u64)));
    }
    let secret = until_nul(secret);
    let text = if bytes.len() > 8 && &bytes[..8] == b"Salted__" {
        if bytes.len() < 16 {
            return Err((None, Fault::Truncated));
        }
        let body = &bytes[16..];
        if body.is_empty() || !body.len().is_multiple_of(16) {
            return Err((None, Fault::Truncated));
        }
        let (key, iv) = bytes_to_key(secret, bytes[8..16].try_into().unwrap());
        let plain = cbc(&RefAes::new(&key).unwrap(), true, &iv, body);
        let pad = *plain.last().unwrap();
        if pad == 0
            || pad > 16
            || plain[plain.len() - usize::from(pad)..]
                .iter()
                .any(|&b| b != pad)
        {
            return Err((None, Fault::WrongSecret));
        }
        plain[..plain.len() - usize::from(pad)].to_vec()
    } else if !secret.is_empty() {
        return Err((None, Fault::NotEncrypted));
    } else {
        bytes.to_vec()
    };
    Ok(until_nul(&text).to_vec())
}

fn reference(bytes: &[u8], secret: &[u8]) -> RefResult {
    ref_lines(&ref_text(bytes, secret)?)
}

fn fault_of(f: &KeyFileFault) -> Fault {
    match f {
        KeyFileFault::KeyId => Fault::KeyId,
        KeyFileFault::Syntax => Fault::Syntax,
        KeyFileFault::KeyHex => Fault::KeyHex,
        KeyFileFault::KeyLength(n) => Fault::KeyLength(*n),
        KeyFileFault::MissingKey1 => Fault::MissingKey1,
        KeyFileFault::TooLarge(n) => Fault::TooLarge(*n),
        KeyFileFault::NotEncrypted => Fault::NotEncrypted,
        KeyFileFault::WrongSecret => Fault::WrongSecret,
        KeyFileFault::Truncated => Fault::Truncated,
        other => panic!("a plain key file gave {other:?}"),
    }
}

fn check(bytes: &[u8], secret: Option<&[u8]>, expected: &RefResult) {
    let origin = Path::new("fuzz/keys.txt");
    let got = FileKeyProvider::parse(bytes, secret, origin);
    match (&got, expected) {
        (Ok(p), Ok(keys)) => {
            let ids: Vec<u32> = p.key_ids().collect();
            assert_eq!(ids, keys.keys().copied().collect::<Vec<_>>());
            let debug = format!("{p:?}");
            for (&id, key) in keys {
                assert_eq!(p.latest_version(id), Some(1));
                assert_eq!(p.key(id, 1).unwrap().as_bytes(), &key[..], "key {id}");
                assert!(matches!(
                    p.key(id, 2),
                    Err(Error::KeyVersionNotFound { key_id, version: 2 }) if key_id == id
                ));
                assert_no_key(&debug, key, "FileKeyProvider Debug");
                assert_no_key(
                    &format!("{:?}", p.key(id, 1).unwrap()),
                    key,
                    "KeyMaterial Debug",
                );
            }
        }
        (Err(Error::KeyFile { path, line, fault }), Err((want_line, want_fault))) => {
            assert_eq!(path, origin);
            assert_eq!((*line, fault_of(fault)), (*want_line, want_fault.clone()));
            let text = got.as_ref().unwrap_err().to_string();
            assert!(text.starts_with("fuzz/keys.txt"), "{text}");
        }
        _ => panic!("FileKeyProvider::parse gave {got:?}, the reference {expected:?}"),
    }

    // The versioned reader extends the MariaDB one.
    let versioned = VersionedKeyProvider::parse(bytes, secret, origin);
    match (&got, &versioned) {
        (Ok(p), Ok(v)) => {
            for id in p.key_ids() {
                assert_eq!(v.versions(id).collect::<Vec<_>>(), [1]);
                assert_eq!(v.latest_version(id), Some(1));
                assert_eq!(v.key(id, 1).unwrap(), p.key(id, 1).unwrap());
            }
            assert_eq!(v.key_ids().count(), p.key_ids().count());
        }
        (Ok(_), Err(e)) => panic!("the versioned reader refused a MariaDB key file: {e}"),
        (
            Err(Error::KeyFile {
                line: None,
                fault:
                    fault @ (KeyFileFault::TooLarge(_)
                    | KeyFileFault::NotEncrypted
                    | KeyFileFault::Truncated
                    | KeyFileFault::WrongSecret),
                ..
            }),
            v,
        ) => assert!(
            matches!(v, Err(Error::KeyFile { line: None, fault: f, .. }) if f == fault),
            "{v:?}"
        ),
        (Err(_), Ok(v)) => {
            let _ = format!("{v:?}");
        }
        (Err(_), Err(_)) => {}
    }
}

fuzz_target!(|input: &[u8]| {
    let [flags, secret_len, rest @ ..] = input else {
        return;
    };
    let secret_len = usize::from(*secret_len).min(rest.len());
    let (secret, file) = rest.split_at(secret_len);
    let mut file = file.to_vec();
    // Padding: a line break, then one long comment line.
    let pad = |file: &mut Vec<u8>, len: usize| {
        file.push(b'\n');
        file.resize(len, b'#');
    };
    match flags >> 2 {
        1 if file.len() < MIB => pad(&mut file, MIB),
        2 if file.len() <= MIB => pad(&mut file, MIB + 1),
        _ => {}
    }
    match flags & 3 {
        0 => check(&file, None, &reference(&file, b"")),
        1 => check(&file, Some(secret), &reference(&file, secret)),
        3 => check(&file, Some(b""), &reference(&file, b"")),
        _ => {
            // An `openssl enc` file of this text reads as the text does.
            let mut salt = [0u8; 8];
            for (s, b) in salt.iter_mut().zip(secret.iter().chain(file.iter())) {
                *s = *b;
            }
            let enc = openssl_enc(&file, secret, &salt);
            let expected = reference(&enc, secret);
            let effective = until_nul(secret);
            if enc.len() <= MIB {
                // The decrypted text is read as text, even if it starts
                // with `Salted__` itself.
                let plain = ref_lines(until_nul(&file));
                match (&plain, &expected) {
                    (_, Err((None, Fault::WrongSecret))) => {
                        assert!(effective.len() != secret.len(), "own secret refused");
                    }
                    _ if effective.len() == secret.len() => {
                        assert_eq!(format!("{plain:?}"), format!("{expected:?}"));
                    }
                    _ => {}
                }
            }
            check(&enc, Some(secret), &expected);
            // A wrong secret never gives keys.
            let mut wrong = effective.to_vec();
            wrong.push(b'!');
            let got = FileKeyProvider::parse(&enc, Some(&wrong), Path::new("k"));
            assert!(got.is_err(), "a wrong secret gave keys");
            check(&enc, Some(&wrong), &reference(&enc, &wrong));
        }
    }
});
