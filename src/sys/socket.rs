//! Socket options no crate exposes.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

fn set_int(
    socket: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt(2) reads `size_of::<c_int>()` bytes from `value`, which lives on our stack for
    // the whole call; the descriptor is borrowed from a live socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lets the kernel fragment datagrams larger than the path MTU (the kernel default, which `quinn-udp`
/// turns off for QUIC's own path MTU discovery). A link datagram sized for Ethernet must still cross
/// a 1280-byte hop; IP fragmentation is the fallback until the link learns the path's size.
pub fn allow_fragmentation(socket: &impl AsFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        set_int(
            socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_WANT,
        )
    } else {
        set_int(
            socket,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_WANT,
        )
    }
}
