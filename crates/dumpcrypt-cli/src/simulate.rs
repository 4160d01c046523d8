//! `dumpcrypt simulate`: the real driver code through the simulated crash dump and
//! hibernation stacks, with a verdict.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crashdmp_sim::machine::{DumpFile, DumpReport, Machine, MachineConfig, ResumeReport};
use crashdmp_sim::ntoskrnl::{self, Environment, RegistryValue};
use crashdmp_sim::stack::{self, DiskInfo, Load, LoadedFilter, SimError};
use std::io::Write;

use dumpcrypt_core::config::{KeySource, Policy};
use dumpcrypt_core::fault::{Rule, BUGCHECK_CODE};
use dumpcrypt_core::geometry::{Area, Geometry, TweakBase};
use dumpcrypt_sample_provider::{SampleProvider, Volume};
use dumpcrypt_xts::DataUnit;
use indicatif::{ProgressBar, ProgressStyle};

use crate::files::create_secret;
use crate::options::{
    generate_key, human, parse_size, read_key, CliError, KeySourceArg, PolicyArg, TransformArgs,
};
use crate::parameters::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpTypeArg {
    Crash,
    Hibernate,
    Both,
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
    /// Which stacks to run.
    #[arg(long, value_enum, default_value = "both")]
    pub dump_type: DumpTypeArg,
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
    /// Write the disk image, as written through the filter, to this file.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Write the same image as it would be without the filter to this file.
    #[arg(long)]
    pub reference: Option<PathBuf>,
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
}

/// The Parameters values for these options, as the registry would hold them.
fn settings(args: &Args, key: &[u8; 64]) -> Settings {
    let policy = Policy::from(args.policy);
    let key_source = KeySource::from(args.key_source);
    Settings {
        crash_dump_policy: policy,
        hibernation_policy: policy,
        key: (key_source == KeySource::Registry).then_some(*key),
        data_unit: args.transform.data_unit,
        area: args.transform.area.clone(),
        tweak_base: TweakBase::from(args.transform.tweak_base),
        key_source,
        disk_id: None,
    }
}

/// The sample provider's volume for this run: the whole dump partition, two ranges under
/// two keys over its first two thirds, in the tweak positions of `--tweak-base`.
fn provider_volume(args: &Args, disk_size: u64) -> Volume {
    let mut volume = Volume::two_keys(args.partition_offset, disk_size - args.partition_offset);
    volume.answer.data_unit = args.transform.data_unit;
    volume.answer.tweak_base = TweakBase::from(args.transform.tweak_base).as_dword();
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
    let base = TweakBase::from(args.transform.tweak_base).name();
    text.push_str(&format!(
        "data_unit {} tweak_base {base} partition_offset {}\n",
        args.transform.data_unit, args.partition_offset
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
    progress: ProgressBar,
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
        println!(
            "{name:<12} not written: Dump_Start returned {:#010x}",
            report.start_status
        );
        return;
    }
    println!(
        "{name:<12} {} writes, {}, {} changed by the filter; filter {} ({:.3} s), simulator {:.3} s",
        report.writes,
        human(report.bytes),
        human(report.bytes_changed),
        throughput(report.bytes, report.filter_time),
        report.filter_time.as_secs_f64(),
        (report.elapsed - report.filter_time).as_secs_f64(),
    );
}

fn print_resume(report: &ResumeReport) {
    if report.filtered {
        println!(
            "{:<12} {} reads, {} read back through Dump_Read and verified; filter {}",
            "resume",
            report.reads,
            human(report.bytes),
            throughput(report.bytes, report.filter_time),
        );
    } else {
        println!(
            "resume       no Dump_Read before Windows 8: the boot path must decrypt the image"
        );
    }
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    if args.max_pages_per_write == 0 {
        return Err(CliError::Usage(
            "--max-pages-per-write must be at least 1".into(),
        ));
    }
    if args.memory == 0 || args.memory > (64 << 30) {
        return Err(CliError::Usage(
            "--memory must be between 1 byte and 64GiB".into(),
        ));
    }
    let key = match &args.key {
        Some(path) => read_key(path)?,
        None => generate_key()?,
    };
    let settings = settings(&args, &key);
    let config = settings.validate()?;
    let values = registry_values(&settings);
    let provider_source = config.key_source == KeySource::Provider;
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
    ntoskrnl::boot(environment);

    let machine_config = MachineConfig {
        memory: usize::try_from(args.memory).expect("64-bit host"),
        max_pages_per_write: args.max_pages_per_write,
        sector_size: args.transform.data_unit,
        partition_offset: args.partition_offset,
        seed: args.seed,
        contiguous_crash_file: args.contiguous_dump,
    };
    let io_error = |path: &Option<PathBuf>| {
        let path = path.clone();
        move |error| match path {
            Some(path) => CliError::file(&path, error),
            None => CliError::Usage(format!("temporary disk image: {error}")),
        }
    };
    let machine = Machine::new(
        machine_config,
        args.image.as_deref(),
        args.reference.as_deref(),
    )
    .map_err(io_error(&args.image))?;
    let disk = DiskInfo {
        bytes_per_sector: args.transform.data_unit,
        disk_size: machine.disk_size(),
    };
    // The keys the bytes of the dump are encrypted with, and where: the registry's one area,
    // or the provider's ranges (registered now, on the booted kernel).
    let (keyed, _provider) = if provider_source {
        let volume = provider_volume(&args, machine.disk_size());
        if let Some(path) = &args.provider_keys_out {
            let mut file = create_secret(path, true)?;
            file.write_all(provider_keys_text(&volume, &args).as_bytes())
                .map_err(|error| CliError::file(path, error))?;
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
    let crash = args.dump_type != DumpTypeArg::Hibernate;
    let hibernate = args.dump_type != DumpTypeArg::Crash;
    let total = u64::from(crash) * machine.crash_file.len
        + u64::from(hibernate) * machine.hibernation_file.len * 2;
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template"),
    );
    let mut run = Run {
        machine,
        max_pages_per_write: args.max_pages_per_write,
        disk,
        progress,
    };

    let geometry = Geometry::new(
        DataUnit::from_bytes(args.transform.data_unit).unwrap_or(DataUnit::Bytes512),
        Area::WHOLE_DISK,
        TweakBase::from(args.transform.tweak_base),
        args.partition_offset,
    );
    println!(
        "dumpcrypt simulate: policy {:?}, {} of memory, MaxPagesPerWrite {}, data unit {}, \
         {:?}-relative tweaks, partition at byte {:#x} of the image",
        config.crash_dump_policy,
        human(args.memory),
        args.max_pages_per_write,
        args.transform.data_unit,
        geometry.tweak_base(),
        args.partition_offset
    );
    if provider_source {
        println!(
            "key source   the sample provider: {} ranges under their own keys, a plaintext rest",
            keyed.len()
        );
    }
    let mut failures = Vec::new();
    let mut done = 0u64;
    let outcome = (|| -> Result<(), SimError> {
        for (enabled, which, dump_type, name) in [
            (crash, DumpFile::Crash, stack::CRASHDUMP, "crash dump"),
            (
                hibernate,
                DumpFile::Hibernation,
                stack::HIBERNATION,
                "hibernation",
            ),
        ] {
            if !enabled {
                continue;
            }
            let mut filter = match run.load(dump_type) {
                Ok(filter) => filter,
                Err(error) => {
                    failures.push(format!("{name}: {error}"));
                    continue;
                }
            };
            let bar = run.progress.clone();
            let base = done;
            run.machine
                .set_progress(Box::new(move |bytes| bar.set_position(base + bytes)));
            let report = run.machine.dump(&mut filter, which)?;
            done += run.machine.file(which).len;
            run.progress.set_position(done);
            run.progress.suspend(|| print_dump(name, &report));
            let expected_changed = match config.crash_dump_policy {
                Policy::Encrypt => keyed
                    .iter()
                    .map(|&area| bytes_in_area(&run.machine, which, &geometry.with_area(area)))
                    .sum(),
                _ => 0,
            };
            let expected_written = config.crash_dump_policy != Policy::Refuse;
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
            if which == DumpFile::Hibernation && report.written {
                let bar = run.progress.clone();
                let base = done;
                run.machine
                    .set_progress(Box::new(move |bytes| bar.set_position(base + bytes)));
                let resume = run.machine.resume(&mut filter)?;
                run.progress.suspend(|| print_resume(&resume));
            }
            done += run.machine.file(which).len;
            filter.unload()?;
        }
        Ok(())
    })();
    run.progress.finish_and_clear();
    if let Err(error) = outcome {
        failures.push(describe(&error));
    }
    if failures.is_empty() {
        println!("verdict      PASS: every rule held and every byte is where the policy puts it");
        Ok(ExitCode::SUCCESS)
    } else {
        for failure in &failures {
            println!("FAIL         {failure}");
        }
        println!("verdict      FAIL");
        Ok(ExitCode::FAILURE)
    }
}
