//! Anti-entropy for CRDT documents over the overlay: peers compare short digests, ask for exactly
//! what they lack, and push fresh local writes to their direct peers.
//!
//! The protocol rides service messages ([`SYNC_PORT`]) inside end-to-end sessions, which may lose,
//! duplicate or reorder them: every message is idempotent (changes are identified by hash and joined
//! by a CRDT), a pull that stops making progress is asked again with the replica's current version
//! vector, and periodic digests catch anything else. See [`engine`] for the rules.

mod answer;
pub mod config;
pub mod engine;
pub mod limits;
pub mod message;

pub use self::config::{NamespaceFilter, SyncConfig};
pub use self::engine::{SyncEngine, SyncStats};

use super::change::decode_verified_all;
use super::log::Inserted;
use super::replica::{DocName, Replica};

/// The service port of CRDT sync.
pub const SYNC_PORT: u16 = 1;

/// What storing a peer's changes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Changes that were new and applied.
    pub applied: usize,
    /// Changes no honest peer sends: malformed, badly signed, invalid, or for another document than
    /// the message names, or refused by the namespace's access rule (a peer stores only what
    /// verified and was admitted, which every replica decides alike, so relaying one is misbehaviour).
    pub bad: usize,
    /// Changes whose access point names access changes not held yet (not stored; pulled again
    /// once those are in).
    pub pending: usize,
    /// Changes not stored because their namespace reached this node's quota.
    pub over_quota: usize,
}

/// Where synced changes live: the daemon's database, or a replica in memory.
pub trait SyncStore {
    /// The documents held.
    fn replica(&self) -> &Replica;
    /// Verifies and stores changes a peer sent for document `doc`. Invalid ones, and changes to any
    /// other document (which the namespace filter may exclude), are dropped and counted as bad: a
    /// peer relays changes, it does not vouch for them.
    fn accept(&mut self, doc: &DocName, changes: &[&[u8]]) -> Accepted;
}

impl SyncStore for Replica {
    fn replica(&self) -> &Replica {
        self
    }

    fn accept(&mut self, doc: &DocName, changes: &[&[u8]]) -> Accepted {
        let mut accepted = Accepted::default();
        for (result, bytes) in decode_verified_all(changes).into_iter().zip(changes) {
            match result {
                Ok(c) if c.namespace == doc.0 && c.document == doc.1 => {
                    match self.insert_verified(&c, bytes) {
                        Inserted::Applied => accepted.applied += 1,
                        Inserted::WrongDocument | Inserted::Refused(_) => accepted.bad += 1,
                        Inserted::Pending => accepted.pending += 1,
                        Inserted::OverQuota => accepted.over_quota += 1,
                        Inserted::Duplicate | Inserted::Equivocation => {}
                    }
                }
                _ => accepted.bad += 1,
            }
        }
        accepted
    }
}
