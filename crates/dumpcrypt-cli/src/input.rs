//! What the tools read: an image from a file, a block device, a pipe or standard input
//! (`-`), with its length when it has one, and the progress bar drawn while it is read.
//!
//! A regular file or block device (also as standard input, `< disk.raw`) is seekable and has
//! a length. A pipe, FIFO or character device is a stream: tools that can stream read it once
//! from the start; tools that must seek refuse it with a sentence (never `Illegal seek`).

use std::fs::File;
use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::options::CliError;

/// An opened input.
#[derive(Debug)]
pub struct Input {
    pub file: File,
    /// `Some(length)` for a file or block device; `None` for a stream.
    pub len: Option<u64>,
    /// The name for messages (`standard input` for `-`).
    pub name: String,
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

/// Opens `path` (`-`: standard input) for reading.
pub fn open(path: &Path, option: &str) -> Result<Input, CliError> {
    if path.as_os_str() == "-" {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Err(usage(format!(
                "{option} -: standard input is a terminal; pipe the image in (`… | dumpcrypt …`) \
                 or redirect it (`< disk.raw`), or name the file"
            )));
        }
        let file = duplicate_stdin(&stdin)
            .map_err(|e| usage(format!("{option} -: standard input: {e}")))?;
        return classify(file, "standard input".into());
    }
    let metadata = std::fs::metadata(path).map_err(|e| CliError::file(path, e))?;
    if metadata.is_dir() {
        return Err(usage(format!(
            "{}: is a directory, not a disk image",
            path.display()
        )));
    }
    let file = File::open(path).map_err(|e| CliError::file(path, e))?;
    classify(file, path.display().to_string())
}

#[cfg(unix)]
fn duplicate_stdin(stdin: &std::io::Stdin) -> std::io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(stdin.as_fd().try_clone_to_owned()?))
}

#[cfg(windows)]
fn duplicate_stdin(stdin: &std::io::Stdin) -> std::io::Result<File> {
    use std::os::windows::io::AsHandle;
    Ok(File::from(stdin.as_handle().try_clone_to_owned()?))
}

/// A regular file or block device has a length (found by seeking, which works for devices
/// too); anything else is a stream.
fn classify(mut file: File, name: String) -> Result<Input, CliError> {
    let metadata = file.metadata().map_err(|e| usage(format!("{name}: {e}")))?;
    let seekable = metadata.is_file() || {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            metadata.file_type().is_block_device()
        }
        #[cfg(not(unix))]
        false
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if metadata.file_type().is_socket() {
            return Err(usage(format!("{name}: is a socket, not an image")));
        }
    }
    let len = if seekable {
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| usage(format!("{name}: {e}")))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| usage(format!("{name}: {e}")))?;
        Some(len)
    } else {
        None
    };
    Ok(Input { file, len, name })
}

impl Input {
    /// The length, or a sentence saying why this tool needs one.
    pub fn require_len(&self, why: &str) -> Result<u64, CliError> {
        self.len.ok_or_else(|| {
            usage(format!(
                "{}: is a pipe or character device, and {why}: it needs a file or a block \
                 device it can seek in; save the stream to a file first",
                self.name
            ))
        })
    }

    /// Reads and drops `bytes` bytes of a stream (a seekable input seeks instead).
    pub fn skip(&mut self, bytes: u64) -> Result<(), CliError> {
        if self.len.is_some() {
            self.file
                .seek(SeekFrom::Start(bytes))
                .map_err(|e| usage(format!("{}: {e}", self.name)))?;
            return Ok(());
        }
        let skipped = std::io::copy(&mut (&self.file).take(bytes), &mut std::io::sink())
            .map_err(|e| usage(format!("{}: {e}", self.name)))?;
        if skipped < bytes {
            return Err(usage(format!(
                "{}: the stream ended after {skipped:#x} bytes, before the start of --range \
                 ({bytes:#x})",
                self.name
            )));
        }
        Ok(())
    }
}

/// Reads until `out` is full or the input ends; returns the bytes read.
pub fn read_full(reader: &mut impl Read, out: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < out.len() {
        match reader.read(&mut out[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A progress bar with throughput and ETA (or, with no known total, the bytes so far) on
/// standard error when it is a terminal; nothing at all otherwise.
pub fn progress_bar(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match total {
        Some(_) => "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        None => "{spinner} {bytes} {binary_bytes_per_sec}",
    };
    ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
        .with_style(ProgressStyle::with_template(template).expect("a valid template"))
}
