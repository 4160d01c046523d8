//! Values that hold key bytes overwrite them when they are dropped: the raw registry values
//! DriverEntry reads and the parsed configuration, both of which live on its stack.
//!
//! Each test drops a value in place and then reads the bytes its key occupied: they must be
//! zero.

use std::mem::{size_of, MaybeUninit};

use dumpcrypt_core::config::{Config, RegistryValues, ValueName};

fn key() -> [u8; 64] {
    std::array::from_fn(|i| 0xA0 ^ (i as u8).wrapping_mul(7))
}

fn values() -> RegistryValues {
    let mut values = RegistryValues::present();
    values.set_dword(ValueName::CrashDumpPolicy, 1);
    // Hibernation refused: a key in memory beside a plaintext hiberfil.sys is refused.
    values.set_dword(ValueName::HibernationPolicy, 2);
    values.set_binary(ValueName::Key, &key());
    values
}

/// The bytes a value occupies.
fn bytes_of<T>(slot: &MaybeUninit<T>) -> Vec<u8> {
    // SAFETY: the slot's storage is `size_of::<T>()` readable bytes; they are only copied.
    unsafe { std::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// Drops the value in `slot` and returns where its key was (the whole 64 bytes, found in it
/// before the drop) and what is there afterwards. Only the key's own bytes are the drop's
/// business: padding and the payload of a `None` may hold stale bytes the move carried.
fn key_after_drop<T>(mut slot: MaybeUninit<T>) -> Vec<u8> {
    let before = bytes_of(&slot);
    let at = before
        .windows(64)
        .position(|window| window == key())
        .expect("the value holds the key");
    // SAFETY: the slot was made from a value and is dropped once, here.
    unsafe { slot.assume_init_drop() };
    bytes_of(&slot)[at..at + 64].to_vec()
}

#[test]
fn raw_registry_values_are_wiped_when_dropped() {
    assert_eq!(
        key_after_drop(MaybeUninit::new(values())),
        [0u8; 64],
        "the key's bytes in dropped RegistryValues"
    );
}

#[test]
fn a_parsed_configuration_is_wiped_when_dropped() {
    let config = Config::parse(&values()).unwrap();
    assert_eq!(config.key, Some(key()));
    assert_eq!(
        key_after_drop(MaybeUninit::new(config)),
        [0u8; 64],
        "the key's bytes in a dropped Config"
    );
}
