//! The firewall as a whole: rules, default policies, tracked flows, rejections, reloads and roles.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use proptest::prelude::*;

use super::packet::{build, parse, proto, tcp_flags};
use super::rule::{Peer, Ports, Prefix, Protocol};
use super::*;
use crate::core::address::{node_address, node_subnet};
use crate::core::identity::NodeKey;

fn key(n: u8) -> PublicKey {
    NodeKey::from_seed(&[n; 32]).public_key()
}

fn addr(n: u8) -> Ipv6Addr {
    node_address(&key(n))
}

fn at(secs: u64) -> Instant {
    Instant::from_micros(secs * 1_000_000)
}

fn rule(direction: Direction, action: Action, protocol: Protocol) -> Rule {
    Rule {
        direction,
        action,
        peers: Vec::new(),
        roles: Vec::new(),
        local: Vec::new(),
        protocol,
        ports: None,
        comment: String::new(),
    }
}

fn tcp(from: Ipv6Addr, to: Ipv6Addr, ports: (u16, u16), flags: u8) -> Vec<u8> {
    build::ipv6(from, to, proto::TCP, &build::tcp(ports.0, ports.1, flags))
}

/// c (key 3) denies inbound; TCP 8080 from b (key 2) only; 9090 rejected; ping from anyone.
fn clinic() -> Firewall {
    let mut from_b = rule(Direction::In, Action::Allow, Protocol::Tcp);
    from_b.peers = vec![Peer::Key(key(2))];
    from_b.ports = Ports::parse("8080");
    let mut closed = rule(Direction::In, Action::Reject, Protocol::Tcp);
    closed.ports = Ports::parse("9090");
    let ping = rule(Direction::In, Action::Allow, Protocol::Ping);
    Firewall::new(
        Settings {
            inbound: Action::Deny,
            rules: vec![from_b, closed, ping],
            ..Settings::default()
        },
        at(0),
    )
}

#[test]
fn only_the_allowed_key_reaches_the_port_and_everyone_pings() {
    let mut fw = clinic();
    let (a, b, c) = (addr(1), addr(2), addr(3));
    let syn = tcp(b, c, (40000, 8080), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(1), &key(2), &syn, &()), Verdict::Pass);
    // c's answer leaves, and the rest of the connection comes in as part of the flow.
    let syn_ack = tcp(c, b, (8080, 40000), tcp_flags::SYN | tcp_flags::ACK);
    assert_eq!(fw.outbound(at(1), &syn_ack, &()), Verdict::Pass);
    let ack = tcp(b, c, (40000, 8080), tcp_flags::ACK);
    assert_eq!(fw.inbound(at(2), &key(2), &ack, &()), Verdict::Pass);
    assert_eq!(fw.counters().established, 2, "the answer and the ACK");
    // a, to the same port: dropped; to 9090: rejected with an ICMPv6 error back to a.
    let from_a = tcp(a, c, (40001, 8080), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(2), &key(1), &from_a, &()), Verdict::Drop);
    let to_closed = tcp(a, c, (40001, 9090), tcp_flags::SYN);
    let Verdict::Reject(answer) = fw.inbound(at(2), &key(1), &to_closed, &()) else {
        panic!("not rejected");
    };
    let answer = parse(&answer).unwrap();
    assert_eq!((answer.source, answer.destination), (c, a));
    // Everybody pings.
    let ping = build::ipv6(a, c, proto::ICMPV6, &build::echo(7, false));
    assert_eq!(fw.inbound(at(3), &key(1), &ping, &()), Verdict::Pass);
    // b, impersonating nobody: a packet from b's address but another key does not match b's rule
    // (the core refuses such a packet before; the rule is about the key, not the address).
    let forged = tcp(b, c, (40002, 8080), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(3), &key(1), &forged, &()), Verdict::Drop);
    assert_eq!(fw.rule_hits()[0].packets, 1);
    assert_eq!(fw.rule_hits()[1].packets, 1);
    assert_eq!(fw.default_hits().0.packets, 2);
    assert_eq!((fw.counters().denied, fw.counters().rejected), (2, 1));
}

#[test]
fn this_nodes_own_connections_work_both_ways_under_default_deny() {
    let mut fw = clinic();
    let (a, c) = (addr(1), addr(3));
    let syn = tcp(c, a, (50000, 22), tcp_flags::SYN);
    assert_eq!(fw.outbound(at(1), &syn, &()), Verdict::Pass);
    let syn_ack = tcp(a, c, (22, 50000), tcp_flags::SYN | tcp_flags::ACK);
    assert_eq!(fw.inbound(at(1), &key(1), &syn_ack, &()), Verdict::Pass);
    // Answered, handshake not completed: 60 s (Linux's SYN_RECV), then 5 days once it is.
    let ack = tcp(c, a, (50000, 22), tcp_flags::ACK);
    assert_eq!(fw.outbound(at(1), &ack, &()), Verdict::Pass);
    let data = tcp(a, c, (22, 50000), tcp_flags::ACK);
    assert_eq!(fw.inbound(at(3000), &key(1), &data, &()), Verdict::Pass);
    let syn2 = tcp(c, a, (50002, 22), tcp_flags::SYN);
    assert_eq!(fw.outbound(at(3000), &syn2, &()), Verdict::Pass);
    let syn_ack2 = tcp(a, c, (22, 50002), tcp_flags::SYN | tcp_flags::ACK);
    assert_eq!(fw.inbound(at(3000), &key(1), &syn_ack2, &()), Verdict::Pass);
    let late2 = tcp(a, c, (22, 50002), tcp_flags::ACK);
    assert_eq!(fw.inbound(at(3061), &key(1), &late2, &()), Verdict::Drop);
    // An ICMPv6 error about that connection is let in too; one about nothing tracked is not.
    let error = super::reject::prohibited(a, c, &syn);
    assert_eq!(fw.inbound(at(3061), &key(1), &error, &()), Verdict::Pass);
    let other = tcp(c, a, (50001, 22), tcp_flags::SYN);
    let unrelated = super::reject::prohibited(a, c, &other);
    assert_eq!(
        fw.inbound(at(3061), &key(1), &unrelated, &()),
        Verdict::Drop
    );
    // After a RST the flow closes within 10 s.
    let rst = tcp(a, c, (22, 50000), tcp_flags::RST);
    assert_eq!(fw.inbound(at(3062), &key(1), &rst, &()), Verdict::Pass);
    let late = tcp(a, c, (22, 50000), tcp_flags::ACK);
    assert_eq!(fw.inbound(at(3073), &key(1), &late, &()), Verdict::Drop);
}

#[test]
fn a_host_behind_the_node_is_reached_by_its_own_rule() {
    let c_subnet = node_subnet(&key(3)).network();
    let host = Ipv6Addr::from(u128::from(c_subnet) | 0x42);
    let mut to_host = rule(Direction::In, Action::Allow, Protocol::Tcp);
    to_host.local = vec![Prefix::new(host, 128)];
    to_host.ports = Ports::parse("8080");
    let mut fw = Firewall::new(
        Settings {
            inbound: Action::Deny,
            rules: vec![to_host],
            ..Settings::default()
        },
        at(0),
    );
    let syn = tcp(addr(1), host, (40000, 8080), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(1), &key(1), &syn, &()), Verdict::Pass);
    let to_node = tcp(addr(1), addr(3), (40000, 8080), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(1), &key(1), &to_node, &()), Verdict::Drop);
}

#[test]
fn a_revoked_role_closes_the_connections_it_opened() {
    let mut medics = rule(Direction::In, Action::Allow, Protocol::Tcp);
    medics.roles = vec!["medic".into()];
    medics.ports = Ports::parse("443");
    let mut fw = Firewall::new(
        Settings {
            inbound: Action::Deny,
            rules: vec![medics],
            ..Settings::default()
        },
        at(0),
    );
    let mut roles: HashMap<PublicKey, Vec<String>> = HashMap::new();
    roles.insert(key(2), vec!["medic".into()]);
    let (b, c) = (addr(2), addr(3));
    let syn = tcp(b, c, (40000, 443), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(1), &key(2), &syn, &roles), Verdict::Pass);
    let stranger = tcp(addr(1), c, (40000, 443), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(1), &key(1), &stranger, &roles), Verdict::Drop);
    let ack = tcp(b, c, (40000, 443), tcp_flags::ACK);
    assert_eq!(fw.inbound(at(2), &key(2), &ack, &roles), Verdict::Pass);
    roles.clear();
    fw.revalidate(&roles);
    assert_eq!(fw.counters().revoked, 1);
    assert_eq!(fw.inbound(at(3), &key(2), &ack, &roles), Verdict::Drop);
}

#[test]
fn a_reload_keeps_allowed_flows_and_counters_and_drops_the_others() {
    let mut fw = clinic();
    let (a, b, c) = (addr(1), addr(2), addr(3));
    let from_b = tcp(b, c, (40000, 8080), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(1), &key(2), &from_b, &()), Verdict::Pass);
    let ping = build::ipv6(a, c, proto::ICMPV6, &build::echo(7, false));
    assert_eq!(fw.inbound(at(1), &key(1), &ping, &()), Verdict::Pass);
    // The same rules but ping no longer allowed.
    let mut settings = fw.settings().clone();
    settings.rules.pop();
    fw.reconfigure(settings, &());
    assert_eq!(
        fw.rule_hits()[0].packets,
        1,
        "an unchanged rule keeps its count"
    );
    assert_eq!(fw.counters().revoked, 1);
    let more = tcp(b, c, (40000, 8080), tcp_flags::ACK);
    assert_eq!(fw.inbound(at(2), &key(2), &more, &()), Verdict::Pass);
    assert_eq!(fw.inbound(at(2), &key(1), &ping, &()), Verdict::Drop);
}

#[test]
fn log_only_passes_what_it_would_drop_and_counts_it() {
    let mut fw = clinic();
    let mut settings = fw.settings().clone();
    settings.log_only = true;
    fw.reconfigure(settings, &());
    let from_a = tcp(addr(1), addr(3), (40001, 8080), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(1), &key(1), &from_a, &()), Verdict::Pass);
    assert_eq!(fw.counters().would_drop, 1);
    assert_eq!(fw.counters().denied, 0);
    let report = fw.poll_would_drop().unwrap();
    assert_eq!(
        (report.rule, report.action, report.key),
        (None, Action::Deny, Some(key(1)))
    );
    assert_eq!(fw.poll_would_drop(), None);
    for port in 0..100 {
        let probe = tcp(addr(1), addr(3), (port, 8080), tcp_flags::SYN);
        assert_eq!(fw.inbound(at(2), &key(1), &probe, &()), Verdict::Pass);
    }
    let mut reports = 0;
    while fw.poll_would_drop().is_some() {
        reports += 1;
    }
    assert_eq!(reports, MAX_WOULD_DROP_REPORTS);
    assert_eq!(fw.counters().would_drop, 101);
}

#[test]
fn rejections_are_answered_50_a_second_at_most() {
    let mut fw = clinic();
    let mut answered = 0;
    for port in 0..60 {
        let to_closed = tcp(addr(1), addr(3), (port, 9090), tcp_flags::SYN);
        if let Verdict::Reject(_) = fw.inbound(at(1), &key(1), &to_closed, &()) {
            answered += 1;
        }
    }
    assert_eq!(answered, 50);
    assert_eq!(fw.counters().rejects_unanswered, 10);
    let to_closed = tcp(addr(1), addr(3), (61, 9090), tcp_flags::SYN);
    assert!(matches!(
        fw.inbound(at(2), &key(1), &to_closed, &()),
        Verdict::Reject(_)
    ));
    // Malformed packets are dropped, never answered.
    assert_eq!(fw.inbound(at(2), &key(1), &[0x60; 20], &()), Verdict::Drop);
    assert_eq!(fw.counters().malformed, 1);
}

#[test]
fn a_syn_flood_stays_within_the_table_and_established_flows_survive_it() {
    let mut open = rule(Direction::In, Action::Allow, Protocol::Tcp);
    open.ports = Ports::parse("8080");
    let mut fw = Firewall::new(
        Settings {
            inbound: Action::Deny,
            max_connections: 1000,
            rules: vec![open],
            ..Settings::default()
        },
        at(0),
    );
    let (b, c) = (addr(2), addr(3));
    let syn = tcp(b, c, (40000, 8080), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(1), &key(2), &syn, &()), Verdict::Pass);
    let syn_ack = tcp(c, b, (8080, 40000), tcp_flags::SYN | tcp_flags::ACK);
    assert_eq!(fw.outbound(at(1), &syn_ack, &()), Verdict::Pass);
    let attacker = addr(9);
    for i in 0..20_000u32 {
        let spoof = tcp(
            attacker,
            c,
            ((i % 60_000) as u16 + 1024, 8080),
            tcp_flags::SYN,
        );
        let _ = fw.inbound(at(2), &key(9), &spoof, &());
        assert!(fw.table().0 <= 1000);
    }
    assert_eq!(fw.table().2.evicted, 19_001);
    let ack = tcp(b, c, (40000, 8080), tcp_flags::ACK);
    assert_eq!(fw.inbound(at(3), &key(2), &ack, &()), Verdict::Pass);
}

#[test]
fn flows_time_out_as_the_kernels_do() {
    let mut fw = Firewall::new(
        Settings {
            inbound: Action::Deny,
            ..Settings::default()
        },
        at(0),
    );
    let (a, c) = (addr(1), addr(3));
    let query = build::ipv6(c, a, proto::UDP, &build::udp(5353, 53));
    assert_eq!(fw.outbound(at(0), &query, &()), Verdict::Pass);
    let answer = build::ipv6(a, c, proto::UDP, &build::udp(53, 5353));
    assert_eq!(fw.inbound(at(29), &key(1), &answer, &()), Verdict::Pass);
    // Answered: 180 s from the last packet.
    assert_eq!(fw.inbound(at(200), &key(1), &answer, &()), Verdict::Pass);
    assert_eq!(fw.inbound(at(381), &key(1), &answer, &()), Verdict::Drop);
    // Unanswered: 30 s; the sweep clears it.
    assert_eq!(fw.outbound(at(400), &query, &()), Verdict::Pass);
    assert_eq!(fw.table().0, 1);
    fw.handle_timeout(at(431));
    assert_eq!(fw.table().0, 0);
    assert_eq!(fw.inbound(at(432), &key(1), &answer, &()), Verdict::Drop);
}

#[test]
fn without_rules_nothing_is_tracked_or_dropped() {
    let mut fw = Firewall::new(Settings::default(), at(0));
    assert_eq!(fw.inbound(at(1), &key(1), &[1, 2, 3], &()), Verdict::Pass);
    let syn = tcp(addr(1), addr(3), (1, 2), tcp_flags::SYN);
    assert_eq!(fw.inbound(at(1), &key(1), &syn, &()), Verdict::Pass);
    assert_eq!(fw.table().0, 0);
}

// Property tests: the verdict on a packet of a new flow is the first matching rule's action (or
// the default), whatever the rules; a flow let out is always let back in; the table never passes
// its bound.

fn any_rule() -> impl Strategy<Value = Rule> {
    (
        any::<bool>(),
        0..3u8,
        0..5u8,
        proptest::option::of((0..4u16, 0..4u16)),
        proptest::option::of(1..4u8),
        proptest::option::of(1..4u8),
    )
        .prop_map(|(inbound, action, protocol, ports, peer, local)| {
            let mut r = rule(
                if inbound {
                    Direction::In
                } else {
                    Direction::Out
                },
                [Action::Allow, Action::Deny, Action::Reject][usize::from(action)],
                [
                    Protocol::Any,
                    Protocol::Tcp,
                    Protocol::Udp,
                    Protocol::Icmp,
                    Protocol::Ping,
                ][usize::from(protocol)],
            );
            r.ports = ports.map(|(a, b)| Ports {
                first: 8000 + a.min(b),
                last: 8000 + a.max(b),
            });
            r.peers = peer.map(|n| Peer::Key(key(n))).into_iter().collect();
            r.local = local
                .map(|n| Prefix::new(addr(n), 128))
                .into_iter()
                .collect();
            r
        })
}

#[derive(Debug, Clone)]
struct Probe {
    inbound: bool,
    remote: u8,
    local: u8,
    kind: u8,
    port: u16,
}

fn any_probe() -> impl Strategy<Value = Probe> {
    (any::<bool>(), 1..4u8, 1..4u8, 0..3u8, 0..4u16).prop_map(
        |(inbound, remote, local, kind, port)| Probe {
            inbound,
            remote,
            local,
            kind,
            port: 8000 + port,
        },
    )
}

fn probe_packet(p: &Probe, reply: bool) -> Vec<u8> {
    let (mut from, mut to) = (addr(p.remote), addr(p.local));
    if !p.inbound ^ reply {
        std::mem::swap(&mut from, &mut to);
    }
    let ports = if reply {
        (p.port, 40000)
    } else {
        (40000, p.port)
    };
    match p.kind {
        0 => tcp(
            from,
            to,
            ports,
            if reply {
                tcp_flags::SYN | tcp_flags::ACK
            } else {
                tcp_flags::SYN
            },
        ),
        1 => build::ipv6(from, to, proto::UDP, &build::udp(ports.0, ports.1)),
        _ => build::ipv6(from, to, proto::ICMPV6, &build::echo(p.port, reply)),
    }
}

fn send(fw: &mut Firewall, now: Instant, p: &Probe, reply: bool) -> Verdict {
    let packet = probe_packet(p, reply);
    if p.inbound ^ reply {
        fw.inbound(now, &key(p.remote), &packet, &())
    } else {
        fw.outbound(now, &packet, &())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_first_matching_rule_decides_a_new_flow(
        rules in proptest::collection::vec(any_rule(), 0..8),
        probe in any_probe(),
        deny_in in any::<bool>(),
    ) {
        let settings = Settings {
            inbound: if deny_in { Action::Deny } else { Action::Allow },
            outbound: Action::Allow,
            rules: rules.clone(),
            ..Settings::default()
        };
        let mut fw = Firewall::new(settings.clone(), at(0));
        let direction = if probe.inbound { Direction::In } else { Direction::Out };
        let bytes = probe_packet(&probe, false);
        let packet = parse(&bytes).unwrap();
        let who = key(probe.remote);
        let expected = rules
            .iter()
            .find(|r| r.matches(direction, &packet, Some(&who), &()))
            .map_or(if probe.inbound { settings.inbound } else { settings.outbound }, |r| r.action);
        let verdict = send(&mut fw, at(1), &probe, false);
        match expected {
            Action::Allow => prop_assert_eq!(verdict, Verdict::Pass),
            Action::Deny => prop_assert_eq!(verdict, Verdict::Drop),
            Action::Reject => {
                let rejected = matches!(verdict, Verdict::Reject(_));
                prop_assert!(rejected);
            }
        }
    }

    #[test]
    fn a_flow_let_through_is_answered_and_the_table_keeps_its_bound(
        rules in proptest::collection::vec(any_rule(), 0..8),
        probes in proptest::collection::vec(any_probe(), 1..60),
        max in 1..16usize,
    ) {
        let mut fw = Firewall::new(
            Settings {
                inbound: Action::Deny,
                outbound: Action::Deny,
                max_connections: max,
                rules,
                ..Settings::default()
            },
            at(0),
        );
        for (i, probe) in probes.iter().enumerate() {
            let now = at(i as u64);
            if send(&mut fw, now, probe, false) == Verdict::Pass {
                // The answer comes at once: the flow was just inserted, so it is still tracked.
                prop_assert_eq!(send(&mut fw, now, probe, true), Verdict::Pass);
            }
            prop_assert!(fw.table().0 <= max);
        }
    }
}
