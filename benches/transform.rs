//! The XTS-AES-256 transform alone, per backend and write size, with memcpy as the reference,
//! and the cost of the VAES backends' state save.
//!
//! Every backend this processor runs is measured (`Backend::available`): `vaes512`,
//! `vaes256`, `aesni`, `portable`; the VAES ones with a state area per call, as the driver
//! has one attached (`*_with`). Built with `RUSTFLAGS="--cfg aes_force_soft"` (as
//! `scripts/bench-report.sh` does, in a separate target directory) only the portable backend
//! remains, on the `aes` crate's constant-time software AES. `DUMPCRYPT_BENCH_CLOCK=cpu`
//! measures thread CPU time instead of wall-clock time (benches/common/clock.rs).
#![expect(
    missing_docs,
    reason = "criterion_group! makes an undocumented public function"
)]
use std::hint::black_box;
use std::time::Duration;

use crashdmp_sim::memory::Pages;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dumpcrypt_xts::{Backend, DataUnit, StateArea, XtsAes256};

#[path = "common/clock.rs"]
mod clock;
use clock::Clock;

/// Write sizes: a page, a typical dump transfer, and the largest ones.
const SIZES: [(usize, &str); 4] = [
    (4 << 10, "4KiB"),
    (64 << 10, "64KiB"),
    (256 << 10, "256KiB"),
    (1 << 20, "1MiB"),
];

const BACKENDS: [Backend; 4] = [
    Backend::Vaes512,
    Backend::Vaes256,
    Backend::AesNi,
    Backend::Portable,
];

fn key() -> [u8; 64] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(7))
}

fn source(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn transform(c: &mut Criterion<Clock>) {
    let mut area = StateArea::new();
    for backend in BACKENDS {
        let Some(xts) = XtsAes256::exactly(&key(), backend).expect("key halves differ") else {
            continue;
        };
        let name = backend.name();
        for unit in [DataUnit::Bytes512, DataUnit::Bytes4096] {
            let suffix = match unit {
                DataUnit::Bytes512 => "",
                DataUnit::Bytes4096 => "_unit4096",
            };
            let mut group = c.benchmark_group(format!("transform_encrypt{suffix}_{name}"));
            for (size, label) in SIZES {
                if unit == DataUnit::Bytes4096 && size != 64 << 10 {
                    continue;
                }
                let plain = source(size);
                let mut out = vec![0u8; size];
                group.throughput(Throughput::Bytes(size as u64));
                group.bench_function(BenchmarkId::from_parameter(label), |b| {
                    b.iter(|| {
                        xts.encrypt_units_with(
                            &mut area,
                            unit,
                            black_box(0x4_0000),
                            black_box(&plain),
                            &mut out,
                        )
                        .expect("whole units");
                    });
                });
            }
            group.finish();
        }

        let mut group = c.benchmark_group(format!("transform_decrypt_in_place_{name}"));
        for (size, label) in SIZES {
            let mut buffer = source(size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter(|| {
                    xts.decrypt_units_in_place_with(
                        &mut area,
                        DataUnit::Bytes512,
                        black_box(0x4_0000),
                        black_box(&mut buffer),
                    )
                    .expect("whole units");
                });
            });
        }
        group.finish();
    }
}

/// Puts non-zero values in every vector and opmask register, so that XSAVEC finds every
/// component in use and saves it all (the dump path's worst case: the interrupted context's
/// state is live in the registers).
///
/// # Safety
/// The processor has AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn dirty_every_register() {
    macro_rules! ones {
        ($($i:literal)*) => {
            concat!($("vpternlogd zmm", $i, ", zmm", $i, ", zmm", $i, ", 0xff\n",)*)
        };
    }
    // SAFETY: AVX-512 F and BW are there (the caller's contract); every register written is
    // declared clobbered.
    unsafe {
        std::arch::asm!(
            ones!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31),
            "kxnorq k1, k1, k1", "kxnorq k2, k2, k2", "kxnorq k3, k3, k3", "kxnorq k4, k4, k4",
            "kxnorq k5, k5, k5", "kxnorq k6, k6, k6", "kxnorq k7, k7, k7",
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _,
            out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _,
            out("zmm10") _, out("zmm11") _, out("zmm12") _, out("zmm13") _, out("zmm14") _,
            out("zmm15") _, out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _, out("zmm24") _,
            out("zmm25") _, out("zmm26") _, out("zmm27") _, out("zmm28") _, out("zmm29") _,
            out("zmm30") _, out("zmm31") _, out("k1") _, out("k2") _, out("k3") _, out("k4") _,
            out("k5") _, out("k6") _, out("k7") _,
            options(nomem, nostack),
        );
    }
}

/// What the state save costs a call: XSAVEC (or XSAVE) and XRSTOR of the backend's
/// components with nothing between them, with the registers as the bench leaves them
/// (mostly in their initial state, which XSAVEC skips) and with every register in use
/// (`_dirty`, less the time of dirtying them, `dirty_only`); and a VAES call of one 512-byte
/// data unit (whose time is mostly the call's fixed cost: the save and restore, the round
/// keys, the first tweaks).
fn state_save(c: &mut Criterion<Clock>) {
    let mut area = StateArea::new();
    let mut group = c.benchmark_group("state_save");
    let avx512 =
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw");
    if avx512 {
        group.bench_function("dirty_only", |b| {
            // SAFETY: AVX-512 F and BW are there (checked above).
            b.iter(|| unsafe { dirty_every_register() });
        });
    }
    for backend in [Backend::Vaes512, Backend::Vaes256] {
        let Some(xts) = XtsAes256::exactly(&key(), backend).expect("key halves differ") else {
            continue;
        };
        group.bench_function(format!("save_restore_{}", backend.name()), |b| {
            b.iter(|| xts.save_and_restore_state(black_box(&mut area)));
        });
        if avx512 {
            group.bench_function(format!("save_restore_{}_dirty", backend.name()), |b| {
                b.iter(|| {
                    // SAFETY: AVX-512 F and BW are there (checked above).
                    unsafe { dirty_every_register() };
                    xts.save_and_restore_state(black_box(&mut area));
                });
            });
        }
        let plain = source(512);
        let mut out = vec![0u8; 512];
        group.bench_function(format!("one_unit_{}", backend.name()), |b| {
            b.iter(|| {
                xts.encrypt_units_with(&mut area, DataUnit::Bytes512, 7, &plain, &mut out)
                    .expect("whole units");
            });
        });
    }
    let xmm = XtsAes256::exactly(&key(), Backend::AesNi).expect("key halves differ");
    if let Some(xts) = xmm {
        let plain = source(512);
        let mut out = vec![0u8; 512];
        group.bench_function("one_unit_aesni", |b| {
            b.iter(|| {
                xts.encrypt_units(DataUnit::Bytes512, 7, &plain, &mut out)
                    .expect("whole units");
            });
        });
    }
    group.finish();
}

/// The reference for the copy-only path: libc's memcpy (what `copy_from_slice` calls) between
/// two page-aligned buffers of the write size, as the dump path's source and secondary buffer
/// are.
fn memcpy(c: &mut Criterion<Clock>) {
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
        .with_measurement(Clock::from_env())
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = transform, state_save, memcpy
}
criterion_main!(benches);
