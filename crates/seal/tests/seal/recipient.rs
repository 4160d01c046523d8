//! `Recipient::parse` accepts exactly an age X25519 recipient and refuses everything else;
//! a small-order recipient gives an error, never a sealed file.

use age::x25519::Identity;
use dumpcrypt_seal::{seal, Recipient, SealError, SEALED_LEN};
use proptest::prelude::*;

use crate::bech32_ref::{encode, encode_groups, to_groups, BECH32, BECH32M};
use crate::{fresh_randomness, random, SPEC_IDENTITY, SPEC_RECIPIENT};

fn parse(text: &str) -> Result<Recipient, SealError> {
    Recipient::parse(text.as_bytes())
}

/// A valid recipient of a fresh key, and the key's 32 bytes encoded independently of the
/// parser (the test's own BIP-173 encoder) to the same text.
fn fresh_recipient_text() -> String {
    Identity::generate().to_public().to_string()
}

#[test]
fn a_recipient_parses_to_the_key_its_text_encodes() {
    let recipient = parse(SPEC_RECIPIENT).unwrap();
    assert_eq!(encode("age", recipient.public_key()), SPEC_RECIPIENT);
    assert_eq!(
        recipient.to_string(),
        SPEC_RECIPIENT,
        "Display gives the text back"
    );
    for _ in 0..32 {
        let text = fresh_recipient_text();
        let recipient = parse(&text).unwrap();
        assert_eq!(encode("age", recipient.public_key()), text);
        assert_eq!(recipient.to_string(), text);
        assert_eq!(
            Recipient::from_public_key(*recipient.public_key()),
            recipient
        );
    }
    // Any 32 bytes that are not a small-order point, encoded by the test's encoder.
    for _ in 0..32 {
        let key = random::<32>();
        assert_eq!(parse(&encode("age", &key)).unwrap().public_key(), &key);
    }
}

#[test]
fn an_identity_is_refused_as_a_secret_key() {
    assert_eq!(parse(SPEC_IDENTITY), Err(SealError::SecretKeyNotRecipient));
    assert_eq!(
        parse(&SPEC_IDENTITY.to_lowercase()),
        Err(SealError::SecretKeyNotRecipient)
    );
    let fresh = Identity::generate();
    use age::secrecy::ExposeSecret;
    let text = fresh.to_string();
    assert_eq!(
        parse(text.expose_secret()),
        Err(SealError::SecretKeyNotRecipient)
    );
    // The post-quantum identity's prefix too.
    assert_eq!(
        parse("AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"),
        Err(SealError::SecretKeyNotRecipient)
    );
}

#[test]
fn another_human_readable_part_is_refused() {
    let key = random::<32>();
    for hrp in ["agf", "ag", "agee", "age1pq", "age1yubikey", "bc", "a"] {
        assert_eq!(
            parse(&encode(hrp, &key)),
            Err(SealError::RecipientNotX25519),
            "{hrp}"
        );
    }
    // BIP-173's example address: valid Bech32, not age.
    assert_eq!(
        parse("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
        Err(SealError::RecipientNotX25519)
    );
}

#[test]
fn a_bad_checksum_is_refused() {
    let text = SPEC_RECIPIENT;
    // The last character, one in the middle, and the first after the separator.
    for index in [text.len() - 1, text.len() / 2, 4] {
        let mut bytes = text.as_bytes().to_vec();
        bytes[index] = if bytes[index] == b'q' { b'p' } else { b'q' };
        assert_eq!(
            Recipient::parse(&bytes),
            Err(SealError::RecipientChecksum),
            "{index}"
        );
    }
    // A character dropped or added.
    assert_eq!(
        parse(&text[..text.len() - 1]),
        Err(SealError::RecipientChecksum)
    );
    assert_eq!(
        parse(&format!("{text}q")),
        Err(SealError::RecipientChecksum)
    );
    // The same key with a Bech32m checksum (BIP-350), which age does not use.
    let key = parse(text).unwrap();
    assert_eq!(
        parse(&encode_groups("age", &to_groups(key.public_key()), BECH32M)),
        Err(SealError::RecipientChecksum)
    );
}

#[test]
fn uppercase_and_mixed_case_are_refused() {
    let upper = SPEC_RECIPIENT.to_uppercase();
    assert_eq!(parse(&upper), Err(SealError::RecipientNotLowercase));
    let mut mixed = SPEC_RECIPIENT.as_bytes().to_vec();
    mixed[10] = mixed[10].to_ascii_uppercase();
    assert_ne!(mixed, SPEC_RECIPIENT.as_bytes());
    assert_eq!(
        Recipient::parse(&mixed),
        Err(SealError::RecipientNotLowercase)
    );
    assert_eq!(
        parse(&format!("AGE{}", &SPEC_RECIPIENT[3..])),
        Err(SealError::RecipientNotLowercase)
    );
}

#[test]
fn a_payload_other_than_32_bytes_is_refused() {
    for len in [0usize, 1, 16, 31, 33, 64] {
        let bytes = vec![0x42u8; len];
        assert_eq!(
            parse(&encode("age", &bytes)),
            Err(SealError::RecipientLength),
            "{len} bytes"
        );
    }
}

#[test]
fn non_zero_padding_bits_are_refused() {
    // 32 bytes are 52 groups of 5 bits, the last with 4 padding bits, which must be zero.
    let key = parse(SPEC_RECIPIENT).unwrap();
    let groups = to_groups(key.public_key());
    assert_eq!(groups.len(), 52);
    assert_eq!(groups[51] & 0x0f, 0);
    for padding in [0x01u8, 0x08, 0x0f] {
        let mut padded = groups.clone();
        padded[51] |= padding;
        assert_eq!(
            parse(&encode_groups("age", &padded, BECH32)),
            Err(SealError::RecipientLength)
        );
    }
    // A 53rd group: 265 bits, 9 of padding, more than BIP-173 allows.
    let mut longer = groups.clone();
    longer.push(0);
    assert_eq!(
        parse(&encode_groups("age", &longer, BECH32)),
        Err(SealError::RecipientLength)
    );
}

#[test]
fn text_that_is_not_bech32_is_refused() {
    for text in [
        "",
        "age",
        "1",
        "age1b",        // 'b' is not in the Bech32 alphabet
        "agezvkyg2lqz", // no separator
        " age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\n",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj ",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\0",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwé",
    ] {
        assert_eq!(parse(text), Err(SealError::RecipientNotBech32), "{text:?}");
    }
    assert_eq!(
        Recipient::parse(b"age1\xff\xfe"),
        Err(SealError::RecipientNotBech32)
    );
    // A separator and nothing after it: too short for a checksum.
    assert!(parse("age1").is_err());
}

/// The u-coordinates of the points of small order on Curve25519 and its twist, which
/// X25519 maps to a zero shared secret: 0, 1, the two of order 8, p - 1, and p and p + 1 (0
/// and 1 not reduced); each also with the top bit set, which X25519 ignores (RFC 7748
/// section 5). The list libsodium's `has_small_order` checks.
const SMALL_ORDER: [&str; 14] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

fn unhex(text: &str) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    bytes
}

#[test]
fn a_small_order_recipient_is_refused_and_never_sealed_to() {
    for point in SMALL_ORDER {
        let key = unhex(point);
        assert_eq!(
            parse(&encode("age", &key)),
            Err(SealError::LowOrderRecipient),
            "{point}"
        );
        // Given as raw bytes, `seal` refuses it, and leaves no file behind.
        let mut out = [0xa5u8; SEALED_LEN];
        assert_eq!(
            seal(
                &Recipient::from_public_key(key),
                &fresh_randomness(),
                &random::<64>(),
                &mut out
            ),
            Err(SealError::LowOrderRecipient),
            "{point}"
        );
        assert_eq!(out, [0u8; SEALED_LEN], "{point}");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let message = SealError::SecretKeyNotRecipient.to_string();
    assert!(message.contains("secret key"), "{message}");
    assert!(SealError::LowOrderRecipient
        .to_string()
        .contains("small-order"));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = Recipient::parse(&bytes);
    }

    #[test]
    fn arbitrary_text_from_the_alphabet_is_refused(
        data in "[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{0,70}"
    ) {
        // Without a valid checksum (probability 2^-30 otherwise; Bech32 is a BCH code).
        let text = format!("age1{data}");
        prop_assume!(text != SPEC_RECIPIENT);
        prop_assert!(parse(&text).is_err());
    }

    #[test]
    fn one_substituted_character_is_always_detected(
        index in 4usize..62,
        replacement in proptest::sample::select(b"qpzry9x8gf2tvdw0s3jn54khce6mua7l".to_vec()),
    ) {
        // BIP-173: Bech32 detects every error that changes up to 4 characters.
        let mut bytes = SPEC_RECIPIENT.as_bytes().to_vec();
        prop_assume!(bytes[index] != replacement);
        bytes[index] = replacement;
        prop_assert_eq!(Recipient::parse(&bytes), Err(SealError::RecipientChecksum));
    }
}
