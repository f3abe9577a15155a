//! A whole node fed datagrams from many remotes through `Node::handle_datagram`: the demultiplexer
//! and the admission gate (MAC, budget, cookies, unconfirmed inbound links) with arbitrary bytes and
//! with valid signed initiations, cookies answered or not, time passing. Nothing may panic, and the
//! unconfirmed inbound links stay within their bound.
#![no_main]

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use meshrouter::core::identity::NodeKey;
use meshrouter::core::link::LinkParams;
use meshrouter::core::link::cipher::Cipher;
use meshrouter::core::link::handshake::{Ephemeral, Psk, make_init, set_mac2};
use meshrouter::core::node::{Arrival, MAX_UNCONFIRMED_INBOUND, Node, NodeConfig, Remote};
use meshrouter::core::time::Instant;
use meshrouter::core::wire::datagram::Datagram;

fn remote(selector: u8) -> Remote {
    if selector & 0x80 != 0 {
        Remote::Ethernet([2, 0, 0, 0, 0, selector])
    } else {
        let ip = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(selector & 0x0f));
        Remote::Udp(SocketAddr::new(ip.into(), 1000 + u16::from(selector >> 4)))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut node = Node::new(
        NodeKey::from_seed(&[7; 32]),
        NodeConfig {
            seq_base: 1,
            group_password: None,
            session_aes_gcm: false,
        },
        [9; 32],
        Instant::ZERO,
    );
    let psk = Psk::from_password(None);
    let mut now = Instant::ZERO;
    let mut cookie: Option<[u8; 16]> = None;
    // Each operation: op(1) remote(1) len(1) bytes(len).
    let mut rest = data;
    while let [op, selector, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        now = now + Duration::from_millis(u64::from(op & 0x0f) * 100);
        let from = remote(*selector);
        let endpoint = u32::from(op >> 6);
        let mut datagram = if op & 0x10 != 0 {
            // A valid initiation from a key chosen by the input, with the last cookie if asked.
            let seed = chunk.first().copied().unwrap_or(0);
            let mut init = make_init(
                &NodeKey::from_seed(&[seed; 32]),
                &Ephemeral::from_random([seed ^ 0x55; 32]),
                u32::from(seed),
                now.as_micros(),
                Cipher::offer(false),
                &psk,
            );
            if let (true, Some(c)) = (op & 0x20 != 0, cookie) {
                set_mac2(&mut init, &c);
            }
            init.encode()
        } else {
            chunk.to_vec()
        };
        let inbound = || {
            (endpoint != 3).then(|| LinkParams {
                initiate: false,
                ..LinkParams::default()
            })
        };
        if let Arrival::Reply(reply) =
            node.handle_datagram(now, endpoint, from, &mut datagram, inbound)
            && let Ok(Datagram::Cookie { cookie: c, .. }) = Datagram::parse(&reply)
        {
            cookie = Some(c);
        }
        node.handle_timeout(now);
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
        assert!(node.unconfirmed_inbound() <= MAX_UNCONFIRMED_INBOUND);
    }
});
