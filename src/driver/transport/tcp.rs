//! TCP links (`tcp://`), and the connections under TLS links: connect with a timeout and
//! `TCP_NODELAY`, listen, and accept with a bound on connections still in their TLS handshake.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tracing::debug;

use super::tls::TlsConfig;
use super::{Arrived, ERROR_PAUSE, Inputs};
use crate::config::LinkUri;

/// A connection attempt that takes longer than this failed (and is retried with backoff).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake of an accepted connection that takes longer than this is abandoned.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections in their TLS handshake at once at most; beyond, the oldest is abandoned for
/// the new one, so idle connections cannot hold every slot: a real client's handshake (milliseconds)
/// is only cut if [`MAX_HANDSHAKES`] others arrive meanwhile.
pub(crate) const MAX_HANDSHAKES: usize = 32;
/// TLS handshakes from one source (an IPv4 address or an IPv6 /64) at once at most; beyond, its oldest
/// is abandoned, so that one source only ever displaces its own.
pub(crate) const MAX_HANDSHAKES_PER_SOURCE: usize = 4;
/// Connections waiting to be accepted in the kernel.
const BACKLOG: u32 = 128;

/// Binds a listening socket, optionally on one interface (IPv6 sockets are IPv6-only, so `[::]` and
/// `0.0.0.0` can both be listened on).
pub(crate) fn bind(
    local: SocketAddr,
    interface: Option<&str>,
) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(local),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if local.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    if let Some(name) = interface {
        socket.bind_device(Some(name.as_bytes()))?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    socket.listen(BACKLOG as i32)?;
    Ok(socket.into())
}

/// Connects to `peer`, optionally through one interface, within [`CONNECT_TIMEOUT`].
pub(crate) async fn connect(
    peer: SocketAddr,
    interface: Option<&str>,
) -> std::io::Result<TcpStream> {
    let socket = if peer.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(name) = interface {
        socket.bind_device(Some(name.as_bytes()))?;
    }
    let local: SocketAddr = if peer.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    socket.bind(local)?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    configure(&stream)?;
    Ok(stream)
}

/// Link traffic is already batched: Nagle's algorithm would only delay it.
fn configure(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)
}

/// Accepts connections until the router goes away; each (after its TLS handshake if `tls`) reaches
/// the router as [`Input::Accepted`].
pub(crate) async fn accept_loop<I: Inputs>(
    listener: TcpListener,
    uri: LinkUri,
    tls: Option<TlsConfig>,
    inputs: mpsc::Sender<I>,
) {
    // Handshakes under way, oldest first.
    let mut handshakes: Vec<(u128, tokio::task::JoinHandle<()>)> = Vec::new();
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: pause rather than spin.
                debug!(listen = %uri.display(), "accept: {e}");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let addr = normalise(addr);
        if configure(&stream).is_err() {
            continue;
        }
        let Some(tls) = &tls else {
            let input = Arrived::Accepted {
                uri: uri.clone(),
                stream: Box::new(stream),
                addr,
            };
            if inputs.send(input.into()).await.is_err() {
                return;
            }
            continue;
        };
        handshakes.retain(|(_, h)| !h.is_finished());
        let source = source_key(addr.ip());
        let oldest_of_source = || handshakes.iter().position(|(s, _)| *s == source);
        let same = handshakes.iter().filter(|(s, _)| *s == source).count();
        let evict = if same >= MAX_HANDSHAKES_PER_SOURCE {
            oldest_of_source()
        } else if handshakes.len() >= MAX_HANDSHAKES {
            Some(0)
        } else {
            None
        };
        if let Some(index) = evict {
            debug!(listen = %uri.display(), %addr, "too many TLS handshakes: the oldest abandoned");
            handshakes.remove(index).1.abort();
        }
        let (tls, uri, inputs) = (tls.clone(), uri.clone(), inputs.clone());
        let handshake = tokio::spawn(async move {
            let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
            match outcome {
                Ok(Ok(stream)) => {
                    let _ = inputs
                        .send(Arrived::Accepted { uri, stream, addr }.into())
                        .await;
                }
                Ok(Err(e)) => debug!(%addr, "TLS handshake: {e}"),
                Err(_) => debug!(%addr, "TLS handshake timed out"),
            }
        });
        handshakes.push((source, handshake));
    }
}

/// What limits per source count: an IPv4 address, or an IPv6 /64 (one host can have a whole /64).
pub(crate) fn source_key(ip: std::net::IpAddr) -> u128 {
    match ip {
        std::net::IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        std::net::IpAddr::V6(v6) => u128::from(v6) >> 64,
    }
}

/// An IPv4 peer of a dual-stack socket shows as `::ffff:a.b.c.d`; links name it in the plain form.
fn normalise(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => (v4, v6.port()).into(),
            None => addr,
        },
        v4 => v4,
    }
}
