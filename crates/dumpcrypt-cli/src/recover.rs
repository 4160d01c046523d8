//! `dumpcrypt recover`: the crash dump out of an encrypted disk image in one command: the
//! partition from the GPT or MBR, the NTFS volume on it, the dump file's extents from the
//! file system (across an attribute list), each extent decrypted with the tweaks of its own
//! disk position, the dump cut at its header's size and checked before it takes its name.
//!
//! Keys are tried as a list of candidates: the one under which the dump header decrypts is
//! kept and named. Today the list is `--key`; a sealed-key source (`--identity` with
//! `--sealed-keys`) adds its keys in [`candidate_keys`] and nothing else changes.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;

use dumpcrypt_core::config::{Config, Policy};
use dumpcrypt_xts::{Backend, XtsAes256, KEY_LEN};

use crate::decrypt::Plan;
use crate::disk::{self, Partition, PartitionReader, Table};
use crate::find_dump::{dump_type_name, layout};
use crate::input::{self, progress_bar, read_full};
use crate::ntfs_extents::{self, Extent};
use crate::options::{human, parse_backend, read_key, CliError, TransformArgs};
use crate::output::{self, Output, Rules};
use crate::parameters::{fingerprint, Settings};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The encrypted raw image of the whole disk (GPT or MBR), a file or a block device.
    pub image: PathBuf,
    /// Where to write the dump: a new file (replaced only with --force), which takes its name
    /// only once the dump is complete and checked.
    #[arg(long, value_name = "MEMORY.DMP")]
    pub out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
    /// Key file: the 64 bytes the driver was configured with.
    #[arg(
        long,
        required_unless_present = "identity",
        conflicts_with = "identity"
    )]
    pub key: Option<PathBuf>,
    /// Instead of --key, for the sealed key source: the age identity file that opens the
    /// sealed keys of --sealed-keys; each key that opens is tried, newest first, and the one
    /// under which the dump header decrypts is used.
    #[arg(long, value_name = "FILE", requires = "sealed_keys")]
    pub identity: Option<PathBuf>,
    /// With --identity: a `reg export` of the Parameters or the SealedKeys key.
    #[arg(long = "sealed-keys", value_name = "FILE.reg", requires = "identity")]
    pub sealed_keys: Option<PathBuf>,
    /// The dump file on the volume: the page file, or a dedicated dump file
    /// (`\DumpStack\dedicated.dmp`); `\` or `/` separate, case does not matter.
    #[arg(long, default_value = "\\pagefile.sys")]
    pub file: String,
    /// The partition holding the volume, by its number in the table (from 1); needed only
    /// when several NTFS partitions are found.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
    #[command(flatten)]
    pub transform: TransformArgs,
    /// The transform's backend, as the driver's Backend value: auto (the fastest here),
    /// vaes512, vaes256, aesni or portable.
    #[arg(long, value_parser = parse_backend, default_value = "auto")]
    pub backend: Backend,
}

/// A key that may be the one the driver used, with where it came from.
struct Candidate {
    /// For messages: `--key FILE`.
    source: String,
    key: [u8; KEY_LEN],
}

impl Drop for Candidate {
    fn drop(&mut self) {
        self.key.fill(0);
        std::hint::black_box(&self.key);
    }
}

/// A candidate ready to decrypt: its configuration (geometry) and expanded cipher.
struct Keyed {
    source: String,
    fingerprint: String,
    config: Config,
    xts: XtsAes256,
}

/// Every key to try, in order: `--key`'s, or each sealed key `--identity` opens, newest
/// first.
fn candidate_keys(args: &Args) -> Result<Vec<Candidate>, CliError> {
    match (&args.key, &args.identity, &args.sealed_keys) {
        (Some(key), _, _) => Ok(vec![Candidate {
            source: format!("--key {}", key.display()),
            key: read_key(key)?,
        }]),
        (None, Some(identity), Some(sealed_keys)) => {
            let entries = crate::unseal::unseal_all(identity, sealed_keys)?;
            let candidates: Vec<Candidate> = entries
                .iter()
                .filter_map(|entry| {
                    entry.key().map(|key| Candidate {
                        source: format!(
                            "the sealed key of {} ({})",
                            entry.stamp,
                            entry.stamp.readable()
                        ),
                        key: *key.bytes(),
                    })
                })
                .collect();
            if candidates.is_empty() {
                return Err(CliError::Usage(format!(
                    "none of the {} sealed keys in {} opens with the identity {}",
                    entries.len(),
                    sealed_keys.display(),
                    identity.display()
                )));
            }
            Ok(candidates)
        }
        _ => Err(CliError::Usage(
            "give --key FILE, or --identity FILE with --sealed-keys FILE.reg".into(),
        )),
    }
}

/// Checks the transform options with the driver's own parser, and expands each key.
fn prepare(args: &Args, candidates: &[Candidate]) -> Result<Vec<Keyed>, CliError> {
    candidates
        .iter()
        .map(|candidate| {
            let mut settings = Settings::passthrough();
            settings.crash_dump_policy = Policy::Encrypt;
            // Encrypted like the crash dump, so that the parser's hibernation rule is met.
            settings.hibernation_policy = Policy::Encrypt;
            settings.key = Some(candidate.key);
            settings.data_unit = args.transform.data_unit();
            settings.area = args.transform.area.clone();
            settings.tweak_base = args.transform.tweak_base();
            let config = settings.validate()?;
            drop(settings);
            let xts = XtsAes256::exactly(&candidate.key, args.backend)
                .map_err(|error| CliError::Usage(format!("{}: key: {error:?}", candidate.source)))?
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "--backend {}: this processor does not run it",
                        args.backend.name()
                    ))
                })?;
            Ok(Keyed {
                source: candidate.source.clone(),
                fingerprint: fingerprint(&candidate.key),
                config,
                xts,
            })
        })
        .collect()
}

/// How the volume's metadata is read: as it is, or decrypted under one of the keys.
enum Metadata {
    Clear,
    Decrypted(usize),
}

/// The decrypted first data unit of the partition holds an NTFS boot sector.
fn decrypts_to_ntfs(file: &mut File, partition: &Partition, keyed: &Keyed) -> bool {
    let geometry = keyed.config.geometry(partition.start);
    let Ok(plan) = Plan::new(partition.start..partition.start + 4096, geometry, true) else {
        return false;
    };
    let Ok(file) = file.try_clone() else {
        return false;
    };
    let mut reader = PartitionReader::new(file, partition, Some((&plan, &keyed.xts)));
    let mut boot = [0u8; 512];
    matches!(read_full(&mut reader, &mut boot), Ok(512)) && disk::is_ntfs_boot_sector(&boot)
}

/// How a partition holds NTFS, if it does.
fn ntfs_on(file: &mut File, partition: &Partition, keys: &[Keyed]) -> Option<Metadata> {
    if disk::is_ntfs_at(file, partition.start).unwrap_or(false) {
        return Some(Metadata::Clear);
    }
    keys.iter()
        .position(|keyed| decrypts_to_ntfs(file, partition, keyed))
        .map(Metadata::Decrypted)
}

fn describe_partitions(table: &Table) -> String {
    table
        .partitions
        .iter()
        .map(|p| format!("  {:>2}  at {:#x}, {}", p.number, p.start, human(p.len)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Picks the partition: `--partition N`, or the one NTFS partition.
fn choose_partition(
    args: &Args,
    file: &mut File,
    table: &Table,
    keys: &[Keyed],
    image: &str,
) -> Result<(Partition, Metadata), CliError> {
    let listed = describe_partitions(table);
    if let Some(number) = args.partition {
        let Some(partition) = table.partitions.iter().find(|p| p.number == number) else {
            return Err(CliError::Usage(format!(
                "--partition {number}: the {} table of {image} has no partition {number}; it \
                 has:\n{listed}",
                table.scheme
            )));
        };
        return match ntfs_on(file, partition, keys) {
            Some(metadata) => Ok((partition.clone(), metadata)),
            None => Err(CliError::Usage(format!(
                "--partition {number}: holds no NTFS volume (no NTFS boot sector, in the clear \
                 or decrypted under the key given)"
            ))),
        };
    }
    let mut found: Vec<(Partition, Metadata)> = table
        .partitions
        .iter()
        .filter_map(|p| ntfs_on(file, p, keys).map(|metadata| (p.clone(), metadata)))
        .collect();
    match found.len() {
        0 => Err(CliError::Usage(format!(
            "{image}: no NTFS volume on any partition of its {} table (no NTFS boot sector, in \
             the clear or decrypted under the key given); the partitions:\n{listed}",
            table.scheme
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(CliError::Usage(format!(
            "{image}: {} partitions hold NTFS volumes ({}); choose one with --partition N",
            found.len(),
            found
                .iter()
                .map(|(p, _)| p.number.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Reads the file's bytes `range` (file offsets) through `extents` (disk offsets),
/// decrypted under `keyed` with each extent's own geometry.
struct FileReader<'a> {
    file: &'a mut File,
    extents: &'a [Extent],
    partition_start: u64,
}

impl FileReader<'_> {
    /// The extents of `range`, as disk ranges, in file order.
    fn pieces(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut pieces = Vec::new();
        let mut at = 0u64;
        for extent in self.extents {
            let (from, to) = (at, at + extent.len);
            let start = range.start.max(from);
            let end = range.end.min(to);
            if start < end {
                pieces.push(extent.start + (start - from)..extent.start + (end - from));
            }
            at = to;
        }
        pieces
    }

    /// Reads and decrypts `range` of the file into `out` (its length).
    fn read(&mut self, keyed: &Keyed, range: Range<u64>, out: &mut [u8]) -> Result<(), CliError> {
        let geometry = keyed.config.geometry(self.partition_start);
        let mut done = 0usize;
        for piece in self.pieces(range) {
            let len = (piece.end - piece.start) as usize;
            let mut raw = vec![0u8; len];
            self.file
                .seek(SeekFrom::Start(piece.start))
                .map_err(|e| CliError::Usage(format!("reading the image: {e}")))?;
            let got = read_full(self.file, &mut raw)
                .map_err(|e| CliError::Usage(format!("reading the image: {e}")))?;
            if got < len {
                return Err(CliError::Usage(format!(
                    "the image ends at {:#x}, inside the dump file's extent {:#x}..{:#x}: a \
                     truncated image",
                    piece.start + got as u64,
                    piece.start,
                    piece.end
                )));
            }
            let plan = Plan::new(piece.clone(), geometry, true)?;
            plan.transform(&keyed.xts, piece.start, &raw, &mut out[done..done + len])?;
            done += len;
        }
        Ok(())
    }
}

/// The bitmap header's fields read (`_SUMMARY_DUMP64` up to its bitmap).
const SUMMARY_LEN: u64 = 0x38;

/// What the decrypted header says, checked.
struct Header {
    size: u64,
    dump_type: u32,
    bugcheck_code: u32,
    /// A bitmap dump's summary signature (`SDMP`, `FDMP`).
    summary: Option<[u8; 4]>,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks a 64-bit dump header (the first [`layout::HEADER_64_LEN`] bytes) against the
/// space the file has: RequiredDumpSpace, and the pages the physical memory run list (a
/// full dump) or the bitmap header (kernel, bitmap dumps) says follow the header. The
/// layouts are Volatility's (`_DMP_HEADER64`, `_PHYSICAL_MEMORY_DESCRIPTOR`,
/// `_SUMMARY_DUMP64`).
fn check_header(header: &[u8], room: u64, what: &str) -> Result<Header, CliError> {
    const PHYSICAL_MEMORY_BLOCK: usize = 0x88;
    /// The run list's buffer in DUMP_HEADER64: 700 bytes, the descriptor's 16-byte head
    /// then 16-byte runs.
    const MAX_RUNS: u32 = (700 - 0x10) / 0x10;
    const PAGE: u64 = 0x1000;
    let bad = |why: String| Err(CliError::Usage(format!("{what}: the dump header {why}")));
    let size = u64_at(header, layout::REQUIRED_DUMP_SPACE);
    let dump_type = u32_at(header, layout::DUMP_TYPE_64);
    let bugcheck_code = u32_at(header, layout::BUGCHECK_CODE_64);
    if size < layout::HEADER_64_LEN {
        return bad(format!(
            "is corrupted: RequiredDumpSpace {size:#x} is smaller than the header itself"
        ));
    }
    if size > room {
        return bad(format!(
            "says the dump takes {size:#x} bytes ({}), but the file holds {room:#x}: a \
             corrupted header, or not the dump file",
            human(size)
        ));
    }
    let after_header = (size - layout::HEADER_64_LEN) / PAGE;
    match dump_type {
        1 => {
            let runs = u32_at(header, PHYSICAL_MEMORY_BLOCK);
            let pages = u64_at(header, PHYSICAL_MEMORY_BLOCK + 8);
            if runs == 0 || runs > MAX_RUNS {
                return bad(format!(
                    "lists {runs} physical memory runs (a full dump has 1 to {MAX_RUNS})"
                ));
            }
            let mut counted = 0u64;
            for run in 0..runs as usize {
                let at = PHYSICAL_MEMORY_BLOCK + 0x10 + run * 0x10;
                counted = counted.saturating_add(u64_at(header, at + 8));
            }
            if counted != pages {
                return bad(format!(
                    "is inconsistent: its runs hold {counted} pages, its NumberOfPages says \
                     {pages}"
                ));
            }
            if pages > after_header {
                return bad(format!(
                    "lists {pages} pages of memory, but RequiredDumpSpace leaves room for \
                     {after_header}"
                ));
            }
        }
        2 | 5 | 6 => {
            let summary = &header[layout::HEADER_64_LEN as usize..];
            let signature = summary.get(..4).unwrap_or_default();
            if summary.len() < SUMMARY_LEN as usize
                || (signature != b"SDMP" && signature != b"FDMP")
            {
                return bad(format!(
                    "of a {} has no bitmap header (SDMP or FDMP) after it",
                    dump_type_name(dump_type, None)
                ));
            }
            // kdmp-parser's BmpHeader64: FirstPage 0x20, TotalPresentPages 0x28 (the pages in
            // the file), Pages 0x30 (the bitmap's bits, every physical page).
            let first_page = u64_at(summary, 0x20);
            let pages = u64_at(summary, 0x28);
            if first_page
                .checked_add(pages.saturating_mul(PAGE))
                .is_none_or(|end| end > size)
            {
                return bad(format!(
                    "'s bitmap puts {pages} pages from {first_page:#x}, past RequiredDumpSpace \
                     {size:#x}"
                ));
            }
        }
        _ => {}
    }
    let summary = match dump_type {
        2 | 5 | 6 => header
            .get(layout::HEADER_64_LEN as usize..layout::HEADER_64_LEN as usize + 4)
            .and_then(|signature| signature.try_into().ok()),
        _ => None,
    };
    Ok(Header {
        size,
        dump_type,
        bugcheck_code,
        summary,
    })
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    let rules = Rules {
        option: "--out",
        // Checked before it takes its name: never a stream, which cannot be taken back.
        streams: false,
        force: args.force,
        binary: true,
        secret: false,
    };
    let destination = output::resolve(&args.out, &rules)?;
    let candidates = candidate_keys(&args)?;
    let keys = prepare(&args, &candidates)?;
    drop(candidates);

    let input = input::open(&args.image, "IMAGE")?;
    let image_len = input.require_len(
        "recover reads the partition table, the file system and the file's extents where \
         they lie",
    )?;
    let image = input.name.clone();
    let mut file = input.file;
    let table = disk::read_table(&mut file, image_len, &image)?;
    let (partition, metadata) = choose_partition(&args, &mut file, &table, &keys, &image)?;
    if partition.start + partition.len > image_len {
        return Err(CliError::Usage(format!(
            "{image}: partition {} runs to {:#x}, past the end of the image ({image_len:#x} \
             bytes): a truncated image",
            partition.number,
            partition.start + partition.len
        )));
    }

    // The file system, read as it is on the disk or through the transform.
    let volume = format!("partition {} (at {:#x})", partition.number, partition.start);
    let metadata_plan = match &metadata {
        Metadata::Clear => None,
        Metadata::Decrypted(index) => {
            let geometry = keys[*index].config.geometry(partition.start);
            Some((
                Plan::new(
                    partition.start..partition.start + partition.len,
                    geometry,
                    true,
                )?,
                *index,
            ))
        }
    };
    let cipher = metadata_plan
        .as_ref()
        .map(|(plan, index)| (plan, &keys[*index].xts));
    let handle = file
        .try_clone()
        .map_err(|e| CliError::Usage(format!("{image}: {e}")))?;
    let mut reader = PartitionReader::new(handle, &partition, cipher);
    let ntfs_failed =
        |e: ntfs::NtfsError| CliError::Usage(format!("{volume}: the NTFS volume: {e}"));
    let mut ntfs = ntfs::Ntfs::new(&mut reader).map_err(ntfs_failed)?;
    ntfs.read_upcase_table(&mut reader).map_err(ntfs_failed)?;
    let found = ntfs_extents::find_file(&ntfs, &mut reader, &args.file)
        .map_err(|e| CliError::Usage(format!("{volume}: {e}")))?;
    let shown = ntfs_extents::spelled_name(&found, &mut reader)
        .map_or_else(|| args.file.clone(), |name| name.to_string());
    let what = format!("{} on {volume}", args.file);
    let read = ntfs_extents::extents(&ntfs, &mut reader, &found, &what)?;
    drop(reader);
    let extents: Vec<Extent> = read
        .extents
        .iter()
        .map(|e| Extent {
            start: partition.start + e.start,
            len: e.len,
        })
        .collect();
    let allocated: u64 = extents.iter().map(|e| e.len).sum();
    if let Some(last) = extents.iter().find(|e| e.start + e.len > image_len) {
        return Err(CliError::Usage(format!(
            "{image}: {what} has an extent at {:#x}..{:#x}, past the end of the image \
             ({image_len:#x} bytes): a truncated image",
            last.start,
            last.start + last.len
        )));
    }
    let room = read.size.min(allocated);
    if room < layout::HEADER_64_LEN {
        return Err(CliError::Usage(format!(
            "{what}: holds {room} bytes, too few for a crash dump header: no dump in it"
        )));
    }

    // The header, under each key in turn.
    let mut reader = FileReader {
        file: &mut file,
        extents: &extents,
        partition_start: partition.start,
    };
    // The header and, for a bitmap dump, the bitmap header after it.
    // Whole data units: 0x3000 bytes where the file has them.
    let header_len = if room >= layout::HEADER_64_LEN + 0x1000 {
        layout::HEADER_64_LEN + 0x1000
    } else {
        layout::HEADER_64_LEN
    };
    let mut header = vec![0u8; header_len as usize];
    let mut chosen = None;
    for (index, keyed) in keys.iter().enumerate() {
        reader.read(keyed, 0..header_len, &mut header)?;
        if header.starts_with(layout::SIGNATURE_64) {
            chosen = Some(index);
            break;
        }
    }
    let Some(index) = chosen else {
        let mut raw = [0u8; 8];
        let plain = raw_at(reader.file, extents[0].start, &mut raw).is_ok()
            && raw.starts_with(layout::SIGNATURE_64);
        return Err(CliError::Usage(if plain {
            format!(
                "{what}: its dump header is in the clear: this dump was written without \
                 encryption (the passthrough policy), and needs no key; the file can be copied \
                 off the volume as it is"
            )
        } else {
            format!(
                "{what}: no crash dump header (PAGEDU64) under {} ({}): no dump in the file, or \
                 another key or other transform options (--data-unit, --tweak-base, --area) \
                 than the driver's",
                keys.iter()
                    .map(|k| k.source.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                keys.iter()
                    .map(|k| format!("fingerprint {}", k.fingerprint))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }));
    };
    let keyed = &keys[index];
    let checked = check_header(&header, room, &what)?;

    // The dump, extent by extent, then checked and named.
    let output = Output::open(destination, &rules, &[&args.image])?;
    output.ensure_space(checked.size)?;
    let name = output.name().to_string();
    let progress = progress_bar(Some(checked.size));
    const CHUNK: u64 = 8 << 20;
    let mut buffer = vec![0u8; CHUNK as usize];
    let mut at = 0u64;
    while at < checked.size {
        let len = CHUNK.min(checked.size - at);
        reader.read(keyed, at..at + len, &mut buffer[..len as usize])?;
        if at == 0 && !buffer.starts_with(layout::SIGNATURE_64) {
            return Err(CliError::Usage(format!(
                "{image}: changed while being read"
            )));
        }
        output.write_all(&buffer[..len as usize])?;
        at += len;
        progress.set_position(at);
    }
    progress.finish_and_clear();
    output.commit()?;
    crate::outln!(
        "{name}: {} ({:#x} bytes), a {} (DumpType {}, bug check {:#010x}), from {shown} on \
         partition {} of the {} table ({}-byte sectors; {} extents, {} attribute record{}); decrypted with {} \
         (fingerprint {}){}",
        human(checked.size),
        checked.size,
        dump_type_name(checked.dump_type, checked.summary),
        checked.dump_type,
        checked.bugcheck_code,
        partition.number,
        table.scheme,
        table.sector_size,
        extents.len(),
        read.pieces,
        if read.pieces == 1 { "" } else { "s" },
        keyed.source,
        keyed.fingerprint,
        match metadata {
            Metadata::Clear => "",
            Metadata::Decrypted(_) => "; the volume's metadata was encrypted too",
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads `out.len()` bytes at disk offset `offset`, as they are.
fn raw_at(file: &mut File, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    if read_full(file, out)? < out.len() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full dump's header of `pages` pages in runs of `counts`, with room for a bitmap
    /// header after it.
    fn full_header(counts: &[u64], pages: u64) -> Vec<u8> {
        let mut header = vec![0u8; 0x3000];
        header[..8].copy_from_slice(b"PAGEDU64");
        header[0x88..0x8C].copy_from_slice(&(counts.len() as u32).to_le_bytes());
        header[0x90..0x98].copy_from_slice(&pages.to_le_bytes());
        for (i, count) in counts.iter().enumerate() {
            let at = 0x98 + i * 0x10 + 8;
            header[at..at + 8].copy_from_slice(&count.to_le_bytes());
        }
        header[0xF98..0xF9C].copy_from_slice(&1u32.to_le_bytes());
        let size = 0x2000 + pages * 0x1000;
        header[0xFA0..0xFA8].copy_from_slice(&size.to_le_bytes());
        header
    }

    fn problem(header: &[u8], room: u64) -> String {
        match check_header(header, room, "f") {
            Ok(_) => String::new(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_full_dump_header_is_checked_against_its_runs_and_the_file() {
        let header = full_header(&[10, 20], 30);
        let checked = check_header(&header, 0x2000 + 30 * 0x1000, "f").unwrap();
        assert_eq!(checked.size, 0x2000 + 30 * 0x1000);
        assert!(problem(&header, 0x2000).contains("but the file holds"));
        assert!(problem(&full_header(&[10, 21], 30), 1 << 30).contains("inconsistent"));
        assert!(problem(&full_header(&[], 0), 1 << 30).contains("0 physical memory runs"));
        assert!(problem(&full_header(&[1; 43], 43), 1 << 30).contains("43 physical memory"));
        // More pages than RequiredDumpSpace leaves room for.
        let mut header = full_header(&[10, 20], 30);
        header[0xFA0..0xFA8].copy_from_slice(&(0x2000u64 + 29 * 0x1000).to_le_bytes());
        assert!(problem(&header, 1 << 30).contains("leaves room for 29"));
        header[0xFA0..0xFA8].copy_from_slice(&0x100u64.to_le_bytes());
        assert!(problem(&header, 1 << 30).contains("smaller than the header"));
    }

    #[test]
    fn a_bitmap_dump_needs_its_bitmap_header_within_the_size() {
        let mut header = full_header(&[1], 1);
        header[0xF98..0xF9C].copy_from_slice(&5u32.to_le_bytes());
        let size = 0x10_0000u64;
        header[0xFA0..0xFA8].copy_from_slice(&size.to_le_bytes());
        assert!(problem(&header, size).contains("no bitmap header"));
        header[0x2000..0x2004].copy_from_slice(b"SDMP");
        header[0x2020..0x2028].copy_from_slice(&0x3000u64.to_le_bytes());
        // TotalPresentPages (0x28) counts the pages in the file; the bitmap's bits (0x30)
        // count every physical page, present or not, and may be many more.
        header[0x2028..0x2030].copy_from_slice(&0xFDu64.to_le_bytes());
        header[0x2030..0x2038].copy_from_slice(&0x10_0000u64.to_le_bytes());
        assert_eq!(problem(&header, size), "");
        header[0x2028..0x2030].copy_from_slice(&0xFEu64.to_le_bytes());
        assert!(problem(&header, size).contains("past RequiredDumpSpace"));
    }
}
