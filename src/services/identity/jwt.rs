//! Compact JWS / JWT with Ed25519 only (RFC 7515, RFC 7519, RFC 8037), verified offline.
//!
//! Tokens are signed with `alg: "EdDSA"` (RFC 8037; RFC 9864's `"Ed25519"` is accepted too). Any other
//! algorithm, `none` and the HMAC family above all, is refused by name before anything else is looked
//! at, so a token can never choose how it is checked (the classic `alg` confusion attacks). The signer
//! is named by a `did:key` in `kid` (or `iss`), so any node can verify a token with nothing but the
//! token; a caller that expects a particular signer says so and others are refused. Times are checked
//! against `now` given by the caller (sans-IO), with a small leeway for clock skew.
//!
//! Every verification says what the token must be ([`Expect`]), so a token made for one purpose never
//! passes for another (PROTOCOL.md §6b, "Tokens"):
//! - its [`Kind`] comes from its *signed claims*: claim `typ` `"enrollment"` or `"revocation"`, a
//!   `ucv` claim for a delegation, anything else is a bearer token. The header's `typ`, when present,
//!   must be `JWT` or the kind's own (`enrollment+jwt`, `revocation+jwt`, `ucan+jwt`), never another
//!   kind's; [`issue`] writes the kind's own;
//! - a token that names an audience (`aud`) verifies only for a caller that says who it is and is
//!   named there (delegations check `aud` along their chain instead);
//! - when both `kid` and `iss` name a did:key they must name the same key;
//! - signatures are checked under the ZIP-215 rule alone and in batches, so [`verify`] and
//!   [`verify_batch`] give every token the same verdict.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Map, Value, json};

use super::did_key::{did_key, parse_did_key};
use crate::core::identity::{NodeKey, PublicKey, SIGNATURE_LEN, Verifier};

/// Longest token accepted: a bearer credential, not a file, but room for a delegation token that
/// embeds its whole proof chain (eight levels of nested base64 come to about 12 KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, or too long.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than Ed25519.
    #[error("algorithm {0:?} refused: only EdDSA (Ed25519) tokens are accepted")]
    Algorithm(String),
    /// The header asks for extensions we do not implement.
    #[error("critical header extensions {0:?} not supported")]
    Critical(String),
    /// No did:key in `kid` or `iss` to check the signature with.
    #[error("no signer: the token names no did:key in kid or iss")]
    NoSigner,
    /// The signer is not the one expected.
    #[error("signed by {0}, not by the expected key")]
    WrongSigner(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("expired at {0}")]
    Expired(u64),
    /// `nbf` is still ahead.
    #[error("not valid before {0}")]
    NotYetValid(u64),
    /// `iat` is in the future.
    #[error("issued in the future ({0})")]
    IssuedInFuture(u64),
    /// A registered claim has the wrong type.
    #[error("claim {0} must be a number of seconds since the epoch")]
    ClaimType(&'static str),
    /// `kid` and `iss` name different keys.
    #[error("kid and iss name different keys")]
    KidMismatch,
    /// A token of another kind than the one asked for.
    #[error("a {found} token, not a {expected} token")]
    WrongKind {
        /// What the caller asked for.
        expected: Kind,
        /// What the token is.
        found: Kind,
    },
    /// The header's `typ` is neither `JWT` nor the token's own kind.
    #[error("header typ {0:?} does not fit the token")]
    HeaderType(String),
    /// The token names an audience the caller is not (or the caller named none).
    #[error("made for audience {0}, not for this verifier")]
    Audience(String),
}

/// What a token is for, read from its signed claims (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bearer token: a session, an application's claims.
    Bearer,
    /// An admin's enrollment of a member (claim `typ: "enrollment"`).
    Enrollment,
    /// A revocation (claim `typ: "revocation"`).
    Revocation,
    /// A UCAN-style delegation (claim `ucv`).
    Ucan,
}

impl Kind {
    /// The kind of a token with these claims.
    pub fn of(claims: &Map<String, Value>) -> Self {
        match claims.get("typ").and_then(Value::as_str) {
            Some("enrollment") => Kind::Enrollment,
            Some("revocation") => Kind::Revocation,
            _ if claims.contains_key("ucv") => Kind::Ucan,
            _ => Kind::Bearer,
        }
    }

    /// The header `typ` tokens of this kind carry.
    pub fn header_type(self) -> &'static str {
        match self {
            Kind::Bearer => "JWT",
            Kind::Enrollment => "enrollment+jwt",
            Kind::Revocation => "revocation+jwt",
            Kind::Ucan => "ucan+jwt",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Bearer => "bearer",
            Kind::Enrollment => "enrollment",
            Kind::Revocation => "revocation",
            Kind::Ucan => "delegation",
        })
    }
}

/// What the caller expects of a token.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The kind it must be.
    pub kind: Kind,
    /// The key it must be signed by, if the caller knows it.
    pub signer: Option<&'a PublicKey>,
    /// Who is verifying, matched against the token's `aud` (ignored for delegations, whose chain
    /// checks `aud`).
    pub audience: Option<&'a str>,
}

impl<'a> Expect<'a> {
    /// A token of `kind` by anyone, for no particular audience.
    pub fn kind(kind: Kind) -> Self {
        Self {
            kind,
            signer: None,
            audience: None,
        }
    }

    /// A bearer token by `signer` (if given) for `audience` (if given).
    pub fn bearer(signer: Option<&'a PublicKey>, audience: Option<&'a str>) -> Self {
        Self {
            kind: Kind::Bearer,
            signer,
            audience,
        }
    }
}

/// A token that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The signer's key.
    pub signer: PublicKey,
    /// The protected header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
}

impl Verified {
    /// The signer's DID if `iss` names exactly it: what a token that speaks for its issuer (an
    /// enrollment, a revocation, a delegation) must satisfy.
    pub fn self_issued(&self) -> Option<String> {
        let did = did_key(&self.signer);
        (self.claims.get("iss").and_then(Value::as_str) == Some(did.as_str())).then_some(did)
    }
}

/// Signs `claims` (a JSON object; `iss` is set to the signer's DID if absent) as a compact JWT whose
/// header `typ` names its [`Kind`].
pub fn issue(key: &NodeKey, claims: &Map<String, Value>) -> String {
    let did = did_key(&key.public_key());
    let fragment = did.trim_start_matches("did:key:");
    let typ = Kind::of(claims).header_type();
    let header = json!({ "alg": "EdDSA", "typ": typ, "kid": format!("{did}#{fragment}") });
    let mut claims = claims.clone();
    claims.entry("iss").or_insert_with(|| json!(did));
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(Value::Object(claims).to_string())
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(signature))
}

fn object(part: &str, what: &'static str) -> Result<Map<String, Value>, JwtError> {
    let bytes = B64URL.decode(part).map_err(|_| JwtError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed(what)),
    }
}

fn seconds(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or(JwtError::ClaimType(name)),
    }
}

/// The key a did:key (possibly with a `#fragment`) names.
fn did_signer(value: Option<&Value>) -> Option<PublicKey> {
    let text = value?.as_str()?;
    parse_did_key(text.split('#').next()?).ok()
}

/// Verifies a compact JWT at time `now_secs`: algorithm, kind, audience, signature (by
/// `expect.signer` if given, else by the did:key the token names), then `exp`, `nbf` and `iat` with
/// [`LEEWAY_SECS`].
pub fn verify(token: &str, expect: &Expect<'_>, now_secs: u64) -> Result<Verified, JwtError> {
    verify_cached(token, expect, now_secs, &mut Verifier::default())
}

/// [`verify`] without the time checks, for verdicts every replica must reach alike whatever its clock
/// (what a replicated document admits): form, kind, audience and signature only.
pub fn verify_untimed(token: &str, expect: &Expect<'_>) -> Result<Verified, JwtError> {
    let parsed = parse(token, expect)?;
    let mut keys = Verifier::default();
    if !keys.verify_zip215(
        &parsed.verified.signer,
        parsed.signing_input(token),
        &parsed.signature,
    ) {
        return Err(JwtError::BadSignature);
    }
    Ok(parsed.verified)
}

/// [`verify`] with the signers' decompressed keys remembered in `cache`, for a node that checks
/// many tokens from few signers (a third faster).
pub fn verify_cached(
    token: &str,
    expect: &Expect<'_>,
    now_secs: u64,
    cache: &mut Verifier,
) -> Result<Verified, JwtError> {
    let parsed = parse(token, expect)?;
    if !cache.verify_zip215(
        &parsed.verified.signer,
        parsed.signing_input(token),
        &parsed.signature,
    ) {
        return Err(JwtError::BadSignature);
    }
    check_times(parsed.verified, now_secs)
}

/// Verifies many tokens at once with Ed25519 batch verification under the ZIP-215 rule, each
/// against its own did:key and `expect`: each verdict equals [`verify`]'s, at about twice the rate
/// of one by one for batches of 64 or more (a gateway checking the tokens of many requests).
pub fn verify_batch(
    tokens: &[&str],
    expect: &Expect<'_>,
    now_secs: u64,
    cache: &mut Verifier,
) -> Vec<Result<Verified, JwtError>> {
    let parsed: Vec<Result<Parsed, JwtError>> = tokens.iter().map(|t| parse(t, expect)).collect();
    let items: Vec<_> = parsed
        .iter()
        .zip(tokens)
        .filter_map(|(p, t)| {
            p.as_ref()
                .ok()
                .map(|p| (p.verified.signer, p.signing_input(t), p.signature))
        })
        .collect();
    let mut verdicts = cache.verify_batch_zip215(&items).into_iter();
    parsed
        .into_iter()
        .map(|p| {
            let p = p?;
            if !verdicts.next().unwrap_or(false) {
                return Err(JwtError::BadSignature);
            }
            check_times(p.verified, now_secs)
        })
        .collect()
}

/// A token whose form, algorithm and signer are acceptable, its signature not yet checked.
struct Parsed {
    verified: Verified,
    /// Length of `header.claims`, the signed text.
    signed_len: usize,
    signature: [u8; SIGNATURE_LEN],
}

impl Parsed {
    fn signing_input<'t>(&self, token: &'t str) -> &'t [u8] {
        &token.as_bytes()[..self.signed_len]
    }
}

fn parse(token: &str, expect: &Expect<'_>) -> Result<Parsed, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed("longer than 64 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three dot-separated parts"));
    };
    let header = object(h, "header")?;
    match header.get("alg").and_then(Value::as_str) {
        Some("EdDSA" | "Ed25519") => {}
        Some(other) => return Err(JwtError::Algorithm(other.to_owned())),
        None => return Err(JwtError::Algorithm(String::new())),
    }
    if let Some(crit) = header.get("crit") {
        return Err(JwtError::Critical(crit.to_string()));
    }
    let claims = object(c, "claims")?;
    let signature: [u8; SIGNATURE_LEN] = B64URL
        .decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(JwtError::Malformed("signature"))?;
    let kind = Kind::of(&claims);
    if kind != expect.kind {
        return Err(JwtError::WrongKind {
            expected: expect.kind,
            found: kind,
        });
    }
    if let Some(typ) = header.get("typ") {
        let typ = typ.as_str().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("JWT") && !typ.eq_ignore_ascii_case(kind.header_type()) {
            return Err(JwtError::HeaderType(typ.to_owned()));
        }
    }
    if kind != Kind::Ucan {
        check_audience(claims.get("aud"), expect.audience)?;
    }
    let (kid, iss) = (did_signer(header.get("kid")), did_signer(claims.get("iss")));
    if let (Some(k), Some(i)) = (kid, iss)
        && k != i
    {
        return Err(JwtError::KidMismatch);
    }
    let named = kid.or(iss);
    let signer = match (expect.signer, named) {
        (Some(e), Some(n)) if *e != n => return Err(JwtError::WrongSigner(did_key(&n))),
        (Some(e), _) => *e,
        (None, Some(n)) => n,
        (None, None) => return Err(JwtError::NoSigner),
    };
    Ok(Parsed {
        verified: Verified {
            signer,
            header,
            claims,
        },
        signed_len: h.len() + 1 + c.len(),
        signature,
    })
}

/// A token's `aud` (a string or a list of them) against who is verifying: a token that names an
/// audience is refused by a verifier that is not in it or does not say who it is.
fn check_audience(aud: Option<&Value>, verifier: Option<&str>) -> Result<(), JwtError> {
    let named = |v: &Value| verifier.is_some_and(|me| v.as_str() == Some(me));
    match aud {
        None => Ok(()),
        Some(Value::Array(list)) if list.iter().any(named) => Ok(()),
        Some(v) if named(v) => Ok(()),
        Some(v) => Err(JwtError::Audience(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
    }
}

/// `exp`, `nbf` and `iat` against `now_secs`, with [`LEEWAY_SECS`].
fn check_times(verified: Verified, now_secs: u64) -> Result<Verified, JwtError> {
    let claims = &verified.claims;
    if let Some(exp) = seconds(claims, "exp")?
        && now_secs >= exp.saturating_add(LEEWAY_SECS)
    {
        return Err(JwtError::Expired(exp));
    }
    if let Some(nbf) = seconds(claims, "nbf")?
        && now_secs.saturating_add(LEEWAY_SECS) < nbf
    {
        return Err(JwtError::NotYetValid(nbf));
    }
    if let Some(iat) = seconds(claims, "iat")?
        && now_secs.saturating_add(LEEWAY_SECS) < iat
    {
        return Err(JwtError::IssuedInFuture(iat));
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_790_000_000;
    const ANY: Expect<'static> = Expect {
        kind: Kind::Bearer,
        signer: None,
        audience: None,
    };

    fn claims(extra: Value) -> Map<String, Value> {
        let mut m = json!({ "sub": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
                            "iat": NOW, "exp": NOW + 600 })
        .as_object()
        .cloned()
        .unwrap();
        if let Value::Object(e) = extra {
            m.extend(e);
        }
        m
    }

    /// A token with the given header and claims, signed by `key` over exactly what it carries.
    fn forge(key: &NodeKey, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", B64URL.encode(sig))
    }

    #[test]
    fn issued_tokens_verify_by_their_did_and_by_the_expected_key() {
        let key = NodeKey::from_seed(&[4; 32]);
        let token = issue(&key, &claims(json!({})));
        let v = verify(&token, &ANY, NOW).unwrap();
        assert_eq!(v.signer, key.public_key());
        assert_eq!(v.claims["iss"], json!(did_key(&key.public_key())));
        assert_eq!(v.header["alg"], json!("EdDSA"));
        verify(&token, &Expect::bearer(Some(&key.public_key()), None), NOW).unwrap();
        let other = NodeKey::from_seed(&[5; 32]).public_key();
        assert!(matches!(
            verify(&token, &Expect::bearer(Some(&other), None), NOW),
            Err(JwtError::WrongSigner(_))
        ));
    }

    #[test]
    fn a_batch_gives_each_token_the_verdict_it_gets_alone() {
        let good: Vec<String> = (0..70u8)
            .map(|n| issue(&NodeKey::from_seed(&[n; 32]), &claims(json!({ "n": n }))))
            .collect();
        let mut tokens: Vec<String> = good.clone();
        let mut tampered = tokens[5].clone().into_bytes();
        let dot = tampered.iter().position(|b| *b == b'.').unwrap();
        tampered[dot + 3] ^= 1;
        tokens[5] = String::from_utf8(tampered).unwrap();
        tokens[9] = "not.a.token".into();
        tokens[20] = issue(
            &NodeKey::from_seed(&[1; 32]),
            &claims(json!({ "exp": NOW - 3600 })),
        );
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let mut cache = Verifier::default();
        let batch = verify_batch(&refs, &ANY, NOW, &mut cache);
        for (token, verdict) in refs.iter().zip(&batch) {
            assert_eq!(*verdict, verify(token, &ANY, NOW), "{token}");
        }
        assert_eq!(batch.iter().filter(|v| v.is_ok()).count(), 67);
        let good: Vec<&str> = good.iter().map(String::as_str).collect();
        assert!(
            verify_batch(&good, &ANY, NOW, &mut cache)
                .iter()
                .all(Result::is_ok)
        );
    }

    #[test]
    fn every_negative_case_is_refused() {
        let key = NodeKey::from_seed(&[4; 32]);
        let token = issue(&key, &claims(json!({})));
        assert_eq!(
            verify(&token, &ANY, NOW + 600 + LEEWAY_SECS),
            Err(JwtError::Expired(NOW + 600))
        );
        let later = issue(&key, &claims(json!({ "nbf": NOW + 3600 })));
        assert_eq!(
            verify(&later, &ANY, NOW),
            Err(JwtError::NotYetValid(NOW + 3600))
        );
        // Tampered claims: same signature, other payload.
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload = claims(json!({}));
        payload.insert("sub".into(), json!("did:key:someone-else"));
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            B64URL.encode(Value::Object(payload).to_string()),
            parts[2]
        );
        assert_eq!(verify(&tampered, &ANY, NOW), Err(JwtError::BadSignature));
        // alg none, HS256, a missing alg: refused by name, whatever the signature.
        let did = did_key(&key.public_key());
        for alg in [
            json!("none"),
            json!("HS256"),
            json!("RS256"),
            json!("ES256"),
        ] {
            let t = forge(
                &key,
                json!({ "alg": alg, "kid": did }),
                Value::Object(claims(json!({}))),
            );
            assert!(
                matches!(verify(&t, &ANY, NOW), Err(JwtError::Algorithm(_))),
                "{alg}"
            );
        }
        let unsigned = format!("{}.{}.", B64URL.encode(r#"{"alg":"none"}"#), parts[1]);
        assert!(matches!(
            verify(&unsigned, &ANY, NOW),
            Err(JwtError::Algorithm(_))
        ));
        let crit = forge(
            &key,
            json!({ "alg": "EdDSA", "kid": did, "crit": ["b64"], "b64": false }),
            Value::Object(claims(json!({}))),
        );
        assert!(matches!(
            verify(&crit, &ANY, NOW),
            Err(JwtError::Critical(_))
        ));
        // No signer named, and a claim of the wrong type.
        let anonymous = forge(&key, json!({ "alg": "EdDSA" }), json!({ "sub": "x" }));
        assert_eq!(verify(&anonymous, &ANY, NOW), Err(JwtError::NoSigner));
        verify(
            &anonymous,
            &Expect::bearer(Some(&key.public_key()), None),
            NOW,
        )
        .unwrap();
        let bad_exp = forge(
            &key,
            json!({ "alg": "EdDSA", "kid": did }),
            json!({ "exp": "soon" }),
        );
        assert_eq!(verify(&bad_exp, &ANY, NOW), Err(JwtError::ClaimType("exp")));
        for junk in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(verify(junk, &ANY, NOW).is_err(), "{junk:.20}");
        }
    }

    #[test]
    fn rfc8037_example_signature_verifies() {
        // RFC 8037 appendix A.4: the Ed25519 key of A.1 signs "Example of Ed25519 signing".
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let key = NodeKey::from_seed(&seed.try_into().unwrap());
        let token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        // The payload is not JSON, so as a JWT it is malformed; as a JWS its signature is the RFC's.
        assert_eq!(
            verify(token, &Expect::bearer(Some(&key.public_key()), None), NOW),
            Err(JwtError::Malformed("claims"))
        );
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig: [u8; 64] = B64URL.decode(sig).unwrap().try_into().unwrap();
        assert!(key.public_key().verify(input.as_bytes(), &sig));
        assert_eq!(key.sign(input.as_bytes()), sig);
    }

    /// A token whose signature carries a point of order 8 (valid under ZIP-215, refused by the
    /// strict rule): only its key's holder can make one.
    fn torsion_token(seed: u8, claims: Value) -> String {
        let key = NodeKey::from_seed(&[seed; 32]);
        let did = did_key(&key.public_key());
        let input = format!(
            "{}.{}",
            B64URL.encode(json!({ "alg": "EdDSA", "kid": did }).to_string()),
            B64URL.encode(claims.to_string())
        );
        let (signer, sig) = crate::core::verifier::tests::torsion_signature(seed, input.as_bytes());
        assert_eq!(signer, key.public_key());
        format!("{input}.{}", B64URL.encode(sig))
    }

    #[test]
    fn a_torsion_signature_gets_one_verdict_alone_and_in_a_batch() {
        let odd = torsion_token(9, Value::Object(claims(json!({}))));
        let mut tokens: Vec<String> = (0..69u8)
            .map(|n| issue(&NodeKey::from_seed(&[n; 32]), &claims(json!({ "n": n }))))
            .collect();
        tokens.insert(33, odd.clone());
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let alone = verify(&odd, &ANY, NOW);
        assert!(alone.is_ok(), "ZIP-215 accepts it: {alone:?}");
        let batch = verify_batch(&refs, &ANY, NOW, &mut Verifier::default());
        for (token, verdict) in refs.iter().zip(&batch) {
            assert_eq!(*verdict, verify(token, &ANY, NOW));
        }
    }

    #[test]
    fn a_token_passes_only_as_its_own_kind_for_its_own_audience() {
        let admin = NodeKey::from_seed(&[4; 32]);
        let enrollment = issue(
            &admin,
            &claims(json!({ "typ": "enrollment", "roles": ["x"] })),
        );
        let header = |t: &str| object(t.split('.').next().unwrap(), "header").unwrap();
        assert_eq!(header(&enrollment)["typ"], json!("enrollment+jwt"));
        assert_eq!(
            verify(&enrollment, &ANY, NOW),
            Err(JwtError::WrongKind {
                expected: Kind::Bearer,
                found: Kind::Enrollment
            })
        );
        verify(&enrollment, &Expect::kind(Kind::Enrollment), NOW).unwrap();
        let revocation = issue(
            &admin,
            &claims(json!({ "typ": "revocation", "revoke": "x" })),
        );
        assert!(matches!(
            verify(&revocation, &Expect::kind(Kind::Enrollment), NOW),
            Err(JwtError::WrongKind { .. })
        ));
        let ucan = issue(&admin, &claims(json!({ "ucv": "0.9.0" })));
        assert!(matches!(
            verify(&ucan, &ANY, NOW),
            Err(JwtError::WrongKind { .. })
        ));
        // A header typ naming another kind: refused even though the claims say bearer.
        let did = did_key(&admin.public_key());
        let dressed = forge(
            &admin,
            json!({ "alg": "EdDSA", "kid": did, "typ": "enrollment+jwt" }),
            Value::Object(claims(json!({}))),
        );
        assert_eq!(
            verify(&dressed, &ANY, NOW),
            Err(JwtError::HeaderType("enrollment+jwt".into()))
        );
        // Audience: a token for node A verifies at A only.
        let session = issue(&admin, &claims(json!({ "aud": "did:key:zA" })));
        verify(&session, &Expect::bearer(None, Some("did:key:zA")), NOW).unwrap();
        assert_eq!(
            verify(&session, &Expect::bearer(None, Some("did:key:zB")), NOW),
            Err(JwtError::Audience("did:key:zA".into()))
        );
        assert!(matches!(
            verify(&session, &ANY, NOW),
            Err(JwtError::Audience(_))
        ));
        let listed = issue(
            &admin,
            &claims(json!({ "aud": ["did:key:zB", "did:key:zA"] })),
        );
        verify(&listed, &Expect::bearer(None, Some("did:key:zA")), NOW).unwrap();
        // kid and iss naming two keys: refused, whichever signed.
        let other = did_key(&NodeKey::from_seed(&[5; 32]).public_key());
        let split = forge(
            &admin,
            json!({ "alg": "EdDSA", "kid": did }),
            json!({ "iss": other, "sub": "x" }),
        );
        assert_eq!(verify(&split, &ANY, NOW), Err(JwtError::KidMismatch));
    }
}
