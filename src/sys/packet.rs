//! Raw Ethernet links: an `AF_PACKET` datagram socket bound to one interface and one EtherType.
//!
//! `SOCK_DGRAM` packet sockets let the kernel add and strip the Ethernet header, so we read and write
//! only payloads and learn the peer's MAC address from the socket address.

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

/// Registers a packet socket with the tokio reactor; must run inside the runtime.
pub fn register(socket: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` holds one open descriptor for as long as it lives and its `as_raw_fd`
    // always returns that descriptor; the `AsyncFd` owns it until dropped.
    unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)
}
