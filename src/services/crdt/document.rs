//! A document: a schema, its entries and the causal context they share; edits made here and deltas
//! from elsewhere are joined the same way.

use std::collections::BTreeMap;

use super::context::{Actor, CausalContext, Dot};
use super::field::{Field, Kind, ValueKind};
use super::hlc::Hlc;
use super::store::{DotFun, DotMap, DotStore};
use super::text::{Run, Text};

/// Entries plus the dots they account for: a whole replica's state, or the delta of one edit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Causal {
    /// The entries.
    pub field: Field,
    /// Every dot seen (for a delta: the new dots and those it removes).
    pub ctx: CausalContext,
}

impl Causal {
    /// Joins `other` into `self`: commutative, associative, idempotent.
    pub fn join(&mut self, other: &Causal) {
        self.field.join(&self.ctx, &other.field, &other.ctx);
        self.ctx.join(&other.ctx);
    }
}

/// A change to one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Add to a counter (negative to subtract).
    Increment(i64),
    /// Set a register.
    Write(String),
    /// Add a set member.
    Add(String),
    /// Remove a set member (the adds this replica has seen; a concurrent add wins).
    Remove(String),
    /// Insert text before the visible character at this position (counted in characters; the
    /// text's length appends).
    Insert(usize, String),
    /// Delete this many visible characters from this position.
    Delete(usize, usize),
}

/// A change to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Edit the document's single value.
    Value(Edit),
    /// Edit the value under a map key (creating it).
    Key(String, Edit),
    /// Remove a map key (what this replica has seen of it; concurrent edits survive).
    RemoveKey(String),
}

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The edit does not suit the document's schema (say, a set member added to a counter).
    #[error("{0:?} does not apply to a {1:?} document")]
    WrongKind(Box<Op>, Kind),
    /// A counter would leave the range of 64-bit totals.
    #[error("counter overflow")]
    Overflow,
    /// A text edit's range passes the end of the text.
    #[error("position {0} is past the end of the text ({1} characters)")]
    Position(usize, usize),
    /// An insertion of nothing, a deletion of no character, or an insertion longer than a change
    /// may carry.
    #[error(
        "a text edit inserts 1 to {} bytes or deletes 1 to {} characters",
        super::codec::MAX_STRING,
        super::text::MAX_DELETES
    )]
    Size,
}

/// What a document holds, as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// A counter's value.
    Counter(i64),
    /// The winning register value, if any was written.
    Lww(Option<String>),
    /// The concurrent values of a multi-value register (more than one: a conflict), sorted.
    Mv(Vec<String>),
    /// Set members, sorted.
    Set(Vec<String>),
    /// Map keys and their values.
    Map(BTreeMap<String, View>),
    /// A text's visible characters.
    Text(String),
}

/// One replica of a document. Two replicas are equal when their schema and state are.
#[derive(Debug, Clone)]
pub struct Document {
    kind: Kind,
    state: Causal,
    index: super::keyed::KeyIndex,
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.state == other.state
    }
}

impl Eq for Document {}

impl Document {
    /// An empty document of `kind`.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            state: Causal::default(),
            index: Default::default(),
        }
    }

    /// The schema.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The replica's entries and context.
    pub fn state(&self) -> &Causal {
        &self.state
    }

    /// Makes `op` as `actor` at wall time `wall_millis`, applies it here and returns its delta, for
    /// the other replicas.
    pub fn edit(&mut self, actor: Actor, op: &Op, wall_millis: u64) -> Result<Causal, EditError> {
        let delta = self.delta_for(actor, op, wall_millis)?;
        super::keyed::join(&mut self.state, &mut self.index, &delta);
        Ok(delta)
    }

    /// The delta [`Document::edit`] would make, without applying it (no copy of a large document
    /// is needed to prepare a change).
    pub fn delta_for(&self, actor: Actor, op: &Op, wall_millis: u64) -> Result<Causal, EditError> {
        let wrong = || EditError::WrongKind(Box::new(op.clone()), self.kind);
        let hlc = Hlc::next(self.latest_hlc(), wall_millis);
        let delta = match (self.kind, op) {
            (Kind::Value(ValueKind::Text), Op::Value(edit)) => {
                let empty = Text::default();
                let text = match &self.state.field {
                    Field::Text(t) => t,
                    _ => &empty,
                };
                edit_text(text, &self.state.ctx, actor, edit).ok_or_else(wrong)??
            }
            (Kind::Value(kind), Op::Value(edit)) => {
                edit_value(&self.state.field, &self.state.ctx, kind, actor, edit, hlc)
                    .ok_or_else(wrong)??
            }
            (Kind::Map(kind), Op::Key(key, edit)) => {
                let current = match &self.state.field {
                    Field::Map(m) => m.entries.get(key).cloned().unwrap_or_default(),
                    _ => Field::Empty,
                };
                let sub = edit_value(&current, &self.state.ctx, kind, actor, edit, hlc)
                    .ok_or_else(wrong)??;
                let mut map = DotMap::default();
                if !sub.field.is_bottom() {
                    map.entries.insert(key.clone(), sub.field);
                }
                Causal {
                    field: if map.is_bottom() {
                        Field::Empty
                    } else {
                        Field::Map(map)
                    },
                    ctx: sub.ctx,
                }
            }
            (Kind::Map(_), Op::RemoveKey(key)) => {
                let mut dots = Vec::new();
                if let Field::Map(m) = &self.state.field
                    && let Some(f) = m.entries.get(key)
                {
                    f.dots(&mut dots);
                }
                Causal {
                    field: Field::Empty,
                    ctx: CausalContext::from_parts(BTreeMap::new(), dots),
                }
            }
            _ => return Err(wrong()),
        };
        Ok(delta)
    }

    /// Joins a delta or another replica's state. Refused (false, nothing changed) if its entries do
    /// not fit the schema.
    pub fn apply(&mut self, delta: &Causal) -> bool {
        if !delta.field.fits(self.kind) {
            return false;
        }
        super::keyed::join(&mut self.state, &mut self.index, delta);
        true
    }

    /// The document as a reader sees it.
    pub fn view(&self) -> View {
        match (self.kind, &self.state.field) {
            (Kind::Value(ValueKind::Text), Field::Text(t)) => View::Text(t.text()),
            (Kind::Value(ValueKind::Text), _) => View::Text(String::new()),
            (Kind::Value(kind), field) => view_value(kind, field),
            (Kind::Map(kind), Field::Map(m)) => View::Map(
                m.entries
                    .iter()
                    .map(|(k, f)| (k.clone(), view_value(kind, f)))
                    .collect(),
            ),
            (Kind::Map(_), _) => View::Map(BTreeMap::new()),
        }
    }

    /// The highest HLC any register entry carries.
    fn latest_hlc(&self) -> Hlc {
        self.index.latest()
    }
}

/// The delta of `edit` on a value of `kind` currently holding `field`; `None` if the edit does not
/// suit the kind.
fn edit_value(
    field: &Field,
    ctx: &CausalContext,
    kind: ValueKind,
    actor: Actor,
    edit: &Edit,
    hlc: Hlc,
) -> Option<Result<Causal, EditError>> {
    let dot = ctx.next_dot(actor);
    let mut seen = Vec::new();
    let new_field = match (kind, edit) {
        (ValueKind::Counter, Edit::Increment(by)) => {
            let (mut p, mut n) = (0u64, 0u64);
            if let Field::Counter(s) = field {
                for (d, (dp, dn)) in s.entries.iter().filter(|(d, _)| d.actor == actor) {
                    seen.push(*d);
                    p = p.saturating_add(*dp);
                    n = n.saturating_add(*dn);
                }
            }
            let grown = if *by >= 0 {
                p.checked_add(by.unsigned_abs()).map(|p| (p, n))
            } else {
                n.checked_add(by.unsigned_abs()).map(|n| (p, n))
            };
            let Some(value) = grown else {
                return Some(Err(EditError::Overflow));
            };
            Field::Counter(DotFun {
                entries: [(dot, value)].into(),
            })
        }
        (ValueKind::Lww, Edit::Write(v)) => {
            field.dots(&mut seen);
            Field::Lww(DotFun {
                entries: [(dot, (hlc, v.clone()))].into(),
            })
        }
        (ValueKind::Mv, Edit::Write(v)) => {
            field.dots(&mut seen);
            Field::Mv(DotFun {
                entries: [(dot, v.clone())].into(),
            })
        }
        (ValueKind::Set, Edit::Add(member)) => {
            member_dots(field, member, &mut seen);
            let adds = DotFun {
                entries: [(dot, ())].into(),
            };
            Field::Set(DotMap {
                entries: [(member.clone(), adds)].into(),
            })
        }
        (ValueKind::Set, Edit::Remove(member)) => {
            member_dots(field, member, &mut seen);
            return Some(Ok(Causal {
                field: Field::Empty,
                ctx: CausalContext::from_parts(BTreeMap::new(), seen),
            }));
        }
        _ => return None,
    };
    seen.push(dot);
    Some(Ok(Causal {
        field: new_field,
        ctx: CausalContext::from_parts(BTreeMap::new(), seen),
    }))
}

/// The delta of a text edit; `None` if the edit is not a text edit.
fn edit_text(
    text: &Text,
    ctx: &CausalContext,
    actor: Actor,
    edit: &Edit,
) -> Option<Result<Causal, EditError>> {
    Some(match edit {
        Edit::Insert(pos, s) => {
            if s.is_empty() || s.len() > super::codec::MAX_STRING {
                return Some(Err(EditError::Size));
            }
            let Some((left, right)) = text.origins_at(*pos) else {
                return Some(Err(EditError::Position(*pos, text.visible())));
            };
            let run = Run {
                first: ctx.next_dot(actor),
                left,
                right,
                text: s.clone(),
            };
            let dots: Vec<Dot> = run.dots().collect();
            if dots.len() != s.chars().count() {
                return Some(Err(EditError::Overflow));
            }
            Ok(Causal {
                field: Field::Text(Box::new(Text::insertion(run))),
                ctx: CausalContext::from_parts(BTreeMap::new(), dots),
            })
        }
        Edit::Delete(pos, len) => {
            if *len == 0 || *len as u64 > super::text::MAX_DELETES {
                return Some(Err(EditError::Size));
            }
            let Some(dots) = text.visible_ids(*pos, *len) else {
                return Some(Err(EditError::Position(
                    pos.saturating_add(*len),
                    text.visible(),
                )));
            };
            Ok(Causal {
                field: Field::Text(Box::new(Text::deletion(dots))),
                ctx: CausalContext::default(),
            })
        }
        _ => return None,
    })
}

fn member_dots(field: &Field, member: &str, out: &mut Vec<Dot>) {
    if let Field::Set(s) = field
        && let Some(adds) = s.entries.get(member)
    {
        adds.dots(out);
    }
}

fn view_value(kind: ValueKind, field: &Field) -> View {
    match (kind, field) {
        (ValueKind::Counter, Field::Counter(s)) => {
            let total: i128 = s
                .entries
                .values()
                .map(|(p, n)| i128::from(*p) - i128::from(*n))
                .sum();
            View::Counter(total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
        }
        (ValueKind::Lww, Field::Lww(s)) => View::Lww(
            s.entries
                .iter()
                .max_by_key(|(dot, (hlc, _))| (*hlc, dot.actor))
                .map(|(_, (_, v))| v.clone()),
        ),
        (ValueKind::Mv, Field::Mv(s)) => {
            let mut values: Vec<String> = s.entries.values().cloned().collect();
            values.sort();
            values.dedup();
            View::Mv(values)
        }
        (ValueKind::Set, Field::Set(s)) => View::Set(s.entries.keys().cloned().collect()),
        (ValueKind::Counter, _) => View::Counter(0),
        (ValueKind::Lww, _) => View::Lww(None),
        (ValueKind::Mv, _) => View::Mv(Vec::new()),
        (ValueKind::Set, _) => View::Set(Vec::new()),
        (ValueKind::Text, Field::Text(t)) => View::Text(t.text()),
        (ValueKind::Text, _) => View::Text(String::new()),
    }
}
