//! Dropping privileges after setup: switch to the configured user and group, and keep only the
//! capabilities the running daemon needs (`CAP_NET_ADMIN`; `CAP_NET_RAW` when raw Ethernet links are
//! configured, since interfaces that appear later need new packet sockets).
//!
//! Runs while the process has a single thread, before the async runtime starts: Linux credentials
//! and capabilities are per thread, and threads created afterwards inherit the reduced set.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use tracing::{info, warn};

use super::DriverError;
use crate::config::Daemon;

/// The capabilities kept.
fn needed(config: &Daemon) -> HashSet<Capability> {
    let mut set = HashSet::from([Capability::CAP_NET_ADMIN]);
    let raw = config.discovery.iter().any(|r| r.ethernet)
        || config.peers.iter().any(|p| p.interface.is_some());
    if raw {
        set.insert(Capability::CAP_NET_RAW);
    }
    set
}

/// Switches user and group if configured, then trims capabilities.
pub(crate) fn drop_privileges(config: &Daemon) -> Result<(), DriverError> {
    let fail =
        |what: &str, e: &dyn std::fmt::Display| DriverError::Privileges(format!("{what}: {e}"));
    let keep = needed(config);
    if config.user.is_some() || config.group.is_some() {
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
        caps::securebits::set_keepcaps(true).map_err(|e| fail("keeping capabilities", &e))?;
        nix::unistd::setgroups(&[gid]).map_err(|e| fail("setgroups", &e))?;
        nix::unistd::setgid(gid).map_err(|e| fail("setgid", &e))?;
        if let Some(user) = &user {
            nix::unistd::setuid(user.uid).map_err(|e| fail("setuid", &e))?;
        }
        caps::set(None, CapSet::Permitted, &keep).map_err(|e| fail("capabilities", &e))?;
        caps::set(None, CapSet::Effective, &keep).map_err(|e| fail("capabilities", &e))?;
        info!(
            user = config.user.as_deref().unwrap_or("(unchanged)"),
            gid = gid.as_raw(),
            "dropped privileges"
        );
        return Ok(());
    }
    // Running as root (or with ambient capabilities): still give up what we do not use.
    let permitted = caps::read(None, CapSet::Permitted).unwrap_or_default();
    if keep.contains(&Capability::CAP_NET_RAW) && !permitted.contains(&Capability::CAP_NET_RAW) {
        warn!(
            "raw Ethernet links are configured but CAP_NET_RAW is not permitted: they will fail \
             (under systemd, add it to AmbientCapabilities)"
        );
    }
    let keep: HashSet<Capability> = keep.intersection(&permitted).copied().collect();
    if permitted.is_subset(&keep) {
        // Nothing to give up (systemd already granted exactly these): no capset call, which the
        // service's system call filter refuses.
        return Ok(());
    }
    if let Err(e) = caps::set(None, CapSet::Effective, &keep)
        .and_then(|()| caps::set(None, CapSet::Permitted, &keep))
    {
        warn!("could not trim capabilities: {e}");
    }
    Ok(())
}
