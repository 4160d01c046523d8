//! The `dumpcrypt` command: runs the driver through the simulated dump stacks, and the tools
//! administrators use around it.

mod configure;
mod decrypt;
mod disk;
mod dump_extents;
mod find_dump;
mod input;
mod interrupt;
mod key_search;
mod keygen;
mod ntfs_extents;
mod options;
mod output;
mod parameters;
mod recover;
mod sealed_keys;
#[cfg(windows)]
mod secret;
mod simulate;
mod unseal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dumpcrypt",
    version,
    about = "dumpcrypt: encrypted crash dumps and hibernation files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a crash dump and a hibernate/resume cycle of the real driver code through the
    /// simulated dump stacks, and check every rule on the way.
    Simulate(simulate::Args),
    /// Create a new 64-byte XTS-AES-256 key file from the OS random source, readable only by
    /// its owner (Windows: SYSTEM and Administrators).
    Keygen(keygen::Args),
    /// Build and check the driver's configuration; write it as a .reg file, or (Windows)
    /// apply it to the registry or show the current one.
    Config(configure::Args),
    /// Decrypt a raw disk or partition image (or a byte range of it) as the driver encrypted
    /// it.
    Decrypt(decrypt::Args),
    /// Find crash dump headers in a raw image, and extract a dump.
    FindDump(find_dump::Args),
    /// Open the sealed keys of the `sealed` key source (a .reg export of SealedKeys) with
    /// an age identity: list them by load time and fingerprint, write them as key files.
    Unseal(unseal::Args),
    /// Recover the crash dump from an encrypted whole-disk image in one step: the partition
    /// table, the NTFS volume, the dump file's extents (\pagefile.sys by default), each
    /// decrypted at its own disk position, cut and checked by the dump header.
    Recover(recover::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Config(args) => configure::run(args),
        Command::Decrypt(args) => decrypt::run(args),
        Command::FindDump(args) => find_dump::run(args),
        Command::Unseal(args) => unseal::run(args),
        Command::Recover(args) => recover::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("dumpcrypt: {error}");
            ExitCode::FAILURE
        }
    }
}
