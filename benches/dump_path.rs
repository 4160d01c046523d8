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

fn boot(setup: Setup) {
    let key: [u8; 64] = std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(7));
    let policy = match setup {
        Setup::Encrypt | Setup::EncryptAreaElsewhere => 1u32,
        Setup::Passthrough => 0,
    };
    let mut values = vec![
        value("CrashDumpPolicy", REG_DWORD, &policy.to_le_bytes()),
        value("HibernationPolicy", REG_DWORD, &policy.to_le_bytes()),
        value("Key", REG_BINARY, &key),
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

fn bench_writes(c: &mut Criterion, name: &str, setup: Setup) {
    boot(setup);
    let mut lean = checked(stack::CRASHDUMP);
    let mut group = c.benchmark_group(name);
    let _high = ntoskrnl::raise_to_high_level();
    for (size, label) in SIZES {
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

fn dump_write(c: &mut Criterion) {
    bench_writes(c, "dump_write_encrypt", Setup::Encrypt);
    bench_writes(c, "dump_write_copy_only", Setup::EncryptAreaElsewhere);
    bench_writes(c, "dump_write_passthrough", Setup::Passthrough);
}

fn dump_read(c: &mut Criterion) {
    boot(Setup::Encrypt);
    let mut lean = checked(stack::HIBERNATION);
    let mut group = c.benchmark_group("dump_read_decrypt");
    let _high = ntoskrnl::raise_to_high_level();
    for (size, label) in SIZES {
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

/// The same writes and reads through `LoadedFilter`, with the simulator's checks after each.
fn checked_path(c: &mut Criterion) {
    boot(Setup::Encrypt);
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
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = dump_write, dump_read, checked_path
}
criterion_main!(benches);
