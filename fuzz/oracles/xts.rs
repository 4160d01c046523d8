//! Fuzz target: the XTS-AES-256 transform against the independent `xts-mode` crate.
//!
//! Arbitrary keys, data units, first unit numbers (biased to the top of the 64-bit range,
//! where unit numbers cross into the 128-bit tweak's upper half) and lengths. Whole units
//! must round-trip and agree with `xts-mode`; partial units, mismatched lengths and equal key
//! halves must come back as `Err`, never as a panic, and leave the destination untouched.
//!
//! Shared by the cargo-fuzz target (`fuzz/fuzz_targets/xts.rs`) and `cargo test`
//! (`tests/fuzz_seeds.rs`, which replays the committed seeds in `fuzz/seeds/xts`): both
//! call [`run`] with the raw input bytes.

use aes::cipher::KeyInit;
use arbitrary::{Arbitrary, Unstructured};
use dumpcrypt_xts::{DataUnit, XtsAes256, XtsError, KEY_LEN};

#[derive(Debug, Arbitrary)]
enum FirstUnit {
    Low(u16),
    NearTop(u16),
    Any(u64),
}

#[derive(Debug, Arbitrary)]
struct Input {
    key: [u8; KEY_LEN],
    /// Make the two halves equal (IEEE 1619 forbids it: `new` must refuse).
    equal_halves: bool,
    large_unit: bool,
    first_unit: FirstUnit,
    /// Whole units (when `partial` is 0), up to 5 of 512 or 2 of 4096 bytes.
    units: u8,
    /// Bytes added to the whole units: a partial unit the API must refuse.
    partial: u16,
    /// Bytes by which the destination is longer than the source.
    destination_extra: u8,
    data: Vec<u8>,
}

/// Decodes `data` as libfuzzer-sys decodes the input of a typed target (too short for
/// `Input`'s size hint, or not decodable: rejected), then checks it. Returns whether `data`
/// was an input; panics when the oracle fails.
pub fn run(data: &[u8]) -> bool {
    if data.len() < <Input as Arbitrary>::size_hint(0).0 {
        return false;
    }
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return false;
    };
    check(input);
    true
}

fn check(mut input: Input) {
    if input.equal_halves {
        let (data_key, tweak_key) = input.key.split_at_mut(KEY_LEN / 2);
        tweak_key.copy_from_slice(data_key);
    }
    let halves_equal = input.key[..KEY_LEN / 2] == input.key[KEY_LEN / 2..];
    let cipher = match XtsAes256::new(&input.key) {
        Ok(cipher) => {
            assert!(!halves_equal, "accepted a key with equal halves");
            cipher
        }
        Err(error) => {
            assert!(halves_equal, "refused a valid key: {error:?}");
            assert_eq!(error, XtsError::KeyHalvesEqual);
            return;
        }
    };
    let unit = if input.large_unit {
        DataUnit::Bytes4096
    } else {
        DataUnit::Bytes512
    };
    let unit_bytes = unit.bytes();
    let first_unit = match input.first_unit {
        FirstUnit::Low(n) => u64::from(n),
        FirstUnit::NearTop(n) => u64::MAX - u64::from(n),
        FirstUnit::Any(n) => n,
    };
    let max_units = if input.large_unit { 2 } else { 5 };
    let whole = usize::from(input.units % (max_units + 1)) * unit_bytes;
    let len = whole + usize::from(input.partial) % unit_bytes;
    // The source: the input's bytes, repeated (or a counter when there are none).
    let source: Vec<u8> = if input.data.is_empty() {
        (0..len).map(|i| i as u8).collect()
    } else {
        input.data.iter().copied().cycle().take(len).collect()
    };

    // A destination of another length is refused, untouched.
    if input.destination_extra != 0 {
        let mut destination = vec![0x5Au8; len + usize::from(input.destination_extra)];
        assert!(cipher
            .encrypt_units(unit, first_unit, &source, &mut destination)
            .is_err());
        assert!(cipher
            .decrypt_units(unit, first_unit, &source, &mut destination)
            .is_err());
        assert!(destination.iter().all(|&b| b == 0x5A), "wrote on refusal");
    }

    let mut ciphertext = vec![0x5Au8; len];
    let result = cipher.encrypt_units(unit, first_unit, &source, &mut ciphertext);
    if len % unit_bytes != 0 {
        assert_eq!(result, Err(XtsError::PartialDataUnit { len }));
        assert!(ciphertext.iter().all(|&b| b == 0x5A), "wrote on refusal");
        let mut buffer = source.clone();
        assert_eq!(
            cipher.decrypt_units_in_place(unit, first_unit, &mut buffer),
            Err(XtsError::PartialDataUnit { len })
        );
        assert_eq!(buffer, source, "decrypted in place on refusal");
        let mut destination = vec![0x5Au8; len];
        assert!(cipher
            .decrypt_units(unit, first_unit, &source, &mut destination)
            .is_err());
        return;
    }
    assert_eq!(result, Ok(()));

    // Agreement with the independent implementation.
    let oracle = xts_mode::Xts128::<aes::Aes256>::new(
        aes::Aes256::new_from_slice(&input.key[..32]).expect("32-byte key"),
        aes::Aes256::new_from_slice(&input.key[32..]).expect("32-byte key"),
    );
    let mut expected = source.clone();
    oracle.encrypt_area(
        &mut expected,
        unit_bytes,
        u128::from(first_unit),
        |n: u128| n.to_le_bytes(),
    );
    assert_eq!(ciphertext, expected, "differs from xts-mode");
    // Every whole unit is changed (a 2^-128 chance per block otherwise).
    for (plain, cipher_unit) in source.chunks(unit_bytes).zip(ciphertext.chunks(unit_bytes)) {
        assert_ne!(plain, cipher_unit, "a data unit came out as plaintext");
    }

    // Round trips, both ways of decrypting.
    let mut in_place = ciphertext.clone();
    cipher
        .decrypt_units_in_place(unit, first_unit, &mut in_place)
        .expect("whole units");
    assert_eq!(in_place, source, "in-place decryption");
    let mut copied = vec![0u8; len];
    cipher
        .decrypt_units(unit, first_unit, &ciphertext, &mut copied)
        .expect("whole units");
    assert_eq!(copied, source, "decryption into a destination");
}
