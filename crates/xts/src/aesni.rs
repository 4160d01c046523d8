//! The XMM backend: XTS-AES-256 with AES-NI on XMM registers, legacy SSE encodings only.
//!
//! - Its own AES-256 key expansion (`aeskeygenassist`; the decryption schedule by `aesimc`)
//!   for the data key and the tweak key, in `#[target_feature(enable = "aes,sse2")]` Rust.
//!   The VAES backends (`vaes.rs`) use the same schedules.
//! - The transform is one `asm!` block per call ([`xmm_kernel!`]), so that the schedule is
//!   the one written here and not the compiler's (docs/performance.md: the compiler's
//!   register allocation and scheduling kept the intrinsics version at 0.81 × OpenSSL):
//!   - eight blocks in flight, every round key applied to the eight before the next one;
//!   - round keys 0 and 14 held in registers, the others loaded once per round for all eight;
//!   - the tweaks of the group in flight are in memory (16-byte aligned scratch on the
//!     stack), read by the whitening XORs before and after the rounds; the tweaks of the
//!     *next* group are computed while the rounds run, by doubling (× α in GF(2^128):
//!     `pshufd`/`psrad`/`pand`/`paddq`/`pxor`) one tweak after the other and storing each,
//!     so that the chain of doublings overlaps the AES work instead of preceding it;
//!   - the first tweaks of the data units, E(tweak key, unit number), are encrypted eight
//!     units at a time, one batch ahead of their use, into a double buffer.
//! - **No VEX, no EVEX, no PCLMULQDQ**: AES-NI and SSE2 only. This backend runs where VAES
//!   does not, including the emulator the driver image is tested in (which has no AVX and no
//!   PCLMULQDQ), and it touches only XMM registers, whose state the compiler already treats
//!   as clobbered by a call (xmm6–15 are saved by the prologue where the ABI says so).
//!   `scripts/test-sys.sh` checks that the image has no VEX or EVEX instruction outside the
//!   VAES backend's section; on Windows targets this backend's kernels are in a section of
//!   their own, `.aesni`, so that the emulator can see that they ran.
//!
//! # Where the unsafe is, and why it holds
//! - Entering the `#[target_feature(enable = "aes,sse2")]` key expansion: an [`AesNiKeys`]
//!   is made only once CPUID reported AES-NI (its type invariant).
//! - The kernels' `asm!`: AES-NI exists (the invariant); the pointers cover the whole units
//!   the kernel reads and writes (checked by the safe callers, see [`AesNiKeys::transform`]);
//!   every XMM register it uses is declared clobbered; the GP registers are operands.
//! - [`load`]: an unaligned 16-byte read through a pointer made from a reference to 16 bytes.
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
use core::arch::x86_64::{
    __m128i, _mm_aesimc_si128, _mm_aeskeygenassist_si128, _mm_loadu_si128, _mm_setzero_si128,
    _mm_shuffle_epi32, _mm_slli_si128, _mm_xor_si128,
};
use core::mem::MaybeUninit;

use zeroize::Zeroize;

use super::{DataUnit, Direction, Job, KEY_LEN};

/// AES-256 rounds.
const ROUNDS: usize = 14;
/// Blocks in flight: one group.
const LANES: usize = 8;
/// Bytes of one group. Both data unit sizes are whole multiples.
const GROUP: usize = LANES * 16;
const _: () = assert!(512 % GROUP == 0 && 4096 % GROUP == 0);

/// The round keys rk0..=rk14 of one AES-256 key, in the order the cipher uses them.
pub(crate) type Schedule = [__m128i; ROUNDS + 1];

/// The expanded XTS-AES-256 key for the hardware backends; wiped when dropped.
///
/// # Invariants
/// The processor running this code has AES-NI and SSE2: a value is made only by
/// [`AesNiKeys::new`], after CPUID reported them. (Dump filters run on the processor that
/// loaded them: the features cannot go away while the driver is loaded.)
pub(crate) struct AesNiKeys {
    /// Data key, encryption: rk0..=rk14.
    pub(crate) encrypt: Schedule,
    /// Data key, equivalent inverse cipher: rk14, aesimc(rk13), .., aesimc(rk1), rk0.
    pub(crate) decrypt: Schedule,
    /// Tweak key, encryption.
    pub(crate) tweak: Schedule,
}

impl AesNiKeys {
    /// Expands `key` (data key ‖ tweak key), or `None` where the processor lacks AES-NI (and
    /// always when built with `--cfg aes_force_soft`, the flag that also makes the `aes` crate
    /// use its software backend).
    pub(crate) fn new(key: &[u8; KEY_LEN], has_aes_ni: bool) -> Option<Self> {
        if cfg!(aes_force_soft) || !has_aes_ni {
            return None;
        }
        // SAFETY: `expand` enables `aes` and `sse2`; the caller's CPUID says the processor has
        // AES-NI, and every x86_64 processor has SSE2.
        let (encrypt, decrypt, tweak) = unsafe { expand(key) };
        // INVARIANT: AES-NI and SSE2 were detected above.
        Some(Self {
            encrypt,
            decrypt,
            tweak,
        })
    }

    /// XTS of the job's whole data units. The caller checked that the lengths are equal
    /// and whole units; a trailing partial unit would be left untouched.
    pub(crate) fn transform(&self, job: &mut Job<'_>) {
        let unit = job.unit;
        let units = job.destination.len() / unit.bytes();
        if units == 0
            || job
                .source
                .is_some_and(|source| source.len() < units * unit.bytes())
        {
            return;
        }
        let to = job.destination.as_mut_ptr();
        let from = job.source.map_or(to.cast_const(), <[u8]>::as_ptr);
        let first_unit = job.first_unit;
        let mut scratch = MaybeUninit::uninit();
        Scratch::init(&mut scratch, unit);
        let kernel: Kernel = match job.direction {
            Direction::Encrypt => xmm_encrypt,
            Direction::Decrypt => xmm_decrypt,
        };
        // SAFETY: `from` (reads) and `to` (writes) hold `units` whole data units (checked
        // above); they are one pointer (in place) or a shared and an exclusive borrow, which
        // cannot overlap. AES-NI is there by the type invariant.
        unsafe { kernel(self, &mut scratch, from, to, units, first_unit) };
    }
}

/// The signature of [`xmm_encrypt`] and [`xmm_decrypt`].
type Kernel = unsafe fn(&AesNiKeys, &mut MaybeUninit<Scratch>, *const u8, *mut u8, usize, u64);

impl Drop for AesNiKeys {
    fn drop(&mut self) {
        self.encrypt.zeroize();
        self.decrypt.zeroize();
        self.tweak.zeroize();
    }
}

/// The XMM kernels' memory: the tweaks of the group in flight and of the next one (two
/// buffers that trade places every group), the unit tweaks of two batches of eight units,
/// the number of groups per data unit, and the doubling constant.
#[repr(C, align(64))]
struct Scratch {
    _bytes: [u8; SCRATCH_LEN],
}

/// T0 (the group in flight or the next one), T1 (the other).
const T0: usize = 0;
const T1: usize = GROUP;
/// The unit tweaks: two batches of [`LANES`] units, [`UNIT_TWEAKS`] and the 128 after it.
const UNIT_TWEAKS: usize = 2 * GROUP;
/// A u64: groups per data unit.
const GROUPS_PER_UNIT: usize = 4 * GROUP;
/// The doubling constant: dwords 0x87, 0, 1, 0 (also qwords 0x87 and 1).
const DOUBLING: usize = GROUPS_PER_UNIT + 16;
const SCRATCH_LEN: usize = DOUBLING + 16;
// The wipe below writes 34 blocks of 16 bytes.
const _: () = assert!(SCRATCH_LEN == 34 * 16);

impl Scratch {
    /// A scratch with what the kernel reads before writing: the group count and the doubling
    /// constant. The rest is written by the kernel before it reads it, and wiped by it before
    /// it returns. Not zeroed here: a `memset` could be a library routine on YMM registers.
    /// Filled in place (`scratch` is uninitialized): returning it by value would be a copy,
    /// and in an unoptimized build a call to `memcpy`.
    fn init(scratch: &mut MaybeUninit<Scratch>, unit: DataUnit) {
        let words = [
            (GROUPS_PER_UNIT, (unit.bytes() / GROUP) as u64),
            (DOUBLING, 0x87),
            (DOUBLING + 8, 1),
        ];
        let base = scratch.as_mut_ptr().cast::<u8>();
        for (offset, value) in words {
            // SAFETY: every offset is a multiple of 8 at most SCRATCH_LEN - 8, in a 64-byte
            // aligned block of SCRATCH_LEN bytes that is ours.
            unsafe { base.wrapping_add(offset).cast::<u64>().write(value) };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The kernels' assembly, put together by macros: `$op`/`$last` are the data rounds'
// mnemonics (aesenc/aesenclast or aesdec/aesdeclast); the tweak key always encrypts.
//
// Registers: xmm0–7 the eight blocks in flight; xmm8 the round key of the round; xmm9 the
// running tweak of the doubling chain, xmm10 its temporary; xmm11 the doubling constant;
// xmm12 and xmm13 round keys 0 and 14 of the data schedule.

/// `$m!(block, byte offset)` for the eight blocks of a group.
macro_rules! eight {
    ($m:ident $(, $arg:literal)*) => {
        concat!(
            $m!(0, 0 $(, $arg)*),
            $m!(1, 16 $(, $arg)*),
            $m!(2, 32 $(, $arg)*),
            $m!(3, 48 $(, $arg)*),
            $m!(4, 64 $(, $arg)*),
            $m!(5, 80 $(, $arg)*),
            $m!(6, 96 $(, $arg)*),
            $m!(7, 112 $(, $arg)*),
        )
    };
}

macro_rules! load_xor_tweak {
    ($i:literal, $d:literal) => {
        concat!(
            "movdqu xmm",
            $i,
            ", xmmword ptr [{src} + ",
            $d,
            "]\n",
            "pxor xmm",
            $i,
            ", xmmword ptr [{cur} + ",
            $d,
            "]\n",
            "pxor xmm",
            $i,
            ", xmm12\n",
        )
    };
}

macro_rules! xor_tweak_store {
    ($i:literal, $d:literal) => {
        concat!(
            "pxor xmm",
            $i,
            ", xmmword ptr [{cur} + ",
            $d,
            "]\n",
            "movdqu xmmword ptr [{dst} + ",
            $d,
            "], xmm",
            $i,
            "\n",
        )
    };
}

/// `$op xmm$i, $key` (one round of one block).
macro_rules! round_of {
    ($i:literal, $d:literal, $op:literal, $key:literal) => {
        concat!($op, " xmm", $i, ", ", $key, "\n")
    };
}

/// One round of the eight blocks with the round key at byte `$offset` of `$schedule`.
macro_rules! round8 {
    ($op:literal, $schedule:literal, $offset:literal) => {
        concat!(
            "movdqa xmm8, xmmword ptr [",
            $schedule,
            " + ",
            $offset,
            "]\n",
            eight!(round_of, $op, "xmm8"),
        )
    };
}

/// Stores the running tweak as the next group's `$d / 16`-th and doubles it.
macro_rules! chain_step {
    ($d:literal) => {
        concat!(
            "movdqa xmmword ptr [{nxt} + ",
            $d,
            "], xmm9\n",
            "pshufd xmm10, xmm9, 0x13\n",
            "psrad xmm10, 31\n",
            "pand xmm10, xmm11\n",
            "paddq xmm9, xmm9\n",
            "pxor xmm9, xmm10\n",
        )
    };
}

/// One group: eight blocks of `{src}` into `{dst}` with the tweaks at `{cur}`, while the
/// next group's tweaks are written to `{nxt}` from the running tweak in xmm9.
macro_rules! group {
    ($op:literal, $last:literal) => {
        concat!(
            eight!(load_xor_tweak),
            round8!($op, "{key}", 16),
            chain_step!(0),
            round8!($op, "{key}", 32),
            chain_step!(16),
            round8!($op, "{key}", 48),
            chain_step!(32),
            round8!($op, "{key}", 64),
            chain_step!(48),
            round8!($op, "{key}", 80),
            chain_step!(64),
            round8!($op, "{key}", 96),
            chain_step!(80),
            round8!($op, "{key}", 112),
            chain_step!(96),
            round8!($op, "{key}", 128),
            chain_step!(112),
            round8!($op, "{key}", 144),
            round8!($op, "{key}", 160),
            round8!($op, "{key}", 176),
            round8!($op, "{key}", 192),
            round8!($op, "{key}", 208),
            eight!(round_of, $last, "xmm13"),
            eight!(xor_tweak_store),
        )
    };
}

macro_rules! counter_block {
    ($i:literal, $d:literal) => {
        concat!(
            "movq xmm",
            $i,
            ", {lo}\n",
            "movq xmm8, {hi}\n",
            "punpcklqdq xmm",
            $i,
            ", xmm8\n",
            "add {lo}, 1\n",
            "adc {hi}, 0\n",
        )
    };
}

macro_rules! xor_xmm8 {
    ($i:literal, $d:literal) => {
        concat!("pxor xmm", $i, ", xmm8\n")
    };
}

macro_rules! store_unit_tweak {
    ($i:literal, $d:literal) => {
        concat!("movdqa xmmword ptr [{tmp} + ", $d, "], xmm", $i, "\n")
    };
}

/// The unit tweaks of the next eight unit numbers (`{hi}:{lo}`, advanced by eight) into the
/// eight slots at `{tmp}`. Uses xmm0–8.
macro_rules! unit_tweak_batch {
    () => {
        concat!(
            eight!(counter_block),
            "movdqa xmm8, xmmword ptr [{tkey}]\n",
            eight!(xor_xmm8),
            round8!("aesenc", "{tkey}", 16),
            round8!("aesenc", "{tkey}", 32),
            round8!("aesenc", "{tkey}", 48),
            round8!("aesenc", "{tkey}", 64),
            round8!("aesenc", "{tkey}", 80),
            round8!("aesenc", "{tkey}", 96),
            round8!("aesenc", "{tkey}", 112),
            round8!("aesenc", "{tkey}", 128),
            round8!("aesenc", "{tkey}", 144),
            round8!("aesenc", "{tkey}", 160),
            round8!("aesenc", "{tkey}", 176),
            round8!("aesenc", "{tkey}", 192),
            round8!("aesenc", "{tkey}", 208),
            round8!("aesenclast", "{tkey}", 224),
            eight!(store_unit_tweak),
        )
    };
}

/// Zeroes the scratch (tweaks) and the registers that held round keys and tweaks.
macro_rules! wipe {
    () => {
        concat!(
            "pxor xmm0, xmm0\n",
            "movdqa xmmword ptr [{scr}], xmm0\n",
            "movdqa xmmword ptr [{scr} + 16], xmm0\n",
            "movdqa xmmword ptr [{scr} + 32], xmm0\n",
            "movdqa xmmword ptr [{scr} + 48], xmm0\n",
            "movdqa xmmword ptr [{scr} + 64], xmm0\n",
            "movdqa xmmword ptr [{scr} + 80], xmm0\n",
            "movdqa xmmword ptr [{scr} + 96], xmm0\n",
            "movdqa xmmword ptr [{scr} + 112], xmm0\n",
            "movdqa xmmword ptr [{scr} + 128], xmm0\n",
            "movdqa xmmword ptr [{scr} + 144], xmm0\n",
            "movdqa xmmword ptr [{scr} + 160], xmm0\n",
            "movdqa xmmword ptr [{scr} + 176], xmm0\n",
            "movdqa xmmword ptr [{scr} + 192], xmm0\n",
            "movdqa xmmword ptr [{scr} + 208], xmm0\n",
            "movdqa xmmword ptr [{scr} + 224], xmm0\n",
            "movdqa xmmword ptr [{scr} + 240], xmm0\n",
            "movdqa xmmword ptr [{scr} + 256], xmm0\n",
            "movdqa xmmword ptr [{scr} + 272], xmm0\n",
            "movdqa xmmword ptr [{scr} + 288], xmm0\n",
            "movdqa xmmword ptr [{scr} + 304], xmm0\n",
            "movdqa xmmword ptr [{scr} + 320], xmm0\n",
            "movdqa xmmword ptr [{scr} + 336], xmm0\n",
            "movdqa xmmword ptr [{scr} + 352], xmm0\n",
            "movdqa xmmword ptr [{scr} + 368], xmm0\n",
            "movdqa xmmword ptr [{scr} + 384], xmm0\n",
            "movdqa xmmword ptr [{scr} + 400], xmm0\n",
            "movdqa xmmword ptr [{scr} + 416], xmm0\n",
            "movdqa xmmword ptr [{scr} + 432], xmm0\n",
            "movdqa xmmword ptr [{scr} + 448], xmm0\n",
            "movdqa xmmword ptr [{scr} + 464], xmm0\n",
            "movdqa xmmword ptr [{scr} + 480], xmm0\n",
            "movdqa xmmword ptr [{scr} + 496], xmm0\n",
            "movdqa xmmword ptr [{scr} + 512], xmm0\n",
            "movdqa xmmword ptr [{scr} + 528], xmm0\n",
            "pxor xmm8, xmm8\n",
            "pxor xmm9, xmm9\n",
            "pxor xmm10, xmm10\n",
            "pxor xmm12, xmm12\n",
            "pxor xmm13, xmm13\n",
        )
    };
}

/// Defines one XMM kernel (see the module documentation for the algorithm).
macro_rules! xmm_kernel {
    ($(#[$doc:meta])* $name:ident, $schedule:ident, $op:literal, $last:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The processor has AES-NI; `source` and `destination` are valid for `units` ≥ 1
        /// whole data units of the size `scratch` was made for (reads, and writes), and
        /// are equal or do not overlap.
        #[inline(never)]
        #[cfg_attr(target_os = "windows", link_section = ".aesni")]
        unsafe fn $name(
            keys: &AesNiKeys,
            scratch: &mut MaybeUninit<Scratch>,
            source: *const u8,
            destination: *mut u8,
            units: usize,
            first_unit: u64,
        ) {
            let base = scratch.as_mut_ptr().cast::<u8>();
            // SAFETY: the caller's contract for the data; `keys` is three 16-byte aligned
            // 240-byte schedules; every scratch offset below lies in its 64-byte aligned
            // SCRATCH_LEN bytes; XMM registers are clobbered, GP registers are operands, and
            // only AES-NI and SSE2 instructions are used.
            unsafe {
                asm!(
                    "movdqa xmm11, xmmword ptr [{scr} + {doubling}]",
                    "movdqa xmm12, xmmword ptr [{key}]",
                    "movdqa xmm13, xmmword ptr [{key} + 224]",
                    // The unit tweaks of the first sixteen units, in both buffers.
                    "lea {tmp}, [{scr} + {unit_tweaks}]",
                    unit_tweak_batch!(),
                    "lea {tmp}, [{scr} + {unit_tweaks} + 128]",
                    unit_tweak_batch!(),
                    "xor {ui:e}, {ui:e}",
                    // The first group's tweaks; xmm9 then runs one group ahead.
                    "movdqa xmm9, xmmword ptr [{scr} + {unit_tweaks}]",
                    "mov {tmp}, {nxt}",
                    "mov {nxt}, {cur}",
                    chain_step!(0), chain_step!(16), chain_step!(32), chain_step!(48),
                    chain_step!(64), chain_step!(80), chain_step!(96), chain_step!(112),
                    "mov {nxt}, {tmp}",
                    "mov {g}, qword ptr [{scr} + {groups}]",
                    "2:",
                    // Is the next group the first of the next unit?
                    "cmp {g}, 1",
                    "jne 3f",
                    "cmp {units}, 1",
                    "je 3f",
                    "add {ui:e}, 16",
                    "and {ui:e}, 255",
                    "test {ui:e}, 127",
                    "jnz 4f",
                    // The next unit opens a batch: encrypt the one after it into the
                    // buffer the previous batch used.
                    "mov {tmp:e}, {ui:e}",
                    "xor {tmp:e}, 128",
                    "lea {tmp}, [{scr} + {tmp} + {unit_tweaks}]",
                    unit_tweak_batch!(),
                    "4:",
                    "lea {tmp}, [{scr} + {ui} + {unit_tweaks}]",
                    "movdqa xmm9, xmmword ptr [{tmp}]",
                    "3:",
                    group!($op, $last),
                    "add {src}, 128",
                    "add {dst}, 128",
                    "xchg {cur}, {nxt}",
                    "sub {g}, 1",
                    "jnz 2b",
                    "sub {units}, 1",
                    "jz 5f",
                    "mov {g}, qword ptr [{scr} + {groups}]",
                    "jmp 2b",
                    "5:",
                    wipe!(),
                    src = inout(reg) source => _,
                    dst = inout(reg) destination => _,
                    units = inout(reg) units => _,
                    g = out(reg) _,
                    key = in(reg) keys.$schedule.as_ptr(),
                    tkey = in(reg) keys.tweak.as_ptr(),
                    cur = inout(reg) base.wrapping_add(T0) => _,
                    nxt = inout(reg) base.wrapping_add(T1) => _,
                    scr = in(reg) base,
                    lo = inout(reg) first_unit => _,
                    hi = inout(reg) 0u64 => _,
                    ui = out(reg) _,
                    tmp = out(reg) _,
                    unit_tweaks = const UNIT_TWEAKS,
                    groups = const GROUPS_PER_UNIT,
                    doubling = const DOUBLING,
                    out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                    out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                    out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                    out("xmm12") _, out("xmm13") _,
                    options(nostack),
                );
            }
        }
    };
}

xmm_kernel!(
    /// XTS encryption of whole data units on XMM registers.
    xmm_encrypt, encrypt, "aesenc", "aesenclast"
);
xmm_kernel!(
    /// XTS decryption of whole data units on XMM registers.
    xmm_decrypt, decrypt, "aesdec", "aesdeclast"
);

// ---------------------------------------------------------------------------------------------
// Key expansion.

/// Returns (data key encryption, data key decryption, tweak key encryption) schedules.
#[target_feature(enable = "aes,sse2")]
fn expand(key: &[u8; KEY_LEN]) -> (Schedule, Schedule, Schedule) {
    let mut words = [_mm_setzero_si128(); 4];
    for (word, bytes) in words.iter_mut().zip(pieces::<16>(key)) {
        *word = load(bytes);
    }
    let encrypt = expand_encryption(words[0], words[1]);
    let decrypt = expand_decryption(&encrypt);
    let tweak = expand_encryption(words[2], words[3]);
    words.zeroize();
    (encrypt, decrypt, tweak)
}

/// The AES-256 key schedule (FIPS 197 §5.2) of the key `low ‖ high`, by `aeskeygenassist`.
#[target_feature(enable = "aes,sse2")]
fn expand_encryption(low: __m128i, high: __m128i) -> Schedule {
    let mut schedule = [_mm_setzero_si128(); ROUNDS + 1];
    let (mut even, mut odd) = (low, high);
    schedule[0] = even;
    schedule[1] = odd;
    // Round keys 2i and 2i + 1: w[8i..8i+4] from SubWord(RotWord(w[8i-1])) ⊕ rcon (dword 3
    // of `aeskeygenassist`), w[8i+4..8i+8] from SubWord(w[8i+3]) (its dword 2).
    macro_rules! round_keys {
        ($index:literal, $rcon:literal) => {
            even = mix(
                even,
                _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(odd)),
            );
            schedule[$index] = even;
            odd = mix(
                odd,
                _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(even)),
            );
            schedule[$index + 1] = odd;
        };
    }
    round_keys!(2, 0x01);
    round_keys!(4, 0x02);
    round_keys!(6, 0x04);
    round_keys!(8, 0x08);
    round_keys!(10, 0x10);
    round_keys!(12, 0x20);
    even = mix(
        even,
        _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<0x40>(odd)),
    );
    schedule[14] = even;
    schedule
}

/// `previous` with each dword XORed with all below it, then with `assist` (the key
/// schedule's word recurrence, four words at once).
#[inline]
#[target_feature(enable = "sse2")]
fn mix(previous: __m128i, assist: __m128i) -> __m128i {
    let word = _mm_xor_si128(previous, _mm_slli_si128::<4>(previous));
    let word = _mm_xor_si128(word, _mm_slli_si128::<8>(word));
    _mm_xor_si128(word, assist)
}

/// The equivalent inverse cipher's schedule (FIPS 197 §5.3.5) for `aesdec`: the encryption
/// round keys in reverse, InvMixColumns applied to all but the first and the last.
#[target_feature(enable = "aes,sse2")]
fn expand_decryption(encrypt: &Schedule) -> Schedule {
    let mut decrypt = [_mm_setzero_si128(); ROUNDS + 1];
    decrypt[0] = encrypt[ROUNDS];
    decrypt[ROUNDS] = encrypt[0];
    for (inverse, key) in decrypt[1..ROUNDS]
        .iter_mut()
        .zip(encrypt[1..ROUNDS].iter().rev())
    {
        *inverse = _mm_aesimc_si128(*key);
    }
    decrypt
}

/// The whole `N`-byte pieces of `bytes`, as arrays (a shorter tail is left out).
#[inline(always)]
fn pieces<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = &[u8; N]> {
    bytes
        .chunks_exact(N)
        .filter_map(|piece| <&[u8; N]>::try_from(piece).ok())
}

/// The 16 bytes as an XMM value, byte 0 in the lowest lane.
#[inline]
#[target_feature(enable = "sse2")]
fn load(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: the pointer comes from a reference to 16 readable bytes, and `_mm_loadu_si128`
    // reads exactly 16 bytes from it with no alignment requirement (`movdqu`).
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::arch::x86_64::{
        _mm_aesdec_si128, _mm_aesdeclast_si128, _mm_aesenc_si128, _mm_aesenclast_si128,
        _mm_storeu_si128,
    };

    /// FIPS 197 Appendix C.3: AES-256 of one block through the schedules made here.
    #[test]
    fn key_expansion_matches_fips_197() {
        let mut key = [0u8; KEY_LEN];
        for (i, byte) in key.iter_mut().enumerate() {
            // Data key 00..1f; the tweak key differs.
            *byte = if i < 32 { i as u8 } else { 0xa5 };
        }
        let Some(keys) = AesNiKeys::new(&key, std::is_x86_feature_detected!("aes")) else {
            super::super::tests::require_aes_ni_unless_allowed();
            return;
        };
        let plain: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        let expected = [
            0x8e, 0xa2, 0xb7, 0xca, 0x51, 0x67, 0x45, 0xbf, 0xea, 0xfc, 0x49, 0x90, 0x4b, 0x49,
            0x60, 0x89,
        ];
        // SAFETY: `ecb_round_trip` enables `aes` and `sse2`; `keys` exists, so this processor
        // has them (the type invariant of `AesNiKeys`).
        let (encrypted, decrypted) = unsafe { ecb_round_trip(&keys, &plain) };
        assert_eq!(encrypted, expected);
        assert_eq!(decrypted, plain);
    }

    /// `plain` through the data key's schedules, one block, without tweaks.
    #[target_feature(enable = "aes,sse2")]
    fn ecb_round_trip(keys: &AesNiKeys, plain: &[u8; 16]) -> ([u8; 16], [u8; 16]) {
        let mut state = _mm_xor_si128(load(plain), keys.encrypt[0]);
        for key in &keys.encrypt[1..ROUNDS] {
            state = _mm_aesenc_si128(state, *key);
        }
        let encrypted = _mm_aesenclast_si128(state, keys.encrypt[ROUNDS]);
        let mut state = _mm_xor_si128(encrypted, keys.decrypt[0]);
        for key in &keys.decrypt[1..ROUNDS] {
            state = _mm_aesdec_si128(state, *key);
        }
        let decrypted = _mm_aesdeclast_si128(state, keys.decrypt[ROUNDS]);
        let mut out = ([0u8; 16], [0u8; 16]);
        // SAFETY: each pointer comes from an exclusive reference to 16 writable bytes.
        unsafe { _mm_storeu_si128(out.0.as_mut_ptr().cast(), encrypted) };
        // SAFETY: as above.
        unsafe { _mm_storeu_si128(out.1.as_mut_ptr().cast(), decrypted) };
        out
    }
}
