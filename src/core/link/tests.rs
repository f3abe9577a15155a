use super::*;

struct Pair {
    now: Instant,
    rng: Rng,
    keys: [NodeKey; 2],
    links: [Link; 2],
    /// Drop everything a side sends while set.
    mute: [bool; 2],
    /// Share of datagrams lost each way, drawn from `channel`.
    loss: f64,
    channel: Rng,
}

impl Pair {
    fn new(a: LinkParams, b: LinkParams) -> Self {
        Self {
            now: Instant::ZERO,
            rng: Rng::from_seed([7; 32]),
            keys: [NodeKey::from_seed(&[1; 32]), NodeKey::from_seed(&[2; 32])],
            links: [
                Link::new(a, Instant::ZERO, 1_000_000),
                Link::new(b, Instant::ZERO, 2_000_000),
            ],
            mute: [false; 2],
            loss: 0.0,
            channel: Rng::from_seed([9; 32]),
        }
    }

    /// Runs timers and delivers datagrams (1 ms one way) until `until`; returns plaintexts received by each.
    fn run_until(&mut self, until: Instant) -> [Vec<Vec<u8>>; 2] {
        let mut received = [Vec::new(), Vec::new()];
        loop {
            let mut moved = false;
            for side in 0..2 {
                while let Some(mut d) = self.links[side].poll_datagram() {
                    moved = true;
                    if self.mute[side] || self.channel.chance(self.loss) {
                        continue;
                    }
                    let other = 1 - side;
                    let t = self.now + Duration::from_millis(1);
                    if let Ok(Some(p)) = self.links[other].handle_datagram(
                        t,
                        &mut d,
                        &self.keys[other],
                        &mut self.rng,
                    ) {
                        for m in crate::core::wire::inner::Messages::new(&p).flatten() {
                            if let Message::Keepalive(k) = m {
                                self.links[other].handle_keepalive(t, &k);
                            } else {
                                received[other].push(p.to_vec());
                            }
                        }
                    }
                }
            }
            if moved {
                continue;
            }
            let next = [0, 1]
                .iter()
                .filter_map(|&i| self.links[i].poll_timeout(self.now))
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = t.max(self.now);
                    for i in 0..2 {
                        self.links[i].handle_timeout(self.now, &self.keys[i], &mut self.rng);
                    }
                }
                _ => break,
            }
        }
        self.now = until;
        received
    }

    fn events(&mut self, side: usize) -> Vec<LinkEvent> {
        std::iter::from_fn(|| self.links[side].poll_event()).collect()
    }
}

fn secs(s: u64) -> Instant {
    Instant::from_micros(s * 1_000_000)
}

fn passive() -> LinkParams {
    LinkParams {
        initiate: false,
        ..LinkParams::default()
    }
}

#[test]
fn handshake_brings_both_sides_up_and_frames_flow() {
    let mut p = Pair::new(LinkParams::default(), passive());
    p.run_until(secs(1));
    assert!(p.links[0].is_up() && p.links[1].is_up());
    assert_eq!(p.events(0), vec![LinkEvent::Up(p.keys[1].public_key())]);
    assert_eq!(p.events(1), vec![LinkEvent::Up(p.keys[0].public_key())]);
    let frame = {
        let mut f = Vec::new();
        Message::SigReq(crate::core::wire::tree::SigReq { seq: 1, nonce: 2 }).encode(&mut f);
        f
    };
    assert!(p.links[1].send(p.now, &frame, true));
    let got = p.run_until(secs(2));
    assert_eq!(got[0], vec![frame]);
    assert!(p.links[0].srtt().is_some() || p.links[1].srtt().is_some());
}

#[test]
fn aes_gcm_only_when_both_sides_offer_it() {
    use super::cipher::Cipher;
    let aes = |initiate| LinkParams {
        initiate,
        aes_gcm: true,
        ..LinkParams::default()
    };
    let frame = {
        let mut f = Vec::new();
        Message::SigReq(crate::core::wire::tree::SigReq { seq: 1, nonce: 2 }).encode(&mut f);
        f
    };
    for (a, b, expected) in [
        (aes(true), aes(false), Cipher::Aes256Gcm),
        (aes(true), passive(), Cipher::ChaCha20Poly1305),
        (LinkParams::default(), aes(false), Cipher::ChaCha20Poly1305),
    ] {
        let mut p = Pair::new(a, b);
        p.run_until(secs(1));
        assert_eq!(p.links[0].cipher(), Some(expected));
        assert_eq!(p.links[1].cipher(), Some(expected));
        assert!(p.links[0].send(p.now, &frame, true));
        assert_eq!(p.run_until(secs(2))[1], vec![frame.clone()]);
    }
}

#[test]
fn simultaneous_initiation_converges() {
    let mut p = Pair::new(LinkParams::default(), LinkParams::default());
    p.run_until(secs(3));
    assert!(p.links[0].is_up() && p.links[1].is_up());
    assert_eq!(p.events(0).len(), 1);
    assert_eq!(p.events(1).len(), 1);
}

#[test]
fn rekeys_without_going_down_and_keeps_working_for_ten_minutes() {
    let mut p = Pair::new(LinkParams::default(), passive());
    p.run_until(secs(1));
    p.events(0);
    p.events(1);
    let first_index = p.links[0].current.as_ref().unwrap().local_index;
    p.run_until(secs(600));
    assert!(p.links[0].is_up() && p.links[1].is_up());
    assert!(p.events(0).is_empty(), "no down/up during rekeys");
    assert!(p.events(1).is_empty());
    assert_ne!(
        p.links[0].current.as_ref().unwrap().local_index,
        first_index
    );
    let age = p
        .now
        .saturating_since(p.links[0].current.as_ref().unwrap().created);
    assert!(age < REJECT_AFTER);
}

fn one_message_frame() -> Vec<u8> {
    let mut f = Vec::new();
    Message::SigReq(crate::core::wire::tree::SigReq { seq: 1, nonce: 2 }).encode(&mut f);
    f
}

/// Sends a frame every 20 ms from side 0 until `until` (a one-way flow: side 1 sends only keepalives
/// and answers to probes).
fn one_way_flow(p: &mut Pair, until: Instant) {
    let frame = one_message_frame();
    while p.now < until {
        let now = p.now;
        p.links[0].send(now, &frame, true);
        p.run_until(now + Duration::from_millis(20));
    }
}

/// The number of probes that may go unanswered follows the loss measured from the peer's counters:
/// a one-way flow over a channel losing 10 % each way keeps its link for ten minutes (with 3 probes
/// everywhere it went down 9 times), and on a clean channel a peer that falls silent under
/// traffic is given up 1 s after its last frame (2 s with 7 probes everywhere).
#[test]
fn a_lossy_link_under_traffic_stays_up_and_a_clean_one_is_given_up_in_1_s() {
    let mut p = Pair::new(LinkParams::default(), passive());
    p.loss = 0.10;
    p.run_until(secs(5));
    assert!(p.links[0].is_up() && p.links[1].is_up());
    p.events(0);
    p.events(1);
    one_way_flow(&mut p, secs(605));
    assert_eq!(p.events(0), vec![], "the lossy link went down");
    assert_eq!(p.events(1), vec![]);

    let mut p = Pair::new(LinkParams::default(), passive());
    one_way_flow(&mut p, secs(120));
    p.events(0);
    p.mute[1] = true;
    let silent = p.now;
    one_way_flow(&mut p, silent + Duration::from_millis(900));
    assert_eq!(p.events(0), vec![], "given up too early");
    one_way_flow(&mut p, silent + Duration::from_millis(1100));
    assert_eq!(p.events(0), vec![LinkEvent::Down(p.keys[1].public_key())]);
}

#[test]
fn silent_peer_is_detected_within_4_s_and_link_retries() {
    let mut p = Pair::new(LinkParams::default(), passive());
    p.run_until(secs(1));
    p.events(0);
    p.mute[1] = true;
    p.run_until(secs(5));
    assert_eq!(p.events(0), vec![LinkEvent::Down(p.keys[1].public_key())]);
    p.mute[1] = false;
    p.run_until(secs(60));
    assert!(p.links[0].is_up());
}

#[test]
fn the_same_password_links() {
    let island = PasswordKey::derive(b"island");
    let a = LinkParams {
        password: Some(island.clone()),
        ..LinkParams::default()
    };
    let b = LinkParams {
        password: Some(island),
        ..passive()
    };
    let mut p = Pair::new(a, b);
    p.run_until(secs(1));
    assert!(p.links[0].is_up() && p.links[1].is_up());
}

#[test]
fn wrong_password_gets_silence() {
    let a = LinkParams {
        password: Some(PasswordKey::derive(b"one")),
        ..LinkParams::default()
    };
    let b = LinkParams {
        password: Some(PasswordKey::derive(b"two")),
        ..passive()
    };
    let mut p = Pair::new(a, b);
    p.run_until(secs(10));
    assert!(!p.links[0].is_up() && !p.links[1].is_up());
    assert_eq!(
        p.links[1].stats().tx_datagrams,
        0,
        "no reply to a wrong password"
    );
    assert!(p.links[1].stats().dropped > 0);
}

#[test]
fn pinned_key_refuses_another_peer() {
    let a = LinkParams {
        allowed_keys: vec![NodeKey::from_seed(&[9; 32]).public_key()],
        ..LinkParams::default()
    };
    let mut p = Pair::new(a, passive());
    p.run_until(secs(5));
    assert!(!p.links[0].is_up());
}

#[test]
fn both_sides_initiating_rekey_for_ten_minutes_without_a_lost_frame() {
    let mut p = Pair::new(LinkParams::default(), LinkParams::default());
    p.run_until(secs(1));
    let drops = [p.links[0].stats().dropped, p.links[1].stats().dropped];
    let mut frame = Vec::new();
    Message::SigReq(crate::core::wire::tree::SigReq { seq: 1, nonce: 2 }).encode(&mut frame);
    let mut received = 0;
    for s in 1..600 {
        for side in 0..2 {
            assert!(
                p.links[side].send(p.now, &frame, true),
                "side {side} cannot send at {s} s"
            );
        }
        let got = p.run_until(secs(s + 1));
        received += got[0].len() + got[1].len();
    }
    let after = [p.links[0].stats().dropped, p.links[1].stats().dropped];
    assert_eq!(after, drops, "frames dropped during rekeys");
    assert_eq!(received, 2 * 599);
}

#[test]
fn a_replayed_initiation_gets_silence() {
    let mut p = Pair::new(LinkParams::default(), passive());
    // Capture the initiator's first Init and deliver it normally.
    p.links[0].handle_timeout(p.now, &p.keys[0], &mut p.rng);
    let init = p.links[0].poll_datagram().unwrap();
    let t = p.now + Duration::from_millis(1);
    p.links[1]
        .handle_datagram(t, &mut init.clone(), &p.keys[1], &mut p.rng)
        .unwrap();
    let mut response = p.links[1].poll_datagram().unwrap();
    p.links[0]
        .handle_datagram(t, &mut response, &p.keys[0], &mut p.rng)
        .unwrap();
    p.run_until(secs(200));
    assert!(p.links[0].is_up() && p.links[1].is_up());
    // Long after (the responder's rate limit and response cache are long gone), the old Init again.
    let sent_before = p.links[1].stats().tx_datagrams;
    let mut again = init.clone();
    let replay = p.links[1].handle_datagram(p.now, &mut again, &p.keys[1], &mut p.rng);
    assert_eq!(replay.err(), Some(LinkDrop::ReplayedInit));
    assert_eq!(p.links[1].poll_datagram(), None);
    assert_eq!(p.links[1].stats().tx_datagrams, sent_before);
}

#[test]
fn sent_buffers_are_sealed_into_again_and_large_frames_arrive_whole() {
    let mut p = Pair::new(LinkParams::default(), passive());
    p.run_until(secs(1));
    assert!(p.links[0].is_up() && p.links[1].is_up());
    let frame = {
        let mut f = Vec::new();
        let req = Message::SigReq(crate::core::wire::tree::SigReq { seq: 1, nonce: 2 });
        req.encode(&mut f);
        f
    };
    assert!(p.links[0].send(p.now, &frame, true));
    let first = p.links[0].poll_datagram().unwrap();
    let address = first.as_ptr();
    p.links[0].recycle(first);
    assert!(p.links[0].send(p.now, &frame, true));
    let second = p.links[0].poll_datagram().unwrap();
    assert_eq!(
        second.as_ptr(),
        address,
        "the recycled buffer was sealed into"
    );
    // A buffer far larger than the link's datagrams is not kept.
    p.links[0].recycle(vec![0; 100_000]);
    assert!(p.links[0].send(p.now, &frame, true));
    assert!(p.links[0].poll_datagram().unwrap().capacity() < 100_000);
    // A frame of several messages given as parts, larger than the MTU: fragments that join up.
    let mut big = Vec::new();
    for seq in 0..400u64 {
        let req = Message::SigReq(crate::core::wire::tree::SigReq { seq, nonce: seq });
        req.encode(&mut big);
    }
    assert!(big.len() > 3 * 1280);
    let (head, tail) = big.split_at(1000);
    assert!(p.links[1].send_parts(p.now, &[head, tail], true));
    let got = p.run_until(secs(2));
    // (`run_until` records the frame once per message in it.)
    assert_eq!(got[0].len(), 400);
    assert!(got[0].iter().all(|f| *f == big));
}

/// A signed initiation from any key, sent from the address of an unpinned configured peer (spoofed),
/// must not decide who the link accepts: the real peer still links, whichever side initiates.
#[test]
fn a_spoofed_signed_initiation_never_locks_out_the_real_peer() {
    use super::handshake::{Ephemeral, make_init};
    for b_initiates in [false, true] {
        let b = if b_initiates {
            LinkParams::default()
        } else {
            passive()
        };
        let mut p = Pair::new(LinkParams::default(), b);
        // Before A's first attempt, the stranger's initiation reaches A's link.
        let stranger = NodeKey::from_seed(&[9; 32]);
        let init = make_init(
            &stranger,
            &Ephemeral::from_random([5; 32]),
            77,
            u64::MAX / 2,
            super::cipher::Cipher::offer(false),
            &Psk::from_password(None),
        );
        let mut bytes = init.encode();
        let now = p.now;
        let answered = p.links[0].handle_datagram(now, &mut bytes, &p.keys[0], &mut p.rng);
        assert!(answered.is_ok(), "a valid initiation is answered");
        // What A answered goes to the stranger, not to B.
        while p.links[0].poll_datagram().is_some() {}
        assert_eq!(
            p.links[0].peer(),
            None,
            "an unconfirmed initiation names no peer"
        );
        p.run_until(secs(5));
        assert!(p.links[0].is_up(), "b_initiates={b_initiates}");
        assert_eq!(p.links[0].peer(), Some(p.keys[1].public_key()));
    }
}

/// Forged initiations (bad signature) arriving all the time do not hold back a real rekey.
#[test]
fn forged_initiations_do_not_block_rekeying() {
    use super::handshake::{Ephemeral, make_init};
    let mut p = Pair::new(passive(), LinkParams::default());
    p.run_until(secs(1));
    assert!(p.links[0].is_up());
    let sets = p.links[0].stats().key_sets;
    let stranger = NodeKey::from_seed(&[9; 32]);
    let mut forged = make_init(
        &p.keys[1],
        &Ephemeral::from_random([5; 32]),
        77,
        1,
        super::cipher::Cipher::offer(false),
        &Psk::from_password(None),
    );
    forged.signature = stranger.sign(b"not this");
    super::handshake::set_mac(&mut forged, &Psk::from_password(None));
    // Every 50 ms for 4 minutes: two rekeys of B's are due meanwhile.
    let mut t = p.now;
    while t < secs(240) {
        t = t + Duration::from_millis(50);
        p.run_until(t);
        let mut bytes = forged.encode();
        let _ = p.links[0].handle_datagram(t, &mut bytes, &p.keys[0], &mut p.rng);
    }
    assert!(p.links[0].is_up());
    assert!(
        p.links[0].stats().key_sets > sets,
        "rekeyed despite forgeries"
    );
}
