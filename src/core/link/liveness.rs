//! Keepalives, dead-link detection and round-trip time for one link.
//!
//! - Idle: a keepalive goes out when nothing else was sent for [`KEEPALIVE_INTERVAL`]. When the peer has
//!   been quiet for [`IDLE_PROBE_AFTER`], we probe: keepalives asking for an immediate reply, every
//!   [`IDLE_PROBE_INTERVAL`]; with no answer for [`IDLE_DEAD`] after the first probe the link is dead.
//!   So a dead idle link is found within 4 s, and a live one is declared dead only if a keepalive and
//!   then seven probe round trips in a row are lost: about one in a million windows at 10 % loss. The
//!   keepalives cost 2 × 43 bytes every 1.5 s, under 60 B/s per idle link.
//! - Carrying traffic (sent or received in the last second): the same, but probing starts after
//!   [`PROBE_AFTER`] of silence, every [`PROBE_AFTER`], and the link is dead when 3 to 7 probes in a
//!   row went unanswered (or 4 × RTT after the first on a slow link). How many depends on the loss
//!   measured from the peer's frame counters (`loss`): 3 on a clean link, so a crashed neighbour on a
//!   path is found in 1 s (750 ms after the first probe); 7 on a link losing 5 % or more, or not
//!   measured yet (2 s). A crash near the root strands every flow through it until then: with 7 probes
//!   everywhere, the 10 000-node churn run delivered 98.97 % rather than 99.16 %.
//! - RTT: keepalives carry timestamps and echoes (see `wire::keepalive`), smoothed as in RFC 6298. The
//!   peer says how long it held our stamp before echoing it (`echo_delay`), and a peer could lie about
//!   that to look closer than it is and win parent and next-hop choices. So the delay it claims is
//!   trusted only down to a *floor*: the smallest RTT measured from its answers to our requests for an
//!   immediate reply, where at most [`MAX_REPLY_CREDIT`] of claimed delay is believed. A peer can delay
//!   those answers (look farther) but not hasten them; a floor older than [`FLOOR_LIFETIME`] is measured
//!   again, so a path that got slower is not hidden for long.

use std::time::Duration;

use super::loss::{FrameLoss, probes_before_dead};
use crate::core::time::Instant;
use crate::core::wire::keepalive::{Keepalive, REPLY_WANTED};

/// Send a keepalive after this long without sending anything.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(1500);
/// An idle link starts probing when the peer has been quiet this long (longer than a keepalive interval,
/// so a single lost keepalive costs nothing).
pub const IDLE_PROBE_AFTER: Duration = Duration::from_secs(2);
/// Interval between probes on an idle link.
pub const IDLE_PROBE_INTERVAL: Duration = Duration::from_millis(285);
/// An idle link is dead when its probes went unanswered this long.
pub const IDLE_DEAD: Duration = Duration::from_secs(2);
/// While sending traffic, probe when the peer has been quiet this long, and re-probe at this interval.
pub const PROBE_AFTER: Duration = Duration::from_millis(250);
/// Traffic sent within this window counts as "carrying traffic".
const ACTIVE_WINDOW: Duration = Duration::from_secs(1);
/// RTT samples above this are discarded as bogus (clock wrap, a very stale echo).
const MAX_RTT_SAMPLE: Duration = Duration::from_secs(30);
/// Claimed echo delay believed for an answer to our request for an immediate reply: the time a busy
/// peer may take to get to it.
pub const MAX_REPLY_CREDIT: Duration = Duration::from_millis(5);
/// The RTT floor is measured again after this long.
pub const FLOOR_LIFETIME: Duration = Duration::from_secs(30);

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

/// An unanswered run of probes. Its pace is fixed when it starts: a receiver whose traffic stopped
/// because the link died must not slow down to the idle pace a second later.
#[derive(Debug, Clone, Copy)]
struct Probing {
    start: Instant,
    last: Instant,
    active: bool,
}

/// Liveness and RTT state of one link.
#[derive(Debug, Clone)]
pub struct Liveness {
    last_recv: Instant,
    last_send: Instant,
    last_traffic: Option<Instant>,
    probing: Option<Probing>,
    echo: Option<(u32, Instant)>,
    reply_due: bool,
    srtt: Option<Duration>,
    rttvar: Duration,
    /// Our stamp in the latest keepalive that asked for an immediate reply.
    asked: Option<u32>,
    /// Added to every echo delay we report: zero, except in the simulator's adversary, which lies
    /// about how long it held the peer's stamp to look closer than it is.
    echo_delay_lie: u16,
    /// The smallest RTT measured from immediate replies, and when it was measured.
    floor: Option<(Duration, Instant)>,
    /// Loss of the peer's frames, from their counters: sets how many probes may go unanswered.
    loss: FrameLoss,
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
            last_traffic: None,
            probing: None,
            echo: None,
            reply_due: false,
            srtt: None,
            rttvar: Duration::ZERO,
            asked: None,
            echo_delay_lie: 0,
            floor: None,
            loss: FrameLoss::default(),
        }
    }

    /// Notes the counter of an authenticated frame of the current key set (for the loss estimate).
    pub fn on_counter(&mut self, counter: u64) {
        self.loss.on_counter(counter);
    }

    /// A new key set was installed: its counters start again.
    pub fn on_new_keys(&mut self) {
        self.loss.on_new_keys();
    }

    /// How long probes of a link carrying traffic may go unanswered, from the first, before it is dead
    /// (before the 4 × RTT floor of a slow link).
    pub fn active_dead_after(&self) -> Duration {
        PROBE_AFTER * probes_before_dead(self.loss.ppm())
    }

    /// Notes that an authenticated frame arrived; `traffic` is true if it carried routed packets.
    /// Traffic in either direction makes the link "carrying traffic": a receiver whose flow suddenly
    /// stops probes too, so both ends of a dead link find out within 2 s.
    pub fn on_receive(&mut self, now: Instant, traffic: bool) {
        self.last_recv = now;
        if traffic {
            self.last_traffic = Some(now);
        }
        self.probing = None;
    }

    /// Notes that a frame was sent; `traffic` is false for pure keepalives.
    pub fn on_send(&mut self, now: Instant, traffic: bool) {
        self.last_send = now;
        if traffic {
            self.last_traffic = Some(now);
        }
    }

    /// Processes a received keepalive: stores its stamp for echoing, takes an RTT sample from its echo and
    /// notes whether a reply is wanted.
    pub fn on_keepalive(&mut self, now: Instant, keepalive: &Keepalive) {
        if keepalive.timestamp_ms != 0 {
            self.echo = Some((keepalive.timestamp_ms, now));
        }
        if keepalive.echo_timestamp_ms != 0 {
            let elapsed = Duration::from_millis(u64::from(
                clock_ms(now).wrapping_sub(keepalive.echo_timestamp_ms),
            ));
            let claimed = Duration::from_millis(u64::from(keepalive.echo_delay_ms));
            if elapsed <= MAX_RTT_SAMPLE {
                // Only the first echo of the stamp we asked about can be the answer, and only if the
                // peer says it answered at once: the peer keeps our latest stamp and echoes it again in
                // every keepalive until we send a newer one, held longer each time (a link carrying
                // other frames sends no keepalive for a while). Taking such a held echo as an answer
                // made the floor the holding time: 1.5 s on a 20 ms link, which then moved parents.
                if self.asked == Some(keepalive.echo_timestamp_ms)
                    && std::mem::take(&mut self.asked).is_some()
                    && claimed < PROBE_AFTER
                {
                    let direct = elapsed.saturating_sub(claimed.min(MAX_REPLY_CREDIT));
                    if self.floor.is_none_or(|(f, at)| {
                        direct < f || now.saturating_since(at) >= FLOOR_LIFETIME
                    }) {
                        self.floor = Some((direct, now));
                    }
                }
                // Until an immediate reply gave a floor, held echoes tell nothing we can trust.
                if let Some((floor, _)) = self.floor {
                    self.add_rtt_sample(elapsed.saturating_sub(claimed).max(floor));
                }
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

    fn dead_at(&self, probing: &Probing) -> Instant {
        let base = if probing.active {
            self.active_dead_after()
        } else {
            IDLE_DEAD
        };
        probing.start + base.max(self.srtt.unwrap_or_default() * 4)
    }

    fn carrying_traffic(&self, now: Instant) -> bool {
        self.last_traffic
            .is_some_and(|t| now.saturating_since(t) < ACTIVE_WINDOW)
    }

    fn probe_due(&self, now: Instant) -> Instant {
        match self.probing {
            Some(p) if p.active => p.last + PROBE_AFTER,
            Some(p) => p.last + IDLE_PROBE_INTERVAL,
            None if self.carrying_traffic(now) => self.last_recv + PROBE_AFTER,
            None => self.last_recv + IDLE_PROBE_AFTER,
        }
    }

    /// Makes every echo delay we report `extra_ms` longer than it was (the simulator's adversary).
    pub fn overstate_echo_delay(&mut self, extra_ms: u16) {
        self.echo_delay_lie = extra_ms;
    }

    /// Builds a keepalive with our stamp and the echo of the peer's latest one.
    pub fn keepalive(&mut self, now: Instant, flags: u8) -> Keepalive {
        if flags & REPLY_WANTED != 0 {
            self.asked = Some(clock_ms(now));
        }
        let (echo_timestamp_ms, echo_delay_ms) = match self.echo {
            Some((stamp, at)) => (
                stamp,
                u16::try_from(now.saturating_since(at).as_millis())
                    .unwrap_or(u16::MAX)
                    .saturating_add(self.echo_delay_lie),
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
        if self.probing.is_some_and(|p| now >= self.dead_at(&p)) {
            return LivenessAction::Dead;
        }
        if self.reply_due {
            self.reply_due = false;
            return LivenessAction::Send(self.keepalive(now, 0));
        }
        if self.probe_due(now) <= now {
            let active = self.carrying_traffic(now);
            self.probing
                .get_or_insert(Probing {
                    start: now,
                    last: now,
                    active,
                })
                .last = now;
            return LivenessAction::Send(self.keepalive(now, REPLY_WANTED));
        }
        if now.saturating_since(self.last_send) >= KEEPALIVE_INTERVAL {
            // Ask for an immediate answer while the RTT floor is missing or old (one extra keepalive
            // from the peer every 30 s).
            let stale = self
                .floor
                .is_none_or(|(_, at)| now.saturating_since(at) >= FLOOR_LIFETIME);
            let flags = if stale { REPLY_WANTED } else { 0 };
            return LivenessAction::Send(self.keepalive(now, flags));
        }
        LivenessAction::None
    }

    /// Returns when [`poll`](Self::poll) next has something to do, as seen at `now` (right after a poll).
    pub fn next_deadline(&self, now: Instant) -> Instant {
        if self.reply_due {
            return now;
        }
        let mut next = self.probe_due(now).min(self.last_send + KEEPALIVE_INTERVAL);
        if let Some(p) = &self.probing {
            next = next.min(self.dead_at(p));
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    /// Drives `l` like a link whose peer went silent at 0, until it is dead; returns the time in ms.
    fn time_to_death(l: &mut Liveness, traffic: bool) -> u64 {
        let mut t = 0;
        if traffic {
            l.on_send(at(0), true);
        }
        loop {
            t = l.next_deadline(at(t)).as_micros() / 1000;
            if traffic {
                l.on_send(at(t), true);
            }
            match l.poll(at(t)) {
                LivenessAction::Dead => return t,
                LivenessAction::Send(_) => l.on_send(at(t), traffic),
                LivenessAction::None => {}
            }
            assert!(t < 60_000, "never died");
        }
    }

    #[test]
    fn idle_link_sends_keepalives_and_dies_within_4_s_of_silence() {
        let mut l = Liveness::new(at(0));
        assert_eq!(l.poll(at(1000)), LivenessAction::None);
        assert_eq!(l.next_deadline(at(1000)), at(1500));
        // No RTT floor yet: the keepalive asks for an immediate answer.
        assert!(matches!(l.poll(at(1500)), LivenessAction::Send(k) if k.flags == REPLY_WANTED));
        l.on_send(at(1500), false);
        assert!(matches!(l.poll(at(2000)), LivenessAction::Send(k) if k.flags == REPLY_WANTED));
        let mut l = Liveness::new(at(0));
        assert_eq!(time_to_death(&mut l, false), 4000);
    }

    #[test]
    fn link_carrying_traffic_probes_and_dies_within_2_s() {
        let mut l = Liveness::new(at(0));
        l.on_send(at(100), true);
        assert_eq!(l.poll(at(200)), LivenessAction::None);
        assert!(matches!(l.poll(at(250)), LivenessAction::Send(k) if k.flags == REPLY_WANTED));
        let mut l = Liveness::new(at(0));
        assert_eq!(time_to_death(&mut l, true), 2000);
    }

    /// How long a link carrying traffic lives after its peer falls silent follows the loss measured
    /// from the peer's counters: 3 unanswered probes on a clean link, 7 on a lossy or unmeasured one.
    #[test]
    fn a_clean_link_is_given_up_after_three_probes_a_lossy_one_after_seven() {
        let measured = |keep: fn(u64) -> bool| {
            let mut l = Liveness::new(at(0));
            (0..super::super::loss::BLOCK * 40)
                .filter(|&c| keep(c))
                .for_each(|c| l.on_counter(c));
            time_to_death(&mut l, true)
        };
        assert_eq!(measured(|_| true), 1000, "250 ms of silence, then 3 probes");
        assert_eq!(measured(|c| c % 100 != 7), 1250, "1 % lost: 4 probes");
        assert_eq!(measured(|c| c % 40 != 7), 1500, "2.5 % lost: 5 probes");
        assert_eq!(measured(|c| c % 10 != 0), 2000, "10 % lost: 7 probes");
        // New keys keep the estimate.
        let mut l = Liveness::new(at(0));
        (0..200).for_each(|c| l.on_counter(c));
        l.on_new_keys();
        assert_eq!(time_to_death(&mut l, true), 1000);
        // A slow link still waits 4 RTTs.
        let mut l = Liveness::new(at(0));
        (0..200).for_each(|c| l.on_counter(c));
        l.srtt = Some(Duration::from_millis(400));
        assert_eq!(time_to_death(&mut l, true), 250 + 1600);
    }

    #[test]
    fn answered_probe_keeps_the_link_and_measures_rtt() {
        let (mut a, mut b) = (Liveness::new(at(0)), Liveness::new(at(0)));
        a.on_send(at(300), true);
        let LivenessAction::Send(probe) = a.poll(at(300)) else {
            panic!("no probe")
        };
        b.on_receive(at(310), false);
        b.on_keepalive(at(310), &probe);
        let LivenessAction::Send(reply) = b.poll(at(312)) else {
            panic!("no reply")
        };
        assert_eq!(reply.echo_delay_ms, 2);
        a.on_receive(at(320), false);
        a.on_keepalive(at(320), &reply);
        assert_eq!(a.srtt(), Some(Duration::from_millis(18)));
        a.on_send(at(400), true);
        assert!(!matches!(a.poll(at(2500)), LivenessAction::Dead));
    }

    /// The peer echoes our latest stamp in every keepalive until a newer one comes; when the stamp is
    /// the one we asked an immediate reply for, only an echo the peer says it sent at once is the
    /// answer. A held echo of it (the answer lost, or not sent) once became the RTT floor when the old
    /// floor had expired: srtt 208 ms on a 20 ms link, and the node left its parent for it.
    #[test]
    fn a_held_echo_of_an_asked_stamp_is_not_an_answer() {
        let mut a = Liveness::new(at(0));
        let echo = |stamp: u32, delay_ms: u16| Keepalive {
            timestamp_ms: 5,
            echo_timestamp_ms: stamp,
            echo_delay_ms: delay_ms,
            flags: 0,
        };
        let ask = a.keepalive(at(1000), REPLY_WANTED);
        a.on_keepalive(at(1020), &echo(ask.timestamp_ms, 1));
        assert_eq!(a.srtt(), Some(Duration::from_millis(19)));
        // The floor is stale; we ask again, and no immediate answer comes: the peer's next keepalives
        // echo the asked stamp, held 1.5 s, 3 s, ...
        let t = 1000 + FLOOR_LIFETIME.as_millis() as u64;
        let ask = a.keepalive(at(t), REPLY_WANTED);
        for held in [1500u64, 3000, 4500, 6000] {
            a.on_keepalive(at(t + 20 + held), &echo(ask.timestamp_ms, held as u16));
        }
        let srtt = a.srtt().unwrap();
        assert!(srtt < Duration::from_millis(40), "{srtt:?}");
    }

    /// A peer that claims it held our stamps for nearly the whole round trip does not look closer
    /// than its answers to our immediate-reply requests show (before the floor: srtt went to 0).
    #[test]
    fn a_peer_cannot_claim_a_smaller_rtt_than_it_answers_with() {
        let (mut a, mut b) = (Liveness::new(at(0)), Liveness::new(at(0)));
        let one_way = 40;
        let mut t = 0;
        for _ in 0..200 {
            t += 1500;
            a.on_send(at(t), false);
            let LivenessAction::Send(k) = a.poll(at(t)) else {
                continue;
            };
            b.on_keepalive(at(t + one_way), &k);
            // The liar answers requests for an immediate reply at once, others after 1 s, and always
            // claims it held the stamp for all but 1 ms of the round trip.
            let hold = if k.flags & REPLY_WANTED != 0 { 0 } else { 1000 };
            let mut reply = b.keepalive(at(t + one_way + hold), 0);
            reply.echo_delay_ms = (hold + 2 * one_way - 1) as u16;
            a.on_keepalive(at(t + 2 * one_way + hold), &reply);
        }
        let srtt = a.srtt().unwrap();
        assert!(srtt >= Duration::from_millis(2 * one_way - 5), "{srtt:?}");
    }
}
