//! The CRDT service as a node hosts it, in the simulator (documents in memory) and in the daemon
//! (documents in a database) alike: links counted per peer, sync messages in and out, and the local
//! write sequence (sign, store, apply, push). The storage is the only difference, behind
//! [`Storage`].

use std::collections::BTreeMap;

use super::access::AccessOp;
use super::change::Change;
use super::document::Op;
use super::field::Kind;
use super::log::Inserted;
use super::replica::{DocName, Replica, WriteError};
use super::sync::{Accepted, SYNC_PORT, SyncConfig, SyncEngine, SyncStore};
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::node::{Delivery, DeliveryKind, Event};
use crate::core::time::Instant;
use crate::services::service::Service;

/// Where a host keeps its documents.
pub trait Storage: SyncStore {
    /// Why storing failed.
    type Error: std::error::Error + 'static;
    /// Stores a change this node just signed; when this returns, an applied change is durable.
    fn commit(&mut self, change: &Change, encoded: &[u8]) -> Result<Inserted, Self::Error>;
    /// The documents, to prepare a change against (its access log notes the namespaces seen).
    fn replica_mut(&mut self) -> &mut Replica;
}

impl Storage for Replica {
    type Error = std::convert::Infallible;

    fn replica_mut(&mut self) -> &mut Replica {
        self
    }

    fn commit(&mut self, change: &Change, encoded: &[u8]) -> Result<Inserted, Self::Error> {
        Ok(self.insert_verified(change, encoded))
    }
}

/// Why a local write failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError<E: std::error::Error + 'static> {
    /// The write does not fit the document.
    #[error("{0}")]
    Write(#[from] WriteError),
    /// Storing failed: nothing was acknowledged.
    #[error("{0}")]
    Store(E),
    /// The document refuses such a change (a removal from a grow-only document).
    #[error("{0}/{1} only grows: the change was refused")]
    Refused(String, String),
    /// The namespace has reached this node's quota.
    #[error("{0} has reached this node's quota (crdt.max_namespace_changes / max_namespace_bytes)")]
    Quota(String),
    /// This node's key has reached its quota as a writer in the namespace.
    #[error(
        "this node has reached its quota as a writer in {0} (crdt.max_writer_changes / max_writer_bytes); \
         the namespace's owner or admins are not bound by it"
    )]
    WriterQuota(String),
    /// This node may not do that in the namespace (its access rule refused the change).
    #[error("{namespace}: refused: {why}")]
    Access {
        /// The namespace.
        namespace: String,
        /// Why.
        why: &'static str,
    },
}

/// A node's CRDT service.
pub struct CrdtHost<S> {
    key: NodeKey,
    /// The node's documents.
    pub store: S,
    /// Its sync state.
    pub engine: SyncEngine,
    /// Links up per peer (a peer may be reachable over several).
    links: BTreeMap<PublicKey, usize>,
}

/// The storage, noting which documents a sync message changed.
struct Recording<'a, S> {
    store: &'a mut S,
    touched: Vec<(DocName, usize)>,
}

impl<S: SyncStore> SyncStore for Recording<'_, S> {
    fn replica(&self) -> &Replica {
        self.store.replica()
    }

    fn accept(&mut self, doc: &DocName, changes: &[&[u8]]) -> Accepted {
        let accepted = self.store.accept(doc, changes);
        if accepted.applied > 0 {
            self.touched.push((doc.clone(), accepted.applied));
        }
        accepted
    }
}

impl<S: Storage> CrdtHost<S> {
    /// A service for the node with `key`, over `store`.
    pub fn new(key: &NodeKey, store: S, config: SyncConfig, seed: [u8; 32]) -> Self {
        Self {
            key: key.duplicate(),
            store,
            engine: SyncEngine::new(config, seed),
            links: BTreeMap::new(),
        }
    }

    /// A link to `peer` came up or went down: sync starts with the first and stops with the last.
    pub fn link(&mut self, now: Instant, peer: PublicKey, up: bool) {
        if up {
            let n = self.links.entry(peer).or_insert(0);
            *n += 1;
            if *n == 1 {
                self.engine.handle_peer_up(now, peer, &self.store);
            }
        } else if let Some(n) = self.links.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.links.remove(&peer);
                self.engine.handle_peer_down(now, &peer, &self.store);
            }
        }
    }

    /// A sync message from `from`; returns the documents it changed and how many changes each got.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: PublicKey,
        payload: &[u8],
    ) -> Vec<(DocName, usize)> {
        let mut recording = Recording {
            store: &mut self.store,
            touched: Vec::new(),
        };
        self.engine
            .handle_message(now, from, payload, &mut recording);
        recording.touched
    }

    /// A local write: signed, stored, applied, then pushed to peers.
    pub fn write(
        &mut self,
        now: Instant,
        wall_millis: u64,
        doc: &DocName,
        kind: Kind,
        op: &Op,
    ) -> Result<Change, HostError<S::Error>> {
        let change =
            self.store
                .replica()
                .prepare_write(&self.key, &doc.0, &doc.1, kind, op, wall_millis)?;
        self.commit_local(now, change)
    }

    /// A local access change (a grant or a revocation): signed, stored, applied, then pushed.
    pub fn write_access(
        &mut self,
        now: Instant,
        wall_millis: u64,
        namespace: &str,
        op: &AccessOp,
    ) -> Result<Change, HostError<S::Error>> {
        let change =
            self.store
                .replica_mut()
                .prepare_access(&self.key, namespace, op, wall_millis)?;
        self.commit_local(now, change)
    }

    fn commit_local(
        &mut self,
        now: Instant,
        change: Change,
    ) -> Result<Change, HostError<S::Error>> {
        let encoded = change.encode();
        let inserted = self
            .store
            .commit(&change, &encoded)
            .map_err(HostError::Store)?;
        match inserted {
            Inserted::WrongDocument => {
                return Err(HostError::Refused(change.namespace, change.document));
            }
            Inserted::Refused(why) => {
                return Err(HostError::Access {
                    namespace: change.namespace,
                    why,
                });
            }
            Inserted::OverQuota if self.store.replica().over_quota(&change.namespace) => {
                return Err(HostError::Quota(change.namespace));
            }
            Inserted::OverQuota => return Err(HostError::WriterQuota(change.namespace)),
            _ => {}
        }
        let doc = (change.namespace.clone(), change.document.clone());
        self.engine
            .handle_local_change(now, &doc, &encoded, &self.store);
        Ok(change)
    }

    /// The node's key (the author of its writes and drops).
    pub fn key(&self) -> &NodeKey {
        &self.key
    }
}

impl<S: Storage> Service for CrdtHost<S> {
    fn handle_event(&mut self, now: Instant, event: &Event) {
        match event {
            Event::LinkUp(_, peer) => self.link(now, *peer, true),
            Event::LinkDown(_, peer) => self.link(now, *peer, false),
            Event::RootChanged(_) | Event::LinkClosed(_) | Event::TraceHop { .. } => {}
        }
    }

    fn handle_delivery(&mut self, now: Instant, delivery: Delivery) -> Option<Delivery> {
        if delivery.kind != DeliveryKind::Service(SYNC_PORT) {
            return Some(delivery);
        }
        self.handle_message(now, delivery.source, &delivery.payload);
        None
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.engine.handle_timeout(now, &self.store);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    fn poll_send(&mut self) -> Option<(PublicKey, u16, Vec<u8>)> {
        self.engine
            .poll_transmit()
            .map(|(peer, bytes)| (peer, SYNC_PORT, bytes))
    }
}
