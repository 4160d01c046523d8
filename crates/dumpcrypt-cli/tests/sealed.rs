//! The sealed key source from the administrator's side, end to end: keys sealed as the driver
//! seals them (`dumpcrypt_seal::seal`) to fresh age identities, put in a `.reg` file as
//! regedit exports the SealedKeys key, then `unseal` and `decrypt --identity` run as a user
//! runs them. Expectations come from the keys the test drew, SHA-256 computed here, and the
//! simulator's reference image, never from the tools.

use std::path::{Path, PathBuf};

mod common;

use age::secrecy::ExposeSecret;
#[cfg(unix)]
use common::mode;
use common::{dumpcrypt, fails, fingerprint, nothing_left, s, succeeds, text};
use dumpcrypt_seal::{seal, Randomness, Recipient, RANDOMNESS_LEN, SEALED_LEN};

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes
}

/// A fresh XTS key, halves distinct.
fn fresh_key() -> [u8; 64] {
    let key = random::<64>();
    assert_ne!(key[..32], key[32..]);
    key
}

/// A fresh identity and the file `age-keygen -o` would write for it.
fn identity_file(dir: &Path, name: &str) -> (age::x25519::Identity, PathBuf) {
    let identity = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "# created: 2026-12-01T23:49:40Z\n# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    (identity, path)
}

/// `key` sealed to `identity`'s recipient, as the driver seals it.
fn sealed_to(identity: &age::x25519::Identity, key: &[u8; 64]) -> Vec<u8> {
    let recipient = Recipient::parse(identity.to_public().to_string().as_bytes()).unwrap();
    let mut out = [0u8; SEALED_LEN];
    seal(
        &recipient,
        &Randomness::from_bytes(&random::<RANDOMNESS_LEN>()),
        key,
        &mut out,
    )
    .unwrap();
    out.to_vec()
}

/// A `reg export` of the Parameters key holding the ring, as regedit writes it: UTF-16LE
/// with a BOM, CRLF, binary values as `hex:` wrapped with `\` and a two-space indent. The
/// Parameters key's own values come first.
fn reg_export(path: &Path, values: &[(&str, Vec<u8>)]) {
    let mut text = String::from(
        "Windows Registry Editor Version 5.00\r\n\r\n\
         [HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\dumpcrypt\\Parameters]\r\n\
         \"CrashDumpPolicy\"=dword:00000001\r\n\"KeySource\"=dword:00000002\r\n\r\n\
         [HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\dumpcrypt\\Parameters\\SealedKeys]\r\n",
    );
    for (name, blob) in values {
        let bytes: Vec<String> = blob.iter().map(|b| format!("{b:02x}")).collect();
        let mut lines = Vec::new();
        let mut first = format!("\"{name}\"=hex:");
        let first_count = (77 - first.len()) / 3;
        first.push_str(&bytes[..first_count.min(bytes.len())].join(","));
        lines.push(first);
        for chunk in bytes[first_count.min(bytes.len())..].chunks(25) {
            lines.push(format!("  {}", chunk.join(",")));
        }
        text.push_str(&lines.join(",\\\r\n"));
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

const OLDER: &str = "20261130T081500.0000000Z";
const NEWER: &str = "20261201T234940.1234567Z";
const NEWEST: &str = "20261202T070000.5000000Z";

#[test]
fn unseal_lists_the_ring_and_writes_the_keys_that_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mine, identity) = identity_file(dir.path(), "identity.txt");
    let (theirs, _) = identity_file(dir.path(), "other.txt");
    let (older, newer, foreign) = (fresh_key(), fresh_key(), fresh_key());
    let reg = dir.path().join("sealed.reg");
    reg_export(
        &reg,
        &[
            (OLDER, sealed_to(&mine, &older)),
            (NEWEST, sealed_to(&theirs, &foreign)),
            (NEWER, sealed_to(&mine, &newer)),
        ],
    );
    let key = dir.path().join("newest.key");
    let out = succeeds(&[
        "unseal",
        "--identity",
        s(&identity),
        "--sealed-keys",
        s(&reg),
        "--out",
        s(&key),
    ]);
    // Newest first, each by stamp, readable time and fingerprint (never the key).
    let listed = [
        format!("{NEWEST}  2026-12-02 07:00:00.5000000 UTC  not sealed to this identity"),
        format!(
            "{NEWER}  2026-12-01 23:49:40.1234567 UTC  key fingerprint {}",
            fingerprint(&newer)
        ),
        format!(
            "{OLDER}  2026-11-30 08:15:00.0000000 UTC  key fingerprint {}",
            fingerprint(&older)
        ),
    ];
    let positions: Vec<usize> = listed
        .iter()
        .map(|line| {
            out.find(line.as_str())
                .unwrap_or_else(|| panic!("{line} in {out}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert!(out.contains("2 of 3 opened"), "{out}");
    // The newest key that opens, as a 64-byte owner-only key file.
    assert_eq!(std::fs::read(&key).unwrap(), newer);
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);
    assert!(out.contains(&format!("the key of {NEWER}")), "{out}");

    // An existing key file is not replaced without --force.
    let again = [
        "unseal",
        "--identity",
        s(&identity),
        "--sealed-keys",
        s(&reg),
        "--out",
        s(&key),
        "--stamp",
        OLDER,
    ];
    fails(&again, "already exists");
    assert_eq!(std::fs::read(&key).unwrap(), newer);
    let mut forced = again.to_vec();
    forced.push("--force");
    succeeds(&forced);
    assert_eq!(std::fs::read(&key).unwrap(), older);

    // A stamp that did not open, or that is not there, writes nothing.
    let other = dir.path().join("other.key");
    let args = |stamp: &'static str| {
        vec![
            "unseal".to_string(),
            "--identity".into(),
            s(&identity).into(),
            "--sealed-keys".into(),
            s(&reg).into(),
            "--out".into(),
            s(&other).into(),
            "--stamp".into(),
            stamp.into(),
        ]
    };
    let run = |stamp: &'static str, reason: &str| {
        let owned = args(stamp);
        let argv: Vec<&str> = owned.iter().map(String::as_str).collect();
        fails(&argv, reason);
        nothing_left(&other);
    };
    run(NEWEST, "did not open");
    run(
        "20200101T000000.0000000Z",
        "holds no sealed key of that load",
    );
    run("2020-01-01", "not a load time stamp");

    // Every key that opens, each in DIR/<stamp>.key.
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    succeeds(&[
        "unseal",
        "--identity",
        s(&identity),
        "--sealed-keys",
        s(&reg),
        "--out-dir",
        s(&keys),
    ]);
    let mut names: Vec<String> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [format!("{OLDER}.key"), format!("{NEWER}.key")]);
    assert_eq!(
        std::fs::read(keys.join(format!("{OLDER}.key"))).unwrap(),
        older
    );
    assert_eq!(
        std::fs::read(keys.join(format!("{NEWER}.key"))).unwrap(),
        newer
    );
    // Again: refused as a whole before anything is written.
    fails(
        &[
            "unseal",
            "--identity",
            s(&identity),
            "--sealed-keys",
            s(&reg),
            "--out-dir",
            s(&keys),
        ],
        "already exists",
    );
}

#[test]
fn unseal_fails_when_no_key_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (_, identity) = identity_file(dir.path(), "identity.txt");
    let (theirs, _) = identity_file(dir.path(), "other.txt");
    let reg = dir.path().join("sealed.reg");
    reg_export(
        &reg,
        &[
            (OLDER, sealed_to(&theirs, &fresh_key())),
            (NEWER, sealed_to(&theirs, &fresh_key())),
        ],
    );
    let key = dir.path().join("k.key");
    let out = fails(
        &[
            "unseal",
            "--identity",
            s(&identity),
            "--sealed-keys",
            s(&reg),
            "--out",
            s(&key),
        ],
        "none of the 2 sealed keys",
    );
    assert!(out.contains(&format!(
        "{NEWER}  2026-12-01 23:49:40.1234567 UTC  not sealed"
    )));
    nothing_left(&key);
    // A recipient given for the identity is named as such; a damaged blob is listed.
    let recipient = dir.path().join("recipient.txt");
    std::fs::write(&recipient, format!("{}\n", theirs.to_public())).unwrap();
    fails(
        &[
            "unseal",
            "--identity",
            s(&recipient),
            "--sealed-keys",
            s(&reg),
        ],
        "looks like a recipients file",
    );
    let mut damaged = sealed_to(&theirs, &fresh_key());
    damaged[100] ^= 1;
    reg_export(&reg, &[(OLDER, damaged)]);
    let their_identity = dir.path().join("their-identity.txt");
    std::fs::write(
        &their_identity,
        format!("{}\n", theirs.to_string().expose_secret()),
    )
    .unwrap();
    let out = fails(
        &[
            "unseal",
            "--identity",
            s(&their_identity),
            "--sealed-keys",
            s(&reg),
        ],
        "none of the 1 sealed keys",
    );
    assert!(out.contains("damaged"), "{out}");
}

/// `dumpcrypt simulate` of a crash dump under `key`: the encrypted image and its unfiltered
/// reference.
fn simulate(dir: &Path, key: &[u8; 64]) -> (PathBuf, PathBuf) {
    simulate_stack(dir, key, "crash")
}

fn simulate_stack(dir: &Path, key: &[u8; 64], dump_type: &str) -> (PathBuf, PathBuf) {
    let key_file = dir.join("simulated.key");
    std::fs::write(&key_file, key).unwrap();
    let image = dir.join("image.raw");
    let reference = dir.join("reference.raw");
    let out = succeeds(&[
        "simulate",
        "--key",
        s(&key_file),
        "--image",
        s(&image),
        "--reference",
        s(&reference),
        "--memory",
        "4MiB",
        "--dump-type",
        dump_type,
    ]);
    assert!(out.contains("verdict      PASS"), "{out}");
    std::fs::remove_file(&key_file).unwrap();
    (image, reference)
}

/// Every 512-byte sector that was written (non-zero in the reference) equals the reference.
#[track_caller]
fn written_sectors_match(decrypted: &[u8], reference: &[u8]) {
    assert_eq!(decrypted.len(), reference.len());
    let mut written = 0;
    for at in (0..reference.len()).step_by(512) {
        let plain = &reference[at..at + 512];
        if plain.iter().any(|&b| b != 0) {
            assert_eq!(&decrypted[at..at + 512], plain, "sector at {at:#x}");
            written += 1;
        }
    }
    assert!(written > 2000, "only {written} written sectors compared");
}

#[test]
fn decrypt_finds_the_older_sealed_key_when_only_it_fits() {
    let dir = tempfile::tempdir().unwrap();
    let (mine, identity) = identity_file(dir.path(), "identity.txt");
    let (used, later) = (fresh_key(), fresh_key());
    let (image, reference) = simulate(dir.path(), &used);
    let reg = dir.path().join("sealed.reg");
    // The newer key opens too, but the image was written under the older one.
    reg_export(
        &reg,
        &[
            (NEWER, sealed_to(&mine, &later)),
            (OLDER, sealed_to(&mine, &used)),
        ],
    );
    let decrypted = dir.path().join("decrypted.raw");
    let out = succeeds(&[
        "decrypt",
        "--identity",
        s(&identity),
        "--sealed-keys",
        s(&reg),
        "--in",
        s(&image),
        "--out",
        s(&decrypted),
        "--partition-offset",
        "1MiB",
    ]);
    assert!(
        out.contains(&format!(
            "sealed key       {OLDER} (2026-11-30 08:15:00.0000000 UTC), fingerprint {}: a crash \
             dump header (PAGEDU64) decrypts at image offset",
            fingerprint(&used)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "key              fingerprint {}",
            fingerprint(&used)
        )),
        "{out}"
    );
    let reference = std::fs::read(&reference).unwrap();
    written_sectors_match(&std::fs::read(&decrypted).unwrap(), &reference);

    // To standard output: the same bytes, and what is for people on standard error.
    let piped = dumpcrypt(&[
        "decrypt",
        "--identity",
        s(&identity),
        "--sealed-keys",
        s(&reg),
        "--in",
        s(&image),
        "--out",
        "-",
        "--partition-offset",
        "1MiB",
    ]);
    assert!(piped.status.success(), "{}", text(&piped));
    assert!(piped.stdout == std::fs::read(&decrypted).unwrap());
    assert!(String::from_utf8_lossy(&piped.stderr).contains(OLDER));
}

#[test]
fn decrypt_finds_the_key_of_a_hibernation_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mine, identity) = identity_file(dir.path(), "identity.txt");
    let (used, later) = (fresh_key(), fresh_key());
    let (image, reference) = simulate_stack(dir.path(), &used, "hibernate");
    let reg = dir.path().join("sealed.reg");
    reg_export(
        &reg,
        &[
            (NEWEST, sealed_to(&mine, &later)),
            (NEWER, sealed_to(&mine, &used)),
        ],
    );
    let decrypted = dir.path().join("decrypted.raw");
    let out = succeeds(&[
        "decrypt",
        "--identity",
        s(&identity),
        "--sealed-keys",
        s(&reg),
        "--in",
        s(&image),
        "--out",
        s(&decrypted),
        "--partition-offset",
        "1MiB",
    ]);
    assert!(
        out.contains(&format!(
            "sealed key       {NEWER} (2026-12-01 23:49:40.1234567 UTC), fingerprint {}: a \
             hibernation file header (HIBR) decrypts at image offset",
            fingerprint(&used)
        )),
        "{out}"
    );
    written_sectors_match(
        &std::fs::read(&decrypted).unwrap(),
        &std::fs::read(&reference).unwrap(),
    );
}

#[test]
fn decrypt_refuses_when_no_sealed_key_fits() {
    let dir = tempfile::tempdir().unwrap();
    let (mine, identity) = identity_file(dir.path(), "identity.txt");
    let (image, _) = simulate(dir.path(), &fresh_key());
    let reg = dir.path().join("sealed.reg");
    reg_export(
        &reg,
        &[
            (OLDER, sealed_to(&mine, &fresh_key())),
            (NEWER, sealed_to(&mine, &fresh_key())),
        ],
    );
    let decrypted = dir.path().join("decrypted.raw");
    fails(
        &[
            "decrypt",
            "--identity",
            s(&identity),
            "--sealed-keys",
            s(&reg),
            "--in",
            s(&image),
            "--out",
            s(&decrypted),
            "--partition-offset",
            "1MiB",
        ],
        "no crash dump or hibernation header decrypts under any of the 2 sealed keys",
    );
    nothing_left(&decrypted);
    // A stream cannot be read twice: refused with a sentence.
    let piped = std::process::Command::new(env!("CARGO_BIN_EXE_dumpcrypt"))
        .args([
            "decrypt",
            "--identity",
            s(&identity),
            "--sealed-keys",
            s(&reg),
            "--in",
            "-",
            "--out",
            s(&decrypted),
        ])
        .stdin(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!piped.status.success());
    assert!(text(&piped).contains("reads it twice"), "{}", text(&piped));
    nothing_left(&decrypted);
}

#[test]
fn key_and_identity_are_exclusive_and_identity_needs_the_sealed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.raw");
    fails(
        &[
            "decrypt",
            "--key",
            "k",
            "--identity",
            "i",
            "--sealed-keys",
            "r",
            "--in",
            "x",
            "--out",
            s(&out),
        ],
        "cannot be used with",
    );
    fails(
        &["decrypt", "--identity", "i", "--in", "x", "--out", s(&out)],
        "--sealed-keys",
    );
    fails(
        &[
            "decrypt",
            "--sealed-keys",
            "r",
            "--in",
            "x",
            "--out",
            s(&out),
        ],
        "--identity",
    );
    fails(&["decrypt", "--in", "x", "--out", s(&out)], "--key");
    nothing_left(&out);
}

/// Issue 12's chain without Windows: `simulate --key-source sealed` seals the driver's fresh
/// key into the simulated SealedKeys ring and exports it as a `.reg` file; the reference
/// `age` binary (when installed: CI installs it) and the `age` crate open the blob in it to
/// the same 64 bytes; and `decrypt --identity --sealed-keys`, with no other input about the
/// key, recovers an image whose written sectors are the reference's.
#[test]
fn a_sealed_simulation_is_recovered_with_the_identity_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, identity_path) = identity_file(dir.path(), "admin.age");
    let recipient = identity.to_public().to_string();
    let (image, reference, reg) = (
        dir.path().join("image.raw"),
        dir.path().join("reference.raw"),
        dir.path().join("s.reg"),
    );
    let out = succeeds(&[
        "simulate",
        "--dump-type",
        "crash",
        "--memory",
        "4MiB",
        "--partition-offset",
        "0",
        "--key-source",
        "sealed",
        "--recipient",
        &recipient,
        "--sealed-keys-out",
        s(&reg),
        "--image",
        s(&image),
        "--reference",
        s(&reference),
    ]);
    assert!(out.contains("verdict      PASS"), "{out}");
    assert!(out.contains("hibernation refuse"), "{out}");

    // The export holds one value, named by its load time, whose data is an age file.
    let text = std::fs::read(&reg).unwrap();
    assert_eq!(
        &text[..2],
        &[0xFF, 0xFE],
        "UTF-16LE with a BOM, as regedit writes"
    );
    let units: Vec<u16> = text[2..]
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    let text = String::from_utf16(&units).unwrap();
    assert!(
        text.starts_with("Windows Registry Editor Version 5.00\r\n"),
        "{text}"
    );
    let (name, data) = text
        .split("[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\dumpcrypt\\Parameters\\SealedKeys]\r\n")
        .nth(1)
        .and_then(|values| values.split_once("\"=hex:"))
        .expect("one hex: value in SealedKeys");
    let name = name.trim_start_matches('"');
    assert_eq!(name.len(), 24, "{name}");
    assert!(name.ends_with('Z') && name.as_bytes()[8] == b'T', "{name}");
    let blob: Vec<u8> = data
        .replace("\\\r\n  ", "")
        .trim_end()
        .split(',')
        .map(|byte| u8::from_str_radix(byte.trim(), 16).unwrap())
        .collect();
    assert_eq!(blob.len(), SEALED_LEN);
    assert!(blob.starts_with(b"age-encryption.org/v1\n"));

    // Opened by the age crate...
    let decryptor = age::Decryptor::new(&blob[..]).unwrap();
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .unwrap();
    let mut key = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut key).unwrap();
    assert_eq!(key.len(), 64);
    assert_ne!(key[..32], key[32..]);
    // ...and by the reference binary, to the same bytes.
    match std::process::Command::new("age")
        .args(["-d", "-i", s(&identity_path)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&blob).unwrap();
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success());
            assert_eq!(
                output.stdout, key,
                "age -d gives the key the age crate gives"
            );
        }
        Err(_) => assert!(
            std::env::var_os("CI").is_none(),
            "the reference `age` binary is missing (crates/seal/scripts/install-age.sh)"
        ),
    }

    // decrypt finds it with the identity alone, and says which it took.
    let decrypted = dir.path().join("decrypted.raw");
    let out = succeeds(&[
        "decrypt",
        "--identity",
        s(&identity_path),
        "--sealed-keys",
        s(&reg),
        "--in",
        s(&image),
        "--out",
        s(&decrypted),
    ]);
    assert!(
        out.contains(&format!("sealed key       {name}")) && out.contains(&fingerprint(&key)),
        "{out}"
    );
    written_sectors_match(
        &std::fs::read(&decrypted).unwrap(),
        &std::fs::read(&reference).unwrap(),
    );
}
