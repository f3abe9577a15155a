#!/usr/bin/env bash
# The app API with real browsers (issue 23). Line a - b - c; a and c serve examples/ on their overlay
# address ([apps] listen and root). Headless Chromium in a (user 1) and in c (user 2) loads
# notes.html, signs in with a user key (the page signs the node's challenge) and types; the other page
# must show the text within 2 s. Then b - c is cut, both type, the cut heals and both pages must show
# the same text with both edits. Requests without a valid token, or for a namespace the user may not
# read (user 2's own ~did namespace, from user 1), are refused. Screenshots of both pages are kept in
# $MR_ARTIFACTS (default /tmp/meshrouter-artifacts). c's page also gets a 2.5 MB file added on c by its
# CID (GET /api/blobs/CID), byte for byte.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"
command -v chromium >/dev/null || fail "chromium is missing (apt-get install chromium; tests/run-all.sh installs it)"

examples=$(cd "$(dirname "$0")/../examples" && pwd)
mesh_node a
mesh_node b
mesh_node c
mesh_link a b
mesh_link b c
for n in a c; do
    # Top-level keys go first in the file, before any table.
    sed -i "1i apps.listen = [\"[${MESH_ADDR[$n]}]:8080\"]\napps.root = \"$examples\"" "$MR_DIR/$n.toml"
done
mesh_start a b c
mesh_wait_links 10 a b c

did1=$("$MR_BIN" id keygen --output "$MR_DIR/user1.key")
did2=$("$MR_BIN" id keygen --output "$MR_DIR/user2.key")
head -c 2500000 /dev/urandom >"$MR_DIR/photo.bin"
cid=$(mr c blob add "$MR_DIR/photo.bin" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cid"])')
shots="${MR_ARTIFACTS:-/tmp/meshrouter-artifacts}"
mkdir -p "$shots"
cut="ip -n ${NS_PREFIX}b link set b-c down; ip -n ${NS_PREFIX}c link set c-b down"
heal="ip -n ${NS_PREFIX}b link set b-c up; ip -n ${NS_PREFIX}c link set c-b up"
cd "$(dirname "$0")"
python3 notes_browsers.py "${NS_PREFIX}a" "http://[${MESH_ADDR[a]}]:8080/" \
    "${NS_PREFIX}c" "http://[${MESH_ADDR[c]}]:8080/" \
    "$(cat "$MR_DIR/user1.key")" "$(cat "$MR_DIR/user2.key")" "$cut" "$heal" "$shots" \
    "~${did2#did:key:}/diary" "$cid" "$MR_DIR/photo.bin" || fail "the browsers' scenario failed"
# The event-stream cap: 64 streams open at once, more refused at once (503), not held. (a's closed page
# may still hold one until the next keepalive finds it gone.)
in_ns a python3 - "${MESH_ADDR[a]}" "$(cat "$shots/token")" <<'PY' || fail "the event-stream limit did not hold"
import socket, sys
addr, token = sys.argv[1], sys.argv[2]
streams, statuses = [], []
for i in range(66):
    s = socket.create_connection((addr, 8080), timeout=5)
    s.sendall(f"GET /api/crdt/events?namespace=notes&document=shared&access_token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    statuses.append(s.recv(64).split()[1].decode())
    streams.append(s)
opened = statuses.count("200")
assert 63 <= opened <= 64 and statuses == ["200"] * opened + ["503"] * (66 - opened), statuses
print(f"{opened} event streams opened (64 with the page's), the next {66 - opened} answered 503 at once")
PY
rm -f "$shots/token"
echo "screenshots: $shots/notes-a.png $shots/notes-c.png (user 1: $did1)"
