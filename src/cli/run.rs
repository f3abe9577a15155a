//! `meshrouter run`: start the daemon.

use std::path::Path;

use anyhow::Context;
use meshrouter::config::Config;
use meshrouter::core::identity::NodeKey;

/// Starts logging to standard error: plain lines without timestamps under journald (it adds its
/// own), colours only on a terminal. `MESHROUTER_LOG` (e.g. `debug`, `meshrouter=trace`) sets the
/// level; the default is `info`.
fn start_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MESHROUTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !journald)
        .with_target(false);
    if journald {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

pub(super) fn run(
    config_path: &Path,
    autoconf: bool,
    api_socket: Option<&Path>,
    crdt_database: Option<&Path>,
) -> anyhow::Result<()> {
    let mut config = if autoconf {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).context("reading the OS random source")?;
        Config::autoconf(NodeKey::from_seed(&seed))
    } else {
        Config::load(config_path)?
    };
    if let Some(path) = api_socket {
        config.daemon.api_socket = Some(path.to_owned());
    }
    if let Some(path) = crdt_database {
        config.daemon.crdt.database = (path.as_os_str() != "none").then(|| path.to_owned());
    }
    start_logging();
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).context("reading the OS random source")?;
    meshrouter::driver::run(config, seed)?;
    Ok(())
}
