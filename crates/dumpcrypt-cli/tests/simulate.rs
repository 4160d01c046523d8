//! `dumpcrypt simulate` as a user runs it: the image it writes decrypts, with standard
//! XTS-AES-256, to the reference inside the area and equals it outside; bad options give a
//! clear message and a non-zero exit.

use std::path::Path;

mod common;

use aes::cipher::KeyInit;
use common::{dumpcrypt, text};

fn write_key(dir: &Path) -> (std::path::PathBuf, [u8; 64]) {
    let key: [u8; 64] = std::array::from_fn(|i| (i as u8).wrapping_mul(73) ^ 0x3c);
    let path = dir.join("key.bin");
    std::fs::write(&path, key).unwrap();
    (path, key)
}

#[test]
fn the_image_decrypts_to_the_reference_with_standard_xts() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, key) = write_key(dir.path());
    let image = dir.path().join("image.raw");
    let reference = dir.path().join("reference.raw");
    let area_start = 0x20_0000u64;
    let area_end = 0x60_0000u64;
    let output = dumpcrypt(&[
        "simulate",
        "--memory",
        "6MiB",
        "--key",
        key_path.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--reference",
        reference.to_str().unwrap(),
        "--area",
        &format!("{area_start:#x}..{area_end:#x}"),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("verdict      PASS"),
        "{}",
        text(&output)
    );

    let mut image = std::fs::read(image).unwrap();
    let reference = std::fs::read(reference).unwrap();
    assert_eq!(image.len(), reference.len());
    let partition = 0x10_0000usize;
    let (start, end) = (
        partition + area_start as usize,
        partition + area_end as usize,
    );
    // Outside the area the two images are the same, byte for byte.
    assert_eq!(image[..start], reference[..start]);
    assert_eq!(image[end..], reference[end..]);
    // Inside, the written parts are ciphertext; standard XTS-AES-256 with data unit 512 and
    // little-endian, partition-relative data unit numbers turns them back into the reference.
    let written: Vec<bool> = reference[start..end]
        .chunks(512)
        .map(|s| s.iter().any(|&b| b != 0))
        .collect();
    assert!(
        written.iter().filter(|&&w| w).count() > 1000,
        "the area holds dump data"
    );
    let xts = xts_mode::Xts128::<aes::Aes256>::new(
        aes::Aes256::new_from_slice(&key[..32]).unwrap(),
        aes::Aes256::new_from_slice(&key[32..]).unwrap(),
    );
    assert_ne!(image[start..end], reference[start..end]);
    xts.decrypt_area(
        &mut image[start..end],
        512,
        u128::from(area_start / 512),
        |n: u128| n.to_le_bytes(),
    );
    for (index, (sector, plain)) in image[start..end]
        .chunks(512)
        .zip(reference[start..end].chunks(512))
        .enumerate()
    {
        // Sectors never written hold zeros in the reference and the image alike, and so
        // decrypt to noise; every written one must decrypt to the reference.
        if written[index] {
            assert_eq!(sector, plain, "sector {index} of the area");
        }
    }
}

#[test]
fn every_policy_and_windows_7_pass() {
    for args in [
        &["--policy", "passthrough"][..],
        &["--policy", "refuse"],
        &["--os", "windows7"],
        &[
            "--data-unit",
            "4096",
            "--tweak-base",
            "disk",
            "--max-pages-per-write",
            "32",
        ],
        &["--dump-type", "hibernate", "--max-pages-per-write", "1"],
    ] {
        let mut all = vec!["simulate", "--memory", "3MiB"];
        all.extend_from_slice(args);
        let output = dumpcrypt(&all);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains("verdict      PASS"),
            "{args:?}: {}",
            text(&output)
        );
    }
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let short_key = dir.path().join("short.bin");
    std::fs::write(&short_key, [1u8; 32]).unwrap();
    let equal_halves = dir.path().join("equal.bin");
    std::fs::write(&equal_halves, [5u8; 64]).unwrap();
    let missing = dir.path().join("missing.bin");
    for (args, reason) in [
        (
            vec!["--key", short_key.to_str().unwrap()],
            "exactly 64 bytes",
        ),
        (
            vec!["--key", equal_halves.to_str().unwrap()],
            "halves of the key are equal",
        ),
        (vec!["--key", missing.to_str().unwrap()], "missing.bin"),
        (vec!["--area", "0x300..0x10000"], "data unit"),
        (vec!["--area", "5..1"], "empty"),
        (vec!["--data-unit", "1000"], "512 or 4096"),
        (
            vec!["--seed", "2", "--partition-offset", "lots"],
            "not a size",
        ),
        (vec!["--max-pages-per-write", "0"], "at least 1"),
    ] {
        let mut all = vec!["simulate", "--memory", "1MiB"];
        all.extend(args.iter().copied());
        let output = dumpcrypt(&all);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(
            text(&output).contains(reason),
            "{args:?}: {}",
            text(&output)
        );
    }
}

/// One line of a keys file: START END KEY.
type KeyedRange = (u64, u64, [u8; 64]);

/// The keys file of `simulate --key-source provider --provider-keys-out`: the ranges
/// (`START END KEYHEX`) and the geometry line (data unit, tweak base, partition offset).
fn read_provider_keys(path: &Path) -> (Vec<KeyedRange>, u64, &'static str, u64) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut ranges = Vec::new();
    let mut geometry = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["data_unit", unit, "tweak_base", base, "partition_offset", offset] => {
                let base = match *base {
                    "partition" => "partition",
                    "disk" => "disk",
                    other => panic!("tweak_base {other}"),
                };
                geometry = Some((unit.parse().unwrap(), base, offset.parse().unwrap()));
            }
            [start, end, key] => {
                let key: Vec<u8> = (0..key.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&key[i..i + 2], 16).unwrap())
                    .collect();
                ranges.push((
                    start.parse().unwrap(),
                    end.parse().unwrap(),
                    key.try_into().unwrap(),
                ));
            }
            _ => panic!("unexpected line {line:?}"),
        }
    }
    let (unit, base, offset) = geometry.expect("the geometry line");
    (ranges, unit, base, offset)
}

/// `simulate --key-source provider`: the image decrypts range by range, each with its own
/// key from the keys file, with an independent XTS; outside the ranges it is the reference.
#[test]
fn a_providers_ranges_decrypt_each_with_its_own_key() {
    for tweak_base in ["partition", "disk"] {
        let dir = tempfile::tempdir().unwrap();
        let (image, reference, keys) = (
            dir.path().join("image.raw"),
            dir.path().join("reference.raw"),
            dir.path().join("provider.keys"),
        );
        let output = dumpcrypt(&[
            "simulate",
            "--memory",
            "6MiB",
            "--key-source",
            "provider",
            "--tweak-base",
            tweak_base,
            "--provider-keys-out",
            keys.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "--reference",
            reference.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", text(&output));
        assert!(
            text(&output).contains("verdict      PASS"),
            "{}",
            text(&output)
        );
        let (ranges, unit, base, partition) = read_provider_keys(&keys);
        assert_eq!(
            (ranges.len(), unit, base, partition),
            (2, 512, tweak_base, 0x10_0000)
        );
        assert_ne!(ranges[0].2, ranges[1].2, "two keys");
        let image = std::fs::read(image).unwrap();
        let reference = std::fs::read(reference).unwrap();
        // Tweak positions to image offsets.
        let shift = if base == "disk" { 0 } else { partition };
        let mut covered = vec![false; image.len()];
        for (start, end, key) in &ranges {
            let oracle = xts_mode::Xts128::<aes::Aes256>::new(
                aes::Aes256::new_from_slice(&key[..32]).unwrap(),
                aes::Aes256::new_from_slice(&key[32..]).unwrap(),
            );
            let mut decrypted_units = 0;
            let (low, high) = (
                (start + shift) as usize,
                ((end + shift) as usize).min(image.len()),
            );
            for offset in (low..high).step_by(unit as usize) {
                let (mine, theirs) = (
                    &image[offset..offset + 512],
                    &reference[offset..offset + 512],
                );
                covered[offset..offset + 512]
                    .iter_mut()
                    .for_each(|c| *c = true);
                if mine == theirs && theirs.iter().all(|&b| b == 0) {
                    continue; // never written: no dump file there
                }
                let mut unit_bytes = mine.to_vec();
                let number = u128::from((offset as u64 - shift) / 512);
                oracle.decrypt_sector(&mut unit_bytes, number.to_le_bytes());
                assert_eq!(
                    unit_bytes, theirs,
                    "{tweak_base}: range {start:#x}.. at {offset:#x}"
                );
                decrypted_units += 1;
            }
            assert!(
                decrypted_units > 0,
                "{tweak_base}: range {start:#x}.. holds dump data"
            );
        }
        let plaintext_rest = (0..image.len())
            .filter(|&i| !covered[i])
            .filter(|&i| image[i] != reference[i])
            .count();
        assert_eq!(
            plaintext_rest, 0,
            "{tweak_base}: outside the ranges, the reference"
        );
        assert!(
            (0..image.len()).any(|i| !covered[i] && reference[i] != 0),
            "{tweak_base}: some dump data lies in the plaintext rest"
        );
    }
}

#[test]
fn provider_options_are_checked() {
    let output = dumpcrypt(&["simulate", "--provider-keys-out", "/tmp/x.keys"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("--provider-keys-out needs --key-source provider"),
        "{}",
        text(&output)
    );
}
