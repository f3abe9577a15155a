//! Scale: whole meshes of 1 000 to 100 000 nodes in the deterministic simulator. Prints, per size and
//! topology, the time to one root, idle control traffic per link, what a first packet to a new
//! destination costs (lookup bytes, latency, delivery within 1 s), stretch and memory per node. Run with
//! `cargo bench --bench scale`; `SCALE_NODES=1000,10000,100000` picks the sizes (default 1000,10000),
//! `SCALE_TOPOLOGY=random|villages|both`, `SCALE_PACKETS=N` the first packets per run (default 1000),
//! `SCALE_BATCH=N` how many are sent at once, each batch given 1 s (default 100).
//! `SCALE_CHURN_MINUTES=M` then runs M simulated minutes of churn on the same mesh (1 % of the nodes
//! leave and 1 % join a minute) while 100 flows send a packet a second, and prints their delivery,
//! root changes and control traffic; with `SCALE_CHURN_ROOT=1` the node with the best key is the one
//! that leaves 60 s in. Last, it takes 100 nodes out of the mesh and prints what each part of a node
//! holds on the heap (a counting global allocator tells the live heap from the resident set).
//! Signatures and key agreement are replaced by an insecure stand-in
//! ([`meshrouter::core::crypto_stand_in`]) unless `SCALE_REAL_CRYPTO=1`: authenticity is not what
//! this measures. It prints figures and asserts nothing about speed (see docs/BENCHMARKS.md).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant as WallClock};

use meshrouter::core::identity::PublicKey;
use meshrouter::core::rng::Rng;
use meshrouter::core::time::Instant as SimInstant;
use meshrouter::sim::{Sim, WireParams, ipv6_packet, topology};

/// Counts what the program holds on the heap, to tell what each part of a node holds
/// ([`heap_by_structure`]) apart from the allocator's own spare room, which the resident set includes.
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Heap bytes live now.
fn live_heap() -> i64 {
    let s = GLOBAL.stats();
    // A realloc counts its growth as allocated and its shrinking as deallocated.
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// What each part of a node holds on the heap, averaged over 100 nodes spread over the mesh: each is
/// taken out (it crashes, so this runs last) and dropped a part at a time (`Node::drop_parts`).
fn heap_by_structure(sim: &mut Sim, n: usize) {
    let sample = 100.min(n);
    let mut parts: Vec<(&'static str, i64)> = Vec::new();
    let mut taken = 0;
    for k in 0..sample {
        let Some(node) = sim.take_node(k * n / sample) else {
            continue;
        };
        taken += 1;
        let (mut last, mut part) = (live_heap(), 0);
        node.drop_parts(&mut |name| {
            let now = live_heap();
            if part == parts.len() {
                parts.push((name, 0));
            }
            parts[part].1 += last - now;
            (last, part) = (now, part + 1);
        });
    }
    let total: i64 = parts.iter().map(|p| p.1).sum();
    let per_node = |b: i64| b as f64 / 1024.0 / taken.max(1) as f64;
    let list: Vec<String> = parts
        .iter()
        .map(|(name, b)| format!("{name} {:.1}", per_node(*b)))
        .collect();
    eprintln!(
        "  heap per node by structure ({taken} nodes, KiB): {:.1} in all: {}",
        per_node(total),
        list.join(", ")
    );
}

fn total_wire_bytes(sim: &Sim) -> u64 {
    (0..sim.wires().count())
        .map(|w| sim.wire_bytes(w).iter().sum::<u64>())
        .sum()
}

/// A digest of every node's coordinates, to see when the tree stops moving.
fn tree_shape(sim: &Sim) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for i in 0..sim.len() {
        sim.node(i).map(|n| n.tree().coords().clone()).hash(&mut h);
    }
    h.finish()
}

/// Bytes of lookups and lookup replies all nodes sent or passed on (messages as encoded).
fn lookup_bytes_sent(sim: &Sim) -> u64 {
    (0..sim.len())
        .filter_map(|i| sim.node(i))
        .map(|n| n.stats().lookup_bytes)
        .sum()
}

fn lookups_handled(sim: &Sim) -> u64 {
    (0..sim.len())
        .filter_map(|i| sim.node(i))
        .map(|n| n.stats().lookups_handled)
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

struct Phase {
    started: WallClock,
    events: u64,
}

impl Phase {
    fn start(sim: &Sim) -> Self {
        Self {
            started: WallClock::now(),
            events: sim.events_handled(),
        }
    }

    fn end(self, sim: &Sim, name: &str) -> f64 {
        let wall = self.started.elapsed().as_secs_f64();
        eprintln!(
            "  {name}: {wall:.1} s wall, {} events",
            sim.events_handled() - self.events
        );
        wall
    }
}

/// Takes the flows' packets delivered so far out of `sent`; returns how many.
fn arrived(sim: &mut Sim, flows: &[(usize, usize)], sent: &mut Vec<(usize, Vec<u8>)>) -> usize {
    let mut count = 0;
    for &(_, b) in flows {
        for (_, d) in sim.take_delivered(b) {
            if let Some(k) = sent.iter().position(|(to, p)| *to == b && *p == d.payload) {
                sent.swap_remove(k);
                count += 1;
            }
        }
    }
    count
}

/// Churn: every `60 / (n / 100)` s one live node (not a flow's end) crashes, and a node that crashed
/// a minute before starts again (same key, state lost), while 100 flows between random nodes send a
/// packet a second. Prints delivery of the flows' packets (counted until 2 s after), the most root changes of
/// any node against how often the best live key changed, and all links' bytes per link per second.
fn churn(sim: &mut Sim, n: usize, links: usize, minutes: u64) {
    let phase = Phase::start(sim);
    // Its own draws, so that the churn is the same whatever the simulator draws inside.
    let mut pick = Rng::from_seed([7; 32]);
    let mut flows = Vec::new();
    let mut protected = vec![false; n];
    while flows.len() < 100 {
        let (a, b) = (pick.below(n), pick.below(n));
        if a != b && !protected[a] && !protected[b] {
            protected[a] = true;
            protected[b] = true;
            flows.push((a, b));
        }
    }
    let per_minute = (n / 100).max(1);
    let interval = Duration::from_secs(60) / per_minute as u32;
    let start = sim.now();
    let end = start + Duration::from_secs(60 * minutes);
    let changes_before: Vec<usize> = (0..n).map(|i| sim.sim_node(i).root_changes.len()).collect();
    let drops_before = drops_by_reason(sim);
    let all: Vec<usize> = (0..n).collect();
    let mut best = sim.best_key(&all);
    let mut best_changes = 0;
    // For each flow's node, how often the best key it can reach (its part of the mesh may be cut off
    // for a while) changed: the root changes the churn requires of it.
    let mut reachable_best: Vec<Option<PublicKey>> = component_best(sim, n);
    let mut required = vec![0usize; n];
    let bytes = total_wire_bytes(sim);
    let mut down: std::collections::VecDeque<usize> = Default::default();
    let (mut leaves, mut joins) = (0, 0);
    let mut sent: Vec<(usize, Vec<u8>)> = Vec::new();
    // Packets sent while the churn had cut the mesh between their ends (none can arrive).
    let mut cut_off = std::collections::BTreeSet::new();
    // With SCALE_DEBUG: what the source knew of each packet's destination when it sent it.
    let debug = std::env::var_os("SCALE_DEBUG").is_some();
    // Losses in runs of at least this many are listed (SCALE_DEBUG_RUN, 8 unless set).
    let debug_run: usize = std::env::var("SCALE_DEBUG_RUN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut send_state: std::collections::BTreeMap<u32, String> = Default::default();
    let mut delivered = 0usize;
    let mut next_churn = start;
    let mut next_send = start;
    let mut seq = 0u32;
    // With SCALE_CHURN_ROOT: the node with the best key is the one that leaves 60 s in (and it
    // rejoins a minute later, as every node that leaves).
    let mut root_leaves_at = std::env::var_os("SCALE_CHURN_ROOT")
        .is_some()
        .then(|| start + Duration::from_secs(60));
    while sim.now() < end {
        if sim.now() >= next_churn {
            next_churn = next_churn + interval;
            let live: Vec<usize> = (0..n)
                .filter(|&i| !protected[i] && sim.node(i).is_some())
                .collect();
            let root = root_leaves_at
                .filter(|at| sim.now() >= *at)
                .and_then(|_| live.iter().copied().min_by_key(|&i| sim.key(i)));
            if let Some(i) = root {
                root_leaves_at = None;
                let k = sim.key(i);
                eprintln!(
                    "  the root {:02x}{:02x} (node {i}) leaves at {:.3} s",
                    k.as_bytes()[0],
                    k.as_bytes()[1],
                    support::secs(sim.now())
                );
                sim.crash(i);
                down.push_back(i);
                leaves += 1;
            } else if !live.is_empty() {
                let i = live[pick.below(live.len())];
                sim.crash(i);
                down.push_back(i);
                leaves += 1;
            }
            if down.len() > per_minute
                && let Some(i) = down.pop_front()
            {
                sim.restart(i);
                joins += 1;
            }
            let now_reachable = component_best(sim, n);
            for i in (0..n).filter(|&i| protected[i]) {
                if now_reachable[i] != reachable_best[i] {
                    required[i] += 1;
                }
            }
            reachable_best = now_reachable;
            let live_now: Vec<usize> = (0..n).filter(|&i| sim.node(i).is_some()).collect();
            let now_best = sim.best_key(&live_now);
            if now_best != best {
                best = now_best;
                best_changes += 1;
            }
        }
        if sim.now() >= next_send {
            next_send = next_send + Duration::from_secs(1);
            let reach = component_best(sim, n);
            for &(a, b) in &flows {
                seq += 1;
                if reach[a] != reach[b] {
                    cut_off.insert(seq);
                }
                if debug {
                    let known = sim
                        .node(a)
                        .and_then(|x| x.paths().get(&sim.key(b)).cloned());
                    let actual = sim.node(b).map(|x| x.tree().coords().clone());
                    let state = match known {
                        None => "no path",
                        Some(p) if Some(&p.coords) == actual.as_ref() => {
                            if p.broken {
                                "right path, reported"
                            } else {
                                "right path"
                            }
                        }
                        Some(p) if p.broken => "stale path, reported",
                        Some(_) => "stale path",
                    };
                    // And the source's counters: lookups started (L), notices of a move taken
                    // (N), reports received (R); the destination's notices sent (n).
                    let counts =
                        |i: usize| sim.node(i).map(|x| x.stats().clone()).unwrap_or_default();
                    let (sa, sb) = (counts(a), counts(b));
                    send_state.insert(
                        seq,
                        format!(
                            "{state} L{} N{} R{} n{}",
                            sa.lookups_sent,
                            sa.moved_notices_taken,
                            sa.paths_broken,
                            sb.moved_notices_sent
                        ),
                    );
                }
                let payload = seq.to_be_bytes().to_vec();
                sim.send_packet(a, b, &payload);
                sent.push((b, ipv6_packet(sim.key(a), sim.key(b), &payload)));
            }
        }
        sim.run_until(next_churn.min(next_send));
        delivered += arrived(sim, &flows, &mut sent);
    }
    sim.run_for(Duration::from_secs(2));
    delivered += arrived(sim, &flows, &mut sent);
    let total_sent = delivered + sent.len();
    // Losses by how many packets in a row a flow lost (seq - 1 = second * 100 + flow).
    let lost_seqs: Vec<u32> = sent
        .iter()
        .filter_map(|(_, p)| {
            Some(u32::from_be_bytes(
                p.get(p.len().checked_sub(4)?..)?.try_into().ok()?,
            ))
        })
        .collect();
    let lost_cut_off = lost_seqs.iter().filter(|s| cut_off.contains(*s)).count();
    let mut lost: Vec<(u32, u32)> = lost_seqs
        .iter()
        .filter(|s| !cut_off.contains(*s))
        .map(|seq| ((seq - 1) % 100, (seq - 1) / 100))
        .collect();
    lost.sort_unstable();
    let mut streaks = [0usize; 4];
    let mut i = 0;
    while i < lost.len() {
        let mut j = i + 1;
        while j < lost.len() && lost[j] == (lost[i].0, lost[i].1 + (j - i) as u32) {
            j += 1;
        }
        let bucket = match j - i {
            1 => 0,
            2..=3 => 1,
            4..=7 => 2,
            _ => 3,
        };
        streaks[bucket] += j - i;
        if debug && j - i >= debug_run {
            let (flow, second) = lost[i];
            let states: Vec<&str> = (i..j)
                .map(|k| {
                    send_state
                        .get(&(lost[k].1 * 100 + lost[k].0 + 1))
                        .map_or("?", String::as_str)
                })
                .collect();
            eprintln!(
                "  flow {flow} {:?}: lost {} from second {second}: {states:?}",
                flows[flow as usize],
                j - i
            );
        }
        i = j;
    }
    eprintln!(
        "  {} packets sent while their ends were cut apart ({lost_cut_off} of them lost); of the \
         others, lost in runs of 1: {}, 2-3: {}, 4-7: {}, 8 or more: {}",
        cut_off.len(),
        streaks[0],
        streaks[1],
        streaks[2],
        streaks[3]
    );
    let reachable_sent = total_sent - cut_off.len();
    let reachable_delivered = delivered - (cut_off.len() - lost_cut_off);
    let most_changes = (0..n)
        .filter(|&i| protected[i])
        .map(|i| sim.sim_node(i).root_changes.len() - changes_before[i])
        .max()
        .unwrap_or(0);
    let (mut most_new_roots, mut detached, mut most_required, mut most_excess) = (0, 0, 0, 0);
    for i in (0..n).filter(|&i| protected[i]) {
        let changes = &sim.sim_node(i).root_changes;
        let before = changes[..changes_before[i]].last().and_then(|c| c.1);
        let (moved, moments) = new_roots(before, &changes[changes_before[i]..]);
        most_new_roots = most_new_roots.max(moved);
        detached += moments;
        most_required = most_required.max(required[i]);
        let excess = moved.saturating_sub(required[i]);
        if excess > 0 && std::env::var_os("SCALE_DEBUG").is_some() {
            // Roots by their key's first four hex digits (many share the first byte).
            let short = |k: Option<PublicKey>| {
                k.map_or("-".to_string(), |k| {
                    format!("{:02x}{:02x}", k.as_bytes()[0], k.as_bytes()[1])
                })
            };
            let timeline: Vec<(f64, String)> = changes[changes_before[i]..]
                .iter()
                .map(|(t, r)| (support::secs(*t), short(*r)))
                .collect();
            eprintln!(
                "  node {i} (peers {}): {excess} root changes beyond the churn's: {timeline:?}",
                sim.node(i).map_or(0, |n| n.peers().count())
            );
        }
        most_excess = most_excess.max(excess);
    }
    let mut drops = drops_by_reason(sim);
    for (reason, count) in drops_before {
        if let Some(c) = drops.get_mut(&reason) {
            *c = c.saturating_sub(count);
        }
    }
    drops.retain(|_, c| *c > 0);
    eprintln!(
        "  flows' nodes: most changes to another root {most_new_roots} (most the churn required: \
         {most_required}; most beyond it: {most_excess}), detached moments {detached}; drops by \
         reason {drops:?}"
    );
    let spent = sim.now().saturating_since(start).as_secs_f64();
    let per_link = (total_wire_bytes(sim) - bytes) as f64 / spent / links as f64;
    phase.end(sim, "churn");
    println!(
        "churn, {n} nodes, {minutes} min: {leaves} left, {joins} joined; flows {delivered}/{total_sent} \
         delivered ({:.2} %), {reachable_delivered}/{reachable_sent} of those sent while their ends \
         were connected ({:.2} %); most root changes of a flow's node {most_changes} ({most_new_roots} \
         to another root, {most_excess} more than the churn required), the best live key changed \
         {best_changes} times; {per_link:.0} B/s per link (flows included)",
        100.0 * delivered as f64 / total_sent.max(1) as f64,
        100.0 * reachable_delivered as f64 / reachable_sent.max(1) as f64
    );
}

/// For each node, the best key among the live nodes it can reach (`None` if it is down).
fn component_best(sim: &Sim, n: usize) -> Vec<Option<PublicKey>> {
    let mut up: Vec<usize> = (0..n).collect();
    fn find(up: &mut [usize], mut i: usize) -> usize {
        while up[i] != i {
            up[i] = up[up[i]];
            i = up[i];
        }
        i
    }
    for (a, b, wire_up) in sim.wires() {
        if wire_up && sim.node(a).is_some() && sim.node(b).is_some() {
            let (ra, rb) = (find(&mut up, a), find(&mut up, b));
            up[ra] = rb;
        }
    }
    let mut best: Vec<Option<PublicKey>> = vec![None; n];
    for i in (0..n).filter(|&i| sim.node(i).is_some()) {
        let r = find(&mut up, i);
        let key = sim.key(i);
        if best[r].is_none_or(|b| key < b) {
            best[r] = Some(key);
        }
    }
    (0..n)
        .map(|i| {
            sim.node(i)
                .is_some()
                .then(|| best[find(&mut up, i)])
                .flatten()
        })
        .collect()
}

/// Every live node's drops, summed by reason.
fn drops_by_reason(sim: &Sim) -> std::collections::BTreeMap<String, u64> {
    let mut all = std::collections::BTreeMap::new();
    for node in (0..sim.len()).filter_map(|i| sim.node(i)) {
        for (reason, count) in node.stats().drops {
            *all.entry(reason).or_insert(0) += count;
        }
    }
    all
}

/// Of a node's root changes after it had root `before`, how many went to a root other than the one it had before (a moment
/// detached, `None`, between two spells under one root is not a change of root), and how many such
/// moments there were.
fn new_roots(
    before: Option<PublicKey>,
    changes: &[(SimInstant, Option<PublicKey>)],
) -> (usize, usize) {
    let (mut last, mut moved, mut detached) = (before, 0, 0);
    for (_, root) in changes {
        match root {
            None => detached += 1,
            Some(r) => {
                if last.is_some_and(|l| l != *r) {
                    moved += 1;
                }
                last = Some(*r);
            }
        }
    }
    (moved, detached)
}

fn run(n: usize, kind: &str, packets: usize, batch_size: usize) {
    let seed = 81;
    let mut rng = Rng::from_seed([seed as u8; 32]);
    let edges = match kind {
        "villages" => topology::villages(n, &mut rng),
        _ => topology::random(n, 4.0, &mut rng),
    };
    eprintln!("{n} nodes, {kind}: {} links", edges.len());
    let rss_before = support::rss_kib();
    let heap_before = live_heap();
    let total = WallClock::now();
    let phase = Phase::start(&Sim::new(seed));
    let mut sim = Sim::build(seed, n, &edges, WireParams::default());
    phase.end(&sim, "build");
    let built_kib = support::rss_kib().saturating_sub(rss_before) as f64 / n as f64;
    if std::env::var_os("SCALE_TIMELINE").is_some() {
        let mut last = (0u64, 0u64);
        for step in 0..60 {
            sim.run_for(Duration::from_millis(if step < 20 { 25 } else { 500 }));
            let now = (sim.events_handled(), total_wire_bytes(&sim));
            let roots = sim.distinct_roots(&(0..n).collect::<Vec<_>>()).len();
            eprintln!(
                "  t={:.3} events +{} bytes +{} roots {roots}",
                support::secs(sim.now()),
                now.0 - last.0,
                now.1 - last.1
            );
            last = now;
        }
    }
    let phase = Phase::start(&sim);
    let all: Vec<usize> = (0..n).collect();
    let root_at = support::run_until_one_root(&mut sim, &all, Duration::from_secs(120));
    let to_root_wall = total.elapsed().as_secs_f64();
    phase.end(&sim, "one root");
    let phase = Phase::start(&sim);
    // The first tree is reshaped into a shortest-path one in waves (a node moves to a shallower place
    // once its own has been still for `tree::SETTLE`, 5 s): run until no node's coordinates changed
    // for 6 s, then for the subtree sets to settle (`subtrees::SETTLE`, 10 s after a node's last move).
    let mut last_move = sim.now();
    let mut shape = tree_shape(&sim);
    while sim.now().saturating_since(last_move) < Duration::from_secs(6)
        && sim.now().saturating_since(root_at.unwrap_or(sim.now())) < Duration::from_secs(300)
    {
        sim.run_for(Duration::from_secs(1));
        let now_shape = tree_shape(&sim);
        if now_shape != shape {
            shape = now_shape;
            last_move = sim.now();
        }
    }
    let stable_at = last_move;
    sim.run_for(Duration::from_secs(10));
    let bytes = total_wire_bytes(&sim);
    // Four keepalive periods (1.5 s).
    let idle = Duration::from_secs(6);
    sim.run_for(idle);
    let idle_rate = (total_wire_bytes(&sim) - bytes) as f64 / idle.as_secs_f64();
    let per_link = idle_rate / edges.len() as f64;
    phase.end(&sim, "idle");
    let kib_per_node = support::rss_kib().saturating_sub(rss_before) as f64 / n as f64;
    let heap_kib_per_node = (live_heap() - heap_before) as f64 / 1024.0 / n as f64;
    eprintln!(
        "  memory per node: {kib_per_node:.0} KiB resident, {heap_kib_per_node:.0} KiB of it live heap \
         (nodes, simulator), the rest the allocator's spare room and freed pages it keeps"
    );
    // What the largest per-node structures hold: the subtree sets (their heap, as the node counts
    // it) and the tree announcements stored.
    let (mut sets, mut sets_max, mut stored) = (0usize, 0usize, 0usize);
    for node in (0..n).filter_map(|i| sim.node(i)) {
        let b = node.subtree_heap_bytes();
        sets += b;
        sets_max = sets_max.max(b);
        stored += node.tree().stored();
    }
    eprintln!(
        "  memory: subtree sets {:.2} KiB per node (largest {:.0} KiB), {:.1} announcements stored per node",
        sets as f64 / 1024.0 / n as f64,
        sets_max as f64 / 1024.0,
        stored as f64 / n as f64
    );
    // Where the resident set goes, per node: what the build left (nodes and their links, before any
    // event), then what convergence added: the stored announcements (each about its size plus a
    // hash map slot), the subtree sets, and the simulator's queue.
    let announce_bytes = std::mem::size_of::<meshrouter::core::wire::tree::Announce>() + 48;
    let queued = sim.queued();
    eprintln!(
        "  memory per node: {built_kib:.0} KiB after the build (Node {} B, Link {} B, {:.1} links each, \
         their buffers and keys), {:.0} KiB more after convergence: announcements {:.1} KiB, subtree \
         sets {:.2} KiB, simulator queue {:.2} KiB ({queued} events), the rest {:.0} KiB (sessions, \
         paths, maps' spare room, the allocator's)",
        std::mem::size_of::<meshrouter::core::node::Node>(),
        std::mem::size_of::<meshrouter::core::link::Link>(),
        2.0 * edges.len() as f64 / n as f64,
        kib_per_node - built_kib,
        (stored * announce_bytes) as f64 / 1024.0 / n as f64,
        sets as f64 / 1024.0 / n as f64,
        (queued * sim.queue_entry_bytes()) as f64 / 1024.0 / n as f64,
        kib_per_node
            - built_kib
            - ((stored * announce_bytes + sets) as f64 + (queued * sim.queue_entry_bytes()) as f64)
                / 1024.0
                / n as f64,
    );

    // First packets to new destinations, `batch_size` at once (100: a hundred new destinations a
    // second across the mesh), each batch given 1 s.
    let phase = Phase::start(&sim);
    let bytes = total_wire_bytes(&sim);
    let lookups = lookups_handled(&sim);
    let lookup_bytes_before = lookup_bytes_sent(&sim);
    let started = sim.now();
    let mut latencies = Vec::new();
    let mut tries = 0;
    // Its own draws, so that the pairs are the same whatever the simulator draws inside.
    let mut pick = Rng::from_seed([5; 32]);
    while tries < packets {
        let mut batch = Vec::new();
        while batch.len() < batch_size.min(packets - tries) {
            let (a, b) = (pick.below(n), pick.below(n));
            if a != b {
                let payload = (tries as u32).to_be_bytes();
                tries += 1;
                sim.send_packet(a, b, &payload);
                batch.push((b, sim.now(), ipv6_packet(sim.key(a), sim.key(b), &payload)));
            }
        }
        sim.run_for(Duration::from_secs(1));
        for (b, sent, packet) in batch {
            let arrived = sim
                .sim_node(b)
                .delivered
                .iter()
                .find(|(_, d)| d.payload == packet);
            if let Some((at, _)) = arrived {
                latencies.push(at.saturating_since(sent).as_secs_f64() * 1000.0);
            }
        }
        for i in 0..n {
            sim.take_delivered(i);
        }
    }
    let spent = sim.now().saturating_since(started).as_secs_f64();
    let all_bytes = (total_wire_bytes(&sim) - bytes) as f64 - idle_rate * spent;
    let lookup_bytes = (lookup_bytes_sent(&sim) - lookup_bytes_before) as f64;
    let lookup_messages = (lookups_handled(&sim) - lookups) as f64 / packets as f64;
    phase.end(&sim, "first packets");
    if std::env::var_os("SCALE_DEBUG").is_some() {
        let mut drops = std::collections::BTreeMap::new();
        for i in 0..n {
            for (k, v) in sim.node(i).map(|x| x.stats().drops).unwrap_or_default() {
                *drops.entry(k).or_insert(0u64) += v;
            }
        }
        eprintln!("  drops: {drops:?}");
    }
    latencies.sort_by(f64::total_cmp);
    let within = latencies.iter().filter(|&&l| l <= 1000.0).count();
    println!(
        "| {n} | {kind} | {} | {:.1} s, stable {:.0} s | {per_link:.0} B/s | {:.0} B, {:.0} B, {lookup_messages:.1} lookups | {:.1} / {:.1} ms | {within}/{packets} | {kib_per_node:.0} KiB | {:.0} s | {:.0} s |",
        edges.len(),
        root_at.map_or(f64::NAN, support::secs),
        support::secs(stable_at),
        all_bytes / packets as f64,
        lookup_bytes / packets as f64,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        to_root_wall,
        total.elapsed().as_secs_f64(),
    );
    if let Some(minutes) = std::env::var("SCALE_CHURN_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
    {
        churn(&mut sim, n, edges.len(), minutes);
    }
    heap_by_structure(&mut sim, n);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("SCALE_NODES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let kinds: Vec<&str> = match std::env::var("SCALE_TOPOLOGY").as_deref() {
        Ok("random") => vec!["random"],
        Ok("villages") => vec!["villages"],
        _ => vec!["random", "villages"],
    };
    let packets = std::env::var("SCALE_PACKETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let batch_size = std::env::var("SCALE_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    // Authenticity is not what this measures: signatures and key agreement are replaced by a cheap,
    // insecure stand-in (a third of the time at 10 000 nodes) unless SCALE_REAL_CRYPTO is set.
    if std::env::var_os("SCALE_REAL_CRYPTO").is_none() {
        meshrouter::core::crypto_stand_in::enable();
        eprintln!(
            "signatures and key agreement: insecure stand-in (SCALE_REAL_CRYPTO=1 for real ones)"
        );
    } else {
        eprintln!("signatures and key agreement: real (Ed25519, X25519)");
    }
    println!(
        "| nodes | topology | links | one root, stable tree (simulated) | idle control per link | per new destination: all bytes (less idle), lookup bytes (lookups and replies), lookup messages | first packet p50 / p99 | within 1 s | memory per node | to one root (wall) | whole run (wall) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        for kind in &kinds {
            run(n, kind, packets, batch_size);
        }
    }
}
