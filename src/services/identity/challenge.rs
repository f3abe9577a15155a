//! Challenge–response login: a node hands out a single-use nonce; the client signs a structured,
//! human-readable message naming this node's domain, its DID, the nonce and a validity window
//! (CAIP-122 / "Sign-In with X" fields); the node checks it against the DID alone, offline.
//!
//! ```text
//! {domain} wants you to sign in with your DID:
//! {did}
//!
//! {statement}
//!
//! URI: {uri}
//! Version: 1
//! Nonce: {nonce}
//! Issued At: {RFC 3339}
//! Expiration Time: {RFC 3339}
//! ```
//!
//! Nonces are 128 random bits, expire after [`NONCE_LIFETIME`], and are consumed by the first valid
//! login, so a captured signed message cannot be replayed. Sans-IO: callers pass `now` (seconds since
//! the Unix epoch) and the randomness comes from a seeded generator.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use super::did_key::parse_did_key;
use crate::core::identity::{PublicKey, SIGNATURE_LEN, Verifier};
use crate::core::rng::Rng;

/// How long a nonce may be used.
pub const NONCE_LIFETIME: u64 = 120;
/// Outstanding nonces kept at most (the oldest go first).
pub const MAX_NONCES: usize = 4096;
/// Longest message accepted.
const MAX_MESSAGE: usize = 4096;

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Not a sign-in message in our format.
    #[error("malformed sign-in message: {0}")]
    Malformed(&'static str),
    /// For another node.
    #[error("message is for domain {0:?}, not this node")]
    WrongDomain(String),
    /// The DID is not a did:key.
    #[error("unsupported DID: {0}")]
    Did(String),
    /// The nonce was never issued here, was used already, or expired.
    #[error("unknown, used or expired nonce")]
    Nonce,
    /// The nonce was issued for another DID: a challenge is for the one who asked for it.
    #[error("the nonce was issued for another DID")]
    WrongDid,
    /// The message's own window is over or not started.
    #[error("message outside its validity window")]
    Window,
    /// The signature does not verify for the DID.
    #[error("bad signature")]
    BadSignature,
}

/// A login that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Who signed in.
    pub did: String,
    /// Their key.
    pub key: PublicKey,
}

/// RFC 3339 UTC time of `secs` since the Unix epoch.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time.
pub fn parse_time(text: &str) -> Option<u64> {
    humantime::parse_rfc3339(text)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The text a client signs.
pub fn message(
    domain: &str,
    did: &str,
    statement: &str,
    nonce: &str,
    issued: u64,
    expires: u64,
) -> String {
    format!(
        "{domain} wants you to sign in with your DID:\n{did}\n\n{statement}\n\nURI: meshrouter://{domain}\n\
         Version: 1\nNonce: {nonce}\nIssued At: {}\nExpiration Time: {}",
        rfc3339(issued),
        rfc3339(expires)
    )
}

/// The fields of a signed message.
struct Parsed<'a> {
    domain: &'a str,
    did: &'a str,
    nonce: &'a str,
    issued: u64,
    expires: u64,
}

fn parse(text: &str) -> Result<Parsed<'_>, ChallengeError> {
    let bad = ChallengeError::Malformed;
    if text.len() > MAX_MESSAGE {
        return Err(bad("too long"));
    }
    let mut lines = text.split('\n');
    let domain = lines
        .next()
        .and_then(|l| l.strip_suffix(" wants you to sign in with your DID:"))
        .ok_or(bad("first line"))?;
    let did = lines.next().ok_or(bad("DID line"))?;
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(": ")
            && matches!(
                name,
                "URI" | "Version" | "Nonce" | "Issued At" | "Expiration Time"
            )
            && fields.insert(name, value).is_some()
        {
            return Err(bad("a field appears twice"));
        }
    }
    if fields.get("Version") != Some(&"1") {
        return Err(bad("Version must be 1"));
    }
    let field = |name, what| fields.get(name).copied().ok_or(bad(what));
    Ok(Parsed {
        domain,
        did,
        nonce: field("Nonce", "no Nonce")?,
        issued: parse_time(field("Issued At", "no Issued At")?).ok_or(bad("Issued At"))?,
        expires: parse_time(field("Expiration Time", "no Expiration Time")?)
            .ok_or(bad("Expiration Time"))?,
    })
}

/// A node's issued nonces.
pub struct Challenges {
    domain: String,
    rng: Rng,
    /// Nonce → expiry.
    /// Nonce → (expiry, the DID it was issued for).
    nonces: HashMap<String, (u64, String)>,
    /// Decompressed keys of recent signers.
    keys: Verifier,
}

impl Challenges {
    /// Challenges for this node's `domain` (its DID or address), nonces drawn from `seed`.
    pub fn new(domain: &str, seed: [u8; 32]) -> Self {
        Self {
            domain: domain.to_owned(),
            rng: Rng::from_seed(seed),
            nonces: HashMap::new(),
            keys: Verifier::default(),
        }
    }

    /// Mixes fresh entropy into the nonces' random stream (see [`Rng::reseed`]).
    pub fn reseed(&mut self, extra: &[u8; 32]) {
        self.rng.reseed(extra);
    }

    /// Issues a nonce and the message `did` must sign for it, valid from `now` for
    /// [`NONCE_LIFETIME`] seconds.
    pub fn issue(&mut self, now: u64, did: &str, statement: &str) -> (String, String) {
        self.nonces.retain(|_, (expiry, _)| *expiry > now);
        if self.nonces.len() >= MAX_NONCES
            && let Some(oldest) = self
                .nonces
                .iter()
                .min_by_key(|(_, (e, _))| *e)
                .map(|(n, _)| n.clone())
        {
            self.nonces.remove(&oldest);
        }
        let nonce = hex::encode(&self.rng.bytes32()[..16]);
        let expires = now + NONCE_LIFETIME;
        self.nonces.insert(nonce.clone(), (expires, did.to_owned()));
        let text = message(&self.domain, did, statement, &nonce, now, expires);
        (nonce, text)
    }

    /// Checks a signed message at `now`; on success the nonce is spent.
    pub fn verify(
        &mut self,
        now: u64,
        text: &str,
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<Login, ChallengeError> {
        let login = self.check(now, text)?;
        if !self
            .keys
            .verify_zip215(&login.key, text.as_bytes(), signature)
        {
            return Err(ChallengeError::BadSignature);
        }
        self.spend(text, login)
    }

    /// [`Self::verify`] for many sign-ins at once, with Ed25519 batch verification (see
    /// [`Verifier::verify_batch_zip215`]); each gets the verdict it would get alone, in order (so of two
    /// sign-ins with one nonce, the first wins).
    pub fn verify_batch(
        &mut self,
        now: u64,
        signed: &[(&str, [u8; SIGNATURE_LEN])],
    ) -> Vec<Result<Login, ChallengeError>> {
        let checked: Vec<Result<Login, ChallengeError>> = signed
            .iter()
            .map(|(text, _)| self.check(now, text))
            .collect();
        let items: Vec<_> = checked
            .iter()
            .zip(signed)
            .filter_map(|(c, (text, sig))| c.as_ref().ok().map(|l| (l.key, text.as_bytes(), *sig)))
            .collect();
        let mut verdicts = self.keys.verify_batch_zip215(&items).into_iter();
        checked
            .into_iter()
            .zip(signed)
            .map(|(login, (text, _))| {
                let login = login?;
                if !verdicts.next().unwrap_or(false) {
                    return Err(ChallengeError::BadSignature);
                }
                self.spend(text, login)
            })
            .collect()
    }

    /// Everything but the signature: form, domain, DID, an outstanding nonce, the time window.
    fn check(&self, now: u64, text: &str) -> Result<Login, ChallengeError> {
        let parsed = parse(text)?;
        if parsed.domain != self.domain {
            return Err(ChallengeError::WrongDomain(parsed.domain.to_owned()));
        }
        let key = parse_did_key(parsed.did).map_err(|e| ChallengeError::Did(e.to_string()))?;
        match self.nonces.get(parsed.nonce) {
            Some((expiry, did)) if *expiry > now && did == parsed.did => {}
            Some((expiry, _)) if *expiry > now => return Err(ChallengeError::WrongDid),
            _ => return Err(ChallengeError::Nonce),
        }
        if now + super::jwt::LEEWAY_SECS < parsed.issued || now >= parsed.expires {
            return Err(ChallengeError::Window);
        }
        Ok(Login {
            did: parsed.did.to_owned(),
            key,
        })
    }

    /// Consumes the nonce of a verified message; refused if it was spent meanwhile.
    fn spend(&mut self, text: &str, login: Login) -> Result<Login, ChallengeError> {
        let nonce = parse(text)?.nonce;
        self.nonces.remove(nonce).ok_or(ChallengeError::Nonce)?;
        Ok(login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::NodeKey;
    use crate::services::identity::did_key::did_key;

    const NOW: u64 = 1_790_000_000;

    #[test]
    fn a_signed_challenge_logs_in_once() {
        let user = NodeKey::from_seed(&[7; 32]);
        let did = did_key(&user.public_key());
        let mut node = Challenges::new("node-a.mesh", [1; 32]);
        let (nonce, text) = node.issue(NOW, &did, "Log in to the island registry");
        assert_eq!(nonce.len(), 32);
        assert!(text.contains(&format!("Nonce: {nonce}")), "{text}");
        assert!(text.contains("Issued At: 2026-09-21T"), "{text}");
        let signature = user.sign(text.as_bytes());
        let login = node.verify(NOW + 5, &text, &signature).unwrap();
        assert_eq!((login.did, login.key), (did, user.public_key()));
        assert_eq!(
            node.verify(NOW + 6, &text, &signature),
            Err(ChallengeError::Nonce),
            "a replayed login is refused"
        );
    }

    #[test]
    fn a_batch_of_sign_ins_gets_the_verdicts_they_get_alone() {
        let users: Vec<NodeKey> = (0..80u8).map(|n| NodeKey::from_seed(&[n; 32])).collect();
        let mut node = Challenges::new("node-a.mesh", [1; 32]);
        let mut signed: Vec<(String, [u8; SIGNATURE_LEN])> = users
            .iter()
            .map(|u| {
                let (_, text) = node.issue(NOW, &did_key(&u.public_key()), "batch");
                let sig = u.sign(text.as_bytes());
                (text, sig)
            })
            .collect();
        signed[7].1 = users[8].sign(signed[7].0.as_bytes());
        signed[30].1[0] ^= 1;
        signed.push(signed[40].clone());
        let refs: Vec<(&str, [u8; SIGNATURE_LEN])> =
            signed.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        let verdicts = node.verify_batch(NOW + 1, &refs);
        for (i, v) in verdicts.iter().enumerate() {
            match i {
                7 | 30 => assert_eq!(*v, Err(ChallengeError::BadSignature), "{i}"),
                80 => assert_eq!(*v, Err(ChallengeError::Nonce), "the replay of 40"),
                _ => assert_eq!(v.as_ref().map(|l| l.key), Ok(users[i].public_key()), "{i}"),
            }
        }
        // Every nonce but the two refused ones is spent.
        assert_eq!(node.nonces.len(), 2);
    }

    #[test]
    fn a_torsion_signed_sign_in_gets_one_verdict_alone_and_in_a_batch() {
        use crate::core::verifier::tests::torsion_signature;
        let run = |batch: bool| {
            let mut node = Challenges::new("node-a.mesh", [1; 32]);
            let mut signed = Vec::new();
            for n in 0..70u8 {
                let user = NodeKey::from_seed(&[if n == 33 { 9 } else { n + 40 }; 32]);
                let (_, text) = node.issue(NOW, &did_key(&user.public_key()), "batch");
                let sig = if n == 33 {
                    torsion_signature(9, text.as_bytes()).1
                } else {
                    user.sign(text.as_bytes())
                };
                signed.push((text, sig));
            }
            let refs: Vec<(&str, [u8; SIGNATURE_LEN])> =
                signed.iter().map(|(t, s)| (t.as_str(), *s)).collect();
            if batch {
                node.verify_batch(NOW + 1, &refs)
            } else {
                refs.iter()
                    .map(|(t, s)| node.verify(NOW + 1, t, s))
                    .collect()
            }
        };
        let (alone, batched) = (run(false), run(true));
        assert!(alone[33].is_ok(), "ZIP-215 accepts it");
        assert_eq!(alone, batched);
    }

    #[test]
    fn every_negative_case_is_refused() {
        let user = NodeKey::from_seed(&[7; 32]);
        let did = did_key(&user.public_key());
        let mut node = Challenges::new("node-a.mesh", [1; 32]);
        let (_, text) = node.issue(NOW, &did, "hi");
        let sig = user.sign(text.as_bytes());
        // Expired nonce.
        assert_eq!(
            node.verify(NOW + NONCE_LIFETIME, &text, &sig),
            Err(ChallengeError::Nonce)
        );
        let (nonce, text) = node.issue(NOW, &did, "hi");
        let sig = user.sign(text.as_bytes());
        // Wrong key: another user signs the message naming `did`.
        let other = NodeKey::from_seed(&[8; 32]);
        assert_eq!(
            node.verify(NOW, &text, &other.sign(text.as_bytes())),
            Err(ChallengeError::BadSignature)
        );
        // Tampered message: the signature covers the exact text.
        let tampered = text.replace("hi", "ho");
        assert_eq!(
            node.verify(NOW, &tampered, &sig),
            Err(ChallengeError::BadSignature)
        );
        // A nonce never issued here, another domain, a broken message.
        let forged = text.replace(&nonce, "00000000000000000000000000000000");
        assert_eq!(node.verify(NOW, &forged, &sig), Err(ChallengeError::Nonce));
        let mut elsewhere = Challenges::new("node-b.mesh", [2; 32]);
        assert!(matches!(
            elsewhere.verify(NOW, &text, &sig),
            Err(ChallengeError::WrongDomain(_))
        ));
        for junk in ["", "hello", &text.replace("Version: 1", "Version: 2")] {
            assert!(matches!(
                node.verify(NOW, junk, &sig),
                Err(ChallengeError::Malformed(_))
            ));
        }
        let doubled = format!("{text}\nNonce: {nonce}");
        assert!(matches!(
            node.verify(NOW, &doubled, &sig),
            Err(ChallengeError::Malformed(_))
        ));
        // After all those refusals the genuine login still works, once.
        node.verify(NOW + 1, &text, &sig).unwrap();
    }

    /// A nonce is for the DID that asked for it: someone else who sees the challenge (on a shared
    /// screen, in a log) cannot answer it with their own key and DID.
    #[test]
    fn a_nonce_answers_only_for_the_did_it_was_issued_for() {
        let mut node = Challenges::new("node-a.mesh", [1; 32]);
        let alice = NodeKey::from_seed(&[7; 32]);
        let mallory = NodeKey::from_seed(&[9; 32]);
        let (alice_did, mallory_did) =
            (did_key(&alice.public_key()), did_key(&mallory.public_key()));
        let (_, text) = node.issue(NOW, &alice_did, "hi");
        let stolen = text.replace(&alice_did, &mallory_did);
        let sig = mallory.sign(stolen.as_bytes());
        assert_eq!(
            node.verify(NOW, &stolen, &sig),
            Err(ChallengeError::WrongDid)
        );
        let batch = node.verify_batch(NOW, &[(stolen.as_str(), sig)]);
        assert_eq!(batch, vec![Err(ChallengeError::WrongDid)]);
        // The nonce is still Alice's to use.
        let login = node
            .verify(NOW, &text, &alice.sign(text.as_bytes()))
            .unwrap();
        assert_eq!(login.did, alice_did);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time("2026-12-02T14:00:00Z"), Some(1_796_220_000));
    }
}
