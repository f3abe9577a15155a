//! `Node::reseed`: fresh entropy changes what the node draws next (here, the ephemeral key of its
//! next handshake), and the same entropy gives the same draws, so simulations stay replayable.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::time::Duration;

use meshrouter::core::identity::NodeKey;
use meshrouter::core::link::LinkParams;
use meshrouter::core::node::{Node, NodeConfig};
use meshrouter::core::time::Instant;

/// The first initiation a fresh node with `seed` sends on a new link, after `reseed` if given.
fn first_init(reseed: Option<[u8; 32]>) -> Vec<u8> {
    let config = NodeConfig {
        seq_base: 1,
        group_password: None,
        session_aes_gcm: false,
    };
    let mut node = Node::new(NodeKey::from_seed(&[3; 32]), config, [4; 32], Instant::ZERO);
    if let Some(extra) = reseed {
        node.reseed(&extra);
    }
    node.open_link(Instant::ZERO, LinkParams::default());
    let mut now = Instant::ZERO;
    for _ in 0..100 {
        now = node
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(10));
        node.handle_timeout(now);
        if let Some(transmit) = node.poll_transmit() {
            return transmit.payload;
        }
    }
    panic!("the link sent no initiation");
}

#[test]
fn reseeding_changes_the_next_handshake_and_replays() {
    let plain = first_init(None);
    assert_eq!(first_init(None), plain, "a node without reseeding replays");
    let a = first_init(Some([7; 32]));
    assert_ne!(a, plain, "reseeding did not change the initiation");
    assert_eq!(first_init(Some([7; 32])), a, "the same entropy must replay");
    assert_ne!(first_init(Some([8; 32])), a, "other entropy, other keys");
}
