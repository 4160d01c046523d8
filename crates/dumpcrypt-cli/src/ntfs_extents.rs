//! Where an NTFS file's data lies: its unnamed $DATA attribute's runs, in VCN order, as byte
//! ranges of the partition, including the runs kept in extension records.
//!
//! `ntfs` 0.4 reads a file's attributes through its $ATTRIBUTE_LIST, but when the first
//! piece of $DATA is in the base record it hands back that piece alone: its data runs end at
//! the base record's last run, and the pieces in extension records (later VCNs) are skipped
//! as "already seen". So the attribute list is walked here, with the crate's public API: its
//! $DATA entries, each in the file record it names, ordered by lowest VCN, each piece's runs
//! checked to start where the previous piece ended.

use std::io::{Read, Seek};

use ntfs::attribute_value::NtfsAttributeValue;
use ntfs::structured_values::{NtfsAttributeList, NtfsFileNamespace};
use ntfs::{Ntfs, NtfsAttributeType, NtfsFile};

use crate::options::CliError;

/// A run of the file's data: `len` bytes at partition offset `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

/// What was read of the file.
#[derive(Debug, Clone)]
pub struct FileExtents {
    /// The file's size (the $DATA value's length).
    pub size: u64,
    pub extents: Vec<Extent>,
    /// How many $DATA pieces (attribute records) the runs came from: more than 1 only with
    /// an attribute list.
    pub pieces: usize,
}

fn ntfs_error(what: &str, error: ntfs::NtfsError) -> CliError {
    CliError::Usage(format!("{what}: {error}"))
}

/// Looks `path` up (`\pagefile.sys`, `\DumpStack\dedicated.dmp`; `/` also separates),
/// case-insensitively as Windows does.
pub fn find_file<'n, T: Read + Seek>(
    ntfs: &'n Ntfs,
    fs: &mut T,
    path: &str,
) -> Result<NtfsFile<'n>, CliError> {
    let mut file = ntfs
        .root_directory(fs)
        .map_err(|e| ntfs_error("the root directory", e))?;
    let components: Vec<&str> = path
        .split(['\\', '/'])
        .filter(|part| !part.is_empty())
        .collect();
    if components.is_empty() {
        return Err(CliError::Usage(format!("--file {path}: names no file")));
    }
    for (depth, name) in components.iter().enumerate() {
        let so_far = components[..=depth].join("\\");
        if !file.is_directory() {
            return Err(CliError::Usage(format!(
                "\\{}: is a file, not a directory",
                components[..depth].join("\\")
            )));
        }
        let index = file
            .directory_index(fs)
            .map_err(|e| ntfs_error(&format!("\\{so_far}"), e))?;
        let mut finder = index.finder();
        let entry = ntfs::indexes::NtfsFileNameIndex::find(&mut finder, ntfs, fs, name);
        let Some(entry) = entry else {
            return Err(CliError::Usage(format!(
                "\\{so_far}: no such file on the volume"
            )));
        };
        let entry = entry.map_err(|e| ntfs_error(&format!("\\{so_far}"), e))?;
        let next = entry
            .to_file(ntfs, fs)
            .map_err(|e| ntfs_error(&format!("\\{so_far}"), e))?;
        file = next;
    }
    Ok(file)
}

/// The file's name as the volume spells it, for messages.
pub fn spelled_name<T: Read + Seek>(file: &NtfsFile<'_>, fs: &mut T) -> Option<String> {
    let name = file.name(fs, Some(NtfsFileNamespace::Win32), None)?.ok()?;
    Some(name.name().to_string_lossy())
}

/// The runs of one non-resident $DATA piece, as partition byte ranges.
fn runs_of(value: NtfsAttributeValue<'_, '_>, what: &str) -> Result<Vec<Extent>, CliError> {
    let NtfsAttributeValue::NonResident(value) = value else {
        return Err(CliError::Usage(format!(
            "{what}: its data is resident in the file record (a file of a few hundred bytes): \
             no dump"
        )));
    };
    let mut extents = Vec::new();
    for run in value.data_runs() {
        let run = run.map_err(|e| ntfs_error(what, e))?;
        let Some(start) = run.data_position().value() else {
            return Err(CliError::Usage(format!(
                "{what}: has a sparse run (no clusters on the disk): a dump file never has one"
            )));
        };
        extents.push(Extent {
            start: start.get(),
            len: run.allocated_size(),
        });
    }
    Ok(extents)
}

/// The file's unnamed $DATA runs, in VCN order, across the attribute list if it has one.
pub fn extents<T: Read + Seek>(
    ntfs: &Ntfs,
    fs: &mut T,
    file: &NtfsFile<'_>,
    what: &str,
) -> Result<FileExtents, CliError> {
    let cluster = u64::from(ntfs.cluster_size());
    let mut list = None;
    for attribute in file.attributes_raw() {
        let attribute = attribute.map_err(|e| ntfs_error(what, e))?;
        if attribute.ty().ok() == Some(NtfsAttributeType::AttributeList) {
            let value = attribute
                .structured_value::<_, NtfsAttributeList>(fs)
                .map_err(|e| ntfs_error(what, e))?;
            list = Some(value);
        }
    }
    let Some(list) = list else {
        // No attribute list: the base record holds the whole $DATA.
        for attribute in file.attributes_raw() {
            let attribute = attribute.map_err(|e| ntfs_error(what, e))?;
            if attribute.ty().ok() == Some(NtfsAttributeType::Data) && attribute.name_length() == 0
            {
                let value = attribute.value(fs).map_err(|e| ntfs_error(what, e))?;
                return Ok(FileExtents {
                    size: attribute.value_length(),
                    extents: runs_of(value, what)?,
                    pieces: 1,
                });
            }
        }
        return Err(CliError::Usage(format!("{what}: has no data stream")));
    };
    // Every $DATA piece the list names, with its lowest VCN.
    let mut pieces: Vec<(i64, u64, Vec<Extent>)> = Vec::new();
    let mut entries = list.entries();
    while let Some(entry) = entries.next(fs) {
        let entry = entry.map_err(|e| ntfs_error(what, e))?;
        if entry.ty().ok() != Some(NtfsAttributeType::Data) || entry.name_length() != 0 {
            continue;
        }
        let record = entry.to_file(ntfs, fs).map_err(|e| ntfs_error(what, e))?;
        let attribute = entry
            .to_attribute(&record)
            .map_err(|e| ntfs_error(what, e))?;
        let value = attribute.value(fs).map_err(|e| ntfs_error(what, e))?;
        pieces.push((
            entry.lowest_vcn().value(),
            attribute.value_length(),
            runs_of(value, what)?,
        ));
    }
    pieces.sort_by_key(|(vcn, _, _)| *vcn);
    let Some((_, size, _)) = pieces.first() else {
        return Err(CliError::Usage(format!(
            "{what}: its attribute list names no data stream"
        )));
    };
    // The first piece carries the value's length; the others say 0.
    let size = *size;
    let mut extents = Vec::new();
    let mut next_vcn = 0i64;
    for (vcn, _, runs) in &pieces {
        if *vcn != next_vcn {
            return Err(CliError::Usage(format!(
                "{what}: a piece of its data starts at cluster {vcn} of the file, where \
                 cluster {next_vcn} was due: the attribute list is damaged"
            )));
        }
        for run in runs {
            next_vcn += (run.len / cluster) as i64;
        }
        extents.extend_from_slice(runs);
    }
    Ok(FileExtents {
        size,
        extents,
        pieces: pieces.len(),
    })
}
