//! The typed values a document holds, each a dot store, and the schema that fixes which.

use super::context::{CausalContext, Dot};
use super::hlc::Hlc;
use super::store::{DotFun, DotMap, DotStore};
use super::text::Text;

/// A value type, fixed when a document is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// PN-Counter: each actor's share is one entry `(increments, decrements)` under its latest dot.
    Counter,
    /// Last-writer-wins register: concurrent writes are all kept, the read picks the highest
    /// `(hlc, actor)`; the next write replaces them all.
    Lww,
    /// Multi-value register: concurrent writes are all kept and shown as a conflict until a write
    /// that saw them all replaces them.
    Mv,
    /// Add-wins observed-remove set of strings.
    Set,
    /// Collaborative text (see [`super::text`]); only as a document's single value.
    Text,
}

/// A document's schema: one value, or a map from string keys to values of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A single value.
    Value(ValueKind),
    /// An observed-remove map (a key written concurrently with its removal survives).
    Map(ValueKind),
}

/// A value's entries. `Empty` is what a missing map key holds before a join gives it a shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Field {
    /// Nothing yet.
    #[default]
    Empty,
    /// See [`ValueKind::Counter`].
    Counter(DotFun<(u64, u64)>),
    /// See [`ValueKind::Lww`].
    Lww(DotFun<(Hlc, String)>),
    /// See [`ValueKind::Mv`].
    Mv(DotFun<String>),
    /// See [`ValueKind::Set`]: member → the dots of its adds.
    Set(DotMap<String, DotFun<()>>),
    /// A map of fields (one level: the schema never nests maps).
    Map(DotMap<String, Field>),
    /// See [`ValueKind::Text`].
    Text(Box<Text>),
}

impl Field {
    /// An empty value of `kind`.
    pub fn empty(kind: ValueKind) -> Self {
        match kind {
            ValueKind::Counter => Self::Counter(DotFun::default()),
            ValueKind::Lww => Self::Lww(DotFun::default()),
            ValueKind::Mv => Self::Mv(DotFun::default()),
            ValueKind::Set => Self::Set(DotMap::default()),
            ValueKind::Text => Self::Text(Box::default()),
        }
    }

    /// True if this field has the shape `kind` calls for (an empty field fits any): what a replica
    /// checks before joining a change from elsewhere.
    pub fn fits_value(&self, kind: ValueKind) -> bool {
        matches!(
            (self, kind),
            (Self::Empty, _)
                | (Self::Counter(_), ValueKind::Counter)
                | (Self::Lww(_), ValueKind::Lww)
                | (Self::Mv(_), ValueKind::Mv)
                | (Self::Set(_), ValueKind::Set)
                | (Self::Text(_), ValueKind::Text)
        )
    }

    /// Like [`Field::fits_value`] for a document's root.
    pub fn fits(&self, kind: Kind) -> bool {
        match (self, kind) {
            (Self::Empty, _) => true,
            (_, Kind::Map(ValueKind::Text)) => false,
            (Self::Map(m), Kind::Map(v)) => m.entries.values().all(|f| f.fits_value(v)),
            (_, Kind::Value(v)) => self.fits_value(v),
            _ => false,
        }
    }
}

impl DotStore for Field {
    fn is_bottom(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Counter(s) => s.is_bottom(),
            Self::Lww(s) => s.is_bottom(),
            Self::Mv(s) => s.is_bottom(),
            Self::Set(s) => s.is_bottom(),
            Self::Map(s) => s.is_bottom(),
            Self::Text(t) => t.is_empty(),
        }
    }

    fn dots(&self, out: &mut Vec<Dot>) {
        match self {
            Self::Empty => {}
            Self::Counter(s) => s.dots(out),
            Self::Lww(s) => s.dots(out),
            Self::Mv(s) => s.dots(out),
            Self::Set(s) => s.dots(out),
            Self::Map(s) => s.dots(out),
            Self::Text(t) => t.dots(out),
        }
    }

    fn join(&mut self, ours: &CausalContext, other: &Self, theirs: &CausalContext) {
        if matches!(self, Self::Empty) {
            *self = match other {
                Self::Empty => return,
                Self::Counter(_) => Self::Counter(DotFun::default()),
                Self::Lww(_) => Self::Lww(DotFun::default()),
                Self::Mv(_) => Self::Mv(DotFun::default()),
                Self::Set(_) => Self::Set(DotMap::default()),
                Self::Map(_) => Self::Map(DotMap::default()),
                Self::Text(_) => Self::Text(Box::default()),
            };
        }
        let empty = Self::Empty;
        let other = if std::mem::discriminant(self) == std::mem::discriminant(other) {
            other
        } else {
            // Shapes differ only if a replica skipped the schema check; treat theirs as nothing
            // (removals by their context still apply), so the join stays a join.
            &empty
        };
        match (&mut *self, other) {
            (Self::Counter(a), Self::Counter(b)) => a.join(ours, b, theirs),
            (Self::Lww(a), Self::Lww(b)) => a.join(ours, b, theirs),
            (Self::Mv(a), Self::Mv(b)) => a.join(ours, b, theirs),
            (Self::Set(a), Self::Set(b)) => a.join(ours, b, theirs),
            (Self::Map(a), Self::Map(b)) => a.join(ours, b, theirs),
            // Text is a union of grow-only sets: contexts remove nothing from it.
            (Self::Text(a), Self::Text(b)) => a.join(b),
            (Self::Text(_), _) => {}
            (Self::Counter(a), _) => a.join(ours, &DotFun::default(), theirs),
            (Self::Lww(a), _) => a.join(ours, &DotFun::default(), theirs),
            (Self::Mv(a), _) => a.join(ours, &DotFun::default(), theirs),
            (Self::Set(a), _) => a.join(ours, &DotMap::default(), theirs),
            (Self::Map(a), _) => a.join(ours, &DotMap::default(), theirs),
            (Self::Empty, _) => {}
        }
        if self.is_bottom() {
            *self = Self::Empty;
        }
    }
}
