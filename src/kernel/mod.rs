//! The AES page kernel: AES-128/192/256 over whole pages in ECB, CBC (with
//! MariaDB's no-padding tail rule) and CTR (128-bit big-endian counter), one
//! buffer at a time or many at once.
//!
//! [`Aes`] holds the round keys for one backend, built once. Every backend
//! gives identical bytes; [`Backend::active`] is picked at run time.
//!
//! ```
//! use mariadb_aria_crypt::kernel::{Aes, Job, Mode};
//!
//! let aes = Aes::new(&[7u8; 16])?;
//! let iv = [1u8; 16];
//! let mut page = vec![42u8; 8172]; // 510 blocks and a 12-byte tail
//! aes.encrypt(Mode::Cbc, &iv, &mut page);
//! aes.decrypt(Mode::Cbc, &iv, &mut page);
//! assert!(page.iter().all(|&b| b == 42));
//!
//! // Many pages at once: CBC encryption interleaves them in SIMD lanes.
//! let mut pages = vec![vec![0u8; 8172]; 16];
//! let mut jobs: Vec<Job> = pages
//!     .iter_mut()
//!     .enumerate()
//!     .map(|(n, page)| Job::in_place([n as u8; 16], page))
//!     .collect();
//! aes.encrypt_batch(Mode::Cbc, &mut jobs);
//!
//! // A job can also ask for the CRC-32 (zlib, as `crc32fast`) of the bytes
//! // it reads, here seeded with 5, computed on the way through.
//! let mut page = vec![42u8; 8172];
//! let mut jobs = [Job::in_place(iv, &mut page).with_crc(5)];
//! aes.encrypt_batch(Mode::Cbc, &mut jobs);
//! let mut hasher = crc32fast::Hasher::new_with_initial(5);
//! hasher.update(&[42u8; 8172]);
//! assert_eq!(jobs[0].crc(), Some(hasher.finalize()));
//! # Ok::<(), mariadb_aria_crypt::kernel::Error>(())
//! ```

mod backends;
mod crc;
mod error;
mod inout;
mod key_schedule;
mod lanes;
mod limit;
mod output_crc;
mod rustcrypto;
mod select;

use std::fmt;

use backends::Engine;
use crc::CrcRequest;
pub use error::Error;
pub(crate) use inout::InOut;
pub use limit::{Limit, aes_crc_limit, aes_latency_bound, aes_limit, crc_fold_limit};
pub use output_crc::OUTPUT_CRC_ENV;
pub use select::{BACKEND_ENV, Backend};

/// AES block size in bytes.
pub const BLOCK: usize = 16;

/// A block cipher mode for page bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// CBC without padding. A final partial block of `n % 16` bytes is XORed
    /// with `AES-ECB(key, iv)` (MariaDB's `MyCTX_nopad`), so the length is
    /// unchanged.
    Cbc,
    /// CTR with the whole 16-byte counter block incremented as one 128-bit
    /// big-endian integer (OpenSSL semantics); a partial last block uses the
    /// first bytes of the next keystream block.
    Ctr,
}

impl Mode {
    /// `"cbc"` or `"ctr"`.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Cbc => "cbc",
            Mode::Ctr => "ctr",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cbc" | "aes_cbc" => Ok(Mode::Cbc),
            "ctr" | "aes_ctr" => Ok(Mode::Ctr),
            _ => Err(Error::UnknownMode(s.to_string())),
        }
    }
}

/// One buffer of a batch: its IV (CBC) or initial counter block (CTR), and
/// its bytes, processed in place or from a separate source; optionally a
/// request for the CRC-32 of the bytes it reads ([`Job::with_crc`]).
pub struct Job<'a> {
    iv: [u8; BLOCK],
    io: InOut<'a>,
    crc: Option<CrcRequest>,
}

impl<'a> Job<'a> {
    /// A job that transforms `buf` in place.
    pub fn in_place(iv: [u8; BLOCK], buf: &'a mut [u8]) -> Self {
        Job {
            iv,
            io: InOut::in_place(buf),
            crc: None,
        }
    }

    /// A job that reads `src` and writes the result to `dst`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the two lengths differ.
    pub fn buf_to_buf(iv: [u8; BLOCK], src: &'a [u8], dst: &'a mut [u8]) -> Result<Self, Error> {
        Ok(Job {
            iv,
            io: InOut::buf_to_buf(src, dst)?,
            crc: None,
        })
    }

    /// Asks every batch operation on this job for the CRC-32 of its input,
    /// continued from `initial`: zlib's `crc32(initial, input)`, exactly
    /// `crc32fast::Hasher::new_with_initial(initial)` + `update(input)` +
    /// `finalize()`. The input is what the job reads before it is
    /// transformed: the plaintext for encryption, the ciphertext for
    /// decryption; the source buffer, or the buffer itself in place.
    ///
    /// CBC batch encryption on a hardware backend with carry-less multiply
    /// (AES-NI with PCLMULQDQ, VAES-256 and VAES-512 with VPCLMULQDQ,
    /// ARMv8 with PMULL) folds the CRC into the encryption loop; the
    /// portable backend, CTR and decryption compute it with `crc32fast`
    /// before transforming the job. The result is the same either way.
    /// Read it with [`Job::crc`].
    #[must_use]
    #[inline]
    pub fn with_crc(self, initial: u32) -> Self {
        self.with_prefixed_crc(initial, &[])
    }

    /// [`Job::with_crc`] for a CRC that covers `prefix` before the input:
    /// zlib's `crc32(initial, prefix ‖ input)`. The prefix is copied (the
    /// bytes before the last 16 are hashed right away); it is meant for a
    /// page header that the checksum covers but the cipher does not, so
    /// that the fused path folds it in for free.
    #[must_use]
    #[inline]
    pub fn with_prefixed_crc(mut self, initial: u32, prefix: &[u8]) -> Self {
        self.crc = Some(CrcRequest::new(initial, prefix));
        self
    }

    /// [`Job::with_prefixed_crc`] of the job's output instead of its
    /// input: zlib's `crc32(initial, prefix ‖ output)`, for decryption the
    /// CRC of the plaintext, the checksum a page is verified against.
    ///
    /// [`Aes::decrypt_batch`] on a hardware backend with carry-less
    /// multiply folds it as the plaintext leaves the cipher (CBC, and CTR
    /// unless the counter's low 64 bits wrap inside the job), so the
    /// output is not read a second time; elsewhere `crc32fast` computes it
    /// after the job. The result is the same either way.
    #[must_use]
    #[inline]
    pub fn with_output_crc(mut self, initial: u32, prefix: &[u8]) -> Self {
        let mut request = CrcRequest::new(initial, prefix);
        request.of_output = true;
        self.crc = Some(request);
        self
    }

    /// The CRC-32 asked for with [`Job::with_crc`], once a batch operation
    /// ([`Aes::encrypt_batch`], [`Aes::decrypt_batch`]) has run on the job;
    /// `None` before, or if the job asked for none.
    pub fn crc(&self) -> Option<u32> {
        self.crc.and_then(|crc| crc.value)
    }

    /// The IV or initial counter block.
    pub fn iv(&self) -> &[u8; BLOCK] {
        &self.iv
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.io.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.io.len() == 0
    }

    /// The output buffer.
    pub fn output(&self) -> &[u8] {
        self.io.output()
    }
}

impl fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("len", &self.len())
            .field("in_place", &self.io.is_in_place())
            .field("crc", &self.crc.map(|crc| crc.value))
            .finish_non_exhaustive()
    }
}

/// An AES key schedule bound to one backend.
///
/// Build it once per key and reuse it for any number of pages: it is
/// `Send + Sync`, so threads can share it. The round keys are wiped when it
/// is dropped and never printed by `Debug`.
pub struct Aes {
    engine: Engine,
    key_len: usize,
    /// Whether decryption folds output CRCs into the cipher (`output_crc`).
    fuse_output_crc: bool,
}

impl Aes {
    /// A key schedule for a 16-, 24- or 32-byte key on [`Backend::active`].
    ///
    /// # Errors
    /// [`Error::KeyLength`] for any other key length.
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        Self::with_backend(key, Backend::active())
    }

    /// A key schedule for a 16-, 24- or 32-byte key on a chosen backend.
    ///
    /// # Errors
    /// [`Error::KeyLength`] for any other key length,
    /// [`Error::UnsupportedBackend`] if this CPU cannot run `backend`.
    pub fn with_backend(key: &[u8], backend: Backend) -> Result<Self, Error> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(Error::KeyLength(key.len()));
        }
        let engine = Engine::new(backend, key).ok_or(Error::UnsupportedBackend(backend))?;
        // Here rather than at the first decryption, which then allocates
        // nothing (measured once per backend and key size).
        let fuse_output_crc = output_crc::fuse(&engine, key.len());
        Ok(Aes {
            engine,
            key_len: key.len(),
            fuse_output_crc,
        })
    }

    /// The backend that runs this key schedule.
    pub fn backend(&self) -> Backend {
        self.engine.backend()
    }

    /// Key length in bytes: 16, 24 or 32.
    pub fn key_len(&self) -> usize {
        self.key_len
    }

    /// Encrypts one block (AES-ECB of a single block).
    #[inline]
    pub fn encrypt_block(&self, block: &mut [u8; BLOCK]) {
        self.engine.encrypt_block(block);
    }

    /// Decrypts one block.
    #[inline]
    pub fn decrypt_block(&self, block: &mut [u8; BLOCK]) {
        self.engine.decrypt_block(block);
    }

    /// ECB-encrypts whole blocks in place.
    ///
    /// # Errors
    /// [`Error::NotBlockAligned`] if the length is not a multiple of 16
    /// (nothing is changed then).
    pub fn ecb_encrypt(&self, data: &mut [u8]) -> Result<(), Error> {
        check_aligned(data.len())?;
        self.engine.ecb_encrypt(InOut::in_place(data));
        Ok(())
    }

    /// ECB-decrypts whole blocks in place.
    ///
    /// # Errors
    /// [`Error::NotBlockAligned`] if the length is not a multiple of 16.
    pub fn ecb_decrypt(&self, data: &mut [u8]) -> Result<(), Error> {
        check_aligned(data.len())?;
        self.engine.ecb_decrypt(InOut::in_place(data));
        Ok(())
    }

    /// ECB-encrypts whole blocks from `src` into `dst`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] or [`Error::NotBlockAligned`].
    pub fn ecb_encrypt_to(&self, src: &[u8], dst: &mut [u8]) -> Result<(), Error> {
        let io = InOut::buf_to_buf(src, dst)?;
        check_aligned(io.len())?;
        self.engine.ecb_encrypt(io);
        Ok(())
    }

    /// ECB-decrypts whole blocks from `src` into `dst`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] or [`Error::NotBlockAligned`].
    pub fn ecb_decrypt_to(&self, src: &[u8], dst: &mut [u8]) -> Result<(), Error> {
        let io = InOut::buf_to_buf(src, dst)?;
        check_aligned(io.len())?;
        self.engine.ecb_decrypt(io);
        Ok(())
    }

    /// Encrypts `data` of any length in place.
    pub fn encrypt(&self, mode: Mode, iv: &[u8; BLOCK], data: &mut [u8]) {
        self.encrypt_io(mode, iv, InOut::in_place(data));
    }

    /// Decrypts `data` of any length in place.
    pub fn decrypt(&self, mode: Mode, iv: &[u8; BLOCK], data: &mut [u8]) {
        self.decrypt_io(mode, iv, InOut::in_place(data));
    }

    /// Encrypts `plaintext` into `ciphertext`, which must be as long.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the lengths differ (nothing is written).
    pub fn encrypt_to(
        &self,
        mode: Mode,
        iv: &[u8; BLOCK],
        plaintext: &[u8],
        ciphertext: &mut [u8],
    ) -> Result<(), Error> {
        self.encrypt_io(mode, iv, InOut::buf_to_buf(plaintext, ciphertext)?);
        Ok(())
    }

    /// Decrypts `ciphertext` into `plaintext`, which must be as long.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the lengths differ (nothing is written).
    pub fn decrypt_to(
        &self,
        mode: Mode,
        iv: &[u8; BLOCK],
        ciphertext: &[u8],
        plaintext: &mut [u8],
    ) -> Result<(), Error> {
        self.decrypt_io(mode, iv, InOut::buf_to_buf(ciphertext, plaintext)?);
        Ok(())
    }

    /// Encrypts every job. CBC interleaves the jobs in SIMD lanes
    /// (multi-buffer), so a batch runs at AES throughput even though each
    /// job is a serial chain (a batch of one runs that chain alone, its
    /// fastest path); CTR goes wide inside each job. Jobs that ask
    /// for a CRC ([`Job::with_crc`]) get the CRC of their plaintext; CBC on
    /// a backend with carry-less multiply computes it inside the lanes.
    pub fn encrypt_batch(&self, mode: Mode, jobs: &mut [Job<'_>]) {
        match mode {
            // A lone job has no chain to interleave with: lanes would run
            // it at the same latency bound plus their bookkeeping.
            Mode::Cbc if jobs.len() == 1 => {
                input_crcs(jobs);
                let job = &mut jobs[0];
                self.engine.cbc_encrypt(&job.iv, job.io.whole_blocks());
                self.cbc_tails(jobs);
            }
            Mode::Cbc => {
                // The lanes fold the input of every job that asks for a CRC.
                let fused = jobs.iter().any(|job| job.crc.is_some())
                    && !jobs.iter().any(wants_output_crc)
                    && self.engine.cbc_encrypt_multi_crc(jobs);
                #[cfg(test)]
                tests::count_fused_batch(fused);
                if !fused {
                    input_crcs(jobs);
                    self.engine.cbc_encrypt_multi(jobs);
                }
                // After the CRCs: in place, the tail rule overwrites the
                // last bytes of the input.
                self.cbc_tails(jobs);
            }
            Mode::Ctr => {
                input_crcs(jobs);
                jobs.iter_mut()
                    .for_each(|job| self.ctr(&job.iv, &mut job.io));
            }
        }
        output_crcs(jobs);
    }

    /// Decrypts every job; both modes go wide inside each job. Jobs that
    /// ask for a CRC of their input ([`Job::with_crc`]) get the CRC of the
    /// ciphertext, computed with `crc32fast` before decrypting; those that
    /// ask for one of their output ([`Job::with_output_crc`]) get the CRC
    /// of the plaintext, folded as it leaves the cipher on a hardware
    /// backend with carry-less multiply.
    pub fn decrypt_batch(&self, mode: Mode, jobs: &mut [Job<'_>]) {
        input_crcs(jobs);
        // Measured once per backend and key size (`output_crc`).
        let fuse = jobs.iter().any(wants_output_crc) && self.fuse_output_crc;
        for job in jobs.iter_mut() {
            let whole = job.io.len() & !(BLOCK - 1);
            let fused = fuse
                && output_fold(&mut job.crc, whole).is_some_and(|fold| {
                    self.decrypt_folded(mode, &job.iv, job.io.slice(0, whole), fold)
                });
            if fused {
                fused_output(&mut job.crc);
            }
            match (mode, fused) {
                (Mode::Cbc, true) => {}
                (Mode::Cbc, false) => self.engine.cbc_decrypt(&job.iv, job.io.whole_blocks()),
                (Mode::Ctr, true) => self.ctr_tail(&job.iv, &mut job.io),
                (Mode::Ctr, false) => self.ctr(&job.iv, &mut job.io),
            }
        }
        if mode == Mode::Cbc {
            self.cbc_tails(jobs);
        }
        output_crcs(jobs);
    }

    /// Decrypts one buffer and returns zlib's `crc32(initial, prefix ‖
    /// plaintext)`: [`Aes::decrypt_batch`] of one job with
    /// [`Job::with_output_crc`], without a batch's bookkeeping (a page
    /// read's path).
    pub(crate) fn decrypt_with_crc(
        &self,
        mode: Mode,
        iv: &[u8; BLOCK],
        mut io: InOut<'_>,
        initial: u32,
        prefix: &[u8],
    ) -> u32 {
        let whole = io.len() & !(BLOCK - 1);
        if whole > 0 && self.fuse_output_crc {
            let mut fold = CrcRequest::new(initial, prefix).seed();
            if self.decrypt_folded(mode, iv, io.slice(0, whole), &mut fold) {
                #[cfg(test)]
                tests::count_fused_output();
                match mode {
                    Mode::Cbc => self.cbc_tail(iv, &mut io),
                    Mode::Ctr => self.ctr_tail(iv, &mut io),
                }
                return crc::finish(&fold, &io.output()[whole..]);
            }
        }
        self.decrypt_io(mode, iv, io.slice(0, io.len()));
        let mut hasher = crc32fast::Hasher::new_with_initial(initial);
        hasher.update(prefix);
        hasher.update(io.output());
        hasher.finalize()
    }

    /// Decrypts the whole blocks `io` and folds the plaintext into `fold`;
    /// `false`, having done nothing, where the backend cannot (see
    /// `Engine::cbc_decrypt_crc`, `Engine::ctr_crc`).
    fn decrypt_folded(
        &self,
        mode: Mode,
        iv: &[u8; BLOCK],
        io: InOut<'_>,
        fold: &mut [u8; 16],
    ) -> bool {
        match mode {
            Mode::Cbc => self.engine.cbc_decrypt_crc(iv, io, fold),
            Mode::Ctr => self.engine.ctr_crc(iv, io, fold),
        }
    }

    fn encrypt_io(&self, mode: Mode, iv: &[u8; BLOCK], mut io: InOut<'_>) {
        match mode {
            Mode::Cbc => {
                self.engine.cbc_encrypt(iv, io.whole_blocks());
                self.cbc_tail(iv, &mut io);
            }
            Mode::Ctr => self.ctr(iv, &mut io),
        }
    }

    fn decrypt_io(&self, mode: Mode, iv: &[u8; BLOCK], mut io: InOut<'_>) {
        match mode {
            Mode::Cbc => {
                self.engine.cbc_decrypt(iv, io.whole_blocks());
                self.cbc_tail(iv, &mut io);
            }
            Mode::Ctr => self.ctr(iv, &mut io),
        }
    }

    /// MariaDB's tail rule: the last `len % 16` bytes are XORed with
    /// `AES-ECB(key, iv)`, in both directions.
    fn cbc_tail(&self, iv: &[u8; BLOCK], io: &mut InOut<'_>) {
        let full = io.len() & !(BLOCK - 1);
        if full != io.len() {
            let mut mask = *iv;
            self.engine.encrypt_block(&mut mask);
            io.xor_tail(full, &mask);
        }
    }

    /// The tail rule for a batch, with the masks computed by wide ECB.
    fn cbc_tails(&self, jobs: &mut [Job<'_>]) {
        const CHUNK: usize = 64;
        // A lone job (a page read): one block, without the chunk arrays.
        if let [job] = jobs {
            self.cbc_tail(&job.iv, &mut job.io);
            return;
        }
        let mut with_tail = jobs
            .iter_mut()
            .filter(|job| !job.io.len().is_multiple_of(BLOCK));
        loop {
            let mut masks = [0u8; CHUNK * BLOCK];
            let mut chunk: [Option<&mut Job<'_>>; CHUNK] = [const { None }; CHUNK];
            let mut n = 0;
            for (slot, job) in chunk.iter_mut().zip(with_tail.by_ref()) {
                masks[n * BLOCK..][..BLOCK].copy_from_slice(&job.iv);
                *slot = Some(job);
                n += 1;
            }
            if n == 0 {
                return;
            }
            self.engine
                .ecb_encrypt(InOut::in_place(&mut masks[..n * BLOCK]));
            let (masks, _) = masks.as_chunks::<BLOCK>();
            for (job, mask) in chunk.iter_mut().flatten().zip(masks) {
                let full = job.io.len() & !(BLOCK - 1);
                job.io.xor_tail(full, mask);
            }
            if n < CHUNK {
                return;
            }
        }
    }

    fn ctr(&self, counter: &[u8; BLOCK], io: &mut InOut<'_>) {
        let full = io.len() & !(BLOCK - 1);
        self.engine.ctr(counter, io.slice(0, full));
        self.ctr_tail(counter, io);
    }

    /// The last `len % 16` bytes of CTR: the keystream block after the
    /// whole blocks, cut short.
    fn ctr_tail(&self, counter: &[u8; BLOCK], io: &mut InOut<'_>) {
        let full = io.len() & !(BLOCK - 1);
        if full != io.len() {
            let blocks = (full / BLOCK) as u128;
            let mut keystream = u128::from_be_bytes(*counter)
                .wrapping_add(blocks)
                .to_be_bytes();
            self.engine.encrypt_block(&mut keystream);
            io.xor_tail(full, &keystream);
        }
    }
}

impl fmt::Debug for Aes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aes")
            .field("backend", &self.backend())
            .field("key_len", &self.key_len)
            .finish_non_exhaustive()
    }
}

/// The CRC of every job that asks for one, over its input as it is now:
/// the path for everything the backends do not fuse.
/// Computes the CRC of every job that asks for one of its input.
fn input_crcs(jobs: &mut [Job<'_>]) {
    for job in jobs.iter_mut() {
        if let Some(crc) = &mut job.crc
            && !crc.of_output
        {
            crc.value = Some(crc.compute(job.io.input()));
        }
    }
}

fn wants_output_crc(job: &Job<'_>) -> bool {
    job.crc.is_some_and(|crc| crc.of_output)
}

/// For a job that asks for the CRC of its output and has `whole` bytes of
/// whole blocks: its accumulator, seeded, for the kernel to fold into.
fn output_fold(crc: &mut Option<CrcRequest>, whole: usize) -> Option<&mut [u8; 16]> {
    let crc = crc.as_mut().filter(|crc| crc.of_output && whole > 0)?;
    crc.fold = crc.seed();
    crc.value = None;
    Some(&mut crc.fold)
}

/// Marks a job's output CRC as folded by the kernel (finished by
/// [`output_crcs`]).
fn fused_output(crc: &mut Option<CrcRequest>) {
    #[cfg(test)]
    tests::count_fused_output();
    if let Some(crc) = crc {
        crc.folded = true;
    }
}

/// Computes or finishes the CRC of every job that asks for one of its
/// output, once the whole output (tail included) is written.
fn output_crcs(jobs: &mut [Job<'_>]) {
    for job in jobs.iter_mut() {
        if let Some(crc) = &mut job.crc
            && crc.of_output
        {
            let output = job.io.output();
            crc.value = Some(if crc.folded {
                crc.folded = false;
                crc::finish(&crc.fold, &output[output.len() & !(BLOCK - 1)..])
            } else {
                crc.compute(output)
            });
        }
    }
}

fn check_aligned(len: usize) -> Result<(), Error> {
    if len.is_multiple_of(BLOCK) {
        Ok(())
    } else {
        Err(Error::NotBlockAligned(len))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Batches of this thread whose CRCs were computed inside the lanes.
        static FUSED_BATCHES: Cell<u64> = const { Cell::new(0) };
    }

    /// The test-only hook in [`Aes::encrypt_batch`] (once per batch).
    pub(super) fn count_fused_batch(fused: bool) {
        FUSED_BATCHES.with(|count| count.set(count.get() + u64::from(fused)));
    }

    thread_local! {
        /// Jobs of this thread whose output CRC was folded by the kernel.
        static FUSED_OUTPUTS: Cell<u64> = const { Cell::new(0) };
    }

    /// The test-only hook of a job whose output CRC the kernel folded.
    pub(super) fn count_fused_output() {
        FUSED_OUTPUTS.with(|count| count.set(count.get() + 1));
    }

    /// Runs `f` and returns how many jobs it ran with a fused output CRC.
    fn fused_outputs_in(f: impl FnOnce()) -> u64 {
        let before = FUSED_OUTPUTS.with(Cell::get);
        f();
        FUSED_OUTPUTS.with(Cell::get) - before
    }

    /// Runs `f` and returns how many batches it ran with the fused CRC.
    fn fused_batches_in(f: impl FnOnce()) -> u64 {
        let before = FUSED_BATCHES.with(Cell::get);
        f();
        FUSED_BATCHES.with(Cell::get) - before
    }

    /// Whether `backend` fuses the CRC into its CBC lanes on this CPU, by
    /// the standard library's detection rather than the kernel's own: every
    /// hardware backend with its carry-less multiply.
    fn cpu_fuses_crc(backend: Backend) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let vaes = has!("vaes") && has!("avx2") && has!("pclmulqdq") && has!("vpclmulqdq");
            match backend {
                Backend::AesNi => has!("aes") && has!("pclmulqdq"),
                Backend::Vaes256 => vaes,
                Backend::Vaes512 => vaes && has!("avx512f") && has!("avx512bw") && has!("avx512vl"),
                _ => false,
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            use std::arch::is_aarch64_feature_detected as has;
            backend == Backend::Armv8 && has!("aes") && has!("pmull")
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            let _ = backend;
            false
        }
    }

    /// The ARMv8 backend runs its entries with `EOR3` exactly where the CPU
    /// has the SHA-3 extension, by the standard library's detection.
    /// `scripts/test-aarch64.sh` states what each of its emulated CPUs has
    /// (`ARIA_CRYPT_TEST_EXPECT_EOR3`), so that both kinds of entries run.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn armv8_uses_eor3_where_the_cpu_has_it() {
        let sha3 = std::arch::is_aarch64_feature_detected!("sha3");
        if let Ok(expected) = std::env::var("ARIA_CRYPT_TEST_EXPECT_EOR3") {
            assert_eq!(sha3, expected == "yes", "ARIA_CRYPT_TEST_EXPECT_EOR3");
        }
        let Ok(aes) = Aes::with_backend(&[5; 16], Backend::Armv8) else {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: armv8_uses_eor3_where_the_cpu_has_it: this CPU has no AES extension"
            );
            return;
        };
        assert_eq!(matches!(aes.engine, Engine::Armv8Eor3(..)), sha3);
        assert_eq!(aes.backend(), Backend::Armv8);
    }

    /// The fused CRC runs exactly where it should: CBC encryption batches
    /// with a CRC request of the input, and CBC and CTR decryption with
    /// one of the output, on every hardware backend with carry-less
    /// multiply, and nowhere else.
    /// The CRC values themselves are checked in `tests/kernel_crc.rs`.
    #[test]
    fn fused_crc_runs_where_it_should() {
        let mut ran_fused = false;
        for &backend in Backend::supported() {
            let aes = Aes::with_backend(&[3; 16], backend).unwrap();
            // Nine blocks: whole and short groups, an odd register count and a
            // narrow block on the wide backends, and a tail.
            let mut pages = vec![vec![7u8; 9 * BLOCK + 5]; 3];
            let fuses = cpu_fuses_crc(backend);
            // Decryption with the CRC of the plaintext: fused per job.
            for mode in [Mode::Cbc, Mode::Ctr] {
                let mut jobs: Vec<Job<'_>> = pages
                    .iter_mut()
                    .map(|page| Job::in_place([1; BLOCK], page).with_output_crc(0, &[1, 2]))
                    .collect();
                let fused = fused_outputs_in(|| aes.decrypt_batch(mode, &mut jobs));
                let chosen = fuses && aes.fuse_output_crc;
                assert_eq!(
                    fused,
                    if chosen { 3 } else { 0 },
                    "{backend} {mode}: output CRC"
                );
                let page = &mut pages[0];
                let fused = fused_outputs_in(|| {
                    aes.decrypt_with_crc(mode, &[1; BLOCK], InOut::in_place(page), 0, &[]);
                });
                assert_eq!(fused, u64::from(chosen), "{backend} {mode}: a page read");
                match std::env::var(OUTPUT_CRC_ENV).as_deref() {
                    Ok("fused") => assert_eq!(chosen, fuses, "{backend}: fused by request"),
                    Ok("separate") => assert!(!chosen, "{backend}: separate by request"),
                    _ => {}
                }
                let mut jobs: Vec<Job<'_>> = pages
                    .iter_mut()
                    .map(|page| Job::in_place([1; BLOCK], page).with_output_crc(0, &[]))
                    .collect();
                let fused = fused_outputs_in(|| aes.encrypt_batch(mode, &mut jobs));
                assert_eq!(fused, 0, "{backend} {mode}: encryption's output CRC");
            }
            let mut batch = |mode: Mode, encrypt: bool, ask: bool| {
                let mut jobs: Vec<Job<'_>> = pages
                    .iter_mut()
                    .map(|page| Job::in_place([1; BLOCK], page))
                    .map(|job| if ask { job.with_crc(0) } else { job })
                    .collect();
                fused_batches_in(|| {
                    if encrypt {
                        aes.encrypt_batch(mode, &mut jobs);
                    } else {
                        aes.decrypt_batch(mode, &mut jobs);
                    }
                })
            };
            assert_eq!(batch(Mode::Cbc, true, true), u64::from(fuses), "{backend}");
            assert_eq!(batch(Mode::Cbc, true, false), 0, "{backend}: no CRC asked");
            assert_eq!(batch(Mode::Cbc, false, true), 0, "{backend}: decryption");
            assert_eq!(batch(Mode::Ctr, true, true), 0, "{backend}: CTR");
            ran_fused |= fuses;
        }
        if !ran_fused {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: fused_crc_runs_where_it_should saw no fused batch (no backend with carry-less multiply)"
            );
        }
    }
}
