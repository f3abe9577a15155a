//! The identity service as the daemon runs it: this node's sign-in challenges, proofs of
//! possession over the overlay (answers and the API's pending requests), and the member registry
//! read from the CRDT store (rebuilt only when its documents change).

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::crdt::{DaemonCrdt, HostError};
use super::request::ApiResponse;
use crate::config::IdentitySettings;
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::time::Instant;
use crate::services::crdt::document::{Edit, Op};
use crate::services::crdt::replica::DocName;
use crate::services::identity::challenge::Challenges;
use crate::services::identity::did_key::did_key;
use crate::services::identity::proof::{PROOF_PORT, ProofOutcome, ProofService};
use crate::services::identity::registry::{
    ENROLLMENTS, ENROLLMENTS_KIND, MEMBERS, NAMESPACE, REVOCATIONS, REVOCATIONS_KIND, Registry,
};

/// Why the registry cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryUnavailable {
    /// No CRDT store to keep it in.
    #[error("the CRDT service is off, and the member registry lives in it")]
    NoStore,
    /// The write failed.
    #[error("{0}")]
    Write(#[from] HostError),
}

/// The running identity service.
pub(crate) struct IdentityHost {
    pub(crate) key: NodeKey,
    pub(crate) did: String,
    /// Configured admins and this node.
    admins: Vec<String>,
    pub(crate) challenges: Challenges,
    proofs: ProofService,
    /// API requests waiting for a proof: request id → reply.
    waiting: HashMap<u64, oneshot::Sender<ApiResponse>>,
    registry: Option<CachedRegistry>,
    /// The roles last handed to the firewall, and the registry version they came from.
    published_roles: Option<HashMap<PublicKey, Vec<String>>>,
    published_from: Option<(RegistryHeads, u64)>,
    /// Verifications asked of the API, by kind (a fixed set of names) and whether they passed.
    verifications: std::collections::BTreeMap<(&'static str, bool), u64>,
}

/// The registry, the heads of the two documents it was read from, and when (wall seconds).
/// The heads of the registry's documents (members, enrollments, revocations).
type RegistryHeads = [Option<[u8; 8]>; 3];

struct CachedRegistry {
    heads: RegistryHeads,
    read_at: u64,
    registry: Registry,
}

impl IdentityHost {
    /// The service of the node with `key`.
    pub(crate) fn new(
        key: &NodeKey,
        settings: &IdentitySettings,
        seed: [u8; 32],
        now: Instant,
    ) -> Self {
        let did = did_key(&key.public_key());
        let mut admins = settings.admins.clone();
        admins.push(did.clone());
        let domain = crate::core::address::node_address(&key.public_key()).to_string();
        let mut proof_seed = seed;
        proof_seed[0] ^= 0xa5;
        Self {
            key: key.duplicate(),
            did,
            admins,
            challenges: Challenges::new(&domain, seed),
            proofs: ProofService::new(key.duplicate(), proof_seed, now),
            waiting: HashMap::new(),
            verifications: std::collections::BTreeMap::new(),
            registry: None,
            published_roles: None,
            published_from: None,
        }
    }

    /// Mixes fresh entropy into the streams the challenge and proof nonces come from.
    /// Counts a verification of `kind` (for the metrics).
    pub(crate) fn count_verification(&mut self, kind: &'static str, accepted: bool) {
        *self.verifications.entry((kind, accepted)).or_default() += 1;
    }

    /// Verifications counted: (kind, accepted) and how many.
    pub(crate) fn verifications(&self) -> impl Iterator<Item = ((&'static str, bool), u64)> + '_ {
        self.verifications.iter().map(|(k, n)| (*k, *n))
    }

    pub(crate) fn reseed(&mut self, extra: &[u8; 32]) {
        self.challenges.reseed(extra);
        self.proofs.reseed(extra);
    }

    /// The admins this node honours.
    pub(crate) fn admins(&self) -> &[String] {
        &self.admins
    }

    /// The registry as of the store's current documents, at wall time `now_secs`.
    pub(crate) fn registry(
        &mut self,
        crdt: Option<&DaemonCrdt>,
        now_secs: u64,
    ) -> Result<&Registry, RegistryUnavailable> {
        let replica = crdt
            .ok_or(RegistryUnavailable::NoStore)?
            .host
            .store
            .replica();
        let members = replica.document(NAMESPACE, MEMBERS);
        let enrollments = replica.document(NAMESPACE, ENROLLMENTS);
        let revocations = replica.document(NAMESPACE, REVOCATIONS);
        let heads = [
            members.map(|l| l.heads_hash()),
            enrollments.map(|l| l.heads_hash()),
            revocations.map(|l| l.heads_hash()),
        ];
        // Rebuilt when the documents change, and once a minute (enrollments dated ahead of a
        // lagging clock become valid).
        let fresh =
            matches!(&self.registry, Some(c) if c.heads == heads && now_secs < c.read_at + 60);
        if !fresh {
            let registry = Registry::load(
                self.admins.iter().cloned(),
                members.map(|l| l.document().view()).as_ref(),
                enrollments.map(|l| l.document().view()).as_ref(),
                revocations.map(|l| l.document().view()).as_ref(),
                now_secs,
            );
            self.registry = Some(CachedRegistry {
                heads,
                read_at: now_secs,
                registry,
            });
        }
        Ok(&self.registry.as_ref().expect("set above").registry)
    }

    /// The registry's members that are node keys (did:keys) and not revoked, with their roles, if
    /// they differ from what this last returned.
    pub(crate) fn roles_if_changed(
        &mut self,
        crdt: Option<&DaemonCrdt>,
        now_secs: u64,
    ) -> Option<HashMap<PublicKey, Vec<String>>> {
        use crate::services::identity::did_key::parse_did_key;
        self.registry(crdt, now_secs).ok()?;
        let cached = self.registry.as_ref()?;
        let from = (cached.heads, cached.read_at);
        if self.published_from == Some(from) {
            return None;
        }
        self.published_from = Some(from);
        let registry = &cached.registry;
        let roles: HashMap<PublicKey, Vec<String>> = (registry.members())
            .filter(|m| registry.member(&m.did).is_ok())
            .filter_map(|m| Some((parse_did_key(&m.did).ok()?, m.roles.clone())))
            .collect();
        if self.published_roles.as_ref() == Some(&roles) {
            return None;
        }
        self.published_roles = Some(roles.clone());
        Some(roles)
    }

    /// Files `token` (an enrollment for `member`, or a revocation when `member` is `None`) in the
    /// registry documents.
    pub(crate) fn file(
        &mut self,
        crdt: Option<&mut DaemonCrdt>,
        now: Instant,
        wall_millis: u64,
        member: Option<&str>,
        token: String,
    ) -> Result<(), RegistryUnavailable> {
        let crdt = crdt.ok_or(RegistryUnavailable::NoStore)?;
        // Both documents only grow, and adding a token twice would cover its first add: file a
        // token once.
        use crate::services::crdt::document::View;
        let doc = if member.is_some() {
            ENROLLMENTS
        } else {
            REVOCATIONS
        };
        let view =
            (crdt.host.store.replica().document(NAMESPACE, doc)).map(|l| l.document().view());
        let filed = match (view, member) {
            (Some(View::Set(tokens)), None) => tokens.contains(&token),
            (Some(View::Map(entries)), Some(did)) => {
                matches!(entries.get(did), Some(View::Set(tokens)) if tokens.contains(&token))
            }
            _ => false,
        };
        if filed {
            return Ok(());
        }
        let (doc, kind, op) = match member {
            Some(did) => (
                ENROLLMENTS,
                ENROLLMENTS_KIND,
                Op::Key(did.to_owned(), Edit::Add(token)),
            ),
            None => (REVOCATIONS, REVOCATIONS_KIND, Op::Value(Edit::Add(token))),
        };
        let name: DocName = (NAMESPACE.to_owned(), doc.to_owned());
        crdt.write(now, wall_millis, &name, kind, &op)?;
        self.registry = None;
        Ok(())
    }

    /// Asks `prover` over the overlay to prove its key; `reply` gets the answer.
    pub(crate) fn prove(
        &mut self,
        now: Instant,
        prover: PublicKey,
        reply: oneshot::Sender<ApiResponse>,
    ) {
        let id = self.proofs.request(now, prover);
        self.waiting.insert(id, reply);
    }

    /// A message on the proof port.
    pub(crate) fn on_message(&mut self, now: Instant, from: PublicKey, payload: &[u8]) {
        self.proofs.handle_message(now, from, payload);
        self.answer(now);
    }

    /// Timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.proofs.handle_timeout(now);
        self.answer(now);
    }

    /// When [`Self::handle_timeout`] has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.proofs.poll_timeout()
    }

    /// A message the proof service wants sent: to `peer`'s proof port.
    pub(crate) fn poll_send(&mut self) -> Option<(PublicKey, u16, Vec<u8>)> {
        let (peer, bytes) = self.proofs.poll_transmit()?;
        Some((peer, PROOF_PORT, bytes))
    }

    fn answer(&mut self, now: Instant) {
        while let Some(outcome) = self.proofs.poll_outcome() {
            if let Some(reply) = self.waiting.remove(&outcome.id) {
                let _ = reply.send(proof_response(&self.key.public_key(), now, &outcome));
            }
        }
    }
}

fn proof_response(me: &PublicKey, now: Instant, outcome: &ProofOutcome) -> ApiResponse {
    let did = did_key(&outcome.prover);
    let Some(signature) = outcome.signature else {
        return ApiResponse {
            status: 504,
            body: serde_json::json!({
                "error": format!("{did} did not prove its key within {} s (unreachable, or not running meshrouter)",
                    crate::services::identity::proof::PROOF_TIMEOUT.as_secs()),
            }),
        };
    };
    let rtt = now.saturating_since(outcome.asked);
    ApiResponse {
        status: 200,
        body: serde_json::json!({
            "did": did,
            "key": outcome.prover.to_hex(),
            "proven": true,
            "rtt_ms": rtt.as_secs_f64() * 1e3,
            "requester": me.to_hex(),
            "nonce": hex::encode(outcome.nonce),
            "signature": hex::encode(signature),
            "signed": hex::encode(crate::services::identity::proof::signed_bytes(me, &outcome.prover, &outcome.nonce)),
        }),
    }
}
