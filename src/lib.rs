//! dumpcrypt: a crash dump and hibernation filter driver that encrypts what Windows writes.
//!
//! Windows passes every block its crash dump and hibernation stacks write through
//! [`DriverEntry`]'s Dump_Write callback. dumpcrypt copies the block into its own
//! page-aligned secondary buffer, encrypts the part inside the configured area with
//! XTS-AES-256, and points the write's MDL at that buffer; on resume from hibernation it
//! decrypts what is read back. docs/design.md describes the design; the README, the use.
//!
//! This crate is the kernel boundary: the ABI mirrors ([`abi`]), the MDLs ([`mdl`]), the
//! requests adopted from raw pointers (`request`), the services of the kernel ([`kernel`]),
//! and the trampolines of DriverEntry and the five callbacks (`filter`). It is the only
//! crate that adopts raw pointers from the dump stack; what a callback decides is decided in
//! `dumpcrypt-core`, which cannot contain `unsafe`, and the transform is `dumpcrypt-xts`.
//!
//! Exactly one build is chosen by feature: `host` (std; the kernel served by the simulated
//! one of `crashdmp-sim`, for the tests, the simulator and the CLI), `wdk` (kernel mode on
//! Windows with the WDK), or `cross` (kernel mode cross-built on Linux).
#![cfg_attr(not(feature = "host"), no_std)]

#[cfg(not(any(feature = "host", feature = "wdk", feature = "cross")))]
compile_error!(
    "choose one build: --features host (tests, simulator, CLI), cross (kernel mode built on \
     Linux: scripts/build-sys.sh) or wdk (kernel mode with the WDK: cargo make)"
);
#[cfg(any(
    all(feature = "host", feature = "wdk"),
    all(feature = "host", feature = "cross"),
    all(feature = "wdk", feature = "cross")
))]
compile_error!("the features host, wdk and cross are mutually exclusive: choose one");

pub mod abi;
mod encryption;
mod filter;
pub mod kernel;
pub mod mdl;
mod request;
mod sealed;

#[cfg(feature = "wdk")]
use wdk_panic as _;

/// The kernel-mode builds allocate nothing through Rust's allocator; wdk-alloc stands behind
/// it so that a stray allocation goes to the pool rather than failing to link.
#[cfg(all(feature = "wdk", not(feature = "host")))]
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

/// DriverEntry of the dump filter: called with a `FILTER_EXTENSION*` and a
/// `FILTER_INITIALIZATION_DATA*` by the crash dump or hibernation stack (or with a
/// `DRIVER_OBJECT*` and a registry path if started as a service, which it refuses).
///
/// # Safety
/// Called by the system (or the simulator) with pointers as described in
/// [`abi::DumpDriverEntryFn`]'s documentation: a `FILTER_EXTENSION*` and a
/// `FILTER_INITIALIZATION_DATA*` with at least the layout of the running OS version, or a
/// `DRIVER_OBJECT*` and a `UNICODE_STRING*` for a service start; either may be null.
#[no_mangle]
pub unsafe extern "C-unwind" fn DriverEntry(
    driver_object: *mut core::ffi::c_void,
    registry_path: *mut core::ffi::c_void,
) -> abi::NTSTATUS {
    // SAFETY: the system's DriverEntry contract, passed on.
    unsafe { filter::driver_entry(driver_object, registry_path) }
}

/// A panic in kernel mode is a bug check with the panic's source location.
#[cfg(all(not(feature = "host"), not(feature = "wdk"), not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (line, column) = info
        .location()
        .map_or((0, 0), |location| (location.line(), location.column()));
    use dumpcrypt_core::fault::{Callback, Fault, BUGCHECK_CODE};
    kernel::bug_check(
        BUGCHECK_CODE,
        Fault::Panic { line, column }.parameters(Callback::None),
    )
}

// `_fltused`: the MSVC toolchain's marker that floating point is used, which `core` and
// `compiler_builtins` reference and the CRT would define. The cross build links no CRT, so
// it is defined here, in assembly: a Rust `static` would be exported from the image.
#[cfg(feature = "cross")]
core::arch::global_asm!(
    ".globl _fltused",
    ".section .rdata,\"dr\"",
    ".balign 4",
    "_fltused:",
    ".long 0",
    ".text",
);
