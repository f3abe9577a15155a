//! One claim on a label, as stored: JSON in the map entry of its claimant.

use serde::{Deserialize, Serialize};

use crate::core::identity::PublicKey;

/// Longest claim accepted (encoded JSON): the same refusal on every replica.
pub const MAX_CLAIM_BYTES: usize = 4096;
/// Most claims one claim may list as seen: more than any real label gathers; a claim that would
/// list more lists the oldest.
pub const MAX_SEEN: usize = 32;
/// Longest label (a DNS label).
pub const MAX_LABEL: usize = 63;

/// A claim on a label by `owner` (the key whose map entry holds it, the change's signer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// When the claim was first made (milliseconds since 1970, as the claimant says); kept when the
    /// claimant rewrites its claim, so a claim's identity is `(owner, since)`.
    pub since: u64,
    /// The node the name points at: the owner itself, or (for an admin's claim) any node.
    pub target: Option<PublicKey>,
    /// The claims the owner held on the label when it claimed: `(owner, since)`.
    pub seen: Vec<(PublicKey, u64)>,
}

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Not JSON of the claim's shape.
    #[error("not a name claim: {0}")]
    Malformed(String),
    /// Over [`MAX_CLAIM_BYTES`].
    #[error("a claim may take {MAX_CLAIM_BYTES} bytes")]
    TooLarge,
    /// Over [`MAX_SEEN`] seen claims.
    #[error("a claim may list {MAX_SEEN} claims as seen")]
    TooManySeen,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    since: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<(String, u64)>,
}

impl Claim {
    /// The claim as stored.
    pub fn encode(&self) -> String {
        let wire = Wire {
            since: self.since,
            key: self.target.map(|k| k.to_hex()),
            seen: (self.seen.iter()).map(|(k, s)| (k.to_hex(), *s)).collect(),
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads a stored claim (total: any text gives a claim or an error).
    pub fn decode(text: &str) -> Result<Self, ClaimError> {
        if text.len() > MAX_CLAIM_BYTES {
            return Err(ClaimError::TooLarge);
        }
        let wire: Wire =
            serde_json::from_str(text).map_err(|e| ClaimError::Malformed(e.to_string()))?;
        if wire.seen.len() > MAX_SEEN {
            return Err(ClaimError::TooManySeen);
        }
        let key = |hex: &str| {
            PublicKey::from_hex(hex).map_err(|e| ClaimError::Malformed(format!("key: {e}")))
        };
        Ok(Self {
            since: wire.since,
            target: wire.key.as_deref().map(key).transpose()?,
            seen: (wire.seen.iter())
                .map(|(k, s)| Ok((key(k)?, *s)))
                .collect::<Result<_, ClaimError>>()?,
        })
    }
}

/// The claim `me` makes on a label whose names document reads `view` (none yet: `None`), pointing
/// at `target` (an admin's claim for another node) and made at `since`: listing every other claim
/// it holds as seen, oldest first, so that it never wins against them. `None` when `me` already
/// has this very claim (it is kept, so it keeps its age).
pub fn plan(
    view: Option<&crate::services::crdt::document::View>,
    me: PublicKey,
    target: Option<PublicKey>,
    since: u64,
) -> Option<Claim> {
    use crate::services::crdt::document::View;
    let target = target.filter(|t| *t != me);
    let mut seen = Vec::new();
    if let Some(View::Map(entries)) = view {
        for (owner, value) in entries {
            let (Ok(key), View::Lww(Some(text))) = (PublicKey::from_hex(owner), value) else {
                continue;
            };
            let Ok(claim) = Claim::decode(text) else {
                continue;
            };
            if key == me {
                if claim.target == target {
                    return None;
                }
                continue;
            }
            seen.push((key, claim.since));
        }
    }
    seen.sort_by_key(|(k, since)| (*since, *k));
    seen.truncate(MAX_SEEN);
    Some(Claim {
        since,
        target,
        seen,
    })
}

/// True for a label a node may claim: 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending
/// with `-` (a DNS host label, lower case: names are compared as DNS does, without case).
pub fn is_label(label: &str) -> bool {
    (1..=MAX_LABEL).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_reads_back_and_bad_ones_are_refused() {
        let k = PublicKey::from_bytes([7; 32]);
        let claim = Claim {
            since: 1_733_390_000_000,
            target: Some(k),
            seen: vec![(k, 5)],
        };
        assert_eq!(Claim::decode(&claim.encode()), Ok(claim));
        let bare = Claim {
            since: 1,
            target: None,
            seen: vec![],
        };
        assert_eq!(bare.encode(), r#"{"since":1}"#);
        for bad in [
            "",
            "{}",
            r#"{"since":-1}"#,
            r#"{"since":1,"x":2}"#,
            r#"{"since":1,"key":"zz"}"#,
        ] {
            assert!(Claim::decode(bad).is_err(), "{bad}");
        }
        let many = Claim {
            since: 1,
            target: None,
            seen: vec![(k, 1); MAX_SEEN + 1],
        };
        assert_eq!(Claim::decode(&many.encode()), Err(ClaimError::TooManySeen));
        let long = format!(r#"{{"since":1{}}}"#, " ".repeat(MAX_CLAIM_BYTES));
        assert_eq!(Claim::decode(&long), Err(ClaimError::TooLarge));
    }

    #[test]
    fn labels_are_dns_host_labels() {
        for good in ["clinic", "a", "web-1", &"x".repeat(63)] {
            assert!(is_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Clinic", "a.b", "a_b", "ü", &"x".repeat(64)] {
            assert!(!is_label(bad), "{bad}");
        }
    }
}
