//! The raw ICMPv6 socket a LAN gateway advertises on (see `core::lan`): bound to one interface,
//! hop limit 255 as Neighbor Discovery requires (RFC 4861 §6.1.2: hosts drop anything less), in
//! the all-routers group, and filtered by the kernel so that only Router Solicitations wake us.

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

/// `ICMP6_FILTER` (`netinet/icmp6.h`), which libc does not declare for Linux.
const ICMP6_FILTER: libc::c_int = 1;
/// The link-local all-routers group, where hosts send their solicitations.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// The link-local all-nodes group, where advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Opens the socket for the interface `name` (index `ifindex`); the kernel delivers only ICMPv6
/// messages of type `pass`. Needs `CAP_NET_RAW`; must run inside the tokio runtime.
pub fn router_socket(
    name: &str,
    ifindex: u32,
    pass: u8,
) -> io::Result<tokio::io::unix::AsyncFd<Socket>> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.set_nonblocking(true)?;
    socket.bind_device(Some(name.as_bytes()))?;
    socket.set_multicast_hops_v6(255)?;
    socket.set_unicast_hops_v6(255)?;
    socket.set_multicast_loop_v6(false)?;
    socket.join_multicast_v6(&ALL_ROUTERS, ifindex)?;
    pass_only(&socket, pass)?;
    // SAFETY: a `Socket` owns one open descriptor for as long as it lives and its `as_raw_fd`
    // always returns that descriptor; the `AsyncFd` owns it until dropped.
    unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)
}

/// Sets the socket's ICMPv6 filter to block every type but `pass`.
fn pass_only(socket: &Socket, pass: u8) -> io::Result<()> {
    // Linux's `struct icmp6_filter`: a bit set per type means "block".
    let mut filter = [u32::MAX; 8];
    filter[usize::from(pass >> 5)] &= !(1u32 << (pass & 31));
    // SAFETY: setsockopt(2) reads `size_of_val(&filter)` (32) bytes from `filter`, an initialised
    // array on our stack that outlives the call, laid out as the kernel's `struct icmp6_filter`
    // (eight 32-bit words); the descriptor is borrowed from a live socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
