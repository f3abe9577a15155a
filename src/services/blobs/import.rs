//! Cutting a file into blocks and building its DAG, streaming: bytes go in as they are read, leaf
//! blocks come out as soon as a chunk is full, inner nodes as soon as a level has its full width,
//! and the root at the end. The balanced layout of IPFS tools: leaves left to right, every inner
//! node full but the last of its level, so the same bytes always give the same root.

use std::collections::VecDeque;

use super::cid::{Cid, Codec};
use super::dag::{FileNode, Link};

/// How a file is cut and linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Bytes per leaf.
    pub chunk: usize,
    /// Links per inner node.
    pub max_links: usize,
}

impl Profile {
    /// IPIP-499 `unixfs-v1-2025`: 1 MiB chunks, 1 024 links per node (raw leaves, CIDv1, SHA-256).
    pub const UNIXFS_V1_2025: Profile = Profile {
        chunk: 1 << 20,
        max_links: 1024,
    };
}

/// A block of a file's DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Its CID.
    pub cid: Cid,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A child waiting for its parent: its link and the file bytes under it.
#[derive(Debug, Clone, Copy)]
struct Pending {
    link: Link,
    size: u64,
}

/// Builds a file's DAG from its bytes.
pub struct Importer {
    profile: Profile,
    chunk: Vec<u8>,
    /// Per level (0: leaves), the children waiting for a parent.
    levels: Vec<Vec<Pending>>,
    out: VecDeque<Block>,
    leaves: u64,
}

impl Importer {
    /// A new file under `profile`.
    pub fn new(profile: Profile) -> Self {
        Self {
            profile,
            chunk: Vec::with_capacity(profile.chunk),
            levels: Vec::new(),
            out: VecDeque::new(),
            leaves: 0,
        }
    }

    /// More of the file.
    pub fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (self.profile.chunk - self.chunk.len()).min(bytes.len());
            self.chunk.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.chunk.len() == self.profile.chunk {
                self.leaf();
            }
        }
    }

    /// The next finished block.
    pub fn poll_block(&mut self) -> Option<Block> {
        self.out.pop_front()
    }

    /// The end of the file: its root CID (the blocks not yet taken stay in [`Self::poll_block`]).
    pub fn finish(&mut self) -> Cid {
        if !self.chunk.is_empty() || self.leaves == 0 {
            self.leaf();
        }
        let mut level = 0;
        loop {
            let top = self.levels[level + 1..].iter().all(Vec::is_empty);
            match self.levels[level].len() {
                0 => {}
                1 if top => return self.levels[level][0].link.cid,
                _ => self.parent(level),
            }
            level += 1;
        }
    }

    fn leaf(&mut self) {
        let bytes = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.profile.chunk));
        let cid = Cid::of(Codec::Raw, &bytes);
        let size = bytes.len() as u64;
        self.leaves += 1;
        self.out.push_back(Block { cid, bytes });
        self.add(
            0,
            Pending {
                link: Link { cid, tsize: size },
                size,
            },
        );
    }

    fn add(&mut self, level: usize, child: Pending) {
        if self.levels.len() <= level + 1 {
            self.levels.resize(level + 2, Vec::new());
        }
        self.levels[level].push(child);
        if self.levels[level].len() == self.profile.max_links {
            self.parent(level);
        }
    }

    /// Makes the parent of the children waiting at `level`.
    fn parent(&mut self, level: usize) {
        let children = std::mem::take(&mut self.levels[level]);
        let node = FileNode {
            links: children.iter().map(|c| c.link).collect(),
            blocksizes: children.iter().map(|c| c.size).collect(),
        };
        let bytes = node.encode();
        let cid = Cid::of(Codec::DagPb, &bytes);
        let tsize = bytes.len() as u64 + children.iter().map(|c| c.link.tsize).sum::<u64>();
        let size = node.filesize();
        self.out.push_back(Block { cid, bytes });
        self.add(
            level + 1,
            Pending {
                link: Link { cid, tsize },
                size,
            },
        );
    }
}

/// The root CID and every block of `bytes` under `profile` (for tests and small files).
pub fn import(bytes: &[u8], profile: Profile) -> (Cid, Vec<Block>) {
    let mut importer = Importer::new(profile);
    importer.write(bytes);
    let root = importer.finish();
    let blocks = std::iter::from_fn(|| importer.poll_block()).collect();
    (root, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Profile = Profile {
        chunk: 4,
        max_links: 3,
    };

    fn node(blocks: &[Block], cid: &Cid) -> FileNode {
        let block = blocks.iter().find(|b| b.cid == *cid).unwrap();
        FileNode::decode(&block.bytes).unwrap()
    }

    #[test]
    fn one_chunk_is_its_own_raw_root() {
        let (root, blocks) = import(b"", Profile::UNIXFS_V1_2025);
        assert_eq!(
            root.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(blocks.len(), 1);
        let (root, blocks) = import(b"abcd", SMALL);
        assert_eq!((root, blocks.len()), (Cid::of(Codec::Raw, b"abcd"), 1));
    }

    #[test]
    fn the_dag_is_balanced_left_to_right() {
        // 10 chunks of 4 bytes (the last of 2), 3 links per node: leaves in groups of 3, 3, 3, 1;
        // those 4 nodes in groups of 3 and 1; a root over the 2.
        let data: Vec<u8> = (0..38u8).collect();
        let (root, blocks) = import(&data, SMALL);
        assert_eq!(root.codec, Codec::DagPb);
        let top = node(&blocks, &root);
        assert_eq!(top.blocksizes, [36, 2]);
        let left = node(&blocks, &top.links[0].cid);
        assert_eq!(left.blocksizes, [12, 12, 12]);
        let right = node(&blocks, &top.links[1].cid);
        assert_eq!(right.blocksizes, [2]);
        let last = node(&blocks, &right.links[0].cid);
        assert_eq!(last.blocksizes, [2]);
        assert_eq!(
            blocks.iter().filter(|b| b.cid.codec == Codec::Raw).count(),
            10
        );
        // Cumulative sizes add up to every block's bytes.
        let total: u64 = blocks.iter().map(|b| b.bytes.len() as u64).sum();
        let top_block = blocks.iter().find(|b| b.cid == root).unwrap();
        assert_eq!(
            total,
            top_block.bytes.len() as u64 + top.links.iter().map(|l| l.tsize).sum::<u64>()
        );
        // Reassembled from the leaves in order: the same bytes.
        let mut again = Vec::new();
        collect(&blocks, &root, &mut again);
        assert_eq!(again, data);
    }

    #[test]
    fn a_full_level_is_its_own_root_and_writes_may_be_any_size() {
        let data: Vec<u8> = (0..36u8).collect();
        let (root, blocks) = import(&data, SMALL);
        assert_eq!(node(&blocks, &root).blocksizes, [12, 12, 12]);
        let mut importer = Importer::new(SMALL);
        for byte in &data {
            importer.write(std::slice::from_ref(byte));
        }
        assert_eq!(importer.finish(), root);
    }

    fn collect(blocks: &[Block], cid: &Cid, out: &mut Vec<u8>) {
        let block = blocks.iter().find(|b| b.cid == *cid).unwrap();
        match cid.codec {
            Codec::Raw => out.extend_from_slice(&block.bytes),
            Codec::DagPb => {
                for link in FileNode::decode(&block.bytes).unwrap().links {
                    collect(blocks, &link.cid, out);
                }
            }
        }
    }
}
