#!/usr/bin/env bash
# Each node routes its /64 (300::/8 space) to a LAN: nodes a and b peer over UDP; host ha sits behind a
# and hb behind b, each on its own veth. a forwards IPv6 and holds <a's /64>::1 on its LAN side; ha holds
# <a's /64>::2 with a default route via ::1 (the same for b and hb). ha and hb must reach each other by
# ping6 both ways, and each must reach the other side's node address. A packet that leaves a with a
# source outside a's address and /64 must be dropped by b (InnerAddress), not delivered.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

mesh_node a
mesh_node b
mesh_link a b

# subnet_host PREFIX N: prints address N of the /64 PREFIX (e.g. 300:1:2:3::/64 1 -> 300:1:2:3::1).
subnet_host() {
    python3 -c "import ipaddress, sys; print(ipaddress.ip_network(sys.argv[1])[int(sys.argv[2])])" "$1" "$2"
}

declare -A HOST=()
for side in a b; do
    host=h$side
    ns_add "$host"
    veth_link "$side" "$host"
    gw=$(subnet_host "${MESH_SUBNET[$side]}" 1)
    addr=$(subnet_host "${MESH_SUBNET[$side]}" 2)
    in_ns "$side" sysctl -qw net.ipv6.conf.all.forwarding=1
    in_ns "$side" ip -6 addr add "$gw/64" dev "$side-$host"
    in_ns "$host" ip -6 addr add "$addr/64" dev "$host-$side"
    in_ns "$host" ip -6 route add default via "$gw" dev "$host-$side"
    HOST[$side]=$addr
done
echo "ha = ${HOST[a]} (behind a, ${MESH_SUBNET[a]}), hb = ${HOST[b]} (behind b, ${MESH_SUBNET[b]})"
mesh_start a b
# The TUN route for the overlay covers both 200::/7 halves; the LAN /64 is more specific.
in_ns a ip -6 route get "${HOST[b]}" | grep -q "dev meshrouter0" || fail "a does not route hb's address into the TUN"
in_ns b ip -6 route get "${HOST[b]}" | grep -q "dev b-hb" || fail "b does not route its own /64 to its LAN"

start=$(now_ms)
wait_until 10 ping_ok ha "${HOST[b]}" || fail "ha cannot reach hb"
echo "first ping ha->hb after $(($(now_ms) - start)) ms"
in_ns ha ping -6 -n -c 3 -i 0.2 -W 1 "${HOST[b]}" >/dev/null || fail "ha does not reach hb steadily"
in_ns hb ping -6 -n -c 3 -i 0.2 -W 1 "${HOST[a]}" >/dev/null || fail "hb cannot ping ha"
in_ns ha ping -6 -n -c 2 -i 0.2 -W 1 "${MESH_ADDR[b]}" >/dev/null || fail "ha cannot ping node b"
in_ns hb ping -6 -n -c 2 -i 0.2 -W 1 "${MESH_ADDR[a]}" >/dev/null || fail "hb cannot ping node a"
hops=$(in_ns ha ping -6 -n -c 1 -W 1 "${HOST[b]}" | sed -n 's/.*ttl=\([0-9]*\).*/\1/p' || true)
echo "ha <-> hb and ha/hb <-> the other node: all answer; hb's reply reaches ha with hop limit $hops (64 - 2 routers)"
[ "$hops" = 62 ] || fail "unexpected hop limit $hops: the overlay should count as one hop per node"

# TCP between the hosts: through both nodes' forwarding, our coalesced (GSO) writes to b's TUN are
# segmented again by b's kernel onto its LAN, so their checksums must come out right.
in_ns hb iperf3 -s -1 -B "${HOST[b]}" >"$MR_DIR/iperf3-hb.log" 2>&1 &
sleep 0.5
result=$(timeout 30 ip netns exec "${NS_PREFIX}ha" iperf3 -c "${HOST[b]}" -t 3 -J) || fail "iperf3 ha->hb failed"
mbps=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['end']['sum_received']['bits_per_second']/1e6))" "$result")
echo "iperf3 TCP ha->hb across both nodes: $mbps Mbit/s"
[ "$mbps" -gt 1 ] || fail "TCP between the hosts carried nothing"

# A source address that is neither a's address nor in a's /64: b must refuse it.
# The /64 right after a's (the next prefix in 300::/8), which no node here owns.
spoof=$(python3 -c "import ipaddress, sys; print(ipaddress.ip_network(sys.argv[1]).network_address + (1 << 64) + 2)" "${MESH_SUBNET[a]}")
in_ns ha ip -6 addr add "$spoof/128" dev ha-a nodad
inner() {
    mr b counters --json | python3 -c "import json, sys; print(json.load(sys.stdin)['drops'].get('InnerAddress', 0))"
}
before=$(inner)
in_ns ha ping -6 -n -c 3 -i 0.2 -W 1 -I "$spoof" "${HOST[b]}" >/dev/null 2>&1 && fail "a packet from $spoof was answered"
after=$(inner)
echo "3 pings from $spoof (outside a's /64): dropped by b as InnerAddress: $((after - before))"
[ $((after - before)) -ge 3 ] || fail "b did not count the packets from a foreign source as InnerAddress drops"
