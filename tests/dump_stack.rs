//! The driver run end to end by the simulated dump stacks: every policy, both stacks, both
//! OS generations, both tweak bases and data units, areas that cut through writes. Images
//! are checked with an independent XTS-AES-256.

mod common;

use common::*;
use crashdmp_sim::machine::{DumpFile, Extent, Machine, MachineConfig};
use crashdmp_sim::mdl::{Shape, SimMdl};
use crashdmp_sim::memory::Pages;
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
    let mut environment = environment(
        Some(Parameters::encrypt_both().dword("DataUnitSize", 4096)),
        WINDOWS_11,
    );
    environment.bytes_per_sector = 4096;
    ntoskrnl::boot(environment);
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

/// Disk-absolute tweaks with the partition at a non-zero offset that is not a multiple of the
/// data unit's larger sibling (63 sectors for 512, 1 MiB + 12 KiB for 4096), and an area
/// whose bounds fall inside writes. Each write, read back by PFN and by MappedSystemVa, is
/// checked data unit by data unit against `xts-mode`: a unit inside the area is the
/// XTS-AES-256 of the source under unit number (partition offset + disk offset) / unit, every
/// other unit is the source.
#[test]
fn disk_absolute_tweaks_with_an_area_that_cuts_through_writes() {
    for (unit, partition) in [(512u64, 63 * 512u64), (4096, 0x10_3000)] {
        // In disk coordinates, as the tweaks: one unit past the partition's 16 KiB, and one
        // unit past its 64 KiB.
        let area = partition + 0x4000 + unit..partition + 0x1_0000 + unit;
        let parameters = Parameters::encrypt_both()
            .dword("TweakBase", 1)
            .dword("DataUnitSize", unit as u32)
            .qword("EncryptedAreaStart", area.start)
            .qword("EncryptedAreaEnd", area.end);
        let mut environment = environment(Some(parameters), WINDOWS_11);
        environment.partition_offset = Ok(partition);
        // A 4096-byte unit needs a disk of 4096-byte sectors (data_unit_fits_sectors).
        environment.bytes_per_sector = unit as u32;
        ntoskrnl::boot(environment);
        let mut filter = loaded(CRASHDUMP, 16);
        assert_eq!(filter.start().unwrap(), 0);
        let source = pattern(18 * 4096, 4);
        let decoy = Pages::new(4096);
        let oracle = oracle();
        let mut cut = 0;
        // (partition offset, bytes, where the data starts in `source`, shape)
        for (offset, len, at, shape) in [
            (0x0000u64, 0x2000usize, 0usize, Shape::NonpagedPool), // before the area
            (0x3000, 0x4000, 0x1000, Shape::MappedElsewhere),      // cuts its start
            (0x8000, 0x4000, 0x600, Shape::OffsetInPage),          // inside it
            (0xE000, 0x6000, 0, Shape::NonpagedPool),              // cuts its end
            (0x1_8000, 0x2000, 0x200, Shape::OffsetInPage),        // after it
            (0x4000, 0xE000, 0x800, Shape::MappedElsewhere),       // holds both bounds
        ] {
            let plain = &source.as_slice()[at..at + len];
            let mut mdl = SimMdl::describe(plain.as_ptr(), len as u32, shape, 0, decoy.as_ptr());
            let mut disk_offset = offset as i64;
            assert_eq!(filter.write(0, &mut disk_offset, &mut mdl).unwrap(), 0);
            let written = mdl.gather_by_va().unwrap();
            assert!(
                mdl.gather_by_pfn().unwrap() == written,
                "PFNs and VA differ"
            );
            let (mut inside, mut outside) = (0, 0);
            for (k, (got, plain)) in written
                .chunks(unit as usize)
                .zip(plain.chunks(unit as usize))
                .enumerate()
            {
                let disk = partition + offset + k as u64 * unit;
                if area.start <= disk && disk + unit <= area.end {
                    let mut expected = plain.to_vec();
                    oracle.encrypt_sector(&mut expected, u128::from(disk / unit).to_le_bytes());
                    assert!(
                        got == expected,
                        "unit {unit} at disk byte {disk:#x}: ciphertext"
                    );
                    inside += 1;
                } else {
                    assert!(
                        got == plain,
                        "unit {unit} at disk byte {disk:#x}: plaintext"
                    );
                    outside += 1;
                }
            }
            cut += usize::from(inside > 0 && outside > 0);
        }
        assert_eq!(cut, 3, "three writes are cut by the area's bounds");
        filter.finish().unwrap();
        filter.unload().unwrap();
    }
}

/// The same through the simulated crash dump stack: disk-absolute tweaks, the partition at
/// 63 sectors, an area from inside the first extent of the dump file to inside its last.
#[test]
fn disk_absolute_tweaks_and_an_area_cutting_the_crash_dump_on_the_image() {
    const PARTITION: u64 = 63 * 512;
    let config = MachineConfig {
        memory: 3 * MIB,
        max_pages_per_write: 16,
        partition_offset: PARTITION,
        seed: 21,
        ..MachineConfig::default()
    };
    let mut machine = Machine::new(config, None, None).unwrap();
    let (first, last) = outer_extents(&machine.crash_file.extents);
    // In disk coordinates: 25 sectors into the first extent, 23 before the end of the last.
    let start = PARTITION + first.partition_offset + 0x3200;
    let end = PARTITION + last.partition_offset + last.len - 0x2e00;
    let parameters = Parameters::encrypt_both()
        .dword("TweakBase", 1)
        .qword("EncryptedAreaStart", start)
        .qword("EncryptedAreaEnd", end);
    let mut environment = environment(Some(parameters), WINDOWS_11);
    environment.partition_offset = Ok(PARTITION);
    ntoskrnl::boot(environment);
    let mut filter = loaded(CRASHDUMP, 16);
    let report = machine.dump(&mut filter, DumpFile::Crash).unwrap();
    filter.unload().unwrap();
    assert!(report.bytes_changed > 0 && report.bytes_changed < report.bytes);
    let inside = check_image(&mut machine, DumpFile::Crash, start..end, PARTITION, 512);
    assert_eq!(inside, report.bytes_changed);
    assert_eq!(inside, machine.crash_file.len - 0x3200 - 0x2e00);
}

/// The first and the last extent of a file on the partition, each long enough for the area
/// bounds the tests put inside them.
fn outer_extents(extents: &[Extent]) -> (Extent, Extent) {
    let mut extents = extents.to_vec();
    extents.sort_by_key(|e| e.partition_offset);
    let (first, last) = (extents[0], *extents.last().unwrap());
    assert!(first.len > 0x4000 && last.len > 0x4000, "{extents:?}");
    (first, last)
}

/// Resume with an area covering only part of the hibernation file: the machine's resume
/// hands on what was hibernated, and so do reads of 8 KiB chunks whose bounds differ from
/// the writes' (two of them cut by the area's bounds); on the image the bytes inside the area
/// are ciphertext that `xts-mode` decrypts to the reference, and those outside plaintext.
#[test]
fn resume_with_an_area_covering_part_of_the_hibernation_file() {
    let mut machine = machine(4 * MIB, 8, 22);
    let partition = machine.config().partition_offset;
    let (first, last) = outer_extents(&machine.hibernation_file.extents);
    let start = first.partition_offset + 0x3200;
    let end = last.partition_offset + last.len - 0x2e00;
    boot(
        Some(
            Parameters::encrypt_both()
                .qword("EncryptedAreaStart", start)
                .qword("EncryptedAreaEnd", end),
        ),
        WINDOWS_11,
    );
    let mut filter = loaded(HIBERNATION, 8);
    let report = machine.dump(&mut filter, DumpFile::Hibernation).unwrap();
    assert!(report.bytes_changed > 0 && report.bytes_changed < report.bytes);
    let resume = machine.resume(&mut filter).unwrap();
    assert!(resume.filtered);
    assert_eq!(resume.bytes, machine.hibernation_file.len);

    const CHUNK: usize = 0x2000;
    let mut buffer = Pages::new(CHUNK);
    let mut expected = vec![0u8; CHUNK];
    let mut cut = 0;
    for extent in machine.hibernation_file.extents.clone() {
        for done in (0..extent.len).step_by(CHUNK) {
            let len = CHUNK.min((extent.len - done) as usize);
            let at = extent.partition_offset + done;
            let data = &mut buffer.as_mut_slice()[..len];
            machine.read_disk(partition + at, data).unwrap();
            let mut mdl = SimMdl::describe(
                data.as_ptr(),
                len as u32,
                Shape::NonpagedPool,
                0,
                std::ptr::null(),
            );
            let mut offset = at as i64;
            assert_eq!(filter.read(0, &mut offset, &mut mdl).unwrap().unwrap(), 0);
            let expected = &mut expected[..len];
            machine.file_content(DumpFile::Hibernation, extent.file_offset + done, expected);
            assert!(
                buffer.as_slice()[..len] == *expected,
                "read at partition offset {at:#x}"
            );
            let range = at..at + len as u64;
            cut += usize::from(range.contains(&start) && start != at)
                + usize::from(range.contains(&end) && end != at);
        }
    }
    assert_eq!(cut, 2, "the area's bounds fall inside reads");
    filter.unload().unwrap();
    let inside = check_image(&mut machine, DumpFile::Hibernation, start..end, 0, 512);
    assert_eq!(inside, report.bytes_changed);
    assert_eq!(inside, machine.hibernation_file.len - 0x3200 - 0x2e00);
}
