#!/usr/bin/env bash
# Prometheus metrics (issue 24). Line a - b - c, a also serving them on metrics_listen: promtool
# accepts the exposition, links, tree, sessions, CRDT and process families are there; the TCP
# listener answers /metrics and nothing else. Then 50 nodes link to hub h: a scrape's size and time.
# Then 12 strangers with fresh keys link to h with max_links = 6: h keeps 6 links and 6 series.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

command -v promtool >/dev/null || fail "promtool is missing (Debian package prometheus)"

# scrape NODE: GET /metrics on NODE's API socket, printed.
scrape() {
    in_ns "$1" python3 - "$MR_DIR/$1.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
head, body = data.split(b"\r\n\r\n", 1)
assert b" 200 " in head.split(b"\r\n")[0], head
assert b"text/plain; version=0.0.4" in head, head
sys.stdout.write(body.decode())
PY
}

mesh_node a 'metrics_listen = "[::1]:9464"'
mesh_node b
mesh_node c
mesh_link a b
mesh_link b c
mesh_start a b c
mesh_wait_links 15 a b c
mr a crdt incr demo visits >/dev/null || fail "a cannot write a CRDT document"
in_ns a ping -6 -c 2 -i 0.2 -q "${MESH_ADDR[c]}" >/dev/null || fail "a cannot ping c"

scrape a >"$MR_DIR/a.prom" || fail "no metrics from a"
promtool check metrics <"$MR_DIR/a.prom" || fail "promtool refuses a's metrics: $(promtool check metrics <"$MR_DIR/a.prom" 2>&1 | head)"
for line in \
    "meshrouter_link_rx_bytes_total{peer=\"${MESH_KEY[b]}\",transport=\"udp\"}" \
    "meshrouter_link_rtt_seconds{peer=\"${MESH_KEY[b]}\",transport=\"udp\"}" \
    "meshrouter_links_up 1" \
    "meshrouter_tree_depth " \
    "meshrouter_tree_root_info{root=" \
    "meshrouter_sessions{state=\"up\"} 1" \
    "meshrouter_drops_total" \
    "meshrouter_inbound_refused_total " \
    "meshrouter_crdt_documents " \
    "meshrouter_crdt_sync_sent_bytes_total " \
    "process_cpu_seconds_total " \
    "process_resident_memory_bytes "; do
    grep -qF "$line" "$MR_DIR/a.prom" || fail "a's metrics lack $line: $(cat "$MR_DIR/a.prom")"
done
grep -q "peer=\"${MESH_KEY[c]}\"" "$MR_DIR/a.prom" && fail "a shows a link to c, which it has not"
# Every metric the sample Grafana dashboard draws is one a node exports.
python3 - "$(dirname "$0")/../packaging/grafana-dashboard.json" "$MR_DIR/a.prom" <<'PY' || fail "the dashboard draws metrics a does not export"
import json, re, sys
dashboard, exported = json.load(open(sys.argv[1])), open(sys.argv[2]).read()
names = {n for p in dashboard["panels"] for t in p["targets"] for n in re.findall(r"\b((?:meshrouter|process)_[a-z_]+)", t["expr"])}
missing = [n for n in sorted(names) if f"\n{n}" not in exported and f"\n{n}{{" not in exported]
assert not missing, missing
print(f"the dashboard's {len(names)} metrics are all exported")
PY
echo "a: $(grep -vc '^#' "$MR_DIR/a.prom") series, $(wc -c <"$MR_DIR/a.prom") bytes; promtool accepts them"

# The TCP listener: /metrics, and nothing else of the API.
tcp() {
    in_ns a python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("::1", 9464))
s.sendall(f"GET {sys.argv[1]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
data = b""
while chunk := s.recv(65536):
    data += chunk
print(data.split(b"\r\n", 1)[0].decode())
print(len(data.split(b"\r\n\r\n", 1)[1]))
PY
}
out=$(tcp /metrics)
[[ "$out" == *" 200 "* ]] || fail "metrics_listen did not serve /metrics: $out"
out=$(tcp /v1/self)
[[ "$out" == *" 404 "* ]] || fail "metrics_listen served another route: $out"
echo "metrics_listen: /metrics answered, /v1/self 404"
mesh_stop a b c

# A swarm of nodes without TUN or API, each with a fresh key, linking to h.
swarm() {
    local count="$1" i
    for i in $(seq "$count"); do
        {
            "$MR_BIN" genconf | grep -v '^#' | grep -v '^$'
            echo 'tun_name = "none"'
            echo 'api_socket = "none"'
            echo 'crdt.database = "none"'
            echo 'blobs.store = "none"'
            echo "peers = [\"udp://${MESH_IP[h-s]}:9100\"]"
        } >"$MR_DIR/s$i.toml"
        # In a subshell, so not this shell's job: mesh_stop kills them with their namespace.
        (ip netns exec "${NS_PREFIX}s" "$MR_BIN" run --config "$MR_DIR/s$i.toml" >>"$MR_DIR/s.log" 2>&1 &)
    done
}
links_up() { mr h peers --json | python3 -c "import json,sys; sys.exit(0 if sum(p['up'] for p in json.load(sys.stdin)['peers']) >= $1 else 1)"; }

mesh_node h 'max_links = 64'
mesh_node s
mesh_veth h s
mr_start h
swarm 50
wait_until 30 links_up 50 || fail "h: not 50 links up: $(mr h peers | tail -3)"
scrape h >"$MR_DIR/h.prom"
promtool check metrics <"$MR_DIR/h.prom" || fail "promtool refuses h's metrics"
in_ns h python3 - "$MR_DIR/h.sock" <<'PY' || fail "h's scrape is too large or slow"
import socket, sys, time
times, size = [], 0
for _ in range(20):
    t = time.perf_counter()
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    times.append(time.perf_counter() - t)
    size = len(data.split(b"\r\n\r\n", 1)[1])
times.sort()
print(f"h with 50 links: a scrape is {size} bytes, answered in {times[10]*1000:.2f} ms (median of 20, slowest {times[-1]*1000:.2f} ms)")
assert size < 64 * 1024, size
PY
grep -c '^meshrouter_link_rx_bytes_total' "$MR_DIR/h.prom" | grep -qx 50 || fail "h: not 50 link series"
mesh_stop h s
MR_NODES=()

# 12 strangers against a link limit of 6.
mesh_node h 'max_links = 6'
mesh_node s
mesh_veth h s
mr_start h
swarm 12
sleep 4
scrape h >"$MR_DIR/h.prom"
series=$(grep -c '^meshrouter_link_rx_bytes_total' "$MR_DIR/h.prom" || true)
links=$(grep '^meshrouter_links ' "$MR_DIR/h.prom" | cut -d' ' -f2)
refused=$(grep '^meshrouter_inbound_refused_total ' "$MR_DIR/h.prom" | cut -d' ' -f2)
echo "h with max_links = 6 and 12 strangers: $links links, $series link series, $refused handshakes refused"
[ "$links" -le 6 ] && [ "$series" -le 6 ] || fail "h went past its link limit"
[ "$refused" -gt 0 ] || fail "h refused no handshake"
echo "PASS"
