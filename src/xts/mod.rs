//! XTS-AES-256 (IEEE 1619) over whole data units, fused with the copy, without allocation.
//!
//! Each data unit is `unit` bytes (512 or 4096) with its own tweak, the unit's number as a
//! 128-bit little-endian integer encrypted under the tweak key. Blocks go through the `aes`
//! crate's many-blocks API eight at a time (AES-NI keeps eight in flight; the software
//! backend is fixsliced and constant time). Sources are read once and ciphertext is written
//! straight to the destination. Data units are whole multiples of the AES block, so there is
//! no ciphertext stealing.
#![forbid(unsafe_code)]

use aes::cipher::consts::U16;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::inout::InOutBuf;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::{Aes256, Block};

/// Length of an XTS-AES-256 key: the data key followed by the tweak key.
pub const KEY_LEN: usize = 64;
const BLOCK: usize = 16;
/// Blocks handed to the cipher at once (the AES-NI backend's pipeline depth).
const LANES: usize = 8;

/// Size of the unit that shares one tweak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataUnit {
    Bytes512,
    Bytes4096,
}

impl DataUnit {
    pub const fn from_bytes(bytes: u32) -> Option<Self> {
        match bytes {
            512 => Some(Self::Bytes512),
            4096 => Some(Self::Bytes4096),
            _ => None,
        }
    }

    pub const fn bytes(self) -> usize {
        match self {
            Self::Bytes512 => 512,
            Self::Bytes4096 => 4096,
        }
    }
}

/// Why a transform was not done. The transform never panics on bad lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XtsError {
    /// The data key and the tweak key are equal (IEEE 1619 forbids it).
    KeyHalvesEqual,
    /// The length is not a whole number of data units.
    PartialDataUnit { len: usize },
    /// Source and destination differ in length.
    LengthMismatch { source: usize, destination: usize },
}

/// An expanded XTS-AES-256 key.
///
/// Both AES key schedules are wiped when the value is dropped (the `aes` crate's `zeroize`).
pub struct XtsAes256 {
    data: Aes256,
    tweak: Aes256,
}

impl core::fmt::Debug for XtsAes256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("XtsAes256 { .. }")
    }
}

impl XtsAes256 {
    /// Expands `key` (data key ‖ tweak key). Must run below HIGH_LEVEL only in the sense that
    /// it is meant for DriverEntry: it allocates nothing and may run anywhere.
    pub fn new(key: &[u8; KEY_LEN]) -> Result<Self, XtsError> {
        let (data_key, tweak_key) = key.split_at(KEY_LEN / 2);
        if data_key == tweak_key {
            return Err(XtsError::KeyHalvesEqual);
        }
        Ok(Self {
            data: Aes256::new(GenericArray::from_slice(data_key)),
            tweak: Aes256::new(GenericArray::from_slice(tweak_key)),
        })
    }

    /// Encrypts `source`, whole data units of `unit` numbered from `first_unit`, into
    /// `destination`. The source is only read.
    pub fn encrypt_units(
        &self,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) -> Result<(), XtsError> {
        check_lengths(unit, source.len(), destination.len())?;
        self.transform(unit, first_unit, Some(source), destination, |blocks| {
            self.data.encrypt_blocks_inout(blocks)
        });
        Ok(())
    }

    /// Decrypts `buffer`, whole data units of `unit` numbered from `first_unit`, in place.
    pub fn decrypt_units_in_place(
        &self,
        unit: DataUnit,
        first_unit: u64,
        buffer: &mut [u8],
    ) -> Result<(), XtsError> {
        check_lengths(unit, buffer.len(), buffer.len())?;
        self.transform(unit, first_unit, None, buffer, |blocks| {
            self.data.decrypt_blocks_inout(blocks)
        });
        Ok(())
    }

    /// Decrypts `source` into `destination` (for tools that must not touch their input).
    pub fn decrypt_units(
        &self,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) -> Result<(), XtsError> {
        check_lengths(unit, source.len(), destination.len())?;
        self.transform(unit, first_unit, Some(source), destination, |blocks| {
            self.data.decrypt_blocks_inout(blocks)
        });
        Ok(())
    }

    /// XTS over whole data units into `dst`, from `src` (or from `dst` itself when `src` is
    /// `None`), [`CHUNK`] bytes at a time, software-pipelined: while the cipher works on
    /// chunk *k* (one call, [`LANES`] blocks in flight), the processor already has the
    /// independent work of laying out chunk *k + 1*'s tweaks and XORing them in (the only
    /// read of the source), and then XORs chunk *k*'s tweaks out of its output. The lengths
    /// are checked: equal, and whole data units.
    #[inline(always)]
    fn transform(
        &self,
        unit: DataUnit,
        first_unit: u64,
        src: Option<&[u8]>,
        dst: &mut [u8],
        cipher: impl Fn(InOutBuf<'_, '_, Block>),
    ) {
        let mut tweaks = Tweaks::new(self, unit, first_unit);
        let mut mask = [0u8; CHUNK];
        for (index, out) in dst.chunks_exact_mut(CHUNK).enumerate() {
            let out: &mut [u8; CHUNK] = out.try_into().expect("whole chunk");
            tweaks.fill(&mut mask);
            match src {
                Some(src) => {
                    let input: &[u8; CHUNK] = src[index * CHUNK..(index + 1) * CHUNK]
                        .try_into()
                        .expect("whole chunk");
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
    fn new(xts: &'a XtsAes256, unit: DataUnit, first_unit: u64) -> Self {
        Self {
            cipher: &xts.tweak,
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
            self.current = u128::from_le_bytes(self.first[self.ready].into());
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

fn check_lengths(unit: DataUnit, source: usize, destination: usize) -> Result<(), XtsError> {
    if source != destination {
        return Err(XtsError::LengthMismatch {
            source,
            destination,
        });
    }
    if source % unit.bytes() != 0 {
        return Err(XtsError::PartialDataUnit { len: source });
    }
    Ok(())
}

/// Multiplies a tweak by α in GF(2^128) (IEEE 1619's little-endian convention).
#[inline(always)]
fn next_tweak(tweak: u128) -> u128 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> std::vec::Vec<u8> {
        let s: std::string::String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// IEEE 1619-2007 Annex B, XTS-AES-256 vectors 10 to 14: the same key and plaintext
    /// (bytes 0..=255 twice), data unit sequence numbers 0xff, 0xffff, 0xffffff, 0xffffffff
    /// and 0xffffffffff; the ciphertexts are kept in tests/vectors/ieee1619.txt.
    fn ieee_vectors() -> std::vec::Vec<(u64, std::vec::Vec<u8>)> {
        let text = include_str!("../tests/vectors/ieee1619.txt");
        let mut vectors = std::vec::Vec::new();
        let mut current: Option<(u64, std::string::String)> = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("DUSN ") {
                if let Some((dusn, ct)) = current.take() {
                    vectors.push((dusn, hex(&ct)));
                }
                current = Some((
                    u64::from_str_radix(rest, 16).unwrap(),
                    std::string::String::new(),
                ));
            } else if !line.is_empty() && !line.starts_with('#') {
                current.as_mut().unwrap().1.push_str(line);
            }
        }
        vectors.extend(current.map(|(dusn, ct)| (dusn, hex(&ct))));
        vectors
    }

    fn ieee_key() -> [u8; KEY_LEN] {
        let key = hex(
            "2718281828459045235360287471352662497757247093699959574966967627
             3141592653589793238462643383279502884197169399375105820974944592",
        );
        key.try_into().unwrap()
    }

    fn ieee_plaintext() -> std::vec::Vec<u8> {
        (0..512).map(|i| i as u8).collect()
    }

    #[test]
    fn ieee1619_vectors_10_to_14_encrypt() {
        let vectors = ieee_vectors();
        assert_eq!(vectors.len(), 5, "vectors 10 to 14");
        let xts = XtsAes256::new(&ieee_key()).unwrap();
        for (dusn, expected) in vectors {
            let mut out = [0u8; 512];
            xts.encrypt_units(DataUnit::Bytes512, dusn, &ieee_plaintext(), &mut out)
                .unwrap();
            assert_eq!(out.as_slice(), expected.as_slice(), "DUSN {dusn:#x}");
        }
    }

    #[test]
    fn ieee1619_vectors_10_to_14_decrypt() {
        let xts = XtsAes256::new(&ieee_key()).unwrap();
        for (dusn, ciphertext) in ieee_vectors() {
            let mut buf = ciphertext.clone();
            xts.decrypt_units_in_place(DataUnit::Bytes512, dusn, &mut buf)
                .unwrap();
            assert_eq!(buf, ieee_plaintext(), "DUSN {dusn:#x}");
            let mut out = [0u8; 512];
            xts.decrypt_units(DataUnit::Bytes512, dusn, &ciphertext, &mut out)
                .unwrap();
            assert_eq!(out.as_slice(), ieee_plaintext().as_slice());
        }
    }

    #[test]
    fn tweak_doubling_carries_into_the_reduction_polynomial() {
        assert_eq!(next_tweak(1), 2);
        assert_eq!(next_tweak(1 << 126), 1 << 127);
        assert_eq!(next_tweak(1 << 127), 0x87);
        assert_eq!(next_tweak(u128::MAX), (u128::MAX << 1) ^ 0x87);
    }

    #[test]
    fn refuses_equal_halves_and_partial_units() {
        assert_eq!(
            XtsAes256::new(&[7u8; KEY_LEN]).unwrap_err(),
            XtsError::KeyHalvesEqual
        );
        let xts = XtsAes256::new(&ieee_key()).unwrap();
        let mut out = [0u8; 1024];
        assert_eq!(
            xts.encrypt_units(DataUnit::Bytes512, 0, &[0u8; 1000], &mut out[..1000]),
            Err(XtsError::PartialDataUnit { len: 1000 })
        );
        assert_eq!(
            xts.encrypt_units(DataUnit::Bytes512, 0, &[0u8; 512], &mut out),
            Err(XtsError::LengthMismatch {
                source: 512,
                destination: 1024
            })
        );
        assert!(xts
            .decrypt_units_in_place(DataUnit::Bytes4096, 0, &mut out)
            .is_err());
    }

    /// Agrees with the independent `xts-mode` crate for both data units, many units in one
    /// call, and unit numbers near the top of the 64-bit range.
    #[test]
    fn agrees_with_xts_mode_crate() {
        use aes::cipher::KeyInit as _;
        let key: [u8; KEY_LEN] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        let oracle = xts_mode::Xts128::<Aes256>::new(
            Aes256::new(GenericArray::from_slice(&key[..32])),
            Aes256::new(GenericArray::from_slice(&key[32..])),
        );
        let xts = XtsAes256::new(&key).unwrap();
        for unit in [DataUnit::Bytes512, DataUnit::Bytes4096] {
            for first in [0u64, 1, 12345, u64::MAX - 3] {
                let plain: std::vec::Vec<u8> =
                    (0..unit.bytes() * 3).map(|i| (i * 7 + 3) as u8).collect();
                let mut ours = std::vec![0u8; plain.len()];
                xts.encrypt_units(unit, first, &plain, &mut ours).unwrap();
                let mut theirs = plain.clone();
                oracle.encrypt_area(&mut theirs, unit.bytes(), first.into(), |n| n.to_le_bytes());
                assert_eq!(ours, theirs, "{unit:?} from {first}");
                xts.decrypt_units_in_place(unit, first, &mut ours).unwrap();
                assert_eq!(ours, plain);
            }
        }
    }
}
