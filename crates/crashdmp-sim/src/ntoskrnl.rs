//! The simulated kernel: the few ntoskrnl services a dump filter imports, with their rules.
//!
//! A filter built for the host calls these where the real one calls ntoskrnl (its
//! `kernel/host.rs`). The state is per thread, so tests run side by side. What the real
//! kernel or Driver Verifier would catch is caught here as a bug check:
//! - a service that needs IRQL ≤ DISPATCH_LEVEL called while the dump stack holds HIGH_LEVEL
//!   (during Dump_Start, Dump_Write, Dump_Read, Dump_Finish): [`DRIVER_VERIFIER_DETECTED_VIOLATION`];
//! - a free of memory that was not allocated, or with the wrong tag: [`BAD_POOL_CALLER`].
//!
//! It also counts allocations, can fail the N-th one, and can look for secrets (keys) left in
//! memory the filter frees.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::layout::{get, mdl, put, PAGE_SHIFT, PAGE_SIZE};
use crate::memory;

pub type NtStatus = i32;
pub const STATUS_SUCCESS: NtStatus = 0;
pub const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = 0xC000_0034_u32 as i32;
pub const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as i32;
pub const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;
pub const STATUS_NO_MORE_ENTRIES: NtStatus = 0x8000_001A_u32 as i32;
pub const STATUS_BUFFER_OVERFLOW: NtStatus = 0x8000_0005_u32 as i32;
pub const STATUS_INVALID_HANDLE: NtStatus = 0xC000_0008_u32 as i32;
pub const STATUS_ACCESS_DENIED: NtStatus = 0xC000_0022_u32 as i32;
/// `REG_BINARY`.
pub const REG_BINARY: u32 = 3;
/// Where dumpcrypt keeps its sealed keys (this simulator's own spelling of the path, which a
/// test compares with the driver's).
pub const SEALED_KEYS_PATH: &str =
    r"\Registry\Machine\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters\SealedKeys";
/// `KUSER_SHARED_DATA.SystemTime` of a freshly booted simulated machine: 2026-12-01
/// 23:49:40.1234567 UTC, in 100 ns ticks since 1601.
pub const DEFAULT_SYSTEM_TIME: u64 = 134_406_425_801_234_567;

/// Bug check code of a rule Driver Verifier enforces; parameter 1 says which.
pub const DRIVER_VERIFIER_DETECTED_VIOLATION: u32 = 0xC4;
/// Parameter 1 of [`DRIVER_VERIFIER_DETECTED_VIOLATION`]: a service called at HIGH_LEVEL.
/// Parameter 2 is the [`Service`] number, parameter 3 the IRQL (15).
pub const VIOLATION_IRQL_TOO_HIGH: u64 = 0x3A;
/// Bug check code of a bad free; parameter 1: 0x10 unknown address, 0x11 wrong kind, 0x12 tag.
pub const BAD_POOL_CALLER: u32 = 0xC2;

pub const HIGH_LEVEL: u64 = 15;
/// `PAGE_READWRITE`: the only protection a secondary buffer may have (no execute).
pub const PAGE_READWRITE: u32 = 0x04;

/// A bug check: the machine stops here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BugCheck {
    pub code: u32,
    pub parameters: [u64; 4],
}

impl std::fmt::Display for BugCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [p1, p2, p3, p4] = self.parameters;
        write!(
            f,
            "bug check {:#010x} ({p1:#x}, {p2:#x}, {p3:#x}, {p4:#x})",
            self.code
        )
    }
}

/// How a call into the filter ended when it did not return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    BugCheck(BugCheck),
    /// A Rust panic in the filter's host build (in kernel mode this would be a bug check
    /// from its panic handler).
    Panic(String),
}

/// The services, numbered for bug check parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    ExAllocatePoolWithTag = 1,
    ExFreePoolWithTag,
    MmAllocateContiguousNodeMemory,
    MmFreeContiguousMemory,
    IoAllocateMdl,
    MmBuildMdlForNonPagedPool,
    IoFreeMdl,
    RtlGetVersion,
    ZwOpenKey,
    ZwQueryValueKey,
    ZwClose,
    IoBuildDeviceIoControlRequest,
    ExCreateCallback,
    ExRegisterCallback,
    ExUnregisterCallback,
    ExNotifyCallback,
    ObfDereferenceObject,
    ZwCreateKey,
    ZwEnumerateValueKey,
    ZwSetValueKey,
    ZwDeleteValueKey,
    ZwFlushKey,
}

/// What the processor's random instructions (RDSEED, RDRAND) do on the simulated machine.
/// The driver's host build runs the real instructions of the host processor; the simulated
/// machine can hide them or make them misbehave as broken parts do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RandomSource {
    /// The host processor's RDSEED and RDRAND, as they are.
    #[default]
    Cpu,
    /// Only RDRAND: CPUID reports no RDSEED.
    RdrandOnly,
    /// Neither: CPUID reports no RDSEED and no RDRAND.
    Absent,
    /// Both reported, every try sets CF = 1 and returns this word (an AMD part after resume
    /// returns all ones: `u64::MAX`).
    Stuck(u64),
    /// Both reported, every try clears CF (no random data available, ever).
    Dry,
}

/// One registry value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryValue {
    pub name: String,
    pub value_type: u32,
    pub data: Vec<u8>,
}

/// What the simulated machine is: set by a test or the CLI before it loads a filter.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Registry keys by full path (`\Registry\Machine\...`), each with its values.
    pub registry: BTreeMap<String, Vec<RegistryValue>>,
    /// `RtlGetVersion`: major, minor, build.
    pub os_version: (u32, u32, u32),
    /// What `IOCTL_DISK_GET_PARTITION_INFO_EX` answers: the dump partition's starting offset.
    pub partition_offset: Result<u64, NtStatus>,
    /// Fail the allocation with this index (0 = the first; all kinds count).
    pub fail_allocation: Option<u64>,
    /// Fail this service (registry, version query, partition query) with this status.
    pub fail_service: Option<(Service, NtStatus)>,
    /// Byte strings that must not be left in memory the filter frees.
    pub secrets: Vec<Vec<u8>>,
    /// Bits the system has already set in FILTER_INITIALIZATION_DATA.Flags when it calls
    /// DriverEntry (such as [`crate::stack::UNKNOWN_SYSTEM_FLAG`]). A filter must keep them,
    /// ORing its own flags in; [`crate::stack::load`] reports one that clears any.
    pub system_filter_flags: u32,
    /// FILTER_EXTENSION.PartitionInfo of the dump device: PartitionStyle (0 MBR, 1 GPT, 2
    /// RAW) and the 16 bytes of its union (MBR Signature and CheckSum, or the GPT DiskId).
    pub partition_info: (u32, [u8; 16]),
    /// FILTER_EXTENSION.Geometry.BytesPerSector of the dump device (0: unknown). A disk of
    /// 4096-byte sectors takes only 4096-aligned transfers ([`crate::machine::MachineConfig`]'s
    /// `sector_size`).
    pub bytes_per_sector: u32,
    /// `KUSER_SHARED_DATA.SystemTime`: 100 ns ticks since 1601-01-01 UTC. It stands still
    /// unless a test moves it ([`set_system_time`]).
    pub system_time: u64,
    /// What RDSEED and RDRAND do.
    pub random: RandomSource,
    /// Keep a copy of every pool block the filter frees in [`Counters::freed_pool`] (off by
    /// default: a soak of thousands of loads would keep them all).
    pub keep_freed_pool: bool,
}

/// The GPT disk GUID of the simulated dump disk, as the GUID structure lays it out.
pub const SIMULATED_DISK_GUID: [u8; 16] = *b"dumpcrypt-sim-01";

impl Default for Environment {
    fn default() -> Self {
        Self {
            registry: BTreeMap::new(),
            os_version: (10, 0, 26100),
            partition_offset: Ok(0x10_0000),
            fail_allocation: None,
            fail_service: None,
            secrets: Vec::new(),
            system_filter_flags: crate::stack::UNKNOWN_SYSTEM_FLAG,
            partition_info: (1, SIMULATED_DISK_GUID),
            bytes_per_sector: 512,
            system_time: DEFAULT_SYSTEM_TIME,
            random: RandomSource::Cpu,
            keep_freed_pool: false,
        }
    }
}

/// What the kernel saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub allocations: u64,
    pub frees: u64,
    /// Allocations not freed yet.
    pub outstanding: usize,
    /// Services called, by name, in order (for the record of what a filter imports).
    pub calls: Vec<(Service, bool)>,
    /// Problems that are not bug checks: secrets left in freed memory and the like.
    pub violations: Vec<String>,
    /// References to callback objects not given back yet.
    pub object_references: usize,
    /// `ZwFlushKey` calls that succeeded.
    pub flushes: usize,
    /// RDSEED and RDRAND tries the filter made ([`note_random_step`]).
    pub random_steps: u64,
    /// Registry key handles open now (each `ZwCreateKey` must be matched by a `ZwClose`).
    pub open_keys: usize,
    /// A copy of every pool block (and MDL) as it was when the filter freed it, for tests
    /// that look for secrets they learn only afterwards (a sealed key); kept only with
    /// [`Environment::keep_freed_pool`].
    pub freed_pool: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pool { tag: u32 },
    Contiguous,
    Mdl,
}

#[derive(Debug)]
struct Allocation {
    kind: Kind,
    layout: std::alloc::Layout,
}

#[derive(Default)]
struct Kernel {
    environment: Environment,
    high_level: bool,
    counters: Counters,
    live: BTreeMap<usize, Allocation>,
    callback_objects: Vec<CallbackObject>,
    next_object: usize,
    /// Open registry key handles: handle -> the key's path.
    keys: BTreeMap<usize, String>,
}

/// `PCALLBACK_FUNCTION`: what a driver registers on a callback object.
pub type CallbackFunction = unsafe extern "C-unwind" fn(
    context: *mut core::ffi::c_void,
    argument1: *mut core::ffi::c_void,
    argument2: *mut core::ffi::c_void,
);

/// A named callback object (`\Callback\...`): its registrations, and the references the
/// drivers that created or opened it hold.
#[derive(Debug)]
struct CallbackObject {
    /// The handle drivers see (never dereferenced: the simulator looks it up).
    address: usize,
    name: String,
    allow_multiple: bool,
    references: usize,
    registrations: Vec<(usize, CallbackFunction, usize)>,
}

thread_local! {
    static KERNEL: RefCell<Kernel> = RefCell::default();
}

fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    KERNEL.with(|kernel| f(&mut kernel.borrow_mut()))
}

/// Boots this thread's simulated kernel with `environment`, forgetting earlier counters.
/// Memory still allocated from an earlier boot stays allocated (and is reported as
/// outstanding by that boot's counters only).
pub fn boot(environment: Environment) {
    with(|kernel| {
        kernel.environment = environment;
        kernel.high_level = false;
        kernel.counters = Counters::default();
        kernel.callback_objects.clear();
        kernel.keys.clear();
    });
}

/// Moves the simulated clock (`KUSER_SHARED_DATA.SystemTime`), for the next load.
pub fn set_system_time(ticks: u64) {
    with(|kernel| kernel.environment.system_time = ticks);
}

/// Changes what RDSEED and RDRAND do from now on.
pub fn set_random_source(random: RandomSource) {
    with(|kernel| kernel.environment.random = random);
}

/// Makes `service` fail with `status` from now on (`None`: no failure).
pub fn set_failing_service(failure: Option<(Service, NtStatus)>) {
    with(|kernel| kernel.environment.fail_service = failure);
}

/// The values of a registry key as the simulated registry holds them now (`None`: no key).
pub fn registry_key(path: &str) -> Option<Vec<RegistryValue>> {
    with(|kernel| {
        kernel
            .environment
            .registry
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(path))
            .map(|(_, values)| values.clone())
    })
}

/// The sealed keys dumpcrypt wrote (`Parameters\SealedKeys`), as (value name, REG_BINARY
/// data), sorted by name, which is load order: what `dumpcrypt simulate` exports and
/// `dumpcrypt decrypt` reads. Values of another type are left out.
pub fn sealed_keys() -> Vec<(String, Vec<u8>)> {
    let mut blobs: Vec<(String, Vec<u8>)> = registry_key(SEALED_KEYS_PATH)
        .unwrap_or_default()
        .into_iter()
        .filter(|value| value.value_type == REG_BINARY)
        .map(|value| (value.name, value.data))
        .collect();
    blobs.sort();
    blobs
}

pub fn counters() -> Counters {
    with(|kernel| kernel.counters.clone())
}

pub fn environment() -> Environment {
    with(|kernel| kernel.environment.clone())
}

/// Whether this thread is at HIGH_LEVEL (inside a dump-mode callback).
pub fn at_high_level() -> bool {
    with(|kernel| kernel.high_level)
}

/// HIGH_LEVEL, interrupts off, one CPU: held by the dump stack around Dump_Start, Dump_Write,
/// Dump_Read and Dump_Finish. Dropping it lowers the IRQL again.
#[derive(Debug)]
pub struct HighLevel(());

pub fn raise_to_high_level() -> HighLevel {
    with(|kernel| kernel.high_level = true);
    HighLevel(())
}

impl Drop for HighLevel {
    fn drop(&mut self) {
        with(|kernel| kernel.high_level = false);
    }
}

/// `KeBugCheckEx`: stops the "machine" by unwinding to the nearest [`run`].
pub fn ke_bug_check_ex(code: u32, p1: u64, p2: u64, p3: u64, p4: u64) -> ! {
    resume_unwind(Box::new(BugCheck {
        code,
        parameters: [p1, p2, p3, p4],
    }))
}

/// Runs a call into the filter; a bug check or a panic inside it becomes a [`Stop`].
pub fn run<R>(call: impl FnOnce() -> R) -> Result<R, Stop> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|payload| match payload.downcast::<BugCheck>() {
        Ok(bug_check) => Stop::BugCheck(*bug_check),
        Err(payload) => Stop::Panic(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        ),
    })
}

/// Every service starts here: it is recorded, and refused at HIGH_LEVEL.
fn enter(service: Service) {
    let high = with(|kernel| {
        kernel.counters.calls.push((service, kernel.high_level));
        kernel.high_level
    });
    if high {
        with(|kernel| {
            kernel
                .counters
                .violations
                .push(format!("{service:?} called at HIGH_LEVEL"));
        });
        ke_bug_check_ex(
            DRIVER_VERIFIER_DETECTED_VIOLATION,
            VIOLATION_IRQL_TOO_HIGH,
            service as u64,
            HIGH_LEVEL,
            0,
        );
    }
}

fn injected_failure(service: Service) -> Option<NtStatus> {
    with(|kernel| match kernel.environment.fail_service {
        Some((failing, status)) if failing == service => Some(status),
        _ => None,
    })
}

fn allocate(kind: Kind, size: usize, align: usize) -> *mut u8 {
    let fail = with(|kernel| {
        let index = kernel.counters.allocations;
        kernel.counters.allocations += 1;
        kernel.environment.fail_allocation == Some(index)
    });
    if fail || size == 0 {
        return std::ptr::null_mut();
    }
    let Ok(layout) = std::alloc::Layout::from_size_align(size, align) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout's size is not zero (checked above).
    let ptr = unsafe { std::alloc::alloc(layout) };
    if ptr.is_null() {
        return ptr;
    }
    // Fresh pool memory is not zeroed on Windows: fill it with a pattern, as Verifier does.
    // SAFETY: `ptr` was just allocated with `size` bytes.
    unsafe { std::ptr::write_bytes(ptr, 0xD5, size) };
    memory::register(ptr as usize, size);
    with(|kernel| {
        kernel.counters.outstanding += 1;
        kernel
            .live
            .insert(ptr as usize, Allocation { kind, layout })
    });
    ptr
}

fn free(ptr: *mut u8, expected: Kind) {
    let Some(allocation) = with(|kernel| kernel.live.remove(&(ptr as usize))) else {
        ke_bug_check_ex(BAD_POOL_CALLER, 0x10, ptr as u64, 0, 0);
    };
    if allocation.kind != expected {
        let code = match (allocation.kind, expected) {
            (Kind::Pool { .. }, Kind::Pool { .. }) => 0x12,
            _ => 0x11,
        };
        ke_bug_check_ex(BAD_POOL_CALLER, code, ptr as u64, 0, 0);
    }
    // SAFETY: `ptr` is a live allocation of `layout.size()` bytes (found in `live`).
    let contents = unsafe { std::slice::from_raw_parts(ptr, allocation.layout.size()) };
    let leaked: Vec<String> = with(|kernel| {
        kernel
            .environment
            .secrets
            .iter()
            .filter(|secret| {
                !secret.is_empty() && contents.windows(secret.len()).any(|w| w == &secret[..])
            })
            .map(|secret| {
                format!(
                    "{:?} memory freed with a secret still in it ({} bytes)",
                    allocation.kind,
                    secret.len()
                )
            })
            .collect()
    });
    let keep = with(|kernel| kernel.environment.keep_freed_pool);
    let kept = (keep && allocation.kind != Kind::Contiguous).then(|| contents.to_vec());
    memory::unregister(ptr as usize);
    // SAFETY: allocated in `allocate` with this layout and removed from `live`: freed once.
    unsafe { std::alloc::dealloc(ptr, allocation.layout) };
    with(|kernel| {
        kernel.counters.frees += 1;
        kernel.counters.outstanding -= 1;
        kernel.counters.violations.extend(leaked);
        kernel.counters.freed_pool.extend(kept);
    });
}

/// The sizes of the allocations still live (not freed) that hold `needle` somewhere: for
/// tests that look for key material a filter should have wiped without freeing. Not a
/// service.
pub fn live_allocations_holding(needle: &[u8]) -> Vec<usize> {
    let live: Vec<(usize, usize)> = with(|kernel| {
        kernel
            .live
            .iter()
            .map(|(&address, allocation)| (address, allocation.layout.size()))
            .collect()
    });
    live.into_iter()
        .filter(|&(address, size)| {
            // SAFETY: a live allocation of `size` bytes, made by `allocate` and not freed.
            let contents = unsafe { std::slice::from_raw_parts(address as *const u8, size) };
            !needle.is_empty() && contents.windows(needle.len()).any(|w| w == needle)
        })
        .map(|(_, size)| size)
        .collect()
}

/// `ExAllocatePoolWithTag` for nonpaged pool (16-byte aligned, as on x64).
pub fn ex_allocate_pool_with_tag(size: usize, tag: u32) -> *mut u8 {
    enter(Service::ExAllocatePoolWithTag);
    allocate(Kind::Pool { tag }, size, 16)
}

/// `ExFreePoolWithTag`.
pub fn ex_free_pool_with_tag(ptr: *mut u8, tag: u32) {
    enter(Service::ExFreePoolWithTag);
    free(ptr, Kind::Pool { tag });
}

/// `MmAllocateContiguousNodeMemory`: page aligned; `protect` must be [`PAGE_READWRITE`].
pub fn mm_allocate_contiguous_node_memory(size: usize, protect: u32) -> *mut u8 {
    enter(Service::MmAllocateContiguousNodeMemory);
    if protect != PAGE_READWRITE {
        with(|kernel| {
            kernel
                .counters
                .violations
                .push(format!("contiguous memory with protection {protect:#x}"));
        });
    }
    allocate(Kind::Contiguous, size, PAGE_SIZE)
}

/// `MmFreeContiguousMemory`.
pub fn mm_free_contiguous_memory(ptr: *mut u8) {
    enter(Service::MmFreeContiguousMemory);
    free(ptr, Kind::Contiguous);
}

/// `IoAllocateMdl`: an MDL for `[va, va + len)` with one PFN slot per page it spans.
pub fn io_allocate_mdl(va: *mut u8, len: u32) -> *mut u8 {
    enter(Service::IoAllocateMdl);
    let byte_offset = va as usize & (PAGE_SIZE - 1);
    let pages = (byte_offset + len as usize).div_ceil(PAGE_SIZE);
    let size = mdl::HEADER + pages * mdl::PFN_SIZE;
    let Ok(size_field) = i16::try_from(size) else {
        return std::ptr::null_mut();
    };
    let ptr = allocate(Kind::Mdl, size, 8);
    if ptr.is_null() {
        return ptr;
    }
    // SAFETY: `ptr` was just allocated with `size` bytes and is not shared yet.
    let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, size) };
    bytes.fill(0);
    put(bytes, mdl::SIZE, size_field);
    put(
        bytes,
        mdl::START_VA,
        (va as usize & !(PAGE_SIZE - 1)) as u64,
    );
    put(bytes, mdl::BYTE_COUNT, len);
    put(bytes, mdl::BYTE_OFFSET, byte_offset as u32);
    ptr
}

/// `MmBuildMdlForNonPagedPool`: fills the PFNs, MappedSystemVa and the nonpaged-pool flag.
#[expect(
    clippy::not_unsafe_ptr_arg_deref,
    reason = "the pointer is looked up among the MDLs this kernel allocated before it is used"
)]
pub fn mm_build_mdl_for_nonpaged_pool(mdl_ptr: *mut u8) {
    enter(Service::MmBuildMdlForNonPagedPool);
    if !is_live_mdl(mdl_ptr) {
        ke_bug_check_ex(BAD_POOL_CALLER, 0x10, mdl_ptr as u64, 0, 0);
    }
    let size = with(|kernel| kernel.live[&(mdl_ptr as usize)].layout.size());
    // SAFETY: `mdl_ptr` is a live MDL from `io_allocate_mdl` of `size` bytes; the filter is
    // blocked in this call, so nothing else uses it.
    let bytes = unsafe { std::slice::from_raw_parts_mut(mdl_ptr, size) };
    let start_va: u64 = get(bytes, mdl::START_VA);
    let byte_offset: u32 = get(bytes, mdl::BYTE_OFFSET);
    let byte_count: u32 = get(bytes, mdl::BYTE_COUNT);
    let va = start_va as usize + byte_offset as usize;
    if !memory::is_mapped(va, byte_count as usize) {
        // The real routine bug checks on memory that is not nonpaged.
        ke_bug_check_ex(0x4E /* PFN_LIST_CORRUPT */, 0x9A, va as u64, 0, 0);
    }
    let pages = (byte_offset as usize + byte_count as usize).div_ceil(PAGE_SIZE);
    for page in 0..pages {
        let pfn = ((start_va as usize >> PAGE_SHIFT) + page) as u64;
        put(bytes, mdl::HEADER + page * mdl::PFN_SIZE, pfn);
    }
    put(bytes, mdl::MAPPED_SYSTEM_VA, va as u64);
    let flags: u16 = get(bytes, mdl::MDL_FLAGS);
    put(bytes, mdl::MDL_FLAGS, flags | mdl::SOURCE_IS_NONPAGED_POOL);
}

/// `IoFreeMdl`.
pub fn io_free_mdl(mdl_ptr: *mut u8) {
    enter(Service::IoFreeMdl);
    free(mdl_ptr, Kind::Mdl);
}

/// `RtlGetVersion`.
pub fn rtl_get_version() -> (u32, u32, u32) {
    enter(Service::RtlGetVersion);
    with(|kernel| kernel.environment.os_version)
}

/// `ZwOpenKey` + `ZwQueryValueKey` (partial information) + `ZwClose` for every value of one
/// key: the values of `path`, or the status the real calls would fail with.
pub fn zw_read_key(path: &str) -> Result<Vec<RegistryValue>, NtStatus> {
    enter(Service::ZwOpenKey);
    if let Some(status) = injected_failure(Service::ZwOpenKey) {
        return Err(status);
    }
    let values = with(|kernel| {
        kernel
            .environment
            .registry
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(path))
            .map(|(_, values)| values.clone())
    });
    let Some(values) = values else {
        return Err(STATUS_OBJECT_NAME_NOT_FOUND);
    };
    enter(Service::ZwQueryValueKey);
    if let Some(status) = injected_failure(Service::ZwQueryValueKey) {
        enter(Service::ZwClose);
        return Err(status);
    }
    enter(Service::ZwClose);
    Ok(values)
}

/// `IoBuildDeviceIoControlRequest(IOCTL_DISK_GET_PARTITION_INFO_EX)` sent to `device` and
/// waited for: the partition's starting offset.
pub fn query_partition_offset(device: *mut u8) -> Result<u64, NtStatus> {
    enter(Service::IoBuildDeviceIoControlRequest);
    if let Some(status) = injected_failure(Service::IoBuildDeviceIoControlRequest) {
        return Err(status);
    }
    if device.is_null() {
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    }
    with(|kernel| kernel.environment.partition_offset)
}

/// Whether `ptr` is an MDL this kernel allocated and has not freed.
fn is_live_mdl(ptr: *mut u8) -> bool {
    with(|kernel| {
        kernel
            .live
            .get(&(ptr as usize))
            .is_some_and(|allocation| allocation.kind == Kind::Mdl)
    })
}

/// `ExCreateCallback`: opens the callback object `name`, or creates it when `create` is set.
/// Each success takes a reference, which [`ob_dereference_object`] gives back; an object
/// nobody references any more is deleted. PASSIVE_LEVEL.
pub fn ex_create_callback(
    name: &str,
    create: bool,
    allow_multiple: bool,
) -> Result<usize, NtStatus> {
    enter(Service::ExCreateCallback);
    if let Some(status) = injected_failure(Service::ExCreateCallback) {
        return Err(status);
    }
    with(|kernel| {
        if let Some(object) = kernel
            .callback_objects
            .iter_mut()
            .find(|object| object.name.eq_ignore_ascii_case(name))
        {
            object.references += 1;
            kernel.counters.object_references += 1;
            return Ok(object.address);
        }
        if !create {
            return Err(STATUS_OBJECT_NAME_NOT_FOUND);
        }
        kernel.next_object += 1;
        let address = 0xFFFF_C000_0000_0000 + kernel.next_object * 0x100;
        kernel.callback_objects.push(CallbackObject {
            address,
            name: name.to_string(),
            allow_multiple,
            references: 1,
            registrations: Vec::new(),
        });
        kernel.counters.object_references += 1;
        Ok(address)
    })
}

/// `ExRegisterCallback`: `None` for an unknown object, or a second registration on an object
/// that does not allow several. PASSIVE_LEVEL.
pub fn ex_register_callback(
    object: usize,
    function: CallbackFunction,
    context: *mut core::ffi::c_void,
) -> Option<usize> {
    enter(Service::ExRegisterCallback);
    with(|kernel| {
        kernel.next_object += 1;
        let registration = 0xFFFF_D000_0000_0000 + kernel.next_object * 0x40;
        let object = kernel
            .callback_objects
            .iter_mut()
            .find(|candidate| candidate.address == object)?;
        if !object.allow_multiple && !object.registrations.is_empty() {
            return None;
        }
        object
            .registrations
            .push((registration, function, context as usize));
        Some(registration)
    })
}

/// `ExUnregisterCallback`.
pub fn ex_unregister_callback(registration: usize) {
    enter(Service::ExUnregisterCallback);
    with(|kernel| {
        for object in &mut kernel.callback_objects {
            object.registrations.retain(|(id, ..)| *id != registration);
        }
    });
}

/// `ExNotifyCallback`: calls every function registered on `object`, in order, on this thread
/// and at this IRQL.
///
/// # Safety
/// `argument1` and `argument2` are what the functions registered on `object` expect, valid
/// for the length of the call.
pub unsafe fn ex_notify_callback(
    object: usize,
    argument1: *mut core::ffi::c_void,
    argument2: *mut core::ffi::c_void,
) {
    enter(Service::ExNotifyCallback);
    let registrations = with(|kernel| {
        kernel
            .callback_objects
            .iter()
            .find(|candidate| candidate.address == object)
            .map(|object| object.registrations.clone())
            .unwrap_or_default()
    });
    for (_, function, context) in registrations {
        // SAFETY: the function and its context are what a driver registered for this object,
        // and the arguments are what it expects (the caller's contract); the simulated kernel
        // calls them as Windows would.
        unsafe { function(context as *mut core::ffi::c_void, argument1, argument2) };
    }
}

/// `ObfDereferenceObject` for a callback object: gives back one reference.
pub fn ob_dereference_object(object: usize) {
    enter(Service::ObfDereferenceObject);
    with(|kernel| {
        let Some(index) = kernel
            .callback_objects
            .iter()
            .position(|candidate| candidate.address == object)
        else {
            kernel
                .counters
                .violations
                .push(format!("ObDereferenceObject of {object:#x}, not an object"));
            return;
        };
        kernel.counters.object_references -= 1;
        let entry = &mut kernel.callback_objects[index];
        entry.references -= 1;
        if entry.references == 0 {
            kernel.callback_objects.remove(index);
        }
    });
}

/// The parent of a registry path (`None` for a path with no backslash after its first).
fn parent_key(path: &str) -> Option<&str> {
    path.rfind('\\').filter(|&at| at > 0).map(|at| &path[..at])
}

/// The path of an open key handle, or the status a bad handle gets.
fn key_of(handle: usize) -> Result<String, NtStatus> {
    with(|kernel| kernel.keys.get(&handle).cloned()).ok_or(STATUS_INVALID_HANDLE)
}

/// The values of the key at `path`, changed by `change`. The key exists (it has a handle).
fn with_values<R>(path: &str, change: impl FnOnce(&mut Vec<RegistryValue>) -> R) -> R {
    with(|kernel| {
        let values = kernel
            .environment
            .registry
            .iter_mut()
            .find(|(key, _)| key.eq_ignore_ascii_case(path))
            .map(|(_, values)| values)
            .expect("an open handle's key exists");
        change(values)
    })
}

/// `ZwCreateKey` with `REG_OPTION_NON_VOLATILE`: opens the key at `path`, creating it when
/// absent (its parent must exist: ZwCreateKey creates one level only). Returns the handle
/// and whether the key was created. PASSIVE_LEVEL.
pub fn zw_create_key(path: &str) -> Result<(usize, bool), NtStatus> {
    enter(Service::ZwCreateKey);
    if let Some(status) = injected_failure(Service::ZwCreateKey) {
        return Err(status);
    }
    let created = if registry_key(path).is_some() {
        false
    } else {
        let parent = parent_key(path).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        if registry_key(parent).is_none() {
            return Err(STATUS_OBJECT_NAME_NOT_FOUND);
        }
        with(|kernel| {
            kernel
                .environment
                .registry
                .insert(path.to_string(), Vec::new())
        });
        true
    };
    Ok(with(|kernel| {
        kernel.next_object += 1;
        let handle = 0x8000_0000 + kernel.next_object * 4;
        kernel.keys.insert(handle, path.to_string());
        kernel.counters.open_keys += 1;
        (handle, created)
    }))
}

/// `ZwClose` of a key handle from [`zw_create_key`]. PASSIVE_LEVEL.
pub fn zw_close_key(handle: usize) -> Result<(), NtStatus> {
    enter(Service::ZwClose);
    with(|kernel| {
        kernel.keys.remove(&handle).ok_or(STATUS_INVALID_HANDLE)?;
        kernel.counters.open_keys -= 1;
        Ok(())
    })
}

/// One entry of `ZwEnumerateValueKey(KeyValueBasicInformation)`: the name and type of the
/// value at `index`, or `STATUS_NO_MORE_ENTRIES` past the last. The order is the reverse of
/// the order the values were written in: like the real registry's, it is not sorted, and a
/// driver that needs an order must sort. PASSIVE_LEVEL.
pub fn zw_enumerate_value_key(handle: usize, index: u32) -> Result<(String, u32), NtStatus> {
    enter(Service::ZwEnumerateValueKey);
    if let Some(status) = injected_failure(Service::ZwEnumerateValueKey) {
        return Err(status);
    }
    let path = key_of(handle)?;
    with_values(&path, |values| {
        values
            .iter()
            .rev()
            .nth(index as usize)
            .map(|value| (value.name.clone(), value.value_type))
            .ok_or(STATUS_NO_MORE_ENTRIES)
    })
}

/// `ZwSetValueKey`: writes the value `name` (names are case-insensitive: one of the same
/// name in another case is replaced, keeping its spelling). PASSIVE_LEVEL.
pub fn zw_set_value_key(
    handle: usize,
    name: &str,
    value_type: u32,
    data: &[u8],
) -> Result<(), NtStatus> {
    enter(Service::ZwSetValueKey);
    if let Some(status) = injected_failure(Service::ZwSetValueKey) {
        return Err(status);
    }
    let path = key_of(handle)?;
    with_values(&path, |values| {
        match values
            .iter_mut()
            .find(|value| value.name.eq_ignore_ascii_case(name))
        {
            Some(value) => {
                value.value_type = value_type;
                value.data = data.to_vec();
            }
            None => values.push(RegistryValue {
                name: name.to_string(),
                value_type,
                data: data.to_vec(),
            }),
        }
    });
    Ok(())
}

/// `ZwDeleteValueKey`: `STATUS_OBJECT_NAME_NOT_FOUND` when there is no value of that name
/// (in any case). PASSIVE_LEVEL.
pub fn zw_delete_value_key(handle: usize, name: &str) -> Result<(), NtStatus> {
    enter(Service::ZwDeleteValueKey);
    if let Some(status) = injected_failure(Service::ZwDeleteValueKey) {
        return Err(status);
    }
    let path = key_of(handle)?;
    with_values(&path, |values| {
        let at = values
            .iter()
            .position(|value| value.name.eq_ignore_ascii_case(name))
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        values.remove(at);
        Ok(())
    })
}

/// `ZwFlushKey`: counted in [`Counters::flushes`]; the order of the calls is in
/// [`Counters::calls`]. PASSIVE_LEVEL.
pub fn zw_flush_key(handle: usize) -> Result<(), NtStatus> {
    enter(Service::ZwFlushKey);
    if let Some(status) = injected_failure(Service::ZwFlushKey) {
        return Err(status);
    }
    key_of(handle)?;
    with(|kernel| kernel.counters.flushes += 1);
    Ok(())
}

/// `KUSER_SHARED_DATA.SystemTime`, as `KeQuerySystemTime` reads it. Any IRQL (a memory read).
pub fn system_time() -> u64 {
    with(|kernel| kernel.environment.system_time)
}

/// Counts one RDSEED or RDRAND try of the filter's (which runs the instruction itself).
pub fn note_random_step() {
    with(|kernel| kernel.counters.random_steps += 1);
}

/// What RDSEED and RDRAND do now. Any IRQL (the instructions need no service).
pub fn random_source() -> RandomSource {
    with(|kernel| kernel.environment.random)
}
