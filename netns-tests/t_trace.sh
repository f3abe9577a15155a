#!/usr/bin/env bash
# meshrouter trace (issue 24). Line a - b - c - d - e: a traces e and lists the 4 hops (b, c, d, e)
# with their round trips; an address no node owns: "lookup timed out" within the timeout; then the
# link d - e is cut and the trace names d as where the way stops (mirrored when e is the root).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

for n in a b c d e; do mesh_node "$n"; done
mesh_link a b
mesh_link b c
mesh_link c d
mesh_link d e
mesh_start a b c d e
mesh_wait_links 15 a b c d e
in_ns a ping -6 -c 1 -W 5 -q "${MESH_ADDR[e]}" >/dev/null || fail "a cannot reach e"

start=$(now_ms)
out=$(mr a trace "${MESH_ADDR[e]}" --json) || fail "trace a -> e failed: $out"
took=$(($(now_ms) - start))
mr a trace "${MESH_ADDR[e]}" | tail -6 || true
python3 - "$out" "$took" "${MESH_KEY[b]}" "${MESH_KEY[c]}" "${MESH_KEY[d]}" "${MESH_KEY[e]}" <<'PY' || fail "the trace is not the line: $out"
import json, sys
r, took, want = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
hops = [h for h in r["hops"] if h["hop"] > 0]
assert r["result"] == "reached", r
assert r["session"] == "up", r  # the ping before opened it
assert [h["key"] for h in hops] == want, [h["key"][:8] for h in hops]
assert all(h["rtt_ms"] is not None and h["rtt_ms"] > 0 for h in hops), hops
assert took < 2000, took
print(f"trace a -> e: {len(hops)} hops in {took} ms, round trips " + ", ".join(f"{h['rtt_ms']:.2f}" for h in hops) + " ms")
PY

# An address no node owns.
nobody="201:dead:beef:1234:5678:9abc:def0:1"
start=$(now_ms)
out=$(mr a trace "$nobody" 2>&1) && fail "a trace to nobody succeeded: $out"
took=$(($(now_ms) - start))
[[ "$out" == *"lookup timed out"* ]] || fail "no 'lookup timed out': $out"
[ "$took" -lt 5000 ] || fail "the lookup timeout took $took ms"
echo "trace to an address nobody owns: 'lookup timed out' after $took ms"

# Cut d - e: the way stops at d. The root must stay on the tracer's side of the cut (past it the old
# tree's coordinates mean nothing: they lead to whichever node is the new root there), so when e holds
# the lowest key, and so is the root, the same is done from the other end: e traces a across a cut b - a.
lowest=$(printf '%s\n' "${MESH_KEY[a]}" "${MESH_KEY[b]}" "${MESH_KEY[c]}" "${MESH_KEY[d]}" "${MESH_KEY[e]}" | sort | head -1)
if [ "$lowest" = "${MESH_KEY[e]}" ]; then from=e to=a stop=b; else from=a to=e stop=d; fi
in_ns "$from" ping -6 -c 1 -W 5 -q "${MESH_ADDR[$to]}" >/dev/null || fail "$from cannot reach $to"
ip -n "${NS_PREFIX}$stop" link set "$stop-$to" down
stop_lost_to() { mr "$stop" peers --json | python3 -c "import json,sys; sys.exit(0 if not any(p['up'] and p['key'] == '${MESH_KEY[$to]}' for p in json.load(sys.stdin)['peers']) else 1)"; }
wait_until 30 stop_lost_to || fail "$stop still has its link to $to"
out=$(mr "$from" trace "${MESH_ADDR[$to]}" --json) && fail "a trace through a cut link reached: $out"
python3 - "$out" "${MESH_KEY[$stop]}" "$stop" <<'PY' || fail "the trace does not name $stop: $out"
import json, sys
r, key, name = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
assert key in r["result"], r["result"]
print("through the cut link:", r["result"].replace(key, name))
PY
echo "PASS"
