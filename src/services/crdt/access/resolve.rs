//! The decision rule: from the set of a namespace's access changes, which count, and what a key may
//! do at any access point. A pure function of the set (never of arrival order), so replicas that
//! hold the same changes decide the same way (PROTOCOL.md §6c).
//!
//! - **Past.** An access change's *closure* is its access point, its author's earlier access
//!   changes, and their closures in turn (a version vector: an author's changes are numbered from 1
//!   without gaps). `r` is in the past of `c` when `r.seq <= closure(c)[r.author]`; otherwise they
//!   are concurrent or `r` came later. A change whose closure is not all held yet is *pending*.
//! - **State at a closure.** For a key: the access changes about it in the closure that count and
//!   that no other of them has in its past; the lowest level among those (a revocation beats a
//!   concurrent grant). With none about the key, the same for `*` (anyone); with none about anyone,
//!   the class's default. Roots always manage.
//! - **Authorised.** An access change needs its author to manage at its closure (a root always
//!   does; anyone may lower their own access). A revocation never targets a root.
//! - **Cut.** A revocation `r` of key `k` (to below what a change needs) that counts cuts each
//!   change by `k` it did not have in its past and had not seen (`seq > r.keep[document]`): the
//!   revoked member's concurrent work is dropped, and it cannot escape by signing at an old access
//!   point. Two concurrent revocations of each other's authors do not cut each other (both count).
//! - **Counts.** Authorised by the changes that count in its closure, and not cut by one that
//!   counts. Because cuts refer to other changes' verdicts, the verdicts are found in rounds
//!   (round 0: authorised only, ignoring cuts) until nothing changes; a change that still flips
//!   after [`MAX_ROUNDS`] does not count.
//! - **Admission** (whether a replica stores a change at all) uses round 0 only, which depends on
//!   the change's closure alone, so it never changes as more arrives and every replica stores the
//!   same set. A change admitted but not counted is kept (and synced) and has no effect.

use std::collections::{BTreeMap, HashMap};

use super::ACCESS_DOCUMENT;
use super::class::{NamespaceClass, TrustRoot};
use super::op::{AccessOp, Level, Subject};
use crate::services::crdt::change::AccessPoint;
use crate::services::crdt::context::Actor;

/// Rounds of the verdict search before changes that still flip are counted out.
pub const MAX_ROUNDS: usize = 8;

/// Levels remembered per namespace (by access point, key and document default) before the memo is
/// emptied. Distinct points come from the changes writers sign, and keys from anyone who sends one:
/// without a bound, a stream of changes at ever new points would grow it without end. Emptying it
/// changes no verdict, only the time to the next one.
pub const MAX_CACHED_LEVELS: usize = 4096;

/// An access change as the rule needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpEntry {
    /// Its author.
    pub author: Actor,
    /// Its number among the author's access changes to this namespace.
    pub seq: u64,
    /// The access point it was signed at.
    pub point: AccessPoint,
    /// What it says.
    pub op: AccessOp,
}

/// Whether a replica stores a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Stored (it may still not count).
    Admitted,
    /// Its access point names access changes not held yet.
    Pending,
    /// Never stored: its author could not do this at its own access point.
    Refused(&'static str),
}

type Key = (Actor, u64);

#[derive(Debug, Clone)]
struct Node {
    entry: OpEntry,
    closure: AccessPoint,
    /// Sum of the closure: grows along the past, so sorting by it respects causality.
    rank: u64,
    /// Round 0 verdict (never changes).
    authorised: bool,
    /// Final verdict.
    counts: bool,
}

/// One namespace's access changes and verdicts.
#[derive(Debug, Clone)]
pub struct AccessLog {
    class: NamespaceClass,
    root: TrustRoot,
    nodes: BTreeMap<Key, Node>,
    /// Per author, its access changes held (1..=n: a change is held only after its predecessor).
    held: AccessPoint,
    /// Revocations per revoked key.
    revokes_of: BTreeMap<Actor, Vec<Key>>,
    /// `(closure, key, default, final?)` → level.
    levels: HashMap<(AccessPoint, Actor, Level, bool), Level>,
    /// With every access change held: the level of each key some counted change is about, and of
    /// anyone (None: no change is about them, the class's default applies).
    now: BTreeMap<Actor, Level>,
    anyone_now: Option<Level>,
}

fn contains(closure: &AccessPoint, (author, seq): &Key) -> bool {
    closure.get(author).is_some_and(|n| seq <= n)
}

impl AccessLog {
    /// No access changes yet, for a namespace of `class` under `root`.
    pub fn new(class: NamespaceClass, root: TrustRoot) -> Self {
        Self {
            class,
            root,
            nodes: BTreeMap::new(),
            held: AccessPoint::new(),
            revokes_of: BTreeMap::new(),
            levels: HashMap::new(),
            now: BTreeMap::new(),
            anyone_now: None,
        }
    }

    /// The namespace's class.
    pub fn class(&self) -> &NamespaceClass {
        &self.class
    }

    /// The access point of everything held: what a local write is signed at.
    pub fn point(&self) -> &AccessPoint {
        &self.held
    }

    /// The closure of `point` (plus `own`'s predecessor), if every change it names is held.
    fn closure(&self, point: &AccessPoint, own: Option<Key>) -> Option<AccessPoint> {
        let mut closure = point.clone();
        let previous = own.filter(|(_, seq)| *seq > 1).map(|(a, seq)| (a, seq - 1));
        for (author, through) in point.iter().map(|(a, n)| (*a, *n)).chain(previous) {
            if self.held.get(&author).is_none_or(|held| *held < through) {
                return None;
            }
            let node = self.nodes.get(&(author, through))?;
            for (a, n) in node.closure.iter().chain([(&author, &through)]) {
                let entry = closure.entry(*a).or_insert(0);
                *entry = (*entry).max(*n);
            }
        }
        closure.retain(|_, n| *n > 0);
        Some(closure)
    }

    /// The level of `key` at `closure`, counting the changes `verdict` says count.
    fn level_in(
        &self,
        closure: &AccessPoint,
        key: Actor,
        default: Level,
        verdict: &dyn Fn(&Key) -> bool,
    ) -> Level {
        if self.class.is_root(&key, &self.root) {
            return Level::Manage;
        }
        self.about(closure, Subject::Key(key), verdict)
            .or_else(|| self.about(closure, Subject::Anyone, verdict))
            .unwrap_or(default)
    }

    /// The level the counted changes about `subject` in `closure` give it, if any is about it.
    fn about(
        &self,
        closure: &AccessPoint,
        subject: Subject,
        verdict: &dyn Fn(&Key) -> bool,
    ) -> Option<Level> {
        let mut found: Vec<&Node> = Vec::new();
        for (author, through) in closure {
            for (k, node) in self.nodes.range((*author, 1)..=(*author, *through)) {
                if node.entry.op.subject() == subject && verdict(k) {
                    found.push(node);
                }
            }
        }
        let latest = found.iter().filter(|n| {
            let k = (n.entry.author, n.entry.seq);
            !found.iter().any(|o| contains(&o.closure, &k))
        });
        latest.map(|n| n.entry.op.level()).min()
    }

    /// Whether access change `node` was authorised at its closure, by `verdict`'s changes.
    fn authorised(&self, node: &Node, verdict: &dyn Fn(&Key) -> bool) -> bool {
        let author = node.entry.author;
        match node.entry.op {
            AccessOp::Revoke {
                subject: Subject::Key(target),
                ..
            } if self.class.is_root(&target, &self.root) => false,
            _ if self.class.is_root(&author, &self.root) => true,
            // Anyone may lower its own access.
            AccessOp::Revoke {
                subject: Subject::Key(target),
                ..
            } if target == author => true,
            // A redemption: its author takes what the token's issuer could give at its closure.
            AccessOp::Redeem { holder, issuer, .. } => {
                let default = self.class.default_level(ACCESS_DOCUMENT);
                holder == author
                    && (self.class.is_root(&issuer, &self.root)
                        || self.level_in(&node.closure, issuer, default, verdict) == Level::Manage)
            }
            _ => {
                let default = self.class.default_level(ACCESS_DOCUMENT);
                self.level_in(&node.closure, author, default, verdict) == Level::Manage
            }
        }
    }

    /// Whether a revocation that `verdict` counts cuts access change `node`.
    fn op_cut(&self, node: &Node, verdict: &dyn Fn(&Key) -> bool) -> bool {
        self.issuer_cut(node, verdict) || self.author_cut(node, verdict)
    }

    /// Whether `node` is a redemption whose token's issuer lost the right to manage by a counted
    /// revocation that the redemption had not seen: as the issuer's own concurrent grants, it is cut.
    fn issuer_cut(&self, node: &Node, verdict: &dyn Fn(&Key) -> bool) -> bool {
        let AccessOp::Redeem { issuer, .. } = node.entry.op else {
            return false;
        };
        let revokes = self.revokes_of.get(&issuer).map_or(&[][..], Vec::as_slice);
        revokes.iter().any(|r| {
            self.nodes.get(r).is_some_and(|revoke| {
                matches!(revoke.entry.op, AccessOp::Revoke { level, .. } if level < Level::Manage)
                    && verdict(r)
                    && !contains(&node.closure, r)
            })
        })
    }

    /// Whether a counted revocation of `node`'s author that it had not seen cuts it.
    fn author_cut(&self, node: &Node, verdict: &dyn Fn(&Key) -> bool) -> bool {
        let (author, seq) = (node.entry.author, node.entry.seq);
        if matches!(node.entry.op, AccessOp::Revoke { subject: Subject::Key(t), .. } if t == author)
        {
            return false;
        }
        let Some(revokes) = self.revokes_of.get(&author) else {
            return false;
        };
        revokes.iter().any(|r| {
            let Some(revoke) = self.nodes.get(r) else {
                return false;
            };
            let AccessOp::Revoke { level, keep, .. } = &revoke.entry.op else {
                return false;
            };
            let mutual = matches!(node.entry.op,
                AccessOp::Revoke { subject: Subject::Key(t), .. } if t == revoke.entry.author)
                && !contains(&revoke.closure, &(author, seq));
            *r != (author, seq)
                && verdict(r)
                && *level < Level::Manage
                && !contains(&node.closure, r)
                && seq > keep.get(ACCESS_DOCUMENT).copied().unwrap_or(0)
                && !mutual
        })
    }

    /// Recomputes every verdict (see the module documentation).
    fn evaluate(&mut self) {
        self.levels.clear();
        let mut order: Vec<Key> = self.nodes.keys().copied().collect();
        order.sort_by_key(|k| (self.nodes[k].rank, *k));
        let index: BTreeMap<Key, usize> = order.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let round = |previous: Option<&Vec<bool>>| -> Vec<bool> {
            let mut current = vec![false; order.len()];
            for (i, key) in order.iter().enumerate() {
                let node = &self.nodes[key];
                // The closure's changes come earlier in `order`: their verdicts this round are in.
                let so_far = |k: &Key| index.get(k).is_some_and(|j| *j < i && current[*j]);
                let ok = self.authorised(node, &so_far)
                    && previous.is_none_or(|p| {
                        !self.op_cut(node, &|k: &Key| index.get(k).is_some_and(|j| p[*j]))
                    });
                current[i] = ok;
            }
            current
        };
        let first = round(None);
        let mut previous = first.clone();
        let mut settled = None;
        for _ in 0..MAX_ROUNDS {
            let next = round(Some(&previous));
            if next == previous {
                settled = Some(next);
                break;
            }
            previous = next;
        }
        let last = round(Some(&previous));
        let verdicts = settled.unwrap_or_else(|| {
            // Still flipping: only what held in both of the last two rounds counts.
            last.iter().zip(&previous).map(|(a, b)| *a && *b).collect()
        });
        for ((key, counts), authorised) in order.iter().zip(verdicts).zip(first) {
            if let Some(node) = self.nodes.get_mut(key) {
                node.counts = counts;
                node.authorised = authorised;
            }
        }
        self.now.clear();
        let subjects: Vec<Subject> = (self.nodes.values())
            .filter(|n| n.counts)
            .map(|n| n.entry.op.subject())
            .collect();
        let point = self.held.clone();
        let nodes = &self.nodes;
        let counted = |k: &Key| nodes.get(k).is_some_and(|n| n.counts);
        let mut now = BTreeMap::new();
        for subject in subjects {
            if let Subject::Key(key) = subject
                && let Some(level) = self.about(&point, subject, &counted)
            {
                now.insert(key, level);
            }
        }
        let anyone = self.about(&point, Subject::Anyone, &counted);
        self.now = now;
        self.anyone_now = anyone;
    }

    /// Whether an access change would be stored, and its node if so (nothing is stored).
    fn check(&self, entry: OpEntry) -> Result<Node, Admission> {
        let key = (entry.author, entry.seq);
        let Some(closure) = self.closure(&entry.point, Some(key)) else {
            return Err(Admission::Pending);
        };
        let node = Node {
            rank: closure.values().sum(),
            closure,
            entry,
            authorised: true,
            counts: false,
        };
        let nodes = &self.nodes;
        if !self.authorised(&node, &|k: &Key| nodes.get(k).is_some_and(|n| n.authorised)) {
            return Err(Admission::Refused(
                "its author does not manage the namespace at its access point",
            ));
        }
        Ok(node)
    }

    /// Whether an access change would be stored (nothing is stored).
    pub fn check_op(&self, entry: &OpEntry) -> Admission {
        match self.check(entry.clone()) {
            Ok(_) => Admission::Admitted,
            Err(admission) => admission,
        }
    }

    /// Takes in an access change: stored if its author could make it at its access point. A second,
    /// different change under one `(author, seq)` is refused here; the document's log keeps both as
    /// evidence of equivocation.
    pub fn insert_op(&mut self, entry: OpEntry) -> Admission {
        let key = (entry.author, entry.seq);
        if let Some(held) = self.nodes.get(&key) {
            return match held.entry == entry {
                true => Admission::Admitted,
                false => Admission::Refused("another access change under the same number"),
            };
        }
        let node = match self.check(entry) {
            Ok(node) => node,
            Err(admission) => return admission,
        };
        if let AccessOp::Revoke {
            subject: Subject::Key(target),
            ..
        } = node.entry.op
        {
            self.revokes_of.entry(target).or_default().push(key);
        }
        self.nodes.insert(key, node);
        self.held.insert(key.0, key.1);
        self.evaluate();
        Admission::Admitted
    }

    /// Whether a data change by `writer` to `document` at `point` is stored, with its closure.
    pub fn admit_change(
        &mut self,
        writer: Actor,
        document: &str,
        point: &AccessPoint,
    ) -> (Admission, AccessPoint) {
        let Some(closure) = self.closure(point, None) else {
            return (Admission::Pending, AccessPoint::new());
        };
        if self.level_at(&closure, writer, document, false) < Level::Write {
            return (
                Admission::Refused("its writer may not write the namespace at its access point"),
                closure,
            );
        }
        (Admission::Admitted, closure)
    }

    /// Whether an admitted data change (writer, document, seq, closure) counts now.
    pub fn counts(
        &mut self,
        writer: Actor,
        document: &str,
        seq: u64,
        closure: &AccessPoint,
    ) -> bool {
        if self.level_at(closure, writer, document, true) < Level::Write {
            return false;
        }
        let cut = self.revokes_of.get(&writer).is_some_and(|revokes| {
            revokes.iter().any(|r| {
                let Some(revoke) = self.nodes.get(r) else {
                    return false;
                };
                let AccessOp::Revoke { level, keep, .. } = &revoke.entry.op else {
                    return false;
                };
                revoke.counts
                    && *level < Level::Write
                    && !contains(closure, r)
                    && seq > keep.get(document).copied().unwrap_or(0)
            })
        });
        !cut
    }

    /// The level of `key` in `document` at `closure`, by round 0 (`counted` false) or final verdicts.
    fn level_at(
        &mut self,
        closure: &AccessPoint,
        key: Actor,
        document: &str,
        counted: bool,
    ) -> Level {
        let default = self.class.default_level(document);
        let cache = (closure.clone(), key, default, counted);
        if let Some(level) = self.levels.get(&cache) {
            return *level;
        }
        let nodes = &self.nodes;
        let level = if counted {
            self.level_in(closure, key, default, &|k: &Key| {
                nodes.get(k).is_some_and(|n| n.counts)
            })
        } else {
            self.level_in(closure, key, default, &|k: &Key| {
                nodes.get(k).is_some_and(|n| n.authorised)
            })
        };
        if self.levels.len() >= MAX_CACHED_LEVELS {
            self.levels.clear();
        }
        self.levels.insert(cache, level);
        level
    }

    /// Levels remembered now (at most [`MAX_CACHED_LEVELS`]).
    #[cfg(test)]
    pub(crate) fn cached_levels(&self) -> usize {
        self.levels.len()
    }

    /// What `key` may do in `document` now (with every access change held).
    pub fn level_now(&self, key: Actor, document: &str) -> Level {
        if self.class.is_root(&key, &self.root) {
            return Level::Manage;
        }
        match self.now.get(&key) {
            Some(level) => *level,
            None => (self.anyone_now).unwrap_or_else(|| self.class.default_level(document)),
        }
    }

    /// Whether access change `(author, seq)` is held, and if so whether it counts.
    pub fn verdict(&self, author: Actor, seq: u64) -> Option<bool> {
        self.nodes.get(&(author, seq)).map(|n| n.counts)
    }

    /// Every access change held with whether it counts, in `(author, seq)` order.
    pub fn entries(&self) -> impl Iterator<Item = (&OpEntry, bool)> {
        self.nodes.values().map(|n| (&n.entry, n.counts))
    }

    /// Who has an access change about them that counts, with their level now, then `*` if any
    /// change is about anyone.
    pub fn members(&self) -> Vec<(Subject, Level)> {
        let keys = self.now.iter().map(|(k, l)| (Subject::Key(*k), *l));
        keys.chain(self.anyone_now.map(|l| (Subject::Anyone, l)))
            .collect()
    }
}
