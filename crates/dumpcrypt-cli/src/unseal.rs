//! `dumpcrypt unseal`: opens the sealed keys of the `sealed` key source with the
//! administrator's age identity, lists them by load time and fingerprint, and writes one or
//! all of them as key files.
//!
//! What is read: the identity file as `age-keygen -o` writes it (comments, one or more
//! `AGE-SECRET-KEY-1…` lines), and a `reg export` of the SealedKeys ring (`sealed_keys`).
//! Each blob is an age v1 file holding a 64-byte XTS key; the `age` crate (str4d/rage) opens
//! it. Keys are shown only by fingerprint; a key file is written as `keygen` writes one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dumpcrypt_xts::KEY_LEN;

use crate::options::CliError;
use crate::output::{self, Output, Rules};
use crate::parameters::fingerprint;
use crate::sealed_keys::{self, SealedKey, Stamp};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The age identity file (as `age-keygen -o` writes it: comments and one or more
    /// AGE-SECRET-KEY-1… lines) whose recipient the driver seals its keys to.
    #[arg(long, value_name = "FILE")]
    pub identity: PathBuf,
    /// The sealed keys: a `reg export` of the Parameters or the SealedKeys key (UTF-16LE as
    /// regedit writes it, or UTF-8).
    #[arg(long = "sealed-keys", value_name = "FILE.reg")]
    pub sealed_keys: PathBuf,
    /// Write the newest key that opens (or --stamp's) as a 64-byte key file, owner-only (on
    /// Windows: SYSTEM and Administrators). A regular file only: `-`, devices and FIFOs are
    /// refused.
    #[arg(long, value_name = "KEY")]
    pub out: Option<PathBuf>,
    /// With --out: the key of this load, by its value name (e.g. 20261201T234940.1234567Z).
    #[arg(long, requires = "out", value_parser = Stamp::parse)]
    pub stamp: Option<Stamp>,
    /// Write every key that opens as DIR/<stamp>.key (DIR must exist).
    #[arg(long = "out-dir", value_name = "DIR", conflicts_with = "out")]
    pub out_dir: Option<PathBuf>,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

/// A file larger than this is neither an identity file nor an export of the ring (16
/// values of 264 bytes take 30 KB as regedit writes them).
const MAX_INPUT_LEN: u64 = 16 << 20;

/// An unsealed 64-byte key, wiped when dropped and never printed.
pub struct Key([u8; KEY_LEN]);

impl Key {
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(fingerprint {})", self.fingerprint())
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// What became of one sealed key.
#[derive(Debug)]
pub enum Outcome {
    Opened(Key),
    /// Sealed to another recipient.
    NotForIdentity,
    /// Not an age file, or one that fails its checks.
    Damaged(String),
    /// It opened, but what it holds is no XTS key.
    NotAKey(String),
}

/// One value of the ring and what became of it.
#[derive(Debug)]
pub struct Entry {
    pub stamp: Stamp,
    pub outcome: Outcome,
}

impl Entry {
    pub fn key(&self) -> Option<&Key> {
        match &self.outcome {
            Outcome::Opened(key) => Some(key),
            _ => None,
        }
    }

    /// One line for people: the stamp, as written and readable, then the fingerprint or
    /// why there is none.
    pub fn describe(&self) -> String {
        let what = match &self.outcome {
            Outcome::Opened(key) => format!("key fingerprint {}", key.fingerprint()),
            Outcome::NotForIdentity => "not sealed to this identity".to_string(),
            Outcome::Damaged(reason) => format!("damaged: {reason}"),
            Outcome::NotAKey(reason) => format!("opened, but {reason}"),
        };
        format!("{}  {}  {what}", self.stamp, self.stamp.readable())
    }
}

/// Reads a small input file whole; `-` and directories are refused with a sentence.
fn read_small(path: &Path, option: &str, what: &str) -> Result<Vec<u8>, CliError> {
    if path.as_os_str() == "-" {
        return Err(CliError::Usage(format!(
            "{option} -: {what} is read from a file, not from standard input (which may carry \
             the image); name the file (for a file called `-`, write ./-)"
        )));
    }
    let metadata = std::fs::metadata(path).map_err(|e| CliError::file(path, e))?;
    if metadata.is_dir() {
        return Err(CliError::Usage(format!(
            "{option} {}: is a directory; name {what}",
            path.display()
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| CliError::file(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::file(path, e))?;
    if bytes.len() as u64 > MAX_INPUT_LEN {
        bytes.fill(0);
        return Err(CliError::Usage(format!(
            "{option} {}: is larger than 16 MiB; it cannot be {what}",
            path.display()
        )));
    }
    Ok(bytes)
}

/// The identities of an age identity file.
pub type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

/// Reads the identity file: UTF-8 (a BOM and CRLF line ends, as Notepad saves, are taken
/// too), comments and `AGE-SECRET-KEY-1…` lines, as the `age` crate parses it.
pub fn read_identity(path: &Path) -> Result<Identities, CliError> {
    let mut bytes = read_small(path, "--identity", "an age identity file")?;
    let start = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mut text: Vec<u8> = bytes[start..]
        .iter()
        .copied()
        .filter(|&byte| byte != b'\r')
        .collect();
    bytes.fill(0);
    std::hint::black_box(&bytes);
    let parsed = age::IdentityFile::from_buffer(text.as_slice());
    let recipient_only = !text.windows(15).any(|w| w == b"AGE-SECRET-KEY-")
        && text
            .split(|&b| b == b'\n')
            .any(|line| line.starts_with(b"age1"));
    text.fill(0);
    std::hint::black_box(&text);
    let hint = if recipient_only {
        " (this looks like a recipients file, the public key; the identity is the file \
         `age-keygen -o` wrote, with its AGE-SECRET-KEY-1… line)"
    } else {
        ""
    };
    let identities = parsed
        .and_then(|file| file.into_identities().map_err(std::io::Error::other))
        .map_err(|error| {
            CliError::Usage(format!("--identity {}: {error}{hint}", path.display()))
        })?;
    if identities.is_empty() {
        return Err(CliError::Usage(format!(
            "--identity {}: holds no age identity (an AGE-SECRET-KEY-1… line){hint}",
            path.display()
        )));
    }
    Ok(identities)
}

/// Reads the ring from a `.reg` file, newest first; an export without any sealed key is
/// an error.
pub fn read_sealed_keys(path: &Path) -> Result<Vec<SealedKey>, CliError> {
    let bytes = read_small(path, "--sealed-keys", "a .reg export of the sealed keys")?;
    let keys = sealed_keys::parse_reg(&bytes)
        .map_err(|error| CliError::Usage(format!("--sealed-keys {}: {error}", path.display())))?;
    if keys.is_empty() {
        return Err(CliError::Usage(format!(
            "--sealed-keys {}: holds no sealed key: no REG_BINARY value in a key \
             …\\Parameters\\SealedKeys (export it with `reg export \
             HKLM\\{} FILE.reg`)",
            path.display(),
            sealed_keys::SEALED_KEYS_SUBKEY
        )));
    }
    Ok(sealed_keys::newest_first(keys))
}

/// Opens one sealed key with the identities.
fn open(identities: &Identities, blob: &[u8]) -> Outcome {
    let decryptor = match age::Decryptor::new_buffered(blob) {
        Ok(decryptor) => decryptor,
        Err(error) => return Outcome::Damaged(format!("not an age v1 file ({error})")),
    };
    let identities = identities
        .iter()
        .map(|identity| identity.as_ref() as &dyn age::Identity);
    let mut reader = match decryptor.decrypt(identities) {
        Ok(reader) => reader,
        Err(age::DecryptError::NoMatchingKeys) => return Outcome::NotForIdentity,
        Err(error) => return Outcome::Damaged(error.to_string()),
    };
    // Room for a key and more, so that the buffer holding it is never reallocated (which
    // would leave a copy behind).
    let mut payload = Vec::with_capacity(4 * KEY_LEN);
    let read = (&mut reader)
        .take(4 * KEY_LEN as u64 - 1)
        .read_to_end(&mut payload);
    let outcome = match read {
        Err(error) => Outcome::Damaged(error.to_string()),
        Ok(_) => match <[u8; KEY_LEN]>::try_from(payload.as_slice()) {
            Err(_) => Outcome::NotAKey(format!(
                "it holds {} bytes, not a 64-byte XTS key",
                payload.len()
            )),
            Ok(mut key) if key[..32] == key[32..] => {
                key.fill(0);
                std::hint::black_box(&key);
                Outcome::NotAKey("its two key halves are equal: not an XTS key".into())
            }
            Ok(key) => Outcome::Opened(Key(key)),
        },
    };
    payload.fill(0);
    std::hint::black_box(&payload);
    outcome
}

/// Opens every sealed key of the `.reg` file with the identity file, newest first.
pub fn unseal_all(identity: &Path, sealed_keys: &Path) -> Result<Vec<Entry>, CliError> {
    let identities = read_identity(identity)?;
    let keys = read_sealed_keys(sealed_keys)?;
    Ok(keys
        .into_iter()
        .map(|sealed| Entry {
            outcome: open(&identities, &sealed.blob),
            stamp: sealed.stamp,
        })
        .collect())
}

/// The listing's lines and its summary; fails (after the lines) when no key opens.
pub fn listing(
    entries: &[Entry],
    identity: &Path,
    sealed_keys: &Path,
) -> Result<String, (String, CliError)> {
    let mut text = format!(
        "sealed keys in {}, newest first (load time stamp, UTC):\n",
        sealed_keys.display()
    );
    for entry in entries {
        text.push_str(&format!("  {}\n", entry.describe()));
    }
    let opened = entries.iter().filter(|entry| entry.key().is_some()).count();
    if opened == 0 {
        let error = CliError::Usage(format!(
            "none of the {} sealed keys in {} opens with the identity {}: they were sealed \
             to another recipient, or are damaged (see above)",
            entries.len(),
            sealed_keys.display(),
            identity.display()
        ));
        return Err((text, error));
    }
    text.push_str(&format!(
        "{opened} of {} opened with {}\n",
        entries.len(),
        identity.display()
    ));
    Ok(text)
}

fn key_rules(option: &'static str, force: bool) -> Rules {
    Rules {
        option,
        streams: false,
        force,
        binary: true,
        secret: true,
    }
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    let inputs = [args.identity.as_path(), args.sealed_keys.as_path()];
    // Where the keys go is checked before any work.
    let out = args
        .out
        .as_deref()
        .map(|path| output::resolve(path, &key_rules("--out", args.force)))
        .transpose()?;
    if let Some(directory) = &args.out_dir {
        if !directory.is_dir() {
            return Err(CliError::Usage(format!(
                "--out-dir {}: is not an existing directory",
                directory.display()
            )));
        }
    }
    let entries = unseal_all(&args.identity, &args.sealed_keys)?;
    match listing(&entries, &args.identity, &args.sealed_keys) {
        Ok(text) => crate::out!("{text}"),
        Err((text, error)) => {
            crate::out!("{text}");
            return Err(error);
        }
    }
    if let Some(destination) = out {
        let chosen = match &args.stamp {
            Some(stamp) => {
                let entry = entries
                    .iter()
                    .find(|entry| &entry.stamp == stamp)
                    .ok_or_else(|| {
                        CliError::Usage(format!(
                            "--stamp {stamp}: {} holds no sealed key of that load (listed above)",
                            args.sealed_keys.display()
                        ))
                    })?;
                if entry.key().is_none() {
                    return Err(CliError::Usage(format!(
                        "--stamp {stamp}: that key did not open (see above); nothing was written"
                    )));
                }
                entry
            }
            None => entries
                .iter()
                .find(|entry| entry.key().is_some())
                .expect("the listing checked that one opened"),
        };
        let key = chosen.key().expect("chosen among the opened");
        let rules = key_rules("--out", args.force);
        let output = Output::open(destination, &rules, &inputs)?;
        output.write_all(key.bytes())?;
        let name = output.name().to_string();
        output.commit()?;
        crate::outln!(
            "{name}: the key of {} ({}), fingerprint {}",
            chosen.stamp,
            chosen.stamp.readable(),
            key.fingerprint()
        );
    }
    if let Some(directory) = &args.out_dir {
        write_all_keys(&entries, directory, args.force, &inputs)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Every opened key as DIR/<stamp>.key: all destinations are checked first, all files
/// written, and only then do they take their names.
fn write_all_keys(
    entries: &[Entry],
    directory: &Path,
    force: bool,
    inputs: &[&Path],
) -> Result<(), CliError> {
    let rules = key_rules("--out-dir", force);
    let opened: Vec<(&Entry, &Key)> = entries
        .iter()
        .filter_map(|entry| entry.key().map(|key| (entry, key)))
        .collect();
    let destinations = opened
        .iter()
        .map(|(entry, _)| output::resolve(&directory.join(format!("{}.key", entry.stamp)), &rules))
        .collect::<Result<Vec<_>, CliError>>()?;
    let mut outputs = Vec::new();
    for (destination, (_, key)) in destinations.into_iter().zip(&opened) {
        let output = Output::open(destination, &rules, inputs)?;
        output.write_all(key.bytes())?;
        outputs.push(output);
    }
    for (output, (entry, key)) in outputs.into_iter().zip(&opened) {
        let name = output.name().to_string();
        output.commit()?;
        crate::outln!(
            "{name}: the key of {}, fingerprint {}",
            entry.stamp,
            key.fingerprint()
        );
    }
    Ok(())
}
