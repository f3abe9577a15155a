//! Key-derived IPv6 addresses, bit-exact with Yggdrasil 0.5 (`address/address.go` there).
//!
//! A node's address lives in `200::/7`: byte 0 is `0x02` for the node address and `0x03` for its routed /64
//! (`300::/8`). Byte 1 counts the leading zero bits of the public key; the bits after the first one bit
//! follow, packed. Keys with many leading zeros therefore get "higher" addresses, and the address keeps as
//! many key bits as fit, which is what lets a lookup find the full key from an address alone.
//!
//! The reverse direction, [`PartialKey`], recovers the key bits an address or /64 still carries; lookups
//! match on it.

use std::fmt;
use std::net::Ipv6Addr;

use super::identity::{PUBLIC_KEY_LEN, PublicKey};

/// First byte of every node address (`200::/8`).
pub const ADDRESS_PREFIX: u8 = 0x02;
/// First byte of every routed /64 (`300::/8`).
pub const SUBNET_PREFIX: u8 = 0x03;
/// Prefix length of the whole key-derived range `200::/7`, which the TUN device claims as on-link.
pub const OVERLAY_PREFIX_LEN: u8 = 7;

const KEY_BITS: usize = 8 * PUBLIC_KEY_LEN;

/// Packs the key bits after the leading-zero run and its terminating one bit, as Yggdrasil does: returns
/// the run length (wrapping at 256, as Yggdrasil's `byte` counter does; a real key never has 128 leading
/// zeros) and the packed bits, zero-filled at the end. Yggdrasil stores the bits after the run inverted.
///
/// Works a byte at a time (a shift of the whole key), since every received packet's source address is
/// derived from its sender's key; `tests::matches_the_bitwise_definition` checks it against the
/// one-bit-at-a-time definition.
fn leading_zeros_and_rest(key: &PublicKey) -> (u8, [u8; PUBLIC_KEY_LEN]) {
    let key = key.as_bytes();
    let zeros = key
        .iter()
        .position(|b| *b != 0)
        .map_or(KEY_BITS, |i| i * 8 + key[i].leading_zeros() as usize);
    let shift = zeros + 1;
    let (byte_shift, bit_shift) = (shift / 8, shift % 8);
    // Inverted key bytes, and zeros past the end (the zero fill is not inverted).
    let inverted = |k: usize| key.get(k).map_or(0, |b| !b);
    let mut rest = [0u8; PUBLIC_KEY_LEN];
    for (j, out) in rest.iter_mut().enumerate() {
        let k = j + byte_shift;
        *out = if bit_shift == 0 {
            inverted(k)
        } else {
            (inverted(k) << bit_shift) | (inverted(k + 1) >> (8 - bit_shift))
        };
    }
    (zeros as u8, rest)
}

/// Returns the node address in `200::/8` for a public key.
pub fn node_address(key: &PublicKey) -> Ipv6Addr {
    let (zeros, rest) = leading_zeros_and_rest(key);
    let mut octets = [0u8; 16];
    octets[0] = ADDRESS_PREFIX;
    octets[1] = zeros;
    octets[2..].copy_from_slice(&rest[..14]);
    Ipv6Addr::from(octets)
}

/// Returns the routed /64 in `300::/8` for a public key.
pub fn node_subnet(key: &PublicKey) -> Subnet {
    let (zeros, rest) = leading_zeros_and_rest(key);
    let mut prefix = [0u8; 8];
    prefix[0] = SUBNET_PREFIX;
    prefix[1] = zeros;
    prefix[2..].copy_from_slice(&rest[..6]);
    Subnet { prefix }
}

/// Returns true if `addr` is a node address (`200::/8`).
pub fn is_node_address(addr: &Ipv6Addr) -> bool {
    addr.octets()[0] == ADDRESS_PREFIX
}

/// Returns true if `addr` lies in some node's routed /64 (`300::/8`).
pub fn is_routed_subnet(addr: &Ipv6Addr) -> bool {
    addr.octets()[0] == SUBNET_PREFIX
}

/// A node's routed /64 prefix in `300::/8`. Hosts behind the node take addresses inside it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Subnet {
    prefix: [u8; 8],
}

impl Subnet {
    /// Prefix length of a routed subnet.
    pub const PREFIX_LEN: u8 = 64;

    /// Returns the subnet that contains `addr`, if `addr` is in `300::/8`.
    pub fn containing(addr: &Ipv6Addr) -> Option<Self> {
        is_routed_subnet(addr).then(|| Self {
            prefix: addr.octets()[..8].try_into().unwrap_or([0; 8]),
        })
    }

    /// Returns the network address (the prefix followed by zeros).
    pub fn network(&self) -> Ipv6Addr {
        let mut octets = [0u8; 16];
        octets[..8].copy_from_slice(&self.prefix);
        Ipv6Addr::from(octets)
    }

    /// Returns true if `addr` lies inside this /64.
    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        addr.octets()[..8] == self.prefix
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), Self::PREFIX_LEN)
    }
}

/// The key bits that an address or a /64 still carries: a lookup for that address succeeds at the node whose
/// public key agrees with these bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PartialKey {
    /// The known bits at the front; every unknown bit is 1, the form Yggdrasil's `GetKey` returns.
    key: [u8; PUBLIC_KEY_LEN],
    /// How many leading bits of `key` are known.
    known_bits: u16,
}

impl PartialKey {
    /// Recovers the partial key from a node address (`200::/8`) or any address in a routed /64 (`300::/8`);
    /// `None` for an address outside `200::/7`.
    pub fn from_address(addr: &Ipv6Addr) -> Option<Self> {
        let octets = addr.octets();
        match octets[0] {
            ADDRESS_PREFIX => Some(Self::from_packed(octets[1], &octets[2..])),
            SUBNET_PREFIX => Some(Self::from_packed(octets[1], &octets[2..8])),
            _ => None,
        }
    }

    /// Returns the canonical (/64-level) partial key of any address in `200::/7`: the form subtree sets
    /// and lookup targets use, so that a node is found from its /128 or from any address in its /64.
    pub fn canonical_for_address(addr: &Ipv6Addr) -> Option<Self> {
        let octets = addr.octets();
        matches!(octets[0], ADDRESS_PREFIX | SUBNET_PREFIX)
            .then(|| Self::from_packed(octets[1], &octets[2..8]))
    }

    /// Recovers the partial key from a routed /64.
    pub fn from_subnet(subnet: &Subnet) -> Self {
        Self::from_packed(subnet.prefix[1], &subnet.prefix[2..])
    }

    /// Returns the partial key that a public key's own /64 yields. Lookups compare keys in this canonical
    /// form (Yggdrasil's "bloom transform"), so a search started from a /128 or a /64 finds the same node.
    pub fn canonical(key: &PublicKey) -> Self {
        Self::from_subnet(&node_subnet(key))
    }

    /// Rebuilds the key from the leading-zero count and the packed inverted bits that follow the run.
    fn from_packed(zeros: u8, packed: &[u8]) -> Self {
        let zeros = usize::from(zeros);
        let mut key = [0xffu8; PUBLIC_KEY_LEN];
        let mut clear = |i: usize| key[i / 8] &= !(0x80 >> (i % 8));
        (0..zeros.min(KEY_BITS)).for_each(&mut clear);
        let first_packed = zeros + 1;
        for (j, i) in (first_packed..KEY_BITS).take(8 * packed.len()).enumerate() {
            // A set bit in the packed (inverted) form is a zero bit in the key.
            if packed[j / 8] & (0x80 >> (j % 8)) != 0 {
                clear(i);
            }
        }
        let known_bits = (first_packed + 8 * packed.len()).min(KEY_BITS) as u16;
        Self { key, known_bits }
    }

    /// Returns true if `key` agrees with every known bit.
    pub fn matches(&self, key: &PublicKey) -> bool {
        let known = usize::from(self.known_bits);
        let (full, tail) = (known / 8, known % 8);
        let key = key.as_bytes();
        if key[..full] != self.key[..full] {
            return false;
        }
        tail == 0 || {
            let mask = !(0xffu8 >> tail);
            key[full] & mask == self.key[full] & mask
        }
    }

    /// Returns the key in Yggdrasil's form: known bits followed by ones.
    pub fn as_padded_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.key
    }

    /// Returns how many leading bits are known.
    pub fn known_bits(&self) -> u16 {
        self.known_bits
    }
}

#[cfg(test)]
mod tests {
    /// The definition, one bit at a time, as Yggdrasil's code reads.
    fn bitwise(key: &PublicKey) -> (u8, [u8; PUBLIC_KEY_LEN]) {
        let key = key.as_bytes();
        let bit = |i: usize| (key[i / 8] >> (7 - i % 8)) & 1;
        let zeros = (0..KEY_BITS).take_while(|&i| bit(i) == 0).count();
        let mut rest = [0u8; PUBLIC_KEY_LEN];
        for (out, i) in (zeros + 1..KEY_BITS).enumerate() {
            rest[out / 8] |= (1 - bit(i)) << (7 - out % 8);
        }
        (zeros as u8, rest)
    }

    proptest::proptest! {
        #[test]
        fn matches_the_bitwise_definition(
            bytes in proptest::array::uniform32(proptest::num::u8::ANY),
            zero_bytes in 0usize..33,
            mask in proptest::num::u8::ANY,
        ) {
            // Keys with long zero runs too, ending at every bit position.
            let mut bytes = bytes;
            for b in bytes.iter_mut().take(zero_bytes) {
                *b = 0;
            }
            if let Some(b) = bytes.get_mut(zero_bytes) {
                *b &= mask;
            }
            let key = PublicKey::from_bytes(bytes);
            proptest::prop_assert_eq!(leading_zeros_and_rest(&key), bitwise(&key));
        }
    }

    use super::*;

    fn key(hex: &str) -> PublicKey {
        PublicKey::from_hex(hex).unwrap()
    }

    #[test]
    fn first_vector_row() {
        let k = key("ffbbc89ea3b287796ada7a79689641e27b782b79b461c1063ba8d4a594115013");
        assert_eq!(
            node_address(&k),
            "200:88:6ec2:b89a:f10d:2a4b:b0d:2ed3"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        assert_eq!(node_subnet(&k).to_string(), "300:88:6ec2:b89a::/64");
    }

    #[test]
    fn extreme_keys_do_not_panic() {
        for bytes in [[0u8; 32], [0xff; 32], {
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        }] {
            let k = PublicKey::from_bytes(bytes);
            let addr = node_address(&k);
            let partial = PartialKey::from_address(&addr).unwrap();
            assert!(partial.matches(&k) || bytes == [0; 32]);
            assert!(PartialKey::canonical(&k).matches(&k) || bytes == [0; 32]);
        }
    }

    #[test]
    fn partial_key_padding_matches_yggdrasil_get_key() {
        // A key with 3 leading zero bits: the padded form has those zeros, the key's own bits, then ones.
        let k = key("1e664d0c13f778014fa030bf0e3bd46dd901acc18212e3f877e535f196d9db6b");
        let partial = PartialKey::from_subnet(&node_subnet(&k));
        assert_eq!(partial.known_bits(), 3 + 1 + 48);
        assert_eq!(&partial.as_padded_key()[..6], &k.as_bytes()[..6]);
        assert_eq!(partial.as_padded_key()[6] & 0xf0, k.as_bytes()[6] & 0xf0);
        assert_eq!(partial.as_padded_key()[6] & 0x0f, 0x0f);
        assert!(partial.as_padded_key()[7..].iter().all(|&b| b == 0xff));
    }

    #[test]
    fn outside_the_overlay_range_has_no_partial_key() {
        assert_eq!(PartialKey::from_address(&Ipv6Addr::LOCALHOST), None);
        assert_eq!(Subnet::containing(&"200::1".parse().unwrap()), None);
    }
}
