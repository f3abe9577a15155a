//! Connection tracking: flows the firewall let through, so that the rest of a connection (and the
//! replies to this node's own connections) pass without a rule. Bounded: at most `max` flows; when
//! full, the oldest flow not yet *assured* goes first (a TCP connection whose handshake did not
//! complete, a UDP flow never answered: a SYN flood evicts its own entries, as Linux's early drop
//! does), then the least recently used. Timeouts follow Linux's defaults
//! (`nf_conntrack_*_timeout_*`).

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::Duration;

use super::packet::{Packet, Upper, proto, tcp_flags};
use super::rule::Direction;
use crate::core::identity::PublicKey;
use crate::core::time::Instant;

/// Flows tracked unless configured (`firewall.max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// A TCP flow not answered yet (Linux: `tcp_timeout_syn_sent`).
pub const TCP_UNANSWERED: Duration = Duration::from_secs(120);
/// A TCP flow answered but whose handshake did not complete (Linux: `tcp_timeout_syn_recv`).
pub const TCP_HANDSHAKE: Duration = Duration::from_secs(60);
/// An established TCP connection (Linux: `tcp_timeout_established`, 5 days).
pub const TCP_ESTABLISHED: Duration = Duration::from_secs(432_000);
/// A TCP connection closing after a FIN (Linux: `tcp_timeout_fin_wait`, `time_wait`).
pub const TCP_CLOSING: Duration = Duration::from_secs(120);
/// A TCP connection after a RST (Linux: `tcp_timeout_close`).
pub const TCP_CLOSED: Duration = Duration::from_secs(10);
/// A UDP flow seen one way (Linux: `udp_timeout`).
pub const UDP_UNANSWERED: Duration = Duration::from_secs(30);
/// A UDP flow seen both ways (Linux: `udp_timeout_stream`).
pub const UDP_STREAM: Duration = Duration::from_secs(180);
/// An ICMPv6 echo exchange (Linux: `icmpv6_timeout`).
pub const ICMP: Duration = Duration::from_secs(30);
/// Any other protocol (Linux: `generic_timeout`).
pub const OTHER: Duration = Duration::from_secs(600);

/// A flow, from this node's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    protocol: u8,
    local: Ipv6Addr,
    remote: Ipv6Addr,
    local_port: u16,
    remote_port: u16,
}

impl FlowKey {
    /// The flow of `packet` going `direction`; `None` for what is not tracked (ICMPv6 other than
    /// echo, fragments past the first).
    pub fn of(packet: &Packet, direction: Direction) -> Option<Self> {
        let (local, remote) = match direction {
            Direction::In => (packet.destination, packet.source),
            Direction::Out => (packet.source, packet.destination),
        };
        let (ours, theirs) = match packet.upper {
            Upper::Tcp {
                source,
                destination,
                ..
            }
            | Upper::Udp {
                source,
                destination,
            } => match direction {
                Direction::In => (destination, source),
                Direction::Out => (source, destination),
            },
            Upper::Icmp { id: Some(id), .. } => (id, 0),
            Upper::Icmp { id: None, .. } => return None,
            Upper::Other(p) if p == proto::TCP || p == proto::UDP => return None,
            Upper::Other(_) => (0, 0),
        };
        Some(Self {
            protocol: packet.upper.protocol(),
            local,
            remote,
            local_port: ours,
            remote_port: theirs,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpState {
    Open,
    Closing,
    Closed,
}

/// A tracked flow.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Who opened it.
    pub origin: Direction,
    /// The other side's key, if known (inbound flows: the sender).
    pub key: Option<PublicKey>,
    /// The packet that opened it: what a rule judged, judged again when rules or roles change.
    pub first: Packet,
    answered: bool,
    /// Seen both ways as a working flow: a TCP handshake completed (or a connection picked up in
    /// its middle and answered), any other flow answered.
    assured: bool,
    tcp: TcpState,
    expires: Instant,
    last_seen: Instant,
    /// Its place in the queue of unanswered flows.
    serial: u64,
}

impl Entry {
    fn timeout(&self) -> Duration {
        match self.first.upper.protocol() {
            proto::TCP => match (self.tcp, self.assured, self.answered) {
                (TcpState::Closed, _, _) => TCP_CLOSED,
                (TcpState::Closing, _, _) => TCP_CLOSING,
                (TcpState::Open, true, _) => TCP_ESTABLISHED,
                (TcpState::Open, false, true) => TCP_HANDSHAKE,
                (TcpState::Open, false, false) => TCP_UNANSWERED,
            },
            proto::UDP if self.assured => UDP_STREAM,
            proto::UDP => UDP_UNANSWERED,
            proto::ICMPV6 => ICMP,
            _ => OTHER,
        }
    }

    fn observe(&mut self, now: Instant, direction: Direction, upper: &Upper) {
        self.answered |= direction != self.origin;
        match upper {
            Upper::Tcp { flags, .. } => {
                if flags & tcp_flags::RST != 0 {
                    self.tcp = TcpState::Closed;
                } else if flags & tcp_flags::FIN != 0 && self.tcp == TcpState::Open {
                    self.tcp = TcpState::Closing;
                }
                // The opener's ACK after an answer completes the handshake; a connection picked
                // up in its middle (its first packet no SYN) is assured once answered.
                let opened_with_syn = matches!(self.first.upper,
                    Upper::Tcp { flags, .. } if flags & tcp_flags::SYN != 0);
                self.assured |= self.answered
                    && (!opened_with_syn
                        || (direction == self.origin
                            && flags & tcp_flags::ACK != 0
                            && flags & tcp_flags::SYN == 0));
            }
            _ => self.assured = self.answered,
        }
        self.last_seen = now;
        self.expires = now + self.timeout();
    }
}

/// What the table counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableCounters {
    /// Flows evicted to make room.
    pub evicted: u64,
    /// Flows that timed out.
    pub expired: u64,
}

/// The tracked flows.
#[derive(Debug)]
pub struct Conntrack {
    flows: foldhash::HashMap<FlowKey, Entry>,
    /// Flows not assured yet, oldest first (stale items are skipped: a flow assured, gone, or
    /// replaced since).
    unassured: VecDeque<(FlowKey, u64)>,
    next_serial: u64,
    max: usize,
    counters: TableCounters,
}

impl Conntrack {
    /// An empty table for at most `max` flows (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            flows: foldhash::HashMap::default(),
            unassured: VecDeque::new(),
            next_serial: 0,
            max: max.max(1),
            counters: TableCounters::default(),
        }
    }

    /// Flows tracked now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// At most this many flows.
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// What the table counted.
    pub fn counters(&self) -> TableCounters {
        self.counters
    }

    /// Whether `key`'s flow is tracked (timed out or not: the sweep decides).
    pub fn contains(&self, key: &FlowKey) -> bool {
        self.flows.contains_key(key)
    }

    /// Whether `key`'s flow is tracked (and not timed out); if so, notes `packet` going
    /// `direction`.
    pub fn touch(
        &mut self,
        now: Instant,
        key: &FlowKey,
        direction: Direction,
        upper: &Upper,
    ) -> bool {
        let Some(entry) = self.flows.get_mut(key) else {
            return false;
        };
        if entry.expires <= now {
            self.flows.remove(key);
            self.counters.expired += 1;
            return false;
        }
        entry.observe(now, direction, upper);
        true
    }

    /// Tracks a new flow opened by `first` going `origin`, making room if the table is full.
    pub fn insert(
        &mut self,
        now: Instant,
        key: FlowKey,
        origin: Direction,
        peer: Option<PublicKey>,
        first: Packet,
    ) {
        if !self.flows.contains_key(&key) && self.flows.len() >= self.max {
            self.evict_one(now);
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut entry = Entry {
            origin,
            key: peer,
            first,
            answered: false,
            assured: false,
            tcp: TcpState::Open,
            expires: now,
            last_seen: now,
            serial,
        };
        entry.observe(now, origin, &first.upper);
        self.flows.insert(key, entry);
        self.unassured.push_back((key, serial));
        // Stale queue items are dropped as they reach the front; keep the queue from growing
        // past a few times the table when flows are assured out of order.
        if self.unassured.len() > self.max.saturating_mul(4) {
            let flows = &self.flows;
            self.unassured
                .retain(|(k, s)| flows.get(k).is_some_and(|e| e.serial == *s && !e.assured));
        }
    }

    fn evict_one(&mut self, now: Instant) {
        while let Some((key, serial)) = self.unassured.pop_front() {
            if self
                .flows
                .get(&key)
                .is_some_and(|e| e.serial == serial && !e.assured)
            {
                self.flows.remove(&key);
                self.counters.evicted += 1;
                return;
            }
        }
        // Every flow is assured: the one idle longest (expired ones first).
        let victim = (self.flows.iter())
            .min_by_key(|(k, e)| (e.expires > now, e.last_seen, **k))
            .map(|(k, _)| *k);
        if let Some(key) = victim {
            self.flows.remove(&key);
            self.counters.evicted += 1;
        }
    }

    /// Drops the flows that timed out.
    pub fn sweep(&mut self, now: Instant) {
        let before = self.flows.len();
        self.flows.retain(|_, e| e.expires > now);
        self.counters.expired += (before - self.flows.len()) as u64;
        let flows = &self.flows;
        self.unassured
            .retain(|(k, s)| flows.get(k).is_some_and(|e| e.serial == *s && !e.assured));
    }

    /// Keeps the flows `keep` says to keep (after the rules or the roles changed).
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.flows.retain(|_, e| keep(e));
    }
}
