//! cargo-fuzz target `dump_protocol`: the input and the oracle are in `fuzz/oracles/dump_protocol.rs`, which
//! `cargo test` also runs on the committed seeds (`tests/fuzz_seeds.rs`).
#![no_main]

use libfuzzer_sys::{fuzz_target, Corpus};

#[path = "../oracles/dump_protocol.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| -> Corpus {
    if oracle::run(data) {
        Corpus::Keep
    } else {
        Corpus::Reject
    }
});
