//! Who is calling: the session token a request carries, checked offline against this node's key.
//!
//! A token is the session JWT this node issued at login (`POST /api/login`, the same as
//! `meshrouter id login`): EdDSA, signed by this node, `aud` this node's DID, `sub` the user's
//! did:key, not expired. Nothing else is trusted: a token from another node, or one naming no user,
//! is refused. Verified tokens are remembered (up to [`MAX_CACHED`], until they expire) so a page that
//! sends one per keystroke costs one signature check per session, not per request.

use std::collections::HashMap;

use serde_json::Value;

use crate::core::identity::PublicKey;
use crate::services::identity::did_key::{did_key, parse_did_key};
use crate::services::identity::jwt::{self, Expect};

/// Tokens remembered at once; past it the cache starts again (a flood of valid tokens costs only
/// their checks).
pub(crate) const MAX_CACHED: usize = 1024;

/// A caller whose token verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    /// The user's key.
    pub(crate) key: [u8; 32],
    /// The user's DID.
    pub(crate) did: String,
    /// When the token expires (Unix seconds).
    pub(crate) expires: u64,
}

/// Why a request was refused before it reached a handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No token at all.
    #[error("sign in first: send the token from POST /api/login as Authorization: Bearer TOKEN")]
    Missing,
    /// A token that did not verify.
    #[error("the session token is not valid here: {0}")]
    Invalid(String),
}

/// Checks session tokens for one node.
pub(crate) struct Gate {
    node: PublicKey,
    node_did: String,
    cache: HashMap<String, User>,
}

impl Gate {
    /// A gate for tokens issued by `node`.
    pub(crate) fn new(node: PublicKey) -> Self {
        Self {
            node_did: did_key(&node),
            node,
            cache: HashMap::new(),
        }
    }

    /// The user a bearer token names, at Unix time `now_secs`.
    pub(crate) fn check(&mut self, token: Option<&str>, now_secs: u64) -> Result<User, AuthError> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let token = token.ok_or(AuthError::Missing)?;
        if let Some(user) = self.cache.get(token) {
            if user.expires + jwt::LEEWAY_SECS > now_secs {
                return Ok(user.clone());
            }
            self.cache.remove(token);
        }
        let expect = Expect::bearer(Some(&self.node), Some(&self.node_did));
        let verified =
            jwt::verify(token, &expect, now_secs).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let did = verified.claims.get("sub").and_then(Value::as_str);
        let did = did.ok_or_else(|| AuthError::Invalid("it names no user (sub)".into()))?;
        let key = parse_did_key(did)
            .map_err(|e| AuthError::Invalid(format!("its user is not a did:key: {e}")))?;
        let expires = verified.claims.get("exp").and_then(Value::as_u64);
        let expires = expires.ok_or_else(|| AuthError::Invalid("it never expires (exp)".into()))?;
        let user = User {
            key: *key.as_bytes(),
            did: did.to_owned(),
            expires,
        };
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(token.to_owned(), user.clone());
        Ok(user)
    }
}

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer(header: Option<&str>) -> Option<&str> {
    let header = header?.trim();
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Map, json};

    use super::*;
    use crate::core::identity::NodeKey;

    fn session(node: &NodeKey, claims: Value) -> String {
        let Value::Object(map) = claims else { panic!() };
        jwt::issue(node, &map)
    }

    #[test]
    fn only_this_nodes_unexpired_session_tokens_for_a_user_pass() {
        let node = NodeKey::from_seed(&[1; 32]);
        let other = NodeKey::from_seed(&[2; 32]);
        let user = NodeKey::from_seed(&[3; 32]);
        let user_did = did_key(&user.public_key());
        let node_did = did_key(&node.public_key());
        let mut gate = Gate::new(node.public_key());
        let good = session(
            &node,
            json!({ "sub": user_did, "aud": node_did, "iat": 1000, "exp": 2000 }),
        );
        let passed = gate.check(Some(&good), 1500).unwrap();
        assert_eq!(passed.key, *user.public_key().as_bytes());
        assert_eq!(passed.did, user_did);
        // Cached, and still refused once expired.
        assert!(gate.check(Some(&good), 1600).is_ok());
        assert!(matches!(
            gate.check(Some(&good), 2000 + jwt::LEEWAY_SECS + 1),
            Err(AuthError::Invalid(_))
        ));
        let refused = [
            // Signed by another node.
            session(
                &other,
                json!({ "sub": user_did, "aud": node_did, "exp": 2000 }),
            ),
            // For another node.
            session(
                &node,
                json!({ "sub": user_did, "aud": did_key(&other.public_key()), "exp": 2000 }),
            ),
            // No user, a user that is no key, no expiry.
            session(&node, json!({ "aud": node_did, "exp": 2000 })),
            session(
                &node,
                json!({ "sub": "alice", "aud": node_did, "exp": 2000 }),
            ),
            session(&node, json!({ "sub": user_did, "aud": node_did })),
            // An enrollment is not a session.
            session(
                &node,
                json!({ "typ": "enrollment", "sub": user_did, "aud": node_did, "exp": 2000 }),
            ),
            "not.a.token".into(),
        ];
        for token in refused {
            assert!(
                matches!(gate.check(Some(&token), 1500), Err(AuthError::Invalid(_))),
                "{token}"
            );
        }
        assert_eq!(gate.check(None, 1500), Err(AuthError::Missing));
        assert_eq!(gate.check(Some(" "), 1500), Err(AuthError::Missing));
        let _ = Map::<String, Value>::new();
    }

    #[test]
    fn the_cache_is_bounded() {
        let node = NodeKey::from_seed(&[1; 32]);
        let node_did = did_key(&node.public_key());
        let mut gate = Gate::new(node.public_key());
        for i in 0..MAX_CACHED as u64 + 10 {
            let user = did_key(&NodeKey::from_seed(&[9; 32]).public_key());
            let token = session(
                &node,
                json!({ "sub": user, "aud": node_did, "exp": 10_000 + i }),
            );
            gate.check(Some(&token), 1).unwrap();
            assert!(gate.cache.len() <= MAX_CACHED);
        }
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
    }
}
