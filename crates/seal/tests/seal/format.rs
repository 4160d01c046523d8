//! The sealed file's layout, line by line, as the C2SP age spec writes it ("Header",
//! "Payload", "X25519 recipient stanza").

use dumpcrypt_seal::{
    seal, Randomness, Recipient, SealError, HEADER_LEN, PAYLOAD_LEN, RANDOMNESS_LEN, SEALED_LEN,
};

use crate::{fresh_randomness, random, seal_fresh, SPEC_RECIPIENT};

const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Canonical unpadded base64 of 32 bytes: 43 characters of the standard alphabet (258 bits
/// for 256), the last carrying 4 bits and 2 zero bits (RFC 4648 section 3.5).
fn assert_base64_of_32_bytes(text: &[u8], what: &str) {
    assert_eq!(
        text.len(),
        43,
        "{what}: {:?}",
        String::from_utf8_lossy(text)
    );
    assert!(text.iter().all(|c| BASE64.contains(c)), "{what}: alphabet");
    let last = BASE64.iter().position(|c| c == &text[42]).unwrap();
    assert_eq!(last & 0x03, 0, "{what}: non-canonical last character");
}

/// The lines of the header and what follows it.
fn split(sealed: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let mut rest = sealed;
    for _ in 0..4 {
        let end = rest
            .iter()
            .position(|&c| c == b'\n')
            .expect("a header line");
        lines.push(&rest[..end]);
        rest = &rest[end + 1..];
    }
    (lines, rest)
}

#[test]
fn the_header_is_the_version_line_one_x25519_stanza_and_the_mac_line() {
    assert_eq!(SEALED_LEN, 264);
    assert_eq!(HEADER_LEN, 168);
    let recipient = Recipient::parse(SPEC_RECIPIENT.as_bytes()).unwrap();
    for _ in 0..16 {
        let sealed = seal_fresh(&recipient, &random::<PAYLOAD_LEN>());
        let (lines, payload) = split(&sealed);
        assert_eq!(lines[0], b"age-encryption.org/v1");
        // "-> X25519 " and the ephemeral share: two arguments, the second 32 bytes.
        let stanza = lines[1]
            .strip_prefix(b"-> X25519 ")
            .expect("the stanza line");
        assert_base64_of_32_bytes(stanza, "ephemeral share");
        // The body: one final line (shorter than 64 columns), the 16-byte file key and its
        // 16-byte tag.
        assert_base64_of_32_bytes(lines[2], "wrapped file key");
        let mac = lines[3].strip_prefix(b"--- ").expect("the MAC line");
        assert_base64_of_32_bytes(mac, "header MAC");
        // The header ends with the MAC line's LF; then the 16-byte nonce and one chunk of
        // 64 bytes and its 16-byte tag.
        assert_eq!(sealed.len() - payload.len(), HEADER_LEN);
        assert_eq!(payload.len(), 16 + 64 + 16);
    }
}

#[test]
fn the_same_payload_sealed_twice_differs_everywhere_random() {
    let recipient = Recipient::parse(SPEC_RECIPIENT.as_bytes()).unwrap();
    let payload = random::<PAYLOAD_LEN>();
    let first = seal_fresh(&recipient, &payload);
    let second = seal_fresh(&recipient, &payload);
    assert_ne!(first, second);
    let (first_lines, first_payload) = split(&first);
    let (second_lines, second_payload) = split(&second);
    assert_eq!(first_lines[0], second_lines[0]);
    for line in 1..4 {
        assert_ne!(first_lines[line], second_lines[line], "line {line}");
    }
    assert_ne!(first_payload[..16], second_payload[..16], "nonce");
    assert_ne!(first_payload[16..], second_payload[16..], "chunk");
    // Neither holds the payload in the clear.
    for sealed in [&first, &second] {
        assert!(!sealed
            .windows(16)
            .any(|w| payload.windows(16).any(|p| p == w)));
    }
}

#[test]
fn the_same_randomness_gives_the_same_file() {
    let recipient = Recipient::parse(SPEC_RECIPIENT.as_bytes()).unwrap();
    let bytes = random::<RANDOMNESS_LEN>();
    let payload = random::<PAYLOAD_LEN>();
    let mut first = [0u8; SEALED_LEN];
    let mut second = [0u8; SEALED_LEN];
    seal(
        &recipient,
        &Randomness::from_bytes(&bytes),
        &payload,
        &mut first,
    )
    .unwrap();
    let parts = Randomness::from_parts(
        bytes[..32].try_into().unwrap(),
        bytes[32..48].try_into().unwrap(),
        bytes[48..].try_into().unwrap(),
    );
    seal(&recipient, &parts, &payload, &mut second).unwrap();
    assert_eq!(first, second);
    // The payload nonce is the 16 bytes after the header, as given.
    assert_eq!(first[HEADER_LEN..HEADER_LEN + 16], bytes[48..]);
}

#[test]
fn randomness_with_a_part_all_zero_is_refused() {
    let recipient = Recipient::parse(SPEC_RECIPIENT.as_bytes()).unwrap();
    for part in [0..32, 32..48, 48..64] {
        let mut bytes = random::<RANDOMNESS_LEN>();
        bytes[part.clone()].fill(0);
        let mut out = [0xa5u8; SEALED_LEN];
        assert_eq!(
            seal(
                &recipient,
                &Randomness::from_bytes(&bytes),
                &random::<64>(),
                &mut out
            ),
            Err(SealError::ZeroRandomness),
            "{part:?}"
        );
        assert_eq!(out, [0u8; SEALED_LEN]);
    }
    let mut out = [0u8; SEALED_LEN];
    assert!(seal(&recipient, &fresh_randomness(), &[0u8; 64], &mut out).is_ok());
}

#[test]
fn randomness_does_not_show_in_debug_output() {
    let randomness = Randomness::from_bytes(&[0x41; RANDOMNESS_LEN]);
    assert_eq!(format!("{randomness:?}"), "Randomness { .. }");
}
