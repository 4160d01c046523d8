//! The kernel boundary in kernel mode: ntoskrnl routines (declared in `ntoskrnl.rs`).
//!
//! Everything here runs at PASSIVE_LEVEL (DriverEntry) or below DISPATCH_LEVEL
//! (Dump_Unload), except [`bug_check`], which the dump path calls at HIGH_LEVEL.
//!
//! No one on the team can compile the `wdk` build; the `cross` build compiles and links this
//! file for x86_64-pc-windows-msvc on Linux, and the emulator runs it (docs/real-binary.md).

use core::ffi::c_void;
use core::mem::{size_of, zeroed};
use core::ptr::{null_mut, NonNull};

use super::ntoskrnl::*;
use super::{OsVersion, Passive, CONTEXT_TAG, PARAMETERS_PATH};
use crate::abi::{MDL, NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_OBJECT_NAME_NOT_FOUND};
use dumpcrypt_core::config::{RawValue, RegistryValues, ValueName, MAX_VALUE_LEN};
use dumpcrypt_provider::{Answer, Query, CALLBACK_NAME};

/// `RtlGetVersion`. PASSIVE_LEVEL.
pub fn os_version(_passive: &Passive) -> OsVersion {
    // SAFETY: RTL_OSVERSIONINFOW is plain data; all zeros is a valid value.
    let mut info: RTL_OSVERSIONINFOW = unsafe { zeroed() };
    info.dwOSVersionInfoSize = size_of::<RTL_OSVERSIONINFOW>() as u32;
    // SAFETY: `info` is a valid RTL_OSVERSIONINFOW with its size set; RtlGetVersion always
    // succeeds for it.
    unsafe { RtlGetVersion(&mut info) };
    OsVersion {
        major: info.dwMajorVersion,
        minor: info.dwMinorVersion,
        build: info.dwBuildNumber,
    }
}

/// UTF-16 of an ASCII string, at compile time.
const fn utf16<const N: usize>(text: &str) -> [u16; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() == N);
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        assert!(bytes[i].is_ascii());
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

static PARAMETERS_PATH_UTF16: [u16; PARAMETERS_PATH.len()] = utf16(PARAMETERS_PATH);

/// The value names, UTF-16, in [`ValueName::ALL`] order.
static VALUE_NAMES: [&[u16]; ValueName::ALL.len()] = [
    &utf16::<15>("CrashDumpPolicy"),
    &utf16::<17>("HibernationPolicy"),
    &utf16::<3>("Key"),
    &utf16::<12>("DataUnitSize"),
    &utf16::<18>("EncryptedAreaStart"),
    &utf16::<16>("EncryptedAreaEnd"),
    &utf16::<9>("TweakBase"),
    &utf16::<9>("KeySource"),
    &utf16::<6>("DiskId"),
    &utf16::<7>("Backend"),
    &utf16::<9>("Recipient"),
    &utf16::<25>("AllowPlaintextHibernation"),
];

static CALLBACK_NAME_UTF16: [u16; CALLBACK_NAME.len()] = utf16(CALLBACK_NAME);

const _: () = {
    let mut i = 0;
    while i < ValueName::ALL.len() {
        assert!(ValueName::ALL[i].as_str().len() == VALUE_NAMES[i].len());
        i += 1;
    }
};

fn unicode_string(text: &'static [u16]) -> UNICODE_STRING {
    UNICODE_STRING {
        Length: (text.len() * 2) as u16,
        MaximumLength: (text.len() * 2) as u16,
        Buffer: text.as_ptr(),
    }
}

/// KEY_VALUE_PARTIAL_INFORMATION with room for the largest value the driver keeps.
#[repr(C, align(8))]
struct PartialInformation {
    title_index: u32,
    value_type: u32,
    data_length: u32,
    data: [u8; MAX_VALUE_LEN],
}

/// Asks the provider for its keys and geometry: opens the callback object
/// `\Callback\DumpCryptProvider` if a provider created it, and notifies it with `query` and
/// `answer`. `Ok(false)`: no provider registered. PASSIVE_LEVEL (the provider's function
/// runs at the caller's IRQL).
pub fn query_provider(
    _passive: &Passive,
    query: &Query,
    answer: &mut Answer,
) -> Result<bool, NTSTATUS> {
    let name = unicode_string(&CALLBACK_NAME_UTF16);
    let mut attributes = OBJECT_ATTRIBUTES {
        Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: null_mut(),
        ObjectName: &name,
        Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        SecurityDescriptor: null_mut(),
        SecurityQualityOfService: null_mut(),
    };
    let mut object: *mut CALLBACK_OBJECT = null_mut();
    // SAFETY: `object` and `attributes` (and the name it points to) live across the call;
    // Create FALSE only opens an object that exists.
    let status = unsafe { ExCreateCallback(&mut object, &mut attributes, 0, 1) };
    if status == STATUS_OBJECT_NAME_NOT_FOUND {
        return Ok(false);
    }
    if status < 0 {
        return Err(status);
    }
    // SAFETY: `object` was opened above; the query and the answer are ours and live across
    // the call, which runs the provider's functions synchronously on this thread.
    unsafe {
        ExNotifyCallback(
            object,
            core::ptr::from_ref(query).cast_mut().cast(),
            core::ptr::from_mut(answer).cast(),
        );
    }
    // SAFETY: the reference ExCreateCallback took above, given back once.
    unsafe { ObfDereferenceObject(object.cast()) };
    Ok(true)
}

/// Reads the Parameters key. PASSIVE_LEVEL.
pub fn read_parameters(_passive: &Passive, values: &mut RegistryValues) -> Result<(), NTSTATUS> {
    let path = unicode_string(&PARAMETERS_PATH_UTF16);
    let mut attributes = OBJECT_ATTRIBUTES {
        Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: null_mut(),
        ObjectName: &path,
        Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        SecurityDescriptor: null_mut(),
        SecurityQualityOfService: null_mut(),
    };
    let mut key: HANDLE = null_mut();
    // SAFETY: `key` and `attributes` (and the name it points to) live across the call.
    let status = unsafe { ZwOpenKey(&mut key, KEY_READ, &mut attributes) };
    if status == STATUS_OBJECT_NAME_NOT_FOUND {
        // No Parameters key: `values` stays as it came, with the key absent.
        return Ok(());
    }
    if status < 0 {
        return Err(status);
    }
    values.key_present = true;
    let result = read_values(key, values);
    // SAFETY: `key` is the handle ZwOpenKey opened above, closed once.
    unsafe { ZwClose(key) };
    result
}

fn read_values(key: HANDLE, values: &mut RegistryValues) -> Result<(), NTSTATUS> {
    for (name, wide) in ValueName::ALL.into_iter().zip(VALUE_NAMES) {
        let mut name_string = unicode_string(wide);
        // SAFETY: plain data; all zeros is valid.
        let mut information: PartialInformation = unsafe { zeroed() };
        let mut result_length = 0u32;
        // SAFETY: the buffer is `size_of::<PartialInformation>()` writable bytes, the name and
        // the result length live across the call, and `key` is an open key handle.
        let status = unsafe {
            ZwQueryValueKey(
                key,
                &mut name_string,
                KEY_VALUE_PARTIAL_INFORMATION,
                (&mut information as *mut PartialInformation).cast::<c_void>(),
                size_of::<PartialInformation>() as u32,
                &mut result_length,
            )
        };
        let kept = match status {
            STATUS_OBJECT_NAME_NOT_FOUND => continue,
            // Too long to keep: the header (with the true length) is filled; the parser
            // refuses a value whose bytes were not all kept.
            STATUS_BUFFER_OVERFLOW => 0,
            status if status < 0 => return Err(status),
            _ => information.data_length as usize,
        };
        let kept = kept.min(MAX_VALUE_LEN);
        values.set(
            name,
            RawValue::new(
                information.value_type,
                information.data_length as usize,
                &information.data[..kept],
            ),
        );
        zeroize::Zeroize::zeroize(&mut information.data);
    }
    Ok(())
}

/// The dump partition's starting offset on its disk (`IOCTL_DISK_GET_PARTITION_INFO_EX`).
/// PASSIVE_LEVEL.
///
/// # Safety
/// `device` is null or the dump volume's DEVICE_OBJECT from FILTER_EXTENSION.
pub unsafe fn partition_offset(_passive: &Passive, device: *mut c_void) -> Result<u64, NTSTATUS> {
    if device.is_null() {
        return Err(crate::abi::STATUS_INVALID_PARAMETER);
    }
    let device = device.cast::<DEVICE_OBJECT>();
    // SAFETY: plain data; all zeros is valid (the event is initialized below).
    let mut event: KEVENT = unsafe { zeroed() };
    // SAFETY: as above.
    let mut io_status: IO_STATUS_BLOCK = unsafe { zeroed() };
    // SAFETY: as above.
    let mut information: PARTITION_INFORMATION_EX = unsafe { zeroed() };
    // SAFETY: `event` is nonpaged stack memory that outlives the wait below.
    unsafe { KeInitializeEvent(&mut event, NOTIFICATION_EVENT, 0) };
    // SAFETY: `device` is the dump volume's device object from FILTER_EXTENSION; the output
    // buffer, event and status block live on this stack until the request completes (we
    // wait for it below).
    let irp = unsafe {
        IoBuildDeviceIoControlRequest(
            IOCTL_DISK_GET_PARTITION_INFO_EX,
            device,
            null_mut(),
            0,
            (&mut information as *mut PARTITION_INFORMATION_EX).cast(),
            size_of::<PARTITION_INFORMATION_EX>() as u32,
            0,
            &mut event,
            &mut io_status,
        )
    };
    if irp.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: `irp` was built for `device` above; the I/O manager frees it on completion.
    let mut status = unsafe { IofCallDriver(device, irp) };
    if status == STATUS_PENDING {
        // SAFETY: `event` was initialized above and is signalled when the IRP completes.
        unsafe {
            KeWaitForSingleObject(
                (&mut event as *mut KEVENT).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                0,
                null_mut(),
            )
        };
        status = io_status.Status;
    }
    if status < 0 {
        return Err(status);
    }
    u64::try_from(information.StartingOffset).map_err(|_| crate::abi::STATUS_INVALID_PARAMETER)
}

fn pool_type(passive: &Passive) -> i32 {
    if os_version(passive).supports_dump_read() {
        NON_PAGED_POOL_NX
    } else {
        // NonPagedPoolNx does not exist before Windows 8.
        NON_PAGED_POOL
    }
}

/// Nonpaged (non-executable from Windows 8 on) pool for the filter's context. PASSIVE_LEVEL.
pub fn allocate_context(passive: &Passive, size: usize) -> Option<NonNull<u8>> {
    // SAFETY: a plain allocation request; the result is checked for null.
    NonNull::new(
        unsafe { ExAllocatePoolWithTag(pool_type(passive), size as SIZE_T, CONTEXT_TAG) }.cast(),
    )
}

/// Frees what [`allocate_context`] returned. Below DISPATCH_LEVEL.
///
/// # Safety
/// `context` came from [`allocate_context`] and is not used afterwards; the caller runs
/// below DISPATCH_LEVEL.
pub unsafe fn free_context(context: NonNull<u8>) {
    // SAFETY: the caller's contract; the tag matches the allocation's.
    unsafe { ExFreePoolWithTag(context.as_ptr().cast(), CONTEXT_TAG) };
}

/// Page-aligned, physically contiguous, nonpaged, non-executable memory. PASSIVE_LEVEL.
pub fn allocate_contiguous(_passive: &Passive, size: usize) -> Option<NonNull<u8>> {
    // SAFETY: a plain allocation request anywhere in physical memory; PAGE_READWRITE makes it
    // non-executable. The result is checked for null.
    let memory = unsafe {
        MmAllocateContiguousNodeMemory(
            size as SIZE_T,
            0,
            -1, /* MAXULONG64 */
            0,
            PAGE_READWRITE,
            MM_ANY_NODE_OK,
        )
    };
    NonNull::new(memory.cast())
}

/// Frees what [`allocate_contiguous`] returned. PASSIVE_LEVEL.
///
/// # Safety
/// `memory` came from [`allocate_contiguous`] and is not used afterwards; the caller runs at
/// PASSIVE_LEVEL (DriverEntry, Dump_Unload).
pub unsafe fn free_contiguous(memory: NonNull<u8>) {
    // SAFETY: the caller's contract.
    unsafe { MmFreeContiguousMemory(memory.as_ptr().cast()) };
}

/// An MDL describing `len` bytes of nonpaged memory at `va`, PFNs filled. PASSIVE_LEVEL.
///
/// # Safety
/// `[va, va + len)` is nonpaged memory that outlives the MDL.
pub unsafe fn build_mdl(_passive: &Passive, va: NonNull<u8>, len: u32) -> Option<NonNull<MDL>> {
    // SAFETY: no IRP to attach to, no quota; the result is checked for null.
    let mdl = NonNull::new(unsafe { IoAllocateMdl(va.as_ptr().cast(), len, 0, 0, null_mut()) })?;
    // SAFETY: `mdl` describes nonpaged memory (the caller's contract), as the routine needs.
    unsafe { MmBuildMdlForNonPagedPool(mdl.as_ptr()) };
    Some(mdl)
}

/// Frees what [`build_mdl`] returned. Below DISPATCH_LEVEL.
///
/// # Safety
/// `mdl` came from [`build_mdl`] and is not used afterwards; the caller runs below
/// DISPATCH_LEVEL.
pub unsafe fn free_mdl(mdl: NonNull<MDL>) {
    // SAFETY: the caller's contract.
    unsafe { IoFreeMdl(mdl.as_ptr()) };
}

/// `KeBugCheckEx`. Any IRQL, including HIGH_LEVEL: the only service the dump path calls.
pub fn bug_check(code: u32, parameters: [u64; 4]) -> ! {
    let [p1, p2, p3, p4] = parameters;
    // SAFETY: KeBugCheckEx may be called at any IRQL and does not return.
    unsafe { KeBugCheckEx(code, p1 as usize, p2 as usize, p3 as usize, p4 as usize) }
}
