//! The LAN gateway's driver: for each interface in `lan`, the node's `/64` address, IPv6 forwarding,
//! and a task that sends what [`Advertiser`] produces on a raw ICMPv6 socket and hands it the Router
//! Solicitations that arrive. The router task is not involved: devices' packets reach the mesh
//! through the kernel (forwarding to the TUN device), and the advertisements depend on nothing the
//! router knows.
//!
//! An interface that is missing, down or fails is set up again every [`RETRY`]; on stop every
//! interface gets a last advertisement with every lifetime 0 and loses the address we added.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::clock::Clock;
use crate::core::address::node_subnet;
use crate::core::identity::PublicKey;
use crate::core::lan::advertiser::Advertiser;
use crate::core::lan::ra::{Advertisement, ROUTER_SOLICITATION, parse_solicitation};
use crate::sys::icmp6;

/// How long until a failed interface is tried again.
const RETRY: Duration = Duration::from_secs(10);
/// How long stopping waits for the last advertisements to go out.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// Router lifetime when `lan_default_route` is set: three times the longest interval between
/// advertisements (RFC 4861 §6.2.1 `AdvDefaultLifetime`), as are the routes and the DNS server.
const LIFETIME: Duration = Duration::from_secs(1800);
/// The prefix's valid and preferred lifetimes (RFC 4861 §6.2.1 defaults).
const PREFIX_LIFETIMES: (Duration, Duration) = (
    Duration::from_secs(30 * 24 * 3600),
    Duration::from_secs(7 * 24 * 3600),
);
/// Largest solicitation read (a solicitation is 8 bytes plus options; a jumbo frame is plenty).
const RECEIVE_BUFFER: usize = 9216;

/// What every LAN interface is told.
#[derive(Debug, Clone)]
pub(crate) struct LanSettings {
    /// Interface names.
    pub interfaces: Vec<String>,
    /// Offer the node as default router.
    pub default_route: bool,
    /// Announce the node's LAN address as DNS server (the DNS responder runs there).
    pub dns: bool,
}

/// The running gateway: one task per interface.
pub(crate) struct LanGateway {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The address the node takes on each LAN: `<its /64>::1`.
pub(crate) fn gateway_address(key: &PublicKey) -> Ipv6Addr {
    let mut octets = node_subnet(key).network().octets();
    octets[15] = 1;
    Ipv6Addr::from(octets)
}

impl LanGateway {
    /// Starts serving `settings.interfaces` (nothing if empty).
    pub(crate) fn start(
        settings: &LanSettings,
        key: &PublicKey,
        clock: Clock,
        seed: [u8; 32],
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        if !settings.interfaces.is_empty() {
            enable_forwarding(&settings.interfaces);
        }
        let prefix = node_subnet(key).network();
        let address = gateway_address(key);
        let tasks = settings
            .interfaces
            .iter()
            .map(|name| {
                let advertisement = Advertisement {
                    prefix,
                    link_layer: None,
                    router_lifetime: if settings.default_route {
                        LIFETIME
                    } else {
                        Duration::ZERO
                    },
                    route_lifetime: LIFETIME,
                    prefix_lifetimes: PREFIX_LIFETIMES,
                    dns: if settings.dns { vec![address] } else { vec![] },
                    dns_lifetime: LIFETIME,
                };
                let lan = Lan {
                    name: name.clone(),
                    address,
                    advertisement,
                    seed: interface_seed(&seed, name),
                    clock,
                };
                tokio::spawn(lan.serve(stopped.clone()))
            })
            .collect();
        Self { stop, tasks }
    }

    /// Sends every interface's last advertisement and removes the addresses (waits at most
    /// [`STOP_WAIT`]).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(STOP_WAIT, task).await;
        }
    }
}

/// Each interface's advertiser gets its own randomness from the daemon's seed.
fn interface_seed(seed: &[u8; 32], name: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"meshrouter lan advertiser");
    hash.update(seed);
    hash.update(name.as_bytes());
    hash.finalize().into()
}

/// One LAN interface.
struct Lan {
    name: String,
    address: Ipv6Addr,
    advertisement: Advertisement,
    seed: [u8; 32],
    clock: Clock,
}

/// An interface set up for advertising.
struct Ready {
    ifindex: u32,
    socket: AsyncFd<socket2::Socket>,
    /// Whether we added the address (and so remove it on stop).
    added_address: bool,
}

/// Why serving an interface ended.
enum Ended {
    Stopped,
    Failed(io::Error),
}

impl Lan {
    async fn serve(self, mut stopped: watch::Receiver<bool>) {
        let mut last_error = String::new();
        loop {
            match self.set_up() {
                Ok(ready) => {
                    info!(interface = %self.name, address = %self.address, "LAN: advertising the node's /64");
                    last_error.clear();
                    let ended = self.advertise(&ready, &mut stopped).await;
                    if ready.added_address {
                        let _ = crate::sys::netdev::remove_address(ready.ifindex, self.address, 64);
                    }
                    match ended {
                        Ended::Stopped => return,
                        Ended::Failed(e) => {
                            warn!(interface = %self.name, error = %e, "LAN: advertising failed; trying again in 10 s");
                        }
                    }
                }
                Err(e) => {
                    // Said once per distinct problem, not every 10 s.
                    let text = e.to_string();
                    if text != last_error {
                        warn!(interface = %self.name, error = %text, "LAN: cannot serve this interface yet; trying again every 10 s");
                        last_error = text;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }

    fn set_up(&self) -> io::Result<Ready> {
        let ifindex = nix::net::if_::if_nametoindex(self.name.as_str())
            .map_err(|e| io::Error::other(format!("no such interface ({e})")))?;
        let added_address = match crate::sys::netdev::add_address(ifindex, self.address, 64) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
            Err(e) => return Err(io::Error::other(format!("adding {}/64: {e}", self.address))),
        };
        let socket = icmp6::router_socket(&self.name, ifindex, ROUTER_SOLICITATION)
            .map_err(|e| io::Error::other(format!("raw ICMPv6 socket: {e}")));
        match socket {
            Ok(socket) => Ok(Ready {
                ifindex,
                socket,
                added_address,
            }),
            Err(e) => {
                if added_address {
                    let _ = crate::sys::netdev::remove_address(ifindex, self.address, 64);
                }
                Err(e)
            }
        }
    }

    async fn advertise(&self, ready: &Ready, stopped: &mut watch::Receiver<bool>) -> Ended {
        let mut advertisement = self.advertisement.clone();
        advertisement.link_layer = link_layer_address(&self.name);
        let mut advertiser = Advertiser::new(advertisement, self.seed, self.clock.now());
        let all_nodes: socket2::SockAddr =
            std::net::SocketAddr::from(SocketAddrV6::new(icmp6::ALL_NODES, 0, 0, ready.ifindex))
                .into();
        let mut buffer = vec![0u8; RECEIVE_BUFFER];
        loop {
            while let Some(message) = advertiser.poll_transmit() {
                if let Err(e) = ready.socket.get_ref().send_to(&message, &all_nodes) {
                    return Ended::Failed(e);
                }
            }
            if *stopped.borrow() {
                return Ended::Stopped;
            }
            let deadline = advertiser.poll_timeout().map_or_else(
                || self.clock.to_tokio(self.clock.now() + RETRY),
                |t| self.clock.to_tokio(t),
            );
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => advertiser.handle_timeout(self.clock.now()),
                readable = ready.socket.readable() => {
                    let mut guard = match readable {
                        Ok(guard) => guard,
                        Err(e) => return Ended::Failed(e),
                    };
                    match guard.try_io(|s| io::Read::read(&mut s.get_ref(), &mut buffer)) {
                        Ok(Ok(n)) => {
                            if let Ok(Some(_)) = parse_solicitation(&buffer[..n]) {
                                advertiser.on_solicitation(self.clock.now());
                            }
                        }
                        Ok(Err(e)) => return Ended::Failed(e),
                        Err(_would_block) => {}
                    }
                }
                _ = stopped.wait_for(|s| *s) => advertiser.stop(),
            }
        }
    }
}

/// The interface's MAC address, for the Source Link-Layer Address option (saves hosts a
/// neighbour solicitation); `None` for interfaces without one.
fn link_layer_address(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let mac: [u8; 6] = bytes.try_into().ok()?;
    (mac != [0; 6]).then_some(mac)
}

/// Turns IPv6 forwarding on, so that devices' packets to the mesh go through the TUN device and
/// back. Forwarding makes Linux ignore Router Advertisements on interfaces with `accept_ra = 1`;
/// those (other than the LANs) get `accept_ra = 2`, so an uplink configured by its router keeps its
/// address and default route. Failures are logged with what to do: the daemon runs on.
fn enable_forwarding(lans: &[String]) {
    let conf = std::path::Path::new("/proc/sys/net/ipv6/conf");
    let read = |path: &std::path::Path| std::fs::read_to_string(path).map(|s| s.trim().to_owned());
    if read(&conf.join("all/forwarding")).is_ok_and(|v| v == "1") {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(conf) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "all" || lans.contains(&name) {
                continue;
            }
            let accept_ra = entry.path().join("accept_ra");
            if read(&accept_ra).is_ok_and(|v| v == "1") {
                match std::fs::write(&accept_ra, "2") {
                    Ok(()) => {
                        info!(interface = %name, "LAN: accept_ra = 2, so this interface keeps taking Router Advertisements with forwarding on")
                    }
                    Err(e) => {
                        warn!(interface = %name, error = %e, "LAN: cannot set accept_ra = 2; with forwarding on, this interface ignores Router Advertisements")
                    }
                }
            }
        }
    }
    match std::fs::write(conf.join("all/forwarding"), "1") {
        Ok(()) => info!("LAN: IPv6 forwarding on"),
        Err(e) => warn!(
            error = %e,
            "LAN: cannot turn IPv6 forwarding on, so LAN devices cannot reach the mesh: set \
             net.ipv6.conf.all.forwarding = 1 (sysctl), or under meshrouter.service add the lan.conf drop-in"
        ),
    }
}
