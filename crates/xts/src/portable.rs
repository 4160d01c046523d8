//! The portable XTS backend: safe Rust over the `aes` crate's many-blocks API.
//!
//! [`super::XtsAes256`] runs it only where [`super::aesni`] cannot run (no AES-NI, a target other
//! than x86_64, or `--cfg aes_force_soft`), so in practice the blocks go through `aes`' fixsliced,
//! constant-time software backend. Blocks go through the cipher eight at a time; sources are
//! read once and ciphertext is written straight to the destination. The caller has checked the
//! lengths (equal, whole data units).
#![forbid(unsafe_code)]
// The dump path: no indexing that could panic, no panics, no unwraps (tests aside).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used
    )
)]

use aes::cipher::consts::U16;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::inout::InOutBuf;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::{Aes256, Block};

use super::{DataUnit, Direction, Job, KEY_LEN};

const BLOCK: usize = 16;
/// Blocks handed to the cipher at once (the AES-NI backend's pipeline depth).
const LANES: usize = 8;

/// Both AES key schedules, wiped when dropped (the `aes` crate's `zeroize`).
pub(super) struct Portable {
    data: Aes256,
    tweak: Aes256,
}

impl Portable {
    /// Expands `key` (data key ‖ tweak key). Inlined, so that the two schedules can be built
    /// where the cipher is (DriverEntry's stack has no room for copies).
    #[inline(always)]
    pub(super) fn new(key: &[u8; KEY_LEN]) -> Self {
        let (data_key, tweak_key) = key.split_at(KEY_LEN / 2);
        Self {
            data: schedule(data_key),
            tweak: schedule(tweak_key),
        }
    }

    /// XTS of the job's whole data units (the caller checked the lengths).
    pub(super) fn run(&self, job: &mut Job<'_>) {
        let (unit, first_unit) = (job.unit, job.first_unit);
        match (job.direction, job.source) {
            (Direction::Encrypt, Some(source)) => {
                self.encrypt_units(unit, first_unit, source, job.destination);
            }
            // Encryption in place is not part of the API.
            (Direction::Encrypt, None) => {}
            (Direction::Decrypt, Some(source)) => {
                self.decrypt_units(unit, first_unit, source, job.destination);
            }
            (Direction::Decrypt, None) => {
                self.decrypt_units_in_place(unit, first_unit, job.destination);
            }
        }
    }

    /// Encrypts `source` into `destination` (equal lengths, whole data units).
    fn encrypt_units(
        &self,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) {
        self.transform(unit, first_unit, Some(source), destination, |blocks| {
            self.data.encrypt_blocks_inout(blocks);
        });
    }

    /// Decrypts `buffer` (whole data units) in place.
    fn decrypt_units_in_place(&self, unit: DataUnit, first_unit: u64, buffer: &mut [u8]) {
        self.transform(unit, first_unit, None, buffer, |blocks| {
            self.data.decrypt_blocks_inout(blocks);
        });
    }

    /// Decrypts `source` into `destination` (equal lengths, whole data units).
    fn decrypt_units(
        &self,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) {
        self.transform(unit, first_unit, Some(source), destination, |blocks| {
            self.data.decrypt_blocks_inout(blocks);
        });
    }

    /// XTS over whole data units into `dst`, from `src` (or from `dst` itself when `src` is
    /// `None`), [`CHUNK`] bytes at a time: lay out the chunk's tweaks, XOR them in (the only
    /// read of the source), one cipher call ([`LANES`] blocks in flight), XOR them out.
    #[inline(always)]
    fn transform(
        &self,
        unit: DataUnit,
        first_unit: u64,
        src: Option<&[u8]>,
        dst: &mut [u8],
        cipher: impl Fn(InOutBuf<'_, '_, Block>),
    ) {
        let mut tweaks = Tweaks::new(&self.tweak, unit, first_unit);
        let mut mask = [0u8; CHUNK];
        // Whole data units are whole chunks: nothing is left over.
        let (outputs, _) = dst.as_chunks_mut::<CHUNK>();
        let inputs = src.map(|src| src.as_chunks::<CHUNK>().0);
        for (index, out) in outputs.iter_mut().enumerate() {
            tweaks.fill(&mut mask);
            match inputs {
                Some(inputs) => {
                    // The caller checked that source and destination are as long.
                    let Some(input) = inputs.get(index) else {
                        return;
                    };
                    for ((out, input), mask) in out.iter_mut().zip(input).zip(&mask) {
                        *out = input ^ mask;
                    }
                }
                None => xor_in_place(out, &mask),
            }
            let (blocks, _) = InOutBuf::from(&mut out[..]).into_chunks::<U16>();
            cipher(blocks);
            xor_in_place(out, &mask);
        }
    }
}

/// One key's schedule, in a frame of its own: called twice in a row, its temporaries are not
/// on the stack twice.
#[inline(never)]
fn schedule(key: &[u8]) -> Aes256 {
    Aes256::new(GenericArray::from_slice(key))
}

/// The tweak sequence of consecutive data units, block by block. A unit's first tweak is
/// E(tweak key, unit number as 128-bit LE); those of [`LANES`] units are encrypted in one
/// call, so that they go through the cipher in flight together rather than in one slow
/// single-block call per unit. Each next block's tweak is the previous one times α.
struct Tweaks<'a> {
    cipher: &'a Aes256,
    /// Chunks per data unit.
    chunks_per_unit: usize,
    next_unit: u128,
    /// Encrypted first tweaks of the units `next_unit - LANES + ready ..`.
    first: [Block; LANES],
    ready: usize,
    /// Chunks of the current unit still to come.
    chunks_left: usize,
    current: u128,
}

impl<'a> Tweaks<'a> {
    #[inline(always)]
    fn new(cipher: &'a Aes256, unit: DataUnit, first_unit: u64) -> Self {
        Self {
            cipher,
            chunks_per_unit: unit.bytes() / CHUNK,
            next_unit: u128::from(first_unit),
            first: [Block::default(); LANES],
            ready: LANES,
            chunks_left: 0,
            current: 0,
        }
    }

    /// Writes the next chunk's tweaks into `mask`, block by block.
    #[inline(always)]
    fn fill(&mut self, mask: &mut [u8; CHUNK]) {
        if self.chunks_left == 0 {
            if self.ready == LANES {
                for block in &mut self.first {
                    *block = Block::from(self.next_unit.to_le_bytes());
                    self.next_unit += 1;
                }
                self.cipher.encrypt_blocks(&mut self.first);
                self.ready = 0;
            }
            #[expect(
                clippy::indexing_slicing,
                reason = "`ready` is below LANES here: it is reset to 0 when it reaches LANES"
            )]
            let first = self.first[self.ready];
            self.current = u128::from_le_bytes(first.into());
            self.ready += 1;
            self.chunks_left = self.chunks_per_unit;
        }
        self.chunks_left -= 1;
        let mut tweak = self.current;
        for slot in mask.chunks_exact_mut(BLOCK) {
            slot.copy_from_slice(&tweak.to_le_bytes());
            tweak = next_tweak(tweak);
        }
        self.current = tweak;
    }
}

/// Multiplies a tweak by α in GF(2^128) (IEEE 1619's little-endian convention).
#[inline(always)]
pub(super) fn next_tweak(tweak: u128) -> u128 {
    // All ones when the top bit is set: the reduction without a branch.
    let carry = ((tweak as i128) >> 127) as u128;
    (tweak << 1) ^ (carry & 0x87)
}

/// Bytes whitened, ciphered and unwhitened as one piece: one cipher call of [`LANES`]
/// blocks. Small pieces let the processor overlap one piece's XORs with the next one's AES
/// rounds (32 blocks per call measured slower). Both data unit sizes are whole multiples.
const CHUNK: usize = LANES * BLOCK;
const _: () = assert!(512 % CHUNK == 0 && 4096 % CHUNK == 0);

#[inline(always)]
fn xor_in_place(bytes: &mut [u8; CHUNK], mask: &[u8; CHUNK]) {
    for (byte, mask) in bytes.iter_mut().zip(mask) {
        *byte ^= mask;
    }
}
