use std::collections::HashMap;

use super::*;
use crate::services::blobs::import::{Profile, import};

#[derive(Default)]
struct Memory(HashMap<Cid, Vec<u8>>);

impl Blocks for Memory {
    type Error = String;
    fn put(&mut self, cid: &Cid, bytes: &[u8]) -> Result<(), String> {
        self.0.insert(*cid, bytes.to_vec());
        Ok(())
    }
    fn get(&mut self, cid: &Cid) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.get(cid).cloned())
    }
    fn delete(&mut self, cid: &Cid) -> Result<(), String> {
        self.0.remove(cid);
        Ok(())
    }
}

const SMALL: Profile = Profile {
    chunk: 100,
    max_links: 4,
};

/// Imports `data` into `store`'s blocks; returns the root.
fn put_file(store: &mut Memory, data: &[u8]) -> Cid {
    let (root, blocks) = import(data, SMALL);
    for b in blocks {
        store.put(&b.cid, &b.bytes).unwrap();
    }
    root
}

#[test]
fn shared_blocks_count_once_and_go_with_the_last_file() {
    let mut store = Memory::default();
    let mut index = BlobIndex::default();
    let a = put_file(&mut store, &[1; 1000]);
    let b = put_file(&mut store, &[1; 900]);
    let size_a = index
        .add(&mut store, a, false, u64::MAX, &UNCHECKED)
        .unwrap()
        .stored;
    index
        .add(&mut store, b, false, u64::MAX, &UNCHECKED)
        .unwrap();
    // 9 identical leaves are shared: b adds only its own nodes.
    assert!(
        index.used() < size_a + 300,
        "{} vs {}",
        index.used(),
        size_a
    );
    index.remove(&mut store, &a).unwrap();
    assert!(
        store
            .0
            .keys()
            .all(|c| index.has_block(c) || c.codec == Codec::DagPb)
    );
    index.remove(&mut store, &b).unwrap();
    assert_eq!(index.used(), 0);
    // The nodes of a and b not shared were deleted with them; what remains is only unindexed.
    assert!(
        store.0.values().count() <= 2,
        "{} blocks left",
        store.0.len()
    );
}

#[test]
fn the_limit_drops_unpinned_files_unused_longest() {
    let mut store = Memory::default();
    let mut index = BlobIndex::default();
    let files: Vec<Cid> = (0..4u8).map(|i| put_file(&mut store, &[i; 1000])).collect();
    let one = {
        let mut scratch = BlobIndex::default();
        scratch
            .add(&mut store, files[0], false, u64::MAX, &UNCHECKED)
            .unwrap()
            .stored
    };
    let limit = 3 * one;
    index
        .add(&mut store, files[0], true, limit, &UNCHECKED)
        .unwrap();
    index
        .add(&mut store, files[1], false, limit, &UNCHECKED)
        .unwrap();
    index
        .add(&mut store, files[2], false, limit, &UNCHECKED)
        .unwrap();
    index.touch(&files[1]);
    // A fourth file: the unpinned one unused longest (files[2]) goes.
    index
        .add(&mut store, files[3], false, limit, &UNCHECKED)
        .unwrap();
    let held: Vec<Cid> = index.roots().map(|(c, _)| *c).collect();
    assert!(held.contains(&files[0]) && held.contains(&files[1]) && held.contains(&files[3]));
    assert!(!held.contains(&files[2]));
    assert!(index.used() <= limit);
    assert_eq!(store.get(&files[2]).unwrap(), None);
    // All pinned and full: refused.
    for f in [files[1], files[3]] {
        index.pin(&f, true).unwrap();
    }
    let again = put_file(&mut store, &[9; 1000]);
    assert!(matches!(
        index.add(&mut store, again, false, limit, &UNCHECKED),
        Err(StoreError::Full { .. })
    ));
}

/// No block was checked on the way in: `add` checks them all.
const UNCHECKED: fn(&Cid) -> bool = |_| false;

#[test]
fn a_file_with_a_missing_or_wrong_block_is_refused() {
    let mut store = Memory::default();
    let mut index = BlobIndex::default();
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let root = put_file(&mut store, &data);
    let (_, blocks) = import(&data, SMALL);
    let leaf = blocks
        .iter()
        .find(|b| b.cid.codec == Codec::Raw)
        .unwrap()
        .cid;
    store.0.insert(leaf, b"corrupt".to_vec());
    assert_eq!(
        index
            .add(&mut store, root, false, u64::MAX, &UNCHECKED)
            .unwrap_err(),
        StoreError::Mismatch(leaf)
    );
    store.0.remove(&leaf);
    assert_eq!(
        index
            .add(&mut store, root, false, u64::MAX, &UNCHECKED)
            .unwrap_err(),
        StoreError::Missing(leaf)
    );
    assert_eq!(index.used(), 0);
}

#[test]
fn the_index_survives_a_save_and_load() {
    let mut store = Memory::default();
    let mut index = BlobIndex::default();
    let a = put_file(&mut store, &[7; 777]);
    index
        .add(&mut store, a, true, u64::MAX, &UNCHECKED)
        .unwrap();
    let text = serde_json::to_string(&index).unwrap();
    let back: BlobIndex = serde_json::from_str(&text).unwrap();
    assert_eq!(back, index);
}
