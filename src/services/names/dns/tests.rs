use super::*;
use crate::core::address::node_address;
use crate::core::identity::PublicKey;
use crate::services::names::claim::Claim;
use simple_dns::Question;

fn table() -> NameTable {
    let claim = Claim {
        since: 1,
        target: None,
        seen: vec![],
    };
    NameTable::from_claims([("server".to_owned(), key(), claim)], &|_| false)
}

fn key() -> PublicKey {
    PublicKey::from_bytes([3; 32])
}

fn query(name: &str, qtype: TYPE) -> Vec<u8> {
    let mut packet = Packet::new_query(0x1234);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        Name::new_unchecked(name),
        QTYPE::TYPE(qtype),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet.build_bytes_vec().unwrap()
}

fn reply(answer: Answer) -> (RCODE, Vec<String>) {
    let Answer::Reply(bytes) = answer else {
        panic!("no reply: {answer:?}");
    };
    let packet = Packet::parse(&bytes).unwrap();
    assert_eq!(packet.id(), 0x1234);
    assert!(packet.has_flags(PacketFlag::RESPONSE));
    let answers = packet
        .answers
        .iter()
        .map(|rr| match &rr.rdata {
            RData::AAAA(a) => Ipv6Addr::from(a.address).to_string(),
            RData::PTR(p) => p.0.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    (packet.rcode(), answers)
}

#[test]
fn mesh_names_and_addresses_are_answered() {
    let t = table();
    let addr = node_address(&key());
    assert_eq!(
        reply(answer(&query("server.mesh", TYPE::AAAA), &t, false)),
        (RCODE::NoError, vec![addr.to_string()])
    );
    assert_eq!(
        reply(answer(&query("Server.MESH", TYPE::AAAA), &t, false)),
        (RCODE::NoError, vec![addr.to_string()])
    );
    // A name that exists has no A record: NODATA, not NXDOMAIN.
    assert_eq!(
        reply(answer(&query("server.mesh", TYPE::A), &t, false)),
        (RCODE::NoError, vec![])
    );
    assert_eq!(
        reply(answer(&query("nobody.mesh", TYPE::AAAA), &t, false)).0,
        RCODE::NameError
    );
    // Reverse: the name, else the address label.
    let nibbles: String = format!("{:032x}", u128::from(addr))
        .chars()
        .rev()
        .flat_map(|c| [c, '.'])
        .collect();
    let ptr = format!("{nibbles}ip6.arpa");
    assert_eq!(
        reply(answer(&query(&ptr, TYPE::PTR), &t, false)),
        (RCODE::NoError, vec!["server.mesh".to_owned()])
    );
    let elsewhere = format!("f{}", &ptr[1..]);
    let other = reply(answer(&query(&elsewhere, TYPE::PTR), &t, false));
    assert_eq!(other.0, RCODE::NoError);
    assert!(other.1[0].ends_with(".addr.mesh"), "{other:?}");
    assert_eq!(
        reply(answer(&query("2.0.ip6.arpa", TYPE::PTR), &t, false)).0,
        RCODE::NameError
    );
}

#[test]
fn other_names_are_refused_unless_forwarding() {
    let t = table();
    assert_eq!(
        reply(answer(&query("example.com", TYPE::AAAA), &t, false)).0,
        RCODE::Refused
    );
    assert_eq!(
        answer(&query("example.com", TYPE::AAAA), &t, true),
        Answer::Forward
    );
    assert_eq!(
        answer(&query("1.0.0.2.ip6.arpa", TYPE::PTR), &t, true),
        Answer::Forward
    );
}

#[test]
fn malformed_queries_get_formerr_and_responses_nothing() {
    let t = table();
    assert_eq!(answer(&[0; 11], &t, false), Answer::Ignore);
    let mut garbage = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xff; 20]);
    assert_eq!(reply(answer(&garbage, &t, false)).0, RCODE::FormatError);
    let mut two = Packet::new_query(0x1234);
    for _ in 0..2 {
        two.questions.push(Question::new(
            Name::new_unchecked("server.mesh"),
            QTYPE::TYPE(TYPE::AAAA),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
    }
    assert_eq!(
        reply(answer(&two.build_bytes_vec().unwrap(), &t, false)).0,
        RCODE::FormatError
    );
    let mut response = query("server.mesh", TYPE::AAAA);
    response[2] |= 0x80;
    assert_eq!(answer(&response, &t, false), Answer::Ignore);
    let mut update = query("server.mesh", TYPE::AAAA);
    update[2] |= 5 << 3;
    assert_eq!(reply(answer(&update, &t, false)).0, RCODE::NotImplemented);
}

#[test]
fn only_the_node_and_its_lans_are_answered_unless_the_overlay_is_allowed() {
    use crate::core::address::node_subnet;
    let me = key();
    let other = PublicKey::from_bytes([9; 32]);
    let mut policy = Admission {
        address: node_address(&me),
        subnet: node_subnet(&me),
        allow_overlay: false,
    };
    let mut lan_host = node_subnet(&me).network().octets();
    lan_host[15] = 7;
    for (source, answered) in [
        ("::1", true),
        ("fe80::1", true),
        ("2001:db8::5", true),
        ("192.0.2.1", true),
        ("::ffff:192.0.2.1", true),
    ] {
        assert_eq!(policy.admits(source.parse().unwrap()), answered, "{source}");
    }
    assert!(policy.admits(node_address(&me).into()));
    assert!(policy.admits(Ipv6Addr::from(lan_host).into()));
    assert!(!policy.admits(node_address(&other).into()));
    assert!(!policy.admits(node_subnet(&other).network().into()));
    policy.allow_overlay = true;
    assert!(policy.admits(node_address(&other).into()));
}
