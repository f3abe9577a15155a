#!/usr/bin/env bash
# A 3-node line n1-n2-n3 (n3 peers to n2). With n1 talking to n3, n3's daemon is killed with SIGKILL
# (no goodbye to anyone) and started again at once with the same config, so the same key and address.
# n1 must reach n3 again within 5 s of the restart (printed), and then keep reaching it: 30 pings in a
# row, none lost.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

nodes=(n1 n2 n3)
for n in "${nodes[@]}"; do mesh_node "$n"; done
mesh_link n1 n2
mesh_link n2 n3
mesh_start "${nodes[@]}"
addr3=${MESH_ADDR[n3]}
wait_until 10 ping_ok n1 "$addr3" || fail "n1 cannot reach n3 before the restart"
mesh_wait_links 10 "${nodes[@]}"
in_ns n1 ping -6 -n -c 5 -i 0.1 -W 1 "$addr3" >/dev/null || fail "n1 does not reach n3 steadily before the restart"

# SIGKILL, then at once the same config again.
pid=$(cat "$MR_DIR/n3.pid")
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
start=$(now_ms)
mr_start n3
[ "$(mr_field n3 address)" = "$addr3" ] || fail "n3 came back with another address"
echo "n3 restarted: API up after $(($(now_ms) - start)) ms"
# One ping process, a probe every 0.1 s, until the first reply.
in_ns n1 ping -6 -n -q -c 1 -i 0.1 -w 10 "$addr3" >/dev/null || fail "n1 cannot reach n3 within 10 s of its restart"
took=$(($(now_ms) - start))
echo "n1 reaches the restarted n3 after $took ms"
[ "$took" -le 5000 ] || fail "n1 needed $took ms (> 5000) to reach the restarted n3"

# And keeps reaching it, both ways.
out=$(in_ns n1 ping -6 -n -c 30 -i 0.1 -W 1 "$addr3" || true)
received=$(echo "$out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
echo "after the restart: n1->n3 ${received:-0}/30 replies"
[ "${received:-0}" -eq 30 ] || fail "n1 lost pings to the restarted n3: $out"
in_ns n3 ping -6 -n -c 5 -i 0.1 -W 1 "${MESH_ADDR[n1]}" >/dev/null || fail "the restarted n3 cannot ping n1"
# n2 must be left with one working link to n3, not also the dead one (it times out in seconds).
wait_until 10 mesh_links_up n2 || fail "n2's links to n3 did not settle: $(mr n2 peers 2>&1)"
echo "n2 back to exactly its 2 links, all up"
