//! The simulator's adversary: a member with a valid key and authenticated links that misbehaves on
//! purpose, so that every defence against members can be measured against the same node merely
//! crashing (same seed, same pairs).
//!
//! The node itself runs the real protocol (it forwards, answers and announces like any); every
//! [`TICK`] it also sends what its [`Misbehaviour`] says, over its real links or routed through the
//! mesh, with [`Node::send_raw_frame`] and [`Node::send_raw_routed`].

use std::time::Duration;

use crate::core::identity::PublicKey;
use crate::core::node::Node;
use crate::core::rng::Rng;
use crate::core::time::Instant;
use crate::core::tree::Coords;
use crate::core::wire::fragment::Fragment;
use crate::core::wire::inner::Message;
use crate::core::wire::lookup::{BLOOM_WORDS, Bloom};
use crate::core::wire::neighbors::{MAX_NEIGHBORS, Neighbors};
use crate::core::wire::traffic::KIND_PATH_BROKEN;
use crate::core::wire::tree::{Announce, SigReq};

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
    /// A bloom filter with every bit set to every peer, so that every lookup comes its way.
    AllOnesFilter,
    /// A bloom filter that flips between all ones and nothing, to every peer, every tick: each flip
    /// changes what every node tells its tree peers.
    FilterChurn,
    /// Its true bloom filter plus one more bit every tick, to every peer: each step is a change that
    /// only adds bits; it starts again from the true filter every 1 000 ticks.
    FilterGrowth,
    /// Echo delays overstated by its longest round trip, so that its peers measure every link to it
    /// at about 0 ms and prefer it as parent and next hop.
    FakeRtt,
}

/// The adversary's state.
pub(super) struct Adversary {
    pub(super) misbehaviour: Misbehaviour,
    rng: Rng,
    version: u64,
    /// The filter of [`Misbehaviour::FilterGrowth`].
    grown: [u64; BLOOM_WORDS],
}

impl Adversary {
    pub(super) fn new(misbehaviour: Misbehaviour, seed: [u8; 32]) -> Self {
        Self {
            misbehaviour,
            rng: Rng::from_seed(seed),
            version: u64::MAX / 2,
            grown: [0; BLOOM_WORDS],
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
            Misbehaviour::AllOnesFilter | Misbehaviour::FilterChurn => {
                self.version += 1;
                let full = self.misbehaviour == Misbehaviour::AllOnesFilter
                    || self.version.is_multiple_of(2);
                let bloom = Bloom {
                    version: self.version,
                    words: [if full { u64::MAX } else { 0 }; BLOOM_WORDS],
                };
                for peer in &peers {
                    send(now, node, peer, &[Message::Bloom(Box::new(bloom.clone()))]);
                }
            }
            Misbehaviour::FilterGrowth => {
                self.version += 1;
                let step = (self.version % 1000) as usize;
                if step == 0 {
                    self.grown = [0; BLOOM_WORDS];
                }
                let bit = self.rng.below(BLOOM_WORDS * 64);
                self.grown[bit / 64] |= 1 << (bit % 64);
                for peer in &peers {
                    let mut words = node.sent_filter(peer).unwrap_or([0; BLOOM_WORDS]);
                    for (w, g) in words.iter_mut().zip(self.grown) {
                        *w |= g;
                    }
                    let bloom = Bloom {
                        version: self.version,
                        words,
                    };
                    send(now, node, peer, &[Message::Bloom(Box::new(bloom))]);
                }
            }
            Misbehaviour::FakeRtt => {
                let lie = u16::try_from(round_trip.as_millis()).unwrap_or(u16::MAX);
                node.overstate_echo_delay(lie);
            }
        }
    }
}

fn send(now: Instant, node: &mut Node, peer: &PublicKey, messages: &[Message<'_>]) {
    let mut frame = Vec::new();
    for m in messages {
        m.encode(&mut frame);
    }
    node.send_raw_frame(now, peer, &frame);
}
