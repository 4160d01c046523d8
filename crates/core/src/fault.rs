//! Faults in the dump path and the one bug check they become.
//!
//! An error status from Dump_Write does not stop the write, so a broken rule that could put
//! plaintext or garbage on disk stops the machine instead: `KeBugCheckEx` with
//! [`BUGCHECK_CODE`] and parameters that say which rule, with what values, in which callback.
//! The README's bug check table is generated from the same list ([`Rule::TABLE`]).
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

/// dumpcrypt's bug check code: 'DCRY'.
pub const BUGCHECK_CODE: u32 = u32::from_be_bytes(*b"DCRY");

/// The callback a fault happened in: bug check parameter 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Callback {
    /// Outside any callback (a panic).
    None = 0,
    /// Dump_Start.
    Start = 1,
    /// Dump_Write.
    Write = 2,
    /// Dump_Read.
    Read = 3,
    /// Dump_Finish.
    Finish = 4,
    /// Dump_Unload.
    Unload = 5,
}

/// A rule of the dump path broken by what the dump stack handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    missing_docs,
    reason = "the fields are bug check parameters 2 and 3, named in the rule table below"
)]
pub enum Fault {
    /// ByteCount exceeds the secondary buffer (MaxPagesPerWrite pages).
    TransferTooLarge { byte_count: u32, capacity: usize },
    /// The disk offset (in tweak-base coordinates) is not a multiple of the data unit.
    OffsetMisaligned { offset: u64, data_unit: usize },
    /// ByteCount is not a multiple of the data unit.
    LengthMisaligned { byte_count: u32, data_unit: usize },
    /// Neither MDL_MAPPED_TO_SYSTEM_VA nor MDL_SOURCE_IS_NONPAGED_POOL is set, or
    /// MappedSystemVa is null: the data cannot be reached at HIGH_LEVEL.
    NotMapped { flags: u16, mapped_system_va: usize },
    /// The caller's MDL has fewer PFN slots (from its Size) than the buffer needs.
    PfnArrayTooSmall { needed: usize, capacity: usize },
    /// A write reached the filter although its policy refuses dumps.
    WriteRefused { offset: u64 },
    // Rule 0x07, OutOfOrder (a callback in a state that did not allow it), is retired: a
    // write or read before Dump_Start is handled like any other (docs/design.md). Its code
    // stays in the table, marked retired, and is never reused.
    /// A null pointer where the dump stack must pass one (1 extension, 2 offset, 3 MDL).
    NullArgument { argument: u64 },
    /// FILTER_EXTENSION.DumpData is not a live dumpcrypt context (never loaded, or unloaded).
    UnknownContext { context: usize },
    /// The disk offset is negative, or offset + length overflows.
    OffsetOutOfRange { offset: u64, byte_count: u32 },
    /// The caller's data already lies in the secondary buffer (a retargeted MDL came back).
    SourceInSecondaryBuffer { source: usize },
    /// FILTER_EXTENSION.DumpType differs from the type the instance was loaded for.
    DumpTypeMismatch { loaded: u32, found: u32 },
    /// A Rust panic in the kernel-mode build (kernel builds only).
    Panic { line: u32, column: u32 },
}

/// Declares [`Rule`] and its table from one list: bug check parameter 1, the rule's name,
/// and what parameters 2 and 3 hold. The README's bug check table is generated from
/// [`Rule::TABLE`], and every [`Fault`] names its rule in an exhaustive `match`
/// ([`Fault::rule`]), so a new fault cannot be missing from the table. A retired rule keeps
/// its row (and its code, never reused) and is listed in [`Rule::RETIRED`]; no fault names it.
macro_rules! rules {
    ($($code:literal $name:ident $second:literal $third:literal,)+) => {
        /// The rules of the dump path: bug check parameter 1.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u64)]
        pub enum Rule {
            $(
                #[doc = concat!("P2: ", $second, "; P3: ", $third, ".")]
                $name = $code,
            )+
        }

        impl Rule {
            /// Every rule with its parameter 1, name, and the meaning of parameters 2 and 3.
            pub const TABLE: &'static [(Rule, u64, &'static str, &'static str, &'static str)] =
                &[$((Rule::$name, $code, stringify!($name), $second, $third),)+];
        }
    };
}

rules! {
    0x01 TransferTooLarge "ByteCount" "secondary buffer size",
    0x02 OffsetMisaligned "disk offset (tweak-base coordinates)" "data unit",
    0x03 LengthMisaligned "ByteCount" "data unit",
    0x04 NotMapped "MdlFlags" "MappedSystemVa",
    0x05 PfnArrayTooSmall "PFN slots needed" "PFN slots in the MDL",
    0x06 WriteRefused "disk offset" "0",
    0x07 OutOfOrder "retired: never raised since issue 12 (was the instance state)" "retired",
    0x08 NullArgument "1 extension, 2 offset, 3 MDL" "0",
    0x09 UnknownContext "FILTER_EXTENSION.DumpData" "0",
    0x0A OffsetOutOfRange "disk offset" "ByteCount",
    0x0B SourceInSecondaryBuffer "source address" "0",
    0x0C DumpTypeMismatch "dump type loaded" "dump type in the extension",
    0x0F Panic "source line" "source column",
}

impl Rule {
    /// The rules no fault raises any more; their codes are never given to another rule.
    pub const RETIRED: &'static [Rule] = &[Rule::OutOfOrder];
}

impl Fault {
    /// The rule broken, and the two values that say how: bug check parameters 1 to 3.
    pub fn rule(self) -> (Rule, u64, u64) {
        match self {
            Self::TransferTooLarge {
                byte_count,
                capacity,
            } => (Rule::TransferTooLarge, byte_count.into(), capacity as u64),
            Self::OffsetMisaligned { offset, data_unit } => {
                (Rule::OffsetMisaligned, offset, data_unit as u64)
            }
            Self::LengthMisaligned {
                byte_count,
                data_unit,
            } => (Rule::LengthMisaligned, byte_count.into(), data_unit as u64),
            Self::NotMapped {
                flags,
                mapped_system_va,
            } => (Rule::NotMapped, flags.into(), mapped_system_va as u64),
            Self::PfnArrayTooSmall { needed, capacity } => {
                (Rule::PfnArrayTooSmall, needed as u64, capacity as u64)
            }
            Self::WriteRefused { offset } => (Rule::WriteRefused, offset, 0),
            Self::NullArgument { argument } => (Rule::NullArgument, argument, 0),
            Self::UnknownContext { context } => (Rule::UnknownContext, context as u64, 0),
            Self::OffsetOutOfRange { offset, byte_count } => {
                (Rule::OffsetOutOfRange, offset, byte_count.into())
            }
            Self::SourceInSecondaryBuffer { source } => {
                (Rule::SourceInSecondaryBuffer, source as u64, 0)
            }
            Self::DumpTypeMismatch { loaded, found } => {
                (Rule::DumpTypeMismatch, loaded.into(), found.into())
            }
            Self::Panic { line, column } => (Rule::Panic, line.into(), column.into()),
        }
    }

    /// The bug check parameters: rule, two values, callback.
    pub fn parameters(self, callback: Callback) -> [u64; 4] {
        let (rule, first, second) = self.rule();
        [rule as u64, first, second, callback as u64]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_reads_dcry() {
        assert_eq!(BUGCHECK_CODE, 0x4443_5259);
        assert_eq!(&BUGCHECK_CODE.to_be_bytes(), b"DCRY");
    }

    /// Each fault's parameters, written out by hand from the README's table.
    #[test]
    fn parameters_follow_the_table() {
        let cases = [
            (
                Fault::TransferTooLarge {
                    byte_count: 7,
                    capacity: 9,
                },
                [0x01, 7, 9, 3],
            ),
            (
                Fault::OffsetMisaligned {
                    offset: 7,
                    data_unit: 9,
                },
                [0x02, 7, 9, 3],
            ),
            (
                Fault::LengthMisaligned {
                    byte_count: 7,
                    data_unit: 9,
                },
                [0x03, 7, 9, 3],
            ),
            (
                Fault::NotMapped {
                    flags: 7,
                    mapped_system_va: 9,
                },
                [0x04, 7, 9, 3],
            ),
            (
                Fault::PfnArrayTooSmall {
                    needed: 7,
                    capacity: 9,
                },
                [0x05, 7, 9, 3],
            ),
            (Fault::WriteRefused { offset: 7 }, [0x06, 7, 0, 3]),
            (Fault::NullArgument { argument: 7 }, [0x08, 7, 0, 3]),
            (Fault::UnknownContext { context: 7 }, [0x09, 7, 0, 3]),
            (
                Fault::OffsetOutOfRange {
                    offset: 7,
                    byte_count: 9,
                },
                [0x0A, 7, 9, 3],
            ),
            (
                Fault::SourceInSecondaryBuffer { source: 7 },
                [0x0B, 7, 0, 3],
            ),
            (
                Fault::DumpTypeMismatch {
                    loaded: 7,
                    found: 9,
                },
                [0x0C, 7, 9, 3],
            ),
            (Fault::Panic { line: 7, column: 9 }, [0x0F, 7, 9, 3]),
        ];
        assert_eq!(
            cases.len() + Rule::RETIRED.len(),
            Rule::TABLE.len(),
            "one case per rule in force"
        );
        for (fault, expected) in cases {
            assert_eq!(fault.parameters(Callback::Read), expected, "{fault:?}");
            let (rule, ..) = fault.rule();
            let row = Rule::TABLE.iter().find(|row| row.0 == rule).unwrap();
            assert_eq!(row.1, expected[0]);
            assert!(std::format!("{fault:?}").starts_with(row.2), "{fault:?}");
            assert!(
                !Rule::RETIRED.contains(&rule),
                "{fault:?} raises a retired rule"
            );
        }
    }

    /// A retired rule keeps its code and says so; codes are never given twice.
    #[test]
    fn retired_rules_keep_their_codes() {
        let row = Rule::TABLE
            .iter()
            .find(|row| row.0 == Rule::OutOfOrder)
            .unwrap();
        assert_eq!(row.1, 0x07);
        assert!(row.3.starts_with("retired"), "{row:?}");
        for (index, row) in Rule::TABLE.iter().enumerate() {
            assert!(
                Rule::TABLE[..index].iter().all(|other| other.1 < row.1),
                "{row:?}: codes ascend and are unique"
            );
        }
    }

    #[test]
    fn callbacks_are_numbered_as_documented() {
        let numbers = [
            Callback::None,
            Callback::Start,
            Callback::Write,
            Callback::Read,
            Callback::Finish,
            Callback::Unload,
        ]
        .map(|callback| Fault::Panic { line: 0, column: 0 }.parameters(callback)[3]);
        assert_eq!(numbers, [0, 1, 2, 3, 4, 5]);
    }
}
