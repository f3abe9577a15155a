//! A node's replicas: every document it holds, by namespace and name, and the one way changes get
//! in (verified first). The daemon keeps this behind its database; the simulator keeps it in memory.

use std::collections::BTreeMap;

use super::access::{ACCESS_DOCUMENT, AccessLog, AccessOp, Admission, NamespaceClass, OpEntry};
use super::access::{Level, TrustRoot};
use super::change::{Change, ChangeError, decode_verified_all};
use super::context::Actor;
use super::document::{Document, EditError, Op};
use super::field::Kind;
use super::log::{DocumentLog, Inserted};
use crate::core::identity::{NodeKey, PublicKey};

/// A document's namespace and name.
pub type DocName = (String, String);

/// Per document, the version vector of a replica (what it has), for exports.
pub type Have = BTreeMap<DocName, BTreeMap<Actor, u64>>;

/// Why a local write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A name that changes may not carry.
    #[error("invalid namespace or document name")]
    Name,
    /// The document exists with another schema.
    #[error("document {0}/{1} is a {2:?} document")]
    Schema(String, String, Kind),
    /// The edit does not suit the schema.
    #[error("{0}")]
    Edit(#[from] EditError),
    /// This node may not do that in the namespace (see [`super::access`]).
    #[error("{0}")]
    Access(String),
}

/// A namespace's own rule on what a data change may add (`document`, the delta as a view, whether
/// a key is a root): checked on every replica alike, after the access rule, when the namespace is
/// under access control; an error refuses the change (never stored).
pub type Validator =
    fn(&str, &super::document::View, &dyn Fn(&PublicKey) -> bool) -> Result<(), &'static str>;

/// A namespace's rule on the shape of every change to it (its documents, schema and entries),
/// given the change and who the mesh's admins are: checked on every replica alike before access
/// control and whatever the namespace's class; an error refuses the change (never stored). The
/// namespace's `_access` document is not subject to it.
pub type ChangeRule = fn(&Change, &dyn Fn(&PublicKey) -> bool) -> Result<(), &'static str>;

/// Longest change any replica stores, encoded: the same refusal everywhere.
pub const MAX_CHANGE_BYTES: usize = 64 * 1024;
/// Changes one writer may make to one document (its `seq` at most): the same refusal everywhere.
pub const MAX_SEQ: u64 = 1_000_000;

/// What one namespace, and one writer in it, may take on this node. Past the namespace's quota it
/// stops growing here: local writes fail with a clear error and changes from peers are not stored
/// (and not pulled), without counting against the peer, since another node may allow more. Past a
/// writer's quota that writer's further changes in the namespace are not stored, so that one member
/// cannot fill a shared namespace for everyone; the namespace's roots (its owner, or the admins) are
/// bound by the namespace's quota only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Changes, at most.
    pub changes: u64,
    /// Bytes of encoded changes, at most.
    pub bytes: u64,
    /// Changes of one writer (not a root of the namespace), at most.
    pub writer_changes: u64,
    /// Bytes of one writer's changes, at most.
    pub writer_bytes: u64,
}

impl Default for Quota {
    /// 1 000 000 changes and 256 MiB per namespace; a quarter of that per writer.
    fn default() -> Self {
        Self {
            changes: 1_000_000,
            bytes: 256 * 1024 * 1024,
            writer_changes: 250_000,
            writer_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Every document a node holds.
#[derive(Debug, Clone, Default)]
pub struct Replica {
    docs: BTreeMap<DocName, DocumentLog>,
    /// The mesh's admins, for namespaces without an owner.
    root: TrustRoot,
    /// Access changes and verdicts of each namespace under access control that was seen.
    access: BTreeMap<String, AccessLog>,
    /// Per namespace, its own rule on contents.
    validators: BTreeMap<String, Validator>,
    /// Per namespace, its own rule on the shape of changes.
    rules: BTreeMap<String, ChangeRule>,
    /// What one namespace may take here.
    quota: Quota,
    /// Per namespace, the changes held and their bytes.
    usage: BTreeMap<String, (u64, u64)>,
    /// Per namespace and writer, the changes held and their bytes.
    writer_usage: BTreeMap<(String, Actor), (u64, u64)>,
}

impl Replica {
    /// No documents.
    pub fn new() -> Self {
        Self::default()
    }

    /// No documents, under the mesh's trust root (its admins).
    pub fn with_trust_root(root: TrustRoot) -> Self {
        Self {
            root,
            ..Self::default()
        }
    }

    /// Sets what one namespace may take on this node (see [`Quota`]).
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }

    /// Whether `namespace` has reached this node's quota (it is not pulled any more).
    pub fn over_quota(&self, namespace: &str) -> bool {
        self.usage.get(namespace).is_some_and(|(changes, bytes)| {
            *changes >= self.quota.changes || *bytes >= self.quota.bytes
        })
    }

    /// The changes held in `namespace` and their bytes.
    pub fn usage(&self, namespace: &str) -> (u64, u64) {
        self.usage.get(namespace).copied().unwrap_or_default()
    }

    /// Whether `writer` has reached its quota in `namespace` (roots of the namespace have none).
    pub fn writer_over_quota(&self, namespace: &str, writer: Actor) -> bool {
        let usage = self.writer_usage.get(&(namespace.to_owned(), writer));
        usage.is_some_and(|(changes, bytes)| {
            *changes >= self.quota.writer_changes || *bytes >= self.quota.writer_bytes
        }) && !NamespaceClass::of(namespace, &self.root).is_root(&writer, &self.root)
    }

    /// Adds `namespace`'s own rule on contents (see [`Validator`]).
    pub fn validated(mut self, namespace: &str, validator: Validator) -> Self {
        self.validators.insert(namespace.to_owned(), validator);
        self
    }

    /// Adds `namespace`'s rule on the shape of its changes (see [`ChangeRule`]).
    pub fn ruled(mut self, namespace: &str, rule: ChangeRule) -> Self {
        self.rules.insert(namespace.to_owned(), rule);
        self
    }

    /// The trust root.
    pub fn trust_root(&self) -> &TrustRoot {
        &self.root
    }

    /// The access log of `namespace`, unless it is open (no access control).
    fn access_log(&mut self, namespace: &str) -> Option<&mut AccessLog> {
        let class = NamespaceClass::of(namespace, &self.root);
        if !class.controlled() {
            return None;
        }
        let root = &self.root;
        Some(
            self.access
                .entry(namespace.to_owned())
                .or_insert_with(|| AccessLog::new(class, root.clone())),
        )
    }

    /// What `key` may do in `document` of `namespace` now.
    pub fn level(&self, namespace: &str, document: &str, key: Actor) -> Level {
        if let Some(log) = self.access.get(namespace) {
            return log.level_now(key, document);
        }
        let class = NamespaceClass::of(namespace, &self.root);
        match class.controlled() {
            false => Level::Manage,
            true if class.is_root(&key, &self.root) => Level::Manage,
            true => class.default_level(document),
        }
    }

    /// Whether `key` may replicate `namespace`: it is never sent one it may not.
    pub fn may_pull(&self, namespace: &str, key: Actor) -> bool {
        self.level(namespace, "", key) >= Level::Pull
    }

    /// The access log of `namespace` as it stands (None for an open namespace).
    pub fn access(&mut self, namespace: &str) -> Option<&mut AccessLog> {
        self.access_log(namespace)
    }

    /// Inserts a change already verified (see [`Change::decode_verified`]) with its encoding,
    /// through the limits and the namespace's access rule.
    pub fn insert_verified(&mut self, change: &Change, encoded: &[u8]) -> Inserted {
        let inserted = self.insert_checked(change, encoded);
        if inserted == Inserted::Applied {
            let writer = Actor(*change.actor.as_bytes());
            for usage in [
                self.usage.entry(change.namespace.clone()).or_default(),
                (self.writer_usage)
                    .entry((change.namespace.clone(), writer))
                    .or_default(),
            ] {
                usage.0 += 1;
                usage.1 += encoded.len() as u64;
            }
        }
        inserted
    }

    fn insert_checked(&mut self, change: &Change, encoded: &[u8]) -> Inserted {
        if encoded.len() > MAX_CHANGE_BYTES {
            return Inserted::Refused("a change may take 64 KiB");
        }
        if change.seq > MAX_SEQ {
            return Inserted::Refused("a writer may make 1 000 000 changes to one document");
        }
        let name = (change.namespace.clone(), change.document.clone());
        if let Some(log) = self.docs.get(&name)
            && (log.holds(change) || log.conflicts(change))
        {
            // A duplicate, or evidence of equivocation: the log knows what to do.
            return self
                .docs
                .get_mut(&name)
                .map_or(Inserted::Duplicate, |l| l.insert(change, encoded));
        }
        if let Some(rule) = self.rules.get(&change.namespace)
            && change.document != ACCESS_DOCUMENT
        {
            let root = &self.root;
            if let Err(why) = rule(change, &|k| root.is_admin(&Actor(*k.as_bytes()))) {
                return Inserted::Refused(why);
            }
        }
        if self.over_quota(&change.namespace)
            || self.writer_over_quota(&change.namespace, Actor(*change.actor.as_bytes()))
        {
            return Inserted::OverQuota;
        }
        let class = NamespaceClass::of(&change.namespace, &self.root);
        if !class.controlled() {
            return self.log_for(change).insert(change, encoded);
        }
        // A namespace's access log is kept only once a change to it was stored: refused or waiting
        // changes naming ever new namespaces leave nothing behind.
        let held = self.access.remove(&change.namespace);
        let existed = held.is_some();
        let mut access = held.unwrap_or_else(|| AccessLog::new(class, self.root.clone()));
        let inserted = self.insert_controlled(&mut access, change, encoded);
        if existed || inserted == Inserted::Applied {
            self.access.insert(change.namespace.clone(), access);
            if inserted == Inserted::Applied && change.document == ACCESS_DOCUMENT {
                self.reassess(&change.namespace);
            }
        }
        inserted
    }

    /// [`Self::insert_checked`] for a namespace under access control, with its access log.
    fn insert_controlled(
        &mut self,
        access: &mut AccessLog,
        change: &Change,
        encoded: &[u8],
    ) -> Inserted {
        let actor = Actor(*change.actor.as_bytes());
        if change.document == ACCESS_DOCUMENT {
            let entry = match access_entry(change) {
                Ok(entry) => entry,
                Err(why) => return Inserted::Refused(why),
            };
            match access.insert_op(entry) {
                Admission::Admitted => {}
                Admission::Pending => return Inserted::Pending,
                Admission::Refused(why) => return Inserted::Refused(why),
            }
            return self.log_for(change).insert(change, encoded);
        }
        let (admission, closure) = access.admit_change(actor, &change.document, &change.access);
        match admission {
            Admission::Admitted => {}
            Admission::Pending => return Inserted::Pending,
            Admission::Refused(why) => return Inserted::Refused(why),
        }
        let counts = access.counts(actor, &change.document, change.seq, &closure);
        if let Some(validator) = self.validators.get(&change.namespace) {
            let mut added = Document::new(change.kind);
            added.apply(&change.delta);
            let class = NamespaceClass::of(&change.namespace, &self.root);
            let is_root = |key: &PublicKey| class.is_root(&Actor(*key.as_bytes()), &self.root);
            if let Err(why) = validator(&change.document, &added.view(), &is_root) {
                return Inserted::Refused(why);
            }
        }
        self.log_for(change)
            .insert_gated(change, encoded, closure, counts)
    }

    fn log_for(&mut self, change: &Change) -> &mut DocumentLog {
        self.docs
            .entry((change.namespace.clone(), change.document.clone()))
            .or_insert_with(|| DocumentLog::new(&change.namespace, &change.document, change.kind))
    }

    /// Decides again which changes of `namespace` count, after its access changes changed.
    fn reassess(&mut self, namespace: &str) {
        let Some(access) = self.access.get_mut(namespace) else {
            return;
        };
        let from = (namespace.to_owned(), String::new());
        for ((ns, doc), log) in self.docs.range_mut(from..) {
            if ns != namespace {
                break;
            }
            if doc != ACCESS_DOCUMENT {
                log.reassess(&mut |actor, seq, closure| access.counts(actor, doc, seq, closure));
            }
        }
    }

    /// Verifies and inserts encoded changes (from a peer, a file), one outcome each. Changes waiting
    /// for access changes later in the batch are tried again once those are in.
    pub fn insert<B: AsRef<[u8]>>(&mut self, encoded: &[B]) -> Vec<Result<Inserted, ChangeError>> {
        let verified = decode_verified_all(encoded);
        let mut outcomes: Vec<Result<Inserted, ChangeError>> = verified
            .iter()
            .zip(encoded)
            .map(|(r, b)| r.clone().map(|c| self.insert_verified(&c, b.as_ref())))
            .collect();
        self.retry_pending(&mut outcomes, |i| {
            verified[i].as_ref().ok().map(|c| (c, encoded[i].as_ref()))
        });
        outcomes
    }

    /// Inserts again the changes whose outcome is [`Inserted::Pending`] while that admits more.
    pub fn retry_pending<'a>(
        &mut self,
        outcomes: &mut [Result<Inserted, ChangeError>],
        change: impl Fn(usize) -> Option<(&'a Change, &'a [u8])>,
    ) {
        loop {
            let mut progress = false;
            for (i, outcome) in outcomes.iter_mut().enumerate() {
                if *outcome != Ok(Inserted::Pending) {
                    continue;
                }
                if let Some((c, bytes)) = change(i) {
                    let again = self.insert_verified(c, bytes);
                    progress |= again != Inserted::Pending;
                    *outcome = Ok(again);
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// Makes the signed access change `op` by `key` in `namespace` (not inserted, as for
    /// [`Self::prepare_write`]).
    pub fn prepare_access(
        &mut self,
        key: &NodeKey,
        namespace: &str,
        op: &AccessOp,
        wall_millis: u64,
    ) -> Result<Change, WriteError> {
        use super::change::{MAX_NAMESPACE, valid_name};
        if !valid_name(namespace, MAX_NAMESPACE) {
            return Err(WriteError::Name);
        }
        let Some(access) = self.access_log(namespace) else {
            return Err(WriteError::Access(format!(
                "{namespace} is open to every node (a mesh without admins): it has no access rules"
            )));
        };
        let point = access.point().clone();
        let actor = Actor(*key.public_key().as_bytes());
        let kind = Kind::Value(super::field::ValueKind::Set);
        let (mut replica, seq) = match self.document(namespace, ACCESS_DOCUMENT) {
            Some(log) => (log.document().clone(), log.next_seq(actor)),
            None => (Document::new(kind), 1),
        };
        let member = op.encode(seq);
        let delta = replica.edit(
            actor,
            &Op::Value(super::document::Edit::Add(member)),
            wall_millis,
        )?;
        Ok(Change::sign_at(
            key,
            namespace,
            ACCESS_DOCUMENT,
            kind,
            seq,
            wall_millis,
            &point,
            delta,
        ))
    }

    /// Per document of `namespace`, how many of `subject`'s changes are held from 1 (what a
    /// revocation made here keeps), with its access changes under [`ACCESS_DOCUMENT`].
    pub fn seen_of(&self, namespace: &str, subject: Actor) -> BTreeMap<String, u64> {
        let from = (namespace.to_owned(), String::new());
        self.docs
            .range(from..)
            .take_while(|((ns, _), _)| ns == namespace)
            .filter_map(|((_, doc), log)| {
                let n = log.version_vector().get(&subject).copied()?;
                Some((doc.clone(), n))
            })
            .collect()
    }

    /// Makes the signed change for a local edit of a document (created with `kind` if new). The
    /// change is not inserted: the caller stores it first (so an acknowledged write is durable),
    /// then inserts it.
    pub fn prepare_write(
        &self,
        key: &NodeKey,
        namespace: &str,
        document: &str,
        kind: Kind,
        op: &Op,
        wall_millis: u64,
    ) -> Result<Change, WriteError> {
        use super::change::{MAX_DOCUMENT, MAX_NAMESPACE, valid_name};
        if !valid_name(namespace, MAX_NAMESPACE) || !valid_name(document, MAX_DOCUMENT) {
            return Err(WriteError::Name);
        }
        let actor = Actor(*key.public_key().as_bytes());
        let (replica, seq) = match self.document(namespace, document) {
            Some(log) if log.document().kind() != kind => {
                return Err(WriteError::Schema(
                    namespace.into(),
                    document.into(),
                    log.document().kind(),
                ));
            }
            Some(log) => (
                std::borrow::Cow::Borrowed(log.document()),
                log.next_seq(actor),
            ),
            None => (std::borrow::Cow::Owned(Document::new(kind)), 1),
        };
        let delta = replica.delta_for(actor, op, wall_millis)?;
        let point = self
            .access
            .get(namespace)
            .map(|a| a.point().clone())
            .unwrap_or_default();
        Ok(Change::sign_at(
            key,
            namespace,
            document,
            kind,
            seq,
            wall_millis,
            &point,
            delta,
        ))
    }

    /// A document, if any change to it is held.
    pub fn document(&self, namespace: &str, document: &str) -> Option<&DocumentLog> {
        self.docs.get(&(namespace.to_owned(), document.to_owned()))
    }

    /// Every document held, by namespace and name.
    pub fn documents(&self) -> impl Iterator<Item = (&DocName, &DocumentLog)> {
        self.docs.iter()
    }

    /// Per document, the version vector held (what a peer's export can skip).
    pub fn have(&self) -> Have {
        self.docs
            .iter()
            .map(|(doc, log)| (doc.clone(), log.version_vector()))
            .collect()
    }

    /// The encoded changes a replica that has `since` lacks (every change if `since` is empty).
    pub fn missing<'a>(&'a self, since: &'a Have) -> Vec<&'a [u8]> {
        self.docs
            .iter()
            .flat_map(|(doc, log)| {
                let theirs = since.get(doc);
                log.missing_for(move |a| theirs.and_then(|t| t.get(a)).copied().unwrap_or(0))
                    .map(|(_, _, bytes)| bytes)
            })
            .collect()
    }
}

/// The access change a change to an access document carries, if it is one: one member added to a
/// set, that decodes as an access change numbered with the change's `seq`.
fn access_entry(change: &Change) -> Result<OpEntry, &'static str> {
    const NOT_ONE: &str = "not an access change";
    let kind = Kind::Value(super::field::ValueKind::Set);
    if change.kind != kind || !super::log::only_adds(&change.delta) {
        return Err(NOT_ONE);
    }
    let mut document = Document::new(kind);
    document.apply(&change.delta);
    let super::document::View::Set(members) = document.view() else {
        return Err(NOT_ONE);
    };
    let [member] = members.as_slice() else {
        return Err(NOT_ONE);
    };
    let author = Actor(*change.actor.as_bytes());
    let op = AccessOp::decode(member, change.seq).map_err(|e| match e {
        super::access::op::OpError::Proof(_) => {
            "its delegation token does not verify, or was given to someone else"
        }
        _ => NOT_ONE,
    })?;
    if let AccessOp::Redeem {
        holder,
        level,
        proof,
        ..
    } = &op
    {
        // Checked here, where the namespace and the signed time are known; the same on every
        // replica, since both come from the change.
        if *holder != author {
            return Err("a delegation token is redeemed by its holder only");
        }
        if proof
            .grants(&change.namespace)
            .is_none_or(|granted| granted < *level)
        {
            return Err("the delegation token does not grant that level in this namespace");
        }
        if !proof.in_force_at(change.wall_millis / 1000) {
            return Err("the delegation token was not in force when the redemption was signed");
        }
    }
    Ok(OpEntry {
        author,
        seq: change.seq,
        point: change.access.clone(),
        op,
    })
}

#[cfg(test)]
mod tests;
