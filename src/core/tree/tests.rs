//! Tree behaviour that needs hand-made announcements rather than a simulated network.

use std::time::Duration;

use super::*;
use crate::core::wire::tree::SigReq;

fn keys() -> (NodeKey, NodeKey, NodeKey) {
    // Sort three keys so that `root` < `parent` < `me`: the root election is then predictable.
    let mut k: Vec<NodeKey> = (1..=3u8).map(|i| NodeKey::from_seed(&[i; 32])).collect();
    k.sort_by_key(|k| k.public_key());
    let me = k.pop().unwrap_or_else(|| unreachable!());
    let parent = k.pop().unwrap_or_else(|| unreachable!());
    let root = k.pop().unwrap_or_else(|| unreachable!());
    (root, parent, me)
}

/// Attaches `me` under `parent`, which hangs under `root`; returns the tree and the time.
fn attached() -> (Tree, NodeKey, Rng, Instant, PublicKey) {
    let (root, parent, me) = keys();
    let mut rng = Rng::from_seed([5; 32]);
    let t0 = Instant::ZERO;
    let mut tree = Tree::new(&me, 100, t0, &mut rng);
    let p = parent.public_key();
    tree.add_peer(t0, p, Some(2), Duration::from_millis(100));
    tree.settle(t0, &me, &mut rng);
    // The parent's chain: the root's own announcement and the parent's under it.
    let root_announce = info::sign_root(&root, 10, 1, None);
    let psig = info::sign_as_parent(&root, &p, 20, 2, 1);
    let parent_announce = info::sign_child(&parent, root.public_key(), 20, 2, 1, psig);
    tree.handle_announce(t0, &me, &mut rng, p, root_announce)
        .unwrap();
    tree.handle_announce(t0, &me, &mut rng, p, parent_announce)
        .unwrap();
    // The parent answers our signature request.
    let req: SigReq = std::iter::from_fn(|| tree.poll_message())
        .find_map(|(_, m)| match m {
            Message::SigReq(r) => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| unreachable!("no SigReq sent"));
    let psig = info::sign_as_parent(&parent, &me.public_key(), req.seq, req.nonce, 3);
    tree.handle_sig_res(
        p,
        SigRes {
            seq: req.seq,
            nonce: req.nonce,
            port: 3,
            psig,
        },
    );
    let t1 = t0 + Duration::from_millis(50);
    tree.settle(t1, &me, &mut rng);
    (tree, me, rng, t1, root.public_key())
}

#[test]
fn attaches_under_a_better_root_with_the_parents_port() {
    let (tree, _, _, _, root) = attached();
    assert_eq!(tree.root(), Some(root));
    assert_eq!(tree.coords(), &vec![1, 3]);
}

#[test]
fn a_root_that_stops_refreshing_is_given_up_after_the_root_timeout() {
    let (mut tree, me, mut rng, t1, root) = attached();
    tree.handle_timeout(t1 + ROOT_TIMEOUT - Duration::from_secs(1), &me, &mut rng);
    assert_eq!(tree.root(), Some(root), "still within the timeout");
    let deadline = tree.poll_timeout().unwrap_or_else(|| unreachable!());
    assert!(deadline <= t1 + ROOT_TIMEOUT);
    tree.handle_timeout(t1 + ROOT_TIMEOUT, &me, &mut rng);
    assert_ne!(tree.root(), Some(root), "a silent root is not followed");
    // After the hold and its key's rank, the node roots itself (no other root is on offer).
    let own_moment = HOLD_SELF + select::ranked_wait(&me.public_key(), RANK_SPREAD);
    tree.handle_timeout(t1 + ROOT_TIMEOUT + own_moment, &me, &mut rng);
    assert_eq!(tree.root(), Some(me.public_key()));
}

#[test]
fn forged_announcements_are_refused() {
    let (mut tree, me, mut rng, t1, _) = attached();
    let (root, parent, _) = keys();
    let mut forged = info::sign_root(&root, 11, 1, None);
    forged.sig[0] ^= 1;
    assert!(
        tree.handle_announce(t1, &me, &mut rng, parent.public_key(), forged)
            .is_err()
    );
    // A child claiming a parent that did not sign for it.
    let bogus_psig = info::sign_as_parent(&parent, &parent.public_key(), 30, 1, 9);
    let claim = info::sign_child(&parent, root.public_key(), 30, 1, 9, bogus_psig);
    assert!(
        tree.handle_announce(t1, &me, &mut rng, parent.public_key(), claim)
            .is_err()
    );
}

/// Counts the messages of one kind in the tree's outbox (and empties it).
fn drain_count(tree: &mut Tree, pick: fn(&Message<'static>) -> bool) -> usize {
    std::iter::from_fn(|| tree.poll_message())
        .filter(|(_, m)| pick(m))
        .count()
}

#[test]
fn announcements_about_us_are_checked_and_cannot_overflow_our_seq() {
    let (mut tree, me, mut rng, t1, root) = attached();
    let (_, parent, _) = keys();
    let p = parent.public_key();
    let own_seq = |tree: &Tree| {
        tree.announcements()
            .find(|a| a.key == me.public_key())
            .map(|a| a.seq)
    };
    let seq_before = own_seq(&tree);
    let coords = tree.coords().clone();
    // A forged announcement "of ours" at the top of the range: refused, nothing re-signed.
    let mut forged = info::sign_root(&parent, u64::MAX, 1, None);
    forged.key = me.public_key();
    forged.parent = me.public_key();
    let mut t = t1;
    for _ in 0..1000 {
        t = t + Duration::from_millis(1);
        assert!(tree.handle_announce(t, &me, &mut rng, p, forged).is_err());
        tree.settle(t, &me, &mut rng);
    }
    assert_eq!(own_seq(&tree), seq_before, "not re-signed");
    assert_eq!(tree.root(), Some(root));
    assert_eq!(tree.coords(), &coords);
    // A genuine one at u64::MAX (only we can sign it, e.g. before a restart): no overflow in any
    // build, and nothing to outbid with.
    let ours = info::sign_root(&me, u64::MAX, 1, None);
    let t = t + Duration::from_secs(10);
    tree.handle_announce(t, &me, &mut rng, p, ours).unwrap();
    tree.settle(t + Duration::from_millis(30), &me, &mut rng);
    tree.handle_timeout(t + REFRESH, &me, &mut rng);
    tree.handle_timeout(t + REFRESH * 2, &me, &mut rng);
}

#[test]
fn a_peer_asking_for_many_signatures_gets_few() {
    let (mut tree, me, mut rng, t1, _) = attached();
    let (_, parent, _) = keys();
    let p = parent.public_key();
    while tree.poll_message().is_some() {}
    // 80 requests in one frame, then the same again 10 times a second for 10 s.
    let mut signed = 0;
    let mut last = None;
    let mut t = t1;
    for round in 0..100u64 {
        t = t + Duration::from_millis(100);
        for i in 0..80u64 {
            tree.handle_sig_req(
                p,
                SigReq {
                    seq: 1000 + round * 80 + i,
                    nonce: i,
                },
            );
        }
        tree.settle(t, &me, &mut rng);
        for (_, m) in std::iter::from_fn(|| tree.poll_message()) {
            if let Message::SigRes(res) = m {
                signed += 1;
                last = Some(SigReq {
                    seq: res.seq,
                    nonce: res.nonce,
                });
            }
        }
    }
    // One per settle at most, within 4/s after a burst of 8: 8 + 4 * 10 s.
    assert!(signed <= 48, "{signed} signatures made");
    assert!(signed >= 40, "an honest rate is still answered: {signed}");
    // A retransmitted request is answered from the cache, at no cost.
    let last = last.unwrap();
    for _ in 0..100 {
        tree.handle_sig_req(p, last);
    }
    let is_res = |m: &Message<'static>| matches!(m, Message::SigRes(_));
    assert_eq!(drain_count(&mut tree, is_res), 100);
}

#[test]
fn new_announcements_from_one_peer_are_verified_within_its_budget() {
    let (mut tree, me, mut rng, t1, _) = attached();
    let (_, parent, _) = keys();
    let p = parent.public_key();
    tree.settle(t1, &me, &mut rng);
    while tree.poll_message().is_some() {}
    // The peer invents 2000 announcements of throwaway keys (validly signed) at once.
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..2000u32 {
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        let fake = NodeKey::from_seed(&seed);
        match tree.handle_announce(t1, &me, &mut rng, p, info::sign_root(&fake, 1, 1, None)) {
            Ok(()) => accepted += 1,
            Err(AnnounceError::OverBudget) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(accepted, 200, "the burst");
    assert_eq!(
        refused, 1800,
        "refused without a signature check, and not acknowledged"
    );
    tree.settle(t1, &me, &mut rng);
    let acked: usize = std::iter::from_fn(|| tree.poll_message())
        .map(|(_, m)| match m {
            Message::AnnounceAck(a) => a.entries.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(acked, 200);
}

/// Our parent's link goes down: a node that roots itself for a moment at start is not taken for
/// the root before the one it lost, so it detaches (and its subtree with it) instead of becoming a
/// root that its subtree follows.
#[test]
fn losing_the_parent_detaches_rather_than_rooting_a_node_that_was_a_root_only_at_start() {
    let (mut tree, me, mut rng, t1, _) = attached();
    let (_, parent, _) = keys();
    let t2 = t1 + Duration::from_secs(1);
    tree.remove_peer(t2, &parent.public_key());
    tree.handle_timeout(t2, &me, &mut rng);
    assert_eq!(tree.root(), None, "detached");
    // Alone, it is the best key it heard of among detached nodes: no wait by rank.
    let own_moment = HOLD_SELF;
    tree.handle_timeout(t2 + own_moment - RESELECT_COALESCE, &me, &mut rng);
    assert_eq!(tree.root(), None, "still detached just before its moment");
    tree.handle_timeout(t2 + own_moment, &me, &mut rng);
    assert_eq!(tree.root(), Some(me.public_key()), "a root after the hold");
}

/// The queue of messages for peers holds announcements (about 250 B each): once the node has taken
/// all of a burst, its room goes too.
#[test]
fn the_queue_for_peers_lets_its_room_go_once_emptied() {
    let (mut tree, _, _, _, _) = attached();
    drain_count(&mut tree, |_| true);
    let (_, parent, _) = keys();
    for _ in 0..100 {
        tree.outbox
            .push_back((parent.public_key(), Message::SigReq(tree.request)));
    }
    assert!(tree.outbox.capacity() >= 100);
    assert_eq!(drain_count(&mut tree, |_| true), 100);
    assert_eq!(tree.outbox.capacity(), 0);
}

/// The parent `p` moves under a new node `x` (x under the root): the announcements of `x` (port 5
/// under the root) and of `p` (port 7 under `x`), as `p` would send them.
fn parent_moves_under(root: &NodeKey, parent: &NodeKey) -> (NodeKey, [Announce; 2]) {
    let x = NodeKey::from_seed(&[9; 32]);
    let (xk, pk) = (x.public_key(), parent.public_key());
    let psig = info::sign_as_parent(root, &xk, 30, 4, 5);
    let x_announce = info::sign_child(&x, root.public_key(), 30, 4, 5, psig);
    let psig = info::sign_as_parent(&x, &pk, 31, 5, 7);
    let p_announce = info::sign_child(parent, xk, 31, 5, 7, psig);
    (x, [x_announce, p_announce])
}

/// A node sends its peers the chain above it as the store has it now, not as it was at its last
/// re-evaluation (which waits up to `RESELECT_COALESCE`): a peer holding an old announcement of a
/// node on the new chain would otherwise walk through it, to a root that may be gone (in the
/// 10 000-node churn run with the root leaving, a node took the dead root back for those 20 ms).
#[test]
fn the_chain_sent_to_peers_is_the_one_stored_even_before_the_parent_is_judged_again() {
    let (mut tree, me, mut rng, t1, _) = attached();
    let (root, parent, _) = keys();
    let q = NodeKey::from_seed(&[8; 32]).public_key();
    let t2 = t1 + RESELECT_COALESCE;
    tree.add_peer(t2, q, Some(2), Duration::from_millis(100));
    tree.settle(t2, &me, &mut rng);
    drain_count(&mut tree, |_| true);
    let (x, moved) = parent_moves_under(&root, &parent);
    let t3 = t2 + Duration::from_millis(5);
    for a in moved {
        tree.handle_announce(t3, &me, &mut rng, parent.public_key(), a)
            .unwrap();
    }
    tree.settle(t3, &me, &mut rng);
    let to_q: Vec<PublicKey> = std::iter::from_fn(|| tree.poll_message())
        .filter_map(|(to, m)| match m {
            Message::Announce(a) if to == q => Some(a.key),
            _ => None,
        })
        .collect();
    assert!(
        to_q.contains(&x.public_key()),
        "the new node above the parent goes with it: {to_q:?}"
    );
}

/// While detached, a node and its detached peers keep, for routing, the coordinates they had
/// under the lost root; once it has a root again, its coordinates are those under it.
#[test]
fn a_detached_node_routes_by_the_coordinates_it_had_under_the_lost_root() {
    let (mut tree, me, mut rng, t1, root) = attached();
    let (_, parent, _) = keys();
    let p = parent.public_key();
    assert_eq!(
        (tree.coords(), tree.peer_coords(&p)),
        (&vec![1, 3], Some(vec![1]))
    );
    // The root is gone: the parent detaches, and so do we.
    let t2 = t1 + Duration::from_secs(1);
    let detached = info::sign_root(&parent, 40, 6, Some(p));
    tree.handle_announce(t2, &me, &mut rng, p, detached)
        .unwrap();
    assert_eq!(
        tree.peer_coords(&p),
        None,
        "not through a detached peer's old place while we have a root"
    );
    tree.handle_timeout(t2, &me, &mut rng);
    assert_eq!(tree.root(), None, "detached");
    assert_eq!(tree.routing_root(), Some(root));
    assert_eq!(
        (tree.coords(), tree.peer_coords(&p)),
        (&vec![1, 3], Some(vec![1]))
    );
    // The hold is over: a root of our own, with our own coordinates; the detached parent's old
    // ones are relative to another root now and not used.
    tree.handle_timeout(t2 + HOLD_SELF + RANK_SPREAD + BEST_GRACE, &me, &mut rng);
    assert_eq!(tree.root(), Some(me.public_key()));
    assert_eq!((tree.coords(), tree.peer_coords(&p)), (&vec![], None));
}
