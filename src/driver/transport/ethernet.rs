//! Raw Ethernet links: one `AF_PACKET` socket per interface, links to MAC addresses, frames of our
//! own EtherType. Sending and receiving go through `sys::packet` in batches (`sendmmsg`/`recvmmsg`).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tracing::debug;

use super::{Arrived, ERROR_PAUSE, EndpointId, Inputs, Remote};
use crate::driver::buffers::{Buffer, BufferPool};

/// EtherType of raw Ethernet links and beacons (IEEE 802 "local experimental 1").
pub(crate) const ETHERTYPE: u16 = 0x88b5;
/// Largest frame read.
const MAX_DATAGRAM: usize = 65_536;

/// Sends one frame to `mac` without waiting.
pub(crate) fn send(
    socket: &AsyncFd<OwnedFd>,
    ifindex: u32,
    mac: &[u8; 6],
    payload: &[u8],
) -> std::io::Result<()> {
    crate::sys::packet::send_to(socket.get_ref(), ifindex, ETHERTYPE, mac, payload).map(drop)
}

/// Sends frames to `mac`, in order, in one system call where it can.
pub(crate) fn send_all(
    socket: &AsyncFd<OwnedFd>,
    ifindex: u32,
    mac: &[u8; 6],
    datagrams: &[Vec<u8>],
) -> std::io::Result<()> {
    crate::sys::packet::send_batch(socket.get_ref(), ifindex, ETHERTYPE, mac, datagrams)
}

/// Reads a raw Ethernet endpoint, up to 8 frames per system call.
pub(crate) async fn read<I: Inputs>(
    endpoint: EndpointId,
    socket: Arc<AsyncFd<OwnedFd>>,
    inputs: mpsc::Sender<I>,
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
                    let input = Arrived::Datagram {
                        endpoint,
                        remote: Remote::Ethernet(frame.mac),
                        data,
                        stride: frame.len.max(1),
                    };
                    if inputs.send(input.into()).await.is_err() {
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
