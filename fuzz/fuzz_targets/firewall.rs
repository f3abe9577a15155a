//! Packets from anywhere through the firewall (and router solicitations through their reader): any bytes read as a packet or are refused, and any
//! sequence of packets in both directions leaves a firewall that never panics and whose table
//! never passes its bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::firewall::packet::{parse, parse_quoted};
use meshrouter::core::firewall::rule::{Action, Direction, Peer, Ports, Protocol, Rule};
use meshrouter::core::firewall::{Firewall, Settings};
use meshrouter::core::identity::NodeKey;
use meshrouter::core::time::Instant;

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data);
    let _ = parse_quoted(data);
    // Router solicitations from a LAN come through the same kind of raw bytes.
    let _ = meshrouter::core::lan::ra::parse_solicitation(data);
    let keys: Vec<_> = (1..4u8)
        .map(|n| NodeKey::from_seed(&[n; 32]).public_key())
        .collect();
    let rule = |direction, action, protocol, ports: &str, peer: Option<usize>| Rule {
        direction,
        action,
        peers: peer.map(|i| Peer::Key(keys[i])).into_iter().collect(),
        roles: Vec::new(),
        local: Vec::new(),
        protocol,
        ports: Ports::parse(ports),
        comment: String::new(),
    };
    let mut firewall = Firewall::new(
        Settings {
            inbound: Action::Deny,
            outbound: Action::Allow,
            log_only: false,
            max_connections: MAX,
            rules: vec![
                rule(Direction::In, Action::Allow, Protocol::Tcp, "0-32767", Some(0)),
                rule(Direction::In, Action::Reject, Protocol::Any, "32768-65535", None),
                rule(Direction::In, Action::Allow, Protocol::Ping, "", None),
                rule(Direction::Out, Action::Deny, Protocol::Udp, "53", Some(1)),
            ],
        },
        Instant::from_micros(0),
    );
    // Records: a 2-byte header (direction and key, time step) then a length and a packet.
    let mut rest = data;
    let mut now = 0u64;
    while rest.len() >= 3 {
        let (head, tail) = rest.split_at(3);
        let len = usize::from(head[2]).min(tail.len());
        let (packet, after) = tail.split_at(len);
        now += u64::from(head[1]) * 1_000_000;
        let at = Instant::from_micros(now);
        if head[0] & 1 == 0 {
            let _ = firewall.inbound(at, &keys[usize::from(head[0] >> 1) % 3], packet, &());
        } else {
            let _ = firewall.outbound(at, packet, &());
        }
        firewall.handle_timeout(at);
        assert!(firewall.table().0 <= MAX);
        rest = after;
    }
    advertise(data);
});

/// A LAN's advertiser driven by the input: solicitations and time steps in any order. Apart from
/// the first three, advertisements are never closer than 3 s; after stopping, nothing more.
fn advertise(data: &[u8]) {
    use meshrouter::core::lan::advertiser::{Advertiser, MIN_DELAY_BETWEEN};
    use meshrouter::core::lan::ra::Advertisement;
    use std::time::Duration;
    let advertisement = Advertisement {
        prefix: "300:1::".parse().unwrap(),
        link_layer: None,
        router_lifetime: Duration::ZERO,
        route_lifetime: Duration::from_secs(1800),
        prefix_lifetimes: (Duration::from_secs(86400), Duration::from_secs(14400)),
        dns: Vec::new(),
        dns_lifetime: Duration::ZERO,
    };
    let mut now = Instant::from_micros(0);
    let mut a = Advertiser::new(advertisement, [1; 32], now);
    let mut sent: Vec<Instant> = Vec::new();
    for &b in data.iter().take(512) {
        now = now + Duration::from_millis(u64::from(b) * 97);
        match b % 4 {
            0 => a.on_solicitation(now),
            3 if b > 250 => a.stop(),
            _ => {}
        }
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.handle_timeout(now);
        }
        while a.poll_transmit().is_some() {
            sent.push(now);
        }
    }
    for pair in sent.windows(2).skip(3) {
        let gap = pair[1].saturating_since(pair[0]);
        assert!(gap >= MIN_DELAY_BETWEEN || pair == &sent[sent.len() - 2..], "{sent:?}");
    }
}
