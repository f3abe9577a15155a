//! Parent selection: a pure function from what a node knows to what it should do.

use std::time::Duration;

use crate::core::identity::PublicKey;
use crate::core::time::Instant;

/// Where a node stands in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// It is a root.
    Root,
    /// It has this parent.
    Attached(PublicKey),
    /// It lost its root at this time and waits to re-attach.
    Detached(Instant),
}

/// A root the node lost, and the depth it had under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lost {
    pub(super) root: PublicKey,
    pub(super) since: Instant,
    pub(super) depth: usize,
}

/// A peer the node could attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) peer: PublicKey,
    pub(super) root: PublicKey,
    /// Our depth if we attach to it.
    pub(super) depth: usize,
    /// Our cost to the root through it: depth × link cost.
    pub(super) cost: u64,
    /// When the peer came up (older wins ties, which damps flapping).
    pub(super) since: Instant,
    /// Whether we hold its parent signature for our next announcement (needed to attach).
    pub(super) signed: bool,
    /// Whether its path runs through a peer whose link just went down (`GHOST_HOLD`): taken only
    /// when nothing else is on offer.
    pub(super) ghost: bool,
}

/// Everything [`decide`] looks at.
pub(super) struct Situation {
    pub(super) me: PublicKey,
    pub(super) now: Instant,
    pub(super) standing: Standing,
    /// Our root before this decision (`None` while detached).
    pub(super) old_root: Option<PublicKey>,
    /// Our depth before this decision.
    pub(super) my_depth: usize,
    pub(super) candidates: Vec<Candidate>,
    /// A root lost less than `hold_same` ago.
    pub(super) lost: Option<Lost>,
    /// While detached: the root we detached from.
    pub(super) detached_from: Option<PublicKey>,
    /// The root we had before the one we lost, if it was superseded by a better one (taken back at
    /// once when that one leaves).
    pub(super) fallback_root: Option<PublicKey>,
    /// While detached: the lowest key heard of among detached nodes, ours included.
    pub(super) best_heard: Option<PublicKey>,
    /// How much longer a detached node waits for that key before it takes a worse root or roots
    /// itself.
    pub(super) best_grace: Duration,
    pub(super) hold_same: Duration,
    pub(super) hold_self: Duration,
    /// How far key rank spreads the moments detached nodes root themselves (see [`ranked_wait`]),
    /// and how long after a worse root's own moment we wait for better ones before taking it.
    pub(super) rank_spread: Duration,
    pub(super) rank_margin: Duration,
    /// Our coordinates have not changed for a while.
    pub(super) settled: bool,
    /// When our root last changed (while a root: since when we are one).
    pub(super) root_since: Instant,
    /// How long a root waits before it follows a peer that came up after it and is its own root.
    pub(super) fresh_root_hold: Duration,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Nothing changes.
    Stay,
    /// Take this peer as parent.
    Attach(PublicKey),
    /// Become a root.
    BecomeRoot,
    /// Announce that we have no root and wait.
    Detach,
}

/// An action, the lost root to remember if this decision lost one, and when to decide again even
/// if nothing changes (a detached node waiting for a root's moment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Decision {
    pub(super) action: Action,
    pub(super) lost: Option<Lost>,
    pub(super) revisit: Option<Instant>,
}

/// How long after [`Situation::hold_self`] the node with `key` roots itself when detached: its key's
/// first 32 bits as a fraction of `spread`. When the root crashes, every node of the mesh detaches at
/// about the same moment; if all rooted themselves at once, each would take the best root it heard,
/// then a better one, then a better one as the election spread (up to 5 changes a node, measured at
/// 10 000 nodes). Ranked, the lowest keys root themselves first, the best one usually well before
/// the others, and a node takes a worse root than the lost one only `rank_margin` after that root's
/// own moment, when any better one that rooted itself earlier has had time to reach it.
pub(super) fn ranked_wait(key: &PublicKey, spread: Duration) -> Duration {
    let bytes = key.as_bytes();
    let rank = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    spread.mul_f64(f64::from(rank) / (f64::from(u32::MAX) + 1.0))
}

/// Sort key: lower root first, then lower cost, then older peer, then lower key.
fn rank(c: &Candidate) -> (PublicKey, u64, Instant, PublicKey) {
    (c.root, c.cost, c.since, c.peer)
}

/// Returns true unless `c` reaches a recently lost root through a deeper path than we had, which is
/// likely a stale path through our own former subtree.
fn feasible(c: &Candidate, lost: Option<&Lost>, now: Instant, hold_same: Duration) -> bool {
    match lost {
        Some(l) if c.root == l.root && now < l.since + hold_same => c.depth <= l.depth,
        _ => true,
    }
}

/// Returns true if `b` is worth leaving the current parent `cur` for: a better root, half the cost, or —
/// once our place has been stable for a while (`settled`) — a shallower place at no higher cost.
/// Anything less keeps the parent, so RTT jitter cannot make the tree flap. The shallower-place rule
/// turns the first tree found at start-up into a shortest-path tree; it waits for calm because right
/// after a failure the shallow-looking branches include ghosts through the failed node, which its other
/// neighbours have not noticed yet.
fn better_enough(b: &Candidate, cur: &Candidate, settled: bool) -> bool {
    b.root < cur.root
        || (settled && b.depth < cur.depth && b.cost <= cur.cost)
        || b.cost.saturating_mul(2) < cur.cost
}

/// Decides the node's next move.
pub(super) fn decide(s: &Situation) -> Decision {
    let parent = match s.standing {
        Standing::Attached(p) => s.candidates.iter().find(|c| c.peer == p),
        _ => None,
    };
    // Losing the root: the parent is gone (or loops, or detached), or its root got worse.
    let losing = matches!(s.standing, Standing::Attached(_))
        && parent.is_none_or(|c| s.old_root.is_some_and(|old| c.root > old));
    let new_lost = s.old_root.filter(|_| losing).map(|root| Lost {
        root,
        since: s.now,
        depth: s.my_depth,
    });
    let lost = new_lost.or(s.lost);
    let feasible: Vec<&Candidate> = s
        .candidates
        .iter()
        .filter(|c| feasible(c, lost.as_ref(), s.now, s.hold_same))
        .collect();
    let real = feasible.iter().any(|c| !c.ghost);
    let best = feasible
        .into_iter()
        .filter(|c| !(real && c.ghost))
        .min_by_key(|c| rank(c));
    let attach = |c: &Candidate| {
        if c.signed {
            Action::Attach(c.peer)
        } else {
            Action::Stay
        }
    };
    let self_root_at = |since: Instant| match s.best_heard {
        Some(best) if best >= s.me => since + s.hold_self,
        Some(_) => since + s.hold_self + ranked_wait(&s.me, s.rank_spread) + s.best_grace,
        None => since + s.hold_self + ranked_wait(&s.me, s.rank_spread),
    };
    let mut revisit = None;
    let action = match (s.standing, best) {
        // A peer that just came up and is its own root has most likely just started: a node roots
        // itself at start and takes its mesh's root as soon as its links bring it. A root that was
        // one before the peer came (cut off, say, while that very peer was down) waits a moment for
        // the peer's real root rather than following its start-up root for a few milliseconds.
        (Standing::Root, Some(b))
            if b.root < s.me
                && b.root == b.peer
                && s.root_since + s.fresh_root_hold <= b.since
                && s.now < b.since + s.fresh_root_hold =>
        {
            revisit = Some(b.since + s.fresh_root_hold);
            Action::Stay
        }
        (Standing::Root, Some(b)) if b.root < s.me => attach(b),
        (Standing::Root, _) => Action::Stay,
        (Standing::Attached(_), None) if losing => Action::Detach,
        (Standing::Attached(_), Some(b)) if losing => attach(b),
        (Standing::Attached(_), Some(b)) => match parent {
            Some(cur) if b.peer != cur.peer && better_enough(b, cur, s.settled) => attach(b),
            _ => Action::Stay,
        },
        (Standing::Attached(_), None) => Action::Stay,
        // A better root than the one lost is taken at once, and so is the one before it (a better
        // root that joined has left); a worse one only once we would root ourselves: a node that
        // just restarted is a root of its own for a moment, and a detached subtree that followed it
        // would change root twice for nothing.
        // A detached node that heard of a better key among the detached nodes than the root
        // offered (`best_heard`) waits for that key: it takes the offered root, or roots itself,
        // only `best_grace` after the moment it would have otherwise. The best key heard of is
        // taken once the hold is over, and roots itself then, with no wait by rank.
        (Standing::Detached(since), Some(b)) => {
            let better = s.detached_from.is_some_and(|r| b.root < r);
            let known_better = s.best_heard.is_some_and(|h| h < b.root);
            let worse =
                s.detached_from.is_some_and(|r| b.root > r) && Some(b.root) != s.fallback_root;
            let take_at = if known_better {
                since
                    + s.hold_self
                    + ranked_wait(&b.root, s.rank_spread)
                    + s.rank_margin
                    + s.best_grace
            } else if s.best_heard.is_some() {
                since + s.hold_self
            } else {
                since + s.hold_self + ranked_wait(&b.root, s.rank_spread) + s.rank_margin
            };
            if better || (!worse && !known_better) {
                attach(b)
            } else if b.root < s.me {
                if s.now >= take_at {
                    attach(b)
                } else {
                    revisit = Some(take_at);
                    Action::Stay
                }
            } else if s.now >= self_root_at(since) {
                Action::BecomeRoot
            } else {
                revisit = Some(self_root_at(since));
                Action::Stay
            }
        }
        (Standing::Detached(since), None) if s.now >= self_root_at(since) => Action::BecomeRoot,
        (Standing::Detached(since), None) => {
            revisit = Some(self_root_at(since));
            Action::Stay
        }
    };
    Decision {
        action,
        lost: new_lost,
        revisit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_bytes([n; 32])
    }

    fn cand(peer: u8, root: u8, depth: usize, cost: u64) -> Candidate {
        Candidate {
            peer: key(peer),
            root: key(root),
            depth,
            cost,
            since: Instant::ZERO,
            signed: true,
            ghost: false,
        }
    }

    fn situation(
        standing: Standing,
        old_root: Option<u8>,
        my_depth: usize,
        candidates: Vec<Candidate>,
    ) -> Situation {
        Situation {
            me: key(50),
            now: Instant::from_micros(10_000_000),
            standing,
            old_root: old_root.map(key),
            my_depth,
            candidates,
            lost: None,
            detached_from: None,
            fallback_root: None,
            best_heard: None,
            best_grace: GRACE,
            hold_same: Duration::from_secs(1),
            hold_self: HOLD,
            rank_spread: Duration::ZERO,
            rank_margin: Duration::ZERO,
            settled: true,
            root_since: Instant::ZERO,
            fresh_root_hold: Duration::from_secs(1),
        }
    }

    const SPREAD: Duration = Duration::from_secs(10);
    const MARGIN: Duration = Duration::from_millis(300);
    const GRACE: Duration = Duration::from_secs(1);
    const HOLD: Duration = Duration::from_secs(4);
    const SINCE: Instant = Instant::from_micros(1_000_000);

    /// Decides at `now` for a node that lost the root of key 1, with moments by rank (`SPREAD`,
    /// `MARGIN`) and the best key's `GRACE` (the hold is `situation`'s, `HOLD`).
    fn decide_detached(s: &mut Situation, now: Instant) -> Decision {
        s.rank_spread = SPREAD;
        s.rank_margin = MARGIN;
        s.best_grace = GRACE;
        s.detached_from = Some(key(1));
        s.now = now;
        decide(s)
    }

    /// When the root crashes, every detached node roots itself at its key's moment, the lowest keys
    /// first, and takes a worse root than the lost one only a margin after that root's moment.
    #[test]
    fn detached_nodes_root_themselves_by_key_rank_and_wait_for_better_roots() {
        let (spread, margin, since, hold) = (SPREAD, MARGIN, SINCE, HOLD);
        let ranked = decide_detached;
        // No candidate: our own moment (key 50: 50/256 of the spread, 1.95 s after the hold).
        let own = since + hold + ranked_wait(&key(50), spread);
        let mut s = situation(Standing::Detached(since), None, 0, vec![]);
        let d = ranked(&mut s, own - Duration::from_millis(1));
        assert_eq!((d.action, d.revisit), (Action::Stay, Some(own)));
        assert_eq!(ranked(&mut s, own).action, Action::BecomeRoot);
        // A worse root than the lost one but better than us (key 20): taken a margin after its moment,
        // and never by rooting ourselves first.
        let take = since + hold + ranked_wait(&key(20), spread) + margin;
        let mut s = situation(Standing::Detached(since), None, 0, vec![cand(2, 20, 1, 1)]);
        let d = ranked(&mut s, take - Duration::from_millis(1));
        assert_eq!((d.action, d.revisit), (Action::Stay, Some(take)));
        assert_eq!(ranked(&mut s, take).action, Action::Attach(key(2)));
        // A root worse than us: we root ourselves at our moment instead.
        let mut s = situation(Standing::Detached(since), None, 0, vec![cand(2, 60, 1, 1)]);
        assert_eq!(
            ranked(&mut s, own - Duration::from_millis(1)).action,
            Action::Stay
        );
        assert_eq!(ranked(&mut s, own).action, Action::BecomeRoot);
    }

    /// A detached node that heard of a better key among the detached nodes waits for it: it takes
    /// a worse root, or roots itself, only `best_grace` after it otherwise would; the best key heard
    /// of is taken, and roots itself, once the hold is over, with no wait by rank.
    #[test]
    fn a_detached_node_waits_for_the_best_key_it_heard_of() {
        let (spread, margin, since, hold, grace) = (SPREAD, MARGIN, SINCE, HOLD, GRACE);
        let at = decide_detached;
        // Heard of key 10; offered 20 (worse): 20's usual moment plus the grace.
        let take20 = since + hold + ranked_wait(&key(20), spread) + margin + grace;
        let mut s = situation(Standing::Detached(since), None, 0, vec![cand(2, 20, 1, 1)]);
        s.best_heard = Some(key(10));
        let d = at(&mut s, take20 - Duration::from_millis(1));
        assert_eq!((d.action, d.revisit), (Action::Stay, Some(take20)));
        assert_eq!(at(&mut s, take20).action, Action::Attach(key(2)));
        // Even a root it had before (a fallback from the start-up election) waits.
        s.fallback_root = Some(key(20));
        assert_eq!(
            at(&mut s, take20 - Duration::from_millis(1)).action,
            Action::Stay
        );
        // Offered 10 itself: taken once the hold is over, not at 10's ranked moment.
        let mut s = situation(Standing::Detached(since), None, 0, vec![cand(3, 10, 2, 1)]);
        s.best_heard = Some(key(10));
        let d = at(&mut s, since + hold - Duration::from_millis(1));
        assert_eq!((d.action, d.revisit), (Action::Stay, Some(since + hold)));
        assert_eq!(at(&mut s, since + hold).action, Action::Attach(key(3)));
        // A better root than the lost one is still taken at once.
        let mut s = situation(Standing::Detached(since), None, 0, vec![cand(4, 0, 2, 1)]);
        s.best_heard = Some(key(10));
        assert_eq!(at(&mut s, since).action, Action::Attach(key(4)));
        // Nothing offered, we are the best heard of (key 50): we root ourselves after the hold.
        let mut s = situation(Standing::Detached(since), None, 0, vec![]);
        s.best_heard = Some(key(50));
        let d = at(&mut s, since + hold - Duration::from_millis(1));
        assert_eq!((d.action, d.revisit), (Action::Stay, Some(since + hold)));
        assert_eq!(at(&mut s, since + hold).action, Action::BecomeRoot);
        // A better key was heard of: our own moment plus the grace.
        s.best_heard = Some(key(10));
        let own = since + hold + ranked_wait(&key(50), spread) + grace;
        let d = at(&mut s, own - Duration::from_millis(1));
        assert_eq!((d.action, d.revisit), (Action::Stay, Some(own)));
        assert_eq!(at(&mut s, own).action, Action::BecomeRoot);
    }

    /// A root follows a better peer that is its own root at once if the peer came up with it (a
    /// mesh forming), and only after `fresh_root_hold` if the peer came up later (it just started,
    /// and its links to the mesh are about to bring it the mesh's root).
    #[test]
    fn a_root_waits_a_moment_before_following_a_peer_that_just_started() {
        let hold = Duration::from_secs(1);
        let up = Instant::from_micros(10_000_000);
        let mut fresh = cand(2, 2, 1, 1);
        fresh.since = up;
        let mut s = situation(Standing::Root, Some(50), 0, vec![fresh]);
        s.root_since = up - hold;
        s.now = up;
        let d = decide(&s);
        assert_eq!((d.action, d.revisit), (Action::Stay, Some(up + hold)));
        s.now = up + hold - Duration::from_millis(1);
        assert_eq!(decide(&s).action, Action::Stay);
        s.now = up + hold;
        assert_eq!(decide(&s).action, Action::Attach(key(2)));
        // We became a root less than the hold before the peer came: both are starting, follow it.
        s.now = up;
        s.root_since = up - hold + Duration::from_millis(1);
        assert_eq!(decide(&s).action, Action::Attach(key(2)));
        // The peer offers another root than itself: it is no longer starting, follow it at once.
        s.root_since = Instant::ZERO;
        s.candidates[0].root = key(1);
        assert_eq!(decide(&s).action, Action::Attach(key(2)));
    }

    #[test]
    fn a_root_attaches_to_a_better_root_only() {
        let s = situation(
            Standing::Root,
            Some(50),
            0,
            vec![cand(2, 60, 1, 1), cand(3, 10, 2, 5)],
        );
        assert_eq!(decide(&s).action, Action::Attach(key(3)));
        let s = situation(Standing::Root, Some(50), 0, vec![cand(2, 60, 1, 1)]);
        assert_eq!(decide(&s).action, Action::Stay);
    }

    #[test]
    fn hysteresis_keeps_a_parent_unless_twice_as_cheap() {
        let s = situation(
            Standing::Attached(key(2)),
            Some(1),
            2,
            vec![cand(2, 1, 2, 10), cand(3, 1, 2, 6)],
        );
        assert_eq!(decide(&s).action, Action::Stay);
        let s = situation(
            Standing::Attached(key(2)),
            Some(1),
            2,
            vec![cand(2, 1, 2, 10), cand(3, 1, 2, 4)],
        );
        assert_eq!(decide(&s).action, Action::Attach(key(3)));
    }

    #[test]
    fn losing_the_parent_prefers_a_feasible_path_to_the_same_root_and_otherwise_detaches() {
        // Parent 2 gone; peer 3 offers the same root at our old depth: take it.
        let s = situation(
            Standing::Attached(key(2)),
            Some(1),
            3,
            vec![cand(3, 1, 3, 9)],
        );
        let d = decide(&s);
        assert_eq!(d.action, Action::Attach(key(3)));
        assert_eq!(d.lost.map(|l| l.root), Some(key(1)));
        // Only a deeper path (likely through our own subtree): detach instead.
        let s = situation(
            Standing::Attached(key(2)),
            Some(1),
            3,
            vec![cand(3, 1, 5, 9)],
        );
        assert_eq!(decide(&s).action, Action::Detach);
        // Another root is taken at once.
        let s = situation(
            Standing::Attached(key(2)),
            Some(1),
            3,
            vec![cand(3, 1, 5, 9), cand(4, 7, 6, 50)],
        );
        assert_eq!(decide(&s).action, Action::Attach(key(4)));
    }

    #[test]
    fn a_path_through_a_peer_just_gone_is_taken_only_if_nothing_else_is_on_offer() {
        let mut ghost = cand(3, 1, 3, 6);
        ghost.ghost = true;
        let s = situation(
            Standing::Attached(key(2)),
            Some(1),
            3,
            vec![ghost, cand(4, 1, 3, 90)],
        );
        assert_eq!(decide(&s).action, Action::Attach(key(4)));
        let s = situation(Standing::Attached(key(2)), Some(1), 3, vec![ghost]);
        assert_eq!(decide(&s).action, Action::Attach(key(3)));
    }

    #[test]
    fn a_detached_node_takes_a_worse_root_only_when_it_would_root_itself() {
        let since = Instant::from_micros(9_000_000);
        let mut s = situation(Standing::Detached(since), None, 0, vec![cand(3, 70, 1, 5)]);
        s.detached_from = Some(key(1));
        assert_eq!(
            decide(&s).action,
            Action::Stay,
            "a restarted peer's own root"
        );
        s.candidates.push(cand(4, 1, 4, 9));
        assert_eq!(
            decide(&s).action,
            Action::Attach(key(4)),
            "the lost root again"
        );
        s.candidates = vec![cand(3, 20, 1, 5)];
        s.now = since + Duration::from_secs(4);
        assert_eq!(decide(&s).action, Action::Attach(key(3)), "after the hold");
        s.candidates = vec![cand(3, 70, 1, 5)];
        assert_eq!(decide(&s).action, Action::BecomeRoot, "worse than us");
    }

    #[test]
    fn detached_node_waits_then_roots_itself() {
        let since = Instant::from_micros(9_000_000);
        let mut s = situation(Standing::Detached(since), None, 0, vec![]);
        assert_eq!(decide(&s).action, Action::Stay);
        s.now = since + Duration::from_secs(4);
        assert_eq!(decide(&s).action, Action::BecomeRoot);
        s.lost = Some(Lost {
            root: key(1),
            since,
            depth: 2,
        });
        s.now = since + Duration::from_millis(500);
        s.candidates = vec![cand(3, 1, 4, 9)];
        assert_eq!(
            decide(&s).action,
            Action::Stay,
            "stale deeper path refused while holding"
        );
        s.now = since + Duration::from_millis(1500);
        assert_eq!(
            decide(&s).action,
            Action::Attach(key(3)),
            "accepted after the hold"
        );
    }
}
