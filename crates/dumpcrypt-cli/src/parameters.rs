//! The Parameters configuration as the registry holds it: built from command
//! options, checked with the driver's own parser, and shared by `simulate`, `config` and
//! `decrypt`.

use std::ops::Range;

use dumpcrypt_core::config::{
    Config, KeySource, Policy, RawValue, RegistryValues, ValueName, REG_BINARY, REG_DWORD,
    REG_QWORD, REG_SZ,
};
use dumpcrypt_core::geometry::TweakBase;
use dumpcrypt_xts::KEY_LEN;
use sha2::{Digest, Sha256};

use crate::options::CliError;

/// `HKEY_LOCAL_MACHINE\` + this is the key the driver reads.
pub const PARAMETERS_SUBKEY: &str = r"SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters";

/// A registry value's data.
#[derive(Clone, PartialEq, Eq)]
pub enum Data {
    Dword(u32),
    Qword(u64),
    Binary(Vec<u8>),
    /// `REG_SZ`.
    Text(String),
}

/// One value of the Parameters key.
#[derive(Clone, PartialEq, Eq)]
pub struct Value {
    pub name: ValueName,
    pub data: Data,
}

impl std::fmt::Debug for Value {
    // The key is one of these values: never print binary data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.data {
            Data::Dword(value) => write!(f, "{} = dword {value:#x}", self.name.as_str()),
            Data::Qword(value) => write!(f, "{} = qword {value:#x}", self.name.as_str()),
            Data::Binary(bytes) => write!(f, "{} = <{} bytes>", self.name.as_str(), bytes.len()),
            Data::Text(text) => write!(f, "{} = {text:?}", self.name.as_str()),
        }
    }
}

impl Value {
    /// `REG_DWORD`, `REG_QWORD`, `REG_BINARY` or `REG_SZ`.
    pub fn registry_type(&self) -> u32 {
        match self.data {
            Data::Dword(_) => REG_DWORD,
            Data::Qword(_) => REG_QWORD,
            Data::Binary(_) => REG_BINARY,
            Data::Text(_) => REG_SZ,
        }
    }

    /// The value's bytes as the registry stores them (little-endian numbers; text as
    /// UTF-16LE with its terminating NUL).
    pub fn bytes(&self) -> Vec<u8> {
        match &self.data {
            Data::Dword(value) => value.to_le_bytes().to_vec(),
            Data::Qword(value) => value.to_le_bytes().to_vec(),
            Data::Binary(bytes) => bytes.clone(),
            Data::Text(text) => text
                .encode_utf16()
                .chain([0])
                .flat_map(u16::to_le_bytes)
                .collect(),
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        if let Data::Binary(bytes) = &mut self.data {
            bytes.fill(0);
            std::hint::black_box(bytes);
        }
    }
}

/// What the options ask for, before validation.
#[derive(Clone)]
pub struct Settings {
    pub crash_dump_policy: Policy,
    pub hibernation_policy: Policy,
    pub key: Option<[u8; KEY_LEN]>,
    pub data_unit: u32,
    /// `None`: the whole disk.
    pub area: Option<Range<u64>>,
    pub tweak_base: TweakBase,
    pub key_source: KeySource,
    /// `DiskId`, as the registry holds it (4 or 16 bytes).
    pub disk_id: Option<Vec<u8>>,
    /// `Recipient`: the `age1…` text a sealed key is sealed to.
    pub recipient: Option<String>,
    /// `AllowPlaintextHibernation`.
    pub allow_plaintext_hibernation: bool,
}

impl Settings {
    /// What nothing configures: both policies passthrough, the registry key source, the
    /// whole disk in 512-byte data units with partition-relative tweaks.
    pub fn passthrough() -> Self {
        Self {
            crash_dump_policy: Policy::Passthrough,
            hibernation_policy: Policy::Passthrough,
            key: None,
            data_unit: 512,
            area: None,
            tweak_base: TweakBase::Partition,
            key_source: KeySource::Registry,
            disk_id: None,
            recipient: None,
            allow_plaintext_hibernation: false,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("crash_dump_policy", &self.crash_dump_policy)
            .field("hibernation_policy", &self.hibernation_policy)
            .field("key", &self.key.as_ref().map(fingerprint))
            .field("data_unit", &self.data_unit)
            .field("area", &self.area)
            .field("tweak_base", &self.tweak_base)
            .field("key_source", &self.key_source)
            .field("disk_id", &self.disk_id)
            .field("recipient", &self.recipient)
            .field(
                "allow_plaintext_hibernation",
                &self.allow_plaintext_hibernation,
            )
            .finish()
    }
}

impl Drop for Settings {
    fn drop(&mut self) {
        if let Some(key) = self.key.as_mut() {
            key.fill(0);
            std::hint::black_box(key);
        }
    }
}

impl Settings {
    /// Every value of the schema, so that applying them leaves nothing of an older
    /// configuration behind: the area is written even when it is the whole disk
    /// (`0..u64::MAX`). The Key is present only when there is one.
    pub fn values(&self) -> Vec<Value> {
        let dword = |name, value| Value {
            name,
            data: Data::Dword(value),
        };
        let qword = |name, value| Value {
            name,
            data: Data::Qword(value),
        };
        let area = self.area.clone().unwrap_or(0..u64::MAX);
        let mut values = vec![
            dword(
                ValueName::CrashDumpPolicy,
                self.crash_dump_policy.as_dword(),
            ),
            dword(
                ValueName::HibernationPolicy,
                self.hibernation_policy.as_dword(),
            ),
        ];
        if let Some(key) = &self.key {
            values.push(Value {
                name: ValueName::Key,
                data: Data::Binary(key.to_vec()),
            });
        }
        values.extend([
            dword(ValueName::DataUnitSize, self.data_unit),
            qword(ValueName::EncryptedAreaStart, area.start),
            qword(ValueName::EncryptedAreaEnd, area.end),
            dword(ValueName::TweakBase, tweak_base_dword(self.tweak_base)),
            dword(ValueName::KeySource, self.key_source.as_dword()),
        ]);
        if let Some(disk_id) = &self.disk_id {
            values.push(Value {
                name: ValueName::DiskId,
                data: Data::Binary(disk_id.clone()),
            });
        }
        if let Some(recipient) = &self.recipient {
            values.push(Value {
                name: ValueName::Recipient,
                data: Data::Text(recipient.clone()),
            });
        }
        values.push(dword(
            ValueName::AllowPlaintextHibernation,
            u32::from(self.allow_plaintext_hibernation),
        ));
        values
    }

    /// The configuration the driver would read from these values, or why it would refuse it.
    pub fn validate(&self) -> Result<Config, CliError> {
        validate(&self.values())
    }
}

pub const fn tweak_base_dword(base: TweakBase) -> u32 {
    match base {
        TweakBase::Partition => 0,
        TweakBase::Disk => 1,
    }
}

/// Validates values with the driver's own parser ([`Config::parse`]), so that a bad
/// combination is a clear message now rather than a DriverEntry failure at the next boot.
pub fn validate(values: &[Value]) -> Result<Config, CliError> {
    let mut raw = RegistryValues::present();
    for value in values {
        let bytes = value.bytes();
        raw.set(
            value.name,
            RawValue::new(value.registry_type(), bytes.len(), &bytes),
        );
    }
    Config::parse(&raw).map_err(|error| CliError::Usage(format!("invalid configuration: {error}")))
}

/// A key's fingerprint for people and logs: the first 8 bytes of its SHA-256, in hex. It
/// identifies a key without revealing it.
pub fn fingerprint(key: &[u8; KEY_LEN]) -> String {
    Sha256::digest(key)[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The tweak base in prose: what the options call `partition` and `disk`.
pub fn tweak_base_name(base: TweakBase) -> &'static str {
    match base {
        TweakBase::Partition => "partition-relative",
        TweakBase::Disk => "disk-absolute",
    }
}

/// The key line of [`describe`] and of `decrypt`: the key only by its fingerprint.
fn key_line(key: Option<&[u8; KEY_LEN]>) -> String {
    key.map_or_else(
        || "none".to_string(),
        |key| {
            format!(
                "fingerprint {} (first 8 bytes of SHA-256)",
                fingerprint(key)
            )
        },
    )
}

fn area_text(config: &Config) -> String {
    if config.area.end == u64::MAX {
        format!("from byte {:#x} to the end of the disk", config.area.start)
    } else {
        format!("bytes {:#x}..{:#x}", config.area.start, config.area.end)
    }
}

/// What a tool that decrypts uses, for people: the key by fingerprint, the data unit, the
/// tweak base, the area and where the partition starts in the image.
pub fn describe_transform(config: &Config, partition_offset: u64) -> String {
    let partition = match config.tweak_base {
        TweakBase::Partition => format!(
            "starts at byte {partition_offset:#x} of the image (data unit numbers count from there)"
        ),
        TweakBase::Disk => format!(
            "at byte {partition_offset:#x} of the image; not used: disk-absolute offsets are image offsets"
        ),
    };
    format!(
        "key              {}\ntransform        XTS-AES-256, data unit {} bytes, {} tweaks (--tweak-base {})\nencrypted area   {} ({} offsets)\npartition        {partition}\n",
        key_line(config.key.as_ref()),
        config.data_unit.bytes(),
        tweak_base_name(config.tweak_base),
        match config.tweak_base {
            TweakBase::Partition => "partition",
            TweakBase::Disk => "disk",
        },
        area_text(config),
        tweak_base_name(config.tweak_base),
    )
}

/// What a policy means, for people.
pub fn describe_policy(policy: Policy) -> &'static str {
    match policy {
        Policy::Passthrough => "passthrough (written as is)",
        Policy::Encrypt => "encrypt (XTS-AES-256)",
        Policy::Refuse => "refuse (no dump is written)",
    }
}

/// A validated configuration as a few lines for people; the key only by its fingerprint.
pub fn describe(config: &Config) -> String {
    format!(
        "crash dumps      {}\nhibernation      {}\nkey              {}\ndata unit        {} bytes\nencrypted area   {} ({} offsets and tweaks)\n",
        describe_policy(config.crash_dump_policy),
        describe_policy(config.hibernation_policy),
        match config.key_source {
            KeySource::Provider => "from the provider (KeySource 1): its answer replaces \
                                    the key, data unit, area and tweak base below"
                .to_string(),
            KeySource::Registry => key_line(config.key.as_ref()),
            KeySource::Sealed => format!(
                "a fresh key at each load (KeySource 2), sealed to {}; kept only in \
                 Parameters\\SealedKeys",
                config
                    .recipient
                    .map_or_else(|| "no recipient".to_string(), |r| r.to_string())
            ),
        },
        config.data_unit.bytes(),
        area_text(config),
        tweak_base_name(config.tweak_base),
    )
}

impl Settings {
    /// The settings a validated configuration holds, to change some of them
    /// (`config --update`).
    pub fn from_config(config: &Config) -> Self {
        Self {
            crash_dump_policy: config.crash_dump_policy,
            hibernation_policy: config.hibernation_policy,
            key: config.key,
            data_unit: config.data_unit.bytes() as u32,
            area: (config.area.start != 0 || config.area.end != u64::MAX)
                .then_some(config.area.start..config.area.end),
            tweak_base: config.tweak_base,
            key_source: config.key_source,
            disk_id: config.disk_id.map(|disk| {
                if disk.style == dumpcrypt_provider::STYLE_MBR {
                    disk.mbr_signature.to_le_bytes().to_vec()
                } else {
                    disk.gpt_disk_id.to_vec()
                }
            }),
            recipient: config.recipient.map(|recipient| recipient.to_string()),
            allow_plaintext_hibernation: config.allow_plaintext_hibernation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let mut settings = Settings::passthrough();
        settings.crash_dump_policy = Policy::Encrypt;
        settings.hibernation_policy = Policy::Refuse;
        settings.key = Some(std::array::from_fn(|i| i as u8));
        settings
    }

    #[test]
    fn every_value_is_written_and_the_driver_reads_them_back() {
        let mut settings = settings();
        settings.area = Some(0x10_0000..0x20_0000);
        settings.data_unit = 4096;
        settings.tweak_base = TweakBase::Disk;
        let config = settings.validate().unwrap();
        assert_eq!(config.crash_dump_policy, Policy::Encrypt);
        assert_eq!(config.area.start, 0x10_0000);
        assert_eq!(config.area.end, 0x20_0000);
        assert_eq!(config.data_unit.bytes(), 4096);
        assert_eq!(config.tweak_base, TweakBase::Disk);
        assert_eq!(config.key, settings.key);
        assert_eq!(settings.values().len(), 9);
        // And back: the settings a configuration holds give the same configuration.
        let again = Settings::from_config(&config).validate().unwrap();
        assert_eq!(again.area.start, 0x10_0000);
        assert_eq!(again.area.end, 0x20_0000);
        assert_eq!(again.data_unit.bytes(), 4096);
        assert_eq!(again.tweak_base, TweakBase::Disk);
        assert_eq!(again.key, settings.key);
        let whole_disk = self::settings().validate().unwrap();
        assert_eq!(Settings::from_config(&whole_disk).area, None);
    }

    #[test]
    fn the_whole_disk_is_written_explicitly() {
        let values = settings().values();
        assert!(values.contains(&Value {
            name: ValueName::EncryptedAreaEnd,
            data: Data::Qword(u64::MAX)
        }));
        assert_eq!(settings().validate().unwrap().area.end, u64::MAX);
    }

    #[test]
    fn encrypt_without_a_key_is_refused() {
        let mut settings = settings();
        settings.key = None;
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("invalid configuration"), "{error}");
    }

    #[test]
    fn fingerprints_are_sha256_prefixes() {
        // SHA-256 of the 64 bytes 00 01 .. 3f, computed independently with `sha256sum`.
        let key: [u8; 64] = std::array::from_fn(|i| i as u8);
        assert_eq!(fingerprint(&key), "fdeab9acf3710362");
        let text = format!("{:?}", settings());
        assert!(text.contains("fdeab9acf3710362") && !text.contains("1, 2, 3"));
    }
}
