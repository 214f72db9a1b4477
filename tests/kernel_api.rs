//! The kernel's public surface: backend discovery and choice (including the
//! `ARIA_CRYPT_BACKEND` override CI uses to run the suite on the software
//! backend), and clear errors instead of panics for bad arguments.

use mariadb_aria_crypt::kernel::Error;
use mariadb_aria_crypt::kernel::{Aes, BACKEND_ENV, Backend, Job, Mode};

#[test]
fn backends_are_discoverable() {
    let supported = Backend::supported();
    assert_eq!(
        supported.first(),
        Some(&Backend::Soft),
        "soft is always there"
    );
    assert_eq!(supported.last(), Some(&Backend::best()));
    assert!(supported.contains(&Backend::active()));
    for backend in Backend::ALL {
        assert_eq!(backend.name().parse::<Backend>().unwrap(), backend);
        assert_eq!(backend.is_supported(), supported.contains(&backend));
    }
    assert!(matches!(
        "sse9".parse::<Backend>(),
        Err(Error::UnknownBackend(_))
    ));
    eprintln!(
        "supported backends: {supported:?}, active: {}",
        Backend::active()
    );
}

/// CI runs the whole suite with `ARIA_CRYPT_BACKEND=soft`: a typo or an
/// unsupported name must not silently fall back to another backend.
#[test]
fn environment_override_is_honoured() {
    match std::env::var(BACKEND_ENV) {
        Ok(name) if !name.is_empty() => {
            let wanted: Backend = name
                .parse()
                .expect("a valid backend name in ARIA_CRYPT_BACKEND");
            assert_eq!(Backend::from_env().unwrap(), Some(wanted));
            assert_eq!(Backend::active(), wanted);
            assert_eq!(Aes::new(&[0; 16]).unwrap().backend(), wanted);
        }
        _ => assert_eq!(Backend::active(), Backend::best()),
    }
}

#[test]
fn unsupported_backend_is_an_error() {
    for backend in Backend::ALL {
        let result = Aes::with_backend(&[1; 16], backend);
        if backend.is_supported() {
            assert_eq!(result.unwrap().backend(), backend);
        } else {
            assert!(matches!(result, Err(Error::UnsupportedBackend(b)) if b == backend));
        }
    }
}

#[test]
fn bad_arguments_are_errors_and_change_nothing() {
    for len in [0, 1, 15, 17, 23, 31, 33, 64] {
        assert!(matches!(Aes::new(&vec![0; len]), Err(Error::KeyLength(n)) if n == len));
    }
    for &backend in Backend::supported() {
        let aes = Aes::with_backend(&[9; 24], backend).unwrap();
        let mut data = vec![0x33u8; 40];
        assert!(matches!(
            aes.ecb_encrypt(&mut data),
            Err(Error::NotBlockAligned(40))
        ));
        assert!(data.iter().all(|&b| b == 0x33));
        let mut dst = vec![0u8; 31];
        let err = aes
            .encrypt_to(Mode::Cbc, &[0; 16], &[1; 32], &mut dst)
            .unwrap_err();
        assert!(matches!(err, Error::LengthMismatch { src: 32, dst: 31 }));
        assert!(dst.iter().all(|&b| b == 0));
        assert!(aes.ecb_encrypt_to(&[0; 32], &mut [0; 16]).is_err());
        assert!(Job::buf_to_buf([0; 16], &[0; 5], &mut [0; 6]).is_err());
        // Empty inputs are fine everywhere.
        aes.encrypt(Mode::Cbc, &[0; 16], &mut []);
        aes.decrypt(Mode::Ctr, &[0; 16], &mut []);
        aes.encrypt_batch(Mode::Cbc, &mut []);
        aes.encrypt_batch(Mode::Cbc, &mut [Job::in_place([0; 16], &mut [])]);
    }
}

#[test]
fn key_schedules_are_shareable_and_keep_keys_out_of_debug() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Aes>();
    let key = [0xa7u8; 32];
    for &backend in Backend::supported() {
        let aes = Aes::with_backend(&key, backend).unwrap();
        let debug = format!("{aes:?}");
        assert!(
            !debug.contains("a7a7") && !debug.contains("A7A7") && !debug.contains("167"),
            "{debug}"
        );
        assert!(debug.contains(&format!("{backend:?}")), "{debug}");
    }
}

/// `?` from a kernel call into the crate's error keeps the variant, the
/// message and the error kind, so callers matching on `crate::Error` keep
/// working.
#[test]
fn kernel_errors_convert_to_the_crate_error() {
    use mariadb_aria_crypt::ErrorKind;
    fn new_aes(key: &[u8]) -> Result<Aes, mariadb_aria_crypt::Error> {
        Ok(Aes::new(key)?)
    }
    let err = new_aes(&[0; 17]).unwrap_err();
    assert!(matches!(err, mariadb_aria_crypt::Error::KeyLength(17)));
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), Error::KeyLength(17).to_string());
    let cases = [
        Error::KeyLength(3),
        Error::LengthMismatch { src: 1, dst: 2 },
        Error::NotBlockAligned(5),
        Error::UnsupportedBackend(Backend::Armv8),
        Error::UnknownBackend("sse9".into()),
        Error::UnknownMode("gcm".into()),
    ];
    for kernel in cases {
        let text = kernel.to_string();
        let crate_err = mariadb_aria_crypt::Error::from(kernel.clone());
        assert_eq!(crate_err.to_string(), text, "{kernel:?}");
        assert_eq!(crate_err.kind(), ErrorKind::InvalidInput, "{kernel:?}");
        assert!(std::error::Error::source(&crate_err).is_none());
    }
}
