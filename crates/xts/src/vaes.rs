//! The VAES backends: XTS-AES-256 on YMM registers (VAES + VPCLMULQDQ + AVX2, VEX
//! encodings, ymm0–15) and on ZMM registers (VAES + VPCLMULQDQ + AVX-512 F/BW/VL, EVEX
//! encodings, zmm0–31), each saving and restoring the extended state it touches itself.
//!
//! # The extended state
//! The dump path runs at HIGH_LEVEL with the interrupted context's vector state still in the
//! registers, and the OS saves none of it for the filter (hibernation resumes that context).
//! So each call runs as one `asm!` block that:
//! 1. saves exactly the components the kernel touches, `XSAVEC` (or `XSAVE` where XSAVEC is
//!    absent) into a 64-byte aligned area: SSE | AVX for the YMM kernel, plus ZMM_Hi256
//!    where the OS enabled it (a VEX-encoded YMM write zeroes bits 511:256 of the ZMM
//!    register); SSE | AVX | opmask | ZMM_Hi256 | Hi16_ZMM for the ZMM kernel (no opmask
//!    register is written today; it is saved so that masked code can be added without
//!    revisiting the mask). Never AMX, never the x87 state;
//! 2. runs the kernel;
//! 3. `vzeroupper`, then `XRSTOR` with the same mask.
//!
//! Because the save, the kernel and the restore are one block, every register the compiler
//! can see, and every one it cannot, is what it was before the block, and no key material is
//! left in a vector register afterwards. The area comes from the caller: the driver allocates
//! it at DriverEntry in nonpaged pool and attaches it to the cipher
//! ([`XtsAes256::attach_state_area`]); other callers pass a [`StateArea`] per call. The
//! mask, the area's size (from CPUID leaf 0xD for that mask) and the choice of XSAVEC are
//! fixed when the key is expanded. `KeSaveExtendedProcessorState` is never used (it may
//! allocate, and it is not allowed at HIGH_LEVEL).
//!
//! # The kernels
//! - **ZMM**: four blocks per register; the 13 middle round keys are broadcast once per call
//!   into zmm17–29, round keys 0 and 14 are broadcast into the scratch and used as memory
//!   operands. A group is 512 bytes: 8 registers of data (zmm0–7) in flight with their
//!   tweaks in zmm8–15. A data unit's tweaks are computed from its first tweak without a
//!   serial chain: lane j of register i holds T·α^(4i+j), each by variable shifts
//!   (`vpsllvq`/`vpsrlvq`), the carry from the low to the high half (`vpslldq`) and the
//!   reduction of the bits leaving the top (`vpclmulqdq` by 0x87), so all 32 come at once;
//!   the next group of a 4096-byte unit is T·α^32, a 4-byte shift and one `vpclmulqdq`.
//! - **YMM**: two blocks per register, 16 registers, so the tweaks live in the scratch: a
//!   group is 8 registers (256 bytes); the next group's tweaks (T·α^16, or the next unit's
//!   from its first tweak as above) are computed before the group runs, into the other half
//!   of a double buffer.
//! - Both fold round key 0 into the first XOR (`vpternlogq` or two `vpxor`) and use
//!   `vaesenclast(state, rk14 ⊕ tweak)` = `vaesenclast(state, rk14) ⊕ tweak`, and encrypt the
//!   units' first tweaks four (ZMM) or eight (YMM) units at a time, one batch ahead of use.
//!
//! On Windows targets both kernels are in the image section `.vaes`: the image check
//! (`tests/emulation/check_image.py`) proves that every VEX or EVEX instruction of the driver
//! lies there, and the emulator that nothing there ran.
//!
//! # Where the unsafe is, and why it holds
//! - The kernels' `asm!`: the processor has the features (an [`Vaes`] value exists only
//!   after CPUID and XGETBV reported them, with the OS-enabled state components); the data
//!   pointers cover the whole units (checked in [`transform`]); the state area is 64-byte
//!   aligned and at least as long as CPUID leaf 0xD says the mask needs ([`Area`]'s
//!   invariant); the block restores every vector register it changes.
//! - [`XtsAes256::attach_state_area`]: the caller's promise that the memory is the cipher's
//!   alone for its life; [`Attached`] hands it to one call at a time (an atomic flag), which
//!   is what makes sharing `&XtsAes256` between threads sound.
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

use core::arch::asm;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use zeroize::Zeroize;

use super::aesni::AesNiKeys;
use super::cpu::{self, component, Features};
use super::{DataUnit, Direction, Job, XtsAes256, XtsError};

// ---------------------------------------------------------------------------------------------
// The state save and restore, shared by the kernels: `{scr}` is the scratch, `{area}` any
// free register; rax and rdx hold the mask.

macro_rules! save {
    () => {
        concat!(
            "mov {area}, qword ptr [{scr} + {state_ptr}]\n",
            // The XSAVE header: zero where the instructions do not write it.
            "mov qword ptr [{area} + 512], 0\n",
            "mov qword ptr [{area} + 520], 0\n",
            "mov qword ptr [{area} + 528], 0\n",
            "mov qword ptr [{area} + 536], 0\n",
            "mov qword ptr [{area} + 544], 0\n",
            "mov qword ptr [{area} + 552], 0\n",
            "mov qword ptr [{area} + 560], 0\n",
            "mov qword ptr [{area} + 568], 0\n",
            "mov eax, dword ptr [{scr} + {state_mask}]\n",
            "mov edx, dword ptr [{scr} + {state_mask} + 4]\n",
            "cmp qword ptr [{scr} + {compacted}], 0\n",
            "je 81f\n",
            "xsavec64 [{area}]\n",
            "jmp 82f\n",
            "81:\n",
            "xsave64 [{area}]\n",
            "82:\n",
        )
    };
}

/// `$wipe` runs after the area's address and the mask are in registers: it may overwrite the
/// scratch and any vector register.
macro_rules! restore {
    ($wipe:expr) => {
        concat!(
            "mov {area}, qword ptr [{scr} + {state_ptr}]\n",
            "mov eax, dword ptr [{scr} + {state_mask}]\n",
            "mov edx, dword ptr [{scr} + {state_mask} + 4]\n",
            $wipe,
            "vzeroupper\n",
            "xrstor64 [{area}]\n",
        )
    };
}

/// Zeroes the ZMM kernel's scratch (round keys and tweaks), 13 × 64 bytes.
macro_rules! z_wipe {
    () => {
        concat!(
            "vpxord zmm0, zmm0, zmm0\n",
            "vmovdqa64 zmmword ptr [{scr}], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 64], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 128], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 192], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 256], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 320], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 384], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 448], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 512], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 576], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 640], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 704], zmm0\n",
            "vmovdqa64 zmmword ptr [{scr} + 768], zmm0\n",
        )
    };
}

/// Zeroes the YMM kernel's scratch, 26 × 32 bytes.
macro_rules! y_wipe {
    () => {
        concat!(
            "vpxor ymm0, ymm0, ymm0\n",
            "vmovdqa ymmword ptr [{scr}], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 32], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 64], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 96], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 128], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 160], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 192], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 224], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 256], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 288], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 320], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 352], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 384], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 416], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 448], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 480], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 512], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 544], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 576], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 608], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 640], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 672], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 704], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 736], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 768], ymm0\n",
            "vmovdqa ymmword ptr [{scr} + 800], ymm0\n",
        )
    };
}

/// The register width of a VAES backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Width {
    /// 256 bits: VAES + VPCLMULQDQ + AVX2, VEX encodings, ymm0–15.
    Ymm,
    /// 512 bits: VAES + VPCLMULQDQ + AVX-512 F/BW/VL, EVEX encodings, zmm0–31.
    Zmm,
}

/// A VAES backend this processor can run, and how it saves the state.
///
/// # Invariants
/// The processor has AES-NI, VAES and VPCLMULQDQ, and AVX2 (YMM) or AVX-512 F/BW/VL (ZMM)
/// with the OS-enabled components that need (XCR0); `mask` is the components the kernel
/// touches, all enabled in XCR0; `len` is what CPUID leaf 0xD says an area needs for `mask`
/// in the form `compacted` says (XSAVEC when true, XSAVE otherwise; the instruction exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vaes {
    width: Width,
    mask: u64,
    len: usize,
    compacted: bool,
}

impl Vaes {
    /// The backend of `width`, where this processor and the OS allow it.
    pub(crate) fn new(width: Width, features: &Features) -> Option<Self> {
        use component::*;
        let usable = features.aes
            && features.vaes
            && match width {
                Width::Ymm => features.avx2,
                Width::Zmm => features.avx512,
            };
        if cfg!(aes_force_soft) || !usable {
            return None;
        }
        let mask = match width {
            // VEX-encoded writes to a YMM register zero bits 511:256 of its ZMM register.
            Width::Ymm => SSE | AVX | (features.xcr0 & ZMM_HI256),
            Width::Zmm => SSE | AVX | OPMASK | ZMM_HI256 | HI16_ZMM,
        };
        let compacted = features.xsavec;
        // INVARIANT: the features were checked above (`avx2`/`avx512` include the XCR0
        // components, and XSAVE exists where XCR0 could be read), the mask is within XCR0,
        // and the length is CPUID's for it.
        Some(Self {
            width,
            mask,
            len: cpu::state_len(mask, compacted),
            compacted,
        })
    }

    /// The same backend saving with XSAVE in the standard form instead (tests: both forms).
    #[cfg(test)]
    pub(crate) fn standard_form(self) -> Self {
        // INVARIANT: every processor with XSAVEC has XSAVE; the length is CPUID's.
        Self {
            compacted: false,
            len: cpu::state_len(self.mask, false),
            ..self
        }
    }

    pub(crate) fn width(self) -> Width {
        self.width
    }

    /// Bytes of the save area.
    pub(crate) fn state_len(self) -> usize {
        self.len
    }

    /// The components saved.
    #[cfg(test)]
    pub(crate) fn mask(self) -> u64 {
        self.mask
    }
}

/// Alignment the XSAVE instructions need.
pub const STATE_AREA_ALIGN: usize = 64;

/// Room for the ZMM backend's components in the standard form (the largest area these
/// backends need: 2688 bytes on every processor with them).
const STATE_AREA_LEN: usize = 2688;

/// A save area for the extended state, for callers that pass one per call
/// ([`XtsAes256::encrypt_units_with`] and its siblings) instead of attaching one. 2688
/// bytes, 64-byte aligned.
#[repr(C, align(64))]
pub struct StateArea {
    bytes: [u8; STATE_AREA_LEN],
}

impl StateArea {
    /// A zeroed area.
    pub const fn new() -> Self {
        Self {
            bytes: [0; STATE_AREA_LEN],
        }
    }
}

impl Default for StateArea {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for StateArea {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StateArea { .. }")
    }
}

impl Drop for StateArea {
    fn drop(&mut self) {
        // What was saved there is someone else's register state.
        self.bytes.zeroize();
    }
}

/// A save area lent to one call.
///
/// # Invariants
/// `ptr` is 64-byte aligned and valid for reads and writes of `len` bytes, used by nothing
/// else for `'a`.
struct Area<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _lent: PhantomData<&'a mut [u8]>,
}

impl<'a> Area<'a> {
    fn of(area: &'a mut StateArea) -> Self {
        // INVARIANT: a `StateArea` is 64-byte aligned (`repr(align(64))`), `len` bytes, and
        // borrowed exclusively for `'a`.
        Self {
            ptr: NonNull::from(&mut area.bytes).cast(),
            len: STATE_AREA_LEN,
            _lent: PhantomData,
        }
    }
}

/// The save area attached to a cipher (the driver's, allocated at DriverEntry), lent to one
/// call at a time.
///
/// # Invariants
/// When `ptr` is set it is 64-byte aligned and valid for reads and writes of `len` ≥ 576
/// bytes for the life of the value, and nothing else uses that memory; only the holder of
/// `busy` (set by [`Attached::lend`]) touches it.
#[derive(Debug, Default)]
pub(crate) struct Attached {
    ptr: Option<NonNull<u8>>,
    len: usize,
    busy: AtomicBool,
}

// SAFETY: the memory behind `ptr` is only touched by the holder of `busy`, which an atomic
// swap gives to one thread at a time (see the invariant), so sharing or sending the value
// between threads cannot make two users of the area.
unsafe impl Send for Attached {}
// SAFETY: as above.
unsafe impl Sync for Attached {}

/// The attached area, held by one call; given back when dropped.
struct Lent<'a> {
    area: Area<'a>,
    busy: &'a AtomicBool,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
    }
}

impl Attached {
    /// The area, unless none is attached, it is shorter than `needed`, or another call holds
    /// it.
    fn lend(&self, needed: usize) -> Option<Lent<'_>> {
        let ptr = self.ptr?;
        if self.len < needed || self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // INVARIANT: by the invariant of `Attached` the memory is valid, aligned and ours
        // alone while `busy` is held, which it is until the `Lent` is dropped.
        Some(Lent {
            area: Area {
                ptr,
                len: self.len,
                _lent: PhantomData,
            },
            busy: &self.busy,
        })
    }
}

impl XtsAes256 {
    /// Gives the cipher the save area its VAES backend uses on every call made without one
    /// (the plain `encrypt_units` and the others): the driver's, allocated in nonpaged pool at
    /// DriverEntry, so that the dump path allocates nothing. The area is zeroed here.
    ///
    /// Fails, attaching nothing, when `area` is not 64-byte aligned or is shorter than
    /// [`XtsAes256::state_len`]. With no area attached, a VAES cipher's plain calls run on the
    /// XMM backend, which needs none.
    ///
    /// # Safety
    /// `area` is valid for reads and writes of `len` bytes for as long as the cipher lives,
    /// and nothing else reads or writes that memory meanwhile.
    pub unsafe fn attach_state_area(
        &mut self,
        area: NonNull<u8>,
        len: usize,
    ) -> Result<(), XtsError> {
        let needed = self.state_len().max(576);
        if !(area.as_ptr() as usize).is_multiple_of(STATE_AREA_ALIGN) || len < needed {
            return Err(XtsError::StateArea { len, needed });
        }
        // SAFETY: the caller's contract: `len` bytes at `area` are ours.
        unsafe { core::ptr::write_bytes(area.as_ptr(), 0, len) };
        // INVARIANT: aligned and long enough (checked above), and the caller's contract for
        // the rest; `&mut self` means no call holds the previous area.
        self.attached = Attached {
            ptr: Some(area),
            len,
            busy: AtomicBool::new(false),
        };
        Ok(())
    }

    /// Whether a save area is attached.
    pub fn has_state_area(&self) -> bool {
        self.attached.ptr.is_some()
    }
}

/// Runs the VAES kernel with the attached area, or returns `false` (nothing done) when there
/// is none to lend.
pub(crate) fn transform_attached(
    keys: &AesNiKeys,
    vaes: Vaes,
    attached: &Attached,
    job: &mut Job<'_>,
) -> bool {
    let Some(mut lent) = attached.lend(vaes.len) else {
        return false;
    };
    transform(keys, vaes, &mut lent.area, job)
}

/// Runs the VAES kernel with `area`, or returns `false` (nothing done) when it is too short
/// for this processor's state (never on the processors that exist: see `STATE_AREA_LEN`).
pub(crate) fn transform_with(
    keys: &AesNiKeys,
    vaes: Vaes,
    area: &mut StateArea,
    job: &mut Job<'_>,
) -> bool {
    transform(keys, vaes, &mut Area::of(area), job)
}

/// XTS of the job's whole data units with the state saved in `area`. The caller checked the
/// lengths (equal, whole units). Returns `false` without doing anything when `area` is too
/// short.
fn transform(keys: &AesNiKeys, vaes: Vaes, area: &mut Area<'_>, job: &mut Job<'_>) -> bool {
    if area.len < vaes.len.max(576) {
        return false;
    }
    let unit = job.unit;
    let units = job.destination.len() / unit.bytes();
    if units == 0
        || job
            .source
            .is_some_and(|source| source.len() < units * unit.bytes())
    {
        return true;
    }
    let to = job.destination.as_mut_ptr();
    let from = job.source.map_or(to.cast_const(), <[u8]>::as_ptr);
    let first_unit = job.first_unit;
    let schedule = match job.direction {
        Direction::Encrypt => &keys.encrypt,
        Direction::Decrypt => &keys.decrypt,
    };
    let mut scratch = MaybeUninit::uninit();
    Scratch::init(&mut scratch, unit, vaes, area.ptr);
    let kernel: Kernel = match (vaes.width, job.direction) {
        (Width::Zmm, Direction::Encrypt) => zmm_encrypt,
        (Width::Zmm, Direction::Decrypt) => zmm_decrypt,
        (Width::Ymm, Direction::Encrypt) => ymm_encrypt,
        (Width::Ymm, Direction::Decrypt) => ymm_decrypt,
    };
    // SAFETY: `from` (reads) and `to` (writes) hold `units` whole data units and are one
    // pointer or two non-overlapping borrows (checked above); the area is aligned and long
    // enough for the mask (`Area`'s invariant); the features are there (`Vaes`'s invariant).
    unsafe {
        kernel(
            schedule,
            &keys.tweak,
            &mut scratch,
            from,
            to,
            units,
            first_unit,
        );
    }
    true
}

/// The signature of the four kernels.
type Kernel = unsafe fn(
    &super::aesni::Schedule,
    &super::aesni::Schedule,
    &mut MaybeUninit<Scratch>,
    *const u8,
    *mut u8,
    usize,
    u64,
);

/// Saves and restores the state in `area`, as a kernel call does, with nothing in between:
/// what the state save costs per call (benches/transform.rs).
#[doc(hidden)]
pub(crate) fn save_and_restore(vaes: Vaes, area: &mut StateArea) {
    let area = Area::of(area);
    if area.len < vaes.len {
        return;
    }
    let mut scratch = MaybeUninit::uninit();
    Scratch::init(&mut scratch, DataUnit::Bytes512, vaes, area.ptr);
    let base = scratch.as_mut_ptr().cast::<u8>();
    // SAFETY: the area is aligned and long enough for the mask (`Area`'s invariant); XSAVE
    // (XSAVEC when `compacted`) and the mask's components are there (`Vaes`'s invariant);
    // XRSTOR puts back what XSAVE took; rax, rdx and the pointer are operands.
    unsafe {
        asm!(
            save!(),
            restore!(""),
            scr = in(reg) base,
            area = out(reg) _,
            state_ptr = const STATE_PTR,
            state_mask = const STATE_MASK,
            compacted = const COMPACTED,
            out("rax") _,
            out("rdx") _,
            options(nostack),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Scratch memory of one call (64-byte aligned, on the stack).

/// The ZMM kernel: round key 0 and 14 broadcast (64 bytes each), the unit tweaks (two
/// batches of four), and the YMM kernel: the tweaks of the group in flight and of the next
/// (256 bytes each), the unit tweaks (two batches of eight). Both: the groups per unit, the
/// state area's address, the mask and the form. Everything else is an offset below.
#[repr(C, align(64))]
struct Scratch {
    _bytes: [u8; SCRATCH_LEN],
}

// ZMM layout.
const Z_K0: usize = 0;
const Z_K14: usize = 64;
const Z_UNIT_TWEAKS: usize = 128;
// YMM layout.
const Y_T0: usize = 0;
const Y_T1: usize = 256;
const Y_UNIT_TWEAKS: usize = 512;
// Both.
const GROUPS_PER_UNIT: usize = 768;
const STATE_PTR: usize = GROUPS_PER_UNIT + 8;
const STATE_MASK: usize = STATE_PTR + 8;
const COMPACTED: usize = STATE_MASK + 8;
const SCRATCH_LEN: usize = 832;
const _: () = assert!(Z_UNIT_TWEAKS + 128 <= GROUPS_PER_UNIT && COMPACTED + 8 <= SCRATCH_LEN);

impl Scratch {
    /// A scratch with the words the kernels read before writing: the group count, the
    /// area's address, the mask and the form. The rest is written by the kernels before
    /// they read it, and wiped by them before they return. Not zeroed here: a zeroing
    /// `memset` could be a library routine using the very registers the kernel saves.
    ///
    /// Filled in place (`scratch` is uninitialized): returning it by value would be a copy,
    /// and in an unoptimized build a call to `memcpy`, which is just such a routine.
    fn init(scratch: &mut MaybeUninit<Scratch>, unit: DataUnit, vaes: Vaes, area: NonNull<u8>) {
        let group = match vaes.width {
            Width::Ymm => 256,
            Width::Zmm => 512,
        };
        let words = [
            (GROUPS_PER_UNIT, (unit.bytes() / group) as u64),
            (STATE_PTR, area.as_ptr() as usize as u64),
            (STATE_MASK, vaes.mask),
            (COMPACTED, u64::from(vaes.compacted)),
        ];
        let base = scratch.as_mut_ptr().cast::<u8>();
        for (offset, value) in words {
            // SAFETY: every offset is a multiple of 8 below SCRATCH_LEN - 8 (asserted with
            // the layout), in a 64-byte aligned block of SCRATCH_LEN bytes that is ours.
            unsafe { base.wrapping_add(offset).cast::<u64>().write(value) };
        }
    }
}

/// The doubling constant for `vpclmulqdq`: qwords 0x87 (the reduction of x^128) and 1, in
/// every 128-bit lane.
#[repr(C, align(64))]
struct Constant([u64; 8]);
static REDUCTION: Constant = Constant([0x87, 1, 0x87, 1, 0x87, 1, 0x87, 1]);

/// Shift counts for the tweaks of a unit's first group: for vector i, lane j holds the block
/// T·α^e with e = lanes·i + j; each 128-bit lane's two qwords are shifted left by e
/// (`vpsllvq`) and right by 64 − e (`vpsrlvq`; 64 gives 0). Per vector: 8 qwords of left
/// counts, then 8 of right counts (the YMM kernel reads the first 4 of each).
#[repr(C, align(64))]
struct Shifts([u64; 128]);

#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time only, where an index out of bounds is an error"
)]
const fn shifts(lanes: u64) -> Shifts {
    let mut counts = [0u64; 128];
    let mut vector = 0;
    while vector < 8 {
        let mut qword = 0;
        while qword < 8 {
            let e = lanes * vector as u64 + qword as u64 / 2;
            counts[vector * 16 + qword] = e;
            counts[vector * 16 + 8 + qword] = 64 - e;
            qword += 1;
        }
        vector += 1;
    }
    Shifts(counts)
}
static ZMM_SHIFTS: Shifts = shifts(4);
static YMM_SHIFTS: Shifts = shifts(2);

// ---------------------------------------------------------------------------------------------
// The ZMM kernel's assembly. Registers: zmm0–7 data, zmm8–15 their tweaks, zmm16 a unit's
// first tweak broadcast, zmm17–29 round keys 1–13, zmm30–31 temporaries.

macro_rules! eight_z {
    ($m:ident $(, $arg:literal)*) => {
        concat!(
            $m!(0, 8, 0 $(, $arg)*),
            $m!(1, 9, 64 $(, $arg)*),
            $m!(2, 10, 128 $(, $arg)*),
            $m!(3, 11, 192 $(, $arg)*),
            $m!(4, 12, 256 $(, $arg)*),
            $m!(5, 13, 320 $(, $arg)*),
            $m!(6, 14, 384 $(, $arg)*),
            $m!(7, 15, 448 $(, $arg)*),
        )
    };
}

/// Tweak register `$t` for vector `$i` of a unit's first group, from zmm16.
macro_rules! z_first_tweaks {
    ($i:literal, $t:literal, $d:literal) => {
        concat!(
            "vpsrlvq zmm30, zmm16, zmmword ptr [rip + {shifts} + 2 * ",
            $d,
            " + 64]\n",
            "vpslldq zmm31, zmm30, 8\n",
            "vpclmulqdq zmm30, zmm30, zmmword ptr [rip + {reduction}], 0x01\n",
            "vpsllvq zmm",
            $t,
            ", zmm16, zmmword ptr [rip + {shifts} + 2 * ",
            $d,
            "]\n",
            "vpternlogq zmm",
            $t,
            ", zmm30, zmm31, 0x96\n",
        )
    };
}

/// Tweak register `$t` times α^32: the next group of the same unit.
macro_rules! z_next_tweaks {
    ($i:literal, $t:literal, $d:literal) => {
        concat!(
            "vpsrldq zmm30, zmm",
            $t,
            ", 12\n",
            "vpclmulqdq zmm30, zmm30, zmmword ptr [rip + {reduction}], 0x00\n",
            "vpslldq zmm",
            $t,
            ", zmm",
            $t,
            ", 4\n",
            "vpxorq zmm",
            $t,
            ", zmm",
            $t,
            ", zmm30\n",
        )
    };
}

macro_rules! z_load {
    ($i:literal, $t:literal, $d:literal) => {
        concat!(
            "vmovdqu64 zmm",
            $i,
            ", zmmword ptr [{src} + ",
            $d,
            "]\n",
            "vpternlogq zmm",
            $i,
            ", zmm",
            $t,
            ", zmmword ptr [{scr} + {k0}], 0x96\n",
        )
    };
}

macro_rules! z_round {
    ($i:literal, $t:literal, $d:literal, $op:literal, $key:literal) => {
        concat!($op, " zmm", $i, ", zmm", $i, ", zmm", $key, "\n")
    };
}

macro_rules! z_last_store {
    ($i:literal, $t:literal, $d:literal, $last:literal) => {
        concat!(
            "vpxorq zmm30, zmm",
            $t,
            ", zmmword ptr [{scr} + {k14}]\n",
            $last,
            " zmm",
            $i,
            ", zmm",
            $i,
            ", zmm30\n",
            "vmovdqu64 zmmword ptr [{dst} + ",
            $d,
            "], zmm",
            $i,
            "\n",
        )
    };
}

macro_rules! z_rounds {
    ($op:literal) => {
        concat!(
            eight_z!(z_round, $op, "17"),
            eight_z!(z_round, $op, "18"),
            eight_z!(z_round, $op, "19"),
            eight_z!(z_round, $op, "20"),
            eight_z!(z_round, $op, "21"),
            eight_z!(z_round, $op, "22"),
            eight_z!(z_round, $op, "23"),
            eight_z!(z_round, $op, "24"),
            eight_z!(z_round, $op, "25"),
            eight_z!(z_round, $op, "26"),
            eight_z!(z_round, $op, "27"),
            eight_z!(z_round, $op, "28"),
            eight_z!(z_round, $op, "29"),
        )
    };
}

macro_rules! z_counter_lane {
    ($lane:literal) => {
        concat!(
            "vmovq xmm0, {lo}\n",
            "vpinsrq xmm0, xmm0, {hi}, 1\n",
            "vinserti32x4 zmm1, zmm1, xmm0, ",
            $lane,
            "\n",
            "add {lo}, 1\n",
            "adc {hi}, 0\n",
        )
    };
}

macro_rules! z_tweak_round {
    ($offset:literal, $op:literal) => {
        concat!(
            "vbroadcasti32x4 zmm0, xmmword ptr [{tkey} + ",
            $offset,
            "]\n",
            $op,
            " zmm1, zmm1, zmm0\n",
        )
    };
}

/// The first tweaks of the next four units into the 64 bytes at rax. Uses zmm0–1.
macro_rules! z_unit_tweak_batch {
    () => {
        concat!(
            z_counter_lane!(0),
            z_counter_lane!(1),
            z_counter_lane!(2),
            z_counter_lane!(3),
            z_tweak_round!(0, "vpxorq"),
            z_tweak_round!(16, "vaesenc"),
            z_tweak_round!(32, "vaesenc"),
            z_tweak_round!(48, "vaesenc"),
            z_tweak_round!(64, "vaesenc"),
            z_tweak_round!(80, "vaesenc"),
            z_tweak_round!(96, "vaesenc"),
            z_tweak_round!(112, "vaesenc"),
            z_tweak_round!(128, "vaesenc"),
            z_tweak_round!(144, "vaesenc"),
            z_tweak_round!(160, "vaesenc"),
            z_tweak_round!(176, "vaesenc"),
            z_tweak_round!(192, "vaesenc"),
            z_tweak_round!(208, "vaesenc"),
            z_tweak_round!(224, "vaesenclast"),
            "vmovdqa64 zmmword ptr [rax], zmm1\n",
        )
    };
}

macro_rules! zmm_kernel {
    ($(#[$doc:meta])* $name:ident, $op:literal, $last:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The processor has VAES, VPCLMULQDQ and AVX-512 F/BW/VL with their state enabled;
        /// `schedule` and `tweak` are 15 round keys each; `source` and `destination` are
        /// valid for `units` ≥ 1 whole data units of the size `scratch` was made for
        /// (reads, and writes) and are equal or do not overlap; the scratch names a 64-byte
        /// aligned save area long enough for its mask and form, with a zeroed header.
        #[inline(never)]
        #[cfg_attr(target_os = "windows", link_section = ".vaes")]
        unsafe fn $name(
            schedule: &super::aesni::Schedule,
            tweak: &super::aesni::Schedule,
            scratch: &mut MaybeUninit<Scratch>,
            source: *const u8,
            destination: *mut u8,
            units: usize,
            first_unit: u64,
        ) {
            let base = scratch.as_mut_ptr().cast::<u8>();
            // SAFETY: the caller's contract for data, features and area; every scratch offset
            // lies in its 64-byte aligned SCRATCH_LEN bytes, the statics are aligned; the
            // vector state is saved first and restored last; GP registers are operands or
            // clobbered (rax, rdx).
            unsafe {
                asm!(
                    save!(),
                    "vbroadcasti32x4 zmm17, xmmword ptr [{key} + 16]",
                    "vbroadcasti32x4 zmm18, xmmword ptr [{key} + 32]",
                    "vbroadcasti32x4 zmm19, xmmword ptr [{key} + 48]",
                    "vbroadcasti32x4 zmm20, xmmword ptr [{key} + 64]",
                    "vbroadcasti32x4 zmm21, xmmword ptr [{key} + 80]",
                    "vbroadcasti32x4 zmm22, xmmword ptr [{key} + 96]",
                    "vbroadcasti32x4 zmm23, xmmword ptr [{key} + 112]",
                    "vbroadcasti32x4 zmm24, xmmword ptr [{key} + 128]",
                    "vbroadcasti32x4 zmm25, xmmword ptr [{key} + 144]",
                    "vbroadcasti32x4 zmm26, xmmword ptr [{key} + 160]",
                    "vbroadcasti32x4 zmm27, xmmword ptr [{key} + 176]",
                    "vbroadcasti32x4 zmm28, xmmword ptr [{key} + 192]",
                    "vbroadcasti32x4 zmm29, xmmword ptr [{key} + 208]",
                    "vbroadcasti32x4 zmm30, xmmword ptr [{key}]",
                    "vmovdqa64 zmmword ptr [{scr} + {k0}], zmm30",
                    "vbroadcasti32x4 zmm30, xmmword ptr [{key} + 224]",
                    "vmovdqa64 zmmword ptr [{scr} + {k14}], zmm30",
                    // The first two batches of unit tweaks.
                    "lea rax, [{scr} + {unit_tweaks}]",
                    z_unit_tweak_batch!(),
                    "lea rax, [{scr} + {unit_tweaks} + 64]",
                    z_unit_tweak_batch!(),
                    "xor {ui:e}, {ui:e}",
                    // A unit: its tweaks, then its groups.
                    "2:",
                    "lea rax, [{scr} + {ui} + {unit_tweaks}]",
                    "vbroadcasti32x4 zmm16, xmmword ptr [rax]",
                    eight_z!(z_first_tweaks),
                    "add {ui:e}, 16",
                    "and {ui:e}, 127",
                    "test {ui:e}, 63",
                    "jnz 3f",
                    // A batch used up: its half gets the batch after the next.
                    "mov eax, {ui:e}",
                    "xor eax, 64",
                    "lea rax, [{scr} + rax + {unit_tweaks}]",
                    z_unit_tweak_batch!(),
                    "3:",
                    "mov {g}, qword ptr [{scr} + {groups}]",
                    "4:",
                    eight_z!(z_load),
                    z_rounds!($op),
                    eight_z!(z_last_store, $last),
                    "add {src}, 512",
                    "add {dst}, 512",
                    "sub {g}, 1",
                    "jz 5f",
                    eight_z!(z_next_tweaks),
                    "jmp 4b",
                    "5:",
                    "sub {units}, 1",
                    "jnz 2b",
                    restore!(z_wipe!()),
                    src = inout(reg) source => _,
                    dst = inout(reg) destination => _,
                    units = inout(reg) units => _,
                    g = out(reg) _,
                    key = in(reg) schedule.as_ptr(),
                    tkey = in(reg) tweak.as_ptr(),
                    scr = in(reg) base,
                    lo = inout(reg) first_unit => _,
                    hi = inout(reg) 0u64 => _,
                    ui = out(reg) _,
                    area = out(reg) _,
                    shifts = sym ZMM_SHIFTS,
                    reduction = sym REDUCTION,
                    k0 = const Z_K0,
                    k14 = const Z_K14,
                    unit_tweaks = const Z_UNIT_TWEAKS,
                    groups = const GROUPS_PER_UNIT,
                    state_ptr = const STATE_PTR,
                    state_mask = const STATE_MASK,
                    compacted = const COMPACTED,
                    out("rax") _,
                    out("rdx") _,
                    out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                    out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                    out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                    out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                    options(nostack),
                );
            }
        }
    };
}

zmm_kernel!(
    /// XTS encryption of whole data units on ZMM registers, the state saved around it.
    zmm_encrypt, "vaesenc", "vaesenclast"
);
zmm_kernel!(
    /// XTS decryption of whole data units on ZMM registers, the state saved around it.
    zmm_decrypt, "vaesdec", "vaesdeclast"
);

// ---------------------------------------------------------------------------------------------
// The YMM kernel's assembly. Registers: ymm0–7 data; ymm8 the round key; ymm9–11
// temporaries; ymm12 a unit's first tweak broadcast; ymm13 the reduction constant; ymm14 and
// ymm15 round keys 0 and 14. `{cur}` holds the tweaks of the group in flight, rax (in the
// next-tweak code) the other buffer.

macro_rules! eight_y {
    ($m:ident $(, $arg:literal)*) => {
        concat!(
            $m!(0, 0 $(, $arg)*),
            $m!(1, 32 $(, $arg)*),
            $m!(2, 64 $(, $arg)*),
            $m!(3, 96 $(, $arg)*),
            $m!(4, 128 $(, $arg)*),
            $m!(5, 160 $(, $arg)*),
            $m!(6, 192 $(, $arg)*),
            $m!(7, 224 $(, $arg)*),
        )
    };
}

/// The next group's tweak vector `$i`, same unit: this group's times α^16.
macro_rules! y_next_same_unit {
    ($i:literal, $d:literal) => {
        concat!(
            "vmovdqa ymm9, ymmword ptr [{cur} + ",
            $d,
            "]\n",
            "vpsrldq ymm10, ymm9, 14\n",
            "vpclmulqdq ymm10, ymm10, ymm13, 0x00\n",
            "vpslldq ymm9, ymm9, 2\n",
            "vpxor ymm9, ymm9, ymm10\n",
            "vmovdqa ymmword ptr [rax + ",
            $d,
            "], ymm9\n",
        )
    };
}

/// Tweak vector `$i` of a unit's first group, from ymm12, into the buffer at rax.
macro_rules! y_first_tweaks {
    ($i:literal, $d:literal) => {
        concat!(
            "vpsllvq ymm9, ymm12, ymmword ptr [rip + {shifts} + 4 * ",
            $d,
            "]\n",
            "vpsrlvq ymm10, ymm12, ymmword ptr [rip + {shifts} + 4 * ",
            $d,
            " + 64]\n",
            "vpslldq ymm11, ymm10, 8\n",
            "vpclmulqdq ymm10, ymm10, ymm13, 0x01\n",
            "vpxor ymm9, ymm9, ymm11\n",
            "vpxor ymm9, ymm9, ymm10\n",
            "vmovdqa ymmword ptr [rax + ",
            $d,
            "], ymm9\n",
        )
    };
}

macro_rules! y_load {
    ($i:literal, $d:literal) => {
        concat!(
            "vmovdqu ymm",
            $i,
            ", ymmword ptr [{src} + ",
            $d,
            "]\n",
            "vpxor ymm",
            $i,
            ", ymm",
            $i,
            ", ymmword ptr [{cur} + ",
            $d,
            "]\n",
            "vpxor ymm",
            $i,
            ", ymm",
            $i,
            ", ymm14\n",
        )
    };
}

macro_rules! y_round_of {
    ($i:literal, $d:literal, $op:literal) => {
        concat!($op, " ymm", $i, ", ymm", $i, ", ymm8\n")
    };
}

macro_rules! y_round8 {
    ($op:literal, $schedule:literal, $offset:literal) => {
        concat!(
            "vbroadcasti128 ymm8, xmmword ptr [",
            $schedule,
            " + ",
            $offset,
            "]\n",
            eight_y!(y_round_of, $op),
        )
    };
}

macro_rules! y_last_store {
    ($i:literal, $d:literal, $last:literal) => {
        concat!(
            "vpxor ymm9, ymm15, ymmword ptr [{cur} + ",
            $d,
            "]\n",
            $last,
            " ymm",
            $i,
            ", ymm",
            $i,
            ", ymm9\n",
            "vmovdqu ymmword ptr [{dst} + ",
            $d,
            "], ymm",
            $i,
            "\n",
        )
    };
}

macro_rules! y_counter_pair {
    ($v:literal) => {
        concat!(
            "vmovq xmm",
            $v,
            ", {lo}\n",
            "vpinsrq xmm",
            $v,
            ", xmm",
            $v,
            ", {hi}, 1\n",
            "add {lo}, 1\n",
            "adc {hi}, 0\n",
            "vmovq xmm8, {lo}\n",
            "vpinsrq xmm8, xmm8, {hi}, 1\n",
            "add {lo}, 1\n",
            "adc {hi}, 0\n",
            "vinserti128 ymm",
            $v,
            ", ymm",
            $v,
            ", xmm8, 1\n",
        )
    };
}

macro_rules! y_tweak_round {
    ($offset:literal, $op:literal) => {
        concat!(
            "vbroadcasti128 ymm8, xmmword ptr [{tkey} + ",
            $offset,
            "]\n",
            $op,
            " ymm0, ymm0, ymm8\n",
            $op,
            " ymm1, ymm1, ymm8\n",
            $op,
            " ymm2, ymm2, ymm8\n",
            $op,
            " ymm3, ymm3, ymm8\n",
        )
    };
}

/// The first tweaks of the next eight units into the 128 bytes at rax. Uses ymm0–3, ymm8.
macro_rules! y_unit_tweak_batch {
    () => {
        concat!(
            y_counter_pair!(0),
            y_counter_pair!(1),
            y_counter_pair!(2),
            y_counter_pair!(3),
            y_tweak_round!(0, "vpxor"),
            y_tweak_round!(16, "vaesenc"),
            y_tweak_round!(32, "vaesenc"),
            y_tweak_round!(48, "vaesenc"),
            y_tweak_round!(64, "vaesenc"),
            y_tweak_round!(80, "vaesenc"),
            y_tweak_round!(96, "vaesenc"),
            y_tweak_round!(112, "vaesenc"),
            y_tweak_round!(128, "vaesenc"),
            y_tweak_round!(144, "vaesenc"),
            y_tweak_round!(160, "vaesenc"),
            y_tweak_round!(176, "vaesenc"),
            y_tweak_round!(192, "vaesenc"),
            y_tweak_round!(208, "vaesenc"),
            y_tweak_round!(224, "vaesenclast"),
            "vmovdqa ymmword ptr [rax], ymm0\n",
            "vmovdqa ymmword ptr [rax + 32], ymm1\n",
            "vmovdqa ymmword ptr [rax + 64], ymm2\n",
            "vmovdqa ymmword ptr [rax + 96], ymm3\n",
        )
    };
}

macro_rules! ymm_kernel {
    ($(#[$doc:meta])* $name:ident, $op:literal, $last:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The processor has VAES, VPCLMULQDQ and AVX2 with the YMM state enabled; as for
        /// the ZMM kernels otherwise.
        #[inline(never)]
        #[cfg_attr(target_os = "windows", link_section = ".vaes")]
        unsafe fn $name(
            schedule: &super::aesni::Schedule,
            tweak: &super::aesni::Schedule,
            scratch: &mut MaybeUninit<Scratch>,
            source: *const u8,
            destination: *mut u8,
            units: usize,
            first_unit: u64,
        ) {
            let base = scratch.as_mut_ptr().cast::<u8>();
            // SAFETY: as for the ZMM kernels: the caller's contract for the data, the
            // features and the area; every scratch offset is inside it and aligned for its
            // access; the block restores the vector state it changes.
            unsafe {
                asm!(
                    save!(),
                    "vmovdqa ymm13, ymmword ptr [rip + {reduction}]",
                    "vbroadcasti128 ymm14, xmmword ptr [{key}]",
                    "vbroadcasti128 ymm15, xmmword ptr [{key} + 224]",
                    "lea rax, [{scr} + {unit_tweaks}]",
                    y_unit_tweak_batch!(),
                    "lea rax, [{scr} + {unit_tweaks} + 128]",
                    y_unit_tweak_batch!(),
                    "xor {ui:e}, {ui:e}",
                    // The first group's tweaks, into {cur}.
                    "vbroadcasti128 ymm12, xmmword ptr [{scr} + {unit_tweaks}]",
                    "mov rax, {cur}",
                    eight_y!(y_first_tweaks),
                    "mov {g}, qword ptr [{scr} + {groups}]",
                    "2:",
                    // rax: the other tweak buffer.
                    "lea rax, [{scr} + {scr} + {t1}]",
                    "sub rax, {cur}",
                    "cmp {g}, 1",
                    "jne 3f",
                    "cmp {units}, 1",
                    "je 4f",
                    // The next group is the next unit's first.
                    "add {ui:e}, 16",
                    "and {ui:e}, 255",
                    "test {ui:e}, 127",
                    "jnz 6f",
                    // A batch opens: the one after it goes where the previous one was.
                    "mov eax, {ui:e}",
                    "xor eax, 128",
                    "lea rax, [{scr} + rax + {unit_tweaks}]",
                    y_unit_tweak_batch!(),
                    "lea rax, [{scr} + {scr} + {t1}]",
                    "sub rax, {cur}",
                    "6:",
                    "vbroadcasti128 ymm12, xmmword ptr [{scr} + {ui} + {unit_tweaks}]",
                    eight_y!(y_first_tweaks),
                    "jmp 4f",
                    "3:",
                    eight_y!(y_next_same_unit),
                    "4:",
                    eight_y!(y_load),
                    y_round8!($op, "{key}", 16),
                    y_round8!($op, "{key}", 32),
                    y_round8!($op, "{key}", 48),
                    y_round8!($op, "{key}", 64),
                    y_round8!($op, "{key}", 80),
                    y_round8!($op, "{key}", 96),
                    y_round8!($op, "{key}", 112),
                    y_round8!($op, "{key}", 128),
                    y_round8!($op, "{key}", 144),
                    y_round8!($op, "{key}", 160),
                    y_round8!($op, "{key}", 176),
                    y_round8!($op, "{key}", 192),
                    y_round8!($op, "{key}", 208),
                    eight_y!(y_last_store, $last),
                    "add {src}, 256",
                    "add {dst}, 256",
                    "mov {cur}, rax",
                    "sub {g}, 1",
                    "jnz 2b",
                    "sub {units}, 1",
                    "jz 5f",
                    "mov {g}, qword ptr [{scr} + {groups}]",
                    "jmp 2b",
                    "5:",
                    restore!(y_wipe!()),
                    src = inout(reg) source => _,
                    dst = inout(reg) destination => _,
                    units = inout(reg) units => _,
                    g = out(reg) _,
                    key = in(reg) schedule.as_ptr(),
                    tkey = in(reg) tweak.as_ptr(),
                    scr = in(reg) base,
                    cur = inout(reg) base.wrapping_add(Y_T0) => _,
                    lo = inout(reg) first_unit => _,
                    hi = inout(reg) 0u64 => _,
                    ui = out(reg) _,
                    area = out(reg) _,
                    shifts = sym YMM_SHIFTS,
                    reduction = sym REDUCTION,
                    t1 = const Y_T1,
                    unit_tweaks = const Y_UNIT_TWEAKS,
                    groups = const GROUPS_PER_UNIT,
                    state_ptr = const STATE_PTR,
                    state_mask = const STATE_MASK,
                    compacted = const COMPACTED,
                    out("rax") _,
                    out("rdx") _,
                    out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                    out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                    out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                    out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                    options(nostack),
                );
            }
        }
    };
}

ymm_kernel!(
    /// XTS encryption of whole data units on YMM registers, the state saved around it.
    ymm_encrypt, "vaesenc", "vaesenclast"
);
ymm_kernel!(
    /// XTS decryption of whole data units on YMM registers, the state saved around it.
    ymm_decrypt, "vaesdec", "vaesdeclast"
);

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tests::{processor_runs, require, subjects, Rng};
    use super::super::{Backend, Engine, KEY_LEN};
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    /// Attaches a fresh area to `xts` and returns it, to be kept alive as long as `xts`.
    pub(crate) fn attach(xts: &mut XtsAes256) -> Box<StateArea> {
        let mut area = Box::new(StateArea::new());
        let ptr = NonNull::from(&mut area.bytes).cast::<u8>();
        // SAFETY: the box's memory stays where it is when the box moves, and the caller keeps
        // the box alive for as long as `xts` (see `Subject`); nothing else touches it.
        unsafe { xts.attach_state_area(ptr, STATE_AREA_LEN) }.unwrap();
        assert!(xts.has_state_area());
        area
    }

    fn key(seed: u64) -> [u8; KEY_LEN] {
        Rng::new(seed).bytes(KEY_LEN).try_into().unwrap()
    }

    fn vaes_of(xts: &mut XtsAes256) -> &mut Vaes {
        match &mut xts.engine {
            Engine::Vaes { vaes, .. } => vaes,
            _ => panic!("not a VAES backend"),
        }
    }

    #[test]
    fn attach_refuses_a_misaligned_or_short_area() {
        let Some(mut xts) = XtsAes256::exactly(&key(1), Backend::Vaes256).unwrap() else {
            require(Backend::Vaes256);
            return;
        };
        let mut area = Box::new(StateArea::new());
        let base = NonNull::from(&mut area.bytes).cast::<u8>();
        let needed = xts.state_len();
        // 16 bytes into the box, with 16 bytes less: inside it.
        let misaligned = NonNull::new(base.as_ptr().wrapping_add(16)).unwrap();
        assert_eq!(
            // SAFETY: the range is inside the box, which outlives `xts`'s use of it (the
            // call fails and attaches nothing).
            unsafe { xts.attach_state_area(misaligned, STATE_AREA_LEN - 16) },
            Err(XtsError::StateArea {
                len: STATE_AREA_LEN - 16,
                needed
            })
        );
        assert_eq!(
            // SAFETY: as above.
            unsafe { xts.attach_state_area(base, needed - 1) },
            Err(XtsError::StateArea {
                len: needed - 1,
                needed
            })
        );
        assert!(!xts.has_state_area());
    }

    /// A call without an area of its own saves into the attached one: XSAVEC leaves the
    /// compacted form's mark there (XCOMP_BV = the mask | bit 63).
    #[test]
    fn calls_save_into_the_attached_area() {
        for backend in [Backend::Vaes256, Backend::Vaes512] {
            let Some(mut xts) = XtsAes256::exactly(&key(6), backend).unwrap() else {
                require(backend);
                continue;
            };
            let vaes = *vaes_of(&mut xts);
            let area = attach(&mut xts);
            let header =
                |area: &StateArea| u64::from_le_bytes(area.bytes[520..528].try_into().unwrap());
            assert_eq!(header(&area), 0, "zeroed when attached");
            let plain = Rng::new(7).bytes(4096);
            let mut out = std::vec![0u8; plain.len()];
            xts.encrypt_units(DataUnit::Bytes512, 1, &plain, &mut out)
                .unwrap();
            let expected = if vaes.compacted {
                vaes.mask() | 1 << 63
            } else {
                0
            };
            assert_eq!(header(&area), expected, "{}", backend.name());
            drop(xts);
        }
    }

    /// With the attached area held by another call, a call runs on XMM registers instead,
    /// with the same result.
    #[test]
    fn a_busy_area_means_the_xmm_path() {
        let Some(mut xts) = XtsAes256::exactly(&key(2), Backend::Vaes512)
            .unwrap()
            .or(XtsAes256::exactly(&key(2), Backend::Vaes256).unwrap())
        else {
            require(Backend::Vaes256);
            return;
        };
        let _area = attach(&mut xts);
        let xmm = XtsAes256::exactly(&key(2), Backend::AesNi)
            .unwrap()
            .unwrap();
        let plain = Rng::new(3).bytes(8192);
        let mut expected = std::vec![0u8; plain.len()];
        xmm.encrypt_units(DataUnit::Bytes512, 77, &plain, &mut expected)
            .unwrap();
        let held = xts.attached.lend(xts.state_len()).unwrap();
        let mut out = std::vec![0u8; plain.len()];
        xts.encrypt_units(DataUnit::Bytes512, 77, &plain, &mut out)
            .unwrap();
        assert_eq!(out, expected);
        drop(held);
        let mut out = std::vec![0u8; plain.len()];
        xts.encrypt_units(DataUnit::Bytes512, 77, &plain, &mut out)
            .unwrap();
        assert_eq!(out, expected);
    }

    /// XSAVE in the standard form (the path for processors without XSAVEC) gives the same
    /// results, with an area that held a compacted save before.
    #[test]
    fn the_standard_form_works_too() {
        for backend in [Backend::Vaes256, Backend::Vaes512] {
            let Some(mut xts) = XtsAes256::exactly(&key(4), backend).unwrap() else {
                require(backend);
                continue;
            };
            let mut area = StateArea::new();
            let plain = Rng::new(5).bytes(3 * 4096);
            let mut compacted = std::vec![0u8; plain.len()];
            xts.encrypt_units_with(&mut area, DataUnit::Bytes4096, 9, &plain, &mut compacted)
                .unwrap();
            let standard = vaes_of(&mut xts).standard_form();
            *vaes_of(&mut xts) = standard;
            let mut out = std::vec![0u8; plain.len()];
            xts.encrypt_units_with(&mut area, DataUnit::Bytes4096, 9, &plain, &mut out)
                .unwrap();
            assert_eq!(out, compacted, "{}", backend.name());
            xts.decrypt_units_in_place_with(&mut area, DataUnit::Bytes4096, 9, &mut out)
                .unwrap();
            assert_eq!(out, plain, "{}", backend.name());
        }
    }

    /// The masks: exactly the components each kernel touches, never x87 or AMX.
    #[test]
    fn the_masks() {
        use component::*;
        let features = Features::detect();
        if let Some(ymm) = Vaes::new(Width::Ymm, &features) {
            assert_eq!(ymm.mask(), SSE | AVX | (features.xcr0 & ZMM_HI256));
        }
        if let Some(zmm) = Vaes::new(Width::Zmm, &features) {
            assert_eq!(zmm.mask(), SSE | AVX | OPMASK | ZMM_HI256 | HI16_ZMM);
            assert_eq!(zmm.mask() & (X87 | AMX), 0);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Register preservation: patterns in every vector and opmask register, a call, and the
    // registers read back in the same `asm!` block.

    /// zmm0–31 (8 qwords each) and k0–k7, in memory.
    #[repr(C, align(64))]
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(crate) struct Registers {
        pub(crate) zmm: [[u64; 8]; 32],
        pub(crate) k: [u64; 8],
    }

    impl Registers {
        pub(crate) fn patterns(seed: u64) -> Self {
            let mut rng = Rng::new(seed);
            Self {
                zmm: core::array::from_fn(|_| core::array::from_fn(|_| rng.next())),
                k: core::array::from_fn(|_| rng.next()),
            }
        }

        /// What the OS does not save for the dump path and the compiler cannot see: bits
        /// 128–511 of zmm0–15 (the upper halves of the YMM registers and ZMM_Hi256),
        /// zmm16–31 and k0–7, as (name, value) pairs. The low 128 bits of xmm0–15 are left
        /// out: the compiled code around the call may use them (the host's System V ABI lets
        /// it; Windows' makes xmm6–15 callee-saved, which the compiler honours).
        pub(crate) fn not_saved_by_anyone(&self) -> Vec<(std::string::String, u64)> {
            let mut out = Vec::new();
            for (index, zmm) in self.zmm.iter().enumerate() {
                let from = if index < 16 { 2 } else { 0 };
                for (qword, value) in zmm.iter().enumerate().skip(from) {
                    out.push((std::format!("zmm{index}[{qword}]"), *value));
                }
            }
            for (index, k) in self.k.iter().enumerate() {
                out.push((std::format!("k{index}"), *k));
            }
            out
        }
    }

    /// The registers of `expected`'s [`Registers::not_saved_by_anyone`] that `found` differs
    /// in.
    pub(crate) fn changed(expected: &Registers, found: &Registers) -> Vec<std::string::String> {
        expected
            .not_saved_by_anyone()
            .into_iter()
            .zip(found.not_saved_by_anyone())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .collect()
    }

    struct Call<'a> {
        body: &'a mut dyn FnMut(),
    }

    extern "sysv64" fn trampoline(call: *mut Call<'_>) {
        // SAFETY: `around` passes a pointer to its live `Call`, used by nobody else meanwhile.
        let call = unsafe { &mut *call };
        (call.body)();
    }

    /// Loads `before` into zmm0–31 and k0–7, runs `body`, and stores the registers into
    /// `after`, all in one `asm!` block so that no compiled code runs between the patterns
    /// and the call but the call's own. The processor has AVX-512 F and BW.
    pub(crate) fn around(before: &Registers, after: &mut Registers, body: &mut dyn FnMut()) {
        assert!(std::is_x86_feature_detected!("avx512bw"));
        let mut call = Call { body };
        macro_rules! each_zmm {
            ($m:ident) => {
                concat!(
                    $m!(0),
                    $m!(1),
                    $m!(2),
                    $m!(3),
                    $m!(4),
                    $m!(5),
                    $m!(6),
                    $m!(7),
                    $m!(8),
                    $m!(9),
                    $m!(10),
                    $m!(11),
                    $m!(12),
                    $m!(13),
                    $m!(14),
                    $m!(15),
                    $m!(16),
                    $m!(17),
                    $m!(18),
                    $m!(19),
                    $m!(20),
                    $m!(21),
                    $m!(22),
                    $m!(23),
                    $m!(24),
                    $m!(25),
                    $m!(26),
                    $m!(27),
                    $m!(28),
                    $m!(29),
                    $m!(30),
                    $m!(31),
                )
            };
        }
        macro_rules! each_k {
            ($m:ident) => {
                concat!(
                    $m!(0),
                    $m!(1),
                    $m!(2),
                    $m!(3),
                    $m!(4),
                    $m!(5),
                    $m!(6),
                    $m!(7)
                )
            };
        }
        macro_rules! load_zmm {
            ($i:literal) => {
                concat!("vmovdqa64 zmm", $i, ", zmmword ptr [r12 + 64 * ", $i, "]\n")
            };
        }
        macro_rules! store_zmm {
            ($i:literal) => {
                concat!("vmovdqa64 zmmword ptr [r13 + 64 * ", $i, "], zmm", $i, "\n")
            };
        }
        macro_rules! load_k {
            ($i:literal) => {
                concat!("kmovq k", $i, ", qword ptr [r12 + 2048 + 8 * ", $i, "]\n")
            };
        }
        macro_rules! store_k {
            ($i:literal) => {
                concat!("kmovq qword ptr [r13 + 2048 + 8 * ", $i, "], k", $i, "\n")
            };
        }
        // SAFETY: AVX-512 F and BW are there (asserted); `before`/`after` are aligned 2112-byte
        // `Registers`, accessed inside; r12–r14 (callee-saved) keep the pointers; the stack
        // is aligned for the call; `clobber_abi` declares what the callee may change; the
        // upper state is cleared before compiled code resumes.
        unsafe {
            asm!(
                each_zmm!(load_zmm),
                each_k!(load_k),
                "call r14",
                each_zmm!(store_zmm),
                each_k!(store_k),
                "vzeroupper",
                in("r12") core::ptr::from_ref(before),
                in("r13") core::ptr::from_mut(after),
                in("r14") trampoline as extern "sysv64" fn(*mut Call<'_>),
                inout("rdi") &raw mut call => _,
                clobber_abi("sysv64"),
            );
        }
    }

    /// Whether this process is the child [`in_a_child_without_libc_avx`] started.
    fn is_the_child() -> bool {
        std::env::var_os(CHILD).is_some()
    }

    const CHILD: &str = "DUMPCRYPT_REGISTER_TEST_CHILD";

    /// Runs the test `name` of this test binary again in a child process whose C library
    /// uses no AVX (glibc's `GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX,...`), and fails if it
    /// fails. The System V ABI lets compiled code and the C library use every vector
    /// register between the patterns and the call: glibc's `memcpy`, which an unoptimized
    /// build calls for moves of 64 bytes and more, uses zmm16 and up. Without AVX in the
    /// C library, only the code under test can change the registers the test checks.
    pub(crate) fn in_a_child_without_libc_avx(name: &str) {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(
                "GLIBC_TUNABLES",
                "glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,\
                 -ERMS,-FSRM,-AVX_Fast_Unaligned_Load",
            )
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = std::string::String::from_utf8_lossy(&output.stdout);
        std::println!(
            "{text}{}",
            std::string::String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "the test failed in the child process"
        );
        assert!(text.contains("1 passed"), "the child ran no test: {text}");
    }

    /// The VAES kernels leave every register as it was, in both forms of the save; the XMM
    /// backend does too (it touches no upper half). And the check can fail: with Hi16_ZMM
    /// (ZMM) or AVX (YMM) left out of the mask, the registers the kernel uses change.
    #[test]
    fn the_vaes_kernels_leave_every_register_as_it_was() {
        if !is_the_child() {
            in_a_child_without_libc_avx(
                "vaes::tests::the_vaes_kernels_leave_every_register_as_it_was",
            );
            return;
        }
        if !processor_runs(Backend::Vaes512) {
            // The harness needs AVX-512 to see every register.
            require(Backend::Vaes512);
            return;
        }
        let plain = Rng::new(11).bytes(64 << 10);
        let mut out = std::vec![0u8; plain.len()];
        let mut area = StateArea::new();
        let before = Registers::patterns(12);
        for backend in [Backend::AesNi, Backend::Vaes256, Backend::Vaes512] {
            for standard in [false, true] {
                let mut xts = XtsAes256::exactly(&key(13), backend).unwrap().unwrap();
                if backend != Backend::AesNi && standard {
                    let form = vaes_of(&mut xts).standard_form();
                    *vaes_of(&mut xts) = form;
                }
                for unit in [DataUnit::Bytes512, DataUnit::Bytes4096] {
                    let mut after = Registers::patterns(0);
                    around(&before, &mut after, &mut || {
                        xts.encrypt_units_with(&mut area, unit, 5, &plain, &mut out)
                            .unwrap();
                        xts.decrypt_units_in_place_with(&mut area, unit, 5, &mut out)
                            .unwrap();
                    });
                    assert_eq!(out, plain);
                    assert_eq!(
                        changed(&before, &after),
                        Vec::<std::string::String>::new(),
                        "{} ({}), {unit:?}",
                        backend.name(),
                        if standard { "XSAVE" } else { "XSAVEC" }
                    );
                }
            }
        }
        // The control: a mask without what the kernel writes.
        use component::*;
        for (backend, mask, expect) in [
            (Backend::Vaes512, SSE | AVX | OPMASK | ZMM_HI256, "zmm17[0]"),
            (Backend::Vaes256, SSE, "zmm0[2]"),
        ] {
            let mut xts = XtsAes256::exactly(&key(14), backend).unwrap().unwrap();
            let vaes = vaes_of(&mut xts);
            *vaes = Vaes {
                mask,
                len: cpu::state_len(mask, vaes.compacted),
                ..*vaes
            };
            let mut after = Registers::patterns(0);
            around(&before, &mut after, &mut || {
                xts.encrypt_units_with(&mut area, DataUnit::Bytes512, 5, &plain, &mut out)
                    .unwrap();
            });
            let changed = changed(&before, &after);
            assert!(
                changed.iter().any(|name| name == expect),
                "{}: {changed:?}",
                backend.name()
            );
        }
    }

    /// The ciphertext of every backend is the same whichever subject computes it (a cheap
    /// cross-check that the kernels here are the ones the subjects run).
    #[test]
    fn subjects_cover_every_vaes_backend_here() {
        let names: Vec<_> = subjects(&key(15)).into_iter().map(|s| s.name).collect();
        for backend in [Backend::Vaes256, Backend::Vaes512] {
            if processor_runs(backend) {
                assert!(
                    names.iter().any(|name| name.starts_with(backend.name())),
                    "{names:?}"
                );
            }
        }
    }
}
