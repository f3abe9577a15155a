//! JWTs interoperate with an independent implementation: PyJWT (with `cryptography`) verifies ours,
//! we verify PyJWT's, and an HS256 token keyed with the public key (the classic algorithm-confusion
//! forgery) is refused. Needs Python 3 with PyJWT and cryptography (Debian: python3-jwt,
//! python3-cryptography; `tests/run-all.sh` installs them).

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::process::Command;

use meshrouter::core::identity::NodeKey;
use meshrouter::services::identity::jwt::{Expect, JwtError, issue, verify};
use serde_json::json;

/// A Python interpreter that has PyJWT and cryptography.
fn python() -> String {
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import jwt, cryptography"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return candidate.to_owned();
        }
    }
    panic!(
        "no Python with PyJWT and cryptography: apt-get install python3-jwt python3-cryptography"
    );
}

fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const NOW_PY: &str = "import time; now = int(time.time())";

#[test]
fn pyjwt_verifies_ours_and_we_verify_pyjwts() {
    let seed = [9u8; 32];
    let key = NodeKey::from_seed(&seed);
    let public = hex::encode(key.public_key().as_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({ "sub": "alice", "iat": now, "exp": now + 300 });
    let ours = issue(&key, claims.as_object().unwrap());
    let decoded = run_python(
        "import sys, json, jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
k = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sys.argv[1]))
print(json.dumps(jwt.decode(sys.argv[2], key=k, algorithms=['EdDSA'])))",
        &[&public, &ours],
    );
    let decoded: serde_json::Value = serde_json::from_str(&decoded).unwrap();
    assert_eq!(decoded["sub"], "alice");

    let theirs = run_python(
        &format!(
            "import sys, jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
{NOW_PY}
k = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sys.argv[1]))
print(jwt.encode({{'sub': 'bob', 'iat': now, 'exp': now + 300}}, k, algorithm='EdDSA'))"
        ),
        &[&hex::encode(seed)],
    );
    let v = verify(&theirs, &Expect::bearer(Some(&key.public_key()), None), now).unwrap();
    assert_eq!(v.claims["sub"], "bob");
    let other = NodeKey::from_seed(&[8; 32]).public_key();
    assert_eq!(
        verify(&theirs, &Expect::bearer(Some(&other), None), now),
        Err(JwtError::BadSignature)
    );

    // HS256 keyed with the public key bytes: refused by its algorithm, never checked as HMAC.
    let confused = run_python(
        &format!(
            "import sys, hmac, hashlib, base64, json
{NOW_PY}
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b'=').decode()
h = b(json.dumps({{'alg': 'HS256', 'typ': 'JWT'}}).encode())
p = b(json.dumps({{'sub': 'mallory', 'exp': now + 300}}).encode())
s = b(hmac.new(bytes.fromhex(sys.argv[1]), (h + '.' + p).encode(), hashlib.sha256).digest())
print(h + '.' + p + '.' + s)"
        ),
        &[&public],
    );
    assert_eq!(
        verify(
            &confused,
            &Expect::bearer(Some(&key.public_key()), None),
            now
        ),
        Err(JwtError::Algorithm("HS256".into()))
    );
}
