//! The CRDT endpoints: documents, writes, watch, sneakernet export and import. Documented in
//! `docs/API.md`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::handlers::{error, ok};
use super::{ApiRequest, ApiResponse};
use crate::core::identity::PublicKey;
use crate::driver::crdt::DaemonCrdt;
use crate::driver::service_thread::ServiceContext;
use crate::services::crdt::access::Level;
use crate::services::crdt::context::Actor;
use crate::services::crdt::document::{Edit, Op, View};
use crate::services::crdt::field::{Kind, ValueKind};
use crate::services::crdt::log::DocumentLog;
use crate::services::crdt::replica::Have;

/// Longest a watch waits before answering with no change.
const MAX_WATCH_SECONDS: u64 = 300;

/// A document kind as the API writes it: `counter`, `lww`, `mv`, `set`, or `map<...>` of one.
pub(crate) fn kind_name(kind: Kind) -> String {
    let value = |v: ValueKind| match v {
        ValueKind::Counter => "counter",
        ValueKind::Lww => "lww",
        ValueKind::Mv => "mv",
        ValueKind::Set => "set",
        ValueKind::Text => "text",
    };
    match kind {
        Kind::Value(v) => value(v).to_owned(),
        Kind::Map(v) => format!("map<{}>", value(v)),
    }
}

/// Parses [`kind_name`]'s form.
pub(crate) fn parse_kind(text: &str) -> Option<Kind> {
    let value = |t: &str| match t {
        "counter" => Some(ValueKind::Counter),
        "lww" => Some(ValueKind::Lww),
        "mv" => Some(ValueKind::Mv),
        "set" => Some(ValueKind::Set),
        "text" => Some(ValueKind::Text),
        _ => None,
    };
    match text.strip_prefix("map<").and_then(|t| t.strip_suffix('>')) {
        Some(inner) => value(inner)
            .filter(|v| *v != ValueKind::Text)
            .map(Kind::Map),
        None => value(text).map(Kind::Value),
    }
}

fn view_json(view: &View) -> Value {
    match view {
        View::Counter(n) => json!(n),
        View::Text(t) => json!(t),
        View::Lww(v) => json!(v),
        View::Mv(values) | View::Set(values) => json!(values),
        View::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), view_json(v)))
                .collect(),
        ),
    }
}

/// Concurrent register values, as `{"key": [values...]}` (`""` for a document's single value).
fn conflicts(view: &View) -> Value {
    let mut out = serde_json::Map::new();
    match view {
        View::Mv(values) if values.len() > 1 => {
            out.insert(String::new(), json!(values));
        }
        View::Map(entries) => {
            for (k, v) in entries {
                if let View::Mv(values) = v
                    && values.len() > 1
                {
                    out.insert(k.clone(), json!(values));
                }
            }
        }
        _ => {}
    }
    Value::Object(out)
}

fn vv_json(log: &DocumentLog) -> Value {
    Value::Object(
        log.version_vector()
            .iter()
            .map(|(a, s)| (hex::encode(a.0), json!(s)))
            .collect(),
    )
}

pub(super) fn document_json(log: &DocumentLog) -> Value {
    let (namespace, document) = log.name();
    let view = log.document().view();
    json!({
        "namespace": namespace,
        "document": document,
        "kind": kind_name(log.document().kind()),
        "value": view_json(&view),
        "conflicts": conflicts(&view),
        "version_vector": vv_json(log),
        "changes": log.len(),
        "heads": hex::encode(log.heads_hash()),
        "equivocations": log.equivocations().iter().map(|e| json!({
            "actor": hex::encode(e.actor.0),
            "seq": e.seq,
            "first": BASE64.encode(&e.first),
            "second": BASE64.encode(&e.second),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocBody {
    namespace: String,
    document: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    namespace: String,
    document: String,
    /// The schema: must match an existing document's; needed when the document is new unless
    /// `default_kind` is given.
    kind: Option<String>,
    /// The schema for a new document when `kind` is absent (ignored if the document exists).
    default_kind: Option<String>,
    /// `increment`, `write`, `add`, `remove` or `delete` (a map key).
    op: String,
    key: Option<String>,
    value: Option<String>,
    by: Option<i64>,
    /// A text edit's position, in characters (Unicode scalar values).
    pos: Option<usize>,
    /// How many characters a text `delete` removes.
    len: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    /// A replica's holdings, as `GET /v1/crdt/have` gives them.
    since: Option<Value>,
    /// Or a peer's key: what it held when it last synced with us.
    peer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// The drop file, base64.
    drop: String,
}

pub(super) fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiResponse> {
    serde_json::from_slice(body).map_err(|e| error(400, format!("bad request body: {e}")))
}

fn op_from(body: &WriteBody) -> Result<Op, ApiResponse> {
    let value = || {
        body.value
            .clone()
            .ok_or_else(|| error(400, format!("op {} needs a value", body.op)))
    };
    let edit = match body.op.as_str() {
        "increment" => Edit::Increment(body.by.unwrap_or(1)),
        "decrement" => Edit::Increment(body.by.unwrap_or(1).checked_neg().unwrap_or(i64::MAX)),
        "write" | "put" => Edit::Write(value()?),
        "add" => Edit::Add(value()?),
        "remove" => Edit::Remove(value()?),
        "insert" => Edit::Insert(
            body.pos
                .ok_or_else(|| error(400, "op insert needs a pos (in characters)"))?,
            value()?,
        ),
        "delete" if body.key.is_none() && body.pos.is_some() => Edit::Delete(
            body.pos.unwrap_or_default(),
            body.len
                .ok_or_else(|| error(400, "a text delete needs a len (in characters)"))?,
        ),
        "delete" => {
            return body
                .key
                .clone()
                .map(Op::RemoveKey)
                .ok_or_else(|| error(400, "op delete needs a key"));
        }
        other => {
            return Err(error(
                400,
                format!(
                    "unknown op {other}: use increment, decrement, write, add, remove, delete or insert"
                ),
            ));
        }
    };
    Ok(match &body.key {
        Some(k) => Op::Key(k.clone(), edit),
        None => Op::Value(edit),
    })
}

/// `{"namespace/document": {actor: seq}}` ⇄ [`Have`].
fn have_json(have: &Have) -> Value {
    Value::Array(
        have.iter()
            .map(|((ns, doc), vv)| {
                json!({
                    "namespace": ns,
                    "document": doc,
                    "version_vector": vv.iter().map(|(a, s)| (hex::encode(a.0), json!(s))).collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect(),
    )
}

fn have_from(value: &Value) -> Result<Have, ApiResponse> {
    let bad = || error(400, "since: expected the output of GET /v1/crdt/have");
    let mut have = Have::new();
    for entry in value.as_array().ok_or_else(bad)? {
        let (Some(ns), Some(doc), Some(vv)) = (
            entry["namespace"].as_str(),
            entry["document"].as_str(),
            entry["version_vector"].as_object(),
        ) else {
            return Err(bad());
        };
        let mut map = std::collections::BTreeMap::new();
        for (actor, seq) in vv {
            let key = PublicKey::from_hex(actor).map_err(|_| bad())?;
            map.insert(Actor(*key.as_bytes()), seq.as_u64().ok_or_else(bad)?);
        }
        have.insert((ns.to_owned(), doc.to_owned()), map);
    }
    Ok(have)
}

fn wall_millis() -> u64 {
    crate::driver::clock::wall_micros() / 1000
}

/// Runs `f` on the CRDT service, or answers 503 if it is off.
pub(super) fn with_crdt(
    r: &mut ServiceContext,
    f: impl FnOnce(&mut DaemonCrdt, crate::core::time::Instant) -> Result<Value, ApiResponse>,
) -> ApiResponse {
    let now = r.clock.now();
    let Some(crdt) = &mut r.services.crdt else {
        return error(
            503,
            "the CRDT service is off (crdt.database = \"none\", or its database failed to open: see the log)",
        );
    };
    f(crdt, now).map_or_else(|e| e, ok)
}

/// `GET /v1/crdt`: the documents and sync counters.
pub(super) fn crdt_documents(r: &mut ServiceContext, _: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, _| {
        let docs: Vec<Value> = crdt
            .host
            .store
            .replica()
            .documents()
            .map(|(_, log)| {
                let (ns, doc) = log.name();
                let me = Actor(*crdt.host.key().public_key().as_bytes());
                let level = crdt.host.store.replica().level(ns, doc, me);
                json!({
                    "namespace": ns, "document": doc,
                    "kind": kind_name(log.document().kind()),
                    "changes": log.len(), "heads": hex::encode(log.heads_hash()),
                    "equivocations": log.equivocations().len(),
                    "suppressed": log.suppressed(),
                    "access": level.name(),
                })
            })
            .collect();
        let stats = crdt.host.engine.stats();
        Ok(json!({
            "documents": docs,
            "version": crdt.version,
            "store": { "commits": crdt.host.store.commits() },
            "sync_peers": crdt.host.engine.peers().map(PublicKey::to_hex).collect::<Vec<_>>(),
            "sync": {
                "messages_sent": stats.messages_sent, "bytes_sent": stats.bytes_sent,
                "changes_received": stats.changes_received,
                "changes_applied": stats.changes_applied,
                "malformed": stats.malformed, "pulls": stats.pulls,
                "not_peer": stats.not_peer, "over_budget": stats.over_budget,
                "bad_changes": stats.bad_changes, "penalties": stats.penalties,
                "ignored": stats.ignored,
                "digest_entries_skipped": stats.digest_entries_skipped,
                "pending_changes": stats.pending_changes,
                "over_quota": stats.over_quota,
            },
        }))
    })
}

/// `GET /v1/crdt/have`: per document, the version vector held.
pub(super) fn crdt_have(r: &mut ServiceContext, _: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, _| {
        Ok(json!({ "have": have_json(&crdt.host.store.have()) }))
    })
}

/// For a request from the app listener: refuses unless its user may `need` in the document (the
/// namespace's access rules, the same as for a node).
fn app_user_may(
    crdt: &DaemonCrdt,
    request: &ApiRequest,
    namespace: &str,
    document: &str,
    need: Level,
) -> Result<(), ApiResponse> {
    let Some(user) = request.app_user else {
        return Ok(());
    };
    let level = crdt
        .host
        .store
        .replica()
        .level(namespace, document, Actor(user));
    if level < need {
        return Err(error(
            403,
            format!(
                "you may {} {namespace}, not {} it",
                level.name(),
                need.name()
            ),
        ));
    }
    Ok(())
}

/// `POST /v1/crdt/read`: one document.
pub(super) fn crdt_read(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, _| {
        parse::<DocBody>(&request.body).and_then(|b| {
            app_user_may(crdt, request, &b.namespace, &b.document, Level::Read)?;
            let me = Actor(*crdt.host.key().public_key().as_bytes());
            let replica = crdt.host.store.replica();
            let level = replica.level(&b.namespace, &b.document, me);
            if level < Level::Read {
                return Err(error(
                    403,
                    format!(
                        "this node may only {} {}: it relays the namespace but may not read it",
                        level.name(),
                        b.namespace
                    ),
                ));
            }
            let mut answer = replica
                .document(&b.namespace, &b.document)
                .map(document_json)
                .ok_or_else(|| error(404, format!("no document {}/{}", b.namespace, b.document)))?;
            answer["access"] = json!(level.name());
            Ok(answer)
        })
    })
}

/// `POST /v1/crdt/write`: a local write.
pub(super) fn crdt_write(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, now| {
        parse::<WriteBody>(&request.body).and_then(|b| {
            app_user_may(crdt, request, &b.namespace, &b.document, Level::Write)?;
            if b.namespace == crate::services::identity::registry::NAMESPACE {
                return Err(error(
                    403,
                    "the identity namespace is written by the identity service: use \
                 meshrouter id enroll|revoke (POST /v1/id/enroll|revoke)",
                ));
            }
            if b.document == crate::services::crdt::access::ACCESS_DOCUMENT {
                return Err(error(
                    403,
                    "a namespace's access document is written by grants and revocations: use \
                     meshrouter crdt grant|revoke (POST /v1/crdt/access/grant|revoke)",
                ));
            }
            let op = op_from(&b)?;
            let existing = crdt.host.store.document(&b.namespace, &b.document);
            let parsed = |k: &String| {
                parse_kind(k).ok_or_else(|| {
                    error(
                        400,
                        format!("unknown kind {k}: use counter, lww, mv, set, text or map<...> of one of the first four"),
                    )
                })
            };
            let kind = match (&b.kind, existing, &b.default_kind) {
                (Some(k), _, _) => parsed(k)?,
                (None, Some(log), _) => log.document().kind(),
                (None, None, Some(k)) => parsed(k)?,
                (None, None, None) => {
                    return Err(error(
                        400,
                        "a new document needs a kind (its schema is fixed at creation)",
                    ));
                }
            };
            let doc = (b.namespace.clone(), b.document.clone());
            crdt.write(now, wall_millis(), &doc, kind, &op)
                .map_err(|e| match e {
                    crate::services::crdt::host::HostError::Write(w) => error(400, w.to_string()),
                    crate::services::crdt::host::HostError::Store(s) => error(500, s.to_string()),
                    refused @ crate::services::crdt::host::HostError::Refused(..) => {
                        error(409, refused.to_string())
                    }
                    denied @ crate::services::crdt::host::HostError::Access { .. } => {
                        error(403, denied.to_string())
                    }
                    full @ (crate::services::crdt::host::HostError::Quota(_)
                    | crate::services::crdt::host::HostError::WriterQuota(_)) => {
                        error(507, full.to_string())
                    }
                })?;
            crdt.host
                .store
                .document(&b.namespace, &b.document)
                .map(document_json)
                .ok_or_else(|| error(500, "the write vanished"))
        })
    })
}

/// `POST /v1/crdt/export`: a sneakernet drop of what the caller lacks.
pub(super) fn crdt_export(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, _| {
        let body = if request.body.is_empty() {
            Ok(ExportBody::default())
        } else {
            parse::<ExportBody>(&request.body)
        };
        body.and_then(|b| {
            let since = match (&b.since, &b.peer) {
                (Some(_), Some(_)) => return Err(error(400, "give since or peer, not both")),
                (Some(v), None) => have_from(v)?,
                (None, Some(p)) => {
                    let key = PublicKey::from_hex(p).map_err(|e| error(400, format!("peer: {e}")))?;
                    crdt.host.engine.peer_have(&key, &crdt.host.store).ok_or_else(|| {
                        error(404, format!("peer {p} has not synced with this node since it started; export everything, or use since"))
                    })?
                }
                (None, None) => Have::new(),
            };
            let count = crdt.host.store.replica().missing(&since).len();
            let file = crdt.export(wall_millis(), &since);
            Ok(json!({ "changes": count, "bytes": file.len(), "drop": BASE64.encode(file) }))
        })
    })
}

/// `POST /v1/crdt/import`: a sneakernet drop.
pub(super) fn crdt_import(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, now| {
        parse::<ImportBody>(&request.body).and_then(|b| {
            let file = BASE64
                .decode(b.drop.as_bytes())
                .map_err(|e| error(400, format!("drop: not base64: {e}")))?;
            let report = crdt
                .import(now, &file)
                .map_err(|e| error(400, e.to_string()))?;
            Ok(json!({
                "applied": report.applied,
                "duplicates": report.duplicates,
                "equivocations": report.equivocations,
            }))
        })
    })
}

/// `GET /v1/crdt/watch?since=N&timeout=S`: answers at the first change after version `since`,
/// or after `timeout` seconds (default 30) with no change.
pub(crate) fn api_crdt_watch(
    r: &mut ServiceContext,
    request: &ApiRequest,
    reply: oneshot::Sender<ApiResponse>,
) {
    let now = r.clock.now();
    let Some(crdt) = &mut r.services.crdt else {
        let _ = reply.send(error(503, "the CRDT service is off"));
        return;
    };
    let query = request.path.split_once('?').map_or("", |(_, q)| q);
    let mut since = 0;
    let mut timeout = 30;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let parsed = match pair.split_once('=') {
            Some(("since", v)) => v.parse().map(|v| since = v).is_ok(),
            Some(("timeout", v)) => v
                .parse::<u64>()
                .map(|v| timeout = v.min(MAX_WATCH_SECONDS))
                .is_ok(),
            _ => false,
        };
        if !parsed {
            let _ = reply.send(error(
                400,
                format!("bad query {pair}: use since=VERSION and timeout=SECONDS"),
            ));
            return;
        }
    }
    let deadline = now + std::time::Duration::from_secs(timeout);
    crdt.watch(since, deadline, reply);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for v in [
            ValueKind::Counter,
            ValueKind::Lww,
            ValueKind::Mv,
            ValueKind::Set,
        ] {
            for k in [Kind::Value(v), Kind::Map(v)] {
                assert_eq!(parse_kind(&kind_name(k)), Some(k));
            }
        }
        assert_eq!(parse_kind("map<map<lww>>"), None);
        assert_eq!(parse_kind("register"), None);
    }
}
