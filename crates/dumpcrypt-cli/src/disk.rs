//! A disk image's partitions (GPT or MBR, 512- or 4096-byte sectors), which of them hold
//! NTFS, and a partition read as a file system reads it: as it is on the disk, or through
//! the driver's transform when the volume was encrypted as a whole.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use dumpcrypt_xts::XtsAes256;

use crate::decrypt::Plan;
use crate::input::read_full;
use crate::options::CliError;

/// The OEM id of an NTFS boot sector, at offset 3.
pub const NTFS_OEM_ID: &[u8; 8] = b"NTFS    ";

/// A partition of the disk, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Its number in the table, from 1 (as `sgdisk -p` and `fdisk -l` count).
    pub number: u32,
    pub start: u64,
    pub len: u64,
}

/// The partition table found.
#[derive(Debug, Clone)]
pub struct Table {
    /// `GPT` or `MBR`.
    pub scheme: &'static str,
    pub sector_size: u64,
    pub partitions: Vec<Partition>,
}

/// Reads the partition table: GPT (primary or backup header, 512- or 4096-byte sectors),
/// else MBR. An MBR says nothing of the sector size: 512 is taken unless no partition starts
/// with an NTFS boot sector at 512 and one does at 4096.
pub fn read_table(file: &mut File, image_len: u64, name: &str) -> Result<Table, CliError> {
    let io = |error: std::io::Error| CliError::Usage(format!("{name}: {error}"));
    if let Ok(gpt) = gptman::GPT::find_from(file) {
        let sector_size = gpt.sector_size;
        let partitions = gpt
            .iter()
            .filter(|(_, entry)| entry.is_used())
            .map(|(number, entry)| Partition {
                number,
                start: entry.starting_lba * sector_size,
                len: (entry.ending_lba + 1 - entry.starting_lba) * sector_size,
            })
            .collect();
        return Ok(Table {
            scheme: "GPT",
            sector_size,
            partitions,
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mbr_at = |file: &mut File, sector_size: u32| -> Option<Vec<Partition>> {
        file.seek(SeekFrom::Start(0)).ok()?;
        let mbr = mbrman::MBR::read_from(file, sector_size).ok()?;
        Some(
            mbr.iter()
                .filter(|(_, entry)| entry.is_used())
                .map(|(number, entry)| Partition {
                    number: number as u32,
                    start: u64::from(entry.starting_lba) * u64::from(sector_size),
                    len: u64::from(entry.sectors) * u64::from(sector_size),
                })
                .collect(),
        )
    };
    let Some(at_512) = mbr_at(file, 512) else {
        return Err(CliError::Usage(format!(
            "{name}: no partition table (neither a GPT header at sector 1 of 512 or 4096 bytes \
             nor an MBR signature): is it an image of a whole disk? An image of the partition \
             alone can be decrypted with `dumpcrypt decrypt`"
        )));
    };
    let holds_ntfs = |file: &mut File, partitions: &[Partition]| {
        partitions
            .iter()
            .any(|p| p.start < image_len && is_ntfs_at(file, p.start).unwrap_or(false))
    };
    if !holds_ntfs(file, &at_512) {
        if let Some(at_4096) = mbr_at(file, 4096) {
            if holds_ntfs(file, &at_4096) {
                return Ok(Table {
                    scheme: "MBR",
                    sector_size: 4096,
                    partitions: at_4096,
                });
            }
        }
    }
    Ok(Table {
        scheme: "MBR",
        sector_size: 512,
        partitions: at_512,
    })
}

/// Whether an NTFS boot sector in the clear starts at disk offset `start`.
pub fn is_ntfs_at(file: &mut File, start: u64) -> std::io::Result<bool> {
    let mut boot = [0u8; 512];
    file.seek(SeekFrom::Start(start))?;
    let got = read_full(file, &mut boot)?;
    Ok(got == boot.len() && is_ntfs_boot_sector(&boot))
}

pub fn is_ntfs_boot_sector(boot: &[u8]) -> bool {
    boot.get(3..11) == Some(NTFS_OEM_ID.as_slice())
}

/// A partition as a `Read + Seek` from its first byte: the image's bytes, or (with a cipher)
/// the image's bytes decrypted by the driver's transform at their own disk offsets. Reads go
/// to whole data units of the encrypted area, so that every unit is decrypted with its own
/// tweak whatever the caller asks for.
pub struct PartitionReader<'k> {
    file: File,
    start: u64,
    len: u64,
    position: u64,
    cipher: Option<(&'k Plan, &'k XtsAes256)>,
}

impl<'k> PartitionReader<'k> {
    /// `plan` covers the partition's bytes in disk offsets, with the driver's geometry.
    pub fn new(
        file: File,
        partition: &Partition,
        cipher: Option<(&'k Plan, &'k XtsAes256)>,
    ) -> Self {
        Self {
            file,
            start: partition.start,
            len: partition.len,
            position: 0,
            cipher,
        }
    }

    /// Reads `out.len()` bytes at disk offset `offset`, decrypted where the area is; fewer
    /// only where the image ends.
    fn read_disk(&mut self, offset: u64, out: &mut [u8]) -> std::io::Result<usize> {
        let Some((plan, xts)) = self.cipher else {
            self.file.seek(SeekFrom::Start(offset))?;
            return read_full(&mut self.file, out);
        };
        // Widen to whole data units (a unit never straddles the area's edges: they are
        // aligned), decrypt, and copy out the part asked for.
        let unit = plan.geometry.data_unit().bytes() as u64;
        let origin = plan.geometry.area_on_disk().start % unit;
        let from = offset - (offset.wrapping_sub(origin) % unit);
        let end = offset + out.len() as u64;
        let to = end + (unit - (end.wrapping_sub(origin) % unit)) % unit;
        let mut raw = vec![0u8; (to - from) as usize];
        self.file.seek(SeekFrom::Start(from))?;
        let got = read_full(&mut self.file, &mut raw)?;
        let whole = got - got % unit as usize;
        let mut plain = vec![0u8; whole];
        plan.transform(xts, from, &raw[..whole], &mut plain)
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        let skip = (offset - from) as usize;
        let available = whole.saturating_sub(skip).min(out.len());
        out[..available].copy_from_slice(&plain[skip..skip + available]);
        Ok(available)
    }
}

impl Read for PartitionReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.position);
        let want = (out.len() as u64).min(left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let got = self.read_disk(self.start + self.position, &mut out[..want])?;
        self.position += got as u64;
        Ok(got)
    }
}

impl Seek for PartitionReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        let target = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the partition's start",
            )
        })?;
        self.position = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An 8 MiB image file with an NTFS boot sector's OEM id at 1 MiB.
    fn image_with_ntfs_at_1mib() -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.set_len(8 << 20).unwrap();
        file.seek(SeekFrom::Start((1 << 20) + 3)).unwrap();
        file.write_all(NTFS_OEM_ID).unwrap();
        file
    }

    #[test]
    fn gpt_with_4096_byte_sectors() {
        let mut file = image_with_ntfs_at_1mib();
        let mut gpt = gptman::GPT::new_from(&mut file, 4096, [7; 16]).unwrap();
        gpt[1] = gptman::GPTPartitionEntry {
            partition_type_guid: [0xA2; 16],
            unique_partition_guid: [0x11; 16],
            starting_lba: 256,
            ending_lba: 1791,
            attribute_bits: 0,
            partition_name: "data".into(),
        };
        gpt.write_into(&mut file).unwrap();
        let table = read_table(&mut file, 8 << 20, "test").unwrap();
        assert_eq!((table.scheme, table.sector_size), ("GPT", 4096));
        assert_eq!(
            table.partitions,
            [Partition {
                number: 1,
                start: 1 << 20,
                len: 1536 * 4096
            }]
        );
        assert!(is_ntfs_at(&mut file, table.partitions[0].start).unwrap());
    }

    fn mbr_image(sector_size: u32) -> File {
        let mut file = image_with_ntfs_at_1mib();
        let mut mbr = mbrman::MBR::new_from(&mut file, sector_size, [1, 2, 3, 4]).unwrap();
        mbr[1] = mbrman::MBRPartitionEntry {
            boot: 0,
            first_chs: mbrman::CHS::empty(),
            sys: 0x07,
            last_chs: mbrman::CHS::empty(),
            starting_lba: (1 << 20) / sector_size,
            sectors: 1000,
        };
        mbr.write_into(&mut file).unwrap();
        file
    }

    #[test]
    fn mbr_sector_size_from_where_ntfs_starts() {
        let table = read_table(&mut mbr_image(512), 8 << 20, "test").unwrap();
        assert_eq!((table.scheme, table.sector_size), ("MBR", 512));
        assert_eq!(table.partitions[0].start, 1 << 20);
        assert_eq!(table.partitions[0].len, 1000 * 512);
        // The same table entry read at 512 would put the partition at 128 KiB, where no NTFS
        // starts: the sector size is 4096.
        let table = read_table(&mut mbr_image(4096), 8 << 20, "test").unwrap();
        assert_eq!((table.scheme, table.sector_size), ("MBR", 4096));
        assert_eq!(table.partitions[0].start, 1 << 20);
        assert_eq!(table.partitions[0].len, 1000 * 4096);
    }

    /// Reads at any offset and length through the decrypting reader give the bytes a whole
    /// decryption gives, inside and around an area that starts and ends inside the partition.
    #[test]
    fn the_decrypting_reader_decrypts_whole_units_at_their_own_tweaks() {
        use dumpcrypt_core::geometry::{Area, Geometry, TweakBase};
        use dumpcrypt_xts::DataUnit;
        let partition = Partition {
            number: 1,
            start: 0x2000,
            len: 0x10000,
        };
        let mut image = vec![0u8; 0x12000];
        for (i, byte) in image.iter_mut().enumerate() {
            *byte = (i * 7 + i / 511) as u8;
        }
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&image).unwrap();
        for unit in [DataUnit::Bytes512, DataUnit::Bytes4096] {
            let area = Area {
                start: 0x1000,
                end: 0xE000,
            };
            let geometry = Geometry::new(unit, area, TweakBase::Partition, partition.start);
            let range = partition.start..partition.start + partition.len;
            let plan = Plan::new(range.clone(), geometry, true).unwrap();
            let mut key = [0u8; 64];
            key[32] = 1;
            let xts = XtsAes256::new(&key).unwrap();
            let mut whole = vec![0u8; partition.len as usize];
            plan.transform(
                &xts,
                range.start,
                &image[range.start as usize..range.end as usize],
                &mut whole,
            )
            .unwrap();
            assert!(whole != image[range.start as usize..range.end as usize]);
            let mut reader =
                PartitionReader::new(file.try_clone().unwrap(), &partition, Some((&plan, &xts)));
            for (at, len) in [
                (0, 512),
                (0x1234, 3000),
                (0xFFF, 2),
                (0xDF00, 0x300),
                (0xFF00, 0x400),
            ] {
                reader.seek(SeekFrom::Start(at)).unwrap();
                let mut out = vec![0u8; len];
                let got = read_full(&mut reader, &mut out).unwrap();
                let end = (at as usize + len).min(whole.len());
                assert_eq!(got, end - at as usize);
                assert!(out[..got] == whole[at as usize..end], "{unit:?} at {at:#x}");
            }
        }
    }

    #[test]
    fn no_table_is_a_sentence() {
        let mut file = image_with_ntfs_at_1mib();
        let error = read_table(&mut file, 8 << 20, "disk.img").unwrap_err();
        assert!(error.to_string().contains("no partition table"), "{error}");
    }
}
