//! Which of several keys an image was encrypted with: the one under which a crash dump or
//! hibernation header decrypts (`decrypt --identity`, where the sealed key source gives a key
//! per load).
//!
//! The encrypted part of the image is read from its start, a piece at a time; each piece is
//! decrypted under every key (newest first), and every 512-byte sector of the result is
//! looked at. The first header found decides. Under a wrong key, and on a sector the driver
//! never encrypted, decryption gives noise, so the test must be one noise does not pass:
//!
//! - a crash dump header starts with its 8-byte signature, `PAGEDU64` or `PAGEDUMP`
//!   (`find_dump`): noise matches one with probability 2^-63 per sector and key;
//! - a hibernation file's header page starts with a 4-byte signature (`HIBR`, `hibr`,
//!   `WAKE`, `wake`, `RSTR`, `rstr`, `link`: the PO_MEMORY_IMAGE signatures as Windows
//!   versions write them, and the simulator's `HIBR`) and is mostly zero (its fields are
//!   few and small); at least 128 of its first 512 bytes must be zero, which noise (about
//!   2 zero bytes in 512) never gives.

use std::fs::File;
use std::io::{Seek, SeekFrom};

use dumpcrypt_xts::XtsAes256;

use crate::decrypt::Plan;
use crate::find_dump;
use crate::input::{progress_bar, read_full};
use crate::options::CliError;

/// The sectors looked at.
const SECTOR: usize = 512;

/// The hibernation header signatures.
const HIBERNATION_SIGNATURES: [&[u8; 4]; 7] = [
    b"HIBR", b"hibr", b"WAKE", b"wake", b"RSTR", b"rstr", b"link",
];

/// Zero bytes a hibernation header's first sector has at least.
const HIBERNATION_MIN_ZEROS: usize = 128;

/// Where a key made a header appear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The key's index among those searched.
    pub key: usize,
    /// The header's image offset.
    pub offset: u64,
    /// What was found, for people: `a crash dump header (PAGEDU64)`.
    pub what: String,
}

/// The header `sector` (its first 512 bytes, or fewer at the end) starts, if any.
pub fn header_in(sector: &[u8]) -> Option<String> {
    if let Some(signature) = find_dump::crash_dump_signature(sector) {
        return Some(format!("a crash dump header ({signature})"));
    }
    let signature = sector.get(..4)?;
    let hibernation = HIBERNATION_SIGNATURES
        .iter()
        .any(|s| s.as_slice() == signature);
    let zeros = sector.iter().take(SECTOR).filter(|&&b| b == 0).count();
    (hibernation && zeros >= HIBERNATION_MIN_ZEROS).then(|| {
        format!(
            "a hibernation file header ({})",
            String::from_utf8_lossy(signature)
        )
    })
}

/// Searches the encrypted part of `plan`'s range in `file` (seekable) for the first sector
/// that one of `keys` decrypts to a header; at one sector the first key that fits wins.
/// `None` when the range holds no header under any key.
pub fn search(
    plan: &Plan,
    keys: &[XtsAes256],
    file: &mut File,
    name: &str,
) -> Result<Option<Hit>, CliError> {
    const PIECE: u64 = 4 << 20;
    let encrypted = plan.encrypted.clone();
    if encrypted.is_empty() {
        return Ok(None);
    }
    let pieces = plan.pieces(encrypted.clone(), PIECE);
    let largest = pieces.iter().map(|p| p.end - p.start).max().unwrap_or(0) as usize;
    let mut source = vec![0u8; largest];
    let mut plain = vec![0u8; largest];
    let progress = progress_bar(Some(encrypted.end - encrypted.start));
    let read_error = |error: std::io::Error| CliError::Usage(format!("{name}: {error}"));
    for piece in pieces {
        let len = (piece.end - piece.start) as usize;
        file.seek(SeekFrom::Start(piece.start))
            .map_err(read_error)?;
        let got = read_full(file, &mut source[..len]).map_err(read_error)?;
        if got < len {
            return Err(CliError::Usage(format!(
                "{name}: the image ended early, at about {:#x} (did it shrink while being read?)",
                piece.start + got as u64
            )));
        }
        // Sectors lie at image offsets that are multiples of 512.
        let first = (piece.start.next_multiple_of(SECTOR as u64) - piece.start) as usize;
        for (index, xts) in keys.iter().enumerate() {
            plan.transform(xts, piece.start, &source[..len], &mut plain[..len])?;
            let found = (first..len).step_by(SECTOR).find_map(|at| {
                let end = (at + SECTOR).min(len);
                header_in(&plain[at..end]).map(|what| (at, what))
            });
            if let Some((at, what)) = found {
                progress.finish_and_clear();
                plain.fill(0);
                return Ok(Some(Hit {
                    key: index,
                    offset: piece.start + at as u64,
                    what,
                }));
            }
        }
        progress.inc(len as u64);
    }
    progress.finish_and_clear();
    plain.fill(0);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_from_noise() {
        let mut sector = vec![0u8; SECTOR];
        sector[..8].copy_from_slice(b"PAGEDU64");
        assert_eq!(
            header_in(&sector).as_deref(),
            Some("a crash dump header (PAGEDU64)")
        );
        sector[..8].copy_from_slice(b"PAGEDUMP");
        assert!(header_in(&sector).is_some());
        // Real crash dump headers are filled with "PAGE", not zeros: the signature decides.
        let mut filled = b"PAGE".repeat(SECTOR / 4);
        filled[4..8].copy_from_slice(b"DU64");
        assert!(header_in(&filled).is_some());
        // A hibernation signature needs a mostly zero sector.
        let mut hibernation = vec![0u8; SECTOR];
        hibernation[..4].copy_from_slice(b"HIBR");
        hibernation[8..16].copy_from_slice(&1024u64.to_le_bytes());
        assert_eq!(
            header_in(&hibernation).as_deref(),
            Some("a hibernation file header (HIBR)")
        );
        let mut noisy: Vec<u8> = (0..SECTOR).map(|i| (i % 251) as u8 | 1).collect();
        noisy[..4].copy_from_slice(b"HIBR");
        assert_eq!(header_in(&noisy), None);
        // Other text at the start is nothing.
        let mut other = vec![0u8; SECTOR];
        other[..8].copy_from_slice(b"PAGEPAGE");
        assert_eq!(header_in(&other), None);
        assert_eq!(header_in(b"PAG"), None);
    }
}
