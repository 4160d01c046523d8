//! `dumpcrypt decrypt`: decrypts a raw disk image (or a byte range of it) the way the driver
//! encrypted it, streaming in bounded memory, on every core.
//!
//! Three stages overlap: a reader thread fills input batches, the main thread decrypts each
//! batch in pieces on scoped worker threads (source → destination, with
//! [`XtsAes256::decrypt_units`]), and a writer thread writes finished batches in order. Two
//! batches of each kind circulate, so memory stays at four batches whatever the image size.

use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

use dumpcrypt_core::config::{Config, Policy};
use dumpcrypt_core::geometry::Geometry;
use dumpcrypt_xts::{Backend, StateArea, XtsAes256, KEY_LEN};
use indicatif::ProgressBar;

use crate::input::{self, progress_bar, read_full, Input};
use crate::key_search::{self, Hit};
use crate::options::{
    human, parse_backend, parse_range, parse_size, read_key, CliError, TransformArgs,
};
use crate::output::{self, Output, Rules};
use crate::parameters::{describe_transform, fingerprint, Settings};
use crate::unseal::{self, Entry};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key file: the 64 bytes the driver was configured with (or that `unseal` wrote).
    #[arg(
        long,
        required_unless_present = "identity",
        conflicts_with = "identity"
    )]
    pub key: Option<PathBuf>,
    /// Instead of --key, for the sealed key source: the age identity file that opens the
    /// sealed keys of --sealed-keys. Each key that opens is tried, newest first; the one
    /// under which a crash dump or hibernation header decrypts is used. The image must be a
    /// file or a block device (it is read twice).
    #[arg(long, value_name = "FILE", requires = "sealed_keys")]
    pub identity: Option<PathBuf>,
    /// With --identity: a `reg export` of the Parameters or the SealedKeys key.
    #[arg(long = "sealed-keys", value_name = "FILE.reg", requires = "identity")]
    pub sealed_keys: Option<PathBuf>,
    /// The encrypted raw image: a whole disk (with --partition-offset) or the dump partition;
    /// a file, a block device, or a stream (`-` for standard input, a pipe, a FIFO).
    #[arg(long = "in", value_name = "IMAGE")]
    pub input: PathBuf,
    /// Where to write the decrypted image: a new file, a device or FIFO (written in place),
    /// or `-` for standard output (not a terminal, unless --force).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace an existing --out file; write to a terminal.
    #[arg(long)]
    pub force: bool,
    /// Decrypt only bytes START..END of the image (image offsets); the output holds just
    /// those bytes. Inside the area, both ends must lie on data unit boundaries.
    #[arg(long, value_parser = parse_range)]
    pub range: Option<Range<u64>>,
    #[command(flatten)]
    pub transform: TransformArgs,
    /// Where the dump partition starts in the image: 0 for an image of the partition alone,
    /// its start offset (e.g. 1MiB; see `fdisk -l`) for an image of the whole disk.
    #[arg(long, value_parser = parse_size, default_value = "0")]
    pub partition_offset: u64,
    /// The transform's backend, as the driver's Backend value: auto (the fastest here),
    /// vaes512, vaes256, aesni or portable.
    #[arg(long, value_parser = parse_backend, default_value = "auto")]
    pub backend: Backend,
}

/// What to do with which bytes, all in image offsets (disk offsets when the image is the
/// whole disk, partition offsets when the partition starts at 0).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The bytes of the image to read and write out.
    pub range: Range<u64>,
    /// The part of `range` inside the encrypted area (empty when they do not meet).
    pub encrypted: Range<u64>,
    /// The driver's geometry, with the partition where the image has it.
    pub geometry: Geometry,
}

impl Plan {
    /// Checks that every data unit inside the area is whole within `range`. `end_known` is
    /// false for a stream, whose end is checked when it comes ([`Plan::check_end`]).
    pub fn new(range: Range<u64>, geometry: Geometry, end_known: bool) -> Result<Self, CliError> {
        let area = geometry.area_on_disk();
        let start = range.start.max(area.start);
        let end = range.end.min(area.end);
        let encrypted = if start < end { start..end } else { 0..0 };
        let plan = Self {
            range,
            encrypted,
            geometry,
        };
        if !plan.encrypted.is_empty() {
            // Inside the area, tweak positions exist: the area starts at or after the origin.
            if !plan
                .geometry
                .is_unit_aligned(plan.position(plan.encrypted.start))
            {
                return Err(CliError::Usage(format!(
                    "--range starts at {:#x}, inside a data unit of the encrypted area: inside \
                     the area, START must be a multiple of {} from {}",
                    plan.encrypted.start,
                    plan.unit(),
                    plan.origin()
                )));
            }
            if end_known {
                plan.check_end(plan.range.end)?;
            }
        }
        Ok(plan)
    }

    fn unit(&self) -> u64 {
        self.geometry.data_unit().bytes() as u64
    }

    fn position(&self, offset: u64) -> u64 {
        self.geometry.position_of_disk_offset(offset).unwrap_or(0)
    }

    fn origin(&self) -> String {
        let area = self.geometry.area_on_disk();
        let unit_origin = area.start - self.geometry.area().start;
        if unit_origin == 0 {
            "the start of the image".to_string()
        } else {
            format!("the partition start ({unit_origin:#x})")
        }
    }

    /// Checks that the data ending at image offset `end` ends no data unit of the area short.
    pub fn check_end(&self, end: u64) -> Result<(), CliError> {
        let area = self.geometry.area_on_disk();
        let last = end.min(area.end);
        if last <= self.range.start.max(area.start) {
            return Ok(());
        }
        let position = self.position(last);
        if self.geometry.is_unit_aligned(position) {
            return Ok(());
        }
        Err(CliError::Usage(format!(
            "the data ends at {last:#x}, {} bytes into a data unit of the encrypted area: \
             a truncated image, or an END that is not a multiple of {} from {}",
            position % self.unit(),
            self.unit(),
            self.origin()
        )))
    }

    /// The bytes of `[start, end)` inside the encrypted area.
    fn encrypted_within(&self, end: u64) -> u64 {
        let area = self.geometry.area_on_disk();
        let (from, to) = (self.range.start.max(area.start), end.min(area.end));
        to.saturating_sub(from)
    }

    /// Snaps an offset down to a data unit boundary when it falls inside the encrypted
    /// part, so that no piece of work splits a data unit.
    fn snap(&self, offset: u64) -> u64 {
        if offset > self.encrypted.start && offset < self.encrypted.end {
            let unit = self.geometry.data_unit().bytes() as u64;
            self.encrypted.start + (offset - self.encrypted.start) / unit * unit
        } else {
            offset
        }
    }

    /// `[start, end)` cut into pieces of about `size` bytes, never inside a data unit.
    pub fn pieces(&self, span: Range<u64>, size: u64) -> Vec<Range<u64>> {
        let mut pieces = Vec::new();
        let mut at = span.start;
        while at < span.end {
            let mut next = self.snap(at.saturating_add(size).min(span.end));
            if next <= at {
                // Only when `size` is below a data unit: take the whole unit.
                next = (at + self.geometry.data_unit().bytes() as u64).min(span.end);
            }
            pieces.push(at..next);
            at = next;
        }
        pieces
    }

    /// Decrypts (inside the area) or copies (outside) the bytes at image `offset`.
    pub fn transform(
        &self,
        xts: &XtsAes256,
        offset: u64,
        source: &[u8],
        destination: &mut [u8],
    ) -> Result<(), CliError> {
        let internal = |error| CliError::Usage(format!("internal error: {error:?}"));
        let Some(span) = self.geometry.encrypted_span_on_disk(offset, source.len()) else {
            destination.copy_from_slice(source);
            return Ok(());
        };
        let (start, end) = (span.start, span.end);
        destination[..start].copy_from_slice(&source[..start]);
        destination[end..].copy_from_slice(&source[end..]);
        // Where a VAES backend saves the vector state it uses (a few KB, on this thread's stack).
        let mut state = StateArea::new();
        xts.decrypt_units_with(
            &mut state,
            self.geometry.data_unit(),
            span.first_unit,
            &source[start..end],
            &mut destination[start..end],
        )
        .map_err(internal)
    }
}

/// A batch of input or output on its way through the pipeline.
struct Batch {
    offset: u64,
    len: usize,
    buffer: Vec<u8>,
}

/// The output's rules: a stream or a file, binary.
fn rules(force: bool) -> Rules {
    Rules {
        option: "--out",
        streams: true,
        force,
        binary: true,
        secret: false,
    }
}

/// The driver's configuration for `key` and the options; its own parser checks the area
/// against the data unit.
fn configuration(args: &Args, key: &[u8; KEY_LEN]) -> Result<Config, CliError> {
    let mut settings = Settings::passthrough();
    settings.crash_dump_policy = Policy::Encrypt;
    // Encrypted like the crash dump, so that the parser's hibernation rule is met.
    settings.hibernation_policy = Policy::Encrypt;
    settings.key = Some(*key);
    settings.data_unit = args.transform.data_unit();
    settings.area = args.transform.area.clone();
    settings.tweak_base = args.transform.tweak_base();
    settings.validate()
}

/// The transform under `key` with the chosen backend.
fn cipher(key: &[u8; KEY_LEN], backend: Backend) -> Result<XtsAes256, CliError> {
    XtsAes256::exactly(key, backend)
        .map_err(|error| CliError::Usage(format!("key: {error:?}")))?
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--backend {}: this processor does not run it",
                backend.name()
            ))
        })
}

/// The keys to decrypt with: the one of --key, or those --identity opens in --sealed-keys
/// (newest first, with their entries to say which fitted).
enum Keys {
    File([u8; KEY_LEN]),
    Sealed(Vec<Entry>),
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Self::File(key) = self {
            key.fill(0);
            std::hint::black_box(key);
        }
    }
}

impl Keys {
    fn read(args: &Args, say: &dyn Fn(&str)) -> Result<Self, CliError> {
        match (&args.key, &args.identity, &args.sealed_keys) {
            (Some(key), _, _) => Ok(Self::File(read_key(key)?)),
            (None, Some(identity), Some(sealed_keys)) => {
                let entries = unseal::unseal_all(identity, sealed_keys)?;
                match unseal::listing(&entries, identity, sealed_keys) {
                    Ok(text) => say(&text),
                    Err((text, error)) => {
                        say(&text);
                        return Err(error);
                    }
                }
                Ok(Self::Sealed(
                    entries
                        .into_iter()
                        .filter(|entry| entry.key().is_some())
                        .collect(),
                ))
            }
            _ => Err(CliError::Usage(
                "give --key FILE, or --identity FILE with --sealed-keys FILE.reg".into(),
            )),
        }
    }

    /// Every key, newest first.
    fn keys(&self) -> Vec<&[u8; KEY_LEN]> {
        match self {
            Self::File(key) => vec![key],
            Self::Sealed(entries) => entries
                .iter()
                .filter_map(|entry| entry.key().map(unseal::Key::bytes))
                .collect(),
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    // The output first: a refused or unwritable output costs no work.
    let rules = rules(args.force);
    let destination = output::resolve(&args.out, &rules)?;
    // What is for people goes to standard error when the image goes to standard output.
    let to_stdout = destination == output::Destination::Stdout;
    let say = |text: &str| {
        if to_stdout {
            eprint!("{text}");
        } else {
            crate::out!("{text}");
        }
    };
    let keys = Keys::read(&args, &say)?;
    let candidates = keys.keys();
    let mut config = configuration(&args, candidates[0])?;
    let ciphers = candidates
        .iter()
        .map(|key| cipher(key, args.backend))
        .collect::<Result<Vec<_>, CliError>>()?;
    check_partition_offset(args.partition_offset)?;
    let geometry = config.geometry(args.partition_offset);

    let output = Output::open(destination, &rules, &[&args.input])?;
    let mut input = input::open(&args.input, "--in")?;
    let range = image_range(&args, &input, &config)?;
    let plan = Plan::new(range, geometry, input.len.is_some())?;
    if input.len.is_some() {
        output.ensure_space(plan.range.end - plan.range.start)?;
    }
    let mut ciphers = ciphers;
    if let Keys::Sealed(entries) = &keys {
        let chosen = choose_key(&plan, &ciphers, &mut input, entries)?;
        say(&format!(
            "sealed key       {} ({}), fingerprint {}: {} decrypts at image offset {:#x}\n",
            entries[chosen.key].stamp,
            entries[chosen.key].stamp.readable(),
            fingerprint(candidates[chosen.key]),
            chosen.what,
            chosen.offset
        ));
        config = configuration(&args, candidates[chosen.key])?;
        ciphers.swap(0, chosen.key);
    }
    drop(keys);
    let xts = ciphers.swap_remove(0);
    drop(ciphers);
    say(&describe_transform(&config, args.partition_offset));
    input.skip(plan.range.start)?;
    let began = Instant::now();
    let (output, end) = decrypt_stream(&plan, &xts, input, output)?;
    let to_stdout = output.is_stdout();
    let name = output.name().to_string();
    output.commit()?;
    if !to_stdout {
        let total = end - plan.range.start;
        let decrypted = plan.encrypted_within(end);
        let seconds = began.elapsed().as_secs_f64();
        crate::outln!(
            "{name}: {} written; {} decrypted inside the area, {} copied as is ({:.2} GB/s)",
            human(total),
            human(decrypted),
            human(total - decrypted),
            total as f64 / seconds.max(1e-9) / 1e9
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The sealed key under which a header decrypts (the first in the image; at one sector, the
/// newest key), or an error naming the keys tried.
fn choose_key(
    plan: &Plan,
    ciphers: &[XtsAes256],
    input: &mut Input,
    entries: &[Entry],
) -> Result<Hit, CliError> {
    input.require_len(
        "decrypt --identity reads it twice (first to find the sealed key under which a dump \
         header decrypts, then to decrypt it)",
    )?;
    let found = key_search::search(plan, ciphers, &mut input.file, &input.name)?;
    found.ok_or_else(|| {
        let stamps: Vec<&str> = entries.iter().map(|entry| entry.stamp.as_str()).collect();
        CliError::Usage(format!(
            "{}: no crash dump or hibernation header decrypts under any of the {} sealed keys \
             that opened ({}) in the encrypted area: the image was encrypted under another \
             key, or --partition-offset, --area, --data-unit or --tweak-base differ from the \
             driver's. Nothing was written",
            input.name,
            entries.len(),
            stamps.join(", ")
        ))
    })
}

/// A partition starts on a sector boundary, and no sector is smaller than 512 bytes.
fn check_partition_offset(offset: u64) -> Result<(), CliError> {
    if offset % 512 != 0 {
        return Err(CliError::Usage(format!(
            "--partition-offset {offset:#x} is not a multiple of 512: a partition starts on a \
             sector boundary (give bytes, e.g. 1MiB, or sectors × the sector size)"
        )));
    }
    Ok(())
}

/// The bytes of the image to decrypt: `--range`, or all of it; checked against the image's
/// length where it has one, before anything is read.
fn image_range(
    args: &Args,
    input: &Input,
    config: &dumpcrypt_core::config::Config,
) -> Result<Range<u64>, CliError> {
    let name = &input.name;
    let Some(image_len) = input.len else {
        return Ok(args.range.clone().unwrap_or(0..u64::MAX));
    };
    if image_len == 0 {
        return Err(CliError::Usage(format!("{name}: the image is empty")));
    }
    let partition_relative = config.tweak_base == dumpcrypt_core::geometry::TweakBase::Partition;
    if partition_relative && args.partition_offset >= image_len {
        return Err(CliError::Usage(format!(
            "--partition-offset {:#x} lies beyond the end of {name} ({image_len:#x} bytes): the \
             partition cannot start there. For an image of the partition alone, leave it at 0",
            args.partition_offset
        )));
    }
    match args.range.clone() {
        Some(range) if range.end > image_len => Err(CliError::Usage(format!(
            "--range ends at {:#x}, past the end of {name} ({image_len:#x} bytes)",
            range.end
        ))),
        Some(range) => Ok(range),
        None => Ok(0..image_len),
    }
}

/// The threads available for the transform.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(16)
}

/// Runs the pipeline; returns the output, complete but not yet committed, and the image
/// offset where the data ended.
pub fn decrypt_stream(
    plan: &Plan,
    xts: &XtsAes256,
    input: Input,
    output: Output,
) -> Result<(Output, u64), CliError> {
    let workers = workers();
    let batch_size = (workers as u64 * (4 << 20)).clamp(8 << 20, 64 << 20);
    let known = input.len.is_some();
    let total = known.then(|| plan.range.end - plan.range.start);
    let largest = total.map_or(batch_size, |total| total.min(batch_size)) as usize;
    let progress = progress_bar(total);

    let (free_input_tx, free_input_rx) = sync_channel::<Vec<u8>>(2);
    let (filled_tx, filled_rx) = sync_channel::<Batch>(2);
    let (free_output_tx, free_output_rx) = sync_channel::<Vec<u8>>(2);
    let (done_tx, done_rx) = sync_channel::<Batch>(2);
    for _ in 0..2 {
        free_input_tx.send(vec![0; largest]).expect("room");
        free_output_tx.send(vec![0; largest]).expect("room");
    }
    // One writer thread in order, for files as for pipes: measured against workers writing
    // their own pieces at offsets (`write_all_at`), it was as fast or faster, since Linux
    // serializes writes to one file anyway.
    let result = std::thread::scope(|scope| {
        let reader = scope
            .spawn(move || read_batches(plan, input, batch_size, known, free_input_rx, filled_tx));
        let bar = progress.clone();
        let output = &output;
        let writer = scope.spawn(move || write_batches(output, done_rx, free_output_tx, bar));
        let computed = compute_batches(
            plan,
            xts,
            workers,
            filled_rx,
            free_input_tx,
            free_output_rx,
            done_tx,
        );
        let read = reader.join().expect("the reader does not panic");
        let written = writer.join().expect("the writer does not panic");
        // The first failure in pipeline order is the cause; later ones are its echoes.
        match read {
            Ok(end) => computed.and(written).map(|()| end),
            Err(error) => Err(error),
        }
    });
    progress.finish_and_clear();
    result.map(|end| (output, end))
}

/// Reads the image in batches of about `batch_size` bytes, never splitting a data unit of
/// the area; returns where the data ended. A file that ends early is an error; a stream
/// simply ends, but not inside a data unit of the area.
fn read_batches(
    plan: &Plan,
    input: Input,
    batch_size: u64,
    known: bool,
    free: Receiver<Vec<u8>>,
    filled: SyncSender<Batch>,
) -> Result<u64, CliError> {
    let Input { mut file, name, .. } = input;
    let mut at = plan.range.start;
    while at < plan.range.end {
        let mut next = plan.snap(at.saturating_add(batch_size).min(plan.range.end));
        if next <= at {
            next = (at + plan.unit()).min(plan.range.end);
        }
        let Ok(mut buffer) = free.recv() else {
            return Ok(at); // a later stage stopped: it reports why
        };
        let len = (next - at) as usize;
        let got = read_full(&mut file, &mut buffer[..len])
            .map_err(|error| CliError::Usage(format!("{name}: {error}")))?;
        if got < len {
            if known {
                return Err(CliError::Usage(format!(
                    "{name}: the image ended early, at about {:#x} (did it shrink while being \
                     read?)",
                    at + got as u64
                )));
            }
            let end = at + got as u64;
            plan.check_end(end)?;
            if got > 0 {
                let batch = Batch {
                    offset: at,
                    len: got,
                    buffer,
                };
                if filled.send(batch).is_err() {
                    return Ok(end);
                }
            }
            return Ok(end);
        }
        let batch = Batch {
            offset: at,
            len,
            buffer,
        };
        if filled.send(batch).is_err() {
            return Ok(next);
        }
        at = next;
    }
    Ok(at)
}

fn compute_batches(
    plan: &Plan,
    xts: &XtsAes256,
    workers: usize,
    filled: Receiver<Batch>,
    free_input: SyncSender<Vec<u8>>,
    free_output: Receiver<Vec<u8>>,
    done: SyncSender<Batch>,
) -> Result<(), CliError> {
    while let Ok(batch) = filled.recv() {
        let Ok(mut destination) = free_output.recv() else {
            return Ok(()); // the writer stopped: it reports why
        };
        let span = batch.offset..batch.offset + batch.len as u64;
        let share = (batch.len as u64).div_ceil(workers as u64);
        let pieces = plan.pieces(span, share);
        let source = &batch.buffer[..batch.len];
        let results: Vec<Result<(), CliError>> = std::thread::scope(|scope| {
            let mut rest_source = source;
            let mut rest_destination = &mut destination[..batch.len];
            let mut handles = Vec::new();
            for piece in &pieces {
                let len = (piece.end - piece.start) as usize;
                let (src, src_rest) = rest_source.split_at(len);
                let (dst, dst_rest) = std::mem::take(&mut rest_destination).split_at_mut(len);
                rest_source = src_rest;
                rest_destination = dst_rest;
                let offset = piece.start;
                handles.push(scope.spawn(move || plan.transform(xts, offset, src, dst)));
            }
            handles
                .into_iter()
                .map(|handle| handle.join().expect("the transform does not panic"))
                .collect()
        });
        results.into_iter().collect::<Result<(), CliError>>()?;
        let (offset, len) = (batch.offset, batch.len);
        // The reader may be done already: nothing more to recycle then.
        let _ = free_input.send(batch.buffer);
        let out = Batch {
            offset,
            len,
            buffer: destination,
        };
        if done.send(out).is_err() {
            return Ok(()); // the writer stopped: it reports why
        }
    }
    Ok(())
}

fn write_batches(
    output: &Output,
    done: Receiver<Batch>,
    free: SyncSender<Vec<u8>>,
    progress: ProgressBar,
) -> Result<(), CliError> {
    while let Ok(batch) = done.recv() {
        output.write_all(&batch.buffer[..batch.len])?;
        progress.inc(batch.len as u64);
        // The compute stage may have finished: nothing more to recycle then.
        let _ = free.send(batch.buffer);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dumpcrypt_core::geometry::{Area, TweakBase};
    use dumpcrypt_xts::DataUnit;

    const UNIT: DataUnit = DataUnit::Bytes512;

    /// A plan for an image whose partition starts at `partition` (partition-relative tweaks).
    fn plan_for(range: Range<u64>, area: Range<u64>, partition: u64) -> Result<Plan, CliError> {
        let area = Area {
            start: area.start,
            end: area.end,
        };
        Plan::new(
            range,
            Geometry::new(UNIT, area, TweakBase::Partition, partition),
            true,
        )
    }

    #[test]
    fn the_area_in_image_offsets() {
        // Partition at 1 MiB, partition-relative area 4 KiB..8 KiB: image 0x101000..0x102000.
        let plan = plan_for(0..0x20_0000, 0x1000..0x2000, 0x10_0000).unwrap();
        assert_eq!(plan.encrypted, 0x10_1000..0x10_2000);
        // The whole disk from a partition: everything from the partition start.
        let plan = plan_for(0..0x20_0000, 0..u64::MAX, 0x10_0000).unwrap();
        assert_eq!(plan.encrypted, 0x10_0000..0x20_0000);
        // A range beside the area encrypts nothing.
        let plan = plan_for(0..0x1000, 0x1000..0x2000, 0).unwrap();
        assert!(plan.encrypted.is_empty());
    }

    #[test]
    fn data_units_are_never_split() {
        // An unaligned range start inside the area is refused...
        assert!(plan_for(0x1100..0x4000, 0x1000..0x8000, 0).is_err());
        // ... and so is an image that ends inside a data unit of the area.
        let error = plan_for(0..0x1300, 0..u64::MAX, 0).unwrap_err().to_string();
        assert!(error.contains("truncated"), "{error}");
        // Unaligned ends outside the area are fine.
        assert!(plan_for(0x10..0x9010, 0x1000..0x8000, 0).is_ok());
        // Pieces of odd sizes snap to data units inside the area.
        let plan = plan_for(0x10..0x9010, 0x1000..0x8000, 0).unwrap();
        let pieces = plan.pieces(plan.range.clone(), 0x777);
        assert_eq!(pieces.first().unwrap().start, 0x10);
        assert_eq!(pieces.last().unwrap().end, 0x9010);
        for pair in pieces.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        for piece in &pieces {
            for bound in [piece.start, piece.end] {
                if bound > 0x1000 && bound < 0x8000 {
                    assert_eq!(bound % 512, 0, "{piece:?}");
                }
            }
        }
    }
}
