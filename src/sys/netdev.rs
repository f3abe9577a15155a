//! Giving interfaces (the TUN device, LAN interfaces) their IPv6 addresses and routes (ioctls on an `AF_INET6` socket).
//!
//! The address and routes vanish with the interface, so a stopped daemon leaves nothing behind.

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn inet6_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments; no pointers are involved.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn in6_addr(addr: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: addr.octets(),
    }
}

/// Adds `addr/prefix` to the interface with index `ifindex`.
pub fn add_address(ifindex: u32, addr: Ipv6Addr, prefix: u8) -> io::Result<()> {
    let socket = inet6_socket()?;
    let request = libc::in6_ifreq {
        ifr6_addr: in6_addr(addr),
        ifr6_prefixlen: u32::from(prefix),
        ifr6_ifindex: ifindex as libc::c_int,
    };
    // SAFETY: SIOCSIFADDR on an AF_INET6 socket reads one `in6_ifreq`, which lives on our stack for
    // the whole call and is fully initialised.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFADDR, &request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes `addr/prefix` from the interface with index `ifindex`.
pub fn remove_address(ifindex: u32, addr: Ipv6Addr, prefix: u8) -> io::Result<()> {
    let socket = inet6_socket()?;
    let request = libc::in6_ifreq {
        ifr6_addr: in6_addr(addr),
        ifr6_prefixlen: u32::from(prefix),
        ifr6_ifindex: ifindex as libc::c_int,
    };
    // SAFETY: SIOCDIFADDR on an AF_INET6 socket reads one `in6_ifreq`, which lives on our stack for
    // the whole call and is fully initialised.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCDIFADDR, &request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's `struct in6_rtmsg` (`linux/ipv6_route.h`); libc declares it with private fields.
#[repr(C)]
struct In6Rtmsg {
    rtmsg_dst: libc::in6_addr,
    rtmsg_src: libc::in6_addr,
    rtmsg_gateway: libc::in6_addr,
    rtmsg_type: u32,
    rtmsg_dst_len: u16,
    rtmsg_src_len: u16,
    rtmsg_metric: u32,
    rtmsg_info: libc::c_ulong,
    rtmsg_flags: u32,
    rtmsg_ifindex: libc::c_int,
}

/// Routes `dest/prefix` to the interface with index `ifindex`.
pub fn add_route(ifindex: u32, dest: Ipv6Addr, prefix: u8) -> io::Result<()> {
    let socket = inet6_socket()?;
    let request = In6Rtmsg {
        rtmsg_dst: in6_addr(dest),
        rtmsg_src: in6_addr(Ipv6Addr::UNSPECIFIED),
        rtmsg_gateway: in6_addr(Ipv6Addr::UNSPECIFIED),
        rtmsg_type: 0,
        rtmsg_dst_len: u16::from(prefix),
        rtmsg_src_len: 0,
        rtmsg_metric: 1,
        rtmsg_info: 0,
        rtmsg_flags: u32::from(libc::RTF_UP),
        rtmsg_ifindex: ifindex as libc::c_int,
    };
    // SAFETY: SIOCADDRT on an AF_INET6 socket reads one `in6_rtmsg` (laid out as the kernel's), which lives on our stack for the
    // whole call and is fully initialised.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCADDRT, &request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Tells a TUN device opened with `IFF_VNET_HDR` that we complete checksums and segment TCP over
/// IPv6 ourselves (`TUN_F_CSUM | TUN_F_TSO6 | TUN_F_TSO_ECN`), so the host may hand us 64 KiB
/// super-packets (see `core::offload`), and UDP trains sent with `UDP_SEGMENT` too (`TUN_F_USO4 |
/// TUN_F_USO6`, which the kernel takes only together, from Linux 6.2; older kernels refuse the flags
/// and segment UDP themselves). Returns whether USO is on.
pub fn enable_tun_offloads(tun: &impl AsRawFd) -> io::Result<bool> {
    let tcp = libc::TUN_F_CSUM | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
    let udp = libc::TUN_F_USO4 | libc::TUN_F_USO6;
    if set_offload(tun, tcp | udp).is_ok() {
        return Ok(true);
    }
    set_offload(tun, tcp).map(|()| false)
}

fn set_offload(tun: &impl AsRawFd, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of flags); no memory is
    // passed, and the descriptor is borrowed from a live TUN device.
    let rc = unsafe {
        libc::ioctl(
            tun.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(flags),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
