use super::*;

fn node(n: u8, info: &str, now: Instant) -> NodeInfoService {
    let key = NodeKey::from_seed(&[n; 32]);
    let published = NodeInfo::sign(&key, 1_000, info.to_owned()).unwrap();
    NodeInfoService::new(key, published, [n; 32], now)
}

fn deliver(from: &mut NodeInfoService, to: &mut NodeInfoService, now: Instant) -> usize {
    let sender = from.key.public_key();
    let mut n = 0;
    while let Some((_, bytes)) = from.poll_transmit() {
        to.handle_message(now, sender, &bytes);
        n += 1;
    }
    n
}

#[test]
fn a_node_answers_with_its_signed_description() {
    let now = Instant::from_micros(1_000_000);
    let mut a = node(1, "{}", now);
    let mut b = node(2, r#"{"name":"clinic","contact":"radio 7"}"#, now);
    let b_key = b.key.public_key();
    let id = a.request(now, b_key);
    assert_eq!(deliver(&mut a, &mut b, now), 1);
    assert_eq!(deliver(&mut b, &mut a, now), 1);
    let outcome = a.poll_outcome().unwrap();
    assert_eq!((outcome.id, outcome.node), (id, b_key));
    let info = outcome.result.unwrap().unwrap();
    assert_eq!(info, *b.published());
    assert!(info.verify().is_ok());
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn oversized_malformed_and_forged_descriptions_are_refused() {
    let key = NodeKey::from_seed(&[2; 32]);
    assert!(matches!(
        NodeInfo::sign(
            &key,
            1,
            format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_NODEINFO))
        ),
        Err(NodeInfoError::TooLarge(_))
    ));
    assert!(matches!(
        NodeInfo::sign(&key, 1, "[1]".into()),
        Err(NodeInfoError::Malformed(_))
    ));
    assert!(matches!(
        NodeInfo::sign(&key, 1, "{".into()),
        Err(NodeInfoError::Malformed(_))
    ));
    let now = Instant::from_micros(1_000_000);
    let mut a = node(1, "{}", now);
    let b = node(2, "{}", now);
    let b_key = b.key.public_key();
    let good = b.published().clone();
    let answer = |info: &str, len: usize, signature: [u8; 64]| {
        let mut m = vec![ANSWER];
        m.extend_from_slice(&[0; NONCE_LEN]);
        m.extend_from_slice(&good.issued_ms.to_be_bytes());
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.extend_from_slice(info.as_bytes());
        m.extend_from_slice(&signature);
        m
    };
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_NODEINFO));
    for (message, why) in [
        (answer(&big, big.len(), good.signature), "oversized"),
        (answer("{}", 5, good.signature), "length beyond the message"),
        (answer("[]", 2, good.signature), "not an object"),
        (
            answer("{\"a\":1}", 7, good.signature),
            "signature over other bytes",
        ),
        ([&[ANSWER][..], &[0; NONCE_LEN + 3]].concat(), "truncated"),
    ] {
        a.request(now, b_key);
        let (_, request) = a.poll_transmit().unwrap();
        // The answer echoes the request's nonce.
        let mut message = message;
        message[1..1 + NONCE_LEN].copy_from_slice(&request[1..]);
        a.handle_message(now, b_key, &message);
        let outcome = a
            .poll_outcome()
            .unwrap_or_else(|| panic!("{why}: no outcome"));
        assert!(matches!(outcome.result, Some(Err(_))), "{why}: {outcome:?}");
    }
    assert_eq!(a.counters().refused, 5);
    // An answer from a node that was not asked is ignored.
    a.request(now, b_key);
    let (_, request) = a.poll_transmit().unwrap();
    let mut message = answer("{}", 2, good.signature);
    message[1..1 + NONCE_LEN].copy_from_slice(&request[1..]);
    a.handle_message(now, NodeKey::from_seed(&[3; 32]).public_key(), &message);
    assert_eq!(a.poll_outcome(), None);
    a.handle_message(now, b_key, &message);
    assert!(matches!(a.poll_outcome().unwrap().result, Some(Ok(_))));
}

#[test]
fn answers_are_rate_limited_per_requester_and_in_all() {
    let now = Instant::from_micros(1_000_000);
    let mut b = node(2, "{}", now);
    let request = [&[REQUEST][..], &[7; NONCE_LEN]].concat();
    let a_key = NodeKey::from_seed(&[1; 32]).public_key();
    for _ in 0..10 {
        b.handle_message(now, a_key, &request);
    }
    assert_eq!(b.counters().answered, ANSWERS_PER_REQUESTER as u64);
    // Many requesters: the global burst caps the answers.
    for n in 10..100u8 {
        b.handle_message(now, NodeKey::from_seed(&[n; 32]).public_key(), &request);
    }
    assert_eq!(b.counters().answered, ANSWERS_PER_SECOND.1 as u64);
    // A request to a node that never answers ends after the timeout.
    let mut a = node(1, "{}", now);
    a.request(now, b.key.public_key());
    a.handle_timeout(now + NODEINFO_TIMEOUT);
    assert_eq!(a.poll_outcome().unwrap().result, None);
}
