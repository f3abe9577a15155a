use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::core::identity::NodeKey;
use crate::services::blobs::import::import;

/// A holder: its blocks, and whether it flips a byte of every leaf it sends.
struct Source {
    key: PublicKey,
    blocks: HashMap<Cid, Arc<Vec<u8>>>,
    corrupt: bool,
}

fn key(n: u8) -> PublicKey {
    NodeKey::from_seed(&[n; 32]).public_key()
}

fn source(n: u8, data: &[u8], corrupt: bool) -> (Cid, Source) {
    let (root, blocks) = import(data, Profile::UNIXFS_V1_2025);
    let blocks = blocks
        .into_iter()
        .map(|b| (b.cid, Arc::new(b.bytes)))
        .collect();
    (
        root,
        Source {
            key: key(n),
            blocks,
            corrupt,
        },
    )
}

/// Runs the fetch against `sources` (messages delivered after `rtt`, every `drop`-th lost)
/// until it ends; returns the blocks it produced, the most parts ever in flight to one holder,
/// and the simulated time it took.
fn run(
    fetch: &mut Fetch,
    sources: &mut [Source],
    drop: usize,
) -> (HashMap<Cid, Vec<u8>>, usize, Duration) {
    let start = Instant::from_micros(1_000_000);
    let mut now = start;
    let mut got = HashMap::new();
    let mut sent = 0usize;
    let mut most = 0;
    for _ in 0..100_000 {
        let mut replies = Vec::new();
        while let Some((to, message)) = fetch.poll_transmit() {
            sent += 1;
            if drop > 0 && sent.is_multiple_of(drop) {
                continue;
            }
            let source = sources.iter_mut().find(|s| s.key == to).unwrap();
            let corrupt = source.corrupt;
            let reply = answer(&message, &mut |cid| {
                let block = source.blocks.get(cid).cloned()?;
                if corrupt && cid.codec == Codec::Raw {
                    let mut bad = (*block).clone();
                    bad[0] ^= 1;
                    return Some(Arc::new(bad));
                }
                Some(block)
            });
            if let Some(reply) = reply {
                replies.push((to, reply));
            }
        }
        most = most.max(
            fetch
                .holders
                .values()
                .map(|h| h.in_flight.len())
                .max()
                .unwrap_or(0),
        );
        now = now + Duration::from_micros(300);
        for (from, reply) in replies {
            fetch.handle_message(now, from, &reply);
        }
        if drop == 0 {
            // With nothing lost no part is overdue, so the window only grows: a holder never has
            // more parts asked of it than its window (a block's 128 parts are not asked at once).
            for h in fetch.holders.values() {
                assert!(
                    h.in_flight.len() <= h.window as usize,
                    "{} parts in flight, window {}",
                    h.in_flight.len(),
                    h.window
                );
            }
        }
        while let Some((cid, bytes)) = fetch.poll_block() {
            assert!(cid.matches(&bytes));
            got.insert(cid, bytes);
        }
        if fetch.outcome().is_some() {
            break;
        }
        if fetch.poll_timeout().is_some_and(|t| t <= now) || fetch.transmit.is_empty() {
            now = fetch.poll_timeout().map_or(now, |t| t.max(now));
            fetch.handle_timeout(now);
        }
    }
    (got, most, now.saturating_since(start))
}

fn reassemble(blocks: &HashMap<Cid, Vec<u8>>, root: &Cid) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![*root];
    while let Some(cid) = stack.pop() {
        let bytes = &blocks[&cid];
        match cid.codec {
            Codec::Raw => out.extend_from_slice(bytes),
            Codec::DagPb => {
                let node = FileNode::decode(bytes).unwrap();
                stack.extend(node.links.iter().rev().map(|l| l.cid));
            }
        }
    }
    out
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn a_file_comes_whole_from_one_holder_within_its_window() {
    let file = data(3 * (1 << 20) + 5000);
    let (root, a) = source(1, &file, false);
    let mut sources = [a];
    let mut fetch = Fetch::new(root, &[key(1)], Instant::from_micros(1_000_000));
    let (got, most, _) = run(&mut fetch, &mut sources, 0);
    assert_eq!(fetch.outcome(), Some(&Outcome::Complete));
    assert_eq!(reassemble(&got, &root), file);
    assert!(most <= WINDOW.1, "{most} parts in flight");
    assert_eq!(fetch.stats().corrupt, 0);
}

#[test]
fn lost_parts_are_asked_again() {
    let file = data(2 * (1 << 20));
    let (root, a) = source(1, &file, false);
    let mut sources = [a];
    let mut fetch = Fetch::new(root, &[key(1)], Instant::from_micros(1_000_000));
    let (got, _, _) = run(&mut fetch, &mut sources, 17);
    assert_eq!(fetch.outcome(), Some(&Outcome::Complete));
    assert_eq!(reassemble(&got, &root), file);
    assert!(fetch.stats().retries > 0);
}

#[test]
fn a_corrupt_holder_is_convicted_and_its_blocks_come_from_another() {
    let file = data(4 * (1 << 20) + 1);
    let (root, bad) = source(1, &file, true);
    let (_, good) = source(2, &file, false);
    let mut sources = [bad, good];
    let mut fetch = Fetch::new(root, &[key(1), key(2)], Instant::from_micros(1_000_000));
    let (got, _, _) = run(&mut fetch, &mut sources, 0);
    assert_eq!(fetch.outcome(), Some(&Outcome::Complete));
    assert_eq!(reassemble(&got, &root), file);
    assert!(fetch.stats().corrupt >= 1);
    assert!(fetch.holders.get(&key(1)).unwrap().convicted);
}

#[test]
fn two_holders_share_the_work_and_a_holder_without_the_file_is_skipped() {
    let file = data(6 * (1 << 20));
    let (root, a) = source(1, &file, false);
    let (_, b) = source(2, &file, false);
    let empty = Source {
        key: key(3),
        blocks: HashMap::new(),
        corrupt: false,
    };
    let mut sources = [empty, a, b];
    let mut fetch = Fetch::new(
        root,
        &[key(3), key(1), key(2)],
        Instant::from_micros(1_000_000),
    );
    let (got, _, _) = run(&mut fetch, &mut sources, 0);
    assert_eq!(fetch.outcome(), Some(&Outcome::Complete));
    assert_eq!(reassemble(&got, &root), file);
    assert!(fetch.holders.get(&key(3)).unwrap().lacks.contains(&root));
    let shares = fetch.holders();
    assert!(
        shares.iter().filter(|(_, bytes, _)| *bytes > 0).count() == 2,
        "{shares:?}"
    );
}

#[test]
fn with_no_good_holder_the_fetch_fails() {
    let file = data(1 << 20);
    let (root, bad) = source(1, &file, true);
    let mut sources = [bad];
    let mut fetch = Fetch::new(root, &[key(1)], Instant::from_micros(1_000_000));
    run(&mut fetch, &mut sources, 0);
    assert!(matches!(fetch.outcome(), Some(Outcome::Failed(_))));
}

#[test]
fn messages_read_totally() {
    let cid = Cid::of(Codec::Raw, b"x");
    for m in [
        Message::Want {
            cid,
            offset: 8192,
            len: 8192,
        },
        Message::Part {
            cid,
            offset: 1,
            total: 3,
            data: b"ab",
        },
        Message::NotHere { cid },
    ] {
        assert_eq!(Message::decode(&m.encode()), Some(m));
    }
    let too_long = Message::Want {
        cid,
        offset: 0,
        len: PART as u32 + 1,
    }
    .encode();
    assert_eq!(Message::decode(&too_long), None);
    let past_end = Message::Part {
        cid,
        offset: 2,
        total: 3,
        data: b"ab",
    }
    .encode();
    assert_eq!(Message::decode(&past_end), None);
    assert_eq!(Message::decode(&[]), None);
    assert_eq!(Message::decode(&[2; 40]), None);
}
