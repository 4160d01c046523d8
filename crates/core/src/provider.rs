//! A provider's answer, checked: the keys and geometry a volume-encryption driver handed over
//! (docs/provider.md), or why the instance must refuse to write a dump.
//!
//! The driver asks at DriverEntry and hands the answer here; everything that decides whether
//! it can be used is in this module, in safe code. What the live state says at Dump_Start and
//! on each write is decided here too ([`LiveView`]), from the plain loads the driver makes.

use core::ptr::NonNull;

use crate::geometry::{Area, Geometry, TweakBase};
use crate::instance::DumpType;
use crate::xts::{DataUnit, KEY_LEN};
use dumpcrypt_provider::{
    Answer, DiskIdentity, LiveState, Query, ALLOW_CRASH_DUMP, ALLOW_HIBERNATION, ANSWER_SIZE_V1,
    LIVE_ACTIVE, MAGIC, MAJOR_VERSION, MAX_RANGES, STYLE_GPT, STYLE_MBR,
};

/// Why a provider's keys cannot be used: the instance is loaded refusing (no dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No callback object `\Callback\DumpCryptProvider`: no provider is loaded.
    Absent,
    /// The object exists but no provider answered (the answer's Magic is still 0).
    NoAnswer,
    /// The answer is of another major version.
    Version {
        /// The answer's MajorVersion.
        major: u16,
    },
    /// The answer is shorter than version 1.0's.
    Short {
        /// The answer's Size.
        size: u32,
    },
    /// DataUnitSize is neither 512 nor 4096.
    DataUnit {
        /// The answer's DataUnitSize.
        value: u32,
    },
    /// TweakBase is neither 0 nor 1.
    TweakBase {
        /// The answer's TweakBase.
        value: u32,
    },
    /// RangeCount is 0 or above the maximum.
    RangeCount {
        /// The answer's RangeCount.
        count: u32,
    },
    /// A range is empty, not on data unit boundaries, or not after the one before it.
    Range {
        /// Its index in the answer.
        index: usize,
    },
    /// A range's key has equal halves.
    KeyHalvesEqual {
        /// Its index in the answer.
        index: usize,
    },
    /// The answer's volume is on another disk than the dump device.
    WrongDisk,
    /// The answer's volume starts elsewhere than the dump partition.
    WrongPartition {
        /// Where the volume starts.
        volume: u64,
        /// Where the dump partition starts.
        dump: u64,
    },
    /// The provider lets no dump of this stack be written.
    Vetoed,
    /// The dump device is not the disk `DiskId` names.
    DiskIdMismatch,
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Absent => f.write_str("no provider is registered"),
            Self::NoAnswer => f.write_str("no provider answered"),
            Self::Version { major } => write!(
                f,
                "the provider answered in version {major}; this dumpcrypt speaks {MAJOR_VERSION}"
            ),
            Self::Short { size } => write!(
                f,
                "the provider's answer is {size} bytes; version 1 has {ANSWER_SIZE_V1}"
            ),
            Self::DataUnit { value } => {
                write!(
                    f,
                    "the provider's data unit is {value}; it must be 512 or 4096"
                )
            }
            Self::TweakBase { value } => {
                write!(f, "the provider's tweak base is {value}; it must be 0 or 1")
            }
            Self::RangeCount { count } => write!(
                f,
                "the provider gave {count} ranges; it must give 1 to {MAX_RANGES}"
            ),
            Self::Range { index } => write!(
                f,
                "the provider's range {index} is empty, not on data unit boundaries, or not \
                 after the one before it"
            ),
            Self::KeyHalvesEqual { index } => {
                write!(
                    f,
                    "the key of the provider's range {index} has equal halves"
                )
            }
            Self::WrongDisk => {
                f.write_str("the provider's volume is not on the dump device's disk")
            }
            Self::WrongPartition { volume, dump } => write!(
                f,
                "the provider's volume starts at {volume:#x}, the dump partition at {dump:#x}"
            ),
            Self::Vetoed => f.write_str("the provider lets no dump of this stack be written"),
            Self::DiskIdMismatch => f.write_str("the dump device is not the disk DiskId names"),
        }
    }
}

/// A provider's answer that can be used: the geometry, and where each range is. The keys
/// stay in the answer (`answer.ranges[index].key` for `areas[index]`), which the driver keeps
/// in its own pool memory and wipes once it has expanded them: no copy of a key is made here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Data unit, tweak base, and the partition's start (the answer's).
    pub geometry: Geometry,
    /// The ranges, sorted and disjoint, in the answer's order: `areas[..RangeCount]`.
    pub areas: [Option<Area>; MAX_RANGES],
    /// The provider's live-state block, if it gave one.
    pub live_state: Option<NonNull<LiveState>>,
}

/// The identity of a disk from FILTER_EXTENSION's DISK_PARTITION_INFO: its PartitionStyle
/// and the 16 bytes of its union (MBR Signature then CheckSum, or the GPT DiskId). `None`
/// for a RAW disk, which has neither.
pub fn disk_of_partition_info(style: u32, union: [u8; 16]) -> Option<DiskIdentity> {
    match style {
        STYLE_MBR => {
            let [a, b, c, d, ..] = union;
            Some(DiskIdentity {
                style: STYLE_MBR,
                mbr_signature: u32::from_le_bytes([a, b, c, d]),
                gpt_disk_id: [0; 16],
            })
        }
        STYLE_GPT => Some(DiskIdentity {
            style: STYLE_GPT,
            mbr_signature: 0,
            gpt_disk_id: union,
        }),
        _ => None,
    }
}

/// Whether two identities name the same disk (only the fields of their style count).
pub fn same_disk(a: &DiskIdentity, b: &DiskIdentity) -> bool {
    a.style == b.style
        && match a.style {
            STYLE_MBR => a.mbr_signature == b.mbr_signature,
            STYLE_GPT => a.gpt_disk_id == b.gpt_disk_id,
            _ => false,
        }
}

/// Checks a provider's answer to `query`, made for an instance of `dump_type`. `None` for an
/// absent provider.
pub fn check_answer(
    answer: Option<&Answer>,
    query: &Query,
    dump_type: DumpType,
) -> Result<Accepted, Refusal> {
    let answer = answer.ok_or(Refusal::Absent)?;
    if answer.magic != MAGIC {
        return Err(Refusal::NoAnswer);
    }
    if answer.major_version != MAJOR_VERSION {
        return Err(Refusal::Version {
            major: answer.major_version,
        });
    }
    if answer.size < ANSWER_SIZE_V1 {
        return Err(Refusal::Short { size: answer.size });
    }
    if !same_disk(&answer.volume, &query.disk) {
        return Err(Refusal::WrongDisk);
    }
    if answer.partition_start != query.partition_start {
        return Err(Refusal::WrongPartition {
            volume: answer.partition_start,
            dump: query.partition_start,
        });
    }
    let allowed = match dump_type {
        DumpType::CrashDump => ALLOW_CRASH_DUMP,
        DumpType::Hibernation => ALLOW_HIBERNATION,
    };
    if answer.flags & allowed == 0 {
        return Err(Refusal::Vetoed);
    }
    let data_unit = DataUnit::from_bytes(answer.data_unit).ok_or(Refusal::DataUnit {
        value: answer.data_unit,
    })?;
    let tweak_base = TweakBase::from_dword(answer.tweak_base).ok_or(Refusal::TweakBase {
        value: answer.tweak_base,
    })?;
    let count = answer.range_count;
    let given = answer
        .ranges
        .get(..count as usize)
        .filter(|given| !given.is_empty())
        .ok_or(Refusal::RangeCount { count })?;
    let unit = data_unit.bytes() as u64;
    let mut areas = [None; MAX_RANGES];
    let mut previous_end = 0;
    for (index, (range, slot)) in given.iter().zip(&mut areas).enumerate() {
        let aligned = range.start.is_multiple_of(unit)
            && (range.end == u64::MAX || range.end.is_multiple_of(unit));
        let ordered = range.start >= previous_end && range.start < range.end;
        if !aligned || !ordered {
            return Err(Refusal::Range { index });
        }
        let (data_key, tweak_key) = range.key.split_at(KEY_LEN / 2);
        if data_key == tweak_key {
            return Err(Refusal::KeyHalvesEqual { index });
        }
        previous_end = range.end;
        *slot = Some(Area {
            start: range.start,
            end: range.end,
        });
    }
    Ok(Accepted {
        geometry: Geometry::new(
            data_unit,
            Area::WHOLE_DISK,
            tweak_base,
            answer.partition_start,
        ),
        areas,
        live_state: NonNull::new(answer.live_state.cast_mut()),
    })
}

/// What a read of the provider's live state found: the driver makes the loads
/// ([`LiveView::read`] takes them), this decides what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveView {
    /// Whether the copy is consistent (the sequence was even and did not change).
    pub consistent: bool,
    /// Whether the provider says its keys describe the volume now.
    pub active: bool,
    /// The current end of each range's encrypted part.
    pub encrypted_end: [u64; MAX_RANGES],
}

impl LiveView {
    /// A read: the sequence before, the fields, the sequence after.
    pub const fn read(
        sequence_before: u32,
        flags: u32,
        encrypted_end: [u64; MAX_RANGES],
        sequence_after: u32,
    ) -> Self {
        Self {
            consistent: sequence_before == sequence_after && sequence_before.is_multiple_of(2),
            active: flags & LIVE_ACTIVE != 0,
            encrypted_end,
        }
    }

    /// Whether a dump may start. A torn copy does not refuse: it is encrypted in full
    /// instead (see [`LiveView::area`]).
    pub const fn allows_dump(&self) -> bool {
        !self.consistent || self.active
    }

    /// What of range `index`'s `area` is encrypted now: up to its current end, or all of it
    /// when the copy is torn (never less than the volume encrypts).
    pub fn area(&self, index: usize, area: Area) -> Area {
        let end = match self.encrypted_end.get(index) {
            Some(&end) if self.consistent => end.min(area.end),
            _ => area.end,
        };
        Area {
            start: area.start,
            end: end.max(area.start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dumpcrypt_provider::Range;

    fn disk() -> DiskIdentity {
        DiskIdentity {
            style: STYLE_GPT,
            mbr_signature: 0,
            gpt_disk_id: *b"0123456789abcdef",
        }
    }

    fn query() -> Query {
        Query::new(1, disk(), 0x10_0000)
    }

    fn key(seed: u8) -> [u8; KEY_LEN] {
        core::array::from_fn(|i| seed ^ i as u8)
    }

    /// A good answer: two ranges with two keys, a plaintext rest.
    fn answer() -> Answer {
        let mut answer = Answer::EMPTY;
        answer.magic = MAGIC;
        answer.major_version = MAJOR_VERSION;
        answer.size = ANSWER_SIZE_V1;
        answer.flags = ALLOW_CRASH_DUMP | ALLOW_HIBERNATION;
        answer.volume = disk();
        answer.partition_start = 0x10_0000;
        answer.partition_length = 0x4000_0000;
        answer.data_unit = 512;
        answer.tweak_base = 0;
        answer.range_count = 2;
        answer.ranges[0] = Range {
            start: 0,
            end: 0x10_0000,
            key: key(1),
        };
        answer.ranges[1] = Range {
            start: 0x10_0000,
            end: 0x20_0000,
            key: key(2),
        };
        answer
    }

    fn check(answer: &Answer) -> Result<Accepted, Refusal> {
        check_answer(Some(answer), &query(), DumpType::CrashDump)
    }

    #[test]
    fn a_good_answer_gives_its_ranges_and_geometry() {
        let accepted = check(&answer()).unwrap();
        assert_eq!(accepted.geometry.data_unit(), DataUnit::Bytes512);
        assert_eq!(accepted.geometry.tweak_base(), TweakBase::Partition);
        assert_eq!(accepted.geometry.partition_start(), 0x10_0000);
        assert_eq!(accepted.live_state, None);
        assert_eq!(
            accepted.areas,
            [
                Some(Area {
                    start: 0,
                    end: 0x10_0000
                }),
                Some(Area {
                    start: 0x10_0000,
                    end: 0x20_0000
                }),
                None,
                None
            ]
        );
        let mut disk_tweaks = answer();
        disk_tweaks.tweak_base = 1;
        disk_tweaks.data_unit = 4096;
        disk_tweaks.ranges[1].end = u64::MAX;
        disk_tweaks.live_state = core::ptr::dangling();
        let accepted = check(&disk_tweaks).unwrap();
        assert_eq!(accepted.geometry.tweak_base(), TweakBase::Disk);
        assert_eq!(accepted.geometry.data_unit(), DataUnit::Bytes4096);
        assert_eq!(accepted.live_state, Some(NonNull::dangling()));
    }

    #[test]
    fn every_bad_answer_is_refused_with_its_reason() {
        type Change = fn(&mut Answer);
        let cases: &[(Change, Refusal)] = &[
            (|a| a.magic = 0, Refusal::NoAnswer),
            (|a| a.major_version = 2, Refusal::Version { major: 2 }),
            (
                |a| a.size = ANSWER_SIZE_V1 - 8,
                Refusal::Short {
                    size: ANSWER_SIZE_V1 - 8,
                },
            ),
            (|a| a.volume.gpt_disk_id[3] ^= 1, Refusal::WrongDisk),
            (|a| a.volume.style = STYLE_MBR, Refusal::WrongDisk),
            (
                |a| a.partition_start = 0x20_0000,
                Refusal::WrongPartition {
                    volume: 0x20_0000,
                    dump: 0x10_0000,
                },
            ),
            (|a| a.flags = ALLOW_HIBERNATION, Refusal::Vetoed),
            (|a| a.data_unit = 1024, Refusal::DataUnit { value: 1024 }),
            (|a| a.tweak_base = 2, Refusal::TweakBase { value: 2 }),
            (|a| a.range_count = 0, Refusal::RangeCount { count: 0 }),
            (|a| a.range_count = 5, Refusal::RangeCount { count: 5 }),
            (|a| a.ranges[0].start = 100, Refusal::Range { index: 0 }),
            (|a| a.ranges[1].end = 0x10_0000, Refusal::Range { index: 1 }),
            (|a| a.ranges[1].end = 0x20_0100, Refusal::Range { index: 1 }),
            (
                |a| a.ranges[1].start = 0xF_FE00,
                Refusal::Range { index: 1 },
            ),
            (
                |a| a.ranges[1].key = [7; KEY_LEN],
                Refusal::KeyHalvesEqual { index: 1 },
            ),
        ];
        for (change, refusal) in cases {
            let mut answer = answer();
            change(&mut answer);
            assert_eq!(check(&answer).unwrap_err(), *refusal);
            assert!(!std::format!("{refusal}").is_empty());
        }
        assert_eq!(
            check_answer(None, &query(), DumpType::CrashDump).unwrap_err(),
            Refusal::Absent
        );
        // The hibernation stack is vetoed by its own flag.
        let mut crash_only = answer();
        crash_only.flags = ALLOW_CRASH_DUMP;
        assert_eq!(
            check_answer(Some(&crash_only), &query(), DumpType::Hibernation).unwrap_err(),
            Refusal::Vetoed
        );
        assert!(check_answer(Some(&crash_only), &query(), DumpType::CrashDump).is_ok());
    }

    #[test]
    fn refusals_read_as_sentences() {
        assert_eq!(
            std::format!(
                "{}",
                Refusal::WrongPartition {
                    volume: 0x10,
                    dump: 0x20
                }
            ),
            "the provider's volume starts at 0x10, the dump partition at 0x20"
        );
        assert_eq!(
            std::format!("{}", Refusal::Short { size: 8 }),
            "the provider's answer is 8 bytes; version 1 has 400"
        );
        assert_eq!(
            std::format!("{}", Refusal::Absent),
            "no provider is registered"
        );
    }

    #[test]
    fn disks_by_their_partition_information() {
        let mut union = [0u8; 16];
        union[..8].copy_from_slice(&[0x78, 0x56, 0x34, 0x12, 9, 9, 9, 9]);
        let mbr = disk_of_partition_info(0, union).unwrap();
        assert_eq!((mbr.style, mbr.mbr_signature), (STYLE_MBR, 0x1234_5678));
        let gpt = disk_of_partition_info(1, *b"0123456789abcdef").unwrap();
        assert!(same_disk(&gpt, &disk()));
        assert!(!same_disk(&mbr, &disk()));
        assert_eq!(disk_of_partition_info(2, union), None, "RAW");
        let other_checksum = {
            let mut union = union;
            union[5] = 0;
            disk_of_partition_info(0, union).unwrap()
        };
        assert!(
            same_disk(&mbr, &other_checksum),
            "only the signature counts"
        );
        let raw = DiskIdentity {
            style: 2,
            ..DiskIdentity::default()
        };
        assert!(!same_disk(&raw, &raw), "a RAW disk has no identity");
    }

    #[test]
    fn live_views() {
        let area = Area {
            start: 0x1000,
            end: 0x9000,
        };
        let moving = LiveView::read(4, LIVE_ACTIVE, [0x5000, 0x800, 0, 0], 4);
        assert!(moving.consistent && moving.active && moving.allows_dump());
        assert_eq!(
            moving.area(0, area),
            Area {
                start: 0x1000,
                end: 0x5000
            }
        );
        assert_eq!(
            moving.area(1, area),
            Area {
                start: 0x1000,
                end: 0x1000
            },
            "nothing yet"
        );
        assert_eq!(moving.area(7, area), area, "no such range: all of it");
        let beyond = LiveView::read(2, LIVE_ACTIVE, [u64::MAX; MAX_RANGES], 2);
        assert_eq!(beyond.area(0, area), area, "never past the range's end");
        let inactive = LiveView::read(2, 0, [0; MAX_RANGES], 2);
        assert!(inactive.consistent && !inactive.active && !inactive.allows_dump());
        for torn in [
            LiveView::read(3, 0, [0; MAX_RANGES], 3),
            LiveView::read(2, 0, [0; MAX_RANGES], 4),
        ] {
            assert!(!torn.consistent, "{torn:?}");
            assert!(torn.allows_dump(), "a torn copy encrypts in full instead");
            assert_eq!(torn.area(0, area), area);
        }
    }
}
