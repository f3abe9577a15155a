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

    /// The tokens available at `now`.
    pub fn tokens(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// When a token will be available (now or in the past if one is).
    pub fn next_token_at(&self) -> Instant {
        self.available_at(1)
    }

    /// When `n` tokens (at most a full bucket) will be available (now or in the past if they are).
    pub fn available_at(&self, n: u32) -> Instant {
        let need = f64::from(n).min(self.burst);
        if self.tokens >= need || self.rate <= 0.0 {
            return self.last;
        }
        self.last + std::time::Duration::from_secs_f64((need - self.tokens) / self.rate)
    }

    /// Takes a token if one is available.
    pub fn take(&mut self, now: Instant) -> bool {
        self.take_many(now, 1)
    }

    /// Changes the rate and burst from `now` on (tokens earned so far are kept, up to the new burst).
    pub fn set_rate(&mut self, now: Instant, rate: f64, burst: f64) {
        self.refill(now);
        self.rate = rate;
        self.burst = burst;
        self.tokens = self.tokens.min(burst);
    }
}

/// A token bucket per key (a requester, a peer), for at most `max_keys` keys at once. A key's bucket
/// that has refilled is dropped first when room is needed (it holds nothing a new bucket would not);
/// if every bucket is in use, all are dropped, which at worst gives each key one more burst, so a
/// global bucket behind this one still bounds the total.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    buckets: std::collections::HashMap<K, TokenBucket>,
    rate: f64,
    burst: f64,
    max_keys: usize,
}

impl<K: std::hash::Hash + Eq> KeyedBuckets<K> {
    /// No keys yet; each gets `rate` tokens a second up to `burst`.
    pub fn new(rate: f64, burst: f64, max_keys: usize) -> Self {
        Self {
            buckets: std::collections::HashMap::new(),
            rate,
            burst,
            max_keys,
        }
    }

    /// Takes a token from `key`'s bucket if one is available.
    pub fn take(&mut self, now: Instant, key: K) -> bool {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_keys {
            self.buckets.retain(|_, b| {
                b.refill(now);
                b.tokens < b.burst
            });
            if self.buckets.len() >= self.max_keys {
                self.buckets.clear();
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(rate, burst, now))
            .take(now)
    }

    /// Keys with a bucket.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
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

    #[test]
    fn keyed_buckets_limit_each_key_and_stay_bounded() {
        let t0 = Instant::ZERO;
        let mut b = KeyedBuckets::new(1.0, 2.0, 100);
        assert_eq!((0..10).filter(|_| b.take(t0, 1u32)).count(), 2);
        assert!(b.take(t0, 2), "another key has its own bucket");
        for k in 0..10_000u32 {
            b.take(t0, k);
            assert!(b.len() <= 100);
        }
    }
}
