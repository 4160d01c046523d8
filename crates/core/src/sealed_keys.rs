//! The ring of sealed keys in `Parameters\SealedKeys`: value names from load times, and which
//! name a load adds and which it deletes.
//!
//! | Rust          | Windows                                                          |
//! |---------------|------------------------------------------------------------------|
//! | [`Stamp`]     | a system time: 100 ns ticks since 1601-01-01 UTC (`FILETIME`)    |
//! | [`Name`]      | a value name: the stamp as `YYYYMMDDTHHMMSS.fffffffZ`, UTF-16    |
//! | [`Ring`]      | the plan of one load: the name it writes, the names it deletes   |
//!
//! Each load of an encrypting copy with `KeySource` = sealed writes one REG_BINARY value, the
//! key sealed as an age file, named after the load's UTC time with 100 ns resolution, so that
//! the names sort by time and `dumpcrypt decrypt` can tell which blob belongs to which dump.
//! When the clock stands still or goes back, the new name is the newest existing one plus one
//! tick: names stay in load order whatever the clock does. The load writes its value first,
//! then deletes the oldest of the values whose names are stamps, so that [`RING_LEN`] remain.
//! Values whose names are not stamps (in exactly the form above) are never touched.

use core::fmt;

/// How many sealed keys the ring keeps: the newest, the new one included.
pub const RING_LEN: usize = 16;

/// The characters of a value name: `YYYYMMDDTHHMMSS.fffffffZ`.
pub const NAME_LEN: usize = 24;

/// Ticks (100 ns) per second.
const TICKS_PER_SECOND: u64 = 10_000_000;
const SECONDS_PER_DAY: u64 = 86_400;
/// Days from 0000-03-01 (the era origin of the civil calendar algorithm) to 1601-01-01.
const DAYS_0000_03_01_TO_1601_01_01: i64 = 584_694;
/// The last day a name can hold: 9999-12-31, as days since 1601-01-01.
const LAST_DAY: u64 = 3_067_670;

/// A system time: 100 ns ticks since 1601-01-01 00:00:00 UTC, as `KeQuerySystemTime` and
/// `KUSER_SHARED_DATA.SystemTime` give it. Only times up to 9999-12-31 23:59:59.9999999 have a
/// [`Name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(pub u64);

/// The latest stamp that has a name.
pub const LAST_STAMP: Stamp = Stamp((LAST_DAY + 1) * SECONDS_PER_DAY * TICKS_PER_SECOND - 1);

/// A date and time of day in the proleptic Gregorian calendar, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// 1601 to 9999.
    pub year: u32,
    /// 1 to 12.
    pub month: u32,
    /// 1 to the month's length.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59 (Windows time has no leap seconds).
    pub second: u32,
    /// 100 ns ticks within the second, 0 to 9 999 999.
    pub ticks: u32,
}

impl Stamp {
    /// The date and time of the stamp; `None` after [`LAST_STAMP`].
    pub fn civil(self) -> Option<Civil> {
        if self > LAST_STAMP {
            return None;
        }
        let seconds = self.0 / TICKS_PER_SECOND;
        let ticks = (self.0 % TICKS_PER_SECOND) as u32;
        let days = seconds / SECONDS_PER_DAY;
        let in_day = (seconds % SECONDS_PER_DAY) as u32;
        let (year, month, day) = civil_from_days(days as i64 + DAYS_0000_03_01_TO_1601_01_01);
        Some(Civil {
            year: u32::try_from(year).ok()?,
            month,
            day,
            hour: in_day / 3600,
            minute: in_day / 60 % 60,
            second: in_day % 60,
            ticks,
        })
    }

    /// The stamp of a date and time; `None` when a field is out of its range.
    pub fn from_civil(civil: Civil) -> Option<Stamp> {
        let Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            ticks,
        } = civil;
        if !(1601..=9999).contains(&year)
            || !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
            || u64::from(ticks) >= TICKS_PER_SECOND
        {
            return None;
        }
        let days = days_from_civil(i64::from(year), month, day) - DAYS_0000_03_01_TO_1601_01_01;
        let days = u64::try_from(days).ok()?;
        let seconds = days * SECONDS_PER_DAY
            + u64::from(hour) * 3600
            + u64::from(minute) * 60
            + u64::from(second);
        Some(Stamp(seconds * TICKS_PER_SECOND + u64::from(ticks)))
    }

    /// The value name of the stamp; `None` after [`LAST_STAMP`].
    pub fn name(self) -> Option<Name> {
        let civil = self.civil()?;
        let mut text = [0u8; NAME_LEN];
        put_digits(&mut text[0..4], civil.year);
        put_digits(&mut text[4..6], civil.month);
        put_digits(&mut text[6..8], civil.day);
        text[8] = b'T';
        put_digits(&mut text[9..11], civil.hour);
        put_digits(&mut text[11..13], civil.minute);
        put_digits(&mut text[13..15], civil.second);
        text[15] = b'.';
        put_digits(&mut text[16..23], civil.ticks);
        text[23] = b'Z';
        Some(Name(text))
    }
}

/// A value name of the ring: `YYYYMMDDTHHMMSS.fffffffZ`, ASCII.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name([u8; NAME_LEN]);

impl Name {
    /// The name's characters.
    pub fn as_bytes(&self) -> &[u8; NAME_LEN] {
        &self.0
    }

    /// The name as `str` (always ASCII).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The name in UTF-16, as the registry takes it.
    pub fn utf16(&self) -> [u16; NAME_LEN] {
        self.0.map(u16::from)
    }

    /// The stamp a value name stands for, if it is one: exactly the form above (uppercase `T`
    /// and `Z`, every digit there, a valid date and time), and nothing else.
    pub fn parse(text: &[u8]) -> Option<Stamp> {
        let text: &[u8; NAME_LEN] = text.try_into().ok()?;
        if text[8] != b'T' || text[15] != b'.' || text[23] != b'Z' {
            return None;
        }
        let number = |range: core::ops::Range<usize>| -> Option<u32> {
            text.get(range)?.iter().try_fold(0u32, |value, &digit| {
                digit
                    .is_ascii_digit()
                    .then(|| value * 10 + u32::from(digit - b'0'))
            })
        };
        Stamp::from_civil(Civil {
            year: number(0..4)?,
            month: number(4..6)?,
            day: number(6..8)?,
            hour: number(9..11)?,
            minute: number(11..13)?,
            second: number(13..15)?,
            ticks: number(16..23)?,
        })
    }

    /// [`Name::parse`] of a UTF-16 name, as the registry enumerates it.
    pub fn parse_utf16(text: &[u16]) -> Option<Stamp> {
        let mut bytes = [0u8; NAME_LEN];
        if text.len() != NAME_LEN {
            return None;
        }
        for (byte, &unit) in bytes.iter_mut().zip(text) {
            *byte = u8::try_from(unit).ok()?;
        }
        Name::parse(&bytes)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plan of one load, built from the names it finds: which name it writes and which
/// existing ones it deletes afterwards. [`Ring::observe`] every existing value name (in any
/// order: the registry's enumeration order is no promise), then [`Ring::new_name`], then
/// delete every name for which [`Ring::deletes`] holds.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// The newest existing stamps, newest first: those that stay beside the new one.
    kept: [Option<Stamp>; RING_LEN - 1],
    /// Existing stamps seen, whatever their number.
    existing: usize,
}

/// Why a load cannot name its value: the newest existing name (or the clock) is at
/// [`LAST_STAMP`], so no later name exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoLaterName;

impl fmt::Display for NoLaterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no value name after 9999-12-31T23:59:59.9999999Z")
    }
}

impl Ring {
    /// A plan for a key with no values yet.
    pub fn new() -> Ring {
        Ring::default()
    }

    /// Takes one existing value name into account: `Some` stamp for a name that is one,
    /// `None` for any other name (which the plan never touches).
    pub fn observe(&mut self, stamp: Option<Stamp>) {
        let Some(mut stamp) = stamp else {
            return;
        };
        self.existing += 1;
        // Insertion into the newest-first list; what falls off the end is not kept.
        for slot in &mut self.kept {
            match slot {
                None => {
                    *slot = Some(stamp);
                    return;
                }
                Some(held) if stamp > *held => core::mem::swap(held, &mut stamp),
                Some(_) => {}
            }
        }
    }

    /// The newest existing stamp.
    pub fn newest(&self) -> Option<Stamp> {
        self.kept[0]
    }

    /// The stamp of the value this load writes at time `now`: `now`, or the newest existing
    /// stamp plus one tick when the clock stands still or went back.
    pub fn new_stamp(&self, now: Stamp) -> Result<Stamp, NoLaterName> {
        let stamp = match self.newest() {
            Some(newest) if now <= newest => Stamp(newest.0.checked_add(1).ok_or(NoLaterName)?),
            _ => now,
        };
        if stamp > LAST_STAMP {
            return Err(NoLaterName);
        }
        Ok(stamp)
    }

    /// The name of the value this load writes at time `now` ([`Ring::new_stamp`]).
    pub fn new_name(&self, now: Stamp) -> Result<Name, NoLaterName> {
        self.new_stamp(now)?.name().ok_or(NoLaterName)
    }

    /// Whether an existing value goes once the new one is written: a stamp older than the
    /// [`RING_LEN`] − 1 newest existing ones. Never a name that is not a stamp.
    pub fn deletes(&self, stamp: Option<Stamp>) -> bool {
        match (stamp, self.kept.last()) {
            (Some(stamp), Some(Some(oldest_kept))) => stamp < *oldest_kept,
            _ => false,
        }
    }

    /// How many existing values [`Ring::deletes`] (those beyond the newest [`RING_LEN`] − 1).
    pub fn deleting(&self) -> usize {
        self.existing.saturating_sub(RING_LEN - 1)
    }
}

/// Days since 0000-03-01 of a date (Howard Hinnant's `days_from_civil`, shifted).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era
}

/// The date of a day counted from 0000-03-01 (Howard Hinnant's `civil_from_days`, shifted).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes `value` in decimal into `out`, zero-padded to its width (higher digits dropped).
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    fn name(stamp: u64) -> std::string::String {
        Stamp(stamp).name().unwrap().as_str().into()
    }

    /// The plan does not depend on the order the registry enumerates the values in: the 15
    /// newest stay beside the new value, the older ones go.
    #[test]
    fn the_plan_keeps_the_newest_whatever_the_order_seen() {
        let stamps: Vec<u64> = (0..20u64).map(|i| 1_000_000 + i * 7).collect();
        // A scrambled order, the newest neither first nor last: i -> 7i mod 23 permutes
        // 0..23, and the indices below 20 are taken in that order.
        let order: Vec<u64> = (0..23u64)
            .map(|i| (i * 7) % 23)
            .filter(|&i| i < 20)
            .map(|i| stamps[i as usize])
            .collect();
        assert_eq!(order.len(), 20);
        assert_ne!(order.first(), stamps.last());
        assert_ne!(order.last(), stamps.last());
        let mut ring = Ring::new();
        for &stamp in &order {
            ring.observe(Some(Stamp(stamp)));
        }
        ring.observe(None);
        assert_eq!(ring.newest(), Some(Stamp(*stamps.last().unwrap())));
        assert_eq!(ring.deleting(), 5);
        for (index, &stamp) in stamps.iter().enumerate() {
            assert_eq!(ring.deletes(Some(Stamp(stamp))), index < 5, "stamp {index}");
        }
        assert!(
            !ring.deletes(None),
            "a name that is no stamp is never deleted"
        );
    }

    #[test]
    fn the_last_stamp_is_a_name_and_nothing_after_it() {
        let ring = Ring::new();
        assert_eq!(ring.new_stamp(LAST_STAMP), Ok(LAST_STAMP));
        assert_eq!(
            ring.new_name(LAST_STAMP).unwrap().as_str(),
            "99991231T235959.9999999Z"
        );
        assert_eq!(ring.new_stamp(Stamp(LAST_STAMP.0 + 1)), Err(NoLaterName));
        let mut full = Ring::new();
        full.observe(Some(LAST_STAMP));
        assert_eq!(full.new_stamp(Stamp(0)), Err(NoLaterName));
    }

    #[test]
    fn names_and_refusals_print_as_text() {
        let name = Stamp(134_406_425_801_234_567).name().unwrap();
        assert_eq!(std::format!("{name}"), "20261201T234940.1234567Z");
        assert_eq!(std::format!("{name:?}"), "20261201T234940.1234567Z");
        assert_eq!(
            std::format!("{NoLaterName}"),
            "no value name after 9999-12-31T23:59:59.9999999Z"
        );
    }

    #[test]
    fn the_registry_gets_the_name_in_utf16() {
        let name = Stamp(134_406_425_801_234_567).name().unwrap();
        assert_eq!(name.as_str(), "20261201T234940.1234567Z");
        let expected: Vec<u16> = "20261201T234940.1234567Z".encode_utf16().collect();
        assert_eq!(name.utf16().to_vec(), expected);
        assert_eq!(
            Name::parse_utf16(&name.utf16()),
            Some(Stamp(134_406_425_801_234_567))
        );
    }

    #[test]
    fn known_dates() {
        // FILETIME values of known instants (Windows' own epoch and the Unix epoch, whose
        // FILETIME, 116444736000000000, every Windows programmer meets).
        assert_eq!(name(0), "16010101T000000.0000000Z");
        assert_eq!(name(116_444_736_000_000_000), "19700101T000000.0000000Z");
        assert_eq!(
            name(116_444_736_000_000_000 - 1),
            "19691231T235959.9999999Z"
        );
        // 2000-02-29 (a leap day of a year divisible by 400): 946684800 + 59 days Unix.
        let unix = |seconds: u64| 116_444_736_000_000_000 + seconds * TICKS_PER_SECOND;
        assert_eq!(name(unix(951_782_400)), "20000229T000000.0000000Z");
        // The example of the issue: 2026-12-01 23:49:40.1234567 UTC (Unix 1796168980).
        assert_eq!(
            name(unix(1_796_168_980) + 1_234_567),
            "20261201T234940.1234567Z"
        );
        assert_eq!(name(LAST_STAMP.0), "99991231T235959.9999999Z");
        assert_eq!(Stamp(LAST_STAMP.0 + 1).name(), None);
    }

    #[test]
    fn parses_exactly_the_canonical_form() {
        let good = b"20261201T234940.1234567Z";
        let stamp = Name::parse(good).unwrap();
        assert_eq!(stamp.name().unwrap().as_bytes(), good);
        for bad in [
            &b"20261201t234940.1234567Z"[..],
            b"20261201T234940.1234567z",
            b"20261201T234940,1234567Z",
            b"20261201T234940.123456Z",
            b"20261201T234940.12345678Z",
            b"20261301T234940.1234567Z",
            b"20260229T234940.1234567Z",
            b"19000229T000000.0000000Z",
            // The 31st of a 30-day month.
            b"20260431T000000.0000000Z",
            b"20261131T000000.0000000Z",
            b"20261200T234940.1234567Z",
            b"20261201T244940.1234567Z",
            b"20261201T236040.1234567Z",
            b"20261201T234960.1234567Z",
            b"16001231T235959.9999999Z",
            b"2026120+T234940.1234567Z",
            b" 0261201T234940.1234567Z",
            b"",
            b"Recipient",
        ] {
            assert_eq!(
                Name::parse(bad),
                None,
                "{}",
                std::string::String::from_utf8_lossy(bad)
            );
        }
        assert!(Name::parse(b"20240229T000000.0000000Z").is_some());
        assert!(Name::parse(b"20260430T000000.0000000Z").is_some());
        assert!(Name::parse(b"20261231T000000.0000000Z").is_some());
        let wide: Vec<u16> = good.iter().map(|&b| u16::from(b)).collect();
        assert_eq!(Name::parse_utf16(&wide), Some(stamp));
        let mut wide_bad = wide.clone();
        wide_bad[0] = 0x0132; // not ASCII, low byte '2'
        assert_eq!(Name::parse_utf16(&wide_bad), None);
    }

    /// The date of a day by counting days from 1601-01-01 one month at a time: a second
    /// reading of the calendar that shares nothing with the era arithmetic above.
    fn by_counting(mut days: u64) -> (u32, u32, u32) {
        let mut year = 1601;
        loop {
            let length = if is_leap_counted(year) { 366 } else { 365 };
            if days < length {
                break;
            }
            days -= length;
            year += 1;
        }
        let lengths = [
            31,
            if is_leap_counted(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut month = 0;
        while days >= lengths[month] {
            days -= lengths[month];
            month += 1;
        }
        (year, month as u32 + 1, days as u32 + 1)
    }

    fn is_leap_counted(year: u32) -> bool {
        year.is_multiple_of(400) || (year.is_multiple_of(4) && !year.is_multiple_of(100))
    }

    #[test]
    fn every_day_of_four_centuries_by_counting() {
        // 1601..2001 and 9600..10000: a whole Gregorian cycle at each end of the range.
        for days in (0..146_097).chain(LAST_DAY - 146_096..=LAST_DAY) {
            let civil = Stamp(days * SECONDS_PER_DAY * TICKS_PER_SECOND)
                .civil()
                .unwrap();
            assert_eq!(
                (civil.year, civil.month, civil.day),
                by_counting(days),
                "day {days}"
            );
        }
    }

    proptest! {
        #[test]
        fn name_and_stamp_round_trip(ticks in 0..=LAST_STAMP.0) {
            let stamp = Stamp(ticks);
            let name = stamp.name().unwrap();
            prop_assert_eq!(Name::parse(name.as_bytes()), Some(stamp));
            let civil = stamp.civil().unwrap();
            let days = ticks / TICKS_PER_SECOND / SECONDS_PER_DAY;
            prop_assert_eq!((civil.year, civil.month, civil.day), by_counting_fast(days));
            let in_day = ticks % (SECONDS_PER_DAY * TICKS_PER_SECOND);
            prop_assert_eq!(
                u64::from(civil.hour) * 3600 * TICKS_PER_SECOND
                    + u64::from(civil.minute) * 60 * TICKS_PER_SECOND
                    + u64::from(civil.second) * TICKS_PER_SECOND
                    + u64::from(civil.ticks),
                in_day
            );
        }

        #[test]
        fn names_sort_as_stamps(a in 0..=LAST_STAMP.0, b in 0..=LAST_STAMP.0) {
            let (x, y) = (Stamp(a).name().unwrap(), Stamp(b).name().unwrap());
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }

        #[test]
        fn the_ring_keeps_the_newest(
            existing in proptest::collection::btree_set(0..1_000_000u64, 0..40),
            others in 0..4usize,
            now in 0..1_100_000u64,
        ) {
            let mut ring = Ring::new();
            // Any order: reversed, with names that are not stamps among them.
            for _ in 0..others {
                ring.observe(None);
            }
            for &stamp in existing.iter().rev() {
                ring.observe(Some(Stamp(stamp)));
            }
            let new = ring.new_stamp(Stamp(now)).unwrap();
            let newest = existing.iter().next_back().copied();
            prop_assert_eq!(new.0, match newest {
                Some(newest) if now <= newest => newest + 1,
                _ => now,
            });
            let mut after: BTreeSet<u64> = existing
                .iter()
                .copied()
                .filter(|&stamp| !ring.deletes(Some(Stamp(stamp))))
                .collect();
            prop_assert_eq!(existing.len() - after.len(), ring.deleting());
            after.insert(new.0);
            let mut expected: BTreeSet<u64> = existing.clone();
            expected.insert(new.0);
            let expected: BTreeSet<u64> = expected.into_iter().rev().take(RING_LEN).collect();
            prop_assert_eq!(after, expected);
            prop_assert!(!ring.deletes(None));
        }
    }

    /// [`by_counting`] a year at a time and then a month at a time, fast enough for proptest.
    fn by_counting_fast(days: u64) -> (u32, u32, u32) {
        // Whole 400-year cycles (146097 days each) first: the counting then covers one cycle.
        let cycles = days / 146_097;
        let (year, month, day) = by_counting(days % 146_097);
        (year + cycles as u32 * 400, month, day)
    }

    #[test]
    fn clock_standing_still_or_going_back() {
        let mut ring = Ring::new();
        ring.observe(Some(Stamp(500)));
        ring.observe(None);
        assert_eq!(ring.new_stamp(Stamp(500)), Ok(Stamp(501)));
        assert_eq!(ring.new_stamp(Stamp(7)), Ok(Stamp(501)));
        assert_eq!(ring.new_stamp(Stamp(900)), Ok(Stamp(900)));
        let mut full = Ring::new();
        full.observe(Some(LAST_STAMP));
        assert_eq!(full.new_stamp(Stamp(0)), Err(NoLaterName));
        assert_eq!(
            Ring::new().new_stamp(Stamp(LAST_STAMP.0 + 1)),
            Err(NoLaterName)
        );
    }
}
