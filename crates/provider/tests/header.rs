//! The C header and the Rust crate describe one layout: every offset and size the header
//! asserts is the one Rust computes, every field of the Rust structures is asserted in the
//! header, and the constants agree.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};

use dumpcrypt_provider::*;

const HEADER: &str = include_str!("../../../include/dumpcrypt_provider.h");

/// `(C type, C field) -> offset` and `C type -> size`, from the header's `_Static_assert`s.
fn asserted() -> (BTreeMap<(String, String), usize>, BTreeMap<String, usize>) {
    let mut offsets = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    let number = |text: &str| -> usize {
        let text = text.trim();
        match text {
            "DUMPCRYPT_QUERY_SIZE_V1" => QUERY_SIZE_V1 as usize,
            "DUMPCRYPT_ANSWER_SIZE_V1" => ANSWER_SIZE_V1 as usize,
            _ => usize::from_str_radix(text.trim_start_matches("0x"), 16).expect(text),
        }
    };
    for line in HEADER.lines() {
        let Some(rest) = line.strip_prefix("_Static_assert(") else {
            continue;
        };
        let condition = rest.split(',').take(2).collect::<Vec<_>>().join(",");
        let condition = condition.split(" == ").collect::<Vec<_>>();
        let (left, right) = (condition[0], condition[1].split(',').next().unwrap());
        if let Some(inner) = left.strip_prefix("FIELD_OFFSET(") {
            let inner = inner.trim_end_matches(')');
            let (ty, field) = inner.split_once(", ").unwrap();
            offsets.insert((ty.to_string(), field.to_string()), number(right));
        } else if let Some(ty) = left.strip_prefix("sizeof(") {
            sizes.insert(ty.trim_end_matches(')').to_string(), number(right));
        }
    }
    (offsets, sizes)
}

#[test]
fn the_header_asserts_the_rust_layout() {
    let (offsets, sizes) = asserted();
    let rust_sizes = [
        ("DUMPCRYPT_DISK_IDENTITY", size_of::<DiskIdentity>()),
        ("DUMPCRYPT_QUERY", size_of::<Query>()),
        ("DUMPCRYPT_RANGE", size_of::<Range>()),
        ("DUMPCRYPT_LIVE_STATE", size_of::<LiveState>()),
        ("DUMPCRYPT_ANSWER", size_of::<Answer>()),
    ];
    assert_eq!(sizes.len(), rust_sizes.len(), "{sizes:?}");
    for (ty, size) in rust_sizes {
        assert_eq!(sizes.get(ty), Some(&size), "sizeof({ty})");
    }
    // Every field after the first (offset 0 needs no assertion).
    let rust_offsets = [
        (
            "DUMPCRYPT_DISK_IDENTITY",
            "MbrSignature",
            offset_of!(DiskIdentity, mbr_signature),
        ),
        (
            "DUMPCRYPT_DISK_IDENTITY",
            "GptDiskId",
            offset_of!(DiskIdentity, gpt_disk_id),
        ),
        (
            "DUMPCRYPT_QUERY",
            "MajorVersion",
            offset_of!(Query, major_version),
        ),
        (
            "DUMPCRYPT_QUERY",
            "MinorVersion",
            offset_of!(Query, minor_version),
        ),
        ("DUMPCRYPT_QUERY", "Size", offset_of!(Query, size)),
        ("DUMPCRYPT_QUERY", "DumpType", offset_of!(Query, dump_type)),
        ("DUMPCRYPT_QUERY", "Disk", offset_of!(Query, disk)),
        (
            "DUMPCRYPT_QUERY",
            "PartitionStart",
            offset_of!(Query, partition_start),
        ),
        (
            "DUMPCRYPT_QUERY",
            "AnswerSize",
            offset_of!(Query, answer_size),
        ),
        ("DUMPCRYPT_QUERY", "Reserved", offset_of!(Query, reserved)),
        ("DUMPCRYPT_RANGE", "End", offset_of!(Range, end)),
        ("DUMPCRYPT_RANGE", "Key", offset_of!(Range, key)),
        (
            "DUMPCRYPT_LIVE_STATE",
            "Flags",
            offset_of!(LiveState, flags),
        ),
        (
            "DUMPCRYPT_LIVE_STATE",
            "EncryptedEnd",
            offset_of!(LiveState, encrypted_end),
        ),
        (
            "DUMPCRYPT_ANSWER",
            "MajorVersion",
            offset_of!(Answer, major_version),
        ),
        (
            "DUMPCRYPT_ANSWER",
            "MinorVersion",
            offset_of!(Answer, minor_version),
        ),
        ("DUMPCRYPT_ANSWER", "Size", offset_of!(Answer, size)),
        ("DUMPCRYPT_ANSWER", "Flags", offset_of!(Answer, flags)),
        ("DUMPCRYPT_ANSWER", "Volume", offset_of!(Answer, volume)),
        (
            "DUMPCRYPT_ANSWER",
            "PartitionStart",
            offset_of!(Answer, partition_start),
        ),
        (
            "DUMPCRYPT_ANSWER",
            "PartitionLength",
            offset_of!(Answer, partition_length),
        ),
        (
            "DUMPCRYPT_ANSWER",
            "DataUnitSize",
            offset_of!(Answer, data_unit),
        ),
        (
            "DUMPCRYPT_ANSWER",
            "TweakBase",
            offset_of!(Answer, tweak_base),
        ),
        (
            "DUMPCRYPT_ANSWER",
            "RangeCount",
            offset_of!(Answer, range_count),
        ),
        ("DUMPCRYPT_ANSWER", "Reserved", offset_of!(Answer, reserved)),
        ("DUMPCRYPT_ANSWER", "Ranges", offset_of!(Answer, ranges)),
        (
            "DUMPCRYPT_ANSWER",
            "LiveState",
            offset_of!(Answer, live_state),
        ),
    ];
    assert_eq!(offsets.len(), rust_offsets.len(), "{offsets:?}");
    for (ty, field, offset) in rust_offsets {
        assert_eq!(
            offsets.get(&(ty.to_string(), field.to_string())),
            Some(&offset),
            "{ty}.{field}"
        );
    }
}

#[test]
fn the_constants_agree() {
    let define = |name: &str| -> String {
        HEADER
            .lines()
            .find_map(|line| line.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("#define {name}"))
            .split("/*")
            .next()
            .unwrap()
            .trim()
            .to_string()
    };
    let value = |name: &str| -> u64 {
        let text = define(name);
        let text = text.trim_end_matches("UL");
        match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
            None => text.parse().unwrap(),
        }
    };
    assert_eq!(value("DUMPCRYPT_MAGIC"), u64::from(MAGIC));
    assert_eq!(&MAGIC.to_le_bytes(), b"DCPV");
    assert_eq!(value("DUMPCRYPT_MAJOR_VERSION"), u64::from(MAJOR_VERSION));
    assert_eq!(value("DUMPCRYPT_MINOR_VERSION"), u64::from(MINOR_VERSION));
    assert_eq!(value("DUMPCRYPT_MAX_RANGES"), MAX_RANGES as u64);
    assert_eq!(value("DUMPCRYPT_KEY_LENGTH"), KEY_LEN as u64);
    assert_eq!(value("DUMPCRYPT_STYLE_MBR"), u64::from(STYLE_MBR));
    assert_eq!(value("DUMPCRYPT_STYLE_GPT"), u64::from(STYLE_GPT));
    assert_eq!(
        value("DUMPCRYPT_ALLOW_CRASH_DUMP"),
        u64::from(ALLOW_CRASH_DUMP)
    );
    assert_eq!(
        value("DUMPCRYPT_ALLOW_HIBERNATION"),
        u64::from(ALLOW_HIBERNATION)
    );
    assert_eq!(value("DUMPCRYPT_LIVE_ACTIVE"), u64::from(LIVE_ACTIVE));
    assert_eq!(value("DUMPCRYPT_QUERY_SIZE_V1"), u64::from(QUERY_SIZE_V1));
    assert_eq!(value("DUMPCRYPT_ANSWER_SIZE_V1"), u64::from(ANSWER_SIZE_V1));
    assert_eq!(
        define("DUMPCRYPT_CALLBACK_NAME"),
        format!("L\"{}\"", CALLBACK_NAME.replace('\\', "\\\\"))
    );
}

#[test]
fn a_query_is_made_as_documented_and_an_answer_wipes() {
    let disk = DiskIdentity {
        style: STYLE_GPT,
        mbr_signature: 0,
        gpt_disk_id: [7; 16],
    };
    let query = Query::new(2, disk, 0x10_0000);
    assert_eq!(
        (
            query.magic,
            query.major_version,
            query.minor_version,
            query.size
        ),
        (MAGIC, 1, 0, 0x38)
    );
    assert_eq!(
        (query.dump_type, query.disk, query.partition_start),
        (2, disk, 0x10_0000)
    );
    assert_eq!((query.answer_size, query.reserved), (0x190, 0));

    let mut answer = Answer::EMPTY;
    answer.magic = MAGIC;
    answer.ranges[3].key = [0xAB; KEY_LEN];
    answer.ranges[0].end = 4096;
    assert!(
        !format!("{:?}", answer.ranges[3]).contains("171"),
        "no key in Debug"
    );
    answer.wipe();
    assert_eq!(answer, Answer::EMPTY);
}
