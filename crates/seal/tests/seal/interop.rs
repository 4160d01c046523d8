//! The `age` crate (str4d/rage) decrypts what `seal` writes.

use std::str::FromStr;

use age::x25519::Identity;
use dumpcrypt_seal::Recipient;

use crate::{random, seal_fresh, SPEC_IDENTITY, SPEC_RECIPIENT};

#[test]
fn the_age_crate_decrypts_random_payloads_sealed_to_fresh_identities() {
    for _ in 0..64 {
        let identity = Identity::generate();
        let text = identity.to_public().to_string();
        let recipient = Recipient::parse(text.as_bytes()).expect("age's own recipient text");
        let payload = random::<64>();
        let sealed = seal_fresh(&recipient, &payload);
        let plain = age::decrypt(&identity, &sealed).expect("age decrypts the sealed key");
        assert_eq!(plain, payload);
    }
}

#[test]
fn the_spec_example_identity_decrypts_what_is_sealed_to_its_recipient() {
    let identity = Identity::from_str(SPEC_IDENTITY).expect("the spec's identity");
    assert_eq!(identity.to_public().to_string(), SPEC_RECIPIENT);
    let recipient = Recipient::parse(SPEC_RECIPIENT.as_bytes()).expect("the spec's recipient");
    for payload in [[0u8; 64], [0xff; 64], random::<64>()] {
        let sealed = seal_fresh(&recipient, &payload);
        assert_eq!(age::decrypt(&identity, &sealed).expect("decrypts"), payload);
    }
}

#[test]
fn another_identity_does_not_decrypt() {
    let identity = Identity::generate();
    let other = Identity::generate();
    let recipient = Recipient::parse(identity.to_public().to_string().as_bytes()).unwrap();
    let sealed = seal_fresh(&recipient, &random::<64>());
    assert!(age::decrypt(&other, &sealed).is_err());
}

#[test]
fn every_byte_is_authenticated() {
    // The header MAC covers the header, the tag the payload: a flipped bit anywhere makes
    // age refuse the file. (So the MAC and the tag that age accepts are real ones.)
    let identity = Identity::generate();
    let recipient = Recipient::parse(identity.to_public().to_string().as_bytes()).unwrap();
    let payload = random::<64>();
    let sealed = seal_fresh(&recipient, &payload);
    assert_eq!(age::decrypt(&identity, &sealed).unwrap(), payload);
    for index in 0..sealed.len() {
        for bit in [0x01u8, 0x80] {
            let mut changed = sealed;
            changed[index] ^= bit;
            assert!(
                age::decrypt(&identity, &changed).is_err(),
                "byte {index} bit {bit:#04x} changed, still decrypted"
            );
        }
    }
    // Nothing may be cut off or added either.
    assert!(age::decrypt(&identity, &sealed[..sealed.len() - 1]).is_err());
    let mut longer = sealed.to_vec();
    longer.push(0);
    assert!(age::decrypt(&identity, &longer).is_err());
}
