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
