//! dumpcrypt-seal's tests, in one binary. Interoperability is the test: what `seal` writes
//! is decrypted by the `age` crate (`interop`) and by the reference `age` binary
//! (`reference_cli`); the expectations come from them, from the C2SP age spec and from
//! BIP-173, never from the crate's own code.

#[path = "seal/bech32_ref.rs"]
mod bech32_ref;
#[path = "seal/format.rs"]
mod format;
#[path = "seal/interop.rs"]
mod interop;
#[path = "seal/recipient.rs"]
mod recipient;
#[path = "seal/reference_cli.rs"]
mod reference_cli;
#[path = "seal/stack.rs"]
mod stack;

use dumpcrypt_seal::{seal, Randomness, Recipient, RANDOMNESS_LEN, SEALED_LEN};

/// `N` bytes from the OS random source.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes
}

/// Fresh randomness from the OS random source.
fn fresh_randomness() -> Randomness {
    Randomness::from_bytes(&random::<RANDOMNESS_LEN>())
}

/// `payload` sealed to `recipient` with fresh randomness.
fn seal_fresh(recipient: &Recipient, payload: &[u8; 64]) -> [u8; SEALED_LEN] {
    let mut out = [0u8; SEALED_LEN];
    seal(recipient, &fresh_randomness(), payload, &mut out).expect("seal");
    out
}

/// The C2SP age spec's example identity and its recipient ("The X25519 recipient type").
const SPEC_IDENTITY: &str =
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
const SPEC_RECIPIENT: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
