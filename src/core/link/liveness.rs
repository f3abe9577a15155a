//! Keepalives, dead-link detection and round-trip time for one link.
//!
//! - Idle: a keepalive goes out when nothing else was sent for [`KEEPALIVE_INTERVAL`]; a link that has
//!   received nothing authenticated for [`IDLE_DEAD`] is dead. With a keepalive every 2 s, 7 in a row
//!   must be lost before that happens: at 10 % loss that is a one-in-ten-million event.
//! - Carrying traffic: when we are sending and the peer has been quiet for [`PROBE_AFTER`], we send a
//!   keepalive asking for an immediate reply, every [`PROBE_AFTER`]; if no reply comes within
//!   [`ACTIVE_DEAD`] (or 4 × RTT on a slow link) of the first probe, the link is dead. Seven probes fit in
//!   that time, so loss alone rarely kills a live link, and a dead one is found within 2 s.
//! - RTT: keepalives carry timestamps and echoes (see `wire::keepalive`), smoothed as in RFC 6298.

use std::time::Duration;

use crate::core::time::{Instant, earliest};
use crate::core::wire::keepalive::{Keepalive, REPLY_WANTED};

/// Send a keepalive after this long without sending anything.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// A link that received nothing for this long is dead.
pub const IDLE_DEAD: Duration = Duration::from_secs(15);
/// While sending traffic, probe when the peer has been quiet this long, and re-probe at this interval.
pub const PROBE_AFTER: Duration = Duration::from_millis(250);
/// While probing, a link with no answer for this long after the first probe is dead.
pub const ACTIVE_DEAD: Duration = Duration::from_millis(1750);
/// Traffic sent within this window counts as "carrying traffic".
const ACTIVE_WINDOW: Duration = Duration::from_secs(1);
/// RTT samples above this are discarded as bogus (clock wrap, a very stale echo).
const MAX_RTT_SAMPLE: Duration = Duration::from_secs(30);

/// What the link should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LivenessAction {
    /// Nothing.
    None,
    /// Send this keepalive.
    Send(Keepalive),
    /// The link is dead.
    Dead,
}

/// Liveness and RTT state of one link.
#[derive(Debug, Clone)]
pub struct Liveness {
    last_recv: Instant,
    last_send: Instant,
    last_traffic_send: Option<Instant>,
    probe_start: Option<Instant>,
    last_probe: Option<Instant>,
    echo: Option<(u32, Instant)>,
    reply_due: bool,
    srtt: Option<Duration>,
    rttvar: Duration,
}

fn clock_ms(now: Instant) -> u32 {
    // Zero means "no stamp" on the wire, so it is never sent.
    ((now.as_micros() / 1000) as u32).max(1)
}

impl Liveness {
    /// Starts tracking a link that just came up at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            last_recv: now,
            last_send: now,
            last_traffic_send: None,
            probe_start: None,
            last_probe: None,
            echo: None,
            reply_due: false,
            srtt: None,
            rttvar: Duration::ZERO,
        }
    }

    /// Notes that an authenticated frame arrived.
    pub fn on_receive(&mut self, now: Instant) {
        self.last_recv = now;
        self.probe_start = None;
        self.last_probe = None;
    }

    /// Notes that a frame was sent; `traffic` is false for pure keepalives.
    pub fn on_send(&mut self, now: Instant, traffic: bool) {
        self.last_send = now;
        if traffic {
            self.last_traffic_send = Some(now);
        }
    }

    /// Processes a received keepalive: stores its stamp for echoing, takes an RTT sample from its echo and
    /// notes whether a reply is wanted.
    pub fn on_keepalive(&mut self, now: Instant, keepalive: &Keepalive) {
        if keepalive.timestamp_ms != 0 {
            self.echo = Some((keepalive.timestamp_ms, now));
        }
        if keepalive.echo_timestamp_ms != 0 {
            let elapsed = clock_ms(now).wrapping_sub(keepalive.echo_timestamp_ms);
            let sample = Duration::from_millis(u64::from(
                elapsed.saturating_sub(u32::from(keepalive.echo_delay_ms)),
            ));
            if sample <= MAX_RTT_SAMPLE {
                self.add_rtt_sample(sample);
            }
        }
        if keepalive.flags & REPLY_WANTED != 0 {
            self.reply_due = true;
        }
    }

    fn add_rtt_sample(&mut self, sample: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(sample);
                self.rttvar = sample / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(sample);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + sample) / 8);
            }
        }
    }

    /// Returns the smoothed RTT, if any sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Returns a retransmission timeout for reliable control messages on this link.
    pub fn rto(&self) -> Duration {
        let base = self
            .srtt
            .map_or(Duration::from_millis(500), |s| s + 4 * self.rttvar);
        base.clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    fn dead_after_probe(&self) -> Duration {
        ACTIVE_DEAD.max(self.srtt.unwrap_or_default() * 4)
    }

    fn carrying_traffic(&self, now: Instant) -> bool {
        self.last_traffic_send
            .is_some_and(|t| now.saturating_since(t) < ACTIVE_WINDOW)
    }

    fn probe_due(&self, now: Instant) -> Option<Instant> {
        if !self.carrying_traffic(now) && self.probe_start.is_none() {
            return None;
        }
        Some(match self.last_probe {
            Some(t) => t + PROBE_AFTER,
            None => self.last_recv + PROBE_AFTER,
        })
    }

    /// Builds a keepalive with our stamp and the echo of the peer's latest one.
    pub fn keepalive(&mut self, now: Instant, flags: u8) -> Keepalive {
        let (echo_timestamp_ms, echo_delay_ms) = match self.echo {
            Some((stamp, at)) => (
                stamp,
                u16::try_from(now.saturating_since(at).as_millis()).unwrap_or(u16::MAX),
            ),
            None => (0, 0),
        };
        Keepalive {
            timestamp_ms: clock_ms(now),
            echo_timestamp_ms,
            echo_delay_ms,
            flags,
        }
    }

    /// Decides what to do at `now`.
    pub fn poll(&mut self, now: Instant) -> LivenessAction {
        let quiet = now.saturating_since(self.last_recv);
        if quiet >= IDLE_DEAD
            || self
                .probe_start
                .is_some_and(|t| now.saturating_since(t) >= self.dead_after_probe())
        {
            return LivenessAction::Dead;
        }
        if self.reply_due {
            self.reply_due = false;
            return LivenessAction::Send(self.keepalive(now, 0));
        }
        if self.probe_due(now).is_some_and(|t| t <= now) {
            self.probe_start.get_or_insert(now);
            self.last_probe = Some(now);
            return LivenessAction::Send(self.keepalive(now, REPLY_WANTED));
        }
        if now.saturating_since(self.last_send) >= KEEPALIVE_INTERVAL {
            return LivenessAction::Send(self.keepalive(now, 0));
        }
        LivenessAction::None
    }

    /// Returns when [`poll`](Self::poll) next has something to do, as seen at `now` (right after a poll).
    pub fn next_deadline(&self, now: Instant) -> Instant {
        if self.reply_due {
            return now;
        }
        let mut next = earliest(
            Some(self.last_recv + IDLE_DEAD),
            Some(self.last_send + KEEPALIVE_INTERVAL),
        );
        next = earliest(next, self.probe_start.map(|t| t + self.dead_after_probe()));
        next = earliest(next, self.probe_due(now));
        next.unwrap_or(self.last_recv + IDLE_DEAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    #[test]
    fn idle_link_sends_keepalives_and_dies_after_15_s_of_silence() {
        let mut l = Liveness::new(at(0));
        assert_eq!(l.poll(at(1000)), LivenessAction::None);
        assert_eq!(l.next_deadline(at(1000)), at(2000));
        assert!(matches!(l.poll(at(2000)), LivenessAction::Send(k) if k.flags == 0));
        l.on_send(at(2000), false);
        assert_eq!(
            l.poll(at(14_999)),
            LivenessAction::Send(Keepalive {
                timestamp_ms: 14_999,
                ..Default::default()
            })
        );
        assert_eq!(l.poll(at(15_000)), LivenessAction::Dead);
    }

    #[test]
    fn link_carrying_traffic_probes_and_dies_within_2_s() {
        let mut l = Liveness::new(at(0));
        l.on_send(at(100), true);
        assert_eq!(l.poll(at(200)), LivenessAction::None);
        // The peer went quiet at 0; probing starts 250 ms later.
        let mut sent_probes = 0;
        let mut t = 250;
        loop {
            l.on_send(at(t), true);
            match l.poll(at(t)) {
                LivenessAction::Send(k) => {
                    assert_eq!(k.flags, REPLY_WANTED);
                    sent_probes += 1;
                }
                LivenessAction::Dead => break,
                LivenessAction::None => {}
            }
            t += 50;
        }
        assert!(t <= 2000, "dead at {t} ms");
        assert!(sent_probes >= 6, "{sent_probes} probes");
    }

    #[test]
    fn answered_probe_keeps_the_link_and_measures_rtt() {
        let (mut a, mut b) = (Liveness::new(at(0)), Liveness::new(at(0)));
        a.on_send(at(300), true);
        let LivenessAction::Send(probe) = a.poll(at(300)) else {
            panic!("no probe")
        };
        b.on_receive(at(310));
        b.on_keepalive(at(310), &probe);
        let LivenessAction::Send(reply) = b.poll(at(312)) else {
            panic!("no reply")
        };
        assert_eq!(reply.echo_delay_ms, 2);
        a.on_receive(at(320));
        a.on_keepalive(at(320), &reply);
        assert_eq!(a.srtt(), Some(Duration::from_millis(18)));
        a.on_send(at(400), true);
        assert!(!matches!(a.poll(at(2500)), LivenessAction::Dead));
    }
}
