//! The kernel boundary on the host: the simulated Windows of `crashdmp-sim`.
//!
//! Each function forwards to the simulated ntoskrnl service the Windows implementation calls,
//! so the simulator sees the same calls, enforces the same IRQL rules, and counts the same
//! allocations. IRQLs are as documented in `kernel/mod.rs` and `windows.rs`.

use core::ffi::c_void;
use core::ptr::NonNull;

use crashdmp_sim::ntoskrnl;

use super::{OsVersion, Passive, PARAMETERS_PATH};
use crate::abi::{MDL, NTSTATUS, STATUS_OBJECT_NAME_NOT_FOUND};
use dumpcrypt_core::config::{RawValue, RegistryValues, ValueName};
use dumpcrypt_provider::{Answer, Query, CALLBACK_NAME};

/// `RtlGetVersion`. PASSIVE_LEVEL.
pub fn os_version(_passive: &Passive) -> OsVersion {
    let (major, minor, build) = ntoskrnl::rtl_get_version();
    OsVersion {
        major,
        minor,
        build,
    }
}

/// Asks the provider for its keys and geometry through the callback object
/// `\Callback\DumpCryptProvider` (see `windows.rs`). `Ok(false)`: no provider registered.
/// PASSIVE_LEVEL.
pub fn query_provider(
    _passive: &Passive,
    query: &Query,
    answer: &mut Answer,
) -> Result<bool, NTSTATUS> {
    let object = match ntoskrnl::ex_create_callback(CALLBACK_NAME, false, true) {
        Ok(object) => object,
        Err(STATUS_OBJECT_NAME_NOT_FOUND) => return Ok(false),
        Err(status) => return Err(status),
    };
    // SAFETY: a provider registered on this object expects a DUMPCRYPT_QUERY and a
    // DUMPCRYPT_ANSWER (docs/provider.md); both are ours and live across the call.
    unsafe {
        ntoskrnl::ex_notify_callback(
            object,
            core::ptr::from_ref(query).cast_mut().cast(),
            core::ptr::from_mut(answer).cast(),
        );
    }
    ntoskrnl::ob_dereference_object(object);
    Ok(true)
}

/// Reads the Parameters key. PASSIVE_LEVEL.
pub fn read_parameters(
    _passive: &Passive,
    parameters: &mut RegistryValues,
) -> Result<(), NTSTATUS> {
    let values = match ntoskrnl::zw_read_key(PARAMETERS_PATH) {
        Ok(values) => values,
        Err(STATUS_OBJECT_NAME_NOT_FOUND) => return Ok(()),
        Err(status) => return Err(status),
    };
    parameters.key_present = true;
    for name in ValueName::ALL {
        if let Some(value) = values
            .iter()
            .find(|value| value.name.eq_ignore_ascii_case(name.as_str()))
        {
            parameters.set(
                name,
                RawValue::new(value.value_type, value.data.len(), &value.data),
            );
        }
    }
    Ok(())
}

/// The dump partition's starting offset on its disk (`IOCTL_DISK_GET_PARTITION_INFO_EX`).
/// PASSIVE_LEVEL.
///
/// # Safety
/// `device` is null or the dump volume's DEVICE_OBJECT from FILTER_EXTENSION.
pub unsafe fn partition_offset(_passive: &Passive, device: *mut c_void) -> Result<u64, NTSTATUS> {
    ntoskrnl::query_partition_offset(device.cast())
}

/// Nonpaged, non-executable pool for the filter's context. PASSIVE_LEVEL.
pub fn allocate_context(_passive: &Passive, size: usize) -> Option<NonNull<u8>> {
    NonNull::new(ntoskrnl::ex_allocate_pool_with_tag(
        size,
        super::CONTEXT_TAG,
    ))
}

/// Frees what [`allocate_context`] returned. Below DISPATCH_LEVEL.
///
/// # Safety
/// `context` came from [`allocate_context`] and is not used afterwards; the caller runs
/// below DISPATCH_LEVEL.
pub unsafe fn free_context(context: NonNull<u8>) {
    ntoskrnl::ex_free_pool_with_tag(context.as_ptr(), super::CONTEXT_TAG);
}

/// Page-aligned, physically contiguous, nonpaged, non-executable memory. PASSIVE_LEVEL.
pub fn allocate_contiguous(_passive: &Passive, size: usize) -> Option<NonNull<u8>> {
    NonNull::new(ntoskrnl::mm_allocate_contiguous_node_memory(
        size,
        ntoskrnl::PAGE_READWRITE,
    ))
}

/// Frees what [`allocate_contiguous`] returned. PASSIVE_LEVEL.
///
/// # Safety
/// `memory` came from [`allocate_contiguous`] and is not used afterwards; the caller runs at
/// PASSIVE_LEVEL (DriverEntry, Dump_Unload).
pub unsafe fn free_contiguous(memory: NonNull<u8>) {
    ntoskrnl::mm_free_contiguous_memory(memory.as_ptr());
}

/// An MDL describing `len` bytes of nonpaged memory at `va`, PFNs filled
/// (`IoAllocateMdl` + `MmBuildMdlForNonPagedPool`). PASSIVE_LEVEL.
///
/// # Safety
/// `[va, va + len)` is nonpaged memory that outlives the MDL.
pub unsafe fn build_mdl(_passive: &Passive, va: NonNull<u8>, len: u32) -> Option<NonNull<MDL>> {
    let mdl = NonNull::new(ntoskrnl::io_allocate_mdl(va.as_ptr(), len))?;
    ntoskrnl::mm_build_mdl_for_nonpaged_pool(mdl.as_ptr());
    Some(mdl.cast())
}

/// Frees what [`build_mdl`] returned. Below DISPATCH_LEVEL.
///
/// # Safety
/// `mdl` came from [`build_mdl`] and is not used afterwards; the caller runs below
/// DISPATCH_LEVEL.
pub unsafe fn free_mdl(mdl: NonNull<MDL>) {
    ntoskrnl::io_free_mdl(mdl.as_ptr().cast());
}

/// `KeBugCheckEx`. Any IRQL, including HIGH_LEVEL: the only service the dump path calls.
pub fn bug_check(code: u32, parameters: [u64; 4]) -> ! {
    let [p1, p2, p3, p4] = parameters;
    ntoskrnl::ke_bug_check_ex(code, p1, p2, p3, p4)
}
