//! The services' metrics, appended on their thread to the router's part of a scrape.

use super::{Exposition, Kind};
use crate::driver::request::{ApiRequest, ApiResponse};
use crate::driver::service_thread::ServiceContext;

/// Appends the services' families to the router's text (the request's body).
pub(crate) fn append(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let text = String::from_utf8_lossy(&request.body).into_owned();
    let mut e = Exposition::continuing(text);
    let services = &r.services;
    if let Some(crdt) = &services.crdt {
        let (mut documents, mut changes) = (0usize, 0usize);
        for (_, log) in crdt.host.store.replica().documents() {
            documents += 1;
            changes += log.len();
        }
        e.single(
            "meshrouter_crdt_documents",
            Kind::Gauge,
            "CRDT documents held",
            documents,
        );
        e.single(
            "meshrouter_crdt_changes",
            Kind::Gauge,
            "signed changes held, over all documents",
            changes,
        );
        e.single(
            "meshrouter_crdt_sync_peers",
            Kind::Gauge,
            "peers the CRDT documents are synchronised with",
            crdt.host.engine.peers().count(),
        );
        let s = crdt.host.engine.stats();
        let counters: [(&str, &str, u64); 8] = [
            (
                "meshrouter_crdt_sync_sent_messages_total",
                "sync messages sent",
                s.messages_sent,
            ),
            (
                "meshrouter_crdt_sync_sent_bytes_total",
                "bytes of sync messages sent",
                s.bytes_sent,
            ),
            (
                "meshrouter_crdt_changes_received_total",
                "changes received from peers",
                s.changes_received,
            ),
            (
                "meshrouter_crdt_changes_applied_total",
                "changes received that were new",
                s.changes_applied,
            ),
            (
                "meshrouter_crdt_bad_changes_total",
                "changes no honest peer sends (bad signature, invalid, malformed)",
                s.bad_changes,
            ),
            (
                "meshrouter_crdt_over_budget_total",
                "change messages dropped: their sender was over its signature-check budget",
                s.over_budget,
            ),
            (
                "meshrouter_crdt_over_quota_total",
                "changes not stored: their namespace reached its quota",
                s.over_quota,
            ),
            (
                "meshrouter_crdt_malformed_total",
                "sync messages that did not decode",
                s.malformed,
            ),
        ];
        for (name, help, value) in counters {
            e.single(name, Kind::Counter, help, value);
        }
    }
    e.family(
        "meshrouter_identity_verifications_total",
        Kind::Counter,
        "signatures, tokens, credentials and delegations checked, by kind and result",
    );
    for ((kind, accepted), count) in services.identity.verifications() {
        let result = if accepted { "accepted" } else { "refused" };
        e.sample(
            "meshrouter_identity_verifications_total",
            &[("kind", kind), ("result", result)],
            count,
        );
    }
    if let Some((files, bytes)) = services.blobs.usage() {
        e.single(
            "meshrouter_blob_files",
            Kind::Gauge,
            "content-addressed files held",
            files,
        );
        e.single(
            "meshrouter_blob_stored_bytes",
            Kind::Gauge,
            "bytes the blocks of the files held take",
            bytes,
        );
    }
    e.single(
        "meshrouter_blob_fetches",
        Kind::Gauge,
        "fetches of files from other nodes running",
        services.exchange.running(),
    );
    ApiResponse::text(e.finish())
}
