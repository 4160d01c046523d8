//! DriverEntry and the five callbacks: trampolines from the dump stack's C calls to the safe
//! instance in `policy.rs`, with one exit for faults.
//!
//! | Rust              | Windows                               |
//! |-------------------|---------------------------------------|
//! | [`driver_entry`]  | `DriverEntry` of a dump filter        |
//! | `dump_start` …    | `Dump_Start`, `Dump_Write`, `Dump_Read`, `Dump_Finish`, `Dump_Unload` |
//!
//! Each loaded copy keeps its context in nonpaged pool and hands it to the system through
//! FILTER_INITIALIZATION_DATA.DumpData; the system gives it back in FILTER_EXTENSION.DumpData.
//! Before trusting it, every callback looks it up in [`LIVE`], so a callback with a context
//! that was never loaded or is already unloaded is a documented bug check, not a wild read.
// The dump path: no indexing that could panic, no panics, no unwraps (tests aside).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used
    )
)]

use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::abi::*;
use crate::kernel::{self, AlignedBlock, Passive, PoolBox};
use crate::mdl::{SecondaryBuffer, Source, Target};
use crate::request::{CheckedRead, CheckedWrite, RawRequest};
use dumpcrypt_core::config::{Config, Policy};
use dumpcrypt_core::fault::{Callback, Fault, BUGCHECK_CODE};
use dumpcrypt_core::geometry::{Geometry, TweakBase};
use dumpcrypt_core::instance::{Action, DumpType, StartOutcome};
use dumpcrypt_core::xts::{Backend, XtsAes256, STATE_AREA_ALIGN};

/// One loaded copy of the filter: the context handed over through DumpData.
pub(crate) type Instance = dumpcrypt_core::instance::Instance<Encryption>;

/// What the encrypt policy needs, all prepared at DriverEntry.
#[derive(Debug)]
pub(crate) struct Encryption {
    /// In its own pool block: the key schedules are most of the instance's size.
    cipher: PoolBox<XtsAes256>,
    /// Where a VAES backend saves the extended state around each call (none for the
    /// others), attached to `cipher`; declared after it, so dropped after it.
    _state: Option<AlignedBlock>,
    geometry: Geometry,
    buffer: SecondaryBuffer,
}

impl Encryption {
    /// Dump_Write. HIGH_LEVEL.
    fn write(&mut self, request: RawRequest<'_, Source>) -> Result<(), Fault> {
        CheckedWrite::parse(request, &self.geometry, &mut self.buffer)?.encrypt(&self.cipher)
    }

    /// Dump_Read. HIGH_LEVEL.
    fn read(&mut self, request: RawRequest<'_, Target>) -> Result<(), Fault> {
        CheckedRead::parse(request, &self.geometry, self.buffer.len())?.decrypt(&self.cipher)
    }
}

/// Contexts of the instances loaded now. In kernel mode each image copy holds one at a time;
/// the host runs many instances in one process, side by side.
static LIVE: [AtomicPtr<Instance>; 64] = [const { AtomicPtr::new(null_mut()) }; 64];

/// DriverEntry of a dump filter (docs/design.md, "How Windows drives a dump filter").
/// PASSIVE_LEVEL.
///
/// # Safety
/// `driver_object` and `registry_path` are what the system passes to DriverEntry: for a dump
/// filter a `FILTER_EXTENSION` and a `FILTER_INITIALIZATION_DATA` with at least the layout
/// of the running OS version; for an ordinary service start a `DRIVER_OBJECT` and a
/// `UNICODE_STRING`. Either may be null.
pub unsafe fn driver_entry(driver_object: *mut c_void, registry_path: *mut c_void) -> NTSTATUS {
    if driver_object.is_null() || registry_path.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: both a DRIVER_OBJECT and a FILTER_EXTENSION begin with at least two readable
    // bytes: the object type, or the low half of DumpType.
    if unsafe { driver_object.cast::<u16>().read() } == IO_TYPE_DRIVER {
        // Started as an ordinary service: nothing of ours to do, and nothing to touch.
        return STATUS_NOT_SUPPORTED;
    }
    // SAFETY: every OS version passes at least the version-1 extension, readable for the
    // whole of DriverEntry; the filter only reads it.
    let extension = unsafe { &*driver_object.cast::<FILTER_EXTENSION_V1>() };
    // SAFETY: every OS version passes at least the version-1 initialization data, ours
    // alone to fill during DriverEntry. DumpRead, past it, is written separately below.
    let init = unsafe { &mut *registry_path.cast::<FILTER_INITIALIZATION_DATA_V1>() };
    // SAFETY: DriverEntry runs at PASSIVE_LEVEL.
    unsafe { Passive::scope(|passive| initialize(passive, extension, init, registry_path)) }
}

/// DriverEntry's work, with the PASSIVE_LEVEL token.
fn initialize(
    passive: &Passive,
    extension: &FILTER_EXTENSION_V1,
    init: &mut FILTER_INITIALIZATION_DATA_V1,
    registry_path: *mut c_void,
) -> NTSTATUS {
    let read_support = kernel::os_version(passive).supports_dump_read();

    // Version and flags first, before anything can fail. The callbacks and DumpData stay
    // unset until the end, so a failure leaves no pointer the system could call. Flags keeps
    // whatever bits the system set before the call.
    init.MajorVersion = if read_support {
        DUMP_FILTER_MAJOR_VERSION
    } else {
        DUMP_FILTER_MAJOR_VERSION_1
    };
    init.MinorVersion = DUMP_FILTER_MINOR_VERSION;
    init.Flags |= DUMP_FILTER_CRITICAL
        | if read_support {
            DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ
        } else {
            0
        };

    let context = match load(
        passive,
        extension.DumpType,
        extension.DeviceObject,
        init.MaxPagesPerWrite,
    ) {
        Ok(context) => context,
        Err(status) => return status,
    };
    init.DumpStart = Some(dump_start);
    init.DumpWrite = Some(dump_write);
    init.DumpFinish = Some(dump_finish);
    init.DumpUnload = Some(dump_unload);
    init.DumpData = context.as_ptr().cast();
    if read_support {
        let dump_read_slot = registry_path
            .cast::<u8>()
            .wrapping_add(core::mem::offset_of!(FILTER_INITIALIZATION_DATA, DumpRead))
            .cast::<Option<DumpReadFn>>();
        // SAFETY: from Windows 8 on the structure has DumpRead (0x38, 8-byte aligned like the
        // structure), ours to fill during DriverEntry; `init` covers only the bytes before
        // it, so this write does not alias it.
        unsafe { dump_read_slot.write(Some(dump_read)) };
    }
    STATUS_SUCCESS
}

/// Validates, reads the configuration, and builds and registers the instance. PASSIVE_LEVEL.
fn load(
    passive: &Passive,
    dump_type: u32,
    device: *mut c_void,
    max_pages_per_write: u32,
) -> Result<NonNull<Instance>, NTSTATUS> {
    if max_pages_per_write == 0 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let dump_type = DumpType::from_raw(dump_type).ok_or(STATUS_INVALID_PARAMETER)?;
    let config =
        Config::parse(&kernel::read_parameters(passive)?).map_err(|_| STATUS_BAD_CONFIGURATION)?;
    let action = match config.policy(dump_type) {
        Policy::Passthrough => Action::Passthrough,
        Policy::Refuse => Action::Refuse,
        Policy::Encrypt => Action::Encrypt(prepare_encryption(
            passive,
            &config,
            device,
            max_pages_per_write,
        )?),
    };
    let instance = PoolBox::try_new(passive, STATUS_INSUFFICIENT_RESOURCES, || {
        Ok(Instance::new(dump_type, action))
    })?
    .into_raw();
    if !register(instance) {
        // SAFETY: just made by `into_raw` and never shared: take it back and drop it, at
        // PASSIVE_LEVEL.
        drop(unsafe { PoolBox::from_raw(instance) });
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    Ok(instance)
}

/// Expands the key into `slot` (the cipher's pool block) for the fastest backend the
/// processor runs, up to `backend`. Not inlined, so that the key expansion's frame is not part
/// of DriverEntry's for the rest of its run.
#[inline(never)]
fn expand_key<'a>(
    slot: &'a mut MaybeUninit<XtsAes256>,
    key: &[u8; 64],
    backend: Backend,
) -> Result<&'a mut XtsAes256, NTSTATUS> {
    XtsAes256::with_backend_in(slot, key, backend).map_err(|_| STATUS_BAD_CONFIGURATION)
}

/// Allocates the save area the cipher's backend needs for the extended state (a VAES
/// backend's, sized from CPUID leaf 0xD; none for the others) and attaches it, so that the
/// dump path allocates nothing. PASSIVE_LEVEL.
#[inline(never)]
fn attach_state_area(
    passive: &Passive,
    cipher: &mut XtsAes256,
) -> Result<Option<AlignedBlock>, NTSTATUS> {
    let len = cipher.state_len();
    if len == 0 {
        return Ok(None);
    }
    let area = AlignedBlock::try_new(passive, len, STATE_AREA_ALIGN)
        .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: the block is `len` bytes of nonpaged pool, 64-byte aligned, ours alone; it is
    // kept in the same `Encryption` as the cipher and dropped after it.
    unsafe { cipher.attach_state_area(area.start(), area.len()) }
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    Ok(Some(area))
}

#[inline(never)]
fn prepare_encryption(
    passive: &Passive,
    config: &Config,
    device: *mut c_void,
    max_pages_per_write: u32,
) -> Result<Encryption, NTSTATUS> {
    // Config::parse refuses encrypt without a valid key.
    let key = config.key.as_ref().ok_or(STATUS_BAD_CONFIGURATION)?;
    let mut cipher = PoolBox::try_new_in(passive, STATUS_INSUFFICIENT_RESOURCES, |slot| {
        expand_key(slot, key, config.backend)
    })?;
    let state = attach_state_area(passive, &mut cipher)?;
    let partition_start = match config.tweak_base {
        TweakBase::Partition => 0,
        // SAFETY: `device` is FILTER_EXTENSION.DeviceObject, as the system passed it.
        TweakBase::Disk => unsafe { kernel::partition_offset(passive, device) }?,
    };
    Ok(Encryption {
        cipher,
        _state: state,
        geometry: config.geometry(partition_start),
        buffer: SecondaryBuffer::allocate(passive, max_pages_per_write)?,
    })
}

fn register(instance: NonNull<Instance>) -> bool {
    LIVE.iter().any(|slot| {
        slot.compare_exchange(
            null_mut(),
            instance.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    })
}

fn is_live(context: *mut c_void) -> bool {
    !context.is_null()
        && LIVE
            .iter()
            .any(|slot| slot.load(Ordering::Acquire) == context.cast())
}

fn unregister(instance: NonNull<Instance>) {
    for slot in &LIVE {
        let _ = slot.compare_exchange(
            instance.as_ptr(),
            null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// Runs `body` on the instance behind an extension, checked against the live set and the
/// dump type; the reference cannot outlive `body`.
///
/// # Safety
/// `extension`, if non-null, is the FILTER_EXTENSION the dump stack passes to callbacks, and
/// the stack makes no other call on this instance until this one returns.
unsafe fn with_instance<R>(
    extension: *mut FILTER_EXTENSION,
    body: impl FnOnce(&mut Instance) -> Result<R, Fault>,
) -> Result<R, Fault> {
    if extension.is_null() {
        return Err(Fault::NullArgument { argument: 1 });
    }
    // SAFETY: a non-null extension is readable by the contract, in at least its version-1
    // layout, and the filter never writes it.
    let extension = unsafe { &*extension.cast::<FILTER_EXTENSION_V1>() };
    let (context, found) = (extension.DumpData, extension.DumpType);
    if !is_live(context) {
        return Err(Fault::UnknownContext {
            context: context as usize,
        });
    }
    // SAFETY: a live context points to an instance made by `load` and not yet unloaded;
    // the dump stack calls one callback at a time, so this reference is exclusive while
    // `body` runs.
    let instance = unsafe { &mut *context.cast::<Instance>() };
    instance.check_dump_type(found)?;
    body(instance)
}

/// The one exit of the dump path: a status, or a bug check for a fault.
fn complete(callback: Callback, result: Result<NTSTATUS, Fault>) -> NTSTATUS {
    match result {
        Ok(status) => status,
        Err(fault) => kernel::bug_check(BUGCHECK_CODE, fault.parameters(callback)),
    }
}

/// Dump_Start. HIGH_LEVEL.
///
/// # Safety
/// Called by the dump stack with the extension of an instance this driver loaded.
unsafe extern "C-unwind" fn dump_start(extension: *mut FILTER_EXTENSION) -> NTSTATUS {
    // SAFETY: the dump stack's contract, passed on.
    let result = unsafe {
        with_instance(extension, |instance| {
            Ok(match instance.start() {
                StartOutcome::Proceed => STATUS_SUCCESS,
                StartOutcome::Refused => STATUS_ACCESS_DENIED,
            })
        })
    };
    complete(Callback::Start, result)
}

/// Dump_Write. HIGH_LEVEL.
///
/// # Safety
/// Called by the dump stack with the extension of an instance this driver loaded, a readable
/// disk offset and an MDL whose mapped data it does not touch until the callback returns.
unsafe extern "C-unwind" fn dump_write(
    extension: *mut FILTER_EXTENSION,
    disk_byte_offset: *mut i64,
    mdl: *mut MDL,
) -> NTSTATUS {
    // SAFETY: the dump stack's contract for the offset and the MDL, for this call.
    let write = |instance: &mut Instance| unsafe {
        RawRequest::<Source>::scope(disk_byte_offset, mdl, |request| {
            if let Some(encryption) = instance.write(|| request.offset())? {
                encryption.write(request)?;
            }
            Ok(STATUS_SUCCESS)
        })
    };
    // SAFETY: the dump stack's contract, passed on.
    let result = unsafe { with_instance(extension, write) };
    complete(Callback::Write, result)
}

/// Dump_Read. HIGH_LEVEL. Registered on Windows 8 and later only.
///
/// # Safety
/// As for [`dump_write`]; the MDL maps the data just read, for the filter to decrypt in place.
unsafe extern "C-unwind" fn dump_read(
    extension: *mut FILTER_EXTENSION,
    disk_byte_offset: *mut i64,
    mdl: *mut MDL,
) -> NTSTATUS {
    // SAFETY: the dump stack's contract for the offset and the MDL, for this call.
    let read = |instance: &mut Instance| unsafe {
        RawRequest::<Target>::scope(disk_byte_offset, mdl, |request| {
            if let Some(encryption) = instance.read()? {
                encryption.read(request)?;
            }
            Ok(STATUS_SUCCESS)
        })
    };
    // SAFETY: the dump stack's contract, passed on.
    let result = unsafe { with_instance(extension, read) };
    complete(Callback::Read, result)
}

/// Dump_Finish: wipes the secondary buffer. HIGH_LEVEL.
///
/// # Safety
/// As for [`dump_start`].
unsafe extern "C-unwind" fn dump_finish(extension: *mut FILTER_EXTENSION) -> NTSTATUS {
    // SAFETY: the dump stack's contract, passed on.
    let result = unsafe {
        with_instance(extension, |instance| {
            if let Some(encryption) = instance.finish() {
                encryption.buffer.wipe();
            }
            Ok(STATUS_SUCCESS)
        })
    };
    complete(Callback::Finish, result)
}

/// Dump_Unload: wipes and frees everything. Below DISPATCH_LEVEL.
///
/// # Safety
/// As for [`dump_start`]; the stack makes no call on this instance afterwards.
unsafe extern "C-unwind" fn dump_unload(extension: *mut FILTER_EXTENSION) -> NTSTATUS {
    // SAFETY: the dump stack's contract, passed on.
    let result = unsafe {
        with_instance(extension, |instance| {
            let instance = NonNull::from(instance);
            unregister(instance);
            Ok(instance)
        })
    }
    .map(|instance| {
        // SAFETY: a live instance came from `PoolBox::into_raw` in `load`; it is now out of
        // the live set, so no later callback can reach it, and no reference to it is left.
        // Dropping the box wipes the keys, the buffer and the whole context; Dump_Unload
        // runs below DISPATCH_LEVEL, as the frees need.
        drop(unsafe { PoolBox::from_raw(instance) });
        STATUS_SUCCESS
    });
    complete(Callback::Unload, result)
}
