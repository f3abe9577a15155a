//! The overlay firewall: a stateful filter for traffic that arrives over the overlay for this node
//! (its address and its /64: hosts behind it) and, optionally, for what leaves this node into the
//! overlay. It filters by who the sender is: an inbound packet's source address was checked against
//! the key of the session it came in (the core refuses a mismatch), so rules can name keys,
//! `did:key`s and registry roles as well as addresses, protocols and ports.
//!
//! Relayed traffic is never filtered: it is end-to-end encrypted between other nodes and never
//! reaches this module. Sans-IO like the rest of the core: the daemon calls [`Firewall::inbound`]
//! for each packet the node delivers and [`Firewall::outbound`] for each packet its TUN device
//! sends, and carries out the [`Verdict`].

pub mod conntrack;
pub mod packet;
pub mod reject;
pub mod rule;

#[cfg(test)]
mod tests;

use std::time::Duration;

use conntrack::{Conntrack, FlowKey, TableCounters};
use packet::{Packet, Upper};
use rule::{Action, Direction, Roles, Rule};

use crate::core::identity::PublicKey;
use crate::core::rate::TokenBucket;
use crate::core::time::Instant;

/// How often timed-out flows are swept out.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// Rejections answered a second, at most (bursts of [`REJECT_BURST`]); past that a rejected
/// packet is dropped silently, so that the firewall cannot be used to amplify a flood.
pub const REJECTS_PER_SECOND: f64 = 50.0;
/// See [`REJECTS_PER_SECOND`].
pub const REJECT_BURST: f64 = 50.0;

/// The firewall's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// What happens to inbound packets no rule matches.
    pub inbound: Action,
    /// What happens to outbound packets no rule matches.
    pub outbound: Action,
    /// Count and report what would be dropped, and drop nothing.
    pub log_only: bool,
    /// Flows tracked at most.
    pub max_connections: usize,
    /// The rules, tried in order.
    pub rules: Vec<Rule>,
}

impl Default for Settings {
    /// Everything allowed, nothing tracked: a node without a firewall.
    fn default() -> Self {
        Self {
            inbound: Action::Allow,
            outbound: Action::Allow,
            log_only: false,
            max_connections: conntrack::DEFAULT_MAX_CONNECTIONS,
            rules: Vec::new(),
        }
    }
}

impl Settings {
    /// Whether this filters anything (else every packet passes untouched and untracked).
    pub fn active(&self) -> bool {
        self.inbound != Action::Allow || self.outbound != Action::Allow || !self.rules.is_empty()
    }
}

/// What to do with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Pass,
    /// Drop it.
    Drop,
    /// Drop it and send this ICMPv6 error back (to its sender: into the overlay for an inbound
    /// packet, to the local host for an outbound one).
    Reject(Vec<u8>),
}

/// Packets and bytes a rule (or a default policy) decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Hits {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Hits {
    fn add(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }
}

/// What the firewall counted, by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Passed as part of a tracked flow (or an ICMPv6 error about one).
    pub established: u64,
    /// Passed by a rule or a default policy.
    pub allowed: u64,
    /// Dropped by a rule or a default policy.
    pub denied: u64,
    /// Dropped with an ICMPv6 answer.
    pub rejected: u64,
    /// Rejected past the answer budget: dropped silently.
    pub rejects_unanswered: u64,
    /// Would have been dropped or rejected, passed because the firewall only logs.
    pub would_drop: u64,
    /// Not a readable IPv6 packet: dropped.
    pub malformed: u64,
    /// Tracked flows dropped because a rule or a role that let them in is gone.
    pub revoked: u64,
}

/// Would-drop reports kept for the caller to log (log-only mode), at most.
pub const MAX_WOULD_DROP_REPORTS: usize = 64;

/// A packet a log-only firewall passed but would have dropped or rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WouldDrop {
    /// Which way it went.
    pub direction: Direction,
    /// Its headers.
    pub packet: Packet,
    /// The sender's key (inbound).
    pub key: Option<PublicKey>,
    /// The rule that would have dropped it (its index), or `None` for the default policy.
    pub rule: Option<usize>,
    /// What would have happened.
    pub action: Action,
}

/// The firewall.
#[derive(Debug)]
pub struct Firewall {
    settings: Settings,
    table: Conntrack,
    rule_hits: Vec<Hits>,
    default_hits: [Hits; 2],
    counters: Counters,
    rejects: TokenBucket,
    next_sweep: Instant,
    would_drop: std::collections::VecDeque<WouldDrop>,
}

impl Firewall {
    /// A firewall with `settings`.
    pub fn new(settings: Settings, now: Instant) -> Self {
        Self {
            table: Conntrack::new(settings.max_connections),
            rule_hits: vec![Hits::default(); settings.rules.len()],
            settings,
            default_hits: [Hits::default(); 2],
            counters: Counters::default(),
            rejects: TokenBucket::new(REJECTS_PER_SECOND, REJECT_BURST, now),
            next_sweep: now + SWEEP_INTERVAL,
            would_drop: std::collections::VecDeque::new(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Per rule (in order), what it decided.
    pub fn rule_hits(&self) -> &[Hits] {
        &self.rule_hits
    }

    /// What the inbound and outbound default policies decided.
    pub fn default_hits(&self) -> (Hits, Hits) {
        (self.default_hits[0], self.default_hits[1])
    }

    /// Counters by verdict.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Tracked flows now, at most, and what the table counted.
    pub fn table(&self) -> (usize, usize, TableCounters) {
        (
            self.table.len(),
            self.table.capacity(),
            self.table.counters(),
        )
    }

    /// Judges `packet`, delivered by the overlay from the node with `key`.
    pub fn inbound(
        &mut self,
        now: Instant,
        key: &PublicKey,
        packet: &[u8],
        roles: &dyn Roles,
    ) -> Verdict {
        self.judge(now, Direction::In, Some(key), packet, roles)
    }

    /// Judges `packet`, sent by this node's TUN device into the overlay.
    pub fn outbound(&mut self, now: Instant, packet: &[u8], roles: &dyn Roles) -> Verdict {
        self.judge(now, Direction::Out, None, packet, roles)
    }

    fn judge(
        &mut self,
        now: Instant,
        direction: Direction,
        key: Option<&PublicKey>,
        bytes: &[u8],
        roles: &dyn Roles,
    ) -> Verdict {
        if !self.settings.active() {
            return Verdict::Pass;
        }
        let packet = match packet::parse(bytes) {
            Ok(packet) => packet,
            Err(_) => {
                self.counters.malformed += 1;
                return self.refuse(now, Action::Deny, None, bytes);
            }
        };
        let flow = FlowKey::of(&packet, direction);
        if let Some(flow) = &flow
            && self.table.touch(now, flow, direction, &packet.upper)
        {
            self.counters.established += 1;
            return Verdict::Pass;
        }
        if self.related(bytes, &packet, direction) {
            self.counters.established += 1;
            return Verdict::Pass;
        }
        let matched = self.first_match(direction, &packet, key, roles);
        let (action, hits) = match matched {
            Some(i) => (self.settings.rules[i].action, &mut self.rule_hits[i]),
            None => (
                self.default_action(direction),
                &mut self.default_hits[direction as usize],
            ),
        };
        hits.add(bytes.len());
        if action != Action::Allow {
            if self.settings.log_only && self.would_drop.len() < MAX_WOULD_DROP_REPORTS {
                self.would_drop.push_back(WouldDrop {
                    direction,
                    packet,
                    key: key.copied(),
                    rule: matched,
                    action,
                });
            }
            return self.refuse(now, action, Some(&packet), bytes);
        }
        self.counters.allowed += 1;
        let opens = !matches!(packet.upper, Upper::Tcp { flags, .. } if flags & packet::tcp_flags::RST != 0);
        if let Some(flow) = flow
            && opens
        {
            self.table
                .insert(now, flow, direction, key.copied(), packet);
        }
        Verdict::Pass
    }

    fn default_action(&self, direction: Direction) -> Action {
        match direction {
            Direction::In => self.settings.inbound,
            Direction::Out => self.settings.outbound,
        }
    }

    fn first_match(
        &self,
        direction: Direction,
        packet: &Packet,
        key: Option<&PublicKey>,
        roles: &dyn Roles,
    ) -> Option<usize> {
        (self.settings.rules.iter()).position(|r| r.matches(direction, packet, key, roles))
    }

    /// Whether `packet` is an ICMPv6 error about a tracked flow (Linux's "related").
    fn related(&self, bytes: &[u8], packet: &Packet, direction: Direction) -> bool {
        let Upper::Icmp { kind: 1..=4, .. } = packet.upper else {
            return false;
        };
        let Some(quoted) = bytes.get(packet.upper_offset + 8..) else {
            return false;
        };
        let Ok(inner) = packet::parse_quoted(quoted) else {
            return false;
        };
        // The quoted packet went the other way.
        let other = match direction {
            Direction::In => Direction::Out,
            Direction::Out => Direction::In,
        };
        FlowKey::of(&inner, other).is_some_and(|flow| self.table.contains(&flow))
    }

    fn refuse(
        &mut self,
        now: Instant,
        action: Action,
        packet: Option<&Packet>,
        bytes: &[u8],
    ) -> Verdict {
        if self.settings.log_only {
            self.counters.would_drop += 1;
            return Verdict::Pass;
        }
        match (action, packet) {
            (Action::Reject, Some(p)) if !matches!(p.upper, Upper::Icmp { kind: 0..=127, .. }) => {
                self.counters.rejected += 1;
                if self.rejects.take_many(now, 1) {
                    Verdict::Reject(reject::prohibited(p.destination, p.source, bytes))
                } else {
                    self.counters.rejects_unanswered += 1;
                    Verdict::Drop
                }
            }
            _ => {
                self.counters.denied += 1;
                Verdict::Drop
            }
        }
    }

    /// Replaces the settings (a reload): tracked flows stay, but those the new rules would not let
    /// in are dropped; counters of rules that did not change are kept.
    pub fn reconfigure(&mut self, settings: Settings, roles: &dyn Roles) {
        let old = std::mem::take(&mut self.settings);
        let old_hits = std::mem::take(&mut self.rule_hits);
        self.rule_hits = (settings.rules.iter())
            .map(|rule| {
                (old.rules.iter().position(|r| r == rule))
                    .map_or_else(Hits::default, |i| old_hits[i])
            })
            .collect();
        if settings.max_connections != self.table.capacity() {
            self.table = Conntrack::new(settings.max_connections);
        }
        self.settings = settings;
        self.revalidate(roles);
    }

    /// Judges every tracked flow's first packet again (after the roles changed): a flow its rule
    /// no longer lets in is dropped, so revoking a member's role closes its connections.
    pub fn revalidate(&mut self, roles: &dyn Roles) {
        if !self.settings.active() {
            return;
        }
        let settings = &self.settings;
        let mut revoked = 0;
        self.table.retain(|entry| {
            let allowed = match (settings.rules.iter())
                .find(|r| r.matches(entry.origin, &entry.first, entry.key.as_ref(), roles))
            {
                Some(rule) => rule.action == Action::Allow,
                None => match entry.origin {
                    Direction::In => settings.inbound == Action::Allow,
                    Direction::Out => settings.outbound == Action::Allow,
                },
            };
            revoked += u64::from(!allowed);
            allowed
        });
        self.counters.revoked += revoked;
    }

    /// The next packet a log-only firewall passed but would have dropped (at most
    /// [`MAX_WOULD_DROP_REPORTS`] wait; later ones are only counted).
    pub fn poll_would_drop(&mut self) -> Option<WouldDrop> {
        self.would_drop.pop_front()
    }

    /// When [`Self::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.table.is_empty()).then_some(self.next_sweep)
    }

    /// Sweeps out timed-out flows.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_sweep {
            self.table.sweep(now);
            self.next_sweep = now + SWEEP_INTERVAL;
        }
    }
}
