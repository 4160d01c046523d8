//! Where bytes are and which of them are encrypted: one vocabulary for the driver, the CLI's
//! `decrypt`, the simulator's reference and the tests.
//!
//! Three coordinates, always named:
//! - a **partition offset** is what Dump_Write and Dump_Read are given (DiskByteOffset): bytes
//!   from the start of the dump partition;
//! - a **disk offset** counts from the start of the disk (an image of the whole disk): the
//!   partition's start plus a partition offset;
//! - a **tweak position** is what the encrypted area and the data unit numbers are counted in:
//!   a partition offset plus the *origin*, which is 0 for partition-relative tweaks
//!   (`TweakBase` 0) and the partition's start for disk-absolute ones (`TweakBase` 1).
//!
//! The data unit number of a byte is its tweak position divided by the data unit.
//!
//! [`Geometry`] holds the four facts (data unit, area, tweak base, partition start) and does
//! all the arithmetic; [`Geometry::check_transfer`] turns a Dump_Write's or Dump_Read's
//! offset and length into a [`Transfer`], the one place where the dump path's size and
//! alignment rules are checked.
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

use core::ops::Range;

use crate::fault::Fault;
use crate::xts::{DataUnit, XtsAes256};

/// Where data unit numbers count from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TweakBase {
    /// Partition-relative: tweak positions are partition offsets (`TweakBase` 0).
    Partition,
    /// Disk-absolute: tweak positions are disk offsets (`TweakBase` 1).
    Disk,
}

impl TweakBase {
    /// The `TweakBase` registry value.
    pub const fn from_dword(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Partition),
            1 => Some(Self::Disk),
            _ => None,
        }
    }

    /// The `TweakBase` registry value.
    pub const fn as_dword(self) -> u32 {
        match self {
            Self::Partition => 0,
            Self::Disk => 1,
        }
    }

    /// The one spelling the tools use: `partition` or `disk`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Partition => "partition",
            Self::Disk => "disk",
        }
    }
}

/// The half-open byte range `[start, end)` that is encrypted, in tweak positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    /// First encrypted tweak position.
    pub start: u64,
    /// First tweak position past the area; `u64::MAX` runs to the end of the disk.
    pub end: u64,
}

impl Area {
    /// The whole disk: what an absent EncryptedAreaStart/EncryptedAreaEnd means.
    pub const WHOLE_DISK: Area = Area {
        start: 0,
        end: u64::MAX,
    };

    /// The part of `len` bytes at tweak position `position` inside the area, relative to
    /// `position`; `None` when they do not meet.
    pub fn intersect(&self, position: u64, len: u64) -> Option<Range<u64>> {
        let end = position.saturating_add(len);
        let low = position.max(self.start);
        let high = end.min(self.end);
        (low < high).then(|| low - position..high - position)
    }
}

/// The encrypted part of a run of bytes: `start..end` relative to the run, whose first byte
/// is the first byte of data unit `first_unit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first encrypted byte in the run.
    pub start: usize,
    /// Offset past the last encrypted byte in the run.
    pub end: usize,
    /// The data unit number at `start`.
    pub first_unit: u64,
}

/// Everything that says which bytes are encrypted under which data unit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    data_unit: DataUnit,
    area: Area,
    tweak_base: TweakBase,
    partition_start: u64,
}

impl Geometry {
    /// A geometry; `partition_start` is the dump partition's first byte on its disk (only
    /// disk-absolute tweaks and whole-disk images depend on it).
    pub const fn new(
        data_unit: DataUnit,
        area: Area,
        tweak_base: TweakBase,
        partition_start: u64,
    ) -> Self {
        Self {
            data_unit,
            area,
            tweak_base,
            partition_start,
        }
    }

    /// The same placement with another area.
    pub const fn with_area(&self, area: Area) -> Self {
        Self { area, ..*self }
    }

    /// The data unit.
    pub const fn data_unit(&self) -> DataUnit {
        self.data_unit
    }

    /// The encrypted area, in tweak positions.
    pub const fn area(&self) -> Area {
        self.area
    }

    /// The tweak base.
    pub const fn tweak_base(&self) -> TweakBase {
        self.tweak_base
    }

    /// The dump partition's first byte on its disk.
    pub const fn partition_start(&self) -> u64 {
        self.partition_start
    }

    /// The tweak position of the partition's first byte.
    pub const fn origin(&self) -> u64 {
        match self.tweak_base {
            TweakBase::Partition => 0,
            TweakBase::Disk => self.partition_start,
        }
    }

    /// Disk offset minus tweak position: what a disk offset has that a tweak position lacks.
    const fn disk_shift(&self) -> u64 {
        match self.tweak_base {
            TweakBase::Partition => self.partition_start,
            TweakBase::Disk => 0,
        }
    }

    /// The tweak position of a partition offset; `None` past the top of the 64-bit range.
    pub const fn position_of_partition_offset(&self, partition_offset: u64) -> Option<u64> {
        partition_offset.checked_add(self.origin())
    }

    /// The tweak position of a disk offset; `None` for a byte before the origin.
    pub const fn position_of_disk_offset(&self, disk_offset: u64) -> Option<u64> {
        disk_offset.checked_sub(self.disk_shift())
    }

    /// The encrypted area in disk offsets (its end saturates at the top of the range).
    pub const fn area_on_disk(&self) -> Range<u64> {
        self.area.start.saturating_add(self.disk_shift())
            ..self.area.end.saturating_add(self.disk_shift())
    }

    /// Whether a tweak position is the first byte of a data unit.
    pub const fn is_unit_aligned(&self, position: u64) -> bool {
        position.is_multiple_of(self.data_unit.bytes() as u64)
    }

    /// The data unit number of the byte at a tweak position.
    pub const fn unit_number(&self, position: u64) -> u64 {
        position / self.data_unit.bytes() as u64
    }

    /// The encrypted part of `len` bytes at tweak position `position`, or `None` when none
    /// of them is encrypted.
    pub fn encrypted_span(&self, position: u64, len: usize) -> Option<Span> {
        let inside = self.area.intersect(position, len as u64)?;
        Some(Span {
            first_unit: self.unit_number(position + inside.start),
            start: inside.start as usize,
            end: inside.end as usize,
        })
    }

    /// The encrypted part of `len` bytes at disk offset `disk_offset` (bytes before the
    /// origin are never encrypted: the area starts at or after it).
    pub fn encrypted_span_on_disk(&self, disk_offset: u64, len: usize) -> Option<Span> {
        let area = self.area_on_disk();
        let start = disk_offset.max(area.start);
        let end = disk_offset.saturating_add(len as u64).min(area.end);
        if start >= end {
            return None;
        }
        let position = self.position_of_disk_offset(start)?;
        Some(Span {
            start: (start - disk_offset) as usize,
            end: (end - disk_offset) as usize,
            first_unit: self.unit_number(position),
        })
    }

    /// Checks a Dump_Write's or Dump_Read's DiskByteOffset and ByteCount against the data unit
    /// and a buffer of `capacity` bytes, and places it. The only place these rules are checked.
    pub fn check_transfer(
        &self,
        offset: i64,
        byte_count: u32,
        capacity: usize,
    ) -> Result<Transfer, Fault> {
        let unit = self.data_unit.bytes();
        if byte_count as usize > capacity {
            return Err(Fault::TransferTooLarge {
                byte_count,
                capacity,
            });
        }
        let position = u64::try_from(offset)
            .ok()
            .and_then(|offset| self.position_of_partition_offset(offset))
            .filter(|position| position.checked_add(byte_count.into()).is_some())
            .ok_or(Fault::OffsetOutOfRange {
                offset: offset as u64,
                byte_count,
            })?;
        if !self.is_unit_aligned(position) {
            return Err(Fault::OffsetMisaligned {
                offset: position,
                data_unit: unit,
            });
        }
        if !(byte_count as usize).is_multiple_of(unit) {
            return Err(Fault::LengthMisaligned {
                byte_count,
                data_unit: unit,
            });
        }
        // INVARIANT: checked above: whole data units from a data unit boundary, within the
        // capacity, without overflow.
        Ok(Transfer {
            position,
            len: byte_count as usize,
            data_unit: self.data_unit,
        })
    }
}

/// A transfer of the dump path, checked and placed: where it starts in tweak positions and
/// how long it is.
///
/// # Invariants
/// `position` is a data unit boundary, `len` a whole number of data units no larger than the
/// buffer it was checked against, and `position + len` does not overflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    position: u64,
    len: usize,
    data_unit: DataUnit,
}

/// An encrypted area and the key it is encrypted under: what a transfer is encrypted with.
/// A slice of them is sorted by start and its areas do not overlap; every bound is a data
/// unit boundary (or `u64::MAX`).
pub type KeyedArea<'k> = (Area, &'k XtsAes256);

impl Transfer {
    /// Its first byte, in tweak positions.
    pub const fn position(&self) -> u64 {
        self.position
    }

    /// ByteCount, in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the transfer has no bytes.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part inside `area`, with the unit number of its first byte.
    pub fn span(&self, area: Area) -> Option<Span> {
        let inside = area.intersect(self.position, self.len as u64)?;
        Some(Span {
            first_unit: (self.position + inside.start) / self.data_unit.bytes() as u64,
            start: inside.start as usize,
            end: inside.end as usize,
        })
    }

    /// Dump_Write: copies `source` to `destination`, encrypting the part inside each area
    /// with its key. Both are `len()` bytes long; `keys` is sorted and disjoint.
    pub fn encrypt<'k>(
        &self,
        keys: impl IntoIterator<Item = KeyedArea<'k>>,
        source: &[u8],
        destination: &mut [u8],
    ) -> Result<(), Fault> {
        let misfit = self.misfit();
        if source.len() != self.len || destination.len() != self.len {
            return Err(misfit);
        }
        let mut done = 0;
        for (area, cipher) in keys {
            let Some(span) = self.span(area) else {
                continue;
            };
            let (Some(plain), Some(inside), Some(output)) = (
                source.get(done..span.start),
                source.get(span.start..span.end),
                destination.get_mut(done..span.end),
            ) else {
                return Err(misfit);
            };
            let (copy, encrypted) = output.split_at_mut(plain.len());
            copy.copy_from_slice(plain);
            cipher
                .encrypt_units(self.data_unit, span.first_unit, inside, encrypted)
                .map_err(|_| misfit)?;
            done = span.end;
        }
        match (source.get(done..), destination.get_mut(done..)) {
            (Some(rest), Some(output)) => output.copy_from_slice(rest),
            _ => return Err(misfit),
        }
        Ok(())
    }

    /// Dump_Write with the keys wiped: copies `source` to `destination` with zeros in place
    /// of the part inside each area. Both are `len()` bytes long.
    pub fn blank(
        &self,
        areas: impl IntoIterator<Item = Area>,
        source: &[u8],
        destination: &mut [u8],
    ) -> Result<(), Fault> {
        let misfit = self.misfit();
        if source.len() != self.len {
            return Err(misfit);
        }
        let destination = destination.get_mut(..self.len).ok_or(misfit)?;
        destination.copy_from_slice(source);
        for area in areas {
            if let Some(span) = self.span(area) {
                destination
                    .get_mut(span.start..span.end)
                    .ok_or(misfit)?
                    .fill(0);
            }
        }
        Ok(())
    }

    /// Dump_Read: decrypts in place the part of `data` inside each area with its key.
    /// `data` is `len()` bytes long; `keys` is sorted and disjoint.
    pub fn decrypt_in_place<'k>(
        &self,
        keys: impl IntoIterator<Item = KeyedArea<'k>>,
        data: &mut [u8],
    ) -> Result<(), Fault> {
        let misfit = self.misfit();
        if data.len() != self.len {
            return Err(misfit);
        }
        for (area, cipher) in keys {
            let Some(span) = self.span(area) else {
                continue;
            };
            let inside = data.get_mut(span.start..span.end).ok_or(misfit)?;
            cipher
                .decrypt_units_in_place(self.data_unit, span.first_unit, inside)
                .map_err(|_| misfit)?;
        }
        Ok(())
    }

    /// The fault for data or keys that do not fit the transfer (lengths that differ, areas
    /// out of order). By the type invariant and the callers' checks it cannot happen; it is
    /// reported rather than trusted.
    const fn misfit(&self) -> Fault {
        Fault::LengthMisaligned {
            byte_count: self.len as u32,
            data_unit: self.data_unit.bytes(),
        }
    }
}

/// Whether the dump device's writes can always be whole data units: its sector size
/// (FILTER_EXTENSION's Geometry.BytesPerSector, known at DriverEntry) is a nonzero multiple of
/// the data unit. With the sector size unknown (0) only 512-byte units are accepted, the
/// smallest sector there is. A data unit this refuses loads a refusing instance: the dump
/// stack issues sector-aligned writes, and a 4096-byte unit on a 512-byte-sector disk would be
/// found misaligned only in the middle of a dump, as a bug check.
pub const fn data_unit_fits_sectors(data_unit: DataUnit, bytes_per_sector: u32) -> bool {
    let unit = data_unit.bytes() as u32;
    if bytes_per_sector == 0 {
        unit == 512
    } else {
        bytes_per_sector.is_multiple_of(unit)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn data_units_against_the_sector_size() {
        use super::data_unit_fits_sectors as fits;
        for (unit, sector, expected) in [
            (DataUnit::Bytes512, 512, true),
            (DataUnit::Bytes512, 4096, true),
            (DataUnit::Bytes512, 0, true),
            (DataUnit::Bytes512, 520, false),
            (DataUnit::Bytes512, 256, false),
            (DataUnit::Bytes4096, 4096, true),
            (DataUnit::Bytes4096, 8192, true),
            (DataUnit::Bytes4096, 512, false),
            (DataUnit::Bytes4096, 2048, false),
            (DataUnit::Bytes4096, 0, false),
        ] {
            assert_eq!(
                fits(unit, sector),
                expected,
                "{unit:?} on {sector}-byte sectors"
            );
        }
    }

    use super::*;

    const UNIT: DataUnit = DataUnit::Bytes512;

    fn geometry(area: Range<u64>, tweak_base: TweakBase, partition_start: u64) -> Geometry {
        Geometry::new(
            UNIT,
            Area {
                start: area.start,
                end: area.end,
            },
            tweak_base,
            partition_start,
        )
    }

    #[test]
    fn area_intersection_at_the_boundaries() {
        let area = Area {
            start: 1024,
            end: 4096,
        };
        assert_eq!(area.intersect(0, 1024), None);
        assert_eq!(area.intersect(0, 1536), Some(1024..1536));
        assert_eq!(area.intersect(1024, 512), Some(0..512));
        assert_eq!(area.intersect(3584, 1024), Some(0..512));
        assert_eq!(area.intersect(4096, 512), None);
        assert_eq!(area.intersect(0, 8192), Some(1024..4096));
        assert_eq!(
            Area::WHOLE_DISK.intersect(u64::MAX - 512, 512),
            Some(0..512)
        );
    }

    #[test]
    fn tweak_bases_in_the_registry_and_the_tools() {
        assert_eq!(TweakBase::from_dword(0), Some(TweakBase::Partition));
        assert_eq!(TweakBase::from_dword(1), Some(TweakBase::Disk));
        assert_eq!(TweakBase::from_dword(2), None);
        assert_eq!(TweakBase::Partition.as_dword(), 0);
        assert_eq!(TweakBase::Disk.as_dword(), 1);
        assert_eq!(TweakBase::Partition.name(), "partition");
        assert_eq!(TweakBase::Disk.name(), "disk");
    }

    #[test]
    fn unit_numbers_and_alignment() {
        let g = geometry(0..u64::MAX, TweakBase::Partition, 0);
        assert_eq!(g.unit_number(0), 0);
        assert_eq!(g.unit_number(511), 0);
        assert_eq!(g.unit_number(512), 1);
        assert_eq!(g.unit_number(u64::MAX), u64::MAX / 512);
        assert!(g.is_unit_aligned(0) && g.is_unit_aligned(1024));
        assert!(!g.is_unit_aligned(1) && !g.is_unit_aligned(513));
        let big = Geometry::new(DataUnit::Bytes4096, Area::WHOLE_DISK, TweakBase::Disk, 0);
        assert_eq!(big.unit_number(8191), 1);
        assert!(!big.is_unit_aligned(512));
    }

    #[test]
    fn the_three_coordinates() {
        let partition = geometry(0..u64::MAX, TweakBase::Partition, 0x10_0000);
        assert_eq!(partition.origin(), 0);
        assert_eq!(partition.position_of_partition_offset(0x200), Some(0x200));
        assert_eq!(partition.position_of_disk_offset(0x10_0200), Some(0x200));
        assert_eq!(partition.position_of_disk_offset(0x0f_ffff), None);

        let disk = geometry(0..u64::MAX, TweakBase::Disk, 0x10_0000);
        assert_eq!(disk.origin(), 0x10_0000);
        assert_eq!(disk.position_of_partition_offset(0x200), Some(0x10_0200));
        assert_eq!(disk.position_of_disk_offset(0x10_0200), Some(0x10_0200));
        assert_eq!(disk.position_of_disk_offset(0x200), Some(0x200));
        assert_eq!(disk.position_of_partition_offset(u64::MAX), None);
    }

    #[test]
    fn another_area_in_the_same_place() {
        let g = geometry(0x1000..0x3000, TweakBase::Disk, 0x10_0000);
        let area = Area {
            start: 0x8000,
            end: 0x9000,
        };
        let moved = g.with_area(area);
        assert_eq!(moved.area(), area);
        assert_eq!(
            (
                moved.data_unit(),
                moved.tweak_base(),
                moved.partition_start()
            ),
            (g.data_unit(), g.tweak_base(), g.partition_start())
        );
    }

    #[test]
    fn the_area_on_disk() {
        let partition = geometry(0x1000..0x3000, TweakBase::Partition, 0x10_0000);
        assert_eq!(partition.area_on_disk(), 0x10_1000..0x10_3000);
        let disk = geometry(0x1000..0x3000, TweakBase::Disk, 0x10_0000);
        assert_eq!(disk.area_on_disk(), 0x1000..0x3000);
        let open = geometry(0..u64::MAX, TweakBase::Partition, 0x10_0000);
        assert_eq!(open.area_on_disk(), 0x10_0000..u64::MAX);
    }

    #[test]
    fn spans_name_the_unit_of_their_first_byte() {
        let g = geometry(0x1000..0x3000, TweakBase::Disk, 0x800);
        // A run from tweak position 0x600 to 0x1600: encrypted from 0x1000 (unit 8).
        assert_eq!(
            g.encrypted_span(0x600, 0x1000),
            Some(Span {
                start: 0xa00,
                end: 0x1000,
                first_unit: 8
            })
        );
        assert_eq!(g.encrypted_span(0x3000, 0x200), None);
        assert_eq!(g.encrypted_span(0, 0x1000), None);
        // The same bytes seen from the disk (disk-absolute: the same numbers).
        assert_eq!(
            g.encrypted_span_on_disk(0x600, 0x1000),
            g.encrypted_span(0x600, 0x1000)
        );
        // Partition-relative, partition at 0x800: tweak position = disk offset − 0x800.
        let p = geometry(0x1000..0x3000, TweakBase::Partition, 0x800);
        assert_eq!(
            p.encrypted_span_on_disk(0, 0x2000),
            Some(Span {
                start: 0x1800,
                end: 0x2000,
                first_unit: 8
            })
        );
        assert_eq!(p.encrypted_span_on_disk(0, 0x1800), None);
    }

    #[test]
    fn transfers_are_checked_in_order_of_the_table() {
        let g = geometry(0..u64::MAX, TweakBase::Partition, 0);
        assert_eq!(
            g.check_transfer(0, 4097, 4096),
            Err(Fault::TransferTooLarge {
                byte_count: 4097,
                capacity: 4096
            })
        );
        assert_eq!(
            g.check_transfer(-512, 512, 4096),
            Err(Fault::OffsetOutOfRange {
                offset: (-512i64) as u64,
                byte_count: 512
            })
        );
        assert_eq!(
            g.check_transfer(i64::MAX - 510, 512, 4096),
            Err(Fault::OffsetMisaligned {
                offset: (i64::MAX - 510) as u64,
                data_unit: 512
            })
        );
        assert_eq!(
            g.check_transfer(100, 512, 4096),
            Err(Fault::OffsetMisaligned {
                offset: 100,
                data_unit: 512
            })
        );
        assert_eq!(
            g.check_transfer(512, 100, 4096),
            Err(Fault::LengthMisaligned {
                byte_count: 100,
                data_unit: 512
            })
        );
        let transfer = g.check_transfer(1024, 4096, 4096).unwrap();
        assert_eq!(transfer.len(), 4096);
        assert_eq!(transfer.position(), 1024);
        assert!(!transfer.is_empty());
        assert_eq!(
            transfer.span(Area::WHOLE_DISK),
            Some(Span {
                start: 0,
                end: 4096,
                first_unit: 2
            })
        );
        assert_eq!(
            transfer.span(Area {
                start: 2048,
                end: 3072
            }),
            Some(Span {
                start: 1024,
                end: 2048,
                first_unit: 4
            })
        );
        assert_eq!(
            transfer.span(Area {
                start: 8192,
                end: 9216
            }),
            None
        );
        assert!(g.check_transfer(0, 0, 4096).unwrap().is_empty());
    }

    /// Two areas under two keys and a plaintext rest, checked with the independent `xts-mode`
    /// crate: each area decrypts with its own key and unit numbers, the rest is the source.
    #[test]
    fn transfers_encrypt_each_area_with_its_key() {
        use aes::cipher::KeyInit;
        let keys: [[u8; 64]; 2] = [
            core::array::from_fn(|i| i as u8),
            core::array::from_fn(|i| 0x80 | i as u8),
        ];
        let ciphers = keys.map(|key| XtsAes256::new(&key).unwrap());
        let oracle = |key: &[u8; 64]| {
            xts_mode::Xts128::<aes::Aes256>::new(
                aes::Aes256::new_from_slice(&key[..32]).unwrap(),
                aes::Aes256::new_from_slice(&key[32..]).unwrap(),
            )
        };
        let areas = [
            Area {
                start: 0x1200,
                end: 0x1800,
            },
            Area {
                start: 0x2000,
                end: 0x2400,
            },
        ];
        let g = geometry(0..u64::MAX, TweakBase::Partition, 0);
        // 0x1000..0x3000: plaintext, area 0, plaintext, area 1, plaintext.
        let transfer = g.check_transfer(0x1000, 0x2000, 0x2000).unwrap();
        let source: std::vec::Vec<u8> = (0..0x2000).map(|i| (i * 7 + 1) as u8).collect();
        let mut written = std::vec![0u8; 0x2000];
        let keyed = [(areas[0], &ciphers[0]), (areas[1], &ciphers[1])];
        transfer.encrypt(keyed, &source, &mut written).unwrap();
        let mut expected = source.clone();
        for (area, key) in areas.iter().zip(&keys) {
            let (start, end) = ((area.start - 0x1000) as usize, (area.end - 0x1000) as usize);
            oracle(key).encrypt_area(
                &mut expected[start..end],
                512,
                u128::from(area.start / 512),
                |n: u128| n.to_le_bytes(),
            );
        }
        assert_eq!(written, expected);
        let mut read = written.clone();
        transfer.decrypt_in_place(keyed, &mut read).unwrap();
        assert_eq!(read, source);
        // Lengths that do not fit, and areas out of order, are refused, never trusted.
        let misfit = Err(Fault::LengthMisaligned {
            byte_count: 0x2000,
            data_unit: 512,
        });
        assert_eq!(
            transfer.encrypt(keyed, &source[..512], &mut written),
            misfit
        );
        assert_eq!(
            transfer.encrypt(keyed, &source, &mut written[..512]),
            misfit
        );
        assert_eq!(transfer.decrypt_in_place(keyed, &mut read[..512]), misfit);
        let reversed = [keyed[1], keyed[0]];
        assert_eq!(transfer.encrypt(reversed, &source, &mut written), misfit);
        // No area at all: a copy; and lengths that do not fit are refused there too.
        assert_eq!(transfer.encrypt([], &source[..512], &mut written), misfit);
        assert_eq!(transfer.encrypt([], &source, &mut written[..512]), misfit);
        transfer.encrypt([], &source, &mut written).unwrap();
        assert_eq!(written, source);
    }

    #[test]
    fn disk_tweaks_move_the_offset_before_it_is_checked() {
        let g = geometry(0..u64::MAX, TweakBase::Disk, 0x100);
        assert_eq!(
            g.check_transfer(0, 512, 4096),
            Err(Fault::OffsetMisaligned {
                offset: 0x100,
                data_unit: 512
            })
        );
        let top = geometry(0..u64::MAX, TweakBase::Disk, u64::MAX - 1023);
        assert_eq!(
            top.check_transfer(512, 1024, 4096),
            Err(Fault::OffsetOutOfRange {
                offset: 512,
                byte_count: 1024
            })
        );
        assert!(top.check_transfer(0, 512, 4096).is_ok());
    }
}
