//! The identity endpoints (`/v1/id/*`): who this node is, whois for overlay addresses, sign-in
//! challenges, JWTs, credentials, delegations, the member registry and revocations, and proofs of
//! possession over the overlay. Documented in `docs/API.md`. The node's private key signs only
//! here, inside the daemon; a user's key stays with the CLI, which sends signed tokens.

use std::net::Ipv6Addr;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::handlers::{error, ok};
use super::{ApiRequest, ApiResponse};
use crate::core::address::{node_address, node_subnet};
use crate::core::identity::{PublicKey, SIGNATURE_LEN};
use crate::driver::clock::wall_micros;
use crate::driver::router::Router;
use crate::driver::service_thread::ServiceContext;
use crate::services::identity::did_document::did_document;
use crate::services::identity::did_key::{did_key, parse_did_key};
use crate::services::identity::registry::{self, Registry, revoked_error};
use crate::services::identity::ucan::{self, Capability, Policy};
use crate::services::identity::{jwt, vc};

/// Default lifetime of tokens the node issues, seconds.
const DEFAULT_TTL: u64 = 3600;
/// Longest lifetime the node signs for, seconds (a year).
const MAX_TTL: u64 = 366 * 86_400;
/// Most tokens verified in one request.
const MAX_BATCH: usize = 4096;

fn wall_secs() -> u64 {
    wall_micros() / 1_000_000
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiResponse> {
    serde_json::from_slice(body).map_err(|e| error(400, format!("bad request body: {e}")))
}

fn query<'a>(request: &'a ApiRequest, name: &str) -> Option<&'a str> {
    let (_, q) = request.path.split_once('?')?;
    q.split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn ttl(requested: Option<u64>) -> Result<u64, ApiResponse> {
    match requested.unwrap_or(DEFAULT_TTL) {
        t @ 1..=MAX_TTL => Ok(t),
        _ => Err(error(400, format!("ttl must be 1 to {MAX_TTL} seconds"))),
    }
}

/// A signature as hex (128 digits) or base64url.
fn signature(text: &str) -> Result<[u8; SIGNATURE_LEN], ApiResponse> {
    use base64::Engine as _;
    let bytes = hex::decode(text).ok().or_else(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .ok()
    });
    bytes
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| error(400, "signature must be 64 bytes, hex or base64url"))
}

/// A did:key or a hex key.
fn key_of(text: &str) -> Result<PublicKey, ApiResponse> {
    parse_did_key(text)
        .or_else(|_| PublicKey::from_hex(text).map_err(|_| ()))
        .map_err(|_| {
            error(
                400,
                format!("{text} is neither a did:key nor a hex public key"),
            )
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeBody {
    did: String,
    statement: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    message: String,
    signature: String,
    /// Require an enrolled, unrevoked member (default true).
    member: Option<bool>,
    /// Lifetime of the session token issued, seconds.
    ttl: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtIssueBody {
    claims: Map<String, Value>,
    ttl: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtVerifyBody {
    token: Option<String>,
    /// Many tokens at once (batch verification); answered with `results` in order.
    tokens: Option<Vec<String>>,
    /// The DID or key the token must be signed by.
    issuer: Option<String>,
    /// Who is verifying, matched against a token's `aud` (default: this node's DID).
    audience: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    credential: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegateBody {
    audience: String,
    capabilities: Vec<Capability>,
    ttl: Option<u64>,
    #[serde(default)]
    proofs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UcanVerifyBody {
    token: String,
    audience: Option<String>,
    with: Option<String>,
    can: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    /// The member's DID, with `roles`; or an enrollment token signed elsewhere.
    did: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    /// What to revoke, signed by this node; or a revocation token signed elsewhere.
    target: Option<String>,
    reason: Option<String>,
    token: Option<String>,
    /// A delegation to revoke (its id is the target), carried so every replica can check that this
    /// node issued it or a delegation in its chain.
    of: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProveBody {
    /// The node to ask: a did:key or a hex key.
    node: String,
}

/// Handlers of the route table (`handlers::SERVICE_ENDPOINTS`), one per `/v1/id/` route.
pub(super) mod route {
    use super::*;

    fn answer(result: Result<ApiResponse, ApiResponse>) -> ApiResponse {
        result.unwrap_or_else(|e| e)
    }

    pub(in super::super) fn id_self(r: &mut ServiceContext, _: &ApiRequest) -> ApiResponse {
        api_id_self(r)
    }

    pub(in super::super) fn whois(r: &mut Router, q: &ApiRequest) -> ApiResponse {
        answer(api_id_whois(r, q))
    }

    pub(in super::super) fn document(_: &mut Router, q: &ApiRequest) -> ApiResponse {
        match query(q, "did").map(parse_did_key) {
            Some(Ok(key)) => ok(did_document(&key)),
            _ => error(400, "give ?did=did:key:z6Mk..."),
        }
    }

    pub(in super::super) fn members(r: &mut ServiceContext, _: &ApiRequest) -> ApiResponse {
        answer(api_id_members(r))
    }

    pub(in super::super) fn challenge(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        answer(api_id_challenge(r, &q.body))
    }

    pub(in super::super) fn verify(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        let response = answer(api_id_verify(r, &q.body));
        (r.services.identity).count_verification("signin", response.status == 200);
        response
    }

    pub(in super::super) fn jwt_issue(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        answer(api_jwt_issue(r, &q.body))
    }

    pub(in super::super) fn jwt_verify(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        let response = answer(api_jwt_verify(r, &q.body));
        (r.services.identity).count_verification("jwt", response.status == 200);
        response
    }

    pub(in super::super) fn vc_issue(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        answer(api_vc_issue(r, &q.body))
    }

    pub(in super::super) fn vc_verify(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        let response = answer(api_vc_verify(r, &q.body));
        (r.services.identity).count_verification("vc", response.status == 200);
        response
    }

    pub(in super::super) fn delegate(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        answer(api_delegate(r, &q.body))
    }

    pub(in super::super) fn ucan_verify(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        let response = answer(api_ucan_verify(r, &q.body));
        (r.services.identity).count_verification("ucan", response.status == 200);
        response
    }

    pub(in super::super) fn enroll(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        answer(api_enroll(r, &q.body))
    }

    pub(in super::super) fn revoke(r: &mut ServiceContext, q: &ApiRequest) -> ApiResponse {
        answer(api_revoke(r, &q.body))
    }
}

fn registry_now(r: &mut ServiceContext) -> Result<&Registry, ApiResponse> {
    r.services
        .identity
        .registry(r.services.crdt.as_ref(), wall_secs())
        .map_err(|e| error(503, e.to_string()))
}

fn api_id_self(r: &ServiceContext) -> ApiResponse {
    let key = r.services.identity.key.public_key();
    ok(json!({
        "did": r.services.identity.did,
        "public_key": key.to_hex(),
        "address": node_address(&key).to_string(),
        "subnet": node_subnet(&key).to_string(),
        "admins": r.services.identity.admins(),
        "document": did_document(&key),
    }))
}

/// Which known node owns an overlay address: this node, a peer, a session or a found path.
fn api_id_whois(r: &Router, request: &ApiRequest) -> Result<ApiResponse, ApiResponse> {
    let addr: Ipv6Addr = query(request, "addr")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| error(400, "give ?addr=<overlay IPv6 address>"))?;
    let me = r.node.public_key();
    let candidates = std::iter::once((&me, "self"))
        .chain(r.node.peers().map(|k| (k, "peer")))
        .chain(r.node.sessions().iter().map(|s| (s.peer, "session")))
        .chain(r.node.paths().iter().map(|(k, _)| (k, "path")));
    for (key, known_as) in candidates {
        if node_address(key) == addr || node_subnet(key).contains(&addr) {
            return Ok(ok(json!({
                "did": did_key(key),
                "public_key": key.to_hex(),
                "address": node_address(key).to_string(),
                "subnet": node_subnet(key).to_string(),
                "known_as": known_as,
            })));
        }
    }
    Err(error(
        404,
        format!(
            "no known node owns {addr} (only this node, its peers and nodes it has a session or path to are known)"
        ),
    ))
}

fn api_id_members(r: &mut ServiceContext) -> Result<ApiResponse, ApiResponse> {
    let admins = r.services.identity.admins().to_vec();
    let registry = registry_now(r)?;
    let members: Vec<Value> = registry
        .members()
        .map(|m| {
            let mut v = json!(m);
            v["revoked"] = json!(registry.member(&m.did).is_err());
            v
        })
        .collect();
    Ok(ok(json!({
        "admins": admins,
        "members": members,
        "revocations": registry.revocations().collect::<Vec<_>>(),
        "ignored": registry.ignored(),
    })))
}

fn api_id_challenge(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: ChallengeBody = parse(body)?;
    parse_did_key(&b.did).map_err(|e| error(400, format!("{}: {e}", b.did)))?;
    let statement = b
        .statement
        .as_deref()
        .unwrap_or("Sign in to this mesh node.");
    if statement.contains('\n') || statement.len() > 512 {
        return Err(error(400, "the statement is one line of at most 512 bytes"));
    }
    let now = wall_secs();
    let (nonce, message) = r.services.identity.challenges.issue(now, &b.did, statement);
    Ok(ok(json!({
        "nonce": nonce,
        "message": message,
        "expires": now + crate::services::identity::challenge::NONCE_LIFETIME,
    })))
}

/// A signed challenge: checks it (and membership unless `member: false`) and answers with a
/// session JWT signed by this node.
fn api_id_verify(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: VerifyBody = parse(body)?;
    let sig = signature(&b.signature)?;
    let ttl = ttl(b.ttl)?;
    let now = wall_secs();
    let login = r
        .services
        .identity
        .challenges
        .verify(now, &b.message, &sig)
        .map_err(|e| error(401, e.to_string()))?;
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(login.did));
    claims.insert("aud".into(), json!(r.services.identity.did));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + ttl));
    if b.member.unwrap_or(true) {
        let registry = registry_now(r)?;
        let member = registry
            .member(&login.did)
            .map_err(|e| error(403, e.to_string()))?;
        claims.insert("roles".into(), json!(member.roles));
    }
    let token = jwt::issue(&r.services.identity.key, &claims);
    Ok(ok(
        json!({ "did": login.did, "claims": claims, "token": token }),
    ))
}

fn api_jwt_issue(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: JwtIssueBody = parse(body)?;
    let now = wall_secs();
    let mut claims = b.claims;
    claims.entry("iat").or_insert(json!(now));
    claims.entry("exp").or_insert(json!(now + ttl(b.ttl)?));
    if claims
        .get("iss")
        .is_some_and(|i| *i != json!(r.services.identity.did))
    {
        return Err(error(400, "iss is this node's DID; leave it out"));
    }
    if jwt::Kind::of(&claims) != jwt::Kind::Bearer {
        return Err(error(
            400,
            "claims typ \"enrollment\" or \"revocation\" and ucv are reserved: use id enroll, \
             id revoke or ucan delegate",
        ));
    }
    Ok(ok(
        json!({ "token": jwt::issue(&r.services.identity.key, &claims) }),
    ))
}

/// The revocation that refuses `targets` (with `issuers` entitled to revoke), if the registry
/// has one; `Ok(false)` when there is no registry to ask.
fn check_revoked(
    r: &mut ServiceContext,
    targets: &[&str],
    issuers: &[String],
) -> Result<bool, ApiResponse> {
    let Ok(registry) = r
        .services
        .identity
        .registry(r.services.crdt.as_ref(), wall_secs())
    else {
        return Ok(false);
    };
    for target in targets {
        if let Some(r) = registry.revoked(target, issuers) {
            return Err(error(403, revoked_error(r).to_string()));
        }
    }
    Ok(true)
}

fn api_jwt_verify(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: JwtVerifyBody = parse(body)?;
    let expected = b.issuer.as_deref().map(key_of).transpose()?;
    let audience = b
        .audience
        .unwrap_or_else(|| r.services.identity.did.clone());
    let expect = jwt::Expect::bearer(expected.as_ref(), Some(&audience));
    let now = wall_secs();
    let outcome = |router: &mut ServiceContext, verified: Result<jwt::Verified, jwt::JwtError>| {
        let verified = verified.map_err(|e| error(401, e.to_string()))?;
        if expected.is_some_and(|e| e != verified.signer) {
            return Err(error(
                401,
                format!(
                    "signed by {}, not by the expected key",
                    did_key(&verified.signer)
                ),
            ));
        }
        checked_token(router, verified)
    };
    match (b.token, b.tokens) {
        (Some(token), None) => {
            let verified = jwt::verify(&token, &expect, now);
            outcome(r, verified)
        }
        (None, Some(tokens)) if tokens.len() <= MAX_BATCH => {
            let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
            let mut keys = crate::core::identity::Verifier::default();
            let results: Vec<Value> = jwt::verify_batch(&refs, &expect, now, &mut keys)
                .into_iter()
                .map(|v| match outcome(r, v) {
                    Ok(answer) | Err(answer) => answer.body,
                })
                .collect();
            Ok(ok(json!({ "results": results })))
        }
        _ => Err(error(
            400,
            format!("give token, or tokens (at most {MAX_BATCH})"),
        )),
    }
}

/// The answer for a token whose signature and times verified: refused if its issuer, `sub` or
/// `jti` was revoked.
fn checked_token(
    r: &mut ServiceContext,
    verified: jwt::Verified,
) -> Result<ApiResponse, ApiResponse> {
    let issuer = did_key(&verified.signer);
    let text = |name| verified.claims.get(name).and_then(Value::as_str);
    let targets: Vec<&str> = [Some(issuer.as_str()), text("sub"), text("jti")]
        .into_iter()
        .flatten()
        .collect();
    let checked = check_revoked(r, &targets, std::slice::from_ref(&issuer))?;
    Ok(ok(json!({
        "valid": true,
        "issuer": issuer,
        "header": verified.header,
        "claims": verified.claims,
        "revocation_checked": checked,
    })))
}

fn api_vc_issue(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: CredentialBody = parse(body)?;
    let Value::Object(credential) = b.credential else {
        return Err(error(400, "credential must be a JSON object"));
    };
    let signed = vc::issue(&r.services.identity.key, &credential, wall_secs())
        .map_err(|e| error(400, e.to_string()))?;
    Ok(ok(json!({ "credential": signed })))
}

fn api_vc_verify(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: CredentialBody = parse(body)?;
    let verified = vc::verify(&b.credential, wall_secs()).map_err(|e| error(401, e.to_string()))?;
    let targets: Vec<&str> = [Some(verified.issuer.as_str()), verified.id.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let checked = check_revoked(r, &targets, std::slice::from_ref(&verified.issuer))?;
    Ok(ok(json!({
        "valid": true,
        "issuer": verified.issuer,
        "id": verified.id,
        "subject": verified.subject,
        "revocation_checked": checked,
    })))
}

fn api_delegate(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: DelegateBody = parse(body)?;
    parse_did_key(&b.audience).map_err(|e| error(400, format!("audience: {e}")))?;
    if b.capabilities.is_empty() {
        return Err(error(
            400,
            "give at least one {\"with\", \"can\"} capability",
        ));
    }
    let now = wall_secs();
    let token = ucan::delegate(
        &r.services.identity.key,
        &b.audience,
        &b.capabilities,
        now,
        now + ttl(b.ttl)?,
        &b.proofs,
    );
    // Refuse to hand out a delegation that would not verify (widening, a bad proof).
    let delegation = verify_delegation(r, &token)?;
    Ok(ok(json!({ "token": token, "id": delegation.id })))
}

fn verify_delegation(r: &mut ServiceContext, token: &str) -> Result<ucan::Delegation, ApiResponse> {
    let admins = r.services.identity.admins().to_vec();
    let registry = r
        .services
        .identity
        .registry(r.services.crdt.as_ref(), wall_secs())
        .ok();
    let is_root = |issuer: &str, cap: &Capability| {
        admins.iter().any(|a| a == issuer) || cap.with.starts_with(&format!("{issuer}/"))
    };
    let is_revoked = |id: &str, issuers: &[String]| {
        registry.is_some_and(|r| {
            r.revoked(id, issuers).is_some() || issuers.iter().any(|i| r.revoked(i, &[]).is_some())
        })
    };
    let policy = Policy {
        is_root: &is_root,
        is_revoked: &is_revoked,
    };
    ucan::verify(token, wall_secs(), &policy).map_err(|e| error(403, e.to_string()))
}

fn api_ucan_verify(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: UcanVerifyBody = parse(body)?;
    let delegation = verify_delegation(r, &b.token)?;
    if let (Some(with), Some(can)) = (&b.with, &b.can) {
        let audience = b.audience.as_deref().unwrap_or(&delegation.audience);
        let wanted = Capability {
            with: with.clone(),
            can: can.clone(),
        };
        delegation
            .authorizes(audience, &wanted)
            .map_err(|e| error(403, e.to_string()))?;
    }
    Ok(ok(json!({
        "valid": true,
        "id": delegation.id,
        "issuer": delegation.issuer,
        "audience": delegation.audience,
        "capabilities": delegation.capabilities,
        "expires": delegation.expires,
        "chain": delegation.issuers,
    })))
}

fn api_enroll(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: EnrollBody = parse(body)?;
    let now = wall_secs();
    let (did, token) = match (b.did, b.token) {
        (Some(did), None) => {
            let ver = registry_now(r).map_or(0, |reg| reg.version_of(&did)) + 1;
            let token = registry::enrollment(&r.services.identity.key, &did, &b.roles, now, ver)
                .map_err(|e| error(400, e.to_string()))?;
            (did, token)
        }
        (None, Some(token)) => {
            let verified = jwt::verify(&token, &jwt::Expect::kind(jwt::Kind::Enrollment), now)
                .map_err(|e| error(400, e.to_string()))?;
            let sub = verified.claims.get("sub").and_then(Value::as_str);
            let did = sub.ok_or_else(|| error(400, "the enrollment names no sub"))?;
            (did.to_owned(), token)
        }
        _ => return Err(error(400, "give either did (with roles) or token")),
    };
    file_registry(r, Some(&did), token)?;
    let registry = registry_now(r)?;
    let member = registry.member(&did).map_err(|e| {
        error(
            409,
            format!("filed, but this node does not honour it: {e} (is the signer an admin?)"),
        )
    })?;
    Ok(ok(json!(member)))
}

fn api_revoke(r: &mut ServiceContext, body: &[u8]) -> Result<ApiResponse, ApiResponse> {
    let b: RevokeBody = parse(body)?;
    let now = wall_secs();
    let token = match (b.target, b.token, b.of) {
        (None, None, Some(of)) if of.len() <= jwt::MAX_TOKEN_LEN => registry::revocation_of(
            &r.services.identity.key,
            &of,
            b.reason.as_deref().unwrap_or(""),
            now,
        ),
        (Some(target), None, None) if !target.is_empty() && target.len() <= 1024 => {
            registry::revocation(
                &r.services.identity.key,
                &target,
                b.reason.as_deref().unwrap_or(""),
                now,
            )
        }
        (None, Some(token), None) => {
            let verified = jwt::verify(&token, &jwt::Expect::kind(jwt::Kind::Revocation), now)
                .map_err(|e| error(400, e.to_string()))?;
            if verified
                .claims
                .get("revoke")
                .and_then(Value::as_str)
                .is_none()
            {
                return Err(error(400, "not a revocation: no revoke claim"));
            }
            token
        }
        _ => {
            return Err(error(
                400,
                "give one of target (1 to 1024 bytes), token, or of (a delegation)",
            ));
        }
    };
    file_registry(r, None, token.clone())?;
    Ok(ok(json!({ "revocation": token })))
}

fn file_registry(
    r: &mut ServiceContext,
    member: Option<&str>,
    token: String,
) -> Result<(), ApiResponse> {
    let now = r.clock.now();
    let wall_millis = wall_micros() / 1000;
    r.services
        .identity
        .file(r.services.crdt.as_mut(), now, wall_millis, member, token)
        .map_err(|e| {
            use crate::driver::identity::RegistryUnavailable;
            use crate::services::crdt::host::HostError;
            match e {
                RegistryUnavailable::Write(HostError::Access { .. }) => error(403, e.to_string()),
                _ => error(503, e.to_string()),
            }
        })
}

/// `POST /v1/id/prove`: held until the node answers or [`PROOF_TIMEOUT`] passes.
///
/// [`PROOF_TIMEOUT`]: crate::services::identity::proof::PROOF_TIMEOUT
pub(crate) fn api_id_prove(
    r: &mut ServiceContext,
    request: &ApiRequest,
    reply: oneshot::Sender<ApiResponse>,
) {
    let prover = parse::<ProveBody>(&request.body).and_then(|b| key_of(&b.node));
    match prover {
        Ok(key) if key == r.services.identity.key.public_key() => {
            let _ = reply.send(error(400, "that is this node"));
        }
        Ok(key) => r.services.identity.prove(r.clock.now(), key, reply),
        Err(e) => {
            let _ = reply.send(e);
        }
    }
}
