//! Links: authenticated, encrypted datagram associations with one neighbour.
//!
//! A [`Link`] turns datagrams from a UDP socket or an Ethernet interface into authenticated plaintext
//! frames and back. It runs the handshake (`handshake`), holds up to three key sets (`keys`: the current
//! one, the previous one while a rekey settles, and a responder's key set awaiting confirmation), and
//! tracks liveness and RTT (`liveness`). It knows nothing about trees or routing: the node feeds it
//! datagrams and plaintext and reads back datagrams, plaintext and events.

pub mod cipher;
mod fragments;
pub mod handshake;
mod handshaking;
pub mod keys;
pub mod liveness;
pub mod loss;
pub mod replay;

use std::collections::VecDeque;
use std::time::Duration;

use self::handshake::{Ephemeral, HandshakeError, Psk};
use self::keys::KeySet;
use self::liveness::{Liveness, LivenessAction};
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::password::PasswordKey;
use crate::core::rng::Rng;
use crate::core::time::{Instant, earliest};
use crate::core::wire::WireError;
use crate::core::wire::datagram::{DATA_HEADER_LEN, TAG_LEN};
use crate::core::wire::datagram::{Datagram, HandshakeInit};
use crate::core::wire::inner::{Message, kind};
use crate::core::wire::keepalive::Keepalive;

/// The initiator starts a new handshake when its keys are this old (WireGuard's REKEY_AFTER_TIME).
pub const REKEY_AFTER: Duration = Duration::from_secs(120);
/// The responder starts one itself if the initiator has not by then.
const RESPONDER_REKEY_AFTER: Duration = Duration::from_secs(135);
/// Keys older than this are refused and wiped (WireGuard's REJECT_AFTER_TIME).
pub const REJECT_AFTER: Duration = Duration::from_secs(180);
/// First handshake retry interval; doubles up to [`MAX_RETRY`] while the peer does not answer.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest interval between handshake attempts on an unanswered link: short, because a mesh link that
/// comes back (a radio in range again, a cable replugged) should carry traffic within seconds, and an
/// initiation every 4 s costs under 40 B/s, and only while the link is down.
const MAX_RETRY: Duration = Duration::from_secs(4);
/// A responder's key set not confirmed by a first frame within this time is dropped.
const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// Spare datagram buffers a link keeps at most (see [`Link::recycle`]): a GSO train's worth.
const SPARE_BUFFERS: usize = 64;
/// ... and at most this many bytes of them (a session's datagrams are up to 64 KiB each).
const SPARE_BYTES: usize = 128 * 1024;
/// At most one new initiation is verified per link in this interval (each costs a signature check).
const INIT_MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How a link is set up.
#[derive(Clone)]
pub struct LinkParams {
    /// Whether we send handshake initiations (a configured peer, a discovered one) or only answer them.
    pub initiate: bool,
    /// Shared link password, stretched (`core::password`): only holders can complete a handshake.
    pub password: Option<PasswordKey>,
    /// If non-empty, only these peer keys are accepted (pinning for outbound links, an allowlist for
    /// inbound ones).
    pub allowed_keys: Vec<PublicKey>,
    /// Largest datagram the link carries, in bytes.
    pub mtu: usize,
    /// Lower is preferred among parallel links to the same peer.
    pub priority: u8,
    /// This is an end-to-end session, not a link: handshakes use the session domain, and there are no
    /// keepalives or dead-peer detection (a session lives as long as it is used).
    pub session: bool,
    /// Offer AES-256-GCM for data frames (see `cipher`): set it only where the CPU has AES
    /// instructions. Sessions leave it off and always use ChaCha20-Poly1305.
    pub aes_gcm: bool,
}

impl Default for LinkParams {
    fn default() -> Self {
        Self {
            initiate: true,
            password: None,
            allowed_keys: Vec::new(),
            mtu: 1280,
            priority: 0,
            session: false,
            aes_gcm: false,
        }
    }
}

/// The plaintext of an authenticated data frame, mutable so that what it carries can be decrypted
/// in turn where it lies (an end-to-end session's frame inside a routed packet).
#[derive(Debug)]
pub enum Frame<'b> {
    /// Decrypted in the datagram's own buffer.
    InPlace(&'b mut [u8]),
    /// Joined from fragments.
    Joined(Vec<u8>),
}

impl std::ops::Deref for Frame<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::InPlace(bytes) => bytes,
            Self::Joined(bytes) => bytes,
        }
    }
}

impl std::ops::DerefMut for Frame<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Self::InPlace(bytes) => bytes,
            Self::Joined(bytes) => bytes,
        }
    }
}

/// Something that happened on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The link is authenticated and usable.
    Up(PublicKey),
    /// The link stopped working (dead or keys expired); it retries if it initiates.
    Down(PublicKey),
}

/// Why an incoming datagram was dropped. Counted, never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkDrop {
    /// Not a well-formed datagram.
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    /// The handshake failed a check.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer key is not allowed on this link, or is our own.
    #[error("peer key not allowed")]
    KeyNotAllowed,
    /// Too many initiations on this link.
    #[error("rate limited")]
    RateLimited,
    /// An initiation no newer than one already accepted from the same peer.
    #[error("replayed initiation")]
    ReplayedInit,
    /// A response or data frame for keys we do not hold.
    #[error("unknown key index")]
    UnknownIndex,
    /// Authentication failed or the frame was a replay.
    #[error("failed authentication or replayed")]
    Unauthentic,
}

/// Counters of one link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams sent.
    pub tx_datagrams: u64,
    /// Bytes sent (datagram payloads).
    pub tx_bytes: u64,
    /// Authenticated datagrams received.
    pub rx_datagrams: u64,
    /// Bytes of authenticated datagrams received.
    pub rx_bytes: u64,
    /// Datagrams dropped.
    pub dropped: u64,
    /// Key sets installed (the first handshake and every rekey).
    pub key_sets: u64,
}

/// Where a key set is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Current,
    Previous(usize),
    Pending,
}

/// A responder's cookie is used for this long (responders rotate their cookie secret every 2 minutes).
const COOKIE_LIFETIME: Duration = Duration::from_secs(120);

/// Spreads rekeys over this window (before the due time) so that links which came up together do not
/// all rekey at once.
const REKEY_JITTER: Duration = Duration::from_secs(10);

struct Outstanding {
    init: HandshakeInit,
    ephemeral: Ephemeral,
}

/// One link's state machine.
pub struct Link {
    params: LinkParams,
    psk: Psk,
    peer: Option<PublicKey>,
    up: bool,
    outstanding: Option<Outstanding>,
    next_attempt: Option<Instant>,
    retry_interval: Duration,
    cached_response: Option<([u8; 32], Vec<u8>)>,
    last_init_verified: Option<Instant>,
    current: Option<KeySet>,
    /// Older key sets, newest first, kept until they expire for frames still in flight: two, because
    /// when both ends rekey at once each may be sending under a key set the other just superseded.
    previous: VecDeque<KeySet>,
    pending: Option<KeySet>,
    /// Who made `pending`: becomes `peer` only when a first frame under those keys confirms it, so an
    /// initiation that is signed but never completed (a replay, or sent from a spoofed address)
    /// cannot decide who this link accepts.
    pending_peer: Option<PublicKey>,
    liveness: Liveness,
    outbox: VecDeque<Vec<u8>>,
    /// Buffers of sent datagrams, to seal into (see [`Link::recycle`]).
    spare: Vec<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    stats: LinkStats,
    /// The last datagram dropped and why, so that the operator can be told why a link stays down.
    last_drop: Option<(Instant, LinkDrop)>,
    reassembly: fragments::Reassembly,
    next_fragment_id: u32,
    /// Added to `now` to stamp our initiations: wall-clock microseconds at the node's start, so stamps
    /// keep growing across restarts.
    clock_base: u64,
    /// The newest initiation accepted, and from whom: older or equal ones are replays.
    last_init: Option<(PublicKey, u64)>,
    /// The latest cookie a busy responder sent, and when.
    cookie: Option<([u8; 16], Instant)>,
}

impl Link {
    /// Creates a link; an initiating link sends its first initiation at the first timeout. `clock_base`
    /// plus `now` stamps initiations and must grow across restarts (the node passes wall-clock
    /// microseconds at its start).
    pub fn new(params: LinkParams, now: Instant, clock_base: u64) -> Self {
        let domain = if params.session {
            handshake::SESSION
        } else {
            handshake::LINK
        };
        let psk = Psk::for_domain(domain, params.password.as_ref());
        let next_attempt = params.initiate.then_some(now);
        Self {
            params,
            psk,
            peer: None,
            up: false,
            outstanding: None,
            next_attempt,
            retry_interval: FIRST_RETRY,
            cached_response: None,
            last_init_verified: None,
            current: None,
            previous: VecDeque::new(),
            pending: None,
            pending_peer: None,
            liveness: Liveness::new(now),
            outbox: VecDeque::new(),
            spare: Vec::new(),
            events: VecDeque::new(),
            stats: LinkStats::default(),
            last_drop: None,
            reassembly: fragments::Reassembly::default(),
            next_fragment_id: 0,
            clock_base,
            last_init: None,
            cookie: None,
        }
    }

    /// Returns the authenticated peer, once known.
    pub fn peer(&self) -> Option<PublicKey> {
        self.peer
    }

    /// Returns true while the link can carry frames.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Returns the link's parameters.
    pub fn params(&self) -> &LinkParams {
        &self.params
    }

    /// Returns the smoothed round-trip time.
    pub fn srtt(&self) -> Option<Duration> {
        self.liveness.srtt()
    }

    /// Makes every echo delay this link reports `extra_ms` longer than it was: the simulator's
    /// adversary lies so to look closer than it is.
    pub fn overstate_echo_delay(&mut self, extra_ms: u16) {
        self.liveness.overstate_echo_delay(extra_ms);
    }

    /// Returns the retransmission timeout for reliable control messages.
    pub fn rto(&self) -> Duration {
        self.liveness.rto()
    }

    /// Returns the counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// When the last datagram was dropped, and why (a wrong key or password shows here).
    pub fn last_drop(&self) -> Option<(Instant, LinkDrop)> {
        self.last_drop
    }

    /// The data-frame cipher of the current keys, once up.
    pub fn cipher(&self) -> Option<cipher::Cipher> {
        self.current.as_ref().map(|k| k.cipher)
    }

    /// Describes the key sets held (indices, ages, roles), for diagnostics.
    pub fn describe_keys(&self, now: Instant) -> String {
        let one = |name: &str, k: &KeySet| {
            format!(
                "{name}={:08x}->{:08x} age {:.1}s{}{} ",
                k.local_index,
                k.remote_index,
                now.saturating_since(k.created).as_secs_f64(),
                if k.we_initiated { " init" } else { " resp" },
                if k.confirmed { "" } else { " unconfirmed" }
            )
        };
        let mut out = String::new();
        out.extend(self.current.iter().map(|k| one("cur", k)));
        out.extend(self.previous.iter().map(|k| one("prev", k)));
        out.extend(self.pending.iter().map(|k| one("pend", k)));
        out + &format!("up={}", self.up)
    }

    /// Returns the next datagram to send.
    pub fn poll_datagram(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// Takes back the buffer of a datagram that was sent, to seal a later one into: a datagram of a
    /// link MTU is too large for the allocator's fast per-thread caches, and a busy link seals tens of
    /// thousands a second.
    pub fn recycle(&mut self, mut datagram: Vec<u8>) {
        let keep = (SPARE_BYTES / self.params.mtu.max(1)).clamp(1, SPARE_BUFFERS);
        if self.spare.len() < keep && datagram.capacity() <= 2 * self.params.mtu + 64 {
            datagram.clear();
            self.spare.push(datagram);
        }
    }

    /// Returns the next event.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    fn queue(&mut self, datagram: Vec<u8>) {
        self.stats.tx_datagrams += 1;
        self.stats.tx_bytes += datagram.len() as u64;
        self.outbox.push_back(datagram);
    }

    /// Queues a datagram made elsewhere (a cookie reply the node's gate made for this link's peer).
    pub(crate) fn queue_raw(&mut self, datagram: Vec<u8>) {
        self.queue(datagram);
    }

    /// The key this link's handshake MACs are made with.
    pub(crate) fn psk(&self) -> &Psk {
        &self.psk
    }

    /// Returns true if `bytes` is an initiation this link already answered (a retransmission, which
    /// it answers again from its cache at no cost).
    pub(crate) fn is_retransmit(&self, bytes: &[u8]) -> bool {
        let Some((ephemeral, _)) = &self.cached_response else {
            return false;
        };
        matches!(Datagram::parse(bytes), Ok(Datagram::Init(init)) if init.ephemeral == *ephemeral)
    }

    /// Whether `key` may be this link's peer: not ourselves, allowed by the pinning or allowlist, and
    /// the peer already confirmed if there is one. An unconfirmed initiation's key counts for nothing.
    fn key_allowed(&self, key: &PublicKey, node: &NodeKey) -> bool {
        *key != node.public_key()
            && (self.params.allowed_keys.is_empty() || self.params.allowed_keys.contains(key))
            && self.peer.is_none_or(|p| p == *key)
    }

    /// Processes one received datagram. Returns the plaintext of an authenticated data frame: in
    /// `bytes` itself, where it was decrypted, or (for the last piece of a fragmented frame) the
    /// joined frame.
    pub fn handle_datagram<'b>(
        &mut self,
        now: Instant,
        bytes: &'b mut [u8],
        node: &NodeKey,
        rng: &mut Rng,
    ) -> Result<Option<Frame<'b>>, LinkDrop> {
        let len = bytes.len();
        let result = match Datagram::parse(bytes) {
            Ok(Datagram::Init(init)) => self.handle_init(now, init, node, rng).map(|()| None),
            Ok(Datagram::Cookie {
                receiver_index,
                cookie,
            }) => self
                .handle_cookie(now, receiver_index, cookie)
                .map(|()| None),
            Ok(Datagram::Response(response)) => self
                .handle_response(now, response, node, rng)
                .map(|()| None),
            Ok(Datagram::Data {
                receiver_index,
                counter,
                ..
            }) => {
                let (header, sealed) = bytes.split_at_mut(DATA_HEADER_LEN);
                self.handle_data(now, receiver_index, counter, header, sealed)
            }
            Err(e) => Err(LinkDrop::Malformed(e)),
        };
        match &result {
            Ok(_) => {
                self.stats.rx_datagrams += 1;
                self.stats.rx_bytes += len as u64;
            }
            Err(e) => {
                self.stats.dropped += 1;
                self.last_drop = Some((now, *e));
            }
        }
        result
    }

    fn handle_data<'b>(
        &mut self,
        now: Instant,
        index: u32,
        counter: u64,
        header: &[u8],
        sealed: &'b mut [u8],
    ) -> Result<Option<Frame<'b>>, LinkDrop> {
        let expired = |k: &KeySet| now.saturating_since(k.created) >= REJECT_AFTER;
        let matches = |k: &KeySet| k.local_index == index && !expired(k);
        let slot = if self.current.as_ref().is_some_and(matches) {
            Slot::Current
        } else if let Some(i) = self.previous.iter().position(matches) {
            Slot::Previous(i)
        } else if self.pending.as_ref().is_some_and(matches) {
            Slot::Pending
        } else {
            return Err(LinkDrop::UnknownIndex);
        };
        let keyset = match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Previous(i) => self.previous.get_mut(i),
            Slot::Pending => self.pending.as_mut(),
        }
        .ok_or(LinkDrop::UnknownIndex)?;
        let plaintext: &'b mut [u8] = keyset
            .open_in_place(counter, header, sealed)
            .ok_or(LinkDrop::Unauthentic)?;
        if slot == Slot::Pending
            && let Some(confirmed) = self.pending.take()
        {
            if let Some(peer) = self.pending_peer.take() {
                self.peer = Some(peer);
            }
            self.install(now, confirmed);
        }
        if matches!(slot, Slot::Current | Slot::Pending) {
            self.liveness.on_counter(counter);
        }
        // Sessions never fragment (links below them do): a piece inside one is not joined.
        if plaintext.first() == Some(&kind::FRAGMENT) && !self.params.session {
            self.liveness.on_receive(now, true);
            let Some(whole) = self.reassembly.add(now, plaintext) else {
                return Ok(Some(Frame::InPlace(&mut [])));
            };
            let traffic = whole.first() == Some(&kind::TRAFFIC);
            self.liveness.on_receive(now, traffic);
            return Ok(Some(Frame::Joined(whole)));
        }
        let traffic = plaintext.first() == Some(&kind::TRAFFIC);
        self.liveness.on_receive(now, traffic);
        Ok(Some(Frame::InPlace(plaintext)))
    }

    /// Makes `keyset` the one we send with, keeping the old one for frames still in flight.
    fn install(&mut self, now: Instant, keyset: KeySet) {
        self.stats.key_sets += 1;
        if let Some(old) = self.current.replace(keyset) {
            self.previous.push_front(old);
            self.previous.truncate(2);
        }
        if !self.up {
            self.up = true;
            self.liveness = Liveness::new(now);
            if let Some(peer) = self.peer {
                self.events.push_back(LinkEvent::Up(peer));
            }
        }
        self.liveness.on_new_keys();
    }

    /// Passes a received keepalive to liveness tracking.
    pub fn handle_keepalive(&mut self, now: Instant, keepalive: &Keepalive) {
        self.liveness.on_keepalive(now, keepalive);
    }

    /// Encrypts and queues a frame of messages, split into fragments if it exceeds the link MTU.
    /// Returns false if the link is not up or the frame is too large even for fragments.
    pub fn send(&mut self, now: Instant, plaintext: &[u8], traffic: bool) -> bool {
        self.send_parts(now, &[plaintext], traffic)
    }

    /// [`send`](Self::send) for a frame given as consecutive parts (a routing header and the payload
    /// it carries): each byte is copied once, into the datagram that carries it.
    pub fn send_parts(&mut self, now: Instant, parts: &[&[u8]], traffic: bool) -> bool {
        let budget = self.params.mtu.saturating_sub(DATA_HEADER_LEN + TAG_LEN);
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len <= budget {
            return self.send_one(now, parts, traffic);
        }
        let Some((count, chunk)) = fragments::plan(len, budget) else {
            return false;
        };
        self.next_fragment_id = self.next_fragment_id.wrapping_add(1);
        let id = self.next_fragment_id;
        let range = |index: u8| {
            let start = usize::from(index) * chunk;
            start..(start + chunk).min(len)
        };
        let headers: Vec<fragments::PieceHeader> = (0..count)
            .map(|index| fragments::PieceHeader::new(id, index, count, range(index).len()))
            .collect();
        let mut slices = Vec::with_capacity(parts.len() + 1);
        (0..count).zip(&headers).all(|(index, header)| {
            slices.clear();
            slices.push(header.as_slice());
            fragments::slices_of(parts, range(index), &mut slices);
            self.send_one(now, &slices, traffic)
        })
    }

    fn send_one(&mut self, now: Instant, parts: &[&[u8]], traffic: bool) -> bool {
        let Some(keys) = self.current.as_mut().filter(|_| self.up) else {
            return false;
        };
        let Some(datagram) = keys.seal_parts_into(self.spare.pop().unwrap_or_default(), parts)
        else {
            return false;
        };
        self.queue(datagram);
        self.liveness.on_send(now, traffic);
        true
    }

    fn send_keepalive_now(&mut self, now: Instant) {
        // Asks for an immediate answer: the link's first RTT measurement (see `liveness`).
        let keepalive = self
            .liveness
            .keepalive(now, crate::core::wire::keepalive::REPLY_WANTED);
        self.send_keepalive(now, keepalive);
    }

    /// Sends a keepalive; returns false if the link could not send it.
    fn send_keepalive(&mut self, now: Instant, keepalive: Keepalive) -> bool {
        let mut plaintext = Vec::with_capacity(16);
        Message::Keepalive(keepalive).encode(&mut plaintext);
        self.send(now, &plaintext, false)
    }

    fn go_down(&mut self, now: Instant) {
        if let Some(peer) = self.peer.filter(|_| self.up) {
            self.events.push_back(LinkEvent::Down(peer));
        }
        self.up = false;
        self.current = None;
        self.previous.clear();
        self.pending = None;
        self.pending_peer = None;
        self.outstanding = None;
        self.cached_response = None;
        if self.params.allowed_keys.len() != 1 {
            self.peer = None;
        }
        self.retry_interval = FIRST_RETRY;
        self.next_attempt = self.params.initiate.then_some(now);
    }

    /// Runs timers: handshake (re)tries, rekeying, key expiry, keepalives and dead-link detection.
    pub fn handle_timeout(&mut self, now: Instant, node: &NodeKey, rng: &mut Rng) {
        let expired = |k: &Option<KeySet>| {
            k.as_ref()
                .is_some_and(|k| now.saturating_since(k.created) >= REJECT_AFTER)
        };
        self.previous
            .retain(|k| now.saturating_since(k.created) < REJECT_AFTER);
        self.reassembly.expire(now);
        if self
            .pending
            .as_ref()
            .is_some_and(|k| now.saturating_since(k.created) >= PENDING_TIMEOUT)
        {
            self.pending = None;
            self.pending_peer = None;
        }
        if self.up
            && (expired(&self.current) || self.current.as_ref().is_some_and(KeySet::exhausted))
        {
            self.go_down(now);
        }
        if self.up {
            if let Some(keys) = &self.current
                && now >= keys.rekey_at
                && self.next_attempt.is_none()
            {
                self.next_attempt = Some(now);
            }
            let action = if self.params.session {
                LivenessAction::None
            } else {
                self.liveness.poll(now)
            };
            match action {
                LivenessAction::Dead => self.go_down(now),
                LivenessAction::Send(k) => {
                    if !self.send_keepalive(now, k) {
                        self.go_down(now);
                    }
                }
                LivenessAction::None => {}
            }
        }
        if self.next_attempt.is_some_and(|t| t <= now) {
            self.start_handshake(now, node, rng);
        }
    }

    /// Returns when [`handle_timeout`](Self::handle_timeout) next has work.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let key_deadline =
            |k: &Option<KeySet>, after: Duration| k.as_ref().map(|k| k.created + after);
        let mut next = self.next_attempt;
        next = earliest(
            next,
            self.previous.iter().map(|k| k.created + REJECT_AFTER).min(),
        );
        next = earliest(next, key_deadline(&self.pending, PENDING_TIMEOUT));
        next = earliest(next, self.reassembly.next_expiry());
        if self.up && !self.params.session {
            next = earliest(next, Some(self.liveness.next_deadline(now)));
        }
        if self.up {
            next = earliest(next, key_deadline(&self.current, REJECT_AFTER));
            if self.next_attempt.is_none() {
                next = earliest(next, self.current.as_ref().map(|k| k.rekey_at));
            }
        }
        next
    }
}

#[cfg(test)]
mod tests;
