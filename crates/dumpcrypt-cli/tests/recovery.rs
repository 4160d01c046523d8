//! The administrators' tools as a user runs them, end to end on the simulator's output:
//! `keygen`, `config`, `decrypt` and `find-dump`. Expectations come from the simulator's
//! unfiltered reference image and from an independent XTS implementation, never from the
//! tools themselves; every failure must be a clear message, a non-zero exit, and no output
//! file left behind.

use std::path::PathBuf;

mod common;

use aes::cipher::KeyInit;
#[cfg(unix)]
use common::mode;
use common::{dumpcrypt, fails, fingerprint, nothing_left, s, succeeds, text};
use sha2::Digest;

const KEY: [u8; 64] = {
    let mut key = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        key[i] = (i as u8).wrapping_mul(29) ^ 0xa5;
        i += 1;
    }
    key
};

struct Simulated {
    dir: tempfile::TempDir,
    key: PathBuf,
    image: PathBuf,
    reference: PathBuf,
}

impl Simulated {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `dumpcrypt simulate` with a known key, writing the image and the reference.
fn simulate(extra: &[&str]) -> Simulated {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.bin");
    std::fs::write(&key, KEY).unwrap();
    let image = dir.path().join("image.raw");
    let reference = dir.path().join("reference.raw");
    let mut args = vec![
        "simulate",
        "--key",
        s(&key),
        "--image",
        s(&image),
        "--reference",
        s(&reference),
        "--memory",
        "4MiB",
        "--dump-kind",
        "full",
    ];
    args.extend_from_slice(extra);
    assert!(succeeds(&args).contains("verdict      PASS"));
    Simulated {
        dir,
        key,
        image,
        reference,
    }
}

/// Where the reference image holds a 64-bit dump header, found without the tool.
fn header_offsets(image: &[u8]) -> Vec<usize> {
    (0..image.len())
        .step_by(512)
        .filter(|&at| image[at..].starts_with(b"PAGEDU64"))
        .collect()
}

/// Every 512-byte sector that was written (non-zero in the reference) equals the reference.
#[track_caller]
fn written_sectors_match(decrypted: &[u8], reference: &[u8], range: std::ops::Range<usize>) {
    let mut written = 0;
    for at in range.step_by(512) {
        let plain = &reference[at..at + 512];
        if plain.iter().any(|&b| b != 0) {
            assert_eq!(&decrypted[at..at + 512], plain, "sector at {at:#x}");
            written += 1;
        }
    }
    assert!(written > 2000, "only {written} written sectors compared");
}

#[test]
fn a_simulated_crash_dump_is_recovered_end_to_end() {
    let sim = simulate(&["--partition-offset", "0", "--contiguous-dump"]);
    let decrypted = sim.path("decrypted.raw");
    let out = succeeds(&[
        "decrypt",
        "--key",
        s(&sim.key),
        "--in",
        s(&sim.image),
        "--out",
        s(&decrypted),
    ]);
    assert!(out.contains("decrypted inside the area"), "{out}");
    // It says what it used: the key by fingerprint, and the transform.
    assert!(
        out.contains(&format!(
            "key              fingerprint {}",
            fingerprint(&KEY)
        )),
        "{out}"
    );
    assert!(
        out.contains("XTS-AES-256, data unit 512 bytes, partition-relative tweaks"),
        "{out}"
    );
    let reference = std::fs::read(&sim.reference).unwrap();
    let plain = std::fs::read(&decrypted).unwrap();
    assert_eq!(plain.len(), reference.len());
    written_sectors_match(&plain, &reference, 0..reference.len());
    // Standard output (written in order by one thread) gives the same bytes as a file
    // (written at offsets by the workers).
    let piped = dumpcrypt(&[
        "decrypt",
        "--key",
        s(&sim.key),
        "--in",
        s(&sim.image),
        "--out",
        "-",
    ]);
    assert!(piped.status.success(), "{}", text(&piped));
    assert!(piped.stdout == plain);

    // The simulator wrote one crash dump: 0x2000 header bytes and 4 MiB of memory.
    let offsets = header_offsets(&reference);
    assert_eq!(offsets.len(), 1);
    let at = offsets[0];
    let size = 0x2000 + (4 << 20);
    let listed = succeeds(&["find-dump", s(&decrypted)]);
    assert!(
        listed.contains(&format!(
            "{at:#014x}  64-bit PAGEDU64  Full: complete memory dump, physical memory runs (DumpType 1)  size {size:#x} bytes"
        )),
        "{listed}"
    );
    assert!(listed.contains("bug check 0x000000e2"), "{listed}");

    let dump = sim.path("MEMORY.DMP");
    let out = succeeds(&["find-dump", s(&decrypted), "--extract", s(&dump)]);
    assert!(out.contains("ONE CONTIGUOUS RUN"), "{out}");
    let extracted = std::fs::read(&dump).unwrap();
    assert_eq!(extracted.len(), size);
    assert!(
        extracted == reference[at..at + size],
        "the extracted dump differs from the one written"
    );
    assert_eq!(
        u64::from_le_bytes(extracted[0xFA0..0xFA8].try_into().unwrap()),
        size as u64
    );

    // The same through standard output, and by header offset.
    let piped = dumpcrypt(&[
        "find-dump",
        s(&decrypted),
        "--at",
        &at.to_string(),
        "--extract",
        "-",
    ]);
    assert!(piped.status.success(), "{}", text(&piped));
    assert!(
        piped.stdout == extracted,
        "stdout holds the dump and nothing else"
    );
}

#[test]
fn decrypt_copies_outside_the_area_and_matches_an_independent_xts() {
    // A whole-disk image with the partition at 1 MiB and a partition-relative area.
    let (area_start, area_end) = (0x20_0000usize, 0x60_0000usize);
    let area = format!("{area_start:#x}..{area_end:#x}");
    let sim = simulate(&["--area", &area]);
    let partition = 0x10_0000usize;
    let decrypted = sim.path("decrypted.raw");
    succeeds(&[
        "decrypt",
        "--key",
        s(&sim.key),
        "--in",
        s(&sim.image),
        "--out",
        s(&decrypted),
        "--area",
        &area,
        "--partition-offset",
        "1MiB",
    ]);
    let image = std::fs::read(&sim.image).unwrap();
    let reference = std::fs::read(&sim.reference).unwrap();
    let plain = std::fs::read(&decrypted).unwrap();
    let (start, end) = (partition + area_start, partition + area_end);
    // Outside the area: the input, byte for byte.
    assert!(plain[..start] == image[..start]);
    assert!(plain[end..] == image[end..]);
    // Inside: what xts-mode makes of the image (data unit numbers from the partition start).
    let xts = xts_mode::Xts128::<aes::Aes256>::new(
        aes::Aes256::new_from_slice(&KEY[..32]).unwrap(),
        aes::Aes256::new_from_slice(&KEY[32..]).unwrap(),
    );
    let mut expected = image[start..end].to_vec();
    xts.decrypt_area(&mut expected, 512, (area_start / 512) as u128, |n: u128| {
        n.to_le_bytes()
    });
    assert!(plain[start..end] == expected[..]);
    let mut all_written = vec![0u8; reference.len()];
    all_written[start..end].copy_from_slice(&plain[start..end]);
    written_sectors_match(&all_written, &reference, start..end);

    // A byte range is that slice of the whole, even when it starts outside the area at an
    // odd offset; standard output gives the same bytes.
    let (from, to) = (start - 0x1234, start + 0x40_000);
    let piece = sim.path("piece.raw");
    let range = format!("{from:#x}..{to:#x}");
    let common = [
        "decrypt",
        "--key",
        s(&sim.key),
        "--in",
        s(&sim.image),
        "--area",
        &area,
        "--partition-offset",
        "1MiB",
        "--range",
        &range,
    ];
    let mut args = common.to_vec();
    args.extend(["--out", s(&piece)]);
    succeeds(&args);
    assert!(std::fs::read(&piece).unwrap() == plain[from..to]);
    let mut args = common.to_vec();
    args.extend(["--out", "-"]);
    let piped = dumpcrypt(&args);
    assert!(piped.status.success(), "{}", text(&piped));
    assert!(piped.stdout == plain[from..to]);
    // What was used goes to standard error, so that standard output is the image alone.
    let used = String::from_utf8_lossy(&piped.stderr);
    assert!(used.contains(&fingerprint(&KEY)), "{used}");
    assert!(used.contains("partition-relative"), "{used}");
}

#[test]
fn disk_absolute_tweaks_and_4096_byte_units() {
    let sim = simulate(&["--data-unit", "4096", "--tweak-base", "disk", "--seed", "3"]);
    let decrypted = sim.path("decrypted.raw");
    // Disk-absolute coordinates are image offsets: no --partition-offset needed.
    succeeds(&[
        "decrypt",
        "--key",
        s(&sim.key),
        "--in",
        s(&sim.image),
        "--out",
        s(&decrypted),
        "--data-unit",
        "4096",
        "--tweak-base",
        "disk",
    ]);
    let reference = std::fs::read(&sim.reference).unwrap();
    let plain = std::fs::read(&decrypted).unwrap();
    written_sectors_match(&plain, &reference, 0..reference.len());
    // The wrong data unit does not give the dump back.
    let wrong = sim.path("wrong.raw");
    succeeds(&[
        "decrypt",
        "--key",
        s(&sim.key),
        "--in",
        s(&sim.image),
        "--out",
        s(&wrong),
        "--tweak-base",
        "disk",
    ]);
    fails(&["find-dump", s(&wrong)], "no crash dump header");
}

#[test]
fn a_wrong_key_gives_no_dump_and_says_why() {
    let sim = simulate(&["--partition-offset", "0", "--contiguous-dump"]);
    let other_key = sim.path("other.bin");
    succeeds(&["keygen", "--out", s(&other_key)]);
    let decrypted = sim.path("decrypted.raw");
    succeeds(&[
        "decrypt",
        "--key",
        s(&other_key),
        "--in",
        s(&sim.image),
        "--out",
        s(&decrypted),
    ]);
    fails(&["find-dump", s(&decrypted)], "no crash dump header");
    fails(&["find-dump", s(&decrypted)], "wrong key");
    let dump = sim.path("MEMORY.DMP");
    fails(
        &["find-dump", s(&decrypted), "--extract", s(&dump)],
        "no crash dump header",
    );
    nothing_left(&dump);
}

#[test]
fn truncated_images_are_refused() {
    let sim = simulate(&["--partition-offset", "0", "--contiguous-dump"]);
    // An encrypted image cut inside a data unit cannot be decrypted to its end.
    let mut image = std::fs::read(&sim.image).unwrap();
    let cut = sim.path("cut.raw");
    std::fs::write(&cut, &image[..image.len() - 100]).unwrap();
    let decrypted = sim.path("decrypted.raw");
    fails(
        &[
            "decrypt",
            "--key",
            s(&sim.key),
            "--in",
            s(&cut),
            "--out",
            s(&decrypted),
        ],
        "truncated image",
    );
    nothing_left(&decrypted);

    // An image cut inside the dump: the header is found, but the dump runs past the end.
    let at = header_offsets(&std::fs::read(&sim.reference).unwrap())[0];
    image.truncate(at + 0x10_0000);
    std::fs::write(&cut, &image).unwrap();
    succeeds(&[
        "decrypt",
        "--key",
        s(&sim.key),
        "--in",
        s(&cut),
        "--out",
        s(&decrypted),
    ]);
    let listed = fails(&["find-dump", s(&decrypted)], "damaged");
    assert!(
        listed.contains("runs 0x302000 bytes past the end of the image"),
        "{listed}"
    );
    let dump = sim.path("MEMORY.DMP");
    fails(
        &["find-dump", s(&decrypted), "--extract", s(&dump)],
        "past the end of the image",
    );
    nothing_left(&dump);
}

#[test]
fn corrupted_headers_are_refused() {
    let sim = simulate(&["--partition-offset", "0", "--contiguous-dump"]);
    let decrypted = sim.path("decrypted.raw");
    succeeds(&[
        "decrypt",
        "--key",
        s(&sim.key),
        "--in",
        s(&sim.image),
        "--out",
        s(&decrypted),
    ]);
    let mut plain = std::fs::read(&decrypted).unwrap();
    let at = header_offsets(&plain)[0];
    let dump = sim.path("MEMORY.DMP");
    for (size, reason) in [
        (u64::MAX, "is absurd"),
        (0x10, "is smaller than the 0x2000-byte header"),
    ] {
        plain[at + 0xFA0..at + 0xFA8].copy_from_slice(&size.to_le_bytes());
        std::fs::write(&decrypted, &plain).unwrap();
        fails(&["find-dump", s(&decrypted)], reason);
        fails(
            &["find-dump", s(&decrypted), "--extract", s(&dump)],
            "damaged",
        );
        fails(
            &[
                "find-dump",
                s(&decrypted),
                "--at",
                &at.to_string(),
                "--extract",
                s(&dump),
            ],
            reason,
        );
        nothing_left(&dump);
    }
}

#[test]
fn unreadable_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.bin");
    std::fs::write(&key, KEY).unwrap();
    let missing = dir.path().join("missing.raw");
    let out = dir.path().join("out.raw");
    fails(
        &[
            "decrypt",
            "--key",
            s(&key),
            "--in",
            s(&missing),
            "--out",
            s(&out),
        ],
        "missing.raw",
    );
    nothing_left(&out);
    fails(
        &[
            "decrypt",
            "--key",
            s(&key),
            "--in",
            s(dir.path()),
            "--out",
            s(&out),
        ],
        "is a directory",
    );
    nothing_left(&out);
    fails(
        &["find-dump", s(&missing), "--extract", s(&out)],
        "missing.raw",
    );
    nothing_left(&out);
    // The output must not replace the input, even with --force.
    let image = dir.path().join("image.raw");
    std::fs::write(&image, vec![7u8; 4096]).unwrap();
    fails(
        &[
            "decrypt",
            "--key",
            s(&key),
            "--in",
            s(&image),
            "--out",
            s(&image),
        ],
        "--force",
    );
    fails(
        &[
            "decrypt",
            "--key",
            s(&key),
            "--in",
            s(&image),
            "--out",
            s(&image),
            "--force",
        ],
        "would overwrite what is being read",
    );
    assert_eq!(std::fs::read(&image).unwrap(), vec![7u8; 4096]);
}

#[test]
fn keygen_makes_private_distinct_keys_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("a.key"), dir.path().join("b.key"));
    let out = succeeds(&["keygen", "--out", s(&first)]);
    succeeds(&["keygen", "--out", s(&second)]);
    let key = std::fs::read(&first).unwrap();
    assert_eq!(key.len(), 64);
    assert_ne!(key[..32], key[32..]);
    assert_ne!(key, std::fs::read(&second).unwrap());
    let fingerprint: String = sha2::Sha256::digest(&key)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(out.contains(&format!("fingerprint {fingerprint}")), "{out}");
    #[cfg(unix)]
    assert_eq!(mode(&first), 0o600);

    fails(&["keygen", "--out", s(&first)], "--force");
    assert_eq!(std::fs::read(&first).unwrap(), key, "the key was changed");
    // --force replaces the file with a new private one, whatever the old one's mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&first, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    succeeds(&["keygen", "--out", s(&first), "--force"]);
    assert_ne!(std::fs::read(&first).unwrap(), key);
    #[cfg(unix)]
    assert_eq!(mode(&first), 0o600);
}

#[test]
fn config_writes_a_reg_file_the_driver_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.bin");
    std::fs::write(&key, KEY).unwrap();
    let reg = dir.path().join("dumpcrypt.reg");
    let out = succeeds(&[
        "config",
        "--crash-policy",
        "encrypt",
        "--key",
        s(&key),
        "--area",
        "1MiB..2GiB",
        "--reg-out",
        s(&reg),
    ]);
    let fingerprint: String = sha2::Sha256::digest(KEY)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(out.contains(&fingerprint), "{out}");
    let written = std::fs::read_to_string(&reg).unwrap();
    let key_hex: Vec<String> = KEY.iter().map(|b| format!("{b:02x}")).collect();
    for line in [
        "Windows Registry Editor Version 5.00\r\n\r\n",
        "[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\dumpcrypt\\Parameters]\r\n",
        "\"CrashDumpPolicy\"=dword:00000001\r\n",
        // A registry key in memory: hibernation refused by default.
        "\"HibernationPolicy\"=dword:00000002\r\n",
        "\"AllowPlaintextHibernation\"=dword:00000000\r\n",
        "\"DataUnitSize\"=dword:00000200\r\n",
        "\"EncryptedAreaStart\"=hex(b):00,00,10,00,00,00,00,00\r\n",
        "\"EncryptedAreaEnd\"=hex(b):00,00,00,80,00,00,00,00\r\n",
        "\"TweakBase\"=dword:00000000\r\n",
    ] {
        assert!(written.contains(line), "{line:?} missing from:\n{written}");
    }
    // The key, in order, across the continued lines.
    let key_text: String = written
        .split("\"Key\"=hex:")
        .nth(1)
        .unwrap()
        .split("\r\n\"")
        .next()
        .unwrap()
        .replace(",\\\r\n  ", ",");
    assert_eq!(key_text, key_hex.join(","));
    assert!(written.lines().all(|line| line.len() <= 80));
    #[cfg(unix)]
    assert_eq!(mode(&reg), 0o600);
    fails(
        &["config", "--crash-policy", "refuse", "--reg-out", s(&reg)],
        "--force",
    );
    succeeds(&[
        "config",
        "--crash-policy",
        "refuse",
        "--reg-out",
        s(&reg),
        "--force",
    ]);
    assert!(std::fs::read_to_string(&reg)
        .unwrap()
        .contains("\"Key\"=-\r\n"));
}

#[test]
fn config_refuses_what_the_driver_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.bin");
    std::fs::write(&key, KEY).unwrap();
    let reg = dir.path().join("dumpcrypt.reg");
    for (args, reason) in [
        (vec!["--crash-policy", "encrypt"], "needs a key"),
        (vec!["--hibernation-policy", "encrypt"], "needs a key"),
        (
            vec![
                "--crash-policy",
                "encrypt",
                "--key",
                s(&key),
                "--area",
                "0x300..0x10000",
            ],
            "invalid configuration",
        ),
        (
            vec![
                "--key",
                s(&key),
                "--data-unit",
                "4096",
                "--area",
                "0x200..0x10000",
            ],
            "invalid configuration",
        ),
        (vec!["--data-unit", "1000"], "512 or 4096"),
        (
            vec![
                "--crash-policy",
                "encrypt",
                "--key",
                s(&key),
                "--hibernation-policy",
                "passthrough",
            ],
            "--allow-plaintext-hibernation",
        ),
        (
            vec!["--crash-policy", "encrypt", "--key-source", "sealed"],
            "needs --recipient",
        ),
        (
            vec![
                "--crash-policy",
                "encrypt",
                "--key-source",
                "sealed",
                "--recipient",
                "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
                "--key",
                s(&key),
            ],
            "drop --key",
        ),
        (
            vec![
                "--crash-policy",
                "encrypt",
                "--key-source",
                "sealed",
                "--recipient",
                "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
                "--hibernation-policy",
                "encrypt",
            ],
            "HibernationPolicy is encrypt",
        ),
    ] {
        let mut all = vec!["config", "--reg-out", s(&reg)];
        all.extend(args.iter().copied());
        fails(&all, reason);
        nothing_left(&reg);
    }
    #[cfg(not(windows))]
    {
        fails(&["config", "--show"], "reg import");
        fails(
            &[
                "config",
                "--crash-policy",
                "encrypt",
                "--key",
                s(&key),
                "--apply",
            ],
            "--reg-out",
        );
    }
}
