use super::*;

fn node(n: u8) -> NodeKey {
    NodeKey::from_seed(&[n; 32])
}

fn rto(_: &PublicKey) -> Duration {
    Duration::from_millis(100)
}

/// The lists `from` sends, by recipient.
fn lists(out: Vec<(PublicKey, Message<'static>)>) -> HashMap<PublicKey, Neighbors> {
    out.into_iter()
        .filter_map(|(to, m)| match m {
            Message::Neighbors(list) => Some((to, list)),
            _ => None,
        })
        .collect()
}

#[test]
fn lists_carry_proofs_and_answer_two_hop_questions() {
    let (a, b, c) = (node(1), node(2), node(3));
    let (ka, kb, kc) = (a.public_key(), b.public_key(), c.public_key());
    let t = Instant::ZERO;
    // b is linked to a and c; each of them sent b its proof.
    let mut nb = NeighborLists::new(5);
    let mut na = NeighborLists::new(7);
    let mut nc = NeighborLists::new(9);
    let from_a = lists(na.update(t, &a, &[kb], rto)).remove(&kb).unwrap();
    let from_c = lists(nc.update(t, &c, &[kb], rto)).remove(&kb).unwrap();
    assert!(nb.handle(t, &kb, ka, from_a).new_proof);
    assert!(nb.handle(t, &kb, kc, from_c).new_proof);
    // b's list to a names a and c, with their proofs; a believes it.
    let mut peers = vec![ka, kc];
    peers.sort();
    let to_a = lists(nb.update(t, &b, &peers, rto)).remove(&ka).unwrap();
    assert_eq!(to_a.entries.len(), 2);
    let handled = na.handle(t, &ka, kb, to_a);
    assert!(handled.ack.is_some() && handled.new_proof);
    assert_eq!(na.via(&kc, &[kb]), Some(kb));
    assert_eq!(na.via(&kc, &[]), None);
    // Unacknowledged lists are resent after the RTO, acknowledged ones are not.
    nb.handle_ack(&ka, VersionAck { version: 6 });
    let again = lists(nb.update(t + rto(&kb), &b, &peers, rto));
    assert_eq!(again.keys().copied().collect::<Vec<_>>(), vec![kc]);
}

/// A peer that lists keys it is not linked to (the victims' traffic would go to it): the entries
/// do not verify and are not used. Before proofs, `via` named the liar for every victim.
#[test]
fn a_peer_cannot_claim_victims_as_neighbours() {
    let (a, liar) = (node(1), node(2));
    let (ka, kl) = (a.public_key(), liar.public_key());
    let mut na = NeighborLists::new(7);
    let victims: Vec<PublicKey> = (10..74).map(|i| node(i).public_key()).collect();
    let forged = Neighbors {
        version: 100,
        attestation: attest(&liar, &ka),
        // Proofs made by the liar itself, or copied from elsewhere: none is the victim's.
        entries: victims.iter().map(|v| (*v, attest(&liar, v))).collect(),
    };
    let handled = na.handle(Instant::ZERO, &ka, kl, forged);
    assert!(handled.ack.is_some());
    for v in &victims {
        assert_eq!(na.via(v, &[kl]), None);
    }
}

/// Lists beyond the verification budget are not acknowledged (the sender resends them), and an
/// unchanged entry is not verified again.
#[test]
fn verification_is_budgeted_per_peer() {
    let (a, b) = (node(1), node(2));
    let (ka, kb) = (a.public_key(), b.public_key());
    let mut na = NeighborLists::new(7);
    let attested = |range: std::ops::Range<u8>| -> Vec<(PublicKey, Proof)> {
        range
            .map(|i| {
                let k = node(i);
                (k.public_key(), attest(&k, &kb))
            })
            .collect()
    };
    let list = |version, entries: &[(PublicKey, Proof)]| Neighbors {
        version,
        attestation: attest(&b, &ka),
        entries: entries.to_vec(),
    };
    let t = Instant::ZERO;
    // Two full lists fit the burst (65 and 64 checks)...
    assert!(
        na.handle(t, &ka, kb, list(1, &attested(10..74)))
            .ack
            .is_some()
    );
    assert!(
        na.handle(t, &ka, kb, list(2, &attested(80..144)))
            .ack
            .is_some()
    );
    // ... then a list of 64 new entries does not, until the budget refills.
    let fresh = attested(150..214);
    assert!(na.handle(t, &ka, kb, list(3, &fresh)).ack.is_none());
    assert!(
        na.handle(t + Duration::from_secs(1), &ka, kb, list(3, &fresh))
            .ack
            .is_some()
    );
    // The same entries again in a newer list cost nothing.
    for v in 4..100 {
        assert!(
            na.handle(t + Duration::from_secs(1), &ka, kb, list(v, &fresh))
                .ack
                .is_some()
        );
    }
}
