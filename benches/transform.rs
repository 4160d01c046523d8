//! The XTS-AES-256 transform alone, per write size, with memcpy as the reference.
//!
//! Which AES backend runs is the `aes` crate's run-time choice (AES-NI when the CPU has it).
//! Built with `RUSTFLAGS="--cfg aes_force_soft"` (as `scripts/bench-report.sh` does, in a
//! separate target directory) the same benchmarks measure the constant-time software backend.
#![expect(
    missing_docs,
    reason = "criterion_group! makes an undocumented public function"
)]
use std::hint::black_box;
use std::time::Duration;

use crashdmp_sim::memory::Pages;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dumpcrypt_xts::{DataUnit, XtsAes256};

/// Write sizes: a page, a typical dump transfer, and the largest ones.
const SIZES: [(usize, &str); 4] = [
    (4 << 10, "4KiB"),
    (64 << 10, "64KiB"),
    (256 << 10, "256KiB"),
    (1 << 20, "1MiB"),
];

fn key() -> [u8; 64] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(7))
}

fn source(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn transform(c: &mut Criterion) {
    let xts = XtsAes256::new(&key()).expect("key halves differ");
    for unit in [DataUnit::Bytes512, DataUnit::Bytes4096] {
        let suffix = match unit {
            DataUnit::Bytes512 => "",
            DataUnit::Bytes4096 => "_unit4096",
        };
        let mut group = c.benchmark_group(format!("transform_encrypt{suffix}"));
        for (size, name) in SIZES {
            let plain = source(size);
            let mut out = vec![0u8; size];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    xts.encrypt_units(unit, black_box(0x4_0000), black_box(&plain), &mut out)
                        .expect("whole units");
                });
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("transform_decrypt_in_place{suffix}"));
        for (size, name) in SIZES {
            let mut buffer = source(size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    xts.decrypt_units_in_place(unit, black_box(0x4_0000), black_box(&mut buffer))
                        .expect("whole units");
                });
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("transform_decrypt");
    for (size, name) in SIZES {
        let cipher = source(size);
        let mut out = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                xts.decrypt_units(
                    DataUnit::Bytes512,
                    black_box(0x4_0000),
                    black_box(&cipher),
                    &mut out,
                )
                .expect("whole units");
            });
        });
    }
    group.finish();
}

/// The reference for the copy-only path: libc's memcpy (what `copy_from_slice` calls) between
/// two page-aligned buffers of the write size, as the dump path's source and secondary buffer
/// are.
fn memcpy(c: &mut Criterion) {
    let mut group = c.benchmark_group("memcpy");
    for (size, name) in SIZES {
        let mut from = Pages::new(size);
        from.as_mut_slice().copy_from_slice(&source(size));
        let mut to = Pages::new(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                to.as_mut_slice()
                    .copy_from_slice(black_box(from.as_slice()));
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
    targets = transform, memcpy
}
criterion_main!(benches);
