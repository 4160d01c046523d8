//! `dumpcrypt recover` end to end on a generated disk (scripts/make-disk-fixture.sh: GPT,
//! NTFS, a fragmented pagefile.sys and a dedicated dump file whose runs spill into an
//! attribute list). The expectations are independent of the tool: the files' extents as The
//! Sleuth Kit reads them, a synthetic dump written into them here, and the `xts-mode` crate
//! encrypting them as the driver would. Every failure must be a clear message, a non-zero
//! exit, and no output file left behind.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;

use aes::cipher::KeyInit;
use common::{dumpcrypt, fails_leaving_nothing, s, succeeds, text};

const KEY: [u8; 64] = {
    let mut key = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        key[i] = (i as u8).wrapping_mul(37) ^ 0x5c;
        i += 1;
    }
    key
};

/// The fixture, built once per test run (into Cargo's temporary directory for integration
/// tests, rebuilt on every run); `None` when its tools cannot be installed (and then only
/// outside CI).
fn fixture() -> Option<&'static Path> {
    static FIXTURE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("disk-fixture");
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-disk-fixture.sh");
            let output = std::process::Command::new("bash")
                .arg(&script)
                .arg(&dir)
                .output()
                .expect("bash runs");
            if output.status.code() == Some(3) {
                let message = format!(
                    "make-disk-fixture.sh cannot install its tools (gdisk, ntfs-3g, sleuthkit): {}",
                    text(&output)
                );
                assert!(std::env::var_os("CI").is_none(), "{message}");
                eprintln!("SKIPPED: {message}");
                return None;
            }
            assert!(output.status.success(), "the fixture: {}", text(&output));
            Some(dir)
        })
        .as_deref()
}

/// `START LENGTH` lines.
fn read_extents(path: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let (start, len) = line.split_once(' ').unwrap();
            (start.parse().unwrap(), len.parse().unwrap())
        })
        .collect()
}

struct Disk {
    dir: tempfile::TempDir,
    image: PathBuf,
    key: PathBuf,
    partition: u64,
    pagefile: Vec<(u64, u64)>,
    dedicated: Vec<(u64, u64)>,
}

impl Disk {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A copy of the fixture's disk, with the key file.
fn disk() -> Option<Disk> {
    let fixture = fixture()?;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    std::fs::copy(fixture.join("disk.img"), &image).unwrap();
    let key = dir.path().join("key.bin");
    std::fs::write(&key, KEY).unwrap();
    let partition = std::fs::read_to_string(fixture.join("partition.offset"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Some(Disk {
        dir,
        image,
        key,
        partition,
        pagefile: read_extents(&fixture.join("pagefile.extents")),
        dedicated: read_extents(&fixture.join("dedicated.extents")),
    })
}

/// A full 64-bit crash dump of `pages` pages of pseudo-random memory in two physical runs.
fn synthetic_dump(pages: u64, seed: u64) -> Vec<u8> {
    let size = 0x2000 + pages * 0x1000;
    let mut dump = vec![0u8; size as usize];
    dump[..8].copy_from_slice(b"PAGEDU64");
    dump[0x38..0x3C].copy_from_slice(&0xE2u32.to_le_bytes()); // MANUALLY_INITIATED_CRASH
                                                              // PhysicalMemoryBlock: NumberOfRuns, NumberOfPages, then (BasePage, PageCount) runs.
    let first = pages / 3;
    dump[0x88..0x8C].copy_from_slice(&2u32.to_le_bytes());
    dump[0x90..0x98].copy_from_slice(&pages.to_le_bytes());
    for (i, (base, count)) in [(1u64, first), (0x100, pages - first)].iter().enumerate() {
        let at = 0x98 + i * 0x10;
        dump[at..at + 8].copy_from_slice(&base.to_le_bytes());
        dump[at + 8..at + 16].copy_from_slice(&count.to_le_bytes());
    }
    dump[0xF98..0xF9C].copy_from_slice(&1u32.to_le_bytes()); // full memory dump
    dump[0xFA0..0xFA8].copy_from_slice(&size.to_le_bytes());
    let mut state = seed | 1;
    for byte in &mut dump[0x2000..] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    dump
}

/// Writes `data` from the start of the file whose extents are `extents` (disk offsets).
fn write_into_file(image: &mut [u8], extents: &[(u64, u64)], data: &[u8]) {
    let mut done = 0usize;
    for &(start, len) in extents {
        if done == data.len() {
            break;
        }
        let take = (len as usize).min(data.len() - done);
        image[start as usize..start as usize + take].copy_from_slice(&data[done..done + take]);
        done += take;
    }
    assert_eq!(done, data.len(), "the file is too small for the dump");
}

/// Encrypts `range` of the disk as the driver does: XTS-AES-256 in data units of `unit`,
/// unit numbers counted from `origin` (the partition start, or 0 for disk-absolute tweaks).
fn encrypt(image: &mut [u8], range: std::ops::Range<u64>, unit: usize, origin: u64) {
    let xts = xts_mode::Xts128::<aes::Aes256>::new(
        aes::Aes256::new_from_slice(&KEY[..32]).unwrap(),
        aes::Aes256::new_from_slice(&KEY[32..]).unwrap(),
    );
    let first = u128::from((range.start - origin) / unit as u64);
    xts.encrypt_area(
        &mut image[range.start as usize..range.end as usize],
        unit,
        first,
        |n: u128| n.to_le_bytes(),
    );
}

/// The most pages a dump in `extents` can hold: it then fills every cluster of the file, so
/// that each extent is checked.
fn pages_filling(extents: &[(u64, u64)]) -> u64 {
    (extents.iter().map(|(_, len)| len).sum::<u64>() - 0x2000) / 0x1000
}

/// The disk with a dump in `extents`, each extent encrypted (data unit 512, partition-relative
/// tweaks, as the driver's defaults), saved; returns the dump.
fn encrypted_dump_in(disk: &Disk, extents: &[(u64, u64)], pages: u64) -> Vec<u8> {
    let mut image = std::fs::read(&disk.image).unwrap();
    let dump = synthetic_dump(pages, pages);
    write_into_file(&mut image, extents, &dump);
    for &(start, len) in extents {
        encrypt(&mut image, start..start + len, 512, disk.partition);
    }
    std::fs::write(&disk.image, &image).unwrap();
    dump
}

#[test]
fn the_fragmented_pagefile_gives_back_its_dump() {
    let Some(disk) = disk() else { return };
    assert!(
        (4..=8).contains(&disk.pagefile.len()),
        "{:?}",
        disk.pagefile
    );
    let dump = encrypted_dump_in(&disk, &disk.pagefile, pages_filling(&disk.pagefile));
    let out = disk.path("MEMORY.DMP");
    let said = succeeds(&[
        "recover",
        s(&disk.image),
        "--out",
        s(&out),
        "--key",
        s(&disk.key),
    ]);
    assert!(std::fs::read(&out).unwrap() == dump, "the dump differs");
    assert!(
        said.contains(&format!(
            "{} extents, 1 attribute record)",
            disk.pagefile.len()
        )),
        "{said}"
    );
    assert!(said.contains("Full: complete memory dump"), "{said}");
    assert!(said.contains("--key"), "{said}");
    // An existing output is kept without --force, replaced with it.
    fails_leaving_nothing(
        &[
            "recover",
            s(&disk.image),
            "--out",
            s(&out),
            "--key",
            s(&disk.key),
        ],
        &disk.path("never"),
        "already exists",
    );
    succeeds(&[
        "recover",
        s(&disk.image),
        "--out",
        s(&out),
        "--key",
        s(&disk.key),
        "--force",
    ]);
    assert!(std::fs::read(&out).unwrap() == dump);
}

#[test]
fn the_attribute_list_file_gives_back_its_dump() {
    let Some(disk) = disk() else { return };
    assert!(disk.dedicated.len() >= 150, "{}", disk.dedicated.len());
    let dump = encrypted_dump_in(&disk, &disk.dedicated, pages_filling(&disk.dedicated));
    let out = disk.path("MEMORY.DMP");
    let said = succeeds(&[
        "recover",
        s(&disk.image),
        "--out",
        s(&out),
        "--key",
        s(&disk.key),
        "--file",
        "\\DEDICATED.DMP",
    ]);
    assert!(std::fs::read(&out).unwrap() == dump, "the dump differs");
    assert!(
        said.contains(&format!(
            "{} extents, 2 attribute records",
            disk.dedicated.len()
        )),
        "{said}"
    );
}

/// What `ntfs` 0.4 alone makes of the dedicated file, whose $DATA starts in the base record
/// and goes on in an extension record: `NtfsFile::data` hands back the extension's piece as
/// if it were the whole stream (length 0, first byte at the extension's first run), and the
/// base record's own $DATA stops at the base record's runs. Either way, without the
/// attribute-list walk `recover` does, the dump would be empty or cut short.
#[test]
fn ntfs_alone_misses_the_runs_in_the_extension_record() {
    let Some(disk) = disk() else { return };
    struct Window(std::fs::File, u64);
    impl Read for Window {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(out)
        }
    }
    impl Seek for Window {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            let to = match to {
                SeekFrom::Start(at) => SeekFrom::Start(at + self.1),
                other => other,
            };
            Ok(self.0.seek(to)? - self.1)
        }
    }
    let allocated: u64 = disk.dedicated.iter().map(|(_, len)| len).sum();
    let mut fs = Window(std::fs::File::open(&disk.image).unwrap(), disk.partition);
    let mut ntfs = ntfs::Ntfs::new(&mut fs).unwrap();
    ntfs.read_upcase_table(&mut fs).unwrap();
    let root = ntfs.root_directory(&mut fs).unwrap();
    let index = root.directory_index(&mut fs).unwrap();
    let mut finder = index.finder();
    let entry =
        ntfs::indexes::NtfsFileNameIndex::find(&mut finder, &ntfs, &mut fs, "dedicated.dmp")
            .unwrap()
            .unwrap();
    let file = entry.to_file(&ntfs, &mut fs).unwrap();

    // The crate's own answer for the file's data.
    let item = file.data(&mut fs, "").unwrap().unwrap();
    let attribute = item.to_attribute().unwrap();
    let value = attribute.value(&mut fs).unwrap();
    let first = value
        .data_position()
        .value()
        .map(|p| p.get() + disk.partition);
    assert!(
        value.len() != allocated || first != Some(disk.dedicated[0].0),
        "ntfs 0.4 read the file's data right (length {}, from {first:?}): the attribute-list \
         walk may be unneeded now",
        value.len()
    );
    let mut read = Vec::new();
    value.attach(&mut fs).read_to_end(&mut read).unwrap();
    assert!(
        (read.len() as u64) < allocated,
        "it read {} bytes",
        read.len()
    );

    // The base record's $DATA, taken as it is.
    let base = file
        .attributes_raw()
        .map(Result::unwrap)
        .find(|a| a.ty().ok() == Some(ntfs::NtfsAttributeType::Data))
        .unwrap();
    let ntfs::attribute_value::NtfsAttributeValue::NonResident(value) =
        base.value(&mut fs).unwrap()
    else {
        panic!("the base record's $DATA is not non-resident");
    };
    let runs: Vec<(u64, u64)> = value
        .data_runs()
        .map(|run| {
            let run = run.unwrap();
            (
                run.data_position().value().unwrap().get() + disk.partition,
                run.allocated_size(),
            )
        })
        .collect();
    assert!(
        runs.len() < disk.dedicated.len(),
        "the base record holds all {} runs: the fixture no longer tests the attribute list",
        runs.len()
    );
    // What it does hold is the start of what The Sleuth Kit reads.
    assert_eq!(runs[..], disk.dedicated[..runs.len()]);
}

#[test]
fn disk_absolute_tweaks_4096_byte_units_and_an_area() {
    let Some(disk) = disk() else { return };
    let mut image = std::fs::read(&disk.image).unwrap();
    let dump = synthetic_dump(200, 7);
    write_into_file(&mut image, &disk.pagefile, &dump);
    // The area: from the file's first cluster to its last, in disk offsets.
    let from = disk.pagefile.iter().map(|e| e.0).min().unwrap();
    let to = disk.pagefile.iter().map(|e| e.0 + e.1).max().unwrap();
    for &(start, len) in &disk.pagefile {
        encrypt(&mut image, start..start + len, 4096, 0);
    }
    std::fs::write(&disk.image, &image).unwrap();
    let out = disk.path("MEMORY.DMP");
    let area = format!("{from:#x}..{to:#x}");
    succeeds(&[
        "recover",
        s(&disk.image),
        "--out",
        s(&out),
        "--key",
        s(&disk.key),
        "--data-unit",
        "4096",
        "--tweak-base",
        "disk",
        "--area",
        &area,
    ]);
    assert!(std::fs::read(&out).unwrap() == dump);
    // The driver's defaults instead: the header does not decrypt.
    let other = disk.path("other.dmp");
    fails_leaving_nothing(
        &[
            "recover",
            s(&disk.image),
            "--out",
            s(&other),
            "--key",
            s(&disk.key),
        ],
        &other,
        "no crash dump header (PAGEDU64) under --key",
    );
}

#[test]
fn a_disk_of_4096_byte_sectors() {
    let Some(fixture) = fixture() else { return };
    let dir = tempfile::tempdir().unwrap();
    let image_path = dir.path().join("disk4k.img");
    let key = dir.path().join("key.bin");
    std::fs::write(&key, KEY).unwrap();
    let partition: u64 = std::fs::read_to_string(fixture.join("partition4k.offset"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let extents = read_extents(&fixture.join("pagefile4k.extents"));
    let mut image = std::fs::read(fixture.join("disk4k.img")).unwrap();
    let dump = synthetic_dump(pages_filling(&extents), 4);
    write_into_file(&mut image, &extents, &dump);
    for &(start, len) in &extents {
        encrypt(&mut image, start..start + len, 4096, partition);
    }
    std::fs::write(&image_path, &image).unwrap();
    let out = dir.path().join("MEMORY.DMP");
    let said = succeeds(&[
        "recover",
        s(&image_path),
        "--out",
        s(&out),
        "--key",
        s(&key),
        "--data-unit",
        "4096",
    ]);
    assert!(std::fs::read(&out).unwrap() == dump, "the dump differs");
    assert!(said.contains("GPT table (4096-byte sectors"), "{said}");
}

#[test]
fn a_volume_encrypted_as_a_whole_is_read_through_the_key() {
    let Some(disk) = disk() else { return };
    let mut image = std::fs::read(&disk.image).unwrap();
    let dump = synthetic_dump(300, 11);
    write_into_file(&mut image, &disk.pagefile, &dump);
    let partition_len = 64 << 20;
    encrypt(
        &mut image,
        disk.partition..disk.partition + partition_len,
        512,
        disk.partition,
    );
    assert!(&image[disk.partition as usize + 3..][..8] != b"NTFS    ");
    std::fs::write(&disk.image, &image).unwrap();
    let out = disk.path("MEMORY.DMP");
    let said = succeeds(&[
        "recover",
        s(&disk.image),
        "--out",
        s(&out),
        "--key",
        s(&disk.key),
    ]);
    assert!(std::fs::read(&out).unwrap() == dump);
    assert!(said.contains("metadata was encrypted too"), "{said}");
}

#[test]
fn each_failure_says_why_and_leaves_nothing() {
    let Some(disk) = disk() else { return };
    let dump = encrypted_dump_in(&disk, &disk.pagefile, 300);
    let image = std::fs::read(&disk.image).unwrap();
    let out = disk.path("MEMORY.DMP");
    let variant = |name: &str, change: &dyn Fn(&mut Vec<u8>)| {
        let mut copy = image.clone();
        change(&mut copy);
        let path = disk.path(name);
        std::fs::write(&path, copy).unwrap();
        path
    };
    let recover = |image: &Path, extra: &[&str], reason: &str| {
        let mut args = vec!["recover", s(image), "--out", s(&out), "--key", s(&disk.key)];
        args.extend_from_slice(extra);
        fails_leaving_nothing(&args, &out, reason)
    };

    // No partition table: the protective MBR, both GPT headers gone.
    let bare = variant("bare.img", &|image| {
        image[..0x400].fill(0);
        let len = image.len();
        image[len - 512..].fill(0);
    });
    recover(&bare, &[], "no partition table");
    // No NTFS: the boot sector wiped.
    let partition = disk.partition as usize;
    let wiped = variant("wiped.img", &|image| {
        image[partition..partition + 512].fill(0);
    });
    recover(&wiped, &[], "no NTFS volume");
    recover(&disk.image, &["--partition", "2"], "has no partition 2");
    // The file absent.
    recover(
        &disk.image,
        &["--file", "\\DumpStack\\missing.dmp"],
        "no such file",
    );
    recover(
        &disk.image,
        &["--file", "\\nothing.sys"],
        "\\nothing.sys: no such file",
    );
    // A file too small for a dump.
    recover(
        &disk.image,
        &["--file", "\\keeper-pagefile-0"],
        "no dump in it",
    );
    // No dump in the file: the dedicated file holds only pseudo-random bytes.
    recover(
        &disk.image,
        &["--file", "\\dedicated.dmp"],
        "no crash dump header (PAGEDU64)",
    );
    // No key fits.
    let wrong = disk.path("wrong.key");
    let mut key = KEY;
    key[0] ^= 1;
    std::fs::write(&wrong, key).unwrap();
    fails_leaving_nothing(
        &[
            "recover",
            s(&disk.image),
            "--out",
            s(&out),
            "--key",
            s(&wrong),
        ],
        &out,
        "no crash dump header (PAGEDU64) under --key",
    );
    // A header that does not fit the file.
    let (first, _) = disk.pagefile[0];
    let oversized = variant("oversized.img", &|image| {
        let mut plain = dump[..0x1000].to_vec();
        plain[0xFA0..0xFA8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        image[first as usize..first as usize + 0x1000].copy_from_slice(&plain);
        encrypt(image, first..first + 0x1000, 512, disk.partition);
    });
    recover(&oversized, &[], "but the file holds");
    // A dump in the clear.
    let clear = variant("clear.img", &|image| {
        write_into_file(image, &disk.pagefile, &synthetic_dump(10, 3));
    });
    recover(&clear, &[], "in the clear");
    // A truncated image: cut inside the pagefile's last extent.
    let (last, _) = *disk.pagefile.last().unwrap();
    let cut = variant("cut.img", &|image| image.truncate(last as usize + 0x1000));
    recover(&cut, &[], "truncated image");
    // Standard output is refused: the dump is checked before it takes its name.
    let output = dumpcrypt(&[
        "recover",
        s(&disk.image),
        "--out",
        "-",
        "--key",
        s(&disk.key),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("cannot be standard output"),
        "{}",
        text(&output)
    );
}

/// `START LENGTH` lines of `extents`, read from `image` in file order.
fn read_along(image: &[u8], extents: &[(u64, u64)]) -> Vec<u8> {
    extents
        .iter()
        .flat_map(|&(start, len)| {
            image[start as usize..(start + len) as usize]
                .iter()
                .copied()
        })
        .collect()
}

/// Issue 14's chain: the real driver code writes a crash dump through the simulated stack
/// into the extents of a file on a real NTFS disk (`simulate --disk --dump-extents`, the
/// extents as sleuthkit read them), and `recover`, following the file system alone, gives
/// back exactly that dump: for the fragmented pagefile (an automatic, bitmap dump) and for
/// the file whose runs are in an attribute list (a full dump).
#[test]
fn a_dump_the_driver_wrote_into_a_real_file_is_recovered() {
    let Some(disk) = disk() else { return };
    let fixture = fixture().unwrap();
    for (extents_file, file, kind) in [
        ("pagefile.extents", "\\pagefile.sys", "automatic"),
        ("dedicated.extents", "\\dedicated.dmp", "full"),
    ] {
        let (image, reference, out) = (
            disk.path(&format!("{kind}.img")),
            disk.path(&format!("{kind}.ref")),
            disk.path(&format!("{kind}.dmp")),
        );
        let extents_path = fixture.join(extents_file);
        let simulated = succeeds(&[
            "simulate",
            "--disk",
            s(&disk.image),
            "--dump-extents",
            s(&extents_path),
            "--partition-offset",
            &disk.partition.to_string(),
            "--key",
            s(&disk.key),
            "--memory",
            "1MiB",
            "--dump-kind",
            kind,
            "--image",
            s(&image),
            "--reference",
            s(&reference),
        ]);
        assert!(simulated.contains("verdict      PASS"), "{simulated}");
        let recovered = succeeds(&[
            "recover",
            s(&image),
            "--key",
            s(&disk.key),
            "--file",
            file,
            "--out",
            s(&out),
        ]);
        // The dump the simulator wrote: the reference read along the file's extents, cut
        // at the header's RequiredDumpSpace.
        let written = read_along(
            &std::fs::read(&reference).unwrap(),
            &read_extents(&extents_path),
        );
        assert_eq!(&written[..8], b"PAGEDU64", "{file}");
        let size = u64::from_le_bytes(written[0xFA0..0xFA8].try_into().unwrap()) as usize;
        let dump = std::fs::read(&out).unwrap();
        assert_eq!(dump.len(), size, "{file}: {recovered}");
        assert!(
            dump == written[..size],
            "{file}: the recovered dump differs"
        );

        // kdmp-parser opens it, and every physical page it maps is the simulated memory's
        // (the machine rebuilt here from simulate's default seed, 1).
        let machine = crashdmp_sim::machine::Machine::new(
            crashdmp_sim::machine::MachineConfig {
                memory: 1 << 20,
                seed: 1,
                dump_kind: match kind {
                    "full" => crashdmp_sim::dump_format::DumpKind::Full,
                    _ => crashdmp_sim::dump_format::DumpKind::Automatic,
                },
                ..crashdmp_sim::machine::MachineConfig::default()
            },
            None,
            None,
        )
        .unwrap();
        let parser = kdmp_parser::parse::KernelDumpParser::new(&out)
            .unwrap_or_else(|error| panic!("{file}: kdmp-parser refuses the dump: {error}"));
        let mut pages = 0;
        for (gpa, offset) in parser.physmem() {
            let pfn = u64::from(gpa) / 4096;
            let page = machine
                .physical_page(pfn)
                .unwrap_or_else(|| panic!("{file}: page {pfn:#x} lies in a hole"));
            let offset = offset as usize;
            assert!(
                dump[offset..offset + 4096] == *page,
                "{file}: page {pfn:#x} differs from the simulated memory"
            );
            pages += 1;
        }
        assert_eq!(pages, machine.crash_dump().pages.pages(), "{file}");

        // find-dump sees the header in the reference (the disk without the filter), and the
        // file system says the file is fragmented: it refuses to cut one run as "the dump".
        let cut = disk.path(&format!("{kind}.cut"));
        let refused = fails_leaving_nothing(
            &["find-dump", s(&reference), "--extract", s(&cut)],
            &cut,
            "dumpcrypt recover",
        );
        let name = file.trim_start_matches('\\');
        assert!(refused.contains(name), "{file}: {refused}");
    }
}
