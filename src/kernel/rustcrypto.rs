//! [`Aes`] as a RustCrypto block cipher (the `cipher` 0.5 traits that `aes`
//! 0.9 implements), so it plugs into RustCrypto modes (`cbc`, `ctr`, ...)
//! with this crate's backend selection underneath. Eight blocks at a time
//! go through the kernel's ECB path.

use aes::cipher::consts::{U8, U16};
use aes::cipher::{
    Block, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncBackend,
    BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, InOut, ParBlocks, ParBlocksSizeUser,
};

use super::{Aes, BLOCK};

/// Eight blocks: what the parallel path hands over at once.
const PAR_BYTES: usize = 8 * BLOCK;

impl BlockSizeUser for Aes {
    type BlockSize = U16;
}

impl BlockCipherEncrypt for Aes {
    fn encrypt_with_backend(&self, f: impl BlockCipherEncClosure<BlockSize = U16>) {
        f.call(&Encrypting(self));
    }
}

impl BlockCipherDecrypt for Aes {
    fn decrypt_with_backend(&self, f: impl BlockCipherDecClosure<BlockSize = U16>) {
        f.call(&Decrypting(self));
    }
}

/// The encryption backend handed to RustCrypto closures.
struct Encrypting<'a>(&'a Aes);

/// The decryption backend handed to RustCrypto closures.
struct Decrypting<'a>(&'a Aes);

impl BlockSizeUser for Encrypting<'_> {
    type BlockSize = U16;
}

impl BlockSizeUser for Decrypting<'_> {
    type BlockSize = U16;
}

impl ParBlocksSizeUser for Encrypting<'_> {
    type ParBlocksSize = U8;
}

impl ParBlocksSizeUser for Decrypting<'_> {
    type ParBlocksSize = U8;
}

impl BlockCipherEncBackend for Encrypting<'_> {
    fn encrypt_block(&self, block: InOut<'_, '_, Block<Self>>) {
        one_block(block, |b| self.0.encrypt_block(b));
    }

    fn encrypt_par_blocks(&self, blocks: InOut<'_, '_, ParBlocks<Self>>) {
        par_blocks(
            blocks,
            |bytes| self.0.ecb_encrypt(bytes).is_ok(),
            |b| self.0.encrypt_block(b),
        );
    }
}

impl BlockCipherDecBackend for Decrypting<'_> {
    fn decrypt_block(&self, block: InOut<'_, '_, Block<Self>>) {
        one_block(block, |b| self.0.decrypt_block(b));
    }

    fn decrypt_par_blocks(&self, blocks: InOut<'_, '_, ParBlocks<Self>>) {
        par_blocks(
            blocks,
            |bytes| self.0.ecb_decrypt(bytes).is_ok(),
            |b| self.0.decrypt_block(b),
        );
    }
}

fn one_block(mut block: InOut<'_, '_, Block<Encrypting<'_>>>, aes: impl Fn(&mut [u8; BLOCK])) {
    let mut bytes: [u8; BLOCK] = (*block.get_in()).into();
    aes(&mut bytes);
    *block.get_out() = bytes.into();
}

/// Eight blocks through the kernel's ECB (`ecb`), one at a time (`single`)
/// if it refuses them (it cannot: 128 bytes are whole blocks).
fn par_blocks(
    mut blocks: InOut<'_, '_, ParBlocks<Encrypting<'_>>>,
    ecb: impl Fn(&mut [u8]) -> bool,
    single: impl Fn(&mut [u8; BLOCK]),
) {
    let mut bytes = [0u8; PAR_BYTES];
    for (chunk, block) in bytes.chunks_exact_mut(BLOCK).zip(blocks.get_in().iter()) {
        chunk.copy_from_slice(block);
    }
    if !ecb(&mut bytes) {
        for chunk in bytes.as_chunks_mut::<BLOCK>().0 {
            single(chunk);
        }
    }
    for (block, chunk) in blocks.get_out().iter_mut().zip(bytes.chunks_exact(BLOCK)) {
        block.copy_from_slice(chunk);
    }
    // The round keys never touch these bytes, but the plaintext did.
    zeroize::Zeroize::zeroize(&mut bytes);
}
