//! What a node keeps of files: every block once, however many files share it, each file ("root")
//! with its size, its blocks, whether it is pinned and when it was last used, and a limit on the
//! bytes kept, past which the files unused longest and not pinned are dropped. Sans-IO: the
//! blocks themselves live in a [`Blocks`] store the driver provides (files on disk); this is the
//! index, which the driver saves after every change.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::cid::{Cid, Codec};
use super::dag::FileNode;

/// Where blocks live.
pub trait Blocks {
    /// Its errors.
    type Error: std::fmt::Display;
    /// Keeps `bytes` as `cid` (already verified).
    fn put(&mut self, cid: &Cid, bytes: &[u8]) -> Result<(), Self::Error>;
    /// The block `cid`, if held (`&mut`: a store that writes in the background waits for its
    /// writes first).
    fn get(&mut self, cid: &Cid) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Forgets `cid`.
    fn delete(&mut self, cid: &Cid) -> Result<(), Self::Error>;
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The bytes are not the block the CID names.
    #[error("the block does not match its CID {0}")]
    Mismatch(Cid),
    /// A block of the file is not held.
    #[error("block {0} of the file is missing")]
    Missing(Cid),
    /// A node of the file does not read.
    #[error("block {0} is not a UnixFS file node: {1}")]
    BadNode(Cid, String),
    /// Keeping it would pass the limit, and everything else is pinned.
    #[error(
        "the blob store is full ({used} of {limit} bytes, all pinned): unpin something or raise blobs.max_bytes"
    )]
    Full {
        /// Bytes held.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// The block store failed.
    #[error("blob store: {0}")]
    Io(String),
    /// No such file.
    #[error("no blob {0} here")]
    Unknown(Cid),
}

/// One file held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Bytes of the file.
    pub size: u64,
    /// Bytes of all its blocks.
    pub stored: u64,
    /// Its blocks (the root included).
    pub blocks: Vec<Cid>,
    /// Kept whatever the limit.
    pub pinned: bool,
    /// When it was added or last read (a counter: larger is later).
    pub used: u64,
}

/// The index of a node's blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobIndex {
    roots: BTreeMap<Cid, Root>,
    /// Block → (its size, how many roots hold it).
    #[serde(with = "block_refs")]
    blocks: HashMap<Cid, (u64, u32)>,
    /// Bytes of all blocks held.
    used: u64,
    clock: u64,
}

impl BlobIndex {
    /// The files held.
    pub fn roots(&self) -> impl Iterator<Item = (&Cid, &Root)> {
        self.roots.iter()
    }

    /// Bytes of all blocks held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// True if the block is held (by some file).
    pub fn has_block(&self, cid: &Cid) -> bool {
        self.blocks.contains_key(cid)
    }

    /// Records the file `root`, whose blocks are all in `store` (checked: each block's hash unless
    /// `verified` says the caller checked it on the way in, each node's shape, every link's
    /// block), pinned or not, then drops the files unused longest until `limit` holds. Blocks that
    /// are already held count once.
    pub fn add<B: Blocks>(
        &mut self,
        store: &mut B,
        root: Cid,
        pinned: bool,
        limit: u64,
        verified: &dyn Fn(&Cid) -> bool,
    ) -> Result<&Root, StoreError> {
        let io = |e: B::Error| StoreError::Io(e.to_string());
        let mut blocks = Vec::new();
        let mut sizes = HashMap::new();
        let mut size = 0u64;
        let mut stack = vec![root];
        while let Some(cid) = stack.pop() {
            let bytes = store
                .get(&cid)
                .map_err(io)?
                .ok_or(StoreError::Missing(cid))?;
            if !verified(&cid) && !cid.matches(&bytes) {
                return Err(StoreError::Mismatch(cid));
            }
            match cid.codec {
                Codec::Raw => size += bytes.len() as u64,
                Codec::DagPb => {
                    let node = FileNode::decode(&bytes)
                        .map_err(|e| StoreError::BadNode(cid, e.to_string()))?;
                    stack.extend(node.links.iter().rev().map(|l| l.cid));
                }
            }
            if sizes.insert(cid, bytes.len() as u64).is_none() {
                blocks.push(cid);
            }
        }
        let new_bytes: u64 = (sizes.iter())
            .filter(|(c, _)| !self.blocks.contains_key(*c))
            .map(|(_, s)| *s)
            .sum();
        self.clock += 1;
        if let Some(held) = self.roots.get_mut(&root) {
            held.pinned |= pinned;
            held.used = self.clock;
        } else {
            self.make_room(store, new_bytes, limit)?;
            for cid in &blocks {
                let entry = self.blocks.entry(*cid).or_insert((sizes[cid], 0));
                if entry.1 == 0 {
                    self.used += entry.0;
                }
                entry.1 += 1;
            }
            let stored = sizes.values().sum();
            self.roots.insert(
                root,
                Root {
                    size,
                    stored,
                    blocks,
                    pinned,
                    used: self.clock,
                },
            );
        }
        Ok(&self.roots[&root])
    }

    /// Drops unpinned files, unused longest first, until `extra` more bytes fit under `limit`.
    fn make_room<B: Blocks>(
        &mut self,
        store: &mut B,
        extra: u64,
        limit: u64,
    ) -> Result<(), StoreError> {
        while self.used + extra > limit {
            let oldest = (self.roots.iter())
                .filter(|(_, r)| !r.pinned)
                .min_by_key(|(_, r)| r.used)
                .map(|(c, _)| *c);
            let Some(oldest) = oldest else {
                return Err(StoreError::Full {
                    used: self.used,
                    limit,
                });
            };
            self.remove(store, &oldest)?;
        }
        Ok(())
    }

    /// Forgets the file `root`, and the blocks no other file holds.
    pub fn remove<B: Blocks>(&mut self, store: &mut B, root: &Cid) -> Result<(), StoreError> {
        let held = self.roots.remove(root).ok_or(StoreError::Unknown(*root))?;
        for cid in held.blocks {
            let Some(entry) = self.blocks.get_mut(&cid) else {
                continue;
            };
            // Saturating: an index read back from a damaged file must not panic.
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                self.used = self.used.saturating_sub(entry.0);
                self.blocks.remove(&cid);
                store
                    .delete(&cid)
                    .map_err(|e| StoreError::Io(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Pins or unpins a file.
    pub fn pin(&mut self, root: &Cid, pinned: bool) -> Result<(), StoreError> {
        let held = self.roots.get_mut(root).ok_or(StoreError::Unknown(*root))?;
        held.pinned = pinned;
        Ok(())
    }

    /// Marks a file as just used (it is dropped last).
    pub fn touch(&mut self, root: &Cid) {
        self.clock += 1;
        if let Some(held) = self.roots.get_mut(root) {
            held.used = self.clock;
        }
    }
}

/// The block table as a list, since JSON keys are strings.
mod block_refs {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Cid;

    pub(super) fn serialize<S: Serializer>(
        map: &HashMap<Cid, (u64, u32)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut list: Vec<(&Cid, &(u64, u32))> = map.iter().collect();
        list.sort();
        list.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<HashMap<Cid, (u64, u32)>, D::Error> {
        let list: Vec<(Cid, (u64, u32))> = Vec::deserialize(d)?;
        Ok(list.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
