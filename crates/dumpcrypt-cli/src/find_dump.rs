//! `dumpcrypt find-dump`: finds Windows crash dump headers in a raw image and extracts a dump
//! by the size its header gives.
//!
//! A tool that knows no file system can only take the dump's bytes as one contiguous run from
//! its header on. That is the dump when its file lies in one extent on the disk (a dedicated
//! dump file usually does); for a fragmented file, the extents must come from the file
//! system (docs/recovery.md).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::input::{self, progress_bar};
use crate::options::{human, parse_size, CliError};
use crate::output::{self, Output, Rules};

/// Header fields, from the public layouts of DUMP_HEADER32 (0x1000 bytes) and DUMP_HEADER64
/// (0x2000 bytes), as Volatility's `volatility/plugins/overlays/windows/crash_vtypes.py`
/// (`_DMP_HEADER`, `_DMP_HEADER64`) gives them:
/// - 64-bit: Signature "PAGE" @0x0, ValidDump "DU64" @0x4, BugCheckCode u32 @0x38,
///   DumpType u32 @0xF98, RequiredDumpSpace u64 @0xFA0.
/// - 32-bit: Signature "PAGE" @0x0, ValidDump "DUMP" @0x4, BugCheckCode u32 @0x28,
///   DumpType u32 @0xF88, RequiredDumpSpace u64 @0xFA0.
///
/// RequiredDumpSpace is the whole dump's size, header included. DumpType values as rizin's
/// `librz/bin/format/dmp/dmp_specs.h` lists them (DMP_DUMPTYPE_*).
pub mod layout {
    pub const SIGNATURE_64: &[u8; 8] = b"PAGEDU64";
    pub const SIGNATURE_32: &[u8; 8] = b"PAGEDUMP";
    pub const HEADER_64_LEN: u64 = 0x2000;
    pub const HEADER_32_LEN: u64 = 0x1000;
    pub const BUGCHECK_CODE_64: usize = 0x38;
    pub const BUGCHECK_CODE_32: usize = 0x28;
    pub const DUMP_TYPE_64: usize = 0xF98;
    pub const DUMP_TYPE_32: usize = 0xF88;
    pub const REQUIRED_DUMP_SPACE: usize = 0xFA0;
    /// No dump is larger: 4 PiB, the physical memory of Windows with 5-level paging.
    pub const MAX_DUMP_SPACE: u64 = 1 << 52;
    /// The fields read lie in the first page of either header, and the signature of a
    /// bitmap dump's summary (`SDMP`, `FDMP`) just after the header.
    pub const FIELDS_LEN: usize = 0x2000 + 4;
}

/// The signature `sector` starts with, if it is a crash dump header's: `PAGEDU64` (64-bit)
/// or `PAGEDUMP` (32-bit).
pub fn crash_dump_signature(sector: &[u8]) -> Option<&'static str> {
    match sector.get(..8)? {
        signature if signature == layout::SIGNATURE_64 => Some("PAGEDU64"),
        signature if signature == layout::SIGNATURE_32 => Some("PAGEDUMP"),
        _ => None,
    }
}

/// Headers are looked for at every multiple of this (the smallest sector).
pub const SECTOR: u64 = 512;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The raw image to search: a decrypted disk or partition image, a file or a block
    /// device (`-`: standard input, when it is a file: `< disk.raw`). It is read at the
    /// offsets found, so a pipe is refused.
    pub image: PathBuf,
    /// Write the dump out (RequiredDumpSpace bytes from its header on, as one contiguous
    /// run): a new file, a device or FIFO (written in place), or `-` for standard output (not
    /// a terminal, unless --force).
    #[arg(long, value_name = "OUT")]
    pub extract: Option<PathBuf>,
    /// Replace an existing --extract file; write to a terminal.
    #[arg(long)]
    pub force: bool,
    /// The header to use (its image offset, as listed), instead of scanning the image.
    #[arg(long, value_name = "OFFSET", value_parser = parse_size)]
    pub at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Bits64,
    Bits32,
}

/// A crash dump header found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub offset: u64,
    pub width: Width,
    pub dump_type: Option<u32>,
    /// A bitmap dump's `_SUMMARY_DUMP` signature, just after the header.
    pub summary: Option<[u8; 4]>,
    pub required_space: Option<u64>,
    pub bugcheck_code: Option<u32>,
    /// Why the dump cannot be taken from the image as it is; `None` when it can.
    pub problem: Option<String>,
}

impl Found {
    fn header_len(&self) -> u64 {
        match self.width {
            Width::Bits64 => layout::HEADER_64_LEN,
            Width::Bits32 => layout::HEADER_32_LEN,
        }
    }

    /// Reads the fields from `header` (up to [`layout::FIELDS_LEN`] bytes from the
    /// signature; fewer when the image ends) and judges the size against the image.
    fn parse(offset: u64, header: &[u8], image_len: u64) -> Option<Self> {
        let width = match header.get(..8)? {
            signature if signature == layout::SIGNATURE_64 => Width::Bits64,
            signature if signature == layout::SIGNATURE_32 => Width::Bits32,
            _ => return None,
        };
        let u32_at = |at: usize| {
            header
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        };
        let u64_at = |at: usize| {
            header
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let (dump_type, bugcheck_code) = match width {
            Width::Bits64 => (
                u32_at(layout::DUMP_TYPE_64),
                u32_at(layout::BUGCHECK_CODE_64),
            ),
            Width::Bits32 => (
                u32_at(layout::DUMP_TYPE_32),
                u32_at(layout::BUGCHECK_CODE_32),
            ),
        };
        let summary_at = match width {
            Width::Bits64 => layout::HEADER_64_LEN as usize,
            Width::Bits32 => layout::HEADER_32_LEN as usize,
        };
        let summary = header
            .get(summary_at..summary_at + 4)
            .map(|b| <[u8; 4]>::try_from(b).expect("4 bytes"));
        let mut found = Self {
            offset,
            width,
            dump_type,
            summary,
            bugcheck_code,
            required_space: u64_at(layout::REQUIRED_DUMP_SPACE),
            problem: None,
        };
        let header_len = found.header_len();
        let room = image_len - offset;
        found.problem = match found.required_space {
            None => Some(format!(
                "truncated: the image ends {room:#x} bytes into the header"
            )),
            Some(size) if size < header_len => Some(format!(
                "corrupted header: RequiredDumpSpace {size:#x} is smaller than the \
                 {header_len:#x}-byte header itself"
            )),
            Some(size) if size > layout::MAX_DUMP_SPACE => Some(format!(
                "corrupted header: RequiredDumpSpace {size:#x} is absurd (more than the 4 PiB \
                 of memory Windows can address)"
            )),
            Some(size) if size > room => Some(format!(
                "truncated: the dump ({size:#x} bytes) runs {:#x} bytes past the end of the \
                 image (a truncated image, or a corrupted size)",
                size - room
            )),
            Some(_) => None,
        };
        Some(found)
    }

    fn describe(&self) -> String {
        let width = match self.width {
            Width::Bits64 => "64-bit PAGEDU64",
            Width::Bits32 => "32-bit PAGEDUMP",
        };
        let kind = self.dump_type.map_or("?".to_string(), |t| {
            format!("{} (DumpType {t})", dump_type_name(t, self.summary))
        });
        let size = self
            .required_space
            .map_or("?".to_string(), |s| format!("{s:#x} bytes ({})", human(s)));
        let bugcheck = self
            .bugcheck_code
            .map_or("?".to_string(), |c| format!("{c:#010x}"));
        let mut text = format!(
            "{:#014x}  {width}  {kind}  size {size}  bug check {bugcheck}",
            self.offset
        );
        if let Some(problem) = &self.problem {
            text.push_str(&format!("\n                {problem}"));
        }
        text
    }
}

/// The header's DumpType as the parsers name it: kdmp-parser's `DumpType` (Full 1, Bmp 5,
/// LiveKernelMemory 6, KernelMemory 8, KernelAndUserMemory 9, CompleteMemory 10) and
/// Volatility 3's crash layer (1 a run list, 5 a bitmap), with a bitmap dump's summary
/// signature saying what it holds: `SDMP` a kernel or automatic memory dump (kernel pages),
/// `FDMP` a complete memory dump (every page). 2 to 4 are the older summary, header-only and
/// triage dumps (rizin `dmp_specs.h`).
pub fn dump_type_name(dump_type: u32, summary: Option<[u8; 4]>) -> &'static str {
    match (dump_type, summary.as_ref().map(|s| &s[..])) {
        (1, _) => "Full: complete memory dump, physical memory runs",
        (5, Some(b"SDMP")) => "Bmp: kernel or automatic memory dump, SDMP bitmap",
        (5, Some(b"FDMP")) => "Bmp: complete memory dump, FDMP bitmap",
        (5, _) => "Bmp: bitmap dump with no SDMP or FDMP summary",
        (2, _) => "summary dump",
        (3, _) => "header only",
        (4, _) => "triage dump",
        (6, _) => "LiveKernelMemory: live kernel memory dump, bitmap",
        (8, _) => "KernelMemory: kernel memory dump (.dump /k)",
        (9, _) => "KernelAndUserMemory: kernel and user memory dump (.dump /ka)",
        (10, _) => "CompleteMemory: complete memory dump (.dump /f)",
        _ => "unknown dump type",
    }
}

/// Reads up to `out.len()` bytes at `offset`; fewer only at the end of the image.
fn read_at(file: &mut File, path: &Path, offset: u64, out: &mut [u8]) -> Result<usize, CliError> {
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| CliError::file(path, e))?;
    let mut done = 0;
    while done < out.len() {
        match file.read(&mut out[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CliError::file(path, e)),
        }
    }
    Ok(done)
}

/// Every header at a sector boundary of the image.
pub fn scan(file: &mut File, path: &Path, image_len: u64) -> Result<Vec<Found>, CliError> {
    const CHUNK: usize = 8 << 20;
    let progress = progress_bar(Some(image_len));
    let mut buffer = vec![0u8; CHUNK];
    let mut header = vec![0u8; layout::FIELDS_LEN];
    let mut found = Vec::new();
    let mut offset = 0u64;
    while offset < image_len {
        let len = read_at(file, path, offset, &mut buffer)?;
        if len == 0 {
            break;
        }
        for at in (0..len).step_by(SECTOR as usize) {
            let Some(signature) = buffer.get(at..at + 8) else {
                continue;
            };
            if signature == layout::SIGNATURE_64 || signature == layout::SIGNATURE_32 {
                let header_offset = offset + at as u64;
                let got = read_at(file, path, header_offset, &mut header)?;
                if let Some(one) = Found::parse(header_offset, &header[..got], image_len) {
                    found.push(one);
                }
            }
        }
        offset += len as u64;
        progress.set_position(offset);
    }
    progress.finish_and_clear();
    Ok(found)
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    let rules = Rules {
        option: "--extract",
        streams: true,
        force: args.force,
        binary: true,
        secret: false,
    };
    // The output's checks come before any work.
    let destination = args
        .extract
        .as_deref()
        .map(|path| output::resolve(path, &rules))
        .transpose()?;
    let input = input::open(&args.image, "IMAGE")?;
    let image_len = input.require_len(
        "find-dump reads the image at the offsets it finds (it goes back to a header to extract \
         its dump)",
    )?;
    let image = input.name.clone();
    let mut file = input.file;
    let candidates = match args.at {
        Some(offset) => {
            let mut header = vec![0u8; layout::FIELDS_LEN];
            let got = if offset < image_len {
                read_at(&mut file, &args.image, offset, &mut header)?
            } else {
                0
            };
            match Found::parse(offset, &header[..got], image_len) {
                Some(found) => vec![found],
                None => {
                    return Err(CliError::Usage(format!(
                        "{image}: no crash dump header (PAGEDU64 or PAGEDUMP) at {offset:#x}"
                    )))
                }
            }
        }
        None => scan(&mut file, &args.image, image_len)?,
    };
    let quiet = matches!(destination, Some(output::Destination::Stdout));
    if candidates.is_empty() {
        return Err(CliError::Usage(format!(
            "{image}: no crash dump header (PAGEDU64 or PAGEDUMP at a {SECTOR}-byte boundary). \
             If the image is encrypted, decrypt it first, with the key and the options the \
             driver was configured with: with a wrong key or wrong options the decrypted image \
             holds no header."
        )));
    }
    if !quiet {
        crate::outln!("offset          header           type, size, bug check");
        for found in &candidates {
            crate::outln!("{}", found.describe());
        }
    }
    let usable: Vec<&Found> = candidates.iter().filter(|f| f.problem.is_none()).collect();
    let Some(destination) = destination else {
        if usable.is_empty() {
            return Err(CliError::Usage(format!(
                "{image}: every crash dump header found is damaged (see above)"
            )));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let chosen = match (args.at, usable.as_slice()) {
        (Some(_), _) => &candidates[0],
        (None, [one]) => one,
        (None, []) => {
            return Err(CliError::Usage(format!(
                "{image}: every crash dump header found is damaged: nothing to extract"
            )))
        }
        (None, _) => {
            return Err(CliError::Usage(format!(
                "{image}: {} dumps found; choose one with --at OFFSET",
                usable.len()
            )))
        }
    };
    if let Some(problem) = &chosen.problem {
        return Err(CliError::Usage(format!(
            "{image}: the dump at {:#x} cannot be extracted: {problem}",
            chosen.offset
        )));
    }
    let size = chosen.required_space.expect("a usable header has a size");
    if let Some(file) = fragmented_file_at(&mut file, image_len, chosen.offset) {
        return Err(CliError::Usage(format!(
            "{image}: the dump at {:#x} is the start of {file}: one contiguous run from there \
             is not the dump. Use `dumpcrypt recover` on the encrypted disk image, which \
             follows the file's extents",
            chosen.offset
        )));
    }
    let output = Output::open(destination, &rules, &[&args.image])?;
    output.ensure_space(size)?;
    let name = output.name().to_string();
    let output = copy_out(&mut file, &args.image, chosen.offset, size, output)?;
    output.commit()?;
    if !quiet {
        crate::outln!(
            "extracted {size:#x} bytes ({}) from image offset {:#x} to {name}, as ONE CONTIGUOUS \
             RUN: this is the dump only if its file lies contiguously on the disk. If WinDbg \
             reports a corrupted dump, the file is fragmented: take its extents from the file \
             system (docs/recovery.md).",
            human(size),
            chosen.offset
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a file system on the image says the dump at `offset` is not one contiguous run:
/// an NTFS partition (found in the clear through the GPT or MBR) with a file in its root
/// directory (`\pagefile.sys`, a dedicated dump file) whose first extent starts there and
/// that has more than one. That file's name and extent count, for the refusal; `None` when
/// no file system says so (none readable in the clear, or no such file).
fn fragmented_file_at(file: &mut File, image_len: u64, offset: u64) -> Option<String> {
    let table = crate::disk::read_table(file, image_len, "").ok()?;
    let partition = table
        .partitions
        .iter()
        .find(|p| (p.start..p.start + p.len).contains(&offset))?;
    if !crate::disk::is_ntfs_at(file, partition.start).unwrap_or(false) {
        return None;
    }
    let mut reader = crate::disk::PartitionReader::new(file.try_clone().ok()?, partition, None);
    let mut ntfs = ntfs::Ntfs::new(&mut reader).ok()?;
    ntfs.read_upcase_table(&mut reader).ok()?;
    let root = ntfs.root_directory(&mut reader).ok()?;
    let index = root.directory_index(&mut reader).ok()?;
    let mut entries = index.entries();
    while let Some(entry) = entries.next(&mut reader) {
        let Ok(entry) = entry else { continue };
        let Ok(found) = entry.to_file(&ntfs, &mut reader) else {
            continue;
        };
        if found.is_directory() {
            continue;
        }
        // The name as the directory index holds it.
        let name = match entry.key() {
            Some(Ok(key)) => format!("\\{}", key.name().to_string_lossy()),
            _ => "a file".to_string(),
        };
        let Ok(read) = crate::ntfs_extents::extents(&ntfs, &mut reader, &found, &name) else {
            continue;
        };
        if read.extents.len() > 1
            && read
                .extents
                .first()
                .is_some_and(|first| partition.start + first.start == offset)
        {
            return Some(format!(
                "{name} on partition {}, which NTFS keeps in {} extents",
                partition.number,
                read.extents.len()
            ));
        }
    }
    None
}

fn copy_out(
    file: &mut File,
    path: &Path,
    offset: u64,
    size: u64,
    output: Output,
) -> Result<Output, CliError> {
    const CHUNK: u64 = 8 << 20;
    let progress = progress_bar(Some(size));
    let mut buffer = vec![0u8; CHUNK as usize];
    let mut done = 0u64;
    while done < size {
        let len = CHUNK.min(size - done) as usize;
        let got = read_at(file, path, offset + done, &mut buffer[..len])?;
        if got < len {
            return Err(CliError::Usage(format!(
                "{}: the image ended at {:#x}, inside the dump",
                path.display(),
                offset + done + got as u64
            )));
        }
        output.write_all(&buffer[..len])?;
        done += len as u64;
        progress.set_position(done);
    }
    progress.finish_and_clear();
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(signature: &[u8; 8], dump_type_at: usize, dump_type: u32, size: u64) -> Vec<u8> {
        let mut header = vec![0u8; 0x1000];
        header[..8].copy_from_slice(signature);
        header[dump_type_at..dump_type_at + 4].copy_from_slice(&dump_type.to_le_bytes());
        header[0xFA0..0xFA8].copy_from_slice(&size.to_le_bytes());
        header
    }

    #[test]
    fn both_widths_are_read_at_their_offsets() {
        let found = Found::parse(0x1000, &header(b"PAGEDU64", 0xF98, 1, 0x40_2000), 1 << 30);
        let found = found.unwrap();
        assert_eq!(found.width, Width::Bits64);
        assert_eq!(found.dump_type, Some(1));
        assert_eq!(found.required_space, Some(0x40_2000));
        assert_eq!(found.problem, None);
        let found = Found::parse(0, &header(b"PAGEDUMP", 0xF88, 2, 0x10_1000), 1 << 30).unwrap();
        assert_eq!(found.width, Width::Bits32);
        assert_eq!(found.dump_type, Some(2));
        assert_eq!(found.problem, None);
        assert!(Found::parse(0, &header(b"PAGEPAGE", 0xF98, 1, 0x4000), 1 << 30).is_none());
    }

    #[test]
    fn dump_types_are_named_as_the_parsers_name_them() {
        let mut bitmap = header(b"PAGEDU64", 0xF98, 5, 0x40_3000);
        bitmap.resize(0x2004, b'P');
        bitmap[0x2000..].copy_from_slice(b"SDMP");
        let found = Found::parse(0, &bitmap, 1 << 30).unwrap();
        assert_eq!(found.summary, Some(*b"SDMP"));
        assert!(found
            .describe()
            .contains("Bmp: kernel or automatic memory dump, SDMP bitmap (DumpType 5)"));
        bitmap[0x2000..].copy_from_slice(b"FDMP");
        let found = Found::parse(0, &bitmap, 1 << 30).unwrap();
        assert!(found
            .describe()
            .contains("Bmp: complete memory dump, FDMP bitmap"));
        let full = Found::parse(0, &header(b"PAGEDU64", 0xF98, 1, 0x40_2000), 1 << 30).unwrap();
        assert!(full
            .describe()
            .contains("Full: complete memory dump, physical memory runs (DumpType 1)"));
        assert_eq!(
            dump_type_name(8, None),
            "KernelMemory: kernel memory dump (.dump /k)"
        );
        assert_eq!(dump_type_name(77, None), "unknown dump type");
    }

    #[test]
    fn absurd_sizes_and_short_images_are_problems() {
        let problem = |size, image_len| {
            Found::parse(0x1000, &header(b"PAGEDU64", 0xF98, 1, size), image_len)
                .unwrap()
                .problem
                .unwrap()
        };
        assert!(problem(0x10, 1 << 30).contains("smaller than the 0x2000-byte header"));
        assert!(problem(u64::MAX, 1 << 30).contains("is absurd"));
        assert!(problem(1 << 40, 1 << 30).contains("runs 0xffc0001000 bytes past the end"));
        assert!(problem(0x4000, 0x4000).contains("runs 0x1000 bytes past the end"));
        let cut = Found::parse(0, &header(b"PAGEDU64", 0xF98, 1, 0x4000)[..0x100], 0x100);
        assert!(cut.unwrap().problem.unwrap().contains("into the header"));
    }
}
