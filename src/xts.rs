//! XTS-AES-256 (IEEE 1619) over whole data units, fused with the copy, without allocation.
//!
//! Each data unit is `unit` bytes (512 or 4096) with its own tweak, the unit's number as a
//! 128-bit little-endian integer encrypted under the tweak key. Blocks go through the `aes`
//! crate's many-blocks API eight at a time (AES-NI keeps eight in flight; the software
//! backend is fixsliced and constant time). Sources are read once and ciphertext is written
//! straight to the destination. Data units are whole multiples of the AES block, so there is
//! no ciphertext stealing.
#![forbid(unsafe_code)]

use aes::cipher::generic_array::GenericArray;
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
        for (number, (src, dst)) in (u128::from(first_unit)..).zip(
            source
                .chunks_exact(unit.bytes())
                .zip(destination.chunks_exact_mut(unit.bytes())),
        ) {
            let tweak = self.initial_tweak(number);
            transform_unit(tweak, src, dst, |blocks| self.data.encrypt_blocks(blocks));
        }
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
        for (number, chunk) in (u128::from(first_unit)..).zip(buffer.chunks_exact_mut(unit.bytes()))
        {
            let tweak = self.initial_tweak(number);
            transform_unit_in_place(tweak, chunk, |blocks| self.data.decrypt_blocks(blocks));
        }
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
        for (number, (src, dst)) in (u128::from(first_unit)..).zip(
            source
                .chunks_exact(unit.bytes())
                .zip(destination.chunks_exact_mut(unit.bytes())),
        ) {
            let tweak = self.initial_tweak(number);
            transform_unit(tweak, src, dst, |blocks| self.data.decrypt_blocks(blocks));
        }
        Ok(())
    }

    /// The tweak of the unit's first block: E(tweak key, unit number as 128-bit LE).
    fn initial_tweak(&self, unit_number: u128) -> u128 {
        let mut block = Block::from(unit_number.to_le_bytes());
        self.tweak.encrypt_block(&mut block);
        u128::from_le_bytes(block.into())
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
    let carry = (tweak >> 127) as u8;
    (tweak << 1) ^ u128::from(0x87 * carry)
}

/// One data unit from `src` to `dst`: XOR the tweak in, run the cipher on up to [`LANES`]
/// blocks at once, XOR the tweak out. `src.len()` is a multiple of [`BLOCK`].
#[inline(always)]
fn transform_unit(mut tweak: u128, src: &[u8], dst: &mut [u8], cipher: impl Fn(&mut [Block])) {
    let mut lanes = [Block::default(); LANES];
    let mut tweaks = [0u128; LANES];
    for (src, dst) in src.chunks(LANES * BLOCK).zip(dst.chunks_mut(LANES * BLOCK)) {
        let count = src.len() / BLOCK;
        for i in 0..count {
            tweaks[i] = tweak;
            tweak = next_tweak(tweak);
            let input = block_at(src, i) ^ tweaks[i];
            lanes[i] = Block::from(input.to_le_bytes());
        }
        cipher(&mut lanes[..count]);
        for i in 0..count {
            let output = u128::from_le_bytes(lanes[i].into()) ^ tweaks[i];
            dst[i * BLOCK..(i + 1) * BLOCK].copy_from_slice(&output.to_le_bytes());
        }
    }
}

#[inline(always)]
fn transform_unit_in_place(mut tweak: u128, buf: &mut [u8], cipher: impl Fn(&mut [Block])) {
    let mut lanes = [Block::default(); LANES];
    let mut tweaks = [0u128; LANES];
    for chunk in buf.chunks_mut(LANES * BLOCK) {
        let count = chunk.len() / BLOCK;
        for i in 0..count {
            tweaks[i] = tweak;
            tweak = next_tweak(tweak);
            lanes[i] = Block::from((block_at(chunk, i) ^ tweaks[i]).to_le_bytes());
        }
        cipher(&mut lanes[..count]);
        for i in 0..count {
            let output = u128::from_le_bytes(lanes[i].into()) ^ tweaks[i];
            chunk[i * BLOCK..(i + 1) * BLOCK].copy_from_slice(&output.to_le_bytes());
        }
    }
}

#[inline(always)]
fn block_at(bytes: &[u8], index: usize) -> u128 {
    let mut block = [0u8; BLOCK];
    block.copy_from_slice(&bytes[index * BLOCK..(index + 1) * BLOCK]);
    u128::from_le_bytes(block)
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
