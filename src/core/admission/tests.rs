use super::*;
use crate::core::identity::NodeKey;
use crate::core::link::cipher::Cipher;
use crate::core::link::handshake::{Ephemeral, Psk, make_init, set_mac2};
use crate::core::password::PasswordKey;
use crate::core::wire::datagram::{Datagram, HandshakeInit};

fn init(seed: u8) -> HandshakeInit {
    make_init(
        &NodeKey::from_seed(&[seed; 32]),
        &Ephemeral::from_random([seed; 32]),
        u32::from(seed),
        1,
        Cipher::offer(false),
        &Psk::from_password(None),
    )
}

fn junk(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = vec![0u8; INIT_LEN];
    for chunk in bytes.chunks_mut(32) {
        let random = rng.bytes32();
        chunk.copy_from_slice(&random[..chunk.len()]);
    }
    bytes[0] = crate::core::wire::VERSION;
    bytes[1] = KIND_INIT;
    bytes
}

#[test]
fn junk_costs_one_mac_and_no_budget() {
    let mut rng = Rng::from_seed([1; 32]);
    let mut gate = HandshakeGate::new(Instant::ZERO);
    let psk = Psk::from_password(None);
    for i in 0..10_000u32 {
        let bytes = junk(&mut rng);
        assert_eq!(
            gate.admit(
                Instant::ZERO,
                &i.to_be_bytes(),
                &bytes,
                &psk,
                false,
                &mut rng
            ),
            Verdict::Drop(Refusal::BadMac)
        );
    }
    // The whole budget is still there for real initiations.
    let verified = (0..LINK_VERIFY_BURST as u8)
        .filter(|i| {
            gate.admit(
                Instant::ZERO,
                b"x",
                &init(*i).encode(),
                &psk,
                false,
                &mut rng,
            ) == Verdict::Verify { cookie: false }
        })
        .count();
    assert_eq!(verified, LINK_VERIFY_BURST as usize);
}

#[test]
fn a_wrong_password_is_refused_before_the_budget() {
    let mut rng = Rng::from_seed([1; 32]);
    let mut gate = HandshakeGate::new(Instant::ZERO);
    let island = Psk::from_password(Some(&PasswordKey::derive(b"island")));
    let bytes = init(1).encode();
    assert_eq!(
        gate.admit(Instant::ZERO, b"x", &bytes, &island, false, &mut rng),
        Verdict::Drop(Refusal::BadMac)
    );
    assert_eq!(gate.verified, 0);
}

#[test]
fn under_load_only_a_sender_that_received_its_cookie_is_verified() {
    let mut rng = Rng::from_seed([1; 32]);
    let now = Instant::from_micros(5_000_000);
    let mut gate = HandshakeGate::new(now);
    let psk = Psk::from_password(None);
    // A flood uses up the budget (fresh sources, valid MACs).
    let mut verified = 0;
    for i in 0..1000u32 {
        if gate.admit(
            now,
            &i.to_be_bytes(),
            &init(1).encode(),
            &psk,
            false,
            &mut rng,
        ) == (Verdict::Verify { cookie: false })
        {
            verified += 1;
        }
    }
    assert_eq!(verified, LINK_VERIFY_BURST as u64);
    // The real neighbour's initiation gets a cookie reply bound to its address...
    let mut real = init(2);
    let Verdict::Reply(reply) = gate.admit(now, b"real", &real.encode(), &psk, false, &mut rng)
    else {
        panic!("expected a cookie reply");
    };
    assert_eq!(
        reply.len(),
        22,
        "smaller than the initiation: no amplification"
    );
    let Ok(Datagram::Cookie {
        receiver_index,
        cookie,
    }) = Datagram::parse(&reply)
    else {
        panic!("not a cookie reply");
    };
    assert_eq!(receiver_index, real.sender_index);
    // ... which is worth nothing from another address ...
    set_mac2(&mut real, &cookie);
    assert!(matches!(
        gate.admit(now, b"elsewhere", &real.encode(), &psk, false, &mut rng),
        Verdict::Reply(_)
    ));
    // ... and gets it verified from its own address, even while the flood goes on.
    assert_eq!(
        gate.admit(now, b"real", &real.encode(), &psk, false, &mut rng),
        Verdict::Verify { cookie: true }
    );
    // A cookie stays good across one secret rotation, not two.
    let later = now + COOKIE_SECRET_LIFETIME;
    for i in 0..1000u32 {
        let _ = gate.admit(
            later,
            &i.to_be_bytes(),
            &init(1).encode(),
            &psk,
            false,
            &mut rng,
        );
    }
    assert_eq!(
        gate.admit(later, b"real", &real.encode(), &psk, false, &mut rng),
        Verdict::Verify { cookie: true }
    );
    let much_later = later + COOKIE_SECRET_LIFETIME;
    for i in 0..1000u32 {
        let _ = gate.admit(
            much_later,
            &i.to_be_bytes(),
            &init(1).encode(),
            &psk,
            false,
            &mut rng,
        );
    }
    assert!(matches!(
        gate.admit(much_later, b"real", &real.encode(), &psk, false, &mut rng),
        Verdict::Reply(_)
    ));
}

#[test]
fn cookie_bearing_initiations_have_a_budget_too() {
    let mut rng = Rng::from_seed([1; 32]);
    let now = Instant::ZERO;
    let mut gate = HandshakeGate::new(now);
    let psk = Psk::from_password(None);
    for i in 0..200u32 {
        let _ = gate.admit(
            now,
            &i.to_be_bytes(),
            &init(1).encode(),
            &psk,
            false,
            &mut rng,
        );
    }
    let Verdict::Reply(reply) = gate.admit(now, b"a", &init(3).encode(), &psk, false, &mut rng)
    else {
        panic!("expected a cookie reply");
    };
    let Ok(Datagram::Cookie { cookie, .. }) = Datagram::parse(&reply) else {
        panic!("not a cookie reply");
    };
    let mut with_cookie = init(3);
    set_mac2(&mut with_cookie, &cookie);
    let bytes = with_cookie.encode();
    let verified = (0..1000)
        .filter(|_| {
            gate.admit(now, b"a", &bytes, &psk, false, &mut rng) == Verdict::Verify { cookie: true }
        })
        .count();
    assert_eq!(verified, LINK_VERIFY_BURST as usize);
    assert_eq!(
        gate.admit(now, b"a", &bytes, &psk, false, &mut rng),
        Verdict::Drop(Refusal::OverBudget)
    );
}

#[test]
fn retransmissions_cost_nothing() {
    let mut rng = Rng::from_seed([1; 32]);
    let mut gate = HandshakeGate::new(Instant::ZERO);
    let psk = Psk::from_password(None);
    let bytes = init(1).encode();
    for _ in 0..1000 {
        assert_eq!(
            gate.admit(Instant::ZERO, b"x", &bytes, &psk, true, &mut rng),
            Verdict::Verify { cookie: false }
        );
    }
    assert_eq!(
        gate.admit(Instant::ZERO, b"x", &bytes, &psk, false, &mut rng),
        Verdict::Verify { cookie: false },
        "the budget is untouched"
    );
}

#[test]
fn anything_that_is_not_an_initiation_is_not_one() {
    let mut rng = Rng::from_seed([1; 32]);
    let mut gate = HandshakeGate::new(Instant::ZERO);
    let psk = Psk::from_password(None);
    let good = init(1).encode();
    for bytes in [&good[..good.len() - 1], &[], &[1, 1]] {
        assert_eq!(
            gate.admit(Instant::ZERO, b"x", bytes, &psk, false, &mut rng),
            Verdict::Drop(Refusal::NotInit)
        );
    }
    let mut other_version = good.clone();
    other_version[0] ^= 0xff;
    assert!(!is_init(&other_version));
}
