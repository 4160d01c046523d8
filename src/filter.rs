//! DriverEntry and the five callbacks: trampolines from the dump stack's C calls to the safe
//! instance of `dumpcrypt-core` and the encryption of `encryption.rs`, with one exit for
//! faults.
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
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::abi::*;
use crate::encryption::{Encryption, Unprepared};
use crate::kernel::{self, Passive, PoolBox};
use crate::mdl::{Source, Target};
use crate::request::RawRequest;
use dumpcrypt_core::config::{Config, Policy, RegistryValues};
use dumpcrypt_core::fault::{Callback, Fault, BUGCHECK_CODE};
use dumpcrypt_core::geometry::data_unit_fits_sectors;
use dumpcrypt_core::instance::{Action, DumpType, FinishOutcome, StartOutcome, WriteWith};
use dumpcrypt_core::provider::disk_of_partition_info;

/// One loaded copy of the filter: the context handed over through DumpData.
pub(crate) type Instance = dumpcrypt_core::instance::Instance<Encryption>;

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

    let context = match load(passive, extension, init.MaxPagesPerWrite) {
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
    extension: &FILTER_EXTENSION_V1,
    max_pages_per_write: u32,
) -> Result<NonNull<Instance>, NTSTATUS> {
    if max_pages_per_write == 0 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let dump_type = DumpType::from_raw(extension.DumpType).ok_or(STATUS_INVALID_PARAMETER)?;
    // From here on nothing but the system's own arguments fails DriverEntry: whatever goes
    // wrong with the configuration or the encrypt policy loads a refusing instance, which
    // holds on every Windows version (DUMP_FILTER_CRITICAL, which makes the system write no
    // dump when a filter fails to load, is documented from Windows 8 only). Only an
    // instance that cannot be allocated at all fails DriverEntry.
    let config = read_config(passive);
    // The raw values and the parser's frames are dead, but their bytes (a registry key among
    // them) are still on the stack, where the encrypt policy's values would be built next and
    // carry them in their padding.
    wipe_dead_stack();
    let action = match &config {
        // A present but invalid configuration, or a Parameters key that cannot be read.
        Err(_) => Action::Refuse,
        Ok(config) => action(passive, extension, config, dump_type, max_pages_per_write),
    };
    // The configuration's own copy of a key is wiped here; the key expansion's (and a sealed
    // key's) frames are dead too: wiped before the instance is built on the stack.
    drop(config);
    wipe_dead_stack();
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

/// What the configuration makes of this stack. The encrypt policy refuses (no dump) when
/// its keys cannot be had, when preparing them fails (pool exhausted, the partition query
/// failing, key expansion), and when the dump device's sectors are not whole data units.
/// PASSIVE_LEVEL.
fn action(
    passive: &Passive,
    extension: &FILTER_EXTENSION_V1,
    config: &Config,
    dump_type: DumpType,
    max_pages_per_write: u32,
) -> Action<Encryption> {
    match config.policy(dump_type) {
        Policy::Passthrough => Action::Passthrough,
        Policy::Refuse => Action::Refuse,
        Policy::Encrypt => {
            let info = &extension.PartitionInfo;
            let disk = disk_of_partition_info(info.PartitionStyle, partition_union(info));
            // SAFETY: DeviceObject is as the system passed it.
            match unsafe {
                Encryption::prepare(
                    passive,
                    config,
                    dump_type,
                    disk,
                    extension.DeviceObject,
                    max_pages_per_write,
                )
            } {
                // The stack writes whole sectors: a data unit they may not be aligned to is
                // refused now rather than found misaligned in the middle of a dump.
                Ok(encryption)
                    if data_unit_fits_sectors(
                        encryption.data_unit(),
                        extension.Geometry.BytesPerSector,
                    ) =>
                {
                    Action::Encrypt(encryption)
                }
                // Dropped here, at PASSIVE_LEVEL: wiped and freed.
                Ok(_) => Action::Refuse,
                // No plaintext where the configuration says encrypt: no dump at all.
                Err(Unprepared::Refused | Unprepared::Failed(_)) => Action::Refuse,
            }
        }
    }
}

/// How much dead stack below `load`'s frame [`wipe_dead_stack`] overwrites: more than reading
/// and parsing the configuration reaches below it (the raw values are in a pool block; the
/// deepest part is the recipient's small-order check, an X25519 ladder of about 2 KiB).
const DEAD_STACK_WIPE: usize = 4 * 1024;

/// Overwrites, with writes the compiler may not elide, the stack just below the caller's
/// frame: where the frames of the calls it made before lay. Not inlined, so that its block is
/// below the caller's frame. PASSIVE_LEVEL.
#[inline(never)]
fn wipe_dead_stack() {
    let mut block = [0u8; DEAD_STACK_WIPE];
    zeroize::Zeroize::zeroize(&mut block[..]);
    core::hint::black_box(&block);
}

/// Reads and parses the Parameters key. The raw values (2 KiB: 160 bytes kept of each of 12)
/// are read into a pool block of their own, wiped when it is freed here, so that they take
/// no room on DriverEntry's stack (returned by value they took it more than once, and put
/// DriverEntry over its 8 KiB budget); not inlined, so that the parser's frames end with it.
/// Any failure, the pool block's included, loads a refusing instance. PASSIVE_LEVEL.
#[inline(never)]
fn read_config(passive: &Passive) -> Result<Config, NTSTATUS> {
    let mut values = PoolBox::try_new(passive, STATUS_INSUFFICIENT_RESOURCES, || {
        Ok(RegistryValues::default())
    })?;
    kernel::read_parameters(passive, &mut values)?;
    Config::parse(&values).map_err(|_| STATUS_BAD_CONFIGURATION)
}

/// The 16 bytes of DISK_PARTITION_INFO's union (MBR Signature and CheckSum, or GPT DiskId),
/// as they lie in memory.
fn partition_union(info: &DISK_PARTITION_INFO) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(info.Union) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
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
            Ok(match instance.start(Encryption::may_start) {
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
            match instance.write(|| request.offset())? {
                WriteWith::Untouched => {}
                WriteWith::Encrypt(encryption) => encryption.write(request)?,
                WriteWith::Blank(encryption) => encryption.blank(request)?,
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
            if let Some(encryption) = instance.read() {
                encryption.read(request)?;
            }
            Ok(STATUS_SUCCESS)
        })
    };
    // SAFETY: the dump stack's contract, passed on.
    let result = unsafe { with_instance(extension, read) };
    complete(Callback::Read, result)
}

/// Dump_Finish: wipes the secondary buffer, and on the crash dump stack after its dump the
/// key schedules too, in place. HIGH_LEVEL.
///
/// # Safety
/// As for [`dump_start`].
unsafe extern "C-unwind" fn dump_finish(extension: *mut FILTER_EXTENSION) -> NTSTATUS {
    // SAFETY: the dump stack's contract, passed on.
    let result = unsafe {
        with_instance(extension, |instance| {
            match instance.finish() {
                FinishOutcome::Nothing => {}
                FinishOutcome::Buffer(encryption) => encryption.finish(),
                FinishOutcome::BufferAndKeys(encryption) => {
                    encryption.finish();
                    encryption.wipe_keys();
                }
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
        // Dropping the box wipes the keys, the buffer and the whole context, and frees them:
        // Dump_Unload runs below DISPATCH_LEVEL, as the frees need.
        // SAFETY: a live instance came from `PoolBox::into_raw` in `load`; it is now out of
        // the live set, so no later callback can reach it, and no reference to it is left.
        drop(unsafe { PoolBox::from_raw(instance) });
        STATUS_SUCCESS
    });
    complete(Callback::Unload, result)
}
