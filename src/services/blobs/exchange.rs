//! Moving blocks between nodes over the overlay's service channel (port [`BLOB_PORT`]), sans-IO.
//!
//! The fetching node pulls: it asks holders for 32 KiB parts of a block (`Want cid offset len`),
//! each holder answers with the part (`Part cid offset total data`) or says it has not got the
//! block (`NotHere cid`). Pulling paces the transfer by the fetcher's window per holder (parts in
//! flight: from 16, one more per part received up to 512, halved when a part is overdue), so a
//! holder never pushes more than was asked for and a transfer leaves room on every link for other
//! traffic. A block's parts all come from one holder, so a block that does not match its CID
//! convicts that holder: it is asked for nothing more and the block is fetched from another.
//! Blocks that verify come out in [`Fetch::poll_block`] for the store; dag-pb blocks are read and
//! their children fetched in turn, until the whole file is held.
//!
//! ```text
//! Want    0x01 cid(36) offset(u32) len(u32)          len 1..=32768
//! Part    0x02 cid(36) offset(u32) total(u32) data   total <= 1 MiB + node limit, data <= 32768
//! NotHere 0x03 cid(36)
//! ```

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::cid::{CID_LEN, Cid, Codec};
use super::dag::{FileNode, MAX_NODE_BYTES};
use super::import::Profile;
use crate::core::identity::PublicKey;
use crate::core::time::Instant;

pub use crate::services::BLOB_PORT;
/// Bytes of a block per message: 32 KiB, so that the per-message costs (a wake-up of the services'
/// thread at each end, a session frame, a decode) are paid 32 times per 1 MiB block, not 128 (4 KiB
/// was 0.7-0.9 Gbit/s on the test mesh, 32 KiB 1.3-1.8; 64 KiB gained nothing more). Links fragment
/// it (a link joins frames up to 72 KiB).
pub const PART: usize = 32768;
/// Largest block sent or taken.
pub const MAX_BLOCK: usize = {
    let chunk = Profile::UNIXFS_V1_2025.chunk;
    if chunk > MAX_NODE_BYTES {
        chunk
    } else {
        MAX_NODE_BYTES
    }
};
/// Parts in flight to one holder at first, and at most.
pub const WINDOW: (usize, usize) = (16, 512);
/// Blocks being assembled at once from one holder.
const BLOCKS_PER_HOLDER: usize = 8;
/// Bounds on how long a part may be overdue before it is asked again.
const RETRY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));
/// How much longer than the least round trip a part may take before the window shrinks: the
/// queueing a transfer may cause (or the least round trip itself, when that is longer).
const QUEUE_DELAY: Duration = Duration::from_millis(2);
/// How many times a part is asked for before its holder is given up for that block.
const TRIES: u8 = 6;

const WANT: u8 = 1;
const PART_MSG: u8 = 2;
const NOT_HERE: u8 = 3;

/// A message of the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// Send me `len` bytes of block `cid` from `offset`.
    Want {
        /// The block.
        cid: Cid,
        /// Where the part starts.
        offset: u32,
        /// Its length, 1 to [`PART`].
        len: u32,
    },
    /// `data` is block `cid` from `offset`; the block has `total` bytes.
    Part {
        /// The block.
        cid: Cid,
        /// Where the part starts.
        offset: u32,
        /// The block's size.
        total: u32,
        /// The bytes.
        data: &'a [u8],
    },
    /// I do not hold block `cid`.
    NotHere {
        /// The block.
        cid: Cid,
    },
}

impl<'a> Message<'a> {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + CID_LEN + 8 + PART);
        match self {
            Message::Want { cid, offset, len } => {
                out.push(WANT);
                out.extend_from_slice(&cid.to_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
            }
            Message::Part {
                cid,
                offset,
                total,
                data,
            } => {
                out.push(PART_MSG);
                out.extend_from_slice(&cid.to_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(data);
            }
            Message::NotHere { cid } => {
                out.push(NOT_HERE);
                out.extend_from_slice(&cid.to_bytes());
            }
        }
        out
    }

    /// Reads a message (total: any bytes give a message or `None`); parts and wants beyond the
    /// limits read as `None`.
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let (&kind, rest) = bytes.split_first()?;
        let (cid, rest) = rest.split_at_checked(CID_LEN)?;
        let cid = Cid::from_bytes(cid).ok()?;
        let word = |b: &[u8]| b.try_into().ok().map(u32::from_be_bytes);
        match kind {
            WANT if rest.len() == 8 => {
                let (offset, len) = (word(&rest[..4])?, word(&rest[4..])?);
                let fits = (1..=PART as u32).contains(&len)
                    && (offset as usize).saturating_add(len as usize) <= MAX_BLOCK;
                fits.then_some(Message::Want { cid, offset, len })
            }
            PART_MSG if rest.len() >= 8 => {
                let (offset, total, data) = (word(&rest[..4])?, word(&rest[4..8])?, &rest[8..]);
                let fits = data.len() <= PART
                    && total as usize <= MAX_BLOCK
                    && (offset as usize).saturating_add(data.len()) <= total as usize;
                fits.then_some(Message::Part {
                    cid,
                    offset,
                    total,
                    data,
                })
            }
            NOT_HERE if rest.is_empty() => Some(Message::NotHere { cid }),
            _ => None,
        }
    }
}

/// The answer to a message from a node that asks: `Some(reply)` to send back. `block` reads a
/// block held here (the driver keeps the last few in memory).
pub fn answer(
    message: &[u8],
    block: &mut dyn FnMut(&Cid) -> Option<std::sync::Arc<Vec<u8>>>,
) -> Option<Vec<u8>> {
    let Some(Message::Want { cid, offset, len }) = Message::decode(message) else {
        return None;
    };
    let Some(bytes) = block(&cid) else {
        return Some(Message::NotHere { cid }.encode());
    };
    let start = (offset as usize).min(bytes.len());
    let end = start.saturating_add(len as usize).min(bytes.len());
    Some(
        Message::Part {
            cid,
            offset: start as u32,
            total: bytes.len() as u32,
            data: &bytes[start..end],
        }
        .encode(),
    )
}

/// A block being assembled from one holder.
struct Assembly {
    holder: PublicKey,
    /// Known once the first part came.
    bytes: Option<Vec<u8>>,
    /// Offsets of parts received.
    received: HashSet<u32>,
}

/// A part asked for and not yet received.
#[derive(Clone, Copy)]
struct InFlight {
    sent: Instant,
    tries: u8,
}

/// What the fetch knows of one holder.
struct Holder {
    window: f64,
    /// Parts in flight, by (block, offset).
    in_flight: BTreeMap<(Cid, u32), InFlight>,
    /// Parts to ask for when the window has room: (block, offset, block size).
    to_ask: VecDeque<(Cid, u32, u32)>,
    /// Smoothed round trip of a part.
    rtt: Option<Duration>,
    /// The least round trip seen: the path without queues.
    min_rtt: Option<Duration>,
    /// Blocks it said it has not, or failed to deliver.
    lacks: HashSet<Cid>,
    /// It sent a block that did not match its CID: asked for nothing more.
    convicted: bool,
    /// Bytes of verified blocks it delivered.
    delivered: u64,
}

impl Holder {
    /// Grows the window by a part per part received while the round trip stays near the least
    /// seen, and shrinks it when parts wait in queues (the round trip more than
    /// [`QUEUE_DELAY`] over the least): a transfer fills the path, not the routers' queues, so
    /// other traffic on the path waits little.
    fn adjust_window(&mut self, sample: Duration) {
        let least = *self.min_rtt.get_or_insert(sample);
        self.min_rtt = Some(least.min(sample));
        let queued = sample.saturating_sub(least);
        self.window = if queued > QUEUE_DELAY.max(least) {
            (self.window * 0.97).max(WINDOW.0 as f64 / 4.0)
        } else {
            (self.window + 1.0).min(WINDOW.1 as f64)
        };
    }

    fn retry_after(&self) -> Duration {
        let rtt = self.rtt.unwrap_or(RETRY.0);
        (rtt * 4 + Duration::from_millis(20)).clamp(RETRY.0, RETRY.1)
    }
}

/// Holders by key, in the order they were given.
struct Holders(Vec<(PublicKey, Holder)>);

impl Holders {
    fn get(&self, key: &PublicKey) -> Option<&Holder> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, h)| h)
    }

    fn get_mut(&mut self, key: &PublicKey) -> Option<&mut Holder> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, h)| h)
    }

    fn iter(&self) -> impl Iterator<Item = (&PublicKey, &Holder)> {
        self.0.iter().map(|(k, h)| (k, h))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&PublicKey, &mut Holder)> {
        self.0.iter_mut().map(|(k, h)| (&*k, h))
    }

    fn values(&self) -> impl Iterator<Item = &Holder> {
        self.0.iter().map(|(_, h)| h)
    }
}

/// How a fetch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every block of the file is held.
    Complete,
    /// No holder is left for this block.
    Failed(Cid),
}

/// What a fetch counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Blocks received and verified.
    pub blocks: u64,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// Parts asked for again after they were overdue.
    pub retries: u64,
    /// Blocks that did not match their CID (their holder was convicted).
    pub corrupt: u64,
}

/// Fetching one file from the holders given.
pub struct Fetch {
    /// Holders in the order given (nearest first).
    holders: Holders,
    /// Blocks still to fetch, in file order.
    queue: VecDeque<Cid>,
    assembling: HashMap<Cid, Assembly>,
    /// Blocks that came and verified, for the store.
    done: VecDeque<(Cid, Vec<u8>)>,
    transmit: VecDeque<(PublicKey, Vec<u8>)>,
    outcome: Option<Outcome>,
    stats: FetchStats,
}

impl Fetch {
    /// Starts fetching the file `root` from `holders` (nearest first: earlier ones get blocks
    /// first), skipping the blocks `held` says this node has.
    pub fn new(root: Cid, holders: &[PublicKey], now: Instant) -> Self {
        let mut unique: Vec<PublicKey> = Vec::new();
        for k in holders {
            if !unique.contains(k) {
                unique.push(*k);
            }
        }
        let holders = unique
            .iter()
            .map(|k| {
                (
                    *k,
                    Holder {
                        window: WINDOW.0 as f64,
                        in_flight: BTreeMap::new(),
                        to_ask: VecDeque::new(),
                        rtt: None,
                        min_rtt: None,
                        lacks: HashSet::new(),
                        convicted: false,
                        delivered: 0,
                    },
                )
            })
            .collect();
        let mut fetch = Self {
            holders: Holders(holders),
            queue: VecDeque::from([root]),
            assembling: HashMap::new(),
            done: VecDeque::new(),
            transmit: VecDeque::new(),
            outcome: None,
            stats: FetchStats::default(),
        };
        fetch.schedule(now);
        fetch
    }

    /// What was counted so far.
    pub fn stats(&self) -> FetchStats {
        self.stats
    }

    /// Per holder, the bytes of verified blocks it delivered, and whether it was convicted of
    /// sending a corrupt one.
    pub fn holders(&self) -> Vec<(PublicKey, u64, bool)> {
        (self.holders.iter())
            .map(|(k, h)| (*k, h.delivered, h.convicted))
            .collect()
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// A block this node turned out to hold already (the store had it): not fetched, but read
    /// for its children.
    pub fn already_held(&mut self, cid: &Cid, bytes: &[u8], now: Instant) {
        self.queue.retain(|c| c != cid);
        self.children_of(cid, bytes);
        self.schedule(now);
    }

    /// A message on [`BLOB_PORT`] from `from`.
    pub fn handle_message(&mut self, now: Instant, from: PublicKey, message: &[u8]) {
        match Message::decode(message) {
            Some(Message::Part {
                cid,
                offset,
                total,
                data,
            }) => self.on_part(now, from, cid, offset, total, data),
            Some(Message::NotHere { cid }) => {
                if let Some(holder) = self.holders.get_mut(&from) {
                    holder.lacks.insert(cid);
                    holder.in_flight.retain(|(c, _), _| *c != cid);
                    holder.to_ask.retain(|(c, _, _)| *c != cid);
                }
                if self.assembling.get(&cid).is_some_and(|a| a.holder == from) {
                    self.assembling.remove(&cid);
                    self.queue.push_front(cid);
                }
            }
            _ => {}
        }
        self.schedule(now);
    }

    fn on_part(
        &mut self,
        now: Instant,
        from: PublicKey,
        cid: Cid,
        offset: u32,
        total: u32,
        data: &[u8],
    ) {
        let Some(holder) = self.holders.get_mut(&from) else {
            return;
        };
        let Some(asked) = holder.in_flight.remove(&(cid, offset)) else {
            return;
        };
        let sample = now.saturating_since(asked.sent);
        holder.rtt = Some(holder.rtt.map_or(sample, |r| (r * 7 + sample) / 8));
        holder.adjust_window(sample);
        let Some(assembly) = self.assembling.get_mut(&cid).filter(|a| a.holder == from) else {
            return;
        };
        let bytes = assembly
            .bytes
            .get_or_insert_with(|| vec![0; total as usize]);
        let end = offset as usize + data.len();
        if bytes.len() != total as usize || end > bytes.len() || (data.is_empty() && total > 0) {
            // A holder that changes its story about a block's size is as bad as a corrupt one.
            self.convict(from, cid);
            return;
        }
        bytes[offset as usize..end].copy_from_slice(data);
        assembly.received.insert(offset);
        let parts = (total as usize).div_ceil(PART).max(1);
        if assembly.received.len() < parts {
            // The first part tells the size: ask for the rest.
            if assembly.received.len() == 1
                && offset == 0
                && let Some(holder) = self.holders.get_mut(&from)
            {
                for part in 1..parts {
                    holder.to_ask.push_back((cid, (part * PART) as u32, total));
                }
            }
            return;
        }
        let Some(assembly) = self.assembling.remove(&cid) else {
            return;
        };
        let bytes = assembly.bytes.unwrap_or_default();
        if !cid.matches(&bytes) {
            self.convict(from, cid);
            return;
        }
        self.stats.blocks += 1;
        self.stats.bytes += bytes.len() as u64;
        if let Some(h) = self.holders.get_mut(&from) {
            h.delivered += bytes.len() as u64;
        }
        self.children_of(&cid, &bytes);
        self.done.push_back((cid, bytes));
    }

    /// Queues the children of a dag-pb block (a node that does not read fails the fetch).
    fn children_of(&mut self, cid: &Cid, bytes: &[u8]) {
        if cid.codec == Codec::DagPb {
            match FileNode::decode(bytes) {
                Ok(node) => self.queue.extend(node.links.iter().map(|l| l.cid)),
                Err(_) => self.outcome = Some(Outcome::Failed(*cid)),
            }
        }
    }

    /// `holder` sent a block that is not what it asked for: it gets no more requests, and the
    /// blocks it was assembling go back to the queue.
    fn convict(&mut self, holder: PublicKey, cid: Cid) {
        self.stats.corrupt += 1;
        if let Some(h) = self.holders.get_mut(&holder) {
            h.convicted = true;
            h.in_flight.clear();
            h.to_ask.clear();
        }
        let theirs: Vec<Cid> = (self.assembling.iter())
            .filter(|(_, a)| a.holder == holder)
            .map(|(c, _)| *c)
            .collect();
        for c in theirs.iter().chain(std::iter::once(&cid)) {
            self.assembling.remove(c);
            if !self.queue.contains(c) {
                self.queue.push_front(*c);
            }
        }
    }

    fn ask(&mut self, now: Instant, holder: PublicKey, cid: Cid, offset: u32, total: u32) {
        let len = total.saturating_sub(offset).min(PART as u32).max(1);
        if let Some(h) = self.holders.get_mut(&holder) {
            let tries = h.in_flight.get(&(cid, offset)).map_or(0, |f| f.tries) + 1;
            h.in_flight
                .insert((cid, offset), InFlight { sent: now, tries });
        }
        let message = Message::Want { cid, offset, len }.encode();
        self.transmit.push_back((holder, message));
    }

    /// Hands queued blocks to holders with room.
    fn schedule(&mut self, now: Instant) {
        if self.outcome.is_some() {
            return;
        }
        let mut waiting = VecDeque::new();
        while let Some(cid) = self.queue.pop_front() {
            // The holder with the fewest blocks under way (the nearest among equals): a faster
            // holder finishes its blocks sooner and so is given more.
            let candidate = (self.holders.iter())
                .enumerate()
                .filter(|(_, (_, h))| !h.convicted && !h.lacks.contains(&cid))
                .map(|(position, (k, _))| {
                    let busy = self.assembling.values().filter(|a| a.holder == *k).count();
                    (busy, position, *k)
                })
                .filter(|(busy, _, _)| *busy < BLOCKS_PER_HOLDER)
                .min()
                .map(|(_, _, k)| k);
            let usable = self
                .holders
                .values()
                .any(|h| !h.convicted && !h.lacks.contains(&cid));
            match candidate {
                Some(holder) => {
                    self.assembling.insert(
                        cid,
                        Assembly {
                            holder,
                            bytes: None,
                            received: HashSet::new(),
                        },
                    );
                    if let Some(h) = self.holders.get_mut(&holder) {
                        h.to_ask.push_back((cid, 0, PART as u32));
                    }
                }
                None if !usable => {
                    self.outcome = Some(Outcome::Failed(cid));
                    return;
                }
                None => waiting.push_back(cid),
            }
        }
        self.queue = waiting;
        if self.queue.is_empty() && self.assembling.is_empty() {
            self.outcome = Some(Outcome::Complete);
            return;
        }
        self.pump(now);
    }

    /// Asks each holder for queued parts while its window has room.
    fn pump(&mut self, now: Instant) {
        let mut asks = Vec::new();
        for (key, h) in self.holders.iter_mut() {
            // Counted here: `ask` adds them to `in_flight` only after this loop.
            let room = (h.window as usize).saturating_sub(h.in_flight.len());
            for _ in 0..room {
                let Some(ask) = h.to_ask.pop_front() else {
                    break;
                };
                asks.push((*key, ask));
            }
        }
        for (holder, (cid, offset, total)) in asks {
            self.ask(now, holder, cid, offset, total);
        }
    }

    /// Asks again for overdue parts (shrinking the holder's window); gives a holder up for a block
    /// after [`TRIES`] unanswered asks.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut again = Vec::new();
        let mut given_up = Vec::new();
        for (key, holder) in self.holders.iter_mut() {
            let after = holder.retry_after();
            let mut late = false;
            for ((cid, offset), f) in &holder.in_flight {
                if now.saturating_since(f.sent) >= after {
                    late = true;
                    if f.tries >= TRIES {
                        given_up.push((*key, *cid));
                    } else {
                        again.push((*key, *cid, *offset));
                    }
                }
            }
            if late {
                holder.window = (holder.window / 2.0).max(WINDOW.0 as f64 / 4.0);
            }
        }
        for (holder, cid) in given_up {
            if let Some(h) = self.holders.get_mut(&holder) {
                h.lacks.insert(cid);
                h.in_flight.retain(|(c, _), _| *c != cid);
                h.to_ask.retain(|(c, _, _)| *c != cid);
            }
            if self
                .assembling
                .get(&cid)
                .is_some_and(|a| a.holder == holder)
            {
                self.assembling.remove(&cid);
                self.queue.push_front(cid);
            }
        }
        for (holder, cid, offset) in again {
            let total = (self.assembling.get(&cid))
                .and_then(|a| a.bytes.as_ref().map(|b| b.len() as u32))
                .unwrap_or(PART as u32);
            let still = (self.holders.get(&holder))
                .is_some_and(|h| h.in_flight.contains_key(&(cid, offset)));
            if still {
                self.stats.retries += 1;
                self.ask(now, holder, cid, offset, total);
            }
        }
        self.schedule(now);
    }

    /// When [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.holders.values())
            .flat_map(|h| h.in_flight.values().map(move |f| f.sent + h.retry_after()))
            .min()
    }

    /// The next message to send: (holder, payload on [`BLOB_PORT`]).
    pub fn poll_transmit(&mut self) -> Option<(PublicKey, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// The next block received and verified, for the store.
    pub fn poll_block(&mut self) -> Option<(Cid, Vec<u8>)> {
        self.done.pop_front()
    }
}

#[cfg(test)]
mod tests;
