//! The dump path allocates nothing: Dump_Write and Dump_Read, run through the real
//! DriverEntry and callbacks, make no heap allocation on their thread.
//!
//! This file's global allocator counts the allocations of the current thread while a
//! callback runs (armed only around the callback itself, so the test's own set-up and the
//! simulator's checks do not count). In kernel mode the rule is stronger (no allocation of any
//! kind at HIGH_LEVEL, which the simulated ntoskrnl enforces on its side); this test catches
//! the allocations the simulator cannot see: `Vec`, `Box`, formatting, through Rust's
//! allocator.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crashdmp_sim::mdl::{Shape, SimMdl};
use crashdmp_sim::memory::Pages;
use crashdmp_sim::ntoskrnl::{self, Environment, RegistryValue};
use crashdmp_sim::stack::{self, DiskInfo, Load, LoadedFilter, CRASHDUMP, HIBERNATION};

struct CountingAllocator;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the allocator may be called while this thread's locals are torn down.
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counting touches
// only const-initialized thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` with the counter armed; returns its result and the allocations (and frees) it
/// made on this thread.
fn counting<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCATIONS.with(|count| count.set(0));
    ARMED.with(|armed| armed.set(true));
    let result = f();
    ARMED.with(|armed| armed.set(false));
    (result, ALLOCATIONS.with(Cell::get))
}

const REG_BINARY: u32 = 3;
const REG_DWORD: u32 = 4;
const REG_QWORD: u32 = 11;
const MAX_PAGES: u32 = 64;

fn value(name: &str, value_type: u32, data: &[u8]) -> RegistryValue {
    RegistryValue {
        name: name.into(),
        value_type,
        data: data.to_vec(),
    }
}

/// Boots the simulated kernel: encrypt on both stacks, data unit `unit`, area `area`.
fn boot(unit: u32, area: (u64, u64)) {
    let key: [u8; 64] = std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(7));
    let values = vec![
        value("CrashDumpPolicy", REG_DWORD, &1u32.to_le_bytes()),
        value("HibernationPolicy", REG_DWORD, &1u32.to_le_bytes()),
        value("Key", REG_BINARY, &key),
        value("DataUnitSize", REG_DWORD, &unit.to_le_bytes()),
        value("EncryptedAreaStart", REG_QWORD, &area.0.to_le_bytes()),
        value("EncryptedAreaEnd", REG_QWORD, &area.1.to_le_bytes()),
    ];
    let mut environment = Environment {
        bytes_per_sector: unit,
        ..Environment::default()
    };
    environment
        .registry
        .insert(dumpcrypt::kernel::PARAMETERS_PATH.into(), values);
    ntoskrnl::boot(environment);
}

/// A loaded instance. The test calls its callbacks bare (`*_unchecked`): the simulator's
/// checks around each call allocate, the callbacks must not.
fn load(dump_type: u32) -> LoadedFilter {
    let disk = DiskInfo {
        // The data unit's own sector size: a 4096-byte unit is refused on 512-byte sectors.
        bytes_per_sector: ntoskrnl::environment().bytes_per_sector,
        disk_size: 1 << 40,
    };
    match stack::load(dumpcrypt::DriverEntry, dump_type, MAX_PAGES, disk).expect("DriverEntry") {
        Load::Loaded(filter) => filter,
        Load::Failed { status, .. } => panic!("DriverEntry failed with {status:#x}"),
    }
}

/// Writes of several sizes, in every well-formed MDL shape, inside, outside and across the
/// area's edge, then reads them back: no callback allocates.
fn run(unit: u32) {
    const AREA: (u64, u64) = (0x10_0000, 0x20_0000);
    boot(unit, AREA);
    let mut writer = load(CRASHDUMP);
    let mut reader = load(HIBERNATION);
    let high = ntoskrnl::raise_to_high_level();
    assert_eq!(counting(|| writer.start_unchecked()), (0, 0), "Dump_Start");
    assert_eq!(
        counting(|| reader.start_unchecked()),
        (0, 0),
        "Dump_Start (hibernation)"
    );

    let max = MAX_PAGES as usize * 4096;
    let mut source = Pages::new(max + 4096);
    for (i, byte) in source.as_mut_slice().iter_mut().enumerate() {
        *byte = (i * 13 + 1) as u8;
    }
    let mut readback = Pages::new(max + 4096);
    let decoy = Pages::new(max + 4096);
    let lengths = [unit as usize, 4096, 64 << 10, max];
    // Inside, outside (before and after), and straddling each edge of the area.
    let offsets = [
        AREA.0,
        0,
        AREA.1,
        AREA.0 - 2 * u64::from(unit),
        AREA.1 - 2 * u64::from(unit),
    ];
    for (case, (&len, &offset)) in lengths
        .iter()
        .flat_map(|len| offsets.iter().map(move |offset| (len, offset)))
        .enumerate()
    {
        let shape = Shape::WELL_FORMED[case % Shape::WELL_FORMED.len()];
        let in_page = if shape == Shape::OffsetInPage { 512 } else { 0 };
        let data = source.as_slice()[in_page..].as_ptr();
        let mut mdl = SimMdl::describe(data, len as u32, shape, 1, decoy.as_ptr());
        let mut disk_offset = offset as i64;
        let (status, allocations) = counting(|| writer.write_unchecked(&mut disk_offset, &mut mdl));
        assert_eq!(status, 0, "Dump_Write of {len} bytes at {offset:#x}");
        assert_eq!(
            allocations, 0,
            "Dump_Write of {len} bytes at {offset:#x} ({shape:?}) allocated"
        );

        // Read back what was written (the secondary buffer's content) through Dump_Read.
        let written = mdl.gather_by_va().expect("retargeted MDL");
        readback.as_mut_slice()[in_page..in_page + len].copy_from_slice(&written);
        let target = readback.as_slice()[in_page..].as_ptr();
        let mut mdl = SimMdl::describe(target, len as u32, shape, 0, decoy.as_ptr());
        let mut disk_offset = offset as i64;
        let (status, allocations) = counting(|| {
            reader
                .read_unchecked(&mut disk_offset, &mut mdl)
                .expect("Dump_Read on Windows 11")
        });
        assert_eq!(status, 0, "Dump_Read of {len} bytes at {offset:#x}");
        assert_eq!(
            allocations, 0,
            "Dump_Read of {len} bytes at {offset:#x} ({shape:?}) allocated"
        );
        assert_eq!(
            &readback.as_slice()[in_page..in_page + len],
            &source.as_slice()[in_page..in_page + len],
            "Dump_Read gives back what Dump_Write was given"
        );
    }
    assert_eq!(
        counting(|| writer.finish_unchecked()),
        (0, 0),
        "Dump_Finish"
    );
    assert_eq!(
        counting(|| reader.finish_unchecked()),
        (0, 0),
        "Dump_Finish (hibernation)"
    );
    drop(high);
    writer.unload().expect("Dump_Unload");
    reader.unload().expect("Dump_Unload (hibernation)");
}

#[test]
fn the_counter_sees_allocations() {
    let (_, allocations) = counting(|| std::hint::black_box(vec![1u8; 100]));
    assert!(allocations >= 1);
}

#[test]
fn dump_write_and_dump_read_do_not_allocate_with_512_byte_units() {
    run(512);
}

#[test]
fn dump_write_and_dump_read_do_not_allocate_with_4096_byte_units() {
    run(4096);
}
