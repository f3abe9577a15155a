//! The simulator's adversary: a member with a valid key and authenticated links that misbehaves on
//! purpose, so that every defence against members can be measured against the same node merely
//! crashing (same seed, same pairs).
//!
//! The node itself runs the real protocol (it forwards, answers and announces like any); every
//! [`TICK`] it also sends what its [`Misbehaviour`] says, over its real links or routed through the
//! mesh, with [`Node::send_raw_frame`] and [`Node::send_raw_routed`].

use std::time::Duration;

use crate::core::identity::{NodeKey, PublicKey};
use crate::core::lookup::subtrees::MAX_PEER_TAGS;
use crate::core::node::Node;
use crate::core::rng::Rng;
use crate::core::time::Instant;
use crate::core::tree::Coords;
use crate::core::wire::fragment::Fragment;
use crate::core::wire::inner::Message;
use crate::core::wire::lookup::{SUBTREE_CHUNK_TAGS, SubtreeDelta};
use crate::core::wire::neighbors::{MAX_NEIGHBORS, Neighbors};
use crate::core::wire::traffic::KIND_PATH_BROKEN;
use crate::core::wire::tree::{Announce, FLAG_DETACHED, SigReq};

/// How often the adversary acts.
pub(super) const TICK: Duration = Duration::from_millis(100);

/// What the adversary does, besides running the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Announcements "of" each of its peers (their own keys) at the top of the sequence range, with
    /// forged signatures: before, each made the peer re-sign and re-flood, and overflowed its seq.
    AnnounceAboutPeers,
    /// 80 requests for a parent signature per frame, to every peer, every tick.
    SigReqStorm,
    /// Announcements of throwaway keys, validly signed by themselves, 50 per peer per tick.
    AnnounceThrowaways,
    /// Neighbour lists naming 64 other nodes it is not linked to, so that their traffic comes to it.
    NeighbourLies,
    /// Fragment pieces that never complete, 60 KiB each, out of order, to every peer.
    FragmentFlood,
    /// Broken-path reports sent to nodes about destinations they talk to.
    PathBrokenForOthers,
    /// A subtree set past the cap (2 048 more made-up tags every tick, to every peer), so that it
    /// is taken to hold everything and every lookup comes its way, and so that its made-up tags go
    /// up to the root.
    HugeSubtree,
    /// A subtree set that flips between 4 096 made-up tags and nothing, to every peer, every tick:
    /// each flip would change what every node up to the root tells its parent.
    SubtreeFlips,
    /// Its true subtree set plus one more made-up tag every tick, to every peer: each step is a
    /// change that only adds tags; it starts again from the true set every 1 000 ticks.
    SubtreeCreep,
    /// Echo delays overstated by its longest round trip, so that its peers measure every link to it
    /// at about 0 ms and prefer it as parent and next hop.
    FakeRtt,
    /// A detached announcement of its own, validly signed, every tick, naming as the best key it
    /// heard of one below every real key: when the mesh loses its root, detached nodes wait for a
    /// key that never comes.
    LieAboutBest,
}

/// The adversary's state.
pub(super) struct Adversary {
    pub(super) misbehaviour: Misbehaviour,
    /// Its own key, for lies it signs ([`Misbehaviour::LieAboutBest`]).
    key: NodeKey,
    rng: Rng,
    version: u64,
    /// The last version of its subtree deltas (0: none sent).
    base: u64,
    /// Its subtree lies so far.
    lies: u64,
    /// The made-up tags claimed so far ([`Misbehaviour::HugeSubtree`]), or flipped
    /// ([`Misbehaviour::SubtreeFlips`]), or added ([`Misbehaviour::SubtreeCreep`]).
    made_up: Vec<u32>,
}

impl Adversary {
    pub(super) fn new(misbehaviour: Misbehaviour, seed: [u8; 32], key: NodeKey) -> Self {
        Self {
            misbehaviour,
            key,
            rng: Rng::from_seed(seed),
            version: u64::MAX / 2,
            base: 0,
            lies: 0,
            made_up: Vec::new(),
        }
    }

    /// Acts once. `others` are the other nodes of the mesh (keys and current coordinates).
    ///
    /// `round_trip` is its longest link's round trip, for the lie about it.
    pub(super) fn act(
        &mut self,
        now: Instant,
        node: &mut Node,
        others: &[(PublicKey, Coords)],
        round_trip: Duration,
    ) {
        let peers: Vec<PublicKey> = node.peers().copied().collect();
        match self.misbehaviour {
            Misbehaviour::AnnounceAboutPeers => {
                for peer in &peers {
                    let forged = Announce {
                        key: *peer,
                        parent: *peer,
                        seq: u64::MAX - self.rng.below(4) as u64,
                        nonce: self.rng.u64(),
                        port: 0,
                        flags: 0,
                        best: None,
                        psig: [7; 64],
                        sig: [7; 64],
                    };
                    send(now, node, peer, &[Message::Announce(forged)]);
                }
            }
            Misbehaviour::SigReqStorm => {
                for peer in &peers {
                    let storm: Vec<Message<'static>> = (0..80)
                        .map(|_| {
                            Message::SigReq(SigReq {
                                seq: self.rng.u64(),
                                nonce: self.rng.u64(),
                            })
                        })
                        .collect();
                    send(now, node, peer, &storm);
                }
            }
            Misbehaviour::AnnounceThrowaways => {
                for peer in &peers {
                    let fakes: Vec<Message<'static>> = (0..50)
                        .map(|_| {
                            let key =
                                crate::core::identity::NodeKey::from_seed(&self.rng.bytes32());
                            Message::Announce(crate::core::tree::root_announcement(&key, 1))
                        })
                        .collect();
                    for chunk in fakes.chunks(4) {
                        send(now, node, peer, chunk);
                    }
                }
            }
            Misbehaviour::NeighbourLies => {
                self.version += 1;
                let entries: Vec<(PublicKey, [u8; 64])> = others
                    .iter()
                    .take(MAX_NEIGHBORS)
                    .map(|(k, _)| (*k, [9u8; 64]))
                    .collect();
                for peer in &peers {
                    let list = Neighbors {
                        version: self.version,
                        attestation: [9; 64],
                        entries: entries.clone(),
                    };
                    send(now, node, peer, &[Message::Neighbors(list)]);
                }
            }
            Misbehaviour::FragmentFlood => {
                let data = vec![0u8; 1000];
                for peer in &peers {
                    for _ in 0..20 {
                        let piece = Fragment {
                            id: self.rng.u32(),
                            index: 1 + self.rng.below(254) as u8,
                            count: 255,
                            data: &data,
                        };
                        send(now, node, peer, &[Message::Fragment(piece)]);
                    }
                }
            }
            Misbehaviour::PathBrokenForOthers => {
                for _ in 0..10 {
                    if others.len() < 2 {
                        break;
                    }
                    let (src, src_path) = &others[self.rng.below(others.len())];
                    let (dest, _) = &others[self.rng.below(others.len())];
                    node.send_raw_routed(
                        now,
                        *src,
                        src_path.clone(),
                        KIND_PATH_BROKEN,
                        dest.as_bytes(),
                    );
                }
            }
            Misbehaviour::HugeSubtree => {
                if self.made_up.len() > MAX_PEER_TAGS {
                    return;
                }
                let mut more: Vec<u32> = (0..8 * SUBTREE_CHUNK_TAGS)
                    .map(|_| self.rng.u64() as u32)
                    .collect();
                more.sort_unstable();
                more.dedup();
                self.made_up.extend(&more);
                let chain = self.chain(false, &more, &[]);
                for peer in &peers {
                    send_chain(now, node, peer, &chain);
                }
            }
            Misbehaviour::SubtreeFlips => {
                if self.made_up.is_empty() {
                    self.made_up = (0..4096).map(|_| self.rng.u64() as u32).collect();
                    self.made_up.sort_unstable();
                    self.made_up.dedup();
                }
                let tags = self.made_up.clone();
                self.lies += 1;
                let chain = if self.lies % 2 == 1 {
                    self.chain(false, &tags, &[])
                } else {
                    self.chain(false, &[], &tags)
                };
                for peer in &peers {
                    send_chain(now, node, peer, &chain);
                }
            }
            Misbehaviour::SubtreeCreep => {
                if self.lies.is_multiple_of(1000) {
                    self.made_up.clear();
                }
                self.lies += 1;
                self.made_up.push(self.rng.u64() as u32);
                let mut tags = peers
                    .first()
                    .and_then(|p| node.sent_subtree(p))
                    .unwrap_or_default();
                tags.extend(&self.made_up);
                tags.sort_unstable();
                tags.dedup();
                let chain = self.chain(true, &tags, &[]);
                for peer in &peers {
                    send_chain(now, node, peer, &chain);
                }
            }
            Misbehaviour::FakeRtt => {
                let lie = u16::try_from(round_trip.as_millis()).unwrap_or(u16::MAX);
                node.overstate_echo_delay(lie);
            }
            Misbehaviour::LieAboutBest => {
                let me = self.key.public_key();
                let mut lie = Announce {
                    key: me,
                    parent: me,
                    seq: self.version,
                    nonce: self.rng.u64(),
                    port: 0,
                    flags: FLAG_DETACHED,
                    best: Some(PublicKey::from_bytes([0; 32])),
                    psig: [0; 64],
                    sig: [0; 64],
                };
                lie.sig = self.key.sign(&lie.signed());
                lie.psig = lie.sig;
                self.version += 1;
                for peer in &peers {
                    send(now, node, peer, &[Message::Announce(lie)]);
                }
            }
        }
    }
}

impl Adversary {
    /// Deltas adding `added` and removing `removed` (both ascending), after the last ones sent or,
    /// if `from_empty`, to the empty set.
    fn chain(&mut self, from_empty: bool, added: &[u32], removed: &[u32]) -> Vec<SubtreeDelta> {
        if from_empty {
            self.base = 0;
        }
        let mut out = Vec::new();
        let (mut added, mut removed) = (added, removed);
        loop {
            let a = added.len().min(SUBTREE_CHUNK_TAGS);
            let r = removed.len().min(SUBTREE_CHUNK_TAGS - a);
            self.version += 1;
            out.push(SubtreeDelta {
                version: self.version,
                base: self.base,
                last: a == added.len() && r == removed.len(),
                added: added[..a].to_vec(),
                removed: removed[..r].to_vec(),
            });
            self.base = self.version;
            (added, removed) = (&added[a..], &removed[r..]);
            if added.is_empty() && removed.is_empty() {
                return out;
            }
        }
    }
}

fn send_chain(now: Instant, node: &mut Node, peer: &PublicKey, chain: &[SubtreeDelta]) {
    for d in chain {
        send(
            now,
            node,
            peer,
            &[Message::SubtreeDelta(Box::new(d.clone()))],
        );
    }
}

fn send(now: Instant, node: &mut Node, peer: &PublicKey, messages: &[Message<'_>]) {
    let mut frame = Vec::new();
    for m in messages {
        m.encode(&mut frame);
    }
    node.send_raw_frame(now, peer, &frame);
}
