//! Blobs between nodes in the daemon: answers other nodes' `Want`s from the store (the last few
//! blocks kept in memory, since a block is asked for in 32 KiB parts), and runs this node's
//! fetches, storing every block that verifies and recording the file when all of it is held.
//! Runs on the services' thread.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};

use super::blob_store::DaemonBlobs;
use crate::core::identity::PublicKey;
use crate::core::rate::KeyedBuckets;
use crate::core::time::Instant;
use crate::services::blobs::Cid;
use crate::services::blobs::exchange::{BLOB_PORT, Fetch, Outcome, PART, answer};

/// Blocks kept in memory for answering (1 MiB each).
const CACHED_BLOCKS: usize = 16;
/// Parts answered per second to one node (bursts of as many): 64 MiB/s.
const PARTS_PER_REQUESTER: f64 = (64 << 20) as f64 / PART as f64;
/// Nodes whose answer budget is remembered.
const MAX_REQUESTERS: usize = 1024;
/// Announced holders beyond the peers asked in one fetch, at most (peers are always asked).
pub(crate) const MAX_HOLDERS: usize = 16;

/// Fetches running at once.
pub(crate) const MAX_FETCHES: usize = 16;
/// Finished fetches remembered for `GET /v1/blobs/fetches`.
const FINISHED_KEPT: usize = 32;

struct Running {
    fetch: Fetch,
    started: Instant,
    pin: bool,
}

/// A fetch that ended.
struct Finished {
    root: Cid,
    state: &'static str,
    error: Option<String>,
    seconds: f64,
    bytes: u64,
    holders: Vec<(PublicKey, u64, bool)>,
}

/// The exchange's state on this node.
pub(crate) struct BlobExchange {
    peers: BTreeSet<PublicKey>,
    fetches: BTreeMap<Cid, Running>,
    finished: VecDeque<Finished>,
    cache: VecDeque<(Cid, Arc<Vec<u8>>)>,
    budget: KeyedBuckets<PublicKey>,
    out: VecDeque<(PublicKey, Vec<u8>)>,
}

impl BlobExchange {
    pub(crate) fn new() -> Self {
        Self {
            peers: BTreeSet::new(),
            fetches: BTreeMap::new(),
            finished: VecDeque::new(),
            cache: VecDeque::new(),
            budget: KeyedBuckets::new(PARTS_PER_REQUESTER, PARTS_PER_REQUESTER, MAX_REQUESTERS),
            out: VecDeque::new(),
        }
    }

    /// A link to `peer` came up or went down: neighbours are asked first.
    pub(crate) fn link(&mut self, peer: PublicKey, up: bool) {
        if up {
            self.peers.insert(peer);
        } else {
            self.peers.remove(&peer);
        }
    }

    /// Starts fetching `root` from `from` (else from the neighbours); false if too many run.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        root: Cid,
        from: &[PublicKey],
        announced: &[PublicKey],
        pin: bool,
        blobs: &mut DaemonBlobs,
    ) -> Result<usize, String> {
        if self.fetches.contains_key(&root) {
            return Ok(0);
        }
        if self.fetches.len() >= MAX_FETCHES {
            return Err(format!("{MAX_FETCHES} fetches are running already"));
        }
        // Nearest first: the peers (a peer that lacks the file says so at once), then the nodes
        // that announced it; among equally busy holders the earlier gets the next block, and a
        // faster holder finishes sooner and so gets more.
        let holders: Vec<PublicKey> = if from.is_empty() {
            let mut list: Vec<PublicKey> = self.peers.iter().copied().collect();
            let far = announced.iter().filter(|k| !self.peers.contains(k));
            list.extend(far.take(MAX_HOLDERS.saturating_sub(list.len())));
            list.truncate(MAX_HOLDERS.max(self.peers.len()));
            list
        } else {
            from.to_vec()
        };
        if holders.is_empty() {
            return Err(
                "no node to ask: no link is up and no node announced the file (give --from NODE)"
                    .into(),
            );
        }
        let fetch = Fetch::new(root, &holders, now);
        self.fetches.insert(
            root,
            Running {
                fetch,
                started: now,
                pin,
            },
        );
        self.drain(now, blobs);
        Ok(holders.len())
    }

    /// A message on the blob port.
    pub(crate) fn on_message(
        &mut self,
        now: Instant,
        from: PublicKey,
        payload: &[u8],
        blobs: &mut DaemonBlobs,
    ) {
        if payload.first() == Some(&1) {
            if !self.budget.take(now, from) {
                return;
            }
            let cache = &mut self.cache;
            let reply = answer(payload, &mut |cid| {
                if let Some((_, block)) = cache.iter().find(|(c, _)| c == cid) {
                    return Some(block.clone());
                }
                let block = Arc::new(blobs.block(cid).ok().flatten()?);
                if cache.len() == CACHED_BLOCKS {
                    cache.pop_front();
                }
                cache.push_back((*cid, block.clone()));
                Some(block)
            });
            if let Some(reply) = reply {
                self.out.push_back((from, reply));
            }
            return;
        }
        for running in self.fetches.values_mut() {
            running.fetch.handle_message(now, from, payload);
        }
        self.drain(now, blobs);
    }

    /// Runs the fetches' timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant, blobs: &mut DaemonBlobs) {
        for running in self.fetches.values_mut() {
            if running.fetch.poll_timeout().is_some_and(|t| t <= now) {
                running.fetch.handle_timeout(now);
            }
        }
        self.drain(now, blobs);
    }

    /// When [`Self::handle_timeout`] has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.fetches
            .values()
            .filter_map(|r| r.fetch.poll_timeout())
            .min()
    }

    /// A message to send: to `peer`'s blob port.
    pub(crate) fn poll_send(&mut self) -> Option<(PublicKey, u16, Vec<u8>)> {
        self.out
            .pop_front()
            .map(|(peer, bytes)| (peer, BLOB_PORT, bytes))
    }

    /// Moves what the fetches produced: messages out, blocks to the store, ended fetches to the
    /// finished list (a complete one recorded as a file).
    fn drain(&mut self, now: Instant, blobs: &mut DaemonBlobs) {
        let mut ended = Vec::new();
        for (root, running) in &mut self.fetches {
            while let Some(message) = running.fetch.poll_transmit() {
                self.out.push_back(message);
            }
            while let Some((cid, bytes)) = running.fetch.poll_block() {
                // `poll_block` hands out only blocks that matched their CID.
                if let Err(e) = blobs.put_verified_block(&cid, &bytes) {
                    tracing::warn!(%root, "blobs: cannot keep a fetched block: {e}");
                }
            }
            if let Some(outcome) = running.fetch.outcome() {
                ended.push((*root, outcome.clone()));
            }
        }
        for (root, outcome) in ended {
            let Some(running) = self.fetches.remove(&root) else {
                continue;
            };
            let (state, error) = match outcome {
                Outcome::Complete => match blobs.add(root, running.pin) {
                    Ok(_) => ("complete", None),
                    Err(e) => ("failed", Some(e.to_string())),
                },
                Outcome::Failed(cid) => (
                    "failed",
                    Some(format!(
                        "no holder left for block {cid} (none has it, or every one sent it corrupt)"
                    )),
                ),
            };
            if self.finished.len() == FINISHED_KEPT {
                self.finished.pop_front();
            }
            self.finished.push_back(Finished {
                root,
                state,
                error,
                seconds: now.saturating_since(running.started).as_secs_f64(),
                bytes: running.fetch.stats().bytes,
                holders: running.fetch.holders(),
            });
        }
    }

    /// Fetches running.
    pub(crate) fn running(&self) -> usize {
        self.fetches.len()
    }

    /// Running and recently ended fetches, for the API.
    pub(crate) fn status(&self, now: Instant) -> Value {
        let holders = |list: &[(PublicKey, u64, bool)]| -> Vec<Value> {
            list.iter()
                .map(|(k, bytes, convicted)| {
                    json!({ "key": k.to_hex(), "bytes": bytes, "convicted": convicted })
                })
                .collect()
        };
        let mut out: Vec<Value> = (self.fetches.iter())
            .map(|(root, r)| {
                let s = r.fetch.stats();
                json!({
                    "cid": root.to_string(), "state": "fetching",
                    "seconds": now.saturating_since(r.started).as_secs_f64(),
                    "bytes": s.bytes, "blocks": s.blocks, "retries": s.retries, "corrupt": s.corrupt,
                    "holders": holders(&r.fetch.holders()),
                })
            })
            .collect();
        out.extend(self.finished.iter().rev().map(|f| {
            json!({
                "cid": f.root.to_string(), "state": f.state, "error": f.error,
                "seconds": f.seconds, "bytes": f.bytes, "holders": holders(&f.holders),
            })
        }));
        json!({ "fetches": out })
    }
}
