//! Dropping privileges after setup: switch to the configured user and group, and keep only the
//! capabilities the running daemon needs (`CAP_NET_ADMIN`; `CAP_NET_RAW` when raw Ethernet links are
//! configured, since interfaces that appear later need new packet sockets, or LAN interfaces, whose
//! raw ICMPv6 sockets are opened again when an interface comes back). Whatever of this fails
//! stops the daemon: it never runs on with more privilege than it was asked to keep.
//!
//! Runs while the process has a single thread, before the async runtime starts: Linux credentials
//! and capabilities are per thread, and threads created afterwards inherit the reduced set.

use std::collections::HashSet;

use caps::errors::CapsError;
use caps::{CapSet, Capability};
use tracing::{info, warn};

use super::DriverError;
use crate::config::Daemon;

/// The capabilities kept.
fn needed(config: &Daemon) -> HashSet<Capability> {
    let mut set = HashSet::from([Capability::CAP_NET_ADMIN]);
    let raw = config.discovery.iter().any(|r| r.ethernet)
        || config.peers.iter().any(|p| p.interface.is_some())
        || !config.lan.is_empty();
    if raw {
        set.insert(Capability::CAP_NET_RAW);
    }
    // The DNS responder's port 53 is bound before the drop, but under systemd (which grants it to
    // the unit) the capability cannot be given up: keep it rather than refuse to run.
    let dns_low_port = config.dns.runs(&config.lan)
        && (config.dns.listen.is_empty() || config.dns.listen.iter().any(|a| a.port() < 1024));
    if dns_low_port && cfg!(feature = "services") {
        set.insert(Capability::CAP_NET_BIND_SERVICE);
    }
    set
}

/// Switches user and group if configured, then trims capabilities and forbids gaining any back.
pub(crate) fn drop_privileges(config: &Daemon) -> Result<(), DriverError> {
    switch_user(config)?;
    trim_capabilities(&needed(config), &mut Kernel)?;
    forbid_new_privileges()
}

fn fail(what: &str, e: &dyn std::fmt::Display) -> DriverError {
    DriverError::Privileges(format!("{what}: {e}"))
}

/// Becomes the configured user and group (supplementary groups: just that group), keeping the
/// permitted capabilities across the switch for [`trim_capabilities`]. Nothing to do if the process
/// already runs as them (started so by systemd, say, which also forbids these calls).
fn switch_user(config: &Daemon) -> Result<(), DriverError> {
    use nix::unistd::{Gid, Uid};
    if config.user.is_none() && config.group.is_none() {
        if Uid::effective().is_root() {
            info!(
                "running as root (with only the capabilities it needs): set `user` in the \
                 configuration to run as an unprivileged user"
            );
        }
        return Ok(());
    }
    let user = match &config.user {
        Some(name) => Some(
            nix::unistd::User::from_name(name)
                .map_err(|e| fail("looking up the user", &e))?
                .ok_or_else(|| DriverError::Privileges(format!("no user named {name}")))?,
        ),
        None => None,
    };
    let gid = match &config.group {
        Some(name) => {
            nix::unistd::Group::from_name(name)
                .map_err(|e| fail("looking up the group", &e))?
                .ok_or_else(|| DriverError::Privileges(format!("no group named {name}")))?
                .gid
        }
        None => user.as_ref().map_or_else(nix::unistd::getgid, |u| u.gid),
    };
    let uid = user.as_ref().map(|u| u.uid);
    let ids = nix::unistd::getresuid().map_err(|e| fail("getresuid", &e))?;
    let gids = nix::unistd::getresgid().map_err(|e| fail("getresgid", &e))?;
    let groups = nix::unistd::getgroups().map_err(|e| fail("getgroups", &e))?;
    let is_uid = |u: Uid| [ids.real, ids.effective, ids.saved].iter().all(|i| *i == u);
    let is_gid = |g: Gid| {
        [gids.real, gids.effective, gids.saved]
            .iter()
            .all(|i| *i == g)
    };
    // Supplementary groups matter only for root, who can change them; a process that already is
    // the user (started so by systemd) has that user's groups, as the system's group file gives them.
    let groups_right = groups.iter().all(|g| *g == gid) || !ids.effective.is_root();
    if uid.is_none_or(is_uid) && is_gid(gid) && groups_right {
        info!(
            user = config.user.as_deref().unwrap_or("(unchanged)"),
            gid = gid.as_raw(),
            "already running as the configured user and group"
        );
        return Ok(());
    }
    caps::securebits::set_keepcaps(true).map_err(|e| fail("keeping capabilities", &e))?;
    nix::unistd::setgroups(&[gid]).map_err(|e| fail("setgroups", &e))?;
    nix::unistd::setgid(gid).map_err(|e| fail("setgid", &e))?;
    if let Some(uid) = uid {
        nix::unistd::setuid(uid).map_err(|e| fail("setuid", &e))?;
    }
    info!(
        user = config.user.as_deref().unwrap_or("(unchanged)"),
        gid = gid.as_raw(),
        "switched user and group"
    );
    Ok(())
}

/// The process's capability sets (a fake in tests).
trait CapabilitySets {
    fn read(&self, set: CapSet) -> Result<HashSet<Capability>, CapsError>;
    fn set(&mut self, set: CapSet, value: &HashSet<Capability>) -> Result<(), CapsError>;
}

/// The calling thread's sets, through `capget`/`capset`.
struct Kernel;

impl CapabilitySets for Kernel {
    fn read(&self, set: CapSet) -> Result<HashSet<Capability>, CapsError> {
        caps::read(None, set)
    }

    fn set(&mut self, set: CapSet, value: &HashSet<Capability>) -> Result<(), CapsError> {
        caps::set(None, set, value)
    }
}

/// A set of capabilities for a message: their names, or how many when there are many (root's).
fn names(set: &HashSet<Capability>) -> String {
    let mut names: Vec<String> = set.iter().map(ToString::to_string).collect();
    names.sort();
    match names.len() {
        0 => "none".into(),
        1..=4 => names.join(", "),
        n => format!("{n} other capabilities"),
    }
}

/// Leaves exactly `keep` (of what is permitted) as the permitted and effective capabilities, and no
/// other inheritable one; an error if that cannot be done. No `capset` call when the sets are already
/// right (systemd granted exactly these, and its system call filter refuses `capset`).
fn trim_capabilities(
    keep: &HashSet<Capability>,
    sets: &mut dyn CapabilitySets,
) -> Result<(), DriverError> {
    let read = |sets: &dyn CapabilitySets, set| {
        sets.read(set)
            .map_err(|e| fail("reading the process's capabilities", &e))
    };
    let permitted = read(sets, CapSet::Permitted)?;
    if keep.contains(&Capability::CAP_NET_RAW) && !permitted.contains(&Capability::CAP_NET_RAW) {
        warn!(
            "raw Ethernet links or LAN interfaces are configured but CAP_NET_RAW is not permitted: \
             they will fail (under systemd, add it to AmbientCapabilities: see ethernet.conf or lan.conf)"
        );
    }
    let keep: HashSet<Capability> = keep.intersection(&permitted).copied().collect();
    let right = |sets: &dyn CapabilitySets| -> Result<bool, DriverError> {
        Ok(read(sets, CapSet::Permitted)? == keep
            && read(sets, CapSet::Effective)? == keep
            && read(sets, CapSet::Inheritable)?.is_subset(&keep))
    };
    if right(sets)? {
        return Ok(());
    }
    let extra: HashSet<Capability> = permitted.difference(&keep).copied().collect();
    let inheritable: HashSet<Capability> = read(sets, CapSet::Inheritable)?
        .intersection(&keep)
        .copied()
        .collect();
    let trimmed = sets
        .set(CapSet::Inheritable, &inheritable)
        .and_then(|()| sets.set(CapSet::Effective, &keep))
        .and_then(|()| sets.set(CapSet::Permitted, &keep));
    let refuse = |reason: String| {
        DriverError::Privileges(format!(
            "{reason}. The daemon needs only {} and will not run holding {} as well: start it \
             with no more than it needs (systemd: only those in AmbientCapabilities= and \
             CapabilityBoundingSet=, and no ethernet.conf drop-in unless raw Ethernet links or \
             Ethernet discovery are configured; by hand: setpriv --inh-caps, --ambient-caps and \
             --bounding-set), or where it may call capset (no seccomp filter that refuses it, \
             such as systemd's SystemCallFilter=~@privileged)",
            names(&keep),
            names(&extra),
        ))
    };
    if let Err(e) = trimmed {
        return Err(refuse(format!("could not give up capabilities: {e}")));
    }
    if !right(sets)? {
        return Err(refuse(
            "capabilities still held after giving them up (the kernel ignored capset)".into(),
        ));
    }
    Ok(())
}

/// Sets `no_new_privs`: no `execve` may give this process (or a child) privileges it does not hold,
/// not even as uid 0, where an `execve` would otherwise bring every capability back. The daemon
/// runs no programs, so it costs nothing.
fn forbid_new_privileges() -> Result<(), DriverError> {
    use nix::sys::prctl;
    if prctl::get_no_new_privs().unwrap_or(false) {
        return Ok(());
    }
    prctl::set_no_new_privs().map_err(|e| fail("setting no_new_privs", &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::{CAP_CHOWN, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN};

    /// Capability sets in memory; `capset` fails as a seccomp filter makes it, or is ignored.
    struct Fake {
        permitted: HashSet<Capability>,
        effective: HashSet<Capability>,
        inheritable: HashSet<Capability>,
        refuse: bool,
        ignore: bool,
        calls: usize,
    }

    impl Fake {
        fn new(held: &[Capability]) -> Self {
            Self {
                permitted: held.iter().copied().collect(),
                effective: held.iter().copied().collect(),
                inheritable: HashSet::new(),
                refuse: false,
                ignore: false,
                calls: 0,
            }
        }
    }

    impl CapabilitySets for Fake {
        fn read(&self, set: CapSet) -> Result<HashSet<Capability>, CapsError> {
            Ok(match set {
                CapSet::Permitted => self.permitted.clone(),
                CapSet::Effective => self.effective.clone(),
                CapSet::Inheritable => self.inheritable.clone(),
                _ => HashSet::new(),
            })
        }

        fn set(&mut self, set: CapSet, value: &HashSet<Capability>) -> Result<(), CapsError> {
            self.calls += 1;
            if self.refuse {
                return Err("Operation not permitted (os error 1)".into());
            }
            if !self.ignore {
                match set {
                    CapSet::Permitted => self.permitted = value.clone(),
                    CapSet::Effective => self.effective = value.clone(),
                    CapSet::Inheritable => self.inheritable = value.clone(),
                    _ => {}
                }
            }
            Ok(())
        }
    }

    fn admin() -> HashSet<Capability> {
        HashSet::from([CAP_NET_ADMIN])
    }

    #[test]
    fn root_keeps_only_what_it_needs() {
        let mut root = Fake::new(&[CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN, CAP_CHOWN]);
        root.inheritable = HashSet::from([CAP_SYS_ADMIN, CAP_NET_ADMIN]);
        trim_capabilities(&admin(), &mut root).unwrap();
        assert_eq!(root.permitted, admin());
        assert_eq!(root.effective, admin());
        assert_eq!(root.inheritable, admin());
    }

    #[test]
    fn a_lan_gateway_keeps_raw_sockets_and_port_53() {
        let mut config = Daemon::default();
        assert_eq!(needed(&config), admin());
        config.lan = vec!["wlan0".into()];
        let lan = needed(&config);
        assert!(lan.contains(&CAP_NET_RAW));
        assert_eq!(
            lan.contains(&Capability::CAP_NET_BIND_SERVICE),
            cfg!(feature = "services")
        );
        config.dns.listen = vec!["[::1]:5353".parse().unwrap()];
        assert!(!needed(&config).contains(&Capability::CAP_NET_BIND_SERVICE));
    }

    #[test]
    fn a_refused_trim_stops_the_daemon_and_says_what_to_do() {
        let mut filtered = Fake::new(&[CAP_NET_ADMIN, CAP_SYS_ADMIN]);
        filtered.refuse = true;
        let error = trim_capabilities(&admin(), &mut filtered)
            .unwrap_err()
            .to_string();
        assert!(error.contains("could not give up capabilities"), "{error}");
        assert!(error.contains("holding CAP_SYS_ADMIN as well"), "{error}");
        assert!(error.contains("needs only CAP_NET_ADMIN"), "{error}");
        assert!(error.contains("AmbientCapabilities="), "{error}");
        assert!(error.contains("capset"), "{error}");
        // A capset that reports success but changes nothing is caught too.
        let mut ignoring = Fake::new(&[CAP_NET_ADMIN, CAP_SYS_ADMIN]);
        ignoring.ignore = true;
        let error = trim_capabilities(&admin(), &mut ignoring)
            .unwrap_err()
            .to_string();
        assert!(error.contains("still held"), "{error}");
    }

    #[test]
    fn exactly_what_is_needed_makes_no_capset_call() {
        // systemd's AmbientCapabilities=CAP_NET_ADMIN (inheritable too) with capset filtered out.
        let mut granted = Fake::new(&[CAP_NET_ADMIN]);
        granted.inheritable = admin();
        granted.refuse = true;
        trim_capabilities(&admin(), &mut granted).unwrap();
        assert_eq!(granted.calls, 0);
        // A raw link configured but CAP_NET_RAW not granted: a warning, not an error.
        let raw = HashSet::from([CAP_NET_ADMIN, CAP_NET_RAW]);
        trim_capabilities(&raw, &mut granted).unwrap();
        assert_eq!(granted.calls, 0);
        // Nothing at all (an unprivileged user without capabilities): nothing to give up.
        let mut none = Fake::new(&[]);
        none.refuse = true;
        trim_capabilities(&admin(), &mut none).unwrap();
    }

    #[test]
    fn permitted_but_not_effective_is_raised() {
        // After setuid from root with keepcaps, the effective set is empty.
        let mut switched = Fake::new(&[CAP_NET_ADMIN]);
        switched.effective.clear();
        trim_capabilities(&admin(), &mut switched).unwrap();
        assert_eq!(switched.effective, admin());
    }
}
