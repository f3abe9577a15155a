#!/usr/bin/env bash
# Files from holders beyond the neighbours (issue 23). Line a - b - c - d. d adds a 3 MB file: its
# announcement (CRDT namespace "blobs", d's own entry) reaches a; `blob get` on a, with no --from, asks
# its peer b (which lacks it) and d (which announced it), and gets the exact bytes. a then announces
# itself too; d removes the file and its announcement is withdrawn on every node, a's stays.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

for n in a b c d; do mesh_node $n; done
mesh_link a b
mesh_link b c
mesh_link c d
mesh_start a b c d
mesh_wait_links 10 a b c d

# holders NODE CID: the holders NODE knows for CID (key prefixes, sorted), from the blobs namespace.
holders() {
    mr "$1" crdt get blobs "$2" --json 2>/dev/null | python3 -c '
import json, sys
print(" ".join(sorted(k[:8] for k in json.load(sys.stdin)["value"])))' 2>/dev/null || true
}
key8() { echo "${MESH_KEY[$1]:0:8}"; }
# holders_are NODE CID WANT: NODE knows exactly the holders WANT for CID.
holders_are() { [ "$(holders "$1" "$2")" = "$3" ]; }

head -c 3000000 /dev/urandom >"$MR_DIR/map.bin"
cid=$(mr d blob add "$MR_DIR/map.bin") || fail "blob add on d failed"
start=$(now_ms)
wait_until 10 holders_are a "$cid" "$(key8 d)" || fail "d's announcement did not reach a: '$(holders a "$cid")'"
echo "d's announcement of $cid known on a $(($(now_ms) - start)) ms after the add"

start=$(now_ms)
mr a blob get "$cid" -o "$MR_DIR/back" || fail "blob get on a failed"
took=$(($(now_ms) - start))
cmp -s "$MR_DIR/map.bin" "$MR_DIR/back" || fail "a got different bytes"
python3 - "$MR_DIR/a.sock" "$cid" "$(key8 b)" "$(key8 d)" <<'PY' || fail "the fetch did not use d"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET /v1/blobs/fetches HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
fetch = [f for f in json.loads(data.split(b"\r\n\r\n", 1)[1])["fetches"] if f["cid"] == sys.argv[2]][0]
used = {h["key"][:8]: h["bytes"] for h in fetch["holders"]}
assert set(used) == {sys.argv[3], sys.argv[4]}, used
assert used[sys.argv[4]] >= 3000000, used
print("holders asked: b (a peer) sent", used[sys.argv[3]], "bytes, d (announced) sent", used[sys.argv[4]])
PY
echo "a fetched the 3 MB file from d, three hops away (not a neighbour), in $took ms: identical"

want="$(printf '%s\n' "$(key8 a)" "$(key8 d)" | sort | tr '\n' ' ' | sed 's/ $//')"
wait_until 10 holders_are b "$cid" "$want" || fail "a's own announcement did not reach b: '$(holders b "$cid")' (want '$want')"
mr d blob rm "$cid" >/dev/null || fail "blob rm on d failed"
start=$(now_ms)
for n in a b c d; do
    wait_until 10 holders_are $n "$cid" "$(key8 a)" || fail "d's withdrawal: $n still lists '$(holders $n "$cid")'"
done
echo "d removed the file: its announcement is withdrawn on a, b, c, d within $(($(now_ms) - start)) ms; a's stays"
echo "PASS"
