//! Every bad input the dump stack could hand the filter gets its documented outcome: an error
//! status at DriverEntry, or bug check 0x44435259 with the parameters of README's table.

mod common;

use aes::cipher::KeyInit;
use common::*;
use crashdmp_sim::layout::{extension, init, mdl as mdl_layout};
use crashdmp_sim::mdl::{Shape, SimMdl};
use crashdmp_sim::memory::Pages;
use crashdmp_sim::ntoskrnl::{self, Service, Stop};
use crashdmp_sim::stack::{
    Load, LoadedFilter, SimError, CRASHDUMP, HIBERNATION, UNKNOWN_SYSTEM_FLAG,
};

const DCRY: u32 = 0x4443_5259;
const WRITE: u64 = 2;
const READ: u64 = 3;

const STATUS_INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;
const STATUS_NOT_SUPPORTED: i32 = 0xC000_00BB_u32 as i32;
const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32 as i32;

fn expect_bug_check(result: Result<i32, SimError>, parameters: [u64; 4]) {
    match result {
        Err(SimError::BugCheck { bug_check, .. }) => {
            assert_eq!(bug_check.code, DCRY, "{bug_check}");
            assert_eq!(bug_check.parameters, parameters, "{bug_check}");
        }
        other => panic!("expected bug check {parameters:x?}, got {other:?}"),
    }
}

/// DriverEntry succeeds with a refusing instance: Dump_Start fails, a write bug checks
/// WriteRefused before any data reaches the disk, and unloading frees everything. The
/// outcome on every Windows version, where a failed DriverEntry would rely on
/// DUMP_FILTER_CRITICAL (documented from Windows 8 only).
fn expect_refusing_instance(dump_type: u32, max_pages: u32) {
    let mut filter = match load(dump_type, max_pages).expect("DriverEntry returns") {
        Load::Loaded(filter) => filter,
        Load::Failed { status, .. } => panic!("DriverEntry failed with {status:#x}"),
    };
    assert_eq!(filter.start().unwrap(), STATUS_ACCESS_DENIED, "Dump_Start");
    let source = Pages::new(4096);
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    expect_bug_check(
        write(&mut filter, 0x2000, &mut mdl),
        [0x06, 0x2000, 0, WRITE],
    );
    filter.unload().unwrap();
    assert_eq!(
        ntoskrnl::counters().outstanding,
        0,
        "the refusing instance freed everything"
    );
}

/// An encrypting crash instance, started, and a source buffer of pattern bytes.
fn started() -> (LoadedFilter, Pages) {
    (
        started_with(Parameters::encrypt_both(), CRASHDUMP, 16),
        pattern(20 * 4096, 0),
    )
}

/// An instance of `dump_type` with these Parameters on Windows 11, started.
fn started_with(parameters: Parameters, dump_type: u32, max_pages: u32) -> LoadedFilter {
    boot(Some(parameters), WINDOWS_11);
    let mut filter = loaded(dump_type, max_pages);
    assert_eq!(filter.start().unwrap(), 0);
    filter
}

/// Dump_Read of `mdl` at `offset`.
fn read(filter: &mut LoadedFilter, offset: i64, mdl: &mut SimMdl) -> Result<i32, SimError> {
    let mut offset = offset;
    filter
        .read(0, &mut offset, mdl)
        .expect("the filter has Dump_Read")
}

fn mdl_for(source: &Pages, offset_in: usize, len: u32, shape: Shape) -> SimMdl {
    SimMdl::describe(
        source.as_slice()[offset_in..].as_ptr(),
        len,
        shape,
        0,
        source.as_ptr(),
    )
}

fn write(filter: &mut LoadedFilter, offset: i64, mdl: &mut SimMdl) -> Result<i32, SimError> {
    let mut offset = offset;
    filter.write(0, &mut offset, mdl)
}

#[test]
fn oversize_write() {
    let (mut filter, source) = started();
    let mut mdl = mdl_for(&source, 0, 17 * 4096, Shape::NonpagedPool);
    expect_bug_check(
        write(&mut filter, 0, &mut mdl),
        [0x01, 17 * 4096, 16 * 4096, WRITE],
    );
    filter.unload().unwrap();
}

#[test]
fn misaligned_offset_and_length() {
    let (mut filter, source) = started();
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    expect_bug_check(
        write(&mut filter, 0x1100, &mut mdl),
        [0x02, 0x1100, 512, WRITE],
    );
    let mut mdl = mdl_for(&source, 0, 0x300, Shape::NonpagedPool);
    expect_bug_check(
        write(&mut filter, 0x1000, &mut mdl),
        [0x03, 0x300, 512, WRITE],
    );
    filter.unload().unwrap();
}

#[test]
fn unmapped_mdl() {
    let (mut filter, source) = started();
    let mut mdl = mdl_for(&source, 0, 8192, Shape::Unmapped);
    expect_bug_check(write(&mut filter, 0, &mut mdl), [0x04, 0x2, 0, WRITE]);
    filter.unload().unwrap();
}

#[test]
fn pfn_array_too_small() {
    let (mut filter, source) = started();
    let mut mdl = mdl_for(&source, 0, 3 * 4096, Shape::NonpagedPool);
    let mut header = mdl.header();
    header.size = (0x30 + 2 * 8) as i16; // two slots for three pages
    mdl.set_header(header);
    expect_bug_check(write(&mut filter, 0, &mut mdl), [0x05, 3, 2, WRITE]);
    filter.unload().unwrap();
}

#[test]
fn negative_offset_and_null_arguments() {
    let (mut filter, source) = started();
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    expect_bug_check(
        write(&mut filter, -4096, &mut mdl),
        [0x0A, (-4096i64) as u64, 4096, WRITE],
    );
    let mut offset = 0i64;
    // SAFETY: null pointers are what is tested; the non-null one is live.
    let result = unsafe { filter.write_raw(&raw mut offset, std::ptr::null_mut()) };
    expect_bug_check(result, [0x08, 3, 0, WRITE]);
    // SAFETY: as above.
    let result = unsafe { filter.write_raw(std::ptr::null_mut(), mdl.as_ptr()) };
    expect_bug_check(result, [0x08, 2, 0, WRITE]);
    filter.unload().unwrap();
}

#[test]
fn a_retargeted_mdl_sent_again_is_refused() {
    let (mut filter, source) = started();
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    assert_eq!(write(&mut filter, 0, &mut mdl).unwrap(), 0);
    let secondary = mdl.header().mapped_system_va;
    expect_bug_check(write(&mut filter, 0, &mut mdl), [0x0B, secondary, 0, WRITE]);
    filter.unload().unwrap();
}

#[test]
fn callbacks_after_dump_unload() {
    boot(Some(Parameters::encrypt_both()), WINDOWS_11);
    let mut filter = loaded(CRASHDUMP, 16);
    filter.unload().unwrap();
    // Any callback after Dump_Unload: the context is no longer live.
    let context = filter.view.dump_data;
    expect_bug_check(filter.start(), [0x09, context, 0, 1]);
    expect_bug_check(filter.unload(), [0x09, context, 0, 5]);
}

#[test]
fn a_refused_stack_that_writes_anyway() {
    boot(
        Some(Parameters::default().dword("CrashDumpPolicy", 2)),
        WINDOWS_11,
    );
    let mut filter = loaded(CRASHDUMP, 16);
    assert_ne!(filter.start().unwrap(), 0);
    let source = Pages::new(4096);
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    expect_bug_check(
        write(&mut filter, 0x8000, &mut mdl),
        [0x06, 0x8000, 0, WRITE],
    );
    filter.unload().unwrap();
}

#[test]
fn an_extension_of_the_wrong_dump_type() {
    let (mut filter, _source) = started();
    filter.set_extension_field_u64(extension::DUMP_TYPE, u64::from(HIBERNATION));
    expect_bug_check(filter.finish(), [0x0C, 1, 2, 4]);
    filter.set_extension_field_u64(extension::DUMP_TYPE, u64::from(CRASHDUMP));
    filter.unload().unwrap();
}

#[test]
fn max_pages_per_write_zero_and_undefined_dump_types() {
    boot(Some(Parameters::encrypt_both()), WINDOWS_11);
    for result in [load(CRASHDUMP, 0), load(0, 16), load(7, 16)] {
        match result.unwrap() {
            Load::Failed { status, .. } => assert_eq!(status, STATUS_INVALID_PARAMETER),
            Load::Loaded(_) => panic!("loaded"),
        }
    }
}

/// A MaxPagesPerWrite whose buffer would not fit an MDL's 32-bit ByteCount (4 GiB and more)
/// is refused before any contiguous memory is asked for: no buffer, so the encrypt policy
/// loads a refusing instance.
#[test]
fn a_secondary_buffer_larger_than_an_mdl_can_describe_is_refused() {
    boot(Some(Parameters::encrypt_both()), WINDOWS_11);
    let contiguous_requests = || {
        ntoskrnl::counters()
            .calls
            .iter()
            .filter(|(service, _)| *service == Service::MmAllocateContiguousNodeMemory)
            .count()
    };
    for pages in [0x10_0000, u32::MAX] {
        expect_refusing_instance(CRASHDUMP, pages);
        assert_eq!(contiguous_requests(), 0, "{pages} pages were asked for");
    }
}

/// A present but invalid configuration loads a refusing instance on every Windows version
/// and both stacks: no dump, never a plaintext one.
#[test]
fn invalid_configurations_load_a_refusing_instance() {
    for parameters in [
        Parameters::default().dword("CrashDumpPolicy", 9),
        Parameters::default().dword("CrashDumpPolicy", 1),
        Parameters::default()
            .dword("CrashDumpPolicy", 1)
            .binary("Key", &key()[..63]),
        Parameters::encrypt_both().binary("Key", &[0x11; 64]),
        Parameters::encrypt_both().dword("DataUnitSize", 2048),
        Parameters::encrypt_both()
            .qword("EncryptedAreaStart", 4096)
            .qword("EncryptedAreaEnd", 4096),
        Parameters::encrypt_both().dword("TweakBase", 5),
        // A key in memory beside a plaintext hibernation file, not allowed.
        Parameters::default()
            .dword("CrashDumpPolicy", 1)
            .binary("Key", &key()),
        // A sealed key without its recipient.
        Parameters::default()
            .dword("CrashDumpPolicy", 1)
            .dword("HibernationPolicy", 2)
            .dword("KeySource", 2),
    ] {
        for os_version in [WINDOWS_7, WINDOWS_11] {
            for dump_type in [CRASHDUMP, HIBERNATION] {
                boot(Some(parameters.clone()), os_version);
                expect_refusing_instance(dump_type, 16);
            }
        }
    }
}

/// A Parameters key that exists but cannot be read loads a refusing instance too.
#[test]
fn an_unreadable_configuration_loads_a_refusing_instance() {
    for os_version in [WINDOWS_7, WINDOWS_11] {
        let mut environment = environment(Some(Parameters::encrypt_both()), os_version);
        environment.fail_service = Some((Service::ZwOpenKey, STATUS_ACCESS_DENIED));
        ntoskrnl::boot(environment);
        expect_refusing_instance(CRASHDUMP, 16);
    }
}

/// The data unit against the dump device's sectors (FILTER_EXTENSION's
/// Geometry.BytesPerSector): 4096-byte units are refused at load on a disk of 512-byte
/// sectors (or an unknown size) and accepted on a 4Kn disk; 512-byte units everywhere.
#[test]
fn a_data_unit_the_sectors_do_not_fit_is_refused_at_load() {
    for (unit, sector, accepted) in [
        (4096u32, 512u32, false),
        (4096, 0, false),
        (4096, 4096, true),
        (512, 512, true),
        (512, 4096, true),
        (512, 0, true),
    ] {
        let parameters = Parameters::encrypt_both().dword("DataUnitSize", unit);
        let mut environment = environment(Some(parameters), WINDOWS_11);
        environment.bytes_per_sector = sector;
        ntoskrnl::boot(environment);
        if accepted {
            let mut filter = loaded(CRASHDUMP, 16);
            assert_eq!(filter.start().unwrap(), 0, "{unit} on {sector}");
            let source = pattern(4096, 2);
            let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
            assert_eq!(write(&mut filter, 0x2000, &mut mdl).unwrap(), 0);
            filter.unload().unwrap();
        } else {
            expect_refusing_instance(CRASHDUMP, 16);
        }
    }
}

#[test]
fn a_plain_service_start_is_refused_untouched() {
    boot(None, WINDOWS_11);
    let mut driver_object = [0u64; 0x150 / 8];
    driver_object[0] = 4; // IO_TYPE_DRIVER
    let mut registry_path = [0xABu8; 16];
    // SAFETY: a DRIVER_OBJECT-shaped buffer and a UNICODE_STRING-sized one, both live.
    let status = ntoskrnl::run(|| unsafe {
        dumpcrypt::DriverEntry(
            driver_object.as_mut_ptr().cast(),
            registry_path.as_mut_ptr().cast(),
        )
    })
    .unwrap();
    assert_eq!(status, STATUS_NOT_SUPPORTED);
    assert_eq!(
        registry_path, [0xAB; 16],
        "the registry path was not touched"
    );
    assert_eq!(ntoskrnl::counters().allocations, 0);
}

#[test]
fn passive_services_at_high_level_are_caught() {
    boot(None, WINDOWS_11);
    let _irql = ntoskrnl::raise_to_high_level();
    // SAFETY: deliberately wrong: the test claims PASSIVE_LEVEL at HIGH_LEVEL, to show that
    // the simulated kernel catches the service call that follows (the host boundary touches
    // no memory on that claim).
    let allocate = || unsafe {
        dumpcrypt::kernel::Passive::scope(|passive| {
            dumpcrypt::kernel::allocate_context(passive, 64)
        })
    };
    match ntoskrnl::run(allocate) {
        Err(Stop::BugCheck(bug_check)) => {
            assert_eq!(bug_check.code, ntoskrnl::DRIVER_VERIFIER_DETECTED_VIOLATION);
            assert_eq!(
                bug_check.parameters[1],
                Service::ExAllocatePoolWithTag as u64
            );
        }
        other => panic!("allocation at HIGH_LEVEL was allowed: {other:?}"),
    }
}

/// Each MDL shape, one write each: the secondary buffer holds the XTS-AES-256 encryption of
/// the data at MappedSystemVa (never of StartVa's page), and the source is untouched.
#[test]
fn each_mdl_shape_is_encrypted_from_mapped_system_va() {
    let (mut filter, source) = started();
    let oracle = xts_mode::Xts128::<aes::Aes256>::new(
        aes::Aes256::new_from_slice(&key()[..32]).unwrap(),
        aes::Aes256::new_from_slice(&key()[32..]).unwrap(),
    );
    let before = source.as_slice().to_vec();
    for (shape, offset_in, len, extra) in [
        (Shape::NonpagedPool, 0, 16 * 4096, 0),
        (Shape::MappedElsewhere, 4096, 5 * 4096, 0),
        (Shape::OffsetInPage, 0x600, 3 * 4096 + 512, 0),
        (Shape::NonpagedPool, 0x200, 7 * 512, 4),
    ] {
        let mut mdl = SimMdl::describe(
            source.as_slice()[offset_in..].as_ptr(),
            len,
            shape,
            extra,
            source.as_ptr(),
        );
        let header = mdl.header();
        let disk_offset = 0x40_0000i64;
        assert_eq!(write(&mut filter, disk_offset, &mut mdl).unwrap(), 0);
        let after = mdl.header();
        assert_eq!(
            (after.byte_count, after.flags, after.size),
            (header.byte_count, header.flags, header.size)
        );
        assert_eq!(after.byte_offset, 0);
        assert_eq!(after.start_va, after.mapped_system_va);
        assert_eq!(after.start_va % 4096, 0);
        let mut expected = source.as_slice()[offset_in..offset_in + len as usize].to_vec();
        oracle.encrypt_area(
            &mut expected,
            512,
            (disk_offset as u128) / 512,
            |n: u128| n.to_le_bytes(),
        );
        assert_eq!(mdl.gather_by_va().unwrap(), expected, "{shape:?}");
        assert_eq!(mdl.gather_by_pfn().unwrap(), expected, "{shape:?}");
    }
    assert_eq!(
        source.as_slice(),
        before.as_slice(),
        "the source was never written"
    );
    filter.finish().unwrap();
    filter.unload().unwrap();
}

/// A write whose length is not a whole number of data units is refused even where no byte
/// of it is encrypted: wholly before or after the area, for both data units.
#[test]
fn a_partial_data_unit_outside_the_area_is_length_misaligned() {
    for (unit, offset, len) in [
        (512u32, 0x1000i64, 0x300u32),
        (512, 0x30_0000, 0x2100),
        (4096, 0x8000, 0x1200),
        (4096, 0x30_0000, 0x3e00),
    ] {
        // The area is [1 MiB, 2 MiB) of the partition.
        let parameters = Parameters::encrypt_both()
            .dword("DataUnitSize", unit)
            .qword("EncryptedAreaStart", 0x10_0000)
            .qword("EncryptedAreaEnd", 0x20_0000);
        // A disk whose sectors are whole data units (the 4096-byte unit needs 4Kn).
        let mut environment = environment(Some(parameters), WINDOWS_11);
        environment.bytes_per_sector = unit;
        ntoskrnl::boot(environment);
        let mut filter = loaded(CRASHDUMP, 16);
        assert_eq!(filter.start().unwrap(), 0);
        let source = pattern(5 * 4096, 1);
        let mut mdl = mdl_for(&source, 0, len, Shape::NonpagedPool);
        expect_bug_check(
            write(&mut filter, offset, &mut mdl),
            [0x03, u64::from(len), u64::from(unit), WRITE],
        );
        filter.unload().unwrap();
    }
}

/// MappedSystemVa is trusted only when MDL_MAPPED_TO_SYSTEM_VA or
/// MDL_SOURCE_IS_NONPAGED_POOL says it maps the data: without either flag, a non-null
/// MappedSystemVa pointing at readable data is NotMapped, and the MDL is left as it was.
#[test]
fn an_unflagged_mdl_with_a_readable_mapped_system_va_is_not_mapped() {
    let (mut filter, source) = started();
    let others = !(mdl_layout::MAPPED_TO_SYSTEM_VA | mdl_layout::SOURCE_IS_NONPAGED_POOL);
    for flags in [
        0,
        mdl_layout::PAGES_LOCKED,
        mdl_layout::PAGES_LOCKED | mdl_layout::PARTIAL,
        others,
    ] {
        let mut mdl = mdl_for(&source, 0x1000, 2 * 4096, Shape::Unmapped);
        let mut header = mdl.header();
        header.flags = flags;
        header.mapped_system_va = source.as_slice()[0x1000..].as_ptr() as u64;
        mdl.set_header(header);
        let pfns: Vec<u64> = (0..mdl.slots()).map(|slot| mdl.pfn(slot)).collect();
        expect_bug_check(
            write(&mut filter, 0x4000, &mut mdl),
            [0x04, u64::from(flags), header.mapped_system_va, WRITE],
        );
        assert_eq!(
            mdl.header(),
            header,
            "flags {flags:#x}: the MDL was changed"
        );
        assert!(
            (0..mdl.slots()).all(|slot| mdl.pfn(slot) == pfns[slot]),
            "flags {flags:#x}: the PFNs were changed"
        );
    }
    filter.unload().unwrap();
}

/// A mapped MDL (MDL_MAPPED_TO_SYSTEM_VA, not nonpaged pool) whose MappedSystemVa is null has
/// no mapping to read: NotMapped, even though StartVa + ByteOffset points at readable data.
/// Only nonpaged pool may be read at StartVa + ByteOffset.
#[test]
fn a_mapped_mdl_without_mapped_system_va_is_not_mapped() {
    let (mut filter, source) = started();
    let mut mdl = mdl_for(&source, 0x1000, 4096, Shape::OffsetInPage);
    let mut header = mdl.header();
    assert_eq!(
        header.flags & mdl_layout::SOURCE_IS_NONPAGED_POOL,
        0,
        "a mapped MDL, not nonpaged pool"
    );
    header.mapped_system_va = 0;
    mdl.set_header(header);
    expect_bug_check(
        write(&mut filter, 0x4000, &mut mdl),
        [0x04, u64::from(header.flags), 0, WRITE],
    );
    assert_eq!(mdl.header(), header, "the MDL was changed");
    filter.unload().unwrap();
}

/// The crash dump copy's Dump_Finish wipes its keys: Dump_Start is refused afterwards; a
/// write (the crash dump driver finalizes its DumpStack.log after Dump_Finish) goes out with
/// zeros inside the area and its bytes outside it as they are, never plaintext inside and
/// never a bug check; a read is handed on as it was read.
#[test]
fn after_the_crash_dumps_finish_its_keys_are_gone() {
    // The area ends half-way into the write after the finish.
    let parameters = Parameters::encrypt_both().qword("EncryptedAreaEnd", 0x1800);
    let mut filter = started_with(parameters, CRASHDUMP, 16);
    let source = pattern(2 * 4096, 0);
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    assert_eq!(write(&mut filter, 0, &mut mdl).unwrap(), 0);
    assert_eq!(filter.finish().unwrap(), 0);
    assert_eq!(
        filter.start().unwrap(),
        STATUS_ACCESS_DENIED,
        "a second dump"
    );
    let mut mdl = mdl_for(&source, 0, 2 * 4096, Shape::NonpagedPool);
    assert_eq!(write(&mut filter, 0x1000, &mut mdl).unwrap(), 0);
    let mut written = vec![0xAAu8; 2 * 4096];
    mdl.gather_by_va_into(&mut written).unwrap();
    assert!(
        written[..0x800].iter().all(|&byte| byte == 0),
        "zeros inside the area"
    );
    assert!(
        written[0x800..] == source.as_slice()[0x800..],
        "the bytes outside the area as they are"
    );
    // A misaligned write still faults.
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    expect_bug_check(
        write(&mut filter, 0x1100, &mut mdl),
        [0x02, 0x1100, 512, WRITE],
    );
    let buffer = pattern(4096, 3);
    let mut mdl = mdl_for(&buffer, 0, 4096, Shape::NonpagedPool);
    assert_eq!(read(&mut filter, 0x1000, &mut mdl).unwrap(), 0);
    assert!(
        buffer.as_slice() == pattern(4096, 3).as_slice(),
        "a read is handed on untouched"
    );
    filter.unload().unwrap();
}

/// The hibernation copy keeps its keys after Dump_Finish: a write after it is encrypted like
/// any other, and a second hibernation may start.
#[test]
fn after_a_hibernations_finish_its_keys_stay() {
    let mut filter = started_with(Parameters::encrypt_both(), HIBERNATION, 16);
    let source = pattern(4096, 0);
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    assert_eq!(write(&mut filter, 0, &mut mdl).unwrap(), 0);
    assert_eq!(filter.finish().unwrap(), 0);
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    assert_eq!(write(&mut filter, 0x1000, &mut mdl).unwrap(), 0);
    assert_eq!(filter.start().unwrap(), 0, "a second hibernation");
    filter.unload().unwrap();
}

/// An encrypting hibernation instance (MaxPagesPerWrite 8) that has written its image, as a
/// resume finds it, and a buffer of "ciphertext" to read into.
fn resuming() -> (LoadedFilter, Pages) {
    let mut filter = started_with(Parameters::encrypt_both(), HIBERNATION, 8);
    assert_eq!(filter.finish().unwrap(), 0);
    (filter, pattern(12 * 4096, 2))
}

/// Every bad Dump_Read on an encrypting instance bug checks with its rule and P4 = 3, and
/// decrypts nothing in place; a good read after them is decrypted.
#[test]
fn every_bad_dump_read_bug_checks() {
    let (mut filter, buffer) = resuming();
    let before = buffer.as_slice().to_vec();
    let mut mdl = mdl_for(&buffer, 0, 9 * 4096, Shape::NonpagedPool);
    expect_bug_check(
        read(&mut filter, 0, &mut mdl),
        [0x01, 9 * 4096, 8 * 4096, READ],
    );
    let mut mdl = mdl_for(&buffer, 0, 4096, Shape::MappedElsewhere);
    expect_bug_check(
        read(&mut filter, 0x1100, &mut mdl),
        [0x02, 0x1100, 512, READ],
    );
    let mut mdl = mdl_for(&buffer, 0x200, 0x300, Shape::OffsetInPage);
    expect_bug_check(
        read(&mut filter, 0x1000, &mut mdl),
        [0x03, 0x300, 512, READ],
    );
    // Unmapped, although MappedSystemVa points at the data.
    let mut mdl = mdl_for(&buffer, 0, 2 * 4096, Shape::Unmapped);
    let mut header = mdl.header();
    header.mapped_system_va = buffer.as_ptr() as u64;
    mdl.set_header(header);
    expect_bug_check(
        read(&mut filter, 0, &mut mdl),
        [
            0x04,
            u64::from(mdl_layout::PAGES_LOCKED),
            buffer.as_ptr() as u64,
            READ,
        ],
    );
    assert!(
        buffer.as_slice() == before.as_slice(),
        "a refused read decrypted in place"
    );
    let mut mdl = mdl_for(&buffer, 0x2000, 2 * 4096, Shape::NonpagedPool);
    assert_eq!(read(&mut filter, 0x4000, &mut mdl).unwrap(), 0);
    let mut expected = before[0x2000..0x4000].to_vec();
    oracle().decrypt_area(&mut expected, 512, 0x4000 / 512, |n: u128| n.to_le_bytes());
    assert!(
        buffer.as_slice()[0x2000..0x4000] == expected[..],
        "a good read is decrypted"
    );
    filter.unload().unwrap();
}

/// Transfers before Dump_Start (the crash dump driver's DumpStack.log at boot) are handled
/// like any other: a write is encrypted, a read decrypted in place, never a bug check for
/// order alone; invalid requests still fault.
#[test]
fn transfers_before_dump_start_are_handled_like_any_other() {
    boot(Some(Parameters::encrypt_both()), WINDOWS_11);
    let mut filter = loaded(CRASHDUMP, 8);
    let source = pattern(2 * 4096, 3);
    let mut mdl = mdl_for(&source, 0, 2 * 4096, Shape::NonpagedPool);
    assert_eq!(write(&mut filter, 0x4000, &mut mdl).unwrap(), 0);
    let mut written = vec![0u8; 2 * 4096];
    mdl.gather_by_va_into(&mut written).unwrap();
    let mut expected = source.as_slice().to_vec();
    oracle().encrypt_area(&mut expected, 512, 0x4000 / 512, |n: u128| n.to_le_bytes());
    assert!(written == expected, "the XTS-AES-256 of the source");
    // Read back before any Dump_Start: decrypted in place.
    let back = Pages::new(2 * 4096);
    let mut back = back;
    back.as_mut_slice().copy_from_slice(&written);
    let mut mdl = mdl_for(&back, 0, 2 * 4096, Shape::NonpagedPool);
    assert_eq!(read(&mut filter, 0x4000, &mut mdl).unwrap(), 0);
    assert!(back.as_slice() == source.as_slice(), "decrypted in place");
    // A misaligned write still faults.
    let mut mdl = mdl_for(&source, 0, 4096, Shape::NonpagedPool);
    expect_bug_check(
        write(&mut filter, 0x4100, &mut mdl),
        [0x02, 0x4100, 512, WRITE],
    );
    filter.unload().unwrap();
}

/// NEW BEHAVIOUR (fails until DriverEntry ORs DUMP_FILTER_CRITICAL into Flags instead of
/// assigning it): a Flags bit the system set before DriverEntry is still set after it, on
/// both OS generations, both stacks, and when DriverEntry fails. The simulator reports a
/// cleared bit as a broken rule.
#[test]
fn driver_entry_keeps_the_flags_the_system_set() {
    for os_version in [WINDOWS_11, WINDOWS_7] {
        for (parameters, succeeds) in [
            (Parameters::encrypt_both(), true),
            (Parameters::default().dword("CrashDumpPolicy", 9), true),
        ] {
            let mut environment = environment(Some(parameters), os_version);
            environment.system_filter_flags = UNKNOWN_SYSTEM_FLAG;
            for dump_type in [CRASHDUMP, HIBERNATION] {
                ntoskrnl::boot(environment.clone());
                let (flags, status) = match load(dump_type, 16) {
                    Ok(Load::Loaded(mut filter)) => {
                        filter.unload().unwrap();
                        (filter.view.flags, 0)
                    }
                    Ok(Load::Failed { status, init }) => (init.flags, status),
                    Err(error) => panic!("{os_version:?}, dump type {dump_type}: {error}"),
                };
                assert_eq!(status == 0, succeeds, "status {status:#x}");
                assert_eq!(
                    flags & (UNKNOWN_SYSTEM_FLAG | init::DUMP_FILTER_CRITICAL),
                    UNKNOWN_SYSTEM_FLAG | init::DUMP_FILTER_CRITICAL,
                    "Flags {flags:#x}"
                );
            }
        }
    }
}

/// NEW BEHAVIOUR (fails until the driver reads such MDLs at StartVa + ByteOffset; today it
/// bug checks NotMapped): an MDL with MDL_SOURCE_IS_NONPAGED_POOL and a null MappedSystemVa
/// describes nonpaged pool, which is mapped in system space at StartVa + ByteOffset. Its
/// data is encrypted from there, and the secondary buffer holds the XTS-AES-256 of it.
#[test]
fn a_nonpaged_pool_mdl_without_mapped_system_va_is_read_at_start_va() {
    let (mut filter, source) = started();
    let before = source.as_slice().to_vec();
    for (offset_in, len, disk_offset) in [
        (0, 3 * 4096, 0x20_0000i64),
        (0x600, 2 * 4096 + 512, 0x30_0000),
        (0x1e00, 1024, 0x40_0400),
    ] {
        let mut mdl = mdl_for(&source, offset_in, len, Shape::NonpagedPoolNullVa);
        let header = mdl.header();
        assert_eq!(header.mapped_system_va, 0);
        assert_eq!(header.flags, mdl_layout::SOURCE_IS_NONPAGED_POOL);
        assert_eq!(
            header.start_va + u64::from(header.byte_offset),
            source.as_slice()[offset_in..].as_ptr() as u64
        );
        assert_eq!(write(&mut filter, disk_offset, &mut mdl).unwrap(), 0);
        let after = mdl.header();
        assert_eq!(
            (after.byte_count, after.flags, after.size),
            (header.byte_count, header.flags, header.size)
        );
        let mut expected = before[offset_in..offset_in + len as usize].to_vec();
        oracle().encrypt_area(&mut expected, 512, disk_offset as u128 / 512, |n: u128| {
            n.to_le_bytes()
        });
        assert!(
            mdl.gather_by_va().unwrap() == expected,
            "at {disk_offset:#x}"
        );
        assert!(
            mdl.gather_by_pfn().unwrap() == expected,
            "at {disk_offset:#x}"
        );
    }
    assert!(
        source.as_slice() == before.as_slice(),
        "the source was written"
    );
    filter.finish().unwrap();
    filter.unload().unwrap();
}
