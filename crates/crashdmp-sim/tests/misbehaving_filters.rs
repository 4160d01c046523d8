//! The simulator catches a filter that breaks the rules: each test loads a small filter that
//! breaks one rule and expects the simulator to report it.

use std::cell::Cell;
use std::ffi::c_void;

use crashdmp_sim::layout::{init, mdl};
use crashdmp_sim::machine::{DumpFile, Machine, MachineConfig};
use crashdmp_sim::ntoskrnl::{self, Environment};
use crashdmp_sim::stack::{self, DiskInfo, Load, SimError, CRASHDUMP};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Misdeed {
    None,
    WritesDumpReadOnWindows7,
    NotCritical,
    ClearsSystemFlags,
    AllocatesInStart,
    ChangesMdlFlags,
    PointsVaElsewhere,
    WritesTheSource,
}

thread_local! {
    static MISDEED: Cell<Misdeed> = const { Cell::new(Misdeed::None) };
}

fn misdeed() -> Misdeed {
    MISDEED.with(Cell::get)
}

/// Writes a value at `base + offset`.
///
/// # Safety
/// The bytes are writable.
unsafe fn poke<T>(base: *mut c_void, offset: usize, value: T) {
    let field = base.cast::<u8>().wrapping_add(offset).cast::<T>();
    // SAFETY: the caller's contract.
    unsafe { field.write_unaligned(value) }
}

/// Reads a value at `base + offset`.
///
/// # Safety
/// The bytes are readable.
unsafe fn peek<T>(base: *mut c_void, offset: usize) -> T {
    let field = base.cast::<u8>().wrapping_add(offset).cast::<T>();
    // SAFETY: the caller's contract.
    unsafe { field.read_unaligned() }
}

static OTHER_BUFFER: [u8; 1 << 16] = [0x77; 1 << 16];

unsafe extern "C-unwind" fn entry(_extension: *mut c_void, init_data: *mut c_void) -> i32 {
    let windows_8 = stack::os_has_read();
    let critical = if misdeed() == Misdeed::NotCritical {
        0u32
    } else {
        1
    };
    // SAFETY: the simulator lays out at least the version-1 structure, Flags included.
    let system: u32 = unsafe { peek(init_data, init::FLAGS) };
    // A well-behaved filter ORs its flags into the ones the system set.
    let flags = if misdeed() == Misdeed::ClearsSystemFlags {
        critical
    } else {
        system | critical
    };
    // SAFETY: the simulator lays out at least the version-1 structure; DumpRead
    // is written on Windows 8 and later only, unless the misdeed is to write it anyway.
    unsafe {
        poke(
            init_data,
            init::MAJOR_VERSION,
            if windows_8 { 2u32 } else { 1 },
        );
    }
    // SAFETY: as above.
    unsafe { poke(init_data, init::FLAGS, flags) };
    // SAFETY: as above.
    unsafe { poke(init_data, init::DUMP_START, start as *const () as usize) };
    // SAFETY: as above.
    unsafe { poke(init_data, init::DUMP_WRITE, write as *const () as usize) };
    // SAFETY: as above.
    unsafe { poke(init_data, init::DUMP_FINISH, other as *const () as usize) };
    // SAFETY: as above.
    unsafe { poke(init_data, init::DUMP_UNLOAD, other as *const () as usize) };
    // SAFETY: as above.
    unsafe { poke(init_data, init::DUMP_DATA, 0x1000usize) };
    if windows_8 || misdeed() == Misdeed::WritesDumpReadOnWindows7 {
        // SAFETY: as above (the misdeed writes past the Windows 7 structure on purpose).
        unsafe { poke(init_data, init::DUMP_READ, write as *const () as usize) };
    }
    0
}

unsafe extern "C-unwind" fn start(_extension: *mut u8) -> i32 {
    if misdeed() == Misdeed::AllocatesInStart {
        ntoskrnl::ex_allocate_pool_with_tag(64, 0);
    }
    0
}

unsafe extern "C-unwind" fn other(_extension: *mut u8) -> i32 {
    0
}

unsafe extern "C-unwind" fn write(_extension: *mut u8, _offset: *mut i64, mdl_ptr: *mut u8) -> i32 {
    let mdl_ptr = mdl_ptr.cast::<c_void>();
    match misdeed() {
        Misdeed::ChangesMdlFlags => {
            // SAFETY: the MDL header is live for the call.
            unsafe { poke(mdl_ptr, mdl::MDL_FLAGS, 0x0001u16) };
        }
        Misdeed::PointsVaElsewhere => {
            // SAFETY: as above.
            unsafe { poke(mdl_ptr, mdl::MAPPED_SYSTEM_VA, OTHER_BUFFER.as_ptr() as u64) };
        }
        Misdeed::WritesTheSource => {
            // SAFETY: as above.
            let data: *mut u8 = unsafe { peek(mdl_ptr, mdl::MAPPED_SYSTEM_VA) };
            // SAFETY: MappedSystemVa maps ByteCount (> 0) bytes of the source.
            let first = unsafe { data.read() };
            // SAFETY: as above.
            unsafe { data.write(first ^ 1) };
        }
        _ => {}
    }
    0
}

fn run(misdeed: Misdeed, os_version: (u32, u32, u32)) -> Result<(), SimError> {
    run_in(
        misdeed,
        Environment {
            os_version,
            ..Environment::default()
        },
    )
}

fn run_in(misdeed: Misdeed, environment: Environment) -> Result<(), SimError> {
    MISDEED.with(|cell| cell.set(misdeed));
    ntoskrnl::boot(environment);
    let disk = DiskInfo {
        bytes_per_sector: 512,
        disk_size: 1 << 30,
    };
    let mut filter = match stack::load(entry, CRASHDUMP, 16, disk)? {
        Load::Loaded(filter) => filter,
        Load::Failed { status, .. } => panic!("load failed {status:#x}"),
    };
    let config = MachineConfig {
        memory: 1 << 20,
        ..MachineConfig::default()
    };
    let mut machine = Machine::new(config, None, None).unwrap();
    machine.dump(&mut filter, DumpFile::Crash)?;
    Ok(())
}

fn rule(result: Result<(), SimError>) -> String {
    match result {
        Err(SimError::Rule { rule, .. }) => rule,
        other => panic!("expected a broken rule, got {other:?}"),
    }
}

#[test]
fn a_well_behaved_filter_passes() {
    run(Misdeed::None, (10, 0, 26100)).unwrap();
    run(Misdeed::None, (6, 1, 7601)).unwrap();
}

#[test]
fn writing_past_the_windows_7_structure_is_caught() {
    assert!(rule(run(Misdeed::WritesDumpReadOnWindows7, (6, 1, 7601))).contains("guard bytes"));
}

#[test]
fn a_filter_that_is_not_critical_is_caught() {
    assert!(rule(run(Misdeed::NotCritical, (10, 0, 26100))).contains("DUMP_FILTER_CRITICAL"));
}

#[test]
fn clearing_flags_the_system_set_is_caught() {
    for os_version in [(10, 0, 26100), (6, 1, 7601)] {
        let environment = Environment {
            os_version,
            system_filter_flags: stack::UNKNOWN_SYSTEM_FLAG,
            ..Environment::default()
        };
        run_in(Misdeed::None, environment.clone()).unwrap();
        let broken = rule(run_in(Misdeed::ClearsSystemFlags, environment));
        assert!(broken.contains("cleared Flags bits"), "{broken}");
    }
    // With no system bits set there is nothing to clear.
    let environment = Environment {
        system_filter_flags: 0,
        ..Environment::default()
    };
    run_in(Misdeed::ClearsSystemFlags, environment).unwrap();
}

#[test]
fn allocating_at_high_level_is_a_bug_check() {
    match run(Misdeed::AllocatesInStart, (10, 0, 26100)) {
        Err(SimError::BugCheck { bug_check, .. }) => {
            assert_eq!(bug_check.code, ntoskrnl::DRIVER_VERIFIER_DETECTED_VIOLATION);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn changing_mdl_flags_is_caught() {
    assert!(rule(run(Misdeed::ChangesMdlFlags, (10, 0, 26100))).contains("MdlFlags"));
}

#[test]
fn pfns_and_mapped_va_that_disagree_are_caught() {
    let broken = rule(run(Misdeed::PointsVaElsewhere, (10, 0, 26100)));
    assert!(
        broken.contains("MappedSystemVa") || broken.contains("different data"),
        "{broken}"
    );
}

#[test]
fn writing_into_the_source_is_caught() {
    assert!(rule(run(Misdeed::WritesTheSource, (10, 0, 26100))).contains("source"));
}

#[test]
fn secrets_left_in_freed_memory_are_reported() {
    ntoskrnl::boot(Environment {
        secrets: vec![b"0123456789abcdef".to_vec()],
        ..Environment::default()
    });
    let block = ntoskrnl::ex_allocate_pool_with_tag(64, 7);
    // SAFETY: `block` holds 64 fresh bytes.
    unsafe { std::ptr::copy_nonoverlapping(b"xx0123456789abcdefxx".as_ptr(), block, 20) };
    ntoskrnl::ex_free_pool_with_tag(block, 7);
    assert_eq!(ntoskrnl::counters().violations.len(), 1);
}
