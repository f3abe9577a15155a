//! The CRDT sync service as a simulated node runs it: the same host as the daemon's
//! ([`crate::services::crdt::host::CrdtHost`]), over a replica in memory.

use crate::core::identity::NodeKey;
use crate::services::crdt::host::CrdtHost;
use crate::services::crdt::replica::Replica;
use crate::services::crdt::sync::SyncConfig;

/// A simulated node's CRDT service: its documents are in `store`.
pub type CrdtService = CrdtHost<Replica>;

/// A service for the simulated node with `key`, its documents in memory.
pub fn crdt_service(key: &NodeKey, config: SyncConfig, seed: [u8; 32]) -> CrdtService {
    CrdtHost::new(key, Replica::new(), config, seed)
}

/// [`crdt_service`] on a mesh whose admins are `root` (namespaces follow their access rules).
pub fn crdt_service_under(
    key: &NodeKey,
    config: SyncConfig,
    seed: [u8; 32],
    root: crate::services::crdt::access::TrustRoot,
) -> CrdtService {
    CrdtHost::new(key, Replica::with_trust_root(root), config, seed)
}

/// [`crdt_service`] over `replica` (empty; it carries the trust root and namespace rules).
pub fn crdt_service_on(
    key: &NodeKey,
    config: SyncConfig,
    seed: [u8; 32],
    replica: Replica,
) -> CrdtService {
    CrdtHost::new(key, replica, config, seed)
}
