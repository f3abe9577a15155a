//! Configured peers (from the file or `addpeer`): resolve, bind a socket, open a link, and keep trying
//! with exponential backoff while the name does not resolve or the socket cannot be bound.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::links::{Endpoint, EndpointId, Origin, Remote, Role, Transport};
use super::passwords::passwords_of;
use super::router::{DEFAULT_UDP_MTU, Input, Router};
use crate::config::LinkUri;
use crate::core::link::LinkParams;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Socket buffer size asked for: room for bursts at hundreds of Mb/s.
pub(crate) const SOCKET_BUFFER: usize = 4 << 20;

/// A configured peer.
pub(crate) struct StaticPeer {
    pub(crate) uri: LinkUri,
    pub(crate) endpoint: Option<EndpointId>,
    pub(crate) resolver: Option<tokio::task::JoinHandle<()>>,
    pub(crate) last_error: Option<(crate::core::time::Instant, String)>,
}

impl Drop for StaticPeer {
    fn drop(&mut self) {
        if let Some(r) = &self.resolver {
            r.abort();
        }
    }
}

/// Why a peer could not be added.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AddPeerError {
    Exists,
}

impl Router {
    /// Starts every configured peer.
    pub(crate) fn start_peers(&mut self) {
        for uri in self.config.peers.clone() {
            let _ = self.add_peer(uri);
        }
    }

    /// Adds a peer and starts connecting to it.
    pub(crate) fn add_peer(&mut self, uri: LinkUri) -> Result<(), AddPeerError> {
        if self.peers.contains_key(&uri.text) {
            return Err(AddPeerError::Exists);
        }
        let resolver = tokio::spawn(resolve(uri.clone(), self.inputs.clone()));
        self.peers.insert(
            uri.text.clone(),
            StaticPeer {
                uri,
                endpoint: None,
                resolver: Some(resolver),
                last_error: None,
            },
        );
        Ok(())
    }

    /// Removes a peer given as written or as displayed (without its query); returns false if unknown.
    pub(crate) fn remove_peer(&mut self, text: &str) -> bool {
        let key = self
            .peers
            .iter()
            .find(|(k, p)| *k == text || p.uri.display() == text)
            .map(|(k, _)| k.clone());
        let Some(peer) = key.and_then(|k| self.peers.remove(&k)) else {
            return false;
        };
        if let Some(endpoint) = peer.endpoint {
            self.remove_endpoint(endpoint);
        }
        info!(peer = %peer.uri.display(), "peer removed");
        self.forget_unused_passwords();
        true
    }

    /// Forgets the stretched passwords that nothing uses any more (so that adding and removing peers
    /// with ever new passwords cannot grow the cache without end).
    fn forget_unused_passwords(&mut self) {
        let (config, peers, waiting) = (&self.config, &self.peers, &self.waiting_peers);
        let uris = peers
            .values()
            .map(|p| &p.uri)
            .chain(waiting.iter().map(|(u, _)| u));
        let in_use: Vec<&[u8]> = passwords_of(config)
            .chain(uris.filter_map(|u| u.password.as_deref()))
            .collect();
        self.passwords.retain(|p| in_use.contains(&p));
    }

    pub(crate) fn on_peer_ready(&mut self, text: &str, socket: UdpSocket, addr: SocketAddr) {
        let Some(peer) = self.peers.get(text) else {
            return; // removed meanwhile
        };
        let uri = peer.uri.clone();
        let password = match self.passwords.get(uri.password.as_deref()) {
            Ok(password) => password,
            Err(e) => {
                self.on_peer_failed(text, e.to_string());
                return;
            }
        };
        let socket = match super::udp::UdpEndpoint::new(socket) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                self.on_peer_failed(text, format!("socket: {e}"));
                return;
            }
        };
        let inputs = self.inputs.clone();
        let endpoint = self.add_endpoint(|id| Endpoint {
            reader: tokio::spawn(super::readers::udp(id, socket.clone(), inputs)),
            transport: Transport::Udp(socket),
            role: Role::Peer,
        });
        let params = LinkParams {
            initiate: true,
            password,
            allowed_keys: uri.keys.clone(),
            mtu: uri.mtu.unwrap_or(DEFAULT_UDP_MTU),
            priority: uri.priority,
            session: false,
            aes_gcm: super::cpu::has_aes_instructions(),
        };
        self.open_link(
            endpoint,
            Remote::Udp(addr),
            params,
            Origin::Peer,
            uri.display(),
        );
        self.node.handle_timeout(self.clock.now());
        if let Some(peer) = self.peers.get_mut(text) {
            peer.endpoint = Some(endpoint);
            peer.resolver = None;
        }
    }

    pub(crate) fn on_peer_failed(&mut self, text: &str, error: String) {
        let now = self.clock.now();
        if let Some(peer) = self.peers.get_mut(text) {
            warn!(peer = %peer.uri.display(), "{error} (retrying)");
            peer.last_error = Some((now, error));
        }
    }
}

/// Resolves and binds until it works, reporting each failure.
async fn resolve(uri: LinkUri, inputs: mpsc::Sender<Input>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let outcome = match resolve_address(&uri).await {
            Ok(addr) => bind_for(addr, uri.interface.as_deref()).map(|s| (s, addr)),
            Err(e) => Err(e),
        };
        let input = match outcome {
            Ok((socket, addr)) => {
                let _ = inputs
                    .send(Input::PeerReady {
                        text: uri.text.clone(),
                        socket,
                        addr,
                    })
                    .await;
                return;
            }
            Err(e) => Input::PeerFailed {
                text: uri.text.clone(),
                error: e.to_string(),
            },
        };
        if inputs.send(input).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn resolve_address(uri: &LinkUri) -> std::io::Result<SocketAddr> {
    if let Some((ip, zone)) = uri.host.split_once('%') {
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad IPv6 address {ip}")))?;
        let scope = nix::net::if_::if_nametoindex(zone)
            .map_err(|e| std::io::Error::other(format!("interface {zone}: {e}")))?;
        return Ok(SocketAddrV6::new(ip, uri.port, 0, scope).into());
    }
    if let Ok(ip) = uri.host.parse::<IpAddr>() {
        return Ok((ip, uri.port).into());
    }
    tokio::net::lookup_host((uri.host.as_str(), uri.port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{} has no address", uri.host)))
}

/// Binds an unconnected UDP socket on any port for talking to `peer`, optionally on one interface.
fn bind_for(peer: SocketAddr, interface: Option<&str>) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = if peer.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    bind_udp(local, interface)
}

/// Binds a non-blocking UDP socket (IPv6 sockets are IPv6-only, so `[::]` and `0.0.0.0` can both be
/// listened on), with large buffers and optionally bound to one interface.
pub(crate) fn bind_udp(local: SocketAddr, interface: Option<&str>) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(bind_udp_std(local, interface)?)
}

/// [`bind_udp`] before the runtime exists.
pub(crate) fn bind_udp_std(
    local: SocketAddr,
    interface: Option<&str>,
) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    if local.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    if let Some(name) = interface {
        socket.bind_device(Some(name.as_bytes()))?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    Ok(socket.into())
}
