//! Address derivation against vectors printed by the reference `yggdrasil` 0.5.12 binary
//! (`tests/data/ygg-address.tsv`: seed, public key, address, subnet), plus properties of the reverse mapping.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::net::Ipv6Addr;

use meshrouter::core::address::{PartialKey, Subnet, node_address, node_subnet};
use meshrouter::core::identity::{NodeKey, PublicKey};
use proptest::prelude::*;

/// One row of the vectors file.
struct Vector {
    seed: String,
    public_key: String,
    address: Ipv6Addr,
    subnet: Ipv6Addr,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("data/ygg-address.tsv");
    let rows: Vec<Vector> = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 4, "bad vector row: {line}");
            let (subnet, len) = f[3].split_once('/').unwrap();
            assert_eq!(len, "64");
            Vector {
                seed: f[0].to_owned(),
                public_key: f[1].to_owned(),
                address: f[2].parse().unwrap(),
                subnet: subnet.parse().unwrap(),
            }
        })
        .collect();
    assert!(rows.len() >= 60, "vectors file lost rows: {}", rows.len());
    rows
}

#[test]
fn every_vector_row_matches_yggdrasil() {
    for v in vectors() {
        let key = NodeKey::from_hex(&v.seed).unwrap();
        let public = key.public_key();
        assert_eq!(public.to_hex(), v.public_key, "seed {}", v.seed);
        assert_eq!(node_address(&public), v.address, "seed {}", v.seed);
        assert_eq!(node_subnet(&public).network(), v.subnet, "seed {}", v.seed);
        // The Yggdrasil 64-byte PrivateKey form gives the same node.
        let ygg = NodeKey::from_hex(&format!("{}{}", v.seed, v.public_key)).unwrap();
        assert_eq!(ygg.public_key(), public);
    }
}

#[test]
fn vector_addresses_map_back_to_their_keys() {
    for v in vectors() {
        let public = PublicKey::from_hex(&v.public_key).unwrap();
        assert!(
            PartialKey::from_address(&v.address)
                .unwrap()
                .matches(&public)
        );
        let subnet = Subnet::containing(&v.subnet).unwrap();
        assert!(PartialKey::from_subnet(&subnet).matches(&public));
        assert_eq!(
            PartialKey::from_subnet(&subnet),
            PartialKey::canonical(&public)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// address -> partial key -> matches(public key), for the /128 and for any host inside the /64.
    #[test]
    fn partial_key_of_own_address_matches(seed in any::<[u8; 32]>(), host in any::<u64>()) {
        let public = NodeKey::from_seed(&seed).public_key();
        let address = node_address(&public);
        prop_assert!(PartialKey::from_address(&address).unwrap().matches(&public));
        let subnet = node_subnet(&public);
        let mut octets = subnet.network().octets();
        octets[8..].copy_from_slice(&host.to_be_bytes());
        let inside = Ipv6Addr::from(octets);
        prop_assert!(subnet.contains(&inside));
        prop_assert!(PartialKey::from_address(&inside).unwrap().matches(&public));
        prop_assert_eq!(PartialKey::from_address(&inside).unwrap(), PartialKey::canonical(&public));
    }

    /// A partial key from an address carries at least 112 key bits, so another random key essentially
    /// never matches it.
    #[test]
    fn other_keys_do_not_match(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        prop_assume!(a != b);
        let (ka, kb) = (NodeKey::from_seed(&a).public_key(), NodeKey::from_seed(&b).public_key());
        let partial = PartialKey::from_address(&node_address(&ka)).unwrap();
        prop_assert!(partial.known_bits() >= 113);
        prop_assert!(!partial.matches(&kb));
    }

    /// Any 16 bytes either give a partial key or are outside 200::/7; never a panic.
    #[test]
    fn any_address_is_handled(octets in any::<[u8; 16]>()) {
        let addr = Ipv6Addr::from(octets);
        let in_range = octets[0] == 2 || octets[0] == 3;
        prop_assert_eq!(PartialKey::from_address(&addr).is_some(), in_range);
    }
}
