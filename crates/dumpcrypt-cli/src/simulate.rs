//! `dumpcrypt simulate`: the real driver code through the simulated crash dump and
//! hibernation stacks, with a verdict.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;

use crashdmp_sim::disk_template::DiskTemplate;
use crashdmp_sim::dump_format::DumpKind;
use crashdmp_sim::layout::{mdl, PAGE_SIZE};
use crashdmp_sim::machine::{
    DumpFile, DumpReport, Machine, MachineConfig, ResumeReport, CRASH_HEADER_LEN,
};
use crashdmp_sim::ntoskrnl::{self, Environment, RegistryValue};
use crashdmp_sim::stack::{self, DiskInfo, Load, LoadedFilter, SimError};

use dumpcrypt_core::config::{KeySource, Policy};
use dumpcrypt_core::fault::{Rule, BUGCHECK_CODE};
use dumpcrypt_core::geometry::{Area, Geometry, TweakBase};
use dumpcrypt_sample_provider::{SampleProvider, Volume};
use dumpcrypt_xts::DataUnit;
use indicatif::{ProgressBar, ProgressStyle};

use crate::options::{
    generate_key, human, parse_size, read_key, CliError, KeySourceArg, PolicyArg, TransformArgs,
};
use crate::output::{self, Output, PendingFile, Rules};
use crate::parameters::{tweak_base_name, Settings};
use crate::sealed_keys::{write_reg, SealedKey, Stamp, FILETIME_UNIX_EPOCH};

/// The most PFN slots one MDL can have: its Size is a 16-bit signed count of bytes, the
/// 0x30-byte header and 8 bytes per slot (4089).
pub const MDL_MAX_SLOTS: u32 = ((i16::MAX as usize - mdl::HEADER) / mdl::PFN_SIZE) as u32;
/// The simulator's MDLs need one slot more than a transfer's pages when the data starts
/// inside a page, and it gives some MDLs 3 spare slots (crashdmp-sim's `Machine::dump`).
pub const MAX_PAGES_PER_WRITE: u32 = MDL_MAX_SLOTS - 1 - 3;
/// Beyond the simulated memory, what a run holds: the staging, decoy and per-write buffers
/// (a few times MaxPagesPerWrite pages each) and the rest of the process.
const OVERHEAD: u64 = 64 << 20;
/// The simulator's own limit.
const MAX_MEMORY: u64 = 64 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpTypeArg {
    Crash,
    Hibernate,
    Both,
}

/// `--dump-kind`: which crash dump Windows is set to write (CrashDumpEnabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpKindArg {
    /// A complete memory dump as a run list (DumpType 1), every page.
    Full,
    /// A kernel memory dump: a bitmap dump (DumpType 5, SDMP) of the kernel's pages.
    Kernel,
    /// Windows' default: the content and format of a kernel memory dump.
    Automatic,
    /// A complete memory dump as Windows 8 and later write it: a bitmap (DumpType 5, FDMP).
    Complete,
}

impl From<DumpKindArg> for DumpKind {
    fn from(kind: DumpKindArg) -> Self {
        match kind {
            DumpKindArg::Full => Self::Full,
            DumpKindArg::Kernel => Self::Kernel,
            DumpKindArg::Automatic => Self::Automatic,
            DumpKindArg::Complete => Self::Complete,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OsArg {
    /// Windows 7 (6.1): version-1 structures, no Dump_Read.
    Windows7,
    /// Windows 11 24H2 (10.0.26100).
    Windows11,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which stacks to run (default: both; crash with --disk).
    #[arg(long, value_enum)]
    pub dump_type: Option<DumpTypeArg>,
    /// Which crash dump the system writes, in the format Windows writes it.
    #[arg(long, value_enum, default_value = "automatic")]
    pub dump_kind: DumpKindArg,
    /// A raw disk image to start from (copied to --image and --reference): the crash dump is
    /// written into the extents --dump-extents lists instead of the simulator's own layout.
    #[arg(long, value_name = "TEMPLATE", requires = "dump_extents")]
    pub disk: Option<PathBuf>,
    /// With --disk: the dump file's extents on the disk, one `START LENGTH` pair a line
    /// (absolute byte offsets, in file order); --partition-offset says where its partition
    /// starts.
    #[arg(long, value_name = "FILE", requires = "disk")]
    pub dump_extents: Option<PathBuf>,
    /// Simulated memory to dump.
    #[arg(long, value_parser = parse_size, default_value = "256MiB")]
    pub memory: u64,
    /// What the stack tells the filter: the largest transfer, in pages.
    #[arg(long, default_value_t = 16)]
    pub max_pages_per_write: u32,
    /// Key file: 64 raw bytes (data key then tweak key). Default: a fresh random key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub transform: TransformArgs,
    /// The policy of both stacks.
    #[arg(long, value_enum, default_value = "encrypt")]
    pub policy: PolicyArg,
    /// Write the disk image, as written through the filter, to this file (a regular file: it
    /// is written at random offsets and read back, so `-`, devices and FIFOs are refused).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Write the same image as it would be without the filter to this file.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Replace existing --image, --reference and --provider-keys-out files.
    #[arg(long)]
    pub force: bool,
    /// Seeds memory contents, file layout and transfer sizes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the dump partition starts in the disk image.
    #[arg(long, value_parser = parse_size, default_value = "1MiB")]
    pub partition_offset: u64,
    /// The simulated Windows version.
    #[arg(long, value_enum, default_value = "windows11")]
    pub os: OsArg,
    /// Lay the crash dump file out in one extent (by default it is fragmented), so that
    /// `dumpcrypt find-dump --extract` can recover it from the image without a file system.
    #[arg(long)]
    pub contiguous_dump: bool,
    /// Where the keys come from: `--key` through the registry, or the sample provider (a
    /// volume-encryption driver through the provider interface: two ranges under two keys
    /// and a plaintext rest; --data-unit and --tweak-base are what it answers).
    #[arg(long, value_enum, default_value = "registry")]
    pub key_source: KeySourceArg,
    /// With `--key-source provider`: write what the provider handed over, one range a line
    /// (`START END KEYHEX`, tweak positions, half-open), then
    /// `data_unit N tweak_base partition|disk partition_offset P`.
    #[arg(long, value_name = "FILE")]
    pub provider_keys_out: Option<PathBuf>,
    /// With `--key-source sealed`: the age X25519 recipient (`age1…`, as `age-keygen -y`
    /// prints it) each load's fresh key is sealed to. Hibernation is then refused, as the
    /// driver's rules require.
    #[arg(long, value_name = "AGE1...")]
    pub recipient: Option<String>,
    /// With `--key-source sealed`: write the run's simulated `Parameters\SealedKeys` as a
    /// `.reg` file, as `reg export` of that key writes it (UTF-16LE, `hex:` values), for
    /// `dumpcrypt unseal` and `decrypt --identity`.
    #[arg(long, value_name = "FILE.reg")]
    pub sealed_keys_out: Option<PathBuf>,
}

/// The Parameters values for these options, as the registry would hold them.
fn settings(args: &Args, key: &[u8; 64]) -> Settings {
    let policy = Policy::from(args.policy);
    let key_source = KeySource::from(args.key_source);
    let mut settings = Settings::passthrough();
    settings.crash_dump_policy = policy;
    settings.hibernation_policy = match (key_source, policy) {
        // No boot loader could read a hibernation file back under a sealed key.
        (KeySource::Sealed, Policy::Encrypt) => Policy::Refuse,
        _ => policy,
    };
    settings.key = (key_source == KeySource::Registry).then_some(*key);
    settings.recipient = args.recipient.clone();
    settings.data_unit = args.transform.data_unit();
    settings.area = args.transform.area.clone();
    settings.tweak_base = args.transform.tweak_base();
    settings.key_source = key_source;
    settings
}

/// The sample provider's volume for this run: the whole dump partition, two ranges under
/// two keys over its first two thirds, in the tweak positions of `--tweak-base`.
fn provider_volume(args: &Args, disk_size: u64) -> Volume {
    let mut volume = Volume::two_keys(args.partition_offset, disk_size - args.partition_offset);
    volume.answer.data_unit = args.transform.data_unit();
    volume.answer.tweak_base = args.transform.tweak_base().as_dword();
    if volume.answer.tweak_base == TweakBase::Disk.as_dword() {
        for range in &mut volume.answer.ranges[..volume.answer.range_count as usize] {
            range.start += args.partition_offset;
            range.end += args.partition_offset;
        }
    }
    volume
}

/// The `--provider-keys-out` file: one range a line, then the geometry.
fn provider_keys_text(volume: &Volume, args: &Args) -> String {
    let mut text = String::new();
    for range in volume.ranges() {
        let key: String = range.key.iter().map(|byte| format!("{byte:02x}")).collect();
        text.push_str(&format!("{} {} {key}\n", range.start, range.end));
    }
    let base = args.transform.tweak_base().name();
    text.push_str(&format!(
        "data_unit {} tweak_base {base} partition_offset {}\n",
        args.transform.data_unit(),
        args.partition_offset
    ));
    text
}

/// The values as the simulated registry holds them.
fn registry_values(settings: &Settings) -> Vec<RegistryValue> {
    settings
        .values()
        .iter()
        .map(|value| RegistryValue {
            name: value.name.as_str().into(),
            value_type: value.registry_type(),
            data: value.bytes(),
        })
        .collect()
}

/// A bug check, with dumpcrypt's fault named when it is one.
fn describe(error: &SimError) -> String {
    match error.bug_check() {
        Some(bug_check) if bug_check.code == BUGCHECK_CODE => {
            let rule = bug_check.parameters[0];
            let name = Rule::TABLE
                .iter()
                .find(|(_, code, ..)| *code == rule)
                .map_or("unknown rule", |(_, _, name, ..)| name);
            format!("{error} — dumpcrypt fault {name}")
        }
        _ => error.to_string(),
    }
}

struct Run {
    machine: Machine,
    max_pages_per_write: u32,
    disk: DiskInfo,
}

impl Run {
    fn load(&mut self, dump_type: u32) -> Result<LoadedFilter, CliError> {
        match stack::load(
            dumpcrypt::DriverEntry,
            dump_type,
            self.max_pages_per_write,
            self.disk,
        )? {
            Load::Loaded(filter) => Ok(filter),
            Load::Failed { status, .. } => Err(CliError::Usage(format!(
                "DriverEntry failed with status {status:#010x}: the system would write no dump"
            ))),
        }
    }
}

/// Bytes of a file that lie in the area.
fn bytes_in_area(machine: &Machine, which: DumpFile, geometry: &Geometry) -> u64 {
    machine
        .file(which)
        .extents
        .iter()
        .filter_map(|extent| {
            let position = geometry.position_of_partition_offset(extent.partition_offset)?;
            geometry.encrypted_span(position, extent.len as usize)
        })
        .map(|span| (span.end - span.start) as u64)
        .sum()
}

fn throughput(bytes: u64, time: Duration) -> String {
    if time.is_zero() {
        return "-".into();
    }
    format!("{:.2} GB/s", bytes as f64 / time.as_secs_f64() / 1e9)
}

fn print_dump(name: &str, report: &DumpReport) {
    if !report.written {
        crate::outln!(
            "{name:<12} not written: Dump_Start returned {:#010x}",
            report.start_status
        );
        return;
    }
    crate::outln!(
        "{name:<12} {} writes, {}, {} changed by the filter; filter {} ({:.3} s), simulator {:.3} s",
        report.writes,
        human(report.bytes),
        human(report.bytes_changed),
        throughput(report.bytes, report.filter_time),
        report.filter_time.as_secs_f64(),
        (report.elapsed - report.filter_time).as_secs_f64(),
    );
}

/// The crash dump's kind and format, and where it goes.
fn print_dump_format(machine: &Machine, args: &Args) {
    let dump = machine.crash_dump();
    let format = match dump.kind.summary_signature() {
        None => "DumpType 1, physical memory runs".to_string(),
        Some(signature) => format!("DumpType 5, {} bitmap", String::from_utf8_lossy(signature)),
    };
    let memory = machine.physical_memory();
    crate::outln!(
        "dump format  {} memory dump ({format}): {} of {} pages in {} runs of physical memory, {} in all",
        args.dump_kind
            .to_possible_value()
            .map_or_else(String::new, |value| value.get_name().to_string()),
        dump.pages.pages(),
        memory.pages(),
        memory.runs.len(),
        human(dump.len()),
    );
    if let (Some(disk), Some(extents)) = (&args.disk, &args.dump_extents) {
        crate::outln!(
            "disk         {} copied; the crash dump written into {} of the extents in {}",
            disk.display(),
            machine.crash_file.extents.len(),
            extents.display()
        );
    }
}

fn print_resume(report: &ResumeReport) {
    if report.filtered {
        crate::outln!(
            "{:<12} {} reads, {} read back through Dump_Read and verified; filter {}",
            "resume",
            report.reads,
            human(report.bytes),
            throughput(report.bytes, report.filter_time),
        );
    } else {
        crate::outln!(
            "resume       no Dump_Read before Windows 8: the boot path must decrypt the image"
        );
    }
}

/// The phases of a run, each counted once on the progress bar: the crash dump's writes, the
/// hibernation's writes, the resume's reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    CrashDump,
    Hibernation,
    Resume,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::CrashDump => "crash dump",
            Self::Hibernation => "hibernation",
            Self::Resume => "resume",
        }
    }
}

/// A progress bar that tells the truth: its length is the bytes of the phases that will run,
/// each phase moves it within its own share, a phase that does not happen (a refused dump,
/// no Dump_Read before Windows 8) takes its share off the length, and it ends at 100 %.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    phases: Vec<(Phase, u64)>,
    /// The bytes of the phases finished or skipped before the current one.
    done: u64,
}

impl Progress {
    pub fn new(bar: ProgressBar, phases: Vec<(Phase, u64)>) -> Self {
        bar.set_length(phases.iter().map(|(_, bytes)| bytes).sum());
        bar.set_position(0);
        Self {
            bar,
            phases,
            done: 0,
        }
    }

    fn share(&self, phase: Phase) -> u64 {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map_or(0, |(_, bytes)| *bytes)
    }

    /// Starts `phase`; the callback moves the bar by the bytes done within it.
    pub fn begin(&self, phase: Phase) -> Box<dyn FnMut(u64)> {
        self.bar.set_message(phase.name());
        let (bar, base, share) = (self.bar.clone(), self.done, self.share(phase));
        Box::new(move |bytes| bar.set_position(base + bytes.min(share)))
    }

    /// Ends `phase`: its share is done, or (when it did not happen) taken off the length.
    pub fn end(&mut self, phase: Phase, happened: bool) {
        let share = self.share(phase);
        if happened {
            self.done += share;
        } else {
            self.bar
                .set_length(self.bar.length().unwrap_or(0).saturating_sub(share));
        }
        self.bar.set_position(self.done);
        self.phases.retain(|(p, _)| *p != phase);
    }

    /// Ends the phases that never started (a run cut short by a failure).
    pub fn finish(&mut self) {
        for phase in self.phases.iter().map(|(p, _)| *p).collect::<Vec<_>>() {
            self.end(phase, false);
        }
        self.bar.set_position(self.done);
    }

    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

/// Fails unless `memory` bytes can be held by this machine now.
fn check_memory(memory: u64, max_pages_per_write: u32) -> Result<(), CliError> {
    if memory == 0 || memory > MAX_MEMORY {
        return Err(CliError::Usage(format!(
            "--memory must be between 1 byte and {} (the simulator's limit)",
            human(MAX_MEMORY)
        )));
    }
    let pages = memory.div_ceil(PAGE_SIZE as u64) * PAGE_SIZE as u64;
    let need = pages + 8 * u64::from(max_pages_per_write) * PAGE_SIZE as u64 + OVERHEAD;
    let refuse = |available: u64, source: &str| {
        CliError::Usage(format!(
            "--memory {}: the simulator holds all of the simulated memory in RAM and needs \
             about {} in all, but this machine has {} available ({source}); choose a smaller \
             --memory",
            human(memory),
            human(need),
            human(available)
        ))
    };
    #[cfg(target_os = "linux")]
    if let Some(available) = mem_available() {
        if available < need {
            return Err(refuse(available, "MemAvailable in /proc/meminfo"));
        }
        return Ok(());
    }
    // Elsewhere (and without /proc): ask the allocator, which refuses what it cannot commit.
    let size = usize::try_from(need).map_err(|_| refuse(0, "more than the address space"))?;
    let mut probe: Vec<u8> = Vec::new();
    if probe.try_reserve_exact(size).is_err() {
        return Err(refuse(0, "the allocator refused it"));
    }
    Ok(())
}

/// MemAvailable from /proc/meminfo, in bytes.
#[cfg(target_os = "linux")]
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Whether two directories lie on one file system (then their files share its free space).
fn same_file_system(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev(),
            _ => true,
        }
    }
    #[cfg(not(unix))]
    {
        let root = |path: &Path| {
            std::fs::canonicalize(path)
                .ok()
                .and_then(|p| p.components().next().map(|c| c.as_os_str().to_owned()))
        };
        root(a) == root(b)
    }
}

/// The options checked before anything is built: sizes the simulator can hold, a geometry
/// that can exist, outputs that can be written.
fn check(args: &Args) -> Result<(), CliError> {
    if args.disk.is_some() && args.dump_type() != DumpTypeArg::Crash {
        return Err(CliError::Usage(
            "--disk writes the crash dump into the extents of --dump-extents and lays out no \
             hibernation file: give --dump-type crash (the default with --disk)"
                .into(),
        ));
    }
    let provider_source = args.key_source == KeySourceArg::Provider;
    if args.provider_keys_out.is_some() && !provider_source {
        return Err(CliError::Usage(
            "--provider-keys-out needs --key-source provider".into(),
        ));
    }
    if args.key.is_some() && provider_source {
        return Err(CliError::Usage(
            "--key-source provider uses the sample provider's keys: drop --key".into(),
        ));
    }
    let sealed_source = args.key_source == KeySourceArg::Sealed;
    if sealed_source && args.key.is_some() {
        return Err(CliError::Usage(
            "--key-source sealed draws a fresh key at each load: drop --key".into(),
        ));
    }
    if sealed_source && args.recipient.is_none() {
        return Err(CliError::Usage(
            "--key-source sealed needs --recipient age1... (what `age-keygen -y IDENTITY` \
             prints)"
                .into(),
        ));
    }
    if !sealed_source && (args.recipient.is_some() || args.sealed_keys_out.is_some()) {
        return Err(CliError::Usage(
            "--recipient and --sealed-keys-out need --key-source sealed".into(),
        ));
    }
    if let Some(recipient) = &args.recipient {
        dumpcrypt_seal::Recipient::parse(recipient.as_bytes())
            .map_err(|error| CliError::Usage(format!("--recipient: {error}")))?;
    }
    if args.max_pages_per_write == 0 {
        return Err(CliError::Usage(
            "--max-pages-per-write must be at least 1".into(),
        ));
    }
    if args.max_pages_per_write > MAX_PAGES_PER_WRITE {
        return Err(CliError::Usage(format!(
            "--max-pages-per-write {} is more than one MDL can describe: an MDL's Size is a \
             16-bit count of bytes (0x30 of header and 8 per page), at most {MDL_MAX_SLOTS} \
             pages, and the simulator's MDLs need up to 4 of them for data that starts inside a \
             page and for spare slots: at most {MAX_PAGES_PER_WRITE}",
            args.max_pages_per_write
        )));
    }
    let unit = u64::from(args.transform.data_unit());
    if args.partition_offset % unit != 0 {
        return Err(CliError::Usage(format!(
            "--partition-offset {:#x} is not a multiple of the data unit ({unit} bytes), which \
             is also the simulated disk's sector size: a partition starts on a sector boundary",
            args.partition_offset
        )));
    }
    check_memory(args.memory, args.max_pages_per_write)?;
    // The image holds the partition offset, the two files (about twice the memory) and some
    // room: it must stay below the largest file size, 2^63 bytes.
    let fits = args
        .memory
        .checked_mul(2)
        .and_then(|files| files.checked_add(64 << 20))
        .and_then(|files| files.checked_add(args.partition_offset))
        .is_some_and(|end| i64::try_from(end).is_ok());
    if !fits {
        return Err(CliError::Usage(format!(
            "--partition-offset {:#x}: the disk image would end beyond 2^63 bytes, the largest \
             file size",
            args.partition_offset
        )));
    }
    Ok(())
}

/// The image files: checked and created (as temporary files) before any work.
struct Images {
    image: PendingFile,
    reference: Option<PendingFile>,
}

fn images(args: &Args) -> Result<Images, CliError> {
    let rules = |option| Rules {
        option,
        streams: false,
        force: args.force,
        binary: true,
        secret: false,
    };
    let image = args
        .image
        .as_deref()
        .map(|path| output::resolve(path, &rules("--image")))
        .transpose()?;
    let reference = args
        .reference
        .as_deref()
        .map(|path| output::resolve(path, &rules("--reference")))
        .transpose()?;
    if let (Some(image), Some(reference)) = (&image, &reference) {
        if output::final_path(image) == output::final_path(reference) {
            return Err(CliError::Usage(
                "--image and --reference name the same file: the reference (the image without \
                 the filter) would overwrite the filtered image; give two files"
                    .into(),
            ));
        }
    }
    let image = match &image {
        Some(destination) => PendingFile::for_destination(destination)?,
        None => PendingFile::scratch(".dumpcrypt-simulate-disk.")?,
    };
    let reference = reference
        .as_ref()
        .map(PendingFile::for_destination)
        .transpose()?;
    // Every byte of the files the run writes reaches each image once.
    let pages = args.memory.div_ceil(PAGE_SIZE as u64) * PAGE_SIZE as u64;
    let crash = args.dump_type() != DumpTypeArg::Hibernate;
    let hibernate = args.dump_type() != DumpTypeArg::Crash;
    // (A bitmap dump's summary and bitmap take a page per 128 MiB of memory more.)
    let bitmap = pages.div_ceil(128 << 20) * PAGE_SIZE as u64;
    let written = match &args.disk {
        // The template is copied whole.
        Some(template) => std::fs::metadata(template)
            .map_err(|error| CliError::file(template, error))?
            .len(),
        None => {
            u64::from(crash) * (CRASH_HEADER_LEN as u64 + bitmap + pages)
                + u64::from(hibernate) * (PAGE_SIZE as u64 + pages)
        }
    };
    let mut targets: Vec<(PathBuf, u64, String)> = vec![(
        image.directory(),
        written,
        match &args.image {
            Some(path) => format!("--image {}", path.display()),
            None => format!(
                "the temporary disk image in {} (set TMPDIR, or give --image)",
                image.directory().display()
            ),
        },
    )];
    if let (Some(file), Some(path)) = (&reference, &args.reference) {
        let directory = file.directory();
        match targets
            .iter_mut()
            .find(|(other, ..)| same_file_system(other, &directory))
        {
            Some((_, bytes, name)) => {
                *bytes += written;
                name.push_str(&format!(" and --reference {}", path.display()));
            }
            None => targets.push((
                directory,
                written,
                format!("--reference {}", path.display()),
            )),
        }
    }
    for (directory, bytes, name) in &targets {
        output::ensure_space(directory, *bytes, name)?;
    }
    Ok(Images { image, reference })
}

impl Args {
    fn dump_type(&self) -> DumpTypeArg {
        match (self.dump_type, &self.disk) {
            (Some(dump_type), _) => dump_type,
            (None, Some(_)) => DumpTypeArg::Crash,
            (None, None) => DumpTypeArg::Both,
        }
    }
}

/// `--disk` and `--dump-extents`, read.
fn disk_template(args: &Args) -> Result<Option<DiskTemplate>, CliError> {
    let (Some(path), Some(extents)) = (&args.disk, &args.dump_extents) else {
        return Ok(None);
    };
    let metadata = std::fs::metadata(path).map_err(|error| CliError::file(path, error))?;
    if !metadata.is_file() {
        return Err(CliError::Usage(format!(
            "--disk {}: not a regular file (a raw disk image to copy)",
            path.display()
        )));
    }
    Ok(Some(DiskTemplate {
        path: path.clone(),
        crash_extents: crate::dump_extents::read(extents)?,
    }))
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    check(&args)?;
    let disk_template = disk_template(&args)?;
    // The outputs first: a refused or unwritable image or keys file costs no work.
    let keys_rules = Rules {
        option: "--provider-keys-out",
        streams: true,
        force: args.force,
        binary: false,
        secret: true,
    };
    let keys_destination = args
        .provider_keys_out
        .as_deref()
        .map(|path| output::resolve(path, &keys_rules))
        .transpose()?;
    // Sealed keys are readable only with the identity: not a secret file.
    let sealed_rules = Rules {
        option: "--sealed-keys-out",
        streams: true,
        force: args.force,
        binary: true,
        secret: false,
    };
    let sealed_destination = args
        .sealed_keys_out
        .as_deref()
        .map(|path| output::resolve(path, &sealed_rules))
        .transpose()?;
    let images = images(&args)?;
    let key = match &args.key {
        Some(path) => read_key(path)?,
        None => generate_key()?,
    };
    let settings = settings(&args, &key);
    let config = settings.validate()?;
    let values = registry_values(&settings);
    let provider_source = config.key_source == KeySource::Provider;
    let os_version = match args.os {
        OsArg::Windows7 => (6, 1, 7601),
        OsArg::Windows11 => (10, 0, 26100),
    };
    let mut environment = Environment {
        os_version,
        partition_offset: Ok(args.partition_offset),
        secrets: vec![key[..32].to_vec(), key[32..].to_vec()],
        ..Environment::default()
    };
    environment
        .registry
        .insert(dumpcrypt::kernel::PARAMETERS_PATH.into(), values);
    // The simulated clock is this machine's: the sealed keys are named by their load time.
    let booted = filetime_now().unwrap_or(environment.system_time);
    environment.system_time = booted;
    ntoskrnl::boot(environment);

    let machine_config = MachineConfig {
        memory: usize::try_from(args.memory)
            .map_err(|_| CliError::Usage("--memory: more than this machine can address".into()))?,
        max_pages_per_write: args.max_pages_per_write,
        sector_size: args.transform.data_unit(),
        partition_offset: args.partition_offset,
        seed: args.seed,
        contiguous_crash_file: args.contiguous_dump,
        dump_kind: args.dump_kind.into(),
        disk_template,
        // The dump headers name the simulated Windows' build.
        build: os_version.2,
    };
    let image_error = |error: std::io::Error| match &args.image {
        // The dump does not fit the extents, or an extent cannot be.
        _ if error.kind() == std::io::ErrorKind::InvalidInput && args.disk.is_some() => {
            CliError::Usage(format!(
                "--dump-extents {}: {error}",
                args.dump_extents
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            ))
        }
        Some(path) => CliError::file(path, error),
        None => CliError::Usage(format!("temporary disk image: {error}")),
    };
    let machine = Machine::new(
        machine_config,
        Some(images.image.path()),
        images.reference.as_ref().map(PendingFile::path),
    )
    .map_err(image_error)?;
    // A scratch image lives on unnamed from here: nothing of it can be left behind.
    let image = images.image.unlink_scratch();
    let disk = DiskInfo {
        bytes_per_sector: args.transform.data_unit(),
        disk_size: machine.disk_size(),
    };
    // The keys the bytes of the dump are encrypted with, and where: the registry's one area,
    // or the provider's ranges (registered now, on the booted kernel).
    let (keyed, _provider) = if provider_source {
        let volume = provider_volume(&args, machine.disk_size());
        if let Some(destination) = keys_destination {
            let keys = Output::open(destination, &keys_rules, &[])?;
            keys.write_all(provider_keys_text(&volume, &args).as_bytes())?;
            keys.commit()?;
        }
        let keyed: Vec<Area> = volume
            .ranges()
            .iter()
            .map(|range| Area {
                start: range.start,
                end: range.end,
            })
            .collect();
        let provider = SampleProvider::register(volume).map_err(|status| {
            CliError::Usage(format!(
                "the sample provider could not register: {status:#x}"
            ))
        })?;
        (keyed, Some(provider))
    } else {
        (vec![config.area], None)
    };
    let crash = args.dump_type() != DumpTypeArg::Hibernate;
    let hibernate = args.dump_type() != DumpTypeArg::Crash;
    let mut phases = Vec::new();
    if crash {
        phases.push((Phase::CrashDump, machine.crash_file.len));
    }
    if hibernate {
        phases.push((Phase::Hibernation, machine.hibernation_file.len));
        phases.push((Phase::Resume, machine.hibernation_file.len));
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{msg:12} {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template"),
    );
    let mut progress = Progress::new(bar, phases);
    let mut run = Run {
        machine,
        max_pages_per_write: args.max_pages_per_write,
        disk,
    };

    let geometry = Geometry::new(
        DataUnit::from_bytes(args.transform.data_unit()).unwrap_or(DataUnit::Bytes512),
        Area::WHOLE_DISK,
        args.transform.tweak_base(),
        args.partition_offset,
    );
    crate::outln!(
        "dumpcrypt simulate: policy {}, {} of memory, MaxPagesPerWrite {}, data unit {}, \
         {} tweaks, partition at byte {:#x} of the image",
        PolicyArg::from(config.crash_dump_policy).name(),
        human(args.memory),
        args.max_pages_per_write,
        args.transform.data_unit(),
        tweak_base_name(geometry.tweak_base()),
        args.partition_offset
    );
    if crash {
        print_dump_format(&run.machine, &args);
    }
    if provider_source {
        crate::outln!(
            "key source   the sample provider: {} ranges under their own keys, a plaintext rest",
            keyed.len()
        );
    }
    if let (KeySource::Sealed, Some(recipient)) = (config.key_source, &config.recipient) {
        crate::outln!(
            "key source   sealed: a fresh key at each load, sealed to {recipient}; hibernation {}",
            PolicyArg::from(config.hibernation_policy).name()
        );
    }
    let mut failures = Vec::new();
    let outcome = (|| -> Result<(), SimError> {
        for (enabled, which, dump_type, phase) in [
            (crash, DumpFile::Crash, stack::CRASHDUMP, Phase::CrashDump),
            (
                hibernate,
                DumpFile::Hibernation,
                stack::HIBERNATION,
                Phase::Hibernation,
            ),
        ] {
            if !enabled {
                continue;
            }
            let name = phase.name();
            let mut filter = match run.load(dump_type) {
                Ok(filter) => filter,
                Err(error) => {
                    failures.push(format!("{name}: {error}"));
                    continue;
                }
            };
            run.machine.set_progress(progress.begin(phase));
            let report = run.machine.dump(&mut filter, which)?;
            progress.end(phase, report.written);
            progress.bar().suspend(|| print_dump(name, &report));
            let policy = match which {
                DumpFile::Crash => config.crash_dump_policy,
                DumpFile::Hibernation => config.hibernation_policy,
            };
            let expected_changed = match policy {
                Policy::Encrypt => keyed
                    .iter()
                    .map(|&area| bytes_in_area(&run.machine, which, &geometry.with_area(area)))
                    .sum(),
                _ => 0,
            };
            let expected_written = policy != Policy::Refuse;
            if report.written != expected_written {
                failures.push(format!(
                    "{name}: written = {}, expected {expected_written}",
                    report.written
                ));
            } else if report.written && report.bytes_changed != expected_changed {
                failures.push(format!(
                    "{name}: the filter changed {} bytes, the area holds {} of the file",
                    report.bytes_changed, expected_changed
                ));
            }
            if which == DumpFile::Hibernation {
                if report.written {
                    // The simulator reports no progress while it reads: the bar moves when
                    // the resume is done.
                    let mut moved = progress.begin(Phase::Resume);
                    moved(0);
                    let resume = run.machine.resume(&mut filter)?;
                    progress.end(Phase::Resume, resume.filtered);
                    progress.bar().suspend(|| print_resume(&resume));
                } else {
                    progress.end(Phase::Resume, false);
                }
            }
            filter.unload()?;
        }
        Ok(())
    })();
    progress.finish();
    progress.bar().finish_and_clear();
    if let Err(error) = outcome {
        failures.push(describe(&error));
    }
    if let Some(destination) = sealed_destination {
        match sealed_keys_reg(booted) {
            Ok((keys, bytes)) => {
                let output = Output::open(destination, &sealed_rules, &[])?;
                let name = output.name().to_string();
                output.write_all(&bytes)?;
                output.commit()?;
                crate::outln!(
                    "sealed keys  {keys} in {name} (Parameters\\SealedKeys, as `reg export` writes \
                     it): open them with `dumpcrypt unseal --identity FILE --sealed-keys {name}`"
                );
            }
            Err(problem) => failures.push(problem),
        }
    }
    // The images are closed before they take their names (Windows renames no open file).
    drop(run);
    if let Some(image) = image {
        image.commit()?;
    }
    if let Some(reference) = images.reference {
        reference.commit()?;
    }
    if failures.is_empty() {
        crate::outln!(
            "verdict      PASS: every rule held and every byte is where the policy puts it"
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for failure in &failures {
            crate::outln!("FAIL         {failure}");
        }
        crate::outln!("verdict      FAIL");
        Ok(ExitCode::FAILURE)
    }
}

/// This machine's clock as a FILETIME (100 ns ticks since 1601-01-01 UTC).
fn filetime_now() -> Option<u64> {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let ticks = u64::try_from(since_unix.as_nanos() / 100).ok()?;
    ticks.checked_add(FILETIME_UNIX_EPOCH)
}

/// The simulated `Parameters\SealedKeys` as a `.reg` file: how many sealed keys, and the
/// file's bytes. Every value must be named by a load time not before `booted` (a FILETIME)
/// and be an age file.
fn sealed_keys_reg(booted: u64) -> Result<(usize, Vec<u8>), String> {
    let earliest = Stamp::from_filetime(booted);
    let mut keys = Vec::new();
    for (name, blob) in ntoskrnl::sealed_keys() {
        let stamp = Stamp::parse(&name)
            .map_err(|reason| format!("SealedKeys holds a value the driver misnamed: {reason}"))?;
        if earliest
            .as_ref()
            .is_some_and(|earliest| stamp.as_str() < earliest.as_str())
        {
            return Err(format!(
                "the sealed key {name} is named before the simulated boot ({})",
                earliest.map(|e| e.readable()).unwrap_or_default()
            ));
        }
        if !blob.starts_with(b"age-encryption.org/v1\n") {
            return Err(format!("the sealed key {name} is not an age v1 file"));
        }
        keys.push(SealedKey { stamp, blob });
    }
    if keys.is_empty() {
        return Err("the driver sealed no key into Parameters\\SealedKeys".into());
    }
    Ok((keys.len(), write_reg(&keys)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mdl_limit_is_what_a_16_bit_size_holds() {
        // Independently: 0x7FFF bytes at most, 0x30 of header, 8 per PFN.
        assert_eq!(MDL_MAX_SLOTS, 4089);
        assert!(0x30 + 8 * (MAX_PAGES_PER_WRITE as usize + 4) <= 0x7FFF);
        assert!(0x30 + 8 * (MAX_PAGES_PER_WRITE as usize + 5) > 0x7FFF);
    }

    /// Where the bar stands: (position, length).
    fn at(progress: &Progress) -> (u64, u64) {
        (
            progress.bar().position(),
            progress.bar().length().unwrap_or(0),
        )
    }

    #[test]
    fn each_phase_counts_once_and_the_bar_ends_full() {
        let (crash, hibernation) = (1000, 700);
        let mut progress = Progress::new(
            ProgressBar::hidden(),
            vec![
                (Phase::CrashDump, crash),
                (Phase::Hibernation, hibernation),
                (Phase::Resume, hibernation),
            ],
        );
        assert_eq!(at(&progress), (0, crash + 2 * hibernation));
        let mut moved = progress.begin(Phase::CrashDump);
        moved(400);
        assert_eq!(at(&progress).0, 400);
        moved(crash);
        progress.end(Phase::CrashDump, true);
        assert_eq!(at(&progress).0, crash);
        let mut moved = progress.begin(Phase::Hibernation);
        moved(hibernation + 5); // never past its own share
        assert_eq!(at(&progress).0, crash + hibernation);
        progress.end(Phase::Hibernation, true);
        drop(progress.begin(Phase::Resume));
        progress.end(Phase::Resume, true);
        progress.finish();
        assert_eq!(
            at(&progress),
            (crash + 2 * hibernation, crash + 2 * hibernation)
        );
    }

    #[test]
    fn phases_that_do_not_happen_leave_the_bar_full_too() {
        // Refuse: no dump is written, no resume reads.
        let mut progress = Progress::new(
            ProgressBar::hidden(),
            vec![
                (Phase::CrashDump, 1000),
                (Phase::Hibernation, 700),
                (Phase::Resume, 700),
            ],
        );
        drop(progress.begin(Phase::CrashDump));
        progress.end(Phase::CrashDump, false);
        drop(progress.begin(Phase::Hibernation));
        progress.end(Phase::Hibernation, false);
        progress.end(Phase::Resume, false);
        progress.finish();
        let (position, length) = at(&progress);
        assert_eq!(position, length);
        assert_eq!(length, 0);
        // A run cut short after the crash dump ends full as well.
        let mut progress = Progress::new(
            ProgressBar::hidden(),
            vec![(Phase::CrashDump, 1000), (Phase::Hibernation, 700)],
        );
        progress.end(Phase::CrashDump, true);
        progress.finish();
        assert_eq!(at(&progress), (1000, 1000));
    }
}
