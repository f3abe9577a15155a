//! `meshrouter crdt ...`: the CRDT service's documents from the command line, through the daemon's
//! local API (`/v1/crdt/*`), including sneakernet export and import.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Subcommand;
use meshrouter::services::crdt::drop::MAX_DROP_LEN;
use serde_json::{Value, json};

use super::client::{call, call_waiting};
use super::table::{cell, print};

/// A document's namespace and name.
#[derive(clap::Args)]
pub(crate) struct Doc {
    /// Namespace (say, the community or the application).
    namespace: String,
    /// Document name.
    document: String,
}

/// CRDT subcommands.
#[derive(Subcommand)]
pub(crate) enum CrdtCommand {
    /// List documents, with sync counters.
    List,
    /// Show a document: its value, conflicts (concurrent values) and version vector.
    Get(Doc),
    /// Write a register: the document's value, or the value under a map key with --key.
    Put {
        #[command(flatten)]
        doc: Doc,
        /// The value.
        value: String,
        /// Map key (the document is then a map of registers).
        #[arg(long)]
        key: Option<String>,
        /// Register kind of a new document: lww (last writer wins) or mv (keeps concurrent values).
        #[arg(long, default_value = "lww", value_parser = ["lww", "mv"])]
        kind: String,
    },
    /// Remove a map key (concurrent writes to it survive).
    Delete {
        #[command(flatten)]
        doc: Doc,
        /// The key.
        key: String,
    },
    /// Add to a counter (--by -3 subtracts).
    Incr {
        #[command(flatten)]
        doc: Doc,
        /// Map key (the document is then a map of counters).
        #[arg(long)]
        key: Option<String>,
        /// Amount.
        #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
        by: i64,
    },
    /// Add a set member.
    Add {
        #[command(flatten)]
        doc: Doc,
        /// The member.
        member: String,
        /// Map key (the document is then a map of sets).
        #[arg(long)]
        key: Option<String>,
    },
    /// Remove a set member (a concurrent add wins).
    Remove {
        #[command(flatten)]
        doc: Doc,
        /// The member.
        member: String,
        /// Map key.
        #[arg(long)]
        key: Option<String>,
    },
    /// Edit a text document (made if new): insert text before a position, or delete characters
    /// from one. Positions count characters (Unicode scalar values) from 0; the text's length
    /// appends. `crdt get` prints the text.
    #[command(group(clap::ArgGroup::new("edit").required(true).args(["insert", "delete"])))]
    Edit {
        #[command(flatten)]
        doc: Doc,
        /// Insert TEXT before position POS.
        #[arg(long, num_args = 2, value_names = ["POS", "TEXT"], allow_hyphen_values = true)]
        insert: Option<Vec<String>>,
        /// Delete LEN characters from position POS.
        #[arg(long, num_args = 2, value_names = ["POS", "LEN"])]
        delete: Option<Vec<usize>>,
    },
    /// Print changes as they happen, one JSON line per batch (until interrupted, or --once).
    Watch {
        /// Only changes after this version (from an earlier line's "version").
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Stop after the first answer (a change, or --timeout seconds without one).
        #[arg(long)]
        once: bool,
        /// Seconds to wait for a change per request.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Write a signed drop file of changes for a node with no link to this one:
    /// `meshrouter crdt export > /media/usb/drop.bin`.
    Export {
        /// Only what that node lacks: a file from its `meshrouter crdt have`, or the key of a peer
        /// that synced with this node since it started. Default: every change.
        #[arg(long, value_name = "HAVE_FILE|PEER_KEY")]
        since: Option<String>,
        /// Write here instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Take in a drop file (all or nothing: a damaged file is refused and changes nothing).
    Import {
        /// The drop file.
        file: PathBuf,
    },
    /// Print what this node holds, for another node's `export --since`.
    Have,
    /// Let a node (a did:key, a 64-hex key, or * for anyone) pull, read, write or manage a
    /// namespace. This node must manage it: it owns `~<its did:key id>/...` names, and the
    /// configured admins manage the others.
    Grant {
        /// The namespace.
        namespace: String,
        /// Who: did:key, key, or *.
        subject: String,
        /// pull (replicate only), read, write or manage.
        #[arg(value_parser = ["pull", "read", "write", "manage"])]
        level: String,
    },
    /// Take access away: the subject keeps --to (default none), and its changes this node has
    /// not seen are cut on every replica.
    Revoke {
        /// The namespace.
        namespace: String,
        /// Who: did:key, key, or *.
        subject: String,
        /// What the subject keeps.
        #[arg(long, default_value = "none", value_parser = ["none", "pull", "read", "write"])]
        to: String,
    },
    /// Take what a manager's delegation token (`meshrouter id delegate --to <this node's did>
    /// --with crdt://NS --can crdt/write`) gives this node in a namespace, without waiting for a
    /// grant. It counts as the issuer's grant, and falls if the issuer stops managing before it
    /// saw it.
    Redeem {
        /// The namespace.
        namespace: String,
        /// The token, or @FILE.
        #[arg(value_name = "TOKEN|@FILE")]
        token: String,
        /// Take less than the token gives (default: all of it).
        #[arg(long, value_parser = ["pull", "read", "write", "manage"])]
        level: Option<String>,
    },
    /// Who may do what in a namespace, and every grant and revocation with whether it counts.
    Access {
        /// The namespace.
        namespace: String,
    },
}

fn write_body(doc: &Doc, op: &str, default_kind: String) -> Value {
    json!({ "namespace": doc.namespace, "document": doc.document, "op": op,
            "default_kind": default_kind })
}

fn kind_for(key: &Option<String>, value_kind: &str) -> String {
    if key.is_some() {
        format!("map<{value_kind}>")
    } else {
        value_kind.to_owned()
    }
}

/// Runs a CRDT subcommand against the daemon at `socket`.
pub(crate) fn run(socket: &Path, command: CrdtCommand, json_output: bool) -> anyhow::Result<()> {
    let (path, body) = match &command {
        CrdtCommand::List => return list(socket, json_output),
        CrdtCommand::Have => {
            let reply = call(socket, "GET", "/v1/crdt/have", None)?;
            println!("{}", serde_json::to_string_pretty(&reply["have"])?);
            return Ok(());
        }
        CrdtCommand::Watch {
            since,
            once,
            timeout,
        } => return watch(socket, *since, *once, *timeout),
        CrdtCommand::Export { since, output } => {
            return export(socket, since.as_deref(), output.as_deref(), json_output);
        }
        CrdtCommand::Import { file } => return import(socket, file, json_output),
        CrdtCommand::Grant {
            namespace,
            subject,
            level,
        } => {
            let body = json!({ "namespace": namespace, "subject": subject, "level": level });
            let reply = call(socket, "POST", "/v1/crdt/access/grant", Some(&body))?;
            return show_access(&reply, json_output);
        }
        CrdtCommand::Revoke {
            namespace,
            subject,
            to,
        } => {
            let body = json!({ "namespace": namespace, "subject": subject, "level": to });
            let reply = call(socket, "POST", "/v1/crdt/access/revoke", Some(&body))?;
            return show_access(&reply, json_output);
        }
        CrdtCommand::Redeem {
            namespace,
            token,
            level,
        } => {
            let token = super::identity::token_arg(token)?;
            let mut body = json!({ "namespace": namespace, "token": token });
            if let Some(level) = level {
                body["level"] = json!(level);
            }
            let reply = call(socket, "POST", "/v1/crdt/access/redeem", Some(&body))?;
            return show_access(&reply, json_output);
        }
        CrdtCommand::Access { namespace } => {
            let body = json!({ "namespace": namespace });
            let reply = call(socket, "POST", "/v1/crdt/access", Some(&body))?;
            return show_access(&reply, json_output);
        }
        CrdtCommand::Get(doc) => (
            "/v1/crdt/read",
            json!({ "namespace": doc.namespace, "document": doc.document }),
        ),
        CrdtCommand::Put {
            doc,
            value,
            key,
            kind,
        } => {
            let mut b = write_body(doc, "write", kind_for(key, kind));
            b["value"] = json!(value);
            b["key"] = json!(key);
            ("/v1/crdt/write", b)
        }
        CrdtCommand::Delete { doc, key } => {
            let mut b = write_body(doc, "delete", "map<lww>".into());
            b["key"] = json!(key);
            ("/v1/crdt/write", b)
        }
        CrdtCommand::Incr { doc, key, by } => {
            let mut b = write_body(doc, "increment", kind_for(key, "counter"));
            b["key"] = json!(key);
            b["by"] = json!(by);
            ("/v1/crdt/write", b)
        }
        CrdtCommand::Edit {
            doc,
            insert,
            delete,
        } => {
            let mut b = write_body(doc, "insert", "text".into());
            match (insert.as_deref(), delete.as_deref()) {
                (Some([pos, text]), _) => {
                    let pos: usize = pos
                        .parse()
                        .with_context(|| format!("--insert {pos}: the position is a number"))?;
                    b["pos"] = json!(pos);
                    b["value"] = json!(text);
                }
                (_, Some([pos, len])) => {
                    b["op"] = json!("delete");
                    b["pos"] = json!(pos);
                    b["len"] = json!(len);
                }
                _ => bail!("give --insert POS TEXT or --delete POS LEN"),
            }
            ("/v1/crdt/write", b)
        }
        CrdtCommand::Add { doc, member, key } | CrdtCommand::Remove { doc, member, key } => {
            let op = if matches!(command, CrdtCommand::Add { .. }) {
                "add"
            } else {
                "remove"
            };
            let mut b = write_body(doc, op, kind_for(key, "set"));
            b["value"] = json!(member);
            b["key"] = json!(key);
            ("/v1/crdt/write", b)
        }
    };
    let reply = call(socket, "POST", path, Some(&body))?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        show_document(&reply)?;
    }
    Ok(())
}

fn show_document(doc: &Value) -> anyhow::Result<()> {
    println!(
        "{}/{} ({}, {} changes)",
        cell(&doc["namespace"]),
        cell(&doc["document"]),
        cell(&doc["kind"]),
        cell(&doc["changes"])
    );
    match doc["value"].as_str() {
        // A text prints as itself (a register's value stays quoted, as JSON).
        Some(text) if doc["kind"] == "text" => println!("{text}"),
        _ => println!("{}", serde_json::to_string_pretty(&doc["value"])?),
    }
    if let Some(conflicts) = doc["conflicts"].as_object().filter(|c| !c.is_empty()) {
        println!("conflicts (concurrent values; write again to settle):");
        for (key, values) in conflicts {
            println!(
                "  {}: {values}",
                if key.is_empty() { "(value)" } else { key }
            );
        }
    }
    if let Some(evidence) = doc["equivocations"].as_array().filter(|e| !e.is_empty()) {
        println!(
            "WARNING: {} equivocation(s): a writer signed two different changes with one number",
            evidence.len()
        );
    }
    Ok(())
}

fn show_access(reply: &Value, json_output: bool) -> anyhow::Result<()> {
    if json_output {
        println!("{}", serde_json::to_string_pretty(reply)?);
        return Ok(());
    }
    println!(
        "{} ({}{}): this node may {}",
        cell(&reply["namespace"]),
        cell(&reply["class"]),
        reply["owner"]
            .as_str()
            .map_or(String::new(), |o| format!(", owned by {o}")),
        cell(&reply["you"])
    );
    let members: Vec<Vec<String>> = (reply["members"].as_array().into_iter().flatten())
        .map(|m| vec![cell(&m["subject"]), cell(&m["level"])])
        .collect();
    if !members.is_empty() {
        print(&["Subject", "Level"], &members);
    }
    let changes: Vec<Vec<String>> = (reply["changes"].as_array().into_iter().flatten())
        .map(|c| {
            vec![
                cell(&c["author"]),
                cell(&c["seq"]),
                cell(&c["op"]),
                cell(&c["subject"]),
                cell(&c["level"]),
                if c["counts"] == json!(true) {
                    "yes"
                } else {
                    "no (cut)"
                }
                .to_owned(),
            ]
        })
        .collect();
    if !changes.is_empty() {
        print(
            &["Author", "Seq", "Op", "Subject", "Level", "Counts"],
            &changes,
        );
    }
    if reply["suppressed"].as_u64().unwrap_or(0) > 0 {
        println!(
            "{} change(s) held that do not count (cut by a revocation)",
            cell(&reply["suppressed"])
        );
    }
    Ok(())
}

fn list(socket: &Path, json_output: bool) -> anyhow::Result<()> {
    let reply = call(socket, "GET", "/v1/crdt", None)?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reply["documents"]
        .as_array()
        .map(|docs| {
            docs.iter()
                .map(|d| {
                    [
                        "namespace",
                        "document",
                        "kind",
                        "changes",
                        "heads",
                        "access",
                    ]
                    .iter()
                    .map(|f| cell(&d[*f]))
                    .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    print(
        &[
            "Namespace",
            "Document",
            "Kind",
            "Changes",
            "Heads",
            "This node may",
        ],
        &rows,
    );
    println!(
        "version {}, sync peers {}, changes received {} (new {})",
        cell(&reply["version"]),
        reply["sync_peers"].as_array().map_or(0, Vec::len),
        cell(&reply["sync"]["changes_received"]),
        cell(&reply["sync"]["changes_applied"]),
    );
    Ok(())
}

fn watch(socket: &Path, mut since: u64, once: bool, timeout: u64) -> anyhow::Result<()> {
    loop {
        let path = format!("/v1/crdt/watch?since={since}&timeout={timeout}");
        let wait = Duration::from_secs(timeout + 10);
        let reply = call_waiting(socket, "GET", &path, None, wait)?;
        let changed = reply["changed"].as_array().is_some_and(|c| !c.is_empty());
        if changed || once {
            println!("{reply}");
            std::io::stdout().flush()?;
        }
        since = reply["version"].as_u64().unwrap_or(since);
        if once {
            return Ok(());
        }
    }
}

fn export(
    socket: &Path,
    since: Option<&str>,
    output: Option<&Path>,
    json_output: bool,
) -> anyhow::Result<()> {
    if output.is_none() && std::io::stdout().is_terminal() {
        bail!("a drop file is binary: redirect it (> drop.bin) or use --output FILE");
    }
    let body = match since {
        None => json!({}),
        Some(s) if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) => {
            json!({ "peer": s })
        }
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!("reading {file} (from the other node's `meshrouter crdt have`)")
            })?;
            let have: Value = serde_json::from_str(&text)
                .with_context(|| format!("{file} is not the output of `meshrouter crdt have`"))?;
            json!({ "since": have })
        }
    };
    let reply = call(socket, "POST", "/v1/crdt/export", Some(&body))?;
    let file = BASE64
        .decode(reply["drop"].as_str().unwrap_or_default())
        .context("the daemon's drop is not base64")?;
    match output {
        Some(path) => {
            // Written whole, then renamed: a crash never leaves half a drop under the final name.
            let tmp = path.with_extension("partial");
            std::fs::write(&tmp, &file)
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, path))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => std::io::stdout().write_all(&file)?,
    }
    if file.len() > MAX_DROP_LEN {
        eprintln!(
            "warning: this drop is {} bytes, more than a node imports ({MAX_DROP_LEN} bytes): \
             export for the other node's `meshrouter crdt have` (--since) to make it smaller",
            file.len()
        );
    }
    let summary = json!({ "changes": reply["changes"], "bytes": reply["bytes"] });
    if json_output {
        eprintln!("{summary}");
    } else {
        eprintln!(
            "exported {} changes ({} bytes)",
            cell(&reply["changes"]),
            cell(&reply["bytes"])
        );
    }
    Ok(())
}

fn import(socket: &Path, file: &Path, json_output: bool) -> anyhow::Result<()> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if size > MAX_DROP_LEN as u64 {
        bail!(
            "{} is {size} bytes; the daemon imports drops of at most {MAX_DROP_LEN} bytes",
            file.display()
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let body = json!({ "drop": BASE64.encode(bytes) });
    let reply = call(socket, "POST", "/v1/crdt/import", Some(&body))
        .with_context(|| format!("{} refused", file.display()))?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        println!(
            "imported {}: {} new changes, {} already held, {} equivocations",
            file.display(),
            cell(&reply["applied"]),
            cell(&reply["duplicates"]),
            cell(&reply["equivocations"])
        );
    }
    Ok(())
}
