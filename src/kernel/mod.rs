//! The kernel boundary: the only place dumpcrypt talks to the operating system.
//!
//! Three implementations stand behind the same functions: `windows.rs` over the ntoskrnl
//! routines (kernel mode, bound by wdk's import library or by raw-dylib in the cross build),
//! and `host.rs` over the simulated Windows of `crashdmp-sim` (tests, simulator, CLI).
//!
//! Each function says the IRQL it may run at. Only [`bug_check`] is allowed in the dump path
//! (Dump_Start, Dump_Write, Dump_Read, Dump_Finish run at HIGH_LEVEL); everything else is for
//! DriverEntry, and the frees for Dump_Unload. The types carry that rule: a service that
//! needs PASSIVE_LEVEL takes a [`Passive`] token, which only [`Passive::scope`] makes (an
//! `unsafe fn` whose `# Safety` is the IRQL) and which DriverEntry alone calls; the frees,
//! which run from `Drop`, are `unsafe fn`s with the IRQL in their `# Safety`. The host
//! implementation also enforces the rule at run time: a PASSIVE-only service called while the
//! simulator holds HIGH_LEVEL is a bug check there.

use core::marker::PhantomData;

mod pool;
pub use pool::{AlignedBlock, PoolBox};
mod random;
pub use random::Cpu;

#[cfg(feature = "host")]
mod host;
#[cfg(feature = "host")]
pub use host::*;

#[cfg(not(feature = "host"))]
mod ntoskrnl;
#[cfg(not(feature = "host"))]
mod windows;
#[cfg(not(feature = "host"))]
pub use windows::*;

/// Proof that the code runs at PASSIVE_LEVEL, lent for the length of one DriverEntry. It cannot be copied, sent to another thread or kept past [`Passive::scope`].
#[derive(Debug)]
pub struct Passive {
    _not_send: PhantomData<*const ()>,
}

impl Passive {
    /// Runs `body` with a token.
    ///
    /// # Safety
    /// The caller runs at PASSIVE_LEVEL (DriverEntry), and stays there until `body` returns.
    pub unsafe fn scope<R>(body: impl FnOnce(&Passive) -> R) -> R {
        body(&Passive {
            _not_send: PhantomData,
        })
    }
}

/// The running Windows version, as `RtlGetVersion` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OsVersion {
    /// dwMajorVersion.
    pub major: u32,
    /// dwMinorVersion.
    pub minor: u32,
    /// dwBuildNumber.
    pub build: u32,
}

impl OsVersion {
    /// Windows 8 (6.2): FILTER_INITIALIZATION_DATA version 2 and Dump_Read.
    pub const WINDOWS_8: OsVersion = OsVersion {
        major: 6,
        minor: 2,
        build: 0,
    };

    /// Whether the dump stack knows Dump_Read (Windows 8 and later).
    pub fn supports_dump_read(self) -> bool {
        (self.major, self.minor) >= (Self::WINDOWS_8.major, Self::WINDOWS_8.minor)
    }
}

/// The configuration key. The dump stack's copy of the driver gets no registry path, so it
/// opens this one by name.
pub const PARAMETERS_PATH: &str =
    r"\Registry\Machine\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters";

/// Where the sealed key source keeps its ring of sealed keys (docs/design.md, "Sealed keys:
/// the driver"): a subkey of [`PARAMETERS_PATH`], created by the first load that needs it.
pub const SEALED_KEYS_PATH: &str =
    r"\Registry\Machine\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters\SealedKeys";

/// The longest value name [`RegistryKey::value_name`] hands back; longer ones are
/// [`Enumerated::Other`]. The ring's names have 24 characters.
pub const VALUE_NAME_CAPACITY: usize = 32;

/// One entry of a key's values, by index (`ZwEnumerateValueKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enumerated {
    /// No value at this index or after it.
    End,
    /// A value whose name has this many UTF-16 units, written to the caller's buffer.
    Name(usize),
    /// A value whose name is longer than [`VALUE_NAME_CAPACITY`].
    Other,
}

/// Pool tag of the filter's context: 'DcCx' as it shows in pool dumps.
pub const CONTEXT_TAG: u32 = u32::from_le_bytes(*b"DcCx");
