//! XTS-AES-256 (IEEE 1619) over whole data units, fused with the copy, without allocation.
//!
//! Each data unit is `unit` bytes (512 or 4096) with its own tweak, the unit's number as a
//! 128-bit little-endian integer encrypted under the tweak key. Data units are whole multiples
//! of the AES block, so there is no ciphertext stealing. Sources are read once and ciphertext
//! is written straight to the destination.
//!
//! Four backends ([`Backend`]), one chosen in [`XtsAes256::with_backend`] (at DriverEntry,
//! never on the dump path) from CPUID and XGETBV and kept in the value:
//! - **vaes512** (`vaes.rs`): VAES + VPCLMULQDQ on ZMM registers (AVX-512 F/BW/VL), four
//!   blocks per instruction;
//! - **vaes256** (`vaes.rs`): VAES + VPCLMULQDQ on YMM registers (AVX2), two per
//!   instruction;
//! - **aesni** (`aesni.rs`): AES-NI on XMM registers, legacy SSE encodings only;
//! - **portable** (`portable.rs`): safe Rust over the `aes` crate's many-blocks API, whose
//!   fixsliced software backend is constant time. `#![forbid(unsafe_code)]`.
//!
//! The VAES backends save and restore the YMM/ZMM state they touch around every call
//! (XSAVEC/XRSTOR, in `vaes.rs`), into a 64-byte aligned area that the caller provides: the
//! driver attaches one allocated at DriverEntry ([`XtsAes256::attach_state_area`]); others
//! pass a [`StateArea`] per call (`*_with`). A VAES cipher called without either runs its
//! calls on the XMM backend. `cpu.rs` reads CPUID and XGETBV.
//!
//! Building with `RUSTFLAGS="--cfg aes_force_soft"` forces the portable backend and, in the
//! `aes` crate, its software AES (scripts/bench-report.sh measures the fallback that way).
//!
//! This crate is the dump path's only code with CPU-feature `unsafe` (`aesni.rs`, `vaes.rs`,
//! `cpu.rs`, which allow `unsafe_code` for themselves alone); its one other `unsafe` is
//! [`XtsAes256::wipe`] here (a drop in place and volatile zeroing of the engine, which
//! allows it for that function alone). The driver's policy and geometry (`dumpcrypt-core`)
//! call it through the safe [`XtsAes256`].
#![no_std]
#![deny(unsafe_code)]
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

#[cfg(test)]
extern crate std;

#[cfg(target_arch = "x86_64")]
#[expect(
    unsafe_code,
    reason = "the XMM backend: the key expansion's target_feature entry, its kernels' asm!"
)]
mod aesni;
#[cfg(target_arch = "x86_64")]
#[expect(unsafe_code, reason = "CPUID and XGETBV, in asm!")]
mod cpu;
mod portable;
#[cfg(target_arch = "x86_64")]
#[expect(
    unsafe_code,
    reason = "the VAES backends' asm! (kernels with the XSAVE/XRSTOR pair), the attached area"
)]
mod vaes;

#[cfg(target_arch = "x86_64")]
pub use vaes::{StateArea, STATE_AREA_ALIGN};

/// Length of an XTS-AES-256 key: the data key followed by the tweak key.
pub const KEY_LEN: usize = 64;

/// Size of the unit that shares one tweak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataUnit {
    /// 512 bytes: one sector of most disks, and what disk-encryption products use.
    Bytes512,
    /// 4096 bytes: one sector of a 4Kn disk.
    Bytes4096,
}

impl DataUnit {
    /// The data unit of `bytes` bytes, if it is 512 or 4096.
    pub const fn from_bytes(bytes: u32) -> Option<Self> {
        match bytes {
            512 => Some(Self::Bytes512),
            4096 => Some(Self::Bytes4096),
            _ => None,
        }
    }

    /// Its size in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            Self::Bytes512 => 512,
            Self::Bytes4096 => 4096,
        }
    }
}

/// Why a transform was not done. The transform never panics on bad lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XtsError {
    /// The data key and the tweak key are equal (IEEE 1619 forbids it).
    KeyHalvesEqual,
    /// The length is not a whole number of data units.
    PartialDataUnit {
        /// The length given.
        len: usize,
    },
    /// Source and destination differ in length.
    LengthMismatch {
        /// The source's length.
        source: usize,
        /// The destination's length.
        destination: usize,
    },
    /// A state area that is not 64-byte aligned or is shorter than the backend needs.
    StateArea {
        /// The area's length.
        len: usize,
        /// The length needed.
        needed: usize,
    },
    /// The key schedules were wiped ([`XtsAes256::wipe`]): nothing can be transformed.
    KeysWiped,
}

/// An implementation of the transform, fastest first; [`Backend::Auto`] asks for the fastest
/// this processor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The fastest this processor and its OS allow.
    Auto,
    /// VAES + VPCLMULQDQ on ZMM registers (AVX-512 F/BW/VL), the state saved per call.
    Vaes512,
    /// VAES + VPCLMULQDQ on YMM registers (AVX2), the state saved per call.
    Vaes256,
    /// AES-NI on XMM registers.
    AesNi,
    /// The `aes` crate's code: its constant-time software AES where there is no AES-NI.
    Portable,
}

impl Backend {
    /// Every value, `Auto` first, then fastest first.
    pub const ALL: [Backend; 5] = [
        Self::Auto,
        Self::Vaes512,
        Self::Vaes256,
        Self::AesNi,
        Self::Portable,
    ];

    /// Its name: `auto`, `vaes512`, `vaes256`, `aesni`, `portable`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Vaes512 => "vaes512",
            Self::Vaes256 => "vaes256",
            Self::AesNi => "aesni",
            Self::Portable => "portable",
        }
    }

    /// The backend of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|backend| backend.name().eq_ignore_ascii_case(name))
    }

    /// Whether this processor (and the OS's enabled state) runs it; `Auto` always.
    pub fn available(self) -> bool {
        self.runs_on(&Features::detect())
    }

    /// Whether a processor with `features` runs it.
    fn runs_on(self, features: &Features) -> bool {
        match self {
            Self::Auto | Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::AesNi => !cfg!(aes_force_soft) && features.aes,
            #[cfg(target_arch = "x86_64")]
            Self::Vaes512 => vaes::Vaes::new(vaes::Width::Zmm, features).is_some(),
            #[cfg(target_arch = "x86_64")]
            Self::Vaes256 => vaes::Vaes::new(vaes::Width::Ymm, features).is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The concrete backends at or below this one, fastest first.
    fn at_most(self) -> &'static [Backend] {
        const ORDER: [Backend; 4] = [
            Backend::Vaes512,
            Backend::Vaes256,
            Backend::AesNi,
            Backend::Portable,
        ];
        let start = match self {
            Self::Auto | Self::Vaes512 => 0,
            Self::Vaes256 => 1,
            Self::AesNi => 2,
            Self::Portable => 3,
        };
        ORDER.get(start..).unwrap_or(&[])
    }
}

/// An expanded XTS-AES-256 key, with the backend chosen for this processor.
///
/// The key schedules are wiped when the value is dropped.
pub struct XtsAes256 {
    engine: Engine,
    /// The state area the VAES backends use for calls without one of their own.
    #[cfg(target_arch = "x86_64")]
    attached: vaes::Attached,
}

/// Which implementation runs the transform, with its expanded keys.
///
/// `repr(u8)` with `Wiped` = 0: a value whose bytes are all zero is `Wiped` (the layout of a
/// primitive representation is defined: a tag byte, then the variant's fields), which is
/// what [`XtsAes256::wipe`] leaves.
#[expect(
    clippy::large_enum_variant,
    reason = "one value per driver instance, in nonpaged pool; boxing would mean an allocation"
)]
#[repr(u8)]
enum Engine {
    /// The schedules were overwritten in place ([`XtsAes256::wipe`]); every transform fails.
    #[expect(dead_code, reason = "made by `wipe` out of zero bytes, never by name")]
    Wiped = 0,
    #[cfg(target_arch = "x86_64")]
    Xmm(aesni::AesNiKeys),
    #[cfg(target_arch = "x86_64")]
    Vaes {
        keys: aesni::AesNiKeys,
        vaes: vaes::Vaes,
    },
    Portable(portable::Portable),
}

/// What `with_backend` builds: the hardware keys, made, with the VAES backend to run them (or
/// none: XMM); or the portable backend.
#[expect(
    clippy::large_enum_variant,
    reason = "a local of `with_backend`, moved into the cipher at once"
)]
enum Kind {
    #[cfg(target_arch = "x86_64")]
    Hardware(aesni::AesNiKeys, Option<vaes::Vaes>),
    Portable,
}

impl Kind {
    /// The fastest backend at most `at_most` that runs here, and for the hardware ones their
    /// key schedules (720 bytes).
    fn choose(key: &[u8; KEY_LEN], at_most: Backend) -> Self {
        let features = Features::detect();
        let backend = at_most
            .at_most()
            .iter()
            .copied()
            .find(|backend| backend.runs_on(&features))
            .unwrap_or(Backend::Portable);
        Self::of(key, backend, &features)
    }

    /// What to build for `backend`, which the caller found runs here.
    fn of(key: &[u8; KEY_LEN], backend: Backend, features: &Features) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let width = match backend {
                Backend::Vaes512 => Some(Some(vaes::Width::Zmm)),
                Backend::Vaes256 => Some(Some(vaes::Width::Ymm)),
                Backend::AesNi => Some(None),
                _ => None,
            };
            if let Some(width) = width {
                if let Some(keys) = aesni::AesNiKeys::new(key, features.aes) {
                    let vaes = width.and_then(|width| vaes::Vaes::new(width, features));
                    return Self::Hardware(keys, vaes);
                }
            }
        }
        let _ = (key, backend, features);
        Self::Portable
    }
}

/// Which way a transform runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Encrypt,
    Decrypt,
}

/// One transform call, its lengths checked: whole data units, the source (`None`: in place)
/// as long as the destination.
struct Job<'a> {
    direction: Direction,
    unit: DataUnit,
    first_unit: u64,
    source: Option<&'a [u8]>,
    destination: &'a mut [u8],
}

impl core::fmt::Debug for XtsAes256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("XtsAes256 { .. }")
    }
}

impl XtsAes256 {
    /// [`XtsAes256::with_backend`] with [`Backend::Auto`]: the fastest backend here.
    pub fn new(key: &[u8; KEY_LEN]) -> Result<Self, XtsError> {
        Self::with_backend(key, Backend::Auto)
    }

    /// Expands `key` (data key ‖ tweak key) for the fastest backend this processor runs that
    /// is not faster than `at_most` (so `Backend::AesNi` on a VAES machine gives AES-NI, and
    /// `Backend::Vaes512` on a machine without AVX-512 the next one down). Meant for
    /// DriverEntry (it runs CPUID and XGETBV); it allocates nothing and may run at any IRQL.
    pub fn with_backend(key: &[u8; KEY_LEN], at_most: Backend) -> Result<Self, XtsError> {
        check_key(key)?;
        Ok(match Kind::choose(key, at_most) {
            #[cfg(target_arch = "x86_64")]
            Kind::Hardware(keys, vaes) => Self::hardware(keys, vaes),
            Kind::Portable => Self::portable(key),
        })
    }

    /// [`XtsAes256::with_backend`], building the value in `slot` (the driver's pool block):
    /// the value is about 2 KB, the key schedules, and DriverEntry's stack has no room for
    /// copies of it on the way. Each kind is built in a function of its own, so that only the
    /// frame of the one built is on the stack.
    pub fn with_backend_in<'a>(
        slot: &'a mut core::mem::MaybeUninit<Self>,
        key: &[u8; KEY_LEN],
        at_most: Backend,
    ) -> Result<&'a mut Self, XtsError> {
        check_key(key)?;
        let features = Features::detect();
        let backend = at_most
            .at_most()
            .iter()
            .copied()
            .find(|backend| backend.runs_on(&features))
            .unwrap_or(Backend::Portable);
        #[cfg(target_arch = "x86_64")]
        let slot = match Self::hardware_in(slot, key, backend, &features) {
            Ok(cipher) => return Ok(cipher),
            Err(slot) => slot,
        };
        Ok(Self::portable_in(slot, key))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(never)]
    fn hardware_in<'a>(
        slot: &'a mut core::mem::MaybeUninit<Self>,
        key: &[u8; KEY_LEN],
        backend: Backend,
        features: &Features,
    ) -> Result<&'a mut Self, &'a mut core::mem::MaybeUninit<Self>> {
        match Kind::of(key, backend, features) {
            Kind::Hardware(keys, vaes) => Ok(slot.write(Self::hardware(keys, vaes))),
            Kind::Portable => Err(slot),
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn hardware(keys: aesni::AesNiKeys, vaes: Option<vaes::Vaes>) -> Self {
        let engine = match vaes {
            Some(vaes) => Engine::Vaes { keys, vaes },
            None => Engine::Xmm(keys),
        };
        Self {
            engine,
            attached: vaes::Attached::default(),
        }
    }

    /// Not inlined: its key schedules are most of DriverEntry's stack, which the hardware
    /// backends then do not pay for.
    #[inline(never)]
    fn portable(key: &[u8; KEY_LEN]) -> Self {
        Self {
            engine: Engine::Portable(portable::Portable::new(key)),
            #[cfg(target_arch = "x86_64")]
            attached: vaes::Attached::default(),
        }
    }

    /// As [`XtsAes256::portable`], into `slot`.
    #[inline(never)]
    fn portable_in<'a>(
        slot: &'a mut core::mem::MaybeUninit<Self>,
        key: &[u8; KEY_LEN],
    ) -> &'a mut Self {
        slot.write(Self {
            engine: Engine::Portable(portable::Portable::new(key)),
            #[cfg(target_arch = "x86_64")]
            attached: vaes::Attached::default(),
        })
    }

    /// Expands `key` for exactly `backend`, or `None` where this processor does not run it
    /// (`Backend::Auto`: as [`XtsAes256::new`]). For tests, benchmarks and tools that must
    /// measure or use one backend.
    pub fn exactly(key: &[u8; KEY_LEN], backend: Backend) -> Result<Option<Self>, XtsError> {
        check_key(key)?;
        if !backend.runs_on(&Features::detect()) {
            return Ok(None);
        }
        // The fastest at most `backend` is `backend` itself, since it runs here.
        Self::with_backend(key, backend).map(Some)
    }

    /// The backend that runs the transform (never `Auto`).
    pub fn backend(&self) -> Backend {
        match &self.engine {
            #[cfg(target_arch = "x86_64")]
            Engine::Xmm(_) => Backend::AesNi,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes { vaes, .. } => match vaes.width() {
                vaes::Width::Zmm => Backend::Vaes512,
                vaes::Width::Ymm => Backend::Vaes256,
            },
            Engine::Portable(_) => Backend::Portable,
            // None runs any more.
            Engine::Wiped => Backend::Auto,
        }
    }

    /// Overwrites the key schedules where they are, without freeing or moving anything (so
    /// it may run at any IRQL, HIGH_LEVEL included): the backend's own drop zeroizes its
    /// schedules in place, then every byte of the engine is zeroed with volatile writes
    /// (which leaves `Engine::Wiped`). Afterwards every transform fails with
    /// [`XtsError::KeysWiped`] and [`XtsAes256::backend`] is `Auto`; dropping the value
    /// later is still sound. An attached state area stays attached (it holds no key).
    ///
    /// Not `self.engine = Engine::Wiped`: an assignment may build the new value in a
    /// temporary as large as the enum and copy all of it, stale stack bytes (earlier copies of
    /// the schedules among them) included; a debug build does exactly that.
    #[expect(
        unsafe_code,
        reason = "drops the engine in place and overwrites its bytes with a valid value"
    )]
    pub fn wipe(&mut self) {
        let engine = core::ptr::from_mut(&mut self.engine);
        // The engine is dropped once, here, and until the loop below ends nothing reads or
        // drops it (the backends' drops only zeroize and cannot panic, so no unwind sees it);
        // the loop leaves a valid `Engine::Wiped` (INVARIANT below) for later reads and drops.
        // SAFETY: from `&mut self.engine`: aligned, initialized, reachable by nothing else.
        unsafe { core::ptr::drop_in_place(engine) };
        let bytes = engine.cast::<u8>();
        for offset in 0..core::mem::size_of::<Engine>() {
            // Volatile, so that the compiler cannot remove the writes as dead stores.
            // SAFETY: `offset < size_of::<Engine>()`: inside the engine's storage, ours alone
            // by `&mut self`; any byte may be written over a dropped value.
            unsafe { bytes.wrapping_add(offset).write_volatile(0) };
        }
        // INVARIANT: all-zero bytes are `Engine::Wiped` (`repr(u8)`, discriminant 0, no
        // fields), a valid value for the place.
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`XtsAes256::wipe`] ran.
    pub fn is_wiped(&self) -> bool {
        matches!(self.engine, Engine::Wiped)
    }

    /// Bytes of the state area the backend saves the extended state into (from CPUID leaf
    /// 0xD for its components), 64-byte aligned; 0 for the backends that need none.
    pub fn state_len(&self) -> usize {
        match &self.engine {
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes { vaes, .. } => vaes.state_len(),
            _ => 0,
        }
    }

    /// Encrypts `source`, whole data units of `unit` numbered from `first_unit`, into
    /// `destination`. The source is only read.
    pub fn encrypt_units(
        &self,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) -> Result<(), XtsError> {
        check_lengths(unit, source.len(), destination.len())?;
        self.run(
            Job {
                direction: Direction::Encrypt,
                unit,
                first_unit,
                source: Some(source),
                destination,
            },
            None,
        )
    }

    /// Decrypts `buffer`, whole data units of `unit` numbered from `first_unit`, in place.
    pub fn decrypt_units_in_place(
        &self,
        unit: DataUnit,
        first_unit: u64,
        buffer: &mut [u8],
    ) -> Result<(), XtsError> {
        check_lengths(unit, buffer.len(), buffer.len())?;
        self.run(
            Job {
                direction: Direction::Decrypt,
                unit,
                first_unit,
                source: None,
                destination: buffer,
            },
            None,
        )
    }

    /// Decrypts `source` into `destination` (for tools that must not touch their input).
    pub fn decrypt_units(
        &self,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) -> Result<(), XtsError> {
        check_lengths(unit, source.len(), destination.len())?;
        self.run(
            Job {
                direction: Direction::Decrypt,
                unit,
                first_unit,
                source: Some(source),
                destination,
            },
            None,
        )
    }

    /// [`XtsAes256::encrypt_units`], a VAES backend saving the state in `state`.
    #[cfg(target_arch = "x86_64")]
    pub fn encrypt_units_with(
        &self,
        state: &mut StateArea,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) -> Result<(), XtsError> {
        check_lengths(unit, source.len(), destination.len())?;
        self.run(
            Job {
                direction: Direction::Encrypt,
                unit,
                first_unit,
                source: Some(source),
                destination,
            },
            Some(state),
        )
    }

    /// [`XtsAes256::decrypt_units_in_place`], a VAES backend saving the state in `state`.
    #[cfg(target_arch = "x86_64")]
    pub fn decrypt_units_in_place_with(
        &self,
        state: &mut StateArea,
        unit: DataUnit,
        first_unit: u64,
        buffer: &mut [u8],
    ) -> Result<(), XtsError> {
        check_lengths(unit, buffer.len(), buffer.len())?;
        self.run(
            Job {
                direction: Direction::Decrypt,
                unit,
                first_unit,
                source: None,
                destination: buffer,
            },
            Some(state),
        )
    }

    /// [`XtsAes256::decrypt_units`], a VAES backend saving the state in `state`.
    #[cfg(target_arch = "x86_64")]
    pub fn decrypt_units_with(
        &self,
        state: &mut StateArea,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) -> Result<(), XtsError> {
        check_lengths(unit, source.len(), destination.len())?;
        self.run(
            Job {
                direction: Direction::Decrypt,
                unit,
                first_unit,
                source: Some(source),
                destination,
            },
            Some(state),
        )
    }

    /// Saves and restores the extended state the backend saves per call, in `state`, with
    /// nothing in between: the cost the state save adds to every call (benches only; for a
    /// backend without a state save it does nothing).
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    pub fn save_and_restore_state(&self, state: &mut StateArea) {
        if let Engine::Vaes { vaes, .. } = &self.engine {
            vaes::save_and_restore(*vaes, state);
        }
    }

    fn run(&self, mut job: Job<'_>, state: Option<&mut StateArea>) -> Result<(), XtsError> {
        match &self.engine {
            #[cfg(target_arch = "x86_64")]
            Engine::Xmm(keys) => keys.transform(&mut job),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes { keys, vaes } => {
                let done = match state {
                    Some(state) => vaes::transform_with(keys, *vaes, state, &mut job),
                    None => vaes::transform_attached(keys, *vaes, &self.attached, &mut job),
                };
                if !done {
                    // No area to save the state in: the same keys on XMM registers.
                    keys.transform(&mut job);
                }
            }
            Engine::Portable(keys) => keys.run(&mut job),
            Engine::Wiped => return Err(XtsError::KeysWiped),
        }
        Ok(())
    }
}

/// `StateArea` where there are no VAES backends: nothing to save.
#[cfg(not(target_arch = "x86_64"))]
pub struct StateArea;

#[cfg(target_arch = "x86_64")]
use cpu::Features;

/// What there is to detect where there are no hardware backends: nothing.
#[cfg(not(target_arch = "x86_64"))]
struct Features;

#[cfg(not(target_arch = "x86_64"))]
impl Features {
    fn detect() -> Self {
        Self
    }
}

fn check_key(key: &[u8; KEY_LEN]) -> Result<(), XtsError> {
    let (data_key, tweak_key) = key.split_at(KEY_LEN / 2);
    if data_key == tweak_key {
        return Err(XtsError::KeyHalvesEqual);
    }
    Ok(())
}

fn check_lengths(unit: DataUnit, source: usize, destination: usize) -> Result<(), XtsError> {
    if source != destination {
        return Err(XtsError::LengthMismatch {
            source,
            destination,
        });
    }
    if !source.is_multiple_of(unit.bytes()) {
        return Err(XtsError::PartialDataUnit { len: source });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aes::cipher::generic_array::GenericArray;
    use aes::Aes256;
    use std::boxed::Box;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A small deterministic generator (SplitMix64) for keys, data, lengths and unit numbers.
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed)
        }

        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }

        pub(crate) fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    /// One way of calling a backend: plain, with a state area per call, or (VAES) with an
    /// attached area.
    pub(crate) struct Subject {
        pub(crate) name: String,
        pub(crate) xts: XtsAes256,
        /// For the `*_with` calls.
        area: Option<Box<StateArea>>,
        /// Kept alive for the attached area (declared after `xts`, so dropped after it).
        _attached: Option<Box<StateArea>>,
    }

    impl Subject {
        pub(crate) fn encrypt(
            &mut self,
            unit: DataUnit,
            first: u64,
            source: &[u8],
            destination: &mut [u8],
        ) -> Result<(), XtsError> {
            match &mut self.area {
                Some(area) => self
                    .xts
                    .encrypt_units_with(area, unit, first, source, destination),
                None => self.xts.encrypt_units(unit, first, source, destination),
            }
        }

        pub(crate) fn decrypt(
            &mut self,
            unit: DataUnit,
            first: u64,
            source: &[u8],
            destination: &mut [u8],
        ) -> Result<(), XtsError> {
            match &mut self.area {
                Some(area) => self
                    .xts
                    .decrypt_units_with(area, unit, first, source, destination),
                None => self.xts.decrypt_units(unit, first, source, destination),
            }
        }

        pub(crate) fn decrypt_in_place(
            &mut self,
            unit: DataUnit,
            first: u64,
            buffer: &mut [u8],
        ) -> Result<(), XtsError> {
            match &mut self.area {
                Some(area) => self
                    .xts
                    .decrypt_units_in_place_with(area, unit, first, buffer),
                None => self.xts.decrypt_units_in_place(unit, first, buffer),
            }
        }
    }

    /// Every backend this processor runs, each every way it can be called: the portable and
    /// XMM ones plainly; each VAES one with a state area per call, with an attached area, and
    /// with neither (its calls then run on XMM registers). A backend the processor lacks is
    /// left out, which fails in CI unless allowed (see [`require`]).
    pub(crate) fn subjects(key: &[u8; KEY_LEN]) -> Vec<Subject> {
        let mut subjects = Vec::new();
        for backend in [
            Backend::Portable,
            Backend::AesNi,
            Backend::Vaes256,
            Backend::Vaes512,
        ] {
            let name = backend.name();
            let Some(xts) = XtsAes256::exactly(key, backend).unwrap() else {
                require(backend);
                continue;
            };
            assert_eq!(xts.backend(), backend);
            if !matches!(backend, Backend::Vaes256 | Backend::Vaes512) {
                subjects.push(Subject {
                    name: name.to_string(),
                    xts,
                    area: None,
                    _attached: None,
                });
                continue;
            }
            subjects.push(Subject {
                name: std::format!("{name} (state area per call)"),
                xts,
                area: Some(Box::new(StateArea::new())),
                _attached: None,
            });
            let mut attached = XtsAes256::exactly(key, backend).unwrap().unwrap();
            let area = vaes::tests::attach(&mut attached);
            subjects.push(Subject {
                name: std::format!("{name} (attached state area)"),
                xts: attached,
                area: None,
                _attached: Some(area),
            });
            subjects.push(Subject {
                name: std::format!("{name} (no state area: XMM)"),
                xts: XtsAes256::exactly(key, backend).unwrap().unwrap(),
                area: None,
                _attached: None,
            });
        }
        subjects
    }

    /// IEEE 1619-2007 Annex B, XTS-AES-256 vectors 10 to 14: the same key and plaintext
    /// (bytes 0..=255 twice), data unit sequence numbers 0xff, 0xffff, 0xffffff, 0xffffffff
    /// and 0xffffffffff; the ciphertexts are kept in vectors/ieee1619.txt.
    fn ieee_vectors() -> Vec<(u64, Vec<u8>)> {
        let text = include_str!("../vectors/ieee1619.txt");
        let mut vectors = Vec::new();
        let mut current: Option<(u64, String)> = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("DUSN ") {
                if let Some((dusn, ct)) = current.take() {
                    vectors.push((dusn, hex(&ct)));
                }
                current = Some((u64::from_str_radix(rest, 16).unwrap(), String::new()));
            } else if !line.is_empty() && !line.starts_with('#') {
                current.as_mut().unwrap().1.push_str(line);
            }
        }
        vectors.extend(current.map(|(dusn, ct)| (dusn, hex(&ct))));
        vectors
    }

    fn ieee_key() -> [u8; KEY_LEN] {
        let key = hex(
            "2718281828459045235360287471352662497757247093699959574966967627
             3141592653589793238462643383279502884197169399375105820974944592",
        );
        key.try_into().unwrap()
    }

    fn ieee_plaintext() -> Vec<u8> {
        (0..512).map(|i| i as u8).collect()
    }

    #[test]
    fn ieee1619_vectors_10_to_14_encrypt() {
        let vectors = ieee_vectors();
        assert_eq!(vectors.len(), 5, "vectors 10 to 14");
        for mut subject in subjects(&ieee_key()) {
            for (dusn, expected) in &vectors {
                let mut out = [0u8; 512];
                subject
                    .encrypt(DataUnit::Bytes512, *dusn, &ieee_plaintext(), &mut out)
                    .unwrap();
                assert_eq!(
                    out.as_slice(),
                    expected.as_slice(),
                    "{}, DUSN {dusn:#x}",
                    subject.name
                );
            }
        }
    }

    #[test]
    fn ieee1619_vectors_10_to_14_decrypt() {
        for mut subject in subjects(&ieee_key()) {
            for (dusn, ciphertext) in ieee_vectors() {
                let mut buf = ciphertext.clone();
                subject
                    .decrypt_in_place(DataUnit::Bytes512, dusn, &mut buf)
                    .unwrap();
                assert_eq!(buf, ieee_plaintext(), "{}, DUSN {dusn:#x}", subject.name);
                let mut out = [0u8; 512];
                subject
                    .decrypt(DataUnit::Bytes512, dusn, &ciphertext, &mut out)
                    .unwrap();
                assert_eq!(
                    out.as_slice(),
                    ieee_plaintext().as_slice(),
                    "{}",
                    subject.name
                );
            }
        }
    }

    /// Each vector's unit in the middle of a longer call, at every position of a batch of
    /// unit tweaks (eight for XMM and YMM, four for ZMM) and past two batches: it must come
    /// out the same.
    #[test]
    fn ieee1619_vectors_at_every_position_of_a_call() {
        for mut subject in subjects(&ieee_key()) {
            for (dusn, expected) in ieee_vectors() {
                for lane in 0..18u64 {
                    let units = 19;
                    let plain: Vec<u8> = ieee_plaintext().repeat(units);
                    let mut out = std::vec![0u8; plain.len()];
                    subject
                        .encrypt(DataUnit::Bytes512, dusn - lane, &plain, &mut out)
                        .unwrap();
                    let lane = lane as usize;
                    assert_eq!(
                        &out[lane * 512..(lane + 1) * 512],
                        expected.as_slice(),
                        "{}, DUSN {dusn:#x} at unit {lane}",
                        subject.name
                    );
                }
            }
        }
    }

    #[test]
    fn tweak_doubling_carries_into_the_reduction_polynomial() {
        use portable::next_tweak;
        assert_eq!(next_tweak(1), 2);
        assert_eq!(next_tweak(1 << 63), 1 << 64);
        assert_eq!(next_tweak(1 << 126), 1 << 127);
        assert_eq!(next_tweak(1 << 127), 0x87);
        assert_eq!(next_tweak(u128::MAX), (u128::MAX << 1) ^ 0x87);
    }

    /// Dropping an expanded key overwrites its schedules, in both backends: hundreds of the
    /// bytes the value occupied turn to zero. (Not all of them: the bytes of the enum beyond
    /// the AES-NI variant are whatever the move carried, and the drop has no business there.)
    #[test]
    #[expect(unsafe_code, reason = "reads the bytes a dropped value occupied")]
    fn expanded_keys_are_wiped_when_dropped() {
        use core::mem::{size_of, MaybeUninit};
        for backend in [
            Backend::Portable,
            Backend::AesNi,
            Backend::Vaes256,
            Backend::Vaes512,
        ] {
            let Some(xts) = XtsAes256::exactly(&ieee_key(), backend).unwrap() else {
                continue;
            };
            let mut slot = MaybeUninit::new(xts);
            let bytes = |slot: &MaybeUninit<XtsAes256>| {
                // SAFETY: the slot's storage is readable, `size_of` bytes; only copied.
                unsafe {
                    core::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), size_of::<XtsAes256>())
                }
                .to_vec()
            };
            let before = bytes(&slot);
            // SAFETY: initialized above, dropped once.
            unsafe { slot.assume_init_drop() };
            let after = bytes(&slot);
            let wiped = before
                .iter()
                .zip(&after)
                .filter(|&(&was, &is)| was != 0 && is == 0)
                .count();
            assert!(wiped > 400, "{backend:?}: only {wiped} bytes wiped");
        }
    }

    /// Wiping overwrites the schedules where they are, in every backend: the value's memory
    /// holds none of the key's 16-byte round keys any more (the hardware backends keep the
    /// first two round keys of each schedule verbatim: found before, gone after), hundreds of
    /// its bytes turn to zero, and every transform is refused.
    /// What `wipe` relies on: a value of all-zero bytes is `Engine::Wiped`.
    #[test]
    #[expect(unsafe_code, reason = "reads a zeroed engine")]
    fn an_engine_of_zero_bytes_is_wiped() {
        // SAFETY: `Engine` is `repr(u8)` with `Wiped` = 0 and no fields: zero bytes are it.
        let engine: Engine = unsafe { core::mem::zeroed() };
        assert!(matches!(engine, Engine::Wiped));
    }

    #[test]
    #[expect(unsafe_code, reason = "reads the bytes of a value in place")]
    fn wiping_zeroes_the_schedules_in_place() {
        use core::mem::size_of;
        let key = ieee_key();
        for backend in [
            Backend::Portable,
            Backend::AesNi,
            Backend::Vaes256,
            Backend::Vaes512,
        ] {
            let Some(mut xts) = XtsAes256::exactly(&key, backend).unwrap() else {
                continue;
            };
            let bytes = |xts: &XtsAes256| {
                // SAFETY: the value's storage is `size_of` readable bytes; only copied.
                unsafe {
                    core::slice::from_raw_parts(
                        core::ptr::from_ref(xts).cast::<u8>(),
                        size_of::<XtsAes256>(),
                    )
                }
                .to_vec()
            };
            let holds = |bytes: &[u8]| key.chunks(16).any(|k| bytes.windows(16).any(|w| w == k));
            let before = bytes(&xts);
            assert!(!xts.is_wiped());
            xts.wipe();
            let after = bytes(&xts);
            assert!(xts.is_wiped());
            if backend != Backend::Portable {
                assert!(holds(&before), "{backend:?}: the round keys to look for");
            }
            assert!(
                !holds(&after),
                "{backend:?}: a round key left after the wipe"
            );
            let wiped = before
                .iter()
                .zip(&after)
                .filter(|&(&was, &is)| was != 0 && is == 0)
                .count();
            assert!(wiped > 400, "{backend:?}: only {wiped} bytes wiped");
            let mut out = [0u8; 512];
            assert_eq!(
                xts.encrypt_units(DataUnit::Bytes512, 0, &[1; 512], &mut out),
                Err(XtsError::KeysWiped)
            );
            assert_eq!(out, [0; 512], "{backend:?}: wrote after the wipe");
            assert_eq!(
                xts.decrypt_units_in_place(DataUnit::Bytes512, 0, &mut out),
                Err(XtsError::KeysWiped)
            );
            assert_eq!(xts.backend(), Backend::Auto);
            assert_eq!(xts.state_len(), 0);
            drop(xts);
        }
    }

    #[test]
    fn keys_are_never_printed() {
        let xts = XtsAes256::new(&ieee_key()).unwrap();
        assert_eq!(std::format!("{xts:?}"), "XtsAes256 { .. }");
    }

    #[test]
    fn data_units() {
        assert_eq!(DataUnit::from_bytes(512), Some(DataUnit::Bytes512));
        assert_eq!(DataUnit::from_bytes(4096), Some(DataUnit::Bytes4096));
        assert_eq!(DataUnit::from_bytes(1024), None);
        assert_eq!(DataUnit::Bytes512.bytes(), 512);
        assert_eq!(DataUnit::Bytes4096.bytes(), 4096);
    }

    #[test]
    fn backend_names() {
        let names: Vec<_> = Backend::ALL.iter().map(|backend| backend.name()).collect();
        assert_eq!(names, ["auto", "vaes512", "vaes256", "aesni", "portable"]);
        for backend in Backend::ALL {
            assert_eq!(Backend::from_name(backend.name()), Some(backend));
        }
        assert_eq!(Backend::from_name("VAES512"), Some(Backend::Vaes512));
        assert_eq!(Backend::from_name("avx"), None);
    }

    #[test]
    fn refuses_equal_halves_and_partial_units() {
        assert_eq!(
            XtsAes256::new(&[7u8; KEY_LEN]).unwrap_err(),
            XtsError::KeyHalvesEqual
        );
        for backend in Backend::ALL {
            assert_eq!(
                XtsAes256::exactly(&[7u8; KEY_LEN], backend).err(),
                Some(XtsError::KeyHalvesEqual)
            );
            assert_eq!(
                XtsAes256::with_backend(&[7u8; KEY_LEN], backend).err(),
                Some(XtsError::KeyHalvesEqual)
            );
        }
        for mut subject in subjects(&ieee_key()) {
            let name = subject.name.clone();
            let mut out = [0u8; 1024];
            assert_eq!(
                subject.encrypt(DataUnit::Bytes512, 0, &[0u8; 1000], &mut out[..1000]),
                Err(XtsError::PartialDataUnit { len: 1000 }),
                "{name}"
            );
            assert_eq!(
                subject.encrypt(DataUnit::Bytes512, 0, &[0u8; 512], &mut out),
                Err(XtsError::LengthMismatch {
                    source: 512,
                    destination: 1024
                })
            );
            assert!(subject
                .decrypt_in_place(DataUnit::Bytes4096, 0, &mut out)
                .is_err());
            assert_eq!(
                subject.decrypt(DataUnit::Bytes512, 0, &[0u8; 512], &mut out[..511]),
                Err(XtsError::LengthMismatch {
                    source: 512,
                    destination: 511
                })
            );
            assert_eq!(out, [0u8; 1024], "{name}: nothing written on error");
            // Nothing at all is no error, and writes nothing.
            subject
                .encrypt(DataUnit::Bytes512, 0, &[], &mut [])
                .unwrap();
            subject
                .decrypt_in_place(DataUnit::Bytes4096, 0, &mut [])
                .unwrap();
        }
    }

    /// Whether this processor runs `backend`, asked of std (not of the code under test); the
    /// build may force the software path.
    pub(crate) fn processor_runs(backend: Backend) -> bool {
        use std::is_x86_feature_detected as has;
        let aes = !cfg!(aes_force_soft) && has!("aes");
        let vaes = aes && has!("vaes") && has!("vpclmulqdq");
        match backend {
            Backend::Auto | Backend::Portable => true,
            Backend::AesNi => aes,
            Backend::Vaes256 => vaes && has!("avx2"),
            Backend::Vaes512 => {
                vaes && has!("avx2") && has!("avx512f") && has!("avx512bw") && has!("avx512vl")
            }
        }
    }

    /// A backend the tests cannot run here, because the processor lacks it, would let a
    /// broken one pass unseen. That is allowed on a developer's machine, and in CI only when
    /// asked for (`DUMPCRYPT_ALLOW_NO_AESNI=1`, `DUMPCRYPT_ALLOW_NO_VAES256=1`,
    /// `DUMPCRYPT_ALLOW_NO_VAES512=1`): CI's machines have them all. Also fails when the
    /// processor has it but the backend refused to start.
    pub(crate) fn require(backend: Backend) {
        assert!(
            !processor_runs(backend),
            "the processor runs {} but the backend refused to start",
            backend.name()
        );
        if cfg!(aes_force_soft) {
            return;
        }
        let variable = std::format!("DUMPCRYPT_ALLOW_NO_{}", backend.name().to_uppercase());
        let in_ci = std::env::var_os("CI").is_some();
        // The AES-NI one's earlier name, DUMPCRYPT_ALLOW_NO_AES_NI, is still taken.
        let allowed = std::env::var_os(&variable).is_some()
            || backend == Backend::AesNi && std::env::var_os("DUMPCRYPT_ALLOW_NO_AES_NI").is_some();
        assert!(
            !in_ci || allowed,
            "this processor does not run the {} backend: its tests would be skipped (set \
             {variable}=1 to accept that)",
            backend.name()
        );
        std::eprintln!(
            "the processor does not run the {} backend: not tested",
            backend.name()
        );
    }

    /// Kept for the module tests that need AES-NI.
    pub(crate) fn require_aes_ni_unless_allowed() {
        require(Backend::AesNi);
    }

    /// `new` takes the fastest backend the processor runs, and `with_backend` the fastest at
    /// or below the one asked for; `exactly` gives one where the processor runs it.
    #[test]
    fn the_choice_follows_the_processor() {
        let order = [
            Backend::Vaes512,
            Backend::Vaes256,
            Backend::AesNi,
            Backend::Portable,
        ];
        let fastest_from = |cap: usize| {
            *order[cap..]
                .iter()
                .find(|&&backend| processor_runs(backend))
                .unwrap()
        };
        assert_eq!(
            XtsAes256::new(&ieee_key()).unwrap().backend(),
            fastest_from(0)
        );
        assert_eq!(
            XtsAes256::with_backend(&ieee_key(), Backend::Auto)
                .unwrap()
                .backend(),
            fastest_from(0)
        );
        for (cap, &backend) in order.iter().enumerate() {
            assert_eq!(
                XtsAes256::with_backend(&ieee_key(), backend)
                    .unwrap()
                    .backend(),
                fastest_from(cap),
                "at most {}",
                backend.name()
            );
            assert_eq!(backend.available(), processor_runs(backend));
            assert_eq!(
                XtsAes256::exactly(&ieee_key(), backend)
                    .unwrap()
                    .map(|xts| xts.backend()),
                processor_runs(backend).then_some(backend)
            );
            if !processor_runs(backend) {
                require(backend);
            }
        }
        // The state area: needed by the VAES backends only.
        for backend in order {
            if let Some(xts) = XtsAes256::exactly(&ieee_key(), backend).unwrap() {
                let vaes = matches!(backend, Backend::Vaes256 | Backend::Vaes512);
                assert_eq!(xts.state_len() > 0, vaes, "{}", backend.name());
                assert!(xts.state_len() <= core::mem::size_of::<StateArea>());
                assert!(!xts.has_state_area());
            }
        }
    }

    /// Agrees with the independent `xts-mode` crate through every backend, every way of
    /// calling it: random keys, data, lengths (1 to 40 units of 512 bytes, 1 to 9 of 4096)
    /// and first unit numbers, a third of them just below 2^32 or 2^64 so that the call's
    /// units carry across 32 and 64 bits; encryption, and both decryptions.
    #[test]
    fn agrees_with_xts_mode_crate() {
        use aes::cipher::KeyInit as _;
        let mut rng = Rng::new(0x5eed);
        for round in 0..12 {
            let key: [u8; KEY_LEN] = rng.bytes(KEY_LEN).try_into().unwrap();
            let oracle = xts_mode::Xts128::<Aes256>::new(
                Aes256::new(GenericArray::from_slice(&key[..32])),
                Aes256::new(GenericArray::from_slice(&key[32..])),
            );
            let mut subjects = subjects(&key);
            for _ in 0..6 {
                let (unit, units) = if rng.below(2) == 0 {
                    (DataUnit::Bytes512, 1 + rng.below(40) as usize)
                } else {
                    (DataUnit::Bytes4096, 1 + rng.below(9) as usize)
                };
                let first = match rng.below(3) {
                    0 => (1u64 << 32) - 1 - rng.below(units as u64),
                    1 => u64::MAX - rng.below(units as u64 + 2),
                    _ => rng.next(),
                };
                let plain = rng.bytes(unit.bytes() * units);
                let mut expected = plain.clone();
                oracle.encrypt_area(&mut expected, unit.bytes(), first.into(), |n| {
                    n.to_le_bytes()
                });
                for subject in &mut subjects {
                    let what = std::format!(
                        "{}, round {round}, {units} × {unit:?} from {first:#x}",
                        subject.name
                    );
                    let mut ours = std::vec![0u8; plain.len()];
                    subject.encrypt(unit, first, &plain, &mut ours).unwrap();
                    assert_eq!(ours, expected, "{what}");
                    let mut copy = std::vec![0u8; plain.len()];
                    subject.decrypt(unit, first, &ours, &mut copy).unwrap();
                    assert_eq!(copy, plain, "{what}");
                    subject.decrypt_in_place(unit, first, &mut ours).unwrap();
                    assert_eq!(ours, plain, "{what}");
                }
            }
        }
    }

    /// All backends agree on a large call (2 MiB, both data units) from a random unit number.
    #[test]
    fn backends_agree_on_a_large_call() {
        let mut rng = Rng::new(7);
        let key: [u8; KEY_LEN] = rng.bytes(KEY_LEN).try_into().unwrap();
        let plain = rng.bytes(2 << 20);
        let first = rng.next();
        for unit in [DataUnit::Bytes512, DataUnit::Bytes4096] {
            let mut reference: Option<Vec<u8>> = None;
            for mut subject in subjects(&key) {
                let mut out = std::vec![0u8; plain.len()];
                subject.encrypt(unit, first, &plain, &mut out).unwrap();
                match &reference {
                    None => reference = Some(out.clone()),
                    Some(reference) => assert!(out == *reference, "{}", subject.name),
                }
                subject.decrypt_in_place(unit, first, &mut out).unwrap();
                assert!(out == plain, "{}", subject.name);
            }
        }
    }
}
