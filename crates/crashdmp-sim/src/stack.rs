//! crashdmp.sys's side of the filter protocol: loading a filter and calling its callbacks.
//!
//! The structures handed to the filter are laid out from [`crate::layout`] in storage the
//! simulator owns, each followed by guard bytes. After every call the simulator checks that
//! the guards are intact and that the filter did not write the extension. Dump-mode
//! callbacks run with the simulated kernel at HIGH_LEVEL; DriverEntry and Dump_Unload at
//! PASSIVE_LEVEL.

use std::ffi::c_void;
use std::time::{Duration, Instant};

use crate::layout::{self, extension, get, init, put};
use crate::mdl::SimMdl;
use crate::ntoskrnl::{self, BugCheck, Stop};

/// DriverEntry as the dump stack calls it: (FILTER_EXTENSION*, FILTER_INITIALIZATION_DATA*).
pub type DriverEntry = unsafe extern "C-unwind" fn(*mut c_void, *mut c_void) -> i32;
type ContextFn = unsafe extern "C-unwind" fn(*mut u8) -> i32;
type IoFn = unsafe extern "C-unwind" fn(*mut u8, *mut i64, *mut u8) -> i32;

const GUARD_LEN: usize = 64;
const GUARD_BYTE: u8 = 0xA7;

/// Which call a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    DriverEntry,
    Start,
    Write(u64),
    Read(u64),
    Finish,
    Unload,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Write(n) => write!(f, "Dump_Write #{n}"),
            Self::Read(n) => write!(f, "Dump_Read #{n}"),
            Self::DriverEntry => f.write_str("DriverEntry"),
            Self::Start => f.write_str("Dump_Start"),
            Self::Finish => f.write_str("Dump_Finish"),
            Self::Unload => f.write_str("Dump_Unload"),
        }
    }
}

/// Why a simulation stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{call}: {bug_check}")]
    BugCheck { call: Call, bug_check: BugCheck },
    #[error("{call}: the filter panicked: {message}")]
    Panic { call: Call, message: String },
    #[error("{call}: {rule}")]
    Rule { call: Call, rule: String },
    #[error("disk image: {0}")]
    Io(#[from] std::io::Error),
}

impl SimError {
    pub fn bug_check(&self) -> Option<BugCheck> {
        match self {
            Self::BugCheck { bug_check, .. } => Some(*bug_check),
            _ => None,
        }
    }

    pub(crate) fn rule(call: Call, rule: impl Into<String>) -> Self {
        Self::Rule {
            call,
            rule: rule.into(),
        }
    }
}

fn stopped(call: Call, stop: Stop) -> SimError {
    match stop {
        Stop::BugCheck(bug_check) => SimError::BugCheck { call, bug_check },
        Stop::Panic(message) => SimError::Panic { call, message },
    }
}

/// A laid-out structure with guard bytes after it, in 8-byte-aligned storage.
#[derive(Debug)]
struct Guarded {
    storage: Vec<u64>,
    size: usize,
}

impl Guarded {
    fn new(size: usize) -> Self {
        let mut this = Self {
            storage: vec![0u64; (size + GUARD_LEN).div_ceil(8)],
            size,
        };
        this.bytes_mut()[size..].fill(GUARD_BYTE);
        this
    }

    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.storage)
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.storage)
    }

    fn as_ptr(&mut self) -> *mut u8 {
        self.storage.as_mut_ptr().cast()
    }

    fn guard_intact(&self) -> bool {
        self.bytes()[self.size..].iter().all(|&b| b == GUARD_BYTE)
    }
}

/// What the disk looks like to the filter: FILTER_EXTENSION's device and geometry fields.
#[derive(Debug, Clone, Copy)]
pub struct DiskInfo {
    pub bytes_per_sector: u32,
    pub disk_size: u64,
}

/// What DriverEntry left in FILTER_INITIALIZATION_DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitView {
    pub major_version: u32,
    pub minor_version: u32,
    pub flags: u32,
    pub max_pages_per_write: u32,
    pub has_start: bool,
    pub has_write: bool,
    pub has_finish: bool,
    pub has_unload: bool,
    pub has_read: bool,
    pub dump_data: u64,
}

/// The outcome of DriverEntry.
#[derive(Debug)]
pub enum Load {
    Loaded(LoadedFilter),
    /// DriverEntry returned an error status: the stack loads no filter (and, the filter
    /// being critical, writes no dump).
    Failed {
        status: i32,
        init: InitView,
    },
}

/// A filter instance the stack loaded, with everything it was handed.
#[derive(Debug)]
pub struct LoadedFilter {
    extension: Guarded,
    init: Guarded,
    /// The fake DEVICE_OBJECT the extension points at.
    _device: Vec<u64>,
    pub dump_type: u32,
    pub view: InitView,
    start: ContextFn,
    write: IoFn,
    finish: ContextFn,
    unload: ContextFn,
    read: Option<IoFn>,
    /// Allocations DriverEntry made and did not free: what Dump_Unload must free.
    allocated_at_load: usize,
    /// Time spent inside dump-mode callbacks.
    pub filter_time: Duration,
}

fn read_view(bytes: &[u8], os_has_read: bool) -> InitView {
    let pointer = |offset| get::<u64>(bytes, offset) != 0;
    InitView {
        major_version: get(bytes, init::MAJOR_VERSION),
        minor_version: get(bytes, init::MINOR_VERSION),
        flags: get(bytes, init::FLAGS),
        max_pages_per_write: get(bytes, init::MAX_PAGES_PER_WRITE),
        has_start: pointer(init::DUMP_START),
        has_write: pointer(init::DUMP_WRITE),
        has_finish: pointer(init::DUMP_FINISH),
        has_unload: pointer(init::DUMP_UNLOAD),
        has_read: os_has_read && pointer(init::DUMP_READ),
        dump_data: get(bytes, init::DUMP_DATA),
    }
}

/// A FILTER_INITIALIZATION_DATA.Flags bit no header defines: one the system may set before
/// DriverEntry, for [`ntoskrnl::Environment::system_filter_flags`].
pub const UNKNOWN_SYSTEM_FLAG: u32 = 0x8000_0000;

/// Whether the simulated OS is Windows 8 or later (version-2 structures, Dump_Read).
pub fn os_has_read() -> bool {
    let (major, minor, _) = ntoskrnl::environment().os_version;
    (major, minor) >= (6, 2)
}

/// Loads a filter into a stack of `dump_type`, as crashdmp.sys does: lays out the
/// structures for the running OS version, pre-fills MaxPagesPerWrite and the environment's
/// system Flags bits, calls DriverEntry at PASSIVE_LEVEL, and checks what the filter filled
/// in.
pub fn load(
    entry: DriverEntry,
    dump_type: u32,
    max_pages_per_write: u32,
    disk: DiskInfo,
) -> Result<Load, SimError> {
    let call = Call::DriverEntry;
    let has_read = os_has_read();
    let (ext_size, init_size) = if has_read {
        (extension::SIZE, init::SIZE)
    } else {
        (extension::SIZE_V1, init::SIZE_V1)
    };
    let mut device = vec![0u64; 0x150 / 8];
    bytemuck::cast_slice_mut::<u64, u8>(&mut device)[0] = 3; // IO_TYPE_DEVICE
    let mut ext = Guarded::new(ext_size);
    {
        let device_ptr = device.as_mut_ptr() as u64;
        let bytes = ext.bytes_mut();
        put(bytes, extension::DUMP_TYPE, dump_type);
        put(bytes, extension::DEVICE_OBJECT, device_ptr);
        put(
            bytes,
            extension::GEOMETRY_BYTES_PER_SECTOR,
            disk.bytes_per_sector,
        );
        put(bytes, extension::DISK_SIZE, disk.disk_size);
        let (style, union) = ntoskrnl::environment().partition_info;
        put(bytes, extension::PARTITION_INFO, 0x18u32);
        put(bytes, extension::PARTITION_STYLE, style);
        bytes[extension::PARTITION_UNION..extension::PARTITION_UNION + 16].copy_from_slice(&union);
        if has_read {
            put(bytes, extension::SIZE_FIELD, extension::SIZE as u32);
            put(bytes, extension::FLAGS, 0u32);
        }
    }
    let mut init_data = Guarded::new(init_size);
    put(
        init_data.bytes_mut(),
        init::MAX_PAGES_PER_WRITE,
        max_pages_per_write,
    );
    let system_flags = ntoskrnl::environment().system_filter_flags;
    put(init_data.bytes_mut(), init::FLAGS, system_flags);
    let ext_before = ext.bytes().to_vec();
    let outstanding_before = ntoskrnl::counters().outstanding;

    let (ext_ptr, init_ptr) = (ext.as_ptr(), init_data.as_ptr());
    // SAFETY: both structures are laid out for the simulated OS version in storage that
    // outlives the filter instance; the filter is trusted only as far as its C signature.
    let status = ntoskrnl::run(|| unsafe { entry(ext_ptr.cast(), init_ptr.cast()) })
        .map_err(|stop| stopped(call, stop))?;

    if !ext.guard_intact() || !init_data.guard_intact() {
        return Err(SimError::rule(
            call,
            "wrote past the structures of this OS version (guard bytes changed)",
        ));
    }
    if ext.bytes() != ext_before.as_slice() {
        return Err(SimError::rule(call, "wrote into FILTER_EXTENSION"));
    }
    let view = read_view(init_data.bytes(), has_read);
    if view.max_pages_per_write != max_pages_per_write {
        return Err(SimError::rule(call, "changed MaxPagesPerWrite"));
    }
    if view.flags & init::DUMP_FILTER_CRITICAL == 0 {
        return Err(SimError::rule(call, "did not set DUMP_FILTER_CRITICAL"));
    }
    if view.flags & system_flags != system_flags {
        return Err(SimError::rule(
            call,
            format!(
                "cleared Flags bits the system had set ({system_flags:#x} before, {:#x} after)",
                view.flags
            ),
        ));
    }
    if status != 0 {
        return Ok(Load::Failed { status, init: view });
    }
    let expected_major = if has_read {
        init::DUMP_FILTER_MAJOR_VERSION
    } else {
        init::DUMP_FILTER_MAJOR_VERSION_1
    };
    if view.major_version != expected_major || view.minor_version != 0 {
        return Err(SimError::rule(
            call,
            format!(
                "version {}.{} (expected {expected_major}.0 on this OS)",
                view.major_version, view.minor_version
            ),
        ));
    }
    if !(view.has_start && view.has_write && view.has_finish && view.has_unload) {
        return Err(SimError::rule(
            call,
            "succeeded without setting every callback",
        ));
    }
    let bytes = init_data.bytes();
    // The five transmutes below: each value is a non-null function pointer the filter put
    // in the slot the header declares for that callback, with the C signature below.
    let function = |offset| get::<u64>(bytes, offset) as usize as *const ();
    // SAFETY: see above; DumpStart's slot holds a `PDUMP_START`.
    let start = unsafe { std::mem::transmute::<*const (), ContextFn>(function(init::DUMP_START)) };
    // SAFETY: see above.
    let write = unsafe { std::mem::transmute::<*const (), IoFn>(function(init::DUMP_WRITE)) };
    // SAFETY: see above.
    let finish =
        unsafe { std::mem::transmute::<*const (), ContextFn>(function(init::DUMP_FINISH)) };
    // SAFETY: see above.
    let unload =
        unsafe { std::mem::transmute::<*const (), ContextFn>(function(init::DUMP_UNLOAD)) };
    let read = view.has_read.then(|| {
        // SAFETY: see above; only read where the OS version has the slot and it is set.
        unsafe { std::mem::transmute::<*const (), IoFn>(function(init::DUMP_READ)) }
    });
    if has_read && (view.flags & init::DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ == 0 || read.is_none())
    {
        return Err(SimError::rule(
            call,
            "on Windows 8 or later, read support needs the read flag and DumpRead",
        ));
    }
    // The system hands the filter's context back in every callback.
    put(ext.bytes_mut(), extension::DUMP_DATA, view.dump_data);
    Ok(Load::Loaded(LoadedFilter {
        extension: ext,
        init: init_data,
        _device: device,
        dump_type,
        view,
        start,
        write,
        finish,
        unload,
        read,
        allocated_at_load: ntoskrnl::counters().outstanding - outstanding_before,
        filter_time: Duration::ZERO,
    }))
}

impl LoadedFilter {
    pub fn supports_read(&self) -> bool {
        self.read.is_some()
    }

    /// The extension's bytes, for tests that hand the filter an altered copy.
    pub fn set_extension_field_u64(&mut self, offset: usize, value: u64) {
        put(self.extension.bytes_mut(), offset, value);
    }

    fn checked<R>(
        &mut self,
        call: Call,
        high_level: bool,
        f: impl FnOnce(*mut u8) -> R,
    ) -> Result<R, SimError> {
        let before = self.extension.bytes().to_vec();
        let ext_ptr = self.extension.as_ptr();
        let started = Instant::now();
        let result = {
            let _irql = high_level.then(ntoskrnl::raise_to_high_level);
            ntoskrnl::run(|| f(ext_ptr))
        };
        if high_level {
            self.filter_time += started.elapsed();
        }
        let value = result.map_err(|stop| stopped(call, stop))?;
        if !self.extension.guard_intact() || !self.init.guard_intact() {
            return Err(SimError::rule(
                call,
                "guard bytes after the structures changed",
            ));
        }
        if self.extension.bytes() != before.as_slice() {
            return Err(SimError::rule(call, "wrote into FILTER_EXTENSION"));
        }
        if let Some(violation) = ntoskrnl::counters().violations.first() {
            return Err(SimError::rule(call, violation.clone()));
        }
        Ok(value)
    }

    /// The callbacks called bare, as crashdmp.sys calls them: none of the checks around the
    /// call (which allocate), no IRQL raised (the caller holds
    /// [`ntoskrnl::raise_to_high_level`] for the dump-mode ones), and a bug check unwinds to
    /// the caller. For benchmarks and the allocation test, which measure the callback alone.
    pub fn start_unchecked(&mut self) -> i32 {
        let (start, ext) = (self.start, self.extension.as_ptr());
        // SAFETY: the filter's callback with the extension it was loaded with.
        unsafe { start(ext) }
    }

    /// Dump_Write, bare (see [`LoadedFilter::start_unchecked`]).
    pub fn write_unchecked(&mut self, offset: &mut i64, mdl: &mut SimMdl) -> i32 {
        let (write, ext) = (self.write, self.extension.as_ptr());
        // SAFETY: as in `start_unchecked`, with a live offset and a live MDL.
        unsafe { write(ext, offset, mdl.as_ptr()) }
    }

    /// Dump_Read, bare (see [`LoadedFilter::start_unchecked`]); `None` without Dump_Read.
    pub fn read_unchecked(&mut self, offset: &mut i64, mdl: &mut SimMdl) -> Option<i32> {
        let (read, ext) = (self.read?, self.extension.as_ptr());
        // SAFETY: as in `write_unchecked`.
        Some(unsafe { read(ext, offset, mdl.as_ptr()) })
    }

    /// Dump_Finish, bare (see [`LoadedFilter::start_unchecked`]).
    pub fn finish_unchecked(&mut self) -> i32 {
        let (finish, ext) = (self.finish, self.extension.as_ptr());
        // SAFETY: as in `start_unchecked`.
        unsafe { finish(ext) }
    }

    /// Dump_Start at HIGH_LEVEL.
    pub fn start(&mut self) -> Result<i32, SimError> {
        let start = self.start;
        // SAFETY: the filter's callback with the extension it was loaded with.
        self.checked(Call::Start, true, |ext| unsafe { start(ext) })
    }

    /// Dump_Write at HIGH_LEVEL: only the call and the structure checks. The dump port's
    /// checks of the MDL and the data are in [`crate::machine`].
    pub fn write(
        &mut self,
        number: u64,
        offset: &mut i64,
        mdl: &mut SimMdl,
    ) -> Result<i32, SimError> {
        let write = self.write;
        let (offset_ptr, mdl_ptr) = (offset as *mut i64, mdl.as_ptr());
        // SAFETY: the filter's callback with its extension, a live offset and a live MDL.
        self.checked(Call::Write(number), true, |ext| unsafe {
            write(ext, offset_ptr, mdl_ptr)
        })
    }

    /// Dump_Write with raw pointers (for tests of null arguments).
    ///
    /// # Safety
    /// Each pointer is null or valid as in [`LoadedFilter::write`].
    pub unsafe fn write_raw(&mut self, offset: *mut i64, mdl: *mut u8) -> Result<i32, SimError> {
        let write = self.write;
        // SAFETY: the caller's contract; null pointers are what the test asks for.
        self.checked(Call::Write(0), true, |ext| unsafe {
            write(ext, offset, mdl)
        })
    }

    /// Dump_Read with raw pointers (for tests and fuzzers of null arguments); `None` if the
    /// filter did not register one.
    ///
    /// # Safety
    /// Each pointer is null or valid as in [`LoadedFilter::read`].
    pub unsafe fn read_raw(
        &mut self,
        offset: *mut i64,
        mdl: *mut u8,
    ) -> Option<Result<i32, SimError>> {
        let read = self.read?;
        // SAFETY: the caller's contract; null pointers are what the caller asks for.
        Some(self.checked(Call::Read(0), true, |ext| unsafe { read(ext, offset, mdl) }))
    }

    /// Dump_Read at HIGH_LEVEL; `None` if the filter did not register one.
    pub fn read(
        &mut self,
        number: u64,
        offset: &mut i64,
        mdl: &mut SimMdl,
    ) -> Option<Result<i32, SimError>> {
        let read = self.read?;
        let (offset_ptr, mdl_ptr) = (offset as *mut i64, mdl.as_ptr());
        // SAFETY: as in `write`.
        Some(self.checked(Call::Read(number), true, |ext| unsafe {
            read(ext, offset_ptr, mdl_ptr)
        }))
    }

    /// Dump_Finish at HIGH_LEVEL.
    pub fn finish(&mut self) -> Result<i32, SimError> {
        let finish = self.finish;
        // SAFETY: as in `start`.
        self.checked(Call::Finish, true, |ext| unsafe { finish(ext) })
    }

    /// Dump_Unload at PASSIVE_LEVEL; then everything DriverEntry allocated must be freed.
    pub fn unload(&mut self) -> Result<i32, SimError> {
        let unload = self.unload;
        let outstanding = ntoskrnl::counters().outstanding;
        // SAFETY: as in `start`.
        let status = self.checked(Call::Unload, false, |ext| unsafe { unload(ext) })?;
        let freed = outstanding as i64 - ntoskrnl::counters().outstanding as i64;
        if freed != self.allocated_at_load as i64 {
            return Err(SimError::rule(
                Call::Unload,
                format!(
                    "freed {freed} allocations; DriverEntry had made {}",
                    self.allocated_at_load
                ),
            ));
        }
        Ok(status)
    }
}

pub use layout::DUMP_TYPE_CRASHDUMP as CRASHDUMP;
pub use layout::DUMP_TYPE_HIBERNATION as HIBERNATION;
