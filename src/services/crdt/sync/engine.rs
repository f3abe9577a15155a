//! The sync state machine, sans-IO: fed peer events, messages and `now`; drained with
//! [`SyncEngine::poll_transmit`] and [`SyncEngine::poll_timeout`].
//!
//! Rules, per document:
//! - a **digest** entry whose hash differs from ours starts a **pull** from that peer: a `Want`
//!   with our version vector, answered with exactly the changes we lack, in batches, the last one
//!   flagged. At most one pull per document runs at a time, so two peers never send us the same
//!   changes; when it ends, a peer whose last digest still differs is pulled from next;
//! - a `Want` showing the wanter holds changes we lack starts our own pull from it, so one digest
//!   is enough for both sides to converge;
//! - changes learnt from a peer are announced (a digest) to the *other* peers, never echoed back;
//!   a local write is pushed whole to every peer, which cannot have it yet;
//! - a pull with no progress for `pull_timeout` is asked again (losses cost a retry, never
//!   correctness), and full digests go to every peer periodically and when it comes up;
//! - only direct peers (a link up) are listened to, each within the budgets of [`super::limits`]:
//!   signature checks per second, bad changes before it is ignored for a while, documents and
//!   pulls remembered.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::config::SyncConfig;
use super::limits::{MAX_KNOWN, MAX_NEW_PULLS_PER_PEER, MAX_PULLS, PeerBudget};
use super::message::{ActorHave, DocRef, SyncMessage, doc_len};
use super::{Accepted, SyncStore};
use crate::core::identity::PublicKey;
use crate::core::rng::Rng;
use crate::core::time::{Instant, earliest};
use crate::services::crdt::access::ACCESS_DOCUMENT;
use crate::services::crdt::context::Actor;
use crate::services::crdt::replica::{DocName, Have};

/// Give up a pull after this many unanswered asks (the next digest starts it again).
const MAX_TRIES: u32 = 4;
/// Runs past a gap sent per actor in a want (more are simply resent).
const MAX_RUNS: usize = 32;
/// Peers whose holdings are remembered for exports, at most (each keeps at most one entry per document
/// this node holds).
pub const MAX_REMEMBERED_PEERS: usize = 64;

/// Counters, for the API and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Messages queued for peers.
    pub messages_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Bytes of changes inside them.
    pub change_bytes_sent: u64,
    /// Changes received.
    pub changes_received: u64,
    /// Changes received that were new.
    pub changes_applied: u64,
    /// Messages that did not decode.
    pub malformed: u64,
    /// Pulls started (including retries).
    pub pulls: u64,
    /// Messages from nodes that are not direct peers, dropped.
    pub not_peer: u64,
    /// Changes messages dropped because their sender was over its signature-check budget.
    pub over_budget: u64,
    /// Changes no honest peer sends (malformed, badly signed, invalid, for another document).
    pub bad_changes: u64,
    /// Times a peer's changes started being ignored for sending too many bad ones.
    pub penalties: u64,
    /// Messages dropped from a peer being ignored.
    pub ignored: u64,
    /// Digest entries not followed (too many documents remembered or pulls running).
    pub digest_entries_skipped: u64,
    /// Changes not stored because access changes they rely on were not held yet.
    pub pending_changes: u64,
    /// Changes not stored because their namespace reached this node's quota.
    pub over_quota: u64,
}

#[derive(Debug)]
struct Peer {
    /// The hash of each document in the peer's last digest.
    known: BTreeMap<DocName, [u8; 8]>,
    /// Documents to announce, and when.
    announce: BTreeSet<DocName>,
    announce_at: Option<Instant>,
    next_digest: Instant,
    /// Smoothed time from a want to the first part of its answer.
    rtt: Option<Duration>,
    /// What it may cost.
    budget: PeerBudget,
}

#[derive(Debug)]
struct Pull {
    peer: PublicKey,
    /// The want's number, echoed by the answer's parts.
    request: u64,
    sent_at: Instant,
    /// Parts of the answer received.
    received: BTreeSet<u64>,
    deadline: Instant,
    tries: u32,
    /// Whether the document was held when the pull started (pulls of new ones are capped per peer).
    held: bool,
}

/// One node's sync state.
pub struct SyncEngine {
    pub(super) config: SyncConfig,
    peers: BTreeMap<PublicKey, Peer>,
    pulls: BTreeMap<DocName, Pull>,
    outbox: VecDeque<(PublicKey, Vec<u8>)>,
    rng: Rng,
    pub(super) stats: SyncStats,
    /// The last want's number.
    request: u64,
    /// What each peer said it holds in its last want, per document we hold (for exports "since a
    /// peer", also after it went away), for at most [`MAX_REMEMBERED_PEERS`] peers.
    peer_have: BTreeMap<PublicKey, BTreeMap<DocName, Vec<ActorHave>>>,
}

pub(super) fn doc_ref(name: &DocName) -> DocRef<'_> {
    DocRef {
        namespace: &name.0,
        document: &name.1,
    }
}

pub(super) fn prefix(actor: &Actor) -> [u8; 8] {
    let mut p = [0; 8];
    p.copy_from_slice(&actor.0[..8]);
    p
}

impl SyncEngine {
    /// A new engine; its timers' jitter derives from `seed`.
    pub fn new(config: SyncConfig, seed: [u8; 32]) -> Self {
        Self {
            config,
            peers: BTreeMap::new(),
            pulls: BTreeMap::new(),
            outbox: VecDeque::new(),
            rng: Rng::from_seed(seed),
            stats: SyncStats::default(),
            request: 0,
            peer_have: BTreeMap::new(),
        }
    }

    /// Changes which namespaces are replicated, at all and with each peer (a configuration reload):
    /// what is offered and taken from now on follows the new filters; nothing held is dropped.
    pub fn set_filters(
        &mut self,
        namespaces: super::config::NamespaceFilter,
        peers: std::collections::BTreeMap<PublicKey, super::config::NamespaceFilter>,
    ) {
        self.config.namespaces = namespaces;
        self.config.peers = peers;
    }

    /// Counters so far.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// What `peer` last said it holds, as a version vector per document over the actors we know
    /// (for a sneakernet export to a node last seen over a link).
    pub fn peer_have(&self, peer: &PublicKey, store: &dyn SyncStore) -> Option<Have> {
        let docs = self.peer_have.get(peer)?;
        let mut have = Have::new();
        for (name, entries) in docs {
            let Some(log) = store.replica().document(&name.0, &name.1) else {
                continue;
            };
            let by_prefix: BTreeMap<[u8; 8], u64> =
                entries.iter().map(|h| (h.prefix, h.through)).collect();
            let vv = log
                .actors()
                .filter_map(|a| by_prefix.get(&prefix(&a)).map(|s| (a, *s)))
                .collect();
            have.insert(name.clone(), vv);
        }
        Some(have)
    }

    /// The peers synced with.
    pub fn peers(&self) -> impl Iterator<Item = &PublicKey> {
        self.peers.keys()
    }

    /// Pulls running.
    pub fn pulls_running(&self) -> usize {
        self.pulls.len()
    }

    /// Documents whose hash in `peer`'s digests is remembered.
    pub fn known_of(&self, peer: &PublicKey) -> usize {
        self.peers.get(peer).map_or(0, |p| p.known.len())
    }

    /// A direct peer came up: it gets a full digest now.
    pub fn handle_peer_up(&mut self, now: Instant, peer: PublicKey, store: &dyn SyncStore) {
        let next_digest = now + self.config.digest_interval;
        self.peers.insert(
            peer,
            Peer {
                known: BTreeMap::new(),
                announce: BTreeSet::new(),
                announce_at: None,
                next_digest,
                rtt: None,
                budget: PeerBudget::new(now),
            },
        );
        self.send_digest(now, peer, None, store);
    }

    /// A direct peer went away: its pulls move to other peers.
    pub fn handle_peer_down(&mut self, now: Instant, peer: &PublicKey, store: &dyn SyncStore) {
        self.peers.remove(peer);
        self.move_pulls(now, peer, store);
    }

    /// `peer`'s pulls move to other peers.
    fn move_pulls(&mut self, now: Instant, peer: &PublicKey, store: &dyn SyncStore) {
        let stalled: Vec<DocName> = self
            .pulls
            .iter()
            .filter(|(_, p)| p.peer == *peer)
            .map(|(d, _)| d.clone())
            .collect();
        for doc in stalled {
            self.pulls.remove(&doc);
            self.pull_from_any(now, &doc, store);
        }
    }

    /// Whether `peer` may be sent `namespace`: the configuration replicates it with that peer and
    /// the namespace's access rule lets the peer pull it.
    fn may_send(&self, peer: &PublicKey, namespace: &str, store: &dyn SyncStore) -> bool {
        self.config.allows(peer, namespace)
            && (store.replica()).may_pull(namespace, Actor(*peer.as_bytes()))
    }

    /// A local write was stored (and inserted into the replica): it is pushed to every peer that
    /// may have it.
    pub fn handle_local_change(
        &mut self,
        now: Instant,
        doc: &DocName,
        encoded: &[u8],
        store: &dyn SyncStore,
    ) {
        let push_check = now + self.config.push_check_delay;
        let peers: Vec<PublicKey> = self
            .peers
            .keys()
            .filter(|p| self.may_send(p, &doc.0, store))
            .copied()
            .collect();
        for peer in peers {
            self.send_changes(peer, doc, (0, 0, 1), &[encoded]);
            self.schedule_announce(peer, doc, push_check);
        }
        if doc.1 == ACCESS_DOCUMENT {
            self.announce_namespace(now, &doc.0, store);
        }
    }

    /// Access to `namespace` changed: every peer hears of its documents shortly, so one that may
    /// now pull them does not wait for the next full digest (the digest leaves out the documents a
    /// peer may not pull).
    fn announce_namespace(&mut self, now: Instant, namespace: &str, store: &dyn SyncStore) {
        let at = now + self.config.announce_delay;
        let from = (namespace.to_owned(), String::new());
        let docs: Vec<DocName> = (store.replica().documents())
            .map(|(name, _)| name)
            .skip_while(|name| **name < from)
            .take_while(|name| name.0 == namespace)
            .cloned()
            .collect();
        let peers: Vec<PublicKey> = self.peers.keys().copied().collect();
        for peer in peers {
            for doc in &docs {
                self.schedule_announce(peer, doc, at);
            }
        }
    }

    /// Changes came from elsewhere (a sneakernet drop): every peer hears of `doc` shortly.
    pub fn handle_external_change(&mut self, now: Instant, doc: &DocName) {
        let at = now + self.config.announce_delay;
        let peers: Vec<PublicKey> = self.peers.keys().copied().collect();
        for peer in peers {
            self.schedule_announce(peer, doc, at);
        }
    }

    /// Keeps what `peer` holds of `doc` for exports; past [`MAX_REMEMBERED_PEERS`] peers, one that is
    /// not linked now is forgotten first.
    fn remember_have(&mut self, peer: PublicKey, doc: DocName, have: Vec<ActorHave>) {
        if !self.peer_have.contains_key(&peer) && self.peer_have.len() >= MAX_REMEMBERED_PEERS {
            let gone = (self.peer_have.keys())
                .find(|p| !self.peers.contains_key(p))
                .or_else(|| self.peer_have.keys().next())
                .copied();
            if let Some(gone) = gone {
                self.peer_have.remove(&gone);
            }
        }
        self.peer_have.entry(peer).or_default().insert(doc, have);
    }

    /// A sync message from `from`: dropped unless `from` is a direct peer (a link up).
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: PublicKey,
        bytes: &[u8],
        store: &mut dyn SyncStore,
    ) {
        match self.peers.get(&from) {
            None => {
                self.stats.not_peer += 1;
                return;
            }
            Some(peer) if peer.budget.ignored(now) => {
                self.stats.ignored += 1;
                return;
            }
            Some(_) => {}
        }
        let Ok(message) = SyncMessage::decode(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        match message {
            SyncMessage::Digest(entries) => {
                let mut new_pulls = (self.pulls.values())
                    .filter(|p| p.peer == from && !p.held)
                    .count();
                for (doc, heads) in entries {
                    if !self.config.allows(&from, doc.namespace) {
                        continue;
                    }
                    if store.replica().over_quota(doc.namespace) {
                        // Nothing more of it is stored here: pulling would fetch it in vain.
                        self.stats.digest_entries_skipped += 1;
                        continue;
                    }
                    let name: DocName = doc.to_name();
                    let held = ours(store, &name);
                    let running = self.pulls.contains_key(&name);
                    let Some(peer) = self.peers.get_mut(&from) else {
                        return;
                    };
                    let remembered = peer.known.contains_key(&name);
                    if remembered || peer.known.len() < MAX_KNOWN {
                        peer.known.insert(name.clone(), heads);
                    }
                    if held.is_none()
                        && !running
                        && (new_pulls >= MAX_NEW_PULLS_PER_PEER
                            || self.pulls.len() >= MAX_PULLS
                            || (!remembered && peer.known.len() >= MAX_KNOWN))
                    {
                        // A digest naming ever more documents we lack starts a bounded number of
                        // pulls; the others (remembered up to MAX_KNOWN) start as those end.
                        self.stats.digest_entries_skipped += 1;
                        continue;
                    }
                    if held != Some(heads) && !running {
                        if held.is_none() {
                            new_pulls += 1;
                        }
                        self.start_pull(now, &name, from, store);
                    }
                }
            }
            SyncMessage::Want { doc, request, have } => {
                // A peer that may not pull the namespace gets nothing of it, not even a refusal.
                if self.may_send(&from, doc.namespace, store) {
                    let name: DocName = doc.to_name();
                    self.answer_want(now, from, &name, request, &have, store);
                    // Only documents we hold matter to an export, so a want naming invented ones
                    // grows nothing here.
                    if self.peers.contains_key(&from) && ours(store, &name).is_some() {
                        self.remember_have(from, name, have);
                    }
                }
            }
            SyncMessage::Changes {
                doc,
                request,
                part,
                parts,
                changes,
            } => {
                if self.config.allows(&from, doc.namespace) {
                    let name = doc.to_name();
                    if !self.on_changes(now, from, &name, &changes, store) {
                        return;
                    }
                    if request != 0 {
                        self.on_part(now, from, &name, request, part, parts, store);
                    }
                }
            }
        }
    }

    /// Stores changes from `from` within its budget and announces the new ones to the other peers;
    /// false if the message was dropped (over budget, or `from` is being ignored).
    fn on_changes(
        &mut self,
        now: Instant,
        from: PublicKey,
        name: &DocName,
        changes: &[&[u8]],
        store: &mut dyn SyncStore,
    ) -> bool {
        let Some(peer) = self.peers.get_mut(&from) else {
            return false;
        };
        if !peer.budget.take_checks(now, changes.len()) {
            // Dropped before any signature is checked; a pull asks again later.
            self.stats.over_budget += 1;
            return false;
        }
        // An empty batch changes nothing: the store (a database transaction in the daemon) is not
        // asked.
        let Accepted {
            applied,
            bad,
            pending,
            over_quota,
        } = match changes.is_empty() {
            true => Accepted::default(),
            false => store.accept(name, changes),
        };
        self.stats.changes_received += changes.len() as u64;
        self.stats.changes_applied += applied as u64;
        self.stats.bad_changes += bad as u64;
        self.stats.pending_changes += pending as u64;
        self.stats.over_quota += over_quota as u64;
        if applied > 0 && name.1 == ACCESS_DOCUMENT {
            // Changes that waited for these access changes are pulled again now, and peers that
            // may now pull the namespace hear of it.
            self.pull_namespace(now, &name.0, store);
            self.announce_namespace(now, &name.0, store);
        }
        if applied > 0 {
            let at = now + self.config.announce_delay;
            let others: Vec<PublicKey> =
                self.peers.keys().filter(|p| **p != from).copied().collect();
            for peer in others {
                self.schedule_announce(peer, name, at);
            }
        }
        if let Some(peer) = self.peers.get_mut(&from)
            && peer.budget.count_bad(now, bad)
        {
            self.stats.penalties += 1;
            self.move_pulls(now, &from, store);
            return false;
        }
        true
    }

    /// Counts a part of the answer to our pull; when every part is in, the pull is done and a peer
    /// that may still hold more is pulled from next.
    #[allow(clippy::too_many_arguments)]
    fn on_part(
        &mut self,
        now: Instant,
        from: PublicKey,
        name: &DocName,
        request: u64,
        part: u64,
        parts: u64,
        store: &dyn SyncStore,
    ) {
        let Some(pull) = self.pulls.get_mut(name) else {
            return;
        };
        if pull.peer != from || pull.request != request {
            return;
        }
        if pull.received.is_empty() {
            let sample = now.saturating_since(pull.sent_at);
            if let Some(peer) = self.peers.get_mut(&from) {
                peer.rtt = Some(peer.rtt.map_or(sample, |r| (r * 7 + sample) / 8));
            }
        }
        pull.received.insert(part);
        if (pull.received.len() as u64) < parts {
            let deadline = now + self.stall_timeout(&from);
            if let Some(pull) = self.pulls.get_mut(name) {
                pull.deadline = deadline;
                pull.tries = 0;
            }
            return;
        }
        self.pulls.remove(name);
        // We now hold everything `from` held: nothing more to pull from it until it says so.
        if let Some(peer) = self.peers.get_mut(&from) {
            peer.known.remove(name);
        }
        let held = ours(store, name);
        let next = self
            .peers
            .iter()
            .find(|(p, s)| {
                **p != from
                    && !s.budget.ignored(now)
                    && s.known.get(name).is_some_and(|h| Some(*h) != held)
            })
            .map(|(p, _)| *p);
        if let Some(peer) = next {
            self.start_pull(now, name, peer, store);
        }
        self.pull_waiting(now, from, store);
    }

    /// Starts pulls of documents `peer`'s digests named that this node does not hold yet and that
    /// waited for the per-peer cap, while the cap allows.
    fn pull_waiting(&mut self, now: Instant, peer: PublicKey, store: &dyn SyncStore) {
        let running = (self.pulls.values())
            .filter(|p| p.peer == peer && !p.held)
            .count();
        let room = MAX_NEW_PULLS_PER_PEER
            .saturating_sub(running)
            .min(MAX_PULLS.saturating_sub(self.pulls.len()));
        if room == 0 {
            return;
        }
        let Some(state) = self.peers.get(&peer) else {
            return;
        };
        let waiting: Vec<DocName> = (state.known.keys())
            .filter(|d| !self.pulls.contains_key(*d) && ours(store, d).is_none())
            .filter(|d| !store.replica().over_quota(&d.0))
            .take(room)
            .cloned()
            .collect();
        for doc in waiting {
            self.start_pull(now, &doc, peer, store);
        }
    }

    /// How long a pull from `peer` may go without a new part before it is asked again.
    fn stall_timeout(&self, peer: &PublicKey) -> Duration {
        let rtt = self.peers.get(peer).and_then(|p| p.rtt);
        rtt.map_or(self.config.pull_timeout, |r| {
            (r * 4 + Duration::from_millis(20))
                .clamp(Duration::from_millis(50), self.config.pull_timeout)
        })
    }

    /// Runs timers: stalled pulls, announcements, periodic digests.
    pub fn handle_timeout(&mut self, now: Instant, store: &dyn SyncStore) {
        let stalled: Vec<DocName> = self
            .pulls
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(d, _)| d.clone())
            .collect();
        for doc in stalled {
            let Some(pull) = self.pulls.remove(&doc) else {
                continue;
            };
            if pull.tries + 1 < MAX_TRIES && self.peers.contains_key(&pull.peer) {
                self.send_want(now, &doc, pull.peer, pull.tries + 1, store);
            } else {
                self.pull_from_any(now, &doc, store);
            }
        }
        let peers: Vec<PublicKey> = self.peers.keys().copied().collect();
        for peer in peers {
            let Some(state) = self.peers.get_mut(&peer) else {
                continue;
            };
            if state.next_digest <= now {
                let half = self.config.digest_interval / 2;
                state.next_digest = now + half + self.rng.jitter(half * 2);
                state.announce.clear();
                state.announce_at = None;
                self.send_digest(now, peer, None, store);
            } else if state.announce_at.is_some_and(|at| at <= now) {
                state.announce_at = None;
                let docs = std::mem::take(&mut state.announce);
                self.send_digest(now, peer, Some(&docs), store);
            }
        }
    }

    /// When [`Self::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = None;
        for pull in self.pulls.values() {
            next = earliest(next, Some(pull.deadline));
        }
        for peer in self.peers.values() {
            next = earliest(next, Some(peer.next_digest));
            next = earliest(next, peer.announce_at);
        }
        next
    }

    /// The next message to send: to which node, and its bytes (for [`super::SYNC_PORT`]).
    pub fn poll_transmit(&mut self) -> Option<(PublicKey, Vec<u8>)> {
        self.outbox.pop_front()
    }

    fn schedule_announce(&mut self, peer: PublicKey, doc: &DocName, at: Instant) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.announce.insert(doc.clone());
            state.announce_at = Some(state.announce_at.map_or(at, |t| t.min(at)));
        }
    }

    pub(super) fn queue(&mut self, peer: PublicKey, message: &SyncMessage<'_>) {
        let mut bytes = Vec::new();
        message.encode(&mut bytes);
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.outbox.push_back((peer, bytes));
    }

    /// A digest of `only` (or every document) replicated with `peer`, in messages of at most
    /// `batch_bytes`.
    fn send_digest(
        &mut self,
        _now: Instant,
        peer: PublicKey,
        only: Option<&BTreeSet<DocName>>,
        store: &dyn SyncStore,
    ) {
        let replica = store.replica();
        let mut entries = Vec::new();
        let mut size = 4;
        let mut batches = Vec::new();
        for (name, log) in replica.documents() {
            if only.is_some_and(|o| !o.contains(name)) || !self.may_send(&peer, &name.0, store) {
                continue;
            }
            let doc = doc_ref(name);
            let len = doc_len(&doc) + 8;
            if size + len > self.config.batch_bytes && !entries.is_empty() {
                batches.push(std::mem::take(&mut entries));
                size = 4;
            }
            size += len;
            entries.push((doc, log.heads_hash()));
        }
        if !entries.is_empty() {
            batches.push(entries);
        }
        for batch in batches {
            self.queue(peer, &SyncMessage::Digest(batch));
        }
    }

    pub(super) fn start_pull(
        &mut self,
        now: Instant,
        doc: &DocName,
        peer: PublicKey,
        store: &dyn SyncStore,
    ) {
        if !self.pulls.contains_key(doc) {
            self.send_want(now, doc, peer, 0, store);
        }
    }

    /// Pulls every document of `namespace` that a peer's digest shows differs from ours.
    fn pull_namespace(&mut self, now: Instant, namespace: &str, store: &dyn SyncStore) {
        let docs: BTreeSet<DocName> = (self.peers.values())
            .flat_map(|p| p.known.keys())
            .filter(|d| d.0 == namespace && !self.pulls.contains_key(*d))
            .cloned()
            .collect();
        for doc in docs {
            self.pull_from_any(now, &doc, store);
        }
    }

    /// Pulls `doc` from a peer whose digest differs from ours, if any.
    fn pull_from_any(&mut self, now: Instant, doc: &DocName, store: &dyn SyncStore) {
        let held = ours(store, doc);
        let peer = self
            .peers
            .iter()
            .find(|(_, s)| {
                !s.budget.ignored(now) && s.known.get(doc).is_some_and(|h| Some(*h) != held)
            })
            .map(|(p, _)| *p);
        if let Some(peer) = peer {
            self.start_pull(now, doc, peer, store);
        }
    }

    fn send_want(
        &mut self,
        now: Instant,
        doc: &DocName,
        peer: PublicKey,
        tries: u32,
        store: &dyn SyncStore,
    ) {
        let log = store.replica().document(&doc.0, &doc.1);
        let held = log.is_some();
        let have: Vec<ActorHave> = log
            .map(|log| {
                let vv = log.version_vector();
                log.actors()
                    .map(|a| ActorHave {
                        prefix: prefix(&a),
                        through: vv.get(&a).copied().unwrap_or(0),
                        runs: log.held_beyond_gap(&a, MAX_RUNS),
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.stats.pulls += 1;
        self.request += 1;
        let request = self.request;
        self.queue(
            peer,
            &SyncMessage::Want {
                doc: doc_ref(doc),
                request,
                have,
            },
        );
        let deadline = now + self.stall_timeout(&peer);
        self.pulls.insert(
            doc.clone(),
            Pull {
                peer,
                request,
                sent_at: now,
                received: BTreeSet::new(),
                deadline,
                tries,
                held,
            },
        );
    }
}

/// Our hash of `doc`, if we hold it.
pub(super) fn ours(store: &dyn SyncStore, doc: &DocName) -> Option<[u8; 8]> {
    store
        .replica()
        .document(&doc.0, &doc.1)
        .map(|l| l.heads_hash())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::NodeKey;
    use crate::services::crdt::change::Change;
    use crate::services::crdt::document::{Document, Edit, Op};
    use crate::services::crdt::field::{Kind, ValueKind};
    use crate::services::crdt::replica::Replica;
    use crate::services::crdt::sync::message::{DocRef, SyncMessage};

    fn want(namespace: &str, document: &str) -> Vec<u8> {
        let message = SyncMessage::Want {
            doc: DocRef {
                namespace,
                document,
            },
            request: 1,
            have: Vec::new(),
        };
        let mut out = Vec::new();
        message.encode(&mut out);
        out
    }

    /// What a peer holds is remembered only for documents this node holds, and for a bounded number
    /// of peers: wants naming invented documents, or from ever new keys, grow nothing without end.
    #[test]
    fn remembered_holdings_are_bounded() {
        let key = NodeKey::from_seed(&[1; 32]);
        let kind = Kind::Value(ValueKind::Set);
        let actor = crate::services::crdt::context::Actor(*key.public_key().as_bytes());
        let delta = Document::new(kind)
            .edit(actor, &Op::Value(Edit::Add("a".into())), 1)
            .unwrap();
        let change = Change::sign(&key, "island", "boats", kind, 1, 1, delta);
        let mut replica = Replica::new();
        replica.insert_verified(&change, &change.encode());
        let mut engine = SyncEngine::new(SyncConfig::default(), [2; 32]);
        let now = Instant::ZERO;
        let peer = NodeKey::from_seed(&[3; 32]).public_key();
        engine.handle_peer_up(now, peer, &replica);
        for i in 0..10_000 {
            engine.handle_message(now, peer, &want("island", &format!("x{i}")), &mut replica);
        }
        engine.handle_message(now, peer, &want("island", "boats"), &mut replica);
        assert_eq!(engine.peer_have[&peer].len(), 1, "only the document held");
        for n in 0..200u32 {
            let mut seed = [9; 32];
            seed[..4].copy_from_slice(&n.to_le_bytes());
            let other = NodeKey::from_seed(&seed).public_key();
            engine.handle_peer_up(now, other, &replica);
            engine.handle_message(now, other, &want("island", "boats"), &mut replica);
            engine.handle_peer_down(now, &other, &replica);
        }
        assert!(engine.peer_have.len() <= MAX_REMEMBERED_PEERS);
        assert!(
            engine.peer_have.contains_key(&peer),
            "a linked peer is kept"
        );
    }
}
