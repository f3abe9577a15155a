//! Configured peers (from the file or `addpeer`): resolve, dial (bind a UDP socket, or connect), open
//! a link, and keep trying with exponential backoff while the name does not resolve or the peer
//! cannot be reached. A stream peer whose connection ends is dialled again: at once if the
//! connection had lasted, with growing pauses if connections keep failing. `addpeer` with a password
//! not in use yet waits for it to be stretched, off the router's thread.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::counters::DriverCounters;
use super::input::Input;
use super::links::{Links, Origin};
use super::passwords::{PasswordKeys, passwords_of};
use super::request::ApiResponse;
use super::transport::stream::{self, STREAM_MTU};
use super::transport::tls::TlsConfig;
use super::transport::udp::{self, DEFAULT_UDP_MTU};
use super::transport::{Dialled, EndpointId, Remote, Role, Transport};
use crate::config::{Daemon, LinkUri};
use crate::core::link::LinkParams;
use crate::core::node::Node;
use crate::core::password::PasswordKey;
use crate::core::time::Instant;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Pause before dialling again after a stream connection failed, at most: short, so that a link
/// comes back soon after its path does.
const MAX_REDIAL_PAUSE: Duration = Duration::from_secs(30);
/// A connection that lasted this long was a success: the next one is dialled at once.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
/// A configured peer's link that is not up this long after its socket or connection was ready gets
/// an explanation in `last_error`.
const EXPLAIN_AFTER: Duration = Duration::from_secs(5);

/// A configured peer.
pub(crate) struct StaticPeer {
    pub(crate) uri: LinkUri,
    pub(crate) endpoint: Option<EndpointId>,
    resolver: Option<tokio::task::JoinHandle<()>>,
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

/// The configured peers and the `addpeer` requests waiting for their password.
pub(crate) struct Peers {
    /// By the URI as written.
    pub(crate) configured: BTreeMap<String, StaticPeer>,
    /// `addpeer` requests waiting for their password to be stretched, in order.
    waiting: VecDeque<(LinkUri, oneshot::Sender<ApiResponse>)>,
    /// A password is being stretched on a blocking thread (one at a time: each takes 19 MiB).
    stretching: bool,
    tls: TlsConfig,
    inputs: mpsc::Sender<Input>,
}

/// The parts of the router that opening and closing a peer's link touches.
pub(crate) struct LinkSide<'a> {
    pub(crate) node: &'a mut Node,
    pub(crate) links: &'a mut Links,
    pub(crate) now: Instant,
}

impl Peers {
    pub(crate) fn new(tls: TlsConfig, inputs: mpsc::Sender<Input>) -> Self {
        Self {
            configured: BTreeMap::new(),
            waiting: VecDeque::new(),
            stretching: false,
            tls,
            inputs,
        }
    }

    /// The TLS settings links dial and accept with.
    pub(crate) fn tls(&self) -> &TlsConfig {
        &self.tls
    }

    /// Adds a peer and starts connecting to it.
    pub(crate) fn add(&mut self, uri: LinkUri) -> Result<(), AddPeerError> {
        if self.configured.contains_key(&uri.text) {
            return Err(AddPeerError::Exists);
        }
        let resolver = self.spawn_dialler(&uri, Duration::ZERO);
        let peer = StaticPeer {
            uri,
            endpoint: None,
            resolver: Some(resolver),
            last_error: None,
            failures: 0,
        };
        self.configured.insert(peer.uri.text.clone(), peer);
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
    pub(crate) fn remove(
        &mut self,
        text: &str,
        side: LinkSide<'_>,
        config: &Daemon,
        passwords: &mut PasswordKeys,
    ) -> bool {
        let key = self
            .configured
            .iter()
            .find(|(k, p)| *k == text || p.uri.display() == text)
            .map(|(k, _)| k.clone());
        let Some(peer) = key.and_then(|k| self.configured.remove(&k)) else {
            return false;
        };
        if let Some(endpoint) = peer.endpoint {
            side.links.remove_endpoint(side.node, side.now, endpoint);
        }
        info!(peer = %peer.uri.display(), "peer removed");
        self.forget_unused_passwords(config, passwords);
        true
    }

    /// Forgets the stretched passwords that nothing uses any more (so that adding and removing peers
    /// with ever new passwords cannot grow the cache without end).
    fn forget_unused_passwords(&self, config: &Daemon, passwords: &mut PasswordKeys) {
        let uris = self
            .configured
            .values()
            .map(|p| &p.uri)
            .chain(self.waiting.iter().map(|(u, _)| u));
        let in_use: Vec<&[u8]> = passwords_of(config)
            .chain(uris.filter_map(|u| u.password.as_deref()))
            .collect();
        passwords.retain(|p| in_use.contains(&p));
    }

    /// A peer was reached: its endpoint and link are made.
    pub(crate) fn on_ready(
        &mut self,
        text: &str,
        dialled: Dialled,
        side: LinkSide<'_>,
        passwords: &PasswordKeys,
    ) {
        let Some(peer) = self.configured.get(text) else {
            return; // removed meanwhile
        };
        let uri = peer.uri.clone();
        let password = match passwords.get(uri.password.as_deref()) {
            Ok(password) => password,
            Err(e) => {
                self.on_failed(text, e.to_string(), side.now);
                return;
            }
        };
        let (links, now) = (side.links, side.now);
        let inputs = self.inputs.clone();
        let (endpoint, remote, mtu) = match dialled {
            Dialled::Udp { socket, addr } => {
                let socket = match udp::UdpEndpoint::new(socket) {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        self.on_failed(text, format!("socket: {e}"), now);
                        return;
                    }
                };
                let endpoint = links.add_endpoint(now, Role::Peer, |id| {
                    let reader = tokio::spawn(udp::read(id, socket.clone(), inputs));
                    (Transport::Udp(socket), reader)
                });
                let mtu = uri.mtu.unwrap_or(DEFAULT_UDP_MTU);
                (endpoint, Remote::Udp(addr), mtu)
            }
            Dialled::Stream { stream, addr } => {
                let scheme = uri.scheme;
                let endpoint = links.add_endpoint(now, Role::Peer, |id| {
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
        links.open_link(
            side.node,
            now,
            endpoint,
            remote,
            params,
            Origin::Peer,
            uri.display(),
        );
        side.node.handle_timeout(now);
        if let Some(peer) = self.configured.get_mut(text) {
            peer.endpoint = Some(endpoint);
            peer.resolver = None;
        }
    }

    /// Resolving or dialling failed (the dialler retries).
    pub(crate) fn on_failed(&mut self, text: &str, error: String, now: Instant) {
        if let Some(peer) = self.configured.get_mut(text) {
            warn!(peer = %peer.uri.display(), "{error} (retrying)");
            peer.last_error = Some((now, error));
        }
    }

    /// A connection ended (or its link went down): it is closed, and if it was a configured peer's,
    /// dialled again.
    pub(crate) fn on_closed(
        &mut self,
        endpoint: EndpointId,
        error: String,
        side: LinkSide<'_>,
        counters: &mut DriverCounters,
    ) {
        let Some(opened) = side.links.endpoints.get(&endpoint).map(|e| e.opened) else {
            return; // already gone
        };
        let now = side.now;
        side.links.remove_endpoint(side.node, now, endpoint);
        let Some((text, peer)) = self
            .configured
            .iter_mut()
            .find(|(_, p)| p.endpoint == Some(endpoint))
        else {
            counters.connections_closed += 1;
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
        if let Some(peer) = self.configured.get_mut(&text) {
            peer.resolver = Some(dialler);
        }
    }

    /// Tells the operator why a configured peer's link is not up: the last handshake datagram the
    /// link refused (a wrong key shows here), or that the peer never answered (a password or allowed
    /// key it does not accept: it drops our handshakes without a word).
    pub(crate) fn explain_down(&mut self, node: &Node, links: &mut Links, now: Instant) {
        for peer in self.configured.values_mut() {
            let Some(endpoint) = peer.endpoint else {
                continue;
            };
            let Some(opened) = links.endpoints.get(&endpoint).map(|e| e.opened) else {
                continue;
            };
            if now.saturating_since(opened) < EXPLAIN_AFTER {
                continue;
            }
            let Some((id, info)) = links
                .records
                .iter_mut()
                .find(|(_, l)| l.endpoint == endpoint)
            else {
                continue;
            };
            if info.up_since.is_some() {
                continue;
            }
            let link = node.link(*id);
            let explanation = match link.and_then(|l| l.last_drop()) {
                Some((_, drop)) => format!("handshake refused: {drop}"),
                None if link.is_some_and(|l| l.stats().key_sets > 0) => continue,
                None => "no answer to the link handshake: the peer drops it (a password or an \
                         allowed key that it does not accept?)"
                    .to_owned(),
            };
            if peer
                .last_error
                .as_ref()
                .is_none_or(|(_, e)| *e != explanation)
            {
                warn!(peer = %peer.uri.display(), "{explanation}");
            }
            info.last_error = Some((now, explanation.clone()));
            peer.last_error = Some((now, explanation));
        }
    }

    /// `addpeer`: adds the peer at once if its password is stretched already, else once it is (the
    /// answer waits).
    pub(crate) fn request_add(
        &mut self,
        uri: LinkUri,
        reply: oneshot::Sender<ApiResponse>,
        passwords: &PasswordKeys,
    ) {
        if passwords.has(uri.password.as_deref()) {
            let _ = reply.send(self.add_answer(uri));
        } else {
            self.waiting.push_back((uri, reply));
            self.serve_waiting(passwords);
        }
    }

    fn add_answer(&mut self, uri: LinkUri) -> ApiResponse {
        let display = uri.display();
        match self.add(uri) {
            Ok(()) => ApiResponse {
                status: 201,
                body: serde_json::json!({ "added": display }),
            },
            Err(AddPeerError::Exists) => {
                ApiResponse::error(409, format!("{display} is already a peer"))
            }
        }
    }

    /// Adds the waiting peers whose password is stretched now, and starts stretching the next
    /// password if none is being stretched: one at a time, since each takes 19 MiB.
    fn serve_waiting(&mut self, passwords: &PasswordKeys) {
        for (uri, reply) in std::mem::take(&mut self.waiting) {
            if passwords.has(uri.password.as_deref()) {
                let _ = reply.send(self.add_answer(uri));
            } else {
                self.waiting.push_back((uri, reply));
            }
        }
        if self.stretching {
            return;
        }
        let Some(password) = self.waiting.front().and_then(|(u, _)| u.password.clone()) else {
            return;
        };
        self.stretching = true;
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let copy = zeroize::Zeroizing::new(password.clone());
            let key = tokio::task::spawn_blocking(move || PasswordKey::derive(&copy))
                .await
                .map_err(|e| e.to_string());
            let _ = inputs
                .send(Input::PasswordStretched { password, key })
                .await;
        });
    }

    /// A password `addpeer` brought is stretched (or stretching it failed).
    pub(crate) fn on_password_stretched(
        &mut self,
        password: Vec<u8>,
        key: Result<PasswordKey, String>,
        passwords: &mut PasswordKeys,
    ) {
        self.stretching = false;
        match key {
            Ok(key) => passwords.insert(password, key),
            Err(e) => {
                for (uri, reply) in std::mem::take(&mut self.waiting) {
                    if uri.password.as_ref() == Some(&password) {
                        let message = format!("stretching the password: {e}");
                        let _ = reply.send(ApiResponse::error(500, message));
                    } else {
                        self.waiting.push_back((uri, reply));
                    }
                }
            }
        }
        self.serve_waiting(passwords);
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
