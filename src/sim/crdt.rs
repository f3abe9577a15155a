//! The CRDT sync service as a simulated node runs it: a replica in memory and the sync engine,
//! talking to direct peers through the node's sessions.

use std::any::Any;
use std::collections::BTreeMap;

use super::SimService;
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::node::{Delivery, DeliveryKind, Event};
use crate::core::time::Instant;
use crate::services::crdt::change::Change;
use crate::services::crdt::document::Op;
use crate::services::crdt::field::Kind;
use crate::services::crdt::replica::{Replica, WriteError};
use crate::services::crdt::sync::{SYNC_PORT, SyncConfig, SyncEngine};

/// A node's CRDT service.
pub struct CrdtService {
    key: NodeKey,
    /// The node's documents.
    pub replica: Replica,
    /// Its sync state.
    pub engine: SyncEngine,
    /// Links up per peer (a peer may be reachable over several).
    links: BTreeMap<PublicKey, usize>,
    now: Instant,
}

impl CrdtService {
    /// A service for the node with `key`.
    pub fn new(key: NodeKey, config: SyncConfig, seed: [u8; 32]) -> Self {
        Self {
            key,
            replica: Replica::new(),
            engine: SyncEngine::new(config, seed),
            links: BTreeMap::new(),
            now: Instant::ZERO,
        }
    }

    /// A local write at `now` (wall clock: the simulated time); call [`super::Sim::flush`] after.
    pub fn write(
        &mut self,
        now: Instant,
        namespace: &str,
        document: &str,
        kind: Kind,
        op: &Op,
    ) -> Result<Change, WriteError> {
        let wall = now.as_micros() / 1000;
        let change = self
            .replica
            .prepare_write(&self.key, namespace, document, kind, op, wall)?;
        let encoded = change.encode();
        self.replica.insert_verified(&change, &encoded);
        let doc = (namespace.to_owned(), document.to_owned());
        self.engine.handle_local_change(now, &doc, &encoded);
        Ok(change)
    }
}

impl SimService for CrdtService {
    fn handle_event(&mut self, now: Instant, event: &Event) {
        self.now = now;
        match event {
            Event::LinkUp(_, peer) => {
                let n = self.links.entry(*peer).or_insert(0);
                *n += 1;
                if *n == 1 {
                    self.engine.handle_peer_up(now, *peer, &self.replica);
                }
            }
            Event::LinkDown(_, peer) => {
                if let Some(n) = self.links.get_mut(peer) {
                    *n -= 1;
                    if *n == 0 {
                        self.links.remove(peer);
                        self.engine.handle_peer_down(now, peer, &self.replica);
                    }
                }
            }
            Event::RootChanged(_) | Event::LinkClosed(_) => {}
        }
    }

    fn handle_delivery(&mut self, now: Instant, delivery: Delivery) -> Option<Delivery> {
        if delivery.kind != DeliveryKind::Service(SYNC_PORT) {
            return Some(delivery);
        }
        self.engine
            .handle_message(now, delivery.source, &delivery.payload, &mut self.replica);
        None
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.engine.handle_timeout(now, &self.replica);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    fn poll_send(&mut self) -> Option<(PublicKey, u16, Vec<u8>)> {
        self.engine
            .poll_transmit()
            .map(|(peer, bytes)| (peer, SYNC_PORT, bytes))
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
