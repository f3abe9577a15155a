//! How many of the peer's frames do not reach us, estimated from the counters of those that do.
//!
//! Every data frame carries the sender's frame counter, one more than the last (see `keys`), so the
//! gaps among the counters we authenticate are the frames lost on the way to us. Liveness uses the
//! estimate to decide how many probes in a row must go unanswered before a link carrying traffic is
//! given up: three on a clean link (a crashed neighbour is found in 750 ms), up to seven on a lossy one,
//! so that a live link is given up by mistake about once in a million probe runs either way.
//!
//! A peer could skip counters to look lossier than it is; that only makes *its own* link slower to be
//! given up, which it could have by simply answering probes.

/// Counter positions per sample: each sample is the share of one block's frames that did not arrive.
pub const BLOCK: u64 = 64;
/// Parts per million, the unit of the estimate.
const PPM: u64 = 1_000_000;
/// Blocks skipped wholesale (a long outage) count as at most this many lost blocks.
const MAX_LOST_BLOCKS: u64 = 4;

/// A running estimate of one-way frame loss on a link.
#[derive(Debug, Clone, Default)]
pub struct FrameLoss {
    /// First counter of the block being counted, once a frame of the current key set arrived.
    block_start: Option<u64>,
    /// Frames received in that block.
    received: u64,
    /// Loss in parts per million, once a block was complete: rises fast (1/4 of each sample's excess),
    /// falls slowly (1/16), so a link that turned lossy is trusted less at once.
    ppm: Option<u64>,
}

impl FrameLoss {
    /// Notes a frame of the current key set with this counter (authenticated, not a replay).
    pub fn on_counter(&mut self, counter: u64) {
        let Some(start) = self.block_start else {
            self.block_start = Some(counter);
            self.received = 1;
            return;
        };
        if counter < start {
            // Reordered across a block's start: already counted as lost, which errs on the safe side.
            return;
        }
        let blocks_ahead = (counter - start) / BLOCK;
        if blocks_ahead == 0 {
            self.received += 1;
            return;
        }
        self.add_sample(BLOCK.saturating_sub(self.received));
        for _ in 1..blocks_ahead.min(MAX_LOST_BLOCKS) {
            self.add_sample(BLOCK);
        }
        self.block_start = Some(start + blocks_ahead * BLOCK);
        self.received = 1;
    }

    /// A new key set starts its counters at zero: the block being counted is dropped, the estimate kept.
    pub fn on_new_keys(&mut self) {
        self.block_start = None;
        self.received = 0;
    }

    fn add_sample(&mut self, lost: u64) {
        let sample = lost.min(BLOCK) * PPM / BLOCK;
        self.ppm = Some(match self.ppm {
            None => sample,
            Some(old) if sample > old => old + (sample - old) / 4,
            Some(old) => old - (old - sample) / 16,
        });
    }

    /// The estimated share of the peer's frames lost on the way to us, in parts per million, or `None`
    /// before a block of [`BLOCK`] counters was seen.
    pub fn ppm(&self) -> Option<u64> {
        self.ppm
    }
}

/// Unanswered probes in a row after which a link carrying traffic is given up, for a one-way loss
/// estimate. A probe's round trip is lost with probability q ≈ 2 × the one-way loss, and a live link
/// is given up by mistake when k probes in a row are: k is the smallest with q^k ≤ about 10⁻⁶, between
/// [`MIN_PROBES`] and [`MAX_PROBES`] (with no estimate yet, the most).
pub fn probes_before_dead(one_way_ppm: Option<u64>) -> u32 {
    match one_way_ppm {
        None => MAX_PROBES,
        Some(p) if p <= 5_000 => MIN_PROBES, // q ≤ 1 %: 1e-6
        Some(p) if p <= 15_000 => 4,         // q ≤ 3 %: 8e-7
        Some(p) if p <= 30_000 => 5,         // q ≤ 6 %: 8e-7
        Some(p) if p <= 50_000 => 6,         // q ≤ 10 %: 1e-6
        Some(_) => MAX_PROBES,
    }
}

/// Fewest unanswered probes that give a link up (on a clean link).
pub const MIN_PROBES: u32 = 3;
/// Most unanswered probes that give a link up (a lossy link, or one not measured yet).
pub const MAX_PROBES: u32 = 7;

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(loss: &mut FrameLoss, counters: impl IntoIterator<Item = u64>) {
        for c in counters {
            loss.on_counter(c);
        }
    }

    #[test]
    fn a_clean_link_measures_zero_after_one_block() {
        let mut l = FrameLoss::default();
        feed(&mut l, 0..BLOCK);
        assert_eq!(
            l.ppm(),
            None,
            "the block is complete only when the next one starts"
        );
        l.on_counter(BLOCK);
        assert_eq!(l.ppm(), Some(0));
        assert_eq!(probes_before_dead(l.ppm()), MIN_PROBES);
        assert_eq!(probes_before_dead(None), MAX_PROBES);
    }

    #[test]
    fn every_fourth_frame_lost_measures_a_quarter() {
        let mut l = FrameLoss::default();
        feed(&mut l, (0..BLOCK * 200).filter(|c| c % 4 != 3));
        let ppm = l.ppm().unwrap();
        assert!((240_000..=260_000).contains(&ppm), "{ppm}");
        assert_eq!(probes_before_dead(l.ppm()), MAX_PROBES);
    }

    #[test]
    fn loss_is_believed_fast_and_forgotten_slowly() {
        let mut l = FrameLoss::default();
        feed(&mut l, 0..BLOCK * 10);
        assert_eq!(l.ppm(), Some(0));
        // One frame lost in a block moves the estimate by a quarter of 1/64: still a clean link.
        feed(
            &mut l,
            (BLOCK * 10..BLOCK * 11).filter(|&c| c != BLOCK * 10 + 5),
        );
        l.on_counter(BLOCK * 11);
        assert_eq!(l.ppm(), Some(15_625 / 4));
        assert_eq!(probes_before_dead(l.ppm()), MIN_PROBES);
        // A block with 15 of 64 lost: a quarter of the sample's excess at once.
        feed(&mut l, (BLOCK * 11 + 1..BLOCK * 12).filter(|c| c % 4 != 0));
        l.on_counter(BLOCK * 12);
        let high = 3_906 + (234_375 - 3_906) / 4;
        assert_eq!(l.ppm(), Some(high));
        assert_eq!(probes_before_dead(l.ppm()), MAX_PROBES);
        // Clean blocks take it down by 1/16 of the rest each.
        feed(&mut l, BLOCK * 12 + 1..BLOCK * 13 + 1);
        assert_eq!(l.ppm(), Some(high - high / 16));
        let mut blocks = 1;
        while probes_before_dead(l.ppm()) > MIN_PROBES {
            feed(&mut l, BLOCK * (12 + blocks) + 1..BLOCK * (13 + blocks) + 1);
            blocks += 1;
        }
        assert_eq!(blocks, 39, "clean blocks before the fewest probes again");
    }

    #[test]
    fn steady_loss_of_one_percent_asks_for_four_probes() {
        let mut l = FrameLoss::default();
        feed(&mut l, (0..BLOCK * 500).filter(|c| c % 100 != 7));
        let ppm = l.ppm().unwrap();
        assert!((5_000..=15_000).contains(&ppm), "{ppm}");
        assert_eq!(probes_before_dead(l.ppm()), 4);
    }

    #[test]
    fn an_outage_counts_as_at_most_four_lost_blocks_and_new_keys_restart_the_count() {
        let mut l = FrameLoss::default();
        feed(&mut l, 0..=BLOCK);
        feed(&mut l, [BLOCK * 1000]);
        // Samples: the block at 16 (1 of 16 received), then 3 lost blocks.
        let mut expected = FrameLoss::default();
        feed(&mut expected, 0..=BLOCK);
        expected.add_sample(BLOCK - 1);
        for _ in 0..3 {
            expected.add_sample(BLOCK);
        }
        assert_eq!(l.ppm(), expected.ppm());
        let before = l.ppm();
        l.on_new_keys();
        feed(&mut l, 0..BLOCK);
        assert_eq!(
            l.ppm(),
            before,
            "a new key set's counters from 0 are no gap"
        );
        // Reordered frames from before the block are not counted twice.
        l.on_counter(3);
        assert_eq!(l.ppm(), before);
    }

    #[test]
    fn any_counters_give_an_estimate_within_range() {
        let mut l = FrameLoss::default();
        for c in [u64::MAX, 0, u64::MAX - 1, 5, u64::MAX] {
            l.on_counter(c);
            assert!(l.ppm().is_none_or(|p| p <= PPM));
        }
    }
}
