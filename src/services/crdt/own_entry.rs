//! The rule of namespaces where every writer keeps one entry of its own per document (mesh names,
//! blob announcements): a change may write and remove only the entry keyed by its signer's key in
//! hex, in a `map<...>` of registers. Every replica checks it from the signed change alone, so all
//! reach the same verdict.

use super::change::Change;
use super::context::Actor;
use super::document::{Document, View};
use super::field::Kind;

/// How a change breaks the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// Its context removes dots of another writer.
    RemovesAnother,
    /// Its delta is not of the document's kind.
    NotThisKind,
    /// It writes under another key than its signer's.
    AnotherEntry,
    /// It writes something else than a register value.
    NotARegister,
}

/// The value a change writes to its signer's own entry (`None`: it only removes), if it follows the
/// rule in a document of `kind` (a map of last-writer-wins registers).
pub fn own_entry(change: &Change, kind: Kind) -> Result<Option<String>, Breach> {
    let signer = Actor(*change.actor.as_bytes());
    let own = |actor: &Actor| *actor == signer;
    let ctx = &change.delta.ctx;
    if !ctx.version_vector().keys().all(own) || !ctx.cloud().all(|d| own(&d.actor)) {
        return Err(Breach::RemovesAnother);
    }
    let mut added = Document::new(kind);
    if !added.apply(&change.delta) {
        return Err(Breach::NotThisKind);
    }
    let View::Map(entries) = added.view() else {
        return Err(Breach::NotThisKind);
    };
    let owner = change.actor.to_hex();
    let mut written = None;
    for (key, value) in entries {
        if key != owner {
            return Err(Breach::AnotherEntry);
        }
        let View::Lww(Some(text)) = value else {
            return Err(Breach::NotARegister);
        };
        written = Some(text);
    }
    Ok(written)
}
