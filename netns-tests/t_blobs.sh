#!/usr/bin/env bash
# Content-addressed files on one node (issue 23, the local part): a 5 MB file added with `meshrouter blob
# add` gets the CID an independent implementation computes (tests/data/unixfs_cid.py), comes back
# byte-identical, survives a daemon restart (index and blocks on disk), and a removed file leaves no
# block behind; a block whose bytes do not match its CID is refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

REFERENCE="$(cd "$(dirname "$0")/.." && pwd)/tests/data/unixfs_cid.py"
mesh_node a
mesh_start a

head -c 5000000 /dev/urandom >"$MR_DIR/file"
start=$(now_ms)
cid=$(mr a blob add "$MR_DIR/file") || fail "blob add failed"
took=$(($(now_ms) - start))
expected=$(python3 "$REFERENCE" "$MR_DIR/file")
[ "$cid" = "$expected" ] || fail "CID $cid, the independent computation says $expected"
echo "5 MB added in $took ms: $cid (the same CID as tests/data/unixfs_cid.py)"
mr a blob get "$cid" -o "$MR_DIR/back" || fail "blob get failed"
cmp -s "$MR_DIR/file" "$MR_DIR/back" || fail "the file came back different"
echo "read back byte-identical"

kill -TERM "$(cat "$MR_DIR/a.pid")"
wait "$(cat "$MR_DIR/a.pid")" 2>/dev/null || true
mr_start a
mr a blob ls --json | python3 -c "
import json, sys
r = json.load(sys.stdin)
b = [x for x in r['blobs'] if x['cid'] == sys.argv[1]]
assert b and b[0]['size'] == 5000000 and b[0]['pinned'], r
print(f\"after a restart: held, {b[0]['blocks']} blocks, {r['used']} bytes stored, pinned\")" "$cid" || fail "the file was lost in a restart"
mr a blob get "$cid" | cmp -s - "$MR_DIR/file" || fail "the file came back different after a restart"

# A block that is not what its CID names is refused by the daemon.
bad='{"cid":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","data":"eA=="}'
status=$(python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
body = sys.argv[2].encode()
s.sendall(b"POST /v1/blobs/block HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
print(s.recv(100).split()[1].decode())' "$MR_DIR/a.sock" "$bad")
[ "$status" = 400 ] || fail "a mismatched block was answered $status"
echo "a block that does not match its CID: refused (400)"

mr a blob rm "$cid" >/dev/null || fail "blob rm failed"
left=$(find "$MR_DIR/a.blobs/blocks" -type f | wc -l)
[ "$left" = 0 ] || fail "$left blocks left after removing the only file"
echo "removed: no block left"
echo "PASS"
