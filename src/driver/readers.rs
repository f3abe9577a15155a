//! Reader tasks of what is not a link transport (those are in `transport/`): the TUN device and the
//! discovery beacons.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::debug;

use super::buffers::BufferPool;
use super::input::Input;

/// Largest packet read from the TUN device (a super-packet's IPv6 limit).
const MAX_DATAGRAM: usize = 65_536;
use super::transport::ERROR_PAUSE;

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
