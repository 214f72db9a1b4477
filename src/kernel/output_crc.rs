//! Whether decryption folds a job's output CRC ([`Job::with_output_crc`])
//! into the cipher loop or leaves it to `crc32fast` after the job.
//!
//! Which is faster depends on the core and the key size. Where carry-less
//! multiply issues beside AES (llvm-mca's Sapphire Rapids model: the fused
//! VAES-256 loop at 1.19× the cycles of bare decryption), folding saves
//! the second pass over the page. Where the two share pipes it can lose:
//! on AMD Zen 3, one 8172-byte page, best of 200, fused against
//! `crc32fast` after: VAES-256 1.02 against 0.94 µs (AES-128) and 1.33
//! against 1.25 µs (AES-256); AES-NI 1.63 against 1.42 µs (AES-128) but
//! 2.05 against 2.12 µs (AES-256). So the choice is measured, once per
//! backend and key size in a process, when the first such key is built
//! (`Aes::with_backend`, 35-70 µs): both ways over one page body,
//! alternately, and folding is taken when its best time is at least 3%
//! below the other's.
//! [`OUTPUT_CRC_ENV`] overrides it.
//!
//! [`Job::with_output_crc`]: super::Job::with_output_crc

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::Backend;
use super::backends::Engine;
use super::inout::InOut;

/// Environment variable that fixes the choice for the whole process:
/// `fused` (fold whenever the backend can) or `separate` (always
/// `crc32fast` after the job); anything else, or unset, measures.
pub const OUTPUT_CRC_ENV: &str = "ARIA_CRYPT_OUTPUT_CRC";

/// One choice per backend and key size (16, 24, 32 bytes).
static CHOICE: [[OnceLock<bool>; 3]; Backend::ALL.len()] =
    [const { [const { OnceLock::new() }; 3] }; Backend::ALL.len()];

/// [`OUTPUT_CRC_ENV`], read once (reading the environment takes a lock
/// and allocates: per page it cost more than the CRC).
static OVERRIDE: OnceLock<Option<bool>> = OnceLock::new();

/// Whether `engine` (a key of `key_len` bytes) should fold output CRCs.
pub(crate) fn fuse(engine: &Engine, key_len: usize) -> bool {
    let requested = OVERRIDE.get_or_init(|| match std::env::var(OUTPUT_CRC_ENV).as_deref() {
        Ok("fused") => Some(true),
        Ok("separate") => Some(false),
        _ => None,
    });
    if let Some(fuse) = *requested {
        return fuse;
    }
    let backend = Backend::ALL
        .iter()
        .position(|&b| b == engine.backend())
        .unwrap_or(0);
    let size = (key_len / 8).saturating_sub(2).min(2);
    *CHOICE[backend][size].get_or_init(|| fused_is_faster(engine))
}

/// Measures both ways of decrypting one 8 KiB page body with the CRC of
/// its plaintext; `false` where the backend cannot fold at all. CBC
/// stands for CTR too: both run the same groups with the same folds.
fn fused_is_faster(engine: &Engine) -> bool {
    // Under Miri time means nothing and AES is slow: take the fused path,
    // whose unsafe code is the one worth checking there.
    if cfg!(miri) {
        return true;
    }
    let mut body = vec![0x5a_u8; 511 * 16];
    let iv = [0x17; 16];
    let mut fold = [0; 16];
    if !engine.cbc_decrypt_crc(&iv, InOut::in_place(&mut body), &mut fold) {
        return false;
    }
    let mut best = [Duration::MAX; 2];
    for round in 0..16 {
        // Alternate which goes first, so that drift falls on both.
        for fused in [round % 2 == 0, round % 2 != 0] {
            let start = Instant::now();
            if fused {
                engine.cbc_decrypt_crc(&iv, InOut::in_place(&mut body), &mut fold);
                black_box(&fold);
            } else {
                engine.cbc_decrypt(&iv, InOut::in_place(&mut body));
                black_box(crc32fast::hash(&body));
            }
            let took = start.elapsed();
            let slot = &mut best[usize::from(fused)];
            *slot = (*slot).min(took);
        }
    }
    // Fused only when clearly faster: at equal times here the second pass
    // measured faster in steady state (VAES-256 on Zen 3: 861 against
    // 861 ns at the first key, 1.02 against 0.94 µs later).
    best[1].as_nanos() * 103 < best[0].as_nanos() * 100
}
