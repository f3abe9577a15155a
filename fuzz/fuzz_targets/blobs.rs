//! Blocks and CIDs from anyone: any bytes read as a file node, a CID (binary or text) or an error,
//! never a panic; what reads writes back the same; any file imports into blocks that all verify
//! and decode, and reassemble to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
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
