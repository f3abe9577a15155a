use super::*;

fn key(n: u8) -> PublicKey {
    PublicKey::from_bytes([n; 32])
}

fn claim(since: u64, seen: &[(u8, u64)]) -> Claim {
    Claim {
        since,
        target: None,
        seen: seen.iter().map(|(k, s)| (key(*k), *s)).collect(),
    }
}

fn table(claims: &[(&str, u8, Claim)], admins: &[u8]) -> NameTable {
    let claims = claims
        .iter()
        .map(|(l, o, c)| ((*l).to_owned(), key(*o), c.clone()));
    NameTable::from_claims(claims, &|k: &PublicKey| {
        admins.iter().any(|a| key(*a) == *k)
    })
}

fn at(n: u8) -> Resolution {
    Resolution::Address(node_address(&key(n)), Some(key(n)))
}

#[test]
fn the_first_claim_holds_against_a_later_one_that_saw_it() {
    // c (3) claimed "server" at 100; x (9) claims at 50 (a clock set back), having seen c's claim.
    let t = table(
        &[
            ("server", 3, claim(100, &[])),
            ("server", 9, claim(50, &[(3, 100)])),
        ],
        &[],
    );
    assert_eq!(t.resolve("server.mesh"), at(3));
    assert_eq!(t.resolve("SERVER.Mesh."), at(3));
    // The later claim is reachable under its key prefix only.
    let prefix = &key(9).to_hex()[..PREFIX_HEX];
    assert_eq!(t.resolve(&format!("server.{prefix}.mesh")), at(9));
    assert_eq!(t.resolve(&format!("server.{}.mesh", &prefix[..8])), at(9));
    assert_eq!(
        t.reverse(&node_address(&key(9))),
        Some(format!("server.{prefix}.mesh"))
    );
    assert_eq!(
        t.reverse(&node_address(&key(3))),
        Some("server.mesh".into())
    );
}

#[test]
fn concurrent_claims_go_to_the_older_then_the_lower_key() {
    let t = table(
        &[("wiki", 5, claim(200, &[])), ("wiki", 4, claim(100, &[]))],
        &[],
    );
    assert_eq!(t.resolve("wiki.mesh"), at(4));
    let t = table(
        &[("wiki", 5, claim(100, &[])), ("wiki", 4, claim(100, &[]))],
        &[],
    );
    assert_eq!(t.resolve("wiki.mesh"), at(4));
}

#[test]
fn an_admins_claim_wins_and_may_name_another_node() {
    let mut grant = claim(900, &[(3, 100)]);
    grant.target = Some(key(7));
    let t = table(
        &[("clinic", 3, claim(100, &[])), ("clinic", 1, grant.clone())],
        &[1],
    );
    assert_eq!(t.resolve("clinic.mesh"), at(7));
    // A non-admin's claim for another node is ignored.
    let t = table(&[("clinic", 2, grant)], &[1]);
    assert_eq!(t.resolve("clinic.mesh"), Resolution::NoSuchName);
}

#[test]
fn a_released_name_goes_to_the_next_claim_and_a_reclaim_comes_after() {
    // c released "server" (its entry is gone); x's claim now holds it.
    let t = table(&[("server", 9, claim(150, &[(3, 100)]))], &[]);
    assert_eq!(t.resolve("server.mesh"), at(9));
    // c claims again: a new claim (new since) that saw x's: x keeps the name.
    let t = table(
        &[
            ("server", 9, claim(150, &[(3, 100)])),
            ("server", 3, claim(300, &[(9, 150)])),
        ],
        &[],
    );
    assert_eq!(t.resolve("server.mesh"), at(9));
}

#[test]
fn names_outside_mesh_and_unknown_ones() {
    let t = table(&[("a", 1, claim(1, &[]))], &[]);
    assert_eq!(t.resolve("example.com"), Resolution::NotMesh);
    assert_eq!(t.resolve("mesh.example"), Resolution::NotMesh);
    assert_eq!(t.resolve("xmesh"), Resolution::NotMesh);
    assert_eq!(t.resolve("b.mesh"), Resolution::NoSuchName);
    assert_eq!(t.resolve("mesh"), Resolution::NoSuchName);
    assert_eq!(t.resolve("a.b.c.mesh"), Resolution::NoSuchName);
    assert_eq!(t.resolve("a.0123.mesh"), Resolution::NoSuchName);
}

#[test]
fn every_mesh_address_has_a_name() {
    let t = NameTable::default();
    let addr: Ipv6Addr = "201:439e:76de:ba2b:cc07:2cab:c860:9db6".parse().unwrap();
    let name = t.reverse(&addr).unwrap();
    assert_eq!(name, "201-439e-76de-ba2b-cc07-2cab-c860-9db6.addr.mesh");
    assert_eq!(t.resolve(&name), Resolution::Address(addr, None));
    let subnet: Ipv6Addr = "301:439e:76de:ba2b::5".parse().unwrap();
    assert_eq!(
        t.resolve(&t.reverse(&subnet).unwrap()),
        Resolution::Address(subnet, None)
    );
    assert_eq!(t.reverse(&"2001:db8::1".parse().unwrap()), None);
    assert_eq!(
        t.resolve("2001-db8-0-0-0-0-0-1.addr.mesh"),
        Resolution::NoSuchName
    );
}
