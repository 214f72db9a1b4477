//! `.MAI` header and crypt block parsing on arbitrary bytes.
//!
//! `TableHeader::parse` returns a header or a typed `Error::Header`, never
//! panics; a header it accepts has the fields at their spec offsets (§2.1,
//! §2.2), a block size Aria uses, a `keystart` that is a whole number of
//! pages past the header, and, for an encrypted table, the crypt block at
//! `header_length - 22`. parse → `write_crypt_block` → parse gives the new
//! crypt data and the same everything else, touching only those 22 bytes;
//! writing into a buffer too short, or into an unencrypted table's header,
//! is an error that writes nothing. `CryptData::parse` accepts exactly type
//! 1, length 20, and `to_bytes` gives the block back.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mariadb_aria_crypt::aria::{
    CryptData, PageFile, RowFormat, TableCipher, TableHeader, is_valid_block_size,
};
use mariadb_aria_crypt::kernel::Mode;
use mariadb_aria_crypt::keys::DebugKeyProvider;
use mariadb_aria_crypt::{Error, HeaderFault};

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn check_crypt_block(bytes: &[u8]) {
    match CryptData::parse(bytes) {
        Ok(c) => {
            assert_eq!(&c.to_bytes()[..], &bytes[..22]);
            assert_eq!(CryptData::parse(&c.to_bytes()), Ok(c));
        }
        Err(HeaderFault::Truncated { need, have }) => {
            assert_eq!((need, have), (22, bytes.len()));
        }
        Err(HeaderFault::CryptScheme { kind, len }) => {
            assert!(bytes.len() >= 22);
            assert_eq!((kind, len), (bytes[0], bytes[1]));
            assert!((kind, len) != (1, 20));
        }
        Err(other) => panic!("crypt block: {other:?}"),
    }
}

fn check_header(bytes: &[u8], h: &TableHeader) {
    assert_eq!(&bytes[..4], &[0xfe, 0xfe, 0x09, 0x03]);
    assert_eq!(h.options, be16(bytes, 4));
    assert_eq!(h.header_length, be16(bytes, 6));
    assert_eq!(h.base_pos, be16(bytes, 12));
    assert_eq!(h.keys, bytes[18]);
    let base = usize::from(h.base_pos);
    assert!(base >= 24);
    assert!(usize::from(be16(bytes, 10)) >= 107, "base_info_length");
    assert_eq!(h.geometry.keystart, be64(bytes, base + 16));
    assert_eq!(h.fields, be16(bytes, base + 80));
    assert_eq!(h.extra_options, be16(bytes, base + 90));
    assert_eq!(h.geometry.block_size, u32::from(be16(bytes, base + 100)));
    assert_eq!(h.geometry.transactional, bytes[base + 106] != 0);
    if bytes[22] == 3 {
        assert_eq!(h.row_format, RowFormat::Page);
    }
    let bs = h.geometry.block_size;
    assert!(
        (1024..=32768).contains(&bs) && bs.is_multiple_of(1024),
        "block size {bs}"
    );
    assert!(is_valid_block_size(bs));
    assert!(h.geometry.keystart > 0 && h.geometry.keystart.is_multiple_of(u64::from(bs)));
    assert!(u64::from(h.header_length) <= h.geometry.keystart);
    assert!(h.geometry.first_index_page() >= 1);
    assert_eq!(h.is_encrypted(), h.extra_options & 1 != 0);
    let _ = (
        h.is_temporary(),
        h.has_page_checksums(),
        h.is_transactional(),
    );
    let _ = format!("{h:?} {}", h.row_format);

    // A zero page and a page of 0xff at the first index page and page 1 of
    // the data file classify without a panic.
    for fill in [0u8, 0xff] {
        let page = vec![fill; bs as usize];
        for (file, no) in [
            (PageFile::Index, h.geometry.first_index_page()),
            (PageFile::Data, 1),
        ] {
            let _ = h
                .geometry
                .classify(file, no.min(u64::from(u32::MAX)) as u32, &page);
        }
    }

    let provider = Arc::new(DebugKeyProvider::default());
    let cipher = TableCipher::for_table(h, Mode::Cbc, provider);
    let header_end = usize::from(h.header_length);
    match h.crypt {
        Some(crypt) => {
            let cipher = cipher.expect("an encrypted table has a cipher");
            assert_eq!(*cipher.crypt(), crypt);
            assert_eq!(cipher.key_id(), 1);
            let start = h.crypt_offset();
            assert_eq!(start + 22, header_end);
            assert_eq!(CryptData::parse(&bytes[start..header_end]), Ok(crypt));

            // Rewrite the crypt block: only those 22 bytes change.
            let mut fresh_iv = crypt.scheme_iv;
            fresh_iv.reverse();
            fresh_iv[0] ^= 0x5a;
            let fresh = CryptData {
                space: !crypt.space,
                scheme_iv: fresh_iv,
            };
            let mut copy = bytes.to_vec();
            h.write_crypt_block(&mut copy, &fresh)
                .expect("room for the crypt block");
            for (i, (a, b)) in copy.iter().zip(bytes).enumerate() {
                if !(start..header_end).contains(&i) {
                    assert_eq!(a, b, "byte {i} outside the crypt block changed");
                }
            }
            assert_eq!(&copy[start..header_end], &fresh.to_bytes()[..]);
            let again = TableHeader::parse(&copy).expect("the rewritten header parses");
            assert_eq!(again.crypt, Some(fresh));
            assert_eq!(
                TableHeader {
                    crypt: h.crypt,
                    ..again
                },
                *h
            );
            // Writing back the old crypt data restores the bytes.
            again.write_crypt_block(&mut copy, &crypt).unwrap();
            assert!(copy == bytes);

            // Too short: an error, nothing written.
            let mut short = bytes[..header_end - 1].to_vec();
            let before = short.clone();
            match h.write_crypt_block(&mut short, &fresh) {
                Err(Error::Header {
                    fault: HeaderFault::Truncated { need, have },
                    ..
                }) => assert_eq!((need, have), (header_end, header_end - 1)),
                other => panic!("short write_crypt_block: {other:?}"),
            }
            assert!(short == before);
        }
        None => {
            assert!(matches!(
                cipher,
                Err(Error::Header {
                    fault: HeaderFault::NotEncrypted,
                    ..
                })
            ));
            let mut copy = bytes.to_vec();
            let any = CryptData {
                space: 1,
                scheme_iv: [2; 16],
            };
            assert!(matches!(
                h.write_crypt_block(&mut copy, &any),
                Err(Error::Header {
                    fault: HeaderFault::NotEncrypted,
                    ..
                })
            ));
            assert!(copy == bytes);
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    check_crypt_block(bytes);
    match TableHeader::parse(bytes) {
        Ok(h) => check_header(bytes, &h),
        Err(e @ Error::Header { path: None, .. }) => {
            let Error::Header { fault, .. } = &e else {
                unreachable!()
            };
            match fault {
                HeaderFault::BlockSize(bs) => assert!(!is_valid_block_size(*bs)),
                HeaderFault::Truncated { need, have } => {
                    assert_eq!(*have, bytes.len());
                    assert!(need > have, "{e}");
                }
                HeaderFault::Magic(m) => assert_eq!(&m[..], &bytes[..4]),
                _ => {}
            }
            assert!(e.to_string().starts_with("bad Aria header: "), "{e}");
        }
        Err(other) => panic!("parse returned {other:?}"),
    }
});
