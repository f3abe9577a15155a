use super::*;
use crate::core::rng::Rng;

fn key(n: u8) -> PublicKey {
    PublicKey::from_bytes([n; 32])
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const RTO: fn(&PublicKey) -> Duration = |_| Duration::from_millis(100);

/// A child that sends its whole set, from the empty set, whenever it changes.
struct FakeChild {
    version: u64,
}

impl FakeChild {
    fn chain(&mut self, set: &[u32]) -> Vec<SubtreeDelta> {
        let mut set = set.to_vec();
        set.sort_unstable();
        set.dedup();
        let mut out = Vec::new();
        let mut base = 0;
        let mut chunks = set.chunks(SUBTREE_CHUNK_TAGS).peekable();
        loop {
            self.version += 1;
            let chunk = chunks.next().unwrap_or(&[]);
            out.push(SubtreeDelta {
                version: self.version,
                base,
                last: chunks.peek().is_none(),
                added: chunk.to_vec(),
                removed: Vec::new(),
            });
            base = self.version;
            if chunks.peek().is_none() {
                return out;
            }
        }
    }

    /// Sends `set` to `to`, acknowledging nothing.
    fn send(&mut self, to: &mut Subtrees, now: Instant, from: PublicKey, set: &[u32]) {
        for d in self.chain(set) {
            to.handle_delta(now, from, &d);
        }
    }
}

/// The tags `f` holds for `peer`, ascending.
fn held(f: &Subtrees, peer: u8) -> Vec<u32> {
    let mut v: Vec<u32> = f.received[&key(peer)].held().collect();
    v.sort_unstable();
    v
}

/// Our subtree's tags, ascending.
fn subtree(f: &Subtrees) -> Vec<u32> {
    let mut v: Vec<u32> = f.counts.keys().copied().collect();
    v.sort_unstable();
    v
}

fn sorted(tags: &[u32]) -> Vec<u32> {
    let mut v = tags.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Node 1 with child 2 and parent 3; updates at `now`, acknowledges everything sent, and returns
/// the deltas sent to 3.
fn step(f: &mut Subtrees, now: Instant) -> Vec<SubtreeDelta> {
    let peers = [key(2), key(3)];
    let mut out = Vec::new();
    for (to, m) in f.update(now, &vec![1], &peers, &peers, Some(key(3)), RTO) {
        let Message::SubtreeDelta(d) = m else {
            panic!()
        };
        assert_eq!(to, key(3), "children are told nothing");
        f.handle_ack(now, &to, VersionAck { version: d.version });
        out.push(*d);
    }
    out
}

/// A child's sets, however large and however often they change, reach the parent whole through a
/// link that loses a fifth of the messages each way and reorders them, and again after the parent
/// restarts.
#[test]
fn sets_reach_the_parent_through_loss_reordering_and_restarts() {
    let mut rng = Rng::from_seed([9; 32]);
    let mut a = Subtrees::new(&[1; 32], 100);
    let mut p = Subtrees::new(&[3; 32], 0);
    let mut child = FakeChild { version: 0 };
    let mut child_set: Vec<u32> = Vec::new();
    // In flight: (arrival step, message).
    let mut wire: Vec<(u64, SubtreeDelta)> = Vec::new();
    let mut acks: Vec<(u64, VersionAck)> = Vec::new();
    let a_peers = [key(2), key(3)];
    let p_peers = [key(1)];
    let mut total_sent = 0;
    for step in 0..3000u64 {
        let now = Instant::ZERO + ms(10 * step);
        if step < 2000 && rng.below(20) == 0 {
            for _ in 0..rng.below(1500) {
                child_set.push(rng.u64() as u32);
            }
            for _ in 0..rng.below(1000).min(child_set.len()) {
                let i = rng.below(child_set.len());
                child_set.swap_remove(i);
            }
            child.send(&mut a, now, key(2), &child_set);
        }
        if step == 1000 {
            p = Subtrees::new(&[3; 32], 0);
        }
        // A moves now and then, so that its child's changes are all taken (damping is tested below).
        let coords = vec![1, step / 500];
        for (to, m) in a.update(now, &coords, &a_peers, &a_peers, Some(key(3)), RTO) {
            let Message::SubtreeDelta(d) = m else {
                panic!()
            };
            assert_eq!(to, key(3));
            total_sent += 1;
            if rng.below(5) != 0 {
                wire.push((step + 1 + rng.below(3) as u64, *d));
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = wire.drain(..).partition(|(at, _)| *at <= step);
        wire = later;
        for (_, d) in due {
            let ack = p.handle_delta(now, key(1), &d);
            if rng.below(5) != 0 {
                acks.push((step + 1 + rng.below(3) as u64, ack));
            }
        }
        p.update(now, &coords, &p_peers, &p_peers, None, RTO);
        let (due, later): (Vec<_>, Vec<_>) = acks.drain(..).partition(|(at, _)| *at <= step);
        acks = later;
        for (_, ack) in due {
            a.handle_ack(now, &key(3), ack);
        }
    }
    let mut expected = child_set.clone();
    expected.push(tag(&[1; 32]));
    let expected = sorted(&expected);
    assert!(expected.len() > 5000, "{}", expected.len());
    let (at_a, at_p) = (subtree(&a), held(&p, 1));
    assert!(
        at_a == expected,
        "A: {} tags, {} expected",
        at_a.len(),
        expected.len()
    );
    assert!(
        at_p == expected,
        "P: {} tags, {} expected",
        at_p.len(),
        expected.len()
    );
    assert!(expected.iter().all(|t| p.matches(&key(1), *t)));
    assert!(!p.matches(&key(1), 77) || expected.contains(&77));
    assert!(total_sent < 6000, "{total_sent} deltas");
}

/// At most `WINDOW` deltas are unacknowledged; the next go as acknowledgements come.
#[test]
fn a_big_set_goes_a_window_at_a_time() {
    let mut a = Subtrees::new(&[1; 32], 100);
    let peers = [key(2), key(3)];
    let big: Vec<u32> = (0..(SUBTREE_CHUNK_TAGS * WINDOW * 2) as u32).collect();
    FakeChild { version: 0 }.send(&mut a, Instant::ZERO, key(2), &big);
    let first = a.update(Instant::ZERO, &vec![1], &peers, &peers, Some(key(3)), RTO);
    assert_eq!(first.len(), WINDOW);
    assert!(
        a.update(
            Instant::ZERO + ms(50),
            &vec![1],
            &peers,
            &peers,
            Some(key(3)),
            RTO
        )
        .is_empty()
    );
    let Message::SubtreeDelta(d) = &first[9].1 else {
        panic!()
    };
    assert!(a.handle_ack(
        Instant::ZERO + ms(50),
        &key(3),
        VersionAck { version: d.version }
    ));
    let more = a.update(
        Instant::ZERO + ms(50),
        &vec![1],
        &peers,
        &peers,
        Some(key(3)),
        RTO,
    );
    assert_eq!(more.len(), 10, "ten acknowledged, ten more go");
    // Nothing acknowledged for an RTO: the window again, from the oldest unacknowledged.
    let again = a.update(
        Instant::ZERO + ms(150),
        &vec![1],
        &peers,
        &peers,
        Some(key(3)),
        RTO,
    );
    assert_eq!(again.len(), WINDOW);
    let Message::SubtreeDelta(oldest) = &again[0].1 else {
        panic!()
    };
    assert_eq!(oldest.base, d.version);
}

/// After `SETTLE`, a child whose set grows all the time gets `TAKE_FREE` changes taken as they come,
/// then one per gap (the gap doubling from `TAKE_GAP_MIN` to `TAKE_GAP_MAX`), what changed in
/// between as one; what waits when the changes stop goes within a gap.
#[test]
fn a_settled_childs_growth_is_damped_and_what_waits_goes_later() {
    let mut f = Subtrees::new(&[1; 32], 10);
    step(&mut f, Instant::ZERO);
    let mut now = Instant::ZERO + SETTLE;
    let mut child = FakeChild { version: 0 };
    let mut theirs = Vec::new();
    let mut changes_to_3 = 0;
    for v in 0..6000u32 {
        theirs.push(v * 7919);
        child.send(&mut f, now, key(2), &theirs);
        changes_to_3 += usize::from(!step(&mut f, now).is_empty());
        now = now + ms(10);
    }
    // 60 s: the free takes (one every 10 ms), then 0, 0.25, 0.75, 1.75 and 3.75 s after them, and
    // every `TAKE_GAP_MAX` (4 s) from 7.75 to 59.75 s.
    assert_eq!(changes_to_3, TAKE_FREE as usize + 5 + 14, "changes in 60 s");
    // When the changes stop, what waits still goes out when its turn comes.
    let due = f.next_retransmit(RTO).expect("a change waits");
    assert!(due <= now + TAKE_GAP_MAX, "{:?}", due.saturating_since(now));
    let sent = step(&mut f, due);
    assert!(sent.iter().any(|d| d.added.contains(&(5999 * 7919))));
    assert_eq!(f.subtree_len(), 6001);
    // After a quiet while the gap is short again: a change goes at once.
    let later = due + FREE_BACK_AFTER;
    theirs.push(1);
    child.send(&mut f, later, key(2), &theirs);
    assert_eq!(step(&mut f, later).len(), 1, "taken at once after quiet");
}

/// The free takes come back only after `FREE_BACK_AFTER` without a take: a child that pauses for
/// less gets its changes one per gap, so pausing buys a liar no burst of deltas.
#[test]
fn free_takes_come_back_only_after_a_long_quiet() {
    let mut f = Subtrees::new(&[1; 32], 10);
    step(&mut f, Instant::ZERO);
    let mut now = Instant::ZERO + SETTLE;
    let mut child = FakeChild { version: 0 };
    let mut theirs: Vec<u32> = Vec::new();
    // 20 changes 10 ms apart, then what waits goes within a gap: how many took a delta up.
    let mut burst = |f: &mut Subtrees, now: &mut Instant| {
        let mut taken = 0;
        for _ in 0..20 {
            theirs.push(theirs.len() as u32 * 7919 + 1);
            child.send(f, *now, key(2), &theirs);
            taken += usize::from(!step(f, *now).is_empty());
            *now = *now + ms(10);
        }
        *now = *now + TAKE_GAP_MAX;
        step(f, *now);
        taken
    };
    assert_eq!(burst(&mut f, &mut now), TAKE_FREE as usize + 1);
    now = now + FREE_BACK_AFTER - Duration::from_secs(1);
    assert_eq!(
        burst(&mut f, &mut now),
        1,
        "a pause shorter than FREE_BACK_AFTER"
    );
    now = now + FREE_BACK_AFTER + TAKE_GAP_MAX;
    assert_eq!(burst(&mut f, &mut now), TAKE_FREE as usize + 1);
}

/// A settled child that adds a tag every 10 ms for an hour gets its tags through within the growth
/// budget: a burst of `GROW_BURST` tags, then `GROW_RATE` a second, each take costing
/// `CHANGE_COST` more.
#[test]
fn a_settled_childs_growth_stays_within_the_tag_budget() {
    let mut f = Subtrees::new(&[1; 32], 10);
    step(&mut f, Instant::ZERO);
    let t0 = Instant::ZERO + SETTLE;
    let mut child = FakeChild { version: 0 };
    let mut theirs = Vec::new();
    let minutes = 60u32;
    for s in 0..minutes * 6 {
        // 100 tags a second, sent every 10 s.
        theirs.extend((0..1000).map(|k| (s * 1000 + k) * 7919 + 3));
        let now = t0 + Duration::from_secs(u64::from(s) * 10);
        child.send(&mut f, now, key(2), &theirs);
        step(&mut f, now);
    }
    let taken = f.subtree_len() - 1;
    let allowed = GROW_BURST + f64::from(minutes * 60) * GROW_RATE;
    assert!(
        taken as f64 <= allowed && taken as f64 >= allowed / 2.0,
        "{taken} tags taken, the budget allows {allowed}"
    );
}

/// While the tree around us forms (after start, or for `SETTLE` after our coordinates changed),
/// changes are taken as they come, however many.
#[test]
fn changes_are_taken_at_once_while_the_tree_around_us_forms() {
    let mut f = Subtrees::new(&[1; 32], 10);
    let peers = [key(2), key(3)];
    let t = Instant::ZERO + SETTLE * 3;
    f.update(t, &vec![1], &peers, &peers, Some(key(3)), RTO);
    let mut child = FakeChild { version: 0 };
    let mut sent = 0;
    for v in 0..1000u64 {
        let set: &[u32] = if v % 2 == 0 { &[5, 6] } else { &[5] };
        child.send(&mut f, t, key(2), set);
        for (to, m) in f.update(t, &vec![2], &peers, &peers, Some(key(3)), RTO) {
            let Message::SubtreeDelta(d) = m else {
                panic!()
            };
            f.handle_ack(t, &to, VersionAck { version: d.version });
            sent += 1;
        }
    }
    assert_eq!(sent, 1000);
    assert!(!f.matches(&key(2), 6));
}

/// A settled child whose set flips between a large set and nothing changes ours once per removal
/// turn, once its removal tokens are spent: in between (but for a gap after each) its subtree stays
/// findable.
#[test]
fn a_settled_childs_flips_reach_the_parent_once_per_removal_turn() {
    let mut f = Subtrees::new(&[1; 32], 10);
    step(&mut f, Instant::ZERO);
    let t0 = Instant::ZERO + SETTLE;
    let big: Vec<u32> = (0..4096).collect();
    let mut child = FakeChild { version: 0 };
    child.send(&mut f, t0, key(2), &big);
    let mut changes_to_3 = usize::from(!step(&mut f, t0).is_empty());
    let mut unfindable = 0;
    let flips = 3000u64;
    for i in 1..flips {
        let now = t0 + ms(100 * i);
        child.send(&mut f, now, key(2), if i % 2 == 0 { &big } else { &[] });
        unfindable += usize::from(!f.matches(&key(2), 77));
        changes_to_3 += usize::from(!step(&mut f, now).is_empty());
    }
    // 300 s of flips: the removals the burst and 300 s of the rate pay for; each removal taken is
    // followed by the add back.
    let per_flip = (big.len() + CHANGE_COST) as f64;
    let removals = ((SHRINK_BURST + 300.0 * SHRINK_RATE) / per_flip) as usize + 1;
    assert!(
        changes_to_3 <= 2 * removals + 1,
        "{changes_to_3} changes, {removals} removals"
    );
    // After a removal is taken the add back waits for the next gap (at most 160 flips).
    let per_gap = (TAKE_GAP_MAX.as_millis() / 100) as usize;
    assert!(
        unfindable <= removals * per_gap,
        "unfindable at {unfindable} of {flips} flips"
    );
}

/// A settled child's first removals apply within the first gap: a subtree that shrinks is not held.
#[test]
fn a_shrinking_subtree_is_not_held() {
    let mut f = Subtrees::new(&[1; 32], 10);
    step(&mut f, Instant::ZERO);
    let t0 = Instant::ZERO + SETTLE;
    let mut child = FakeChild { version: 0 };
    child.send(&mut f, t0, key(2), &[5, 6, 7]);
    child.send(&mut f, t0 + ms(10), key(2), &[5, 6]);
    child.send(&mut f, t0 + ms(20), key(2), &[5, 6, 8]);
    step(&mut f, t0 + TAKE_GAP_MIN);
    assert!(!f.matches(&key(2), 7));
    assert!(f.matches(&key(2), 8));
}

/// A child is told nothing; the parent hears the subtree and matches every lookup; a root's
/// children steer alone.
#[test]
fn the_parent_hears_the_subtree_and_children_nothing() {
    let mut f = Subtrees::new(&[1; 32], 10);
    let t0 = Instant::ZERO;
    let peers = [key(2), key(3), key(4)];
    let mut child = FakeChild { version: 0 };
    child.send(&mut f, t0, key(2), &[40, 41]);
    let out = f.update(t0, &vec![1], &peers, &peers, Some(key(3)), RTO);
    assert_eq!(out.len(), 1);
    let (to, Message::SubtreeDelta(d)) = &out[0] else {
        panic!()
    };
    assert_eq!(*to, key(3));
    assert_eq!(d.added, sorted(&[40, 41, tag(&[1; 32])]));
    assert!(f.matches(&key(3), 250), "the parent matches everything");
    assert!(!f.matches(&key(4), 250) && f.matches(&key(2), 41));
    assert_eq!(f.subtree_estimate(&key(2)), 2.0);
    assert_eq!(f.subtree_estimate(&key(3)), 3.0);
    f.update(t0, &vec![1], &peers, &peers, None, RTO);
    assert!(!f.matches(&key(3), 250));
}

/// A child that claims more than `MAX_PEER_TAGS` is held at the cap and taken to hold everything;
/// children together are held to `MAX_TOTAL_TAGS`.
#[test]
fn oversized_sets_are_capped_and_match_everything() {
    let mut f = Subtrees::new(&[1; 32], 10);
    let t0 = Instant::ZERO;
    let huge: Vec<u32> = (0..MAX_PEER_TAGS as u32 + 1000).collect();
    let mut child = FakeChild { version: 0 };
    child.send(&mut f, t0, key(2), &huge);
    let r = &f.received[&key(2)];
    assert_eq!(r.latest.len(), MAX_PEER_TAGS);
    assert!(r.overflowed && f.matches(&key(2), u32::MAX));
    assert_eq!(f.subtree_estimate(&key(2)), MAX_PEER_TAGS as f64);
    for k in 3..=6u8 {
        FakeChild { version: 0 }.send(&mut f, t0, key(k), &huge);
    }
    let total: usize = f.received.values().map(|r| r.latest.len()).sum();
    assert_eq!(total, MAX_TOTAL_TAGS);
    assert!(f.received[&key(6)].latest.is_empty() && f.received[&key(6)].overflowed);
    // A later honest set from the start clears the mark.
    FakeChild { version: 10_000 }.send(&mut f, t0, key(2), &[9]);
    assert!(!f.received[&key(2)].overflowed && !f.matches(&key(2), 10));
}

/// A set sent again from the empty set in several deltas is taken when whole: an update between
/// its deltas takes nothing (it would drop what is still to come, then add it back).
#[test]
fn a_chain_is_taken_when_whole() {
    let mut f = Subtrees::new(&[1; 32], 10);
    step(&mut f, Instant::ZERO);
    let t0 = Instant::ZERO + SETTLE;
    let set: Vec<u32> = (0..600).collect();
    let mut child = FakeChild { version: 0 };
    child.send(&mut f, t0, key(2), &set);
    assert!(!step(&mut f, t0).is_empty());
    let chain = child.chain(&set);
    assert_eq!(chain.len(), 3);
    for (i, d) in chain.iter().enumerate() {
        f.handle_delta(t0 + ms(i as u64), key(2), d);
        assert!(
            step(&mut f, t0 + ms(i as u64)).is_empty(),
            "after delta {i}"
        );
        assert!(f.matches(&key(2), 599));
    }
}
