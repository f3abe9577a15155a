//! The binary form of a delta ([`Causal`]), as signed changes and sync batches carry it.
//!
//! ```text
//! delta   = actors(n) actor(32)*  vv(n) (actor_ix counter)*  cloud(n) (actor_ix counter)*  field
//! field   = 0 empty
//!         | 1 counter  n (dot p n)*          | 2 lww  n (dot millis logical string)*
//!         | 3 mv       n (dot string)*       | 4 set  n (string n dot*)*
//!         | 5 map      n (string field)*     (a map's fields are never maps)
//!         | 6 text     n run* m (actor_ix first count)*   (deleted dots, as ranges)
//! run     = dot origin origin string         (a run of 1+ characters, see text::Run)
//! origin  = 0 (an end of the text) | 1 dot
//! dot     = actor_ix counter                 string = len utf8
//! ```
//! A text's characters are in the context by rule: their dots are left out of `cloud` and the
//! decoder adds them back. Every integer is a varint. Actors are listed once and named by index, so a delta of many entries
//! does not repeat 32-byte keys. Decoding is total: any bytes give a delta or an error, counts are
//! checked against the bytes left before anything is allocated, and nesting is bounded.

use std::collections::BTreeMap;

use super::context::{Actor, CausalContext, Dot};
use super::document::Causal;
use super::field::Field;
use super::hlc::Hlc;
use super::store::{DotFun, DotMap};
use super::text::{MAX_DELETES, Run, Text};
use crate::core::wire::{Reader, WireError, put_varint};

/// Longest string (register value, set member, map key) a delta may carry.
pub const MAX_STRING: usize = 64 * 1024;

const EMPTY: u8 = 0;
const COUNTER: u8 = 1;
const LWW: u8 = 2;
const MV: u8 = 3;
const SET: u8 = 4;
const MAP: u8 = 5;
const TEXT: u8 = 6;

/// Appends the encoding of `delta`.
pub fn encode(delta: &Causal, out: &mut Vec<u8>) {
    let mut actors: BTreeMap<Actor, u64> = BTreeMap::new();
    let mut note = |a: Actor| {
        let next = actors.len() as u64;
        actors.entry(a).or_insert(next);
    };
    delta.ctx.version_vector().keys().for_each(|a| note(*a));
    delta.ctx.cloud().for_each(|d| note(d.actor));
    let mut dots = Vec::new();
    super::store::DotStore::dots(&delta.field, &mut dots);
    dots.iter().for_each(|d| note(d.actor));
    if let Field::Text(t) = &delta.field {
        t.actors(&mut note);
    }
    let mut ordered: Vec<(&Actor, &u64)> = actors.iter().collect();
    ordered.sort_by_key(|(_, ix)| **ix);
    put_varint(out, ordered.len() as u64);
    for (actor, _) in &ordered {
        out.extend_from_slice(&actor.0);
    }
    let ix = |a: &Actor| actors[a];
    put_varint(out, delta.ctx.version_vector().len() as u64);
    for (actor, counter) in delta.ctx.version_vector() {
        put_varint(out, ix(actor));
        put_varint(out, *counter);
    }
    // A text's characters are in its context by rule, so their dots are not written twice (a
    // typed paragraph would otherwise cost a dot per letter): the decoder adds them back.
    let implied: std::collections::BTreeSet<Dot> = match &delta.field {
        Field::Text(t) => {
            let mut dots = Vec::new();
            t.dots(&mut dots);
            dots.into_iter().collect()
        }
        _ => Default::default(),
    };
    let cloud: Vec<&Dot> = delta.ctx.cloud().filter(|d| !implied.contains(d)).collect();
    put_varint(out, cloud.len() as u64);
    for dot in cloud {
        put_dot(out, dot, &ix);
    }
    put_field(out, &delta.field, &ix);
}

fn put_dot(out: &mut Vec<u8>, dot: &Dot, ix: &impl Fn(&Actor) -> u64) {
    put_varint(out, ix(&dot.actor));
    put_varint(out, dot.counter);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_field(out: &mut Vec<u8>, field: &Field, ix: &impl Fn(&Actor) -> u64) {
    match field {
        Field::Empty => out.push(EMPTY),
        Field::Counter(s) => {
            out.push(COUNTER);
            put_varint(out, s.entries.len() as u64);
            for (dot, (p, n)) in &s.entries {
                put_dot(out, dot, ix);
                put_varint(out, *p);
                put_varint(out, *n);
            }
        }
        Field::Lww(s) => {
            out.push(LWW);
            put_varint(out, s.entries.len() as u64);
            for (dot, (hlc, v)) in &s.entries {
                put_dot(out, dot, ix);
                put_varint(out, hlc.millis);
                put_varint(out, u64::from(hlc.logical));
                put_string(out, v);
            }
        }
        Field::Mv(s) => {
            out.push(MV);
            put_varint(out, s.entries.len() as u64);
            for (dot, v) in &s.entries {
                put_dot(out, dot, ix);
                put_string(out, v);
            }
        }
        Field::Set(s) => {
            out.push(SET);
            put_varint(out, s.entries.len() as u64);
            for (member, adds) in &s.entries {
                put_string(out, member);
                put_varint(out, adds.entries.len() as u64);
                for dot in adds.entries.keys() {
                    put_dot(out, dot, ix);
                }
            }
        }
        Field::Map(m) => {
            out.push(MAP);
            put_varint(out, m.entries.len() as u64);
            for (key, f) in &m.entries {
                put_string(out, key);
                put_field(out, f, ix);
            }
        }
        Field::Text(t) => {
            out.push(TEXT);
            let (runs, deletes) = t.parts();
            put_varint(out, runs.len() as u64);
            for run in &runs {
                put_dot(out, &run.first, ix);
                for origin in [&run.left, &run.right] {
                    match origin {
                        None => out.push(0),
                        Some(d) => {
                            out.push(1);
                            put_dot(out, d, ix);
                        }
                    }
                }
                put_string(out, &run.text);
            }
            let ranges = deletes;
            put_varint(out, ranges.len() as u64);
            for (first, n) in ranges {
                put_dot(out, &first, ix);
                put_varint(out, n);
            }
        }
    }
}

fn origin(r: &mut Reader<'_>, actors: &[Actor]) -> Result<Option<Dot>, WireError> {
    match r.u8()? {
        0 => Ok(None),
        1 => dot(r, actors).map(Some),
        _ => Err(WireError::Invalid("text origin")),
    }
}

fn text(r: &mut Reader<'_>, actors: &[Actor]) -> Result<Field, WireError> {
    let n = count(r, 5)?;
    let mut runs = Vec::with_capacity(n);
    for _ in 0..n {
        let first = dot(r, actors)?;
        let left = origin(r, actors)?;
        let right = origin(r, actors)?;
        let text = string(r)?;
        let chars = text.chars().count() as u64;
        if chars == 0 || first.counter.checked_add(chars - 1).is_none() {
            return Err(WireError::Invalid("text run"));
        }
        runs.push(Run {
            first,
            left,
            right,
            text,
        });
    }
    let m = count(r, 3)?;
    let mut deletes = Vec::with_capacity(m);
    let mut total = 0u64;
    for _ in 0..m {
        let first = dot(r, actors)?;
        let len = r.varint()?;
        total = total.saturating_add(len);
        if len == 0 || total > MAX_DELETES || first.counter.checked_add(len - 1).is_none() {
            return Err(WireError::Invalid("deleted range"));
        }
        deletes.push((first, len));
    }
    Ok(Field::Text(Box::new(Text::from_parts(runs, deletes))))
}

/// Decodes a delta; the reader is left after it.
pub fn decode(r: &mut Reader<'_>) -> Result<Causal, WireError> {
    let n = count(r, 32)?;
    let actors: Vec<Actor> = (0..n)
        .map(|_| r.array().map(Actor))
        .collect::<Result<_, _>>()?;
    let n = count(r, 2)?;
    let mut vv = BTreeMap::new();
    for _ in 0..n {
        let actor = actor_at(r, &actors)?;
        vv.insert(actor, r.varint()?);
    }
    let n = count(r, 2)?;
    let mut cloud = (0..n)
        .map(|_| dot(r, &actors))
        .collect::<Result<Vec<_>, _>>()?;
    let field = field(r, &actors, true)?;
    if let Field::Text(t) = &field {
        t.dots(&mut cloud);
    }
    Ok(Causal {
        field,
        ctx: CausalContext::from_parts(vv, cloud),
    })
}

/// Reads a count of items that take at least `min_size` bytes each, refusing more than could fit.
fn count(r: &mut Reader<'_>, min_size: usize) -> Result<usize, WireError> {
    let n = r.length(usize::MAX)?;
    if n.saturating_mul(min_size) > r.remaining() {
        return Err(WireError::Truncated);
    }
    Ok(n)
}

fn actor_at(r: &mut Reader<'_>, actors: &[Actor]) -> Result<Actor, WireError> {
    let i = r.length(usize::MAX)?;
    actors
        .get(i)
        .copied()
        .ok_or(WireError::Invalid("actor index"))
}

fn dot(r: &mut Reader<'_>, actors: &[Actor]) -> Result<Dot, WireError> {
    let actor = actor_at(r, actors)?;
    let counter = r.varint()?;
    if counter == 0 {
        return Err(WireError::Invalid("dot counter 0"));
    }
    Ok(Dot { actor, counter })
}

fn string(r: &mut Reader<'_>) -> Result<String, WireError> {
    let len = r.length(MAX_STRING)?;
    let bytes = r.take(len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError::Invalid("string not UTF-8"))
}

fn field(r: &mut Reader<'_>, actors: &[Actor], map_allowed: bool) -> Result<Field, WireError> {
    Ok(match r.u8()? {
        EMPTY => Field::Empty,
        COUNTER => {
            let n = count(r, 4)?;
            let mut s = DotFun::default();
            for _ in 0..n {
                let d = dot(r, actors)?;
                s.entries.insert(d, (r.varint()?, r.varint()?));
            }
            Field::Counter(s)
        }
        LWW => {
            let n = count(r, 5)?;
            let mut s = DotFun::default();
            for _ in 0..n {
                let d = dot(r, actors)?;
                let millis = r.varint()?;
                let logical =
                    u32::try_from(r.varint()?).map_err(|_| WireError::Invalid("HLC counter"))?;
                s.entries.insert(d, (Hlc { millis, logical }, string(r)?));
            }
            Field::Lww(s)
        }
        MV => {
            let n = count(r, 3)?;
            let mut s = DotFun::default();
            for _ in 0..n {
                let d = dot(r, actors)?;
                s.entries.insert(d, string(r)?);
            }
            Field::Mv(s)
        }
        SET => {
            let n = count(r, 2)?;
            let mut s = DotMap::default();
            for _ in 0..n {
                let member = string(r)?;
                let k = count(r, 2)?;
                let mut adds = DotFun::default();
                for _ in 0..k {
                    adds.entries.insert(dot(r, actors)?, ());
                }
                s.entries.insert(member, adds);
            }
            Field::Set(s)
        }
        MAP if map_allowed => {
            let n = count(r, 2)?;
            let mut m = DotMap::default();
            for _ in 0..n {
                let key = string(r)?;
                m.entries.insert(key, field(r, actors, false)?);
            }
            Field::Map(m)
        }
        MAP => return Err(WireError::Invalid("map inside a map")),
        TEXT => text(r, actors)?,
        _ => return Err(WireError::Invalid("field type")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::crdt::document::{Document, Edit, Op};
    use crate::services::crdt::field::{Kind, ValueKind};

    /// `causal` encodes and decodes to itself, and every strict prefix of its encoding is an error,
    /// never a panic.
    fn assert_round_trips(causal: &Causal) {
        let mut bytes = Vec::new();
        encode(causal, &mut bytes);
        let mut r = Reader::new(&bytes);
        assert_eq!(&decode(&mut r).unwrap(), causal);
        r.finish().unwrap();
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut]);
            assert!(decode(&mut r).is_err() || r.remaining() == 0);
        }
    }

    #[test]
    fn deltas_and_states_round_trip() {
        let kinds = [
            Kind::Value(ValueKind::Counter),
            Kind::Value(ValueKind::Set),
            Kind::Map(ValueKind::Lww),
            Kind::Map(ValueKind::Mv),
        ];
        for kind in kinds {
            let mut doc = Document::new(kind);
            let mut deltas = Vec::new();
            for (i, a) in [1u8, 2, 1, 3].into_iter().enumerate() {
                let edit = match kind {
                    Kind::Value(ValueKind::Counter) => Edit::Increment(i as i64 - 1),
                    Kind::Value(_) => Edit::Add(format!("m{}", i % 2)),
                    _ => Edit::Write(format!("v{i}")),
                };
                let op = match kind {
                    Kind::Value(_) => Op::Value(edit),
                    Kind::Map(_) => Op::Key(format!("k{}", i % 2), edit),
                };
                deltas.push(doc.edit(Actor([a; 32]), &op, 10).unwrap());
            }
            for causal in deltas.iter().chain([doc.state()]) {
                assert_round_trips(causal);
            }
        }
    }

    #[test]
    fn text_deltas_and_states_round_trip_and_a_typed_run_costs_its_bytes() {
        let kind = Kind::Value(ValueKind::Text);
        let mut doc = Document::new(kind);
        let mut deltas = Vec::new();
        for (a, op) in [
            (1u8, Edit::Insert(0, "hello".into())),
            (2, Edit::Insert(5, " world".into())),
            (1, Edit::Delete(2, 5)),
            (3, Edit::Insert(1, "é".repeat(300))),
        ] {
            deltas.push(doc.edit(Actor([a; 32]), &Op::Value(op), 10).unwrap());
        }
        for causal in deltas.iter().chain([doc.state()]) {
            assert_round_trips(causal);
        }
        // 300 two-byte characters: the text plus one actor, one dot and two origins.
        let mut bytes = Vec::new();
        encode(&deltas[3], &mut bytes);
        assert!(bytes.len() < 600 + 2 * 32 + 20, "{} bytes", bytes.len());
    }

    #[test]
    fn a_text_change_deleting_more_than_the_limit_is_refused_before_expanding() {
        use crate::services::crdt::text::{MAX_DELETES, Text};
        let actor = Actor([1; 32]);
        let first = Dot { actor, counter: 1 };
        let delta = |len: u64| Causal {
            field: Field::Text(Box::new(Text::from_parts(Vec::new(), vec![(first, len)]))),
            ctx: CausalContext::default(),
        };
        let mut at_limit = Vec::new();
        encode(&delta(MAX_DELETES), &mut at_limit);
        assert!(decode(&mut Reader::new(&at_limit)).is_ok());
        // A few bytes naming 2^60 deleted characters: refused, nothing expanded.
        for len in [MAX_DELETES + 1, 1 << 60] {
            let mut bytes = Vec::new();
            encode(&delta(len), &mut bytes);
            assert!(bytes.len() < 64);
            assert_eq!(
                decode(&mut Reader::new(&bytes)),
                Err(WireError::Invalid("deleted range"))
            );
        }
    }

    #[test]
    fn hostile_counts_and_nesting_are_refused_without_allocating() {
        // A billion actors announced in five bytes.
        let mut bytes = Vec::new();
        put_varint(&mut bytes, 1_000_000_000);
        assert_eq!(decode(&mut Reader::new(&bytes)), Err(WireError::Truncated));
        // A map inside a map.
        let nested = [0, 0, 0, MAP, 1, 1, b'k', MAP, 0];
        assert!(decode(&mut Reader::new(&nested)).is_err());
        // A dot naming an actor not listed.
        let orphan = [0, 0, 1, 7, 1, EMPTY];
        assert!(decode(&mut Reader::new(&orphan)).is_err());
    }
}
