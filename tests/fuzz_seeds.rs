//! The committed fuzz seeds (`fuzz/seeds/TARGET`), replayed by `cargo test` through the fuzz
//! targets' own input decoding and oracles (`fuzz/oracles/TARGET.rs`, the same files the
//! cargo-fuzz binaries compile). Each seed must decode into an input and pass the oracle; a
//! seed directory that is missing or empty fails, so that nothing is replayed silently.

#[path = "../fuzz/oracles/config.rs"]
mod config;
#[path = "../fuzz/oracles/dump_protocol.rs"]
mod dump_protocol;
#[path = "../fuzz/oracles/xts.rs"]
mod xts;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn seed_directory(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

/// The seed files in `directory`, sorted by name; panics if there are none.
fn seeds(directory: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("seed directory {}: {error}", directory.display()));
    let mut seeds: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    seeds.sort();
    assert!(
        !seeds.is_empty(),
        "no seeds in {}: nothing would be replayed",
        directory.display()
    );
    seeds
}

/// Runs every seed of `target` through `run`; fails naming each seed that did not decode or
/// that the oracle failed on (the oracle's own message is printed above by the panic hook).
fn replay(target: &str, run: fn(&[u8]) -> bool) {
    let mut failed = Vec::new();
    let seeds = seeds(&seed_directory(target));
    for seed in &seeds {
        let data = std::fs::read(seed).unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
        let name = seed.file_name().unwrap().to_string_lossy().into_owned();
        match catch_unwind(AssertUnwindSafe(|| run(&data))) {
            Ok(true) => {}
            Ok(false) => failed.push(format!(
                "{target}/{name}: does not decode into an input (regenerate with fuzz/make_seeds.py)"
            )),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                failed.push(format!("{target}/{name}: the oracle failed: {message}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} seeds failed:\n{}",
        failed.len(),
        seeds.len(),
        failed.join("\n")
    );
}

#[test]
fn dump_protocol_seeds_pass_the_fuzz_oracle() {
    replay("dump_protocol", dump_protocol::run);
}

#[test]
fn config_seeds_pass_the_fuzz_oracle() {
    replay("config", config::run);
}

#[test]
fn xts_seeds_pass_the_fuzz_oracle() {
    replay("xts", xts::run);
}

/// The replay cannot pass on nothing: a missing or empty seed directory fails, and so does
/// a seed that does not decode (an empty input is too short for every target's input).
#[test]
fn replay_refuses_to_replay_nothing() {
    let missing = seed_directory("no_such_target");
    assert!(
        catch_unwind(|| seeds(&missing)).is_err(),
        "a missing directory"
    );
    let empty = std::env::temp_dir().join(format!("dumpcrypt-empty-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let result = catch_unwind(|| seeds(&empty));
    std::fs::remove_dir(&empty).unwrap();
    assert!(result.is_err(), "an empty directory");
    // An empty input is too short for every target's size hint.
    assert!(!dump_protocol::run(&[]));
    assert!(!config::run(&[]));
    assert!(!xts::run(&[]));
}
