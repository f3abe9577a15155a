//! Blocks, CIDs and exchange messages from anyone: any bytes read as a file node, a CID (binary or
//! text), a message or an error, never a panic; what reads writes back the same; a fetch fed any
//! bytes never panics nor hands out a block that does not verify; any file imports into blocks
//! that all verify and decode, and reassemble to the same bytes; a CAR archive gives checked blocks
//! or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::identity::PublicKey;
use meshrouter::core::time::Instant;
use meshrouter::services::blobs::exchange::{Fetch, Message};
use meshrouter::services::blobs::import::{Profile, import};
use meshrouter::services::blobs::{Cid, Codec, FileNode};

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = FileNode::decode(data) {
        assert_eq!(FileNode::decode(&node.encode()), Ok(node));
    }
    if let Ok(cid) = Cid::from_bytes(data) {
        assert_eq!(cid.to_string().parse::<Cid>(), Ok(cid));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<Cid>();
    }
    // A CAR archive from a USB stick, in two slices: sections out are checked blocks, or an error.
    let mut car = meshrouter::services::blobs::car::Reader::new();
    let (first, second) = data.split_at(data.len() / 2);
    for part in [first, second] {
        car.write(part);
        while let Ok(Some((cid, block))) = car.poll_section() {
            assert!(cid.matches(&block));
        }
    }
    let _ = car.finish();
    if let Some(message) = Message::decode(data) {
        assert_eq!(Message::decode(&message.encode()), Some(message));
    }
    // Any bytes from a holder, as one message or as many small ones, between timeouts: the fetch
    // never panics and never hands out a block that does not match its CID.
    let holder = PublicKey::from_bytes([1; 32]);
    let mut now = Instant::from_micros(1_000_000);
    let mut fetch = Fetch::new(Cid::of(Codec::Raw, b"wanted"), &[holder], now);
    fetch.handle_message(now, holder, data);
    for piece in data.chunks(45) {
        now = now + std::time::Duration::from_millis(30);
        fetch.handle_message(now, holder, piece);
        fetch.handle_timeout(now);
        while fetch.poll_transmit().is_some() {}
        while let Some((cid, bytes)) = fetch.poll_block() {
            assert!(cid.matches(&bytes));
        }
    }
    let profile = Profile {
        chunk: 3,
        max_links: 4,
    };
    let (root, blocks) = import(data, profile);
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(cid) = stack.pop() {
        let block = blocks.iter().find(|b| b.cid == cid).expect("every link's block is made");
        assert!(cid.matches(&block.bytes));
        match cid.codec {
            Codec::Raw => out.extend_from_slice(&block.bytes),
            Codec::DagPb => {
                let node = FileNode::decode(&block.bytes).expect("made nodes read back");
                stack.extend(node.links.iter().rev().map(|l| l.cid));
            }
        }
    }
    assert_eq!(out, data);
});
