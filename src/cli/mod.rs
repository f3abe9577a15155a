//! Command-line interface: argument parsing, output formatting and exit codes.
//!
//! Exit status: 0 on success, 2 for a usage or configuration error (clap's convention), 1 for anything else.

#[cfg(feature = "services")]
mod blob;
mod client;
mod config_edit;
mod control;
#[cfg(feature = "services")]
mod crdt;
mod genconf;
#[cfg(feature = "services")]
mod identity;
mod info;
#[cfg(feature = "services")]
mod names;
#[cfg(feature = "services")]
mod nodeinfo;
mod run;
mod table;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use meshrouter::config::ConfigError;

/// Where the daemon and the tools look for the configuration unless told otherwise.
pub(crate) const DEFAULT_CONFIG: &str = "/etc/meshrouter/config.toml";

/// How the control commands find the daemon.
#[derive(clap::Args)]
struct Endpoint {
    /// The daemon's API socket (default: $MESHROUTER_SOCKET, else /run/meshrouter/meshrouter.sock).
    #[arg(long, value_name = "PATH", env = "MESHROUTER_SOCKET", global = true,
          default_value = meshrouter::config::DEFAULT_API_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// Whether `addpeer` / `removepeer` also edit the configuration file.
#[derive(clap::Args)]
struct SaveTo {
    /// Also write the change into the configuration file (comments and layout kept), so that it
    /// stays after a restart.
    #[arg(long)]
    save: bool,
    /// The configuration file to edit (default: the one the daemon was started with).
    #[arg(long, value_name = "PATH", requires = "save")]
    config: Option<PathBuf>,
}

impl SaveTo {
    /// Adds `uri` to (`add`) or removes it from the file's peers, if --save was given.
    fn apply(&self, socket: &std::path::Path, uri: &str, add: bool) -> anyhow::Result<()> {
        if !self.save {
            return Ok(());
        }
        let path = match &self.config {
            Some(path) => path.clone(),
            None => {
                let me = client::call(socket, "GET", "/v1/self", None)?;
                match me["config"].as_str() {
                    Some(path) => PathBuf::from(path),
                    None => anyhow::bail!(
                        "the daemon runs without a configuration file: give --config PATH"
                    ),
                }
            }
        };
        let changed = if add {
            config_edit::save_peer(&path, uri)?
        } else {
            config_edit::forget_peer(&path, uri)?
        };
        match (changed, add) {
            (true, true) => println!("saved in {}", path.display()),
            (true, false) => println!("removed from {}", path.display()),
            (false, true) => println!("{} lists it already", path.display()),
            (false, false) => println!("{} did not list it", path.display()),
        }
        Ok(())
    }
}

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
    /// `(umask 077; meshrouter genconf > /etc/meshrouter/config.toml)`, or let --output write it
    /// (with the key in its own file, mode 0600, beside it).
    Genconf(genconf::Genconf),
    /// Run the router: TUN device, links, discovery and the local API, until SIGTERM or SIGINT.
    ///
    /// Needs root, or CAP_NET_ADMIN (plus CAP_NET_RAW for raw Ethernet links). Logs go to standard
    /// error (journald-friendly); MESHROUTER_LOG=debug shows more.
    Run {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG,
              conflicts_with = "autoconf")]
        config: PathBuf,
        /// Run without a configuration: a fresh key kept only in memory (a new address each start),
        /// the default TUN device, and peers found by discovery on every interface.
        #[arg(long)]
        autoconf: bool,
        /// Serve the local API on this socket instead of the configured one.
        #[arg(long, value_name = "PATH")]
        api_socket: Option<PathBuf>,
        /// Keep CRDT documents in this database instead of the configured one
        /// (default /var/lib/meshrouter/crdt.redb; "none" turns the service off).
        #[arg(long, value_name = "PATH")]
        crdt_database: Option<PathBuf>,
    },
    /// Show the running node: key, addresses, did:key, tree root and coordinates.
    #[command(name = "self")]
    SelfInfo(Endpoint),
    /// List links: URI, state, direction, peer address and key, uptime, RTT, traffic, last error.
    Peers(Endpoint),
    /// List listeners: URI, transport, links up through each, connections waiting for their link.
    Listeners(Endpoint),
    /// Show the spanning tree entries this node holds.
    Tree(Endpoint),
    /// Show destinations found by lookups and their tree coordinates.
    Paths(Endpoint),
    /// List end-to-end sessions.
    Sessions(Endpoint),
    /// Show forwarding and drop counters.
    Counters(Endpoint),
    /// Show the overlay firewall: rules with their hits, default policies, counters by verdict
    /// and tracked connections.
    Firewall(Endpoint),
    /// Read the configuration file again, as SIGHUP does, and apply what changed without dropping
    /// the links and sessions it does not touch: peers, listeners, discovery rules, allowed keys,
    /// max_links, the firewall, the CRDT namespace filters. Says what applied and what needs a
    /// restart; a file with an error is refused and the running configuration stays.
    Reload(Endpoint),
    /// Explain how a node is reached, hop by hop, like mtr: whether it was a peer, a known path or a
    /// lookup (and how long that took), its coordinates, every hop with its key and round trip, and
    /// where and why the way stops (no route, a hop that does not answer, lookup timed out). Each hop
    /// answers with a signed reply (20 a second at most per node). Exits 1 unless it reached.
    Trace {
        /// An overlay address (200:...), a node's 64-hex public key, or a mesh name.
        target: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Add a peer to the running daemon, e.g. `udp://[2001:db8::1]:9100?key=HEX` or
    /// `tls://gateway.example:443`; with --save also to the configuration file, so it stays after a
    /// restart.
    Addpeer {
        /// The peer's URI: udp://, tcp:// or tls://HOST:PORT, with optional key=, password=,
        /// priority=, interface= and (udp) mtu=.
        uri: String,
        #[command(flatten)]
        save: SaveTo,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Remove a peer from the running daemon, by its URI (with or without its query); with --save
    /// also from the configuration file.
    Removepeer {
        /// The peer's URI.
        uri: String,
        #[command(flatten)]
        save: SaveTo,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    #[cfg(feature = "services")]
    /// Local-first replicated documents (counters, registers, sets, maps) that sync over the mesh
    /// and by sneakernet drop files.
    Crdt {
        #[command(subcommand)]
        command: crdt::CrdtCommand,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    #[cfg(feature = "services")]
    /// Identities: did:key, sign-in challenges, JWTs, credentials, delegations, the member
    /// registry and revocations, all checkable offline on any node.
    Id {
        #[command(subcommand)]
        command: identity::IdCommand,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    #[cfg(feature = "services")]
    /// Content-addressed files: add one (prints its IPFS CID), get it back, list, pin, unpin,
    /// remove.
    Blob {
        #[command(subcommand)]
        command: blob::BlobCommand,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    #[cfg(feature = "services")]
    /// Mesh names (NAME.mesh): list them, claim one for this node, release it.
    Names {
        #[command(subcommand)]
        command: Option<names::NamesCommand>,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    #[cfg(feature = "services")]
    /// Resolve a mesh name (clinic.mesh, clinic.<key prefix>.mesh) to its address, or a mesh
    /// address to its name, as the node's DNS responder does.
    Resolve {
        /// A name or an IPv6 address.
        name: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    #[cfg(feature = "services")]
    /// Show the NodeInfo this node publishes, or ask NODE for its own over the overlay (a hex key,
    /// a did:key, a mesh name such as clinic.mesh, or an address).
    Nodeinfo {
        /// The node to ask (default: this node).
        node: Option<String>,
        #[command(flatten)]
        endpoint: Endpoint,
    },
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
    if !matches!(cli.command, Command::Run { .. }) {
        meshrouter::sys::signals::die_quietly_on_broken_pipe();
    }
    let result = match cli.command {
        Command::Genconf(args) => genconf::run(&args),
        Command::Info { config, json } => info::run(&config, json),
        Command::Run {
            config,
            autoconf,
            api_socket,
            crdt_database,
        } => run::run(
            &config,
            autoconf,
            api_socket.as_deref(),
            crdt_database.as_deref(),
        ),
        Command::SelfInfo(e) => control::run(&e.socket, control::Query::SelfInfo, e.json),
        Command::Peers(e) => control::run(&e.socket, control::Query::Peers, e.json),
        Command::Listeners(e) => control::run(&e.socket, control::Query::Listeners, e.json),
        Command::Tree(e) => control::run(&e.socket, control::Query::Tree, e.json),
        Command::Paths(e) => control::run(&e.socket, control::Query::Paths, e.json),
        Command::Sessions(e) => control::run(&e.socket, control::Query::Sessions, e.json),
        Command::Counters(e) => control::run(&e.socket, control::Query::Counters, e.json),
        Command::Firewall(e) => control::run(&e.socket, control::Query::Firewall, e.json),
        Command::Reload(e) => control::run(&e.socket, control::Query::Reload, e.json),
        Command::Trace {
            target,
            endpoint: e,
        } => trace::run(&e.socket, &target, e.json),
        Command::Addpeer {
            uri,
            save,
            endpoint: e,
        } => control::run(&e.socket, control::Query::AddPeer(uri.clone()), e.json)
            .and_then(|()| save.apply(&e.socket, &uri, true)),
        #[cfg(feature = "services")]
        Command::Crdt {
            command,
            endpoint: e,
        } => crdt::run(&e.socket, command, e.json),
        #[cfg(feature = "services")]
        Command::Id {
            command,
            endpoint: e,
        } => identity::run(&e.socket, command, e.json),
        #[cfg(feature = "services")]
        Command::Blob {
            command,
            endpoint: e,
        } => blob::run(&e.socket, command, e.json),
        #[cfg(feature = "services")]
        Command::Names {
            command,
            endpoint: e,
        } => names::run(&e.socket, command, e.json),
        #[cfg(feature = "services")]
        Command::Nodeinfo { node, endpoint: e } => {
            nodeinfo::run(&e.socket, node.as_deref(), e.json)
        }
        #[cfg(feature = "services")]
        Command::Resolve { name, endpoint: e } => names::resolve(&e.socket, &name, e.json),
        Command::Removepeer {
            uri,
            save,
            endpoint: e,
        } => control::run(&e.socket, control::Query::RemovePeer(uri.clone()), e.json)
            .and_then(|()| save.apply(&e.socket, &uri, false)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meshrouter: error: {error:#}");
            let bad_request = error
                .downcast_ref::<client::ApiError>()
                .is_some_and(|e| e.status == 400);
            if error.is::<ConfigError>() || bad_request {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
