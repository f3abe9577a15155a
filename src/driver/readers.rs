//! Reader tasks: each waits on one socket or device and hands what arrives to the router.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::debug;

use super::buffers::{Buffer, BufferPool};
use super::links::{EndpointId, Remote};
use super::router::Input;

/// Largest datagram read: UDP's limit.
const MAX_DATAGRAM: usize = 65_536;
/// Pause after a read error, so a persistent error cannot spin a core.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Reads a link endpoint's UDP socket, several datagrams per system call where the kernel allows.
pub(crate) async fn udp(
    endpoint: EndpointId,
    socket: Arc<super::udp::UdpEndpoint>,
    inputs: mpsc::Sender<Input>,
) {
    const BUFFERS: usize = 8;
    let size = (socket.gro_segments().max(1) * 1500).max(MAX_DATAGRAM);
    // Fresh buffers are allocated zeroed, which costs address space, not memory, until used.
    let pool = BufferPool::new(size);
    let mut storage: Vec<Buffer> = (0..BUFFERS).map(|_| pool.take()).collect();
    let mut meta = vec![quinn_udp::RecvMeta::default(); BUFFERS];
    loop {
        let received = {
            let mut bufs: Vec<std::io::IoSliceMut<'_>> = storage
                .iter_mut()
                .map(|b| std::io::IoSliceMut::new(b.whole()))
                .collect();
            socket.recv(&mut bufs, &mut meta).await
        };
        match received {
            Ok(n) => {
                for (m, slot) in meta.iter().zip(&mut storage).take(n) {
                    // The buffer itself goes to the router, which decrypts in it; a fresh one (or
                    // one the router is done with) takes its place.
                    let mut data = std::mem::replace(slot, pool.take());
                    data.set_range(0..m.len);
                    let input = Input::Datagram {
                        endpoint,
                        remote: Remote::Udp(normalise(m.addr)),
                        data,
                        stride: m.stride.max(1),
                    };
                    if inputs.send(input).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                debug!("endpoint {endpoint}: receive: {e}");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// An IPv4 peer reached through a dual-stack socket shows up as `::ffff:a.b.c.d`; links are keyed by
/// the plain form.
fn normalise(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    match addr {
        std::net::SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => (v4, v6.port()).into(),
            None => addr,
        },
        v4 => v4,
    }
}

/// Reads the multicast socket of UDP beacons.
pub(crate) async fn beacons(socket: Arc<UdpSocket>, inputs: mpsc::Sender<Input>) {
    let mut buf = vec![0; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, std::net::SocketAddr::V6(from))) => {
                let input = Input::UdpBeacon {
                    from,
                    data: buf[..n].to_vec(),
                };
                if inputs.send(input).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                debug!("discovery: receive: {e}");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// Reads a raw Ethernet endpoint, up to 8 frames per system call.
pub(crate) async fn ethernet(
    endpoint: EndpointId,
    socket: Arc<AsyncFd<OwnedFd>>,
    inputs: mpsc::Sender<Input>,
) {
    const BUFFERS: usize = 8;
    let pool = BufferPool::new(MAX_DATAGRAM);
    let mut storage: Vec<Buffer> = (0..BUFFERS).map(|_| pool.take()).collect();
    let mut received = Vec::with_capacity(BUFFERS);
    loop {
        let mut guard = match socket.readable().await {
            Ok(g) => g,
            Err(e) => {
                debug!("endpoint {endpoint}: {e}");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let result = guard.try_io(|fd| {
            let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| b.whole()).collect();
            crate::sys::packet::recv_batch(fd.get_ref(), &mut bufs, &mut received)
        });
        match result {
            Ok(Ok(_)) => {
                for frame in &received {
                    // As for UDP: the buffer goes to the router, a spare one takes its place.
                    let mut data = std::mem::replace(&mut storage[frame.index], pool.take());
                    data.set_range(0..frame.len);
                    let input = Input::Datagram {
                        endpoint,
                        remote: Remote::Ethernet(frame.mac),
                        data,
                        stride: frame.len.max(1),
                    };
                    if inputs.send(input).await.is_err() {
                        return;
                    }
                }
            }
            Err(_would_block) => {}
            Ok(Err(e)) => {
                debug!("endpoint {endpoint}: receive: {e}");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// Reads packets the host sends into the TUN device: each read is a `virtio_net_hdr` and a packet or
/// a TCP super-packet, which `core::offload` turns into ordinary IPv6 packets.
pub(crate) async fn tun(device: Arc<tun::AsyncDevice>, inputs: mpsc::Sender<Input>) {
    let pool = BufferPool::new(MAX_DATAGRAM + crate::core::offload::VNET_HDR_LEN);
    let mut buf = pool.take();
    let mut packets = Vec::new();
    loop {
        match device.recv(buf.whole()).await {
            Ok(n) => {
                if let Some(sp) = crate::core::offload::super_packet(&buf.whole()[..n]) {
                    let (mss, ecn) = (sp.mss, sp.ecn);
                    let mut packet = std::mem::replace(&mut buf, pool.take());
                    packet.set_range(crate::core::offload::VNET_HDR_LEN..n);
                    let input = Input::TunSuper { packet, mss, ecn };
                    if inputs.send(input).await.is_err() {
                        return;
                    }
                    continue;
                }
                packets.clear();
                if let Err(e) = crate::core::offload::split_read(&buf.whole()[..n], &mut packets) {
                    debug!("TUN: unusable read of {n} bytes: {e}");
                }
                for packet in packets.drain(..) {
                    if inputs.send(Input::Tun(packet)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                debug!("TUN: receive: {e}");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}
