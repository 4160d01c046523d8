//! KeySource = provider: the driver asks a volume-encryption driver (the sample provider,
//! through the simulated kernel's callback objects) for its keys and geometry, and every
//! range of the dump is encrypted under its own key; every way the handshake can fail gives
//! no dump, never a plaintext one.

mod common;

use common::*;
use crashdmp_sim::machine::{DumpFile, Machine, MachineConfig};
use crashdmp_sim::ntoskrnl::{self, Environment, SIMULATED_DISK_GUID};
use crashdmp_sim::stack::{CRASHDUMP, HIBERNATION};
use dumpcrypt_core::geometry::{Area, Geometry, TweakBase};
use dumpcrypt_provider::{Range, ALLOW_CRASH_DUMP, MAJOR_VERSION};
use dumpcrypt_sample_provider::{key, SampleProvider, Volume};
use dumpcrypt_xts::DataUnit;

const MIB: usize = 1 << 20;
const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32 as i32;
const PARTITION: u64 = 0x10_0000;

/// Parameters for the provider key source, with both stacks encrypting.
fn provider_parameters() -> Parameters {
    Parameters::default()
        .dword("CrashDumpPolicy", 1)
        .dword("HibernationPolicy", 1)
        .dword("KeySource", 1)
}

/// Boots with the provider key source; the provider's keys are the secrets the simulator
/// looks for in freed memory. The dump device has 512-byte sectors.
fn boot_provider(parameters: Parameters, volume: &Volume) {
    boot_provider_on(parameters, volume, 512);
}

/// [`boot_provider`] with the dump device's FILTER_EXTENSION.Geometry.BytesPerSector.
fn boot_provider_on(parameters: Parameters, volume: &Volume, bytes_per_sector: u32) {
    let mut environment = Environment {
        bytes_per_sector,
        ..Environment::default()
    };
    environment
        .registry
        .insert(dumpcrypt::kernel::PARAMETERS_PATH.into(), parameters.0);
    environment.secrets = volume
        .ranges()
        .iter()
        .flat_map(|range| [range.key[..32].to_vec(), range.key[32..].to_vec()])
        .collect();
    ntoskrnl::boot(environment);
}

/// The volume over the whole partition of `machine`, with its two ranges.
fn volume_of(machine: &Machine) -> Volume {
    Volume::two_keys(PARTITION, machine.disk_size() - PARTITION)
}

fn keyed(volume: &Volume) -> Vec<(Area, [u8; 64])> {
    volume
        .ranges()
        .iter()
        .map(|range| {
            (
                Area {
                    start: range.start,
                    end: range.end,
                },
                range.key,
            )
        })
        .collect()
}

fn geometry(tweak_base: TweakBase) -> Geometry {
    Geometry::new(DataUnit::Bytes512, Area::WHOLE_DISK, tweak_base, PARTITION)
}

/// A crash dump and a hibernation image through the provider's keys: each range of each file
/// decrypts with its own key, the rest is plaintext, the provider was asked once per load,
/// and no key is left in freed memory.
#[test]
fn each_range_is_encrypted_under_its_own_key() {
    let mut machine = machine(8 * MIB, 16, 31);
    let volume = volume_of(&machine);
    boot_provider(provider_parameters(), &volume);
    let provider = SampleProvider::register(volume.clone()).unwrap();
    for (dump_type, which) in [
        (CRASHDUMP, DumpFile::Crash),
        (HIBERNATION, DumpFile::Hibernation),
    ] {
        let mut filter = loaded(dump_type, 16);
        let report = machine.dump(&mut filter, which).unwrap();
        assert!(report.written);
        if which == DumpFile::Hibernation {
            let resume = machine.resume(&mut filter).unwrap();
            assert_eq!(resume.bytes, machine.file(which).len);
        }
        filter.unload().unwrap();
        let inside = check_keyed_image(
            &mut machine,
            which,
            &geometry(TweakBase::Partition),
            &keyed(&volume),
        );
        assert!(
            inside > 0 && inside < machine.file(which).len,
            "{which:?}: some of both"
        );
        assert_eq!(inside, report.bytes_changed, "{which:?}");
    }
    assert_eq!(provider.queries(), (2, 2));
    drop(provider);
    let counters = ntoskrnl::counters();
    assert_eq!(counters.outstanding, 0);
    assert_eq!(
        counters.object_references, 0,
        "every callback object reference given back"
    );
    assert!(counters.violations.is_empty(), "{:?}", counters.violations);
}

/// The sample provider's volume with 4096-byte data units and disk-absolute tweaks.
fn volume_of_4096_units(machine: &Machine) -> Volume {
    let mut volume = volume_of(machine);
    volume.answer.tweak_base = 1;
    volume.answer.data_unit = 4096;
    // In disk-absolute tweak positions: from the partition start on.
    for range in &mut volume.answer.ranges[..2] {
        range.start += PARTITION;
        range.end += PARTITION;
    }
    volume
}

/// Disk-absolute tweaks and 4096-byte data units, as the provider says, on a 4Kn disk (its
/// FILTER_EXTENSION.Geometry.BytesPerSector 4096, so that every transfer is whole units).
#[test]
fn the_providers_geometry_replaces_the_parameters() {
    let config = MachineConfig {
        memory: 4 * MIB,
        max_pages_per_write: 16,
        sector_size: 4096,
        seed: 32,
        ..MachineConfig::default()
    };
    let mut machine = Machine::new(config, None, None).unwrap();
    let volume = volume_of_4096_units(&machine);
    // Values the provider replaces: they must make no difference.
    let parameters = provider_parameters()
        .dword("DataUnitSize", 512)
        .dword("TweakBase", 0)
        .qword("EncryptedAreaStart", 0x200_0000);
    boot_provider_on(parameters, &volume, 4096);
    let _provider = SampleProvider::register(volume.clone()).unwrap();
    let mut filter = loaded(CRASHDUMP, 16);
    machine.dump(&mut filter, DumpFile::Crash).unwrap();
    filter.unload().unwrap();
    let placement = Geometry::new(
        DataUnit::Bytes4096,
        Area::WHOLE_DISK,
        TweakBase::Disk,
        PARTITION,
    );
    let inside = check_keyed_image(&mut machine, DumpFile::Crash, &placement, &keyed(&volume));
    assert!(inside > 0);
}

/// The provider's 4096-byte data unit on a dump device of 512-byte sectors: the dump stack
/// may write any whole sectors, so the unit is refused at load (the provider was asked and
/// answered), not found misaligned in the middle of a dump. Unknown sectors (0) refuse too.
#[test]
fn a_4096_byte_unit_on_512_byte_sectors_is_refused_at_load() {
    let machine = machine(4 * MIB, 16, 36);
    let volume = volume_of_4096_units(&machine);
    for bytes_per_sector in [512, 0] {
        boot_provider_on(provider_parameters(), &volume, bytes_per_sector);
        let provider = SampleProvider::register(volume.clone()).unwrap();
        expect_refusing(CRASHDUMP);
        expect_refusing(HIBERNATION);
        assert_eq!(
            provider.queries(),
            (2, 2),
            "{bytes_per_sector}: answered, then refused"
        );
        drop(provider);
        assert_eq!(ntoskrnl::counters().outstanding, 0, "{bytes_per_sector}");
    }
}

/// Loads an instance of `dump_type` and shows it refuses: Dump_Start fails, so the stack
/// writes nothing, and a write anyway is bug check WriteRefused.
fn expect_refusing(dump_type: u32) {
    let mut filter = loaded(dump_type, 16);
    assert_eq!(filter.start().unwrap(), STATUS_ACCESS_DENIED);
    let source = crashdmp_sim::memory::Pages::new(4096);
    let mut mdl = crashdmp_sim::mdl::SimMdl::describe(
        source.as_slice().as_ptr(),
        4096,
        crashdmp_sim::mdl::Shape::NonpagedPool,
        0,
        source.as_slice().as_ptr(),
    );
    let mut offset = 0x8000i64;
    let stop = filter.write(0, &mut offset, &mut mdl).unwrap_err();
    let bug_check = stop.bug_check().expect("a bug check");
    assert_eq!(bug_check.code, 0x4443_5259);
    assert_eq!(bug_check.parameters, [0x06, 0x8000, 0, 2]);
    filter.unload().unwrap();
}

#[test]
fn no_provider_means_no_dump() {
    let volume = Volume::two_keys(PARTITION, 1 << 30);
    boot_provider(provider_parameters(), &volume);
    expect_refusing(CRASHDUMP);
    expect_refusing(HIBERNATION);
    assert_eq!(ntoskrnl::counters().outstanding, 0);
}

#[test]
fn a_provider_that_does_not_answer_means_no_dump() {
    let volume = Volume::two_keys(PARTITION, 1 << 30);
    boot_provider(provider_parameters(), &volume);
    // Registered for another volume: it sees the query and leaves the answer empty.
    let mut elsewhere = volume.clone();
    elsewhere.answer.partition_start = 0x40_0000;
    let provider = SampleProvider::register(elsewhere).unwrap();
    expect_refusing(CRASHDUMP);
    assert_eq!(provider.queries(), (0, 1));
}

/// Every bad answer loads a refusing instance: a wrong major version, a short answer, an
/// invalid range, equal key halves, another disk, another partition, a vetoed stack.
#[test]
fn every_bad_answer_means_no_dump() {
    type Change = fn(&mut Volume);
    let changes: &[(&str, Change)] = &[
        ("major version 2", |v| {
            v.answer.major_version = MAJOR_VERSION + 1;
        }),
        ("short", |v| v.answer.size = 0x100),
        ("no range", |v| v.answer.range_count = 0),
        ("unaligned range", |v| v.answer.ranges[0].end = 1000),
        ("overlapping ranges", |v| v.answer.ranges[1].start = 0),
        ("equal key halves", |v| v.answer.ranges[1].key = [5; 64]),
        ("data unit 1024", |v| v.answer.data_unit = 1024),
        ("veto", |v| v.answer.flags = 0),
    ];
    for (what, change) in changes {
        let mut volume = Volume::two_keys(PARTITION, 1 << 30);
        change(&mut volume);
        boot_provider(provider_parameters(), &volume);
        let provider = SampleProvider::register(volume).unwrap();
        expect_refusing(CRASHDUMP);
        assert_eq!(provider.queries(), (1, 1), "{what}: answered, then refused");
        assert_eq!(ntoskrnl::counters().outstanding, 0, "{what}");
    }
}

/// The provider's volume is on another disk than the dump device: the provider, checking
/// the query, does not answer; a provider that answers anyway is refused by dumpcrypt.
#[test]
fn a_dump_device_that_is_not_the_providers_disk_means_no_dump() {
    let mut volume = Volume::two_keys(PARTITION, 1 << 30);
    volume.answer.volume.gpt_disk_id = *b"another-disk-id!";
    boot_provider(provider_parameters(), &volume);
    let _provider = SampleProvider::register(volume.clone()).unwrap();
    expect_refusing(CRASHDUMP);

    // The same with the dump device changed: an MBR disk, to a provider answering blindly
    // would not help either (the driver compares the answer with the extension).
    let volume = Volume::two_keys(PARTITION, 1 << 30);
    let mut environment = Environment::default();
    environment.registry.insert(
        dumpcrypt::kernel::PARAMETERS_PATH.into(),
        provider_parameters().0,
    );
    environment.partition_info = (
        0,
        [0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    ntoskrnl::boot(environment);
    let provider = SampleProvider::register(volume).unwrap();
    expect_refusing(CRASHDUMP);
    assert_eq!(provider.queries(), (0, 1));
}

/// The veto of one stack: crash dumps are written, hibernation is refused.
#[test]
fn the_provider_vetoes_one_stack() {
    let mut machine = machine(4 * MIB, 16, 33);
    let mut volume = volume_of(&machine);
    volume.answer.flags = ALLOW_CRASH_DUMP;
    boot_provider(provider_parameters(), &volume);
    let _provider = SampleProvider::register(volume.clone()).unwrap();
    expect_refusing(HIBERNATION);
    let mut filter = loaded(CRASHDUMP, 16);
    assert!(machine.dump(&mut filter, DumpFile::Crash).unwrap().written);
    filter.unload().unwrap();
    check_keyed_image(
        &mut machine,
        DumpFile::Crash,
        &geometry(TweakBase::Partition),
        &keyed(&volume),
    );
}

/// In-place encryption: the live state moves the end of the first range's encrypted part
/// between two dumps; each dump is encrypted exactly up to the end at its time. The crash
/// dump copy is spent after its dump (its keys wiped at Dump_Finish: a second Dump_Start is
/// refused), so the second dump is a fresh load, as after a reboot.
#[test]
fn the_live_range_end_moves_between_two_dumps() {
    let mut machine = machine(4 * MIB, 16, 34);
    let partition_length = machine.disk_size() - PARTITION;
    let mut volume = Volume::new(
        PARTITION,
        partition_length,
        &[Range {
            start: 0,
            end: partition_length / 4096 * 4096,
            key: key(0x33),
        }],
    );
    volume.live_state = true;
    boot_provider(provider_parameters(), &volume);
    let mut provider = SampleProvider::register(volume.clone()).unwrap();
    let file_start = machine.crash_file.extents[0].partition_offset;
    let file_end = machine
        .crash_file
        .extents
        .iter()
        .map(|extent| extent.partition_offset + extent.len)
        .max()
        .unwrap();
    let middle = (file_start + file_end) / 2 / 4096 * 4096;
    let mut changed = Vec::new();
    for end in [middle, file_end + 4096] {
        let mut filter = loaded(CRASHDUMP, 16);
        provider.set_encrypted_end(0, end);
        let report = machine.dump(&mut filter, DumpFile::Crash).unwrap();
        assert!(report.written, "end {end:#x}");
        assert_eq!(
            filter.start().unwrap(),
            STATUS_ACCESS_DENIED,
            "a second dump on the spent crash dump copy"
        );
        filter.unload().unwrap();
        changed.push(report.bytes_changed);
        let area = Area { start: 0, end };
        let inside = check_keyed_image(
            &mut machine,
            DumpFile::Crash,
            &geometry(TweakBase::Partition),
            &[(area, key(0x33))],
        );
        assert_eq!(inside, report.bytes_changed, "end {end:#x}");
    }
    assert!(changed[0] < changed[1], "{changed:?}");
    assert_eq!(
        changed[1], machine.crash_file.len,
        "all of it the second time"
    );
    assert_eq!(provider.queries(), (2, 2), "asked once per load");
}

/// A live state the provider left half-written (the machine stopped mid-update) is
/// encrypted in full; one that says the keys no longer hold refuses the dump (on a fresh
/// crash dump copy: the one that wrote the dump refuses a second start in any case).
#[test]
fn a_torn_live_state_encrypts_in_full_and_an_inactive_one_refuses() {
    let mut machine = machine(4 * MIB, 16, 35);
    let partition_length = machine.disk_size() - PARTITION;
    let end = partition_length / 4096 * 4096;
    let mut volume = Volume::new(
        PARTITION,
        partition_length,
        &[Range {
            start: 0,
            end,
            key: key(0x44),
        }],
    );
    volume.live_state = true;
    boot_provider(provider_parameters(), &volume);
    let mut provider = SampleProvider::register(volume).unwrap();
    let mut filter = loaded(CRASHDUMP, 16);
    provider.tear_live_state(0, 0);
    let report = machine.dump(&mut filter, DumpFile::Crash).unwrap();
    assert_eq!(
        report.bytes_changed, machine.crash_file.len,
        "torn: the whole range"
    );
    check_keyed_image(
        &mut machine,
        DumpFile::Crash,
        &geometry(TweakBase::Partition),
        &[(Area { start: 0, end }, key(0x44))],
    );
    assert_eq!(
        filter.start().unwrap(),
        STATUS_ACCESS_DENIED,
        "the spent copy, live state active"
    );
    filter.unload().unwrap();
    let mut filter = loaded(CRASHDUMP, 16);
    provider.set_active(false);
    assert_eq!(filter.start().unwrap(), STATUS_ACCESS_DENIED);
    provider.set_active(true);
    assert_eq!(filter.start().unwrap(), 0);
    filter.unload().unwrap();
}

/// `DiskId` binds the registry key source to one disk: the simulated GPT disk is accepted,
/// another GUID or an MBR signature refuses.
#[test]
fn disk_id_binds_the_dump_device() {
    for (disk_id, accepted) in [
        (SIMULATED_DISK_GUID.to_vec(), true),
        (b"another-disk-id!".to_vec(), false),
        (vec![1, 2, 3, 4], false),
    ] {
        boot(
            Some(Parameters::encrypt_both().binary("DiskId", &disk_id)),
            WINDOWS_11,
        );
        if accepted {
            let mut filter = loaded(CRASHDUMP, 16);
            assert_eq!(filter.start().unwrap(), 0);
            filter.unload().unwrap();
        } else {
            expect_refusing(CRASHDUMP);
        }
    }
}

/// A Key value next to KeySource = provider is a configuration error (the key would rest on
/// the disk): DriverEntry succeeds with a refusing instance (on every Windows version, where
/// a failed load would give no dump only from Windows 8 on), the provider is never asked,
/// and the system writes no dump.
#[test]
fn a_key_beside_a_provider_is_refused_at_load() {
    let volume = Volume::two_keys(PARTITION, 1 << 30);
    boot_provider(provider_parameters().binary("Key", &key(9)), &volume);
    let provider = SampleProvider::register(volume).unwrap();
    expect_refusing(CRASHDUMP);
    expect_refusing(HIBERNATION);
    assert_eq!(
        provider.queries(),
        (0, 0),
        "an invalid configuration asks no one"
    );
    drop(provider);
    assert_eq!(ntoskrnl::counters().outstanding, 0);
}
