//! Keeping peers in sync: signature requests, the announcements of both chains, and acknowledgements.

use super::peer::Sent;
use super::{GC_GRACE, ORPHAN_GRACE, Tree};
use crate::core::identity::PublicKey;
use crate::core::time::Instant;
use crate::core::wire::MAX_PATH_LEN;
use crate::core::wire::inner::Message;
use crate::core::wire::tree::AnnounceAck;

impl Tree {
    /// Queues what each peer is missing: signature requests, announcements of our ancestry and of its
    /// own, and acknowledgements.
    pub(super) fn flush(&mut self, now: Instant) {
        let limit = (self.peers.len() + 1) * MAX_PATH_LEN;
        self.store.collect_garbage(
            now,
            std::iter::once(&self.me).chain(self.peers.keys()),
            GC_GRACE,
            ORPHAN_GRACE,
            limit,
        );
        self.store.release_peaks();
        // Root first, so that a receiver always holds a node's parent before the node itself. The
        // chain as stored now, not as at the last re-evaluation (`my_ancestry`, up to
        // `RESELECT_COALESCE` old): when a node above the parent moved, the peers must get its
        // new announcement with the parent's, or one holding an old one walks through that.
        let my_chain: Vec<PublicKey> = self
            .store
            .ancestry(&self.me)
            .map_or_else(|| self.my_ancestry.keys.clone(), |a| a.keys)
            .into_iter()
            .rev()
            .collect();
        let keys: Vec<PublicKey> = self.peers.keys().copied().collect();
        for peer_key in keys {
            let ancestry = self.store.ancestry(&peer_key);
            if let (Some(a), Some(peer)) = (&ancestry, self.peers.get_mut(&peer_key))
                && !a.detached
            {
                super::remember_attached(&mut peer.last_attached, a);
            }
            let peer_chain = ancestry.map(|a| a.keys).unwrap_or_default();
            let mut announce_keys: Vec<PublicKey> = my_chain.clone();
            for k in peer_chain.into_iter().rev() {
                if k != peer_key && !announce_keys.contains(&k) {
                    announce_keys.push(k);
                }
            }
            let Some(peer) = self.peers.get_mut(&peer_key) else {
                continue;
            };
            if peer.sig_res.is_none() && peer.req_sent.is_none_or(|t| t + peer.rto <= now) {
                peer.req_sent = Some(now);
                self.outbox
                    .push_back((peer_key, Message::SigReq(self.request)));
            }
            // A receiver drops an announcement that was on none of its chains for 30 s (GC_GRACE),
            // even one it acknowledged. So when a node on a chain we send has a new parent, or is new
            // to this peer, the chain above it may be one the peer dropped meanwhile: send all of it
            // again. (A refresh with the same parent calls for nothing more.)
            let store = &self.store;
            let refresh_above = announce_keys
                .iter()
                .rposition(|k| {
                    store.get(k).is_some_and(|a| {
                        peer.sent
                            .get(k)
                            .is_none_or(|s| s.seq < a.seq && s.parent != a.parent)
                    })
                })
                .unwrap_or(0);
            for (i, key) in announce_keys.iter().enumerate() {
                let key = *key;
                let Some(a) = self.store.get(&key) else {
                    continue;
                };
                let stale_at_peer = i < refresh_above
                    && peer
                        .sent
                        .get(&key)
                        .is_some_and(|s| s.acked && s.seq == a.seq);
                if stale_at_peer || peer.needs(&key, a.seq, now) {
                    peer.sent.insert(
                        key,
                        Sent {
                            seq: a.seq,
                            parent: a.parent,
                            at: now,
                            acked: false,
                        },
                    );
                    self.outbox.push_back((peer_key, Message::Announce(*a)));
                }
            }
            // Stop retransmitting what the peer no longer needs (off both chains now), and forget what
            // was sent about nodes we no longer hold.
            let store = &self.store;
            peer.sent
                .retain(|k, s| (s.acked || announce_keys.contains(k)) && store.get(k).is_some());
            for chunk in std::mem::take(&mut peer.acks).chunks(AnnounceAck::MAX_ENTRIES) {
                self.outbox.push_back((
                    peer_key,
                    Message::AnnounceAck(AnnounceAck {
                        entries: chunk.to_vec(),
                    }),
                ));
            }
            peer.sent.release_peak();
        }
    }
}
