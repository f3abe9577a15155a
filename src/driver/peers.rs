//! Configured peers (from the file or `addpeer`): resolve, dial (bind a UDP socket, or connect), open
//! a link, and keep trying with exponential backoff while the name does not resolve or the peer
//! cannot be reached. A stream peer whose connection ends is dialled again: at once if the
//! connection had lasted, with growing pauses if connections keep failing.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::input::Input;
use super::links::Origin;
use super::passwords::passwords_of;
use super::router::Router;
use super::transport::stream::{self, STREAM_MTU};
use super::transport::tls::TlsConfig;
use super::transport::udp::{self, DEFAULT_UDP_MTU};
use super::transport::{Dialled, EndpointId, Remote, Role, Transport};
use crate::config::LinkUri;
use crate::core::link::LinkParams;
use crate::core::time::Instant;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Pause before dialling again after a stream connection failed, at most: short, so that a link
/// comes back soon after its path does.
const MAX_REDIAL_PAUSE: Duration = Duration::from_secs(30);
/// A connection that lasted this long was a success: the next one is dialled at once.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);

/// A configured peer.
pub(crate) struct StaticPeer {
    pub(crate) uri: LinkUri,
    pub(crate) endpoint: Option<EndpointId>,
    pub(crate) resolver: Option<tokio::task::JoinHandle<()>>,
    pub(crate) last_error: Option<(Instant, String)>,
    /// Connections in a row that ended early (stream peers), for the pause before the next.
    failures: u32,
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
        let resolver = self.spawn_dialler(&uri, Duration::ZERO);
        self.peers.insert(
            uri.text.clone(),
            StaticPeer {
                uri,
                endpoint: None,
                resolver: Some(resolver),
                last_error: None,
                failures: 0,
            },
        );
        Ok(())
    }

    fn spawn_dialler(&self, uri: &LinkUri, pause: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(dial(
            uri.clone(),
            pause,
            self.tls.clone(),
            self.inputs.clone(),
        ))
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

    pub(crate) fn on_peer_ready(&mut self, text: &str, dialled: Dialled) {
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
        let inputs = self.inputs.clone();
        let (endpoint, remote, mtu) = match dialled {
            Dialled::Udp { socket, addr } => {
                let socket = match udp::UdpEndpoint::new(socket) {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        self.on_peer_failed(text, format!("socket: {e}"));
                        return;
                    }
                };
                let endpoint = self.add_endpoint(Role::Peer, |id| {
                    let reader = tokio::spawn(udp::read(id, socket.clone(), inputs));
                    (Transport::Udp(socket), reader)
                });
                let mtu = uri.mtu.unwrap_or(DEFAULT_UDP_MTU);
                (endpoint, Remote::Udp(addr), mtu)
            }
            Dialled::Stream { stream, addr } => {
                let scheme = uri.scheme;
                let endpoint = self.add_endpoint(Role::Peer, |id| {
                    let (sender, reader) = stream::start(id, scheme, addr, stream, inputs);
                    (Transport::Stream(sender), reader)
                });
                (endpoint, Remote::Stream(addr), STREAM_MTU)
            }
        };
        let params = LinkParams {
            initiate: true,
            password,
            allowed_keys: uri.keys.clone(),
            mtu,
            priority: uri.priority,
            session: false,
            aes_gcm: super::cpu::has_aes_instructions(),
        };
        self.open_link(endpoint, remote, params, Origin::Peer, uri.display());
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

    /// A connection ended (or its link went down): it is closed, and if it was a configured peer's,
    /// dialled again.
    pub(crate) fn on_closed(&mut self, endpoint: EndpointId, error: String) {
        let Some(opened) = self.endpoints.get(&endpoint).map(|e| e.opened) else {
            return; // already gone
        };
        let now = self.clock.now();
        self.remove_endpoint(endpoint);
        let Some((text, peer)) = self
            .peers
            .iter_mut()
            .find(|(_, p)| p.endpoint == Some(endpoint))
        else {
            self.counters.connections_closed += 1;
            return;
        };
        warn!(peer = %peer.uri.display(), "{error} (dialling again)");
        peer.endpoint = None;
        peer.last_error = Some((now, error));
        if now.saturating_since(opened) >= STABLE_CONNECTION {
            peer.failures = 0;
        }
        // At once after a connection that lasted or the first that did not; then 1, 2, 4 ... s.
        let pause = match peer.failures {
            0 => Duration::ZERO,
            n => FIRST_BACKOFF
                .saturating_mul(1 << (n - 1).min(5))
                .min(MAX_REDIAL_PAUSE),
        };
        peer.failures = peer.failures.saturating_add(1);
        let (text, uri) = (text.clone(), peer.uri.clone());
        let dialler = self.spawn_dialler(&uri, pause);
        if let Some(peer) = self.peers.get_mut(&text) {
            peer.resolver = Some(dialler);
        }
    }
}

/// After `pause`, resolves and dials until it works, reporting each failure.
async fn dial(uri: LinkUri, pause: Duration, tls: TlsConfig, inputs: mpsc::Sender<Input>) {
    tokio::time::sleep(pause).await;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let outcome = match resolve_address(&uri).await {
            Ok(addr) => super::transport::dial(&uri, addr, &tls).await,
            Err(e) => Err(e),
        };
        let input = match outcome {
            Ok(dialled) => {
                let text = uri.text.clone();
                let _ = inputs.send(Input::PeerReady { text, dialled }).await;
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
