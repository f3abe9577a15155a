#!/usr/bin/env bash
# A 3-node line n1-n2-n3 (n3 peers to n2). n3's daemon is killed with SIGKILL (no goodbye to anyone) and
# started again with the same config, so the same key and address; n1 must reach n3 again within 5 s of
# the restart (printed), then keep reaching it (30 pings in a row, none lost) and n2 must be left with
# just its two links. Done twice: first restarting only once n2 has noticed the death (its link to n3
# went down), then restarting at once, while n2 still holds the old link to n3's key.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

nodes=(n1 n2 n3)
for n in "${nodes[@]}"; do mesh_node "$n"; done
mesh_link n1 n2
mesh_link n2 n3
mesh_start "${nodes[@]}"
addr3=${MESH_ADDR[n3]}
wait_until 10 ping_ok n1 "$addr3" || fail "n1 cannot reach n3 before the restarts"
mesh_wait_links 10 "${nodes[@]}"

# n2_sees_n3: n2 has a link up to n3's key.
n2_sees_n3() {
    mr n2 peers --json | python3 -c "
import json, sys
sys.exit(0 if any(p['up'] and p['key'] == '${MESH_KEY[n3]}' for p in json.load(sys.stdin)['peers']) else 1)"
}

# restart HOW: kills n3, waits as HOW says ("after-down" or "at-once"), restarts it, checks recovery.
restart() {
    local how="$1" pid start took out received
    in_ns n1 ping -6 -n -c 5 -i 0.1 -W 1 "$addr3" >/dev/null || fail "$how: n1 does not reach n3 steadily before the restart"
    pid=$(cat "$MR_DIR/n3.pid")
    { kill -9 "$pid"; wait "$pid" || true; } 2>/dev/null  # reaped quietly: no "Killed" notice
    if [ "$how" = after-down ]; then
        start=$(now_ms)
        wait_until 15 eval '! n2_sees_n3' || fail "n2 still has a link up to the killed n3 after 15 s"
        echo "$how: n2 saw its link to the killed n3 go down after $(($(now_ms) - start)) ms"
    fi
    start=$(now_ms)
    mr_start n3
    [ "$(mr_field n3 address)" = "$addr3" ] || fail "$how: n3 came back with another address"
    # One ping process, a probe every 0.1 s, until the first reply.
    if ! in_ns n1 ping -6 -n -q -c 1 -i 0.1 -w 10 "$addr3" >/dev/null; then
        fail "$how: n1 cannot reach n3 within 10 s of its restart; n3: $(mr n3 self 2>&1 | grep -E 'root|Coord' | tr -s ' ' | tr '\n' ';') n2: $(mr n2 peers 2>&1)"
    fi
    took=$(($(now_ms) - start))
    echo "$how: n1 reaches the restarted n3 $took ms after the restart"
    [ "$took" -le 5000 ] || fail "$how: n1 needed $took ms (> 5000) to reach the restarted n3"
    out=$(in_ns n1 ping -6 -n -c 30 -i 0.1 -W 1 "$addr3" || true)
    received=$(echo "$out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
    echo "$how: then n1->n3 ${received:-0}/30 replies"
    [ "${received:-0}" -eq 30 ] || fail "$how: n1 lost pings to the restarted n3: $out"
    in_ns n3 ping -6 -n -c 3 -i 0.1 -W 1 "${MESH_ADDR[n1]}" >/dev/null || fail "$how: the restarted n3 cannot ping n1"
    # The dead link times out within seconds; n2 must be left with exactly its two links.
    wait_until 10 mesh_links_up n2 || fail "$how: n2's links did not settle: $(mr n2 peers 2>&1)"
}

restart after-down
restart at-once
