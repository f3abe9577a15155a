//! The ordered list of characters behind a text document, and the rule that places a character
//! inserted concurrently with others.
//!
//! Every character ever inserted stays in the list (a deleted one is only marked), because later
//! insertions name their neighbours by id. Each character carries the two neighbours it was typed
//! between (its *origins*); [`Sequence::integrate`] places a new character between its origins and,
//! among concurrent insertions at the same gap, by the FugueMax rule (Weidner & Kleppmann, "The Art of
//! the Fugue", 2023; the same order as Yjs with Seph Gentle's `YjsMod` fix): a run typed forward by
//! one writer is never interleaved with another writer's concurrent run, and replicas that integrate
//! the same characters in any causal order hold the same list.
//!
//! The list is cut into chunks of at most [`MAX_CHUNK`] characters, each knowing how many of its
//! characters are visible, so finding the n-th visible character walks chunk counts (a few hundred
//! for a long book) and one chunk; a map from character id to chunk finds an origin without a scan.

use std::collections::HashMap;

use super::super::context::{Actor, Dot};

/// Most characters one chunk holds before it splits in two.
pub const MAX_CHUNK: usize = 256;

/// A character's id, with the writer's key replaced by its index in [`Sequence::actors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Id {
    actor: u32,
    counter: u64,
}

/// Stands for "no origin": the start or the end of the text.
const NONE: Id = Id {
    actor: u32::MAX,
    counter: 0,
};

#[derive(Debug, Clone)]
struct Item {
    id: Id,
    left: Id,
    right: Id,
    ch: char,
    deleted: bool,
}

#[derive(Debug, Clone, Default)]
struct Chunk {
    items: Vec<Item>,
    visible: usize,
}

/// Where a character is: its chunk's rank in the list and its index in the chunk. Ordered as the
/// text is; the end of the text is `(chunk count, 0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    rank: usize,
    idx: usize,
}

/// One character as the list holds it, with ids as dots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: Dot,
    /// The character it was typed after (`None`: the start).
    pub left: Option<Dot>,
    /// The character it was typed before (`None`: the end).
    pub right: Option<Dot>,
    /// The character.
    pub ch: char,
    /// Deleted (kept for the ids that name it).
    pub deleted: bool,
}

/// The characters of one text, in order.
#[derive(Debug, Clone, Default)]
pub struct Sequence {
    actors: Vec<Actor>,
    actor_ix: HashMap<Actor, u32>,
    /// Chunks by id (an id never changes; the order is in `order`).
    chunks: Vec<Chunk>,
    /// Chunk ids in text order.
    order: Vec<u32>,
    /// Chunk id → its index in `order`.
    rank: Vec<usize>,
    /// Character id → chunk id.
    home: HashMap<Id, u32>,
    visible: usize,
}

impl Sequence {
    /// Characters held, deleted ones included.
    pub fn len(&self) -> usize {
        self.home.len()
    }

    /// True if it holds no character, not even a deleted one.
    pub fn is_empty(&self) -> bool {
        self.home.is_empty()
    }

    /// Characters not deleted.
    pub fn visible(&self) -> usize {
        self.visible
    }

    /// True if the character `dot` is here (deleted or not).
    pub fn contains(&self, dot: &Dot) -> bool {
        self.id(dot).is_some_and(|id| self.home.contains_key(&id))
    }

    /// True if `origin` (`None`: an end of the text) can be found.
    fn has_origin(&self, origin: &Option<Dot>) -> bool {
        origin.as_ref().is_none_or(|d| self.contains(d))
    }

    fn id(&self, dot: &Dot) -> Option<Id> {
        self.actor_ix.get(&dot.actor).map(|&actor| Id {
            actor,
            counter: dot.counter,
        })
    }

    fn intern(&mut self, actor: Actor) -> u32 {
        *self.actor_ix.entry(actor).or_insert_with(|| {
            self.actors.push(actor);
            (self.actors.len() - 1) as u32
        })
    }

    fn dot(&self, id: Id) -> Option<Dot> {
        (id != NONE).then(|| Dot {
            actor: self.actors[id.actor as usize],
            counter: id.counter,
        })
    }

    fn end(&self) -> Pos {
        Pos {
            rank: self.order.len(),
            idx: 0,
        }
    }

    fn chunk_at(&self, rank: usize) -> &Chunk {
        &self.chunks[self.order[rank] as usize]
    }

    fn item(&self, p: Pos) -> &Item {
        &self.chunk_at(p.rank).items[p.idx]
    }

    fn next(&self, p: Pos) -> Pos {
        if p.idx + 1 < self.chunk_at(p.rank).items.len() {
            Pos {
                rank: p.rank,
                idx: p.idx + 1,
            }
        } else {
            Pos {
                rank: p.rank + 1,
                idx: 0,
            }
        }
    }

    fn prev(&self, p: Pos) -> Option<Pos> {
        if p.idx > 0 {
            Some(Pos {
                rank: p.rank,
                idx: p.idx - 1,
            })
        } else if p.rank > 0 {
            let idx = self.chunk_at(p.rank - 1).items.len() - 1;
            Some(Pos {
                rank: p.rank - 1,
                idx,
            })
        } else {
            None
        }
    }

    /// Where character `id` is (it must be here).
    fn find(&self, id: Id) -> Option<Pos> {
        let chunk = *self.home.get(&id)?;
        let idx = self.chunks[chunk as usize]
            .items
            .iter()
            .position(|it| it.id == id)?;
        Some(Pos {
            rank: self.rank[chunk as usize],
            idx,
        })
    }

    /// `None` for the start of the text, else where the left origin is.
    fn find_left(&self, id: Id) -> Option<Pos> {
        if id == NONE { None } else { self.find(id) }
    }

    fn find_right(&self, id: Id) -> Pos {
        if id == NONE {
            self.end()
        } else {
            self.find(id).unwrap_or_else(|| self.end())
        }
    }

    /// Where the `pos`-th visible character is (the end if `pos` is the visible length).
    fn visible_at(&self, mut pos: usize) -> Option<Pos> {
        for (rank, &chunk) in self.order.iter().enumerate() {
            let chunk = &self.chunks[chunk as usize];
            if pos >= chunk.visible {
                pos -= chunk.visible;
                continue;
            }
            for (idx, item) in chunk.items.iter().enumerate() {
                if item.deleted {
                    continue;
                }
                if pos == 0 {
                    return Some(Pos { rank, idx });
                }
                pos -= 1;
            }
        }
        (pos == 0).then(|| self.end())
    }

    /// The origins of a character typed at visible position `pos` (`None` if past the end).
    pub fn origins_at(&self, pos: usize) -> Option<(Option<Dot>, Option<Dot>)> {
        let at = self.visible_at(pos)?;
        let left = self.prev(at).and_then(|p| self.dot(self.item(p).id));
        let right = if at == self.end() {
            None
        } else {
            self.dot(self.item(at).id)
        };
        Some((left, right))
    }

    /// The ids of `len` visible characters from visible position `pos` (`None` if past the end).
    pub fn visible_ids(&self, pos: usize, len: usize) -> Option<Vec<Dot>> {
        if pos.checked_add(len)? > self.visible {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        let mut at = self.visible_at(pos)?;
        while out.len() < len && at < self.end() {
            let item = self.item(at);
            if !item.deleted {
                out.extend(self.dot(item.id));
            }
            at = self.next(at);
        }
        Some(out)
    }

    /// Places a new character typed between `left` and `right`, both of which must be here. False
    /// (and nothing changed) if it is here already or an origin is missing.
    pub fn integrate(&mut self, dot: Dot, left: Option<Dot>, right: Option<Dot>, ch: char) -> bool {
        if self.contains(&dot) || !self.has_origin(&left) || !self.has_origin(&right) {
            return false;
        }
        let actor = self.intern(dot.actor);
        let id = Id {
            actor,
            counter: dot.counter,
        };
        let origin = |o: Option<Dot>| o.and_then(|d| self.id(&d)).unwrap_or(NONE);
        let item = Item {
            id,
            left: origin(left),
            right: origin(right),
            ch,
            deleted: false,
        };
        let dest = self.place(&item);
        self.insert_at(dest, item);
        true
    }

    /// FugueMax: where `item` goes among the characters between its origins.
    fn place(&self, item: &Item) -> Pos {
        let left = self.find_left(item.left);
        let right = self.find_right(item.right);
        let start = match left {
            None => Pos { rank: 0, idx: 0 },
            Some(p) => self.next(p),
        };
        let end = self.end();
        let mut dest = start;
        let mut i = start;
        let mut scanning = false;
        loop {
            if !scanning {
                dest = i;
            }
            if i >= end || i == right {
                break;
            }
            let other = self.item(i);
            let other_left = self.find_left(other.left);
            let other_right = self.find_right(other.right);
            if other_left < left
                || (other_left == left && other_right == right && self.precedes(item.id, other.id))
            {
                break;
            }
            if other_left == left {
                scanning = other_right < right;
            }
            i = self.next(i);
        }
        dest
    }

    /// The tie-break between concurrent characters with the same origins: the lower writer key
    /// goes first.
    fn precedes(&self, a: Id, b: Id) -> bool {
        let key = |id: Id| (self.actors[id.actor as usize], id.counter);
        key(a) < key(b)
    }

    fn insert_at(&mut self, dest: Pos, item: Item) {
        if self.order.is_empty() {
            self.chunks.push(Chunk::default());
            self.order.push(0);
            self.rank.push(0);
        }
        let (rank, idx) = if dest.rank >= self.order.len() {
            let rank = self.order.len() - 1;
            (rank, self.chunk_at(rank).items.len())
        } else {
            (dest.rank, dest.idx)
        };
        let chunk_id = self.order[rank];
        self.home.insert(item.id, chunk_id);
        self.visible += 1;
        let chunk = &mut self.chunks[chunk_id as usize];
        chunk.visible += 1;
        chunk.items.insert(idx, item);
        if chunk.items.len() > MAX_CHUNK {
            self.split(rank);
        }
    }

    fn split(&mut self, rank: usize) {
        let old = self.order[rank] as usize;
        let half = self.chunks[old].items.len() / 2;
        let items = self.chunks[old].items.split_off(half);
        let moved_visible = items.iter().filter(|it| !it.deleted).count();
        self.chunks[old].visible -= moved_visible;
        let new = self.chunks.len() as u32;
        for it in &items {
            self.home.insert(it.id, new);
        }
        self.chunks.push(Chunk {
            items,
            visible: moved_visible,
        });
        self.order.insert(rank + 1, new);
        self.rank.push(0);
        for (r, &c) in self.order.iter().enumerate().skip(rank + 1) {
            self.rank[c as usize] = r;
        }
    }

    /// Marks the character `dot` deleted. False if it is not here.
    pub fn delete(&mut self, dot: &Dot) -> bool {
        let Some(id) = self.id(dot) else {
            return false;
        };
        let Some(p) = self.find(id) else {
            return false;
        };
        let chunk_id = self.order[p.rank] as usize;
        let chunk = &mut self.chunks[chunk_id];
        let item = &mut chunk.items[p.idx];
        if !item.deleted {
            item.deleted = true;
            chunk.visible -= 1;
            self.visible -= 1;
        }
        true
    }

    /// The visible text.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.visible);
        for &c in &self.order {
            out.extend(
                (self.chunks[c as usize].items.iter())
                    .filter(|it| !it.deleted)
                    .map(|it| it.ch),
            );
        }
        out
    }

    /// Every character, deleted ones included, in order.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.order
            .iter()
            .flat_map(|&c| self.chunks[c as usize].items.iter())
            .filter_map(|it| {
                Some(Entry {
                    id: self.dot(it.id)?,
                    left: self.dot(it.left),
                    right: self.dot(it.right),
                    ch: it.ch,
                    deleted: it.deleted,
                })
            })
    }

    /// Every writer named by a character or an origin.
    pub fn actors(&self) -> &[Actor] {
        &self.actors
    }
}
