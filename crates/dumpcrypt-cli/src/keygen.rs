//! `dumpcrypt keygen`: a fresh XTS-AES-256 key from the OS random source, in a file only
//! its owner (Unix) or SYSTEM and Administrators (Windows) can read.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::options::{generate_key, CliError};
use crate::output::{Output, Rules};
use crate::parameters::fingerprint;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file to create: 64 raw bytes, data key then tweak key. A regular file only:
    /// `-`, devices and FIFOs are refused.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the file if it exists (the old key is lost: dumps encrypted with it can no
    /// longer be read).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    let rules = Rules {
        option: "--out",
        streams: false,
        force: args.force,
        binary: true,
        secret: true,
    };
    // A new owner-only file, written whole and renamed into place: an existing key is
    // replaced (with --force) only by a complete new one.
    let output = Output::create(&args.out, &rules, &[])?;
    let mut key = generate_key()?;
    let written = output.write_all(&key).and_then(|()| output.commit());
    let fingerprint = fingerprint(&key);
    key.fill(0);
    std::hint::black_box(&key);
    written?;
    crate::outln!(
        "{}: new 64-byte XTS-AES-256 key, fingerprint {fingerprint} (first 8 bytes of SHA-256)",
        args.out.display(),
    );
    crate::outln!("keep a copy where you will need it to read dumps: without it they are lost");
    Ok(ExitCode::SUCCESS)
}
