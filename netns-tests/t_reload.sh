#!/usr/bin/env bash
# Live reload (issue 24). a - b linked; b - c joined by a veth with no peering yet. While an iperf3
# runs a -> b (100 ms intervals), b's file gains a peer (c), a listener, and a new discovery rule,
# and `meshrouter reload` applies them: no interval without bytes, b links to c, a reaches c through
# b. `addpeer --save` writes into the file keeping its comments; a broken file is refused and b
# runs on; a peer gone from the file is dropped on reload.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

mesh_node a
mesh_node b 'discovery = [{ interfaces = "nothing-here", beacon = true, listen = true }]'
mesh_node c
mesh_link a b
mesh_veth b c
mesh_start a b c
mesh_wait_links 15 a
sed -i '1i # b: comments must survive --save' "$MR_DIR/b.toml"

in_ns b iperf3 -s -1 -B "${MESH_ADDR[b]}" >/dev/null 2>&1 &
wait_until 5 eval "in_ns b ss -Hltn 'sport = :5201' | grep -q ." || fail "iperf3 server did not start"
in_ns a iperf3 -c "${MESH_ADDR[b]}" -t 4 -i 0.1 -J >"$MR_DIR/iperf.json" 2>&1 &
iperf=$!
sleep 1.5
python3 - "$MR_DIR/b.toml" "${MESH_IP[c-b]}" "${MESH_KEY[c]}" <<'PY'
import sys
path, ip, key = sys.argv[1:]
text = open(path).read()
text = text.replace('discovery = [{ interfaces = "nothing-here", beacon = true, listen = true }]',
                    'discovery = [{ interfaces = "b-c", beacon = true, listen = true, password = "shore" }]')
text = text.replace('listen = ["udp://0.0.0.0:9100"]', 'listen = ["udp://0.0.0.0:9100", "udp://0.0.0.0:9200"]')
text = text.replace('peers = [', f'peers = ["udp://{ip}:9100?key={key}", ', 1)
open(path, "w").write(text)
PY
start=$(now_ms)
report=$(mr b reload --json) || fail "reload refused: $report"
echo "reload answered in $(($(now_ms) - start)) ms"
python3 - "$report" <<'PY' || fail "the reload did not apply what it should: $report"
import json, sys
r = json.loads(sys.argv[1])
applied = " | ".join(r["applied"])
for want in ["peer added: udp://", "listening: udp://0.0.0.0:9200", "discovery: 1 rule"]:
    assert want in applied, (want, applied)
assert not r["errors"] and not r["restart_needed"], r
print("applied:", applied)
PY
wait "$iperf" || fail "iperf3 a -> b failed across the reload: $(tail -5 "$MR_DIR/iperf.json")"
python3 - "$MR_DIR/iperf.json" <<'PY' || fail "iperf3 stalled across the reload"
import json, sys
r = json.load(open(sys.argv[1]))
intervals = [i["sum"] for i in r["intervals"]]
low = min(intervals, key=lambda i: i["bytes"])
print(f"iperf3 a -> b across the reload: {r['end']['sum_received']['bits_per_second'] / 1e6:.0f} Mbit/s, "
      f"{len(intervals)} intervals of 100 ms, the lowest {low['bits_per_second'] / 1e6:.0f} Mbit/s")
assert all(i["bytes"] > 0 for i in intervals), "an interval of 100 ms without a byte"
PY
c_linked() { mr c peers --json | python3 -c "import json,sys; sys.exit(0 if any(p['up'] and p['key'] == '${MESH_KEY[b]}' for p in json.load(sys.stdin)['peers']) else 1)"; }
wait_until 10 c_linked || fail "b did not link to c after the reload: $(mr b peers)"
in_ns a ping -6 -c 2 -W 5 -q "${MESH_ADDR[c]}" >/dev/null || fail "a cannot reach c through b"
mr b listeners | grep -q ":9200" || fail "b does not list the new listener: $(mr b listeners)"
echo "b linked to c and listens on 9200; a reaches c through b"

# addpeer --save: into the file, comments kept; the reload that follows keeps the link.
mr b addpeer "udp://${MESH_IP[b-a]}:9100?key=${MESH_KEY[a]}&priority=3" --save >/dev/null || fail "addpeer --save failed"
grep -q "priority=3" "$MR_DIR/b.toml" || fail "addpeer --save did not write the peer: $(cat "$MR_DIR/b.toml")"
grep -q "comments must survive" "$MR_DIR/b.toml" || fail "addpeer --save lost a comment"
report=$(mr b reload --json) || fail "reload refused: $report"
[[ "$report" == *"added before"* ]] || fail "the saved peer was not recognised as running: $report"

# A broken file is refused, b runs on.
cp "$MR_DIR/b.toml" "$MR_DIR/b.good"
echo "max_links = 0" >>"$MR_DIR/b.toml"
out=$(mr b reload 2>&1) && fail "a broken config was accepted: $out"
[[ "$out" == *"max_links"* ]] || fail "the refusal does not name the problem: $out"
kill -HUP "$(cat "$MR_DIR/b.pid")"
sleep 0.3
kill -0 "$(cat "$MR_DIR/b.pid")" || fail "b died of a broken config on SIGHUP"
in_ns a ping -6 -c 2 -W 5 -q "${MESH_ADDR[c]}" >/dev/null || fail "a cannot reach c after the refused reload"
echo "a broken file: refused ($out), b runs on"

# A peer gone from the file is dropped.
cp "$MR_DIR/b.good" "$MR_DIR/b.toml"
mr b removepeer "udp://${MESH_IP[c-b]}:9100" --save >/dev/null || fail "removepeer --save failed"
grep -q "${MESH_IP[c-b]}:9100" "$MR_DIR/b.toml" && fail "removepeer --save left the peer in the file"
c_unlinked() { ! c_linked; }
wait_until 10 c_unlinked || fail "c still linked to b after removepeer"
echo "PASS"
