//! Topology builders: edge lists over node indices `0..n`.

use crate::core::rng::Rng;

/// An undirected edge between two node indices.
pub type Edge = (usize, usize);

/// `0 - 1 - ... - (n-1)`.
pub fn line(n: usize) -> Vec<Edge> {
    (1..n).map(|i| (i - 1, i)).collect()
}

/// A line closed into a cycle.
pub fn ring(n: usize) -> Vec<Edge> {
    let mut edges = line(n);
    if n > 2 {
        edges.push((n - 1, 0));
    }
    edges
}

/// A `width × height` grid, node `y * width + x`.
pub fn grid(width: usize, height: usize) -> Vec<Edge> {
    let mut edges = Vec::new();
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            if x + 1 < width {
                edges.push((i, i + 1));
            }
            if y + 1 < height {
                edges.push((i, i + width));
            }
        }
    }
    edges
}

/// Node 0 in the middle, linked to every other node.
pub fn star(n: usize) -> Vec<Edge> {
    (1..n).map(|i| (0, i)).collect()
}

/// A connected random graph with the given mean degree: a random spanning tree (each node links to a
/// random earlier one), then random extra edges until `n × mean_degree / 2` edges exist.
pub fn random(n: usize, mean_degree: f64, rng: &mut Rng) -> Vec<Edge> {
    let mut edges: Vec<Edge> = (1..n).map(|i| (rng.below(i), i)).collect();
    let mut present: std::collections::HashSet<Edge> = edges.iter().copied().collect();
    let target = ((n as f64 * mean_degree) / 2.0).round() as usize;
    let mut attempts = 0;
    while edges.len() < target && attempts < target * 100 {
        attempts += 1;
        let (a, b) = (rng.below(n), rng.below(n));
        let edge = (a.min(b), a.max(b));
        if a != b && present.insert(edge) {
            edges.push(edge);
        }
    }
    edges
}

/// Two random clusters (`0..a` and `a..a+b`) joined by a single edge between their first nodes.
pub fn two_clusters(a: usize, b: usize, mean_degree: f64, rng: &mut Rng) -> Vec<Edge> {
    let mut edges = random(a, mean_degree, rng);
    edges.extend(
        random(b, mean_degree, rng)
            .into_iter()
            .map(|(x, y)| (x + a, y + a)),
    );
    edges.push((0, a));
    edges
}

/// Nodes per village in [`villages`].
pub const VILLAGE: usize = 50;

/// A community-structured mesh: villages of [`VILLAGE`] nodes, each a random graph of mean degree 6
/// (dense local radio links), and the villages joined as a connected random graph of mean degree 3 by
/// single long links between random members (the few uplinks and point-to-point hops between villages).
pub fn villages(n: usize, rng: &mut Rng) -> Vec<Edge> {
    let count = n.div_ceil(VILLAGE).max(1);
    let mut edges = Vec::new();
    for v in 0..count {
        let first = v * VILLAGE;
        let size = VILLAGE.min(n - first);
        edges.extend(
            random(size, 6.0_f64.min(size.saturating_sub(1) as f64), rng)
                .into_iter()
                .map(|(x, y)| (x + first, y + first)),
        );
    }
    for (a, b) in random(count, 3.0_f64.min(count.saturating_sub(1) as f64), rng) {
        let member =
            |v: usize, rng: &mut Rng| v * VILLAGE + rng.below(VILLAGE.min(n - v * VILLAGE));
        edges.push((member(a, rng), member(b, rng)));
    }
    edges
}

/// Hop counts from `from` to every node (breadth-first), `usize::MAX` if unreachable.
pub fn hop_counts(n: usize, edges: &[Edge], from: usize) -> Vec<usize> {
    let mut adjacency = vec![Vec::new(); n];
    for &(a, b) in edges {
        adjacency[a].push(b);
        adjacency[b].push(a);
    }
    let mut dist = vec![usize::MAX; n];
    let mut queue = std::collections::VecDeque::from([from]);
    dist[from] = 0;
    while let Some(x) = queue.pop_front() {
        for &y in &adjacency[x] {
            if dist[y] == usize::MAX {
                dist[y] = dist[x] + 1;
                queue.push_back(y);
            }
        }
    }
    dist
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(line(4).len(), 3);
        assert_eq!(ring(4).len(), 4);
        assert_eq!(grid(7, 7).len(), 2 * 7 * 6);
        assert_eq!(star(5).len(), 4);
        let mut rng = Rng::from_seed([1; 32]);
        let g = random(100, 4.0, &mut rng);
        assert_eq!(g.len(), 200);
        assert!(hop_counts(100, &g, 0).iter().all(|&d| d != usize::MAX));
        assert_eq!(hop_counts(49, &grid(7, 7), 0)[48], 12);
        let v = villages(1020, &mut rng);
        assert!(hop_counts(1020, &v, 0).iter().all(|&d| d != usize::MAX));
        let long = v.iter().filter(|(a, b)| a / VILLAGE != b / VILLAGE).count();
        assert_eq!(long, 32, "21 villages, mean degree 3 between them");
    }
}
