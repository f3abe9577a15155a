//! Live reconfiguration: SIGHUP and `meshrouter reload` read the configuration file again and
//! apply what changed while links, sessions and routed traffic go on. A file that does not parse
//! or validate changes nothing. Passwords new to the file are stretched first on a blocking
//! thread (Argon2id: tens of milliseconds, half a second on a Raspberry Pi), so the router keeps
//! routing meanwhile; then everything is applied at once:
//!
//! - peers: those gone from `peers` are removed (their links close), new ones are dialled; peers
//!   added with `addpeer` (not in the file) stay;
//! - listeners: new `listen` addresses are bound (ports below 1024 fail once privileges are
//!   dropped: said in the answer), removed ones close with the links that came in on them;
//! - discovery rules (interfaces, password, beacon/listen, priority, transports), if discovery was
//!   on at start; `allowed_public_keys`; `max_links`; the firewall;
//! - the CRDT service's replicated namespaces and per-peer filters.
//!
//! Everything else (the TUN device, the API socket, users, the CRDT database, LAN, DNS, names,
//! NodeInfo, blobs, apps, metrics_listen, status_listen, the group password, identity admins, CRDT quotas) is
//! named in the answer's `restart_needed` when it changed.
//!
//! This file decides ([`plan`], [`running`]): pure functions of the old and new settings, tested
//! here; the router carries the plan out (`Router::apply_reload`).

use std::collections::BTreeSet;

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::input::Input;
use super::passwords::{PasswordKeys, Stretched, passwords_of};
use super::request::ApiResponse;
use crate::config::{Daemon, LinkUri};
use crate::core::password::PasswordKey;

/// Reads the configuration file `path` again; a refusal to answer with if it does not parse or
/// validate.
pub(crate) fn load(path: &std::path::Path) -> Result<Daemon, ApiResponse> {
    match crate::config::Config::load(path) {
        Ok(config) => {
            let mut daemon = config.daemon;
            daemon.config_path = Some(path.to_owned());
            Ok(daemon)
        }
        Err(e) => Err(ApiResponse::error(
            400,
            format!("{e}; the running configuration stays"),
        )),
    }
}

/// The passwords of `config` not stretched yet.
pub(crate) fn unstretched(config: &Daemon, passwords: &PasswordKeys) -> Vec<Vec<u8>> {
    let mut needed: Vec<Vec<u8>> = passwords_of(config)
        .filter(|p| !passwords.has(Some(p)))
        .map(<[u8]>::to_vec)
        .collect();
    needed.sort();
    needed.dedup();
    needed
}

/// Stretches `needed` on a blocking thread, then hands the router `config` to apply
/// ([`Input::ReloadStretched`]).
pub(crate) fn stretch_then_apply(
    needed: Vec<Vec<u8>>,
    config: Daemon,
    reply: Option<oneshot::Sender<ApiResponse>>,
    inputs: mpsc::Sender<Input>,
) {
    tokio::spawn(async move {
        let stretched = tokio::task::spawn_blocking(move || {
            (needed.into_iter())
                .map(|p| {
                    let key = PasswordKey::derive(&p);
                    (p, key)
                })
                .collect::<Stretched>()
        })
        .await
        .unwrap_or_default();
        let _ = inputs
            .send(Input::ReloadStretched {
                config: Box::new(config),
                stretched,
                reply,
            })
            .await;
    });
}

/// What a reload changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Peers gone from the file, as written.
    pub(crate) peers_removed: Vec<String>,
    /// Peers new in the file.
    pub(crate) peers_added: Vec<LinkUri>,
    /// Listeners gone from the file, as written.
    pub(crate) listeners_removed: Vec<String>,
    /// Listeners new in the file.
    pub(crate) listeners_added: Vec<LinkUri>,
    /// Discovery rules changed (and discovery runs, so they apply).
    pub(crate) discovery: bool,
    pub(crate) allowed_public_keys: bool,
    pub(crate) max_links: bool,
    pub(crate) firewall: bool,
    /// The CRDT namespaces replicated, or the per-peer filters, changed.
    pub(crate) crdt_filters: bool,
    /// Settings that changed but apply at the next start.
    pub(crate) restart_needed: Vec<&'static str>,
}

/// Compares settings by their debug form (every settings type has one; not all compare).
fn differs(a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

/// What changes from `old` to `new`. `discovery_running`: discovery's sockets were opened at start.
pub(crate) fn plan(old: &Daemon, new: &Daemon, discovery_running: bool) -> Plan {
    let texts =
        |list: &[LinkUri]| -> BTreeSet<String> { list.iter().map(|u| u.text.clone()).collect() };
    let (old_peers, new_peers) = (texts(&old.peers), texts(&new.peers));
    let (old_listen, new_listen) = (texts(&old.listen), texts(&new.listen));
    Plan {
        peers_removed: old_peers.difference(&new_peers).cloned().collect(),
        peers_added: (new.peers.iter())
            .filter(|u| !old_peers.contains(&u.text))
            .cloned()
            .collect(),
        listeners_removed: old_listen.difference(&new_listen).cloned().collect(),
        listeners_added: (new.listen.iter())
            .filter(|u| !old_listen.contains(&u.text))
            .cloned()
            .collect(),
        discovery: discovery_running && differs(&old.discovery, &new.discovery),
        allowed_public_keys: old.allowed_public_keys != new.allowed_public_keys,
        max_links: old.max_links != new.max_links,
        firewall: differs(&old.firewall, &new.firewall),
        crdt_filters: differs(&old.crdt.namespaces, &new.crdt.namespaces)
            || differs(&old.crdt.peers, &new.crdt.peers),
        restart_needed: restart_needed(old, new, discovery_running),
    }
}

/// The configuration the daemon runs on after the reload: `new`, but with the settings that need a
/// restart as they were, discovery as it was if it is not running, and only the listeners that
/// started (`listening`).
pub(crate) fn running(
    old: &Daemon,
    mut new: Daemon,
    plan: &Plan,
    listening: Vec<LinkUri>,
    discovery_running: bool,
) -> Daemon {
    new.listen = listening;
    if !discovery_running {
        new.discovery = old.discovery.clone();
    }
    for field in &plan.restart_needed {
        keep_old(&mut new, old, field);
    }
    new
}

/// A URI as written, without its query (which may hold a password).
pub(crate) fn display(text: &str) -> &str {
    text.split('?').next().unwrap_or(text)
}

/// Sends `response` to `reply`, or logs it.
pub(crate) fn answer(reply: Option<oneshot::Sender<ApiResponse>>, response: ApiResponse) {
    match reply {
        Some(reply) => {
            let _ = reply.send(response);
        }
        None if response.status == 200 => {}
        None => warn!(error = %response.body["error"], "reload refused"),
    }
}

/// The settings that changed but apply only at the next start.
fn restart_needed(old: &Daemon, new: &Daemon, discovery_running: bool) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let checks: [(&'static str, bool); 17] = [
        ("tun_name", old.tun_name != new.tun_name),
        ("tun_mtu", old.tun_mtu != new.tun_mtu),
        ("api_socket", old.api_socket != new.api_socket),
        ("api_group", old.api_group != new.api_group),
        ("user", old.user != new.user || old.group != new.group),
        ("group_password", old.group_password != new.group_password),
        ("crdt.database", old.crdt.database != new.crdt.database),
        ("crdt.quota", differs(&old.crdt.quota, &new.crdt.quota)),
        (
            "identity.admins",
            old.identity.admins != new.identity.admins,
        ),
        (
            "lan",
            old.lan != new.lan || old.lan_default_route != new.lan_default_route,
        ),
        ("name", old.name != new.name),
        ("dns", differs(&old.dns, &new.dns)),
        ("nodeinfo", old.nodeinfo != new.nodeinfo),
        ("blobs", differs(&old.blobs, &new.blobs)),
        ("apps", differs(&old.apps, &new.apps)),
        ("metrics_listen", old.metrics_listen != new.metrics_listen),
        ("status_listen", old.status_listen != new.status_listen),
    ];
    for (field, changed) in checks {
        if changed {
            fields.push(field);
        }
    }
    if !discovery_running && !new.discovery.is_empty() {
        fields.push("discovery (off at start)");
    }
    fields
}

/// Puts back the running value of a setting that needs a restart.
fn keep_old(running: &mut Daemon, old: &Daemon, field: &str) {
    match field {
        "tun_name" => running.tun_name = old.tun_name.clone(),
        "tun_mtu" => running.tun_mtu = old.tun_mtu,
        "api_socket" => running.api_socket = old.api_socket.clone(),
        "api_group" => running.api_group = old.api_group.clone(),
        "user" => {
            running.user = old.user.clone();
            running.group = old.group.clone();
        }
        "group_password" => running.group_password = old.group_password.clone(),
        "crdt.database" => running.crdt.database = old.crdt.database.clone(),
        "crdt.quota" => running.crdt.quota = old.crdt.quota,
        "identity.admins" => running.identity = old.identity.clone(),
        "lan" => {
            running.lan = old.lan.clone();
            running.lan_default_route = old.lan_default_route;
        }
        "name" => running.name = old.name.clone(),
        "dns" => running.dns = old.dns.clone(),
        "nodeinfo" => running.nodeinfo = old.nodeinfo.clone(),
        "blobs" => running.blobs = old.blobs.clone(),
        "apps" => running.apps = old.apps.clone(),
        "metrics_listen" => running.metrics_listen = old.metrics_listen,
        "status_listen" => running.status_listen = old.status_listen.clone(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> LinkUri {
        LinkUri::parse(text).unwrap()
    }

    fn config() -> Daemon {
        Daemon {
            peers: vec![uri("udp://a:1"), uri("tls://b:443?priority=1")],
            listen: vec![uri("udp://[::]:9100")],
            ..Daemon::default()
        }
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        assert_eq!(plan(&config(), &config(), true), Plan::default());
    }

    #[test]
    fn peers_and_listeners_are_compared_as_written() {
        let mut new = config();
        new.peers = vec![uri("tls://b:443?priority=1"), uri("udp://c:1")];
        new.listen = vec![uri("udp://[::]:9200")];
        let plan = plan(&config(), &new, true);
        assert_eq!(plan.peers_removed, ["udp://a:1"]);
        assert_eq!(plan.peers_added, [uri("udp://c:1")]);
        assert_eq!(plan.listeners_removed, ["udp://[::]:9100"]);
        assert_eq!(plan.listeners_added, [uri("udp://[::]:9200")]);
        assert!(plan.restart_needed.is_empty());
        // A changed query is another peer: the old one goes, the new one comes.
        let mut new = config();
        new.peers[1] = uri("tls://b:443?priority=2");
        let plan = super::plan(&config(), &new, true);
        assert_eq!(plan.peers_removed, ["tls://b:443?priority=1"]);
        assert_eq!(plan.peers_added.len(), 1);
    }

    #[test]
    fn settings_that_need_a_restart_are_named_and_kept() {
        let mut new = config();
        new.tun_mtu = 1400;
        new.metrics_listen = Some("[::1]:9464".parse().unwrap());
        new.max_links = 8;
        let plan = plan(&config(), &new, true);
        assert_eq!(plan.restart_needed, ["tun_mtu", "metrics_listen"]);
        assert!(plan.max_links);
        let listening = new.listen.clone();
        let running = running(&config(), new, &plan, listening, true);
        assert_eq!(running.tun_mtu, config().tun_mtu);
        assert_eq!(running.metrics_listen, None);
        assert_eq!(running.max_links, 8, "applied at once");
    }

    #[test]
    fn discovery_off_at_start_needs_a_restart_and_stays_off() {
        let mut new = config();
        new.discovery = vec![crate::config::DiscoveryRule::everywhere()];
        let plan = plan(&config(), &new, false);
        assert!(!plan.discovery);
        assert_eq!(plan.restart_needed, ["discovery (off at start)"]);
        let running = running(&config(), new.clone(), &plan, new.listen.clone(), false);
        assert!(running.discovery.is_empty());
        // Running: the rules apply.
        let mut old = config();
        old.discovery = vec![crate::config::DiscoveryRule::everywhere()];
        let mut changed = old.clone();
        changed.discovery[0].priority = 3;
        let plan = super::plan(&old, &changed, true);
        assert!(plan.discovery && plan.restart_needed.is_empty());
    }

    #[test]
    fn a_listener_that_did_not_start_is_not_in_the_running_configuration() {
        let mut new = config();
        new.listen.push(uri("tls://0.0.0.0:443"));
        let plan = plan(&config(), &new, true);
        let running = running(&config(), new, &plan, config().listen, true);
        assert_eq!(running.listen, config().listen);
    }

    #[test]
    fn passwords_to_stretch_are_the_new_ones_once_each() {
        let mut new = config();
        new.peers.push(uri("udp://c:1?password=shore"));
        new.listen.push(uri("udp://[::]:9300?password=shore"));
        new.listen.push(uri("udp://[::]:9400?password=reef"));
        let none = PasswordKeys::default();
        assert_eq!(
            unstretched(&new, &none),
            [b"reef".to_vec(), b"shore".to_vec()]
        );
    }
}
