//! End-to-end sessions: every IPv6 packet and service message between two nodes travels encrypted and
//! authenticated between their identity keys, whatever nodes relay it.
//!
//! A session is a [`Link`] in session mode: the same one-round-trip handshake (in its own signature
//! domain, with timestamps against replays), the same key sets (ChaCha20-Poly1305, or AES-256-GCM
//! between two CPUs with AES instructions) with a 4032-frame replay window, rekeying every 2 minutes
//! without losing frames, and keys refused after 3 minutes — carried in routed packets instead of UDP
//! datagrams, and without keepalives. The table bounds how many sessions exist, how fast unknown nodes
//! may make us verify handshakes, and how much waits for a handshake.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::core::admission::{HandshakeGate, Verdict};
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::link::handshake::{self, Psk};
use crate::core::link::{Frame, Link, LinkDrop, LinkParams};
use crate::core::password::PasswordKey;
use crate::core::rate::TokenBucket;
use crate::core::rng::Rng;
use crate::core::time::Instant;

use crate::core::wire::put_path;

/// Sessions kept at most; beyond this the least recently used one is dropped.
pub const MAX_SESSIONS: usize = 4096;
/// A session unused for this long is dropped (and made again on demand).
pub const SESSION_IDLE: Duration = Duration::from_secs(180);
/// Frames kept per session while its handshake runs.
const MAX_WAITING: usize = 16;
/// Bytes of frames kept for all sessions together while their handshakes run.
const MAX_WAITING_BYTES: usize = 1 << 20;
/// Handshakes from nodes without a session that we verify per second (each costs a signature check and
/// a Diffie-Hellman), with bursts of `NEW_SESSION_BURST`.
const NEW_SESSION_RATE: f64 = 200.0;
const NEW_SESSION_BURST: f64 = 100.0;
/// New-session handshakes verified per source per second (bursts of `PER_SOURCE_BURST`) under load,
/// among those that carried their cookie: a source is then a key at coordinates that proved it receives
/// there, so one flooding node cannot use up the cookie budget, and nobody can spend another's.
const PER_SOURCE_RATE: f64 = 2.0;
const PER_SOURCE_BURST: f64 = 4.0;
/// Sessions another node started (or that we restarted for a node that sent us a frame we could not
/// open) and that no authenticated frame confirmed yet, kept at most: they evict each other, oldest
/// first, never a confirmed session.
pub const MAX_UNCONFIRMED_SESSIONS: usize = 256;
/// At most one resynchronising initiation per peer per this interval.
const RESYNC_INTERVAL: Duration = Duration::from_secs(1);
/// A session another node started and never confirmed with a first frame is forgotten after this long
/// (a replayed or forged-but-signed initiation costs a table slot only this long).
const UNCONFIRMED_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame a session seals at once (sessions never fragment; links below them do).
const SESSION_MTU: usize = 1 << 20;

/// Why a session payload was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionDrop {
    /// The link-level state machine refused it.
    Link(LinkDrop),
    /// No session with the sender, and what it sent was not a handshake initiation.
    NoSession,
    /// Too many new handshakes at the moment.
    Busy,
}

/// What [`Sessions::receive`] made of a payload.
#[derive(Debug)]
pub struct Received<'b> {
    /// The plaintext of an authenticated frame (decrypted where the payload lay), nothing for a
    /// handshake message, or why it was dropped.
    pub plaintext: Result<Option<Frame<'b>>, SessionDrop>,
    /// Payloads to route back to the sender.
    pub replies: Vec<Vec<u8>>,
}

/// What [`Sessions::iter`] tells of one session.
#[derive(Debug, Clone, Copy)]
pub struct SessionInfo<'a> {
    /// The other end.
    pub peer: &'a PublicKey,
    /// Whether it can carry frames now.
    pub up: bool,
    /// Its counters.
    pub stats: crate::core::link::LinkStats,
    /// When it last carried a frame.
    pub last_used: Instant,
    /// The AEAD its current keys use, once the handshake chose one.
    pub cipher: Option<crate::core::link::cipher::Cipher>,
}

struct Entry {
    link: Link,
    last_used: Instant,
    waiting: VecDeque<Vec<u8>>,
    /// For a session the other node started: until when it may stay unconfirmed.
    confirm_by: Option<Instant>,
    /// When the last authenticated frame came, and the coordinates its sender claimed then: where to
    /// tell it that we moved ([`Sessions::heard_since`]).
    heard: Option<(Instant, Vec<u64>)>,
}

/// All of a node's sessions.
pub struct Sessions {
    table: HashMap<PublicKey, Entry>,
    /// Sessions we start because a frame came that no session of ours could open.
    resyncs: TokenBucket,
    password: Option<PasswordKey>,
    clock_base: u64,
    /// Offer AES-256-GCM (this CPU has AES instructions).
    aes_gcm: bool,
    last_resync: HashMap<PublicKey, Instant>,
    waiting_bytes: usize,
    per_source: HashMap<Vec<u8>, TokenBucket>,
    /// MAC, budgets and cookies before any signature is checked (as for links).
    gate: HandshakeGate,
    /// The session domain's key for handshake MACs (from the group password).
    psk: Psk,
    /// Handshake initiations from nodes without a session that were verified (each one signature check).
    pub new_handshakes_verified: u64,
}

fn params(
    initiate: bool,
    peer: PublicKey,
    password: &Option<PasswordKey>,
    aes_gcm: bool,
) -> LinkParams {
    LinkParams {
        initiate,
        password: password.clone(),
        allowed_keys: vec![peer],
        mtu: SESSION_MTU,
        priority: 0,
        session: true,
        aes_gcm,
    }
}

impl Sessions {
    /// An empty table. `password` is the overlay's group password, stretched (only nodes that know it
    /// can talk); `clock_base` stamps handshakes as for links; `aes_gcm` offers AES-256-GCM (set when
    /// this CPU has AES instructions; a session uses it only if the other end offers it too).
    pub fn new(
        password: Option<PasswordKey>,
        clock_base: u64,
        aes_gcm: bool,
        now: Instant,
    ) -> Self {
        let psk = Psk::for_domain(handshake::SESSION, password.as_ref());
        Self {
            table: HashMap::new(),
            resyncs: TokenBucket::new(NEW_SESSION_RATE, NEW_SESSION_BURST, now),
            password,
            clock_base,
            aes_gcm,
            last_resync: HashMap::new(),
            waiting_bytes: 0,
            per_source: HashMap::new(),
            gate: HandshakeGate::with_rates(
                now,
                NEW_SESSION_RATE,
                NEW_SESSION_BURST,
                NEW_SESSION_RATE,
            ),
            psk,

            new_handshakes_verified: 0,
        }
    }

    /// Returns how many sessions exist.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Returns true if there is none.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Decides whether a handshake from a node without a session may be verified now: the link
    /// gate's rules (MAC first, then a global budget, then under load only an initiation carrying the
    /// cookie of its source, here its key and claimed coordinates, from a budget of its own), plus a
    /// budget per cookie-proven source. Nothing about a source is consulted or stored before its
    /// initiation passed the MAC and, under load, the cookie: a forger cannot spend a newcomer's budget.
    fn admit(
        &mut self,
        now: Instant,
        src: PublicKey,
        src_path: &[u64],
        init: &[u8],
        rng: &mut Rng,
    ) -> Result<(), Vec<Vec<u8>>> {
        let mut source = src.as_bytes().to_vec();
        put_path(&mut source, src_path);
        match self.gate.admit(now, &source, init, &self.psk, false, rng) {
            Verdict::Verify { cookie: false } => Ok(()),
            Verdict::Verify { cookie: true } => {
                if self.per_source.len() >= MAX_SESSIONS && !self.per_source.contains_key(&source) {
                    self.per_source.clear();
                }
                let budget = self
                    .per_source
                    .entry(source)
                    .or_insert_with(|| TokenBucket::new(PER_SOURCE_RATE, PER_SOURCE_BURST, now));
                if budget.take(now) {
                    Ok(())
                } else {
                    Err(Vec::new())
                }
            }
            Verdict::Reply(reply) => Err(vec![reply]),
            Verdict::Drop(_) => Err(Vec::new()),
        }
    }

    /// Returns the counters of the session with `peer`.
    pub fn stats(&self, peer: &PublicKey) -> Option<crate::core::link::LinkStats> {
        self.table.get(peer).map(|e| e.link.stats())
    }

    /// Returns every session.
    pub fn iter(&self) -> impl Iterator<Item = SessionInfo<'_>> {
        self.table.iter().map(|(peer, e)| SessionInfo {
            peer,
            up: e.link.is_up(),
            stats: e.link.stats(),
            last_used: e.last_used,
            cipher: e.link.cipher(),
        })
    }

    /// Returns true if the session with `peer` can carry frames now.
    pub fn is_up(&self, peer: &PublicKey) -> bool {
        self.table.get(peer).is_some_and(|e| e.link.is_up())
    }

    fn make_room(&mut self) {
        while self.table.len() >= MAX_SESSIONS {
            let Some(oldest) = self
                .table
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k)
            else {
                return;
            };
            self.remove(&oldest);
        }
    }

    /// Makes room for a session nobody confirmed yet: within [`MAX_UNCONFIRMED_SESSIONS`] and the
    /// table's size, by evicting the oldest unconfirmed session. Only when the table is full of
    /// confirmed sessions is the least recently used of them evicted.
    fn make_room_unconfirmed(&mut self) {
        let unconfirmed = |e: &Entry| e.confirm_by.is_some() && !e.link.is_up();
        let count = self.table.values().filter(|e| unconfirmed(e)).count();
        if count >= MAX_UNCONFIRMED_SESSIONS || self.table.len() >= MAX_SESSIONS {
            let oldest = self
                .table
                .iter()
                .filter(|(_, e)| unconfirmed(e))
                .min_by_key(|(_, e)| e.confirm_by)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.remove(&oldest);
            }
        }
        self.make_room();
    }

    fn remove(&mut self, peer: &PublicKey) {
        if let Some(e) = self.table.remove(peer) {
            self.waiting_bytes -= e.waiting.iter().map(Vec::len).sum::<usize>();
        }
    }

    /// Starts a session with `src` after it sent us a frame for a session we do not have (we restarted,
    /// or evicted it): our initiation makes it replace its stale keys within one round trip. Limited to
    /// one per peer per second and by the new-session budget, since the frame that asked was not
    /// authenticated. Returns the payloads to route to `src`.
    pub fn resync(
        &mut self,
        now: Instant,
        src: PublicKey,
        node: &NodeKey,
        rng: &mut Rng,
    ) -> Vec<Vec<u8>> {
        if self.table.contains_key(&src) {
            return Vec::new();
        }
        if self
            .last_resync
            .get(&src)
            .is_some_and(|t| now.saturating_since(*t) < RESYNC_INTERVAL)
        {
            return Vec::new();
        }
        if !self.resyncs.take(now) {
            return Vec::new();
        }
        if self.last_resync.len() >= MAX_SESSIONS {
            self.last_resync.clear();
        }
        self.last_resync.insert(src, now);
        self.make_room_unconfirmed();
        let mut link = Link::new(
            params(true, src, &self.password, self.aes_gcm),
            now,
            self.clock_base,
        );
        link.handle_timeout(now, node, rng);
        // Asked for by a frame nobody authenticated: it stays only if the other end answers.
        let mut entry = Entry {
            link,
            last_used: now,
            waiting: VecDeque::new(),
            confirm_by: Some(now + UNCONFIRMED_TIMEOUT),
            heard: None,
        };
        let out = Self::drain(&mut entry);
        self.table.insert(src, entry);
        out
    }

    /// Seals `frame` (encoded messages, as consecutive parts) for `dest`, starting a session if there
    /// is none; returns the payloads to route to `dest`.
    pub fn send(
        &mut self,
        now: Instant,
        dest: PublicKey,
        frame: &[&[u8]],
        node: &NodeKey,
        rng: &mut Rng,
    ) -> Vec<Vec<u8>> {
        if !self.table.contains_key(&dest) {
            self.make_room();
            let link = Link::new(
                params(true, dest, &self.password, self.aes_gcm),
                now,
                self.clock_base,
            );
            self.table.insert(
                dest,
                Entry {
                    link,
                    last_used: now,
                    waiting: VecDeque::new(),
                    confirm_by: None,
                    heard: None,
                },
            );
        }
        let Some(entry) = self.table.get_mut(&dest) else {
            return Vec::new();
        };
        entry.last_used = now;
        if entry.link.is_up() {
            entry.link.send_parts(now, frame, true);
        } else {
            if entry.waiting.len() >= MAX_WAITING
                && let Some(old) = entry.waiting.pop_front()
            {
                self.waiting_bytes -= old.len();
            }
            let len: usize = frame.iter().map(|p| p.len()).sum();
            if self.waiting_bytes + len <= MAX_WAITING_BYTES {
                self.waiting_bytes += len;
                entry.waiting.push_back(frame.concat());
            }
            entry.link.handle_timeout(now, node, rng);
        }
        Self::drain(entry)
    }

    /// Processes a payload from `src` (which claims to be at `src_path`). Returns the plaintext of an authenticated frame, and the payloads
    /// to route back to `src` (handshake responses, frames that waited for the handshake).
    pub fn receive<'b>(
        &mut self,
        now: Instant,
        src: PublicKey,
        src_path: &[u64],
        payload: &'b mut [u8],
        node: &NodeKey,
        rng: &mut Rng,
    ) -> Received<'b> {
        if !self.table.contains_key(&src) {
            if !crate::core::admission::is_init(payload) {
                return Received {
                    plaintext: Err(SessionDrop::NoSession),
                    replies: Vec::new(),
                };
            }
            if let Err(replies) = self.admit(now, src, src_path, payload, rng) {
                return Received {
                    plaintext: Err(SessionDrop::Busy),
                    replies,
                };
            }
            self.new_handshakes_verified += 1;
            self.make_room_unconfirmed();
            let link = Link::new(
                params(false, src, &self.password, self.aes_gcm),
                now,
                self.clock_base,
            );
            let confirm_by = Some(now + UNCONFIRMED_TIMEOUT);
            self.table.insert(
                src,
                Entry {
                    link,
                    last_used: now,
                    waiting: VecDeque::new(),
                    confirm_by,
                    heard: None,
                },
            );
        }
        let Some(entry) = self.table.get_mut(&src) else {
            return Received {
                plaintext: Err(SessionDrop::NoSession),
                replies: Vec::new(),
            };
        };
        let result = entry
            .link
            .handle_datagram(now, payload, node, rng)
            .map_err(SessionDrop::Link);
        if result.as_ref().is_ok_and(Option::is_some) {
            entry.last_used = now;
            match &mut entry.heard {
                Some((at, path)) if path.as_slice() == src_path => *at = now,
                heard => *heard = Some((now, src_path.to_vec())),
            }
        }
        if entry.link.is_up() {
            while let Some(frame) = entry.waiting.pop_front() {
                self.waiting_bytes -= frame.len();
                entry.link.send(now, &frame, true);
            }
        }
        let out = Self::drain(entry);
        if result.is_err()
            && !entry.link.is_up()
            && entry.waiting.is_empty()
            && entry.link.peer().is_none()
        {
            // A failed first contact leaves nothing behind.
            self.remove(&src);
        }
        Received {
            plaintext: result,
            replies: out,
        }
    }

    /// The peers an authenticated frame came from at `since` or later, with the coordinates they
    /// claimed in the latest (at most `max` of them, the most recent first).
    pub fn heard_since(&self, since: Instant, max: usize) -> Vec<(PublicKey, Vec<u64>)> {
        let mut heard: Vec<(Instant, PublicKey, &Vec<u64>)> = self
            .table
            .iter()
            .filter_map(|(k, e)| e.heard.as_ref().map(|(at, path)| (*at, *k, path)))
            .filter(|(at, _, _)| *at >= since)
            .collect();
        heard.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        heard
            .into_iter()
            .take(max)
            .map(|(_, k, path)| (k, path.clone()))
            .collect()
    }

    /// Takes back a payload [`send`](Self::send) returned, once routed, to seal a later one into.
    pub fn recycle(&mut self, dest: &PublicKey, payload: Vec<u8>) {
        if let Some(entry) = self.table.get_mut(dest) {
            entry.link.recycle(payload);
        }
    }

    fn drain(entry: &mut Entry) -> Vec<Vec<u8>> {
        while entry.link.poll_event().is_some() {}
        std::iter::from_fn(|| entry.link.poll_datagram()).collect()
    }

    /// Runs session timers (handshake retries, rekeys, expiry) and drops idle sessions; returns payloads
    /// to route, with their destinations.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        node: &NodeKey,
        rng: &mut Rng,
    ) -> Vec<(PublicKey, Vec<u8>)> {
        let idle: Vec<PublicKey> = self
            .table
            .iter()
            .filter(|(_, e)| {
                let unconfirmed = e.confirm_by.is_some_and(|t| now >= t) && !e.link.is_up();
                unconfirmed || now.saturating_since(e.last_used) >= SESSION_IDLE
            })
            .map(|(k, _)| *k)
            .collect();
        for peer in idle {
            self.remove(&peer);
        }
        let mut out = Vec::new();
        for (peer, entry) in &mut self.table {
            if entry.link.poll_timeout(now).is_some_and(|t| t <= now) {
                entry.link.handle_timeout(now, node, rng);
                if entry.link.is_up() {
                    while let Some(frame) = entry.waiting.pop_front() {
                        self.waiting_bytes -= frame.len();
                        entry.link.send(now, &frame, true);
                    }
                }
                out.extend(Self::drain(entry).into_iter().map(|p| (*peer, p)));
            }
        }
        out
    }

    /// Returns when [`handle_timeout`](Self::handle_timeout) next has work.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.table
            .values()
            .flat_map(|e| {
                let unconfirmed = e.confirm_by.filter(|_| !e.link.is_up());
                [
                    e.link.poll_timeout(now),
                    Some(e.last_used + SESSION_IDLE),
                    unconfirmed,
                ]
            })
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests;
