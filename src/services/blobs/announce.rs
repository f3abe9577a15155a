//! Who holds which file: announcements in the CRDT namespace [`NAMESPACE`], so a node can fetch a file
//! from holders beyond its neighbours.
//!
//! Document = the file's root CID (its text form); schema `map<lww>`; key = the holder's node key in
//! hex, value = the file's size in bytes. A node writes its own entry when it holds a file whole
//! (added or fetched) and removes it when it drops the file. Every replica admits only changes by the
//! signer to its own entry ([`admit`], the same rule as mesh names), so nobody can announce another
//! node as a holder or withdraw its announcement. An announcement is a hint: the exchange still checks
//! every block against its CID, and a holder that no longer has the file answers NotHere.

use crate::core::identity::PublicKey;
use crate::services::crdt::change::Change;
use crate::services::crdt::document::{Edit, Op, View};
use crate::services::crdt::field::{Kind, ValueKind};
use crate::services::crdt::own_entry::{Breach, own_entry};

use super::Cid;

/// The namespace of announcements.
pub const NAMESPACE: &str = "blobs";
/// The schema of every announcement document: holder (key hex) → file size.
pub const KIND: Kind = Kind::Map(ValueKind::Lww);

/// The change that announces `holder` holds `root` of `size` bytes.
pub fn announce(holder: &PublicKey, size: u64) -> Op {
    Op::Key(holder.to_hex(), Edit::Write(size.to_string()))
}

/// The change that withdraws `holder`'s announcement.
pub fn withdraw(holder: &PublicKey) -> Op {
    Op::RemoveKey(holder.to_hex())
}

/// The holders an announcement document names (entries that do not read as a key and a size are
/// skipped).
pub fn holders(view: &View) -> Vec<(PublicKey, u64)> {
    let View::Map(entries) = view else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|(key, value)| {
            let View::Lww(Some(size)) = value else {
                return None;
            };
            Some((PublicKey::from_hex(key).ok()?, size.parse().ok()?))
        })
        .collect()
}

/// The changes that bring `holder`'s announcements in line with the files it holds: `held` and
/// `announced` map a root CID (text) to a size; announces what is held and not announced (or
/// announced with another size), withdraws what is announced and no longer held.
pub fn reconcile(
    holder: &PublicKey,
    held: &std::collections::BTreeMap<String, u64>,
    announced: &std::collections::BTreeMap<String, u64>,
) -> Vec<(String, Op)> {
    let mut out: Vec<(String, Op)> = (held.iter())
        .filter(|(cid, size)| announced.get(*cid) != Some(size))
        .map(|(cid, size)| (cid.clone(), announce(holder, *size)))
        .collect();
    out.extend(
        (announced.keys())
            .filter(|cid| !held.contains_key(*cid))
            .map(|cid| (cid.clone(), withdraw(holder))),
    );
    out
}

/// Admits a change to the announcements namespace if its document is a CID, its schema [`KIND`],
/// and it writes or removes only its signer's own entry, with a size.
pub fn admit(change: &Change, _is_admin: &dyn Fn(&PublicKey) -> bool) -> Result<(), &'static str> {
    if change.document.parse::<Cid>().is_err() {
        return Err("a blobs document is a file's CID");
    }
    if change.kind != KIND {
        return Err("a blobs document maps holders to sizes (last writer wins)");
    }
    let size = own_entry(change, KIND).map_err(|breach| match breach {
        Breach::RemovesAnother => "a blobs change removes only its signer's own announcement",
        Breach::NotThisKind => "not a blobs change",
        Breach::AnotherEntry => "a holder announces only itself (its key in hex)",
        Breach::NotARegister => "an announcement is the file's size",
    })?;
    if size.is_some_and(|s| s.parse::<u64>().is_err()) {
        return Err("an announcement is the file's size");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::core::identity::NodeKey;
    use crate::services::crdt::replica::Replica;

    const ROOT: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

    fn refused(replica: &mut Replica, bad: Change) {
        let result = replica.insert(&[bad.encode()]);
        assert!(
            matches!(
                result[0],
                Ok(crate::services::crdt::log::Inserted::Refused(_))
            ),
            "{result:?}"
        );
    }

    fn change(key: &NodeKey, replica: &Replica, doc: &str, op: &Op) -> Change {
        replica
            .prepare_write(key, NAMESPACE, doc, KIND, op, 1)
            .unwrap()
    }

    #[test]
    fn reconcile_announces_what_is_held_and_withdraws_what_is_not() {
        let me = NodeKey::from_seed(&[1; 32]).public_key();
        let map = |pairs: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
            pairs.iter().map(|(c, s)| ((*c).to_owned(), *s)).collect()
        };
        let held = map(&[("a", 1), ("b", 2), ("c", 3)]);
        let announced = map(&[("b", 2), ("c", 4), ("d", 5)]);
        let ops = reconcile(&me, &held, &announced);
        assert_eq!(
            ops,
            vec![
                ("a".to_owned(), announce(&me, 1)),
                ("c".to_owned(), announce(&me, 3)),
                ("d".to_owned(), withdraw(&me)),
            ]
        );
        assert!(reconcile(&me, &held, &held).is_empty());
    }

    #[test]
    fn announcements_are_public_on_a_mesh_with_admins() {
        use crate::services::crdt::access::{NamespaceClass, TrustRoot};
        let root = TrustRoot::new([crate::services::crdt::context::Actor([7; 32])]);
        assert_eq!(NamespaceClass::of(NAMESPACE, &root), NamespaceClass::Public);
    }

    #[test]
    fn holders_announce_and_withdraw_only_themselves() {
        let (a, b) = (NodeKey::from_seed(&[1; 32]), NodeKey::from_seed(&[2; 32]));
        let mut replica = Replica::new().ruled(NAMESPACE, admit);
        let mine = change(&a, &replica, ROOT, &announce(&a.public_key(), 1234));
        assert_eq!(
            replica.insert(&[mine.encode()])[0].as_ref().unwrap(),
            &crate::services::crdt::log::Inserted::Applied
        );
        let b_announces = change(&b, &replica, ROOT, &announce(&b.public_key(), 1234));
        replica.insert(&[b_announces.encode()]);
        let view = replica.document(NAMESPACE, ROOT).unwrap().document().view();
        let mut found = holders(&view);
        found.sort_by_key(|(k, _)| k.to_hex());
        let mut want = vec![(a.public_key(), 1234), (b.public_key(), 1234)];
        want.sort_by_key(|(k, _)| k.to_hex());
        assert_eq!(found, want);
        // b names a as a holder, or removes a's entry: refused on every replica.
        let forged = change(&b, &replica, ROOT, &announce(&a.public_key(), 1));
        let removal = change(&b, &replica, ROOT, &withdraw(&a.public_key()));
        for bad in [forged, removal] {
            refused(&mut replica, bad);
        }
        // Not a CID, not a size.
        let not_cid = change(&a, &replica, "holiday.jpg", &announce(&a.public_key(), 1));
        let not_size = change(
            &a,
            &replica,
            ROOT,
            &Op::Key(a.public_key().to_hex(), Edit::Write("big".into())),
        );
        for bad in [not_cid, not_size] {
            refused(&mut replica, bad);
        }
        // a withdraws: only b is left.
        let gone = change(&a, &replica, ROOT, &withdraw(&a.public_key()));
        replica.insert(&[gone.encode()]);
        let view = replica.document(NAMESPACE, ROOT).unwrap().document().view();
        assert_eq!(holders(&view), vec![(b.public_key(), 1234)]);
    }
}
