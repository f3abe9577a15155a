//! Sliding replay window over 64-bit counters (RFC 6479 style).
//!
//! The window is a ring of 64-bit blocks. A counter is accepted once, and only if it is newer than
//! `highest - USABLE`. Reordering within the window is accepted; duplicates and anything older are refused.
//! Callers must update the window only after the frame's authentication tag verified, so forged frames
//! cannot move it.

const BLOCKS: usize = 64;
const BLOCK_BITS: u64 = 64;
/// Counters this far behind the highest one seen are still accepted (one block is the ring's slack).
pub const USABLE: u64 = (BLOCKS as u64 - 1) * BLOCK_BITS;

/// Remembers which recent counters were seen.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    highest: u64,
    seen_any: bool,
    blocks: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            highest: 0,
            seen_any: false,
            blocks: [0; BLOCKS],
        }
    }
}

impl ReplayWindow {
    /// Returns true if `counter` would be accepted (it is new and not too old). Does not change anything.
    pub fn check(&self, counter: u64) -> bool {
        if !self.seen_any || counter > self.highest {
            return true;
        }
        if self.highest - counter >= USABLE {
            return false;
        }
        let (block, bit) = Self::position(counter);
        self.blocks[block] & (1 << bit) == 0
    }

    /// Accepts `counter` if [`check`](Self::check) allows it and records it; returns whether it was accepted.
    pub fn update(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if !self.seen_any || counter > self.highest {
            let from = if self.seen_any {
                self.highest / BLOCK_BITS + 1
            } else {
                0
            };
            let to = counter / BLOCK_BITS;
            // Clear the blocks the window slides over (at most the whole ring).
            for block in from..=to.min(from + BLOCKS as u64 - 1).max(from) {
                if block <= to {
                    self.blocks[(block % BLOCKS as u64) as usize] = 0;
                }
            }
            self.highest = counter;
            self.seen_any = true;
        }
        let (block, bit) = Self::position(counter);
        self.blocks[block] |= 1 << bit;
        true
    }

    fn position(counter: u64) -> (usize, u64) {
        (
            ((counter / BLOCK_BITS) % BLOCKS as u64) as usize,
            counter % BLOCK_BITS,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The obvious model: a set of everything seen, and the highest counter.
    #[derive(Default)]
    struct Model {
        seen: BTreeSet<u64>,
        highest: Option<u64>,
    }

    impl Model {
        fn update(&mut self, c: u64) -> bool {
            let fresh = match self.highest {
                Some(h) if c <= h => h - c < USABLE && !self.seen.contains(&c),
                _ => true,
            };
            if fresh {
                self.seen.insert(c);
                self.highest = Some(self.highest.map_or(c, |h| h.max(c)));
            }
            fresh
        }
    }

    #[test]
    fn basics() {
        let mut w = ReplayWindow::default();
        assert!(w.update(0));
        assert!(!w.update(0));
        assert!(w.update(5));
        assert!(w.update(3));
        assert!(!w.update(3));
        assert!(w.update(5 + USABLE));
        assert!(!w.update(5), "just outside the window");
        assert!(w.update(6));
        assert!(w.update(u64::MAX));
        assert!(!w.update(u64::MAX));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Random streams: mostly increasing with jitter, some duplicates and big jumps; window == model.
        #[test]
        fn matches_the_model(steps in proptest::collection::vec((0u8..10, 0u64..5000), 1..600)) {
            let mut w = ReplayWindow::default();
            let mut m = Model::default();
            let mut next = 0u64;
            for (kind, amount) in steps {
                let c = match kind {
                    0..=5 => { next += 1; next }
                    6 => next.saturating_sub(amount % (USABLE + 200)),
                    7 => next,
                    8 => { next += amount; next }
                    _ => amount,
                };
                prop_assert_eq!(w.update(c), m.update(c), "counter {}", c);
            }
        }

        /// Any permutation of a block of counters narrower than the window is accepted exactly once.
        #[test]
        fn reordering_within_the_window_is_accepted(seed in any::<u64>(), len in 1usize..2000) {
            let mut counters: Vec<u64> = (0..len as u64).collect();
            let mut x = seed | 1;
            for i in (1..counters.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                counters.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut w = ReplayWindow::default();
            for &c in &counters { prop_assert!(w.update(c)); }
            for &c in &counters { prop_assert!(!w.update(c)); }
        }
    }
}
