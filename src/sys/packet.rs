//! Raw Ethernet links: an `AF_PACKET` datagram socket bound to one interface and one EtherType.
//!
//! `SOCK_DGRAM` packet sockets let the kernel add and strip the Ethernet header, so we read and write
//! only payloads and learn the peer's MAC address from the socket address. Frames go out and come in
//! in batches (sendmmsg/recvmmsg), one system call for a whole train of link datagrams.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC address.
pub const BROADCAST: Mac = [0xff; 6];

fn link_address(ifindex: u32, ethertype: u16, mac: &Mac) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is a plain C struct for which all-zero bytes are a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(mac);
    sll
}

/// Opens a non-blocking packet socket receiving only `ethertype` frames on interface `ifindex`.
pub fn open(ifindex: u32, ethertype: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments; no pointers are involved.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::c_int::from(ethertype.to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let sll = link_address(ifindex, ethertype, &[0; 6]);
    // SAFETY: bind(2) reads `size_of::<sockaddr_ll>()` bytes from `sll`, which is fully initialised
    // and outlives the call.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// Sends `payload` to `mac` (non-blocking).
pub fn send_to(
    socket: &OwnedFd,
    ifindex: u32,
    ethertype: u16,
    mac: &Mac,
    payload: &[u8],
) -> io::Result<usize> {
    let sll = link_address(ifindex, ethertype, mac);
    // SAFETY: sendto(2) reads `payload.len()` bytes from `payload` and the address from `sll`; both
    // are valid for the whole call.
    let n = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Receives one frame's payload into `buf` (non-blocking); returns its length and the sender's MAC.
/// Frames we sent ourselves (looped back by the kernel) are reported as `WouldBlock`-free skips by
/// returning `Ok(None)`.
pub fn recv_from(socket: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<(usize, Mac)>> {
    // SAFETY: sockaddr_ll is a plain C struct for which all-zero bytes are a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: recvfrom(2) writes at most `buf.len()` bytes into `buf` and at most `len` bytes into
    // `sll`; both are valid, exclusively borrowed and outlive the call.
    let n = unsafe {
        libc::recvfrom(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if sll.sll_pkttype == libc::PACKET_OUTGOING || n as usize > buf.len() {
        return Ok(None);
    }
    let mut mac = [0; 6];
    mac.copy_from_slice(&sll.sll_addr[..6]);
    Ok(Some((n as usize, mac)))
}

/// One message of a sendmmsg(2)/recvmmsg(2) batch: one buffer, one link-layer address. Only builds
/// the struct; the pointers must stay valid until the call that uses it returns.
fn message_header(address: &mut libc::sockaddr_ll, iovec: &mut libc::iovec) -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct for which all-zero bytes are a valid value.
    let mut header: libc::mmsghdr = unsafe { zeroed() };
    header.msg_hdr.msg_name = (address as *mut libc::sockaddr_ll).cast();
    header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    header.msg_hdr.msg_iov = iovec;
    header.msg_hdr.msg_iovlen = 1;
    header
}

/// Most messages per sendmmsg(2)/recvmmsg(2) call (the kernel's UIO_MAXIOV).
const MAX_BATCH: usize = 1024;

/// Sends each of `payloads` to `mac`, in order, with as few sendmmsg(2) calls as the kernel allows
/// (non-blocking). An error (a full socket buffer: `WouldBlock`) stops the rest, which are dropped
/// as a busy link drops them, and is returned.
pub fn send_batch(
    socket: &OwnedFd,
    ifindex: u32,
    ethertype: u16,
    mac: &Mac,
    payloads: &[Vec<u8>],
) -> io::Result<()> {
    let mut sll = link_address(ifindex, ethertype, mac);
    let mut sent = 0;
    while sent < payloads.len() {
        let batch = &payloads[sent..payloads.len().min(sent + MAX_BATCH)];
        let mut iovecs: Vec<libc::iovec> = batch
            .iter()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iovec| message_header(&mut sll, iovec))
            .collect();
        // SAFETY: each header points at one iovec and at `sll`, and each iovec at a payload, all of
        // which live (and are not moved) until the call returns; sendmmsg(2) only reads them, and
        // writes each header's `msg_len`. The count is at most MAX_BATCH.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                headers.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        sent += n as usize;
    }
    Ok(())
}

/// A frame [`recv_batch`] received: which buffer holds it, its length and the sender's MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Which of the buffers holds the frame.
    pub index: usize,
    /// The frame's payload length.
    pub len: usize,
    /// The sender.
    pub mac: Mac,
}

/// Receives up to one frame per buffer with one recvmmsg(2) call (non-blocking), like
/// [`recv_from`]: our own looped-back frames and truncated ones are left out of `out` (which is
/// cleared first). Returns how many buffers were used (`WouldBlock` if none).
pub fn recv_batch(
    socket: &OwnedFd,
    bufs: &mut [&mut [u8]],
    out: &mut Vec<Received>,
) -> io::Result<usize> {
    out.clear();
    let count = bufs.len().min(MAX_BATCH);
    // SAFETY: sockaddr_ll is a plain C struct for which all-zero bytes are a valid value.
    let mut addresses: Vec<libc::sockaddr_ll> = vec![unsafe { zeroed() }; count];
    let mut iovecs: Vec<libc::iovec> = bufs[..count]
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .zip(addresses.iter_mut())
        .map(|(iovec, address)| message_header(address, iovec))
        .collect();
    // SAFETY: each header points at one iovec (a whole, exclusively borrowed buffer) and one address
    // slot, all alive and unmoved for the call; recvmmsg(2) writes at most each iovec's length into
    // its buffer, at most `msg_namelen` bytes into its address and fills `msg_len`, `msg_flags`.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let used = n as usize;
    for (index, (header, address)) in headers.iter().zip(&addresses).take(used).enumerate() {
        let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        if address.sll_pkttype == libc::PACKET_OUTGOING || truncated {
            continue;
        }
        let mut mac = [0; 6];
        mac.copy_from_slice(&address.sll_addr[..6]);
        out.push(Received {
            index,
            len: header.msg_len as usize,
            mac,
        });
    }
    Ok(used)
}

/// Registers a packet socket with the tokio reactor; must run inside the runtime.
pub fn register(socket: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` holds one open descriptor for as long as it lives and its `as_raw_fd`
    // always returns that descriptor; the `AsyncFd` owns it until dropped.
    unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames sent in a batch on the loopback interface come back in a batch, our own outgoing
    /// copies left out. Needs CAP_NET_RAW (CI runs as root); skipped without it.
    #[test]
    fn batches_go_out_and_come_back() {
        // SAFETY: if_nametoindex reads the NUL-terminated name, a static C string.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        assert!(lo > 0);
        let ethertype = 0x88b6;
        let socket = match open(lo, ethertype) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return,
            Err(e) => panic!("packet socket: {e}"),
        };
        let payloads: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        send_batch(&socket, lo, ethertype, &[0; 6], &payloads).unwrap();
        let mut storage = vec![vec![0u8; 2048]; 8];
        let mut got = Vec::new();
        let mut out = Vec::new();
        for _ in 0..100 {
            let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| b.as_mut_slice()).collect();
            match recv_batch(&socket, &mut bufs, &mut out) {
                Ok(_) => got.extend(out.iter().map(|r| storage[r.index][..r.len].to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("receive: {e}"),
            }
            if got.len() >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, payloads);
    }
}
