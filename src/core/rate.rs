//! A token bucket: at most `rate` events per second on average, `burst` at once.

use crate::core::time::Instant;

/// Token bucket rate limiter.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
            rate,
            burst,
        }
    }

    /// Takes `n` tokens if that many are available (none otherwise).
    pub fn take_many(&mut self, now: Instant, n: u32) -> bool {
        self.refill(now);
        if self.tokens >= f64::from(n) {
            self.tokens -= f64::from(n);
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// When a token will be available (now or in the past if one is).
    pub fn next_token_at(&self) -> Instant {
        if self.tokens >= 1.0 || self.rate <= 0.0 {
            return self.last;
        }
        self.last + std::time::Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }

    /// Takes a token if one is available.
    pub fn take(&mut self, now: Instant) -> bool {
        self.take_many(now, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_to_rate_after_burst() {
        let t0 = Instant::ZERO;
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        assert_eq!((0..5).filter(|_| b.take(t0)).count(), 3);
        let t1 = t0 + std::time::Duration::from_millis(250);
        assert_eq!((0..5).filter(|_| b.take(t1)).count(), 2);
    }
}
