//! The driver run end to end by the simulated dump stacks: every policy, both stacks, both
//! OS generations, both tweak bases and data units, areas that cut through writes. Images
//! are checked with an independent XTS-AES-256.

mod common;

use common::*;
use crashdmp_sim::machine::{DumpFile, Machine, MachineConfig};
use crashdmp_sim::ntoskrnl;
use crashdmp_sim::stack::{CRASHDUMP, HIBERNATION};

const MIB: usize = 1 << 20;

#[test]
fn crash_dump_is_encrypted_and_decrypts_to_the_reference() {
    boot(Some(Parameters::encrypt_both()), WINDOWS_11);
    let mut machine = machine(6 * MIB, 16, 11);
    let mut filter = loaded(CRASHDUMP, 16);
    let report = machine.dump(&mut filter, DumpFile::Crash).unwrap();
    assert!(report.written);
    assert_eq!(report.bytes, machine.crash_file.len);
    assert_eq!(
        report.bytes_changed, report.bytes,
        "every sector is ciphertext"
    );
    filter.unload().unwrap();
    let checked = check_image(&mut machine, DumpFile::Crash, 0..u64::MAX, 0, 512);
    assert_eq!(checked, machine.crash_file.len);
    assert_eq!(ntoskrnl::counters().outstanding, 0);
}

#[test]
fn hibernation_is_encrypted_and_read_back_through_dump_read() {
    boot(Some(Parameters::encrypt_both()), WINDOWS_11);
    let mut machine = machine(6 * MIB, 8, 12);
    let mut filter = loaded(HIBERNATION, 8);
    let report = machine.dump(&mut filter, DumpFile::Hibernation).unwrap();
    assert_eq!(report.bytes_changed, report.bytes);
    let resume = machine.resume(&mut filter).unwrap();
    assert!(resume.filtered);
    assert_eq!(resume.bytes, machine.hibernation_file.len);
    filter.unload().unwrap();
    check_image(&mut machine, DumpFile::Hibernation, 0..u64::MAX, 0, 512);
}

#[test]
fn passthrough_writes_the_reference_and_leaves_every_mdl_alone() {
    boot(
        Some(
            Parameters::default()
                .dword("CrashDumpPolicy", 0)
                .binary("Key", &key()),
        ),
        WINDOWS_11,
    );
    let mut machine = machine(4 * MIB, 16, 13);
    let mut filter = loaded(CRASHDUMP, 16);
    let report = machine.dump(&mut filter, DumpFile::Crash).unwrap();
    assert!(report.written);
    assert_eq!(report.bytes_changed, 0);
    filter.unload().unwrap();
    // An empty area: everything must equal the reference.
    check_image(&mut machine, DumpFile::Crash, 0..0, 0, 512);
    // With no Parameters key at all, both stacks pass through.
    boot(None, WINDOWS_11);
    let mut hibernation = loaded(HIBERNATION, 16);
    let report = machine
        .dump(&mut hibernation, DumpFile::Hibernation)
        .unwrap();
    assert_eq!(report.bytes_changed, 0);
    assert!(machine.resume(&mut hibernation).unwrap().filtered);
    hibernation.unload().unwrap();
}

#[test]
fn refuse_fails_dump_start_so_nothing_is_written() {
    boot(
        Some(
            Parameters::default()
                .dword("CrashDumpPolicy", 2)
                .dword("HibernationPolicy", 2),
        ),
        WINDOWS_11,
    );
    let mut machine = machine(2 * MIB, 16, 14);
    for (dump_type, which) in [
        (CRASHDUMP, DumpFile::Crash),
        (HIBERNATION, DumpFile::Hibernation),
    ] {
        let mut filter = loaded(dump_type, 16);
        let report = machine.dump(&mut filter, which).unwrap();
        assert!(!report.written);
        assert_eq!(
            report.start_status, 0xC000_0022_u32 as i32,
            "STATUS_ACCESS_DENIED"
        );
        assert_eq!(report.writes, 0);
        filter.unload().unwrap();
    }
}

#[test]
fn windows_7_gets_version_1_structures_and_no_dump_read() {
    boot(Some(Parameters::encrypt_both()), WINDOWS_7);
    let mut machine = machine(3 * MIB, 16, 15);
    let mut filter = loaded(HIBERNATION, 16);
    assert_eq!(filter.view.major_version, 1);
    assert!(!filter.supports_read());
    // The guard bytes right after the 0x38-byte structure are checked on every call.
    let report = machine.dump(&mut filter, DumpFile::Hibernation).unwrap();
    assert_eq!(report.bytes_changed, report.bytes);
    assert!(!machine.resume(&mut filter).unwrap().filtered);
    filter.unload().unwrap();
    let mut crash = loaded(CRASHDUMP, 16);
    machine.dump(&mut crash, DumpFile::Crash).unwrap();
    crash.unload().unwrap();
    check_image(&mut machine, DumpFile::Crash, 0..u64::MAX, 0, 512);
}

/// An area whose bounds fall inside writes: the file's extents are scattered from 1 MiB on,
/// so an area from the middle of the first extent to the middle of a later one cuts writes.
#[test]
fn writes_straddling_the_area_start_and_end() {
    let mut machine = machine(4 * MIB, 16, 16);
    let mut extents = machine.crash_file.extents.clone();
    extents.sort_by_key(|e| e.partition_offset);
    let first = extents[0];
    let last = *extents.last().unwrap();
    let start = first.partition_offset + 0x3200; // 25 sectors in: inside a 64 KiB write
    let end = last.partition_offset + last.len - 0x2e00;
    boot(
        Some(
            Parameters::encrypt_both()
                .qword("EncryptedAreaStart", start)
                .qword("EncryptedAreaEnd", end),
        ),
        WINDOWS_11,
    );
    let mut filter = loaded(CRASHDUMP, 16);
    let report = machine.dump(&mut filter, DumpFile::Crash).unwrap();
    filter.unload().unwrap();
    assert!(report.bytes_changed < report.bytes && report.bytes_changed > 0);
    let inside = check_image(&mut machine, DumpFile::Crash, start..end, 0, 512);
    assert_eq!(inside, report.bytes_changed);
    assert_eq!(inside, machine.crash_file.len - 0x3200 - 0x2e00);
}

#[test]
fn disk_absolute_tweaks_count_from_the_partition_start() {
    let partition = 0x10_0000u64;
    boot(
        Some(Parameters::encrypt_both().dword("TweakBase", 1)),
        WINDOWS_11,
    );
    let mut machine = machine(3 * MIB, 16, 17);
    let mut filter = loaded(CRASHDUMP, 16);
    machine.dump(&mut filter, DumpFile::Crash).unwrap();
    filter.unload().unwrap();
    check_image(&mut machine, DumpFile::Crash, 0..u64::MAX, partition, 512);
}

#[test]
fn data_unit_4096_on_a_4kn_disk() {
    boot(
        Some(Parameters::encrypt_both().dword("DataUnitSize", 4096)),
        WINDOWS_11,
    );
    let config = MachineConfig {
        memory: 3 * MIB,
        max_pages_per_write: 8,
        sector_size: 4096,
        seed: 18,
        ..MachineConfig::default()
    };
    let mut machine = Machine::new(config, None, None).unwrap();
    let mut filter = loaded(HIBERNATION, 8);
    machine.dump(&mut filter, DumpFile::Hibernation).unwrap();
    machine.resume(&mut filter).unwrap();
    filter.unload().unwrap();
    check_image(&mut machine, DumpFile::Hibernation, 0..u64::MAX, 0, 4096);
}

#[test]
fn a_512_byte_unit_on_a_4kn_disk_and_large_writes() {
    boot(Some(Parameters::encrypt_both()), WINDOWS_11);
    let config = MachineConfig {
        memory: 4 * MIB,
        max_pages_per_write: 64,
        sector_size: 4096,
        seed: 19,
        ..MachineConfig::default()
    };
    let mut machine = Machine::new(config, None, None).unwrap();
    let mut filter = loaded(CRASHDUMP, 64);
    machine.dump(&mut filter, DumpFile::Crash).unwrap();
    filter.unload().unwrap();
    check_image(&mut machine, DumpFile::Crash, 0..u64::MAX, 0, 512);
}

#[test]
fn both_stacks_load_side_by_side_and_reload() {
    boot(Some(Parameters::encrypt_both()), WINDOWS_11);
    let mut machine = machine(2 * MIB, 16, 20);
    let mut crash = loaded(CRASHDUMP, 16);
    let mut hibernation = loaded(HIBERNATION, 16);
    machine
        .dump(&mut hibernation, DumpFile::Hibernation)
        .unwrap();
    machine.dump(&mut crash, DumpFile::Crash).unwrap();
    // A second dump on the same instance (the stack may start again).
    machine.dump(&mut crash, DumpFile::Crash).unwrap();
    machine.resume(&mut hibernation).unwrap();
    crash.unload().unwrap();
    hibernation.unload().unwrap();
    let mut reloaded = loaded(CRASHDUMP, 16);
    machine.dump(&mut reloaded, DumpFile::Crash).unwrap();
    reloaded.unload().unwrap();
    check_image(&mut machine, DumpFile::Crash, 0..u64::MAX, 0, 512);
    assert_eq!(ntoskrnl::counters().outstanding, 0);
}
