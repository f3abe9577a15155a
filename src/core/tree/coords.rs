//! Tree coordinates and the distance greedy routing minimises.

/// A node's coordinates: the ports from the root down to it (the root's are empty).
pub type Coords = Vec<u64>;

/// Tree distance: hops from `a` up to the deepest common ancestor and down to `b`.
pub fn distance(a: &[u64], b: &[u64]) -> u64 {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    (a.len() + b.len() - 2 * common) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance(&[], &[]), 0);
        assert_eq!(distance(&[1, 2], &[]), 2);
        assert_eq!(distance(&[1, 2], &[1, 3]), 2);
        assert_eq!(distance(&[1, 2, 5], &[1]), 2);
        assert_eq!(distance(&[4], &[1, 3]), 3);
    }
}
