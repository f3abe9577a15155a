//! Greedy forwarding by tree distance.

use crate::core::identity::PublicKey;
use crate::core::tree::{Tree, distance};

/// Where a routed packet goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NextHop {
    /// It is for us.
    Deliver,
    /// Send it to this peer; the packet's new watermark is `watermark`.
    Peer { peer: PublicKey, watermark: u64 },
    /// No peer is closer than we are, or the packet would loop.
    Stuck,
}

/// Picks the next hop for a packet towards `dest_key` at `dest_path` that arrived with `watermark`.
///
/// A peer qualifies only if it is strictly closer to the destination than we are, which with the
/// watermark makes forwarding loop-free even while coordinates change. Among those, the lowest
/// `link cost × distance` wins (ironwood's rule), so off-tree links serve as shortcuts. A peer that *is*
/// the destination is always taken, and so is a peer that lists the destination among its own peers
/// (`via_neighbor`).
pub(super) fn next_hop(
    tree: &Tree,
    me: &PublicKey,
    peers: impl Iterator<Item = (PublicKey, u64)>,
    dest_key: &PublicKey,
    dest_path: &[u64],
    watermark: u64,
    via_neighbor: Option<PublicKey>,
) -> NextHop {
    if dest_key == me {
        return NextHop::Deliver;
    }
    let my_dist = distance(tree.coords(), dest_path);
    let peers: Vec<(PublicKey, u64)> = peers.collect();
    // A destination one hop away is sent to directly: the next hop delivers, nothing can loop. One two
    // hops away goes through the peer that lists it, with watermark 1: that peer must then have the
    // destination as its own peer, or the packet stops there. A stale list therefore costs a drop and a
    // broken-path report, never a loop.
    if peers.iter().any(|(p, _)| p == dest_key) {
        return NextHop::Peer {
            peer: *dest_key,
            watermark: 0,
        };
    }
    if let Some(peer) = via_neighbor.filter(|_| watermark > 1) {
        return NextHop::Peer { peer, watermark: 1 };
    }
    if my_dist >= watermark {
        return NextHop::Stuck;
    }
    let mut best: Option<(u64, u64, u64, PublicKey)> = None;
    for (peer, cost) in peers {
        let Some(coords) = tree.peer_coords(&peer) else {
            continue;
        };
        let dist = distance(&coords, dest_path);
        if dist >= my_dist {
            continue;
        }
        let rank = (cost.saturating_mul(dist), dist, cost, peer);
        if best.is_none_or(|b| rank < b) {
            best = Some(rank);
        }
    }
    match best {
        Some((_, _, _, peer)) => NextHop::Peer {
            peer,
            watermark: my_dist,
        },
        None => NextHop::Stuck,
    }
}
