//! The Parameters configuration, parsed from raw registry values.
//!
//! The kernel boundary reads the values of `HKLM\SYSTEM\CurrentControlSet\Services\dumpcrypt\
//! Parameters` into [`RegistryValues`]; [`Config::parse`] decides, in portable code, what they
//! mean. Names not listed in [`ValueName`] are ignored, so that a newer configuration tool
//! can add values an older driver does not know.

use crate::geometry::{Area, Geometry, TweakBase};
use crate::instance::DumpType;
use crate::xts::{Backend, DataUnit, KEY_LEN};
use dumpcrypt_provider::{DiskIdentity, STYLE_GPT, STYLE_MBR};
use dumpcrypt_seal::{Recipient, SealError};

/// `REG_SZ`: UTF-16LE text, usually with a terminating NUL.
pub const REG_SZ: u32 = 1;
/// `REG_BINARY`.
pub const REG_BINARY: u32 = 3;
/// `REG_DWORD` (little-endian).
pub const REG_DWORD: u32 = 4;
/// `REG_QWORD` (little-endian).
pub const REG_QWORD: u32 = 11;

/// The largest value the driver keeps; longer values are recorded by length only (and refused).
/// The longest value of the schema is `Recipient`: 62 characters of UTF-16LE and a NUL, 126
/// bytes. An age identity configured there by mistake (`AGE-SECRET-KEY-1…`, 74 characters) is
/// kept whole too, so that it is refused as what it is.
pub const MAX_VALUE_LEN: usize = 160;

/// The most characters of `Recipient` text kept for parsing.
const RECIPIENT_TEXT_MAX: usize = MAX_VALUE_LEN / 2;

/// The values of the Parameters key the driver reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    missing_docs,
    reason = "each variant is the registry value of its name; the README's configuration \
              table and docs/design.md give their meaning"
)]
pub enum ValueName {
    CrashDumpPolicy,
    HibernationPolicy,
    Key,
    DataUnitSize,
    EncryptedAreaStart,
    EncryptedAreaEnd,
    TweakBase,
    KeySource,
    DiskId,
    Backend,
    Recipient,
    AllowPlaintextHibernation,
}

impl ValueName {
    /// Every value, in the order the kernel boundary reads them.
    pub const ALL: [ValueName; 12] = [
        Self::CrashDumpPolicy,
        Self::HibernationPolicy,
        Self::Key,
        Self::DataUnitSize,
        Self::EncryptedAreaStart,
        Self::EncryptedAreaEnd,
        Self::TweakBase,
        Self::KeySource,
        Self::DiskId,
        Self::Backend,
        Self::Recipient,
        Self::AllowPlaintextHibernation,
    ];

    /// The value's name in the registry.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CrashDumpPolicy => "CrashDumpPolicy",
            Self::HibernationPolicy => "HibernationPolicy",
            Self::Key => "Key",
            Self::DataUnitSize => "DataUnitSize",
            Self::EncryptedAreaStart => "EncryptedAreaStart",
            Self::EncryptedAreaEnd => "EncryptedAreaEnd",
            Self::TweakBase => "TweakBase",
            Self::KeySource => "KeySource",
            Self::DiskId => "DiskId",
            Self::Backend => "Backend",
            Self::Recipient => "Recipient",
            Self::AllowPlaintextHibernation => "AllowPlaintextHibernation",
        }
    }

    /// The registry type the value must have.
    pub const fn expected_type(self) -> u32 {
        match self {
            Self::Key | Self::DiskId => REG_BINARY,
            Self::Recipient => REG_SZ,
            Self::EncryptedAreaStart | Self::EncryptedAreaEnd => REG_QWORD,
            _ => REG_DWORD,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// One registry value as read: its type, its full length, and its first bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RawValue {
    /// Its registry type (`REG_DWORD`, …).
    pub value_type: u32,
    /// The value's length in the registry, which may exceed what is kept in `data`.
    pub len: usize,
    data: [u8; MAX_VALUE_LEN],
}

impl core::fmt::Debug for RawValue {
    // The key is one of these values: never print the bytes.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawValue")
            .field("value_type", &self.value_type)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl RawValue {
    /// A value of `value_type` whose full length is `len`, of which `bytes` are the first.
    pub fn new(value_type: u32, len: usize, bytes: &[u8]) -> Self {
        let mut data = [0u8; MAX_VALUE_LEN];
        let kept = bytes.len().min(MAX_VALUE_LEN).min(len);
        data[..kept].copy_from_slice(&bytes[..kept]);
        Self {
            value_type,
            len,
            data,
        }
    }

    /// The value's bytes, when all of them were kept.
    fn bytes(&self) -> Option<&[u8]> {
        self.data.get(..self.len)
    }
}

impl Drop for RawValue {
    fn drop(&mut self) {
        wipe(&mut self.data);
    }
}

/// What the kernel boundary read from the Parameters key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryValues {
    /// False when the Parameters key does not exist: both policies are passthrough.
    pub key_present: bool,
    values: [Option<RawValue>; ValueName::ALL.len()],
}

impl RegistryValues {
    /// The Parameters key exists, with no values yet.
    pub fn present() -> Self {
        Self {
            key_present: true,
            ..Self::default()
        }
    }

    /// Records a value as read.
    pub fn set(&mut self, name: ValueName, value: RawValue) {
        self.values[name.index()] = Some(value);
    }

    /// Records a `REG_DWORD`.
    pub fn set_dword(&mut self, name: ValueName, value: u32) {
        self.set(name, RawValue::new(REG_DWORD, 4, &value.to_le_bytes()));
    }

    /// Records a `REG_QWORD`.
    pub fn set_qword(&mut self, name: ValueName, value: u64) {
        self.set(name, RawValue::new(REG_QWORD, 8, &value.to_le_bytes()));
    }

    /// Records a `REG_SZ`, as the registry holds it: UTF-16LE with a terminating NUL.
    pub fn set_string(&mut self, name: ValueName, text: &str) {
        let mut bytes = [0u8; MAX_VALUE_LEN];
        let mut len = 0;
        for unit in text.encode_utf16().chain([0]) {
            if let Some(pair) = bytes.get_mut(len..len + 2) {
                pair.copy_from_slice(&unit.to_le_bytes());
            }
            len += 2;
        }
        self.set(name, RawValue::new(REG_SZ, len, &bytes));
    }

    /// Records a `REG_BINARY`.
    pub fn set_binary(&mut self, name: ValueName, bytes: &[u8]) {
        self.set(name, RawValue::new(REG_BINARY, bytes.len(), bytes));
    }

    /// The value read for `name`, if the key has it.
    pub fn get(&self, name: ValueName) -> Option<&RawValue> {
        self.values[name.index()].as_ref()
    }
}

/// What an instance does with the blocks of its dump type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Every callback succeeds; the MDL and offset are never touched.
    Passthrough,
    /// Blocks inside the area are written as XTS-AES-256 ciphertext.
    Encrypt,
    /// Dump_Start fails, so no dump is written; a write anyway is a bug check.
    Refuse,
}

impl Policy {
    /// The policy of a `CrashDumpPolicy`/`HibernationPolicy` value.
    pub const fn from_dword(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Passthrough),
            1 => Some(Self::Encrypt),
            2 => Some(Self::Refuse),
            _ => None,
        }
    }

    /// Its registry value.
    pub const fn as_dword(self) -> u32 {
        match self {
            Self::Passthrough => 0,
            Self::Encrypt => 1,
            Self::Refuse => 2,
        }
    }
}

/// A validated configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `CrashDumpPolicy`.
    pub crash_dump_policy: Policy,
    /// `HibernationPolicy`.
    pub hibernation_policy: Policy,
    /// `Key`: data key ‖ tweak key, halves distinct.
    pub key: Option<[u8; KEY_LEN]>,
    /// `DataUnitSize`.
    pub data_unit: DataUnit,
    /// `EncryptedAreaStart`, `EncryptedAreaEnd`, in tweak positions.
    pub area: Area,
    /// `TweakBase`.
    pub tweak_base: TweakBase,
    /// `KeySource`.
    pub key_source: KeySource,
    /// `DiskId`: the only disk dumps may go to.
    pub disk_id: Option<DiskIdentity>,
    /// `Backend`: the fastest transform backend DriverEntry may choose.
    pub backend: Backend,
    /// `Recipient`: the age X25519 recipient a sealed key is sealed to.
    pub recipient: Option<Recipient>,
    /// `AllowPlaintextHibernation`: the administrator accepts that, with a crash dump key in
    /// memory and hibernation passthrough, the key schedule reaches hiberfil.sys in plaintext.
    pub allow_plaintext_hibernation: bool,
}

/// Where the key of the encrypt policy comes from (`KeySource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// 0: the `Key` value, with the area, data unit and tweak base of the Parameters key.
    /// For tests and labs: a key in the registry rests on the disk it protects.
    Registry,
    /// 1: a volume-encryption driver, through the provider interface (docs/provider.md); its
    /// answer replaces Key, the area, the data unit and the tweak base.
    Provider,
    /// 2: a fresh key at each load of an encrypting copy, sealed to `Recipient` and kept only
    /// as an age file in `Parameters\SealedKeys`; only the holder of the identity can read
    /// the dump.
    Sealed,
}

impl KeySource {
    /// The `KeySource` registry value.
    pub const fn from_dword(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Registry),
            1 => Some(Self::Provider),
            2 => Some(Self::Sealed),
            _ => None,
        }
    }

    /// Its registry value.
    pub const fn as_dword(self) -> u32 {
        match self {
            Self::Registry => 0,
            Self::Provider => 1,
            Self::Sealed => 2,
        }
    }

    /// The one spelling the tools use: `registry`, `provider` or `sealed`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Registry => "registry",
            Self::Provider => "provider",
            Self::Sealed => "sealed",
        }
    }
}

impl core::fmt::Debug for Config {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Config")
            .field("crash_dump_policy", &self.crash_dump_policy)
            .field("hibernation_policy", &self.hibernation_policy)
            .field("key", &self.key.map(|_| "<64 bytes>"))
            .field("data_unit", &self.data_unit)
            .field("area", &self.area)
            .field("tweak_base", &self.tweak_base)
            .field("key_source", &self.key_source)
            .field("disk_id", &self.disk_id)
            .field("backend", &self.backend)
            .field("recipient", &self.recipient)
            .field(
                "allow_plaintext_hibernation",
                &self.allow_plaintext_hibernation,
            )
            .finish()
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        if let Some(key) = self.key.as_mut() {
            wipe(key);
        }
    }
}

/// Why a configuration was refused. DriverEntry turns any of these into
/// `STATUS_BAD_CONFIGURATION`; the CLI prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    missing_docs,
    reason = "the fields are the offending value and the value's name, as Display prints them"
)]
pub enum ConfigError {
    /// A value has another registry type than its schema's.
    WrongType { name: ValueName, found: u32 },
    /// A DWORD or QWORD value of the wrong length.
    WrongLength { name: ValueName, len: usize },
    /// A policy other than 0, 1 or 2.
    UnknownPolicy { name: ValueName, value: u32 },
    /// A policy is encrypt but there is no Key value.
    KeyMissing,
    /// `KeySource` is provider but there is a `Key` value: it would rest on the disk.
    KeyWithProvider,
    /// `KeySource` is sealed but there is a `Key` value: it would rest on the disk.
    KeyWithSealed,
    /// `KeySource` other than 0, 1 or 2.
    UnknownKeySource { value: u32 },
    /// `KeySource` is sealed but there is no `Recipient` value.
    RecipientMissing,
    /// `Recipient` is not UTF-16 text of an age X25519 recipient.
    RecipientInvalid { reason: SealError },
    /// `AllowPlaintextHibernation` other than 0 or 1.
    UnknownAllowPlaintextHibernation { value: u32 },
    /// The crash dump policy encrypts with a key in memory (registry or sealed) while
    /// hibernation is passthrough, and `AllowPlaintextHibernation` is not 1.
    PlaintextHibernation,
    /// `KeySource` is sealed and the hibernation policy is encrypt: no boot loader has the
    /// key to read such a hibernation file back.
    SealedHibernation,
    /// `DiskId` is neither 4 bytes (MBR signature) nor 16 (GPT disk GUID).
    DiskIdLength { len: usize },
    /// The key is not 64 bytes.
    KeyLength { len: usize },
    /// The data key equals the tweak key.
    KeyHalvesEqual,
    /// DataUnitSize other than 512 or 4096.
    DataUnitSize { value: u32 },
    /// TweakBase other than 0 or 1.
    UnknownTweakBase { value: u32 },
    /// Backend other than 0 to 4.
    UnknownBackend { value: u32 },
    /// EncryptedAreaStart ≥ EncryptedAreaEnd.
    EmptyArea { start: u64, end: u64 },
    /// The area's bounds are not multiples of the data unit.
    AreaMisaligned {
        start: u64,
        end: u64,
        data_unit: u32,
    },
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::WrongType { name, found } => write!(
                f,
                "{} has registry type {found}, expected {}",
                name.as_str(),
                name.expected_type()
            ),
            Self::WrongLength { name, len } => {
                write!(f, "{} is {len} bytes long", name.as_str())
            }
            Self::UnknownPolicy { name, value } => write!(
                f,
                "{} is {value}; it must be 0 (passthrough), 1 (encrypt) or 2 (refuse)",
                name.as_str()
            ),
            Self::KeyMissing => f.write_str("a policy is encrypt but there is no Key value"),
            Self::KeyWithProvider => f.write_str(
                "KeySource is provider but there is a Key value: remove it (a key in the \
                 registry rests on the disk it protects)",
            ),
            Self::KeyWithSealed => f.write_str(
                "KeySource is sealed but there is a Key value: remove it (a key in the \
                 registry rests on the disk it protects)",
            ),
            Self::UnknownKeySource { value } => write!(
                f,
                "KeySource is {value}; it must be 0 (registry), 1 (provider) or 2 (sealed)"
            ),
            Self::RecipientMissing => f.write_str(
                "KeySource is sealed but there is no Recipient value (the age1... recipient \
                 that age-keygen -y prints)",
            ),
            Self::RecipientInvalid { reason } => write!(f, "Recipient: {reason}"),
            Self::UnknownAllowPlaintextHibernation { value } => {
                write!(f, "AllowPlaintextHibernation is {value}; it must be 0 or 1")
            }
            Self::PlaintextHibernation => f.write_str(
                "the crash dump policy is encrypt with a key held in memory while \
                 HibernationPolicy is passthrough: every hibernation (Fast Startup included) \
                 would write the key schedule to hiberfil.sys in plaintext. Set \
                 HibernationPolicy to refuse (and turn hibernation off), or set \
                 AllowPlaintextHibernation to 1 to accept that",
            ),
            Self::SealedHibernation => f.write_str(
                "KeySource is sealed and HibernationPolicy is encrypt: no boot loader holds a \
                 sealed key to resume from such a hibernation file; set HibernationPolicy to \
                 refuse",
            ),
            Self::DiskIdLength { len } => write!(
                f,
                "DiskId is {len} bytes; it must be 4 (MBR signature) or 16 (GPT disk GUID)"
            ),
            Self::KeyLength { len } => write!(f, "Key is {len} bytes; it must be 64"),
            Self::KeyHalvesEqual => {
                f.write_str("the two halves of Key (data key and tweak key) are equal")
            }
            Self::DataUnitSize { value } => {
                write!(f, "DataUnitSize is {value}; it must be 512 or 4096")
            }
            Self::UnknownTweakBase { value } => write!(
                f,
                "TweakBase is {value}; it must be 0 (partition) or 1 (disk)"
            ),
            Self::UnknownBackend { value } => write!(
                f,
                "Backend is {value}; it must be 0 (auto), 1 (vaes512), 2 (vaes256), 3 (aesni) \
                 or 4 (portable)"
            ),
            Self::EmptyArea { start, end } => write!(
                f,
                "the encrypted area {start:#x}..{end:#x} is empty (start must be below end)"
            ),
            Self::AreaMisaligned {
                start,
                end,
                data_unit,
            } => write!(
                f,
                "the encrypted area {start:#x}..{end:#x} does not start and end on a \
                 {data_unit}-byte data unit"
            ),
        }
    }
}

impl Config {
    /// Both policies passthrough: the configuration when the Parameters key is absent.
    pub const PASSTHROUGH: Config = Config {
        crash_dump_policy: Policy::Passthrough,
        hibernation_policy: Policy::Passthrough,
        key: None,
        data_unit: DataUnit::Bytes512,
        area: Area::WHOLE_DISK,
        tweak_base: TweakBase::Partition,
        key_source: KeySource::Registry,
        disk_id: None,
        backend: Backend::Auto,
        recipient: None,
        allow_plaintext_hibernation: false,
    };

    /// The policy of the stack an instance is loaded into.
    pub const fn policy(&self, dump_type: DumpType) -> Policy {
        match dump_type {
            DumpType::CrashDump => self.crash_dump_policy,
            DumpType::Hibernation => self.hibernation_policy,
        }
    }

    /// The geometry, for a dump partition that starts `partition_start` bytes into its disk.
    pub const fn geometry(&self, partition_start: u64) -> Geometry {
        Geometry::new(self.data_unit, self.area, self.tweak_base, partition_start)
    }

    /// Validates the raw values against the schema (docs/design.md, "Configuration").
    pub fn parse(values: &RegistryValues) -> Result<Config, ConfigError> {
        if !values.key_present {
            return Ok(Self::PASSTHROUGH);
        }
        let policy = |name| match dword(values, name)? {
            None => Ok(Policy::Passthrough),
            Some(value) => {
                Policy::from_dword(value).ok_or(ConfigError::UnknownPolicy { name, value })
            }
        };
        let crash_dump_policy = policy(ValueName::CrashDumpPolicy)?;
        let hibernation_policy = policy(ValueName::HibernationPolicy)?;

        let data_unit = match dword(values, ValueName::DataUnitSize)? {
            None => DataUnit::Bytes512,
            Some(value) => {
                DataUnit::from_bytes(value).ok_or(ConfigError::DataUnitSize { value })?
            }
        };
        let tweak_base = match dword(values, ValueName::TweakBase)? {
            None => TweakBase::Partition,
            Some(value) => {
                TweakBase::from_dword(value).ok_or(ConfigError::UnknownTweakBase { value })?
            }
        };
        let backend = match dword(values, ValueName::Backend)? {
            None => Backend::Auto,
            Some(value) => {
                backend_from_dword(value).ok_or(ConfigError::UnknownBackend { value })?
            }
        };
        let start = qword(values, ValueName::EncryptedAreaStart)?.unwrap_or(0);
        let end = qword(values, ValueName::EncryptedAreaEnd)?.unwrap_or(u64::MAX);
        if start >= end {
            return Err(ConfigError::EmptyArea { start, end });
        }
        let unit = data_unit.bytes() as u64;
        // The open end (u64::MAX) means "to the end of the disk" and need not be aligned.
        if !start.is_multiple_of(unit) || (end != u64::MAX && !end.is_multiple_of(unit)) {
            return Err(ConfigError::AreaMisaligned {
                start,
                end,
                data_unit: unit as u32,
            });
        }

        let key = match values.get(ValueName::Key) {
            None => None,
            Some(raw) => {
                check_type(ValueName::Key, raw)?;
                let bytes = raw
                    .bytes()
                    .filter(|b| b.len() == KEY_LEN)
                    .ok_or(ConfigError::KeyLength { len: raw.len })?;
                let mut key = [0u8; KEY_LEN];
                key.copy_from_slice(bytes);
                if key[..KEY_LEN / 2] == key[KEY_LEN / 2..] {
                    wipe(&mut key);
                    return Err(ConfigError::KeyHalvesEqual);
                }
                Some(key)
            }
        };
        let key_source = match dword(values, ValueName::KeySource)? {
            None => KeySource::Registry,
            Some(value) => {
                KeySource::from_dword(value).ok_or(ConfigError::UnknownKeySource { value })?
            }
        };
        let disk_id = match values.get(ValueName::DiskId) {
            None => None,
            Some(raw) => {
                check_type(ValueName::DiskId, raw)?;
                Some(disk_identity(raw.bytes()).ok_or(ConfigError::DiskIdLength { len: raw.len })?)
            }
        };
        let recipient = match values.get(ValueName::Recipient) {
            None => None,
            Some(raw) => {
                check_type(ValueName::Recipient, raw)?;
                Some(recipient(raw)?)
            }
        };
        let allow_plaintext_hibernation = match dword(values, ValueName::AllowPlaintextHibernation)?
        {
            None | Some(0) => false,
            Some(1) => true,
            Some(value) => return Err(ConfigError::UnknownAllowPlaintextHibernation { value }),
        };
        let encrypts =
            crash_dump_policy == Policy::Encrypt || hibernation_policy == Policy::Encrypt;
        match key_source {
            KeySource::Provider if key.is_some() => return Err(ConfigError::KeyWithProvider),
            KeySource::Sealed if key.is_some() => return Err(ConfigError::KeyWithSealed),
            KeySource::Registry if encrypts && key.is_none() => {
                return Err(ConfigError::KeyMissing)
            }
            KeySource::Sealed if recipient.is_none() => return Err(ConfigError::RecipientMissing),
            KeySource::Sealed if hibernation_policy == Policy::Encrypt => {
                return Err(ConfigError::SealedHibernation)
            }
            _ => {}
        }
        // A key in memory (from the registry, or drawn for sealing) reaches hiberfil.sys in
        // plaintext whenever a hibernation is written unencrypted. A provider's keys are the
        // provider's to protect: they are in memory with or without dumpcrypt.
        let key_in_memory = matches!(key_source, KeySource::Registry | KeySource::Sealed);
        if crash_dump_policy == Policy::Encrypt
            && key_in_memory
            && hibernation_policy == Policy::Passthrough
            && !allow_plaintext_hibernation
        {
            return Err(ConfigError::PlaintextHibernation);
        }
        Ok(Config {
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
}

/// A `Recipient` value: UTF-16LE text of `age1…`, with or without a terminating NUL.
fn recipient(raw: &RawValue) -> Result<Recipient, ConfigError> {
    let invalid = |reason| ConfigError::RecipientInvalid { reason };
    let bytes = raw.bytes().ok_or(invalid(SealError::RecipientLength))?;
    let mut text = [0u8; RECIPIENT_TEXT_MAX];
    let mut len = 0;
    let mut terminated = false;
    for pair in bytes.chunks(2) {
        let unit = match *pair {
            [low, high] => u16::from_le_bytes([low, high]),
            _ => return Err(invalid(SealError::RecipientNotBech32)),
        };
        if unit == 0 {
            // The terminating NUL, and only NULs after it.
            terminated = true;
            continue;
        }
        if terminated {
            return Err(invalid(SealError::RecipientNotBech32));
        }
        // Recipients are ASCII; anything else is not Bech32.
        let byte = u8::try_from(unit).map_err(|_| invalid(SealError::RecipientNotBech32))?;
        *text
            .get_mut(len)
            .ok_or(invalid(SealError::RecipientLength))? = byte;
        len += 1;
    }
    Recipient::parse(text.get(..len).unwrap_or_default()).map_err(invalid)
}

/// The backend of a `Backend` value: the fastest DriverEntry may choose (it takes the next one
/// down where the processor lacks it).
pub const fn backend_from_dword(value: u32) -> Option<Backend> {
    match value {
        0 => Some(Backend::Auto),
        1 => Some(Backend::Vaes512),
        2 => Some(Backend::Vaes256),
        3 => Some(Backend::AesNi),
        4 => Some(Backend::Portable),
        _ => None,
    }
}

/// The `Backend` value of a backend.
pub const fn backend_as_dword(backend: Backend) -> u32 {
    match backend {
        Backend::Auto => 0,
        Backend::Vaes512 => 1,
        Backend::Vaes256 => 2,
        Backend::AesNi => 3,
        Backend::Portable => 4,
    }
}

fn check_type(name: ValueName, raw: &RawValue) -> Result<(), ConfigError> {
    if raw.value_type == name.expected_type() {
        Ok(())
    } else {
        Err(ConfigError::WrongType {
            name,
            found: raw.value_type,
        })
    }
}

fn dword(values: &RegistryValues, name: ValueName) -> Result<Option<u32>, ConfigError> {
    let Some(raw) = values.get(name) else {
        return Ok(None);
    };
    check_type(name, raw)?;
    let bytes: [u8; 4] = raw
        .bytes()
        .and_then(|b| b.try_into().ok())
        .ok_or(ConfigError::WrongLength { name, len: raw.len })?;
    Ok(Some(u32::from_le_bytes(bytes)))
}

fn qword(values: &RegistryValues, name: ValueName) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = values.get(name) else {
        return Ok(None);
    };
    check_type(name, raw)?;
    let bytes: [u8; 8] = raw
        .bytes()
        .and_then(|b| b.try_into().ok())
        .ok_or(ConfigError::WrongLength { name, len: raw.len })?;
    Ok(Some(u64::from_le_bytes(bytes)))
}

/// A `DiskId` value: 4 bytes, an MBR signature (little-endian, as the MBR holds it); 16
/// bytes, a GPT disk GUID (as the GUID structure lays it out in memory).
fn disk_identity(bytes: Option<&[u8]>) -> Option<DiskIdentity> {
    match bytes? {
        &[a, b, c, d] => Some(DiskIdentity {
            style: STYLE_MBR,
            mbr_signature: u32::from_le_bytes([a, b, c, d]),
            gpt_disk_id: [0; 16],
        }),
        bytes => Some(DiskIdentity {
            style: STYLE_GPT,
            mbr_signature: 0,
            gpt_disk_id: bytes.try_into().ok()?,
        }),
    }
}

/// Overwrites a secret in a way the compiler may not elide.
fn wipe(bytes: &mut [u8]) {
    zeroize::Zeroize::zeroize(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> [u8; KEY_LEN] {
        core::array::from_fn(|i| i as u8)
    }

    /// Crash dumps encrypted under a registry key; hibernation refused, as a key in memory
    /// requires unless AllowPlaintextHibernation is set.
    fn encrypting() -> RegistryValues {
        let mut values = RegistryValues::present();
        values.set_dword(ValueName::CrashDumpPolicy, 1);
        values.set_dword(ValueName::HibernationPolicy, 2);
        values.set_binary(ValueName::Key, &key());
        values
    }

    /// `age-keygen -y` of a fixed identity (the seal crate's tests check such pairs against
    /// the age crate).
    const RECIPIENT: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

    fn sealed() -> RegistryValues {
        let mut values = RegistryValues::present();
        values.set_dword(ValueName::CrashDumpPolicy, 1);
        values.set_dword(ValueName::HibernationPolicy, 2);
        values.set_dword(ValueName::KeySource, 2);
        values.set_string(ValueName::Recipient, RECIPIENT);
        values
    }

    #[test]
    fn no_parameters_key_means_passthrough_for_both() {
        let config = Config::parse(&RegistryValues::default()).unwrap();
        assert_eq!(config, Config::PASSTHROUGH);
        assert_eq!(config.crash_dump_policy, Policy::Passthrough);
        assert_eq!(config.hibernation_policy, Policy::Passthrough);
    }

    #[test]
    fn empty_parameters_key_gives_every_default() {
        let config = Config::parse(&RegistryValues::present()).unwrap();
        assert_eq!(config.crash_dump_policy, Policy::Passthrough);
        assert_eq!(config.hibernation_policy, Policy::Passthrough);
        assert_eq!(config.key, None);
        assert_eq!(config.data_unit, DataUnit::Bytes512);
        assert_eq!(
            config.area,
            Area {
                start: 0,
                end: u64::MAX
            }
        );
        assert_eq!(config.tweak_base, TweakBase::Partition);
        assert_eq!(config.backend, Backend::Auto);
    }

    #[test]
    fn every_value_is_read() {
        let mut values = encrypting();
        values.set_dword(ValueName::HibernationPolicy, 2);
        values.set_dword(ValueName::DataUnitSize, 4096);
        values.set_qword(ValueName::EncryptedAreaStart, 0x10_0000);
        values.set_qword(ValueName::EncryptedAreaEnd, 0x2000_0000);
        values.set_dword(ValueName::TweakBase, 1);
        values.set_dword(ValueName::Backend, 3);
        let config = Config::parse(&values).unwrap();
        assert_eq!(config.backend, Backend::AesNi);
        assert_eq!(config.crash_dump_policy, Policy::Encrypt);
        assert_eq!(config.hibernation_policy, Policy::Refuse);
        assert_eq!(config.key, Some(key()));
        assert_eq!(config.data_unit, DataUnit::Bytes4096);
        assert_eq!(
            config.area,
            Area {
                start: 0x10_0000,
                end: 0x2000_0000
            }
        );
        assert_eq!(config.tweak_base, TweakBase::Disk);
    }

    #[test]
    fn only_a_start_runs_to_the_end_of_the_disk() {
        let mut values = encrypting();
        values.set_qword(ValueName::EncryptedAreaStart, 4096);
        assert_eq!(
            Config::parse(&values).unwrap().area,
            Area {
                start: 4096,
                end: u64::MAX
            }
        );
    }

    #[test]
    fn invalid_values_are_refused() {
        type Mutation<'a> = &'a dyn Fn(&mut RegistryValues);
        let cases: &[(Mutation, ConfigError)] = &[
            (
                &|v| v.set_dword(ValueName::CrashDumpPolicy, 3),
                ConfigError::UnknownPolicy {
                    name: ValueName::CrashDumpPolicy,
                    value: 3,
                },
            ),
            (
                &|v| v.set_dword(ValueName::HibernationPolicy, u32::MAX),
                ConfigError::UnknownPolicy {
                    name: ValueName::HibernationPolicy,
                    value: u32::MAX,
                },
            ),
            (
                &|v| v.set_binary(ValueName::Key, &key()[..32]),
                ConfigError::KeyLength { len: 32 },
            ),
            (
                &|v| v.set_binary(ValueName::Key, &[1u8; 65]),
                ConfigError::KeyLength { len: 65 },
            ),
            (
                &|v| v.set_binary(ValueName::Key, &[9u8; 64]),
                ConfigError::KeyHalvesEqual,
            ),
            (
                &|v| v.set_dword(ValueName::Key, 1),
                ConfigError::WrongType {
                    name: ValueName::Key,
                    found: REG_DWORD,
                },
            ),
            (
                &|v| v.set_dword(ValueName::DataUnitSize, 1024),
                ConfigError::DataUnitSize { value: 1024 },
            ),
            (
                &|v| v.set_dword(ValueName::TweakBase, 2),
                ConfigError::UnknownTweakBase { value: 2 },
            ),
            (
                &|v| v.set_dword(ValueName::Backend, 5),
                ConfigError::UnknownBackend { value: 5 },
            ),
            (
                &|v| v.set_qword(ValueName::Backend, 1),
                ConfigError::WrongType {
                    name: ValueName::Backend,
                    found: REG_QWORD,
                },
            ),
            (
                &|v| {
                    v.set_qword(ValueName::EncryptedAreaStart, 8192);
                    v.set_qword(ValueName::EncryptedAreaEnd, 8192);
                },
                ConfigError::EmptyArea {
                    start: 8192,
                    end: 8192,
                },
            ),
            (
                &|v| v.set_qword(ValueName::EncryptedAreaEnd, 0),
                ConfigError::EmptyArea { start: 0, end: 0 },
            ),
            (
                &|v| v.set_qword(ValueName::EncryptedAreaStart, 100),
                ConfigError::AreaMisaligned {
                    start: 100,
                    end: u64::MAX,
                    data_unit: 512,
                },
            ),
            (
                &|v| v.set_binary(ValueName::CrashDumpPolicy, &[1, 0, 0, 0]),
                ConfigError::WrongType {
                    name: ValueName::CrashDumpPolicy,
                    found: REG_BINARY,
                },
            ),
            (
                &|v| {
                    v.set(
                        ValueName::DataUnitSize,
                        RawValue::new(REG_DWORD, 2, &[0, 2]),
                    );
                },
                ConfigError::WrongLength {
                    name: ValueName::DataUnitSize,
                    len: 2,
                },
            ),
            (
                &|v| v.set_dword(ValueName::EncryptedAreaEnd, 4096),
                ConfigError::WrongType {
                    name: ValueName::EncryptedAreaEnd,
                    found: REG_DWORD,
                },
            ),
            (
                &|v| {
                    v.set(
                        ValueName::EncryptedAreaStart,
                        RawValue::new(REG_QWORD, 4, &[0; 4]),
                    );
                },
                ConfigError::WrongLength {
                    name: ValueName::EncryptedAreaStart,
                    len: 4,
                },
            ),
        ];
        for (mutate, expected) in cases {
            let mut values = encrypting();
            mutate(&mut values);
            assert_eq!(Config::parse(&values).unwrap_err(), *expected);
        }
    }

    #[test]
    fn a_4096_byte_unit_needs_a_4096_aligned_area() {
        let mut values = encrypting();
        values.set_dword(ValueName::DataUnitSize, 4096);
        values.set_qword(ValueName::EncryptedAreaEnd, 4096 * 3 + 512);
        assert!(matches!(
            Config::parse(&values),
            Err(ConfigError::AreaMisaligned {
                data_unit: 4096,
                ..
            })
        ));
    }

    #[test]
    fn encrypt_needs_a_key_for_either_stack() {
        for name in [ValueName::CrashDumpPolicy, ValueName::HibernationPolicy] {
            let mut values = RegistryValues::present();
            values.set_dword(name, 1);
            assert_eq!(Config::parse(&values).unwrap_err(), ConfigError::KeyMissing);
        }
    }

    #[test]
    fn a_key_without_encrypt_is_still_validated() {
        let mut values = RegistryValues::present();
        values.set_binary(ValueName::Key, &[3u8; 64]);
        assert_eq!(
            Config::parse(&values).unwrap_err(),
            ConfigError::KeyHalvesEqual
        );
        values.set_binary(ValueName::Key, &key());
        assert_eq!(Config::parse(&values).unwrap().key, Some(key()));
    }

    #[test]
    fn the_key_is_never_printed() {
        let config = Config::parse(&encrypting()).unwrap();
        let text = std::format!("{config:?}");
        assert!(!text.contains("1, 2, 3"), "{text}");
        assert!(text.contains("key: Some(\"<64 bytes>\")"), "{text}");
        assert!(text.contains("crash_dump_policy: Encrypt"), "{text}");
        let values = std::format!("{:?}", encrypting());
        assert!(!values.contains("1, 2, 3"), "{values}");
        assert!(
            values.contains("RawValue { value_type: 3, len: 64, .. }"),
            "{values}"
        );
    }

    /// What the CLI prints for each refusal: the sentences, written out.
    #[test]
    fn refusals_read_as_sentences() {
        let cases = [
            (
                ConfigError::WrongType {
                    name: ValueName::Key,
                    found: REG_DWORD,
                },
                "Key has registry type 4, expected 3",
            ),
            (
                ConfigError::WrongLength {
                    name: ValueName::TweakBase,
                    len: 2,
                },
                "TweakBase is 2 bytes long",
            ),
            (
                ConfigError::UnknownPolicy {
                    name: ValueName::HibernationPolicy,
                    value: 7,
                },
                "HibernationPolicy is 7; it must be 0 (passthrough), 1 (encrypt) or 2 (refuse)",
            ),
            (
                ConfigError::KeyMissing,
                "a policy is encrypt but there is no Key value",
            ),
            (
                ConfigError::KeyLength { len: 32 },
                "Key is 32 bytes; it must be 64",
            ),
            (
                ConfigError::KeyHalvesEqual,
                "the two halves of Key (data key and tweak key) are equal",
            ),
            (
                ConfigError::DataUnitSize { value: 1024 },
                "DataUnitSize is 1024; it must be 512 or 4096",
            ),
            (
                ConfigError::UnknownTweakBase { value: 2 },
                "TweakBase is 2; it must be 0 (partition) or 1 (disk)",
            ),
            (
                ConfigError::UnknownBackend { value: 9 },
                "Backend is 9; it must be 0 (auto), 1 (vaes512), 2 (vaes256), 3 (aesni) or 4 \
                 (portable)",
            ),
            (
                ConfigError::EmptyArea {
                    start: 0x2000,
                    end: 0x1000,
                },
                "the encrypted area 0x2000..0x1000 is empty (start must be below end)",
            ),
            (
                ConfigError::AreaMisaligned {
                    start: 0x100,
                    end: 0x1000,
                    data_unit: 512,
                },
                "the encrypted area 0x100..0x1000 does not start and end on a 512-byte data unit",
            ),
            (
                ConfigError::KeyWithProvider,
                "KeySource is provider but there is a Key value: remove it (a key in the \
                 registry rests on the disk it protects)",
            ),
            (
                ConfigError::UnknownKeySource { value: 3 },
                "KeySource is 3; it must be 0 (registry), 1 (provider) or 2 (sealed)",
            ),
            (
                ConfigError::RecipientInvalid {
                    reason: SealError::SecretKeyNotRecipient,
                },
                "Recipient: this is an age secret key (AGE-SECRET-KEY-1...), not a recipient: \
                 give the age1... recipient that age-keygen -y prints, and keep the secret key \
                 off the machine",
            ),
            (
                ConfigError::UnknownAllowPlaintextHibernation { value: 2 },
                "AllowPlaintextHibernation is 2; it must be 0 or 1",
            ),
            (
                ConfigError::DiskIdLength { len: 5 },
                "DiskId is 5 bytes; it must be 4 (MBR signature) or 16 (GPT disk GUID)",
            ),
        ];
        for (error, sentence) in cases {
            assert_eq!(std::format!("{error}"), sentence);
        }
    }

    #[test]
    fn registry_encodings() {
        assert_eq!((REG_BINARY, REG_DWORD, REG_QWORD), (3, 4, 11));
        for (policy, dword) in [
            (Policy::Passthrough, 0),
            (Policy::Encrypt, 1),
            (Policy::Refuse, 2),
        ] {
            assert_eq!(policy.as_dword(), dword);
            assert_eq!(Policy::from_dword(dword), Some(policy));
        }
        assert_eq!(Policy::from_dword(3), None);
        let names: std::vec::Vec<_> = ValueName::ALL.iter().map(|name| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "CrashDumpPolicy",
                "HibernationPolicy",
                "Key",
                "DataUnitSize",
                "EncryptedAreaStart",
                "EncryptedAreaEnd",
                "TweakBase",
                "KeySource",
                "DiskId",
                "Backend",
                "Recipient",
                "AllowPlaintextHibernation"
            ]
        );
        for (backend, dword) in [
            (Backend::Auto, 0),
            (Backend::Vaes512, 1),
            (Backend::Vaes256, 2),
            (Backend::AesNi, 3),
            (Backend::Portable, 4),
        ] {
            assert_eq!(backend_as_dword(backend), dword);
            assert_eq!(backend_from_dword(dword), Some(backend));
        }
        assert_eq!(backend_from_dword(5), None);
        let types: std::vec::Vec<_> = ValueName::ALL
            .iter()
            .map(|name| name.expected_type())
            .collect();
        assert_eq!(types, [4, 4, 3, 4, 11, 11, 4, 4, 3, 4, 1, 4]);
        for (source, dword, name) in [
            (KeySource::Registry, 0, "registry"),
            (KeySource::Provider, 1, "provider"),
            (KeySource::Sealed, 2, "sealed"),
        ] {
            assert_eq!((source.as_dword(), source.name()), (dword, name));
            assert_eq!(KeySource::from_dword(dword), Some(source));
        }
        assert_eq!(KeySource::from_dword(3), None);
    }

    #[test]
    fn a_provider_replaces_the_key() {
        let mut values = RegistryValues::present();
        values.set_dword(ValueName::CrashDumpPolicy, 1);
        values.set_dword(ValueName::KeySource, 1);
        let config = Config::parse(&values).unwrap();
        assert_eq!(config.key_source, KeySource::Provider);
        assert_eq!(config.key, None);
        values.set_binary(ValueName::Key, &key());
        assert_eq!(
            Config::parse(&values).unwrap_err(),
            ConfigError::KeyWithProvider
        );
        values.set_dword(ValueName::KeySource, 3);
        assert_eq!(
            Config::parse(&values).unwrap_err(),
            ConfigError::UnknownKeySource { value: 3 }
        );
        assert_eq!(
            Config::parse(&encrypting()).unwrap().key_source,
            KeySource::Registry,
            "the default"
        );
    }

    #[test]
    fn a_disk_id_names_an_mbr_or_a_gpt_disk() {
        let mut values = encrypting();
        assert_eq!(Config::parse(&values).unwrap().disk_id, None);
        values.set_binary(ValueName::DiskId, &[0x78, 0x56, 0x34, 0x12]);
        assert_eq!(
            Config::parse(&values).unwrap().disk_id,
            Some(DiskIdentity {
                style: STYLE_MBR,
                mbr_signature: 0x1234_5678,
                gpt_disk_id: [0; 16]
            })
        );
        values.set_binary(ValueName::DiskId, b"0123456789abcdef");
        assert_eq!(
            Config::parse(&values).unwrap().disk_id,
            Some(DiskIdentity {
                style: STYLE_GPT,
                mbr_signature: 0,
                gpt_disk_id: *b"0123456789abcdef"
            })
        );
        for len in [0, 3, 8, 17] {
            values.set_binary(ValueName::DiskId, &std::vec![1; len]);
            assert_eq!(
                Config::parse(&values).unwrap_err(),
                ConfigError::DiskIdLength { len }
            );
        }
        values.set_dword(ValueName::DiskId, 5);
        assert_eq!(
            Config::parse(&values).unwrap_err(),
            ConfigError::WrongType {
                name: ValueName::DiskId,
                found: REG_DWORD
            }
        );
    }

    #[test]
    fn the_policy_and_geometry_of_a_stack() {
        let mut values = encrypting();
        values.set_dword(ValueName::HibernationPolicy, 2);
        values.set_dword(ValueName::TweakBase, 1);
        values.set_qword(ValueName::EncryptedAreaStart, 0x1000);
        let config = Config::parse(&values).unwrap();
        assert_eq!(config.policy(DumpType::CrashDump), Policy::Encrypt);
        assert_eq!(config.policy(DumpType::Hibernation), Policy::Refuse);
        let geometry = config.geometry(0x10_0000);
        assert_eq!(geometry.origin(), 0x10_0000);
        assert_eq!(geometry.partition_start(), 0x10_0000);
        assert_eq!(geometry.tweak_base(), TweakBase::Disk);
        assert_eq!(geometry.data_unit(), DataUnit::Bytes512);
        assert_eq!(
            geometry.area(),
            Area {
                start: 0x1000,
                end: u64::MAX
            }
        );
    }

    #[test]
    fn a_sealed_key_needs_a_recipient_and_no_key() {
        let config = Config::parse(&sealed()).unwrap();
        assert_eq!(config.key_source, KeySource::Sealed);
        assert_eq!(
            config.recipient,
            Some(Recipient::parse(RECIPIENT.as_bytes()).unwrap())
        );
        assert_eq!(config.key, None);

        let mut values = sealed();
        values.set_binary(ValueName::Key, &key());
        assert_eq!(
            Config::parse(&values).unwrap_err(),
            ConfigError::KeyWithSealed
        );
        let mut values = RegistryValues::present();
        values.set_dword(ValueName::CrashDumpPolicy, 1);
        values.set_dword(ValueName::HibernationPolicy, 2);
        values.set_dword(ValueName::KeySource, 2);
        assert_eq!(
            Config::parse(&values).unwrap_err(),
            ConfigError::RecipientMissing
        );
        let mut values = sealed();
        values.set_dword(ValueName::HibernationPolicy, 1);
        assert_eq!(
            Config::parse(&values).unwrap_err(),
            ConfigError::SealedHibernation
        );
    }

    #[test]
    fn a_recipient_is_utf16_text_of_age1() {
        let parse = |values: &RegistryValues| Config::parse(values).map(|c| c.recipient);
        let expected = Recipient::parse(RECIPIENT.as_bytes()).unwrap();
        let mut values = sealed();
        // Without the terminating NUL, and with more than one.
        let utf16: std::vec::Vec<u8> = RECIPIENT
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        values.set(
            ValueName::Recipient,
            RawValue::new(REG_SZ, utf16.len(), &utf16),
        );
        assert_eq!(parse(&values), Ok(Some(expected)));
        let mut padded = utf16.clone();
        padded.extend_from_slice(&[0; 4]);
        values.set(
            ValueName::Recipient,
            RawValue::new(REG_SZ, padded.len(), &padded),
        );
        assert_eq!(parse(&values), Ok(Some(expected)));

        let invalid = |reason| Err(ConfigError::RecipientInvalid { reason });
        let mut after_nul = utf16.clone();
        after_nul.extend_from_slice(&[0, 0, b'x', 0]);
        values.set(
            ValueName::Recipient,
            RawValue::new(REG_SZ, after_nul.len(), &after_nul),
        );
        assert_eq!(parse(&values), invalid(SealError::RecipientNotBech32));
        let mut odd = utf16.clone();
        odd.push(b'x');
        values.set(ValueName::Recipient, RawValue::new(REG_SZ, odd.len(), &odd));
        assert_eq!(parse(&values), invalid(SealError::RecipientNotBech32));
        // A character outside ASCII, an identity, a mistyped character, a longer text.
        values.set_string(ValueName::Recipient, "age1\u{e9}");
        assert_eq!(parse(&values), invalid(SealError::RecipientNotBech32));
        values.set_string(
            ValueName::Recipient,
            "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
        );
        assert_eq!(parse(&values), invalid(SealError::SecretKeyNotRecipient));
        let mistyped = RECIPIENT.replace("zvk", "zvq");
        values.set_string(ValueName::Recipient, &mistyped);
        assert_eq!(parse(&values), invalid(SealError::RecipientChecksum));
        values.set_string(ValueName::Recipient, &std::format!("{RECIPIENT}q"));
        assert_eq!(parse(&values), invalid(SealError::RecipientChecksum));
        // Longer than any value the driver keeps.
        values.set_string(ValueName::Recipient, &"q".repeat(80));
        assert_eq!(parse(&values), invalid(SealError::RecipientLength));
        values.set_binary(ValueName::Recipient, RECIPIENT.as_bytes());
        assert_eq!(
            parse(&values),
            Err(ConfigError::WrongType {
                name: ValueName::Recipient,
                found: REG_BINARY
            })
        );
    }

    #[test]
    fn a_key_in_memory_keeps_hibernation_out_of_plaintext() {
        // Crash dumps encrypted, hibernation passthrough: refused for the registry and the
        // sealed key, unless AllowPlaintextHibernation = 1.
        for mut values in [encrypting(), sealed()] {
            values.set_dword(ValueName::HibernationPolicy, 0);
            assert_eq!(
                Config::parse(&values).unwrap_err(),
                ConfigError::PlaintextHibernation
            );
            values.set_dword(ValueName::AllowPlaintextHibernation, 0);
            assert_eq!(
                Config::parse(&values).unwrap_err(),
                ConfigError::PlaintextHibernation
            );
            values.set_dword(ValueName::AllowPlaintextHibernation, 1);
            let config = Config::parse(&values).unwrap();
            assert!(config.allow_plaintext_hibernation);
            assert_eq!(config.hibernation_policy, Policy::Passthrough);
            values.set_dword(ValueName::AllowPlaintextHibernation, 2);
            assert_eq!(
                Config::parse(&values).unwrap_err(),
                ConfigError::UnknownAllowPlaintextHibernation { value: 2 }
            );
        }
        // Hibernation absent (passthrough) counts as passthrough.
        let mut values = RegistryValues::present();
        values.set_dword(ValueName::CrashDumpPolicy, 1);
        values.set_binary(ValueName::Key, &key());
        assert_eq!(
            Config::parse(&values).unwrap_err(),
            ConfigError::PlaintextHibernation
        );
        // Both encrypted under the registry key: hiberfil.sys is ciphertext.
        values.set_dword(ValueName::HibernationPolicy, 1);
        assert!(Config::parse(&values).is_ok());
        // No key in memory: a provider's keys are its own, and passthrough has none.
        let mut values = RegistryValues::present();
        values.set_dword(ValueName::CrashDumpPolicy, 1);
        values.set_dword(ValueName::KeySource, 1);
        assert!(Config::parse(&values).is_ok());
        let mut values = RegistryValues::present();
        values.set_binary(ValueName::Key, &key());
        assert!(Config::parse(&values).is_ok());
    }
}
