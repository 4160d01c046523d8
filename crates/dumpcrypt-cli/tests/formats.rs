//! Dumps in the formats Windows writes, opened by a real parser: every kind `simulate`
//! writes is read back from the reference image and recovered from the encrypted image by
//! `decrypt` and `find-dump`, then opened with the `kdmp-parser` crate, and every physical
//! page it maps must equal the simulated memory's page (the simulator's memory, rebuilt here
//! from the same seed). `simulate --disk` writes the dump into a template disk at the
//! extents given, and nowhere else.

use std::path::{Path, PathBuf};

mod common;

use aes::cipher::KeyInit;
use common::{dumpcrypt, s, succeeds, text};
use crashdmp_sim::dump_format::DumpKind;
use crashdmp_sim::layout::PAGE_SIZE;
use crashdmp_sim::machine::{DumpFile, Machine, MachineConfig};
use kdmp_parser::parse::KernelDumpParser;
use kdmp_parser::structs::DumpType;

const KEY: [u8; 64] = {
    let mut key = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        key[i] = (i as u8).wrapping_mul(53) ^ 0x3c;
        i += 1;
    }
    key
};
const MEMORY: usize = 4 << 20;
const SEED: u64 = 11;

/// The simulator's machine for these options, built here: its memory is the source of truth.
fn machine(kind: DumpKind) -> Machine {
    Machine::new(
        MachineConfig {
            memory: MEMORY,
            seed: SEED,
            partition_offset: 0,
            contiguous_crash_file: true,
            dump_kind: kind,
            ..MachineConfig::default()
        },
        None,
        None,
    )
    .unwrap()
}

/// Opens `dump` with kdmp-parser; checks the header it reads and every page it maps.
#[track_caller]
fn parse_and_compare(dump: &Path, machine: &Machine, kind: DumpKind) {
    let parser = KernelDumpParser::new(dump).unwrap_or_else(|error| {
        panic!("{kind:?}: kdmp-parser refuses {}: {error}", dump.display())
    });
    let expected = if kind == DumpKind::Full {
        DumpType::Full
    } else {
        DumpType::Bmp
    };
    assert_eq!(parser.dump_type(), expected);
    assert_eq!(parser.headers().bug_check_code, 0xE2);
    assert_eq!(parser.headers().machine_image_type, 0x8664);
    let context = parser.context_record();
    assert_eq!((context.mxcsr, context.mxcsr2), (0x1F80, 0x1F80));
    let bytes = std::fs::read(dump).unwrap();
    assert_eq!(bytes.len() as u64, machine.crash_file.len);
    let mut pages = 0;
    for (gpa, offset) in parser.physmem() {
        let pfn = u64::from(gpa) / PAGE_SIZE as u64;
        let page = machine
            .physical_page(pfn)
            .unwrap_or_else(|| panic!("{kind:?}: page {pfn:#x} lies in a hole"));
        let offset = offset as usize;
        assert!(
            bytes[offset..offset + PAGE_SIZE] == *page,
            "{kind:?}: page {pfn:#x} differs from the simulated memory"
        );
        pages += 1;
    }
    assert_eq!(pages, machine.crash_dump().pages.pages());
}

#[test]
fn every_kind_is_opened_by_kdmp_parser_from_the_reference_and_from_the_recovered_image() {
    for (kind, name, listed) in [
        (
            DumpKind::Full,
            "full",
            "Full: complete memory dump, physical memory runs (DumpType 1)",
        ),
        (
            DumpKind::Kernel,
            "kernel",
            "Bmp: kernel or automatic memory dump, SDMP bitmap (DumpType 5)",
        ),
        (
            DumpKind::Automatic,
            "automatic",
            "Bmp: kernel or automatic memory dump, SDMP bitmap (DumpType 5)",
        ),
        (
            DumpKind::Complete,
            "complete",
            "Bmp: complete memory dump, FDMP bitmap (DumpType 5)",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("key"), KEY).unwrap();
        let out = succeeds(&[
            "simulate",
            "--key",
            s(&path("key")),
            "--dump-type",
            "crash",
            "--dump-kind",
            name,
            "--memory",
            "4MiB",
            "--seed",
            "11",
            "--partition-offset",
            "0",
            "--contiguous-dump",
            "--image",
            s(&path("image")),
            "--reference",
            s(&path("reference")),
        ]);
        assert!(out.contains("verdict      PASS"), "{out}");
        assert!(
            out.contains(&format!("dump format  {name} memory dump")),
            "{out}"
        );
        let machine = machine(kind);
        // From the reference: the dump as the system wrote it.
        let listing = succeeds(&[
            "find-dump",
            s(&path("reference")),
            "--extract",
            s(&path("reference.dmp")),
        ]);
        assert!(listing.contains(listed), "{listing}");
        parse_and_compare(&path("reference.dmp"), &machine, kind);
        // From the encrypted image: decrypt, then find-dump.
        succeeds(&[
            "decrypt",
            "--key",
            s(&path("key")),
            "--in",
            s(&path("image")),
            "--out",
            s(&path("decrypted")),
        ]);
        let listing = succeeds(&[
            "find-dump",
            s(&path("decrypted")),
            "--extract",
            s(&path("MEMORY.DMP")),
        ]);
        assert!(listing.contains(listed), "{listing}");
        parse_and_compare(&path("MEMORY.DMP"), &machine, kind);
        assert!(
            std::fs::read(path("MEMORY.DMP")).unwrap()
                == std::fs::read(path("reference.dmp")).unwrap()
        );
    }
}

/// A template whose every byte is known: `pattern(offset)`.
fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(7) % 251) as u8
}

struct Disk {
    dir: tempfile::TempDir,
}

impl Disk {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

const DISK_LEN: u64 = 8 << 20;
const PARTITION: u64 = 0x10_0000;

/// A patterned template disk and an extents file of several extents out of disk order.
fn template(extents: &[(u64, u64)]) -> Disk {
    let disk = Disk {
        dir: tempfile::tempdir().unwrap(),
    };
    let bytes: Vec<u8> = (0..DISK_LEN).map(pattern).collect();
    std::fs::write(disk.path("template"), bytes).unwrap();
    let mut listing = String::from("# START LENGTH, absolute byte offsets, in file order\n");
    for (start, len) in extents {
        listing.push_str(&format!("{start} {len}\n"));
    }
    std::fs::write(disk.path("extents"), listing).unwrap();
    std::fs::write(disk.path("key"), KEY).unwrap();
    disk
}

#[test]
fn simulate_writes_the_dump_into_the_template_at_the_extents_and_nowhere_else() {
    // Out of disk order; the last extent only partly used; 1 MiB of memory, a full dump
    // (0x2000 + 1 MiB bytes).
    let extents = [
        (0x60_0000, 0x4_0000),
        (0x18_0000, 0x8_0000),
        (0x40_0000, 0x6_0000),
        (0x28_0000, 0x10_0000),
    ];
    let disk = template(&extents);
    let out = succeeds(&[
        "simulate",
        "--key",
        s(&disk.path("key")),
        "--memory",
        "1MiB",
        "--seed",
        "5",
        "--dump-kind",
        "full",
        "--disk",
        s(&disk.path("template")),
        "--dump-extents",
        s(&disk.path("extents")),
        "--partition-offset",
        "1MiB",
        "--image",
        s(&disk.path("image")),
        "--reference",
        s(&disk.path("reference")),
    ]);
    assert!(out.contains("verdict      PASS"), "{out}");
    assert!(
        !out.contains("hibernation "),
        "with --disk only the crash dump runs: {out}"
    );
    let machine = Machine::new(
        MachineConfig {
            memory: 1 << 20,
            seed: 5,
            dump_kind: DumpKind::Full,
            ..MachineConfig::default()
        },
        None,
        None,
    )
    .unwrap();
    let mut dump = vec![0u8; machine.crash_file.len as usize];
    machine.file_content(DumpFile::Crash, 0, &mut dump);
    let image = std::fs::read(disk.path("image")).unwrap();
    let reference = std::fs::read(disk.path("reference")).unwrap();
    assert_eq!(image.len() as u64, DISK_LEN);
    assert_eq!(reference.len() as u64, DISK_LEN);
    let xts = xts_mode::Xts128::<aes::Aes256>::new(
        aes::Aes256::new_from_slice(&KEY[..32]).unwrap(),
        aes::Aes256::new_from_slice(&KEY[32..]).unwrap(),
    );
    let mut written = vec![false; DISK_LEN as usize];
    let mut file_offset = 0usize;
    for (start, len) in extents {
        let take = (len as usize).min(dump.len() - file_offset);
        let range = start as usize..start as usize + take;
        let plain = &dump[file_offset..file_offset + take];
        assert!(
            reference[range.clone()] == *plain,
            "the reference holds the dump at {start:#x}"
        );
        let mut cipher = plain.to_vec();
        xts.encrypt_area(
            &mut cipher,
            512,
            u128::from((start - PARTITION) / 512),
            |n: u128| n.to_le_bytes(),
        );
        assert!(
            image[range.clone()] == *cipher,
            "the image holds the ciphertext at {start:#x}"
        );
        written[range].iter_mut().for_each(|w| *w = true);
        file_offset += take;
    }
    assert_eq!(
        file_offset,
        dump.len(),
        "the whole dump went into the extents"
    );
    for (offset, &was_written) in written.iter().enumerate() {
        if !was_written {
            let expected = pattern(offset as u64);
            assert!(
                image[offset] == expected && reference[offset] == expected,
                "byte {offset:#x} outside the extents changed"
            );
        }
    }
    // The dump read back from the reference through the extents opens in kdmp-parser.
    let mut from_reference = Vec::new();
    let mut left = dump.len();
    for (start, len) in extents {
        let take = (len as usize).min(left);
        from_reference.extend_from_slice(&reference[start as usize..start as usize + take]);
        left -= take;
    }
    std::fs::write(disk.path("MEMORY.DMP"), &from_reference).unwrap();
    parse_and_compare(&disk.path("MEMORY.DMP"), &machine, DumpKind::Full);
}

#[test]
fn extents_too_small_for_the_dump_are_refused_and_leave_nothing() {
    let disk = template(&[(0x20_0000, 0x8_0000), (0x10_0000, 0x1000)]);
    let output = dumpcrypt(&[
        "simulate",
        "--key",
        s(&disk.path("key")),
        "--memory",
        "1MiB",
        "--disk",
        s(&disk.path("template")),
        "--dump-extents",
        s(&disk.path("extents")),
        "--image",
        s(&disk.path("image")),
    ]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("the dump extents hold only"), "{message}");
    assert!(!disk.path("image").exists());
    // And the hibernation stack has no file on a template disk.
    let output = dumpcrypt(&[
        "simulate",
        "--key",
        s(&disk.path("key")),
        "--dump-type",
        "both",
        "--disk",
        s(&disk.path("template")),
        "--dump-extents",
        s(&disk.path("extents")),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("give --dump-type crash"),
        "{}",
        text(&output)
    );
}
