//! `meshrouter id ...`: identities, sign-in, tokens, credentials, delegations and the member
//! registry. Requests go to the daemon's `/v1/id/*` API, which signs with the node key (that key
//! never leaves the daemon). With `--key FILE` the CLI signs with a *user* key read from that file
//! instead, and only the signed result is sent or printed.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Subcommand;
use meshrouter::core::identity::NodeKey;
use meshrouter::services::identity::did_document::did_document;
use meshrouter::services::identity::did_key::{did_key, parse_did_key};
use meshrouter::services::identity::ucan::{self, Capability};
use meshrouter::services::identity::{jwt, registry, vc};
use serde_json::{Map, Value, json};

use super::client::call;

/// Identity subcommands.
#[derive(Subcommand)]
pub(crate) enum IdCommand {
    /// Show this node's DID, key, address and DID document (or, with --key, a user key's DID).
    Show {
        /// A user key file to show instead of the node.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Make a user key file (mode 0600) and print its DID.
    Keygen {
        /// Where to write the key (never overwritten).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Which node owns an overlay address (this node, a peer, or one it has a session or path to).
    Whois {
        /// An overlay IPv6 address (200::/7 or inside a node's 300::/8 subnet).
        address: String,
    },
    /// Print the DID document of a did:key (offline).
    Document {
        /// The DID.
        did: String,
    },
    /// Ask the node for a sign-in challenge for DID and print the message to sign.
    Challenge {
        /// The DID signing in.
        did: String,
        /// The statement shown in the message.
        #[arg(long)]
        statement: Option<String>,
    },
    /// Sign a message (a challenge) with a user key; prints the signature in hex (offline).
    Sign {
        /// The user key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// File holding the message, or - for standard input.
        #[arg(default_value = "-")]
        message: PathBuf,
    },
    /// Check a signed challenge on the node; prints the session token it issues.
    Verify {
        /// File holding the signed message, or - for standard input.
        #[arg(long, default_value = "-")]
        message: PathBuf,
        /// The signature (hex or base64url).
        #[arg(long)]
        signature: String,
        /// Accept any DID, not only enrolled members.
        #[arg(long)]
        any: bool,
    },
    /// Sign in to the node with a user key: challenge, sign, verify; prints the session token.
    Login {
        /// The user key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Accept any DID, not only enrolled members.
        #[arg(long)]
        any: bool,
        /// Lifetime of the session token (e.g. 1h, 30m).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// JSON Web Tokens (EdDSA / Ed25519 only).
    Jwt {
        #[command(subcommand)]
        command: JwtCommand,
    },
    /// Verifiable Credentials 2.0 with eddsa-jcs-2022 proofs.
    Vc {
        #[command(subcommand)]
        command: VcCommand,
    },
    /// Delegate capabilities to another DID (a UCAN-style token); prints the token.
    Delegate {
        /// The DID receiving the capabilities.
        #[arg(long)]
        to: String,
        /// The resource, e.g. crdt://village/ledger (a trailing /* covers everything under it).
        #[arg(long = "with", value_name = "RESOURCE")]
        resource: String,
        /// The ability, e.g. crdt/write (crdt/* covers every crdt ability).
        #[arg(long = "can", value_name = "ABILITY")]
        ability: String,
        /// Tokens this delegation rests on (the ones granted to the signer), or @FILE.
        #[arg(long = "proof", value_name = "TOKEN|@FILE")]
        proofs: Vec<String>,
        /// Lifetime (e.g. 1h, 7d); no longer than the proofs'.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Sign with this user key instead of the node's.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Check a delegation token's whole chain, and optionally that it grants --with/--can to --audience.
    Authorize {
        /// The token, or @FILE.
        token: String,
        /// The resource wanted.
        #[arg(long = "with", value_name = "RESOURCE", requires = "ability")]
        resource: Option<String>,
        /// The ability wanted.
        #[arg(long = "can", value_name = "ABILITY", requires = "resource")]
        ability: Option<String>,
        /// Who presents it (default: its audience).
        #[arg(long)]
        audience: Option<String>,
    },
    /// Enroll a DID as a member of the mesh (this node must be an admin the others trust).
    Enroll {
        /// The member's DID.
        did: String,
        /// Roles to give (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// Revoke a member DID, a credential id or a delegation id; replicated to every node.
    Revoke {
        /// What to revoke.
        target: String,
        /// Why (recorded in the revocation).
        #[arg(long, default_value = "")]
        reason: String,
        /// Sign with this user key instead of the node's (a DID revoking itself, an issuer revoking
        /// what it issued).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// List enrolled members and revocations as this node honours them.
    Members,
    /// Ask a node over the overlay to prove it holds its key.
    Prove {
        /// The node: did:key or hex public key.
        node: String,
    },
}

/// JWT subcommands.
#[derive(Subcommand)]
pub(crate) enum JwtCommand {
    /// Issue a token signed by the node (or by --key).
    Issue {
        /// A claim as name=value (a JSON value, or else a string); repeat for several.
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        /// Lifetime (e.g. 1h).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Sign with this user key instead of the node's.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Verify tokens (on the node, which also checks revocations; or --offline). Several tokens are
    /// checked as one batch, one JSON result per line.
    Verify {
        /// The token, or @FILE; repeat for a batch.
        #[arg(required = true)]
        tokens: Vec<String>,
        /// The DID that must have signed it.
        #[arg(long)]
        issuer: Option<String>,
        /// Who is verifying: a token naming an audience (`aud`) must name this one (default: the
        /// node's DID; offline, tokens with an audience are refused without it).
        #[arg(long)]
        audience: Option<String>,
        /// Check here, without the node (no revocation check).
        #[arg(long)]
        offline: bool,
    },
}

/// Credential subcommands.
#[derive(Subcommand)]
pub(crate) enum VcCommand {
    /// Issue a credential from a JSON file (issuer, validFrom, context and type are filled in).
    Issue {
        /// The unsigned credential, or - for standard input.
        file: PathBuf,
        /// Sign with this user key instead of the node's.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Verify a credential (on the node, which also checks revocations; or --offline).
    Verify {
        /// The signed credential, or - for standard input.
        file: PathBuf,
        /// Check here, without the node (no revocation check).
        #[arg(long)]
        offline: bool,
    },
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_key(path: &Path) -> anyhow::Result<NodeKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the key file {}", path.display()))?;
    NodeKey::from_file_contents(&text).with_context(|| format!("key file {}", path.display()))
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .context("reading standard input")?;
    } else {
        text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(text)
}

/// A token given inline or as @FILE.
pub(super) fn token_arg(arg: &str) -> anyhow::Result<String> {
    Ok(match arg.strip_prefix('@') {
        Some(path) => read_input(Path::new(path))?.trim().to_owned(),
        None => arg.trim().to_owned(),
    })
}

fn json_object(text: &str, what: &str) -> anyhow::Result<Map<String, Value>> {
    match serde_json::from_str(text).with_context(|| format!("{what} is not JSON"))? {
        Value::Object(map) => Ok(map),
        _ => bail!("{what} must be a JSON object"),
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs an identity subcommand against the daemon at `socket`.
pub(crate) fn run(socket: &Path, command: IdCommand, json_output: bool) -> anyhow::Result<()> {
    let post = |path: &str, body: Value| call(socket, "POST", path, Some(&body));
    match command {
        IdCommand::Show { key: Some(file) } => {
            let key = read_key(&file)?.public_key();
            print_json(
                &json!({ "did": did_key(&key), "public_key": key.to_hex(), "document": did_document(&key) }),
            )
        }
        IdCommand::Show { key: None } => {
            let reply = call(socket, "GET", "/v1/id/self", None)?;
            if json_output {
                return print_json(&reply);
            }
            println!("DID:     {}", reply["did"].as_str().unwrap_or_default());
            println!(
                "Key:     {}",
                reply["public_key"].as_str().unwrap_or_default()
            );
            println!("Address: {}", reply["address"].as_str().unwrap_or_default());
            println!("Admins:  {}", reply["admins"]);
            Ok(())
        }
        IdCommand::Keygen { output } => keygen(&output),
        IdCommand::Whois { address } => {
            let reply = call(socket, "GET", &format!("/v1/id/whois?addr={address}"), None)?;
            if json_output {
                return print_json(&reply);
            }
            println!(
                "{} ({})",
                reply["did"].as_str().unwrap_or_default(),
                reply["known_as"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        IdCommand::Document { did } => {
            let key = parse_did_key(&did).with_context(|| did.clone())?;
            print_json(&did_document(&key))
        }
        IdCommand::Challenge { did, statement } => {
            let reply = post(
                "/v1/id/challenge",
                json!({ "did": did, "statement": statement }),
            )?;
            if json_output {
                return print_json(&reply);
            }
            println!("{}", reply["message"].as_str().unwrap_or_default());
            Ok(())
        }
        IdCommand::Sign { key, message } => {
            let key = read_key(&key)?;
            let text = read_input(&message)?;
            println!("{}", hex::encode(key.sign(text.as_bytes())));
            Ok(())
        }
        IdCommand::Verify {
            message,
            signature,
            any,
        } => {
            let text = read_input(&message)?;
            let reply = post(
                "/v1/id/verify",
                json!({ "message": text, "signature": signature, "member": !any }),
            )?;
            print_token(&reply, json_output)
        }
        IdCommand::Login { key, any, ttl } => {
            let key = read_key(&key)?;
            let did = did_key(&key.public_key());
            let challenge = post("/v1/id/challenge", json!({ "did": did }))?;
            let text = challenge["message"]
                .as_str()
                .context("the node sent no challenge")?;
            let signature = hex::encode(key.sign(text.as_bytes()));
            let reply = post(
                "/v1/id/verify",
                json!({ "message": text, "signature": signature, "member": !any, "ttl": ttl.as_secs() }),
            )?;
            print_token(&reply, json_output)
        }
        IdCommand::Jwt { command } => jwt_command(socket, command, json_output),
        IdCommand::Vc { command } => vc_command(socket, command),
        IdCommand::Delegate {
            to,
            resource,
            ability,
            proofs,
            ttl,
            key,
        } => {
            let capabilities = vec![Capability {
                with: resource,
                can: ability,
            }];
            let proofs = proofs
                .iter()
                .map(|p| token_arg(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let token = match key {
                Some(file) => {
                    parse_did_key(&to).with_context(|| format!("--to {to}"))?;
                    let now = now_secs();
                    ucan::delegate(
                        &read_key(&file)?,
                        &to,
                        &capabilities,
                        now,
                        now + ttl.as_secs(),
                        &proofs,
                    )
                }
                None => {
                    let reply = post(
                        "/v1/id/delegate",
                        json!({ "audience": to, "capabilities": capabilities,
                                                               "ttl": ttl.as_secs(), "proofs": proofs }),
                    )?;
                    reply["token"].as_str().unwrap_or_default().to_owned()
                }
            };
            println!("{token}");
            Ok(())
        }
        IdCommand::Authorize {
            token,
            resource,
            ability,
            audience,
        } => {
            let reply = post(
                "/v1/id/ucan/verify",
                json!({ "token": token_arg(&token)?, "with": resource,
                                                           "can": ability, "audience": audience }),
            )?;
            print_json(&reply)
        }
        IdCommand::Enroll { did, roles } => {
            let reply = post("/v1/id/enroll", json!({ "did": did, "roles": roles }))?;
            if json_output {
                return print_json(&reply);
            }
            println!("enrolled {did} as {}", roles.join(", "));
            Ok(())
        }
        IdCommand::Revoke {
            target,
            reason,
            key,
        } => {
            let body = match key {
                Some(file) => {
                    json!({ "token": registry::revocation(&read_key(&file)?, &target, &reason, now_secs()) })
                }
                None => json!({ "target": target, "reason": reason }),
            };
            let reply = post("/v1/id/revoke", body)?;
            if json_output {
                return print_json(&reply);
            }
            println!("revoked {target}; the revocation replicates to every node");
            Ok(())
        }
        IdCommand::Members => members(socket, json_output),
        IdCommand::Prove { node } => {
            let reply = super::client::call_waiting(
                socket,
                "POST",
                "/v1/id/prove",
                Some(&json!({ "node": node })),
                Duration::from_secs(15),
            )?;
            if json_output {
                return print_json(&reply);
            }
            println!(
                "{} proved its key ({:.1} ms)",
                reply["did"].as_str().unwrap_or_default(),
                reply["rtt_ms"].as_f64().unwrap_or_default()
            );
            Ok(())
        }
    }
}

fn print_token(reply: &Value, json_output: bool) -> anyhow::Result<()> {
    if json_output {
        return print_json(reply);
    }
    println!("{}", reply["token"].as_str().unwrap_or_default());
    Ok(())
}

fn keygen(output: &Path) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).context("reading the OS random source")?;
    let key = NodeKey::from_seed(&seed);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .with_context(|| format!("creating {}", output.display()))?;
    file.write_all(format!("{}\n", key.seed_hex().as_str()).as_bytes())?;
    file.sync_all()?;
    println!("{}", did_key(&key.public_key()));
    Ok(())
}

fn jwt_command(socket: &Path, command: JwtCommand, json_output: bool) -> anyhow::Result<()> {
    match command {
        JwtCommand::Issue { claims, ttl, key } => {
            let mut map = Map::new();
            for claim in &claims {
                let (name, value) = claim
                    .split_once('=')
                    .with_context(|| format!("--claim {claim}: use NAME=VALUE"))?;
                let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
                map.insert(name.to_owned(), value);
            }
            let token = match key {
                Some(file) => {
                    let now = now_secs();
                    map.entry("iat").or_insert(json!(now));
                    map.entry("exp").or_insert(json!(now + ttl.as_secs()));
                    jwt::issue(&read_key(&file)?, &map)
                }
                None => {
                    let reply = call(
                        socket,
                        "POST",
                        "/v1/id/jwt/issue",
                        Some(&json!({ "claims": map, "ttl": ttl.as_secs() })),
                    )?;
                    reply["token"].as_str().unwrap_or_default().to_owned()
                }
            };
            println!("{token}");
            Ok(())
        }
        JwtCommand::Verify {
            tokens,
            issuer,
            audience,
            offline,
        } => {
            let tokens = tokens
                .iter()
                .map(|t| token_arg(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if offline {
                let expected = issuer
                    .as_deref()
                    .map(parse_did_key)
                    .transpose()
                    .context("--issuer")?;
                for token in &tokens {
                    let expect = jwt::Expect::bearer(expected.as_ref(), audience.as_deref());
                    let verified = jwt::verify(token, &expect, now_secs())?;
                    print_json(&json!({ "valid": true, "issuer": did_key(&verified.signer),
                                        "header": verified.header, "claims": verified.claims,
                                        "revocation_checked": false }))?;
                }
                return Ok(());
            }
            if let [token] = tokens.as_slice() {
                let reply = call(
                    socket,
                    "POST",
                    "/v1/id/jwt/verify",
                    Some(&json!({ "token": token, "issuer": issuer, "audience": audience })),
                )?;
                return print_json(if json_output {
                    &reply
                } else {
                    &reply["claims"]
                });
            }
            let reply = call(
                socket,
                "POST",
                "/v1/id/jwt/verify",
                Some(&json!({ "tokens": tokens, "issuer": issuer, "audience": audience })),
            )?;
            let results = reply["results"].as_array().cloned().unwrap_or_default();
            for result in &results {
                println!("{result}");
            }
            let refused = results.iter().filter(|r| r["valid"] != json!(true)).count();
            if refused > 0 {
                bail!("{refused} of {} tokens refused", results.len());
            }
            Ok(())
        }
    }
}

fn vc_command(socket: &Path, command: VcCommand) -> anyhow::Result<()> {
    match command {
        VcCommand::Issue { file, key } => {
            let credential = json_object(&read_input(&file)?, "the credential")?;
            let signed = match key {
                Some(k) => Value::Object(vc::issue(&read_key(&k)?, &credential, now_secs())?),
                None => call(
                    socket,
                    "POST",
                    "/v1/id/vc/issue",
                    Some(&json!({ "credential": credential })),
                )?["credential"]
                    .take(),
            };
            print_json(&signed)
        }
        VcCommand::Verify { file, offline } => {
            let credential: Value =
                serde_json::from_str(&read_input(&file)?).context("the credential is not JSON")?;
            if offline {
                let v = vc::verify(&credential, now_secs())?;
                return print_json(
                    &json!({ "valid": true, "issuer": v.issuer, "id": v.id, "subject": v.subject,
                                           "revocation_checked": false }),
                );
            }
            print_json(&call(
                socket,
                "POST",
                "/v1/id/vc/verify",
                Some(&json!({ "credential": credential })),
            )?)
        }
    }
}

fn members(socket: &Path, json_output: bool) -> anyhow::Result<()> {
    let reply = call(socket, "GET", "/v1/id/members", None)?;
    if json_output {
        return print_json(&reply);
    }
    let rows: Vec<Vec<String>> = reply["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    vec![
                        super::table::cell(&m["did"]),
                        m["roles"]
                            .as_array()
                            .map(|r| {
                                r.iter()
                                    .map(super::table::cell)
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default(),
                        super::table::cell(&m["enrolled_by"]),
                        if m["revoked"] == json!(true) {
                            "revoked".into()
                        } else {
                            "active".into()
                        },
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    super::table::print(&["DID", "Roles", "Enrolled by", "State"], &rows);
    println!(
        "{} revocation(s); {} entries ignored (not signed by an admin this node trusts)",
        reply["revocations"].as_array().map_or(0, Vec::len),
        super::table::cell(&reply["ignored"])
    );
    Ok(())
}
