//! Option values shared by the subcommands: sizes, byte ranges, keys, policies.

use std::ops::Range;
use std::path::Path;

use dumpcrypt_core::config::{KeySource, Policy};
use dumpcrypt_core::geometry::TweakBase;
use dumpcrypt_xts::{Backend, KEY_LEN};

/// Errors a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("simulation failed: {0}")]
    Simulation(#[from] crashdmp_sim::stack::SimError),
    #[error("the OS random source failed: {0}")]
    Random(String),
}

impl CliError {
    pub fn file(path: &Path, source: std::io::Error) -> Self {
        Self::File {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A byte count: `4096`, `0x1000`, `64KiB`, `256MiB`, `4GiB` (also KB/MB/GB as powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let not_a_size = || format!("`{text}` is not a size (examples: 4096, 0x1000, 64KiB, 4GiB)");
    let (value, unit) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => {
            let end = hex
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(hex.len());
            (u64::from_str_radix(&hex[..end], 16), &hex[end..])
        }
        None => {
            let end = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            (text[..end].parse::<u64>(), &text[end..])
        }
    };
    let value = value.map_err(|_| not_a_size())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit `{other}` (use KiB, MiB, GiB)")),
    };
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `START..END`, half open, each a size as in [`parse_size`].
pub fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("`{text}` is not a range START..END (e.g. 1MiB..2GiB)"))?;
    let start = parse_size(start)?;
    let end = parse_size(end)?;
    if start >= end {
        return Err(format!(
            "the range `{text}` is empty: START must be below END"
        ));
    }
    Ok(start..end)
}

/// The driver's transform settings: shared by `simulate`, `config` and `decrypt`, which must
/// agree on them. Each is optional so that `config --update` can tell a value given from a
/// default; [`TransformArgs::data_unit`] and [`TransformArgs::tweak_base`] give the defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct TransformArgs {
    /// Encrypted area START..END, bytes in tweak-base coordinates, multiples of the data
    /// unit. Default: the whole disk.
    #[arg(long, value_parser = parse_range)]
    pub area: Option<Range<u64>>,
    /// XTS data unit: 512 or 4096 bytes. Default: 512.
    #[arg(long = "data-unit", value_parser = parse_data_unit)]
    pub data_unit_arg: Option<u32>,
    /// Where offsets and data unit numbers count from: `partition` (partition-relative, the
    /// dump partition's start) or `disk` (disk-absolute, the disk's start). Default:
    /// partition.
    #[arg(long = "tweak-base", value_enum)]
    pub tweak_base_arg: Option<TweakBaseArg>,
}

impl TransformArgs {
    /// The data unit, 512 unless given.
    pub fn data_unit(&self) -> u32 {
        self.data_unit_arg.unwrap_or(512)
    }

    /// The tweak base, partition-relative unless given.
    pub fn tweak_base(&self) -> TweakBase {
        self.tweak_base_arg
            .map_or(TweakBase::Partition, TweakBase::from)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyArg {
    Passthrough,
    Encrypt,
    Refuse,
}

impl From<PolicyArg> for Policy {
    fn from(policy: PolicyArg) -> Self {
        match policy {
            PolicyArg::Passthrough => Policy::Passthrough,
            PolicyArg::Encrypt => Policy::Encrypt,
            PolicyArg::Refuse => Policy::Refuse,
        }
    }
}

impl From<Policy> for PolicyArg {
    fn from(policy: Policy) -> Self {
        match policy {
            Policy::Passthrough => Self::Passthrough,
            Policy::Encrypt => Self::Encrypt,
            Policy::Refuse => Self::Refuse,
        }
    }
}

impl PolicyArg {
    /// The option's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Passthrough => "passthrough",
            Self::Encrypt => "encrypt",
            Self::Refuse => "refuse",
        }
    }
}

/// `KeySource`: where the encrypt policy's key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeySourceArg {
    /// The `Key` value (tests and labs: a key in the registry rests on the disk it protects).
    Registry,
    /// A volume-encryption driver, through the provider interface (docs/provider.md).
    Provider,
    /// A fresh key at each load, sealed to an age recipient (`--recipient`).
    Sealed,
}

impl From<KeySourceArg> for KeySource {
    fn from(source: KeySourceArg) -> Self {
        match source {
            KeySourceArg::Registry => KeySource::Registry,
            KeySourceArg::Provider => KeySource::Provider,
            KeySourceArg::Sealed => KeySource::Sealed,
        }
    }
}

/// A `DiskId`: 8 hex digits (an MBR disk signature, as `Get-Disk` shows it) or a GPT disk
/// GUID (`{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`, braces optional), as the registry holds
/// it: the signature little-endian, the GUID in its in-memory layout.
pub fn parse_disk_id(text: &str) -> Result<DiskIdArg, String> {
    parse_disk_id_bytes(text).map(DiskIdArg)
}

/// A parsed `--disk-id`: the registry value's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIdArg(pub Vec<u8>);

fn parse_disk_id_bytes(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim().trim_start_matches('{').trim_end_matches('}');
    let hex = |digits: &str| -> Result<Vec<u8>, String> {
        if digits.len() % 2 != 0 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{digits:?} is not hexadecimal"));
        }
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|e| e.to_string()))
            .collect()
    };
    let parts: Vec<&str> = text.split('-').collect();
    match parts.as_slice() {
        [signature] if signature.len() == 8 => {
            let mut bytes = hex(signature)?;
            bytes.reverse();
            Ok(bytes)
        }
        [a, b, c, d, e] if [a.len(), b.len(), c.len(), d.len(), e.len()] == [8, 4, 4, 4, 12] => {
            let (mut a, mut b, mut c) = (hex(a)?, hex(b)?, hex(c)?);
            a.reverse();
            b.reverse();
            c.reverse();
            Ok([a, b, c, hex(d)?, hex(e)?].concat())
        }
        _ => Err(format!(
            "{text:?}: a disk id is 8 hex digits (MBR signature) or a GPT disk GUID \
             xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (GPT)"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TweakBaseArg {
    Partition,
    Disk,
}

impl From<TweakBaseArg> for TweakBase {
    fn from(base: TweakBaseArg) -> Self {
        match base {
            TweakBaseArg::Partition => TweakBase::Partition,
            TweakBaseArg::Disk => TweakBase::Disk,
        }
    }
}

/// 512 or 4096.
pub fn parse_data_unit(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(unit @ (512 | 4096)) => Ok(unit),
        _ => Err(format!("data unit `{text}`: it must be 512 or 4096")),
    }
}

/// A transform backend by name, as the driver's `Backend` value names them: `auto`, `vaes512`,
/// `vaes256`, `aesni`, `portable`.
pub fn parse_backend(text: &str) -> Result<Backend, String> {
    Backend::from_name(text).ok_or_else(|| {
        format!("backend `{text}`: it must be auto, vaes512, vaes256, aesni or portable")
    })
}

/// A 64-byte raw key file; its halves must differ. A key is read from a file (a FIFO such as
/// `<(…)` works too), never from standard input: `-` is refused.
pub fn read_key(path: &Path) -> Result<[u8; KEY_LEN], CliError> {
    if path.as_os_str() == "-" {
        return Err(CliError::Usage(
            "--key -: a key is read from a file, not from standard input (which may carry the \
             image); name the key file (for a file called `-`, write ./-)"
                .into(),
        ));
    }
    if path.is_dir() {
        return Err(CliError::Usage(format!(
            "--key {}: is a directory; name the 64-byte key file",
            path.display()
        )));
    }
    let mut bytes = std::fs::read(path).map_err(|e| CliError::file(path, e))?;
    let key: Result<[u8; KEY_LEN], _> = bytes.as_slice().try_into();
    let len = bytes.len();
    bytes.fill(0);
    std::hint::black_box(&bytes);
    let key = key.map_err(|_| {
        CliError::Usage(format!(
            "{}: a key file holds exactly 64 bytes (data key then tweak key); this one has {len}",
            path.display(),
        ))
    })?;
    if key[..32] == key[32..] {
        return Err(CliError::Usage(format!(
            "{}: the two halves of the key are equal; XTS needs two different keys",
            path.display()
        )));
    }
    Ok(key)
}

/// 64 bytes from the OS random source, halves distinct.
pub fn generate_key() -> Result<[u8; KEY_LEN], CliError> {
    let mut key = [0u8; KEY_LEN];
    loop {
        getrandom::fill(&mut key).map_err(|e| CliError::Random(e.to_string()))?;
        if key[..32] != key[32..] {
            return Ok(key);
        }
    }
}

/// Bytes as KiB/MiB/GiB for people.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("1 MB"), Ok(1 << 20));
        assert!(parse_size("12parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("1MiB..2MiB"), Ok((1 << 20)..(2 << 20)));
        assert_eq!(parse_range("0..0x200"), Ok(0..512));
        assert!(parse_range("2MiB..1MiB").is_err());
        assert!(parse_range("5..5").is_err());
        assert!(parse_range("1MiB").is_err());
    }

    #[test]
    fn backends() {
        assert_eq!(parse_backend("auto"), Ok(Backend::Auto));
        assert_eq!(parse_backend("vaes512"), Ok(Backend::Vaes512));
        assert_eq!(parse_backend("AESNI"), Ok(Backend::AesNi));
        assert_eq!(parse_backend("portable"), Ok(Backend::Portable));
        assert!(parse_backend("avx").is_err());
    }

    #[test]
    fn data_units() {
        assert_eq!(parse_data_unit("512"), Ok(512));
        assert_eq!(parse_data_unit("4096"), Ok(4096));
        assert!(parse_data_unit("1024").is_err());
    }
}
