//! `meshrouter genconf`: the documented example configuration with a fresh key, on standard output
//! or written safely to a file (what the packages' first start does).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use meshrouter::config::{EXAMPLE, EXAMPLE_KEY_LINE};
use meshrouter::core::identity::{NodeKey, SEED_LEN};
use zeroize::Zeroizing;

/// What `genconf` makes.
#[derive(clap::Args)]
pub(crate) struct Genconf {
    /// Write the configuration to FILE (mode 0600, or 0640 with --group) instead of standard
    /// output; an existing file is never overwritten.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Group that may read the file (the daemon's), e.g. meshrouter.
    #[arg(long, requires = "output")]
    group: Option<String>,
    /// Turn on LAN discovery over UDP on every interface, as `run --autoconf` does.
    #[arg(long)]
    discovery: bool,
}

/// Appended by `--discovery`: after every top-level key of the example, as a TOML table must be.
const DISCOVERY: &str = "\n# Added by `meshrouter genconf --discovery`: link with meshrouter nodes heard on any LAN.\n\
                         [[discovery]]\ninterfaces = \".*\"\n";

pub(super) fn run(args: &Genconf) -> anyhow::Result<()> {
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    getrandom::fill(&mut seed[..])
        .map_err(|e| anyhow::anyhow!("cannot get randomness from the OS: {e}"))?;
    let key = NodeKey::from_seed(&seed);
    let key_line = Zeroizing::new(format!("private_key = \"{}\"", &*key.seed_hex()));
    let mut config = Zeroizing::new(EXAMPLE.replacen(EXAMPLE_KEY_LINE, &key_line, 1));
    if args.discovery {
        config.push_str(DISCOVERY);
    }
    match &args.output {
        None => std::io::stdout()
            .write_all(config.as_bytes())
            .context("cannot write to standard output"),
        Some(path) => write_new(path, config.as_bytes(), args.group.as_deref()),
    }
}

/// Writes `bytes` to a new file at `path` through a temporary file, synced, then renamed, so a
/// crash never leaves a half-written key behind.
fn write_new(path: &Path, bytes: &[u8], group: Option<&str>) -> anyhow::Result<()> {
    if path.exists() {
        bail!(
            "{} exists; genconf never overwrites a configuration",
            path.display()
        );
    }
    let gid = match group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .with_context(|| format!("looking up group {name}"))?
                .with_context(|| format!("no group named {name}"))?
                .gid,
        ),
        None => None,
    };
    let temp = path.with_extension("toml.new");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))?;
    if let Some(gid) = gid {
        nix::unistd::chown(&temp, None, Some(gid))
            .with_context(|| format!("chgrp {}", temp.display()))?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o640))?;
    }
    std::fs::hard_link(&temp, path).with_context(|| {
        format!(
            "{} appeared meanwhile, or cannot be created",
            path.display()
        )
    })?;
    std::fs::remove_file(&temp)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    eprintln!("wrote {}", path.display());
    Ok(())
}
