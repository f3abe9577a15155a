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
    let root_announce = info::sign_root(&root, 10, 1, false);
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
    // After the hold, the node roots itself (no other root is on offer).
    tree.handle_timeout(t1 + ROOT_TIMEOUT + HOLD_SELF, &me, &mut rng);
    assert_eq!(tree.root(), Some(me.public_key()));
}

#[test]
fn forged_announcements_are_refused() {
    let (mut tree, me, mut rng, t1, _) = attached();
    let (root, parent, _) = keys();
    let mut forged = info::sign_root(&root, 11, 1, false);
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
