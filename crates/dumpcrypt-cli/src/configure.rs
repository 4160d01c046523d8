//! `dumpcrypt config`: builds the Parameters configuration from options, checks it with the
//! driver's own parser, and writes it as a `.reg` file (any OS) or, on Windows, into the
//! registry; `--show` prints the configuration a machine has, the key only by fingerprint.

use std::path::PathBuf;
use std::process::ExitCode;

use dumpcrypt_core::config::{KeySource, Policy, ValueName};

use crate::options::{
    parse_disk_id, read_key, CliError, DiskIdArg, KeySourceArg, PolicyArg, TransformArgs,
};
use crate::output::{self, Output, Rules};
use crate::parameters::{describe, Data, Settings, Value, PARAMETERS_SUBKEY};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the crash dump stack does with what it writes. Default: passthrough.
    #[arg(long, value_enum)]
    pub crash_policy: Option<PolicyArg>,
    /// What the hibernation stack does. `encrypt` only where a pre-boot component decrypts
    /// what the boot loader reads; otherwise resume fails and Windows boots fresh. Default:
    /// refuse when crash dumps are encrypted with a key held in memory (registry or sealed:
    /// a plaintext hibernation file would hold it), passthrough otherwise.
    #[arg(long, value_enum)]
    pub hibernation_policy: Option<PolicyArg>,
    /// Key file: 64 raw bytes (`dumpcrypt keygen`). Required when a policy is encrypt and
    /// the key source is the registry.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Where the encrypt policy's key comes from: the Key value (`registry`, for tests and
    /// labs), a volume-encryption driver (`provider`: docs/provider.md; then no --key), or a
    /// fresh key at each load sealed to --recipient (`sealed`; then no --key). Default:
    /// registry.
    #[arg(long, value_enum)]
    pub key_source: Option<KeySourceArg>,
    /// With `--key-source sealed`: the administrator's age X25519 recipient, `age1…` as
    /// `age-keygen -y IDENTITY` prints it (public; the identity stays off the machine).
    #[arg(long, value_name = "AGE1...")]
    pub recipient: Option<String>,
    /// Accept hibernation passthrough while crash dumps are encrypted with a key in memory:
    /// every hibernation (Fast Startup included) then writes the key schedule and the
    /// Parameters key to hiberfil.sys in plaintext.
    #[arg(long)]
    pub allow_plaintext_hibernation: bool,
    /// The only disk dumps are encrypted for: an MBR disk signature (8 hex digits) or a GPT
    /// disk GUID; a dump device on another disk gets no dump.
    #[arg(long, value_parser = parse_disk_id)]
    pub disk_id: Option<DiskIdArg>,
    #[command(flatten)]
    pub transform: TransformArgs,
    /// Write the configuration as a `.reg` file (for `reg import` on the target machine): a
    /// new file (owner-only: it holds the key), a device or FIFO, or `-` for standard output
    /// (not a terminal when it holds a key, unless --force).
    #[arg(long, value_name = "FILE")]
    pub reg_out: Option<PathBuf>,
    /// Replace an existing --reg-out file; write a key to a terminal.
    #[arg(long)]
    pub force: bool,
    /// Write the configuration into this machine's registry (Windows, as Administrator). It
    /// takes effect when the dump stack next loads the driver (at boot, or when the page
    /// file or the crash dump settings change).
    #[arg(long)]
    pub apply: bool,
    /// Start from this machine's current configuration (Windows): the options not given keep
    /// their current values, the key included. Refused when the current one is invalid.
    #[arg(long)]
    pub update: bool,
    /// Print this machine's current configuration, as the driver would read it (Windows);
    /// exit status 1 when the driver would refuse it.
    #[arg(long, conflicts_with_all = [
        "crash_policy", "hibernation_policy", "key", "key_source", "recipient",
        "allow_plaintext_hibernation", "disk_id", "area",
        "data_unit_arg", "tweak_base_arg", "reg_out", "force", "apply", "update",
    ])]
    pub show: bool,
}

/// The settings the options ask for: the defaults, or (with `--update`) this machine's
/// current configuration, with every option given put over them.
fn settings(args: &Args, current: Option<Settings>) -> Result<Settings, CliError> {
    let fresh = current.is_none();
    let mut settings = current.unwrap_or_else(Settings::passthrough);
    if let Some(source) = args.key_source {
        settings.key_source = source.into();
        if settings.key_source != KeySource::Registry && args.key.is_none() {
            // A kept key does not go with the provider's keys, or with a sealed one.
            settings.key = None;
        }
        if settings.key_source != KeySource::Sealed && args.recipient.is_none() {
            settings.recipient = None;
        }
    }
    if let Some(recipient) = &args.recipient {
        // Checked here for a clear message; the driver's parser checks it again.
        dumpcrypt_seal::Recipient::parse(recipient.trim().as_bytes())
            .map_err(|error| CliError::Usage(format!("--recipient: {error}")))?;
        settings.recipient = Some(recipient.trim().to_string());
    }
    if args.allow_plaintext_hibernation {
        settings.allow_plaintext_hibernation = true;
    }
    if let Some(disk_id) = &args.disk_id {
        settings.disk_id = Some(disk_id.0.clone());
    }
    if let Some(policy) = args.crash_policy {
        settings.crash_dump_policy = policy.into();
    }
    if let Some(policy) = args.hibernation_policy {
        settings.hibernation_policy = policy.into();
    } else if fresh && key_in_memory(&settings) && !settings.allow_plaintext_hibernation {
        // A plaintext hibernation file would hold the crash dump key: refuse hibernation.
        settings.hibernation_policy = Policy::Refuse;
    }
    if let Some(path) = &args.key {
        settings.key = Some(read_key(path)?);
    }
    if let Some(unit) = args.transform.data_unit_arg {
        settings.data_unit = unit;
    }
    if let Some(area) = &args.transform.area {
        settings.area = (area.start != 0 || area.end != u64::MAX).then(|| area.clone());
    }
    if args.transform.tweak_base_arg.is_some() {
        settings.tweak_base = args.transform.tweak_base();
    }
    Ok(settings)
}

/// Whether crash dumps are encrypted under a key dumpcrypt holds in memory (the registry's or
/// a sealed one), which a plaintext hibernation file would carry.
fn key_in_memory(settings: &Settings) -> bool {
    settings.crash_dump_policy == Policy::Encrypt
        && matches!(settings.key_source, KeySource::Registry | KeySource::Sealed)
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    if args.show {
        let (text, valid) = registry::show()?;
        crate::out!("{text}");
        return Ok(if valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if args.apply || args.update {
        registry::available()?;
    }
    // The output's checks come before any work.
    let mut rules = Rules {
        option: "--reg-out",
        streams: true,
        force: args.force,
        binary: false,
        secret: true,
    };
    let destination = args
        .reg_out
        .as_deref()
        .map(|path| output::resolve(path, &rules))
        .transpose()?;
    let current = if args.update {
        Some(Settings::from_config(&registry::current()?))
    } else {
        None
    };
    let settings = settings(&args, current)?;
    let encrypts = settings.crash_dump_policy == Policy::Encrypt
        || settings.hibernation_policy == Policy::Encrypt;
    if settings.key_source == KeySource::Provider && settings.key.is_some() {
        return Err(CliError::Usage(
            "--key-source provider takes the keys from the volume-encryption driver: drop \
             --key (a key in the registry rests on the disk it protects)"
                .into(),
        ));
    }
    if settings.key_source == KeySource::Sealed && settings.key.is_some() {
        return Err(CliError::Usage(
            "--key-source sealed draws a fresh key at each load: drop --key (a key in the \
             registry rests on the disk it protects)"
                .into(),
        ));
    }
    if settings.key_source == KeySource::Sealed && settings.recipient.is_none() {
        return Err(CliError::Usage(
            "--key-source sealed needs --recipient age1... (what `age-keygen -y IDENTITY` \
             prints; keep the identity itself off the machine)"
                .into(),
        ));
    }
    if key_in_memory(&settings)
        && settings.hibernation_policy == Policy::Passthrough
        && !settings.allow_plaintext_hibernation
    {
        return Err(CliError::Usage(
            "crash dumps encrypted with a key held in memory and --hibernation-policy \
             passthrough: every hibernation (Fast Startup included) would write the key \
             schedule to hiberfil.sys in plaintext. Use --hibernation-policy refuse (and turn \
             hibernation off: powercfg /h off), or add --allow-plaintext-hibernation to accept \
             that"
                .into(),
        ));
    }
    if encrypts && settings.key_source == KeySource::Registry && settings.key.is_none() {
        return Err(CliError::Usage(
            "an encrypt policy needs a key: add --key FILE (make one with `dumpcrypt keygen --out FILE`)"
                .into(),
        ));
    }
    let config = settings.validate()?;
    let values = settings.values();
    // The .reg file may be standard output: then everything for people goes to stderr.
    let to_stdout = matches!(destination, Some(output::Destination::Stdout));
    let say = |text: &str| {
        if to_stdout {
            eprint!("{text}");
        } else {
            crate::out!("{text}");
        }
    };
    say(&describe(&config));
    if settings.key_source == KeySource::Sealed {
        say(
            "note             the sealed keys land in Parameters\\SealedKeys: read them with \
             `dumpcrypt unseal` or `dumpcrypt decrypt --identity`; with hibernation refused, \
             turn hibernation off (powercfg /h off): a refused hibernation shows as a fresh \
             logon, also at every Fast Startup shutdown\n",
        );
    }
    if settings.allow_plaintext_hibernation && settings.hibernation_policy == Policy::Passthrough {
        say(
            "warning          AllowPlaintextHibernation: hiberfil.sys will hold the crash dump \
             key schedule in plaintext\n",
        );
    }
    if settings.hibernation_policy == Policy::Encrypt {
        say(
            "warning          hibernation encrypt: resume works only where a pre-boot component \
             decrypts what the boot loader reads; otherwise Windows boots fresh and the \
             session is lost\n",
        );
    }
    if let Some(destination) = destination {
        rules.secret = settings.key.is_some();
        let is_file = matches!(destination, output::Destination::File { .. });
        let output = Output::open(destination, &rules, &[])?;
        let name = output.name().to_string();
        output.write_all(reg_file(&values).as_bytes())?;
        output.commit()?;
        let holds_key = if settings.key.is_some() {
            "; it holds the key: delete it once imported"
        } else {
            ""
        };
        if is_file {
            let file_name = args
                .reg_out
                .as_deref()
                .and_then(|path| path.file_name())
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            say(&format!(
                "wrote {name}: import it on the target machine with `reg import {file_name}` (as Administrator){holds_key}\n"
            ));
        } else {
            say(&format!(
                "wrote the .reg file to {name}: save it as a file and import it on the target machine with `reg import FILE` (as Administrator){holds_key}\n"
            ));
        }
    }
    if args.apply {
        registry::apply(&values)?;
        say(&format!(
            "applied to HKEY_LOCAL_MACHINE\\{PARAMETERS_SUBKEY}: it takes effect when the dump \
             stack next loads the driver (reboot to be sure)\n"
        ));
    }
    if args.reg_out.is_none() && !args.apply {
        say("the configuration is valid; nothing was written (add --reg-out FILE or --apply)\n");
    }
    Ok(ExitCode::SUCCESS)
}

/// The values as a `.reg` file: every value of the schema (so that importing it leaves
/// nothing of an older configuration), and, when there is no key, a deletion of any old Key
/// and DiskId (`"Key"=-`, `"DiskId"=-`). DWORDs as `dword:`, QWORDs as `hex(b):` (little-endian bytes), binary as
/// `hex:`, lines continued with `\` as regedit writes them, CRLF line ends.
pub fn reg_file(values: &[Value]) -> String {
    let mut text = format!(
        "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\{PARAMETERS_SUBKEY}]\r\n"
    );
    for value in values {
        let name = format!("\"{}\"=", value.name.as_str());
        let data = match &value.data {
            Data::Dword(number) => format!("dword:{number:08x}"),
            Data::Qword(number) => hex_data("hex(b):", &number.to_le_bytes(), name.len()),
            Data::Binary(bytes) => hex_data("hex:", bytes, name.len()),
            Data::Text(text) => format!("\"{}\"", reg_escape(text)),
        };
        text.push_str(&name);
        text.push_str(&data);
        text.push_str("\r\n");
    }
    for optional in OPTIONAL {
        if !values.iter().any(|value| value.name == optional) {
            text.push_str(&format!("\"{}\"=-\r\n", optional.as_str()));
        }
    }
    text
}

/// A string as a `.reg` file quotes it: `\` and `"` escaped.
fn reg_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The values written only when set: an older one is deleted when the new configuration has
/// none, so that nothing of an older configuration is left.
const OPTIONAL: [ValueName; 3] = [ValueName::Key, ValueName::DiskId, ValueName::Recipient];

/// `prefix` then comma-separated hex bytes, in lines of at most 80 columns ended by `,\`,
/// continued with a two-space indent, as regedit exports.
pub(crate) fn hex_data(prefix: &str, bytes: &[u8], indent: usize) -> String {
    let mut text = prefix.to_string();
    let mut column = indent + prefix.len();
    for (index, byte) in bytes.iter().enumerate() {
        let last = index + 1 == bytes.len();
        text.push_str(&format!("{byte:02x}"));
        column += 2;
        if !last {
            text.push(',');
            column += 1;
            // Room for one more "xx," and the continuation's `\` within 80 columns.
            if column + 3 > 79 {
                text.push_str("\\\r\n  ");
                column = 2;
            }
        }
    }
    text
}

/// This machine's registry.
#[cfg(windows)]
mod registry {
    use std::io::ErrorKind;

    use dumpcrypt_core::config::{Config, RawValue, RegistryValues, ValueName};
    use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_READ};
    use winreg::{RegKey, RegValue};

    use crate::options::CliError;
    use crate::parameters::{describe, Value, PARAMETERS_SUBKEY};

    pub fn available() -> Result<(), CliError> {
        Ok(())
    }

    fn error(action: &str, error: std::io::Error) -> CliError {
        let hint = if error.kind() == ErrorKind::PermissionDenied {
            " (run from an elevated prompt: Administrator)"
        } else {
            ""
        };
        CliError::Usage(format!(
            r"{action} HKEY_LOCAL_MACHINE\{PARAMETERS_SUBKEY}: {error}{hint}"
        ))
    }

    fn registry_type(value: &Value) -> winreg::enums::RegType {
        use winreg::enums::RegType;
        match value.registry_type() {
            dumpcrypt_core::config::REG_DWORD => RegType::REG_DWORD,
            dumpcrypt_core::config::REG_QWORD => RegType::REG_QWORD,
            dumpcrypt_core::config::REG_SZ => RegType::REG_SZ,
            _ => RegType::REG_BINARY,
        }
    }

    /// Writes every value, and deletes an old Key when the configuration has none.
    pub fn apply(values: &[Value]) -> Result<(), CliError> {
        let machine = RegKey::predef(HKEY_LOCAL_MACHINE);
        let (key, _) = machine
            .create_subkey(PARAMETERS_SUBKEY)
            .map_err(|e| error("could not create", e))?;
        for value in values {
            let raw = RegValue {
                bytes: value.bytes(),
                vtype: registry_type(value),
            };
            key.set_raw_value(value.name.as_str(), &raw)
                .map_err(|e| error("could not write to", e))?;
        }
        for optional in super::OPTIONAL {
            if values.iter().any(|value| value.name == optional) {
                continue;
            }
            match key.delete_value(optional.as_str()) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(error("could not delete an old value from", e)),
            }
        }
        Ok(())
    }

    /// The raw values of the Parameters key, as the driver would read them.
    fn read_values() -> Result<RegistryValues, CliError> {
        let machine = RegKey::predef(HKEY_LOCAL_MACHINE);
        let mut values = RegistryValues::present();
        match machine.open_subkey_with_flags(PARAMETERS_SUBKEY, KEY_READ) {
            Err(e) if e.kind() == ErrorKind::NotFound => values = RegistryValues::default(),
            Err(e) => return Err(error("could not open", e)),
            Ok(key) => {
                for name in ValueName::ALL {
                    match key.get_raw_value(name.as_str()) {
                        Ok(raw) => values.set(
                            name,
                            RawValue::new(raw.vtype as u32, raw.bytes.len(), &raw.bytes),
                        ),
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(error("could not read", e)),
                    }
                }
            }
        }
        Ok(values)
    }

    /// The configuration the driver would read at its next load, or why it would refuse it.
    pub fn current() -> Result<Config, CliError> {
        Config::parse(&read_values()?).map_err(|problem| {
            CliError::Usage(format!(
                "--update: the current configuration is invalid ({problem}); give every option \
                 without --update to replace it"
            ))
        })
    }

    /// The configuration as the driver would read it at its next load, and whether it is
    /// valid.
    pub fn show() -> Result<(String, bool), CliError> {
        let values = read_values()?;
        let origin = if values.key_present {
            format!(r"HKEY_LOCAL_MACHINE\{PARAMETERS_SUBKEY}")
        } else {
            "no Parameters key: the driver's defaults".to_string()
        };
        match Config::parse(&values) {
            Ok(config) => Ok((format!("{origin}\n{}", describe(&config)), true)),
            Err(problem) => Ok((
                format!(
                    "{origin}\nINVALID: {problem}\nthe driver would fail to load, and the system would write no dump\n"
                ),
                false,
            )),
        }
    }
}

/// Other systems have no registry to apply to.
#[cfg(not(windows))]
mod registry {
    use dumpcrypt_core::config::Config;

    use crate::options::CliError;
    use crate::parameters::Value;

    pub fn available() -> Result<(), CliError> {
        Err(CliError::Usage(
            "--apply, --update and --show work on the Windows machine being configured; here, \
             write a .reg file with --reg-out FILE and import it there with `reg import FILE`"
                .into(),
        ))
    }

    pub fn apply(_values: &[Value]) -> Result<(), CliError> {
        available()
    }

    pub fn current() -> Result<Config, CliError> {
        available().map(|()| Config::PASSTHROUGH)
    }

    pub fn show() -> Result<(String, bool), CliError> {
        available().map(|()| (String::new(), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dumpcrypt_core::geometry::TweakBase;

    #[test]
    fn the_subkey_is_the_one_the_driver_reads() {
        assert_eq!(
            dumpcrypt::kernel::PARAMETERS_PATH,
            format!(r"\Registry\Machine\{PARAMETERS_SUBKEY}")
        );
    }

    #[test]
    fn a_reg_file_as_regedit_writes_it() {
        let mut settings = Settings::passthrough();
        settings.crash_dump_policy = Policy::Encrypt;
        settings.hibernation_policy = Policy::Refuse;
        settings.key = Some(std::array::from_fn(|i| i as u8));
        settings.data_unit = 4096;
        settings.area = Some(0x10_0000..0x1_2345_6000);
        settings.tweak_base = TweakBase::Disk;
        settings.disk_id = Some(vec![0x78, 0x56, 0x34, 0x12]);
        let expected = [
            "Windows Registry Editor Version 5.00",
            "",
            r"[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters]",
            r#""CrashDumpPolicy"=dword:00000001"#,
            r#""HibernationPolicy"=dword:00000002"#,
            r#""Key"=hex:00,01,02,03,04,05,06,07,08,09,0a,0b,0c,0d,0e,0f,10,11,12,13,14,15,16,\"#,
            r#"  17,18,19,1a,1b,1c,1d,1e,1f,20,21,22,23,24,25,26,27,28,29,2a,2b,2c,2d,2e,2f,\"#,
            r#"  30,31,32,33,34,35,36,37,38,39,3a,3b,3c,3d,3e,3f"#,
            r#""DataUnitSize"=dword:00001000"#,
            r#""EncryptedAreaStart"=hex(b):00,00,10,00,00,00,00,00"#,
            r#""EncryptedAreaEnd"=hex(b):00,60,45,23,01,00,00,00"#,
            r#""TweakBase"=dword:00000001"#,
            r#""KeySource"=dword:00000000"#,
            r#""DiskId"=hex:78,56,34,12"#,
            r#""AllowPlaintextHibernation"=dword:00000000"#,
            r#""Recipient"=-"#,
            "",
        ]
        .join("\r\n");
        assert_eq!(reg_file(&settings.values()), expected);
    }

    /// `config` as the command line gives it.
    fn parse(args: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: Args,
        }
        let mut all = vec!["config"];
        all.extend_from_slice(args);
        <Command as clap::Parser>::try_parse_from(all).unwrap().args
    }

    #[test]
    fn update_changes_only_what_is_given() {
        let mut current = Settings::passthrough();
        current.crash_dump_policy = Policy::Encrypt;
        current.hibernation_policy = Policy::Refuse;
        current.key = Some(std::array::from_fn(|i| i as u8 ^ 0x55));
        current.data_unit = 4096;
        current.area = Some(0x10_0000..0x20_0000);
        current.tweak_base = TweakBase::Disk;
        current.disk_id = Some(vec![0x78, 0x56, 0x34, 0x12]);
        // Nothing given: the current configuration, key and disk included.
        let same = settings(&parse(&[]), Some(current.clone())).unwrap();
        assert_eq!(same.values(), current.values());
        // One value given: only it changes.
        let changed = settings(
            &parse(&["--tweak-base", "partition"]),
            Some(current.clone()),
        );
        let changed = changed.unwrap();
        assert_eq!(changed.tweak_base, TweakBase::Partition);
        assert_eq!(changed.key, current.key);
        assert_eq!(changed.area, current.area);
        assert_eq!(changed.data_unit, 4096);
        assert_eq!(changed.crash_dump_policy, Policy::Encrypt);
        // The whole disk given explicitly clears a configured area.
        let whole = settings(
            &parse(&["--area", "0..0xffffffffffffffff"]),
            Some(current.clone()),
        );
        assert_eq!(whole.unwrap().area, None);
        // Switching to the provider's keys drops the kept key.
        let provider = settings(&parse(&["--key-source", "provider"]), Some(current)).unwrap();
        assert_eq!(
            (provider.key_source, provider.key),
            (KeySource::Provider, None)
        );
        // Without --update the defaults stand for what is not given.
        let fresh = settings(&parse(&["--hibernation-policy", "refuse"]), None).unwrap();
        assert_eq!(fresh.crash_dump_policy, Policy::Passthrough);
        assert_eq!(fresh.hibernation_policy, Policy::Refuse);
        assert_eq!(fresh.key, None);
        assert_eq!(fresh.data_unit, 512);
        assert_eq!(fresh.area, None);
        assert_eq!(fresh.disk_id, None);
    }

    #[test]
    fn without_a_key_an_old_key_is_deleted() {
        let mut settings = Settings::passthrough();
        settings.crash_dump_policy = Policy::Refuse;
        let text = reg_file(&settings.values());
        assert!(text.contains("\"EncryptedAreaEnd\"=hex(b):ff,ff,ff,ff,ff,ff,ff,ff\r\n"));
        assert!(
            text.ends_with(
                "\"TweakBase\"=dword:00000000\r\n\"KeySource\"=dword:00000000\r\n\
                 \"AllowPlaintextHibernation\"=dword:00000000\r\n\"Key\"=-\r\n\"DiskId\"=-\r\n\
                 \"Recipient\"=-\r\n"
            ),
            "{text}"
        );
    }

    /// The age spec's example recipient.
    const RECIPIENT: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

    #[test]
    fn a_sealed_key_is_configured_by_its_recipient() {
        let args = parse(&[
            "--crash-policy",
            "encrypt",
            "--key-source",
            "sealed",
            "--recipient",
            RECIPIENT,
        ]);
        let settings = settings(&args, None).unwrap();
        assert_eq!(
            settings.hibernation_policy,
            Policy::Refuse,
            "a key in memory refuses hibernation by default"
        );
        let config = settings.validate().unwrap();
        assert_eq!(config.key_source, KeySource::Sealed);
        assert_eq!(
            config.recipient.map(|r| r.to_string()).as_deref(),
            Some(RECIPIENT)
        );
        let text = reg_file(&settings.values());
        assert!(
            text.contains(&format!("\"Recipient\"=\"{RECIPIENT}\"\r\n")),
            "{text}"
        );
        assert!(text.contains("\"KeySource\"=dword:00000002\r\n"), "{text}");
        assert!(
            text.contains("\"Key\"=-\r\n"),
            "an old key is deleted: {text}"
        );
        // And back, as `--update` reads it.
        let again = Settings::from_config(&config);
        assert_eq!(again.recipient.as_deref(), Some(RECIPIENT));
        assert_eq!(again.values(), settings.values());

        let refused = |args: &[&str]| match super::settings(&parse(args), None) {
            Ok(_) => panic!("accepted: {args:?}"),
            Err(error) => error.to_string(),
        };
        let identity = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
        assert!(
            refused(&["--key-source", "sealed", "--recipient", identity]).contains("secret key"),
            "an identity is named for what it is"
        );
        assert!(refused(&["--recipient", "age1qqqq"]).starts_with("--recipient: "));
    }

    #[test]
    fn a_key_in_memory_refuses_hibernation_unless_allowed() {
        let key = std::env::temp_dir().join(format!("dumpcrypt-config-{}.key", std::process::id()));
        std::fs::write(
            &key,
            [7u8; 32]
                .iter()
                .chain(&[9u8; 32])
                .copied()
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let key_arg = key.to_str().unwrap();
        let fresh = settings(
            &parse(&["--crash-policy", "encrypt", "--key", key_arg]),
            None,
        );
        assert_eq!(fresh.unwrap().hibernation_policy, Policy::Refuse);
        let allowed = settings(
            &parse(&[
                "--crash-policy",
                "encrypt",
                "--key",
                key_arg,
                "--allow-plaintext-hibernation",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(allowed.hibernation_policy, Policy::Passthrough);
        assert!(allowed.validate().unwrap().allow_plaintext_hibernation);
        // The provider's keys are its own: hibernation keeps its default.
        let provider = settings(
            &parse(&["--crash-policy", "encrypt", "--key-source", "provider"]),
            None,
        );
        assert_eq!(provider.unwrap().hibernation_policy, Policy::Passthrough);
        // Given explicitly, passthrough reaches the driver's parser, which refuses it.
        let explicit = settings(
            &parse(&[
                "--crash-policy",
                "encrypt",
                "--key",
                key_arg,
                "--hibernation-policy",
                "passthrough",
            ]),
            None,
        )
        .unwrap();
        assert!(explicit
            .validate()
            .unwrap_err()
            .to_string()
            .contains("AllowPlaintextHibernation"));
        std::fs::remove_file(&key).unwrap();
    }
}
