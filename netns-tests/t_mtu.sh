#!/usr/bin/env bash
# A 3-node line n1-n2-n3 whose n2-n3 veth has an MTU of 1280 at both ends, less than a full overlay
# packet plus its link headers. A full-size overlay packet must still get through end to end, both
# ways: `ping -M "do" -s 1232` (1232 + 8 ICMPv6 + 40 IPv6 = 1280 bytes, the TUN MTU, with fragmentation
# forbidden at the overlay level), and an iperf3 TCP transfer n1 -> n3 (full-size segments) completes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

nodes=(n1 n2 n3)
for n in "${nodes[@]}"; do mesh_node "$n"; done
mesh_link n1 n2
mesh_link n2 n3
in_ns n2 ip link set dev n2-n3 mtu 1280
in_ns n3 ip link set dev n3-n2 mtu 1280
mesh_start "${nodes[@]}"
addr1=${MESH_ADDR[n1]} addr3=${MESH_ADDR[n3]}
[ "$(in_ns n1 cat /sys/class/net/meshrouter0/mtu)" = 1280 ] || fail "TUN MTU is not 1280"

start=$(now_ms)
wait_until 10 ping_ok n1 "$addr3" || fail "n1 cannot reach n3 with small packets"
echo "first (small) ping n1->n3 after $(($(now_ms) - start)) ms"

# Full-size packets, both ways. The first may wait for nothing more than the path (already found).
in_ns n1 ping -6 -n -c 3 -i 0.2 -W 2 -M "do" -s 1232 "$addr3" >"$MR_DIR/big13.txt" 2>&1 ||
    fail "1280-byte packets n1->n3 do not get through: $(cat "$MR_DIR/big13.txt")"
in_ns n3 ping -6 -n -c 3 -i 0.2 -W 2 -M "do" -s 1232 "$addr1" >"$MR_DIR/big31.txt" 2>&1 ||
    fail "1280-byte packets n3->n1 do not get through: $(cat "$MR_DIR/big31.txt")"
echo "1280-byte ping6 n1->n3: $(grep -o '[0-9]* received' "$MR_DIR/big13.txt")/3, n3->n1: $(grep -o '[0-9]* received' "$MR_DIR/big31.txt")/3, rtt $(sed -n 's|^rtt min/avg/max/mdev = [0-9.]*/\([0-9.]*\)/.*|avg \1 ms|p' "$MR_DIR/big13.txt")"
# How the 1280-MTU hop carried them: the daemons send up to 1452-byte datagrams on UDP links by default,
# so the kernel splits them into IPv4 fragments there.
frags() {
    # shellcheck disable=SC2016
    in_ns "$1" awk '/^Ip:/ { if (!h) { h = $0; next } split(h, k); split($0, v);
        for (i = 1; i <= NF; i++) if (k[i] == "FragCreates") print v[i] }' /proc/net/snmp
}
echo "IPv4 fragments created on the 1280-MTU hop so far: n2 $(frags n2), n3 $(frags n3)"
# One byte more does not fit the TUN MTU: refused locally, never sent.
if in_ns n1 ping -6 -n -c 1 -W 1 -M "do" -s 1233 "$addr3" >/dev/null 2>&1; then
    fail "a 1281-byte packet went through a 1280-byte TUN with fragmentation forbidden"
fi

# TCP, full-size segments, n1 -> n3.
in_ns n3 iperf3 -s -1 -B "$addr3" >"$MR_DIR/iperf3-server.log" 2>&1 &
wait_until 5 eval "in_ns n3 ss -Hltn 'sport = :5201' | grep -q ." || fail "iperf3 server did not start"
result=$(timeout 30 ip netns exec "${NS_PREFIX}n1" iperf3 -c "$addr3" -t 3 -J) || fail "iperf3 failed: $result"
read -r mbps bytes < <(python3 -c "
import json, sys
e = json.loads(sys.argv[1])['end']
print(round(e['sum_received']['bits_per_second'] / 1e6, 1), e['sum_received']['bytes'])" "$result")
echo "iperf3 TCP n1->n3 across the 1280-MTU hop: $mbps Mbit/s ($bytes bytes)"
[ "$bytes" -gt 0 ] || fail "iperf3 carried nothing"
python3 -c "import sys; sys.exit(0 if float('$mbps') > 1 else 1)" || fail "TCP through the 1280-MTU hop too slow: $mbps Mbit/s"
