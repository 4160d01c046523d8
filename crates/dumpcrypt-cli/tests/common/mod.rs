//! What the CLI's end-to-end tests share: running the `dumpcrypt` binary.
#![allow(
    dead_code,
    reason = "shared by every test binary; each uses a different part of it"
)]

use std::path::Path;
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

/// A path as the `&str` an argument list takes.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs a command that must succeed; its output.
#[track_caller]
pub fn succeeds(args: &[&str]) -> String {
    let output = dumpcrypt(args);
    assert!(output.status.success(), "{args:?}: {}", text(&output));
    text(&output)
}

/// Runs a command that must fail with `reason` in its message.
#[track_caller]
pub fn fails(args: &[&str], reason: &str) -> String {
    let output = dumpcrypt(args);
    assert!(
        !output.status.success(),
        "{args:?} succeeded: {}",
        text(&output)
    );
    assert!(
        text(&output).contains(reason),
        "{args:?}: expected `{reason}` in: {}",
        text(&output)
    );
    text(&output)
}

/// [`fails`], and leaves neither `out` nor a temporary output beside it.
#[track_caller]
pub fn fails_leaving_nothing(args: &[&str], out: &Path, reason: &str) -> String {
    let said = fails(args, reason);
    nothing_left(out);
    said
}

/// Fails if `path` exists, or if any temporary output is left in its directory.
#[track_caller]
pub fn nothing_left(path: &Path) {
    assert!(!path.exists(), "{} was left behind", path.display());
    for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().ends_with(".partial"),
            "temporary file {name:?} left behind"
        );
    }
}

/// A key's fingerprint, computed here: the first 8 bytes of its SHA-256, in hex.
pub fn fingerprint(key: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file's permission bits.
#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
