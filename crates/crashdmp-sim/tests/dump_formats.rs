//! Every kind of crash dump the simulator lays out opens in a real parser, the `kdmp-parser`
//! crate, and every physical page it maps is the simulated memory's page.

use std::io::Write;

use crashdmp_sim::dump_format::DumpKind;
use crashdmp_sim::layout::PAGE_SIZE;
use crashdmp_sim::machine::{DumpFile, Machine, MachineConfig};
use kdmp_parser::parse::KernelDumpParser;
use kdmp_parser::structs::DumpType;

const KINDS: [DumpKind; 4] = [
    DumpKind::Full,
    DumpKind::Kernel,
    DumpKind::Automatic,
    DumpKind::Complete,
];

fn machine(kind: DumpKind, memory: usize, seed: u64) -> Machine {
    let config = MachineConfig {
        memory,
        seed,
        dump_kind: kind,
        ..MachineConfig::default()
    };
    Machine::new(config, None, None).unwrap()
}

/// The crash dump file as the system means it, written to a file.
fn dump_file(machine: &Machine) -> tempfile::NamedTempFile {
    let mut bytes = vec![0u8; machine.crash_file.len as usize];
    machine.file_content(DumpFile::Crash, 0, &mut bytes);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&bytes).unwrap();
    file
}

/// Opens `path` with kdmp-parser and checks what it finds against `machine`: the dump type,
/// the header's fields, and every page it maps against the simulated memory. Returns the
/// pages mapped.
pub fn check_with_kdmp_parser(path: &std::path::Path, machine: &Machine, kind: DumpKind) -> u64 {
    let parser = KernelDumpParser::new(path).unwrap();
    let expected = match kind {
        DumpKind::Full => DumpType::Full,
        _ => DumpType::Bmp,
    };
    assert_eq!(parser.dump_type(), expected);
    let headers = parser.headers();
    assert_eq!(headers.machine_image_type, 0x8664);
    assert_eq!(headers.bug_check_code, 0xE2);
    assert_eq!(headers.major_version, 0xF);
    assert_eq!(headers.required_dump_space as u64, machine.crash_file.len);
    let context = parser.context_record();
    assert_eq!(context.mxcsr, 0x1F80);
    assert_eq!(
        context.mxcsr, context.mxcsr2,
        "MxCsr and FltSave.MxCsr agree"
    );
    let file = std::fs::read(path).unwrap();
    let mut pages = 0;
    let mut previous_offset = None;
    for (gpa, offset) in parser.physmem() {
        let pfn = u64::from(gpa) / PAGE_SIZE as u64;
        let expected = machine
            .physical_page(pfn)
            .unwrap_or_else(|| panic!("{kind:?}: page {pfn:#x} is in a hole of the memory map"));
        let offset = offset as usize;
        assert!(previous_offset < Some(offset), "pages in physical order");
        previous_offset = Some(offset);
        assert!(
            file[offset..offset + PAGE_SIZE] == *expected,
            "{kind:?}: page {pfn:#x} at file offset {offset:#x} differs from memory"
        );
        pages += 1;
    }
    assert_eq!(pages, machine.crash_dump().pages.pages());
    pages
}

#[test]
fn kdmp_parser_opens_every_kind_and_maps_the_simulated_memory() {
    for kind in KINDS {
        for (memory, seed) in [(3 << 20, 1), (1 << 20, 7), (0x9F * PAGE_SIZE, 2)] {
            let machine = machine(kind, memory, seed);
            let file = dump_file(&machine);
            let pages = check_with_kdmp_parser(file.path(), &machine, kind);
            let all = machine.physical_memory().pages();
            match kind {
                DumpKind::Full | DumpKind::Complete => assert_eq!(pages, all),
                _ => assert!(pages < all || all < 4, "a kernel dump holds part of memory"),
            }
        }
    }
}

#[test]
fn the_memory_map_has_holes_the_parser_sees() {
    let machine = machine(DumpKind::Full, 2 << 20, 1);
    let file = dump_file(&machine);
    let parser = KernelDumpParser::new(file.path()).unwrap();
    let pfns: Vec<u64> = parser
        .physmem()
        .map(|(gpa, _)| u64::from(gpa) / PAGE_SIZE as u64)
        .collect();
    let holes = pfns
        .windows(2)
        .filter(|pair| pair[1] != pair[0] + 1)
        .count();
    assert_eq!(holes, machine.physical_memory().runs.len() - 1);
    assert!(holes >= 2);
    assert!(!pfns.contains(&0), "page 0 is not in the map");
}
