//! The AES-NI XTS backend: XTS-AES-256 on XMM registers, and the one module of `xts` with `unsafe`.
//!
//! It does what OpenSSL's `aesni_xts_encrypt` does, in Rust intrinsics:
//! - its own AES-256 key expansion (`aeskeygenassist`; the decryption schedule by `aesimc`)
//!   for the data key and the tweak key;
//! - eight blocks in flight: every round key is applied to eight blocks before the next one;
//! - the tweak folded into the cipher: the input is XORed with `tweak ⊕ rk0` (one XOR instead
//!   of two) and the last round is `aesenclast(state, rk14 ⊕ tweak)`, which is
//!   `aesenclast(state, rk14) ⊕ tweak`, so no pass over the output is needed;
//! - the tweaks doubled (× α in GF(2^128)) in XMM registers with SSE2 ([`double`]);
//! - the first tweaks of eight data units encrypted together, eight in flight.
//!
//! **XMM only** (docs/design.md: the YMM/ZMM state is not saved at HIGH_LEVEL). The functions
//! that use AES-NI enable `aes` and `sse2` (baseline on x86_64) and nothing else, so the
//! compiler can only emit legacy-SSE encodings on `xmm0`–`xmm15`: no VEX, no EVEX
//! (scripts/test-sys.sh checks the driver image for them). Nothing here allocates or panics.
//!
//! # Where the unsafe is, and why it holds
//! - Entering a `#[target_feature(enable = "aes,sse2")]` function from code compiled without
//!   those features ([`AesNiKeys::new`] and its three transform methods): an [`AesNiKeys`]
//!   exists only once `cpufeatures` has seen AES-NI on this processor (its type invariant).
//! - [`load`] and [`store`]: unaligned 16-byte accesses through pointers made from references
//!   to exactly 16 bytes.
//! - In the tests only: entering `sse2` functions (every x86_64 processor has SSE2) and an
//!   `aes,sse2` one with an [`AesNiKeys`] in hand.
//!
//! Two `core::hint::black_box` calls in [`group`] are optimization barriers for the register
//! allocator and scheduler, not for correctness (see there and docs/performance.md).
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

use core::arch::x86_64::{
    __m128i, _mm_add_epi64, _mm_aesdec_si128, _mm_aesdeclast_si128, _mm_aesenc_si128,
    _mm_aesenclast_si128, _mm_aesimc_si128, _mm_aeskeygenassist_si128, _mm_and_si128,
    _mm_loadu_si128, _mm_set_epi32, _mm_set_epi64x, _mm_setzero_si128, _mm_shuffle_epi32,
    _mm_slli_si128, _mm_srai_epi32, _mm_storeu_si128, _mm_xor_si128,
};

use zeroize::Zeroize;

use super::{DataUnit, KEY_LEN};

// `cpuid_aes::get()`: whether the processor has AES-NI (CPUID, cached; works in kernel mode).
cpufeatures::new!(cpuid_aes, "aes", "sse2");

/// AES-256 rounds.
const ROUNDS: usize = 14;
/// Blocks in flight.
const LANES: usize = 8;
/// Bytes of one group of [`LANES`] blocks. Both data unit sizes are whole multiples.
const GROUP: usize = LANES * 16;
const _: () = assert!(512 % GROUP == 0 && 4096 % GROUP == 0);

/// The round keys rk0..=rk14 of one AES-256 key, in the order the cipher uses them.
type Schedule = [__m128i; ROUNDS + 1];

/// The expanded XTS-AES-256 key for the AES-NI backend; wiped when dropped.
///
/// # Invariants
/// The processor running this code has AES-NI and SSE2: a value is made only by
/// [`AesNiKeys::new`], after `cpufeatures` detected them. (Dump filters run on the processor
/// that loaded them: the features cannot go away while the driver is loaded.)
pub(super) struct AesNiKeys {
    /// Data key, encryption: rk0..=rk14.
    encrypt: Schedule,
    /// Data key, equivalent inverse cipher: rk14, aesimc(rk13), .., aesimc(rk1), rk0.
    decrypt: Schedule,
    /// Tweak key, encryption.
    tweak: Schedule,
}

impl AesNiKeys {
    /// Expands `key` (data key ‖ tweak key), or `None` where the processor lacks AES-NI (and
    /// always when built with `--cfg aes_force_soft`, the flag that also makes the `aes` crate
    /// use its software backend).
    pub(super) fn new(key: &[u8; KEY_LEN]) -> Option<Self> {
        if cfg!(aes_force_soft) || !cpuid_aes::get() {
            return None;
        }
        // SAFETY: `expand` enables `aes` and `sse2`; `cpuid_aes::get()` just returned true, so
        // this processor has both.
        let (encrypt, decrypt, tweak) = unsafe { expand(key) };
        // INVARIANT: AES-NI and SSE2 were detected above.
        Some(Self {
            encrypt,
            decrypt,
            tweak,
        })
    }

    /// Encrypts `source` into `destination`: equal lengths, whole data units (the caller
    /// checked); a trailing partial unit would be left untouched.
    pub(super) fn encrypt_units(
        &self,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) {
        // SAFETY: `copy` enables `aes` and `sse2`, which this processor has by the type
        // invariant.
        unsafe { copy::<false>(self, unit, first_unit, source, destination) }
    }

    /// Decrypts `source` into `destination`: equal lengths, whole data units.
    pub(super) fn decrypt_units(
        &self,
        unit: DataUnit,
        first_unit: u64,
        source: &[u8],
        destination: &mut [u8],
    ) {
        // SAFETY: `copy` enables `aes` and `sse2`, which this processor has by the type
        // invariant.
        unsafe { copy::<true>(self, unit, first_unit, source, destination) }
    }

    /// Decrypts `buffer` (whole data units) in place.
    pub(super) fn decrypt_units_in_place(
        &self,
        unit: DataUnit,
        first_unit: u64,
        buffer: &mut [u8],
    ) {
        // SAFETY: `in_place` enables `aes` and `sse2`, which this processor has by the type
        // invariant.
        unsafe { in_place::<true>(self, unit, first_unit, buffer) }
    }
}

impl Drop for AesNiKeys {
    fn drop(&mut self) {
        self.encrypt.zeroize();
        self.decrypt.zeroize();
        self.tweak.zeroize();
    }
}

/// XTS from `source` into `destination`, unit by unit, [`LANES`] blocks at a time: each group
/// is read once and written once.
#[target_feature(enable = "aes,sse2")]
fn copy<const DECRYPT: bool>(
    keys: &AesNiKeys,
    unit: DataUnit,
    first_unit: u64,
    source: &[u8],
    destination: &mut [u8],
) {
    let schedule = if DECRYPT {
        &keys.decrypt
    } else {
        &keys.encrypt
    };
    let mut unit_tweaks = UnitTweaks::new(first_unit);
    let units = source
        .chunks_exact(unit.bytes())
        .zip(destination.chunks_exact_mut(unit.bytes()));
    for (input, output) in units {
        let mut tweak = unit_tweaks.next(&keys.tweak);
        for (input, output) in pieces::<GROUP>(input).zip(pieces_mut::<GROUP>(output)) {
            let blocks = group::<DECRYPT>(schedule, &mut tweak, load_group(input));
            store_group(output, blocks);
        }
    }
}

/// XTS of `buffer` in place, as [`copy`] does it.
#[target_feature(enable = "aes,sse2")]
fn in_place<const DECRYPT: bool>(
    keys: &AesNiKeys,
    unit: DataUnit,
    first_unit: u64,
    buffer: &mut [u8],
) {
    let schedule = if DECRYPT {
        &keys.decrypt
    } else {
        &keys.encrypt
    };
    let mut unit_tweaks = UnitTweaks::new(first_unit);
    for data_unit in buffer.chunks_exact_mut(unit.bytes()) {
        let mut tweak = unit_tweaks.next(&keys.tweak);
        for piece in pieces_mut::<GROUP>(data_unit) {
            let blocks = group::<DECRYPT>(schedule, &mut tweak, load_group(piece));
            store_group(piece, blocks);
        }
    }
}

/// One group of [`LANES`] consecutive blocks of a data unit: `tweak` is the first block's
/// tweak on entry and the next group's on return.
#[inline]
#[target_feature(enable = "aes,sse2")]
fn group<const DECRYPT: bool>(
    schedule: &Schedule,
    tweak: &mut __m128i,
    blocks: [__m128i; LANES],
) -> [__m128i; LANES] {
    let mut next = *tweak;
    let mut tweaks: [__m128i; LANES] = core::array::from_fn(|_| {
        let this = next;
        next = double(next);
        this
    });
    *tweak = next;
    // Optimization barriers, not for correctness. Without them the compiler hoists the loads
    // of all fifteen round keys out of the loop and keeps the eight tweaks live across the
    // rounds: with the eight blocks that is far more than the sixteen XMM registers, and its
    // scheduler then runs the blocks one after another instead of eight in flight (about 5 %
    // slower, measured; docs/performance.md). Through them the round keys are read from the
    // schedule round by round and the tweaks from the stack: the rounds need nine registers.
    core::hint::black_box(&mut tweaks);
    let schedule = core::hint::black_box(schedule);
    cipher::<DECRYPT>(schedule, blocks, &tweaks)
}

/// AES of [`LANES`] blocks, each whitened with its `tweaks` entry before and after:
/// `E(block ⊕ tweak) ⊕ tweak` (or D), with both XORs folded into round keys 0 and 14.
#[inline]
#[target_feature(enable = "aes,sse2")]
fn cipher<const DECRYPT: bool>(
    schedule: &Schedule,
    blocks: [__m128i; LANES],
    tweaks: &[__m128i; LANES],
) -> [__m128i; LANES] {
    let mut state = blocks;
    for (block, tweak) in state.iter_mut().zip(tweaks) {
        *block = _mm_xor_si128(*block, _mm_xor_si128(*tweak, schedule[0]));
    }
    // Round by round, eight blocks at a time: the eight `aesenc`s of a round are independent
    // and overlap in the pipeline.
    for key in &schedule[1..ROUNDS] {
        for block in &mut state {
            *block = if DECRYPT {
                _mm_aesdec_si128(*block, *key)
            } else {
                _mm_aesenc_si128(*block, *key)
            };
        }
    }
    for (block, tweak) in state.iter_mut().zip(tweaks) {
        let last = _mm_xor_si128(schedule[ROUNDS], *tweak);
        *block = if DECRYPT {
            _mm_aesdeclast_si128(*block, last)
        } else {
            _mm_aesenclast_si128(*block, last)
        };
    }
    state
}

/// The first tweaks of consecutive data units, E(tweak key, unit number as 128-bit LE),
/// encrypted [`LANES`] units at a time so that they too go through the cipher in flight.
struct UnitTweaks {
    /// The number of the next unit to encrypt a tweak for (past 2^64 near the top of the
    /// 64-bit range: the tweak is a 128-bit number).
    next_unit: u128,
    ready: [__m128i; LANES],
    /// How many of `ready` were handed out.
    used: usize,
}

impl UnitTweaks {
    #[inline]
    #[target_feature(enable = "sse2")]
    fn new(first_unit: u64) -> Self {
        Self {
            next_unit: u128::from(first_unit),
            ready: [_mm_setzero_si128(); LANES],
            used: LANES,
        }
    }

    /// The next data unit's first tweak.
    #[inline]
    #[target_feature(enable = "aes,sse2")]
    fn next(&mut self, tweak_schedule: &Schedule) -> __m128i {
        if self.used >= LANES {
            let numbers: [__m128i; LANES] = core::array::from_fn(|_| {
                let number = self.next_unit;
                self.next_unit = number.wrapping_add(1);
                from_u128(number)
            });
            self.ready = cipher::<false>(tweak_schedule, numbers, &[_mm_setzero_si128(); LANES]);
            self.used = 0;
        }
        #[expect(
            clippy::indexing_slicing,
            reason = "an index modulo LANES is below LANES"
        )]
        let tweak = self.ready[self.used % LANES];
        self.used += 1;
        tweak
    }
}

/// Multiplies a tweak by α in GF(2^128), IEEE 1619's little-endian convention, in one XMM
/// register (SSE2): both 64-bit halves shift left by one (`paddq`); the bit leaving the low
/// half enters the high half, and the bit leaving the top comes back as 0x87. `pshufd 0x13`
/// brings the top dword of each half where its carry goes, `psrad 31` turns each sign bit into
/// a mask, which selects 0x87 (dword 0) and 1 (dword 2).
#[inline]
#[target_feature(enable = "sse2")]
fn double(tweak: __m128i) -> __m128i {
    let carries = _mm_srai_epi32::<31>(_mm_shuffle_epi32::<0x13>(tweak));
    let reduction = _mm_and_si128(carries, _mm_set_epi32(0, 1, 0, 0x87));
    _mm_xor_si128(_mm_add_epi64(tweak, tweak), reduction)
}

/// The 128-bit number `value` as the little-endian block XTS takes as a tweak.
#[inline]
#[target_feature(enable = "sse2")]
fn from_u128(value: u128) -> __m128i {
    _mm_set_epi64x((value >> 64) as u64 as i64, value as u64 as i64)
}

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

/// The whole `N`-byte pieces of `bytes`, as mutable arrays (a shorter tail is left out).
#[inline(always)]
fn pieces_mut<const N: usize>(bytes: &mut [u8]) -> impl Iterator<Item = &mut [u8; N]> {
    bytes
        .chunks_exact_mut(N)
        .filter_map(|piece| <&mut [u8; N]>::try_from(piece).ok())
}

#[inline]
#[target_feature(enable = "sse2")]
fn load_group(bytes: &[u8; GROUP]) -> [__m128i; LANES] {
    let mut blocks = [_mm_setzero_si128(); LANES];
    for (block, bytes) in blocks.iter_mut().zip(pieces::<16>(bytes)) {
        *block = load(bytes);
    }
    blocks
}

#[inline]
#[target_feature(enable = "sse2")]
fn store_group(bytes: &mut [u8; GROUP], blocks: [__m128i; LANES]) {
    for (bytes, block) in pieces_mut::<16>(bytes).zip(blocks) {
        store(bytes, block);
    }
}

/// The 16 bytes as an XMM value, byte 0 in the lowest lane.
#[inline]
#[target_feature(enable = "sse2")]
fn load(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: the pointer comes from a reference to 16 readable bytes, and `_mm_loadu_si128`
    // reads exactly 16 bytes from it with no alignment requirement (`movdqu`).
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

/// Writes the XMM value into the 16 bytes, lowest lane first.
#[inline]
#[target_feature(enable = "sse2")]
fn store(bytes: &mut [u8; 16], value: __m128i) {
    // SAFETY: the pointer comes from an exclusive reference to 16 writable bytes, and
    // `_mm_storeu_si128` writes exactly 16 bytes to it with no alignment requirement.
    unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), value) }
}

#[cfg(test)]
mod tests {
    use super::super::portable::next_tweak;
    use super::*;

    #[target_feature(enable = "sse2")]
    fn to_u128(value: __m128i) -> u128 {
        let mut bytes = [0u8; 16];
        store(&mut bytes, value);
        u128::from_le_bytes(bytes)
    }

    /// `value` doubled by [`double`], and `steps` times over: every intermediate value.
    #[target_feature(enable = "sse2")]
    fn doubled_chain(value: u128, steps: &mut [u128]) {
        let mut tweak = from_u128(value);
        for step in steps {
            tweak = double(tweak);
            *step = to_u128(tweak);
        }
    }

    fn doubled(value: u128) -> u128 {
        let mut result = [0u128; 1];
        // SAFETY: `doubled_chain` enables only `sse2`, which every x86_64 processor has.
        unsafe { doubled_chain(value, &mut result) };
        result[0]
    }

    /// The SSE2 doubling against the scalar one, where the carries are: out of the low half
    /// into the high half, out of the top into 0x87, both at once, and neither.
    #[test]
    fn simd_doubling_matches_the_scalar_one_at_every_carry() {
        let edges = [
            0,
            1,
            0x87,
            1 << 62,
            1 << 63,
            (1 << 63) | 1,
            1 << 64,
            1 << 126,
            1 << 127,
            (1 << 127) | (1 << 63),
            (1 << 127) | 1,
            u128::from(u64::MAX),
            u128::MAX << 64,
            u128::MAX >> 1,
            u128::MAX,
            0x8000_0000_8000_0000_8000_0000_8000_0000,
            0x7fff_ffff_7fff_ffff_7fff_ffff_7fff_ffff,
        ];
        for value in edges {
            assert_eq!(doubled(value), next_tweak(value), "{value:#034x}");
        }
        assert_eq!(doubled(1 << 127), 0x87);
        assert_eq!(doubled(1 << 63), 1 << 64);
        assert_eq!(doubled(u128::MAX), (u128::MAX << 1) ^ 0x87);
    }

    /// A long chain of doublings (what the data path does within a 4096-byte unit, and more)
    /// stays equal to the scalar chain.
    #[test]
    fn simd_doubling_chain_matches_the_scalar_chain() {
        for start in [1u128, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210, u128::MAX] {
            let mut simd = [0u128; 2048];
            // SAFETY: `doubled_chain` enables only `sse2`, which every x86_64 processor has.
            unsafe { doubled_chain(start, &mut simd) };
            let mut scalar = start;
            for (step, simd) in simd.into_iter().enumerate() {
                scalar = next_tweak(scalar);
                assert_eq!(simd, scalar, "start {start:#x}, step {step}");
            }
        }
    }

    #[target_feature(enable = "sse2")]
    fn round_trip(value: u128) -> ([u8; 16], u128) {
        let mut bytes = [0u8; 16];
        store(&mut bytes, from_u128(value));
        (bytes, to_u128(load(&bytes)))
    }

    #[test]
    fn tweak_numbers_are_little_endian_128_bit() {
        let value = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100_u128;
        // SAFETY: `round_trip` enables only `sse2`, which every x86_64 processor has.
        let (bytes, back) = unsafe { round_trip(value) };
        assert_eq!(bytes, core::array::from_fn::<u8, 16, _>(|i| i as u8));
        assert_eq!(back, value);
    }

    /// FIPS 197 Appendix C.3: AES-256 of one block through the schedules made here.
    #[test]
    fn key_expansion_matches_fips_197() {
        let mut key = [0u8; KEY_LEN];
        for (i, byte) in key.iter_mut().enumerate() {
            // Data key 00..1f; the tweak key differs.
            *byte = if i < 32 { i as u8 } else { 0xa5 };
        }
        let Some(keys) = AesNiKeys::new(&key) else {
            std::eprintln!("no AES-NI on this processor: key expansion not tested");
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
        assert_eq!(encrypted, [expected; LANES]);
        assert_eq!(decrypted, [plain; LANES]);
    }

    /// `plain` in all lanes through the data key's schedules, without tweaks.
    #[target_feature(enable = "aes,sse2")]
    fn ecb_round_trip(
        keys: &AesNiKeys,
        plain: &[u8; 16],
    ) -> ([[u8; 16]; LANES], [[u8; 16]; LANES]) {
        let zero = [_mm_setzero_si128(); LANES];
        let encrypted = cipher::<false>(&keys.encrypt, [load(plain); LANES], &zero);
        let decrypted = cipher::<true>(&keys.decrypt, encrypted, &zero);
        let mut out = ([[0u8; 16]; LANES], [[0u8; 16]; LANES]);
        for (bytes, block) in out.0.iter_mut().zip(encrypted) {
            store(bytes, block);
        }
        for (bytes, block) in out.1.iter_mut().zip(decrypted) {
            store(bytes, block);
        }
        out
    }
}
