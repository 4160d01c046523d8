//! Values that hold key bytes overwrite them when they are dropped: the raw registry values
//! DriverEntry reads and the parsed configuration, both of which live on its stack. And the
//! crash dump copy overwrites its key schedules at Dump_Finish, where they lie.
//!
//! The first tests drop a value in place and then read the bytes its key occupied: they must
//! be zero. The others look into the simulated kernel's live pool blocks.

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

mod common;

use common::{boot, environment, key as driver_key, machine, Parameters, WINDOWS_11};
use crashdmp_sim::machine::DumpFile;
use crashdmp_sim::ntoskrnl;
use crashdmp_sim::stack::{CRASHDUMP, HIBERNATION};

/// How many live pool blocks of key schedules (the cipher's own block, `XtsAes256`: the
/// only blocks of 1 KiB or more besides the page-aligned secondary buffer) hold a 16-byte
/// quarter of the driver's key: the hardware backends keep the first two round keys of each
/// AES-256 schedule verbatim.
fn key_quarters_in_live_memory() -> usize {
    let schedule_len = std::mem::size_of::<dumpcrypt_xts::XtsAes256>();
    driver_key()
        .chunks(16)
        .flat_map(ntoskrnl::live_allocations_holding)
        .filter(|&size| size == schedule_len)
        .count()
}

/// Any live block holding a quarter of the key, whatever it is.
fn key_quarters_anywhere() -> usize {
    driver_key()
        .chunks(16)
        .map(|quarter| ntoskrnl::live_allocations_holding(quarter).len())
        .sum()
}

/// No live block holds key bytes once the crash dump copy's Dump_Finish has wiped its
/// schedules. This test found a leak: the context block (an `Instance`) held 32 bytes of the
/// raw key in the unused bytes of its empty range slots, carried in from the dead frames of
/// reading and parsing the configuration, over which the encrypt policy's values were built.
/// DriverEntry now overwrites that dead stack (`wipe_dead_stack` in src/filter.rs) before it
/// prepares the policy and again before it builds the instance.
#[test]
fn no_live_block_holds_key_bytes_after_the_crash_dumps_finish() {
    boot(
        Some(Parameters::encrypt_both().dword("Backend", 3)),
        WINDOWS_11,
    );
    let mut machine = machine(1 << 20, 8, 5);
    let mut crash = common::loaded(CRASHDUMP, 8);
    machine.dump(&mut crash, DumpFile::Crash).unwrap();
    assert_eq!(key_quarters_anywhere(), 0);
    crash.unload().unwrap();
}

/// The crash dump copy wipes its key schedules in their pool blocks at Dump_Finish (the
/// machine is going down): before it the schedules hold the key's round keys, after it no live
/// memory does, and the secondary buffer is zero (the simulator checks that after every
/// dump). Nothing is freed until Dump_Unload. A second dump is refused.
#[test]
fn the_crash_dump_copy_wipes_its_keys_at_dump_finish() {
    // Backend 3 (AES-NI on XMM): schedules that hold the round keys verbatim, to look for.
    boot(
        Some(Parameters::encrypt_both().dword("Backend", 3)),
        WINDOWS_11,
    );
    let mut machine = machine(1 << 20, 8, 5);
    let mut crash = common::loaded(CRASHDUMP, 8);
    let held = ntoskrnl::counters().outstanding;
    assert!(
        key_quarters_in_live_memory() > 0,
        "the schedules to look for (does this machine lack AES-NI?)"
    );
    let report = machine.dump(&mut crash, DumpFile::Crash).unwrap();
    assert!(report.written && report.bytes_changed == report.bytes);
    assert_eq!(
        key_quarters_in_live_memory(),
        0,
        "round keys left after Dump_Finish"
    );
    assert_eq!(
        ntoskrnl::counters().outstanding,
        held,
        "nothing freed at HIGH_LEVEL"
    );
    let again = machine.dump(&mut crash, DumpFile::Crash).unwrap();
    assert!(!again.written, "a second dump with the keys gone");
    assert_ne!(again.start_status, 0);
    crash.unload().unwrap();
    assert_eq!(ntoskrnl::counters().outstanding, 0);
}

/// The hibernation copy keeps its keys after Dump_Finish: resume reads the image back.
#[test]
fn the_hibernation_copy_keeps_its_keys_for_resume() {
    boot(
        Some(Parameters::encrypt_both().dword("Backend", 3)),
        WINDOWS_11,
    );
    let mut machine = machine(1 << 20, 8, 6);
    let mut hibernation = common::loaded(HIBERNATION, 8);
    machine
        .dump(&mut hibernation, DumpFile::Hibernation)
        .unwrap();
    assert!(
        key_quarters_in_live_memory() > 0,
        "the keys stay for resume"
    );
    let resume = machine.resume(&mut hibernation).unwrap();
    assert!(resume.filtered && resume.reads > 0);
    hibernation.unload().unwrap();
}

/// The boot-time DumpStack.log traffic, before any Dump_Start: under encrypt the log goes to
/// the disk encrypted and is read back through Dump_Read as its text, on the crash dump copy,
/// which then writes a crash dump as usual; under Windows 7 (no Dump_Read) the write is
/// still encrypted. Never a bug check.
#[test]
fn the_boot_time_dump_stack_log_is_encrypted_and_read_back() {
    for (os_version, filtered) in [(WINDOWS_11, true), (common::WINDOWS_7, false)] {
        ntoskrnl::boot(environment(Some(Parameters::encrypt_both()), os_version));
        let mut machine = machine(1 << 20, 8, 7);
        let mut crash = common::loaded(CRASHDUMP, 8);
        let log = machine.boot_log(&mut crash).unwrap();
        assert_eq!(
            log.bytes_changed,
            crashdmp_sim::machine::DUMP_STACK_LOG_LEN as u64,
            "the log went to the disk encrypted"
        );
        assert_eq!(log.read_filtered, filtered);
        let report = machine.dump(&mut crash, DumpFile::Crash).unwrap();
        assert!(report.written && report.bytes_changed == report.bytes);
        crash.unload().unwrap();
    }
    // Passthrough: the log goes out as it is.
    ntoskrnl::boot(environment(None, WINDOWS_11));
    let mut machine = machine(1 << 20, 8, 7);
    let mut crash = common::loaded(CRASHDUMP, 8);
    assert_eq!(machine.boot_log(&mut crash).unwrap().bytes_changed, 0);
    crash.unload().unwrap();
}
