//! A raw disk image to write the crash dump into, at the extents its file system gives the
//! dump file, instead of the simulator's own disk and file layout.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::machine::{Extent, FileLayout};

/// One run of the dump file on the disk: absolute byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskExtent {
    pub start: u64,
    pub len: u64,
}

/// A disk image and where the crash dump file lies on it.
#[derive(Debug, Clone)]
pub struct DiskTemplate {
    pub path: PathBuf,
    /// The dump file's runs, in file order (any order on the disk).
    pub crash_extents: Vec<DiskExtent>,
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

impl DiskTemplate {
    /// The template's size: the simulated disk's.
    pub fn len(&self) -> std::io::Result<u64> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    pub fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The crash dump file's layout on the partition at `partition_offset`: the first
    /// `crash_len` bytes of the file, through its extents in file order. Fails when an
    /// extent is not whole sectors, lies before the partition or beyond the disk, overlaps
    /// another, or when the extents hold less than the dump.
    pub fn crash_layout(
        &self,
        partition_offset: u64,
        sector_size: u32,
        crash_len: u64,
    ) -> std::io::Result<FileLayout> {
        let disk_len = self.len()?;
        let sector = u64::from(sector_size);
        let mut sorted = self.crash_extents.clone();
        sorted.sort_by_key(|extent| extent.start);
        for pair in sorted.windows(2) {
            if pair[0].start + pair[0].len > pair[1].start {
                return Err(invalid(format!(
                    "dump extents {:#x}+{:#x} and {:#x}+{:#x} overlap",
                    pair[0].start, pair[0].len, pair[1].start, pair[1].len
                )));
            }
        }
        let mut extents = Vec::new();
        let mut file_offset = 0;
        for extent in &self.crash_extents {
            let end = extent.start.checked_add(extent.len);
            if extent.len == 0 || extent.start % sector != 0 || extent.len % sector != 0 {
                return Err(invalid(format!(
                    "dump extent {:#x}+{:#x} is not whole {sector}-byte sectors",
                    extent.start, extent.len
                )));
            }
            if extent.start < partition_offset || end.is_none_or(|end| end > disk_len) {
                return Err(invalid(format!(
                    "dump extent {:#x}+{:#x} lies outside the partition (from {partition_offset:#x}) \
                     or beyond the disk ({disk_len:#x} bytes)",
                    extent.start, extent.len
                )));
            }
            if file_offset < crash_len {
                let len = extent.len.min(crash_len - file_offset);
                extents.push(Extent {
                    file_offset,
                    partition_offset: extent.start - partition_offset,
                    len,
                });
                file_offset += len;
            }
        }
        if file_offset < crash_len {
            let room: u64 = self.crash_extents.iter().map(|extent| extent.len).sum();
            return Err(invalid(format!(
                "the crash dump is {crash_len} bytes but the dump extents hold only {room}: \
                 give a larger dump file, or less --memory"
            )));
        }
        Ok(FileLayout {
            extents,
            len: crash_len,
        })
    }

    /// Copies the template into `file` (the image, already of the template's size).
    pub(crate) fn copy_into(&self, file: &mut File) -> std::io::Result<()> {
        let mut template = File::open(&self.path)?;
        file.seek(SeekFrom::Start(0))?;
        std::io::copy(&mut template, file)?;
        Ok(())
    }

    /// Reads the template at `offset`.
    pub(crate) fn read_at(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let mut template = File::open(&self.path)?;
        template.seek(SeekFrom::Start(offset))?;
        template.read_exact(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(extents: &[(u64, u64)]) -> (tempfile::NamedTempFile, DiskTemplate) {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(0x10_0000).unwrap();
        let template = DiskTemplate {
            path: file.path().to_path_buf(),
            crash_extents: extents
                .iter()
                .map(|&(start, len)| DiskExtent { start, len })
                .collect(),
        };
        (file, template)
    }

    #[test]
    fn the_dump_takes_the_extents_in_file_order() {
        let (_file, template) =
            template(&[(0x8_0000, 0x2000), (0x2_0000, 0x4000), (0x4_0000, 0x1000)]);
        let layout = template.crash_layout(0x1_0000, 512, 0x5000).unwrap();
        assert_eq!(
            layout.extents,
            vec![
                Extent {
                    file_offset: 0,
                    partition_offset: 0x7_0000,
                    len: 0x2000
                },
                Extent {
                    file_offset: 0x2000,
                    partition_offset: 0x1_0000,
                    len: 0x3000
                },
            ]
        );
    }

    #[test]
    fn extents_that_cannot_hold_the_dump_are_refused() {
        let (_file, small) = template(&[(0x2_0000, 0x1000)]);
        let error = small.crash_layout(0, 512, 0x2000).unwrap_err();
        assert!(error.to_string().contains("hold only 4096"), "{error}");
        let (_file, overlapping) = template(&[(0x2_0000, 0x2000), (0x2_1000, 0x1000)]);
        assert!(overlapping.crash_layout(0, 512, 0x1000).is_err());
        let (_file, misaligned) = template(&[(0x2_0100, 0x1000)]);
        assert!(misaligned.crash_layout(0, 512, 0x1000).is_err());
        let (_file, before) = template(&[(0x1000, 0x1000)]);
        assert!(before.crash_layout(0x2000, 512, 0x1000).is_err());
        let (_file, beyond) = template(&[(0xF_F000, 0x2000)]);
        assert!(beyond.crash_layout(0, 512, 0x1000).is_err());
    }
}
