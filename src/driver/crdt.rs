//! The CRDT service as the daemon runs it: the host the simulator runs too
//! ([`crate::services::crdt::host::CrdtHost`]) over the redb-backed store, plus what the local API
//! adds: a version cursor, long-poll watchers, drop files.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use tokio::sync::oneshot;

use super::crdt_store::{CrdtStore, StoreError};
use super::request::ApiResponse;
use crate::config::CrdtSettings;
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::time::Instant;
use crate::services::crdt::access::{ACCESS_DOCUMENT, AccessOp};
use crate::services::crdt::document::Op;
use crate::services::crdt::field::Kind;
use crate::services::crdt::host::CrdtHost;
use crate::services::crdt::replica::DocName;
use crate::services::crdt::replica::Replica;
use crate::services::crdt::sync::SyncConfig;
use crate::services::service::Service;

/// Changed documents remembered for watchers that fall behind.
const CHANGE_LOG: usize = 4096;

/// Why a local write failed.
pub(crate) type HostError = crate::services::crdt::host::HostError<StoreError>;

/// A long-poll waiting for changes.
struct Watcher {
    since: u64,
    deadline: Instant,
    reply: oneshot::Sender<ApiResponse>,
}

/// The running CRDT service: the shared host over the database, and what the local API adds
/// (a version cursor and long-poll watchers, drop files).
pub(crate) struct DaemonCrdt {
    pub(crate) host: CrdtHost<CrdtStore>,
    /// Changes applied since start (local, synced, imported): the watch cursor.
    pub(crate) version: u64,
    /// Which document each recent version changed.
    changed: VecDeque<(u64, DocName)>,
    watchers: Vec<Watcher>,
    /// A document of the names namespace changed since the name table was last built.
    pub(crate) names_changed: bool,
}

impl DaemonCrdt {
    /// Opens the database (creating its folder) for the node with `key`.
    pub(crate) fn open(
        settings: &CrdtSettings,
        path: &Path,
        key: &NodeKey,
        seed: [u8; 32],
        replica: Replica,
    ) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Database {
                path: path.display().to_string(),
                reason: format!("creating its folder: {e}"),
            })?;
        }
        let store = CrdtStore::open_sealed(path, replica, key)?;
        if store.verified_at_open() > 0 {
            tracing::info!(
                changes = store.verified_at_open(),
                "CRDT store: verified changes stored without this node's tag"
            );
        }
        let config = SyncConfig {
            namespaces: settings.namespaces.clone(),
            peers: settings.peers.clone(),
            ..SyncConfig::default()
        };
        Ok(Self {
            host: CrdtHost::new(key, store, config, seed),
            version: 0,
            changed: VecDeque::new(),
            watchers: Vec::new(),
            // Built once at start from what the store holds.
            names_changed: true,
        })
    }

    /// A link to `peer` came up or went down.
    pub(crate) fn link(&mut self, now: Instant, peer: PublicKey, up: bool) {
        self.host.link(now, peer, up);
    }

    /// A sync message from `from`.
    pub(crate) fn on_message(&mut self, now: Instant, from: PublicKey, payload: &[u8]) {
        for (doc, applied) in self.host.handle_message(now, from, payload) {
            self.record(now, &doc, applied as u64);
        }
    }

    /// Runs the engine's timers and answers watchers whose time is up.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.host.handle_timeout(now);
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
        crate::core::time::earliest(self.host.poll_timeout(), watchers)
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
        self.host.write(now, wall_millis, doc, kind, op)?;
        self.record(now, doc, 1);
        Ok(())
    }

    /// A local access change (grant or revocation) in `namespace`.
    pub(crate) fn write_access(
        &mut self,
        now: Instant,
        wall_millis: u64,
        namespace: &str,
        op: &AccessOp,
    ) -> Result<(), HostError> {
        self.host.write_access(now, wall_millis, namespace, op)?;
        let doc = (namespace.to_owned(), ACCESS_DOCUMENT.to_owned());
        self.record(now, &doc, 1);
        Ok(())
    }

    /// Imports a drop file; returns the report.
    pub(crate) fn import(
        &mut self,
        now: Instant,
        file: &[u8],
    ) -> Result<super::crdt_store::ImportReport, StoreError> {
        let before: BTreeMap<DocName, [u8; 8]> = self.heads();
        let report = self.host.store.import_drop(file)?;
        let after = self.heads();
        for (doc, heads) in &after {
            if before.get(doc) != Some(heads) {
                self.host.engine.handle_external_change(now, doc);
                self.record(now, doc, 0);
            }
        }
        Ok(report)
    }

    /// A signed drop of what a replica holding `since` lacks.
    pub(crate) fn export(&self, wall_millis: u64, since: &super::crdt_store::Have) -> Vec<u8> {
        self.host
            .store
            .export_drop(self.host.key(), wall_millis, since)
    }

    fn heads(&self) -> BTreeMap<DocName, [u8; 8]> {
        self.host
            .store
            .replica()
            .documents()
            .map(|(d, l)| (d.clone(), l.heads_hash()))
            .collect()
    }

    /// Notes that `doc` changed and wakes the watchers.
    fn record(&mut self, _now: Instant, doc: &DocName, applied: u64) {
        self.version += applied.max(1);
        if doc.0 == crate::services::names::NAMESPACE {
            self.names_changed = true;
        }
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
