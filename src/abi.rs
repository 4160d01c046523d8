//! The dump filter ABI of ntdddump.h and wdm.h (x64), mirrored with compile-time layout checks.
//!
//! | Rust                     | Windows                       |
//! |--------------------------|-------------------------------|
//! | [`FILTER_DUMP_TYPE`]     | `FILTER_DUMP_TYPE`            |
//! | [`FILTER_EXTENSION`]     | `FILTER_EXTENSION`            |
//! | [`FILTER_INITIALIZATION_DATA`] | `FILTER_INITIALIZATION_DATA` |
//! | [`MDL`]                  | `MDL` (header; the PFN array follows it) |
//! | [`DumpStartFn`] …        | `PDUMP_START` …               |
//!
//! The C spellings are kept here on purpose: this file mirrors the headers. The rest of the
//! driver uses Rust names. Only x86_64 is laid out (docs/design.md, "The ABI").
#![expect(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    reason = "the C spellings of the headers this file mirrors"
)]
#![expect(
    missing_docs,
    reason = "each item is the header's item of the same name; the headers are its documentation"
)]

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

/// `NTSTATUS`.
pub type NTSTATUS = i32;
pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_UNSUCCESSFUL: NTSTATUS = 0xC000_0001_u32 as i32;
pub const STATUS_NOT_SUPPORTED: NTSTATUS = 0xC000_00BB_u32 as i32;
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;
pub const STATUS_INVALID_DEVICE_STATE: NTSTATUS = 0xC000_0184_u32 as i32;
pub const STATUS_BAD_CONFIGURATION: NTSTATUS = 0xC000_0346_u32 as i32;
pub const STATUS_ACCESS_DENIED: NTSTATUS = 0xC000_0022_u32 as i32;
pub const STATUS_OBJECT_NAME_NOT_FOUND: NTSTATUS = 0xC000_0034_u32 as i32;

pub const PAGE_SIZE: usize = 4096;
pub const PAGE_SHIFT: u32 = 12;

/// `FILTER_DUMP_TYPE` (4 bytes). Kept as a plain integer: the system may hand over any value.
pub type FILTER_DUMP_TYPE = u32;
pub const DumpTypeUndefined: FILTER_DUMP_TYPE = 0;
pub const DumpTypeCrashdump: FILTER_DUMP_TYPE = 1;
pub const DumpTypeHibernation: FILTER_DUMP_TYPE = 2;

/// `DISK_GEOMETRY`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct DISK_GEOMETRY {
    pub Cylinders: i64,
    pub MediaType: u32,
    pub TracksPerCylinder: u32,
    pub SectorsPerTrack: u32,
    pub BytesPerSector: u32,
}

/// `DISK_PARTITION_INFO`: style and signature only; it does not hold the partition's offset.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct DISK_PARTITION_INFO {
    pub SizeOfPartitionInfo: u32,
    pub PartitionStyle: u32,
    /// The union of `Mbr { Signature, CheckSum }` and `Gpt { DiskId: GUID }`.
    pub Union: [u32; 4],
}

/// `FILTER_EXTENSION`: what the dump stack hands every callback.
#[repr(C)]
#[derive(Debug)]
pub struct FILTER_EXTENSION {
    pub DumpType: FILTER_DUMP_TYPE,
    pub DeviceObject: *mut c_void,
    pub Geometry: DISK_GEOMETRY,
    pub DiskSize: i64,
    pub PartitionInfo: DISK_PARTITION_INFO,
    pub DumpData: *mut c_void,
    /// Windows 8 and later only.
    pub Size: u32,
    /// Windows 8 and later only.
    pub Flags: u32,
}

/// `DUMP_FILTER_EXTENSION_SIZE_V1`: the extension's size before Windows 8.
pub const FILTER_EXTENSION_SIZE_V1: usize = 0x50;

/// The part of `FILTER_EXTENSION` every OS version passes (before Size and Flags).
#[repr(C)]
#[derive(Debug)]
pub struct FILTER_EXTENSION_V1 {
    pub DumpType: FILTER_DUMP_TYPE,
    pub DeviceObject: *mut c_void,
    pub Geometry: DISK_GEOMETRY,
    pub DiskSize: i64,
    pub PartitionInfo: DISK_PARTITION_INFO,
    pub DumpData: *mut c_void,
}

pub type DumpStartFn = unsafe extern "C-unwind" fn(*mut FILTER_EXTENSION) -> NTSTATUS;
pub type DumpWriteFn =
    unsafe extern "C-unwind" fn(*mut FILTER_EXTENSION, *mut i64, *mut MDL) -> NTSTATUS;
pub type DumpFinishFn = unsafe extern "C-unwind" fn(*mut FILTER_EXTENSION) -> NTSTATUS;
pub type DumpUnloadFn = unsafe extern "C-unwind" fn(*mut FILTER_EXTENSION) -> NTSTATUS;
pub type DumpReadFn =
    unsafe extern "C-unwind" fn(*mut FILTER_EXTENSION, *mut i64, *mut MDL) -> NTSTATUS;
/// `DriverEntry` of a dump filter: the extension stands where the `DRIVER_OBJECT` would, the
/// initialization data where the registry path would.
pub type DumpDriverEntryFn = unsafe extern "C-unwind" fn(*mut c_void, *mut c_void) -> NTSTATUS;

/// `FILTER_INITIALIZATION_DATA`: what the filter fills in at DriverEntry.
///
/// `DumpRead` exists only from Windows 8 on: before that the structure ends at 0x38 and the
/// filter must not write past it ([`FILTER_INITIALIZATION_DATA_SIZE_V1`]).
#[repr(C)]
#[derive(Debug)]
pub struct FILTER_INITIALIZATION_DATA {
    pub MajorVersion: u32,
    pub MinorVersion: u32,
    pub DumpStart: Option<DumpStartFn>,
    pub DumpWrite: Option<DumpWriteFn>,
    pub DumpFinish: Option<DumpFinishFn>,
    pub DumpUnload: Option<DumpUnloadFn>,
    pub DumpData: *mut c_void,
    pub MaxPagesPerWrite: u32,
    pub Flags: u32,
    pub DumpRead: Option<DumpReadFn>,
}

pub const FILTER_INITIALIZATION_DATA_SIZE_V1: usize = 0x38;

/// The part of `FILTER_INITIALIZATION_DATA` every OS version has (before DumpRead).
#[repr(C)]
#[derive(Debug)]
pub struct FILTER_INITIALIZATION_DATA_V1 {
    pub MajorVersion: u32,
    pub MinorVersion: u32,
    pub DumpStart: Option<DumpStartFn>,
    pub DumpWrite: Option<DumpWriteFn>,
    pub DumpFinish: Option<DumpFinishFn>,
    pub DumpUnload: Option<DumpUnloadFn>,
    pub DumpData: *mut c_void,
    pub MaxPagesPerWrite: u32,
    pub Flags: u32,
}

pub const DUMP_FILTER_MAJOR_VERSION_1: u32 = 1;
pub const DUMP_FILTER_MAJOR_VERSION: u32 = 2;
pub const DUMP_FILTER_MINOR_VERSION: u32 = 0;
/// Without this filter, no dump: the system writes none if the filter fails to load.
pub const DUMP_FILTER_CRITICAL: u32 = 0x1;
/// The same bit as [`DUMP_FILTER_CRITICAL`]: the headers define both as 0x1.
pub const DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ: u32 = 0x1;
pub const DUMP_FILTER_FLAG_SYSTEM_SUPPORT_FILTER_EXTENSION_EX: u32 = 0x2;

/// `IO_TYPE_DRIVER`: the first `CSHORT` of a real `DRIVER_OBJECT`.
pub const IO_TYPE_DRIVER: u16 = 4;

/// The `MDL` header; `Size` counts the header and the PFN slots that follow it.
#[repr(C)]
#[derive(Debug)]
pub struct MDL {
    pub Next: *mut MDL,
    pub Size: i16,
    pub MdlFlags: i16,
    pub AllocationProcessorNumber: u16,
    pub Reserved: u16,
    pub Process: *mut c_void,
    pub MappedSystemVa: *mut c_void,
    pub StartVa: *mut c_void,
    pub ByteCount: u32,
    pub ByteOffset: u32,
}

/// `PFN_NUMBER` on x64.
pub type PFN_NUMBER = u64;

pub const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
pub const MDL_PAGES_LOCKED: i16 = 0x0002;
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
pub const MDL_PARTIAL: i16 = 0x0010;
pub const MDL_IO_SPACE: i16 = 0x0800;

// Layout checks (x64), as docs/design.md gives them.
const _: () = {
    assert!(
        size_of::<usize>() == 8,
        "dumpcrypt lays out the x64 ABI only"
    );

    assert!(size_of::<FILTER_DUMP_TYPE>() == 4);
    assert!(size_of::<DISK_GEOMETRY>() == 0x18);
    assert!(offset_of!(DISK_GEOMETRY, MediaType) == 0x08);
    assert!(offset_of!(DISK_GEOMETRY, TracksPerCylinder) == 0x0C);
    assert!(offset_of!(DISK_GEOMETRY, SectorsPerTrack) == 0x10);
    assert!(offset_of!(DISK_GEOMETRY, BytesPerSector) == 0x14);
    assert!(size_of::<DISK_PARTITION_INFO>() == 0x18);

    assert!(size_of::<FILTER_EXTENSION>() == 0x58);
    assert!(offset_of!(FILTER_EXTENSION, DumpType) == 0x00);
    assert!(offset_of!(FILTER_EXTENSION, DeviceObject) == 0x08);
    assert!(offset_of!(FILTER_EXTENSION, Geometry) == 0x10);
    assert!(offset_of!(FILTER_EXTENSION, DiskSize) == 0x28);
    assert!(offset_of!(FILTER_EXTENSION, PartitionInfo) == 0x30);
    assert!(offset_of!(FILTER_EXTENSION, DumpData) == 0x48);
    assert!(offset_of!(FILTER_EXTENSION, Size) == 0x50);
    assert!(offset_of!(FILTER_EXTENSION, Flags) == 0x54);
    assert!(FILTER_EXTENSION_SIZE_V1 == 0x50);
    assert!(size_of::<FILTER_EXTENSION_V1>() == FILTER_EXTENSION_SIZE_V1);
    assert!(offset_of!(FILTER_EXTENSION_V1, DeviceObject) == 0x08);
    assert!(offset_of!(FILTER_EXTENSION_V1, DumpData) == 0x48);

    assert!(size_of::<FILTER_INITIALIZATION_DATA>() == 0x40);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, MajorVersion) == 0x00);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, MinorVersion) == 0x04);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, DumpStart) == 0x08);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, DumpWrite) == 0x10);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, DumpFinish) == 0x18);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, DumpUnload) == 0x20);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, DumpData) == 0x28);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, MaxPagesPerWrite) == 0x30);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, Flags) == 0x34);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA, DumpRead) == 0x38);
    assert!(FILTER_INITIALIZATION_DATA_SIZE_V1 == 0x38);
    assert!(size_of::<FILTER_INITIALIZATION_DATA_V1>() == FILTER_INITIALIZATION_DATA_SIZE_V1);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA_V1, DumpData) == 0x28);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA_V1, MaxPagesPerWrite) == 0x30);
    assert!(offset_of!(FILTER_INITIALIZATION_DATA_V1, Flags) == 0x34);
    assert!(size_of::<Option<DumpWriteFn>>() == 8);

    assert!(size_of::<MDL>() == 0x30);
    assert!(offset_of!(MDL, Next) == 0x00);
    assert!(offset_of!(MDL, Size) == 0x08);
    assert!(offset_of!(MDL, MdlFlags) == 0x0A);
    assert!(offset_of!(MDL, AllocationProcessorNumber) == 0x0C);
    assert!(offset_of!(MDL, Reserved) == 0x0E);
    assert!(offset_of!(MDL, Process) == 0x10);
    assert!(offset_of!(MDL, MappedSystemVa) == 0x18);
    assert!(offset_of!(MDL, StartVa) == 0x20);
    assert!(offset_of!(MDL, ByteCount) == 0x28);
    assert!(offset_of!(MDL, ByteOffset) == 0x2C);
};
