//! The Windows crash dump and hibernation stacks, simulated, for running a dump filter.
//!
//! It plays crashdmp.sys, the dump port and the few ntoskrnl services a filter imports. It
//! knows the filter only by its DriverEntry and lays out the ABI structures itself
//! ([`layout`]), so a misreading of the headers in the filter shows up as a disagreement.
#![expect(
    missing_docs,
    reason = "a test harness: its offsets, fields and services carry their Windows names, \
              and the modules say what each plays"
)]

pub mod disk_template;
pub mod dump_format;
pub mod layout;
pub mod machine;
pub mod mdl;
pub mod memory;
pub mod ntoskrnl;
pub mod stack;
