//! The CRDT service as the daemon runs it: the redb-backed store, the sync engine fed from the
//! node's service deliveries and link events, local writes from the API, and long-poll watchers.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use tokio::sync::oneshot;

use super::crdt_store::{CrdtStore, StoreError};
use super::request::ApiResponse;
use crate::config::CrdtSettings;
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::node::Node;
use crate::core::time::Instant;
use crate::services::crdt::document::Op;
use crate::services::crdt::field::Kind;
use crate::services::crdt::replica::{DocName, Replica, WriteError};
use crate::services::crdt::sync::{SYNC_PORT, SyncConfig, SyncEngine, SyncStore};

/// Changed documents remembered for watchers that fall behind.
const CHANGE_LOG: usize = 4096;

/// Why a local write failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    /// The write does not fit the document.
    #[error("{0}")]
    Write(#[from] WriteError),
    /// The database failed: nothing was acknowledged.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The document refuses such a change (a removal from a grow-only document).
    #[error("{0}/{1} only grows: the change was refused")]
    Refused(String, String),
}

/// A long-poll waiting for changes.
struct Watcher {
    since: u64,
    deadline: Instant,
    reply: oneshot::Sender<ApiResponse>,
}

/// The running CRDT service.
pub(crate) struct CrdtHost {
    pub(crate) store: CrdtStore,
    pub(crate) engine: SyncEngine,
    key: NodeKey,
    /// Links up per peer.
    links: BTreeMap<PublicKey, usize>,
    /// Changes applied since start (local, synced, imported): the watch cursor.
    pub(crate) version: u64,
    /// Which document each recent version changed.
    changed: VecDeque<(u64, DocName)>,
    watchers: Vec<Watcher>,
}

/// The store, recording which documents synced changes touched.
struct Recording<'a> {
    store: &'a mut CrdtStore,
    touched: Vec<(DocName, usize)>,
}

impl SyncStore for Recording<'_> {
    fn replica(&self) -> &Replica {
        self.store.replica()
    }

    fn accept(&mut self, doc: &DocName, changes: &[&[u8]]) -> usize {
        let applied = self.store.accept(doc, changes);
        if applied > 0 {
            self.touched.push((doc.clone(), applied));
        }
        applied
    }
}

impl CrdtHost {
    /// Opens the database (creating its folder) for the node with `key`.
    pub(crate) fn open(
        settings: &CrdtSettings,
        path: &Path,
        key: &NodeKey,
        seed: [u8; 32],
    ) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Database {
                path: path.display().to_string(),
                reason: format!("creating its folder: {e}"),
            })?;
        }
        let store = CrdtStore::open(path)?;
        let config = SyncConfig {
            namespaces: settings.namespaces.clone(),
            peers: settings.peers.clone(),
            ..SyncConfig::default()
        };
        let key = key.duplicate();
        Ok(Self {
            store,
            engine: SyncEngine::new(config, seed),
            key,
            links: BTreeMap::new(),
            version: 0,
            changed: VecDeque::new(),
            watchers: Vec::new(),
        })
    }

    /// A link to `peer` came up.
    pub(crate) fn link_up(&mut self, now: Instant, peer: PublicKey) {
        let n = self.links.entry(peer).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.engine.handle_peer_up(now, peer, &self.store);
        }
    }

    /// A link to `peer` went down.
    pub(crate) fn link_down(&mut self, now: Instant, peer: PublicKey) {
        if let Some(n) = self.links.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.links.remove(&peer);
                self.engine.handle_peer_down(now, &peer, &self.store);
            }
        }
    }

    /// A sync message from `from`.
    pub(crate) fn on_message(&mut self, now: Instant, from: PublicKey, payload: &[u8]) {
        let mut recording = Recording {
            store: &mut self.store,
            touched: Vec::new(),
        };
        self.engine
            .handle_message(now, from, payload, &mut recording);
        for (doc, applied) in recording.touched {
            self.record(now, &doc, applied as u64);
        }
    }

    /// Runs the engine's timers and answers watchers whose time is up.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.engine.handle_timeout(now, &self.store);
        let version = self.version;
        let (due, waiting): (Vec<Watcher>, Vec<Watcher>) = std::mem::take(&mut self.watchers)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.watchers = waiting;
        for w in due {
            let _ = w.reply.send(ApiResponse {
                status: 200,
                body: serde_json::json!({ "version": version, "changed": [] }),
            });
        }
    }

    /// When [`Self::handle_timeout`] wants to run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let watchers = self.watchers.iter().map(|w| w.deadline).min();
        crate::core::time::earliest(self.engine.poll_timeout(), watchers)
    }

    /// Hands what the engine queued to the node.
    pub(crate) fn drain(&mut self, now: Instant, node: &mut Node) {
        while let Some((peer, bytes)) = self.engine.poll_transmit() {
            node.send_service(now, peer, SYNC_PORT, &bytes);
        }
    }

    /// A local write: signed, committed to disk, applied, then pushed to peers.
    pub(crate) fn write(
        &mut self,
        now: Instant,
        wall_millis: u64,
        doc: &DocName,
        kind: Kind,
        op: &Op,
    ) -> Result<(), HostError> {
        let change =
            self.store
                .replica()
                .prepare_write(&self.key, &doc.0, &doc.1, kind, op, wall_millis)?;
        let encoded = change.encode();
        let outcome = self.store.insert(&[encoded.as_slice()])?;
        if matches!(
            outcome.first(),
            Some(Ok(crate::services::crdt::log::Inserted::WrongDocument))
        ) {
            return Err(HostError::Refused(doc.0.clone(), doc.1.clone()));
        }
        self.engine.handle_local_change(now, doc, &encoded);
        self.record(now, doc, 1);
        Ok(())
    }

    /// Imports a drop file; returns the report.
    pub(crate) fn import(
        &mut self,
        now: Instant,
        file: &[u8],
    ) -> Result<super::crdt_store::ImportReport, StoreError> {
        let before: BTreeMap<DocName, [u8; 8]> = self.heads();
        let report = self.store.import_drop(file)?;
        let after = self.heads();
        for (doc, heads) in &after {
            if before.get(doc) != Some(heads) {
                self.engine.handle_external_change(now, doc);
                self.record(now, doc, 0);
            }
        }
        Ok(report)
    }

    /// A signed drop of what a replica holding `since` lacks.
    pub(crate) fn export(&self, wall_millis: u64, since: &super::crdt_store::Have) -> Vec<u8> {
        self.store.export_drop(&self.key, wall_millis, since)
    }

    fn heads(&self) -> BTreeMap<DocName, [u8; 8]> {
        self.store
            .replica()
            .documents()
            .map(|(d, l)| (d.clone(), l.heads_hash()))
            .collect()
    }

    /// Notes that `doc` changed and wakes the watchers.
    fn record(&mut self, _now: Instant, doc: &DocName, applied: u64) {
        self.version += applied.max(1);
        self.changed.push_back((self.version, doc.clone()));
        while self.changed.len() > CHANGE_LOG {
            self.changed.pop_front();
        }
        for w in std::mem::take(&mut self.watchers) {
            let body = self.changes_since(w.since);
            let _ = w.reply.send(ApiResponse { status: 200, body });
        }
    }

    /// The watch answer for a client that has seen `since`.
    pub(crate) fn changes_since(&self, since: u64) -> serde_json::Value {
        let complete = self.changed.front().is_none_or(|(v, _)| *v <= since + 1) || since == 0;
        let mut docs: Vec<&DocName> = self
            .changed
            .iter()
            .filter(|(v, _)| *v > since)
            .map(|(_, d)| d)
            .collect();
        docs.sort();
        docs.dedup();
        let changed: Vec<serde_json::Value> = docs
            .into_iter()
            .map(|(ns, doc)| serde_json::json!({ "namespace": ns, "document": doc }))
            .collect();
        serde_json::json!({
            "version": self.version,
            "changed": changed,
            "complete": complete,
        })
    }

    /// Registers a long-poll: answered at the next change after `since`, or at `deadline`.
    pub(crate) fn watch(
        &mut self,
        since: u64,
        deadline: Instant,
        reply: oneshot::Sender<ApiResponse>,
    ) {
        if self.version > since {
            let body = self.changes_since(since);
            let _ = reply.send(ApiResponse { status: 200, body });
            return;
        }
        self.watchers.push(Watcher {
            since,
            deadline,
            reply,
        });
    }
}
