//! Measurement helpers shared by the simulator tests.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use meshrouter::core::time::Instant;
use meshrouter::sim::{Sim, topology};

/// Resident memory of this process in KiB (Linux), to report memory per simulated node.
pub fn rss_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Seconds as an `Instant` on the simulator's clock.
pub fn at_secs(s: f64) -> Instant {
    Instant::from_micros((s * 1e6) as u64)
}

/// Seconds of simulated time.
pub fn secs(i: Instant) -> f64 {
    i.as_micros() as f64 / 1e6
}

/// Runs in 50 ms steps until every node in `among` has the best key among them as root; returns when.
pub fn run_until_one_root(sim: &mut Sim, among: &[usize], limit: Duration) -> Option<Instant> {
    let best = Some(sim.best_key(among));
    let end = sim.now() + limit;
    while sim.now() < end {
        if sim.distinct_roots(among) == vec![best] {
            return Some(sim.now());
        }
        sim.run_for(Duration::from_millis(50));
    }
    (sim.distinct_roots(among) == vec![best]).then(|| sim.now())
}

/// Result of sending single packets between random pairs.
#[derive(Debug, Default)]
pub struct Sample {
    pub tries: usize,
    pub delivered: usize,
    pub hops: u64,
    pub shortest_hops: usize,
}

impl Sample {
    pub fn stretch(&self) -> f64 {
        self.hops as f64 / self.shortest_hops as f64
    }
}

/// Sends IPv6 packets between `pairs` random pairs of `among` through the real path (lookup, session,
/// greedy routing): a first one to set things up, then the measured one, each given `wait` to arrive.
pub fn sample_pairs(
    sim: &mut Sim,
    edges: &[topology::Edge],
    among: &[usize],
    pairs: usize,
    wait: Duration,
) -> Sample {
    let mut sample = Sample::default();
    while sample.tries < pairs {
        let (a, b) = (
            among[sim.random_index(among.len())],
            among[sim.random_index(among.len())],
        );
        if a == b {
            continue;
        }
        sample.tries += 1;
        // The first packet finds the destination and sets up the session; the second measures the path.
        sim.send_packet(a, b, b"warm up");
        sim.run_for(wait);
        sim.take_delivered(b);
        let forwarded = sim.total_forwarded();
        sim.send_packet(a, b, format!("sample {}", sample.tries).as_bytes());
        sim.run_for(wait);
        if sim.take_delivered(b).len() == 1 {
            sample.delivered += 1;
            sample.hops += sim.total_forwarded() - forwarded + 1;
            sample.shortest_hops += topology::hop_counts(sim.len(), edges, a)[b];
        }
    }
    sample
}

/// Runs a steady flow of numbered packets from `a` to `b` every `interval` for `duration`, calling
/// `event` once at `event_at` (relative to the start). Returns the send times of the packets that
/// arrived, relative to the start, in seconds.
pub fn flow(
    sim: &mut Sim,
    a: usize,
    b: usize,
    interval: Duration,
    duration: Duration,
    event_at: Duration,
    mut event: impl FnMut(&mut Sim),
) -> Vec<f64> {
    let start = sim.now();
    let mut fired = false;
    let mut sent_at = Vec::new();
    sim.take_delivered(b);
    while sim.now().saturating_since(start) < duration {
        if !fired && sim.now().saturating_since(start) >= event_at {
            event(sim);
            fired = true;
        }
        sim.send(a, b, &(sent_at.len() as u64).to_be_bytes());
        sent_at.push(secs(sim.now()) - secs(start));
        sim.run_for(interval);
    }
    sim.run_for(Duration::from_millis(500));
    sim.take_delivered(b)
        .iter()
        .filter_map(|(_, d)| d.payload[..].try_into().ok().map(u64::from_be_bytes))
        .filter_map(|seq| sent_at.get(seq as usize).copied())
        .collect()
}

/// The longest stretch of send times with no delivered packet that starts at or after `from`.
pub fn longest_gap(delivered_send_times: &[f64], from: f64, end: f64) -> f64 {
    let mut times: Vec<f64> = delivered_send_times.to_vec();
    times.sort_by(f64::total_cmp);
    let mut last = from;
    let mut gap: f64 = 0.0;
    for t in times.into_iter().filter(|&t| t >= from) {
        gap = gap.max(t - last);
        last = t;
    }
    gap.max(end - last)
}

/// The wires a single large packet from `a` to `b` crosses.
pub fn path_wires(sim: &mut Sim, a: usize, b: usize) -> Vec<usize> {
    let wires = sim.wires().count();
    let before: Vec<u64> = (0..wires).map(|w| sim.wire_bytes(w).iter().sum()).collect();
    sim.send(a, b, &[0u8; 1000]);
    sim.run_for(Duration::from_millis(200));
    sim.take_delivered(b);
    (0..wires)
        .filter(|&w| sim.wire_bytes(w).iter().sum::<u64>() - before[w] >= 1000)
        .collect()
}

/// True if `a` still reaches `b` when the edges for which `removed` says true are gone.
pub fn still_connected(
    n: usize,
    edges: &[topology::Edge],
    a: usize,
    b: usize,
    removed: impl Fn(&topology::Edge) -> bool,
) -> bool {
    let kept: Vec<topology::Edge> = edges.iter().copied().filter(|e| !removed(e)).collect();
    topology::hop_counts(n, &kept, a)[b] != usize::MAX
}
