//! The AES limit of the running core: how fast the AES instructions a
//! backend uses can go at all, measured on this machine, so that the
//! kernel's figures can be given as shares of it.
//!
//! [`aes_limit`] runs independent chains of AES rounds at the backend's
//! register width (`AESENC xmm` for [`Backend::AesNi`], `VAESENC ymm` for
//! [`Backend::Vaes256`], `VAESENC zmm` for [`Backend::Vaes512`],
//! `AESE`+`AESMC` for [`Backend::Armv8`]; RustCrypto's `aes` on a buffer of
//! blocks for [`Backend::Soft`]), enough of them to cover the instruction's
//! latency, and keeps the best of several repetitions of a few
//! milliseconds each. Nothing is loaded or stored in the loop, so no mode
//! of operation can beat it on the same core: it is the throughput bound
//! of the parallel modes (CBC decryption, CTR, multi-buffer CBC
//! encryption). [`aes_latency_bound`] runs one chain of dependent rounds:
//! the bound of a serial CBC encryption of one buffer. [`aes_crc_limit`]
//! runs the chains of [`aes_limit`] with one CRC fold of each block beside
//! its rounds (two carry-less multiplies and two XORs, as the kernel folds a
//! page's checksum): the bound of a loop that checksums what it encrypts or
//! decrypts, whole pages' fused paths. Where AES and carry-less multiply
//! share execution pipes, it is well below [`aes_limit`]: a fused page path
//! runs at most at that rate, whatever the bare cipher reaches.
//! [`crc_fold_limit`] is the folds alone: the bound of a checksum computed
//! in a pass of its own after the cipher.
//!
//! Both are measurements: they take tens of milliseconds, vary from run to
//! run like any timing, and are meant to be compared with figures measured
//! in the same run.

use std::hint::black_box;
use std::time::Duration;

#[cfg(all(target_arch = "aarch64", not(miri)))]
use super::backends::limit_aarch64;
#[cfg(all(target_arch = "x86_64", not(miri)))]
use super::backends::limit_x86::{self, Width};
use crate::kernel::Backend;

/// Bytes of an AES block.
const BLOCK: usize = 16;
/// Length of one timed repetition.
const TARGET: Duration = Duration::from_millis(2);
/// Timed repetitions per chain count; the fastest counts.
const REPETITIONS: usize = 5;
/// Blocks per call in the software measurement: more than any backend
/// RustCrypto's `aes` may pick underneath keeps in flight (64 for VAES-512).
const SOFT_BLOCKS: usize = 256;

/// What the chains of a measurement do for each block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// AES-128 rounds.
    Aes,
    /// AES-128 rounds, then a CRC fold of the block.
    AesAndCrc,
    /// A CRC fold of the block alone.
    Crc,
}

/// A measured AES bound of one backend on the running core.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Limit {
    /// The backend whose instructions were measured.
    pub backend: Backend,
    /// "AES-128 equivalent" bytes per second: 16-byte blocks of 10 rounds.
    pub bytes_per_sec: f64,
    /// Independent chains of rounds that gave the figure (1 for
    /// [`aes_latency_bound`]; for [`Backend::Soft`], blocks per call).
    pub chains: usize,
    /// Blocks each instruction works on: 1 (xmm, AArch64, software),
    /// 2 (ymm) or 4 (zmm).
    pub lanes: usize,
}

impl Limit {
    /// The bound in GB/s (10⁹ bytes per second).
    pub fn gb_per_sec(&self) -> f64 {
        self.bytes_per_sec / 1e9
    }

    /// `bytes_per_sec` as a share of the bound (1.0 = at the bound).
    pub fn share(&self, bytes_per_sec: f64) -> f64 {
        bytes_per_sec / self.bytes_per_sec
    }
}

/// The throughput limit of `backend`'s AES instructions on this core: the
/// best rate of independent chains of AES rounds at the backend's register
/// width, enough chains to cover the rounds' latency, nothing loaded or
/// stored, best of several short runs. `None` if the CPU cannot run the
/// backend, and under Miri, which cannot time.
///
/// Takes some tens of milliseconds.
pub fn aes_limit(backend: Backend) -> Option<Limit> {
    best_of_chains(backend, Work::Aes)
}

/// The throughput limit of `backend`'s AES instructions together with the
/// CRC folding of every block: the chains of [`aes_limit`], each block's
/// rounds followed by a fold of it into an accumulator of its own (two
/// carry-less multiplies at the backend's width and two XORs). The bound
/// of a page path that folds the checksum into the cipher loop: its ratio
/// to [`aes_limit`] is the most such a path can reach against a bare
/// cipher that runs at the AES limit on this core. `None` for backends
/// without carry-less multiply (the software backend computes checksums
/// with `crc32fast`), as for [`aes_limit`] otherwise.
///
/// Takes some tens of milliseconds.
pub fn aes_crc_limit(backend: Backend) -> Option<Limit> {
    best_of_chains(backend, Work::AesAndCrc)
}

/// The throughput limit of `backend`'s CRC folding alone: the folds of
/// [`aes_crc_limit`] without the rounds, in bytes folded per second. The
/// bound of a checksum computed in a pass of its own, so that a page path
/// that runs the cipher and then the checksum takes at least `1 /
/// aes_limit + 1 / crc_fold_limit` per byte. `None` as for
/// [`aes_crc_limit`].
///
/// Takes some tens of milliseconds.
pub fn crc_fold_limit(backend: Backend) -> Option<Limit> {
    best_of_chains(backend, Work::Crc)
}

/// The best rate over the backend's chain counts (more than one chain);
/// `None` where the CPU cannot run `work` (`Rounds::time` says so).
fn best_of_chains(backend: Backend, work: Work) -> Option<Limit> {
    let rounds = Rounds::of(backend)?;
    let mut best: Option<Limit> = None;
    for &chains in rounds.chain_counts().iter().filter(|&&c| c > 1) {
        let Some(bytes_per_sec) = rate(rounds, chains, work) else {
            continue;
        };
        if best.is_none_or(|b| bytes_per_sec > b.bytes_per_sec) {
            best = Some(Limit {
                backend,
                bytes_per_sec,
                chains,
                lanes: rounds.lanes(),
            });
        }
    }
    best
}

/// The latency bound of `backend`: one chain of dependent AES rounds, 16
/// bytes per 10 rounds, which is the speed limit of CBC encryption of a
/// single buffer. The x86 backends all encrypt a lone chain with 128-bit
/// `AESENC`, so theirs is measured at that width. `None` as for
/// [`aes_limit`].
pub fn aes_latency_bound(backend: Backend) -> Option<Limit> {
    let rounds = Rounds::of(backend)?.serial();
    Some(Limit {
        backend,
        bytes_per_sec: rate(rounds, 1, Work::Aes)?,
        chains: 1,
        lanes: 1,
    })
}

/// What a backend's rounds run on.
#[derive(Clone, Copy, Debug)]
enum Rounds {
    /// RustCrypto's `aes`, as the software backend runs it.
    Soft,
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    X86(Width),
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    Armv8,
}

impl Rounds {
    fn of(backend: Backend) -> Option<Rounds> {
        if cfg!(miri) || !backend.is_supported() {
            return None;
        }
        let rounds = match backend {
            Backend::Soft => Rounds::Soft,
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Backend::AesNi => Rounds::X86(Width::Xmm),
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Backend::Vaes256 => Rounds::X86(Width::Ymm),
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Backend::Vaes512 => Rounds::X86(Width::Zmm),
            #[cfg(all(target_arch = "aarch64", not(miri)))]
            Backend::Armv8 => Rounds::Armv8,
            #[allow(unreachable_patterns, reason = "backends of other architectures")]
            _ => return None,
        };
        rounds.is_detected().then_some(rounds)
    }

    fn is_detected(self) -> bool {
        match self {
            Rounds::Soft => true,
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Rounds::X86(width) => width.is_detected(),
            #[cfg(all(target_arch = "aarch64", not(miri)))]
            Rounds::Armv8 => limit_aarch64::is_detected(),
        }
    }

    /// The rounds a single chain runs on.
    fn serial(self) -> Rounds {
        match self {
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Rounds::X86(_) => Rounds::X86(Width::Xmm),
            other => other,
        }
    }

    fn lanes(self) -> usize {
        match self {
            Rounds::Soft => 1,
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Rounds::X86(width) => width.lanes(),
            #[cfg(all(target_arch = "aarch64", not(miri)))]
            Rounds::Armv8 => 1,
        }
    }

    fn chain_counts(self) -> &'static [usize] {
        match self {
            Rounds::Soft => &[1, SOFT_BLOCKS],
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Rounds::X86(width) => limit_x86::chain_counts(width),
            #[cfg(all(target_arch = "aarch64", not(miri)))]
            Rounds::Armv8 => limit_aarch64::CHAIN_COUNTS,
        }
    }

    /// The time of `iterations` blocks of `work` on each chain.
    fn time(self, chains: usize, iterations: u64, work: Work) -> Option<Duration> {
        match self {
            Rounds::Soft => (work == Work::Aes).then(|| time_soft(chains, iterations)),
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Rounds::X86(width) => limit_x86::time_rounds(width, chains, iterations, work),
            #[cfg(all(target_arch = "aarch64", not(miri)))]
            Rounds::Armv8 => limit_aarch64::time_rounds(chains, iterations, work),
        }
    }
}

/// The software backend's own block paths (RustCrypto's `aes` inside): one
/// block at a time through a chain, or `chains` blocks per call.
fn time_soft(chains: usize, iterations: u64) -> Duration {
    use crate::kernel::InOut;
    use crate::kernel::backends::soft;
    let keys = soft::Ciphers::new(&black_box([0x2b; 16])).expect("a 16-byte key");
    let mut blocks = vec![0x5au8; chains * BLOCK];
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        if chains == 1 {
            let block = blocks.first_chunk_mut::<BLOCK>().expect("one block");
            soft::encrypt_block(&keys, block);
        } else {
            soft::ecb_encrypt(&keys, InOut::in_place(&mut blocks));
        }
    }
    black_box(&blocks);
    start.elapsed()
}

/// Bytes per second of `chains` chains doing `work`: the iteration count
/// is scaled to about [`TARGET`], then the fastest of [`REPETITIONS`] runs
/// counts.
fn rate(rounds: Rounds, chains: usize, work: Work) -> Option<f64> {
    let mut iterations = 16u64;
    let mut elapsed = rounds.time(chains, iterations, work)?;
    while elapsed < TARGET / 8 && iterations < 1 << 40 {
        iterations *= 4;
        elapsed = rounds.time(chains, iterations, work)?;
    }
    let scale = TARGET.as_secs_f64() / elapsed.as_secs_f64().max(1e-9);
    let iterations = ((iterations as f64 * scale).ceil() as u64).max(1);
    let fastest = (0..REPETITIONS)
        .filter_map(|_| rounds.time(chains, iterations, work))
        .min()?;
    let bytes = (chains * rounds.lanes() * BLOCK) as f64 * iterations as f64;
    Some(bytes / fastest.as_secs_f64().max(1e-9))
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    // No timing comparisons here (speed is for the benches): they check
    // that each supported backend gives a usable figure at all, and the
    // shape of the measurement behind it.

    #[test]
    fn every_supported_backend_has_a_positive_limit_and_latency_bound() {
        for &backend in Backend::supported() {
            let limit = aes_limit(backend).expect("supported backend has a limit");
            let serial = aes_latency_bound(backend).expect("and a latency bound");
            assert_eq!((limit.backend, serial.backend), (backend, backend));
            assert!(limit.bytes_per_sec.is_finite() && limit.bytes_per_sec > 0.0);
            assert!(serial.bytes_per_sec.is_finite() && serial.bytes_per_sec > 0.0);
            assert!(limit.chains > 1 && serial.chains == 1);
        }
    }

    #[test]
    fn the_crc_limit_exists_exactly_where_there_is_carry_less_multiply() {
        for &backend in Backend::supported() {
            let crc = aes_crc_limit(backend);
            let folds = crc_fold_limit(backend);
            assert_eq!(crc.is_some(), folds.is_some(), "{backend}");
            // Carry-less multiply at the backend's width, by the standard
            // library's detection.
            #[cfg(target_arch = "x86_64")]
            let clmul = match backend {
                Backend::AesNi => std::arch::is_x86_feature_detected!("pclmulqdq"),
                Backend::Vaes256 | Backend::Vaes512 => {
                    std::arch::is_x86_feature_detected!("vpclmulqdq")
                }
                _ => false,
            };
            #[cfg(target_arch = "aarch64")]
            let clmul =
                backend == Backend::Armv8 && std::arch::is_aarch64_feature_detected!("pmull");
            #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
            let clmul = false;
            assert_eq!(crc.is_some(), clmul, "{backend}");
            if let Some(crc) = crc {
                let limit = aes_limit(backend).unwrap();
                assert_eq!((crc.backend, crc.lanes), (backend, limit.lanes));
                assert!(crc.bytes_per_sec.is_finite() && crc.bytes_per_sec > 0.0);
                assert!(crc.chains > 1);
                let folds = folds.unwrap();
                assert_eq!((folds.backend, folds.lanes), (backend, limit.lanes));
                assert!(folds.bytes_per_sec.is_finite() && folds.bytes_per_sec > 0.0);
            }
        }
    }

    #[test]
    fn each_backend_measures_its_own_register_width() {
        let widths = [
            (Backend::AesNi, 1),
            (Backend::Vaes256, 2),
            (Backend::Vaes512, 4),
        ];
        for (backend, lanes) in widths {
            if let Some(limit) = aes_limit(backend) {
                assert_eq!(limit.lanes, lanes, "{backend}");
            }
        }
    }

    #[test]
    fn share_is_the_ratio_to_the_bound() {
        let limit = Limit {
            backend: Backend::Soft,
            bytes_per_sec: 4e9,
            chains: 8,
            lanes: 1,
        };
        assert_eq!(limit.gb_per_sec(), 4.0);
        assert_eq!(limit.share(3e9), 0.75);
    }
}
