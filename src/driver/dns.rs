//! The DNS responder's driver: UDP and TCP sockets on port 53 (bound while privileged), on a
//! thread of its own so that a burst of queries never takes the router's time; answers come from
//! [`crate::services::names::dns::answer`] with the latest name table, and other names go to the
//! configured upstream servers.
//!
//! Who may ask: this node, loopback, link-local and LAN hosts; not other mesh nodes (sources in
//! `200::/7` outside this node's address and /64) unless `dns.allow_overlay`, so the responder is
//! never a service of the overlay by default. Their queries get no answer at all.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::DriverError;
use super::names::NameFeed;
use crate::config::{DNS_PORT, Daemon};
use crate::core::address::{node_address, node_subnet};
use crate::core::identity::PublicKey;
use crate::services::names::dns::{Admission, Answer, answer, server_failure};

/// Forwarded queries waiting for an upstream answer at once; past this, SERVFAIL.
const MAX_FORWARDS: usize = 256;
/// TCP connections served at once; more wait in the backlog.
const MAX_TCP: usize = 64;
/// How long one upstream server has to answer before the next is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Largest DNS message read (the TCP length prefix's range; UDP datagrams are smaller).
const MAX_MESSAGE: usize = 65535;

/// Sockets bound during privileged setup (port 53 needs it).
pub(crate) struct PreparedDns {
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
    policy: Admission,
    upstream: Vec<SocketAddr>,
}

/// The addresses to listen on: as configured, else port 53 on the LAN gateway address and the
/// node's address.
pub(crate) fn listen_addresses(daemon: &Daemon, key: &PublicKey) -> Vec<SocketAddr> {
    if !daemon.dns.listen.is_empty() {
        return daemon.dns.listen.clone();
    }
    let mut out = Vec::new();
    if !daemon.lan.is_empty() {
        out.push((super::lan::gateway_address(key), DNS_PORT).into());
    }
    if daemon.tun_name.is_some() {
        out.push((node_address(key), DNS_PORT).into());
    }
    out
}

impl PreparedDns {
    /// Binds the responder's sockets, if it runs.
    pub(crate) fn bind(daemon: &Daemon, key: &PublicKey) -> Result<Option<Self>, DriverError> {
        if !daemon.dns.runs(&daemon.lan) {
            return Ok(None);
        }
        let addresses = listen_addresses(daemon, key);
        if addresses.is_empty() {
            warn!(
                "DNS: nothing to listen on (no LAN, no TUN device, no dns.listen): the responder is off"
            );
            return Ok(None);
        }
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for address in addresses {
            let fail = |source| DriverError::Bind {
                what: "DNS responder",
                address: address.to_string(),
                source,
            };
            udp.push(bind(address, socket2::Type::DGRAM).map_err(fail)?.into());
            let listener = bind(address, socket2::Type::STREAM).map_err(fail)?;
            listener.listen(128).map_err(fail)?;
            tcp.push(listener.into());
        }
        Ok(Some(Self {
            udp,
            tcp,
            policy: Admission {
                address: node_address(key),
                subnet: node_subnet(key),
                allow_overlay: daemon.dns.allow_overlay,
            },
            upstream: daemon.dns.upstream.clone(),
        }))
    }

    /// Serves on a thread of its own until the process ends.
    pub(crate) fn start(self, names: NameFeed) {
        let spawned = std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || {
                if let Err(e) = crate::sys::thread::run_in_background() {
                    debug!("the DNS thread keeps its priority: {e}");
                }
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return warn!("DNS: cannot start ({e}); the responder is off"),
                };
                runtime.block_on(self.serve(names));
            });
        if let Err(e) = spawned {
            warn!("DNS: cannot start its thread ({e}); the responder is off");
        }
    }

    async fn serve(self, names: NameFeed) {
        let shared = Arc::new(Shared {
            names,
            policy: self.policy,
            upstream: self.upstream,
            forwards: Semaphore::new(MAX_FORWARDS),
            connections: Arc::new(Semaphore::new(MAX_TCP)),
        });
        let mut tasks = tokio::task::JoinSet::new();
        for socket in self.udp {
            match socket
                .set_nonblocking(true)
                .and_then(|()| UdpSocket::from_std(socket))
            {
                Ok(socket) => {
                    info!(listen = %socket.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "DNS responder on UDP");
                    tasks.spawn(serve_udp(Arc::new(socket), shared.clone()));
                }
                Err(e) => warn!("DNS: {e}"),
            }
        }
        for listener in self.tcp {
            match listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
            {
                Ok(listener) => {
                    tasks.spawn(serve_tcp(listener, shared.clone()));
                }
                Err(e) => warn!("DNS: {e}"),
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Binds one socket of `kind` at `address`. IPv6 sockets take IPv6 only, and may bind an address
/// the node has not got yet (`IPV6_FREEBIND`): the LAN address comes when its interface does.
pub(crate) fn bind(address: SocketAddr, kind: socket2::Type) -> io::Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, kind, None)?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.bind(&address.into())?;
    Ok(socket)
}

struct Shared {
    names: NameFeed,
    policy: Admission,
    upstream: Vec<SocketAddr>,
    forwards: Semaphore,
    connections: Arc<Semaphore>,
}

impl Shared {
    /// What the node answers to `query` from the name table: a reply, a forward, or nothing.
    fn local_answer(&self, query: &[u8]) -> Answer {
        let table = self.names.borrow().clone();
        answer(query, &table, !self.upstream.is_empty())
    }

    /// The upstream servers' reply to `query` (each asked in turn), or SERVFAIL.
    async fn forward(&self, query: &[u8], tcp: bool) -> Vec<u8> {
        let Ok(_permit) = self.forwards.try_acquire() else {
            return server_failure(query);
        };
        for server in &self.upstream {
            let asked = if tcp {
                forward_tcp(*server, query).await
            } else {
                forward_udp(*server, query).await
            };
            match asked {
                Ok(reply) if reply.len() >= 2 && reply[..2] == query[..2] => return reply,
                Ok(_) => {}
                Err(e) => debug!(upstream = %server, "DNS: {e}"),
            }
        }
        server_failure(query)
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buffer = vec![0u8; MAX_MESSAGE];
    loop {
        let (n, from) = match socket.recv_from(&mut buffer).await {
            Ok(x) => x,
            Err(e) => {
                debug!("DNS: {e}");
                continue;
            }
        };
        if !shared.policy.admits(from.ip()) {
            continue;
        }
        let query = &buffer[..n];
        match shared.local_answer(query) {
            Answer::Reply(bytes) => {
                let _ = socket.send_to(&bytes, from).await;
            }
            Answer::Ignore => {}
            Answer::Forward => {
                // Upstream round trips run beside the loop, which keeps answering.
                let (socket, shared, query) = (socket.clone(), shared.clone(), query.to_vec());
                tokio::spawn(async move {
                    let reply = shared.forward(&query, false).await;
                    let _ = socket.send_to(&reply, from).await;
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok(permit) = shared.connections.clone().acquire_owned().await else {
            return;
        };
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!("DNS: {e}");
                continue;
            }
        };
        if !shared.policy.admits(from.ip()) {
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = serve_connection(stream, &shared).await;
            drop(permit);
        });
    }
}

/// Answers length-prefixed queries (RFC 1035 §4.2.2) until the client closes or idles.
async fn serve_connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    loop {
        let Ok(len) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return Ok(());
        };
        let mut query = vec![0u8; usize::from(len?)];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        let reply = match shared.local_answer(&query) {
            Answer::Reply(reply) => reply,
            Answer::Forward => shared.forward(&query, true).await,
            Answer::Ignore => return Ok(()),
        };
        let len = u16::try_from(reply.len()).map_err(|_| io::Error::other("reply too long"))?;
        stream.write_u16(len).await?;
        stream.write_all(&reply).await?;
    }
}

async fn forward_udp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; MAX_MESSAGE];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buffer))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    buffer.truncate(n);
    Ok(buffer)
}

async fn forward_tcp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        let len = u16::try_from(query.len()).map_err(|_| io::Error::other("query too long"))?;
        stream.write_u16(len).await?;
        stream.write_all(query).await?;
        let len = stream.read_u16().await?;
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await?;
        Ok(reply)
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}
