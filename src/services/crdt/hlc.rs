//! Hybrid logical clock for last-writer-wins registers.
//!
//! Wall-clock milliseconds when clocks are sane, a logical counter when several writes share a
//! millisecond or a node's clock is behind what it has already seen: a write always sorts after every
//! write its replica knew of, even on a Raspberry Pi that booted without a real-time clock. Ties
//! between nodes are broken by the writer's key (the dot's actor), never by arrival order.

/// One HLC reading; ordered by time, then counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (or the highest seen).
    pub millis: u64,
    /// Breaks ties within one millisecond.
    pub logical: u32,
}

impl Hlc {
    /// The reading for a new write at wall time `wall_millis`, after everything `latest` covers.
    pub fn next(latest: Hlc, wall_millis: u64) -> Hlc {
        if wall_millis > latest.millis {
            Hlc {
                millis: wall_millis,
                logical: 0,
            }
        } else if latest.logical < u32::MAX {
            Hlc {
                millis: latest.millis,
                logical: latest.logical + 1,
            }
        } else {
            Hlc {
                millis: latest.millis.saturating_add(1),
                logical: 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_sorts_after_what_was_seen_even_with_a_clock_behind() {
        let seen = Hlc {
            millis: 5000,
            logical: 3,
        };
        assert_eq!(
            Hlc::next(seen, 9000),
            Hlc {
                millis: 9000,
                logical: 0
            }
        );
        assert_eq!(
            Hlc::next(seen, 10),
            Hlc {
                millis: 5000,
                logical: 4
            }
        );
        let full = Hlc {
            millis: 1,
            logical: u32::MAX,
        };
        assert!(Hlc::next(full, 0) > full);
    }
}
