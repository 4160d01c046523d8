//! cargo-fuzz target `config`: the input and the oracle are in `fuzz/oracles/config.rs`, which
//! `cargo test` also runs on the committed seeds (`tests/fuzz_seeds.rs`).
#![no_main]

use libfuzzer_sys::{fuzz_target, Corpus};

#[path = "../oracles/config.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| -> Corpus {
    if oracle::run(data) {
        Corpus::Keep
    } else {
        Corpus::Reject
    }
});
