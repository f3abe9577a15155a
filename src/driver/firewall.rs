//! The overlay firewall as the router runs it: judges what the node delivers and what the TUN
//! device sends, carries out rejections, and keeps the registry's roles that rules may name.

use std::collections::HashMap;

use crate::core::firewall::{Firewall, Settings, Verdict};
use crate::core::identity::PublicKey;
use crate::core::node::Node;
use crate::core::time::Instant;

/// Would-drop lines logged a second at most (log-only mode); the rest are only counted.
const WOULD_DROP_LOGS_PER_SECOND: f64 = 10.0;

/// The firewall, the roles it knows, and rejections waiting to be written to the TUN device.
pub(crate) struct FirewallGate {
    pub(crate) firewall: Firewall,
    /// Node keys enrolled in the member registry, with their roles (from the services' thread).
    pub(crate) roles: HashMap<PublicKey, Vec<String>>,
    /// ICMPv6 answers to rejected outbound packets, for the local host.
    to_host: Vec<Vec<u8>>,
    /// Budget of would-drop log lines.
    logs: crate::core::rate::TokenBucket,
}

impl FirewallGate {
    pub(crate) fn new(settings: Settings, now: Instant) -> Self {
        if settings.active() {
            tracing::info!(
                rules = settings.rules.len(),
                inbound = ?settings.inbound,
                outbound = ?settings.outbound,
                log_only = settings.log_only,
                "firewall on"
            );
        }
        Self {
            firewall: Firewall::new(settings, now),
            roles: HashMap::new(),
            to_host: Vec::new(),
            logs: crate::core::rate::TokenBucket::new(
                WOULD_DROP_LOGS_PER_SECOND,
                WOULD_DROP_LOGS_PER_SECOND,
                now,
            ),
        }
    }

    /// Whether a packet the node delivered from `source` may go to the host. A rejection is
    /// answered into the overlay.
    pub(crate) fn inbound(
        &mut self,
        now: Instant,
        node: &mut Node,
        source: &PublicKey,
        packet: &[u8],
    ) -> bool {
        match self.firewall.inbound(now, source, packet, &self.roles) {
            Verdict::Pass => true,
            Verdict::Drop => false,
            Verdict::Reject(answer) => {
                node.handle_local_packet(now, &answer);
                false
            }
        }
    }

    /// Whether a packet from the TUN device may go into the overlay. A rejection is answered to
    /// the host.
    pub(crate) fn outbound(&mut self, now: Instant, packet: &[u8]) -> bool {
        match self.firewall.outbound(now, packet, &self.roles) {
            Verdict::Pass => true,
            Verdict::Drop => false,
            Verdict::Reject(answer) => {
                self.to_host.push(answer);
                false
            }
        }
    }

    /// Answers to rejected outbound packets, to write to the TUN device. Also logs what a
    /// log-only firewall would have dropped (10 lines a second at most).
    pub(crate) fn take_answers(&mut self, now: Instant) -> Vec<Vec<u8>> {
        while let Some(report) = self.firewall.poll_would_drop() {
            if !self.logs.take_many(now, 1) {
                continue;
            }
            let upper = &report.packet.upper;
            tracing::info!(
                direction = ?report.direction,
                action = ?report.action,
                rule = report.rule.map(|i| i + 1),
                from = %report.packet.source,
                to = %report.packet.destination,
                sender = ?report.key.map(|k| crate::services::identity::did_key::did_key(&k)),
                protocol = upper.protocol(),
                port = ?upper.destination_port(),
                "firewall (log only): would drop"
            );
        }
        std::mem::take(&mut self.to_host)
    }

    /// New roles from the registry: flows a role let in that is gone are closed.
    pub(crate) fn set_roles(&mut self, roles: HashMap<PublicKey, Vec<String>>) {
        self.roles = roles;
        self.firewall.revalidate(&self.roles);
    }

    /// New settings (a reload).
    pub(crate) fn reconfigure(&mut self, settings: Settings) {
        self.firewall.reconfigure(settings, &self.roles);
    }

    /// The firewall as `GET /v1/firewall` shows it.
    pub(crate) fn report(&self) -> serde_json::Value {
        use crate::services::identity::did_key::did_key;
        use serde_json::json;
        let settings = self.firewall.settings();
        let rules: Vec<serde_json::Value> = (settings.rules.iter())
            .zip(self.firewall.rule_hits())
            .map(|(rule, hits)| {
                use crate::core::firewall::rule::{Direction, Peer};
                let peer_text = |p: &Peer| match p {
                    Peer::Key(k) => did_key(k),
                    Peer::Prefix(prefix) => prefix.to_string(),
                };
                let peers: Vec<String> = rule.peers.iter().map(peer_text).collect();
                let local: Vec<String> = rule.local.iter().map(|p| p.to_string()).collect();
                let (from, to) = match rule.direction {
                    Direction::In => (peers, local),
                    Direction::Out => (local, peers),
                };
                json!({
                    "direction": rule.direction,
                    "action": rule.action,
                    "proto": rule.protocol,
                    "port": rule.ports.map(|p| p.to_string()),
                    "from": from,
                    "to": to,
                    "role": rule.roles.first(),
                    "comment": rule.comment,
                    "packets": hits.packets,
                    "bytes": hits.bytes,
                })
            })
            .collect();
        let (inbound, outbound) = self.firewall.default_hits();
        let (flows, max, table) = self.firewall.table();
        json!({
            "active": settings.active(),
            "log_only": settings.log_only,
            "inbound": { "policy": settings.inbound, "packets": inbound.packets, "bytes": inbound.bytes },
            "outbound": { "policy": settings.outbound, "packets": outbound.packets, "bytes": outbound.bytes },
            "rules": rules,
            "counters": self.firewall.counters(),
            "connections": { "tracked": flows, "max": max, "evicted": table.evicted, "expired": table.expired },
            "members_with_roles": self.roles.len(),
        })
    }
}
