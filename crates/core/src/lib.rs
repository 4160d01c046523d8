//! dumpcrypt's rules, in a crate that cannot contain `unsafe`.
//!
//! Everything that decides what reaches the disk lives here, apart from the kernel: the
//! configuration schema and its parser ([`config`]), where bytes are and which are encrypted
//! ([`geometry`]), the faults and the bug check parameters they become ([`fault`]), and one
//! loaded instance's protocol state and policy ([`instance`]). The driver crate adopts the raw
//! pointers the dump stack hands over and calls this code with safe values; the CLI, the
//! simulator's reference and the tests use the same geometry.
//!
//! | Rust                         | Windows                                         |
//! |------------------------------|-------------------------------------------------|
//! | [`config::Config`]           | the values of `Services\dumpcrypt\Parameters`   |
//! | [`instance::DumpType`]       | `FILTER_DUMP_TYPE`                              |
//! | [`geometry::Transfer`]       | one checked `DiskByteOffset` + `ByteCount`      |
//! | [`fault::Fault`]             | the parameters of bug check 0x44435259 ('DCRY') |
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod config;
pub mod fault;
pub mod geometry;
pub mod instance;
pub mod provider;
pub mod random;
pub mod sealed_keys;

pub use dumpcrypt_xts as xts;
