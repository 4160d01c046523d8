//! cargo-fuzz target `xts`: the input and the oracle are in `fuzz/oracles/xts.rs`, which
//! `cargo test` also runs on the committed seeds (`tests/fuzz_seeds.rs`).
#![no_main]

use libfuzzer_sys::{fuzz_target, Corpus};

#[path = "../oracles/xts.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| -> Corpus {
    if oracle::run(data) {
        Corpus::Keep
    } else {
        Corpus::Reject
    }
});
