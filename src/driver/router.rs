//! The router task: owns the core [`Node`], feeds it everything that arrives, and carries out what it
//! asks for. It makes no protocol decisions: it maps sockets to links, decides which inbound
//! handshakes may create a link (and with which password), and keeps operator-facing records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::clock::Clock;
use super::connections::Acceptance;
use super::counters::DriverCounters;
use super::discovery::{Around, Discovery};
use super::input::Input;
use super::interfaces::Interface;
use super::links::{Links, Origin};
use super::passwords::PasswordKeys;
use super::peers::{LinkSide, Peers};
use super::request::{ApiRequest, ApiResponse};
use super::transport::stream::STREAM_MTU;
use super::transport::tls::TlsConfig;
use super::transport::udp::{DEFAULT_UDP_MTU, UDP_OVERHEAD};
use super::transport::{Bound, Endpoint, EndpointId, Remote, Role, Transport};
use super::tun_device::TunDevice;
use crate::config::{Daemon, LinkUri};
use crate::core::link::LinkParams;
use crate::core::node::{Arrival, DeliveryKind, Event, LinkId, Node};

/// Inputs handled in one batch before the router flushes what the core produced.
const BATCH: usize = 64;
/// Bytes of input handled in one batch at most: what one batch produces must fit the core's transmit
/// queue (1 MiB per link), or a burst of 64 KiB super-packets would overflow it before the flush.
const BATCH_BYTES: usize = 256 * 1024;

/// The parts of the router that discovery reads and changes (disjoint borrows of its fields).
macro_rules! around {
    ($router:expr) => {
        Around {
            node: &mut $router.node,
            links: &mut $router.links,
            now: $router.clock.now(),
            config: &$router.config,
            tun: $router.tun.as_ref().map(|t| t.name.as_str()),
            passwords: &$router.passwords,
            counters: &mut $router.counters,
            inputs: &$router.inputs,
        }
    };
}

/// The parts of the router that opening and closing a peer's link touches.
macro_rules! link_side {
    ($router:expr) => {
        LinkSide {
            node: &mut $router.node,
            links: &mut $router.links,
            now: $router.clock.now(),
        }
    };
}

/// The router's state: the core node and the parts of the daemon around it, each owned here and
/// handed to the others' methods as they need them.
pub(crate) struct Router {
    pub(crate) node: Node,
    pub(crate) clock: Clock,
    pub(crate) config: Daemon,
    pub(crate) tun: Option<TunDevice>,
    pub(crate) inputs: mpsc::Sender<Input>,
    /// Endpoints and link records.
    pub(crate) links: Links,
    /// Configured peers.
    pub(crate) peers: Peers,
    pub(crate) counters: DriverCounters,
    pub(crate) discovery: Discovery,
    pub(crate) started: crate::core::time::Instant,
    /// TCP flows of the host that retransmitted lately, whose super-packets are segmented.
    flows: crate::core::offload::flows::Flows,
    /// The built-in services, on their own thread.
    pub(crate) services: super::service_thread::ServiceThread,
    /// The overlay firewall.
    pub(crate) firewall: super::firewall::FirewallGate,
    /// When to reseed the core's and the services' random streams next.
    next_reseed: crate::core::time::Instant,
    /// Every password in use, stretched: looked up, never stretched, on the way of a datagram.
    pub(crate) passwords: PasswordKeys,
    /// Times the tree's root changed (for the metrics).
    pub(crate) root_changes: u64,
    /// Stream listeners' accept loops, by URI as written (a reload that drops one stops it).
    pub(crate) stream_listeners: BTreeMap<String, tokio::task::JoinHandle<()>>,
    /// `meshrouter trace` requests running.
    pub(crate) traces: super::trace::Traces,
    /// Answers local API requests (the API's route table, given by the daemon's setup so that the
    /// router does not depend on the API).
    api: ApiDispatch,
}

/// Takes an API request and answers it, at once or later.
pub(crate) type ApiDispatch = fn(&mut Router, ApiRequest, oneshot::Sender<ApiResponse>);

impl Router {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        node: Node,
        clock: Clock,
        config: Daemon,
        passwords: PasswordKeys,
        tun: Option<TunDevice>,
        inputs: mpsc::Sender<Input>,
        discovery: Discovery,
        services: super::service_thread::ServiceThread,
        tls: TlsConfig,
        api: ApiDispatch,
    ) -> Self {
        let now = clock.now();
        Self {
            api,
            root_changes: 0,
            stream_listeners: BTreeMap::new(),
            traces: super::trace::Traces::new(inputs.clone()),
            firewall: super::firewall::FirewallGate::new(config.firewall.clone(), now),
            peers: Peers::new(tls, inputs.clone()),
            flows: Default::default(),
            services,
            passwords,
            node,
            clock,
            config,
            tun,
            inputs,
            links: Links::default(),
            counters: DriverCounters::default(),
            discovery,
            started: now,
            // The first housekeeping tick, at once: the start-up seed has been copied around.
            next_reseed: now,
        }
    }

    /// Registers an endpoint (for setup).
    pub(crate) fn add_endpoint(
        &mut self,
        role: Role,
        start: impl FnOnce(EndpointId) -> (Transport, tokio::task::JoinHandle<()>),
    ) -> EndpointId {
        self.links.add_endpoint(self.clock.now(), role, start)
    }

    /// Closes a link in the core and forgets it.
    fn close_link(&mut self, id: LinkId) {
        self.links.close_link(&mut self.node, self.clock.now(), id);
    }

    /// A connection ended: closed, and dialled again if it was a configured peer's.
    fn on_closed(&mut self, endpoint: EndpointId, error: String) {
        (self.peers).on_closed(endpoint, error, link_side!(self), &mut self.counters);
    }

    /// Adds a peer from the API (at once, or once its password is stretched).
    pub(crate) fn request_add_peer(&mut self, uri: LinkUri, reply: oneshot::Sender<ApiResponse>) {
        self.peers.request_add(uri, reply, &self.passwords);
    }

    /// Removes a peer given as written or as displayed; false if unknown.
    pub(crate) fn remove_peer(&mut self, text: &str) -> bool {
        (self.peers).remove(text, link_side!(self), &self.config, &mut self.passwords)
    }

    /// Runs until the input channel closes.
    pub(crate) async fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for uri in self.config.peers.clone() {
            let _ = self.peers.add(uri);
        }
        loop {
            let deadline = (self.node.poll_timeout())
                .into_iter()
                .chain(self.firewall.firewall.poll_timeout())
                .min()
                .map(|t| self.clock.to_tokio(t))
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                input = inputs.recv() => {
                    let Some(input) = input else { break };
                    let mut bytes = input.traffic_bytes();
                    self.handle(input);
                    for _ in 1..BATCH {
                        if bytes >= BATCH_BYTES {
                            break;
                        }
                        match inputs.try_recv() {
                            Ok(input) => {
                                bytes += input.traffic_bytes();
                                self.handle(input);
                            }
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = self.clock.now();
                    self.node.handle_timeout(now);
                    self.firewall.firewall.handle_timeout(now);
                }
                message = self.services.next_outbound() => {
                    self.take_from_services(message);
                    for _ in 1..BATCH {
                        match self.services.try_outbound() {
                            Some(message) => self.take_from_services(message),
                            None => break,
                        }
                    }
                }
                _ = tick.tick() => self.housekeeping(),
            }
            self.flush().await;
        }
    }

    fn handle(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Datagram {
                endpoint,
                remote,
                mut data,
                stride,
            } => {
                for datagram in data.chunks_mut(stride.max(1)) {
                    self.on_datagram(now, endpoint, remote, datagram);
                }
            }
            Input::Tun(packet) => {
                if self.firewall.outbound(now, &packet) {
                    self.flows.observe(now, &packet);
                    self.node.handle_local_packet(now, &packet);
                }
            }
            Input::TunSuper { packet, mss, ecn } => {
                if self.firewall.outbound(now, &packet) {
                    self.on_super_packet(&packet, mss, ecn);
                }
            }
            Input::Reload(reply) => self.reload(reply),
            Input::UdpBeacon { from, data } => {
                self.discovery.on_udp_beacon(around!(self), from, &data);
            }
            Input::PeerReady { text, dialled } => {
                (self.peers).on_ready(&text, dialled, link_side!(self), &self.passwords);
            }
            Input::PeerFailed { text, error } => self.peers.on_failed(&text, error, now),
            Input::Accepted { uri, stream, addr } => {
                let acceptance = Acceptance {
                    node: &mut self.node,
                    now,
                    inputs: &self.inputs,
                    counters: &mut self.counters,
                };
                self.links.accept(acceptance, uri, stream, addr);
            }
            Input::Closed { endpoint, error } => self.on_closed(endpoint, error),
            Input::Api(request, reply) => (self.api)(self, request, reply),
            Input::PasswordStretched { password, key } => {
                (self.peers).on_password_stretched(password, key, &mut self.passwords);
            }
            Input::TraceTick => {
                let now = self.clock.now();
                self.traces.tick(&mut self.node, now);
            }
            Input::ReloadStretched {
                config,
                stretched,
                reply,
            } => self.on_reload_stretched(*config, stretched, reply),
        }
    }

    /// A TCP super-packet from the host goes whole, unless its flow lost data lately (see
    /// `core::offload::flows`): then as segments.
    fn on_super_packet(&mut self, packet: &[u8], mss: u16, ecn: bool) {
        let now = self.clock.now();
        if self.flows.observe(now, packet) {
            self.counters.super_packets_whole += 1;
            self.node.handle_local_super_packet(now, packet, mss, ecn);
            return;
        }
        self.counters.super_packets_segmented += 1;
        let mut segments = Vec::new();
        if crate::core::offload::segment_super_packet(packet, mss, ecn, &mut segments).is_ok() {
            for segment in segments {
                self.node.handle_local_packet(now, &segment);
            }
        }
    }

    fn on_datagram(
        &mut self,
        now: crate::core::time::Instant,
        endpoint: EndpointId,
        remote: Remote,
        data: &mut [u8],
    ) {
        let policy = InboundPolicy {
            links: self.links.records.len(),
            endpoints: &self.links.endpoints,
            config: &self.config,
            passwords: &self.passwords,
            interfaces: &self.discovery.interfaces,
            tun: self.tun.as_ref().map(|t| t.name.as_str()),
        };
        let arrival = self.node.handle_datagram(now, endpoint, remote, data, || {
            policy.params(endpoint, &remote).map(|(params, _)| params)
        });
        let uri = matches!(arrival, Arrival::NewLink(_)).then(|| {
            policy
                .params(endpoint, &remote)
                .map_or_else(|| remote.to_string(), |(_, uri)| uri)
        });
        match arrival {
            Arrival::Link(_) => {}
            Arrival::NewLink(id) => {
                let uri = uri.unwrap_or_default();
                (self.links).record_link(id, endpoint, remote, Origin::Inbound, uri);
            }
            Arrival::Reply(reply) => {
                self.counters.cookie_replies += 1;
                if let Some(e) = self.links.endpoints.get(&endpoint)
                    && e.transport.send(&remote, &reply).is_err()
                {
                    self.counters.send_errors += 1;
                }
            }
            Arrival::Refused => self.counters.inbound_refused += 1,
            Arrival::Unclaimed => {
                if let Remote::Ethernet(mac) = remote
                    && crate::core::wire::beacon::Beacon::looks_like(data)
                {
                    (self.discovery).on_ethernet_beacon(around!(self), endpoint, mac, data);
                } else {
                    self.counters.unsolicited_datagrams += 1;
                }
            }
        }
    }
}

/// Which inbound handshakes may create a link, and with which settings: borrowed from the router's
/// configuration so that the core can ask while it holds the router's node. It runs for every
/// initiation-shaped datagram, junk floods included, so it only looks stretched passwords up
/// (`passwords`: `PasswordKeys::get` cannot stretch).
struct InboundPolicy<'a> {
    /// Links in the table now: none is made past `max_links`.
    links: usize,
    endpoints: &'a HashMap<EndpointId, Endpoint>,
    config: &'a Daemon,
    passwords: &'a PasswordKeys,
    interfaces: &'a BTreeMap<String, Interface>,
    tun: Option<&'a str>,
}

impl InboundPolicy<'_> {
    /// Link settings for a handshake from `remote` on `endpoint`, if it may create a link there.
    fn params(&self, endpoint: EndpointId, remote: &Remote) -> Option<(LinkParams, String)> {
        if self.links >= self.config.max_links {
            return None;
        }
        let endpoint = self.endpoints.get(&endpoint)?;
        match (&endpoint.role, remote) {
            (Role::Listener(uri), Remote::Udp(addr)) => Some((
                LinkParams {
                    initiate: false,
                    password: self.passwords.get(uri.password.as_deref()).ok()?,
                    allowed_keys: self.config.allowed_public_keys.clone(),
                    mtu: uri.mtu.unwrap_or(DEFAULT_UDP_MTU),
                    priority: uri.priority,
                    session: false,
                    aes_gcm: super::cpu::has_aes_instructions(),
                },
                format!("udp://{addr}"),
            )),
            (Role::Accepted { uri, .. }, Remote::Stream(addr)) => Some((
                LinkParams {
                    initiate: false,
                    password: self.passwords.get(uri.password.as_deref()).ok()?,
                    allowed_keys: self.config.allowed_public_keys.clone(),
                    mtu: STREAM_MTU,
                    priority: uri.priority,
                    session: false,
                    aes_gcm: super::cpu::has_aes_instructions(),
                },
                format!("{}://{addr}", uri.scheme),
            )),
            (Role::Discovery, Remote::Udp(std::net::SocketAddr::V6(addr))) => {
                let iface = self
                    .interfaces
                    .values()
                    .find(|i| i.index == addr.scope_id())?;
                let rule = super::discovery::rule_for(self.config, self.tun, &iface.name)?;
                let password = self.passwords.get(rule.password.as_deref()).ok()?;
                (rule.udp && (rule.listen || rule.beacon)).then(|| {
                    (
                        LinkParams {
                            initiate: false,
                            password,
                            allowed_keys: Vec::new(),
                            mtu: iface.mtu.saturating_sub(UDP_OVERHEAD).max(1232),
                            priority: rule.priority,
                            session: false,
                            aes_gcm: super::cpu::has_aes_instructions(),
                        },
                        format!("udp://[{}%{}]:{}", addr.ip(), iface.name, addr.port()),
                    )
                })
            }
            (Role::Ethernet { ifname, mtu }, Remote::Ethernet(_)) => {
                let rule = super::discovery::rule_for(self.config, self.tun, ifname)?;
                let password = self.passwords.get(rule.password.as_deref()).ok()?;
                (rule.ethernet && (rule.listen || rule.beacon)).then(|| {
                    (
                        LinkParams {
                            initiate: false,
                            password,
                            allowed_keys: Vec::new(),
                            mtu: *mtu,
                            priority: rule.priority,
                            session: false,
                            aes_gcm: super::cpu::has_aes_instructions(),
                        },
                        format!("ethernet://{ifname}/{remote}"),
                    )
                })
            }
            _ => None,
        }
    }
}

impl Router {
    /// Sends what the core queued, without waiting: per link, in order, batched (GSO trains).
    fn flush_transmits(&mut self) {
        let now = self.clock.now();
        let mut per_link: Vec<(LinkId, Vec<Vec<u8>>)> = Vec::new();
        while let Some(t) = self.node.poll_transmit() {
            match per_link.iter_mut().find(|(link, _)| *link == t.link) {
                Some((_, datagrams)) => datagrams.push(t.payload),
                None => per_link.push((t.link, vec![t.payload])),
            }
        }
        for (link, datagrams) in per_link {
            let Some(info) = self.links.records.get_mut(&link) else {
                continue;
            };
            let Some(endpoint) = self.links.endpoints.get(&info.endpoint) else {
                continue;
            };
            if let Err(e) = endpoint.transport.send_all(&info.remote, &datagrams) {
                self.counters.send_errors += 1;
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    info.last_error = Some((now, format!("send: {e}")));
                }
            }
            for datagram in datagrams {
                self.node.recycle(link, datagram);
            }
        }
    }

    /// Carries out everything the core produced.
    async fn flush(&mut self) {
        self.flush_transmits();
        // Packets in a row are coalesced (our GRO); a super-packet ends the row, so that the host
        // sees everything in the order it arrived.
        let mut packets = Vec::new();
        while let Some(delivery) = self.node.poll_deliver() {
            match delivery.kind {
                DeliveryKind::Packet => {
                    let now = self.clock.now();
                    if (self.firewall).inbound(
                        now,
                        &mut self.node,
                        &delivery.source,
                        &delivery.payload,
                    ) {
                        packets.push(delivery.payload);
                    }
                }
                DeliveryKind::TcpSuperPacket { .. }
                    if !(self.firewall).inbound(
                        self.clock.now(),
                        &mut self.node,
                        &delivery.source,
                        &delivery.payload,
                    ) => {}
                DeliveryKind::TcpSuperPacket { mss, ecn } => {
                    self.write_packets(std::mem::take(&mut packets)).await;
                    self.write_super_packet(&delivery.payload, mss, ecn).await;
                }
                DeliveryKind::Service(port) => self.deliver_service(port, delivery),
                DeliveryKind::Probe => {}
            }
        }
        let now = self.clock.now();
        let answers = self.firewall.take_answers(now);
        packets.extend(answers.into_iter().map(bytes::Bytes::from));
        self.write_packets(packets).await;
        let mut closed = BTreeSet::new();
        let mut connections = BTreeMap::new();
        while let Some(event) = self.node.poll_event() {
            self.on_event(event, &mut closed, &mut connections);
        }
        for id in closed {
            self.close_link(id);
        }
        for (endpoint, error) in connections {
            self.on_closed(endpoint, error);
        }
        self.flush_transmits();
    }

    /// A message for a service port, handed to the services' thread.
    fn deliver_service(&mut self, port: u16, delivery: crate::core::node::Delivery) {
        use crate::services::BLOB_PORT;
        use crate::services::crdt::sync::SYNC_PORT;
        use crate::services::identity::proof::PROOF_PORT;
        use crate::services::nodeinfo::NODEINFO_PORT;
        let ports = [SYNC_PORT, PROOF_PORT, NODEINFO_PORT, BLOB_PORT];
        if cfg!(not(feature = "services")) || !ports.contains(&port) {
            self.counters.service_messages_unhandled += 1;
        } else if !(self.services).deliver(port, delivery.source, delivery.payload) {
            self.counters.service_messages_dropped += 1;
        }
    }

    /// Carries out what the services' thread sent: a service message, or new registry roles.
    fn take_from_services(&mut self, message: super::service_thread::FromServices) {
        use super::service_thread::FromServices;
        match message {
            FromServices::Send(message) => {
                let now = self.clock.now();
                (self.node).send_service(now, message.peer, message.port, &message.payload);
            }
            FromServices::Roles(roles) => self.firewall.set_roles(roles),
        }
    }

    /// Reads the configuration file again (`driver::reload`): applies it at once, or once the
    /// passwords new in it are stretched on a blocking thread. Answers `reply` if given (`meshrouter
    /// reload`), else logs (SIGHUP).
    pub(crate) fn reload(&mut self, reply: Option<oneshot::Sender<ApiResponse>>) {
        use super::reload;
        let Some(path) = self.config.config_path.clone() else {
            let message =
                "this daemon runs without a configuration file (run --autoconf): nothing to reload";
            return reload::answer(reply, ApiResponse::error(409, message));
        };
        let config = match reload::load(&path) {
            Ok(config) => config,
            Err(refusal) => return reload::answer(reply, refusal),
        };
        let needed = reload::unstretched(&config, &self.passwords);
        if needed.is_empty() {
            let report = self.apply_reload(config);
            return reload::answer(reply, ApiResponse::ok(report));
        }
        reload::stretch_then_apply(needed, config, reply, self.inputs.clone());
    }

    /// The passwords a reload needed are stretched: applies it.
    fn on_reload_stretched(
        &mut self,
        config: Daemon,
        stretched: super::passwords::Stretched,
        reply: Option<oneshot::Sender<ApiResponse>>,
    ) {
        for (password, key) in stretched {
            self.passwords.insert(password, key);
        }
        if !super::reload::unstretched(&config, &self.passwords).is_empty() {
            let message =
                "stretching the configuration's passwords failed; the running configuration stays";
            return super::reload::answer(reply, ApiResponse::error(500, message));
        }
        let report = self.apply_reload(config);
        super::reload::answer(reply, ApiResponse::ok(report));
    }

    /// Carries out what [`super::reload::plan`] found changed; what it applied, what needs a
    /// restart, and what failed.
    fn apply_reload(&mut self, new: Daemon) -> serde_json::Value {
        use super::reload::{display, plan, running};
        let discovery_running = self.discovery.endpoint.is_some();
        let plan = plan(&self.config, &new, discovery_running);
        let mut applied: Vec<String> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        for gone in &plan.peers_removed {
            if self.remove_peer(gone) {
                applied.push(format!("peer removed: {}", display(gone)));
            }
        }
        for uri in &plan.peers_added {
            match self.peers.add(uri.clone()) {
                Ok(()) => applied.push(format!("peer added: {}", uri.display())),
                Err(_) => applied.push(format!("peer kept: {} (added before)", uri.display())),
            }
        }
        for gone in &plan.listeners_removed {
            self.stop_listener(gone);
            applied.push(format!("listener closed: {}", display(gone)));
        }
        let mut listening = new.listen.clone();
        for uri in &plan.listeners_added {
            let bound = super::transport::bind_listener(uri);
            match bound.and_then(|b| self.start_listener(uri.clone(), b)) {
                Ok(()) => applied.push(format!("listening: {}", uri.display())),
                Err(e) => {
                    errors.push(format!("listen {}: {e}", uri.display()));
                    listening.retain(|u| u.text != uri.text);
                }
            }
        }
        if plan.discovery {
            applied.push(format!("discovery: {} rule(s)", new.discovery.len()));
        }
        if plan.allowed_public_keys {
            applied.push(format!(
                "allowed_public_keys: {}",
                new.allowed_public_keys.len()
            ));
        }
        if plan.max_links {
            applied.push(format!("max_links: {}", new.max_links));
        }
        if plan.firewall {
            self.firewall.reconfigure(new.firewall.clone());
            applied.push(format!("firewall: {} rule(s)", new.firewall.rules.len()));
        }
        if plan.crdt_filters {
            self.services.reconfigure_crdt(new.crdt.clone());
            applied.push("crdt: namespaces and per-peer filters".into());
        }
        // Discovery and the listener policy read these settings from here at every use.
        self.config = running(&self.config, new, &plan, listening, discovery_running);
        let report = serde_json::json!({
            "reloaded": self.config.config_path.as_ref().map(|p| p.display().to_string()),
            "applied": applied,
            "restart_needed": plan.restart_needed,
            "errors": errors,
        });
        if errors.is_empty() {
            info!(%report, "configuration reloaded");
        } else {
            warn!(%report, "configuration reloaded, with errors");
        }
        report
    }

    /// Starts a listener bound during setup or by a reload.
    pub(crate) fn start_listener(&mut self, uri: LinkUri, bound: Bound) -> std::io::Result<()> {
        info!(listen = %uri.display(), "listening");
        match bound {
            Bound::Udp(socket) => {
                let socket = super::udp_endpoint(socket)?;
                let inputs = self.inputs.clone();
                self.add_endpoint(Role::Listener(uri), |id| {
                    let reader =
                        tokio::spawn(super::transport::udp::read(id, socket.clone(), inputs));
                    (Transport::Udp(socket), reader)
                });
            }
            Bound::Stream(listener) => {
                let text = uri.text.clone();
                let accept = super::transport::listen_stream(
                    listener,
                    uri,
                    self.peers.tls(),
                    self.inputs.clone(),
                )?;
                self.stream_listeners.insert(text, accept);
            }
        }
        Ok(())
    }

    /// Closes the listener of `text` (as written) and the links that came in on it.
    fn stop_listener(&mut self, text: &str) {
        if let Some(accept) = self.stream_listeners.remove(text) {
            accept.abort();
        }
        let endpoints: Vec<EndpointId> = (self.links.endpoints.iter())
            .filter(|(_, e)| match &e.role {
                Role::Listener(uri) | Role::Accepted { uri, .. } => uri.text == text,
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        let now = self.clock.now();
        for id in endpoints {
            self.links.remove_endpoint(&mut self.node, now, id);
        }
    }

    /// Writes delivered packets to the TUN device, segments of one TCP stream as one write.
    async fn write_packets<P: AsRef<[u8]>>(&mut self, packets: Vec<P>) {
        let Some(tun) = &self.tun else { return };
        for write in crate::core::offload::coalesce(&packets) {
            if tun.device.send(&write).await.is_err() {
                self.counters.tun_write_errors += 1;
            }
        }
    }

    /// Writes a delivered super-packet as one GSO write (its rewritten headers and its payload
    /// gathered by one `writev`, so the payload is not copied), or as segments if the device refuses
    /// that.
    async fn write_super_packet(&mut self, packet: &[u8], mss: u16, ecn: bool) {
        use crate::core::offload::{segment_super_packet, super_packet_head};
        use std::io::IoSlice;
        let Some(tun) = &self.tun else { return };
        let Ok((head, headers)) = super_packet_head(packet, mss, ecn) else {
            self.counters.tun_write_errors += 1;
            return;
        };
        let parts = [IoSlice::new(&head), IoSlice::new(&packet[headers..])];
        match crate::sys::io::write_vectored(&**tun.device, &parts) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // The device's queue is full: wait for room, as a plain write would.
                let mut write = head;
                write.extend_from_slice(&packet[headers..]);
                if tun.device.send(&write).await.is_ok() {
                    return;
                }
            }
            Err(_) => {}
        }
        let mut segments = Vec::new();
        if segment_super_packet(packet, mss, ecn, &mut segments).is_err() {
            self.counters.tun_write_errors += 1;
            return;
        }
        self.write_packets(segments).await;
    }

    /// Carries out a core event. Links that went down and are not retried go into `closed`; the
    /// connections of stream links that went down or closed go into `connections` (one link per
    /// connection: the connection goes with it, and a configured peer dials again).
    fn on_event(
        &mut self,
        event: Event,
        closed: &mut BTreeSet<LinkId>,
        connections: &mut BTreeMap<EndpointId, String>,
    ) {
        let now = self.clock.now();

        match event {
            Event::LinkUp(id, key) => {
                self.services.link(key, true);
                if let Some(info) = self.links.records.get_mut(&id) {
                    info.up_since = Some(now);
                    info.peer = Some(key);
                    info!(link = %info.uri, peer = %key.to_hex(), "link up");
                }
            }
            Event::LinkDown(id, key) => {
                self.services.link(key, false);
                if let Some(endpoint) = self.links.connection_of(id) {
                    connections.insert(endpoint, "link down: peer stopped answering".into());
                }
                if let Some(info) = self.links.records.get_mut(&id) {
                    info.up_since = None;
                    info.last_error = Some((now, "link down: peer stopped answering".into()));
                    warn!(link = %info.uri, peer = %key.to_hex(), "link down");
                    if info.origin == Origin::Inbound {
                        closed.insert(id);
                    }
                }
            }
            Event::LinkClosed(id) => {
                if let Some(endpoint) = self.links.connection_of(id) {
                    connections.insert(endpoint, "link closed".into());
                }
                self.links.records.remove(&id);
            }
            Event::TraceHop {
                id,
                hop,
                outcome,
                rtt,
            } => {
                self.traces.on_hop(&self.node, id, hop, outcome, rtt);
            }
            Event::RootChanged(root) => {
                self.root_changes += 1;
                match root {
                    Some(root) => info!(root = %root.to_hex(), "tree root changed"),
                    None => debug!("detached from the tree, waiting for a root"),
                }
            }
        }
    }

    /// Mixes fresh OS randomness into the core's and the services' random streams (see
    /// [`crate::core::rng::Rng::reseed`]); if the OS has none to give, tries again in 10 s.
    fn reseed(&mut self, now: crate::core::time::Instant) {
        let mut extra = zeroize::Zeroizing::new([0u8; 32]);
        match getrandom::fill(&mut extra[..]) {
            Ok(()) => {
                self.node.reseed(&extra);
                self.services.reseed(&extra);
                self.next_reseed = now + crate::core::rng::RESEED_INTERVAL;
                debug!("random streams reseeded");
            }
            Err(e) => {
                self.next_reseed = now + Duration::from_secs(10);
                warn!("reseeding the random streams: the OS random source failed: {e}");
            }
        }
    }

    fn housekeeping(&mut self) {
        let now = self.clock.now();
        if now >= self.next_reseed {
            self.reseed(now);
        }
        for (id, info) in &mut self.links.records {
            if let Some(link) = self.node.link(*id) {
                let stats = link.stats();
                info.rates.sample(now, stats.rx_bytes, stats.tx_bytes);
            }
        }
        self.discovery.tick(around!(self));
        (self.links).close_stale_accepted(&mut self.node, now, &mut self.counters);
        self.peers.explain_down(&self.node, &mut self.links, now);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
    use std::sync::Arc;

    use super::*;
    use crate::config::DiscoveryRule;
    use crate::core::password::{PasswordKey, derivations_on_this_thread};
    use crate::driver::transport::Transport;

    fn udp_endpoint(role: Role) -> Endpoint {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let socket = tokio::net::UdpSocket::from_std(socket).unwrap();
        Endpoint {
            transport: Transport::Udp(Arc::new(
                crate::driver::transport::udp::UdpEndpoint::new(socket).unwrap(),
            )),
            role,
            reader: tokio::spawn(async {}),
            opened: crate::core::time::Instant::ZERO,
        }
    }

    /// The policy runs for every initiation-shaped datagram, junk floods included: with passwords
    /// on a listener and a discovery rule it must hand out their stretched keys without stretching.
    #[test]
    fn the_inbound_policy_looks_passwords_up_and_never_stretches() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _inside = runtime.enter();
        let listen = LinkUri::parse("udp://127.0.0.1:0?password=island").unwrap();
        let config = Daemon {
            listen: vec![listen.clone()],
            discovery: vec![DiscoveryRule {
                password: Some(b"lan".to_vec()),
                ..DiscoveryRule::everywhere()
            }],
            ..Daemon::default()
        };
        let passwords = PasswordKeys::for_config(&config);
        let (island, lan) = (PasswordKey::derive(b"island"), PasswordKey::derive(b"lan"));
        let endpoints = HashMap::from([
            (0, udp_endpoint(Role::Listener(listen))),
            (1, udp_endpoint(Role::Discovery)),
        ]);
        let lan0 = Interface {
            name: "lan0".into(),
            index: 7,
            mtu: 1500,
            usable: true,
            link_local: true,
        };
        let interfaces = BTreeMap::from([("lan0".to_owned(), lan0)]);
        let policy = InboundPolicy {
            links: 0,
            endpoints: &endpoints,
            config: &config,
            passwords: &passwords,
            interfaces: &interfaces,
            tun: None,
        };
        let same = |a: &Option<PasswordKey>, b: &PasswordKey| {
            a.as_ref().map(|a| a.subkey(b"test")) == Some(b.subkey(b"test"))
        };
        let before = derivations_on_this_thread();
        for port in 1000..3000 {
            let from = Remote::Udp(SocketAddr::from(([192, 0, 2, 1], port)));
            let (params, _) = policy.params(0, &from).unwrap();
            assert!(same(&params.password, &island));
            let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
            let from = Remote::Udp(SocketAddrV6::new(link_local, port, 0, 7).into());
            let (params, _) = policy.params(1, &from).unwrap();
            assert!(same(&params.password, &lan));
        }
        assert_eq!(derivations_on_this_thread(), before, "the policy stretched");
        // At `max_links` links no handshake makes another, on a listener or by discovery.
        let full = InboundPolicy {
            links: config.max_links,
            ..policy
        };
        let from = Remote::Udp(SocketAddr::from(([192, 0, 2, 1], 1000)));
        assert!(full.params(0, &from).is_none());
        let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        assert!(
            full.params(
                1,
                &Remote::Udp(SocketAddrV6::new(link_local, 1000, 0, 7).into())
            )
            .is_none()
        );
        let below = InboundPolicy {
            links: config.max_links - 1,
            ..policy
        };
        assert!(below.params(0, &from).is_some());
        // A password that was never stretched refuses the link: neither stretched now nor dropped.
        let none = PasswordKeys::default();
        let policy = InboundPolicy {
            passwords: &none,
            ..policy
        };
        let from = Remote::Udp(SocketAddr::from(([192, 0, 2, 1], 1000)));
        assert!(policy.params(0, &from).is_none());
        assert_eq!(derivations_on_this_thread(), before);
    }
}
