//! `GET /api/blobs/CID`: a file this node holds, by its CID, for a signed-in user (a page shows a
//! photo or offers a document the mesh carries). Only files held here are served (fetching from
//! other nodes stays `meshrouter blob get`'s business); every block is checked against its CID on
//! the way out, and the answer's length is the file's, from its root block.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use tokio::net::TcpStream;

use super::{Reply, Shared, WRITE_TIMEOUT, forward};
use crate::services::blobs::{Cid, Codec, FileNode};

/// Blocks one file may have (a 64 GiB file of 1 MiB blocks): a corrupt index cannot loop.
const MAX_BLOCKS: usize = 64 * 1024;

/// One block held here, checked against its CID.
async fn block(shared: &Shared, cid: &Cid, user: [u8; 32]) -> Result<Vec<u8>, Reply> {
    let body = serde_json::to_vec(&json!({ "cid": cid.to_string() })).unwrap_or_default();
    let reply = forward(shared, "/v1/blobs/read", body, Some(user)).await;
    if reply.status != 200 {
        return Err(reply);
    }
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let data = BASE64
        .decode(answer["data"].as_str().unwrap_or_default())
        .map_err(|_| Reply::error(500, "the store gave a block that is not base64"))?;
    if !cid.matches(&data) {
        return Err(Reply::error(
            500,
            format!("block {cid} does not match its CID"),
        ));
    }
    Ok(data)
}

/// Answers the request for `cid_text`, writing the file itself (or an error reply) to `stream`.
pub(super) async fn serve(
    stream: &mut TcpStream,
    shared: &Shared,
    cid_text: &str,
    user: [u8; 32],
    cors: &str,
) {
    use tokio::io::AsyncWriteExt;
    let Ok(root) = cid_text.parse::<Cid>() else {
        let reply = Reply::error(400, format!("{cid_text}: not a CID"));
        let _ = super::write_reply(stream, &reply, cors, false).await;
        return;
    };
    let first = match block(shared, &root, user).await {
        Ok(b) => b,
        Err(reply) => {
            let _ = super::write_reply(stream, &reply, cors, false).await;
            return;
        }
    };
    let (length, mut stack, mut pending) = match root.codec {
        Codec::Raw => (first.len() as u64, Vec::new(), Some(first)),
        Codec::DagPb => match FileNode::decode(&first) {
            Ok(node) => (
                node.filesize(),
                node.links.iter().rev().map(|l| l.cid).collect::<Vec<_>>(),
                None,
            ),
            Err(e) => {
                let reply = Reply::error(500, format!("block {root}: {e}"));
                let _ = super::write_reply(stream, &reply, cors, false).await;
                return;
            }
        },
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\nCache-Control: public, max-age=31536000, immutable\r\nX-Content-Type-Options: nosniff\r\n{cors}Connection: close\r\n\r\n"
    );
    if !write(stream, head.as_bytes()).await {
        return;
    }
    let mut blocks = 0;
    loop {
        if let Some(data) = pending.take() {
            // A block that cannot be written ends the answer short: the client sees the length fail.
            if !write(stream, &data).await {
                return;
            }
        }
        let Some(cid) = stack.pop() else {
            break;
        };
        blocks += 1;
        if blocks > MAX_BLOCKS {
            return;
        }
        let Ok(data) = block(shared, &cid, user).await else {
            return;
        };
        match cid.codec {
            Codec::Raw => pending = Some(data),
            Codec::DagPb => match FileNode::decode(&data) {
                Ok(node) => stack.extend(node.links.iter().rev().map(|l| l.cid)),
                Err(_) => return,
            },
        }
    }
    let _ = stream.shutdown().await;
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    use tokio::io::AsyncWriteExt;
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}
