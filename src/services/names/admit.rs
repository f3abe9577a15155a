//! What every replica checks on a change to the names namespace, before anything else (whatever the
//! namespace's access class): the same verdict everywhere, from the signed change alone.

use crate::core::identity::PublicKey;
use crate::services::crdt::change::Change;
use crate::services::crdt::field::{Kind, ValueKind};

use super::claim::{Claim, is_label};

/// The schema of every names document: claimant (key hex) → its claim, last writer wins.
pub const KIND: Kind = Kind::Map(ValueKind::Lww);

/// Admits a change to the names namespace if it is a claim, rewrite or release by its signer of
/// its own entry: the document is a label, the schema [`KIND`] (so nobody can block a label by
/// creating it with another schema), every entry it writes is under the signer's own key, every
/// dot it removes is the signer's (nobody removes another's claim), and every claim it writes
/// reads as a claim pointing at the signer (an admin's may point at any node).
pub fn admit(change: &Change, is_admin: &dyn Fn(&PublicKey) -> bool) -> Result<(), &'static str> {
    if !is_label(&change.document) {
        return Err("a names document is a label: 1-63 of a-z, 0-9 and -");
    }
    if change.kind != KIND {
        return Err("a names document maps claimants to claims (last writer wins)");
    }
    use crate::services::crdt::own_entry::{Breach, own_entry};
    let claim = own_entry(change, KIND).map_err(|breach| match breach {
        Breach::RemovesAnother => "a names change removes only its signer's own claims",
        Breach::NotThisKind => "not a names change",
        Breach::AnotherEntry => "a claimant writes only its own entry (its key in hex)",
        Breach::NotARegister => "a claim is a register",
    })?;
    if let Some(text) = claim {
        let claim = Claim::decode(&text).map_err(|_| "not a valid claim")?;
        if claim.target.is_some_and(|t| t != change.actor) && !is_admin(&change.actor) {
            return Err("only an admin names another node");
        }
    }
    Ok(())
}
