//! LAN discovery: beacons on IPv6 link-local multicast (UDP links) and Ethernet broadcast (raw links),
//! and dialling the nodes we hear.
//!
//! Which side dials is the core's rule (`wire::beacon::we_dial`); the signature and the password MAC
//! are checked by the core's beacon decoder. Here: which interfaces, which sockets, how often.

use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::interfaces::Interface;
use super::links::Origin;
use super::router::Router;
use super::transport::ethernet::{self, ETHERTYPE};
use super::transport::udp::UDP_OVERHEAD;
use super::transport::{Endpoint, EndpointId, Remote, Role, Transport};
use crate::config::DiscoveryRule;
use crate::core::link::LinkParams;
use crate::core::wire::beacon::{Beacon, FLAG_LISTENS, we_dial};
use crate::sys::packet::{BROADCAST, Mac};

/// Link-local multicast group of UDP beacons ("mr" in the last group).
pub(crate) const GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x6d72);
/// UDP port of beacons.
pub(crate) const BEACON_PORT: u16 = 9101;
/// Time between beacons on an interface: a new neighbour is found within this, at 63 B/s.
const BEACON_INTERVAL: Duration = Duration::from_secs(2);
/// Interfaces are re-listed this often, so a plugged cable or a new radio is used without a restart.
const SCAN_INTERVAL: Duration = Duration::from_secs(2);
/// A discovered link that is down and whose peer has not beaconed for this long is closed.
const DISCOVERED_EXPIRY: Duration = Duration::from_secs(20);

/// Links we dial because we heard a beacon, at most: each costs a handshake every few seconds while
/// it is down, so a flood of signed beacons from throwaway keys must not make us dial without end.
/// (Discovered links that are down and no longer beaconed expire after [`DISCOVERED_EXPIRY`].)
pub(crate) const MAX_DISCOVERED_LINKS: usize = 128;

/// Discovery state.
pub(crate) struct Discovery {
    /// Receives and sends UDP beacons.
    pub(crate) multicast: Option<Arc<UdpSocket>>,
    /// The endpoint carrying discovered UDP links.
    pub(crate) endpoint: Option<EndpointId>,
    /// Its port (advertised in beacons).
    pub(crate) port: u16,
    joined: BTreeSet<u32>,
    last_scan: Option<crate::core::time::Instant>,
    last_beacon: Option<crate::core::time::Instant>,
}

impl Discovery {
    pub(crate) fn new(
        multicast: Option<Arc<UdpSocket>>,
        endpoint: Option<EndpointId>,
        port: u16,
    ) -> Self {
        Self {
            multicast,
            endpoint,
            port,
            joined: BTreeSet::new(),
            last_scan: None,
            last_beacon: None,
        }
    }
}

/// Opens the multicast socket for UDP beacons.
pub(crate) fn multicast_socket() -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_multicast_loop_v6(false)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, BEACON_PORT)).into())?;
    Ok(socket.into())
}

fn elapsed(now: crate::core::time::Instant, since: Option<crate::core::time::Instant>) -> Duration {
    since.map_or(Duration::MAX, |t| {
        Duration::from_micros(now.as_micros().saturating_sub(t.as_micros()))
    })
}

/// The first discovery rule of `config` covering interface `name` (never our own TUN device).
pub(crate) fn rule_for<'a>(
    config: &'a crate::config::Daemon,
    tun: Option<&str>,
    name: &str,
) -> Option<&'a DiscoveryRule> {
    if tun == Some(name) {
        return None;
    }
    config
        .discovery
        .iter()
        .find(|r| r.interfaces.is_match(name))
}

impl Router {
    /// The first discovery rule covering interface `name`.
    pub(crate) fn rule_for(&self, name: &str) -> Option<&DiscoveryRule> {
        rule_for(
            &self.config,
            self.tun.as_ref().map(|t| t.name.as_str()),
            name,
        )
    }

    /// The interface with index `index` and its rule.
    pub(crate) fn interface_rule_by_index(
        &self,
        index: u32,
    ) -> Option<(&Interface, &DiscoveryRule)> {
        let iface = self.interfaces.values().find(|i| i.index == index)?;
        Some((iface, self.rule_for(&iface.name)?))
    }

    /// Runs once a second: re-lists interfaces, sends beacons, expires discovered links.
    pub(crate) fn discovery_tick(&mut self) {
        if self.config.discovery.is_empty() {
            return;
        }
        let now = self.clock.now();
        if elapsed(now, self.discovery.last_scan) >= SCAN_INTERVAL {
            self.discovery.last_scan = Some(now);
            self.scan_interfaces();
        }
        if elapsed(now, self.discovery.last_beacon) >= BEACON_INTERVAL {
            self.discovery.last_beacon = Some(now);
            self.send_beacons();
        }
        let expired: Vec<_> = self
            .links
            .iter()
            .filter(|(_, l)| {
                l.origin == Origin::Discovered
                    && l.up_since.is_none()
                    && elapsed(now, l.last_beacon) > DISCOVERED_EXPIRY
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.close_link(id);
        }
    }

    /// How many discovered links exist.
    fn discovered_links(&self) -> usize {
        self.links
            .values()
            .filter(|l| l.origin == Origin::Discovered)
            .count()
    }

    fn scan_interfaces(&mut self) {
        let interfaces = match super::interfaces::list() {
            Ok(list) => list,
            Err(e) => {
                warn!("listing interfaces: {e}");
                return;
            }
        };
        self.interfaces = interfaces;
        let wanted: Vec<(Interface, bool, bool)> = self
            .interfaces
            .values()
            .filter(|i| i.usable)
            .filter_map(|i| {
                let rule = self.rule_for(&i.name)?;
                Some((i.clone(), rule.udp && i.link_local, rule.ethernet))
            })
            .collect();
        for (iface, udp, _) in &wanted {
            if *udp
                && !self.discovery.joined.contains(&iface.index)
                && let Some(socket) = &self.discovery.multicast
            {
                match socket.join_multicast_v6(&GROUP, iface.index) {
                    Ok(()) => {
                        debug!(interface = %iface.name, "joined the discovery group");
                        self.discovery.joined.insert(iface.index);
                    }
                    Err(e) => {
                        debug!(interface = %iface.name, "joining the discovery group: {e}")
                    }
                }
            }
        }
        let present: BTreeSet<u32> = self.interfaces.values().map(|i| i.index).collect();
        self.discovery.joined.retain(|i| present.contains(i));
        self.update_ethernet_endpoints(&wanted);
    }

    fn update_ethernet_endpoints(&mut self, wanted: &[(Interface, bool, bool)]) {
        let wanted: Vec<&Interface> = wanted.iter().filter(|w| w.2).map(|w| &w.0).collect();
        let gone: Vec<EndpointId> = self
            .endpoints
            .iter()
            .filter(|(_, e)| match (&e.role, &e.transport) {
                (Role::Ethernet { ifname, .. }, Transport::Ethernet { ifindex, .. }) => !wanted
                    .iter()
                    .any(|i| &i.name == ifname && i.index == *ifindex),
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            debug!("raw Ethernet endpoint {id} closed (interface gone or down)");
            self.remove_endpoint(id);
        }
        for iface in wanted {
            let exists = self
                .endpoints
                .values()
                .any(|e| matches!(&e.role, Role::Ethernet { ifname, .. } if *ifname == iface.name));
            if exists {
                continue;
            }
            let socket = match crate::sys::packet::open(iface.index, ETHERTYPE)
                .and_then(crate::sys::packet::register)
            {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    warn!(interface = %iface.name, "raw Ethernet socket: {e} (needs CAP_NET_RAW)");
                    continue;
                }
            };
            let inputs = self.inputs.clone();
            let (name, index, mtu) = (iface.name.clone(), iface.index, iface.mtu);
            self.add_endpoint(Role::Ethernet { ifname: name, mtu }, |id| {
                let reader = tokio::spawn(ethernet::read(id, socket.clone(), inputs));
                let transport = Transport::Ethernet {
                    socket,
                    ifindex: index,
                };
                (transport, reader)
            });
            debug!(interface = %iface.name, "raw Ethernet links enabled");
        }
    }

    fn send_beacons(&mut self) {
        let stamp = super::clock::wall_micros();
        let mut udp = Vec::new();
        for iface in self
            .interfaces
            .values()
            .filter(|i| i.usable && i.link_local)
        {
            if let Some(rule) = self.rule_for(&iface.name).filter(|r| r.udp && r.beacon)
                && self.discovery.joined.contains(&iface.index)
                && let Ok(password) = self.passwords.get(rule.password.as_deref())
            {
                let flags = if rule.listen { FLAG_LISTENS } else { 0 };
                let beacon = self
                    .node
                    .beacon(flags, self.discovery.port, stamp, password.as_ref());
                udp.push((iface.index, beacon));
            }
        }
        // Beacons leave from the socket that carries discovered links, so that their source port is
        // the port they advertise: a receiver dials the port a beacon came from, never one that the
        // beacon merely names (a beacon must not point our handshakes at another service).
        if let Some(endpoint) = self
            .discovery
            .endpoint
            .and_then(|id| self.endpoints.get(&id))
        {
            for (index, beacon) in udp {
                let to = SocketAddrV6::new(GROUP, BEACON_PORT, 0, index);
                if let Err(e) = endpoint
                    .transport
                    .send(&Remote::Udp(SocketAddr::V6(to)), &beacon)
                {
                    debug!("sending a beacon on interface {index}: {e}");
                }
            }
        }
        for endpoint in self.endpoints.values() {
            let (Role::Ethernet { ifname, .. }, Transport::Ethernet { .. }) =
                (&endpoint.role, &endpoint.transport)
            else {
                continue;
            };
            let Some(rule) = self.rule_for(ifname).filter(|r| r.beacon) else {
                continue;
            };
            let Ok(password) = self.passwords.get(rule.password.as_deref()) else {
                continue;
            };
            let flags = if rule.listen { FLAG_LISTENS } else { 0 };
            let beacon = self.node.beacon(flags, 0, stamp, password.as_ref());
            if let Err(e) = endpoint
                .transport
                .send(&Remote::Ethernet(BROADCAST), &beacon)
            {
                debug!(interface = %ifname, "sending a beacon: {e}");
            }
        }
    }

    /// A datagram arrived on the multicast socket.
    pub(crate) fn on_udp_beacon(&mut self, from: SocketAddrV6, data: &[u8]) {
        let Some(endpoint) = self.discovery.endpoint else {
            return;
        };
        if from.ip().segments()[0] & 0xffc0 != 0xfe80 || from.scope_id() == 0 {
            self.counters.beacons_refused += 1;
            return;
        }
        let Some((iface, rule)) = self.interface_rule_by_index(from.scope_id()) else {
            return;
        };
        if !rule.udp {
            return;
        }
        let Ok(password) = self.passwords.get(rule.password.as_deref()) else {
            return;
        };
        let Ok(beacon) = Beacon::parse(data) else {
            self.counters.beacons_refused += 1;
            return;
        };
        let Some(port) = beacon.dial_port(from.port()) else {
            self.counters.beacons_refused += 1;
            return;
        };
        let remote = Remote::Udp(SocketAddr::V6(SocketAddrV6::new(
            *from.ip(),
            port,
            0,
            from.scope_id(),
        )));
        let params = LinkParams {
            initiate: true,
            password,
            allowed_keys: vec![beacon.key],
            mtu: iface.mtu.saturating_sub(UDP_OVERHEAD).max(1232),
            priority: rule.priority,
            session: false,
            aes_gcm: super::cpu::has_aes_instructions(),
        };
        let uri = format!("udp://[{}%{}]:{port}", from.ip(), iface.name);
        let (listen, send) = (rule.listen, rule.beacon);
        self.on_beacon(endpoint, remote, data, params, uri, listen, send);
    }

    pub(crate) fn on_ethernet_beacon(&mut self, endpoint: EndpointId, mac: Mac, data: &[u8]) {
        let Some(Endpoint {
            role: Role::Ethernet { ifname, mtu },
            ..
        }) = self.endpoints.get(&endpoint)
        else {
            return;
        };
        let Some(rule) = self.rule_for(ifname) else {
            return;
        };
        let Ok(password) = self.passwords.get(rule.password.as_deref()) else {
            return;
        };
        let params = LinkParams {
            initiate: true,
            password,
            allowed_keys: Vec::new(),
            mtu: *mtu,
            priority: rule.priority,
            session: false,
            aes_gcm: super::cpu::has_aes_instructions(),
        };
        let uri = format!("ethernet://{ifname}/{}", Remote::Ethernet(mac));
        let (listen, send) = (rule.listen, rule.beacon);
        self.on_beacon(
            endpoint,
            Remote::Ethernet(mac),
            data,
            params,
            uri,
            listen,
            send,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_beacon(
        &mut self,
        endpoint: EndpointId,
        remote: Remote,
        data: &[u8],
        mut params: LinkParams,
        uri: String,
        we_listen: bool,
        we_beacon: bool,
    ) {
        let now = self.clock.now();
        if let Some(id) = self.node.link_at(endpoint, remote) {
            if let Some(info) = self.links.get_mut(&id) {
                info.last_beacon = Some(now);
            }
            return;
        }
        // The MAC first (one HMAC): beacons without the password must not spend the budget of
        // signature checks that real neighbours' beacons need.
        let beacon = match Beacon::parse_authenticated(data, params.password.as_ref()) {
            Ok(b) => b,
            Err(e) => {
                debug!(from = %remote, "beacon refused: {e}");
                self.counters.beacons_refused += 1;
                return;
            }
        };
        let me = self.node.public_key();
        if !we_dial(&me, &beacon, we_listen, we_beacon) {
            return;
        }
        if self.discovered_links() >= MAX_DISCOVERED_LINKS {
            self.counters.beacons_rate_limited += 1;
            return;
        }
        if !self.beacon_budget.take(now) {
            self.counters.beacons_rate_limited += 1;
            return;
        }
        if let Err(e) = beacon.verify_signature(data) {
            debug!(from = %remote, "beacon refused: {e}");
            self.counters.beacons_refused += 1;
            return;
        }
        params.allowed_keys = vec![beacon.key];
        debug!(peer = %beacon.key.to_hex(), %uri, "discovered");
        let id = self.open_link(endpoint, remote, params, Origin::Discovered, uri);
        if let Some(info) = self.links.get_mut(&id) {
            info.last_beacon = Some(now);
        }
        // The link's first initiation goes out at the core's next timeout, which is now.
        self.node.handle_timeout(now);
    }
}
