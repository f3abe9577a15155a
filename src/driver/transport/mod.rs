//! Link transports: one module each, behind one seam. A transport knows how to dial a peer, how to
//! listen, how to read (a task that feeds the router [`Input::Datagram`]s) and how to send a batch;
//! the core decides everything else. Adding a transport adds its module here, a variant to
//! [`crate::config::Scheme`], and its docs.
//!
//! - [`udp`]: one socket per configured peer, listener or discovery, many links per socket;
//! - [`ethernet`]: one raw socket per interface, links to MAC addresses;
//! - [`tcp`] and [`tls`]: one connection per link, datagrams framed by [`stream`].

pub(crate) mod ethernet;
pub mod stream;
pub(crate) mod tcp;
pub(crate) mod tls;
pub(crate) mod udp;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;

use crate::config::{LinkUri, Scheme};
/// Handle of an endpoint (a socket or connection links share), and the other end of a link on it.
pub(crate) use crate::core::node::{EndpointId, Remote};
use crate::driver::buffers::Buffer;

/// Pause after a read or accept error, so a persistent error cannot spin a core.
pub(crate) const ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// What the transports' tasks hand the router. They send into the router's input channel, whose
/// item type only has to be made from this: the transports do not know the router.
pub(crate) enum Arrived {
    /// Datagrams on a link endpoint: `data` holds one or more, each `stride` bytes (the last may be
    /// shorter), as UDP GRO delivers them.
    Datagram {
        endpoint: EndpointId,
        remote: Remote,
        data: Buffer,
        stride: usize,
    },
    /// A stream listener accepted a connection (TLS handshake done for `tls://`).
    Accepted {
        uri: LinkUri,
        stream: stream::BoxedStream,
        addr: SocketAddr,
    },
    /// A connection endpoint failed or its peer closed it.
    Closed { endpoint: EndpointId, error: String },
}

/// The channel the transports' tasks send into.
pub(crate) trait Inputs: From<Arrived> + Send + 'static {}
impl<T: From<Arrived> + Send + 'static> Inputs for T {}

/// Where a link's datagrams are sent from.
pub(crate) enum Transport {
    Udp(Arc<udp::UdpEndpoint>),
    Ethernet {
        socket: Arc<AsyncFd<OwnedFd>>,
        ifindex: u32,
    },
    /// A TCP or TLS connection (one link).
    Stream(stream::StreamSender),
}

impl Transport {
    /// Sends without waiting: a full socket buffer or send queue drops the datagram, as a busy link
    /// would.
    pub(crate) fn send(&self, remote: &Remote, payload: &[u8]) -> std::io::Result<()> {
        match (self, remote) {
            (Self::Udp(endpoint), Remote::Udp(addr)) => endpoint.send(*addr, payload),
            (Self::Ethernet { socket, ifindex }, Remote::Ethernet(mac)) => {
                ethernet::send(socket, *ifindex, mac, payload)
            }
            (Self::Stream(sender), Remote::Stream(_)) => sender.send_all(&[payload]),
            _ => Err(std::io::Error::other("remote of another transport")),
        }
    }

    /// Sends several datagrams to one remote, in order, batched where the transport can (GSO trains,
    /// `sendmmsg`, one stream write).
    pub(crate) fn send_all(&self, remote: &Remote, datagrams: &[Vec<u8>]) -> std::io::Result<()> {
        match (self, remote) {
            (Self::Udp(endpoint), Remote::Udp(addr)) => endpoint.send_all(*addr, datagrams),
            (Self::Ethernet { socket, ifindex }, Remote::Ethernet(mac)) => {
                ethernet::send_all(socket, *ifindex, mac, datagrams)
            }
            (Self::Stream(sender), Remote::Stream(_)) => sender.send_all(datagrams),
            _ => Err(std::io::Error::other("remote of another transport")),
        }
    }

    /// The transport's name, as `meshrouter peers` shows it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Udp(_) => "udp",
            Self::Ethernet { .. } => "ethernet",
            Self::Stream(sender) => sender.scheme().name(),
        }
    }
}

/// What an endpoint is for, which decides what inbound handshakes it takes.
pub(crate) enum Role {
    /// A configured peer's socket or connection: only its datagrams.
    Peer,
    /// A UDP listener: links from anywhere (the allowed keys apply).
    Listener(LinkUri),
    /// A connection a stream listener accepted from `from`: one link from whoever connected (the
    /// allowed keys apply).
    Accepted { uri: LinkUri, from: SocketAddr },
    /// The UDP socket of discovered links (link-local addresses only).
    Discovery,
    /// Raw Ethernet on one interface.
    Ethernet { ifname: String, mtu: usize },
}

/// A socket or connection and its role.
pub(crate) struct Endpoint {
    pub(crate) transport: Transport,
    pub(crate) role: Role,
    pub(crate) reader: tokio::task::JoinHandle<()>,
    /// When it was set up (connections that never bring a link up are closed after a while).
    pub(crate) opened: crate::core::time::Instant,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A peer reached: what [`dial`] hands the router.
pub(crate) enum Dialled {
    /// A fresh UDP socket for the peer at `addr`.
    Udp {
        socket: tokio::net::UdpSocket,
        addr: SocketAddr,
    },
    /// A connection to `addr`.
    Stream {
        stream: stream::BoxedStream,
        addr: SocketAddr,
    },
}

/// Reaches the peer of `uri` at `addr` (resolved): binds its UDP socket, or connects (and for TLS,
/// shakes hands).
pub(crate) async fn dial(
    uri: &LinkUri,
    addr: SocketAddr,
    tls: &tls::TlsConfig,
) -> std::io::Result<Dialled> {
    let interface = uri.interface.as_deref();
    match uri.scheme {
        Scheme::Udp => Ok(Dialled::Udp {
            socket: udp::bind_for(addr, interface)?,
            addr,
        }),
        Scheme::Tcp => Ok(Dialled::Stream {
            stream: Box::new(tcp::connect(addr, interface).await?),
            addr,
        }),
        Scheme::Tls => {
            let tcp = tcp::connect(addr, interface).await?;
            Ok(Dialled::Stream {
                stream: tls.connect(tcp, &uri.host).await?,
                addr,
            })
        }
    }
}

/// A listener bound during privileged setup.
pub(crate) enum Bound {
    Udp(std::net::UdpSocket),
    Stream(std::net::TcpListener),
}

/// Binds the listener of `uri` (before privileges are dropped: port 443 needs them).
pub(crate) fn bind_listener(uri: &LinkUri) -> std::io::Result<Bound> {
    let ip: std::net::IpAddr = uri.host.parse().map_err(|_| {
        std::io::Error::other("a listener needs an IP address literal, such as [::] or 0.0.0.0")
    })?;
    let local = SocketAddr::from((ip, uri.port));
    let interface = uri.interface.as_deref();
    match uri.scheme {
        Scheme::Udp => udp::bind_std(local, interface).map(Bound::Udp),
        Scheme::Tcp | Scheme::Tls => tcp::bind(local, interface).map(Bound::Stream),
    }
}

/// Starts accepting on a bound stream listener: every connection (after the TLS handshake for
/// `tls://`) reaches the router as [`Arrived::Accepted`].
pub(crate) fn listen_stream<I: Inputs>(
    listener: std::net::TcpListener,
    uri: LinkUri,
    tls: &tls::TlsConfig,
    inputs: tokio::sync::mpsc::Sender<I>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let upgrade = match uri.scheme {
        Scheme::Tls => Some(tls.clone()),
        _ => None,
    };
    Ok(tokio::spawn(tcp::accept_loop(
        listener, uri, upgrade, inputs,
    )))
}
