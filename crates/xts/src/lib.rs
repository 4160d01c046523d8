//! XTS-AES-256 (IEEE 1619) over whole data units, fused with the copy, without allocation.
//!
//! Each data unit is `unit` bytes (512 or 4096) with its own tweak, the unit's number as a
//! 128-bit little-endian integer encrypted under the tweak key. Data units are whole multiples
//! of the AES block, so there is no ciphertext stealing. Sources are read once and ciphertext
//! is written straight to the destination.
//!
//! Two backends, chosen once in [`XtsAes256::new`] (at DriverEntry, never on the dump path)
//! and kept in the value:
//! - `aesni.rs` (x86_64 with AES-NI): XTS on XMM registers with AES-NI intrinsics, eight
//!   blocks in flight, the tweak folded into the first and last round keys as OpenSSL does.
//!   The one module here with `unsafe` (entering `#[target_feature]` code after detection,
//!   unaligned loads and stores); it allows `unsafe_code` for itself alone.
//! - `portable.rs` (everywhere else): safe Rust over the `aes` crate's many-blocks API, whose
//!   fixsliced software backend is constant time. `#![forbid(unsafe_code)]`.
//!
//! Building with `RUSTFLAGS="--cfg aes_force_soft"` forces the portable backend and, in the
//! `aes` crate, its software AES (scripts/bench-report.sh measures the fallback that way).
//!
//! This crate is the dump path's only code with CPU-feature `unsafe`; the driver's policy and
//! geometry (`dumpcrypt-core`) call it through the safe [`XtsAes256`].
#![no_std]
#![deny(unsafe_code)]
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

#[cfg(test)]
extern crate std;

#[cfg(target_arch = "x86_64")]
#[expect(
    unsafe_code,
    reason = "the AES-NI backend: target_feature entry after detection, unaligned loads/stores"
)]
mod aesni;
mod portable;

/// Length of an XTS-AES-256 key: the data key followed by the tweak key.
pub const KEY_LEN: usize = 64;

/// Size of the unit that shares one tweak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataUnit {
    /// 512 bytes: one sector of most disks, and what disk-encryption products use.
    Bytes512,
    /// 4096 bytes: one sector of a 4Kn disk.
    Bytes4096,
}

impl DataUnit {
    /// The data unit of `bytes` bytes, if it is 512 or 4096.
    pub const fn from_bytes(bytes: u32) -> Option<Self> {
        match bytes {
            512 => Some(Self::Bytes512),
            4096 => Some(Self::Bytes4096),
            _ => None,
        }
    }

    /// Its size in bytes.
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
    PartialDataUnit {
        /// The length given.
        len: usize,
    },
    /// Source and destination differ in length.
    LengthMismatch {
        /// The source's length.
        source: usize,
        /// The destination's length.
        destination: usize,
    },
}

/// An expanded XTS-AES-256 key, with the backend chosen for this processor.
///
/// The key schedules are wiped when the value is dropped.
pub struct XtsAes256 {
    backend: Backend,
}

/// Which implementation runs the transform, with its expanded keys.
#[expect(
    clippy::large_enum_variant,
    reason = "one value per driver instance, in nonpaged pool; boxing would mean an allocation"
)]
enum Backend {
    #[cfg(target_arch = "x86_64")]
    AesNi(aesni::AesNiKeys),
    Portable(portable::Portable),
}

impl core::fmt::Debug for XtsAes256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("XtsAes256 { .. }")
    }
}

impl XtsAes256 {
    /// Expands `key` (data key ‖ tweak key) and picks the backend: AES-NI when the processor
    /// has it, the portable one otherwise. Meant for DriverEntry (it runs CPUID once); it
    /// allocates nothing and may run at any IRQL.
    pub fn new(key: &[u8; KEY_LEN]) -> Result<Self, XtsError> {
        check_key(key)?;
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = aesni::AesNiKeys::new(key) {
            return Ok(Self {
                backend: Backend::AesNi(keys),
            });
        }
        Ok(Self {
            backend: Backend::Portable(portable::Portable::new(key)),
        })
    }

    /// `new` with the backend forced, for tests: `None` when AES-NI was asked for and the
    /// processor (or the target) has none.
    #[cfg(test)]
    fn with_backend(key: &[u8; KEY_LEN], aes_ni: bool) -> Result<Option<Self>, XtsError> {
        check_key(key)?;
        if !aes_ni {
            return Ok(Some(Self {
                backend: Backend::Portable(portable::Portable::new(key)),
            }));
        }
        #[cfg(target_arch = "x86_64")]
        return Ok(aesni::AesNiKeys::new(key).map(|keys| Self {
            backend: Backend::AesNi(keys),
        }));
        #[cfg(not(target_arch = "x86_64"))]
        return Ok(None);
    }

    /// Whether the AES-NI backend was chosen.
    #[cfg(test)]
    fn uses_aes_ni(&self) -> bool {
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::AesNi(_) => true,
            Backend::Portable(_) => false,
        }
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
        match &self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::AesNi(keys) => keys.encrypt_units(unit, first_unit, source, destination),
            Backend::Portable(keys) => keys.encrypt_units(unit, first_unit, source, destination),
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
        match &self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::AesNi(keys) => keys.decrypt_units_in_place(unit, first_unit, buffer),
            Backend::Portable(keys) => keys.decrypt_units_in_place(unit, first_unit, buffer),
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
        match &self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::AesNi(keys) => keys.decrypt_units(unit, first_unit, source, destination),
            Backend::Portable(keys) => keys.decrypt_units(unit, first_unit, source, destination),
        }
        Ok(())
    }
}

fn check_key(key: &[u8; KEY_LEN]) -> Result<(), XtsError> {
    let (data_key, tweak_key) = key.split_at(KEY_LEN / 2);
    if data_key == tweak_key {
        return Err(XtsError::KeyHalvesEqual);
    }
    Ok(())
}

fn check_lengths(unit: DataUnit, source: usize, destination: usize) -> Result<(), XtsError> {
    if source != destination {
        return Err(XtsError::LengthMismatch {
            source,
            destination,
        });
    }
    if !source.is_multiple_of(unit.bytes()) {
        return Err(XtsError::PartialDataUnit { len: source });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::generic_array::GenericArray;
    use aes::Aes256;

    fn hex(s: &str) -> std::vec::Vec<u8> {
        let s: std::string::String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Both backends for `key` (the AES-NI one where the processor has it), each named.
    fn backends(key: &[u8; KEY_LEN]) -> std::vec::Vec<(&'static str, XtsAes256)> {
        let mut backends = std::vec![(
            "portable",
            XtsAes256::with_backend(key, false).unwrap().unwrap()
        )];
        match XtsAes256::with_backend(key, true).unwrap() {
            Some(xts) => backends.push(("aes-ni", xts)),
            None => require_aes_ni_unless_allowed(),
        }
        backends
    }

    /// IEEE 1619-2007 Annex B, XTS-AES-256 vectors 10 to 14: the same key and plaintext
    /// (bytes 0..=255 twice), data unit sequence numbers 0xff, 0xffff, 0xffffff, 0xffffffff
    /// and 0xffffffffff; the ciphertexts are kept in vectors/ieee1619.txt.
    fn ieee_vectors() -> std::vec::Vec<(u64, std::vec::Vec<u8>)> {
        let text = include_str!("../vectors/ieee1619.txt");
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
        for (backend, xts) in backends(&ieee_key()) {
            for (dusn, expected) in &vectors {
                let mut out = [0u8; 512];
                xts.encrypt_units(DataUnit::Bytes512, *dusn, &ieee_plaintext(), &mut out)
                    .unwrap();
                assert_eq!(
                    out.as_slice(),
                    expected.as_slice(),
                    "{backend}, DUSN {dusn:#x}"
                );
            }
        }
    }

    #[test]
    fn ieee1619_vectors_10_to_14_decrypt() {
        for (backend, xts) in backends(&ieee_key()) {
            for (dusn, ciphertext) in ieee_vectors() {
                let mut buf = ciphertext.clone();
                xts.decrypt_units_in_place(DataUnit::Bytes512, dusn, &mut buf)
                    .unwrap();
                assert_eq!(buf, ieee_plaintext(), "{backend}, DUSN {dusn:#x}");
                let mut out = [0u8; 512];
                xts.decrypt_units(DataUnit::Bytes512, dusn, &ciphertext, &mut out)
                    .unwrap();
                assert_eq!(out.as_slice(), ieee_plaintext().as_slice(), "{backend}");
            }
        }
    }

    /// Each vector's unit in the middle of a longer call, at every position of the eight unit
    /// tweaks encrypted together (and the first of the next batch): it must come out the same.
    #[test]
    fn ieee1619_vectors_in_every_unit_tweak_lane() {
        for (backend, xts) in backends(&ieee_key()) {
            for (dusn, expected) in ieee_vectors() {
                for lane in 0..9u64 {
                    let units = 12;
                    let plain: std::vec::Vec<u8> = ieee_plaintext().repeat(units);
                    let mut out = std::vec![0u8; plain.len()];
                    xts.encrypt_units(DataUnit::Bytes512, dusn - lane, &plain, &mut out)
                        .unwrap();
                    let lane = lane as usize;
                    assert_eq!(
                        &out[lane * 512..(lane + 1) * 512],
                        expected.as_slice(),
                        "{backend}, DUSN {dusn:#x} at unit {lane}"
                    );
                }
            }
        }
    }

    #[test]
    fn tweak_doubling_carries_into_the_reduction_polynomial() {
        use portable::next_tweak;
        assert_eq!(next_tweak(1), 2);
        assert_eq!(next_tweak(1 << 63), 1 << 64);
        assert_eq!(next_tweak(1 << 126), 1 << 127);
        assert_eq!(next_tweak(1 << 127), 0x87);
        assert_eq!(next_tweak(u128::MAX), (u128::MAX << 1) ^ 0x87);
    }

    /// Dropping an expanded key overwrites its schedules, in both backends: hundreds of the
    /// bytes the value occupied turn to zero. (Not all of them: the bytes of the enum beyond
    /// the AES-NI variant are whatever the move carried, and the drop has no business there.)
    #[test]
    #[expect(unsafe_code, reason = "reads the bytes a dropped value occupied")]
    fn expanded_keys_are_wiped_when_dropped() {
        use core::mem::{size_of, MaybeUninit};
        for aes_ni in [false, true] {
            let Some(xts) = XtsAes256::with_backend(&ieee_key(), aes_ni).unwrap() else {
                continue;
            };
            let mut slot = MaybeUninit::new(xts);
            let bytes = |slot: &MaybeUninit<XtsAes256>| {
                // SAFETY: the slot's storage is readable, `size_of` bytes; only copied.
                unsafe {
                    core::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), size_of::<XtsAes256>())
                }
                .to_vec()
            };
            let before = bytes(&slot);
            // SAFETY: initialized above, dropped once.
            unsafe { slot.assume_init_drop() };
            let after = bytes(&slot);
            let wiped = before
                .iter()
                .zip(&after)
                .filter(|&(&was, &is)| was != 0 && is == 0)
                .count();
            assert!(wiped > 400, "aes-ni {aes_ni}: only {wiped} bytes wiped");
        }
    }

    #[test]
    fn keys_are_never_printed() {
        let xts = XtsAes256::new(&ieee_key()).unwrap();
        assert_eq!(std::format!("{xts:?}"), "XtsAes256 { .. }");
    }

    #[test]
    fn data_units() {
        assert_eq!(DataUnit::from_bytes(512), Some(DataUnit::Bytes512));
        assert_eq!(DataUnit::from_bytes(4096), Some(DataUnit::Bytes4096));
        assert_eq!(DataUnit::from_bytes(1024), None);
        assert_eq!(DataUnit::Bytes512.bytes(), 512);
        assert_eq!(DataUnit::Bytes4096.bytes(), 4096);
    }

    #[test]
    fn refuses_equal_halves_and_partial_units() {
        assert_eq!(
            XtsAes256::new(&[7u8; KEY_LEN]).unwrap_err(),
            XtsError::KeyHalvesEqual
        );
        assert_eq!(
            XtsAes256::with_backend(&[7u8; KEY_LEN], true).err(),
            Some(XtsError::KeyHalvesEqual)
        );
        for (backend, xts) in backends(&ieee_key()) {
            let mut out = [0u8; 1024];
            assert_eq!(
                xts.encrypt_units(DataUnit::Bytes512, 0, &[0u8; 1000], &mut out[..1000]),
                Err(XtsError::PartialDataUnit { len: 1000 }),
                "{backend}"
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
            assert_eq!(
                xts.decrypt_units(DataUnit::Bytes512, 0, &[0u8; 512], &mut out[..511]),
                Err(XtsError::LengthMismatch {
                    source: 512,
                    destination: 511
                })
            );
            assert_eq!(out, [0u8; 1024], "{backend}: nothing written on error");
        }
    }

    /// Whether this processor has AES-NI, asked of std (not of the code under test), and the
    /// build does not force the software path.
    fn processor_has_aes_ni() -> bool {
        #[cfg(target_arch = "x86_64")]
        return !cfg!(aes_force_soft) && std::is_x86_feature_detected!("aes");
        #[cfg(not(target_arch = "x86_64"))]
        return false;
    }

    /// Without AES-NI the tests run the portable backend alone, which would let a broken
    /// AES-NI backend pass unseen. That is allowed on a developer's machine, and in CI only
    /// when asked for (`DUMPCRYPT_ALLOW_NO_AES_NI=1`): CI's machines have AES-NI.
    fn require_aes_ni_unless_allowed() {
        let in_ci = std::env::var_os("CI").is_some();
        let allowed = std::env::var_os("DUMPCRYPT_ALLOW_NO_AES_NI").is_some();
        assert!(
            !processor_has_aes_ni(),
            "the processor has AES-NI but the AES-NI backend refused to start"
        );
        assert!(
            !in_ci || allowed || cfg!(aes_force_soft),
            "no AES-NI here: only the portable backend would be tested (set \
             DUMPCRYPT_ALLOW_NO_AES_NI=1 to accept that)"
        );
        std::eprintln!("no AES-NI on this processor: only the portable backend");
    }

    /// `new` takes AES-NI exactly where the processor has it (and the build does not force
    /// the software path).
    #[test]
    fn new_chooses_aes_ni_when_present() {
        assert_eq!(
            XtsAes256::new(&ieee_key()).unwrap().uses_aes_ni(),
            processor_has_aes_ni()
        );
        assert_eq!(
            XtsAes256::with_backend(&ieee_key(), true)
                .unwrap()
                .is_some(),
            processor_has_aes_ni()
        );
        if !processor_has_aes_ni() {
            require_aes_ni_unless_allowed();
        }
    }

    /// Agrees with the independent `xts-mode` crate, through both backends: both data units,
    /// many units in one call (more than the eight unit tweaks encrypted together), and unit
    /// numbers near the top of the 64-bit range, where they pass 2^64.
    #[test]
    fn agrees_with_xts_mode_crate() {
        use aes::cipher::KeyInit as _;
        let key: [u8; KEY_LEN] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        let oracle = xts_mode::Xts128::<Aes256>::new(
            Aes256::new(GenericArray::from_slice(&key[..32])),
            Aes256::new(GenericArray::from_slice(&key[32..])),
        );
        for (backend, xts) in backends(&key) {
            for (unit, units) in [(DataUnit::Bytes512, 19), (DataUnit::Bytes4096, 9)] {
                for first in [
                    0u64,
                    1,
                    12345,
                    u64::MAX - 20,
                    u64::MAX - 8,
                    u64::MAX - 3,
                    u64::MAX,
                ] {
                    let plain: std::vec::Vec<u8> = (0..unit.bytes() * units)
                        .map(|i| (i * 7 + 3) as u8)
                        .collect();
                    let mut ours = std::vec![0u8; plain.len()];
                    xts.encrypt_units(unit, first, &plain, &mut ours).unwrap();
                    let mut theirs = plain.clone();
                    oracle
                        .encrypt_area(&mut theirs, unit.bytes(), first.into(), |n| n.to_le_bytes());
                    assert_eq!(ours, theirs, "{backend}, {unit:?} from {first}");
                    let mut copy = std::vec![0u8; plain.len()];
                    xts.decrypt_units(unit, first, &ours, &mut copy).unwrap();
                    assert_eq!(copy, plain, "{backend}, {unit:?} from {first}");
                    xts.decrypt_units_in_place(unit, first, &mut ours).unwrap();
                    assert_eq!(ours, plain, "{backend}, {unit:?} from {first}");
                }
            }
        }
    }

    /// The two backends agree with each other on every length from one unit up to past two
    /// batches of unit tweaks, for many keys.
    #[test]
    fn backends_agree() {
        for seed in 0..16u8 {
            let key: [u8; KEY_LEN] =
                core::array::from_fn(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed));
            let all = backends(&key);
            let Some((_, fast)) = all.get(1) else { return };
            let portable = &all[0].1;
            for unit in [DataUnit::Bytes512, DataUnit::Bytes4096] {
                let units = 1 + usize::from(seed) % 18;
                let first = u64::from(seed).wrapping_mul(0x0123_4567_89ab_cdef);
                let plain: std::vec::Vec<u8> = (0..unit.bytes() * units)
                    .map(|i| (i as u8) ^ seed.wrapping_mul(13))
                    .collect();
                let (mut a, mut b) = (std::vec![0u8; plain.len()], std::vec![0u8; plain.len()]);
                portable.encrypt_units(unit, first, &plain, &mut a).unwrap();
                fast.encrypt_units(unit, first, &plain, &mut b).unwrap();
                assert_eq!(a, b, "seed {seed}, {unit:?}, {units} units");
                portable
                    .decrypt_units_in_place(unit, first, &mut a)
                    .unwrap();
                fast.decrypt_units(unit, first, &b.clone(), &mut b).unwrap();
                assert_eq!(a, plain);
                assert_eq!(b, plain);
            }
        }
    }
}
