//! Where the tools write, with one set of rules for every output option:
//!
//! - `-` is standard output, where the option can stream; where it cannot (a key file, the
//!   simulator's images), `-` is refused with a sentence, never taken as a file named `-`;
//! - an existing character or block device or FIFO is written in place (streamed into), where
//!   the option can stream, and refused where it cannot; it is never replaced;
//! - an existing directory, or a path ending in a separator, is refused before any work;
//! - an existing regular file is replaced only with `--force`, and atomically: the new
//!   content goes to a temporary file in the same directory, owner-only (0600), and takes the
//!   name only when complete; on Linux the temporary file is unnamed (`O_TMPFILE`) and linked
//!   in only on success, so that even SIGKILL leaves nothing; elsewhere it is
//!   `.NAME.XXXXXX.partial`, removed on every error and on interruption (`interrupt`);
//! - a symbolic link is followed: the rules apply to what it points to, and a regular file it
//!   points to is replaced where it lies (the link stays); a dangling link is refused;
//! - binary output to a terminal is refused unless `--force`.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::interrupt::Registration;
use crate::options::{human, CliError};

/// What an output option allows.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// The option's name, for messages (`--out`).
    pub option: &'static str,
    /// Whether the output can be a stream (standard output, a device, a FIFO). Outputs
    /// written at random offsets, or kept as files (keys), cannot.
    pub streams: bool,
    /// `--force`: replace an existing regular file; write binary data to a terminal.
    pub force: bool,
    /// The data is binary: refused on a terminal unless `force`.
    pub binary: bool,
    /// The data is a secret (a key): on Windows the file is restricted to SYSTEM and
    /// Administrators before anything is written to it; it is refused on a terminal unless
    /// `force`.
    pub secret: bool,
}

/// What an output path names, once the rules are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    /// An existing device or FIFO, written in place.
    Stream(PathBuf),
    /// A regular file to create, or (with `--force`) to replace, at its real path.
    File {
        path: PathBuf,
        replace: bool,
    },
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

fn ends_with_separator(path: &Path) -> bool {
    let text = path.as_os_str().to_string_lossy();
    text.ends_with('/') || (cfg!(windows) && text.ends_with('\\'))
}

/// What kind of thing `metadata` describes, for messages.
fn kind_of(metadata: &std::fs::Metadata) -> &'static str {
    let kind = metadata.file_type();
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_file() {
        "a regular file"
    } else {
        "neither a file nor a device"
    }
}

fn is_stream_kind(metadata: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = metadata.file_type();
        kind.is_block_device() || kind.is_char_device() || kind.is_fifo()
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        false
    }
}

/// Applies the rules to `path`, before any work is done.
pub fn resolve(path: &Path, rules: &Rules) -> Result<Destination, CliError> {
    let option = rules.option;
    let shown = path.display();
    if path.as_os_str() == "-" {
        if rules.streams {
            return Ok(Destination::Stdout);
        }
        return Err(usage(format!(
            "{option} -: this output cannot be standard output ({}); name a file (for a file \
             called `-`, write ./-)",
            if rules.secret {
                "a key is kept in an owner-only file"
            } else {
                "it is written at random offsets and read back"
            }
        )));
    }
    if path.as_os_str().is_empty() {
        return Err(usage(format!("{option}: the path is empty")));
    }
    if ends_with_separator(path) {
        return Err(usage(format!(
            "{option} {shown}: names a directory; give the path of a file in it"
        )));
    }
    let link = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            let directory = parent_of(path);
            return match std::fs::metadata(&directory) {
                Ok(metadata) if metadata.is_dir() => Ok(Destination::File {
                    path: path.to_path_buf(),
                    replace: false,
                }),
                Ok(metadata) => Err(usage(format!(
                    "{option} {shown}: {} is {}, not a directory",
                    directory.display(),
                    kind_of(&metadata)
                ))),
                Err(_) => Err(usage(format!(
                    "{option} {shown}: the directory {} does not exist",
                    directory.display()
                ))),
            };
        }
        Err(error) => return Err(CliError::file(path, error)),
    };
    let (metadata, real) = if link.file_type().is_symlink() {
        match std::fs::metadata(path) {
            Ok(metadata) => (
                metadata,
                std::fs::canonicalize(path).map_err(|e| CliError::file(path, e))?,
            ),
            Err(_) => {
                let target = std::fs::read_link(path).unwrap_or_default();
                return Err(usage(format!(
                    "{option} {shown}: is a symbolic link to {}, which does not exist; give \
                     the path of the file to create itself",
                    target.display()
                )));
            }
        }
    } else {
        (link, path.to_path_buf())
    };
    let what = if real == path {
        format!("{option} {shown}")
    } else {
        format!("{option} {shown} (a link to {})", real.display())
    };
    if metadata.is_dir() {
        return Err(usage(format!(
            "{what}: is a directory; give the path of a file in it"
        )));
    }
    if metadata.is_file() {
        if !rules.force {
            return Err(usage(format!(
                "{what}: already exists; refusing to replace it (use --force to replace it)"
            )));
        }
        return Ok(Destination::File {
            path: real,
            replace: true,
        });
    }
    if is_stream_kind(&metadata) {
        if rules.streams {
            return Ok(Destination::Stream(real));
        }
        return Err(usage(format!(
            "{what}: is {}; this output must be a regular file ({}), and an existing device \
             or FIFO is never replaced",
            kind_of(&metadata),
            if rules.secret {
                "a key is kept in an owner-only file"
            } else {
                "it is written at random offsets and read back"
            }
        )));
    }
    Err(usage(format!(
        "{what}: is {}; it cannot be written",
        kind_of(&metadata)
    )))
}

/// The directory a file path lies in (`.` for a bare name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `a` and `b` name the same existing file (through links, `..` or hard links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return a.dev() == b.dev() && a.ino() == b.ino();
        }
        false
    }
    #[cfg(not(unix))]
    {
        matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
    }
}

/// The path a destination will have, absolute and with its directory's links resolved, to
/// compare two outputs that do not exist yet.
pub fn final_path(destination: &Destination) -> Option<PathBuf> {
    match destination {
        Destination::Stdout => None,
        Destination::Stream(path) | Destination::File { path, .. } => {
            let directory = std::fs::canonicalize(parent_of(path)).ok()?;
            Some(directory.join(path.file_name()?))
        }
    }
}

/// Refuses a binary or secret output to a terminal unless forced.
fn check_terminal(rules: &Rules, is_terminal: bool, name: &str) -> Result<(), CliError> {
    if !is_terminal || rules.force || !(rules.binary || rules.secret) {
        return Ok(());
    }
    Err(usage(format!(
        "{} {name}: is a terminal; {} would be written to it. Redirect it (`> FILE`, `| \
         program`) or pass --force",
        rules.option,
        if rules.secret { "a key" } else { "binary data" }
    )))
}

/// Fails when the file system holding `directory` has less than `bytes` available.
pub fn ensure_space(directory: &Path, bytes: u64, name: &str) -> Result<(), CliError> {
    let Ok(available) = fs4::available_space(directory) else {
        return Ok(()); // unknown: the write itself reports a full disk
    };
    if available < bytes {
        return Err(usage(format!(
            "{name}: needs {} ({bytes} bytes) but its file system has {} available; free some \
             space or write elsewhere",
            human(bytes),
            human(available)
        )));
    }
    Ok(())
}

/// A temporary file in the destination's directory that takes the destination's name only
/// when complete.
#[derive(Debug)]
enum Temporary {
    /// Linux `O_TMPFILE`: no name until linked in.
    #[cfg(target_os = "linux")]
    Unnamed(File),
    /// `.NAME.XXXXXX.partial`, removed on errors and interruptions.
    Named(tempfile::NamedTempFile, Registration),
}

impl Temporary {
    fn create(destination: &Path, secret: bool) -> Result<Self, CliError> {
        let directory = parent_of(destination);
        #[cfg(target_os = "linux")]
        if let Some(file) = unnamed_in(&directory) {
            return Ok(Self::Unnamed(file));
        }
        let name = destination
            .file_name()
            .ok_or_else(|| usage(format!("{}: not a file name", destination.display())))?
            .to_string_lossy()
            .into_owned();
        let file = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&directory)
            .map_err(|e| CliError::file(&directory, e))?;
        let registration = Registration::new(file.path());
        #[cfg(windows)]
        if secret {
            crate::secret::restrict_to_administrators(file.path())?;
        }
        let _ = secret;
        Ok(Self::Named(file, registration))
    }

    fn file(&self) -> &File {
        match self {
            #[cfg(target_os = "linux")]
            Self::Unnamed(file) => file,
            Self::Named(file, _) => file.as_file(),
        }
    }

    /// Gives the complete file its name: a new name only when `replace` is false, so that a
    /// file that appeared meanwhile is not replaced either.
    fn commit(self, destination: &Path, replace: bool) -> Result<(), CliError> {
        self.file()
            .sync_all()
            .map_err(|e| CliError::file(destination, e))?;
        match self {
            #[cfg(target_os = "linux")]
            Self::Unnamed(file) => link_unnamed(&file, destination, replace),
            Self::Named(file, registration) => registration.release(|| {
                let result = if replace {
                    file.persist(destination).map(drop)
                } else {
                    file.persist_noclobber(destination).map(drop)
                };
                result.map_err(|e| appeared(destination, e.error))
            }),
        }?;
        sync_directory(destination);
        Ok(())
    }
}

fn appeared(destination: &Path, error: std::io::Error) -> CliError {
    if error.kind() == std::io::ErrorKind::AlreadyExists {
        usage(format!(
            "{}: appeared while this ran; it was left as it is and nothing was written (use \
             --force to replace it)",
            destination.display()
        ))
    } else {
        CliError::file(destination, error)
    }
}

/// The rename is durable only once the directory is.
fn sync_directory(destination: &Path) {
    #[cfg(unix)]
    if let Ok(directory) = File::open(parent_of(destination)) {
        let _ = directory.sync_all();
    }
    #[cfg(not(unix))]
    let _ = destination;
}

/// An unnamed owner-only file in `directory`, when the file system supports `O_TMPFILE` and
/// `/proc/self/fd` is there to link it in by.
#[cfg(target_os = "linux")]
fn unnamed_in(directory: &Path) -> Option<File> {
    use rustix::fs::{Mode, OFlags};
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    rustix::fs::open(directory, flags, Mode::from_raw_mode(0o600))
        .ok()
        .map(File::from)
}

#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, destination: &Path, replace: bool) -> Result<(), CliError> {
    use rustix::fs::{AtFlags, CWD};
    use std::os::fd::AsRawFd;
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    let link = |to: &Path| {
        rustix::fs::linkat(CWD, source.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW)
            .map_err(std::io::Error::from)
    };
    if !replace {
        return link(destination).map_err(|e| appeared(destination, e));
    }
    // Replacing: link under a temporary name, then rename over the old file (atomic).
    let name = destination
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let directory = parent_of(destination);
    for attempt in 0..100u32 {
        let staged = directory.join(format!(".{name}.{}.{attempt}.partial", std::process::id()));
        let registration = Registration::new(&staged);
        match link(&staged) {
            Ok(()) => {
                return registration
                    .release(|| std::fs::rename(&staged, destination))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&staged);
                        CliError::file(destination, e)
                    });
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(CliError::file(destination, error)),
        }
    }
    Err(usage(format!(
        "{}: could not find a free temporary name in {}",
        destination.display(),
        directory.display()
    )))
}

#[derive(Debug)]
enum Sink {
    Stdout(std::io::Stdout),
    Stream(File),
    File {
        temporary: Temporary,
        destination: PathBuf,
        replace: bool,
    },
}

/// An output being written: standard output, a device or FIFO written in place, or a
/// temporary file that takes its name in [`Output::commit`] (and vanishes otherwise).
#[derive(Debug)]
pub struct Output {
    sink: Sink,
    name: String,
}

impl Output {
    /// Applies the rules to `path` and opens the output, before any work is done. `inputs`
    /// are the files the run reads: the output may not be one of them.
    pub fn create(path: &Path, rules: &Rules, inputs: &[&Path]) -> Result<Self, CliError> {
        let destination = resolve(path, rules)?;
        Self::open(destination, rules, inputs)
    }

    /// Opens a destination [`resolve`] gave.
    pub fn open(
        destination: Destination,
        rules: &Rules,
        inputs: &[&Path],
    ) -> Result<Self, CliError> {
        crate::interrupt::install();
        if let Destination::Stream(path) | Destination::File { path, .. } = &destination {
            if let Some(input) = inputs.iter().find(|input| same_file(input, path)) {
                return Err(usage(format!(
                    "{} {}: is the input {}; the output would overwrite what is being read",
                    rules.option,
                    path.display(),
                    input.display()
                )));
            }
        }
        match destination {
            Destination::Stdout => {
                check_terminal(rules, std::io::stdout().is_terminal(), "-")?;
                Ok(Self {
                    sink: Sink::Stdout(std::io::stdout()),
                    name: "standard output".into(),
                })
            }
            Destination::Stream(path) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| CliError::file(&path, e))?;
                // Opened by name: make sure it is still what was checked.
                let metadata = file.metadata().map_err(|e| CliError::file(&path, e))?;
                if !is_stream_kind(&metadata) {
                    return Err(usage(format!(
                        "{}: changed while being opened (it is now {})",
                        path.display(),
                        kind_of(&metadata)
                    )));
                }
                check_terminal(rules, file.is_terminal(), &path.display().to_string())?;
                Ok(Self {
                    name: path.display().to_string(),
                    sink: Sink::Stream(file),
                })
            }
            Destination::File { path, replace } => Ok(Self {
                name: path.display().to_string(),
                sink: Sink::File {
                    temporary: Temporary::create(&path, rules.secret)?,
                    destination: path,
                    replace,
                },
            }),
        }
    }

    pub fn is_stdout(&self) -> bool {
        matches!(self.sink, Sink::Stdout(_))
    }

    /// The name to put in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fails before any work when the output is a file and its file system cannot hold
    /// `bytes` more (a replaced file's space comes back only once it is replaced).
    pub fn ensure_space(&self, bytes: u64) -> Result<(), CliError> {
        match &self.sink {
            Sink::File { destination, .. } => {
                ensure_space(&parent_of(destination), bytes, &self.name)
            }
            _ => Ok(()),
        }
    }

    /// Appends `bytes` (through `&self`, so that a writer thread can borrow the output).
    pub fn write_all(&self, bytes: &[u8]) -> Result<(), CliError> {
        let result = match &self.sink {
            Sink::Stdout(stdout) => stdout.lock().write_all(bytes),
            Sink::Stream(file) => {
                let mut writer: &File = file;
                writer.write_all(bytes)
            }
            Sink::File { temporary, .. } => temporary.file().write_all(bytes),
        };
        result.map_err(|e| self.error(e))
    }

    fn error(&self, error: std::io::Error) -> CliError {
        usage(format!("{}: {error}", self.name))
    }

    /// Flushes everything and gives a file its name.
    pub fn commit(self) -> Result<(), CliError> {
        match self.sink {
            Sink::Stdout(stdout) => stdout
                .lock()
                .flush()
                .map_err(|e| usage(format!("standard output: {e}"))),
            Sink::Stream(file) => {
                // Devices that cache (block devices) flush; FIFOs and character devices
                // cannot, and need not.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::FileTypeExt;
                    if file
                        .metadata()
                        .is_ok_and(|m| m.file_type().is_block_device())
                    {
                        file.sync_all()
                            .map_err(|e| usage(format!("{}: {e}", self.name)))?;
                    }
                }
                drop(file);
                Ok(())
            }
            Sink::File {
                temporary,
                destination,
                replace,
            } => temporary.commit(&destination, replace),
        }
    }
}

/// A named temporary file for a tool that opens its output by path (the simulator's disk
/// images): in the destination's directory, owner-only, removed on errors and interruptions,
/// and given the destination's name by [`PendingFile::commit`].
#[derive(Debug)]
pub struct PendingFile {
    path: tempfile::TempPath,
    registration: Registration,
    destination: Option<(PathBuf, bool)>,
}

impl PendingFile {
    /// For a destination [`resolve`] gave (a regular file).
    pub fn for_destination(destination: &Destination) -> Result<Self, CliError> {
        let Destination::File { path, replace } = destination else {
            return Err(usage(
                "internal error: a pending file for a stream".to_string(),
            ));
        };
        crate::interrupt::install();
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let directory = parent_of(path);
        let file = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&directory)
            .map_err(|e| CliError::file(&directory, e))?;
        let path_of = file.into_temp_path();
        Ok(Self {
            registration: Registration::new(&path_of),
            path: path_of,
            destination: Some((path.clone(), *replace)),
        })
    }

    /// A scratch file in the system's temporary directory, never kept.
    pub fn scratch(prefix: &str) -> Result<Self, CliError> {
        crate::interrupt::install();
        let directory = std::env::temp_dir();
        let file = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(&directory)
            .map_err(|e| CliError::file(&directory, e))?;
        let path = file.into_temp_path();
        Ok(Self {
            registration: Registration::new(&path),
            path,
            destination: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the file will end up (its own directory for a scratch file).
    pub fn directory(&self) -> PathBuf {
        match &self.destination {
            Some((path, _)) => parent_of(path),
            None => parent_of(&self.path),
        }
    }

    /// Removes the name of a scratch file that its user holds open: on Unix the file lives on
    /// unnamed until closed, so nothing can be left behind, even by SIGKILL.
    pub fn unlink_scratch(self) -> Option<Self> {
        #[cfg(unix)]
        if self.destination.is_none() {
            let Self {
                path, registration, ..
            } = self;
            registration.release(|| drop(path));
            return None;
        }
        Some(self)
    }

    /// Gives the complete file its name.
    pub fn commit(self) -> Result<(), CliError> {
        let Self {
            path,
            registration,
            destination,
        } = self;
        let Some((destination, replace)) = destination else {
            registration.release(|| drop(path));
            return Ok(());
        };
        registration.release(|| {
            let result = if replace {
                path.persist(&destination)
            } else {
                path.persist_noclobber(&destination)
            };
            result.map_err(|e| appeared(&destination, e.error))
        })?;
        sync_directory(&destination);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        option: "--out",
        streams: true,
        force: false,
        binary: true,
        secret: false,
    };

    #[test]
    fn paths_are_classified_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let new = dir.path().join("new");
        assert_eq!(
            resolve(Path::new("-"), &RULES).unwrap(),
            Destination::Stdout
        );
        assert_eq!(
            resolve(&new, &RULES).unwrap(),
            Destination::File {
                path: new.clone(),
                replace: false
            }
        );
        let refused = |path: &Path, rules: &Rules, reason: &str| {
            let error = resolve(path, rules).unwrap_err().to_string();
            assert!(error.contains(reason), "{}: {error}", path.display());
        };
        refused(&file, &RULES, "--force");
        refused(dir.path(), &RULES, "is a directory");
        refused(&dir.path().join("sub/"), &RULES, "names a directory");
        refused(&dir.path().join("missing/x"), &RULES, "does not exist");
        refused(&file.join("x"), &RULES, "not a directory");
        refused(Path::new(""), &RULES, "empty");
        let file_only = Rules {
            streams: false,
            ..RULES
        };
        refused(Path::new("-"), &file_only, "./-");
        let forced = Rules {
            force: true,
            ..RULES
        };
        assert_eq!(
            resolve(&file, &forced).unwrap(),
            Destination::File {
                path: file,
                replace: true
            }
        );
    }

    #[test]
    fn a_file_takes_its_name_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.raw");
        let output = Output::create(&path, &RULES, &[]).unwrap();
        output.write_all(b"complete").unwrap();
        assert!(!path.exists());
        output.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"complete");
        // Dropped without a commit: nothing appears, nothing is left.
        let other = dir.path().join("other.raw");
        let output = Output::create(&other, &RULES, &[]).unwrap();
        output.write_all(b"partial").unwrap();
        drop(output);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.raw")]);
    }
}
