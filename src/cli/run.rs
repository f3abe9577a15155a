//! `meshrouter run`: start the daemon.

use std::path::Path;

use anyhow::Context;
use meshrouter::config::Config;
use meshrouter::core::identity::NodeKey;

/// Starts logging to standard error: plain lines without timestamps under journald (it adds its
/// own), colours only on a terminal. `MESHROUTER_LOG` (e.g. `debug`, `meshrouter=trace`,
/// `info,meshrouter::driver=debug`) sets the levels; the default is `info`. (Targets and levels
/// only: the regex-based `EnvFilter` would add a quarter to the binary.)
fn start_logging() {
    use std::io::IsTerminal;
    let requested = std::env::var("MESHROUTER_LOG").ok();
    let filter = match requested
        .as_deref()
        .map(str::parse::<tracing_subscriber::filter::Targets>)
    {
        Some(Ok(targets)) => targets,
        Some(Err(e)) => {
            eprintln!("meshrouter: ignoring MESHROUTER_LOG: {e}");
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        }
        None => tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO),
    };
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
    use tracing_subscriber::util::SubscriberInitExt as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !journald)
        .with_target(false);
    if journald {
        tracing_subscriber::registry()
            .with(layer.without_time().with_filter(filter))
            .init();
    } else {
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .init();
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
