//! Command-line interface: argument parsing, output formatting and exit codes.
//!
//! Exit status: 0 on success, 2 for a usage or configuration error (clap's convention), 1 for anything else.

mod genconf;
mod info;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use meshrouter::config::ConfigError;

/// Where the daemon and the tools look for the configuration unless told otherwise.
pub(crate) const DEFAULT_CONFIG: &str = "/etc/meshrouter/config.toml";

/// meshrouter: a mesh overlay router with key-derived IPv6 addresses, compatible with Yggdrasil 0.5
/// addressing.
#[derive(Parser)]
#[command(name = "meshrouter", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a complete configuration with a freshly generated node key.
    ///
    /// Redirect it to a file readable only by the daemon, e.g.
    /// `(umask 077; meshrouter genconf > /etc/meshrouter/config.toml)`.
    Genconf,
    /// Show this node's public key, IPv6 address, routed /64 and did:key.
    Info {
        /// Configuration file to read the node key from.
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line, runs the command and maps its outcome to an exit status.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Genconf => genconf::run(),
        Command::Info { config, json } => info::run(&config, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meshrouter: error: {error:#}");
            if error.is::<ConfigError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
