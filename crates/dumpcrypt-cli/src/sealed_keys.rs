//! The sealed keys of the `sealed` key source as a `.reg` file: read from a `reg export` (or
//! regedit's export) of the Parameters or SealedKeys key, and written as regedit writes one.
//!
//! The driver keeps a ring of the most recent loads' keys in
//! `HKLM\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters\SealedKeys`: one REG_BINARY
//! value per load, named by the load's UTC time stamp ([`Stamp`]), holding the key sealed to
//! an administrator's age recipient (an age v1 file). Nothing here is secret: the blobs are
//! ciphertext.
//!
//! The format (regedit 5, as `reg export` and regedit write it): UTF-16LE with a BOM, CRLF
//! line ends; the first line `Windows Registry Editor Version 5.00`; keys as
//! `[HKEY_LOCAL_MACHINE\…]` (`[-…]` deletes one); values as `"NAME"=DATA` (`@=` the default
//! value), names with `\\` and `\"` escaped; REG_BINARY data as `hex:` and comma-separated
//! bytes, wrapped at 80 columns by a `\` at the end of a line and continued on the next,
//! indented by two spaces; other types as `dword:`, `hex(N):` or a quoted string; `;` starts
//! a comment line. The parser also takes UTF-8 (with or without a BOM), LF line ends, and
//! UTF-16LE without a BOM.

use std::collections::HashMap;

use crate::configure::hex_data;

/// `HKEY_LOCAL_MACHINE\` + this is the key that holds the ring.
pub const SEALED_KEYS_SUBKEY: &str =
    r"SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters\SealedKeys";

/// The end of a key path whose values are read, compared without regard to case.
const SEALED_KEYS_SUFFIX: &str = r"\parameters\sealedkeys";

/// The first line of a regedit 5 export (REGEDIT4, its ANSI predecessor, is read too).
const HEADER: &str = "Windows Registry Editor Version 5.00";

/// A load's UTC time stamp, the name of its value: `YYYYMMDDTHHMMSS.fffffffZ`, 24
/// characters, 100 ns resolution (a FILETIME's), so that names sort as times do.
///
/// # Invariants
///
/// The text is 24 ASCII characters in that layout, and names a real date and time (month
/// 1–12, the day within the month, leap years counted, hours below 24, minutes and seconds
/// below 60).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(String);

/// Why a name is not a [`Stamp`].
const STAMP_FORMAT: &str = "YYYYMMDDTHHMMSS.fffffffZ, UTC, e.g. 20261201T234940.1234567Z";

/// FILETIME ticks (100 ns) from 1601-01-01 to 1970-01-01.
pub const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

fn is_leap(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Stamp {
    /// Checks `text` against the layout and the calendar.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = text.as_bytes();
        let layout_ok = bytes.len() == 24
            && bytes.iter().enumerate().all(|(index, &byte)| match index {
                8 => byte == b'T',
                15 => byte == b'.',
                23 => byte == b'Z',
                _ => byte.is_ascii_digit(),
            });
        if !layout_ok {
            return Err(format!(
                "`{text}` is not a load time stamp ({STAMP_FORMAT})"
            ));
        }
        let number =
            |range: std::ops::Range<usize>| -> u32 { text[range].parse().expect("checked digits") };
        let (year, month, day) = (number(0..4), number(4..6), number(6..8));
        let (hour, minute, second) = (number(9..11), number(11..13), number(13..15));
        let problem = if !(1..=12).contains(&month) {
            Some(format!("month {month:02}"))
        } else if day == 0 || day > days_in_month(year, month) {
            Some(format!("day {day:02} of month {month:02} of {year:04}"))
        } else if hour > 23 {
            Some(format!("hour {hour:02}"))
        } else if minute > 59 {
            Some(format!("minute {minute:02}"))
        } else if second > 59 {
            Some(format!("second {second:02}"))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(format!(
                "`{text}` is not a load time stamp: there is no {problem} ({STAMP_FORMAT})"
            )),
            // INVARIANT: the layout and the calendar are checked above.
            None => Ok(Self(text.to_string())),
        }
    }

    /// The stamp of a FILETIME (100 ns ticks since 1601-01-01 UTC, what
    /// `KeQuerySystemTime` gives), named as the driver names it (`dumpcrypt_core`'s
    /// calendar); `None` past the year 9999.
    pub fn from_filetime(ticks: u64) -> Option<Self> {
        let name = dumpcrypt_core::sealed_keys::Stamp(ticks).name()?;
        Self::parse(name.as_str()).ok()
    }

    /// The value's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For people: `2026-12-01 23:49:40.1234567 UTC`.
    pub fn readable(&self) -> String {
        let t = &self.0;
        format!(
            "{}-{}-{} {}:{}:{}.{} UTC",
            &t[0..4],
            &t[4..6],
            &t[6..8],
            &t[9..11],
            &t[11..13],
            &t[13..15],
            &t[16..23]
        )
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value of the ring: a load's stamp and its sealed key (an age v1 file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub stamp: Stamp,
    pub blob: Vec<u8>,
}

/// Why a `.reg` file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegError {
    /// The file as a whole: not text in an encoding regedit writes.
    #[error("{0}")]
    Encoding(String),
    /// One line (counted from 1; a value continued over several lines is counted at its
    /// first).
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
}

fn at_line(line: usize, reason: impl Into<String>) -> RegError {
    RegError::Line {
        line,
        reason: reason.into(),
    }
}

/// The number of the line `text` ends on (from 1).
fn line_of(text: &str) -> usize {
    text.matches('\n').count() + 1
}

/// The file's text: UTF-16LE (with a BOM as regedit writes it, or without), or UTF-8 (with
/// or without a BOM).
fn decode(bytes: &[u8]) -> Result<String, RegError> {
    if bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(RegError::Encoding(
            "the file is UTF-16 big-endian; regedit writes UTF-16LE (or save it as UTF-8)".into(),
        ));
    }
    let utf16 = match bytes.strip_prefix(&[0xFF, 0xFE]) {
        Some(rest) => Some(rest),
        None if bytes.len() >= 2 && bytes[0] != 0 && bytes[1] == 0 => Some(bytes),
        None => None,
    };
    if let Some(units) = utf16 {
        if units.len() % 2 != 0 {
            return Err(RegError::Encoding(
                "the file is UTF-16LE but has an odd number of bytes: it is cut short".into(),
            ));
        }
        let mut text = String::with_capacity(units.len() / 2);
        let units = units
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
        for unit in char::decode_utf16(units) {
            match unit {
                Ok(character) => text.push(character),
                Err(_) => {
                    return Err(at_line(
                        line_of(&text),
                        "not valid UTF-16LE (an unpaired surrogate)",
                    ))
                }
            }
        }
        return Ok(text);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_string()),
        Err(error) => {
            let valid = std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default();
            Err(at_line(
                line_of(valid),
                "neither UTF-16LE (as regedit writes it) nor valid UTF-8",
            ))
        }
    }
}

/// A value name in quotes with `\\` and `\"` escaped; returns the name and what follows.
fn quoted_name(line: &str) -> Result<(String, &str), String> {
    let mut name = String::new();
    let mut characters = line.char_indices().skip(1);
    while let Some((index, character)) = characters.next() {
        match character {
            '"' => return Ok((name, &line[index + 1..])),
            '\\' => match characters.next() {
                Some((_, escaped)) => name.push(escaped),
                None => break,
            },
            other => name.push(other),
        }
    }
    Err("the value name has no closing quote".into())
}

/// `hex:` data: comma-separated bytes of one or two hex digits (empty: no bytes).
fn hex_bytes(data: &str) -> Result<Vec<u8>, String> {
    if data.trim().is_empty() {
        return Ok(Vec::new());
    }
    data.split(',')
        .enumerate()
        .map(|(index, item)| {
            let item = item.trim();
            let digits_ok =
                (1..=2).contains(&item.len()) && item.bytes().all(|b| b.is_ascii_hexdigit());
            if digits_ok {
                Ok(u8::from_str_radix(item, 16).expect("checked hex digits"))
            } else {
                let shown: String = item.chars().take(16).collect();
                Err(format!(
                    "byte {} of the hex data is `{shown}`, not two hex digits",
                    index + 1
                ))
            }
        })
        .collect()
}

/// What a line of the export is.
enum Line<'a> {
    Nothing,
    Key(&'a str),
    Value(&'a str),
}

fn classify(line: &str) -> Result<Line<'_>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with(';') {
        return Ok(Line::Nothing);
    }
    if let Some(inner) = line.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .map(Line::Key)
            .ok_or_else(|| "a key line `[…` without its closing `]`".to_string());
    }
    Ok(Line::Value(line))
}

/// The REG_BINARY values of every key whose path ends in `\Parameters\SealedKeys` (case
/// ignored), in the file's order. Other keys, and values of other types (or deleted, `=-`)
/// are ignored; a malformed line inside such a key, a binary value whose name is not a
/// [`Stamp`], and a name given twice are errors with their line numbers.
pub fn parse_reg(bytes: &[u8]) -> Result<Vec<SealedKey>, RegError> {
    let text = decode(bytes)?;
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    let header = lines.by_ref().find(|(_, line)| !line.trim().is_empty());
    match header {
        Some((_, line)) if line.trim() == HEADER || line.trim() == "REGEDIT4" => {}
        Some((number, _)) => {
            return Err(at_line(
                number,
                format!("not a registry export: the first line must be `{HEADER}`"),
            ))
        }
        None => return Err(RegError::Encoding("the file is empty".into())),
    }
    let mut keys = Vec::new();
    let mut seen: HashMap<Stamp, usize> = HashMap::new();
    let mut in_ring = false;
    while let Some((number, first)) = lines.next() {
        let line = classify(first).map_err(|reason| at_line(number, reason))?;
        let value = match line {
            Line::Nothing => continue,
            Line::Key(path) => {
                // `[-PATH]` deletes a key: it has no values of its own.
                in_ring = !path.starts_with('-')
                    && path
                        .trim_end()
                        .to_ascii_lowercase()
                        .ends_with(SEALED_KEYS_SUFFIX);
                continue;
            }
            Line::Value(value) => value,
        };
        // A value continues while its line ends in `\`.
        let mut joined = value.to_string();
        while joined.ends_with('\\') {
            joined.pop();
            // regedit never continues onto an empty line: that is a cut-off value.
            let next = lines.next().map(|(_, next)| next.trim());
            let Some(next) = next.filter(|next| !next.is_empty()) else {
                return Err(at_line(
                    number,
                    "the value continues (a `\\` ends its last line) but the file or the \
                     value's lines end there",
                ));
            };
            joined.push_str(next);
        }
        if !in_ring {
            continue;
        }
        let (name, rest) = if let Some(rest) = joined.strip_prefix('@') {
            (String::new(), rest)
        } else if joined.starts_with('"') {
            quoted_name(&joined).map_err(|reason| at_line(number, reason))?
        } else {
            let shown: String = joined.chars().take(24).collect();
            return Err(at_line(
                number,
                format!("`{shown}` is neither a key `[…]` nor a value `\"NAME\"=…`"),
            ));
        };
        let Some(data) = rest.trim_start().strip_prefix('=') else {
            return Err(at_line(
                number,
                format!("expected `=` after the value name \"{name}\""),
            ));
        };
        let Some(hex) = data.trim_start().strip_prefix("hex:") else {
            continue; // another type (dword:, hex(N):, a string) or a deletion (-)
        };
        // The driver's ring holds only values named by their load time, and never touches
        // others: neither does this.
        let Ok(stamp) = Stamp::parse(&name) else {
            continue;
        };
        let blob = hex_bytes(hex)
            .map_err(|reason| at_line(number, format!("the value {stamp}: {reason}")))?;
        if let Some(first) = seen.insert(stamp.clone(), number) {
            return Err(at_line(
                number,
                format!("the value {stamp} is given twice (first on line {first})"),
            ));
        }
        keys.push(SealedKey { stamp, blob });
    }
    Ok(keys)
}

/// The ring as the text of a `.reg` file: the SealedKeys key and one `hex:` value per key,
/// wrapped at 80 columns as regedit wraps them, CRLF line ends, a blank line at the end.
pub fn reg_text(keys: &[SealedKey]) -> String {
    let mut text = format!("{HEADER}\r\n\r\n[HKEY_LOCAL_MACHINE\\{SEALED_KEYS_SUBKEY}]\r\n");
    for key in keys {
        // Stamps hold neither `\` nor `"`: nothing to escape.
        let name = format!("\"{}\"=", key.stamp);
        text.push_str(&name);
        text.push_str(&hex_data("hex:", &key.blob, name.len()));
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

/// The ring as a `.reg` file the way regedit writes one: [`reg_text`] in UTF-16LE with a
/// BOM. `reg import` takes it.
pub fn write_reg(keys: &[SealedKey]) -> Vec<u8> {
    let text = reg_text(keys);
    let mut bytes = Vec::with_capacity(2 + 2 * text.len());
    bytes.extend_from_slice(&[0xFF, 0xFE]);
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// The keys, newest first (stamps sort as times do).
pub fn newest_first(mut keys: Vec<SealedKey>) -> Vec<SealedKey> {
    keys.sort_by(|a, b| b.stamp.cmp(&a.stamp));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utf16le(text: &str, bom: bool) -> Vec<u8> {
        let mut bytes = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        bytes
    }

    fn stamp(text: &str) -> Stamp {
        Stamp::parse(text).unwrap()
    }

    fn line_error(bytes: &[u8]) -> (usize, String) {
        match parse_reg(bytes) {
            Err(RegError::Line { line, reason }) => (line, reason),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn stamps_follow_the_layout_and_the_calendar() {
        let good = stamp("20261201T234940.1234567Z");
        assert_eq!(good.readable(), "2026-12-01 23:49:40.1234567 UTC");
        assert!(Stamp::parse("20240229T000000.0000000Z").is_ok());
        for bad in [
            "20261201T234940.123456Z",   // short
            "20261201 234940.1234567Z",  // no T
            "20261201T234940,1234567Z",  // no dot
            "20261201T234940.1234567z",  // lower case
            "2026120XT234940.1234567Z",  // not a digit
            "20261301T234940.1234567Z",  // month 13
            "20230229T000000.0000000Z",  // not a leap year
            "21000229T000000.0000000Z",  // not a leap year either
            "20261231T240000.0000000Z",  // hour 24
            "20261231T236000.0000000Z",  // minute 60
            "20261231T235960.0000000Z",  // second 60
            "20261200T000000.0000000Z",  // day 0
            "20261201T234940.1234567Z ", // trailing space
        ] {
            assert!(Stamp::parse(bad).is_err(), "{bad}");
        }
    }

    /// The FILETIME of a Unix time.
    fn unix(seconds: u64, nanoseconds: u64) -> u64 {
        seconds * 10_000_000 + nanoseconds / 100 + FILETIME_UNIX_EPOCH
    }

    #[test]
    fn stamps_from_filetimes() {
        // 1601-01-01 is FILETIME 0; the Unix epoch is 116444736000000000 (documented by
        // Microsoft in "Converting a time_t value to a FILETIME").
        assert_eq!(
            Stamp::from_filetime(0).unwrap().as_str(),
            "16010101T000000.0000000Z"
        );
        assert_eq!(
            Stamp::from_filetime(116_444_736_000_000_000)
                .unwrap()
                .as_str(),
            "19700101T000000.0000000Z"
        );
        // `date -u -d @1796168980` is Tue Dec  1 23:49:40 UTC 2026.
        assert_eq!(
            Stamp::from_filetime(unix(1_796_168_980, 123_456_789))
                .unwrap()
                .as_str(),
            "20261201T234940.1234567Z"
        );
        // 2000-02-29 (a leap day of a year divisible by 400): Unix 951782400.
        assert_eq!(
            Stamp::from_filetime(unix(951_782_400, 0)).unwrap().as_str(),
            "20000229T000000.0000000Z"
        );
        // The last tick of 9999 has a stamp; the next does not.
        let end = Stamp::from_filetime(unix(253_402_300_799, 999_999_999)).unwrap();
        assert_eq!(end.as_str(), "99991231T235959.9999999Z");
        assert!(Stamp::from_filetime(unix(253_402_300_800, 0)).is_none());
    }

    /// A `reg export` of the Parameters key as regedit writes it (format: the module's doc):
    /// its own values, the SealedKeys subkey with two sealed keys (one wrapped over several
    /// lines), a DWORD and a string beside them, and a key elsewhere that also holds
    /// binary values.
    fn regedit_export() -> String {
        [
            "Windows Registry Editor Version 5.00",
            "",
            r"[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters]",
            r#""CrashDumpPolicy"=dword:00000001"#,
            r#""KeySource"=dword:00000002"#,
            r#""Recipient"="age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj""#,
            r#""DiskId"=hex:78,56,34,12"#,
            "",
            r"[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters\SealedKeys]",
            r#""20261201T234940.1234567Z"=hex:61,67,65,2d,65,6e,63,72,79,70,74,69,6f,6e,2e,\"#,
            r#"  6f,72,67,2f,76,31,0a,2d,3e,20,58,32,35,35,31,39,20,41,42,43,0a,2d,2d,2d,20,\"#,
            r#"  44,45"#,
            r#""Next"=dword:00000002"#,
            r#""Note"="kept by the driver, \"ring\" of 16""#,
            r#""Wide"=hex(b):01,00,00,00,00,00,00,00"#,
            r#""20261130T081500.0000000Z"=hex:01,02,03"#,
            "",
            r"[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters\SealedKeys\Old]",
            r#""20200101T000000.0000000Z"=hex:ff"#,
            "",
            r"[HKEY_LOCAL_MACHINE\SOFTWARE\Other\Parameters\SealedKeysBackup]",
            r#""20200101T000000.0000000Z"=hex:ee"#,
            "",
            "",
        ]
        .join("\r\n")
    }

    fn expected_from_export() -> Vec<SealedKey> {
        let mut first = b"age-encryption.org/v1\n-> X25519 ABC\n--- ".to_vec();
        first.extend_from_slice(b"DE");
        vec![
            SealedKey {
                stamp: stamp("20261201T234940.1234567Z"),
                blob: first,
            },
            SealedKey {
                stamp: stamp("20261130T081500.0000000Z"),
                blob: vec![1, 2, 3],
            },
        ]
    }

    #[test]
    fn a_regedit_export_in_utf16le_is_read() {
        let export = regedit_export();
        assert_eq!(
            parse_reg(&utf16le(&export, true)).unwrap(),
            expected_from_export()
        );
        // The same without a BOM, as UTF-8 with and without one, with LF line ends.
        assert_eq!(
            parse_reg(&utf16le(&export, false)).unwrap(),
            expected_from_export()
        );
        let lf = export.replace("\r\n", "\n");
        assert_eq!(parse_reg(lf.as_bytes()).unwrap(), expected_from_export());
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), export.as_bytes()].concat();
        assert_eq!(parse_reg(&with_bom).unwrap(), expected_from_export());
    }

    #[test]
    fn the_key_is_found_whatever_its_case_and_an_export_of_it_alone_works() {
        let export = "Windows Registry Editor Version 5.00\r\n\r\n\
            [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\DumpCrypt\\PARAMETERS\\sealedkeys]\r\n\
            \"20261201T234940.1234567Z\"=hex:0a,0B\r\n";
        let keys = parse_reg(&utf16le(export, true)).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].blob, vec![0x0a, 0x0b]);
        // A deleted SealedKeys key has no values: what follows it is not read.
        let deleted = "Windows Registry Editor Version 5.00\r\n\r\n\
            [-HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\dumpcrypt\\Parameters\\SealedKeys]\r\n\
            \"20261201T234940.1234567Z\"=hex:0a\r\n";
        assert_eq!(parse_reg(deleted.as_bytes()).unwrap(), vec![]);
    }

    #[test]
    fn malformed_lines_in_the_ring_are_errors_with_their_line_numbers() {
        let ring = format!("{HEADER}\r\n\r\n[HKEY_LOCAL_MACHINE\\{SEALED_KEYS_SUBKEY}]\r\n");
        let case = |lines: &str| utf16le(&format!("{ring}{lines}"), true);
        let (line, reason) = line_error(&case("\"20261201T234940.1234567Z\"=hex:0a,zz\r\n"));
        assert_eq!(line, 4);
        assert!(
            reason.contains("byte 2 of the hex data is `zz`"),
            "{reason}"
        );
        // In a continued value, the error is counted at the value's first line.
        let (line, reason) = line_error(&case(
            "\"20261201T234940.1234567Z\"=hex:0a,\\\r\n  0b,\\\r\n  1234\r\n",
        ));
        assert_eq!(line, 4);
        assert!(reason.contains("byte 3"), "{reason}");
        let (line, reason) = line_error(&case("\r\n\"20261201T234940.1234567Z\"=hex:0a,\\\r\n"));
        assert_eq!(line, 5);
        assert!(
            reason.contains("the file or the value's lines end"),
            "{reason}"
        );
        let (line, reason) = line_error(&case("\"20261201T234940.1234567Z=hex:0a\r\n"));
        assert_eq!(line, 4);
        assert!(reason.contains("no closing quote"), "{reason}");
        let (line, reason) = line_error(&case("\"20261201T234940.1234567Z\" hex:0a\r\n"));
        assert_eq!(line, 4);
        assert!(reason.contains("expected `=`"), "{reason}");
        // A binary value not named by a load time is not one of the ring's: ignored.
        assert_eq!(parse_reg(&case("\"Latest\"=hex:0a\r\n")).unwrap(), []);
        let (line, reason) = line_error(&case("hex:0a,0b\r\n"));
        assert_eq!(line, 4);
        assert!(reason.contains("neither a key"), "{reason}");
        let (line, reason) = line_error(&case(
            "\"20261201T234940.1234567Z\"=hex:0a\r\n\"20261201T234940.1234567Z\"=hex:0b\r\n",
        ));
        assert_eq!(line, 5);
        assert!(reason.contains("given twice (first on line 4)"), "{reason}");
        let (line, reason) = line_error(&case("[HKEY_LOCAL_MACHINE\\SOFTWARE\r\n"));
        assert_eq!(line, 4);
        assert!(reason.contains("closing `]`"), "{reason}");
        // The same lines outside the ring are not read.
        let elsewhere = "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_CURRENT_USER\\X]\r\n\
            \"Latest\"=hex:zz\r\nhex:0a\r\n\"a=1\r\n";
        assert_eq!(parse_reg(elsewhere.as_bytes()).unwrap(), vec![]);
    }

    #[test]
    fn files_that_are_not_exports_are_refused() {
        let (line, reason) = line_error(b"\n\nREGEDIT5\r\n");
        assert_eq!(line, 3);
        assert!(reason.contains("not a registry export"), "{reason}");
        assert!(matches!(parse_reg(b""), Err(RegError::Encoding(_))));
        assert!(matches!(
            parse_reg(&[0xFE, 0xFF, 0, b'W']),
            Err(RegError::Encoding(reason)) if reason.contains("big-endian")
        ));
        assert!(matches!(
            parse_reg(&[0xFF, 0xFE, b'W']),
            Err(RegError::Encoding(reason)) if reason.contains("odd number")
        ));
        // An unpaired surrogate on line 2.
        let mut bytes = utf16le(&format!("{HEADER}\r\n"), true);
        bytes.extend_from_slice(&0xD800u16.to_le_bytes());
        assert_eq!(line_error(&bytes).0, 2);
        // Invalid UTF-8 on line 3.
        let bytes = [format!("{HEADER}\n\n").as_bytes(), b"\xff\xfe\xfd"].concat();
        assert_eq!(line_error(&bytes).0, 3);
    }

    #[test]
    fn the_writer_writes_as_regedit_does() {
        let keys = vec![SealedKey {
            stamp: stamp("20261201T234940.1234567Z"),
            blob: (0..60).collect(),
        }];
        let expected = [
            "Windows Registry Editor Version 5.00",
            "",
            r"[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters\SealedKeys]",
            r#""20261201T234940.1234567Z"=hex:00,01,02,03,04,05,06,07,08,09,0a,0b,0c,0d,0e,0f,\"#,
            r#"  10,11,12,13,14,15,16,17,18,19,1a,1b,1c,1d,1e,1f,20,21,22,23,24,25,26,27,28,\"#,
            r#"  29,2a,2b,2c,2d,2e,2f,30,31,32,33,34,35,36,37,38,39,3a,3b"#,
            "",
            "",
        ]
        .join("\r\n");
        assert_eq!(reg_text(&keys), expected);
        let bytes = write_reg(&keys);
        assert_eq!(bytes[..2], [0xFF, 0xFE]);
        assert_eq!(bytes[2..], utf16le(&expected, false)[..]);
        // Value lines are wrapped at 80 columns (key lines never are).
        for line in expected.split("\r\n").filter(|line| !line.starts_with('[')) {
            assert!(line.len() <= 80, "{line}");
        }
    }

    #[test]
    fn newest_first_sorts_by_time() {
        let key = |text: &str| SealedKey {
            stamp: stamp(text),
            blob: vec![],
        };
        let sorted = newest_first(vec![
            key("20261130T081500.0000000Z"),
            key("20261201T234940.1234567Z"),
            key("20261201T234940.1234566Z"),
        ]);
        let names: Vec<&str> = sorted.iter().map(|k| k.stamp.as_str()).collect();
        assert_eq!(
            names,
            [
                "20261201T234940.1234567Z",
                "20261201T234940.1234566Z",
                "20261130T081500.0000000Z"
            ]
        );
    }

    fn any_stamp() -> impl Strategy<Value = Stamp> {
        // Every tick from 1601 to the end of 9999.
        (0u64..2_650_467_743_999_999_999).prop_map(|ticks| Stamp::from_filetime(ticks).unwrap())
    }

    fn any_ring() -> impl Strategy<Value = Vec<SealedKey>> {
        proptest::collection::btree_map(
            any_stamp(),
            proptest::collection::vec(any::<u8>(), 0..600),
            0..18,
        )
        .prop_map(|values| {
            values
                .into_iter()
                .map(|(stamp, blob)| SealedKey { stamp, blob })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn what_is_written_is_read_back(keys in any_ring(), lf in any::<bool>(), bom in any::<bool>()) {
            // As written: UTF-16LE with a BOM, CRLF.
            prop_assert_eq!(parse_reg(&write_reg(&keys)).unwrap(), keys.clone());
            // As an editor may save it: UTF-8, with or without a BOM, CRLF or LF.
            let mut text = reg_text(&keys);
            if lf {
                text = text.replace("\r\n", "\n");
            }
            let bytes = if bom {
                [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat()
            } else {
                text.into_bytes()
            };
            prop_assert_eq!(parse_reg(&bytes).unwrap(), keys);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_reg(&bytes);
        }
    }
}
