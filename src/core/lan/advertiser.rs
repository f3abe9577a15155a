//! When to advertise on a LAN (RFC 4861 §6.2.4-6.2.6): at once when starting, then the first
//! three at most 16 s apart so that hosts that missed one learn quickly, then every 200-600 s at
//! random; a solicitation is answered within 0-0.5 s, never sooner than 3 s after the last
//! advertisement; stopping sends a last advertisement with every lifetime 0.

use std::collections::VecDeque;
use std::time::Duration;

use super::ra::Advertisement;
use crate::core::rng::Rng;
use crate::core::time::Instant;

/// Longest interval between unsolicited advertisements (RFC 4861 `MaxRtrAdvInterval` default).
pub const MAX_INTERVAL: Duration = Duration::from_secs(600);
/// Shortest (`MinRtrAdvInterval`, a third of the longest).
pub const MIN_INTERVAL: Duration = Duration::from_secs(200);
/// The first advertisements are at most this far apart (`MAX_INITIAL_RTR_ADVERT_INTERVAL`).
pub const INITIAL_INTERVAL: Duration = Duration::from_secs(16);
/// How many first advertisements (`MAX_INITIAL_RTR_ADVERTISEMENTS`).
pub const INITIAL_ADVERTISEMENTS: u8 = 3;
/// Advertisements to one LAN are at least this far apart (`MIN_DELAY_BETWEEN_RAS`).
pub const MIN_DELAY_BETWEEN: Duration = Duration::from_secs(3);
/// A solicitation is answered within this (`MAX_RA_DELAY_TIME`).
pub const MAX_ANSWER_DELAY: Duration = Duration::from_millis(500);

/// One LAN's advertisements.
pub struct Advertiser {
    advertisement: Advertisement,
    rng: Rng,
    /// The next unsolicited advertisement.
    next: Instant,
    /// An answer to a solicitation, if one is due.
    answer: Option<Instant>,
    last_sent: Option<Instant>,
    initial_left: u8,
    stopped: bool,
    out: VecDeque<Vec<u8>>,
}

impl Advertiser {
    /// Starts advertising `advertisement` (the first goes out at `now`).
    pub fn new(advertisement: Advertisement, seed: [u8; 32], now: Instant) -> Self {
        Self {
            advertisement,
            rng: Rng::from_seed(seed),
            next: now,
            answer: None,
            last_sent: None,
            initial_left: INITIAL_ADVERTISEMENTS,
            stopped: false,
            out: VecDeque::new(),
        }
    }

    /// What is advertised.
    pub fn advertisement(&self) -> &Advertisement {
        &self.advertisement
    }

    /// A host asked (a Router Solicitation arrived).
    pub fn on_solicitation(&mut self, now: Instant) {
        if self.stopped || self.answer.is_some() {
            return;
        }
        let mut at = now + self.rng.jitter(MAX_ANSWER_DELAY);
        if let Some(last) = self.last_sent {
            at = at.max(last + MIN_DELAY_BETWEEN);
        }
        // An unsolicited one due sooner serves as the answer.
        if at < self.next {
            self.answer = Some(at);
        }
    }

    /// When [`Self::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        Some(self.answer.map_or(self.next, |a| a.min(self.next)))
    }

    /// Sends what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stopped || self.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        self.out.push_back(self.advertisement.encode());
        self.last_sent = Some(now);
        self.answer = None;
        let span = MAX_INTERVAL - MIN_INTERVAL;
        let mut interval = MIN_INTERVAL + self.rng.jitter(span);
        if self.initial_left > 0 {
            self.initial_left -= 1;
            interval = interval.min(INITIAL_INTERVAL);
        }
        self.next = now + interval;
    }

    /// Stops advertising: a last advertisement withdraws the router, its routes and its DNS server.
    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.out.push_back(self.advertisement.withdrawn().encode());
        }
    }

    /// The next advertisement to send (the ICMPv6 message, to `ff02::1` on the LAN).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    fn advertiser() -> Advertiser {
        let advertisement = Advertisement {
            prefix: "300:1::".parse().unwrap(),
            link_layer: None,
            router_lifetime: Duration::ZERO,
            route_lifetime: Duration::from_secs(1800),
            prefix_lifetimes: (Duration::from_secs(86400), Duration::from_secs(14400)),
            dns: Vec::new(),
            dns_lifetime: Duration::ZERO,
        };
        Advertiser::new(advertisement, [7; 32], at_ms(0))
    }

    /// Runs the advertiser from `from` to `to` (ms), returning when it sent.
    fn run(a: &mut Advertiser, from: u64, to: u64) -> Vec<u64> {
        let mut sent = Vec::new();
        let mut now = from;
        while let Some(t) = a.poll_timeout() {
            // Rounded up to the next millisecond, so that the timer is due.
            let t = t.as_micros().div_ceil(1000);
            if t > to {
                break;
            }
            now = now.max(t);
            a.handle_timeout(at_ms(now));
            while a.poll_transmit().is_some() {
                sent.push(now);
            }
        }
        sent
    }

    #[test]
    fn the_first_three_come_quickly_then_every_200_to_600_seconds() {
        let mut a = advertiser();
        let sent = run(&mut a, 0, 3_600_000);
        assert_eq!(sent[0], 0, "at once");
        for pair in sent.windows(2).take(3) {
            assert!(pair[1] - pair[0] <= 16_000, "{sent:?}");
        }
        for pair in sent.windows(2).skip(3) {
            assert!(
                (200_000..=600_000).contains(&(pair[1] - pair[0])),
                "{sent:?}"
            );
        }
        assert!(sent.len() >= 9, "{sent:?}");
    }

    #[test]
    fn a_solicitation_is_answered_within_half_a_second_but_not_within_3_s_of_the_last() {
        let mut a = advertiser();
        run(&mut a, 0, 100_000);
        // Well after the first ones: answered within 0.5 s.
        let asked = 200_000 - 1;
        a.on_solicitation(at_ms(asked));
        let sent = run(&mut a, asked, asked + 1_000);
        assert_eq!(sent.len(), 1);
        assert!(sent[0] - asked <= 500);
        // Asked again at once: not sooner than 3 s after that answer; one answer for many asks.
        a.on_solicitation(at_ms(sent[0] + 10));
        a.on_solicitation(at_ms(sent[0] + 20));
        let again = run(&mut a, sent[0] + 20, sent[0] + 10_000);
        assert_eq!(again.len(), 1);
        assert!(again[0] >= sent[0] + 3_000);
    }

    #[test]
    fn stopping_withdraws_and_then_nothing_is_sent() {
        let mut a = advertiser();
        run(&mut a, 0, 1);
        a.stop();
        let last = a.poll_transmit().unwrap();
        assert_eq!(&last[6..8], &[0, 0]);
        assert_eq!(a.poll_timeout(), None);
        a.on_solicitation(at_ms(5));
        a.handle_timeout(at_ms(10_000_000));
        assert_eq!(a.poll_transmit(), None);
    }
}
