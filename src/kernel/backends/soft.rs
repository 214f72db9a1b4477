//! The portable backend, built on RustCrypto `aes`.
//!
//! With `--cfg aes_backend="soft"` that crate is fixsliced, constant-time
//! software all the way down; otherwise it detects AES-NI itself. Either
//! way this module only uses its block API, so it is `unsafe`-free. All
//! loops run inside one `encrypt_with_backend` closure so that the cipher's
//! per-call setup (the fixslice key broadcast) is paid once per buffer, and
//! the multi-buffer CBC uses as many lanes as the cipher's parallel width.

#![forbid(unsafe_code)]

use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::typenum::Unsigned;
use aes::cipher::{
    BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncBackend,
    BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit, ParBlocks,
    ParBlocksSizeUser,
};
use aes::{Aes128, Aes192, Aes256};

use crate::kernel::lanes::{LaneKernel, Lanes, MAX_LANES, Run, Scratch, Stagger};
use crate::kernel::{InOut, Job};

type Block = Array<u8, U16>;

/// RustCrypto key schedules; they wipe themselves on drop (`aes/zeroize`).
pub(crate) enum Ciphers {
    Aes128(Aes128),
    Aes192(Aes192),
    Aes256(Aes256),
}

impl Ciphers {
    pub(crate) fn new(key: &[u8]) -> Option<Ciphers> {
        Some(match key.len() {
            16 => Ciphers::Aes128(Aes128::new_from_slice(key).ok()?),
            24 => Ciphers::Aes192(Aes192::new_from_slice(key).ok()?),
            32 => Ciphers::Aes256(Aes256::new_from_slice(key).ok()?),
            _ => return None,
        })
    }
}

/// Runs `$body` with `$c` bound to the cipher of whichever key size.
macro_rules! with_cipher {
    ($keys:expr, $c:ident => $body:expr) => {
        match $keys {
            Ciphers::Aes128($c) => $body,
            Ciphers::Aes192($c) => $body,
            Ciphers::Aes256($c) => $body,
        }
    };
}

pub(crate) fn encrypt_block(keys: &Ciphers, block: &mut [u8; 16]) {
    with_cipher!(keys, c => c.encrypt_block(block.into()))
}

pub(crate) fn decrypt_block(keys: &Ciphers, block: &mut [u8; 16]) {
    with_cipher!(keys, c => c.decrypt_block(block.into()))
}

/// The whole blocks of an [`InOut`], as cipher blocks.
fn blocks<'a>(io: &'a mut InOut<'_>) -> (Option<&'a [Block]>, &'a mut [Block]) {
    let (src, dst) = io.split();
    let src = src.map(|src| Array::cast_slice_from_core(src.as_chunks::<16>().0));
    let dst = Array::cast_slice_from_core_mut(dst.as_chunks_mut::<16>().0);
    (src, dst)
}

/// ECB runs through the one-buffer closures, which carry an IV it ignores,
/// so that its parallel calls go through [`encrypt_blocks`] too.
pub(crate) fn ecb_encrypt(keys: &Ciphers, io: InOut<'_>) {
    with_cipher!(keys, c => encrypt_with(c, OneBuffer::<Ecb>::new(&[0; 16], io)))
}

pub(crate) fn ecb_decrypt(keys: &Ciphers, io: InOut<'_>) {
    with_cipher!(keys, c => decrypt_with(c, OneBuffer::<Ecb>::new(&[0; 16], io)))
}

/// The output blocks of an [`InOut`], holding its input (copied there
/// unless in place), for a mode that works in place.
fn input_in_output<'a>(io: &'a mut InOut<'_>) -> &'a mut [Block] {
    let (src, dst) = blocks(io);
    if let Some(src) = src {
        dst.copy_from_slice(src);
    }
    dst
}

fn xor(a: &Block, b: &Block) -> Block {
    Array::from_fn(|i| a[i] ^ b[i])
}

/// One buffer through a mode: the closure the cipher calls with its
/// backend, whose parallel width is known there. `iv` is the counter block
/// for CTR.
struct OneBuffer<'a, 'b, M> {
    iv: &'a [u8; 16],
    io: InOut<'b>,
    mode: core::marker::PhantomData<M>,
}

impl<'a, 'b, M> OneBuffer<'a, 'b, M> {
    fn new(iv: &'a [u8; 16], io: InOut<'b>) -> Self {
        let mode = core::marker::PhantomData;
        OneBuffer { iv, io, mode }
    }
}

impl<M> BlockSizeUser for OneBuffer<'_, '_, M> {
    type BlockSize = U16;
}

enum Ecb {}
enum CbcEncrypt {}
enum CbcDecrypt {}
enum Ctr {}

impl BlockCipherEncClosure for OneBuffer<'_, '_, Ecb> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(mut self, backend: &B) {
        encrypt_blocks(backend, input_in_output(&mut self.io));
    }
}

impl BlockCipherDecClosure for OneBuffer<'_, '_, Ecb> {
    fn call<B: BlockCipherDecBackend<BlockSize = U16>>(mut self, backend: &B) {
        decrypt_blocks(backend, input_in_output(&mut self.io));
    }
}

impl BlockCipherEncClosure for OneBuffer<'_, '_, CbcEncrypt> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(mut self, backend: &B) {
        let (src, dst) = blocks(&mut self.io);
        let mut chain = Block::from(*self.iv);
        for i in 0..dst.len() {
            let input = src.map_or(&dst[i], |src| &src[i]);
            chain = xor(input, &chain);
            backend.encrypt_block_inplace(&mut chain);
            dst[i] = chain;
        }
    }
}

impl BlockCipherDecClosure for OneBuffer<'_, '_, CbcDecrypt> {
    fn call<B: BlockCipherDecBackend<BlockSize = U16>>(mut self, backend: &B) {
        let group = group_len(B::ParBlocksSize::USIZE);
        let (src, dst) = blocks(&mut self.io);
        let mut prev = Block::from(*self.iv);
        let mut plain = [Block::default(); GROUP];
        for start in (0..dst.len()).step_by(group) {
            let end = dst.len().min(start + group);
            let n = end - start;
            plain[..n].copy_from_slice(src.map_or(&dst[start..end], |s| &s[start..end]));
            let whole = whole_groups::<B>(n, group);
            decrypt_blocks(backend, &mut plain[..whole]);
            for i in 0..n {
                // Read the ciphertext before writing: in place, they share.
                let cipher = src.map_or(dst[start + i], |s| s[start + i]);
                dst[start + i] = xor(&plain[i], &prev);
                prev = cipher;
            }
        }
    }
}

impl BlockCipherEncClosure for OneBuffer<'_, '_, Ctr> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(mut self, backend: &B) {
        let group = group_len(B::ParBlocksSize::USIZE);
        let (src, dst) = blocks(&mut self.io);
        let mut counter = u128::from_be_bytes(*self.iv);
        let mut keystream = [Block::default(); GROUP];
        for start in (0..dst.len()).step_by(group) {
            let n = group.min(dst.len() - start);
            let whole = whole_groups::<B>(n, group);
            let mut next = counter;
            for block in &mut keystream[..whole] {
                *block = Block::from(next.to_be_bytes());
                next = next.wrapping_add(1);
            }
            counter = counter.wrapping_add(n as u128);
            encrypt_blocks(backend, &mut keystream[..whole]);
            for i in 0..n {
                let input = src.map_or(&dst[start + i], |s| &s[start + i]);
                dst[start + i] = xor(input, &keystream[i]);
            }
        }
    }
}

/// Blocks the one-buffer modes hand to the cipher per call (1 KiB).
const GROUP: usize = 64;

/// The most blocks of [`GROUP`] that are whole parallel groups of `width`.
fn group_len(width: usize) -> usize {
    if width >= GROUP {
        GROUP
    } else {
        GROUP / width * width
    }
}

/// `n` blocks of a buffer of `group` rounded up to whole parallel groups of
/// `B`, where the buffer has room: the blocks past `n` (stale ciphertext,
/// spare counters) are ciphered and dropped, cheaper than the one-block
/// path.
fn whole_groups<B: ParBlocksSizeUser>(n: usize, group: usize) -> usize {
    let whole = n.next_multiple_of(B::ParBlocksSize::USIZE);
    if whole <= group { whole } else { n }
}

/// Runs `f` with one key size's backend, in a function of its own. With all
/// three key sizes' loops in one function, LLVM kept the fixsliced S-box out
/// of line (18 calls per buffer) and CBC decryption ran at 0.70× RustCrypto's
/// `cbc` on the same cipher (1.0× apart, with [`decrypt_blocks`]).
#[inline(never)]
fn encrypt_with<C, F>(cipher: &C, f: F)
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16>,
    F: BlockCipherEncClosure<BlockSize = U16>,
{
    cipher.encrypt_with_backend(f)
}

/// [`encrypt_with`] for decryption.
#[inline(never)]
fn decrypt_with<C, F>(cipher: &C, f: F)
where
    C: BlockCipherDecrypt + BlockSizeUser<BlockSize = U16>,
    F: BlockCipherDecClosure<BlockSize = U16>,
{
    cipher.decrypt_with_backend(f)
}

pub(crate) fn cbc_encrypt(keys: &Ciphers, iv: &[u8; 16], io: InOut<'_>) {
    let closure = OneBuffer::<CbcEncrypt>::new(iv, io);
    with_cipher!(keys, c => encrypt_with(c, closure))
}

pub(crate) fn cbc_decrypt(keys: &Ciphers, iv: &[u8; 16], io: InOut<'_>) {
    let closure = OneBuffer::<CbcDecrypt>::new(iv, io);
    with_cipher!(keys, c => decrypt_with(c, closure))
}

pub(crate) fn ctr(keys: &Ciphers, counter: &[u8; 16], io: InOut<'_>) {
    let closure = OneBuffer::<Ctr>::new(counter, io);
    with_cipher!(keys, c => encrypt_with(c, closure))
}

struct CbcEncryptMulti<'a, 'b> {
    jobs: &'a mut [Job<'b>],
}

impl BlockSizeUser for CbcEncryptMulti<'_, '_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CbcEncryptMulti<'_, '_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        // As many lanes as the cipher's parallel width (a const generic
        // cannot be computed from it, so the nearest size below).
        match B::ParBlocksSize::USIZE {
            64.. => lanes::<B, 64>(backend, self.jobs),
            32..64 => lanes::<B, 32>(backend, self.jobs),
            30..32 => lanes::<B, 30>(backend, self.jobs),
            16..30 => lanes::<B, 16>(backend, self.jobs),
            8..16 => lanes::<B, 8>(backend, self.jobs),
            4..8 => lanes::<B, 4>(backend, self.jobs),
            _ => lanes::<B, 2>(backend, self.jobs),
        }
    }
}

/// Multi-buffer CBC encryption of `jobs` in `N` lanes, through the shared
/// lane driver.
fn lanes<B: BlockCipherEncBackend<BlockSize = U16>, const N: usize>(
    backend: &B,
    jobs: &mut [Job<'_>],
) {
    let mut scratch = Scratch::new();
    let mut lanes = Lanes::<N, false>::new(jobs, Stagger::SOFTWARE, &mut scratch);
    lanes.drive(&mut SoftLanes {
        backend,
        chain: [[0; 16]; N],
    });
}

/// The soft backend's lane state: the chains.
struct SoftLanes<'a, B, const N: usize> {
    backend: &'a B,
    chain: [[u8; 16]; N],
}

impl<B: BlockCipherEncBackend<BlockSize = U16>, const N: usize> LaneKernel<N>
    for SoftLanes<'_, B, N>
{
    fn load(&mut self, chain: &[[u8; 16]; MAX_LANES], _: &[[u8; 16]; MAX_LANES]) {
        self.chain.copy_from_slice(&chain[..N]);
    }

    fn restart(&mut self, lanes: u64, chain: &[[u8; 16]; MAX_LANES], _: &[[u8; 16]; MAX_LANES]) {
        for (lane, live) in self.chain.iter_mut().enumerate() {
            if lanes & (1 << lane) != 0 {
                *live = chain[lane];
            }
        }
    }

    fn save_crc(&self, _: u64, _: &mut [[u8; 16]; MAX_LANES]) {}

    fn run(&mut self, run: &Run<'_, N>) {
        let mut blocks = [Block::default(); N];
        for step in run.steps() {
            for (lane, block) in blocks.iter_mut().enumerate() {
                *block = xor(
                    &Block::from(run.read(lane, step)),
                    &Block::from(self.chain[lane]),
                );
            }
            encrypt_blocks(self.backend, &mut blocks);
            for (lane, block) in blocks.iter().enumerate() {
                self.chain[lane] = block.0;
                run.write(lane, step, block.0);
            }
        }
    }
}

/// Encrypts `blocks` in place, the cipher's parallel width at a time.
///
/// Every parallel encryption in this module goes through here (and
/// decryption through [`decrypt_blocks`]), so that the fixsliced rounds have
/// one caller and LLVM inlines them, S-box included, as it does in
/// RustCrypto's own modes. The two nested loops, though the outer one runs
/// once for the modes' groups, make the calls hot enough in LLVM's static
/// estimate for the first S-box of each block to be inlined too. While CTR,
/// ECB and the lanes each called the rounds, they stayed out of line: CTR at
/// 0.80× RustCrypto's `ctr`, batch CBC at 3.8× its `cbc` (about 0.9× and
/// 4.7× now, Zen 3, `--cfg aes_backend="soft"`).
#[inline(never)]
fn encrypt_blocks<B: BlockCipherEncBackend<BlockSize = U16>>(backend: &B, blocks: &mut [Block]) {
    for group in blocks.chunks_mut(GROUP) {
        for chunk in group.chunks_mut(B::ParBlocksSize::USIZE) {
            match ParBlocks::<B>::slice_as_mut_array(chunk) {
                Some(par) => backend.encrypt_par_blocks_inplace(par),
                None => backend.encrypt_tail_blocks_inplace(chunk),
            }
        }
    }
}

/// Decrypts `blocks` in place: [`encrypt_blocks`] for decryption.
#[inline(never)]
fn decrypt_blocks<B: BlockCipherDecBackend<BlockSize = U16>>(backend: &B, blocks: &mut [Block]) {
    for group in blocks.chunks_mut(GROUP) {
        for chunk in group.chunks_mut(B::ParBlocksSize::USIZE) {
            match ParBlocks::<B>::slice_as_mut_array(chunk) {
                Some(par) => backend.decrypt_par_blocks_inplace(par),
                None => decrypt_tail(backend, chunk),
            }
        }
    }
}

/// The blocks short of a parallel group, one at a time: out of line, so the
/// one-block rounds stay out of [`decrypt_blocks`]' hot loop. (Encryption
/// keeps its tail inline: out of line measured no faster there.)
#[cold]
#[inline(never)]
fn decrypt_tail<B: BlockCipherDecBackend<BlockSize = U16>>(backend: &B, blocks: &mut [Block]) {
    backend.decrypt_tail_blocks_inplace(blocks)
}

pub(crate) fn cbc_encrypt_multi(keys: &Ciphers, jobs: &mut [Job<'_>]) {
    with_cipher!(keys, c => encrypt_with(c, CbcEncryptMulti { jobs }))
}
