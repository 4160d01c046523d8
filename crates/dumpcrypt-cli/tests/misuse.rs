//! The tools under misuse, as a new user would try them: never destroy what the user pointed
//! at, never leave plaintext behind, one set of conventions (crates/dumpcrypt-cli/src/output.rs
//! and input.rs). Device nodes are made with `mknod` in a temporary directory, FIFOs with
//! `mkfifo`, terminals with `script`; signals are sent to the real binary while it runs.
//!
//! Expectations come from outside the tool: the file types and device numbers the test made,
//! the bytes a plain `decrypt` to a file gives, the directory listings before and after.

#![cfg(unix)]

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

use common::{dumpcrypt, s, succeeds, text};

#[track_caller]
fn fails(args: &[&str], reason: &str) -> String {
    let output = dumpcrypt(args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{args:?} did not fail: {}",
        text(&output)
    );
    assert!(
        text(&output).contains(reason),
        "{args:?}: expected `{reason}` in: {}",
        text(&output)
    );
    text(&output)
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Makes a device node; false (after saying so) where mknod is not permitted, which fails
/// the test under CI=true instead.
fn mknod(path: &Path, kind: &str, major: u32, minor: u32) -> bool {
    let made = Command::new("mknod")
        .arg(path)
        .arg(kind)
        .arg(major.to_string())
        .arg(minor.to_string())
        .status()
        .is_ok_and(|status| status.success());
    if !made {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "mknod is not permitted here, and CI=true: the device-node tests must run"
        );
        eprintln!("SKIPPED: mknod is not permitted here (not root?); device-node checks not run");
    }
    made
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// (kind, major, minor) of a node.
fn node(path: &Path) -> (&'static str, u64, u64) {
    let metadata = std::fs::symlink_metadata(path).unwrap();
    let kind = metadata.file_type();
    let name = if kind.is_char_device() {
        "char"
    } else if kind.is_block_device() {
        "block"
    } else if kind.is_fifo() {
        "fifo"
    } else if kind.is_file() {
        "file"
    } else if kind.is_symlink() {
        "link"
    } else {
        "other"
    };
    let rdev = metadata.rdev();
    // Linux's encoding of a device number.
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (name, major, minor)
}

const KEY: [u8; 64] = {
    let mut key = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        key[i] = (i as u8).wrapping_mul(37) ^ 0x5a;
        i += 1;
    }
    key
};

/// A directory with a key, an encrypted image the simulator wrote, and its plain decryption
/// (made with a plain `decrypt` to a new file: the bytes every other route must give).
struct Fixture {
    dir: tempfile::TempDir,
    key: PathBuf,
    image: PathBuf,
    plain: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.bin");
        std::fs::write(&key, KEY).unwrap();
        let image = dir.path().join("image.raw");
        succeeds(&[
            "simulate",
            "--key",
            s(&key),
            "--image",
            s(&image),
            "--memory",
            "2MiB",
            "--dump-type",
            "crash",
            "--partition-offset",
            "0",
            "--contiguous-dump",
        ]);
        let plain_path = dir.path().join("plain.raw");
        succeeds(&[
            "decrypt",
            "--key",
            s(&key),
            "--in",
            s(&image),
            "--out",
            s(&plain_path),
        ]);
        let plain = std::fs::read(&plain_path).unwrap();
        std::fs::remove_file(&plain_path).unwrap();
        Self {
            dir,
            key,
            image,
            plain,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn decrypt_to<'a>(&'a self, out: &'a str) -> Vec<&'a str> {
        vec![
            "decrypt",
            "--key",
            s(&self.key),
            "--in",
            s(&self.image),
            "--out",
            out,
        ]
    }
}

#[test]
fn a_character_device_is_streamed_into_and_never_replaced() {
    let fixture = Fixture::new();
    let null = fixture.path("null");
    if !mknod(&null, "c", 1, 3) {
        return;
    }
    let before = listing(fixture.dir.path());
    let out = succeeds(&fixture.decrypt_to(s(&null)));
    assert!(out.contains("written"), "{out}");
    assert_eq!(node(&null), ("char", 1, 3), "decrypt replaced the device");
    let plain = fixture.path("plain.raw");
    std::fs::write(&plain, &fixture.plain).unwrap();
    succeeds(&["find-dump", s(&plain), "--extract", s(&null)]);
    assert_eq!(node(&null), ("char", 1, 3), "find-dump replaced the device");
    std::fs::remove_file(&plain).unwrap();
    succeeds(&["config", "--crash-policy", "refuse", "--reg-out", s(&null)]);
    assert_eq!(node(&null), ("char", 1, 3), "config replaced the device");
    // A key file must be a file: refused, even with --force, and the device stays.
    fails(
        &["keygen", "--out", s(&null), "--force"],
        "is a character device",
    );
    assert_eq!(
        node(&null),
        ("char", 1, 3),
        "keygen --force replaced the device"
    );
    fails(
        &[
            "simulate",
            "--memory",
            "1MiB",
            "--image",
            s(&null),
            "--force",
        ],
        "must be a regular file",
    );
    assert_eq!(node(&null), ("char", 1, 3));
    assert_eq!(listing(fixture.dir.path()), before);
}

#[test]
fn a_block_device_is_written_in_place_or_not_at_all() {
    let fixture = Fixture::new();
    // Major 240 is for local or experimental use: no driver answers, so opening it fails
    // (ENXIO) and nothing may be put in its place.
    let block = fixture.path("block");
    if !mknod(&block, "b", 240, 7) {
        return;
    }
    let before = listing(fixture.dir.path());
    fails(&fixture.decrypt_to(s(&block)), "block");
    assert_eq!(
        node(&block),
        ("block", 240, 7),
        "decrypt replaced the device"
    );
    let mut forced = fixture.decrypt_to(s(&block));
    forced.push("--force");
    fails(&forced, "block");
    assert_eq!(node(&block), ("block", 240, 7));
    fails(
        &["keygen", "--out", s(&block), "--force"],
        "is a block device",
    );
    assert_eq!(node(&block), ("block", 240, 7));
    assert_eq!(listing(fixture.dir.path()), before);
}

#[test]
fn fifos_stream_in_and_out() {
    let fixture = Fixture::new();
    // Out: a reader on the other end gets the same bytes as a file.
    let fifo = fixture.path("out.fifo");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(fifo)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            bytes
        })
    };
    succeeds(&fixture.decrypt_to(s(&fifo)));
    assert!(reader.join().unwrap() == fixture.plain);
    assert_eq!(node(&fifo).0, "fifo");

    // In: from a FIFO, from standard input, and a range of a stream.
    let fifo_in = fixture.path("in.fifo");
    mkfifo(&fifo_in);
    let writer = {
        let (fifo, image) = (fifo_in.clone(), fixture.image.clone());
        std::thread::spawn(move || {
            let bytes = std::fs::read(image).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(fifo)
                .unwrap()
                .write_all(&bytes)
                .unwrap();
        })
    };
    let out = fixture.path("from-fifo.raw");
    succeeds(&[
        "decrypt",
        "--key",
        s(&fixture.key),
        "--in",
        s(&fifo_in),
        "--out",
        s(&out),
    ]);
    writer.join().unwrap();
    assert!(std::fs::read(&out).unwrap() == fixture.plain);

    let image = std::fs::read(&fixture.image).unwrap();
    let piped = |args: &[&str], input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input); // a refusal closes the pipe early
        });
        let output = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        output
    };
    let key = s(&fixture.key);
    let streamed = piped(
        &["decrypt", "--key", key, "--in", "-", "--out", "-"],
        &image,
    );
    assert!(streamed.status.success(), "{}", text(&streamed));
    assert!(streamed.stdout == fixture.plain);
    let range = "0x1200..0x40000";
    let ranged = piped(
        &[
            "decrypt", "--key", key, "--in", "-", "--out", "-", "--range", range,
        ],
        &image,
    );
    assert!(ranged.status.success(), "{}", text(&ranged));
    assert!(ranged.stdout == fixture.plain[0x1200..0x40000]);
    // A stream that ends inside a data unit is a truncated image, as a file would be.
    let cut = piped(
        &["decrypt", "--key", key, "--in", "-", "--out", "-"],
        &image[..image.len() - 100],
    );
    assert_eq!(cut.status.code(), Some(1));
    assert!(text(&cut).contains("truncated image"), "{}", text(&cut));
    // find-dump must seek: a pipe is refused with a sentence, not `Illegal seek`.
    let refused = piped(&["find-dump", "-"], &fixture.plain);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("save the stream to a file first")
            && !text(&refused).contains("Illegal seek"),
        "{}",
        text(&refused)
    );
    // Standard input that is a file (`< plain.raw`) seeks: find-dump reads it.
    let plain = fixture.path("plain.raw");
    std::fs::write(&plain, &fixture.plain).unwrap();
    let redirected = Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
        .args(["find-dump", "-"])
        .stdin(std::fs::File::open(&plain).unwrap())
        .output()
        .unwrap();
    assert!(redirected.status.success(), "{}", text(&redirected));
    assert!(text(&redirected).contains("64-bit PAGEDU64"));
}

#[test]
fn a_dash_is_standard_output_or_refused_never_a_file_named_dash() {
    let fixture = Fixture::new();
    let before = listing(fixture.dir.path());
    let in_dir = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
            .args(args)
            .current_dir(fixture.dir.path())
            .output()
            .unwrap()
    };
    for (args, reason) in [
        (vec!["keygen", "--out", "-"], "./-"),
        (vec!["simulate", "--memory", "1MiB", "--image", "-"], "./-"),
        (
            vec!["simulate", "--memory", "1MiB", "--reference", "-"],
            "./-",
        ),
        (
            vec!["decrypt", "--key", "-", "--in", "image.raw", "--out", "x"],
            "./-",
        ),
        (vec!["simulate", "--memory", "1MiB", "--key", "-"], "./-"),
    ] {
        let output = in_dir(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            text(&output).contains(reason),
            "{args:?}: {}",
            text(&output)
        );
    }
    assert_eq!(
        listing(fixture.dir.path()),
        before,
        "a file named - appeared"
    );
    // ./- names the file called `-`.
    let output = in_dir(&["keygen", "--out", "./-"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(std::fs::read(fixture.path("-")).unwrap().len(), 64);
    // The .reg file can be standard output; what is for people then goes to stderr.
    let output = in_dir(&["config", "--crash-policy", "refuse", "--reg-out", "-"]);
    assert!(output.status.success(), "{}", text(&output));
    let reg = String::from_utf8(output.stdout).unwrap();
    assert!(
        reg.starts_with("Windows Registry Editor Version 5.00\r\n"),
        "{reg}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("crash dumps      refuse"));
}

/// Runs `command` with its standard output on a terminal (`script` makes one); returns the
/// exit status and what appeared on the terminal.
fn on_a_terminal(command: &str) -> (i32, String) {
    let output = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn binary_output_to_a_terminal_is_refused_unless_forced() {
    let fixture = Fixture::new();
    let bin = env!("CARGO_BIN_EXE_dumpcrypt");
    let decrypt = format!(
        "{bin} decrypt --key {} --in {} --out -",
        s(&fixture.key),
        s(&fixture.image)
    );
    let (code, shown) = on_a_terminal(&decrypt);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("is a terminal"), "{shown}");
    let plain = fixture.path("plain.raw");
    std::fs::write(&plain, &fixture.plain).unwrap();
    let extract = format!("{bin} find-dump {} --extract -", s(&plain));
    let (code, shown) = on_a_terminal(&extract);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("is a terminal"), "{shown}");
    // A .reg file with a key is a secret: refused on a terminal; without one it is text.
    let reg = format!(
        "{bin} config --crash-policy encrypt --key {} --reg-out -",
        s(&fixture.key)
    );
    let (code, shown) = on_a_terminal(&reg);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("a key would be written"), "{shown}");
    let (code, shown) = on_a_terminal(&format!("{bin} config --reg-out -"));
    assert_eq!(code, 0, "{shown}");
    // Forced, the bytes go to the terminal.
    let (code, _) = on_a_terminal(&format!("{decrypt} --range 0..512 --force"));
    assert_eq!(code, 0);
}

#[test]
fn outputs_are_checked_before_any_work() {
    let fixture = Fixture::new();
    let existing = fixture.path("existing.raw");
    std::fs::write(&existing, b"keep me").unwrap();
    let missing = fixture.path("missing.raw"); // an input that does not exist
    let before = listing(fixture.dir.path());
    let dir_slash = format!("{}/", s(&fixture.path("sub")));
    let nowhere = fixture.path("no/such/dir/out.raw");
    let plain = fixture.path("plain.raw");
    // The input does not exist either: the error names the output, so it came first.
    for (out, reason) in [
        (s(fixture.dir.path()), "is a directory"),
        (dir_slash.as_str(), "names a directory"),
        (s(&nowhere), "does not exist"),
        (s(&existing), "--force"),
    ] {
        fails(
            &[
                "decrypt",
                "--key",
                s(&fixture.key),
                "--in",
                s(&missing),
                "--out",
                out,
            ],
            reason,
        );
        fails(&["find-dump", s(&missing), "--extract", out], reason);
        fails(&["keygen", "--out", out], reason);
        fails(
            &["config", "--crash-policy", "refuse", "--reg-out", out],
            reason,
        );
        for option in ["--image", "--reference"] {
            fails(
                &[
                    "simulate",
                    "--memory",
                    "1MiB",
                    option,
                    out,
                    "--key",
                    s(&missing),
                ],
                reason,
            );
        }
    }
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    assert_eq!(listing(fixture.dir.path()), before);
    // With --force an existing file is replaced, whole, by an owner-only one.
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut forced = fixture.decrypt_to(s(&existing));
    forced.push("--force");
    succeeds(&forced);
    assert!(std::fs::read(&existing).unwrap() == fixture.plain);
    let mode = std::fs::metadata(&existing).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::write(&plain, &fixture.plain).unwrap();
    let dump = fixture.path("MEMORY.DMP");
    succeeds(&["find-dump", s(&plain), "--extract", s(&dump)]);
    fails(&["find-dump", s(&plain), "--extract", s(&dump)], "--force");
    succeeds(&["find-dump", s(&plain), "--extract", s(&dump), "--force"]);
}

#[test]
fn symbolic_links_are_followed_and_dangling_ones_refused() {
    let fixture = Fixture::new();
    let target = fixture.path("target.raw");
    std::fs::write(&target, b"old").unwrap();
    let link = fixture.path("link.raw");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    fails(&fixture.decrypt_to(s(&link)), "--force");
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    let mut forced = fixture.decrypt_to(s(&link));
    forced.push("--force");
    succeeds(&forced);
    // The link is still a link; the file it points to holds the new content.
    assert_eq!(node(&link).0, "link");
    assert!(std::fs::read(&target).unwrap() == fixture.plain);
    // A dangling link is refused, and its target is not created.
    let dangling = fixture.path("dangling.raw");
    let nowhere = fixture.path("nowhere.raw");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    fails(&fixture.decrypt_to(s(&dangling)), "which does not exist");
    fails(
        &["keygen", "--out", s(&dangling), "--force"],
        "which does not exist",
    );
    assert!(!nowhere.exists());
    // A link to a directory is refused; a link to a device streams into the device.
    let to_dir = fixture.path("to-dir");
    std::os::unix::fs::symlink(fixture.dir.path(), &to_dir).unwrap();
    fails(&fixture.decrypt_to(s(&to_dir)), "is a directory");
    let to_null = fixture.path("to-null");
    std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
    succeeds(&fixture.decrypt_to(s(&to_null)));
    assert_eq!(node(&to_null).0, "link");
    assert_eq!(node(Path::new("/dev/null")), ("char", 1, 3));
}

#[test]
fn impossible_geometry_is_refused_with_its_cause() {
    let fixture = Fixture::new();
    let out = fixture.path("out.raw");
    let mut args = fixture.decrypt_to(s(&out));
    args.extend(["--partition-offset", "1000"]);
    fails(&args, "not a multiple of 512");
    let mut args = fixture.decrypt_to(s(&out));
    args.extend(["--partition-offset", "1TiB"]);
    fails(&args, "beyond the end of");
    assert!(!out.exists());
    let image = fixture.path("a.raw");
    let link = fixture.path("b.raw");
    fails(
        &[
            "simulate",
            "--memory",
            "1MiB",
            "--image",
            s(&image),
            "--reference",
            s(&image),
        ],
        "name the same file",
    );
    // Through a link to an existing file, replaced with --force: still the same file.
    std::fs::write(&image, b"old").unwrap();
    std::os::unix::fs::symlink(&image, &link).unwrap();
    fails(
        &[
            "simulate",
            "--memory",
            "1MiB",
            "--image",
            s(&image),
            "--reference",
            s(&link),
            "--force",
        ],
        "name the same file",
    );
    assert_eq!(std::fs::read(&image).unwrap(), b"old");
    fails(
        &["simulate", "--memory", "1MiB", "--partition-offset", "1000"],
        "not a multiple of the data unit",
    );
    fails(
        &[
            "simulate",
            "--memory",
            "1MiB",
            "--data-unit",
            "4096",
            "--partition-offset",
            "0x200",
        ],
        "not a multiple of the data unit (4096 bytes)",
    );
    fails(
        &[
            "simulate",
            "--memory",
            "1MiB",
            "--partition-offset",
            "0x7fffffffffff0000",
        ],
        "beyond 2^63 bytes",
    );
    // One MDL: a 16-bit Size of 0x30 header bytes and 8 per PFN, less the simulator's slots.
    fails(
        &[
            "simulate",
            "--memory",
            "1MiB",
            "--max-pages-per-write",
            "4086",
        ],
        "at most 4085",
    );
    let out = succeeds(&[
        "simulate",
        "--memory",
        "17MiB",
        "--dump-type",
        "crash",
        "--max-pages-per-write",
        "4085",
    ]);
    assert!(out.contains("verdict      PASS"), "{out}");
    fails(&["simulate", "--memory", "65GiB"], "the simulator's limit");
    // More memory than this machine has: a usage error, not an allocation abort.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let available_kib: u64 = meminfo
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap();
    // GiB, well above what is available (other tests may free memory meanwhile).
    let too_much = available_kib / (1 << 20) + 4;
    if too_much <= 64 {
        let memory = format!("{too_much}GiB");
        fails(&["simulate", "--memory", &memory], "MemAvailable");
    }
}

#[test]
fn the_free_space_is_checked_before_any_work() {
    let fixture = Fixture::new();
    let small = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(small.path())
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "mount is not permitted here, and CI=true: the free-space test must run"
        );
        eprintln!("SKIPPED: cannot mount a small tmpfs here (not root?)");
        return;
    }
    let out = small.path().join("out.raw");
    let decrypted = dumpcrypt(&fixture.decrypt_to(s(&out)));
    let plain = fixture.path("plain.raw");
    std::fs::write(&plain, &fixture.plain).unwrap();
    let extracted = dumpcrypt(&["find-dump", s(&plain), "--extract", s(&out)]);
    let simulated = dumpcrypt(&[
        "simulate",
        "--memory",
        "2MiB",
        "--image",
        s(&small.path().join("image.raw")),
    ]);
    let left = listing(small.path());
    let _ = Command::new("umount").arg(small.path()).status();
    for output in [&decrypted, &extracted, &simulated] {
        assert_eq!(output.status.code(), Some(1), "{}", text(output));
        assert!(text(output).contains("available"), "{}", text(output));
    }
    assert!(left.is_empty(), "left on the full file system: {left:?}");
}

#[test]
fn the_tweak_base_has_one_spelling() {
    for (base, prose) in [
        ("partition", "partition-relative"),
        ("disk", "disk-absolute"),
    ] {
        let out = succeeds(&["simulate", "--memory", "1MiB", "--tweak-base", base]);
        assert!(out.contains(&format!("{prose} tweaks")), "{out}");
        let out = succeeds(&["config", "--tweak-base", base]);
        assert!(
            out.contains(&format!("({prose} offsets and tweaks)")),
            "{out}"
        );
    }
    let out = succeeds(&["simulate", "--memory", "1MiB", "--policy", "refuse"]);
    assert!(
        out.starts_with("dumpcrypt simulate: policy refuse,"),
        "{out}"
    );
    fails(&["config", "--update"], "--reg-out");
}

/// `dumpcrypt … | head`: standard output closed before the first line. The run ends as
/// SIGPIPE ends other tools (status 141), without a panic, and leaves no temporary image.
#[test]
fn a_closed_standard_output_ends_the_run_quietly() {
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("image.raw");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
        .args(["simulate", "--memory", "4MiB", "--image", s(&image)])
        .env("TMPDIR", work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is written
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        listing(work.path()).is_empty(),
        "{:?}",
        listing(work.path())
    );
}

// ---- Interruptions ----

/// Whether `pid` holds open a file in `dir`, named or unnamed (`O_TMPFILE`): the sign that
/// it is writing its temporary output there.
fn holds_file_in(pid: u32, dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .any(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target.starts_with(dir)))
}

/// Waits, without a deadline, until `ready` or the child exits (which fails the test).
fn wait_until(child: &mut std::process::Child, mut ready: impl FnMut() -> bool) {
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be interrupted");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn send(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

const SIGNALS: [(&str, i32); 3] = [("INT", 2), ("TERM", 15), ("HUP", 1)];

/// decrypt reading a FIFO the test feeds: it has created its output and is blocked on
/// more input when the signal comes, whatever the machine's speed.
#[test]
fn an_interrupted_decrypt_leaves_nothing() {
    let fixture = Fixture::new();
    for (signal, number) in SIGNALS.iter().copied().chain([("KILL", 9)]) {
        let (feed_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let fifo = feed_dir.path().join("image.fifo");
        mkfifo(&fifo);
        let out = work.path().join("decrypted.raw");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
            .args([
                "decrypt",
                "--key",
                s(&fixture.key),
                "--in",
                s(&fifo),
                "--out",
                s(&out),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Opening the FIFO waits for decrypt to open it: it has made its output by then.
        let mut feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        feed.write_all(&std::fs::read(&fixture.image).unwrap()[..1 << 20])
            .unwrap();
        // Its temporary output, named or not, is open in the output's directory.
        let pid = child.id();
        wait_until(&mut child, || holds_file_in(pid, work.path()));
        send(child.id(), signal);
        let status = child.wait().unwrap();
        drop(feed);
        let left = listing(work.path());
        if signal == "KILL" {
            // Not catchable: at most an owner-only temporary file may stay (none with
            // Linux's O_TMPFILE, whose file vanishes with the process).
            assert_eq!(status.code(), None);
            for name in &left {
                let mode = std::fs::metadata(work.path().join(name)).unwrap().mode();
                assert!(
                    name.ends_with(".partial") && mode & 0o077 == 0,
                    "{name} {mode:o}"
                );
            }
            #[cfg(target_os = "linux")]
            assert!(left.is_empty(), "SIGKILL left {left:?}");
        } else {
            assert_eq!(status.code(), Some(128 + number), "SIG{signal}");
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            assert!(
                stderr.contains(&format!("interrupted by SIG{signal}")),
                "{stderr}"
            );
            assert!(left.is_empty(), "SIG{signal} left {left:?}");
        }
    }
}

/// The same on a large sparse image read as a file.
#[test]
fn an_interrupted_decrypt_of_a_large_image_leaves_nothing() {
    let fixture = Fixture::new();
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("large.raw");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("decrypted.raw");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
        .args([
            "decrypt",
            "--key",
            s(&fixture.key),
            "--in",
            s(&image),
            "--out",
            s(&out),
            "--range",
            "0..1GiB",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(&mut child, || holds_file_in(pid, out_dir.path()));
    send(child.id(), "INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(listing(out_dir.path()).is_empty());
}

/// simulate with a large memory: its named temporary images (next to --image and
/// --reference, or in TMPDIR) are gone after the signal.
#[test]
fn an_interrupted_simulate_leaves_nothing() {
    for (signal, number) in SIGNALS {
        let work = tempfile::tempdir().unwrap();
        let (image, reference) = (work.path().join("image.raw"), work.path().join("ref.raw"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
            .args([
                "simulate",
                "--memory",
                "1GiB",
                "--image",
                s(&image),
                "--reference",
            ])
            .arg(&reference)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let partial = |dir: &Path| listing(dir).iter().any(|name| name.ends_with(".partial"));
        wait_until(&mut child, || partial(work.path()));
        send(child.id(), signal);
        assert_eq!(
            child.wait().unwrap().code(),
            Some(128 + number),
            "SIG{signal}"
        );
        assert!(
            listing(work.path()).is_empty(),
            "{:?}",
            listing(work.path())
        );
    }
    // Without --image: a scratch image in TMPDIR.
    let scratch = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
        .args(["simulate", "--memory", "1GiB"])
        .env("TMPDIR", scratch.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(&mut child, || {
        !listing(scratch.path()).is_empty() || holds_file_in(pid, scratch.path())
    });
    send(child.id(), "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(
        listing(scratch.path()).is_empty(),
        "{:?}",
        listing(scratch.path())
    );
}
