//! The node's table of links and peers: which links are up to which peer, and which one carries traffic.

use std::collections::BTreeMap;

use crate::core::identity::PublicKey;
use crate::core::link::Link;

/// Handle of a link. Allocated by the node, never reused while the node lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u32);

/// Links and the peers they reach.
#[derive(Default)]
pub(super) struct LinkTable {
    pub(super) links: BTreeMap<LinkId, Link>,
    /// For each peer, its links that are up.
    pub(super) peers: BTreeMap<PublicKey, Vec<LinkId>>,
    next_id: u32,
}

impl LinkTable {
    pub(super) fn insert(&mut self, link: Link) -> LinkId {
        let id = LinkId(self.next_id);
        self.next_id += 1;
        self.links.insert(id, link);
        id
    }

    /// Records that `id` came up to `peer`; returns true if it is the peer's first link.
    pub(super) fn link_up(&mut self, id: LinkId, peer: PublicKey) -> bool {
        let links = self.peers.entry(peer).or_default();
        if !links.contains(&id) {
            links.push(id);
        }
        links.len() == 1
    }

    /// Records that `id` went down; returns true if the peer has no link left.
    pub(super) fn link_down(&mut self, id: LinkId, peer: &PublicKey) -> bool {
        let Some(links) = self.peers.get_mut(peer) else {
            return false;
        };
        links.retain(|l| *l != id);
        if links.is_empty() {
            self.peers.remove(peer);
            true
        } else {
            false
        }
    }

    /// Returns the retransmission timeout towards `peer` (that of its best link; 1 s if it has none).
    pub(super) fn rto(&self, peer: &PublicKey) -> std::time::Duration {
        self.best_link(peer)
            .map_or(std::time::Duration::from_secs(1), |id| {
                self.links[&id].rto()
            })
    }

    /// Returns the link that should carry traffic to `peer`: lowest priority value, then lowest RTT.
    /// A link without an RTT yet has just come up and is preferred until its first measurement: the
    /// usual reason for a second link to a peer is that the peer restarted, and then the old link is
    /// dead but not yet known to be.
    pub(super) fn best_link(&self, peer: &PublicKey) -> Option<LinkId> {
        self.peers.get(peer)?.iter().copied().min_by_key(|id| {
            let link = &self.links[id];
            (
                link.params().priority,
                link.srtt().unwrap_or(std::time::Duration::ZERO),
                std::cmp::Reverse(*id),
            )
        })
    }
}
