//! What the driver knows about each link beyond the core: where its datagrams go, where it came from,
//! and the operator-facing history (uptime, rates, last error).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;

use crate::config::LinkUri;
use crate::core::identity::PublicKey;
use crate::core::time::Instant;

/// Handle of an endpoint (a socket links share).
pub(crate) use crate::core::node::EndpointId;

/// EtherType of raw Ethernet links and beacons (IEEE 802 "local experimental 1").
pub(crate) const ETHERTYPE: u16 = 0x88b5;

/// Where a link's datagrams are sent from.
pub(crate) enum Transport {
    Udp(Arc<super::udp::UdpEndpoint>),
    Ethernet {
        socket: Arc<AsyncFd<OwnedFd>>,
        ifindex: u32,
    },
}

impl Transport {
    /// Sends without waiting: a full socket buffer drops the datagram, as a busy link would.
    pub(crate) fn send(&self, remote: &Remote, payload: &[u8]) -> std::io::Result<()> {
        match (self, remote) {
            (Self::Udp(endpoint), Remote::Udp(addr)) => endpoint.send(*addr, payload),
            (Self::Ethernet { socket, ifindex }, Remote::Ethernet(mac)) => {
                crate::sys::packet::send_to(socket.get_ref(), *ifindex, ETHERTYPE, mac, payload)
                    .map(drop)
            }
            _ => Err(std::io::Error::other("remote of another transport")),
        }
    }

    /// Sends several datagrams to one remote, in order (batched where the transport can).
    pub(crate) fn send_all(&self, remote: &Remote, datagrams: &[Vec<u8>]) -> std::io::Result<()> {
        match (self, remote) {
            (Self::Udp(endpoint), Remote::Udp(addr)) => endpoint.send_all(*addr, datagrams),
            (Self::Ethernet { socket, ifindex }, Remote::Ethernet(mac)) => {
                let socket = socket.get_ref();
                crate::sys::packet::send_batch(socket, *ifindex, ETHERTYPE, mac, datagrams)
            }
            _ => {
                let mut result = Ok(());
                for d in datagrams {
                    let outcome = self.send(remote, d);
                    if result.is_ok() {
                        result = outcome;
                    }
                }
                result
            }
        }
    }
}

/// The other end of a link on an endpoint (the core demultiplexes by it).
pub(crate) use crate::core::node::Remote;

/// What an endpoint is for, which decides what inbound handshakes it takes.
pub(crate) enum Role {
    /// A configured peer's socket: only datagrams from its address.
    Peer,
    /// A listener: links from anywhere (the allowed keys apply).
    Listener(LinkUri),
    /// The UDP socket of discovered links (link-local addresses only).
    Discovery,
    /// Raw Ethernet on one interface.
    Ethernet { ifname: String, mtu: usize },
}

/// A socket and its role.
pub(crate) struct Endpoint {
    pub(crate) transport: Transport,
    pub(crate) role: Role,
    pub(crate) reader: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How a link came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A configured or added peer.
    Peer,
    /// Someone connected to a listener or to our discovery socket.
    Inbound,
    /// We dialled a node whose beacon we heard.
    Discovered,
}

/// The driver's record of a link.
pub(crate) struct LinkInfo {
    pub(crate) endpoint: EndpointId,
    pub(crate) remote: Remote,
    /// What the operator sees as the link's URI (never holds a password).
    pub(crate) uri: String,
    pub(crate) origin: Origin,
    pub(crate) up_since: Option<Instant>,
    pub(crate) peer: Option<PublicKey>,
    pub(crate) last_error: Option<(Instant, String)>,
    /// Last time a beacon for this link was heard (discovered links).
    pub(crate) last_beacon: Option<Instant>,
    pub(crate) rates: Rates,
}

/// Bytes per second in each direction, sampled once a second.
#[derive(Default, Clone, Copy)]
pub(crate) struct Rates {
    last_rx: u64,
    last_tx: u64,
    last_at: Option<Instant>,
    pub(crate) rx: u64,
    pub(crate) tx: u64,
}

impl Rates {
    pub(crate) fn sample(&mut self, now: Instant, rx: u64, tx: u64) {
        if let Some(at) = self.last_at {
            let micros = now.as_micros().saturating_sub(at.as_micros()).max(1);
            self.rx = rx.saturating_sub(self.last_rx) * 1_000_000 / micros;
            self.tx = tx.saturating_sub(self.last_tx) * 1_000_000 / micros;
        }
        (self.last_rx, self.last_tx, self.last_at) = (rx, tx, Some(now));
    }
}
