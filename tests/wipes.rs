//! Values that hold key bytes overwrite them when they are dropped: the raw registry values
//! DriverEntry reads and the parsed configuration, both of which live on its stack.
//!
//! Each test drops a value in place and then reads the bytes it occupied: nothing of the key
//! may be left there.

use std::mem::{size_of, MaybeUninit};

use dumpcrypt_core::config::{Config, RegistryValues, ValueName};

fn key() -> [u8; 64] {
    std::array::from_fn(|i| 0xA0 ^ (i as u8).wrapping_mul(7))
}

fn values() -> RegistryValues {
    let mut values = RegistryValues::present();
    values.set_dword(ValueName::CrashDumpPolicy, 1);
    values.set_binary(ValueName::Key, &key());
    values
}

/// Drops the value in `slot` and returns the bytes it occupied.
fn dropped_bytes<T>(mut slot: MaybeUninit<T>) -> Vec<u8> {
    // SAFETY: the slot was made from a value and is dropped once, here.
    unsafe { slot.assume_init_drop() };
    // SAFETY: the slot's storage is `size_of::<T>()` bytes, readable; the value's drop wrote
    // every byte that held key material, and the test reads the bytes only to compare them.
    unsafe { std::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// Whether any 8 consecutive bytes of the key are in `bytes`.
fn holds_key(bytes: &[u8]) -> bool {
    let key = key();
    key.windows(8)
        .any(|piece| bytes.windows(8).any(|window| window == piece))
}

#[test]
fn the_test_sees_a_key_that_is_there() {
    let slot = MaybeUninit::new(values());
    // SAFETY: initialized above; read only.
    let live = unsafe {
        std::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), size_of::<RegistryValues>())
    };
    assert!(holds_key(live), "the check can find the key");
    drop(dropped_bytes(slot));
}

#[test]
fn raw_registry_values_are_wiped_when_dropped() {
    let bytes = dropped_bytes(MaybeUninit::new(values()));
    assert!(
        !holds_key(&bytes),
        "key bytes left in dropped RegistryValues"
    );
}

#[test]
fn a_parsed_configuration_is_wiped_when_dropped() {
    let config = Config::parse(&values()).unwrap();
    assert_eq!(config.key, Some(key()));
    let bytes = dropped_bytes(MaybeUninit::new(config));
    assert!(!holds_key(&bytes), "key bytes left in a dropped Config");
}
