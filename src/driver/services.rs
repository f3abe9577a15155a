//! The built-in services (CRDT sync, identity) as the daemon runs them: opened during privileged
//! setup, then run on their own thread ([`super::service_thread`]), fed service messages, link
//! events and API calls. Built without the `services` feature (routers with little flash), nothing
//! runs and the router only routes.

use crate::config::Config;
#[cfg(feature = "services")]
use crate::core::identity::PublicKey;
#[cfg(feature = "services")]
use crate::core::time::Instant;

/// What privileged setup opened for the services.
#[cfg(feature = "services")]
pub(crate) struct PreparedServices {
    crdt: Option<super::crdt::DaemonCrdt>,
    names: super::names::DaemonNames,
    name_feed: super::names::NameFeed,
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
    /// Mesh names (over the CRDT service).
    pub(crate) names: super::names::DaemonNames,
    /// NodeInfo: this node's description, and asking others for theirs.
    pub(crate) nodeinfo: super::nodeinfo::DaemonNodeInfo,
    /// Content-addressed files (opened when first used).
    pub(crate) blobs: super::blob_store::DaemonBlobs,
    /// Blocks between nodes: answering, and this node's fetches.
    pub(crate) exchange: super::blob_exchange::BlobExchange,
}

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
            .ruled(
                crate::services::names::NAMESPACE,
                crate::services::names::admit,
            )
            .ruled(
                crate::services::blobs::announce::NAMESPACE,
                crate::services::blobs::announce::admit,
            )
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
        let (names, name_feed) = super::names::DaemonNames::new(
            trust_root(&config.daemon.identity.admins),
            config.daemon.name.clone(),
        );
        Self {
            crdt,
            names,
            name_feed,
        }
    }

    /// The name table as it changes, for the DNS responder.
    pub(crate) fn name_feed(&self) -> super::names::NameFeed {
        self.name_feed.clone()
    }

    /// Starts the services for the node of `config` (to run on their own thread).
    pub(crate) fn start(self, config: &Config, seed: [u8; 32], now: Instant) -> Services {
        let mut identity_seed = seed;
        identity_seed[0] ^= 0x3c;
        let identity = super::identity::IdentityHost::new(
            &config.node_key,
            &config.daemon.identity,
            identity_seed,
            now,
        );
        let mut nodeinfo_seed = seed;
        nodeinfo_seed[0] ^= 0x69;
        let nodeinfo = super::nodeinfo::DaemonNodeInfo::new(
            &config.node_key,
            &config.daemon.nodeinfo,
            nodeinfo_seed,
            now,
        );
        Services {
            crdt: self.crdt,
            identity,
            names: self.names,
            nodeinfo,
            blobs: super::blob_store::DaemonBlobs::new(config.daemon.blobs.clone()),
            exchange: super::blob_exchange::BlobExchange::new(),
        }
    }
}

#[cfg(feature = "services")]
impl Services {
    /// The earliest service timer.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let earliest = crate::core::time::earliest;
        earliest(
            earliest(
                self.crdt.as_ref().and_then(|c| c.poll_timeout()),
                self.identity.poll_timeout(),
            ),
            earliest(self.nodeinfo.poll_timeout(), self.exchange.poll_timeout()),
        )
    }

    /// Mixes fresh entropy into the identity service's nonce streams. (The CRDT engine draws only
    /// timer jitter, which needs no secrecy.)
    pub(crate) fn reseed(&mut self, extra: &[u8; 32]) {
        self.identity.reseed(extra);
        self.nodeinfo.reseed(extra);
    }

    /// Runs due timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let Some(crdt) = &mut self.crdt {
            crdt.handle_timeout(now);
        }
        self.identity.handle_timeout(now);
        self.nodeinfo.handle_timeout(now);
        self.exchange.handle_timeout(now, &mut self.blobs);
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
            crate::services::nodeinfo::NODEINFO_PORT => {
                self.nodeinfo.on_message(now, source, payload);
            }
            crate::services::blobs::exchange::BLOB_PORT => {
                self.exchange
                    .on_message(now, source, payload, &mut self.blobs);
            }
            _ => return false,
        }
        true
    }

    /// A message a service wants sent: to `peer`'s `port`.
    pub(crate) fn poll_send(&mut self) -> Option<(PublicKey, u16, Vec<u8>)> {
        use crate::services::service::Service as _;
        self.crdt
            .as_mut()
            .and_then(|crdt| crdt.host.poll_send())
            .or_else(|| self.identity.poll_send())
            .or_else(|| self.nodeinfo.poll_send())
            .or_else(|| self.exchange.poll_send())
    }

    /// The registry's node keys with their roles, if they changed since last asked.
    pub(crate) fn roles_if_changed(
        &mut self,
    ) -> Option<std::collections::HashMap<PublicKey, Vec<String>>> {
        let now_secs = super::clock::wall_micros() / 1_000_000;
        self.identity.roles_if_changed(self.crdt.as_ref(), now_secs)
    }

    /// Builds the name table again if names changed (and claims the configured name once).
    pub(crate) fn refresh_names(&mut self, now: Instant) {
        if let Some(crdt) = &mut self.crdt {
            let wall_millis = super::clock::wall_micros() / 1000;
            self.names.refresh(crdt, now, wall_millis);
        }
    }

    /// Brings this node's announcements (namespace `blobs`) in line with the files it holds, if
    /// those may have changed: announces what it holds whole, withdraws what it no longer does.
    pub(crate) fn refresh_blobs(&mut self, now: Instant) {
        use crate::services::blobs::announce;
        let Some(crdt) = &mut self.crdt else {
            return;
        };
        if !self.blobs.take_changed() {
            return;
        }
        let held: std::collections::BTreeMap<String, u64> = match self.blobs.list() {
            Ok((roots, _)) => roots.iter().map(|(c, r)| (c.to_string(), r.size)).collect(),
            Err(e) => return tracing::warn!("blobs: cannot list the files held: {e}"),
        };
        let me = crdt.host.key().public_key();
        let announced: std::collections::BTreeMap<String, u64> = (crdt.host.store.replica())
            .documents()
            .filter(|((ns, _), _)| ns == announce::NAMESPACE)
            .filter_map(|((_, doc), log)| {
                let holders = announce::holders(&log.document().view());
                let (_, size) = holders.into_iter().find(|(k, _)| *k == me)?;
                Some((doc.clone(), size))
            })
            .collect();
        let wall_millis = super::clock::wall_micros() / 1000;
        for (cid, op) in announce::reconcile(&me, &held, &announced) {
            let name = (announce::NAMESPACE.to_owned(), cid);
            if let Err(e) = crdt.write(now, wall_millis, &name, announce::KIND, &op) {
                tracing::warn!(cid = %name.1, "blobs: cannot update the announcement: {e}");
            }
        }
    }

    /// Nodes that announced they hold `root`, other than this one.
    pub(crate) fn announced_holders(&self, root: &crate::services::blobs::Cid) -> Vec<PublicKey> {
        use crate::services::blobs::announce;
        let Some(crdt) = &self.crdt else {
            return Vec::new();
        };
        let me = crdt.host.key().public_key();
        (crdt.host.store.replica())
            .document(announce::NAMESPACE, &root.to_string())
            .map(|log| announce::holders(&log.document().view()))
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| *k != me)
            .collect()
    }

    /// A link to `peer` came up (`up`) or went down.
    pub(crate) fn link(&mut self, now: Instant, peer: PublicKey, up: bool) {
        if let Some(crdt) = &mut self.crdt {
            crdt.link(now, peer, up);
        }
        self.exchange.link(peer, up);
    }
}

#[cfg(not(feature = "services"))]
impl PreparedServices {
    /// Nothing to open.
    pub(crate) fn open(_config: &Config, _seed: [u8; 32]) -> Self {
        tracing::info!("built without the CRDT and identity services");
        Self
    }
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
