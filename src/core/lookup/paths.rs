//! What a node knows about destinations: found keys and coordinates, packets waiting for a lookup, and
//! lookups in flight.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::core::address::PartialKey;
use crate::core::identity::PublicKey;
use crate::core::time::Instant;

/// A path unused (no traffic received from the node, no fresh reply) for this long is forgotten, and
/// the next packet looks it up again (ironwood: 1 min).
pub const PATH_TIMEOUT: Duration = Duration::from_secs(60);
/// At most one lookup per target per this interval (ironwood: 1 s).
pub const LOOKUP_THROTTLE: Duration = Duration::from_secs(1);
/// A lookup unanswered this long is sent again while packets still wait (a lookup or its reply can be
/// lost on a lossy link or during a link's rekey).
pub const LOOKUP_RETRY: Duration = Duration::from_secs(1);
/// Broken-path reports make us look a target up again at most this often: a report is not
/// authenticated, and a forger must not turn one flow into a stream of lookups. A report whose
/// lookup found the target somewhere else was true (the answer is signed by the target), and the
/// next report may make a lookup after [`LOOKUP_THROTTLE`]: a destination whose subtree re-forms
/// after a crash may move twice in a few seconds. A report's lookup that no one answered is sent
/// again after [`LOOKUP_RETRY`] while packets go (the 10 000-node churn run lost flows for 5 s at a
/// time, up to a minute, while each report's one lookup found nothing).
pub const REPORT_LOOKUP_INTERVAL: Duration = Duration::from_secs(5);
/// Packets waiting for a lookup are dropped after this long.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(5);
/// Packets kept per target while its lookup runs.
pub const PENDING_PER_TARGET: usize = 8;
/// Bytes kept for all targets together.
pub const PENDING_TOTAL_BYTES: usize = 256 * 1024;
/// Lookup targets tracked at once; beyond this the oldest is forgotten.
const MAX_TARGETS: usize = 4096;

/// A known destination.
#[derive(Debug, Clone)]
pub struct Path {
    /// Its coordinates.
    pub coords: Vec<u64>,
    /// Last time it was confirmed (a reply, or traffic from the node).
    pub refreshed: Instant,
    /// A hop reported it unreachable. It is still used (the report is not authenticated: anyone can
    /// send one) while a lookup checks it, and the lookup's answer clears it.
    pub broken: bool,
}

struct Waiting {
    partial: PartialKey,
    packet: Vec<u8>,
    since: Instant,
}

/// Per-target lookup state.
#[derive(Default)]
struct Target {
    /// The node that last answered for this target.
    key: Option<PublicKey>,
    waiting: VecDeque<Waiting>,
    last_lookup: Option<Instant>,
    nonce: Option<u64>,
    /// When a broken-path report last made us look this target up.
    last_report_lookup: Option<Instant>,
}

/// Destinations, pending packets and lookups.
#[derive(Default)]
pub struct Paths {
    paths: HashMap<PublicKey, Path>,
    targets: HashMap<[u8; 32], Target>,
    waiting_bytes: usize,
    /// The root our paths' coordinates are relative to (see [`note_root`](Self::note_root)).
    root: Option<PublicKey>,
}

/// What to do with a packet for an overlay address.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Send it to this node at these coordinates.
    Send(PublicKey, Vec<u64>),
    /// Send it so, and look the target up again with this nonce: a hop reported the path broken.
    SendAndLookup(PublicKey, Vec<u64>, u64),
    /// It was queued; send a lookup with this nonce.
    Lookup(u64),
    /// It was queued; a lookup is already running.
    Queued,
    /// No room to queue it.
    Dropped,
}

impl Paths {
    /// Decides how to send `packet` (an encoded frame carrying an IPv6 packet) for the address whose
    /// partial key is `partial` (canonical form `target`). `nonce` is used if a new lookup is started.
    pub fn route(
        &mut self,
        now: Instant,
        partial: PartialKey,
        target: [u8; 32],
        packet: &[&[u8]],
        nonce: u64,
    ) -> Route {
        let entry = self.targets.get(&target);
        if let Some(key) = entry.and_then(|t| t.key).filter(|k| partial.matches(k))
            && let Some(path) = self
                .paths
                .get(&key)
                .filter(|p| now.saturating_since(p.refreshed) < PATH_TIMEOUT)
        {
            let coords = path.coords.clone();
            // A report's lookup that found no one yet (its nonce is still out) is sent again after
            // `LOOKUP_RETRY`, as for an unknown destination: the destination moved and its new
            // place may take a few seconds to reach the sets a lookup follows. An answered one
            // ends that, so a forged report still buys one lookup per `REPORT_LOOKUP_INTERVAL`.
            if path.broken
                && let Some(t) = self.targets.get_mut(&target)
                && (t
                    .last_report_lookup
                    .is_none_or(|l| now.saturating_since(l) >= REPORT_LOOKUP_INTERVAL)
                    || t.nonce.is_some())
                && t.last_lookup
                    .is_none_or(|l| now.saturating_since(l) >= LOOKUP_RETRY.max(LOOKUP_THROTTLE))
            {
                t.last_report_lookup = Some(now);
                t.last_lookup = Some(now);
                t.nonce = Some(nonce);
                return Route::SendAndLookup(key, coords, nonce);
            }
            return Route::Send(key, coords);
        }
        if self.targets.len() >= MAX_TARGETS && !self.targets.contains_key(&target) {
            self.evict_oldest();
        }
        let t = self.targets.entry(target).or_default();
        let len: usize = packet.iter().map(|p| p.len()).sum();
        if t.waiting.len() >= PENDING_PER_TARGET || self.waiting_bytes + len > PENDING_TOTAL_BYTES {
            return Route::Dropped;
        }
        t.waiting.push_back(Waiting {
            partial,
            packet: packet.concat(),
            since: now,
        });
        self.waiting_bytes += len;
        if t.last_lookup
            .is_some_and(|l| now.saturating_since(l) < LOOKUP_THROTTLE)
        {
            return Route::Queued;
        }
        t.last_lookup = Some(now);
        t.nonce = Some(nonce);
        Route::Lookup(nonce)
    }

    /// The node and coordinates a lookup found lately for an address with partial key `partial`
    /// (canonical form `target`), without queueing anything.
    pub fn known(
        &self,
        now: Instant,
        partial: &PartialKey,
        target: &[u8; 32],
    ) -> Option<(PublicKey, Vec<u64>)> {
        let key = self
            .targets
            .get(target)?
            .key
            .filter(|k| partial.matches(k))?;
        let path =
            (self.paths.get(&key)).filter(|p| now.saturating_since(p.refreshed) < PATH_TIMEOUT)?;
        Some((key, path.coords.clone()))
    }

    /// Wants `target` found, with nothing to send yet (a trace): true if a lookup should go out
    /// with `nonce` (none went out for it within [`LOOKUP_THROTTLE`]).
    pub fn want(&mut self, now: Instant, target: [u8; 32], nonce: u64) -> bool {
        if self.targets.len() >= MAX_TARGETS && !self.targets.contains_key(&target) {
            self.evict_oldest();
        }
        let t = self.targets.entry(target).or_default();
        if t.last_lookup
            .is_some_and(|l| now.saturating_since(l) < LOOKUP_THROTTLE)
        {
            return false;
        }
        t.last_lookup = Some(now);
        t.nonce = Some(nonce);
        true
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .targets
            .iter()
            .min_by_key(|(_, t)| t.last_lookup)
            .map(|(k, _)| *k);
        if let Some(k) = oldest
            && let Some(t) = self.targets.remove(&k)
        {
            self.waiting_bytes -= t.waiting.iter().map(|w| w.packet.len()).sum::<usize>();
        }
    }

    /// Returns the target a reply with `nonce` answers, if a lookup with that nonce is outstanding.
    pub fn target_for_nonce(&self, nonce: u64) -> Option<[u8; 32]> {
        self.targets
            .iter()
            .find(|(_, t)| t.nonce == Some(nonce))
            .map(|(k, _)| *k)
    }

    /// Records a verified reply; returns the packets now sendable to `key`.
    pub fn found(
        &mut self,
        now: Instant,
        target: [u8; 32],
        key: PublicKey,
        coords: Vec<u64>,
    ) -> Vec<Vec<u8>> {
        let moved = self
            .paths
            .get(&key)
            .is_some_and(|p| p.broken && p.coords != coords);
        self.paths.insert(
            key,
            Path {
                coords,
                refreshed: now,
                broken: false,
            },
        );
        let Some(t) = self.targets.get_mut(&target) else {
            return Vec::new();
        };
        if moved {
            t.last_report_lookup = None;
        }
        t.key = Some(key);
        t.nonce = None;
        let (ready, rest): (Vec<Waiting>, Vec<Waiting>) =
            t.waiting.drain(..).partition(|w| w.partial.matches(&key));
        t.waiting = rest.into();
        self.waiting_bytes -= ready.iter().map(|w| w.packet.len()).sum::<usize>();
        ready.into_iter().map(|w| w.packet).collect()
    }

    /// Takes the coordinates `key` told us in its session (a [`crate::core::wire::payload::Moved`]
    /// notice): a path we hold to it goes there from now on and is no longer broken. Creates no
    /// path: only a node we send to needs one.
    pub fn moved(&mut self, now: Instant, key: &PublicKey, coords: Vec<u64>) -> bool {
        let Some(path) = self.paths.get_mut(key) else {
            return false;
        };
        path.coords = coords;
        path.refreshed = now;
        path.broken = false;
        true
    }

    /// Notes traffic received from `key`: its path is alive.
    pub fn refresh(&mut self, now: Instant, key: &PublicKey) {
        if let Some(p) = self.paths.get_mut(key) {
            p.refreshed = now;
        }
    }

    /// Marks the path to `key` reported broken: the next packet for it also starts a lookup (at most
    /// one per [`REPORT_LOOKUP_INTERVAL`] per target), and packets keep using the path meanwhile.
    pub fn broken(&mut self, key: &PublicKey) {
        if let Some(p) = self.paths.get_mut(key) {
            p.broken = true;
        }
    }

    /// Notes the root we have now. Coordinates are relative to a root: when ours changes (the
    /// root left, or a better one came), every path we hold is in the old one's and as good as
    /// reported broken, but we know it ourselves: each next packet looks its target up at once,
    /// without waiting out [`REPORT_LOOKUP_INTERVAL`] from an earlier report, while still sent on
    /// the old path. Waiting for reports instead, a flow could wait tens of seconds: packets on
    /// old coordinates end up at the same few nodes of the new tree, and their reports beyond
    /// each reporter's budget are dropped (the 10 000-node churn run with the root leaving).
    pub fn note_root(&mut self, root: PublicKey) {
        if self.root.is_some_and(|r| r != root) {
            for path in self.paths.values_mut() {
                path.broken = true;
            }
            for t in self.targets.values_mut() {
                t.last_report_lookup = None;
            }
        }
        self.root = Some(root);
    }

    /// Returns every known path.
    pub fn iter(&self) -> impl Iterator<Item = (&PublicKey, &Path)> {
        self.paths.iter()
    }

    /// Returns the path to `key`, if known.
    pub fn get(&self, key: &PublicKey) -> Option<&Path> {
        self.paths.get(key)
    }

    /// Drops expired paths and packets that waited too long; returns how many packets were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.paths
            .retain(|_, p| now.saturating_since(p.refreshed) < PATH_TIMEOUT);
        let mut dropped = 0;
        let mut freed = 0;
        for t in self.targets.values_mut() {
            while t
                .waiting
                .front()
                .is_some_and(|w| now.saturating_since(w.since) >= PENDING_TIMEOUT)
            {
                if let Some(w) = t.waiting.pop_front() {
                    freed += w.packet.len();
                    dropped += 1;
                }
            }
        }
        self.waiting_bytes -= freed;
        let paths = &self.paths;
        self.targets.retain(|_, t| {
            !t.waiting.is_empty()
                || t.last_lookup
                    .is_some_and(|l| now.saturating_since(l) < PATH_TIMEOUT)
                || t.key.is_some_and(|k| paths.contains_key(&k))
        });
        dropped
    }

    /// Returns the targets whose lookup should be sent again, each with a fresh nonce from `nonce`.
    pub fn retries(
        &mut self,
        now: Instant,
        mut nonce: impl FnMut() -> u64,
    ) -> Vec<([u8; 32], u64)> {
        let mut out = Vec::new();
        for (target, t) in &mut self.targets {
            let due = t
                .last_lookup
                .is_some_and(|l| now.saturating_since(l) >= LOOKUP_RETRY);
            if !t.waiting.is_empty() && due {
                let n = nonce();
                t.last_lookup = Some(now);
                t.nonce = Some(n);
                out.push((*target, n));
            }
        }
        out
    }

    /// Returns when [`expire`](Self::expire) or [`retries`](Self::retries) next has work.
    pub fn next_expiry(&self) -> Option<Instant> {
        let waiting = self
            .targets
            .values()
            .filter_map(|t| t.waiting.front())
            .map(|w| w.since + PENDING_TIMEOUT);
        let retries = self
            .targets
            .values()
            .filter(|t| !t.waiting.is_empty())
            .filter_map(|t| t.last_lookup.map(|l| l + LOOKUP_RETRY));
        let paths = self.paths.values().map(|p| p.refreshed + PATH_TIMEOUT);
        waiting.chain(retries).chain(paths).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::NodeKey;

    #[test]
    fn a_notice_of_a_move_changes_only_a_path_we_hold_and_mends_it() {
        let mut p = Paths::default();
        let now = Instant::from_micros(1_000_000);
        let key = PublicKey::from_bytes([7; 32]);
        assert!(!p.moved(now, &key, vec![1, 2]), "no path, none made");
        assert!(p.get(&key).is_none());
        let target = *PartialKey::canonical(&key).as_padded_key();
        p.found(now, target, key, vec![1]);
        p.broken(&key);
        assert!(p.moved(now, &key, vec![1, 2]));
        let path = p.get(&key).unwrap();
        assert_eq!(path.coords, vec![1, 2]);
        assert!(!path.broken);
    }

    /// Forged broken-path reports for a live destination, ten a second for a minute: packets keep
    /// flowing on the known path (none waits or is dropped), and at most one lookup per 5 s is made.
    /// Before, each report stopped the path until a lookup answered.
    #[test]
    fn forged_reports_neither_stop_a_path_nor_flood_lookups() {
        let key = NodeKey::from_seed(&[1; 32]).public_key();
        let partial = PartialKey::canonical(&key);
        let target = *partial.as_padded_key();
        let mut paths = Paths::default();
        let t0 = Instant::ZERO;
        assert_eq!(
            paths.route(t0, partial, target, &[b"p"], 1),
            Route::Lookup(1)
        );
        paths.found(t0, target, key, vec![1, 2]);
        let (mut sent, mut lookups, mut answer) = (0, 0, false);
        for i in 1..=600u64 {
            let now = Instant::from_micros(i * 100_000);
            // The destination answers each lookup from where it is, 100 ms later.
            if std::mem::take(&mut answer) {
                paths.found(now, target, key, vec![1, 2]);
            }
            paths.broken(&key);
            match paths.route(now, partial, target, &[b"p"], i) {
                Route::Send(k, _) if k == key => sent += 1,
                Route::SendAndLookup(k, _, _) if k == key => {
                    sent += 1;
                    lookups += 1;
                    answer = true;
                }
                other => panic!("packet {i}: {other:?}"),
            }
        }
        assert_eq!(sent, 600);
        assert!(lookups <= 13, "{lookups} lookups in 60 s");
    }

    /// Paths with one destination found at 0 ms at [1, 2], then reported broken.
    fn found_then_reported() -> (Paths, PublicKey, PartialKey, [u8; 32]) {
        let key = NodeKey::from_seed(&[1; 32]).public_key();
        let partial = PartialKey::canonical(&key);
        let target = *partial.as_padded_key();
        let mut paths = Paths::default();
        assert_eq!(
            paths.route(Instant::ZERO, partial, target, &[b"p"], 1),
            Route::Lookup(1)
        );
        paths.found(Instant::ZERO, target, key, vec![1, 2]);
        paths.broken(&key);
        (paths, key, partial, target)
    }

    /// A report's lookup that no one answers (the destination moved, and its new place has not
    /// reached the sets lookups follow yet) is sent again a second later while packets go, not
    /// after `REPORT_LOOKUP_INTERVAL`; once one is answered, the next report waits the interval.
    #[test]
    fn a_reports_lookup_unanswered_is_retried_every_second() {
        let (mut paths, key, partial, target) = found_then_reported();
        let at = |ms: u64| Instant::from_micros(ms * 1000);
        let route = |paths: &mut Paths, ms: u64| paths.route(at(ms), partial, target, &[b"p"], ms);
        assert!(matches!(
            route(&mut paths, 10_000),
            Route::SendAndLookup(..)
        ));
        assert!(matches!(route(&mut paths, 10_999), Route::Send(..)));
        assert!(matches!(
            route(&mut paths, 11_000),
            Route::SendAndLookup(..)
        ));
        assert!(matches!(
            route(&mut paths, 12_000),
            Route::SendAndLookup(..)
        ));
        paths.found(at(12_100), target, key, vec![1, 3]);
        paths.broken(&key);
        assert!(matches!(
            route(&mut paths, 13_200),
            Route::SendAndLookup(..)
        ));
        paths.found(at(13_300), target, key, vec![1, 3]);
        paths.broken(&key);
        assert!(matches!(route(&mut paths, 14_300), Route::Send(..)));
        assert!(matches!(route(&mut paths, 18_199), Route::Send(..)));
        assert!(matches!(
            route(&mut paths, 18_200),
            Route::SendAndLookup(..)
        ));
    }

    /// A destination that moves twice a few seconds apart (its subtree re-forming after a crash):
    /// the report after the first move's lookup found it elsewhere makes a lookup a second later,
    /// not after `REPORT_LOOKUP_INTERVAL`.
    #[test]
    fn a_report_proved_true_lets_the_next_look_up_sooner() {
        let (mut paths, key, partial, target) = found_then_reported();
        let at = |ms: u64| Instant::from_micros(ms * 1000);
        assert!(matches!(
            paths.route(at(10_000), partial, target, &[b"p"], 2),
            Route::SendAndLookup(..)
        ));
        paths.found(at(10_050), target, key, vec![1, 3]);
        paths.broken(&key);
        assert!(
            matches!(
                paths.route(at(10_500), partial, target, &[b"p"], 3),
                Route::Send(..)
            ),
            "within a second of the last lookup"
        );
        assert!(matches!(
            paths.route(at(11_000), partial, target, &[b"p"], 4),
            Route::SendAndLookup(..)
        ));
        // That one finds it where it was: the next report waits the whole interval.
        paths.found(at(11_050), target, key, vec![1, 3]);
        paths.broken(&key);
        assert!(matches!(
            paths.route(at(13_000), partial, target, &[b"p"], 5),
            Route::Send(..)
        ));
        assert!(matches!(
            paths.route(at(16_000), partial, target, &[b"p"], 6),
            Route::SendAndLookup(..)
        ));
    }

    /// When our root changes, every path is looked up again with its next packet, even one whose
    /// report made a lookup a moment ago (no `REPORT_LOOKUP_INTERVAL` wait); going back to a
    /// root after being detached, or hearing the same root again, changes nothing.
    #[test]
    fn a_new_root_has_every_path_looked_up_with_its_next_packet() {
        let (mut paths, key, partial, target) = found_then_reported();
        let root = |n: u8| NodeKey::from_seed(&[n; 32]).public_key();
        let at = |ms: u64| Instant::from_micros(ms * 1000);
        let route = |paths: &mut Paths, ms: u64| paths.route(at(ms), partial, target, &[b"p"], ms);
        paths.note_root(root(7));
        assert!(matches!(
            route(&mut paths, 10_000),
            Route::SendAndLookup(..)
        ));
        paths.found(at(10_050), target, key, vec![1, 3]);
        paths.note_root(root(7));
        assert!(
            matches!(route(&mut paths, 12_000), Route::Send(..)),
            "same root"
        );
        paths.note_root(root(8));
        assert!(
            matches!(route(&mut paths, 12_000), Route::SendAndLookup(..)),
            "a new root: looked up at once, within the reports' interval"
        );
        paths.found(at(12_050), target, key, vec![2]);
        assert!(matches!(route(&mut paths, 13_100), Route::Send(..)));
    }
}
