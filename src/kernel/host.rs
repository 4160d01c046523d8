//! The kernel boundary on the host: the simulated Windows of `crashdmp-sim`.
//!
//! Each function forwards to the simulated ntoskrnl service the Windows implementation calls,
//! so the simulator sees the same calls, enforces the same IRQL rules, and counts the same
//! allocations. IRQLs are as documented in `kernel/mod.rs` and `windows.rs`.

use core::ffi::c_void;
use core::ptr::NonNull;

use crashdmp_sim::ntoskrnl::{self, RandomSource};

use super::{
    Cpu, Enumerated, OsVersion, Passive, PARAMETERS_PATH, SEALED_KEYS_PATH, VALUE_NAME_CAPACITY,
};
use crate::abi::{MDL, NTSTATUS, STATUS_OBJECT_NAME_NOT_FOUND};
use dumpcrypt_core::config::{RawValue, RegistryValues, ValueName};
use dumpcrypt_core::random::{Instruction, Instructions};
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

/// `REG_BINARY`.
const REG_BINARY: u32 = 3;

/// A registry key opened or created by [`create_sealed_keys`], closed when dropped; it cannot
/// outlive the PASSIVE_LEVEL token it was opened with.
#[derive(Debug)]
pub struct RegistryKey<'a> {
    handle: usize,
    _passive: &'a Passive,
}

/// Opens `Parameters\SealedKeys`, creating it if absent (`ZwCreateKey`, non-volatile, kernel
/// handle, case-insensitive). PASSIVE_LEVEL.
pub fn create_sealed_keys(passive: &Passive) -> Result<RegistryKey<'_>, NTSTATUS> {
    let (handle, _created) = ntoskrnl::zw_create_key(SEALED_KEYS_PATH)?;
    Ok(RegistryKey {
        handle,
        _passive: passive,
    })
}

impl RegistryKey<'_> {
    /// The name of the value at `index` (`ZwEnumerateValueKey`, KeyValueBasicInformation),
    /// written to `name`. PASSIVE_LEVEL.
    pub fn value_name(
        &self,
        index: u32,
        name: &mut [u16; VALUE_NAME_CAPACITY],
    ) -> Result<Enumerated, NTSTATUS> {
        match ntoskrnl::zw_enumerate_value_key(self.handle, index) {
            Ok((text, _type)) => {
                let units: Vec<u16> = text.encode_utf16().collect();
                if units.len() > name.len() {
                    return Ok(Enumerated::Other);
                }
                name[..units.len()].copy_from_slice(&units);
                Ok(Enumerated::Name(units.len()))
            }
            Err(ntoskrnl::STATUS_NO_MORE_ENTRIES) => Ok(Enumerated::End),
            Err(status) => Err(status),
        }
    }

    /// Writes a REG_BINARY value (`ZwSetValueKey`). PASSIVE_LEVEL.
    pub fn set_binary(&self, name: &[u16], data: &[u8]) -> Result<(), NTSTATUS> {
        ntoskrnl::zw_set_value_key(
            self.handle,
            &String::from_utf16_lossy(name),
            REG_BINARY,
            data,
        )
    }

    /// Deletes a value (`ZwDeleteValueKey`). PASSIVE_LEVEL.
    pub fn delete_value(&self, name: &[u16]) -> Result<(), NTSTATUS> {
        ntoskrnl::zw_delete_value_key(self.handle, &String::from_utf16_lossy(name))
    }

    /// Writes the key to disk (`ZwFlushKey`). PASSIVE_LEVEL.
    pub fn flush(&self) -> Result<(), NTSTATUS> {
        ntoskrnl::zw_flush_key(self.handle)
    }
}

impl Drop for RegistryKey<'_> {
    fn drop(&mut self) {
        // The handle was opened with a PASSIVE_LEVEL token that outlives `self`.
        let _ = ntoskrnl::zw_close_key(self.handle);
    }
}

/// The system time, UTC: 100 ns ticks since 1601-01-01 (`KUSER_SHARED_DATA.SystemTime`, as
/// `KeQuerySystemTime` reads it). PASSIVE_LEVEL here (any IRQL in kernel mode).
pub fn system_time(_passive: &Passive) -> u64 {
    ntoskrnl::system_time()
}

/// The processor's random instructions, as the simulated machine lets the driver see them:
/// the host processor's own ([`Cpu`]), hidden, or broken. PASSIVE_LEVEL.
pub fn random_instructions(_passive: &Passive) -> SimulatedCpu {
    SimulatedCpu {
        cpu: Cpu::detect(),
        source: ntoskrnl::random_source(),
    }
}

/// The host processor's RDSEED and RDRAND behind the simulated machine's [`RandomSource`].
#[derive(Debug)]
pub struct SimulatedCpu {
    cpu: Cpu,
    source: RandomSource,
}

impl Instructions for SimulatedCpu {
    fn has(&self, instruction: Instruction) -> bool {
        match (self.source, instruction) {
            (RandomSource::Absent, _) | (RandomSource::RdrandOnly, Instruction::Rdseed) => false,
            (RandomSource::Stuck(_) | RandomSource::Dry, _) => true,
            _ => self.cpu.has(instruction),
        }
    }
    fn step(&mut self, instruction: Instruction) -> Option<u64> {
        ntoskrnl::note_random_step();
        match self.source {
            RandomSource::Stuck(word) => Some(word),
            RandomSource::Dry => None,
            _ => self.cpu.step(instruction),
        }
    }
    fn pause(&mut self) {
        self.cpu.pause();
    }
}
