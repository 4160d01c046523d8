//! Fault injection: each allocation and each service DriverEntry uses fails in turn, for every
//! policy, OS generation, stack and tweak base. Whatever fails after the system's own
//! arguments were checked (the registry, the partition query, the key schedules, the
//! secondary buffer and its MDL) loads a refusing instance: Dump_Start fails and a write bug
//! checks, on every Windows version, with no key bytes left in what DriverEntry freed. Only
//! the context itself failing fails DriverEntry: it frees everything it took and leaves the
//! initialization data in a state the system can handle: no callbacks, no context,
//! DUMP_FILTER_CRITICAL set, nothing written past the structure of its OS version. The
//! system may load the filter again later: that load works.

mod common;

use common::*;
use crashdmp_sim::mdl::{Shape, SimMdl};
use crashdmp_sim::ntoskrnl::{self, Environment, Service};
use crashdmp_sim::stack::{Load, LoadedFilter, SimError, CRASHDUMP, HIBERNATION};

const STATUS_INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32 as i32;
const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32 as i32;
/// What a failing registry or device query might return.
const FAILURES: [i32; 3] = [
    0xC000_0185_u32 as i32, // STATUS_IO_DEVICE_ERROR
    0xC000_0022_u32 as i32, // STATUS_ACCESS_DENIED
    STATUS_INSUFFICIENT_RESOURCES,
];
const WINDOWS_8: (u32, u32, u32) = (6, 2, 9200);
const MAX_PAGES: u32 = 16;

#[derive(Debug, Clone, Copy)]
struct Combination {
    policy: u32,
    os_version: (u32, u32, u32),
    dump_type: u32,
    disk_tweaks: bool,
}

fn combinations() -> Vec<Combination> {
    let mut all = Vec::new();
    for policy in [0, 1, 2] {
        for os_version in [WINDOWS_7, WINDOWS_8, WINDOWS_11] {
            for dump_type in [CRASHDUMP, HIBERNATION] {
                for disk_tweaks in [false, true] {
                    all.push(Combination {
                        policy,
                        os_version,
                        dump_type,
                        disk_tweaks,
                    });
                }
            }
        }
    }
    all
}

/// Boots the simulated kernel for `combination`, failing what is asked.
fn boot_with(
    combination: Combination,
    fail_allocation: Option<u64>,
    fail_service: Option<(Service, i32)>,
) {
    let parameters = Parameters::default()
        .dword("CrashDumpPolicy", combination.policy)
        .dword("HibernationPolicy", combination.policy)
        .binary("Key", &key())
        .dword("TweakBase", u32::from(combination.disk_tweaks));
    let mut environment = Environment {
        os_version: combination.os_version,
        fail_allocation,
        fail_service,
        ..Environment::default()
    };
    environment
        .registry
        .insert(dumpcrypt::kernel::PARAMETERS_PATH.into(), parameters.0);
    let key = key();
    environment.secrets = vec![key[..32].to_vec(), key[32..].to_vec()];
    ntoskrnl::boot(environment);
}

fn load_ok(combination: Combination) -> LoadedFilter {
    match load(combination.dump_type, MAX_PAGES).expect("DriverEntry returns") {
        Load::Loaded(filter) => filter,
        Load::Failed { status, .. } => {
            panic!("{combination:?}: DriverEntry failed with {status:#x}")
        }
    }
}

/// DriverEntry fails with `status`, having freed everything, and leaves the initialization
/// data as the system can handle it. The simulator has already checked DUMP_FILTER_CRITICAL,
/// MaxPagesPerWrite and the guard bytes after the structures of this OS version.
fn expect_failure(combination: Combination, status: i32, what: &str) {
    let outstanding = ntoskrnl::counters().outstanding;
    match load(combination.dump_type, MAX_PAGES).expect("DriverEntry returns") {
        Load::Failed { status: got, init } => {
            assert_eq!(got, status, "{combination:?}, {what}: status {got:#x}");
            assert!(
                !(init.has_start
                    || init.has_write
                    || init.has_finish
                    || init.has_unload
                    || init.has_read),
                "{combination:?}, {what}: a callback was left for the system to call"
            );
            assert_eq!(init.dump_data, 0, "{combination:?}, {what}: a context");
            let major = if combination.os_version >= WINDOWS_8 {
                2
            } else {
                1
            };
            assert_eq!(
                (init.major_version, init.minor_version),
                (major, 0),
                "{combination:?}, {what}: version filled first"
            );
        }
        Load::Loaded(_) => panic!("{combination:?}, {what}: DriverEntry succeeded"),
    }
    let counters = ntoskrnl::counters();
    assert_eq!(
        counters.outstanding, outstanding,
        "{combination:?}, {what}: DriverEntry freed what it took"
    );
    assert!(
        counters.violations.is_empty(),
        "{combination:?}, {what}: {:?}",
        counters.violations
    );
}

/// DriverEntry succeeds with a refusing instance that holds only its context: Dump_Start
/// fails, a write bug checks WriteRefused, and unloading frees it; nothing DriverEntry freed
/// on the way kept a key byte.
fn expect_refusing(combination: Combination, what: &str) {
    let outstanding = ntoskrnl::counters().outstanding;
    let mut filter = match load(combination.dump_type, MAX_PAGES).expect("DriverEntry returns") {
        Load::Loaded(filter) => filter,
        Load::Failed { status, .. } => {
            panic!("{combination:?}, {what}: DriverEntry failed with {status:#x}")
        }
    };
    assert_eq!(
        ntoskrnl::counters().outstanding,
        outstanding + 1,
        "{combination:?}, {what}: a refusing instance holds its context only"
    );
    assert_eq!(
        filter.start().unwrap(),
        STATUS_ACCESS_DENIED,
        "{combination:?}, {what}: Dump_Start"
    );
    let source = pattern(4096, 1);
    let mut mdl = SimMdl::describe(
        source.as_slice().as_ptr(),
        4096,
        Shape::NonpagedPool,
        0,
        source.as_slice().as_ptr(),
    );
    let mut offset = 0x2000;
    match filter.write(0, &mut offset, &mut mdl) {
        Err(SimError::BugCheck { bug_check, .. }) => {
            assert_eq!(bug_check.parameters[..2], [0x06, 0x2000], "{bug_check}");
        }
        other => panic!("{combination:?}, {what}: a write gave {other:?}"),
    }
    filter.unload().expect("Dump_Unload");
    let counters = ntoskrnl::counters();
    assert_eq!(counters.outstanding, outstanding, "{combination:?}, {what}");
    assert!(
        counters.violations.is_empty(),
        "{combination:?}, {what}: {:?}",
        counters.violations
    );
}

/// The system loads the filter again after a failure: it works, and unloads cleanly.
fn expect_retry_works(combination: Combination) {
    let mut environment = ntoskrnl::environment();
    environment.fail_allocation = None;
    environment.fail_service = None;
    ntoskrnl::boot(environment);
    let mut filter = load_ok(combination);
    filter.unload().expect("Dump_Unload");
    assert_eq!(ntoskrnl::counters().outstanding, 0);
}

/// What a clean DriverEntry does: its allocations and the services it calls, in order.
fn clean_run(combination: Combination) -> (u64, Vec<Service>) {
    boot_with(combination, None, None);
    let mut filter = load_ok(combination);
    let counters = ntoskrnl::counters();
    let mut services: Vec<Service> = Vec::new();
    for (service, high_level) in &counters.calls {
        assert!(!high_level, "{service:?} at HIGH_LEVEL in DriverEntry");
        if !services.contains(service) {
            services.push(*service);
        }
    }
    filter.unload().expect("Dump_Unload");
    assert_eq!(ntoskrnl::counters().outstanding, 0);
    (counters.allocations, services)
}

#[test]
fn every_allocation_of_driver_entry_can_fail() {
    for combination in combinations() {
        let (allocations, _) = clean_run(combination);
        // At least the raw values and the context; the encrypt policy also its key
        // schedules, secondary buffer and the buffer's MDL.
        assert!(allocations >= 2, "{combination:?}");
        if combination.policy == 1 {
            assert!(allocations >= 3, "{combination:?}: {allocations}");
        }
        for index in 0..allocations {
            boot_with(combination, Some(index), None);
            let what = format!("allocation {index} of {allocations} fails");
            if index + 1 == allocations {
                // The context, the last allocation: no instance at all.
                expect_failure(combination, STATUS_INSUFFICIENT_RESOURCES, &what);
                assert_eq!(
                    ntoskrnl::counters().allocations,
                    index + 1,
                    "{combination:?}: DriverEntry stopped at the failed allocation"
                );
            } else {
                // The first, on every policy, holds the raw Parameters values: without it the
                // configuration is unknown, and the instance refuses. The others are the
                // encrypt policy's: the rest is given back, then the refusing context.
                assert!(
                    index == 0 || combination.policy == 1,
                    "{combination:?}: {what}"
                );
                expect_refusing(combination, &what);
            }
            expect_retry_works(combination);
        }
    }
}

#[test]
fn every_service_of_driver_entry_can_fail() {
    let mut failed = Vec::new();
    for combination in combinations() {
        let (_, services) = clean_run(combination);
        for service in services {
            // Every service DriverEntry calls is listed here; a new one fails to compile
            // (no wildcard) until it is sorted into one of the three groups.
            let injectable = match service {
                // Return a status the filter must pass on.
                Service::ZwOpenKey
                | Service::ZwQueryValueKey
                | Service::IoBuildDeviceIoControlRequest
                | Service::ExCreateCallback => true,
                // Return no status but can fail by returning null: every_allocation_of_
                // driver_entry_can_fail fails each of them.
                Service::ExAllocatePoolWithTag
                | Service::MmAllocateContiguousNodeMemory
                | Service::IoAllocateMdl => false,
                // Cannot fail: RtlGetVersion always succeeds, MmBuildMdlForNonPagedPool
                // returns nothing, closing and freeing cannot fail.
                Service::RtlGetVersion
                | Service::MmBuildMdlForNonPagedPool
                | Service::ZwClose
                | Service::ExFreePoolWithTag
                | Service::MmFreeContiguousMemory
                | Service::IoFreeMdl
                | Service::ExNotifyCallback
                | Service::ObfDereferenceObject => false,
                // The provider's side: DriverEntry never calls them.
                Service::ExRegisterCallback | Service::ExUnregisterCallback => false,
            };
            if !injectable {
                continue;
            }
            for status in FAILURES {
                boot_with(combination, None, Some((service, status)));
                expect_refusing(combination, &format!("{service:?} fails with {status:#x}"));
                expect_retry_works(combination);
            }
            if !failed.contains(&service) {
                failed.push(service);
            }
        }
    }
    // Across the combinations, each of them was made to fail.
    for service in [
        Service::ZwOpenKey,
        Service::ZwQueryValueKey,
        Service::IoBuildDeviceIoControlRequest,
    ] {
        assert!(failed.contains(&service), "{service:?} was never failed");
    }
}

/// A failed load of one stack leaves the other stack's instance as it was.
#[test]
fn a_failed_load_leaves_the_other_instance_working() {
    let combination = Combination {
        policy: 1,
        os_version: WINDOWS_11,
        dump_type: CRASHDUMP,
        disk_tweaks: true,
    };
    let (allocations, _) = clean_run(combination);
    let hibernation = Combination {
        dump_type: HIBERNATION,
        ..combination
    };
    for index in 0..allocations {
        // The crash stack's instance takes the first `allocations`; the hibernation stack's
        // load fails at its `index`-th.
        boot_with(combination, Some(allocations + index), None);
        let mut crash = load_ok(combination);
        let held = ntoskrnl::counters().outstanding;
        if index + 1 == allocations {
            expect_failure(hibernation, STATUS_INSUFFICIENT_RESOURCES, "second load");
        } else {
            expect_refusing(hibernation, "second load");
        }
        assert_eq!(ntoskrnl::counters().outstanding, held);
        let mut machine = machine(1 << 20, MAX_PAGES, index);
        let report = machine
            .dump(&mut crash, crashdmp_sim::machine::DumpFile::Crash)
            .expect("the crash dump still works");
        assert_eq!(report.bytes_changed, report.bytes);
        crash.unload().expect("Dump_Unload");
        assert_eq!(ntoskrnl::counters().outstanding, 0);
    }
}
