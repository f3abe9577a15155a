#!/usr/bin/env bash
# The status page (issue 24). Star a - b, a - c, a - d; a serves its status page on its LAN
# address. Headless Chromium on b (a phone on a's LAN) loads it: the links table shows a's three
# peers up, the tree picture draws a with its parent or children; a screenshot is kept in
# $MR_ARTIFACTS (default /tmp/meshrouter-artifacts). The page is under 32 KB, the listener answers
# nothing but the page and its read-only JSON.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

command -v chromium >/dev/null || fail "chromium is missing (Debian package chromium)"
ARTIFACTS="${MR_ARTIFACTS:-/tmp/meshrouter-artifacts}"
mkdir -p "$ARTIFACTS"
BROWSER_PY="$(cd "$(dirname "$0")" && pwd)/browser.py"

mesh_node a 'status_listen = ["10.77.1.1:8090"]
name = "hub"'
mesh_node b
mesh_node c
mesh_node d
mesh_link a b
mesh_link a c
mesh_link a d
mesh_start a b c d
mesh_wait_links 15 a b c d
in_ns a ping -6 -c 1 -W 5 -q "${MESH_ADDR[c]}" >/dev/null || fail "a cannot reach c"

# get PATH [METHOD]: the status listener's status line and body length, from b.
get() {
    in_ns b python3 - "$1" "${2:-GET}" <<'PY'
import socket, sys
s = socket.create_connection(("10.77.1.1", 8090))
s.sendall(f"{sys.argv[2]} {sys.argv[1]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode())
data = b""
while chunk := s.recv(65536):
    data += chunk
head, body = data.split(b"\r\n\r\n", 1)
print(head.split(b"\r\n", 1)[0].decode(), len(body))
PY
}
read -r _ status _ size < <(get /)
[ "$status" = 200 ] || fail "the status page did not load: $status"
[ "$size" -lt 32768 ] || fail "the status page is $size bytes"
for refused in /v1/reload /v1/crdt/have /metrics /v1/peers/x; do
    [[ "$(get "$refused")" == *" 404 "* ]] || fail "the status listener answered $refused"
done
[[ "$(get /v1/peers POST)" == *" 405 "* ]] || fail "the status listener took a POST"
echo "the page is $size bytes; /v1/reload, /metrics and others are not served there; POST refused"

python3 - "${NS_PREFIX}b" "http://10.77.1.1:8090/" "$ARTIFACTS/status-page.png" \
    "${MESH_KEY[b]}" "${MESH_KEY[c]}" "${MESH_KEY[d]}" <<PY || fail "the status page did not render as it should"
import sys
sys.path.insert(0, "$(dirname "$BROWSER_PY")")
from browser import Browser
netns, url, shot, *peers = sys.argv[1:]
b = Browser(netns)
try:
    page = b.open(url)
    assert page.wait("document.body.dataset.loaded === '1'", 10), page.eval("document.body.innerText")
    rows = page.eval("[...document.querySelectorAll('#peers tbody tr')].map(r => r.innerText)")
    ups = [r for r in rows if "\tup" in r or " up " in r or "up " in r]
    assert len(rows) == 3 and len(ups) == 3, rows
    shown = page.eval("document.querySelector('#peers').innerText")
    for key in peers:
        assert key[:8] in shown, (key[:8], shown)
    circles = page.eval("document.querySelectorAll('#tree circle').length")
    lines = page.eval("document.querySelectorAll('#tree line').length")
    assert circles >= 2 and lines >= 1, (circles, lines)
    page.wait("document.getElementById('name').textContent === 'hub.mesh'", 5)
    name = page.eval("document.getElementById('name').textContent") or "-"
    page.screenshot(shot)
    print(f"Chromium on b: 3 links up in the table, the tree drawn with {circles} nodes and {lines} edges; "
          f"name shown: {name}; screenshot {shot}")
finally:
    b.close()
PY
[ -s "$ARTIFACTS/status-page.png" ] || fail "no screenshot"
echo "PASS"
