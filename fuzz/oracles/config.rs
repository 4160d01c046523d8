//! Fuzz target: arbitrary registry values into `Config::parse`.
//!
//! Types, lengths and contents are arbitrary (biased towards the schema's types and to values
//! near the valid ones). Parsing must never panic; every configuration it accepts must be
//! valid by the schema in docs/design.md and hold exactly the values given; and it must accept exactly what
//! an independent reading of the schema (below) accepts.
//!
//! Shared by the cargo-fuzz target (`fuzz/fuzz_targets/config.rs`) and `cargo test`
//! (`tests/fuzz_seeds.rs`, which replays the committed seeds in `fuzz/seeds/config`): both
//! call [`run`] with the raw input bytes.

use arbitrary::{Arbitrary, Unstructured};
use dumpcrypt_core::config::{
    backend_as_dword, Config, KeySource, Policy, RawValue, RegistryValues, ValueName,
    MAX_VALUE_LEN, REG_BINARY, REG_DWORD, REG_QWORD, REG_SZ,
};
use dumpcrypt_core::geometry::{Area, TweakBase};
use dumpcrypt_provider::DiskIdentity;
use dumpcrypt_seal::Recipient;
use dumpcrypt_xts::{DataUnit, KEY_LEN};

#[derive(Debug, Arbitrary)]
enum ValueType {
    Binary,
    Dword,
    Qword,
    /// REG_SZ: UTF-16LE text.
    String,
    /// REG_MULTI_SZ, REG_EXPAND_SZ and the like, or nonsense.
    Other(u32),
}

#[derive(Debug, Arbitrary)]
enum Content {
    /// A DWORD near the valid ones.
    SmallDword(u8),
    DataUnit(bool, i8),
    Dword(u32),
    /// A QWORD that is a multiple of 512 (sometimes of 4096).
    AlignedQword(u32, bool),
    Qword(u64),
    /// 64 bytes from a pattern: the halves differ unless `equal`.
    Key {
        seed: u8,
        equal: bool,
    },
    Bytes(Vec<u8>),
    /// UTF-16LE text: a recipient near the valid one (`Recipient` below), or any text.
    Text(TextSpec),
}

/// The recipient the seeds use: `age-keygen -y` of a fixed identity (crates/core's tests).
const RECIPIENT: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

#[derive(Debug, Arbitrary)]
enum TextSpec {
    /// [`RECIPIENT`], with a terminating NUL or not.
    Recipient { nul: bool },
    /// [`RECIPIENT`] with one character replaced (a mistyped recipient).
    Mistyped { at: u8, with: u8 },
    /// An age identity, which must never be accepted as a recipient.
    Identity,
    /// [`RECIPIENT`] in upper case.
    Upper,
    /// Any text, with a terminating NUL or not.
    Any { text: String, nul: bool },
}

impl TextSpec {
    fn text(&self) -> (String, bool) {
        match self {
            Self::Recipient { nul } => (RECIPIENT.to_string(), *nul),
            Self::Mistyped { at, with } => {
                let mut bytes = RECIPIENT.as_bytes().to_vec();
                let at = 4 + usize::from(*at) % (bytes.len() - 4);
                bytes[at] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l"[usize::from(*with) % 32];
                (String::from_utf8(bytes).expect("ASCII"), true)
            }
            Self::Identity => (
                "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
                    .to_string(),
                true,
            ),
            Self::Upper => (RECIPIENT.to_ascii_uppercase(), true),
            Self::Any { text, nul } => (text.clone(), *nul),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Value {
    value_type: ValueType,
    content: Content,
    /// The length the registry reports, when it differs from the bytes given (a value
    /// longer than the driver keeps is recorded by length only).
    claimed_len: Option<u16>,
}

/// The values of the schema, in `ValueName::ALL` order.
const VALUES: usize = ValueName::ALL.len();

#[derive(Debug, Arbitrary)]
struct Input {
    key_present: bool,
    values: [Option<Value>; VALUES],
}

/// One value as both the parser and the model see it: type, full length, kept bytes.
struct Raw {
    value_type: u32,
    len: usize,
    bytes: Vec<u8>,
}

fn raw(value: &Value) -> Raw {
    let value_type = match value.value_type {
        ValueType::Binary => REG_BINARY,
        ValueType::Dword => REG_DWORD,
        ValueType::Qword => REG_QWORD,
        ValueType::String => REG_SZ,
        ValueType::Other(other) => other,
    };
    let bytes = match &value.content {
        Content::SmallDword(n) => u32::from(*n % 4).to_le_bytes().to_vec(),
        Content::DataUnit(large, delta) => {
            let base: i64 = if *large { 4096 } else { 512 };
            ((base + i64::from(*delta) % 2) as u32)
                .to_le_bytes()
                .to_vec()
        }
        Content::Dword(n) => n.to_le_bytes().to_vec(),
        Content::AlignedQword(n, page) => {
            let unit = if *page { 4096 } else { 512 };
            (u64::from(*n) * unit).to_le_bytes().to_vec()
        }
        Content::Qword(n) => n.to_le_bytes().to_vec(),
        Content::Key { seed, equal } => {
            let mut key: Vec<u8> = (0..KEY_LEN as u8)
                .map(|i| i.wrapping_mul(37).wrapping_add(*seed))
                .collect();
            if *equal {
                let (data_key, tweak_key) = key.split_at_mut(KEY_LEN / 2);
                tweak_key.copy_from_slice(data_key);
            }
            key
        }
        Content::Bytes(bytes) => bytes.clone(),
        Content::Text(spec) => {
            let (text, nul) = spec.text();
            let mut units: Vec<u16> = text.encode_utf16().collect();
            if nul {
                units.push(0);
            }
            units.iter().flat_map(|unit| unit.to_le_bytes()).collect()
        }
    };
    let len = value.claimed_len.map_or(bytes.len(), usize::from);
    Raw {
        value_type,
        len,
        bytes,
    }
}

/// What the schema says, read independently of `config.rs`: `None` for a refused configuration.
struct Expected {
    crash_dump_policy: Policy,
    hibernation_policy: Policy,
    key: Option<[u8; KEY_LEN]>,
    data_unit: DataUnit,
    area: Area,
    tweak_base: TweakBase,
    key_source: KeySource,
    disk_id: Option<DiskIdentity>,
    backend: u32,
    recipient: Option<Recipient>,
    allow_plaintext_hibernation: bool,
}

/// A `Recipient` value as the schema reads it: UTF-16LE text (an even length), optionally
/// ended by NULs and nothing after them, of ASCII characters that `Recipient::parse` accepts
/// (at most [`MAX_VALUE_LEN`] bytes in all, as every value).
fn recipient_of(bytes: &[u8]) -> Option<Recipient> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    let text_len = units
        .iter()
        .position(|&unit| unit == 0)
        .unwrap_or(units.len());
    if units[text_len..].iter().any(|&unit| unit != 0) {
        return None;
    }
    let text: String = char::decode_utf16(units[..text_len].iter().copied())
        .collect::<Result<_, _>>()
        .ok()?;
    if !text.is_ascii() {
        return None;
    }
    Recipient::parse(text.as_bytes()).ok()
}

fn model(present: bool, raws: &[Option<Raw>; VALUES]) -> Option<Expected> {
    if !present {
        return Some(Expected {
            crash_dump_policy: Policy::Passthrough,
            hibernation_policy: Policy::Passthrough,
            key: None,
            data_unit: DataUnit::Bytes512,
            area: Area::WHOLE_DISK,
            tweak_base: TweakBase::Partition,
            key_source: KeySource::Registry,
            disk_id: None,
            backend: 0,
            recipient: None,
            allow_plaintext_hibernation: false,
        });
    }
    // The bytes the registry holds, if the driver could have kept all of them: the value's
    // first `len` bytes (zeros past what was given, as RawValue keeps them).
    let full = |raw: &Raw| -> Option<Vec<u8>> {
        (raw.len <= MAX_VALUE_LEN).then(|| {
            let mut bytes = raw.bytes.clone();
            bytes.resize(MAX_VALUE_LEN.max(bytes.len()), 0);
            bytes.truncate(raw.len);
            bytes
        })
    };
    let number = |index: usize, value_type: u32, width: usize| -> Result<Option<u64>, ()> {
        match &raws[index] {
            None => Ok(None),
            Some(raw) if raw.value_type != value_type || raw.len != width => Err(()),
            Some(raw) => {
                let bytes = full(raw).ok_or(())?;
                let mut wide = [0u8; 8];
                wide[..width].copy_from_slice(&bytes);
                Ok(Some(u64::from_le_bytes(wide)))
            }
        }
    };
    let dword = |name: ValueName| number(name as usize, REG_DWORD, 4);
    let qword = |name: ValueName| number(name as usize, REG_QWORD, 8);
    let policy = |value: Option<u64>| match value {
        None | Some(0) => Some(Policy::Passthrough),
        Some(1) => Some(Policy::Encrypt),
        Some(2) => Some(Policy::Refuse),
        Some(_) => None,
    };
    let crash_dump_policy = policy(dword(ValueName::CrashDumpPolicy).ok()?)?;
    let hibernation_policy = policy(dword(ValueName::HibernationPolicy).ok()?)?;
    let data_unit = match dword(ValueName::DataUnitSize).ok()? {
        None | Some(512) => DataUnit::Bytes512,
        Some(4096) => DataUnit::Bytes4096,
        Some(_) => return None,
    };
    let tweak_base = match dword(ValueName::TweakBase).ok()? {
        None | Some(0) => TweakBase::Partition,
        Some(1) => TweakBase::Disk,
        Some(_) => return None,
    };
    let start = qword(ValueName::EncryptedAreaStart).ok()?.unwrap_or(0);
    let end = qword(ValueName::EncryptedAreaEnd).ok()?.unwrap_or(u64::MAX);
    let unit = data_unit.bytes() as u64;
    if start >= end || start % unit != 0 || (end != u64::MAX && end % unit != 0) {
        return None;
    }
    let key = match &raws[ValueName::Key as usize] {
        None => None,
        Some(raw) if raw.value_type != REG_BINARY || raw.len != KEY_LEN => return None,
        Some(raw) => {
            let bytes = full(raw)?;
            let key: [u8; KEY_LEN] = bytes.try_into().ok()?;
            if key[..KEY_LEN / 2] == key[KEY_LEN / 2..] {
                return None;
            }
            Some(key)
        }
    };
    let key_source = match dword(ValueName::KeySource).ok()? {
        None | Some(0) => KeySource::Registry,
        Some(1) => KeySource::Provider,
        Some(2) => KeySource::Sealed,
        Some(_) => return None,
    };
    let disk_id = match &raws[ValueName::DiskId as usize] {
        None => None,
        Some(raw) if raw.value_type != REG_BINARY => return None,
        Some(raw) => {
            let bytes = full(raw)?;
            Some(match bytes.len() {
                4 => DiskIdentity {
                    style: 0,
                    mbr_signature: u32::from_le_bytes(bytes.try_into().ok()?),
                    gpt_disk_id: [0; 16],
                },
                16 => DiskIdentity {
                    style: 1,
                    mbr_signature: 0,
                    gpt_disk_id: bytes.try_into().ok()?,
                },
                _ => return None,
            })
        }
    };
    // Backend: 0 auto, 1 vaes512, 2 vaes256, 3 aesni, 4 portable.
    let backend = match dword(ValueName::Backend).ok()? {
        None => 0,
        Some(value @ 0..=4) => value as u32,
        Some(_) => return None,
    };
    // Recipient: REG_SZ, checked whenever present (whatever the key source).
    let recipient = match &raws[ValueName::Recipient as usize] {
        None => None,
        Some(raw) if raw.value_type != REG_SZ => return None,
        Some(raw) => Some(recipient_of(&full(raw)?)?),
    };
    let allow_plaintext_hibernation = match dword(ValueName::AllowPlaintextHibernation).ok()? {
        None | Some(0) => false,
        Some(1) => true,
        Some(_) => return None,
    };
    let encrypts = crash_dump_policy == Policy::Encrypt || hibernation_policy == Policy::Encrypt;
    match key_source {
        KeySource::Registry if encrypts && key.is_none() => return None,
        KeySource::Provider | KeySource::Sealed if key.is_some() => return None,
        KeySource::Sealed if recipient.is_none() => return None,
        // No boot loader holds a sealed key to read a hibernation file back.
        KeySource::Sealed if hibernation_policy == Policy::Encrypt => return None,
        _ => {}
    }
    // A key held in memory (registry, sealed) would reach a plaintext hiberfil.sys: crash
    // dump encrypt beside hibernation passthrough needs AllowPlaintextHibernation = 1.
    if crash_dump_policy == Policy::Encrypt
        && key_source != KeySource::Provider
        && hibernation_policy == Policy::Passthrough
        && !allow_plaintext_hibernation
    {
        return None;
    }
    Some(Expected {
        crash_dump_policy,
        hibernation_policy,
        key,
        data_unit,
        area: Area { start, end },
        tweak_base,
        key_source,
        disk_id,
        backend,
        recipient,
        allow_plaintext_hibernation,
    })
}

/// The schema's rules, checked on what the parser returned.
fn assert_valid(config: &Config) {
    let unit = config.data_unit.bytes() as u64;
    assert!(unit == 512 || unit == 4096, "data unit {unit}");
    assert!(config.area.start < config.area.end, "{:?}", config.area);
    assert_eq!(config.area.start % unit, 0, "{:?}", config.area);
    assert!(
        config.area.end == u64::MAX || config.area.end.is_multiple_of(unit),
        "{:?}",
        config.area
    );
    if let Some(key) = &config.key {
        assert_eq!(key.len(), KEY_LEN);
        assert_ne!(key[..KEY_LEN / 2], key[KEY_LEN / 2..], "equal key halves");
    }
    let encrypts =
        config.crash_dump_policy == Policy::Encrypt || config.hibernation_policy == Policy::Encrypt;
    match config.key_source {
        KeySource::Registry => assert!(!encrypts || config.key.is_some(), "encrypt without a key"),
        KeySource::Provider => assert!(config.key.is_none(), "a key beside a provider"),
        KeySource::Sealed => {
            assert!(config.key.is_none(), "a key beside a sealed key");
            assert!(
                config.recipient.is_some(),
                "a sealed key without a recipient"
            );
            assert_ne!(
                config.hibernation_policy,
                Policy::Encrypt,
                "sealed hibernation"
            );
        }
    }
    if config.crash_dump_policy == Policy::Encrypt
        && config.key_source != KeySource::Provider
        && config.hibernation_policy == Policy::Passthrough
    {
        assert!(
            config.allow_plaintext_hibernation,
            "a key in memory beside a plaintext hibernation file, not allowed"
        );
    }
    for policy in [config.crash_dump_policy, config.hibernation_policy] {
        assert_eq!(Policy::from_dword(policy.as_dword()), Some(policy));
    }
}

/// Decodes `data` as libfuzzer-sys decodes the input of a typed target (too short for
/// `Input`'s size hint, or not decodable: rejected), then checks it. Returns whether `data`
/// was an input; panics when the oracle fails.
pub fn run(data: &[u8]) -> bool {
    if data.len() < <Input as Arbitrary>::size_hint(0).0 {
        return false;
    }
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return false;
    };
    check(input);
    true
}

fn check(input: Input) {
    let raws: [Option<Raw>; VALUES] = std::array::from_fn(|i| input.values[i].as_ref().map(raw));
    let mut values = if input.key_present {
        RegistryValues::present()
    } else {
        RegistryValues::default()
    };
    for (name, raw) in ValueName::ALL.into_iter().zip(&raws) {
        assert_eq!(ValueName::ALL[name as usize], name);
        if let Some(raw) = raw {
            values.set(name, RawValue::new(raw.value_type, raw.len, &raw.bytes));
        }
    }
    let parsed = Config::parse(&values);
    // Deterministic, and the error (or configuration) prints without panicking.
    assert_eq!(parsed, Config::parse(&values));
    let _ = format!("{parsed:?}");
    if let Err(error) = &parsed {
        let _ = error.to_string();
    }
    match (parsed, model(input.key_present, &raws)) {
        (Ok(config), Some(expected)) => {
            assert_valid(&config);
            assert_eq!(config.crash_dump_policy, expected.crash_dump_policy);
            assert_eq!(config.hibernation_policy, expected.hibernation_policy);
            assert!(config.key == expected.key, "a different key");
            assert_eq!(config.data_unit, expected.data_unit);
            assert_eq!(config.area, expected.area);
            assert_eq!(config.tweak_base, expected.tweak_base);
            assert_eq!(config.key_source, expected.key_source);
            assert_eq!(config.disk_id, expected.disk_id);
            assert_eq!(backend_as_dword(config.backend), expected.backend);
            assert_eq!(config.recipient, expected.recipient);
            assert_eq!(
                config.allow_plaintext_hibernation,
                expected.allow_plaintext_hibernation
            );
        }
        (Ok(config), None) => panic!("accepted what the schema refuses: {config:?}"),
        (Err(error), Some(_)) => panic!("refused a valid configuration: {error}"),
        (Err(_), None) => {}
    }
}
