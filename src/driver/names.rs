//! Mesh names in the daemon: the name table built from the CRDT namespace `names` whenever it
//! changes, handed to the DNS responder; the configured `name` claimed at start; claims and
//! releases from the API. Runs on the services' thread.

use std::sync::Arc;

use tokio::sync::watch;

use super::crdt::DaemonCrdt;
use crate::core::identity::PublicKey;
use crate::core::time::Instant;
use crate::services::crdt::access::TrustRoot;
use crate::services::crdt::context::Actor;
use crate::services::crdt::document::{Edit, Op, View};
use crate::services::names::admit::KIND;
use crate::services::names::claim::plan;
use crate::services::names::{NAMESPACE, NameTable, is_label};

/// The latest name table, for the DNS responder (and anyone else who resolves).
pub(crate) type NameFeed = watch::Receiver<Arc<NameTable>>;

/// What a claim did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// Written now.
    New,
    /// This node already had a claim on the label (kept as it was, so it keeps its age).
    Held,
}

/// The names service of the daemon.
pub(crate) struct DaemonNames {
    feed: watch::Sender<Arc<NameTable>>,
    root: TrustRoot,
    /// The configured name, until it is claimed.
    to_claim: Option<String>,
}

impl DaemonNames {
    /// Names for a mesh with `root`'s admins; `name` is claimed once the CRDT service runs.
    pub(crate) fn new(root: TrustRoot, name: Option<String>) -> (Self, NameFeed) {
        let (feed, receiver) = watch::channel(Arc::new(NameTable::default()));
        (
            Self {
                feed,
                root,
                to_claim: name,
            },
            receiver,
        )
    }

    /// The current table.
    pub(crate) fn table(&self) -> Arc<NameTable> {
        self.feed.borrow().clone()
    }

    /// Builds the table again if a names document changed, and claims the configured name once.
    pub(crate) fn refresh(&mut self, crdt: &mut DaemonCrdt, now: Instant, wall_millis: u64) {
        if let Some(label) = self.to_claim.take() {
            match self.claim(crdt, now, wall_millis, &label, None) {
                Ok(Claimed::New) => tracing::info!(name = %label, "claimed {label}.mesh"),
                Ok(Claimed::Held) => {}
                Err(e) => tracing::warn!(name = %label, "cannot claim {label}.mesh: {e}"),
            }
        }
        if !crdt.names_changed {
            return;
        }
        crdt.names_changed = false;
        let replica = crdt.host.store.replica();
        let views: Vec<(String, View)> = (replica.documents())
            .filter(|((ns, doc), _)| ns == NAMESPACE && is_label(doc))
            .map(|((_, doc), log)| (doc.clone(), log.document().view()))
            .collect();
        let root = &self.root;
        let is_admin = |k: &PublicKey| root.is_admin(&Actor(*k.as_bytes()));
        let table = NameTable::from_views(views.iter().map(|(l, v)| (l.as_str(), v)), &is_admin);
        self.feed.send_replace(Arc::new(table));
    }

    /// Claims `label` for this node (or, for an admin, for the node `target`).
    pub(crate) fn claim(
        &mut self,
        crdt: &mut DaemonCrdt,
        now: Instant,
        wall_millis: u64,
        label: &str,
        target: Option<PublicKey>,
    ) -> Result<Claimed, String> {
        if !is_label(label) {
            return Err(format!(
                "{label:?} is not a name: 1 to 63 of a-z, 0-9 and - (not first or last)"
            ));
        }
        let me = crdt.host.key().public_key();
        let view =
            (crdt.host.store.replica().document(NAMESPACE, label)).map(|log| log.document().view());
        let Some(claim) = plan(view.as_ref(), me, target, wall_millis) else {
            return Ok(Claimed::Held);
        };
        let mine = me.to_hex();
        let doc = (NAMESPACE.to_owned(), label.to_owned());
        crdt.write(
            now,
            wall_millis,
            &doc,
            KIND,
            &Op::Key(mine, Edit::Write(claim.encode())),
        )
        .map_err(|e| e.to_string())?;
        Ok(Claimed::New)
    }

    /// Releases this node's claim on `label`; false if it had none.
    pub(crate) fn release(
        &mut self,
        crdt: &mut DaemonCrdt,
        now: Instant,
        wall_millis: u64,
        label: &str,
    ) -> Result<bool, String> {
        let mine = crdt.host.key().public_key().to_hex();
        let held = (crdt.host.store.replica().document(NAMESPACE, label)).is_some_and(
            |log| matches!(log.document().view(), View::Map(m) if m.contains_key(&mine)),
        );
        if !held {
            return Ok(false);
        }
        let doc = (NAMESPACE.to_owned(), label.to_owned());
        crdt.write(now, wall_millis, &doc, KIND, &Op::RemoveKey(mine))
            .map_err(|e| e.to_string())?;
        Ok(true)
    }
}
