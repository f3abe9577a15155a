//! `meshrouter genconf`: the documented example configuration with a fresh key, on standard output
//! or written safely to a file (what the packages' first start does). Written to a file, the key
//! goes to a file of its own, readable by its owner only: the configuration may be shared with a
//! group (the daemon's, which may also be the API's), the key never is.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use meshrouter::config::{EXAMPLE, EXAMPLE_KEY_FILE_LINE, EXAMPLE_KEY_LINE, EXAMPLE_USER_LINE};
use meshrouter::core::identity::{NodeKey, SEED_LEN};
use nix::unistd::{Gid, Uid};
use zeroize::Zeroizing;

/// What `genconf` makes.
#[derive(clap::Args)]
pub(crate) struct Genconf {
    /// Write the configuration to FILE (mode 0600, or 0640 with --group) instead of standard
    /// output, and the node key to its own file beside it (see --key-file); an existing file is
    /// never overwritten.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Group that may read the configuration (the daemon's), e.g. meshrouter. Never the key file.
    #[arg(long, requires = "output")]
    group: Option<String>,
    /// Write the node key (hex, mode 0600) to KEY and name it in the configuration
    /// (private_key_file). Default with --output: FILE with the extension .key, such as
    /// /etc/meshrouter/config.key. Without --output and --key-file the key is printed inline.
    #[arg(long, value_name = "KEY")]
    key_file: Option<PathBuf>,
    /// The daemon's user, e.g. meshrouter: it owns the key file, and the configuration says
    /// `user = "USER"`, so that the daemon runs as that user also when started as root (it is then
    /// a no-op for a daemon that starts as that user, as meshrouter.service does).
    #[arg(long)]
    user: Option<String>,
    /// Turn on LAN discovery over UDP on every interface, as `run --autoconf` does.
    #[arg(long)]
    discovery: bool,
    /// Turn on the overlay firewall for a private node: nothing comes in over the mesh but ping
    /// and the replies to this node's own connections, until rules open more.
    #[arg(long)]
    firewall: bool,
}

/// Appended by `--firewall`: top-level keys, so before any table (`--discovery`'s).
const FIREWALL: &str = "\n# Added by `meshrouter genconf --firewall`: nothing comes in over the mesh but ping and the\n\
                        # replies to this node's own connections; open more with rules (see the Firewall section).\n\
                        firewall.inbound = \"deny\"\n\
                        firewall.rule = [\n  { action = \"allow\", proto = \"ping\" },\n]\n";

/// Appended by `--discovery`: after every top-level key of the example, as a TOML table must be.
const DISCOVERY: &str = "\n# Added by `meshrouter genconf --discovery`: link with meshrouter nodes heard on any LAN.\n\
                         [[discovery]]\ninterfaces = \".*\"\n";

pub(super) fn run(args: &Genconf) -> anyhow::Result<()> {
    let key_path = match (&args.key_file, &args.output) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(output)) => Some(default_key_path(output)?),
        (None, None) => None,
    };
    if args.user.is_some() && key_path.is_none() {
        bail!("--user owns the key file: give --output or --key-file");
    }
    if let (Some(key), Some(output)) = (&key_path, &args.output)
        && key == output
    {
        bail!("the key file and the configuration must be two files");
    }
    for path in key_path.iter().chain(&args.output) {
        if std::fs::symlink_metadata(path).is_ok() {
            bail!(
                "{} exists; genconf never overwrites a configuration or a key",
                path.display()
            );
        }
    }
    let group = args.group.as_deref().map(group_id).transpose()?;
    let user = args.user.as_deref().map(user_ids).transpose()?;
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    getrandom::fill(&mut seed[..])
        .map_err(|e| anyhow::anyhow!("cannot get randomness from the OS: {e}"))?;
    let key = NodeKey::from_seed(&seed);
    let mut config = match &key_path {
        None => {
            let line = Zeroizing::new(format!("private_key = \"{}\"", &*key.seed_hex()));
            Zeroizing::new(EXAMPLE.replacen(EXAMPLE_KEY_LINE, &line, 1))
        }
        Some(path) => {
            let named = key_reference(path, args.output.as_deref())?;
            let line = format!("private_key_file = {}", toml::Value::String(named));
            Zeroizing::new(EXAMPLE.replacen(EXAMPLE_KEY_FILE_LINE, &line, 1))
        }
    };
    if let Some(name) = &args.user {
        let line = format!("user = {}", toml::Value::String(name.clone()));
        config = Zeroizing::new(config.replacen(EXAMPLE_USER_LINE, &line, 1));
    }
    if args.firewall {
        config.push_str(FIREWALL);
    }
    if args.discovery {
        config.push_str(DISCOVERY);
    }
    if let Some(path) = &key_path {
        let text = Zeroizing::new(format!("{}\n", &*key.seed_hex()));
        let owner = user.map(|(uid, gid)| (Some(uid), Some(gid)));
        write_new(path, text.as_bytes(), 0o600, owner)?;
    }
    let written = match &args.output {
        None => std::io::stdout()
            .write_all(config.as_bytes())
            .context("cannot write to standard output"),
        Some(path) => {
            let (mode, owner) = match group {
                Some(gid) => (0o640, Some((None, Some(gid)))),
                None => (0o600, None),
            };
            write_new(path, config.as_bytes(), mode, owner)
        }
    };
    if written.is_err()
        && let Some(path) = &key_path
    {
        // A key no configuration names would only stop the next try.
        let _ = std::fs::remove_file(path);
    }
    written
}

/// The key file beside `output`: its name with the extension `.key`.
fn default_key_path(output: &Path) -> anyhow::Result<PathBuf> {
    let key = output.with_extension("key");
    if key == output {
        bail!(
            "{} would be its own key file: give --key-file",
            output.display()
        );
    }
    Ok(key)
}

/// How the configuration names the key file: by its name alone when they share a folder (relative
/// paths are relative to the configuration's folder), else by its absolute path.
fn key_reference(key: &Path, output: Option<&Path>) -> anyhow::Result<String> {
    let folder = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    let named = match (output, key.file_name()) {
        (Some(output), Some(name)) if folder(output) == folder(key) => PathBuf::from(name),
        _ => std::path::absolute(key).with_context(|| format!("resolving {}", key.display()))?,
    };
    named
        .into_os_string()
        .into_string()
        .map_err(|p| anyhow::anyhow!("{}: not UTF-8, cannot go in TOML", p.display()))
}

fn group_id(name: &str) -> anyhow::Result<Gid> {
    Ok(nix::unistd::Group::from_name(name)
        .with_context(|| format!("looking up group {name}"))?
        .with_context(|| format!("no group named {name}"))?
        .gid)
}

/// A user's id and primary group.
fn user_ids(name: &str) -> anyhow::Result<(Uid, Gid)> {
    let user = nix::unistd::User::from_name(name)
        .with_context(|| format!("looking up user {name}"))?
        .with_context(|| format!("no user named {name}"))?;
    Ok((user.uid, user.gid))
}

/// Writes `bytes` to a new file at `path` through a temporary file, synced, then linked into place,
/// so a crash never leaves a half-written key behind and an existing file is never replaced. The
/// temporary file is made with mode 0600 and gets `owner` and `mode` before it is linked.
fn write_new(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(Option<Uid>, Option<Gid>)>,
) -> anyhow::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".new");
    let temp = PathBuf::from(temp);
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    let prepared = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))
        .and_then(|()| match owner {
            Some((uid, gid)) => nix::unistd::fchown(&file, uid, gid)
                .with_context(|| format!("chown {}", temp.display())),
            None => Ok(()),
        })
        .and_then(|()| {
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {}", temp.display()))
        })
        .and_then(|()| {
            std::fs::hard_link(&temp, path).with_context(|| {
                format!(
                    "{} appeared meanwhile, or cannot be created",
                    path.display()
                )
            })
        });
    let _ = std::fs::remove_file(&temp);
    prepared?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    eprintln!("wrote {}", path.display());
    Ok(())
}
