//! Signed changes: one edit of one document by one node, the unit that replicas exchange and store.
//!
//! ```text
//! change v1 = version(1)=1 kind(1) namespace(string) document(string) actor(32) seq(varint)
//!             wall_millis(varint) delta signature(64)
//! change v2 = version(1)=2 kind(1) namespace(string) document(string) actor(32) seq(varint)
//!             wall_millis(varint) count(varint) (author(32) through(varint))* delta signature(64)
//! kind      = 0x0v for a single value, 0x1v for a map of values; v = 0 counter, 1 lww, 2 mv, 3 set,
//!             4 text (single value only)
//! ```
//! The signature is Ed25519 by `actor` (a node key) over `"meshrouter crdt change v1\0"` (v2:
//! `"... v2\0"`) and every byte before it; the change's id is SHA-256 of those same bytes. A v2
//! change also names its *access point*: per author, how many of the namespace's access changes
//! (document `_access`, see [`super::access`]) its writer had applied when it signed, authors in
//! ascending order, each through at least 1; whether the writer could write is decided at that
//! point, the same way on every replica. A change made at the empty point is encoded as v1, so
//! namespaces without access rules keep the v1 format. `seq` numbers an actor's changes to
//! one document from 1 with no gaps, so a replica's version vector says exactly which changes it
//! lacks, and two different changes with one `(actor, seq)` are proof that the actor equivocated
//! (see [`super::log`]). A change may only create entries under its own actor's dots, and every dot
//! it carries must be in its context: a node cannot write in another node's name.

use sha2::{Digest, Sha256};

use super::codec;
use super::context::Actor;
use super::document::Causal;
use super::field::{Kind, ValueKind};
use super::store::DotStore;
use crate::core::identity::{NodeKey, PublicKey, SIGNATURE_LEN, Verifier};
use crate::core::verifier::Item;
use crate::core::wire::{Reader, WireError, put_varint, split_signature};

const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"meshrouter crdt change v1\0";
const VERSION_2: u8 = 2;
const DOMAIN_2: &[u8] = b"meshrouter crdt change v2\0";
/// Longest namespace name, in bytes (room for an owned name: `~` + a did:key id + `/` + a label).
pub const MAX_NAMESPACE: usize = 128;
/// Authors an access point may name, at most.
pub const MAX_ACCESS_AUTHORS: usize = 256;

/// Per author, how many of a namespace's access changes were applied (see the module
/// documentation).
pub type AccessPoint = std::collections::BTreeMap<Actor, u64>;
/// Longest document name, in bytes.
pub const MAX_DOCUMENT: usize = 128;

/// A change's id: SHA-256 of its signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeId(pub [u8; 32]);

/// One signed edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Groups documents for replication settings.
    pub namespace: String,
    /// The document's name within its namespace.
    pub document: String,
    /// The document's schema (fixed at creation, so every change repeats it).
    pub kind: Kind,
    /// The node that made it.
    pub actor: PublicKey,
    /// Its number among the actor's changes to this document, from 1.
    pub seq: u64,
    /// The actor's wall clock when it made it (informational; registers carry their own HLC).
    pub wall_millis: u64,
    /// The access changes its writer had applied (empty: none, a v1 change).
    pub access: AccessPoint,
    /// What it changes.
    pub delta: Causal,
    /// Ed25519 by `actor`.
    pub signature: [u8; SIGNATURE_LEN],
    /// SHA-256 of the signed bytes (set by [`Change::sign`] and [`Change::decode_verified`]).
    pub id: ChangeId,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Not a well-formed encoding.
    #[error("malformed change: {0}")]
    Malformed(#[from] WireError),
    /// The signature does not verify with the actor's key.
    #[error("bad signature")]
    BadSignature,
    /// Well formed and signed, but not a possible change (see the module documentation).
    #[error("invalid change: {0}")]
    Invalid(&'static str),
}

fn kind_byte(kind: Kind) -> u8 {
    let v = |k: ValueKind| match k {
        ValueKind::Counter => 0,
        ValueKind::Lww => 1,
        ValueKind::Mv => 2,
        ValueKind::Set => 3,
        ValueKind::Text => 4,
    };
    match kind {
        Kind::Value(k) => v(k),
        Kind::Map(k) => 0x10 | v(k),
    }
}

fn kind_from(byte: u8) -> Option<Kind> {
    let v = match byte & 0x0f {
        0 => ValueKind::Counter,
        1 => ValueKind::Lww,
        2 => ValueKind::Mv,
        3 => ValueKind::Set,
        4 => ValueKind::Text,
        _ => return None,
    };
    match byte >> 4 {
        0 => Some(Kind::Value(v)),
        1 if v != ValueKind::Text => Some(Kind::Map(v)),
        _ => None,
    }
}

/// True for a usable namespace or document name: 1 to `max` bytes, no control characters.
pub fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty() && name.len() <= max && !name.chars().any(char::is_control)
}

impl Change {
    /// Makes and signs a change at the empty access point (a v1 change).
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &NodeKey,
        namespace: &str,
        document: &str,
        kind: Kind,
        seq: u64,
        wall_millis: u64,
        delta: Causal,
    ) -> Self {
        let point = AccessPoint::new();
        Self::sign_at(
            key,
            namespace,
            document,
            kind,
            seq,
            wall_millis,
            &point,
            delta,
        )
    }

    /// Makes and signs a change at access point `access` (entries of 0 are left out).
    #[allow(clippy::too_many_arguments)]
    pub fn sign_at(
        key: &NodeKey,
        namespace: &str,
        document: &str,
        kind: Kind,
        seq: u64,
        wall_millis: u64,
        access: &AccessPoint,
        delta: Causal,
    ) -> Self {
        let mut change = Self {
            namespace: namespace.to_owned(),
            document: document.to_owned(),
            kind,
            actor: key.public_key(),
            seq,
            wall_millis,
            access: access
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(a, n)| (*a, *n))
                .collect(),
            delta,
            signature: [0; SIGNATURE_LEN],
            id: ChangeId([0; 32]),
        };
        let body = change.body();
        change.signature = key.sign(&[change.domain(), &body].concat());
        change.id = ChangeId(Sha256::digest(&body).into());
        change
    }

    fn domain(&self) -> &'static [u8] {
        if self.access.is_empty() {
            DOMAIN
        } else {
            DOMAIN_2
        }
    }

    /// Everything but the signature, encoded.
    fn body(&self) -> Vec<u8> {
        let version = if self.access.is_empty() {
            VERSION
        } else {
            VERSION_2
        };
        let mut out = vec![version, kind_byte(self.kind)];
        for name in [&self.namespace, &self.document] {
            put_varint(&mut out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(self.actor.as_bytes());
        put_varint(&mut out, self.seq);
        put_varint(&mut out, self.wall_millis);
        if !self.access.is_empty() {
            put_varint(&mut out, self.access.len() as u64);
            for (author, through) in &self.access {
                out.extend_from_slice(&author.0);
                put_varint(&mut out, *through);
            }
        }
        codec::encode(&self.delta, &mut out);
        out
    }

    /// The encoded change.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// The change's id.
    pub fn id(&self) -> ChangeId {
        self.id
    }

    /// Decodes a change and checks everything a replica relies on: the signature (ZIP-215 rule, see
    /// [`crate::core::verifier`]), names, `seq`, that the delta fits the schema and only creates
    /// entries under the actor's own dots.
    pub fn decode_verified(bytes: &[u8]) -> Result<Self, ChangeError> {
        Self::decode_verified_with(bytes, &mut Verifier::default())
    }

    /// [`Change::decode_verified`] with a cache of keys, for many changes by few writers.
    pub fn decode_verified_with(
        bytes: &[u8],
        verifier: &mut Verifier,
    ) -> Result<Self, ChangeError> {
        let (change, message) = Self::decode_unverified(bytes)?;
        if !verifier.verify_zip215(&change.actor, &message, &change.signature) {
            return Err(ChangeError::BadSignature);
        }
        change.check()
    }

    /// Decodes a change this node verified before it stored it, without checking the signature again.
    pub fn decode_trusted(bytes: &[u8]) -> Result<Self, ChangeError> {
        Self::decode_unverified(bytes).map(|(change, _)| change)
    }

    /// Decodes a change; returns it with the message its signature must cover, unchecked.
    fn decode_unverified(bytes: &[u8]) -> Result<(Self, Vec<u8>), ChangeError> {
        let (body, signature) = split_signature(bytes)?;
        let mut r = Reader::new(body);
        let version = r.u8()?;
        let domain = match version {
            VERSION => DOMAIN,
            VERSION_2 => DOMAIN_2,
            _ => return Err(WireError::Version(version).into()),
        };
        let kind = kind_from(r.u8()?).ok_or(WireError::Invalid("document kind"))?;
        let mut name = |max| -> Result<String, ChangeError> {
            let len = r.length(max)?;
            let text = std::str::from_utf8(r.take(len)?).map_err(|_| WireError::Invalid("name"))?;
            if !valid_name(text, max) {
                return Err(ChangeError::Invalid("namespace or document name"));
            }
            Ok(text.to_owned())
        };
        let namespace = name(MAX_NAMESPACE)?;
        let document = name(MAX_DOCUMENT)?;
        let actor = r.key()?;
        let seq = r.varint()?;
        let wall_millis = r.varint()?;
        let mut access = AccessPoint::new();
        if version == VERSION_2 {
            let count = r.length(MAX_ACCESS_AUTHORS)?;
            if count == 0 {
                return Err(WireError::Invalid("empty access point in a v2 change").into());
            }
            for _ in 0..count {
                let author = Actor(*r.key()?.as_bytes());
                let through = r.varint()?;
                // Ascending authors, no zero: one encoding per point, so one id per change.
                if through == 0
                    || access
                        .last_key_value()
                        .is_some_and(|(last, _)| *last >= author)
                {
                    return Err(WireError::Invalid("access point").into());
                }
                access.insert(author, through);
            }
        }
        let delta = codec::decode(&mut r)?;
        r.finish()?;
        let change = Self {
            namespace,
            document,
            kind,
            actor,
            seq,
            wall_millis,
            access,
            delta,
            signature,
            id: ChangeId(Sha256::digest(body).into()),
        };
        Ok((change, [domain, body].concat()))
    }

    /// The rules a signed change must also follow (see the module documentation).
    fn check(self) -> Result<Self, ChangeError> {
        if self.seq == 0 {
            return Err(ChangeError::Invalid("seq 0"));
        }
        if !self.delta.field.fits(self.kind) {
            return Err(ChangeError::Invalid("delta does not fit the document kind"));
        }
        let mut dots = Vec::new();
        self.delta.field.dots(&mut dots);
        let own = Actor(*self.actor.as_bytes());
        if dots
            .iter()
            .any(|d| d.actor != own || !self.delta.ctx.contains(d))
        {
            return Err(ChangeError::Invalid(
                "entry under another actor's or an unseen dot",
            ));
        }
        Ok(self)
    }
}

/// Decodes and verifies many changes (a sync batch, a sneakernet file) with batch signature
/// verification, which under the ZIP-215 rule gives each change exactly the verdict
/// [`Change::decode_verified`] would. Signature checks dominate the cost and are independent, so
/// the driver spreads batches over its cores (`driver::parallel`); results keep the input's order.
pub fn decode_verified_all<B: AsRef<[u8]>>(encoded: &[B]) -> Vec<Result<Change, ChangeError>> {
    let decoded: Vec<_> = encoded
        .iter()
        .map(|b| Change::decode_unverified(b.as_ref()))
        .collect();
    let items: Vec<Item<'_>> = decoded
        .iter()
        .flatten()
        .map(|(c, message)| (c.actor, message.as_slice(), c.signature))
        .collect();
    let mut verdicts = Verifier::default().verify_batch_zip215(&items).into_iter();
    decoded
        .into_iter()
        .map(|result| {
            let (change, _) = result?;
            if !verdicts.next().unwrap_or(false) {
                return Err(ChangeError::BadSignature);
            }
            change.check()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::crdt::document::{Document, Edit, Op};

    fn key(n: u8) -> NodeKey {
        NodeKey::from_seed(&[n; 32])
    }

    fn change(k: &NodeKey, seq: u64, value: &str) -> Change {
        let kind = Kind::Map(ValueKind::Lww);
        let mut doc = Document::new(kind);
        let actor = Actor(*k.public_key().as_bytes());
        let delta = doc
            .edit(actor, &Op::Key("k".into(), Edit::Write(value.into())), 7)
            .unwrap();
        Change::sign(k, "inventory", "boats", kind, seq, 7, delta)
    }

    #[test]
    fn a_signed_change_round_trips_and_every_flipped_bit_is_refused() {
        let c = change(&key(1), 1, "three");
        let bytes = c.encode();
        let back = Change::decode_verified(&bytes).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.id(), c.id());
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            assert!(Change::decode_verified(&t).is_err(), "byte {i}");
        }
        for cut in 0..bytes.len() {
            assert!(Change::decode_verified(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn a_change_at_an_access_point_round_trips_as_v2_and_every_flipped_bit_is_refused() {
        let k = key(1);
        let plain = change(&k, 1, "three");
        let point: AccessPoint = [
            (Actor([9; 32]), 3),
            (Actor([4; 32]), 1),
            (Actor([5; 32]), 0),
        ]
        .into();
        let c = Change::sign_at(
            &k,
            "inventory",
            "boats",
            plain.kind,
            1,
            7,
            &point,
            plain.delta,
        );
        assert_eq!(c.access.len(), 2, "zero entries are left out");
        let bytes = c.encode();
        assert_eq!(bytes[0], VERSION_2);
        let back = Change::decode_verified(&bytes).unwrap();
        assert_eq!(back, c);
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            assert!(Change::decode_verified(&t).is_err(), "byte {i}");
        }
        // The same change at the empty point is a v1 change, signed under the v1 domain.
        assert_eq!(change(&k, 1, "three").encode()[0], VERSION);
        // A v1 body relabelled v2 (or the reverse) fails: the domains differ.
        let mut relabelled = change(&k, 1, "three").encode();
        relabelled[0] = VERSION_2;
        assert!(Change::decode_verified(&relabelled).is_err());
    }

    #[test]
    fn a_node_cannot_write_under_another_nodes_dots() {
        let (honest, forger) = (key(1), key(2));
        let stolen = change(&honest, 1, "x").delta;
        let forged = Change::sign(
            &forger,
            "inventory",
            "boats",
            Kind::Map(ValueKind::Lww),
            1,
            7,
            stolen,
        );
        assert_eq!(
            Change::decode_verified(&forged.encode()),
            Err(ChangeError::Invalid(
                "entry under another actor's or an unseen dot"
            ))
        );
        let mut wrong_kind = change(&honest, 1, "x");
        wrong_kind.kind = Kind::Value(ValueKind::Counter);
        let resigned = Change::sign(
            &honest,
            "inventory",
            "boats",
            wrong_kind.kind,
            1,
            7,
            wrong_kind.delta,
        );
        assert!(Change::decode_verified(&resigned.encode()).is_err());
        let zero = Change::sign(
            &honest,
            "inventory",
            "boats",
            Kind::Map(ValueKind::Lww),
            0,
            7,
            change(&honest, 1, "x").delta,
        );
        assert_eq!(
            Change::decode_verified(&zero.encode()),
            Err(ChangeError::Invalid("seq 0"))
        );
        assert!(!valid_name("", 10) && !valid_name("a\nb", 10) && !valid_name("abcdef", 5));
    }
}
