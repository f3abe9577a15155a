//! The daemon's clock: turns tokio's monotonic time into the core's `Instant`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::time::Instant;

/// Maps monotonic time to core instants (microseconds since the daemon started).
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }

    /// The core's idea of now.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    /// The tokio instant of a core instant, for timers.
    pub(crate) fn to_tokio(self, at: Instant) -> tokio::time::Instant {
        self.start + Duration::from_micros(at.as_micros())
    }
}

/// Wall-clock microseconds since 1970: the core's `seq_base`, which must grow across restarts so that
/// a restarted node's announcements and handshakes win over its old ones.
pub(crate) fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}
