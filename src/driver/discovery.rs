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

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use super::counters::DriverCounters;
use super::input::Input;
use super::interfaces::Interface;
use super::links::{Links, Origin};
use super::passwords::PasswordKeys;
use super::transport::ethernet::{self, ETHERTYPE};
use super::transport::udp::UDP_OVERHEAD;
use super::transport::{Endpoint, EndpointId, Remote, Role, Transport};
use crate::config::{Daemon, DiscoveryRule};
use crate::core::link::LinkParams;
use crate::core::node::Node;
use crate::core::rate::TokenBucket;
use crate::core::time::Instant;
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
    last_scan: Option<Instant>,
    last_beacon: Option<Instant>,
    /// The host's interfaces, as last listed.
    pub(crate) interfaces: BTreeMap<String, Interface>,
    /// Each beacon from a new sender costs a signature check: 50 a second.
    budget: TokenBucket,
}

/// The parts of the router that discovery reads and changes.
pub(crate) struct Around<'a> {
    pub(crate) node: &'a mut Node,
    pub(crate) links: &'a mut Links,
    pub(crate) now: Instant,
    pub(crate) config: &'a Daemon,
    /// The TUN device's name (never a discovery interface).
    pub(crate) tun: Option<&'a str>,
    pub(crate) passwords: &'a PasswordKeys,
    pub(crate) counters: &'a mut DriverCounters,
    pub(crate) inputs: &'a mpsc::Sender<Input>,
}

impl Discovery {
    pub(crate) fn new(
        multicast: Option<Arc<UdpSocket>>,
        endpoint: Option<EndpointId>,
        port: u16,
        now: Instant,
    ) -> Self {
        Self {
            multicast,
            endpoint,
            port,
            joined: BTreeSet::new(),
            last_scan: None,
            last_beacon: None,
            interfaces: BTreeMap::new(),
            budget: TokenBucket::new(50.0, 100.0, now),
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

fn elapsed(now: Instant, since: Option<Instant>) -> Duration {
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

impl Discovery {
    /// Runs once a second: re-lists interfaces, sends beacons, expires discovered links.
    pub(crate) fn tick(&mut self, a: Around<'_>) {
        if a.config.discovery.is_empty() {
            return;
        }
        let now = a.now;
        if elapsed(now, self.last_scan) >= SCAN_INTERVAL {
            self.last_scan = Some(now);
            let ends = (&mut *a.links, &mut *a.node, now);
            self.scan_interfaces(a.config, a.tun, ends, a.inputs);
        }
        if elapsed(now, self.last_beacon) >= BEACON_INTERVAL {
            self.last_beacon = Some(now);
            self.send_beacons(a.config, a.tun, a.links, a.node, a.passwords);
        }
        let expired: Vec<_> = a
            .links
            .records
            .iter()
            .filter(|(_, l)| {
                l.origin == Origin::Discovered
                    && l.up_since.is_none()
                    && elapsed(now, l.last_beacon) > DISCOVERED_EXPIRY
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            a.links.close_link(a.node, now, id);
        }
    }

    fn scan_interfaces(
        &mut self,
        config: &Daemon,
        tun: Option<&str>,
        ends: (&mut Links, &mut Node, Instant),
        inputs: &mpsc::Sender<Input>,
    ) {
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
                let rule = rule_for(config, tun, &i.name)?;
                Some((i.clone(), rule.udp && i.link_local, rule.ethernet))
            })
            .collect();
        for (iface, udp, _) in &wanted {
            if *udp
                && !self.joined.contains(&iface.index)
                && let Some(socket) = &self.multicast
            {
                match socket.join_multicast_v6(&GROUP, iface.index) {
                    Ok(()) => {
                        debug!(interface = %iface.name, "joined the discovery group");
                        self.joined.insert(iface.index);
                    }
                    Err(e) => {
                        debug!(interface = %iface.name, "joining the discovery group: {e}")
                    }
                }
            }
        }
        let present: BTreeSet<u32> = self.interfaces.values().map(|i| i.index).collect();
        self.joined.retain(|i| present.contains(i));
        let ethernet: Vec<&Interface> = wanted.iter().filter(|w| w.2).map(|w| &w.0).collect();
        update_ethernet_endpoints(&ethernet, ends, inputs);
    }

    fn send_beacons(
        &mut self,
        config: &Daemon,
        tun: Option<&str>,
        links: &Links,
        node: &Node,
        passwords: &PasswordKeys,
    ) {
        let stamp = super::clock::wall_micros();
        let mut udp = Vec::new();
        for iface in self
            .interfaces
            .values()
            .filter(|i| i.usable && i.link_local)
        {
            if let Some(rule) = rule_for(config, tun, &iface.name).filter(|r| r.udp && r.beacon)
                && self.joined.contains(&iface.index)
                && let Ok(password) = passwords.get(rule.password.as_deref())
            {
                let flags = if rule.listen { FLAG_LISTENS } else { 0 };
                let beacon = node.beacon(flags, self.port, stamp, password.as_ref());
                udp.push((iface.index, beacon));
            }
        }
        // Beacons leave from the socket that carries discovered links, so that their source port is
        // the port they advertise: a receiver dials the port a beacon came from, never one that the
        // beacon merely names (a beacon must not point our handshakes at another service).
        if let Some(endpoint) = self.endpoint.and_then(|id| links.endpoints.get(&id)) {
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
        for endpoint in links.endpoints.values() {
            let (Role::Ethernet { ifname, .. }, Transport::Ethernet { .. }) =
                (&endpoint.role, &endpoint.transport)
            else {
                continue;
            };
            let Some(rule) = rule_for(config, tun, ifname).filter(|r| r.beacon) else {
                continue;
            };
            let Ok(password) = passwords.get(rule.password.as_deref()) else {
                continue;
            };
            let flags = if rule.listen { FLAG_LISTENS } else { 0 };
            let beacon = node.beacon(flags, 0, stamp, password.as_ref());
            if let Err(e) = endpoint
                .transport
                .send(&Remote::Ethernet(BROADCAST), &beacon)
            {
                debug!(interface = %ifname, "sending a beacon: {e}");
            }
        }
    }

    /// A datagram arrived on the multicast socket.
    pub(crate) fn on_udp_beacon(&mut self, a: Around<'_>, from: SocketAddrV6, data: &[u8]) {
        let Some(endpoint) = self.endpoint else {
            return;
        };
        if from.ip().segments()[0] & 0xffc0 != 0xfe80 || from.scope_id() == 0 {
            a.counters.beacons_refused += 1;
            return;
        }
        let Some(iface) = self
            .interfaces
            .values()
            .find(|i| i.index == from.scope_id())
        else {
            return;
        };
        let Some(rule) = rule_for(a.config, a.tun, &iface.name).filter(|r| r.udp) else {
            return;
        };
        let Ok(password) = a.passwords.get(rule.password.as_deref()) else {
            return;
        };
        let Ok(beacon) = Beacon::parse(data) else {
            a.counters.beacons_refused += 1;
            return;
        };
        let Some(port) = beacon.dial_port(from.port()) else {
            a.counters.beacons_refused += 1;
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
        let heard = Heard {
            endpoint,
            remote,
            uri: format!("udp://[{}%{}]:{port}", from.ip(), iface.name),
            we_listen: rule.listen,
            we_beacon: rule.beacon,
        };
        self.on_beacon(a, heard, data, params);
    }

    /// A beacon-shaped frame arrived on a raw Ethernet endpoint from a MAC without a link.
    pub(crate) fn on_ethernet_beacon(
        &mut self,
        a: Around<'_>,
        endpoint: EndpointId,
        mac: Mac,
        data: &[u8],
    ) {
        let Some(Endpoint {
            role: Role::Ethernet { ifname, mtu },
            ..
        }) = a.links.endpoints.get(&endpoint)
        else {
            return;
        };
        let Some(rule) = rule_for(a.config, a.tun, ifname) else {
            return;
        };
        let Ok(password) = a.passwords.get(rule.password.as_deref()) else {
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
        let heard = Heard {
            endpoint,
            remote: Remote::Ethernet(mac),
            uri: format!("ethernet://{ifname}/{}", Remote::Ethernet(mac)),
            we_listen: rule.listen,
            we_beacon: rule.beacon,
        };
        self.on_beacon(a, heard, data, params);
    }

    fn on_beacon(&mut self, a: Around<'_>, heard: Heard, data: &[u8], mut params: LinkParams) {
        let now = a.now;
        if let Some(id) = a.node.link_at(heard.endpoint, heard.remote) {
            if let Some(info) = a.links.records.get_mut(&id) {
                info.last_beacon = Some(now);
            }
            return;
        }
        let remote = heard.remote;
        // The MAC first (one HMAC): beacons without the password must not spend the budget of
        // signature checks that real neighbours' beacons need.
        let beacon = match Beacon::parse_authenticated(data, params.password.as_ref()) {
            Ok(b) => b,
            Err(e) => {
                debug!(from = %remote, "beacon refused: {e}");
                a.counters.beacons_refused += 1;
                return;
            }
        };
        let me = a.node.public_key();
        if !we_dial(&me, &beacon, heard.we_listen, heard.we_beacon) {
            return;
        }
        let discovered = (a.links.records.values())
            .filter(|l| l.origin == Origin::Discovered)
            .count();
        if discovered >= MAX_DISCOVERED_LINKS || a.links.records.len() >= a.config.max_links {
            a.counters.beacons_rate_limited += 1;
            return;
        }
        if !self.budget.take(now) {
            a.counters.beacons_rate_limited += 1;
            return;
        }
        if let Err(e) = beacon.verify_signature(data) {
            debug!(from = %remote, "beacon refused: {e}");
            a.counters.beacons_refused += 1;
            return;
        }
        params.allowed_keys = vec![beacon.key];
        debug!(peer = %beacon.key.to_hex(), uri = %heard.uri, "discovered");
        let (endpoint, uri) = (heard.endpoint, heard.uri);
        let id = (a.links).open_link(
            a.node,
            now,
            endpoint,
            remote,
            params,
            Origin::Discovered,
            uri,
        );
        if let Some(info) = a.links.records.get_mut(&id) {
            info.last_beacon = Some(now);
        }
        // The link's first initiation goes out at the core's next timeout, which is now.
        a.node.handle_timeout(now);
    }
}

/// Where a beacon was heard, and what our rule there says.
struct Heard {
    endpoint: EndpointId,
    remote: Remote,
    uri: String,
    we_listen: bool,
    we_beacon: bool,
}

/// Opens a raw Ethernet endpoint on each wanted interface that has none, and closes those of
/// interfaces no longer wanted (gone, down, or no rule).
fn update_ethernet_endpoints(
    wanted: &[&Interface],
    (links, node, now): (&mut Links, &mut Node, Instant),
    inputs: &mpsc::Sender<Input>,
) {
    let gone: Vec<EndpointId> = links
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
        links.remove_endpoint(node, now, id);
    }
    for iface in wanted {
        let exists = links
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
        let inputs = inputs.clone();
        let (name, index, mtu) = (iface.name.clone(), iface.index, iface.mtu);
        links.add_endpoint(now, Role::Ethernet { ifname: name, mtu }, |id| {
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
