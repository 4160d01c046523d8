//! Faults in the dump path and the one bug check they become (DESIGN.md §7).
//!
//! An error status from Dump_Write does not stop the write, so a broken rule that could put
//! plaintext or garbage on disk stops the machine instead: `KeBugCheckEx` with
//! [`BUGCHECK_CODE`] and parameters that say which rule, with what values, in which callback.
//! The README's bug check table is generated from the same list (`Fault::TABLE`).
#![forbid(unsafe_code)]

/// dumpcrypt's bug check code: 'DCRY'.
pub const BUGCHECK_CODE: u32 = u32::from_be_bytes(*b"DCRY");

/// The callback a fault happened in: bug check parameter 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Callback {
    /// Outside any callback (a panic).
    None = 0,
    Start = 1,
    Write = 2,
    Read = 3,
    Finish = 4,
    Unload = 5,
}

/// A rule of the dump path broken by what the dump stack handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// A callback came in a state that does not allow it (e.g. Dump_Write before Dump_Start).
    OutOfOrder { state: u64 },
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

impl Fault {
    /// Bug check parameter 1 of each fault, with its name and the meaning of parameters 2
    /// and 3: the source of the README's table.
    pub const TABLE: [(u64, &'static str, &'static str, &'static str); 13] = [
        (
            0x01,
            "TransferTooLarge",
            "ByteCount",
            "secondary buffer size",
        ),
        (
            0x02,
            "OffsetMisaligned",
            "disk offset (tweak-base coordinates)",
            "data unit",
        ),
        (0x03, "LengthMisaligned", "ByteCount", "data unit"),
        (0x04, "NotMapped", "MdlFlags", "MappedSystemVa"),
        (
            0x05,
            "PfnArrayTooSmall",
            "PFN slots needed",
            "PFN slots in the MDL",
        ),
        (0x06, "WriteRefused", "disk offset", "0"),
        (
            0x07,
            "OutOfOrder",
            "instance state (0 loaded, 1 started, 2 finished)",
            "0",
        ),
        (0x08, "NullArgument", "1 extension, 2 offset, 3 MDL", "0"),
        (0x09, "UnknownContext", "FILTER_EXTENSION.DumpData", "0"),
        (0x0A, "OffsetOutOfRange", "disk offset", "ByteCount"),
        (0x0B, "SourceInSecondaryBuffer", "source address", "0"),
        (
            0x0C,
            "DumpTypeMismatch",
            "dump type loaded",
            "dump type in the extension",
        ),
        (0x0F, "Panic", "source line", "source column"),
    ];

    /// The bug check parameters: rule, two values, callback.
    pub fn parameters(self, callback: Callback) -> [u64; 4] {
        let (rule, first, second) = match self {
            Self::TransferTooLarge {
                byte_count,
                capacity,
            } => (0x01, byte_count.into(), capacity as u64),
            Self::OffsetMisaligned { offset, data_unit } => (0x02, offset, data_unit as u64),
            Self::LengthMisaligned {
                byte_count,
                data_unit,
            } => (0x03, byte_count.into(), data_unit as u64),
            Self::NotMapped {
                flags,
                mapped_system_va,
            } => (0x04, flags.into(), mapped_system_va as u64),
            Self::PfnArrayTooSmall { needed, capacity } => (0x05, needed as u64, capacity as u64),
            Self::WriteRefused { offset } => (0x06, offset, 0),
            Self::OutOfOrder { state } => (0x07, state, 0),
            Self::NullArgument { argument } => (0x08, argument, 0),
            Self::UnknownContext { context } => (0x09, context as u64, 0),
            Self::OffsetOutOfRange { offset, byte_count } => (0x0A, offset, byte_count.into()),
            Self::SourceInSecondaryBuffer { source } => (0x0B, source as u64, 0),
            Self::DumpTypeMismatch { loaded, found } => (0x0C, loaded.into(), found.into()),
            Self::Panic { line, column } => (0x0F, line.into(), column.into()),
        };
        [rule, first, second, callback as u64]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_reads_dcry() {
        assert_eq!(BUGCHECK_CODE, 0x4443_5259);
    }

    #[test]
    fn parameters_follow_the_table() {
        let faults = [
            Fault::TransferTooLarge {
                byte_count: 1,
                capacity: 2,
            },
            Fault::OffsetMisaligned {
                offset: 1,
                data_unit: 2,
            },
            Fault::LengthMisaligned {
                byte_count: 1,
                data_unit: 2,
            },
            Fault::NotMapped {
                flags: 1,
                mapped_system_va: 2,
            },
            Fault::PfnArrayTooSmall {
                needed: 1,
                capacity: 2,
            },
            Fault::WriteRefused { offset: 1 },
            Fault::OutOfOrder { state: 1 },
            Fault::NullArgument { argument: 1 },
            Fault::UnknownContext { context: 1 },
            Fault::OffsetOutOfRange {
                offset: 1,
                byte_count: 2,
            },
            Fault::SourceInSecondaryBuffer { source: 1 },
            Fault::DumpTypeMismatch {
                loaded: 1,
                found: 2,
            },
            Fault::Panic { line: 1, column: 2 },
        ];
        for (fault, (rule, name, _, _)) in faults.iter().zip(Fault::TABLE) {
            let [p1, p2, _, p4] = fault.parameters(Callback::Read);
            assert_eq!(p1, rule, "{fault:?}");
            assert_eq!(p2, 1);
            assert_eq!(p4, 3);
            assert!(std::format!("{fault:?}").starts_with(name));
        }
    }
}
