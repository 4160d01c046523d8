//! Soak: the crash dump stack loads and unloads the filter 10,000 times, and the hibernation
//! stack runs 1,000 hibernate/resume cycles with writes, checking after each that nothing
//! leaks and that every image reads back (resume verifies every byte). Ignored by default;
//! `scripts/soak.sh` runs it.

mod common;

use std::time::Instant;

use common::*;
use crashdmp_sim::machine::{DumpFile, Machine, MachineConfig};
use crashdmp_sim::mdl::{Shape, SimMdl};
use crashdmp_sim::memory::Pages;
use crashdmp_sim::ntoskrnl::{self, Environment};
use crashdmp_sim::stack::{CRASHDUMP, HIBERNATION};

const LOADS: u64 = 10_000;
const CYCLES: u64 = 1_000;
const MEMORY: usize = 256 << 10;
const WINDOWS_8: (u32, u32, u32) = (6, 2, 9200);

/// The process's resident memory in bytes, where /proc tells it.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn assert_no_growth(what: &str, before: Option<u64>) {
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        let growth = after.saturating_sub(before);
        assert!(
            growth < 64 << 20,
            "{what}: resident memory grew by {} MiB",
            growth >> 20
        );
    }
}

#[test]
#[ignore = "soak: run by scripts/soak.sh"]
fn the_crash_stack_loads_and_unloads_ten_thousand_times() {
    let began = Instant::now();
    boot(Some(Parameters::encrypt_both()), WINDOWS_11);
    let mut source = Pages::new(32 * 4096);
    source
        .as_mut_slice()
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i % 251) as u8);
    let mut resident = None;
    for round in 0..LOADS {
        // The crash stack reloads its copy whenever a page file is created: any
        // MaxPagesPerWrite, and now and then a dump in between.
        let max_pages = 1 + (round % 32) as u32;
        let mut filter = loaded(CRASHDUMP, max_pages);
        if round % 10 == 0 {
            assert_eq!(filter.start().unwrap(), 0);
            let len = max_pages * 4096;
            let mut mdl = SimMdl::describe(
                source.as_ptr(),
                len,
                Shape::MappedElsewhere,
                0,
                source.as_ptr().wrapping_add(31 * 4096),
            );
            let mut offset = (round * 4096) as i64;
            assert_eq!(filter.write(round, &mut offset, &mut mdl).unwrap(), 0);
            assert_ne!(
                mdl.gather_by_va().unwrap(),
                source.as_slice()[..len as usize]
            );
            filter.finish().unwrap();
        }
        filter.unload().unwrap();
        let counters = ntoskrnl::counters();
        assert_eq!(counters.outstanding, 0, "round {round}: leaked");
        assert!(counters.violations.is_empty(), "{:?}", counters.violations);
        if round == 100 {
            resident = resident_bytes();
        }
    }
    let counters = ntoskrnl::counters();
    assert_eq!(counters.allocations, counters.frees);
    assert_no_growth("loads", resident);
    eprintln!(
        "soak: {LOADS} loads and unloads of the crash stack, {} allocations freed, in {:.1} s",
        counters.frees,
        began.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "soak: run by scripts/soak.sh"]
fn a_thousand_hibernate_resume_cycles() {
    let began = Instant::now();
    let mut resident = None;
    let (mut writes, mut reads, mut bytes) = (0u64, 0u64, 0u64);
    for cycle in 0..CYCLES {
        // Vary what a fleet of machines varies: OS generation, data unit (and sector size),
        // tweak base, transfer size, memory contents and file layout.
        let large_unit = cycle % 4 >= 2;
        let data_unit: u32 = if large_unit { 4096 } else { 512 };
        let disk_tweaks = cycle % 3 == 1;
        let max_pages = 1 + (cycle % 32) as u32;
        let partition_offset = 0x10_0000 + (cycle % 5) * 0x10_0000;
        let parameters = Parameters::encrypt_both()
            .dword("DataUnitSize", data_unit)
            .dword("TweakBase", u32::from(disk_tweaks));
        let mut environment = Environment {
            os_version: if cycle % 2 == 0 {
                WINDOWS_11
            } else {
                WINDOWS_8
            },
            partition_offset: Ok(partition_offset),
            // A 4096-byte data unit needs a disk of 4096-byte sectors (the driver refuses it
            // on 512-byte ones).
            bytes_per_sector: data_unit,
            ..Environment::default()
        };
        environment
            .registry
            .insert(dumpcrypt::kernel::PARAMETERS_PATH.into(), parameters.0);
        let key = key();
        environment.secrets = vec![key[..32].to_vec(), key[32..].to_vec()];
        ntoskrnl::boot(environment);

        let mut machine = Machine::new(
            MachineConfig {
                memory: MEMORY,
                max_pages_per_write: max_pages,
                sector_size: data_unit,
                partition_offset,
                seed: cycle,
                ..MachineConfig::default()
            },
            None,
            None,
        )
        .expect("disk images");
        let mut filter = loaded(HIBERNATION, max_pages);
        let report = machine
            .dump(&mut filter, DumpFile::Hibernation)
            .unwrap_or_else(|error| panic!("cycle {cycle}: hibernate: {error}"));
        assert!(report.written);
        assert_eq!(report.bytes, machine.hibernation_file.len);
        assert_eq!(report.bytes_changed, report.bytes, "cycle {cycle}");
        // Resume reads every write back through Dump_Read and compares it with what was
        // hibernated.
        let resume = machine
            .resume(&mut filter)
            .unwrap_or_else(|error| panic!("cycle {cycle}: resume: {error}"));
        assert!(resume.filtered);
        assert_eq!(resume.bytes, machine.hibernation_file.len);
        filter.unload().unwrap();
        if cycle % 10 == 0 {
            // And an independent XTS-AES-256 decrypts the image.
            let tweak_offset = if disk_tweaks { partition_offset } else { 0 };
            let checked = check_image(
                &mut machine,
                DumpFile::Hibernation,
                0..u64::MAX,
                tweak_offset,
                data_unit as usize,
            );
            assert_eq!(checked, machine.hibernation_file.len);
        }
        let counters = ntoskrnl::counters();
        assert_eq!(counters.outstanding, 0, "cycle {cycle}: leaked");
        assert_eq!(counters.allocations, counters.frees);
        assert!(counters.violations.is_empty(), "{:?}", counters.violations);
        writes += report.writes;
        reads += resume.reads;
        bytes += report.bytes + resume.bytes;
        if cycle == 20 {
            resident = resident_bytes();
        }
    }
    assert_no_growth("cycles", resident);
    eprintln!(
        "soak: {CYCLES} hibernate/resume cycles, {writes} writes and {reads} reads, {} MiB \
         through the filter, in {:.1} s",
        bytes >> 20,
        began.elapsed().as_secs_f64()
    );
}
