//! `dumpcrypt keygen`: a fresh XTS-AES-256 key from the OS random source, in a file only
//! its owner (Unix) or SYSTEM and Administrators (Windows) can read.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::files::create_secret;
use crate::options::{generate_key, CliError};
use crate::parameters::fingerprint;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file to create: 64 raw bytes, data key then tweak key.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the file if it exists (the old key is lost: dumps encrypted with it can no
    /// longer be read).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    let mut key = generate_key()?;
    let mut file = create_secret(&args.out, args.force)?;
    let written = file
        .write_all(&key)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::file(&args.out, e));
    if let Err(error) = written {
        drop(file);
        let _ = std::fs::remove_file(&args.out);
        key.fill(0);
        return Err(error);
    }
    println!(
        "{}: new 64-byte XTS-AES-256 key, fingerprint {} (first 8 bytes of SHA-256)",
        args.out.display(),
        fingerprint(&key)
    );
    println!("keep a copy where you will need it to read dumps: without it they are lost");
    key.fill(0);
    std::hint::black_box(&key);
    Ok(ExitCode::SUCCESS)
}
