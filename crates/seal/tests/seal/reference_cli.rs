//! The reference implementation, the `age` binary (Debian package `age`), decrypts what
//! `seal` writes. scripts/install-age.sh installs it; without it these tests fail under CI
//! (the environment variable CI set) and are skipped with a message elsewhere.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dumpcrypt_seal::{Recipient, SEALED_LEN};

use crate::{random, seal_fresh};

/// Whether `age` and `age-keygen` run; fails under CI when they do not.
fn reference_tools_present(test: &str) -> bool {
    let runs = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if runs("age") && runs("age-keygen") {
        return true;
    }
    let message = "the reference `age` and `age-keygen` are not on PATH \
                   (crates/seal/scripts/install-age.sh installs them)";
    assert!(std::env::var_os("CI").is_none(), "{test}: {message}");
    eprintln!("{test}: skipped: {message}");
    false
}

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dumpcrypt-seal-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `age-keygen -o FILE`, then `age-keygen -y FILE`: the identity file and its recipient.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let identity = dir.join(name);
    run(Command::new("age-keygen").arg("-o").arg(&identity));
    let output = run(Command::new("age-keygen").arg("-y").arg(&identity));
    let recipient = String::from_utf8(output.stdout).unwrap();
    (identity, recipient.trim_end_matches('\n').to_owned())
}

#[test]
fn the_reference_age_decrypts_what_seal_writes() {
    let test = "the_reference_age_decrypts_what_seal_writes";
    if !reference_tools_present(test) {
        return;
    }
    let dir = scratch(test);
    for key in 0..3 {
        let (identity, text) = keygen(&dir, &format!("identity{key}"));
        let recipient = Recipient::parse(text.as_bytes()).expect("age-keygen's recipient");
        for round in 0..4 {
            let payload = random::<64>();
            let sealed = seal_fresh(&recipient, &payload);
            let file = dir.join(format!("sealed{key}-{round}.age"));
            fs::write(&file, sealed).unwrap();
            let output = run(Command::new("age")
                .arg("-d")
                .arg("-i")
                .arg(&identity)
                .arg(&file));
            assert_eq!(output.stdout, payload, "key {key} round {round}");
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_reference_age_refuses_another_identity() {
    let test = "the_reference_age_refuses_another_identity";
    if !reference_tools_present(test) {
        return;
    }
    let dir = scratch(test);
    let (_, text) = keygen(&dir, "mine");
    let (other, _) = keygen(&dir, "other");
    let sealed = seal_fresh(&Recipient::parse(text.as_bytes()).unwrap(), &random::<64>());
    let file = dir.join("sealed.age");
    fs::write(&file, sealed).unwrap();
    let output = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&other)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_reference_age_writes_a_64_byte_file_in_the_same_layout() {
    // Independent of the crate's own arithmetic: `age -r` encrypting 64 bytes to one X25519
    // recipient gives SEALED_LEN bytes, with lines of the same lengths and prefixes.
    let test = "the_reference_age_writes_a_64_byte_file_in_the_same_layout";
    if !reference_tools_present(test) {
        return;
    }
    let dir = scratch(test);
    let (_, text) = keygen(&dir, "identity");
    let plain = dir.join("plain");
    fs::write(&plain, random::<64>()).unwrap();
    let theirs = dir.join("theirs.age");
    run(Command::new("age")
        .arg("-r")
        .arg(&text)
        .arg("-o")
        .arg(&theirs)
        .arg(&plain));
    let theirs = fs::read(&theirs).unwrap();
    let ours = seal_fresh(&Recipient::parse(text.as_bytes()).unwrap(), &random::<64>());
    assert_eq!(theirs.len(), SEALED_LEN);
    let lines = |file: &[u8]| -> Vec<Vec<u8>> {
        file.split(|&c| c == b'\n')
            .take(4)
            .map(<[u8]>::to_vec)
            .collect()
    };
    let (theirs, ours) = (lines(&theirs), lines(&ours));
    let lengths = |lines: &[Vec<u8>]| lines.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(lengths(&theirs), lengths(&ours));
    for (line, prefix) in [
        (0, &b"age-encryption.org/v1"[..]),
        (1, b"-> X25519 "),
        (3, b"--- "),
    ] {
        assert!(theirs[line].starts_with(prefix), "theirs, line {line}");
        assert!(ours[line].starts_with(prefix), "ours, line {line}");
    }
    fs::remove_dir_all(&dir).unwrap();
}
