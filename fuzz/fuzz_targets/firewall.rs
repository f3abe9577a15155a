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
});
