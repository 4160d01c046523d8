//! Interrupted runs leave nothing behind: the temporary files of a run in progress are
//! registered here and removed when SIGINT, SIGTERM or SIGHUP (on Windows: Ctrl-C,
//! Ctrl-Break, console close) arrives; the process then exits with the conventional status,
//! 128 + the signal number (130, 143, 129), or STATUS_CONTROL_C_EXIT (0xC000013A) on Windows.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

/// The temporary files to remove if the run is interrupted now.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> MutexGuard<'static, Vec<PathBuf>> {
    PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Installs the handler once; every subcommand that writes calls it before creating anything.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(error) = platform::install() {
            // Not fatal: the run still removes its temporary files on every error path.
            eprintln!("dumpcrypt: warning: cannot catch interruptions ({error})");
        }
    });
}

/// A temporary file that an interruption removes, until it is released.
#[derive(Debug)]
pub struct Registration {
    path: Option<PathBuf>,
}

impl Registration {
    pub fn new(path: &Path) -> Self {
        pending().push(path.to_path_buf());
        Self {
            path: Some(path.to_path_buf()),
        }
    }

    /// Runs `commit` (the rename that gives the file its name) while no interruption can
    /// remove anything, then forgets the path: an interruption is handled either before the
    /// rename (the file is removed and nothing appears) or after it (the output is complete).
    pub fn release<T>(mut self, commit: impl FnOnce() -> T) -> T {
        let mut pending = pending();
        let result = commit();
        if let Some(path) = self.path.take() {
            forget(&mut pending, &path);
        }
        result
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            forget(&mut pending(), &path);
        }
    }
}

fn forget(pending: &mut Vec<PathBuf>, path: &Path) {
    if let Some(index) = pending.iter().position(|entry| entry == path) {
        pending.swap_remove(index);
    }
}

/// Removes every registered file and ends the process. The list stays locked until the
/// process is gone, so no rename can happen in between.
fn clean_up_and_exit(code: i32, cause: &str) -> ! {
    let pending = pending();
    let removed = pending
        .iter()
        .filter(|path| std::fs::remove_file(path).is_ok())
        .count();
    let what = match removed {
        0 => String::new(),
        1 => ": removed the unfinished output".to_string(),
        n => format!(": removed {n} unfinished outputs"),
    };
    eprintln!("\ndumpcrypt: interrupted by {cause}{what}");
    std::process::exit(code)
}

/// Writes to standard output. A closed pipe (`dumpcrypt … | head`) ends the run quietly, as
/// SIGPIPE ends other tools, after removing the temporary files (Rust ignores SIGPIPE, and
/// `println!` would panic instead); the exit status is 141 (128 + SIGPIPE) on Unix.
pub fn print(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(args).and_then(|()| stdout.flush());
    drop(stdout);
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            let pending = pending();
            for path in pending.iter() {
                let _ = std::fs::remove_file(path);
            }
            std::process::exit(if cfg!(unix) { 128 + 13 } else { 1 });
        }
        Err(error) => {
            eprintln!("dumpcrypt: standard output: {error}");
            let pending = pending();
            for path in pending.iter() {
                let _ = std::fs::remove_file(path);
            }
            std::process::exit(1);
        }
    }
}

/// `print!` through [`print`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::interrupt::print(format_args!($($arg)*))
    };
}

/// `println!` through [`print`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::interrupt::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(unix)]
mod platform {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    pub fn install() -> std::io::Result<()> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        std::thread::Builder::new()
            .name("interruptions".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    let name = match signal {
                        SIGINT => "SIGINT",
                        SIGTERM => "SIGTERM",
                        _ => "SIGHUP",
                    };
                    super::clean_up_and_exit(128 + signal, name);
                }
            })?;
        Ok(())
    }
}

#[cfg(windows)]
mod platform {
    /// STATUS_CONTROL_C_EXIT, what Windows reports for a console process ended by Ctrl-C.
    const STATUS_CONTROL_C_EXIT: u32 = 0xC000_013A;

    pub fn install() -> std::io::Result<()> {
        ctrlc::set_handler(|| {
            super::clean_up_and_exit(
                i32::from_ne_bytes(STATUS_CONTROL_C_EXIT.to_ne_bytes()),
                "Ctrl-C, Ctrl-Break or console close",
            )
        })
        .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_forgotten_when_released_or_dropped() {
        let (a, b) = (Path::new("/nonexistent/a"), Path::new("/nonexistent/b"));
        let first = Registration::new(a);
        let second = Registration::new(b);
        assert!(pending().iter().any(|p| p == a) && pending().iter().any(|p| p == b));
        assert_eq!(first.release(|| 7), 7);
        assert!(!pending().iter().any(|p| p == a));
        drop(second);
        assert!(!pending().iter().any(|p| p == b));
    }
}
