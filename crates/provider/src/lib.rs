//! The provider interface: how a volume-encryption driver hands dumpcrypt its keys and
//! geometry. The same layout as `include/dumpcrypt_provider.h`, for providers written in Rust.
//!
//! | Rust            | C (`include/dumpcrypt_provider.h`) |
//! |-----------------|------------------------------------|
//! | [`Query`]       | `DUMPCRYPT_QUERY`                  |
//! | [`Answer`]      | `DUMPCRYPT_ANSWER`                 |
//! | [`DiskIdentity`]| `DUMPCRYPT_DISK_IDENTITY`          |
//! | [`Range`]       | `DUMPCRYPT_RANGE`                  |
//! | [`LiveState`]   | `DUMPCRYPT_LIVE_STATE`             |
//!
//! The handshake (docs/provider.md has the rules of each side):
//! 1. The provider creates the callback object [`CALLBACK_NAME`] (`ExCreateCallback` with
//!    `Create` TRUE, `AllowMultipleCallbacks` TRUE) and registers a function on it
//!    (`ExRegisterCallback`), for as long as it can answer.
//! 2. Each time a dump stack loads a copy of dumpcrypt that encrypts with `KeySource` =
//!    provider, dumpcrypt's DriverEntry (PASSIVE_LEVEL) opens the object and calls
//!    `ExNotifyCallback(object, &query, &answer)`: `Argument1` is a [`Query`], `Argument2`
//!    an [`Answer`] of `query.answer_size` zeroed bytes in dumpcrypt's nonpaged memory.
//! 3. The provider's function, if the queried disk is its volume's and the answer is still
//!    empty (`magic` 0: another provider may have answered), fills the answer and returns.
//! 4. dumpcrypt copies the keys into its own memory, wipes the answer, and never touches the
//!    provider's memory again, except the optional [`LiveState`] block, which it reads with
//!    plain loads at Dump_Start and on each write.
#![no_std]

use core::mem::{offset_of, size_of};

/// The name of the callback object, as `ExCreateCallback` takes it in OBJECT_ATTRIBUTES.
pub const CALLBACK_NAME: &str = r"\Callback\DumpCryptProvider";

/// `DUMPCRYPT_MAGIC`: 'DCPV', first in a query and in an answer.
pub const MAGIC: u32 = u32::from_le_bytes(*b"DCPV");
/// `DUMPCRYPT_MAJOR_VERSION`: a provider answers a query of its own major version only;
/// dumpcrypt refuses an answer of another.
pub const MAJOR_VERSION: u16 = 1;
/// `DUMPCRYPT_MINOR_VERSION`: additions at the end of the structures, which an older side
/// ignores.
pub const MINOR_VERSION: u16 = 0;
/// `DUMPCRYPT_MAX_RANGES`: encrypted ranges in one answer.
pub const MAX_RANGES: usize = 4;
/// `DUMPCRYPT_KEY_LENGTH`: an XTS-AES-256 key, data key then tweak key.
pub const KEY_LEN: usize = 64;

/// `DUMPCRYPT_STYLE_MBR`: the disk has a master boot record.
pub const STYLE_MBR: u32 = 0;
/// `DUMPCRYPT_STYLE_GPT`: the disk has a GUID partition table.
pub const STYLE_GPT: u32 = 1;

/// `DUMPCRYPT_ALLOW_CRASH_DUMP`: the provider lets the crash dump stack write.
pub const ALLOW_CRASH_DUMP: u32 = 0x1;
/// `DUMPCRYPT_ALLOW_HIBERNATION`: the provider lets the hibernation stack write.
pub const ALLOW_HIBERNATION: u32 = 0x2;

/// `DUMPCRYPT_LIVE_ACTIVE`: in [`LiveState::flags`], the volume is mounted and its keys are
/// the ones handed over; clear, dumpcrypt refuses the dump.
pub const LIVE_ACTIVE: u32 = 0x1;

/// `DUMPCRYPT_DISK_IDENTITY`: a disk by its partition table, as FILTER_EXTENSION's
/// DISK_PARTITION_INFO names the dump device.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskIdentity {
    /// [`STYLE_MBR`] or [`STYLE_GPT`].
    pub style: u32,
    /// The MBR disk signature (MBR disks).
    pub mbr_signature: u32,
    /// The GPT disk GUID, as the GUID structure lays it out in memory (GPT disks).
    pub gpt_disk_id: [u8; 16],
}

/// `DUMPCRYPT_QUERY`: what dumpcrypt asks (`Argument1` of `ExNotifyCallback`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`MAJOR_VERSION`] of the dumpcrypt that asks.
    pub major_version: u16,
    /// [`MINOR_VERSION`] of the dumpcrypt that asks.
    pub minor_version: u16,
    /// `sizeof(DUMPCRYPT_QUERY)` as dumpcrypt knows it.
    pub size: u32,
    /// The stack loading this copy: 1 crash dump, 2 hibernation.
    pub dump_type: u32,
    /// The dump device's disk.
    pub disk: DiskIdentity,
    /// The dump partition's first byte on that disk.
    pub partition_start: u64,
    /// Bytes of the answer buffer (`Argument2`), zeroed.
    pub answer_size: u32,
    /// Zero.
    pub reserved: u32,
}

/// `DUMPCRYPT_RANGE`: one encrypted range and its key.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First encrypted byte, in tweak positions (docs/design.md): partition offsets, or
    /// disk offsets with disk-absolute tweaks. A multiple of the data unit.
    pub start: u64,
    /// First byte past the range (half-open): a multiple of the data unit, or `u64::MAX`
    /// for "to the end".
    pub end: u64,
    /// Data key then tweak key; the halves differ.
    pub key: [u8; KEY_LEN],
}

impl core::fmt::Debug for Range {
    // The key is never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Range")
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// `DUMPCRYPT_LIVE_STATE`: what may change while the provider is registered, in its own
/// nonpaged memory. dumpcrypt reads it with plain loads, at any IRQL, never calling the
/// provider.
///
/// The provider makes `sequence` odd before it changes the other fields and even again
/// after (a sequence lock). A reader that sees an odd sequence, or a sequence that changed
/// while it read, has a torn copy; dumpcrypt then encrypts every range to its full `end`
/// (it may garble a block the volume holds in plaintext, never write one in plaintext that
/// the volume encrypts).
#[repr(C)]
#[derive(Debug, Default)]
pub struct LiveState {
    /// Even when the state is consistent.
    pub sequence: u32,
    /// [`LIVE_ACTIVE`].
    pub flags: u32,
    /// The current end of each range, in the answer's order: during in-place encryption,
    /// where the encrypted part ends now (at most the range's `end`).
    pub encrypted_end: [u64; MAX_RANGES],
}

/// `DUMPCRYPT_ANSWER`: what the provider fills in (`Argument2` of `ExNotifyCallback`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// [`MAGIC`]; still 0 means no provider answered.
    pub magic: u32,
    /// The provider's [`MAJOR_VERSION`].
    pub major_version: u16,
    /// The provider's [`MINOR_VERSION`].
    pub minor_version: u16,
    /// Bytes the provider filled: at least [`ANSWER_SIZE_V1`].
    pub size: u32,
    /// [`ALLOW_CRASH_DUMP`], [`ALLOW_HIBERNATION`]: the stacks that may write at all.
    pub flags: u32,
    /// The disk of the volume the provider encrypts.
    pub volume: DiskIdentity,
    /// The volume's first byte on that disk.
    pub partition_start: u64,
    /// The volume's length in bytes.
    pub partition_length: u64,
    /// 512 or 4096.
    pub data_unit: u32,
    /// 0 partition-relative tweaks, 1 disk-absolute.
    pub tweak_base: u32,
    /// Ranges used, 1 to [`MAX_RANGES`]; sorted by start, not overlapping.
    pub range_count: u32,
    /// Zero.
    pub reserved: u32,
    /// The encrypted ranges.
    pub ranges: [Range; MAX_RANGES],
    /// The provider's live state, or null.
    pub live_state: *const LiveState,
}

/// `DUMPCRYPT_QUERY_SIZE_V1`.
pub const QUERY_SIZE_V1: u32 = 0x38;
/// `DUMPCRYPT_ANSWER_SIZE_V1`: the smallest answer dumpcrypt accepts.
pub const ANSWER_SIZE_V1: u32 = 0x190;

// The layout, as include/dumpcrypt_provider.h asserts it too (and a test compares the two).
const _: () = {
    assert!(size_of::<DiskIdentity>() == 0x18);
    assert!(offset_of!(DiskIdentity, mbr_signature) == 0x04);
    assert!(offset_of!(DiskIdentity, gpt_disk_id) == 0x08);

    assert!(size_of::<Query>() == QUERY_SIZE_V1 as usize);
    assert!(offset_of!(Query, major_version) == 0x04);
    assert!(offset_of!(Query, minor_version) == 0x06);
    assert!(offset_of!(Query, size) == 0x08);
    assert!(offset_of!(Query, dump_type) == 0x0C);
    assert!(offset_of!(Query, disk) == 0x10);
    assert!(offset_of!(Query, partition_start) == 0x28);
    assert!(offset_of!(Query, answer_size) == 0x30);
    assert!(offset_of!(Query, reserved) == 0x34);

    assert!(size_of::<Range>() == 0x50);
    assert!(offset_of!(Range, end) == 0x08);
    assert!(offset_of!(Range, key) == 0x10);

    assert!(size_of::<LiveState>() == 0x28);
    assert!(offset_of!(LiveState, flags) == 0x04);
    assert!(offset_of!(LiveState, encrypted_end) == 0x08);

    assert!(size_of::<Answer>() == ANSWER_SIZE_V1 as usize);
    assert!(offset_of!(Answer, major_version) == 0x04);
    assert!(offset_of!(Answer, minor_version) == 0x06);
    assert!(offset_of!(Answer, size) == 0x08);
    assert!(offset_of!(Answer, flags) == 0x0C);
    assert!(offset_of!(Answer, volume) == 0x10);
    assert!(offset_of!(Answer, partition_start) == 0x28);
    assert!(offset_of!(Answer, partition_length) == 0x30);
    assert!(offset_of!(Answer, data_unit) == 0x38);
    assert!(offset_of!(Answer, tweak_base) == 0x3C);
    assert!(offset_of!(Answer, range_count) == 0x40);
    assert!(offset_of!(Answer, reserved) == 0x44);
    assert!(offset_of!(Answer, ranges) == 0x48);
    assert!(offset_of!(Answer, live_state) == 0x188);
};

impl Query {
    /// The query dumpcrypt makes for a dump stack of `dump_type` on `disk`, with an answer
    /// buffer of [`ANSWER_SIZE_V1`] bytes.
    pub const fn new(dump_type: u32, disk: DiskIdentity, partition_start: u64) -> Self {
        Self {
            magic: MAGIC,
            major_version: MAJOR_VERSION,
            minor_version: MINOR_VERSION,
            size: QUERY_SIZE_V1,
            dump_type,
            disk,
            partition_start,
            answer_size: ANSWER_SIZE_V1,
            reserved: 0,
        }
    }
}

impl Answer {
    /// An empty answer: what dumpcrypt hands the provider, and what it finds if no provider
    /// answered.
    pub const EMPTY: Answer = Answer {
        magic: 0,
        major_version: 0,
        minor_version: 0,
        size: 0,
        flags: 0,
        volume: DiskIdentity {
            style: 0,
            mbr_signature: 0,
            gpt_disk_id: [0; 16],
        },
        partition_start: 0,
        partition_length: 0,
        data_unit: 0,
        tweak_base: 0,
        range_count: 0,
        reserved: 0,
        ranges: [Range {
            start: 0,
            end: 0,
            key: [0; KEY_LEN],
        }; MAX_RANGES],
        live_state: core::ptr::null(),
    };

    /// Overwrites the keys (and everything else) with zeros, in a way the compiler cannot
    /// elide.
    pub fn wipe(&mut self) {
        for range in &mut self.ranges {
            zeroize::Zeroize::zeroize(&mut range.key);
        }
        *self = Self::EMPTY;
    }
}
