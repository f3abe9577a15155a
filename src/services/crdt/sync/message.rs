//! The CRDT sync protocol's messages, carried as service messages inside end-to-end sessions.
//!
//! ```text
//! message = version(1)=1 type(1) body
//! name    = len(varint) utf8
//! Digest  type 1: count(varint) (name:namespace name:document heads(8))*
//! Want    type 2: name:namespace name:document request(varint) count(varint) actor_have*
//! actor_have = actor_prefix(8) through(varint) runs(varint) (gap(varint) len(varint))*
//! Changes type 3: name:namespace name:document request(varint) part(varint) parts(varint)
//!                 count(varint) (len(varint) change)*
//! ```
//! A *digest* lists documents with a short hash of what is held (`DocumentLog::heads_hash`); a
//! *want* carries what the sender holds of one document: per actor (shortened to an 8-byte prefix),
//! the changes held from 1 without a gap and the runs held past the gap, so a retry after a loss
//! costs only what was lost; *changes* answers it (or pushes a fresh local write) with signed changes, each
//! verified by the receiver on its own. The decoder is total: any bytes give a message or an error,
//! and counts are checked against the bytes present before anything is allocated.

use crate::core::wire::{Reader, WireError, put_varint};
use crate::services::crdt::change::{MAX_DOCUMENT, MAX_NAMESPACE};

const VERSION: u8 = 1;
const DIGEST: u8 = 1;
const WANT: u8 = 2;
const CHANGES: u8 = 3;
/// Longest change a message may carry.
const MAX_CHANGE: usize = 64 * 1024;

/// A document's namespace and name, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocRef<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The document.
    pub document: &'a str,
}

impl DocRef<'_> {
    /// The owned namespace and name, as replicas key documents.
    pub fn to_name(&self) -> crate::services::crdt::replica::DocName {
        (self.namespace.to_owned(), self.document.to_owned())
    }
}

/// Most parts one answer may have.
pub const MAX_PARTS: u64 = 1 << 20;

/// What a wanter holds of one actor's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorHave {
    /// The first 8 bytes of the actor's key.
    pub prefix: [u8; 8],
    /// Every change from 1 to this is held.
    pub through: u64,
    /// Runs held past the gap, inclusive, ascending, each past the last and past `through + 1`.
    pub runs: Vec<(u64, u64)>,
}

impl ActorHave {
    /// True if change `seq` is held.
    pub fn holds(&self, seq: u64) -> bool {
        seq <= self.through
            || self
                .runs
                .binary_search_by(|(first, last)| {
                    if *last < seq {
                        std::cmp::Ordering::Less
                    } else if *first > seq {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                })
                .is_ok()
    }

    /// The highest `seq` held.
    pub fn highest(&self) -> u64 {
        self.runs.last().map_or(self.through, |r| r.1)
    }
}

/// One sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage<'a> {
    /// Documents and the hash of what the sender holds of each.
    Digest(Vec<(DocRef<'a>, [u8; 8])>),
    /// "Send me what I lack": the sender's version vector for one document.
    Want {
        /// The document.
        doc: DocRef<'a>,
        /// Echoed in the answer's parts (never 0).
        request: u64,
        /// Per actor, what is held.
        have: Vec<ActorHave>,
    },
    /// Signed changes to one document.
    Changes {
        /// The document.
        doc: DocRef<'a>,
        /// The want answered; 0 for a pushed local write.
        request: u64,
        /// This part's number, from 0.
        part: u64,
        /// How many parts the answer has (1 for a push).
        parts: u64,
        /// Encoded changes.
        changes: Vec<&'a [u8]>,
    },
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    put_varint(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
}

fn put_doc(out: &mut Vec<u8>, doc: &DocRef<'_>) {
    put_name(out, doc.namespace);
    put_name(out, doc.document);
}

/// Bytes `doc` takes in a message.
pub fn doc_len(doc: &DocRef<'_>) -> usize {
    doc.namespace.len() + doc.document.len() + 4
}

fn name<'a>(r: &mut Reader<'a>, max: usize) -> Result<&'a str, WireError> {
    let len = r.length(max)?;
    let text = std::str::from_utf8(r.take(len)?).map_err(|_| WireError::Invalid("name"))?;
    if text.is_empty() {
        return Err(WireError::Invalid("empty name"));
    }
    Ok(text)
}

fn doc<'a>(r: &mut Reader<'a>) -> Result<DocRef<'a>, WireError> {
    Ok(DocRef {
        namespace: name(r, MAX_NAMESPACE)?,
        document: name(r, MAX_DOCUMENT)?,
    })
}

fn actor_have(r: &mut Reader<'_>) -> Result<ActorHave, WireError> {
    let prefix = r.array()?;
    let through = r.varint()?;
    let n = count(r, 2)?;
    let mut runs = Vec::with_capacity(n);
    let mut previous = through;
    for _ in 0..n {
        // Each run starts past the previous one and a gap: strictly ascending, never touching.
        let gap = r.varint()?;
        let first = previous
            .checked_add(gap)
            .filter(|_| gap >= 2)
            .ok_or(WireError::Invalid("run"))?;
        let last = first
            .checked_add(r.varint()?)
            .ok_or(WireError::Invalid("run"))?;
        runs.push((first, last));
        previous = last;
    }
    Ok(ActorHave {
        prefix,
        through,
        runs,
    })
}

/// Reads a count of items that take at least `min` bytes each, refusing counts the input cannot hold.
fn count(r: &mut Reader<'_>, min: usize) -> Result<usize, WireError> {
    let n = r.length(usize::MAX)?;
    if n.saturating_mul(min) > r.remaining() {
        return Err(WireError::Truncated);
    }
    Ok(n)
}

impl<'a> SyncMessage<'a> {
    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        match self {
            Self::Digest(entries) => {
                out.push(DIGEST);
                put_varint(out, entries.len() as u64);
                for (doc, heads) in entries {
                    put_doc(out, doc);
                    out.extend_from_slice(heads);
                }
            }
            Self::Want { doc, request, have } => {
                out.push(WANT);
                put_doc(out, doc);
                put_varint(out, *request);
                put_varint(out, have.len() as u64);
                for actor in have {
                    out.extend_from_slice(&actor.prefix);
                    put_varint(out, actor.through);
                    put_varint(out, actor.runs.len() as u64);
                    let mut previous = actor.through;
                    for (first, last) in &actor.runs {
                        put_varint(out, first.saturating_sub(previous));
                        put_varint(out, last.saturating_sub(*first));
                        previous = *last;
                    }
                }
            }
            Self::Changes {
                doc,
                request,
                part,
                parts,
                changes,
            } => {
                out.push(CHANGES);
                put_doc(out, doc);
                put_varint(out, *request);
                put_varint(out, *part);
                put_varint(out, *parts);
                put_varint(out, changes.len() as u64);
                for change in changes {
                    put_varint(out, change.len() as u64);
                    out.extend_from_slice(change);
                }
            }
        }
    }

    /// Decodes a message.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let message = match r.u8()? {
            DIGEST => {
                let n = count(&mut r, 12)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push((doc(&mut r)?, r.array()?));
                }
                Self::Digest(entries)
            }
            WANT => {
                let doc = doc(&mut r)?;
                let request = r.varint()?;
                if request == 0 {
                    return Err(WireError::Invalid("request 0"));
                }
                let n = count(&mut r, 9)?;
                let mut have = Vec::with_capacity(n);
                for _ in 0..n {
                    have.push(actor_have(&mut r)?);
                }
                Self::Want { doc, request, have }
            }
            CHANGES => {
                let doc = doc(&mut r)?;
                let request = r.varint()?;
                let part = r.varint()?;
                let parts = r.varint()?;
                if parts == 0 || parts > MAX_PARTS || part >= parts {
                    return Err(WireError::Invalid("part"));
                }
                let n = count(&mut r, 1)?;
                let mut changes = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = r.length(MAX_CHANGE)?;
                    changes.push(r.take(len)?);
                }
                Self::Changes {
                    doc,
                    request,
                    part,
                    parts,
                    changes,
                }
            }
            other => return Err(WireError::UnknownType(other)),
        };
        r.finish()?;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> DocRef<'static> {
        DocRef {
            namespace: "stock",
            document: "boat",
        }
    }

    #[test]
    fn every_message_round_trips_and_every_prefix_is_refused() {
        let change = [7u8; 40];
        let messages = [
            SyncMessage::Digest(vec![(doc(), [1; 8]), (doc(), [2; 8])]),
            SyncMessage::Digest(vec![]),
            SyncMessage::Want {
                doc: doc(),
                request: 9,
                have: vec![
                    ActorHave {
                        prefix: [3; 8],
                        through: 300,
                        runs: vec![(302, 302), (310, 400)],
                    },
                    ActorHave {
                        prefix: [4; 8],
                        through: 0,
                        runs: vec![],
                    },
                ],
            },
            SyncMessage::Changes {
                doc: doc(),
                request: 9,
                part: 2,
                parts: 3,
                changes: vec![&change, &change[..3]],
            },
        ];
        for m in messages {
            let mut bytes = Vec::new();
            m.encode(&mut bytes);
            assert_eq!(SyncMessage::decode(&bytes), Ok(m.clone()));
            for cut in 0..bytes.len() {
                assert!(SyncMessage::decode(&bytes[..cut]).is_err(), "prefix {cut}");
            }
            bytes.push(0);
            assert_eq!(SyncMessage::decode(&bytes), Err(WireError::TrailingBytes));
        }
    }

    #[test]
    fn runs_tell_which_changes_are_held() {
        let have = ActorHave {
            prefix: [0; 8],
            through: 3,
            runs: vec![(5, 6), (9, 9)],
        };
        let held: Vec<u64> = (1..=10).filter(|s| have.holds(*s)).collect();
        assert_eq!(held, [1, 2, 3, 5, 6, 9]);
        assert_eq!(have.highest(), 9);
        // A run touching the one before it (gap 1) is refused: runs are canonical.
        let mut bytes = vec![VERSION, WANT];
        put_doc(&mut bytes, &doc());
        bytes.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 1, 0]);
        assert!(SyncMessage::decode(&bytes).is_err());
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut bytes = vec![VERSION, DIGEST];
        put_varint(&mut bytes, u64::MAX);
        assert!(SyncMessage::decode(&bytes).is_err());
        let mut bytes = vec![VERSION, CHANGES];
        put_doc(&mut bytes, &doc());
        bytes.extend_from_slice(&[0, 0, 1]);
        put_varint(&mut bytes, 1 << 40);
        assert_eq!(SyncMessage::decode(&bytes), Err(WireError::Truncated));
    }
}
