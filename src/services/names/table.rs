//! Which claim each name resolves to: the rule every replica applies to the same claims (see the
//! module documentation of [`super`]), and lookups by name and by address for the DNS responder.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;

use super::claim::{Claim, is_label};
use crate::core::address::node_address;
use crate::core::identity::PublicKey;
use crate::services::crdt::document::View;

/// The top-level domain of mesh names.
pub const TOP_LEVEL: &str = "mesh";
/// Hex digits of the owner's key in the name of a claim that does not hold its label
/// (`label.<prefix>.mesh`): 64 bits, so that nobody makes a key that shares a given prefix.
pub const PREFIX_HEX: usize = 16;
/// Fewest hex digits accepted in such a name when resolving it.
pub const MIN_PREFIX_HEX: usize = 8;
/// The second label of the names every mesh address has (`<address>.addr.mesh`).
pub const ADDRESS_LABEL: &str = "addr";

/// A claim with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key that signed it.
    pub owner: PublicKey,
    /// The claim.
    pub claim: Claim,
    /// The owner is an admin of the mesh.
    pub by_admin: bool,
}

impl Entry {
    /// The node the name points at.
    pub fn target(&self) -> PublicKey {
        self.claim.target.unwrap_or(self.owner)
    }
}

/// What a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// This address (and the node's key, when the name came from a claim).
    Address(Ipv6Addr, Option<PublicKey>),
    /// A `.mesh` name that nobody holds.
    NoSuchName,
    /// Not under `.mesh`.
    NotMesh,
}

/// Every label's claims, the one that holds it first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameTable {
    labels: BTreeMap<String, Vec<Entry>>,
    /// Node address → (label, rank of the claim under it): the name an address has.
    by_address: HashMap<Ipv6Addr, (String, usize)>,
}

impl NameTable {
    /// The table of the names namespace's documents (label → the document's view), on a mesh whose
    /// admins `is_admin` names. Entries that do not read as claims are left out (a replica admits
    /// none, see [`super::admit`]).
    pub fn from_views<'a>(
        documents: impl IntoIterator<Item = (&'a str, &'a View)>,
        is_admin: &dyn Fn(&PublicKey) -> bool,
    ) -> Self {
        let mut claims = Vec::new();
        for (label, view) in documents {
            let View::Map(entries) = view else { continue };
            for (owner, value) in entries {
                let (Ok(owner), View::Lww(Some(text))) = (PublicKey::from_hex(owner), value) else {
                    continue;
                };
                if let Ok(claim) = Claim::decode(text) {
                    claims.push((label.to_owned(), owner, claim));
                }
            }
        }
        Self::from_claims(claims, is_admin)
    }

    /// The table of these claims `(label, owner, claim)`.
    pub fn from_claims(
        claims: impl IntoIterator<Item = (String, PublicKey, Claim)>,
        is_admin: &dyn Fn(&PublicKey) -> bool,
    ) -> Self {
        let mut labels: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for (label, owner, claim) in claims {
            if !is_label(&label) {
                continue;
            }
            let by_admin = is_admin(&owner);
            if claim.target.is_some_and(|t| t != owner) && !by_admin {
                continue;
            }
            labels.entry(label).or_default().push(Entry {
                owner,
                claim,
                by_admin,
            });
        }
        for entries in labels.values_mut() {
            order(entries);
        }
        let mut by_address = HashMap::new();
        // Winners first, so that an address held by a winning claim is named by it.
        let ranked = labels.iter().flat_map(|(label, entries)| {
            entries
                .iter()
                .enumerate()
                .map(move |(rank, e)| (rank, label, e))
        });
        let mut ranked: Vec<_> = ranked.collect();
        ranked.sort_by_key(|(rank, label, _)| (*rank, (*label).clone()));
        for (rank, label, entry) in ranked {
            by_address
                .entry(node_address(&entry.target()))
                .or_insert_with(|| (label.clone(), rank));
        }
        Self { labels, by_address }
    }

    /// Every label with its claims, the holder first.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &[Entry])> {
        self.labels.iter().map(|(l, e)| (l.as_str(), e.as_slice()))
    }

    /// The claim that holds `label`, if any.
    pub fn holder(&self, label: &str) -> Option<&Entry> {
        self.labels.get(label).and_then(|e| e.first())
    }

    /// The name of the claim of rank `rank` under `label`: `label.mesh` for the holder,
    /// `label.<key prefix>.mesh` for the others.
    pub fn name_of(label: &str, entry: &Entry, rank: usize) -> String {
        if rank == 0 {
            format!("{label}.{TOP_LEVEL}")
        } else {
            let prefix = &entry.owner.to_hex()[..PREFIX_HEX];
            format!("{label}.{prefix}.{TOP_LEVEL}")
        }
    }

    /// Resolves a DNS name (any case, with or without the final dot).
    pub fn resolve(&self, name: &str) -> Resolution {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let Some(rest) = name.strip_suffix(TOP_LEVEL) else {
            return Resolution::NotMesh;
        };
        let Some(rest) = rest.strip_suffix('.').or(rest.is_empty().then_some("")) else {
            return Resolution::NotMesh;
        };
        let found = |e: &Entry| Resolution::Address(node_address(&e.target()), Some(e.target()));
        let parts: Vec<&str> = rest.split('.').collect();
        match parts.as_slice() {
            [label] => self.holder(label).map_or(Resolution::NoSuchName, found),
            [address, ADDRESS_LABEL] => match parse_dashed(address) {
                Some(addr) => Resolution::Address(addr, None),
                None => Resolution::NoSuchName,
            },
            [label, prefix]
                if prefix.len() >= MIN_PREFIX_HEX
                    && prefix.len() <= 64
                    && prefix.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                (self.labels.get(*label).into_iter().flatten())
                    .find(|e| e.owner.to_hex().starts_with(prefix))
                    .map_or(Resolution::NoSuchName, found)
            }
            _ => Resolution::NoSuchName,
        }
    }

    /// The name of a mesh address (`200::/7`): its claim's if a claim points at it, else
    /// `<address>.addr.mesh`. `None` outside the mesh.
    pub fn reverse(&self, addr: &Ipv6Addr) -> Option<String> {
        if addr.octets()[0] & 0xfe != 0x02 {
            return None;
        }
        if let Some((label, rank)) = self.by_address.get(addr)
            && let Some(entry) = self.labels.get(label).and_then(|e| e.get(*rank))
        {
            return Some(Self::name_of(label, entry, *rank));
        }
        Some(format!("{}.{ADDRESS_LABEL}.{TOP_LEVEL}", dashed(addr)))
    }
}

/// Puts the claims of one label in order: admins' first, then those that did not follow another
/// present claim (listed it as seen), then the oldest, then the lowest key.
fn order(entries: &mut [Entry]) {
    let followed: Vec<bool> = entries
        .iter()
        .map(|x| {
            entries
                .iter()
                .any(|y| y.owner != x.owner && x.claim.seen.contains(&(y.owner, y.claim.since)))
        })
        .collect();
    let mut keyed: Vec<(Entry, bool)> = entries.iter().cloned().zip(followed).collect();
    keyed.sort_by_key(|(e, followed)| (!e.by_admin, *followed, e.claim.since, e.owner));
    for (slot, (e, _)) in entries.iter_mut().zip(keyed) {
        *slot = e;
    }
}

/// An address as a DNS label: its eight groups in hex, joined by `-`.
pub fn dashed(addr: &Ipv6Addr) -> String {
    let groups: Vec<String> = addr.segments().iter().map(|s| format!("{s:x}")).collect();
    groups.join("-")
}

/// Reads [`dashed`] back (mesh addresses only).
fn parse_dashed(label: &str) -> Option<Ipv6Addr> {
    let groups: Vec<&str> = label.split('-').collect();
    if groups.len() != 8 {
        return None;
    }
    let mut segments = [0u16; 8];
    for (slot, g) in segments.iter_mut().zip(groups) {
        if g.is_empty() || g.len() > 4 {
            return None;
        }
        *slot = u16::from_str_radix(g, 16).ok()?;
    }
    let addr = Ipv6Addr::from(segments);
    (addr.octets()[0] & 0xfe == 0x02).then_some(addr)
}

#[cfg(test)]
mod tests;
