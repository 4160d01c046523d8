//! Files the tools read and write: inputs with their length, outputs that appear only when
//! complete, files for secrets that only their owner (or SYSTEM and Administrators) can read,
//! and the progress bar drawn while they are processed.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::options::CliError;

/// `-` names standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Opens an image for reading and finds its length (by seeking, which works for block
/// devices as well as files).
pub fn open_input(path: &Path) -> Result<(File, u64), CliError> {
    let mut file = File::open(path).map_err(|e| CliError::file(path, e))?;
    if file
        .metadata()
        .map_err(|e| CliError::file(path, e))?
        .is_dir()
    {
        return Err(CliError::Usage(format!(
            "{}: is a directory, not a disk image",
            path.display()
        )));
    }
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(|e| CliError::file(path, e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| CliError::file(path, e))?;
    Ok((file, len))
}

/// Where a tool's output goes: a temporary file next to the destination, renamed over it by
/// [`Output::commit`] (and deleted if the tool fails, so that no partial or wrong file is
/// ever left under the destination's name), or standard output, streamed directly.
#[derive(Debug)]
pub enum Output {
    File {
        temporary: tempfile::NamedTempFile,
        destination: PathBuf,
    },
    Stdout(std::io::Stdout),
}

impl Output {
    /// `-` is standard output. The temporary file is readable by its owner only: what the
    /// tools write (decrypted dumps) holds the crashed machine's memory.
    pub fn create(destination: &Path, input: Option<&Path>) -> Result<Self, CliError> {
        if is_stdout(destination) {
            return Ok(Self::Stdout(std::io::stdout()));
        }
        if let Some(input) = input {
            if let (Ok(a), Ok(b)) = (input.canonicalize(), destination.canonicalize()) {
                if a == b {
                    return Err(CliError::Usage(format!(
                        "{}: the output would overwrite the input; choose another file",
                        destination.display()
                    )));
                }
            }
        }
        let directory = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let name = destination
            .file_name()
            .ok_or_else(|| CliError::Usage(format!("{}: not a file name", destination.display())))?
            .to_string_lossy();
        let temporary = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(directory)
            .map_err(|e| CliError::file(destination, e))?;
        Ok(Self::File {
            temporary,
            destination: destination.to_path_buf(),
        })
    }

    pub fn is_stdout(&self) -> bool {
        matches!(self, Self::Stdout(_))
    }

    /// The name to put in messages.
    pub fn name(&self) -> String {
        match self {
            Self::File { destination, .. } => destination.display().to_string(),
            Self::Stdout(_) => "standard output".into(),
        }
    }

    /// Appends `bytes` (through `&self`, so that a writer thread can borrow the output).
    pub fn write_all(&self, bytes: &[u8]) -> Result<(), CliError> {
        let result = match self {
            Self::File { temporary, .. } => temporary.as_file().write_all(bytes),
            Self::Stdout(stdout) => stdout.lock().write_all(bytes),
        };
        result.map_err(|e| self.error(e))
    }

    fn error(&self, error: std::io::Error) -> CliError {
        match self {
            Self::File { destination, .. } => CliError::file(destination, error),
            Self::Stdout(_) => CliError::Usage(format!("standard output: {error}")),
        }
    }

    /// Flushes everything to disk and gives the file its name.
    pub fn commit(self) -> Result<(), CliError> {
        match self {
            Self::File {
                temporary,
                destination,
            } => {
                temporary
                    .as_file()
                    .sync_all()
                    .map_err(|e| CliError::file(&destination, e))?;
                temporary
                    .persist(&destination)
                    .map_err(|e| CliError::file(&destination, e.error))?;
                Ok(())
            }
            Self::Stdout(mut stdout) => stdout
                .flush()
                .map_err(|e| CliError::Usage(format!("standard output: {e}"))),
        }
    }
}

/// Creates a file for a secret (a key, or a `.reg` file holding one), readable only by its
/// owner on Unix (mode 0600) and only by SYSTEM and Administrators on Windows. An existing
/// file is refused unless `force`, and then replaced by a new file (never reused with its old
/// permissions). `create_new` also refuses to follow a symbolic link planted at the path.
pub fn create_secret(path: &Path, force: bool) -> Result<File, CliError> {
    if force {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(CliError::file(path, error)),
        }
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::Usage(format!(
                "{}: already exists; refusing to overwrite it (use --force to replace it)",
                path.display()
            ))
        } else {
            CliError::file(path, error)
        }
    })?;
    #[cfg(windows)]
    if let Err(error) = restrict_to_administrators(path) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(error);
    }
    Ok(file)
}

/// Replaces the new, still empty file's ACL with one that grants full control to SYSTEM
/// (S-1-5-18) and the Administrators group (S-1-5-32-544) only, with no inherited entries,
/// by running `icacls` (present on every Windows since Vista). The SIDs, not the localized
/// group names, are given. Our open handle keeps the write access it was opened with.
#[cfg(windows)]
fn restrict_to_administrators(path: &Path) -> Result<(), CliError> {
    let output = std::process::Command::new("icacls")
        .arg(path)
        .args([
            "/inheritance:r",
            "/grant:r",
            "*S-1-5-18:(F)",
            "*S-1-5-32-544:(F)",
        ])
        .output()
        .map_err(|e| CliError::Usage(format!("could not run icacls to protect the file: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{}: icacls could not restrict the file to SYSTEM and Administrators ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A progress bar with throughput and ETA on standard error when it is a terminal; nothing
/// at all otherwise.
pub fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template"),
    )
}
