//! The ntoskrnl routines dumpcrypt imports, declared by hand: the one file that differs
//! between the two kernel-mode builds.
//!
//! - `wdk` (shipping, Windows host): linked against the WDK's `ntoskrnl.lib`, which
//!   wdk-build puts on the linker's path.
//! - `cross` (Linux): bound by `raw-dylib` to `ntoskrnl.exe`, so no import library is needed.
//!
//! All are `extern "system"`, which on x64 is the one Windows calling convention.
//!
//! # What checks them
//!
//! Neither build compares these declarations with Microsoft's headers. CI compares them with
//! mingw-w64's DDK headers instead, an independent reading of the same interfaces:
//! `scripts/check-ntoskrnl.sh` has `scripts/check_ntoskrnl.py` translate this file into C
//! that mingw-w64's gcc must compile after `<ntddk.h>` and `<ntdddisk.h>`, in which
//!
//! - each routine below is redeclared with the C types its Rust types name, so that another
//!   parameter count, parameter type (down to a pointee's `const`) or return type than the
//!   header's is an error, as is `!` where the header has no noreturn, or the reverse;
//! - each structure here, and `abi.rs`'s `MDL`, must have the header's size and alignment,
//!   and each field the offset and size of the header's field of that name;
//! - each constant here, and `abi.rs`'s `STATUS_*` and `MDL_*`, must have the header's value;
//! - each type alias must have the size, alignment and signedness of the C type of its name,
//!   or be the C enum or union its doc names.
//!
//! Hence the C spellings: a Rust type in a signature stands for one C type only (`u32` for
//! `ULONG`, `u8` `UCHAR`, `usize` `ULONG_PTR`, `*mut IRP` `IRP *`, an alias or structure for
//! the C type of its name), and the headers' enums are aliases named after them, not `u32`.
//!
//! What mingw-w64's headers lack is checked less. They do not declare
//! `MmAllocateContiguousNodeMemory`: its return type and parameters but the fifth (`Protect`)
//! are compared with `MmAllocateContiguousMemorySpecifyCacheNode`'s, documented alike. They
//! do not define `abi.rs`'s `STATUS_BAD_CONFIGURATION`. Their `MDL` does not name
//! `AllocationProcessorNumber` and `Reserved`, which are only checked to lie in its padding.
//! The script fails once the headers gain any of these, so that the check can be tightened.
#![expect(
    non_snake_case,
    non_camel_case_types,
    reason = "the C spellings of the headers these declarations mirror"
)]

use core::ffi::c_void;

use crate::abi::{MDL, NTSTATUS};

pub type HANDLE = *mut c_void;
pub type SIZE_T = u64;
pub type ACCESS_MASK = u32;
/// `KPROCESSOR_MODE`, a `CCHAR`.
pub type KPROCESSOR_MODE = i8;
pub type NODE_REQUIREMENT = u32;
/// `LARGE_INTEGER`, the C `union _LARGE_INTEGER`: 8 bytes, read here as its `QuadPart`.
pub type LARGE_INTEGER = i64;
/// `PHYSICAL_ADDRESS`, the C `union _LARGE_INTEGER`: passed by value in a register, as an
/// `i64` is.
pub type PHYSICAL_ADDRESS = i64;
/// `POOL_TYPE`, the C `enum _POOL_TYPE` (an `int` to Windows' compilers).
pub type POOL_TYPE = i32;
/// `KEY_VALUE_INFORMATION_CLASS`, the C `enum _KEY_VALUE_INFORMATION_CLASS`.
pub type KEY_VALUE_INFORMATION_CLASS = i32;
/// `EVENT_TYPE`, the C `enum _EVENT_TYPE`.
pub type EVENT_TYPE = i32;
/// `KWAIT_REASON`, the C `enum _KWAIT_REASON`.
pub type KWAIT_REASON = i32;

/// `DEVICE_OBJECT`, opaque: only pointers to it are handled.
#[repr(C)]
pub struct DEVICE_OBJECT {
    _opaque: [u8; 0],
}

/// `CALLBACK_OBJECT` (`struct _CALLBACK_OBJECT`), opaque: only pointers to it are handled.
#[repr(C)]
pub struct CALLBACK_OBJECT {
    _opaque: [u8; 0],
}

/// `IRP`, opaque: only pointers to it are handled.
#[repr(C)]
pub struct IRP {
    _opaque: [u8; 0],
}

/// `UNICODE_STRING`.
#[repr(C)]
pub struct UNICODE_STRING {
    pub Length: u16,
    pub MaximumLength: u16,
    pub Buffer: *const u16,
}

/// `OBJECT_ATTRIBUTES`.
#[repr(C)]
pub struct OBJECT_ATTRIBUTES {
    pub Length: u32,
    pub RootDirectory: HANDLE,
    pub ObjectName: *const UNICODE_STRING,
    pub Attributes: u32,
    pub SecurityDescriptor: *mut c_void,
    pub SecurityQualityOfService: *mut c_void,
}

/// `RTL_OSVERSIONINFOW`.
#[repr(C)]
pub struct RTL_OSVERSIONINFOW {
    pub dwOSVersionInfoSize: u32,
    pub dwMajorVersion: u32,
    pub dwMinorVersion: u32,
    pub dwBuildNumber: u32,
    pub dwPlatformId: u32,
    pub szCSDVersion: [u16; 128],
}

/// `IO_STATUS_BLOCK`.
#[repr(C)]
pub struct IO_STATUS_BLOCK {
    /// In a union with a pointer, which makes the 8 bytes before `Information`.
    pub Status: NTSTATUS,
    pub Information: usize,
}

/// `KEVENT`: a DISPATCHER_HEADER (0x18 bytes), opaque here.
#[repr(C, align(8))]
pub struct KEVENT {
    pub Header: [u8; 0x18],
}

/// `PARTITION_INFORMATION_EX`: PartitionStyle, then StartingOffset at 8 (0x90 bytes).
#[repr(C, align(8))]
pub struct PARTITION_INFORMATION_EX {
    pub PartitionStyle: u32,
    pub StartingOffset: i64,
    pub Rest: [u8; 0x80],
}

/// `KEY_VALUE_BASIC_INFORMATION`: the header of what `ZwEnumerateValueKey` writes for
/// KeyValueBasicInformation; the name (NameLength bytes, not terminated) follows at `Name`.
#[repr(C)]
pub struct KEY_VALUE_BASIC_INFORMATION {
    pub TitleIndex: u32,
    pub Type: u32,
    pub NameLength: u32,
    pub Name: [u16; 1],
}

/// `KSYSTEM_TIME`: a 64-bit time written as three 32-bit parts, High2Time first and High1Time
/// last, so that a reader that finds High1Time equal to High2Time has a consistent value.
#[repr(C)]
pub struct KSYSTEM_TIME {
    pub LowPart: u32,
    pub High1Time: i32,
    pub High2Time: i32,
}

const _: () = {
    assert!(core::mem::size_of::<KEY_VALUE_BASIC_INFORMATION>() == 0x10);
    assert!(core::mem::offset_of!(KEY_VALUE_BASIC_INFORMATION, Name) == 0xC);
    assert!(core::mem::size_of::<KSYSTEM_TIME>() == 0xC);
    assert!(core::mem::size_of::<UNICODE_STRING>() == 0x10);
    assert!(core::mem::size_of::<OBJECT_ATTRIBUTES>() == 0x30);
    assert!(core::mem::size_of::<RTL_OSVERSIONINFOW>() == 0x114);
    assert!(core::mem::size_of::<IO_STATUS_BLOCK>() == 0x10);
    assert!(core::mem::size_of::<PARTITION_INFORMATION_EX>() == 0x90);
    assert!(core::mem::offset_of!(PARTITION_INFORMATION_EX, StartingOffset) == 8);
};

/// `POOL_TYPE::NonPagedPool`.
pub const NON_PAGED_POOL: POOL_TYPE = 0;
/// `POOL_TYPE::NonPagedPoolNx` (Windows 8 and later).
pub const NON_PAGED_POOL_NX: POOL_TYPE = 512;
pub const PAGE_READWRITE: u32 = 0x04;
pub const MM_ANY_NODE_OK: NODE_REQUIREMENT = 0x8000_0000;
pub const KEY_READ: ACCESS_MASK = 0x0002_0019;
pub const KEY_QUERY_VALUE: ACCESS_MASK = 0x0001;
pub const KEY_SET_VALUE: ACCESS_MASK = 0x0002;
pub const REG_OPTION_NON_VOLATILE: u32 = 0;
pub const REG_BINARY: u32 = 3;
/// `KEY_VALUE_INFORMATION_CLASS::KeyValueBasicInformation`.
pub const KEY_VALUE_BASIC_INFORMATION_CLASS: KEY_VALUE_INFORMATION_CLASS = 0;
pub const STATUS_NO_MORE_ENTRIES: NTSTATUS = 0x8000_001A_u32 as i32;
/// `SharedSystemTime`: the address of KUSER_SHARED_DATA.SystemTime (a KSYSTEM_TIME) on x64,
/// `KI_USER_SHARED_DATA + 0x14`, which `KeQuerySystemTime` (a macro on x64) reads.
pub const SHARED_SYSTEM_TIME: usize = 0xFFFF_F780_0000_0014;
pub const OBJ_CASE_INSENSITIVE: u32 = 0x40;
pub const OBJ_KERNEL_HANDLE: u32 = 0x200;
/// `KEY_VALUE_INFORMATION_CLASS::KeyValuePartialInformation`.
pub const KEY_VALUE_PARTIAL_INFORMATION: KEY_VALUE_INFORMATION_CLASS = 2;
pub const STATUS_BUFFER_OVERFLOW: NTSTATUS = 0x8000_0005_u32 as i32;
pub const STATUS_PENDING: NTSTATUS = 0x103;
pub const IOCTL_DISK_GET_PARTITION_INFO_EX: u32 = 0x0007_0048;
/// `EVENT_TYPE::NotificationEvent`.
pub const NOTIFICATION_EVENT: EVENT_TYPE = 0;
/// `KWAIT_REASON::Executive`.
pub const EXECUTIVE: KWAIT_REASON = 0;
/// `KPROCESSOR_MODE::KernelMode`.
pub const KERNEL_MODE: KPROCESSOR_MODE = 0;

#[cfg_attr(
    feature = "cross",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
#[cfg_attr(not(feature = "cross"), link(name = "ntoskrnl"))]
unsafe extern "system" {
    pub fn RtlGetVersion(info: *mut RTL_OSVERSIONINFOW) -> NTSTATUS;
    pub fn ExAllocatePoolWithTag(pool_type: POOL_TYPE, size: SIZE_T, tag: u32) -> *mut c_void;
    pub fn ExFreePoolWithTag(p: *mut c_void, tag: u32);
    pub fn MmAllocateContiguousNodeMemory(
        size: SIZE_T,
        lowest: PHYSICAL_ADDRESS,
        highest: PHYSICAL_ADDRESS,
        boundary: PHYSICAL_ADDRESS,
        protect: u32,
        preferred_node: NODE_REQUIREMENT,
    ) -> *mut c_void;
    pub fn MmFreeContiguousMemory(base: *mut c_void);
    pub fn IoAllocateMdl(
        va: *mut c_void,
        length: u32,
        secondary_buffer: u8,
        charge_quota: u8,
        irp: *mut IRP,
    ) -> *mut MDL;
    pub fn MmBuildMdlForNonPagedPool(mdl: *mut MDL);
    pub fn IoFreeMdl(mdl: *mut MDL);
    pub fn ZwOpenKey(
        key: *mut HANDLE,
        desired_access: ACCESS_MASK,
        attributes: *mut OBJECT_ATTRIBUTES,
    ) -> NTSTATUS;
    pub fn ZwQueryValueKey(
        key: HANDLE,
        name: *mut UNICODE_STRING,
        class: KEY_VALUE_INFORMATION_CLASS,
        information: *mut c_void,
        length: u32,
        result_length: *mut u32,
    ) -> NTSTATUS;
    pub fn ZwClose(handle: HANDLE) -> NTSTATUS;
    pub fn ZwCreateKey(
        key: *mut HANDLE,
        desired_access: ACCESS_MASK,
        attributes: *mut OBJECT_ATTRIBUTES,
        title_index: u32,
        class: *mut UNICODE_STRING,
        create_options: u32,
        disposition: *mut u32,
    ) -> NTSTATUS;
    pub fn ZwEnumerateValueKey(
        key: HANDLE,
        index: u32,
        class: KEY_VALUE_INFORMATION_CLASS,
        information: *mut c_void,
        length: u32,
        result_length: *mut u32,
    ) -> NTSTATUS;
    pub fn ZwSetValueKey(
        key: HANDLE,
        name: *mut UNICODE_STRING,
        title_index: u32,
        value_type: u32,
        data: *mut c_void,
        data_size: u32,
    ) -> NTSTATUS;
    pub fn ZwDeleteValueKey(key: HANDLE, name: *mut UNICODE_STRING) -> NTSTATUS;
    pub fn ZwFlushKey(key: HANDLE) -> NTSTATUS;
    pub fn KeInitializeEvent(event: *mut KEVENT, event_type: EVENT_TYPE, state: u8);
    pub fn IoBuildDeviceIoControlRequest(
        code: u32,
        device: *mut DEVICE_OBJECT,
        input: *mut c_void,
        input_length: u32,
        output: *mut c_void,
        output_length: u32,
        internal: u8,
        event: *mut KEVENT,
        io_status: *mut IO_STATUS_BLOCK,
    ) -> *mut IRP;
    pub fn IofCallDriver(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS;
    pub fn KeWaitForSingleObject(
        object: *mut c_void,
        wait_reason: KWAIT_REASON,
        wait_mode: KPROCESSOR_MODE,
        alertable: u8,
        timeout: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    pub fn ExCreateCallback(
        callback_object: *mut *mut CALLBACK_OBJECT,
        object_attributes: *mut OBJECT_ATTRIBUTES,
        create: u8,
        allow_multiple_callbacks: u8,
    ) -> NTSTATUS;
    pub fn ExNotifyCallback(
        callback_object: *mut CALLBACK_OBJECT,
        argument1: *mut c_void,
        argument2: *mut c_void,
    );
    /// `ObDereferenceObject` is this routine (a macro in wdm.h); FASTCALL is the one x64
    /// calling convention.
    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
}

// `__chkstk`, the stack probe LLVM calls in frames larger than a page. The WDK's
// `ntoskrnl.lib` binds it to ntoskrnl's export in the shipping build; the cross build binds
// the same export by raw-dylib.
#[cfg(feature = "cross")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    #[expect(
        dead_code,
        reason = "referenced by the compiler's stack probes, not by name"
    )]
    fn __chkstk();
}
