//! What the CLI's end-to-end tests share: running the `dumpcrypt` binary.

use std::process::{Command, Output};

/// Runs `dumpcrypt` with `args`, as a user would.
pub fn dumpcrypt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
        .args(args)
        .output()
        .expect("runs")
}

/// Standard output and standard error together, for messages and assertions.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
