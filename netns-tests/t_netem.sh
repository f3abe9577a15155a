#!/usr/bin/env bash
# A 4-node line n1-n2-n3-n4 whose three links delay (20 ms +- 5 ms), lose (5 %) and reorder (25 % sent
# at once, overtaking the delayed rest) every datagram, each way: ping6 end to end must still get at
# least 50 % of 60 replies (the underlay alone loses about 26 % of round trips: 1 - 0.95^6; 50 % is
# four standard deviations below that), and an iperf3 TCP transfer n1 -> n4 must complete. Prints the
# loss, RTT and throughput.
#
# The impairment is the netem one (`netem delay 20ms 5ms loss 5% reorder 25%` on both ends of each veth),
# done with `tc netem` where the kernel has it, else by a userspace UDP relay (udp_impair.py) on each
# link: the kernel of our CI machine is built without sch_netem ("Specified qdisc kind is unknown"). The
# links carry only the daemons' UDP, so relaying those datagrams impairs exactly what netem would:
# n(i+1) peers to the relay in its own namespace, which forwards to n(i)'s listener and back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

DELAY=20 JITTER=5 LOSS=0.05 REORDER=0.25
nodes=(n1 n2 n3 n4)
for n in "${nodes[@]}"; do mesh_node "$n"; done

# Real netem where the kernel has it (probed in a scratch namespace), else the relay.
ns_add probe
if in_ns probe tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then impair=netem; else impair=relay; fi
echo "impairment by: $impair"
for i in 1 2 3; do
    a=n$i b=n$((i + 1))
    if [ $impair = netem ]; then
        mesh_link "$a" "$b"
        for end in "$a $a-$b" "$b $b-$a"; do
            set -- $end
            in_ns "$1" tc qdisc add dev "$2" root netem delay ${DELAY}ms ${JITTER}ms \
                loss "$(python3 -c "print($LOSS * 100)")%" reorder "$(python3 -c "print($REORDER * 100)")%"
        done
        continue
    fi
    mesh_veth "$a" "$b"
    relay="${MESH_IP[$b-$a]}:9200"
    in_ns "$b" python3 "$(dirname "$0")/udp_impair.py" "$relay" "${MESH_IP[$a-$b]}:9100" \
        --delay $DELAY --jitter $JITTER --loss $LOSS --reorder $REORDER \
        >"$MR_DIR/relay$i.log" 2>&1 &
    mesh_peer "$b" "udp://$relay?key=${MESH_KEY[$a]}"
    wait_until 5 grep -q ready "$MR_DIR/relay$i.log" || fail "relay $i did not start: $(cat "$MR_DIR/relay$i.log")"
done
mesh_start "${nodes[@]}"
addr4=${MESH_ADDR[n4]}

start=$(now_ms)
wait_until 20 ping_ok n1 "$addr4" || fail "n1 cannot reach n4 through the impaired links"
echo "first ping n1->n4 after $(($(now_ms) - start)) ms"
mesh_wait_links 10 "${nodes[@]}"

count=60
out=$(in_ns n1 ping -6 -n -c $count -i 0.05 -W 2 "$addr4" || true)
received=$(echo "$out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
received=${received:-0}
rtt=$(echo "$out" | sed -n 's|^rtt min/avg/max/mdev = \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/.*|min \1 / avg \2 / max \3 ms|p')
echo "ping6 n1->n4 over 3 impaired links: $received/$count replies ($(((count - received) * 100 / count)) % lost; the underlay alone loses ~26 %), rtt $rtt"
[ "$received" -ge $((count * 5 / 10)) ] || fail "only $received of $count pings answered: $out"

# TCP end to end.
in_ns n4 iperf3 -s -1 -B "$addr4" >"$MR_DIR/iperf3-server.log" 2>&1 &
wait_until 5 eval "in_ns n4 ss -Hltn 'sport = :5201' | grep -q ." || fail "iperf3 server did not start"
result=$(timeout 60 ip netns exec "${NS_PREFIX}n1" iperf3 -c "$addr4" -t 5 -J) || fail "iperf3 failed: $result"
read -r mbps retrans bytes < <(python3 -c "
import json, sys
e = json.loads(sys.argv[1])['end']
print(round(e['sum_received']['bits_per_second'] / 1e6, 2), e['sum_sent'].get('retransmits', '?'), e['sum_received']['bytes'])" "$result")
echo "iperf3 TCP n1->n4 over 3 impaired links: $mbps Mbit/s, $bytes bytes received, $retrans retransmits"
[ "$bytes" -gt 0 ] || fail "iperf3 carried nothing"
