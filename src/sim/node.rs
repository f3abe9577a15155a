//! One simulated router and how it handles its events: all that touches only this node, so that
//! the nodes of one time window can be handled side by side (see [`super::Sim::run_until`]).
//!
//! Whatever an event makes a node do to the rest of the network (datagrams to queue, bytes to count
//! on wires, trace lines) goes into an [`Output`], which the simulator applies once the window is
//! done, in node order: so the run is the same whichever thread handled which node.

use std::collections::HashMap;

use super::adversary::Adversary;
use super::service::SimService;
use super::wire::Wire;
use crate::core::identity::PublicKey;
use crate::core::node::{Delivery, Event, LinkId, Node};
use crate::core::rng::Rng;
use crate::core::time::{Instant, earliest};

/// Something that happens at a time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Pending {
    /// A datagram arrives at `node` over `wire`.
    Datagram {
        node: usize,
        wire: usize,
        bytes: Vec<u8>,
    },
    /// A node's timer, valid only if its generation still matches.
    Timer { node: usize, generation: u64 },
}

impl Pending {
    pub(super) fn node(&self) -> usize {
        match self {
            Self::Datagram { node, .. } | Self::Timer { node, .. } => *node,
        }
    }
}

/// What handling a node's events did to the rest of the network, applied after its window.
#[derive(Default)]
pub(super) struct Output {
    /// Events to queue.
    pub(super) pushes: Vec<(Instant, Pending)>,
    /// Bytes sent: wire, the sending side, bytes.
    pub(super) bytes: Vec<(usize, usize, u64)>,
    /// Trace lines (only with a trace file).
    pub(super) logs: Vec<String>,
    /// Events handled.
    pub(super) handled: u64,
    /// The latest event handled.
    pub(super) last: Option<Instant>,
}

/// One simulated router.
pub struct SimNode {
    pub(super) seed: [u8; 32],
    pub(super) node: Option<Node>,
    pub(super) key: PublicKey,
    pub(super) links: HashMap<LinkId, usize>,
    pub(super) timer_generation: u64,
    /// When the timer entry of the current generation fires, if one is queued (or held within the
    /// window being handled): a node asks for the same deadline after most events, and queueing it
    /// again each time filled the queue with stale entries (one per event).
    pub(super) timer_at: Option<Instant>,
    /// Time of the last timer firing and how often it fired at that same instant (a busy-loop guard).
    pub(super) last_timer: Option<Instant>,
    pub(super) spins: u32,
    /// Draws for this node's outgoing datagrams (loss, jitter...): each node its own, so that the
    /// order in which nodes are handled within a window does not matter.
    pub(super) rng: Rng,
    /// Every payload delivered to this node, in order.
    pub delivered: Vec<(Instant, Delivery)>,
    /// Every root change, with its time.
    pub root_changes: Vec<(Instant, Option<PublicKey>)>,
    /// Every trace hop this node's probes brought ([`Event::TraceHop`]), with its time.
    pub trace_hops: Vec<(Instant, Event)>,
    /// A service running beside the router (it outlives crashes, like a disk).
    pub(super) service: Option<Box<dyn SimService>>,
    /// What this node does wrong on purpose, if anything.
    pub(super) adversary: Option<Adversary>,
}

/// What a node reads of the shared network while its events are handled.
#[derive(Clone, Copy)]
pub(super) struct Network<'a> {
    pub(super) wires: &'a [Wire],
    /// Whether trace lines are wanted.
    pub(super) trace: bool,
    pub(super) seed: u64,
}

impl SimNode {
    /// Handles node `i`'s `events` (in time order, all before `end`) and the timers it sets itself
    /// before `end`; a timer due at or after `end` is queued.
    pub(super) fn run_window(
        &mut self,
        i: usize,
        events: Vec<(Instant, Pending)>,
        end: Instant,
        net: Network<'_>,
        out: &mut Output,
    ) {
        let mut events = events.into_iter().peekable();
        // A timer set within the window and due before its end: (when, generation).
        let mut local: Option<(Instant, u64)> = None;
        loop {
            let next_event = events.peek().map(|(at, _)| *at);
            let (at, pending) = match (local, next_event) {
                (Some((t, generation)), e) if e.is_none_or(|e| t < e) => {
                    local = None;
                    (
                        t,
                        Pending::Timer {
                            node: i,
                            generation,
                        },
                    )
                }
                _ => match events.next() {
                    Some(e) => e,
                    None => break,
                },
            };
            out.handled += 1;
            out.last = Some(out.last.map_or(at, |l| l.max(at)));
            if self.handle(i, at, pending, net) {
                self.after(i, at, end, net, out, &mut local);
            }
        }
    }

    /// Handles one event; returns whether the node may have output to drain.
    fn handle(&mut self, i: usize, now: Instant, pending: Pending, net: Network<'_>) -> bool {
        match pending {
            Pending::Datagram {
                wire, mut bytes, ..
            } => {
                let w = &net.wires[wire];
                let side = usize::from(w.ends[0].0 != i);
                let (Some(link), true) = (w.ends[side].1, w.up) else {
                    return false;
                };
                let Some(n) = &mut self.node else {
                    return false;
                };
                n.handle_link_datagram(now, link, &mut bytes);
                true
            }
            Pending::Timer { generation, .. } => {
                if self.timer_generation != generation {
                    return false;
                }
                self.timer_at = None;
                if self.last_timer == Some(now) {
                    self.spins += 1;
                    assert!(
                        self.spins < 10_000,
                        "node {i} asks for a timeout at {now:?} again and again without acting (seed {})",
                        net.seed
                    );
                } else {
                    self.spins = 0;
                    self.last_timer = Some(now);
                }
                if let Some(service) = &mut self.service {
                    service.handle_timeout(now);
                }
                let Some(n) = &mut self.node else {
                    return false;
                };
                n.handle_timeout(now);
                true
            }
        }
    }

    /// Drains the node's output into `out` and sets its timer: held in `local` if due before `end`,
    /// else queued.
    pub(super) fn after(
        &mut self,
        i: usize,
        now: Instant,
        end: Instant,
        net: Network<'_>,
        out: &mut Output,
        local: &mut Option<(Instant, u64)>,
    ) {
        let Some(node) = &mut self.node else {
            return;
        };
        let mut transmits = Vec::new();
        let mut events = Vec::new();
        loop {
            while let Some(t) = node.poll_transmit() {
                transmits.push(t);
            }
            let first_new = events.len();
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
            let mut sent = false;
            if let Some(service) = &mut self.service {
                for e in &events[first_new..] {
                    service.handle_event(now, e);
                }
                while let Some(d) = node.poll_deliver() {
                    if let Some(d) = service.handle_delivery(now, d) {
                        self.delivered.push((now, d));
                    }
                }
                while let Some((dest, port, payload)) = service.poll_send() {
                    node.send_service(now, dest, port, &payload);
                    sent = true;
                }
            } else {
                while let Some(d) = node.poll_deliver() {
                    self.delivered.push((now, d));
                }
            }
            if !sent {
                break;
            }
        }
        let deadline = earliest(
            node.poll_timeout(),
            self.service.as_ref().and_then(|s| s.poll_timeout()),
        );
        for event in events {
            if let Event::RootChanged(root) = event {
                self.root_changes.push((now, root));
            }
            if net.trace {
                out.logs.push(format!("{now:?} node {i}: {event:?}"));
            }
            if let Event::TraceHop { .. } = event {
                self.trace_hops.push((now, event));
            }
        }
        for t in transmits {
            let Some(&w) = self.links.get(&t.link) else {
                continue;
            };
            let wire = &net.wires[w];
            let side = usize::from(wire.ends[0].0 != i);
            out.bytes.push((w, side, t.payload.len() as u64));
            if !wire.up {
                continue;
            }
            let to = wire.ends[1 - side].0;
            for delay in wire.params.delays(t.payload.len(), &mut self.rng) {
                out.pushes.push((
                    now + delay,
                    Pending::Datagram {
                        node: to,
                        wire: w,
                        bytes: t.payload.clone(),
                    },
                ));
            }
        }
        let at = deadline.map(|at| at.max(now));
        if at == self.timer_at {
            return;
        }
        self.timer_generation += 1;
        self.timer_at = at;
        if let Some(at) = at {
            let timer = (at, self.timer_generation);
            if at < end {
                *local = Some(timer);
            } else {
                out.pushes.push((
                    at,
                    Pending::Timer {
                        node: i,
                        generation: timer.1,
                    },
                ));
            }
        }
    }
}
