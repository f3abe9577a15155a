//! What one peer may cost this node in sync: signature checks per second, bad changes before its
//! changes are ignored for a while, and how much of its state is remembered. Every number here is
//! hit by a test in `limits/tests.rs`.

use std::time::Duration;

use crate::core::rate::TokenBucket;
use crate::core::time::Instant;

/// Signature checks per second one peer's Changes may cost (a pull after a partition moves a few
/// hundred to a few thousand changes a second; a Pi checks about 10 000 a second on one core).
pub const VERIFY_RATE: f64 = 10_000.0;
/// Checks one peer may burst to.
pub const VERIFY_BURST: f64 = 10_000.0;
/// Bad changes (malformed, badly signed, invalid, for another document) one peer may send within
/// [`BAD_WINDOW`] before its Changes are ignored for [`PENALTY`]: an honest peer sends none, since
/// it stores only what verified.
pub const MAX_BAD_CHANGES: u32 = 64;
/// The window bad changes are counted in.
pub const BAD_WINDOW: Duration = Duration::from_secs(10);
/// How long a peer that sent too many bad changes is not listened to (its pulls move elsewhere).
pub const PENALTY: Duration = Duration::from_secs(30);
/// Documents whose digest hash is remembered per peer, at most.
pub const MAX_KNOWN: usize = 8_192;
/// Pulls running at once, at most.
pub const MAX_PULLS: usize = 1_024;
/// Pulls of documents this node does not hold yet started from one peer's digests, at most (the rest
/// wait for the next digest).
pub const MAX_NEW_PULLS_PER_PEER: usize = 64;

/// One peer's sync budget.
#[derive(Debug)]
pub(super) struct PeerBudget {
    checks: TokenBucket,
    bad: u32,
    window_start: Instant,
    ignored_until: Option<Instant>,
}

impl PeerBudget {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            checks: TokenBucket::new(VERIFY_RATE, VERIFY_BURST, now),
            bad: 0,
            window_start: now,
            ignored_until: None,
        }
    }

    /// Whether the peer's changes are being ignored at `now`.
    pub(super) fn ignored(&self, now: Instant) -> bool {
        self.ignored_until.is_some_and(|until| now < until)
    }

    /// Takes `n` signature checks; false (and nothing taken) when the peer is over budget.
    pub(super) fn take_checks(&mut self, now: Instant, n: usize) -> bool {
        self.checks
            .take_many(now, u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Counts `n` bad changes; true when that puts the peer in the penalty box.
    pub(super) fn count_bad(&mut self, now: Instant, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        if now.saturating_since(self.window_start) >= BAD_WINDOW {
            self.window_start = now;
            self.bad = 0;
        }
        self.bad = self
            .bad
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        if self.bad > MAX_BAD_CHANGES {
            self.ignored_until = Some(now + PENALTY);
            self.bad = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests;
