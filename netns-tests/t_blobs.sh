#!/usr/bin/env bash
# Content-addressed files on one node (issue 23, the local part): a 5 MB file added with `meshrouter blob
# add` gets the CID an independent implementation computes (tests/data/unixfs_cid.py), comes back
# byte-identical, survives a daemon restart (index and blocks on disk), and a removed file leaves no
# block behind; a block whose bytes do not match its CID is refused. The file travels to a node with
# no link as a CAR archive (blob export / import), checked by a second reader; a damaged one is refused.
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

# Sneakernet: a CAR archive from a, checked by an independent reader, taken in by b (no link).
mr a blob export "$cid" -o "$MR_DIR/stick.car" || fail "blob export failed"
python3 - "$MR_DIR/stick.car" "$cid" <<'PY' || fail "the archive is not a CARv1 of the file"
import base64, hashlib, sys
data = open(sys.argv[1], "rb").read()
def varint(i):
    n = shift = 0
    while True:
        b = data[i]; i += 1
        n |= (b & 0x7f) << shift; shift += 7
        if b < 0x80:
            return n, i
n, i = varint(0)
root = base64.b32decode(sys.argv[2][1:].upper() + "=" * (-len(sys.argv[2][1:]) % 8))
want = bytes([0xa2, 0x65]) + b"roots" + bytes([0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00]) + root + bytes([0x67]) + b"version" + bytes([1])
assert data[i:i + n] == want, "header"
i += n
blocks = 0
while i < len(data):
    n, i = varint(i)
    cid, block = data[i:i + 36], data[i + 36:i + n]
    assert cid[:3] in (bytes([1, 0x55, 0x12]), bytes([1, 0x70, 0x12])) and cid[4:] == hashlib.sha256(block).digest(), "block"
    blocks += 1
    i += n
print(f"archive: {len(data)} bytes, {blocks} blocks, each matching its CID (checked by a second reader)")
PY
mesh_node b
mesh_start b
mr b blob import "$MR_DIR/stick.car" >/dev/null || fail "blob import on b failed"
mr b blob get "$cid" | cmp -s - "$MR_DIR/file" || fail "b's file differs from a's"
echo "b (no link to a) imported the archive: the same file, byte for byte"
python3 -c '
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[len(d) // 2] ^= 1
open(sys.argv[2], "wb").write(d)' "$MR_DIR/stick.car" "$MR_DIR/damaged.car"
mr b blob rm "$cid" >/dev/null
if mr b blob import "$MR_DIR/damaged.car" >/dev/null 2>"$MR_DIR/import.err"; then fail "a damaged archive was taken in"; fi
grep -q "does not match its CID" "$MR_DIR/import.err" || fail "unclear refusal: $(cat "$MR_DIR/import.err")"
mr b blob ls --json | python3 -c 'import json,sys; assert not json.load(sys.stdin)["blobs"]' || fail "a file was recorded from a damaged archive"
echo "a damaged archive: refused ($(head -c 120 "$MR_DIR/import.err")), no file recorded"

mr a blob rm "$cid" >/dev/null || fail "blob rm failed"
left=$(find "$MR_DIR/a.blobs/blocks" -type f | wc -l)
[ "$left" = 0 ] || fail "$left blocks left after removing the only file"
echo "removed: no block left"
echo "PASS"
