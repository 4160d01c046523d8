//! `simulate --dump-extents FILE`: where the dump file lies on the disk, one `START LENGTH`
//! pair a line (absolute byte offsets, in file order), as a file system tool reports it.

use std::path::Path;

use crashdmp_sim::disk_template::DiskExtent;

use crate::options::{parse_size, CliError};

/// Parses the extents file's text: `START LENGTH` a line (decimal, `0x` hex or a size such
/// as `64KiB`), blank lines and lines starting with `#` ignored.
pub fn parse(text: &str) -> Result<Vec<DiskExtent>, String> {
    let mut extents = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [start, len] = fields[..] else {
            return Err(format!(
                "line {}: `{line}` is not `START LENGTH` (two byte counts)",
                number + 1
            ));
        };
        let start = parse_size(start).map_err(|e| format!("line {}: {e}", number + 1))?;
        let len = parse_size(len).map_err(|e| format!("line {}: {e}", number + 1))?;
        if len == 0 || start.checked_add(len).is_none() {
            return Err(format!(
                "line {}: an extent of {len} bytes at {start} cannot be",
                number + 1
            ));
        }
        extents.push(DiskExtent { start, len });
    }
    if extents.is_empty() {
        return Err("no extents (one `START LENGTH` pair a line)".into());
    }
    Ok(extents)
}

/// Reads and parses `path`.
pub fn read(path: &Path) -> Result<Vec<DiskExtent>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|error| CliError::file(path, error))?;
    parse(&text)
        .map_err(|reason| CliError::Usage(format!("--dump-extents {}: {reason}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_in_file_order() {
        let extents = parse("# the dump file\n0x200000 4096\n\n  1048576   8KiB \n").unwrap();
        assert_eq!(
            extents,
            vec![
                DiskExtent {
                    start: 0x20_0000,
                    len: 4096
                },
                DiskExtent {
                    start: 0x10_0000,
                    len: 8192
                },
            ]
        );
    }

    #[test]
    fn malformed_lines_are_named() {
        assert!(parse("1 2 3\n").unwrap_err().contains("line 1"));
        assert!(parse("0 4096\nx 1\n").unwrap_err().contains("line 2"));
        assert!(parse("4096 0\n").unwrap_err().contains("cannot be"));
        assert!(parse("# nothing\n").unwrap_err().contains("no extents"));
    }
}
