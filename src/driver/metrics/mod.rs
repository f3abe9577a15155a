//! Prometheus metrics: `GET /metrics` on the local API and, if configured, on `metrics_listen`
//! (`driver::readonly_http`, beside this module because it serves HTTP with the API's parser). The router writes its part (links, tree, sessions, lookups, drops, the process),
//! then the services' thread appends its own (CRDT, identity, blobs) to the same text.
//!
//! Cardinality is bounded by what the node holds, never by what others send: per-link series
//! exist only for links that are up, one per (peer key, transport), and the links are bounded by
//! `max_links` (inbound handshakes past it are refused); drop reasons are the core's fixed set.

mod exposition;
#[cfg(feature = "services")]
pub(crate) mod services;

use std::collections::BTreeMap;

pub(crate) use exposition::{Exposition, Kind};

use super::request::{ApiRequest, ApiResponse};
use super::router::Router;

/// `GET /metrics`: the router's metrics, then the services' (on their thread).
pub(crate) fn get_metrics(
    r: &mut Router,
    request: &ApiRequest,
    reply: tokio::sync::oneshot::Sender<ApiResponse>,
) {
    let text = router_metrics(r).finish();
    #[cfg(feature = "services")]
    {
        let request = ApiRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            body: text.into_bytes(),
            app_user: None,
        };
        use super::service_thread::ServiceCall;
        r.services
            .call(ServiceCall::Now(services::append), request, reply);
    }
    #[cfg(not(feature = "services"))]
    {
        let _ = request;
        let _ = reply.send(ApiResponse::text(text));
    }
}

/// Per (peer, transport): the sums over its links that are up.
#[derive(Default)]
struct PeerLinks {
    rx_bytes: u64,
    tx_bytes: u64,
    rx_packets: u64,
    tx_packets: u64,
    dropped: u64,
    rtt: Option<f64>,
}

/// The router's families.
pub(crate) fn router_metrics(r: &Router) -> Exposition {
    let now = r.clock.now();
    let mut e = Exposition::default();
    e.family(
        "meshrouter_info",
        Kind::Gauge,
        "this node: its version and public key",
    );
    let key = r.node.public_key().to_hex();
    e.sample(
        "meshrouter_info",
        &[("version", env!("CARGO_PKG_VERSION")), ("key", &key)],
        1u64,
    );
    e.single(
        "meshrouter_uptime_seconds",
        Kind::Gauge,
        "seconds since the daemon started",
        now.saturating_since(r.started).as_secs_f64(),
    );

    let mut peers: BTreeMap<(String, &'static str), PeerLinks> = BTreeMap::new();
    let mut up = 0usize;
    for (id, info) in &r.links.records {
        let (Some(peer), Some(_)) = (info.peer, info.up_since) else {
            continue;
        };
        let Some(link) = r.node.link(*id) else {
            continue;
        };
        up += 1;
        let transport = (r.links.endpoints.get(&info.endpoint)).map_or("?", |e| e.transport.name());
        let entry = peers.entry((peer.to_hex(), transport)).or_default();
        let stats = link.stats();
        entry.rx_bytes += stats.rx_bytes;
        entry.tx_bytes += stats.tx_bytes;
        entry.rx_packets += stats.rx_datagrams;
        entry.tx_packets += stats.tx_datagrams;
        entry.dropped += stats.dropped;
        if let Some(rtt) = link.srtt().map(|d| d.as_secs_f64()) {
            entry.rtt = Some(entry.rtt.map_or(rtt, |r: f64| r.min(rtt)));
        }
    }
    e.single("meshrouter_links_up", Kind::Gauge, "links up", up);
    e.single(
        "meshrouter_links",
        Kind::Gauge,
        "links in the table (up, or coming up)",
        r.node.links().count(),
    );
    e.single(
        "meshrouter_link_limit",
        Kind::Gauge,
        "links at most (max_links): inbound handshakes past it are refused",
        r.config.max_links,
    );
    type Field = fn(&PeerLinks) -> Option<f64>;
    let per_link: [(&str, Kind, &str, Field); 6] = [
        (
            "meshrouter_link_rx_bytes_total",
            Kind::Counter,
            "bytes received on links up to the peer",
            |p| Some(p.rx_bytes as f64),
        ),
        (
            "meshrouter_link_tx_bytes_total",
            Kind::Counter,
            "bytes sent on links up to the peer",
            |p| Some(p.tx_bytes as f64),
        ),
        (
            "meshrouter_link_rx_packets_total",
            Kind::Counter,
            "authenticated datagrams received from the peer",
            |p| Some(p.rx_packets as f64),
        ),
        (
            "meshrouter_link_tx_packets_total",
            Kind::Counter,
            "datagrams sent to the peer",
            |p| Some(p.tx_packets as f64),
        ),
        (
            "meshrouter_link_dropped_packets_total",
            Kind::Counter,
            "datagrams from the peer dropped (failed authentication, replays, malformed)",
            |p| Some(p.dropped as f64),
        ),
        (
            "meshrouter_link_rtt_seconds",
            Kind::Gauge,
            "smoothed round trip of the peer's fastest link",
            |p| p.rtt,
        ),
    ];
    for (name, kind, help, field) in per_link {
        e.family(name, kind, help);
        for ((peer, transport), links) in &peers {
            if let Some(value) = field(links) {
                let labels = [("peer", peer.as_str()), ("transport", *transport)];
                if kind == Kind::Counter {
                    e.sample(name, &labels, value as u64);
                } else {
                    e.sample(name, &labels, value);
                }
            }
        }
    }

    let tree = r.node.tree();
    let root = tree.root();
    e.single(
        "meshrouter_tree_depth",
        Kind::Gauge,
        "hops from this node up to the tree's root",
        tree.coords().len(),
    );
    e.single(
        "meshrouter_tree_is_root",
        Kind::Gauge,
        "1 if this node is the root of its tree",
        u64::from(root == Some(r.node.public_key())),
    );
    e.family("meshrouter_tree_root_info", Kind::Gauge, "the tree's root");
    if let Some(root) = root {
        e.sample(
            "meshrouter_tree_root_info",
            &[("root", &root.to_hex())],
            1u64,
        );
    }
    e.single(
        "meshrouter_tree_entries",
        Kind::Gauge,
        "tree announcements held",
        tree.announcements().count(),
    );
    e.single(
        "meshrouter_tree_root_changes_total",
        Kind::Counter,
        "times the tree's root changed",
        r.root_changes,
    );

    let (mut sessions_up, mut sessions_pending) = (0usize, 0usize);
    for s in r.node.sessions().iter() {
        if s.up {
            sessions_up += 1;
        } else {
            sessions_pending += 1;
        }
    }
    e.family("meshrouter_sessions", Kind::Gauge, "end-to-end sessions");
    e.sample("meshrouter_sessions", &[("state", "up")], sessions_up);
    e.sample(
        "meshrouter_sessions",
        &[("state", "handshake")],
        sessions_pending,
    );
    e.single(
        "meshrouter_paths",
        Kind::Gauge,
        "destinations found by lookups",
        r.node.paths().iter().count(),
    );

    let stats = r.node.stats();
    e.single(
        "meshrouter_lookups_sent_total",
        Kind::Counter,
        "lookups sent",
        stats.lookups_sent,
    );
    e.single(
        "meshrouter_paths_broken_total",
        Kind::Counter,
        "paths reported broken",
        stats.paths_broken,
    );
    e.single(
        "meshrouter_forwarded_packets_total",
        Kind::Counter,
        "data packets forwarded for others",
        stats.forwarded,
    );
    e.single(
        "meshrouter_delivered_packets_total",
        Kind::Counter,
        "packets delivered to this node",
        stats.delivered,
    );
    e.single(
        "meshrouter_queue_drops_total",
        Kind::Counter,
        "packets dropped because a link's send queue was full",
        stats.queue_drops,
    );
    e.family(
        "meshrouter_drops_total",
        Kind::Counter,
        "packets the router dropped, by reason",
    );
    for (reason, count) in &stats.drops {
        e.sample("meshrouter_drops_total", &[("reason", reason)], *count);
    }
    driver_counters(&mut e, &r.counters);
    process_metrics(&mut e);
    e
}

/// The driver's counters (`meshrouter counters`, "driver"): one counter family each.
fn driver_counters(e: &mut Exposition, counters: &super::counters::DriverCounters) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(counters) else {
        return;
    };
    for (field, value) in fields {
        let Some(value) = value.as_u64() else {
            continue;
        };
        let name = format!("meshrouter_{field}_total");
        let help = format!("the daemon's `{field}` counter (meshrouter counters)");
        e.single(&name, Kind::Counter, &help, value);
    }
}

/// The process's CPU time and resident memory, under Prometheus's standard names.
fn process_metrics(e: &mut Exposition) {
    if let Some(seconds) = cpu_seconds() {
        e.single(
            "process_cpu_seconds_total",
            Kind::Counter,
            "user and system CPU time spent, seconds",
            seconds,
        );
    }
    if let Some(bytes) = resident_bytes() {
        e.single(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "resident memory size, bytes",
            bytes,
        );
    }
}

/// User and system time from `/proc/self/stat`, in the kernel's user-visible clock ticks (100 per
/// second on every Linux architecture: USER_HZ is fixed by the ABI).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: fields are counted after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// `VmRSS` from `/proc/self/status` (in kB there, whatever the page size).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_its_cpu_time_and_memory() {
        assert!(cpu_seconds().is_some());
        assert!(resident_bytes().is_some_and(|b| b > 1 << 20));
    }

    #[test]
    fn driver_counters_become_counter_families() {
        let counters = super::super::counters::DriverCounters {
            inbound_refused: 7,
            ..Default::default()
        };
        let mut e = Exposition::default();
        driver_counters(&mut e, &counters);
        let text = e.finish();
        assert!(
            text.contains("# TYPE meshrouter_inbound_refused_total counter\nmeshrouter_inbound_refused_total 7\n"),
            "{text}"
        );
    }
}
