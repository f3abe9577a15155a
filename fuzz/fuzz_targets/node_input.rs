//! A whole node fed arbitrary datagrams on a link and arbitrary local packets: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshrouter::core::identity::NodeKey;
use meshrouter::core::link::LinkParams;
use meshrouter::core::node::{Node, NodeConfig};
use meshrouter::core::time::Instant;

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
    let link = node.open_link(
        Instant::ZERO,
        LinkParams {
            initiate: false,
            ..LinkParams::default()
        },
    );
    let mut now = Instant::ZERO;
    // Split the input into chunks: the first byte of each says how long it is and where it goes.
    let mut rest = data;
    while let Some((&head, tail)) = rest.split_first() {
        let len = usize::from(head & 0x7f).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        now = now + std::time::Duration::from_millis(u64::from(head));
        if head & 0x80 == 0 {
            node.handle_link_datagram(now, link, &mut chunk.to_vec());
        } else {
            node.handle_local_packet(now, chunk);
        }
        node.handle_timeout(now);
        while node.poll_transmit().is_some() {}
        rest = tail;
    }
});
