use super::*;
use crate::core::wire::inner::{Message, Messages};

struct Two {
    keys: [NodeKey; 2],
    sessions: [Sessions; 2],
    rng: Rng,
    now: Instant,
}

impl Two {
    fn new() -> Self {
        Self::with_aes_gcm([false, false])
    }

    fn with_aes_gcm(aes_gcm: [bool; 2]) -> Self {
        Self {
            keys: [NodeKey::from_seed(&[1; 32]), NodeKey::from_seed(&[2; 32])],
            sessions: [
                Sessions::new(None, 1, aes_gcm[0], Instant::ZERO),
                Sessions::new(None, 2, aes_gcm[1], Instant::ZERO),
            ],
            rng: Rng::from_seed([3; 32]),
            now: Instant::ZERO,
        }
    }

    /// Delivers payloads back and forth until quiet; returns the plaintexts each side received.
    fn exchange(&mut self, mut in_flight: Vec<(usize, Vec<u8>)>) -> [Vec<Vec<u8>>; 2] {
        let mut got = [Vec::new(), Vec::new()];
        while let Some((to, mut payload)) = in_flight.pop() {
            let from = 1 - to;
            let src = self.keys[from].public_key();
            let received = self.sessions[to].receive(
                self.now,
                src,
                &[1],
                &mut payload,
                &self.keys[to],
                &mut self.rng,
            );
            if let Ok(Some(p)) = received.plaintext {
                got[to].push(p.to_vec());
            }
            in_flight.extend(received.replies.into_iter().map(|r| (from, r)));
        }
        got
    }

    fn send(&mut self, from: usize, text: &[u8]) -> Vec<(usize, Vec<u8>)> {
        let mut frame = Vec::new();
        Message::Packet(text).encode(&mut frame);
        let dest = self.keys[1 - from].public_key();
        self.sessions[from]
            .send(self.now, dest, &[&frame], &self.keys[from], &mut self.rng)
            .into_iter()
            .map(|p| (1 - from, p))
            .collect()
    }
}

fn packets(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .flat_map(|f| {
            Messages::new(f)
                .flatten()
                .filter_map(|m| {
                    if let Message::Packet(p) = m {
                        Some(p.to_vec())
                    } else {
                        None
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn first_packet_waits_for_the_handshake_then_both_directions_flow() {
    let mut t = Two::new();
    let out = t.send(0, b"hello");
    let got = t.exchange(out);
    assert_eq!(packets(&got[1]), vec![b"hello".to_vec()]);
    let out = t.send(1, b"back");
    let got = t.exchange(out);
    assert_eq!(packets(&got[0]), vec![b"back".to_vec()]);
    assert_eq!((t.sessions[0].len(), t.sessions[1].len()), (1, 1));
}

#[test]
fn tampered_or_replayed_payloads_never_reach_delivery() {
    let mut t = Two::new();
    let out = t.send(0, b"setup");
    t.exchange(out);
    let out = t.send(0, b"secret");
    let (to, payload) = out[0].clone();
    for i in 0..payload.len() {
        let mut bad = payload.clone();
        bad[i] ^= 0x01;
        let got = t.exchange(vec![(to, bad)]);
        assert!(packets(&got[1]).is_empty(), "byte {i} flipped was accepted");
    }
    let got = t.exchange(vec![(to, payload.clone())]);
    assert_eq!(packets(&got[1]), vec![b"secret".to_vec()]);
    let got = t.exchange(vec![(to, payload)]);
    assert!(packets(&got[1]).is_empty(), "replay accepted");
}

#[test]
fn garbage_from_strangers_creates_no_session() {
    let mut t = Two::new();
    let stranger = NodeKey::from_seed(&[9; 32]).public_key();
    let mut garbage = [1, 3, 0, 0, 0, 0, 1, 2, 3];
    let r = t.sessions[1].receive(t.now, stranger, &[2], &mut garbage, &t.keys[1], &mut t.rng);
    assert_eq!(r.plaintext.err(), Some(SessionDrop::NoSession));
    assert!(r.replies.is_empty());
    let mut short = [1, 1, 0, 0];
    let r = t.sessions[1].receive(t.now, stranger, &[2], &mut short, &t.keys[1], &mut t.rng);
    assert!(r.plaintext.is_err());
    assert!(r.replies.is_empty());
    assert!(t.sessions[1].is_empty());
}

#[test]
fn sessions_use_aes_gcm_only_when_both_ends_offer_it() {
    use crate::core::link::cipher::Cipher;
    for (offers, expected) in [
        ([true, true], Cipher::Aes256Gcm),
        ([true, false], Cipher::ChaCha20Poly1305),
        ([false, true], Cipher::ChaCha20Poly1305),
        ([false, false], Cipher::ChaCha20Poly1305),
    ] {
        let mut t = Two::with_aes_gcm(offers);
        let out = t.send(0, b"hello");
        let got = t.exchange(out);
        assert_eq!(packets(&got[1]), vec![b"hello".to_vec()], "{offers:?}");
        let out = t.send(1, b"back");
        assert_eq!(packets(&t.exchange(out)[0]), vec![b"back".to_vec()]);
        for side in &t.sessions {
            let ciphers: Vec<_> = side.iter().map(|s| s.cipher).collect();
            assert_eq!(ciphers, vec![Some(expected)], "{offers:?}");
        }
    }
}

/// A forger that claims a newcomer's key and coordinates, two initiations a second (signed by some
/// other key, so they fail only at the signature or key check), does not silence the newcomer. Before
/// admission was MAC-then-budget-then-cookie, such forgeries used up the newcomer's per-location budget.
#[test]
fn forgeries_in_a_newcomers_name_do_not_silence_it() {
    use crate::core::link::cipher::Cipher;
    use crate::core::link::handshake::{Ephemeral, make_init};
    let mut t = Two::new();
    let victim = t.keys[0].public_key();
    let forger = NodeKey::from_seed(&[9; 32]);
    let psk = Psk::for_domain(handshake::SESSION, None);
    let mut delivered = 0;
    for round in 0..20u64 {
        t.now = Instant::from_micros(round * 500_000);
        for i in 0..2u64 {
            let mut forged = make_init(
                &forger,
                &Ephemeral::from_random([i as u8 + 1; 32]),
                7,
                round * 2 + i,
                Cipher::offer(false),
                &psk,
            )
            .encode();
            let received =
                t.sessions[1].receive(t.now, victim, &[1], &mut forged, &t.keys[1], &mut t.rng);
            assert!(received.plaintext.is_err());
        }
        if round == 10 {
            let out = t.send(0, b"hello");
            delivered += packets(&t.exchange(out)[1]).len();
        }
    }
    assert_eq!(delivered, 1, "the newcomer's first packet got through");
}

/// Frames no session can open (from many claimed senders) make us start at most
/// `MAX_UNCONFIRMED_SESSIONS` sessions, and they never evict a confirmed one.
#[test]
fn unauthenticated_frames_never_evict_confirmed_sessions() {
    let mut t = Two::new();
    let out = t.send(0, b"hello");
    assert_eq!(packets(&t.exchange(out)[1]).len(), 1);
    assert!(t.sessions[1].is_up(&t.keys[0].public_key()));
    for i in 0..2000u32 {
        t.now = Instant::from_micros(1_000_000 + u64::from(i) * 1000);
        let mut seed = [3u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        let claimed = NodeKey::from_seed(&seed).public_key();
        let _ = t.sessions[1].resync(t.now, claimed, &t.keys[1], &mut t.rng);
        assert!(t.sessions[1].len() <= MAX_UNCONFIRMED_SESSIONS + 1);
    }
    assert!(t.sessions[1].is_up(&t.keys[0].public_key()));
}

#[test]
fn a_peer_heard_in_a_session_is_listed_with_the_coordinates_it_claimed() {
    let mut two = Two::new();
    let out = two.send(0, b"hello");
    two.exchange(out);
    let zero = two.keys[0].public_key();
    assert_eq!(
        two.sessions[1].heard_since(Instant::ZERO, 64),
        vec![(zero, vec![1])]
    );
    assert!(two.sessions[1].heard_since(Instant::ZERO, 0).is_empty());
    let later = Instant::ZERO + std::time::Duration::from_secs(1);
    assert!(two.sessions[1].heard_since(later, 64).is_empty());
    // Garbage from a stranger is heard from nobody.
    let stranger = NodeKey::from_seed(&[9; 32]).public_key();
    let mut garbage = vec![0u8; 64];
    let _ = two.sessions[1].receive(
        two.now,
        stranger,
        &[5],
        &mut garbage,
        &two.keys[1],
        &mut two.rng,
    );
    assert_eq!(two.sessions[1].heard_since(Instant::ZERO, 64).len(), 1);
}
