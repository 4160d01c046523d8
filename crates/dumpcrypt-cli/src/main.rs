//! The `dumpcrypt` command: runs the driver through the simulated dump stacks, and the tools
//! administrators use around it.

mod options;
mod simulate;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("dumpcrypt: {error}");
            ExitCode::FAILURE
        }
    }
}
