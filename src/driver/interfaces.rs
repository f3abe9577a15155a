//! The host's network interfaces, as discovery needs them.

use std::collections::BTreeMap;

use nix::net::if_::InterfaceFlags;

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interface {
    pub(crate) name: String,
    pub(crate) index: u32,
    pub(crate) mtu: usize,
    /// Up, running, not loopback, not point-to-point.
    pub(crate) usable: bool,
    /// Has an IPv6 link-local address (needed for UDP discovery).
    pub(crate) link_local: bool,
}

/// Lists the interfaces, by name.
pub(crate) fn list() -> std::io::Result<BTreeMap<String, Interface>> {
    let mut out: BTreeMap<String, Interface> = BTreeMap::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        let flags = ifa.flags;
        let usable = flags.contains(InterfaceFlags::IFF_UP)
            && flags.contains(InterfaceFlags::IFF_RUNNING)
            && !flags.contains(InterfaceFlags::IFF_LOOPBACK)
            && !flags.contains(InterfaceFlags::IFF_POINTOPOINT);
        let link_local = ifa
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in6())
            .is_some_and(|a| a.ip().segments()[0] & 0xffc0 == 0xfe80);
        let entry = out.entry(ifa.interface_name.clone()).or_insert_with(|| {
            let index = nix::net::if_::if_nametoindex(ifa.interface_name.as_str()).unwrap_or(0);
            Interface {
                mtu: mtu(&ifa.interface_name).unwrap_or(1500),
                name: ifa.interface_name.clone(),
                index,
                usable,
                link_local: false,
            }
        });
        entry.link_local |= link_local;
    }
    out.retain(|_, i| i.index != 0);
    Ok(out)
}

/// Reads an interface's MTU from sysfs.
pub(crate) fn mtu(name: &str) -> Option<usize> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}
