//! Property tests of the arithmetic that decides what gets encrypted: the area intersection at
//! every boundary, data unit numbers for both tweak bases (through the filter, against
//! `xts-mode`), PFN spans, and disk offsets at the top of the 64-bit range.

mod common;

use aes::cipher::KeyInit;
use common::*;
use crashdmp_sim::mdl::{Shape, SimMdl};
use crashdmp_sim::memory::Pages;
use crashdmp_sim::ntoskrnl::{self, Environment};
use crashdmp_sim::stack::{LoadedFilter, SimError, CRASHDUMP};
use dumpcrypt_core::geometry::Area;
use proptest::prelude::*;

const DCRY: u32 = 0x4443_5259;
const OFFSET_MISALIGNED: u64 = 0x02;
const OFFSET_OUT_OF_RANGE: u64 = 0x0A;
const WRITE: u64 = 2;
const MAX_PAGES: u32 = 8;

/// The part of `[offset, offset + len)` inside `[start, end)`, relative to `offset`, computed
/// in 128 bits; the driver's ranges end at the top of the 64-bit space at the latest.
fn model_intersection(area: Area, offset: u64, len: u64) -> Option<std::ops::Range<u64>> {
    let end = (u128::from(offset) + u128::from(len)).min(u128::from(u64::MAX));
    let lo = u128::from(offset).max(u128::from(area.start));
    let hi = end.min(u128::from(area.end));
    (lo < hi).then(|| (lo - u128::from(offset)) as u64..(hi - u128::from(offset)) as u64)
}

/// A value at, or a little before or after, one of the given boundaries, or anywhere.
fn near(boundaries: Vec<u64>) -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (proptest::sample::select(boundaries), -1024i64..=1024)
            .prop_map(|(boundary, delta)| boundary.wrapping_add_signed(delta)),
        1 => any::<u64>(),
    ]
}

fn area() -> impl Strategy<Value = Area> {
    (any::<u64>(), any::<u64>(), 0u64..=4096)
        .prop_filter("non-empty", |(a, b, _)| a != b)
        .prop_map(|(a, b, small)| {
            let (start, end) = (a.min(b), a.max(b));
            // Small areas too: the interesting cases are where both bounds are near.
            if small > 0 && start.checked_add(small).is_some() {
                Area {
                    start,
                    end: start + small,
                }
            } else {
                Area { start, end }
            }
        })
}

proptest! {
    #[test]
    fn area_intersection_at_every_boundary(
        area in area(),
        offset_seed in any::<u64>(),
        len_seed in any::<u64>(),
        choice in 0u8..4,
    ) {
        // Offsets and lengths that put the transfer's ends at, just before or just after the
        // area's ends, and at the top of the 64-bit range.
        let boundaries = [area.start, area.end, 0, u64::MAX];
        let offset = match choice {
            0 => boundaries[(offset_seed % 4) as usize].wrapping_add(offset_seed % 1025).wrapping_sub(512),
            _ => offset_seed,
        };
        let len = match choice {
            1 => boundaries[(len_seed % 4) as usize].wrapping_sub(offset).wrapping_add(len_seed % 1025).wrapping_sub(512),
            2 => len_seed % 0x10_0000,
            _ => len_seed,
        };
        let got = area.intersect(offset, len);
        prop_assert_eq!(got.clone(), model_intersection(area, offset, len));
        if let Some(range) = got {
            prop_assert!(range.start < range.end && range.end <= len);
            // The bytes at the edges of the result are inside the area, their neighbours
            // outside it (or outside the transfer).
            let inside = |i: u64| {
                let byte = u128::from(offset) + u128::from(i);
                byte >= u128::from(area.start) && byte < u128::from(area.end)
            };
            prop_assert!(inside(range.start) && inside(range.end - 1));
            if range.start > 0 {
                prop_assert!(!inside(range.start - 1));
            }
            if range.end < len && u128::from(offset) + u128::from(range.end) <= u128::from(u64::MAX) {
                prop_assert!(!inside(range.end));
            }
        }
    }

    #[test]
    fn area_intersection_near_the_bounds(
        start in near(vec![0, 512, 4096, 1 << 40, u64::MAX - 4096]),
        size in 1u64..=8192,
        offset in near(vec![0, 512, 4096, 1 << 40, u64::MAX - 4096]),
        len in 0u64..=16384,
    ) {
        // An area cannot start at the very top (it would be empty): skip those inputs.
        let area = Area { start, end: start.saturating_add(size) };
        prop_assume!(area.start < area.end);
        prop_assert_eq!(area.intersect(offset, len), model_intersection(area, offset, len));
    }
}

/// An encrypting crash dump instance, started, with the tweak base and partition offset given.
fn encrypting(disk_tweaks: bool, partition: u64, data_unit: u32) -> LoadedFilter {
    let parameters = Parameters::encrypt_both()
        .dword("TweakBase", u32::from(disk_tweaks))
        .dword("DataUnitSize", data_unit);
    let mut environment = Environment {
        partition_offset: Ok(partition),
        // A 4096-byte unit needs a disk of 4096-byte sectors (data_unit_fits_sectors).
        bytes_per_sector: data_unit,
        ..Environment::default()
    };
    environment
        .registry
        .insert(dumpcrypt::kernel::PARAMETERS_PATH.into(), parameters.0);
    ntoskrnl::boot(environment);
    let mut filter = loaded(CRASHDUMP, MAX_PAGES);
    assert_eq!(filter.start().unwrap(), 0);
    filter
}

fn source(len: usize, seed: u8) -> Pages {
    let mut pages = Pages::new(len);
    pages
        .as_mut_slice()
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i as u8).wrapping_mul(31) ^ seed);
    pages
}

/// Writes `len` bytes at `offset`; on success, returns what the MDL then describes (both
/// ways of reading it agree).
fn write(
    filter: &mut LoadedFilter,
    offset: i64,
    source: &Pages,
    len: u32,
) -> Result<Vec<u8>, SimError> {
    let mut mdl = SimMdl::describe(
        source.as_ptr(),
        len,
        Shape::NonpagedPool,
        0,
        source.as_ptr(),
    );
    let mut offset = offset;
    let status = filter.write(0, &mut offset, &mut mdl)?;
    assert_eq!(status, 0);
    let by_va = mdl.gather_by_va().unwrap();
    assert_eq!(mdl.gather_by_pfn().unwrap(), by_va);
    Ok(by_va)
}

fn oracle() -> xts_mode::Xts128<aes::Aes256> {
    xts_mode::Xts128::new(
        aes::Aes256::new_from_slice(&key()[..32]).unwrap(),
        aes::Aes256::new_from_slice(&key()[32..]).unwrap(),
    )
}

fn encrypted(plaintext: &[u8], data_unit: usize, first_unit: u128) -> Vec<u8> {
    let mut expected = plaintext.to_vec();
    oracle().encrypt_area(&mut expected, data_unit, first_unit, |n: u128| {
        n.to_le_bytes()
    });
    expected
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Data unit numbers: (partition offset + O) / unit with disk-absolute tweaks, O / unit
    /// with partition-relative ones.
    #[test]
    fn data_unit_numbers_for_both_tweak_bases(
        disk_tweaks in any::<bool>(),
        large_unit in any::<bool>(),
        partition_units in prop_oneof![0u64..4096, 0u64..(1 << 40)],
        offset_units in prop_oneof![0u64..4096, 0u64..(1 << 40)],
        units in 1u32..=4,
        seed in any::<u8>(),
    ) {
        let unit: u32 = if large_unit { 4096 } else { 512 };
        let partition = partition_units * u64::from(unit);
        let offset = offset_units * u64::from(unit);
        let len = units * unit;
        let mut filter = encrypting(disk_tweaks, partition, unit);
        let data = source(len as usize, seed);
        let written = write(&mut filter, offset as i64, &data, len).unwrap();
        let base = if disk_tweaks { partition } else { 0 };
        let first_unit = u128::from(base + offset) / u128::from(unit);
        prop_assert_eq!(written, encrypted(&data.as_slice()[..len as usize], unit as usize, first_unit));
        filter.finish().unwrap();
        filter.unload().unwrap();
        prop_assert_eq!(ntoskrnl::counters().outstanding, 0);
    }

    /// Offsets near i64::MAX and below zero, partition offsets near u64::MAX: a write is either
    /// encrypted with the right unit number or bug checks with OffsetOutOfRange (or
    /// OffsetMisaligned where the sum does fit); never a panic, never a wrapped unit number.
    #[test]
    fn offsets_at_the_top_of_the_range(
        offset in prop_oneof![
            (0i64..1 << 16).prop_map(|d| i64::MAX - d),
            (0i64..1 << 16).prop_map(|d| (i64::MAX - d) & !511),
            (1i64..1 << 16).prop_map(|d| -d * 512),
            Just(i64::MIN),
            any::<i64>(),
        ],
        partition in prop_oneof![
            Just(0u64),
            (0u64..1 << 20).prop_map(|n| n * 512),
            (0u64..1 << 16).prop_map(|d| (u64::MAX - d) & !511),
            (0u64..1 << 16).prop_map(|d| (1u64 << 63).wrapping_sub(d * 512)),
        ],
        disk_tweaks in any::<bool>(),
        units in 1u32..=8,
    ) {
        let len = units * 512;
        let mut filter = encrypting(disk_tweaks, partition, 512);
        let data = source(len as usize, 7);
        let base = if disk_tweaks { partition } else { 0 };
        let position = u64::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(base))
            .filter(|p| p.checked_add(u64::from(len)).is_some());
        match (write(&mut filter, offset, &data, len), position) {
            (Ok(written), Some(position)) => {
                prop_assert_eq!(position % 512, 0);
                let first_unit = u128::from(position / 512);
                prop_assert_eq!(written, encrypted(&data.as_slice()[..len as usize], 512, first_unit));
            }
            (Err(SimError::BugCheck { bug_check, .. }), None) => {
                prop_assert_eq!(bug_check.code, DCRY);
                prop_assert_eq!(
                    bug_check.parameters,
                    [OFFSET_OUT_OF_RANGE, offset as u64, u64::from(len), WRITE]
                );
            }
            (Err(SimError::BugCheck { bug_check, .. }), Some(position)) => {
                prop_assert_eq!(bug_check.code, DCRY);
                prop_assert_ne!(position % 512, 0);
                prop_assert_eq!(bug_check.parameters, [OFFSET_MISALIGNED, position, 512, WRITE]);
            }
            (other, position) => {
                return Err(TestCaseError::fail(format!("{other:?} for position {position:?}")));
            }
        }
        filter.unload().unwrap();
        prop_assert_eq!(ntoskrnl::counters().outstanding, 0);
    }
}
