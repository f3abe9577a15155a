//! The built-in services (CRDT sync, identity) as the router runs them: opened during privileged
//! setup, then fed the router's timers, service deliveries and link events. Built without the
//! `services` feature (routers with little flash), every hook here does nothing and the router only
//! routes.

use crate::config::Config;
use crate::core::identity::PublicKey;
use crate::core::node::Node;
use crate::core::time::Instant;

/// What privileged setup opened for the services.
#[cfg(feature = "services")]
pub(crate) struct PreparedServices {
    crdt: Option<super::crdt::DaemonCrdt>,
}

/// What privileged setup opened for the services (nothing: built without them).
#[cfg(not(feature = "services"))]
pub(crate) struct PreparedServices;

/// The running services.
#[cfg(feature = "services")]
pub(crate) struct Services {
    /// The CRDT sync service, unless turned off or its database could not be opened.
    pub(crate) crdt: Option<super::crdt::DaemonCrdt>,
    /// The identity service.
    pub(crate) identity: super::identity::IdentityHost,
}

/// The running services (none: built without them).
#[cfg(not(feature = "services"))]
pub(crate) struct Services;

#[cfg(feature = "services")]
impl PreparedServices {
    /// Opens what needs privileges: the CRDT database (under /var/lib). A database that cannot be
    /// opened turns the service off rather than the router.
    pub(crate) fn open(config: &Config, seed: [u8; 32]) -> Self {
        let settings = &config.daemon.crdt;
        let crdt = settings.database.as_ref().and_then(|path| {
            let mut crdt_seed = seed;
            crdt_seed[0] ^= 0x5a;
            use crate::services::identity::registry;
            let replica = crate::services::crdt::replica::Replica::with_trust_root(trust_root(
                &config.daemon.identity.admins,
            ))
            .validated(registry::NAMESPACE, registry::admit)
            .with_quota(settings.quota);
            let key = &config.node_key;
            match super::crdt::DaemonCrdt::open(settings, path, key, crdt_seed, replica) {
                Ok(host) => {
                    tracing::info!(database = %path.display(), "CRDT store open");
                    Some(host)
                }
                Err(e) => {
                    tracing::error!("{e}; the CRDT service is off");
                    None
                }
            }
        });
        Self { crdt }
    }

    /// Starts the services for the node of `config`.
    pub(crate) fn start(self, config: &Config, seed: [u8; 32], now: Instant) -> Services {
        let mut identity_seed = seed;
        identity_seed[0] ^= 0x3c;
        let identity = super::identity::IdentityHost::new(
            &config.node_key,
            &config.daemon.identity,
            identity_seed,
            now,
        );
        Services {
            crdt: self.crdt,
            identity,
        }
    }
}

#[cfg(feature = "services")]
impl Services {
    /// The earliest service timer.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        crate::core::time::earliest(
            self.crdt.as_ref().and_then(|c| c.poll_timeout()),
            self.identity.poll_timeout(),
        )
    }

    /// Mixes fresh entropy into the identity service's nonce streams. (The CRDT engine draws only
    /// timer jitter, which needs no secrecy.)
    pub(crate) fn reseed(&mut self, extra: &[u8; 32]) {
        self.identity.reseed(extra);
    }

    /// Runs due timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let Some(crdt) = &mut self.crdt {
            crdt.handle_timeout(now);
        }
        self.identity.handle_timeout(now);
    }

    /// A service message from `source` to `port`; false if no service takes that port.
    pub(crate) fn deliver(
        &mut self,
        now: Instant,
        port: u16,
        source: PublicKey,
        payload: &[u8],
    ) -> bool {
        match port {
            crate::services::crdt::sync::SYNC_PORT => match &mut self.crdt {
                Some(crdt) => crdt.on_message(now, source, payload),
                None => return false,
            },
            crate::services::identity::proof::PROOF_PORT => {
                self.identity.on_message(now, source, payload);
            }
            _ => return false,
        }
        true
    }

    /// Sends what the services produced.
    pub(crate) fn drain(&mut self, now: Instant, node: &mut Node) {
        if let Some(crdt) = &mut self.crdt {
            crdt.drain(now, node);
        }
        self.identity.drain(now, node);
    }

    /// A link to `peer` came up (`up`) or went down.
    pub(crate) fn link(&mut self, now: Instant, peer: PublicKey, up: bool) {
        if let Some(crdt) = &mut self.crdt {
            crdt.link(now, peer, up);
        }
    }
}

#[cfg(not(feature = "services"))]
impl PreparedServices {
    /// Nothing to open.
    pub(crate) fn open(_config: &Config, _seed: [u8; 32]) -> Self {
        tracing::info!("built without the CRDT and identity services");
        Self
    }

    /// Nothing to start.
    pub(crate) fn start(self, _config: &Config, _seed: [u8; 32], _now: Instant) -> Services {
        Services
    }
}

#[cfg(not(feature = "services"))]
impl Services {
    /// No timers.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// No random streams.
    pub(crate) fn reseed(&mut self, _extra: &[u8; 32]) {}

    /// No timers.
    pub(crate) fn handle_timeout(&mut self, _now: Instant) {}

    /// No service takes any port.
    pub(crate) fn deliver(&mut self, _: Instant, _: u16, _: PublicKey, _: &[u8]) -> bool {
        false
    }

    /// Nothing to send.
    pub(crate) fn drain(&mut self, _now: Instant, _node: &mut Node) {}

    /// Nothing follows links.
    pub(crate) fn link(&mut self, _now: Instant, _peer: PublicKey, _up: bool) {}
}

/// The mesh's trust root: the configured admins (checked to be did:keys when the config was read).
#[cfg(feature = "services")]
fn trust_root(admins: &[String]) -> crate::services::crdt::access::TrustRoot {
    use crate::services::crdt::context::Actor;
    use crate::services::identity::did_key::parse_did_key;
    crate::services::crdt::access::TrustRoot::new(
        admins
            .iter()
            .filter_map(|did| parse_did_key(did).ok())
            .map(|key| Actor(*key.as_bytes())),
    )
}
