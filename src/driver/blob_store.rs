//! Blobs on disk: each block a file named by its CID under `<store>/blocks/`, written (on the
//! blob writer's thread, waited for before the index names it) to a temporary file, synced and
//! renamed into place (a crash leaves the old state or the new, never
//! half a block); the index (`index.json`) saved the same way after every change. Opened when
//! first used, so a node that never stores a blob never makes the folder; blocks that no file
//! holds (an `add` cut short) are removed when it opens.

use std::path::{Path, PathBuf};

use super::blob_writer::{BlockWriter, write_atomically};
use crate::config::BlobSettings;
pub(crate) use crate::services::blobs::exchange::MAX_BLOCK;
use crate::services::blobs::{BlobIndex, Blocks, Cid, Root, StoreError};

/// Blocks as files, written by the [`BlockWriter`] thread.
pub(crate) struct DiskBlocks {
    dir: PathBuf,
    writer: BlockWriter,
}

impl DiskBlocks {
    fn path(&self, cid: &Cid) -> PathBuf {
        self.dir.join(cid.to_string())
    }
}

/// Reads a file of at most `limit` bytes.
fn read_bounded(path: &Path, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(std::io::Error::other(format!(
            "{} is larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

impl Blocks for DiskBlocks {
    type Error = std::io::Error;

    fn put(&mut self, cid: &Cid, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(cid);
        if path.exists() {
            return Ok(());
        }
        self.writer.write(path, bytes.to_vec())
    }

    fn get(&mut self, cid: &Cid) -> std::io::Result<Option<Vec<u8>>> {
        self.writer.flush()?;
        read_bounded(&self.path(cid), MAX_BLOCK)
    }

    fn delete(&mut self, cid: &Cid) -> std::io::Result<()> {
        self.writer.flush()?;
        match std::fs::remove_file(self.path(cid)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The open store.
struct Open {
    blocks: DiskBlocks,
    index: BlobIndex,
    index_path: PathBuf,
}

/// The daemon's blobs: settings until first used, then the open store.
pub(crate) struct DaemonBlobs {
    settings: BlobSettings,
    open: Option<Open>,
    /// Blocks put for a file not added yet, with their sizes: counted against the limit, so that
    /// puts without an add cannot fill the disk.
    staged: std::collections::HashMap<Cid, u64>,
    /// The files held may have changed since the announcements were last brought up to date.
    changed: bool,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl DaemonBlobs {
    pub(crate) fn new(settings: BlobSettings) -> Self {
        Self {
            settings,
            open: None,
            staged: std::collections::HashMap::new(),
            changed: true,
        }
    }

    /// True once if the files held may have changed (an add, a removal, an eviction, the start)
    /// since the last call, and the store was ever used (so an unused store is not made to answer).
    pub(crate) fn take_changed(&mut self) -> bool {
        if !self.changed {
            return false;
        }
        let used = self.open.is_some()
            || (self.settings.store.as_ref()).is_some_and(|d| d.join("index.json").exists());
        // A store never used stays unopened (and its folder unmade) until it is.
        self.changed = false;
        used
    }

    /// The folder of block files (each named by its CID), if blobs are on: a local reader with
    /// the right to read it (`blob get` as root, or in the daemon's group) reads blocks there
    /// rather than through the API, checking each against its CID all the same.
    pub(crate) fn blocks_dir(&self) -> Option<PathBuf> {
        self.settings.store.as_ref().map(|d| d.join("blocks"))
    }

    /// The limit on stored bytes.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.settings.max_bytes
    }

    /// The store, opened now if it was not.
    fn open(&mut self) -> Result<&mut Open, StoreError> {
        if self.open.is_none() {
            let Some(dir) = &self.settings.store else {
                return Err(StoreError::Io(
                    "blobs are off (blobs.store = \"none\")".into(),
                ));
            };
            let blocks_dir = dir.join("blocks");
            std::fs::create_dir_all(&blocks_dir)
                .map_err(|e| io(format!("making {}: {e}", blocks_dir.display())))?;
            let index_path = dir.join("index.json");
            let index: BlobIndex = match read_bounded(&index_path, 256 << 20).map_err(io)? {
                Some(text) => serde_json::from_slice(&text)
                    .map_err(|e| io(format!("{}: {e}", index_path.display())))?,
                None => BlobIndex::default(),
            };
            sweep(&blocks_dir, &index);
            self.open = Some(Open {
                blocks: DiskBlocks {
                    dir: blocks_dir,
                    writer: BlockWriter::spawn(),
                },
                index,
                index_path,
            });
        }
        self.open
            .as_mut()
            .ok_or_else(|| io("the blob store did not open"))
    }

    /// Keeps a block (checked against its CID first) that a file being added will name.
    pub(crate) fn put_block(&mut self, cid: &Cid, bytes: &[u8]) -> Result<(), StoreError> {
        if !cid.matches(bytes) {
            return Err(StoreError::Mismatch(*cid));
        }
        self.put_verified_block(cid, bytes)
    }

    /// [`Self::put_block`] for a block the caller has just checked against its CID (the exchange
    /// checks every block it assembles), so a fetched file is hashed once, not three times (50 MB
    /// from one holder: 0.27-0.29 s instead of 0.29-0.34 s). The file's [`Self::add`] trusts it too.
    pub(crate) fn put_verified_block(&mut self, cid: &Cid, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.len() > MAX_BLOCK {
            return Err(StoreError::Io(format!(
                "a block may take {MAX_BLOCK} bytes"
            )));
        }
        let limit = self.settings.max_bytes;
        let staged: u64 = self.staged.values().sum();
        let open = self.open()?;
        if open.index.has_block(cid) {
            return Ok(());
        }
        if staged + bytes.len() as u64 > limit {
            return Err(StoreError::Full {
                used: staged,
                limit,
            });
        }
        open.blocks.put(cid, bytes).map_err(io)?;
        self.staged.insert(*cid, bytes.len() as u64);
        Ok(())
    }

    /// Records the file `root`, whose blocks were put; pinned or not.
    pub(crate) fn add(&mut self, root: Cid, pinned: bool) -> Result<Root, StoreError> {
        let limit = self.settings.max_bytes;
        self.changed = true;
        // Blocks put since they were last added were checked against their CID on the way in.
        let checked: std::collections::HashSet<Cid> = self.staged.keys().copied().collect();
        let open = self.open()?;
        let added = open
            .index
            .add(&mut open.blocks, root, pinned, limit, &|c| {
                checked.contains(c)
            })?
            .clone();
        save(open)?;
        for cid in &added.blocks {
            self.staged.remove(cid);
        }
        Ok(added)
    }

    /// A block of a file held (marks the file used when it is its root).
    pub(crate) fn block(&mut self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let open = self.open()?;
        if !open.index.has_block(cid) {
            return Ok(None);
        }
        open.index.touch(cid);
        open.blocks.get(cid).map_err(io)
    }

    /// True if the file `root` is held whole.
    pub(crate) fn has_file(&mut self, root: &Cid) -> Result<bool, StoreError> {
        Ok(self.open()?.index.roots().any(|(c, _)| c == root))
    }

    /// The files held and the bytes their blocks take, if the store was opened (a scrape does not
    /// open it).
    pub(crate) fn usage(&self) -> Option<(usize, u64)> {
        let open = self.open.as_ref()?;
        Some((open.index.roots().count(), open.index.used()))
    }

    /// The files held, and the bytes their blocks take.
    pub(crate) fn list(&mut self) -> Result<(Vec<(Cid, Root)>, u64), StoreError> {
        let open = self.open()?;
        let roots = open.index.roots().map(|(c, r)| (*c, r.clone())).collect();
        Ok((roots, open.index.used()))
    }

    /// Pins or unpins a file.
    pub(crate) fn pin(&mut self, root: &Cid, pinned: bool) -> Result<(), StoreError> {
        let open = self.open()?;
        open.index.pin(root, pinned)?;
        save(open)
    }

    /// Forgets a file (and the blocks no other file holds).
    pub(crate) fn remove(&mut self, root: &Cid) -> Result<(), StoreError> {
        self.changed = true;
        let open = self.open()?;
        open.index.remove(&mut open.blocks, root)?;
        save(open)
    }
}

fn save(open: &Open) -> Result<(), StoreError> {
    let text = serde_json::to_vec(&open.index).map_err(io)?;
    write_atomically(&open.index_path, &text).map_err(io)
}

/// Removes the block files no file holds, and temporary files left by a crash.
fn sweep(dir: &Path, index: &BlobIndex) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let held = (name.to_str())
            .and_then(|n| n.parse::<Cid>().ok())
            .is_some_and(|cid| index.has_block(&cid));
        if !held && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "blobs: removed blocks no file holds");
    }
}
