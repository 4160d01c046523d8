//! Dump_Write and Dump_Read through the real DriverEntry and callbacks, per write size.
//!
//! The simulated kernel (`crashdmp_sim::ntoskrnl`) is booted with Parameters in its registry;
//! DriverEntry runs on it and allocates the secondary buffer there. Two harnesses call the
//! callbacks:
//! - **lean** (`dump_write_*`, `dump_read_*`): the way crashdmp.sys calls a filter, and
//!   nothing more: `LoadedFilter::write_unchecked`/`read_unchecked` call the DumpWrite/
//!   DumpRead pointers DriverEntry filled in, at the simulated HIGH_LEVEL, with no check
//!   around the call. The time is the filter's: validation, the fused copy-and-encrypt into
//!   the secondary buffer, MDL retargeting (plus restoring the MDL's header and PFNs before
//!   each call, a few hundred bytes).
//! - **checked** (`checked_*`): `crashdmp_sim::stack::load` and `LoadedFilter::write`/`read`,
//!   which also copy the extension and check the guard bytes and the kernel's counters after
//!   every call. The difference is the simulator's checking, not the filter.
//!
//! `dump_write_encrypt` and `dump_read_decrypt` are what DriverEntry's automatic choice gives
//! on this processor; `*_<backend>` the same with the `Backend` value forcing each backend
//! the processor runs (through DriverEntry, so the VAES ones with their state area).
//! `DUMPCRYPT_BENCH_CLOCK=cpu` measures thread CPU time (benches/common/clock.rs).
#![expect(
    missing_docs,
    reason = "criterion_group! makes an undocumented public function"
)]
use std::hint::black_box;
use std::time::Duration;

use crashdmp_sim::mdl::{Header, Shape, SimMdl};
use crashdmp_sim::memory::Pages;
use crashdmp_sim::ntoskrnl::{self, Environment, RegistryValue};
use crashdmp_sim::stack::{self, DiskInfo, Load, LoadedFilter};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dumpcrypt_core::config::backend_as_dword;
use dumpcrypt_xts::Backend;

#[path = "common/clock.rs"]
mod clock;
use clock::Clock;

const SIZES: [(usize, &str); 4] = [
    (4 << 10, "4KiB"),
    (64 << 10, "64KiB"),
    (256 << 10, "256KiB"),
    (1 << 20, "1MiB"),
];
/// MaxPagesPerWrite: room for the largest size.
const MAX_PAGES: u32 = 256;
/// Where the writes go on the partition (any multiple of the data unit would do).
const OFFSET: i64 = 0x4000_0000;

const REG_BINARY: u32 = 3;
const REG_DWORD: u32 = 4;
const REG_QWORD: u32 = 11;

/// The policy a benchmark configures.
#[derive(Clone, Copy)]
enum Setup {
    /// Encrypt, the whole disk (the default area): every write is encrypted.
    Encrypt,
    /// Encrypt, but the area starts far past the writes: each write is only copied.
    EncryptAreaElsewhere,
    Passthrough,
}

fn value(name: &str, value_type: u32, data: &[u8]) -> RegistryValue {
    RegistryValue {
        name: name.into(),
        value_type,
        data: data.to_vec(),
    }
}

fn boot(setup: Setup, backend: Backend) {
    let key: [u8; 64] = std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(7));
    let policy = match setup {
        Setup::Encrypt | Setup::EncryptAreaElsewhere => 1u32,
        Setup::Passthrough => 0,
    };
    let mut values = vec![
        value("CrashDumpPolicy", REG_DWORD, &policy.to_le_bytes()),
        value("HibernationPolicy", REG_DWORD, &policy.to_le_bytes()),
        value("Key", REG_BINARY, &key),
        value(
            "Backend",
            REG_DWORD,
            &backend_as_dword(backend).to_le_bytes(),
        ),
    ];
    if let Setup::EncryptAreaElsewhere = setup {
        values.push(value(
            "EncryptedAreaStart",
            REG_QWORD,
            &(1u64 << 40).to_le_bytes(),
        ));
    }
    let mut environment = Environment::default();
    environment
        .registry
        .insert(dumpcrypt::kernel::PARAMETERS_PATH.into(), values);
    ntoskrnl::boot(environment);
}

/// A loaded and started instance.
fn checked(dump_type: u32) -> LoadedFilter {
    let disk = DiskInfo {
        bytes_per_sector: 512,
        disk_size: 1 << 40,
    };
    match stack::load(dumpcrypt::DriverEntry, dump_type, MAX_PAGES, disk).expect("load") {
        Load::Loaded(mut filter) => {
            assert_eq!(filter.start().expect("Dump_Start"), 0);
            filter
        }
        Load::Failed { status, .. } => panic!("DriverEntry failed: {status:#x}"),
    }
}

/// A write's source in simulated memory and its MDL (source in nonpaged pool, the common
/// shape), with what is needed to put the MDL back after the filter retargets it.
struct Transfer {
    _source: Pages,
    mdl: SimMdl,
    header: Header,
    pfns: Vec<u64>,
}

impl Transfer {
    fn new(len: usize) -> Self {
        let mut source = Pages::new(len);
        for (i, byte) in source.as_mut_slice().iter_mut().enumerate() {
            *byte = (i * 7 + 3) as u8;
        }
        let mdl = SimMdl::describe(
            source.as_ptr(),
            len as u32,
            Shape::NonpagedPool,
            0,
            std::ptr::null(),
        );
        let header = mdl.header();
        let pfns = (0..mdl.slots()).map(|slot| mdl.pfn(slot)).collect();
        Self {
            _source: source,
            mdl,
            header,
            pfns,
        }
    }

    /// Puts the MDL back as the stack built it.
    fn reset(&mut self) -> &mut SimMdl {
        self.mdl.set_header(self.header);
        for (slot, &pfn) in self.pfns.iter().enumerate() {
            self.mdl.set_pfn(slot, pfn);
        }
        &mut self.mdl
    }
}

/// The backends the `Backend` value can force on this processor (DriverEntry takes the next
/// one down for one it lacks: those are not measured).
fn backends() -> impl Iterator<Item = Backend> {
    [
        Backend::Vaes512,
        Backend::Vaes256,
        Backend::AesNi,
        Backend::Portable,
    ]
    .into_iter()
    .filter(|backend| backend.available())
}

/// The sizes of the per-backend groups.
const BACKEND_SIZES: [(usize, &str); 2] = [(4 << 10, "4KiB"), (64 << 10, "64KiB")];

fn bench_writes(
    c: &mut Criterion<Clock>,
    name: &str,
    setup: Setup,
    backend: Backend,
    sizes: &[(usize, &str)],
) {
    boot(setup, backend);
    let mut lean = checked(stack::CRASHDUMP);
    let mut group = c.benchmark_group(name);
    let _high = ntoskrnl::raise_to_high_level();
    for &(size, label) in sizes {
        let mut transfer = Transfer::new(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let mut offset = black_box(OFFSET);
                let status = lean.write_unchecked(&mut offset, transfer.reset());
                assert_eq!(status, 0);
            });
        });
    }
    group.finish();
}

fn dump_write(c: &mut Criterion<Clock>) {
    bench_writes(
        c,
        "dump_write_encrypt",
        Setup::Encrypt,
        Backend::Auto,
        &SIZES,
    );
    for backend in backends() {
        let name = format!("dump_write_encrypt_{}", backend.name());
        bench_writes(c, &name, Setup::Encrypt, backend, &BACKEND_SIZES);
    }
    let copy_only = Setup::EncryptAreaElsewhere;
    bench_writes(c, "dump_write_copy_only", copy_only, Backend::Auto, &SIZES);
    let passthrough = Setup::Passthrough;
    bench_writes(
        c,
        "dump_write_passthrough",
        passthrough,
        Backend::Auto,
        &SIZES,
    );
}

fn bench_reads(c: &mut Criterion<Clock>, name: &str, backend: Backend, sizes: &[(usize, &str)]) {
    boot(Setup::Encrypt, backend);
    let mut lean = checked(stack::HIBERNATION);
    let mut group = c.benchmark_group(name);
    let _high = ntoskrnl::raise_to_high_level();
    for &(size, label) in sizes {
        // Decrypting in place again and again: the data changes, the work does not.
        let mut transfer = Transfer::new(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let mut offset = black_box(OFFSET);
                let status = lean.read_unchecked(&mut offset, &mut transfer.mdl);
                assert_eq!(status, Some(0));
            });
        });
    }
    group.finish();
}

fn dump_read(c: &mut Criterion<Clock>) {
    bench_reads(c, "dump_read_decrypt", Backend::Auto, &SIZES);
    for backend in backends() {
        let name = format!("dump_read_decrypt_{}", backend.name());
        bench_reads(c, &name, backend, &BACKEND_SIZES);
    }
}

/// The same writes and reads through `LoadedFilter`, with the simulator's checks after each.
fn checked_path(c: &mut Criterion<Clock>) {
    boot(Setup::Encrypt, Backend::Auto);
    let mut writer = checked(stack::CRASHDUMP);
    let mut reader = checked(stack::HIBERNATION);
    let mut group = c.benchmark_group("checked_dump_write_encrypt");
    for (size, label) in SIZES {
        let mut transfer = Transfer::new(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let mut offset = black_box(OFFSET);
                let status = writer.write(0, &mut offset, transfer.reset());
                assert_eq!(status.expect("Dump_Write"), 0);
            });
        });
    }
    group.finish();
    let mut group = c.benchmark_group("checked_dump_read_decrypt");
    for (size, label) in SIZES {
        let mut transfer = Transfer::new(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let mut offset = black_box(OFFSET);
                let status = reader.read(0, &mut offset, &mut transfer.mdl);
                assert_eq!(status.expect("has Dump_Read").expect("Dump_Read"), 0);
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(Clock::from_env())
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = dump_write, dump_read, checked_path
}
criterion_main!(benches);
