#!/usr/bin/env bash
# Raw Ethernet only: three nodes in a line whose veths have no IP addresses at all (IPv6 disabled, so
# not even link-local), found by Ethernet broadcast beacons; n1 pings n3 across n2.
. "$(dirname "$0")/lib.sh"

for n in n1 n2 n3; do ns_add $n; done
for n in n1 n2 n3; do in_ns $n sysctl -qw net.ipv6.conf.default.disable_ipv6=1; done
veth_link n1 n2
veth_link n2 n3
for n in n1 n2 n3; do
    in_ns $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    # The TUN device needs IPv6: re-enable it for interfaces created from now on.
    in_ns $n sysctl -qw net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.all.disable_ipv6=0
    for dev in $(in_ns $n ls /sys/class/net | grep -- -); do
        in_ns $n sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    done
    mr_config $n <<'EOT'
[[discovery]]
interfaces = "n.-n."
transport = "ethernet"
EOT
done
for n in n1 n2 n3; do
    [ -z "$(in_ns $n ip -o addr show dev "$(in_ns $n ls /sys/class/net | grep -- - | head -1)")" ] ||
        fail "the underlay of $n has an address"
    mr_start $n
done
addr3=$(mr_field n3 address)
start=$(now_ms)
wait_until 15 ping_ok n1 "$addr3" || fail "n1 cannot reach n3 over raw Ethernet"
echo "n1 -> n3 over raw Ethernet after $(($(now_ms) - start)) ms"
in_ns n1 ping -6 -c 5 -i 0.2 -W 1 "$addr3" >/dev/null || fail "ping n1 -> n3 lost packets"
mr n2 peers --json | python3 -c "
import json, sys
peers = json.load(sys.stdin)['peers']
up = [p for p in peers if p['up']]
assert len(up) == 2 and all(p['uri'].startswith('ethernet://') for p in up), peers
" || fail "n2 should have two raw Ethernet links"

# TCP across the relay, over raw Ethernet links alone (frames sent and received in batches).
in_ns n3 iperf3 -s -1 -B "$addr3" >/dev/null 2>&1 &
sleep 0.5
result=$(in_ns n1 iperf3 -c "$addr3" -t 2 -J) || fail "iperf3 over raw Ethernet failed"
mbps=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['end']['sum_received']['bits_per_second']/1e6, 1))" "$result")
echo "iperf3 TCP n1->n3 over raw Ethernet, through n2: $mbps Mbit/s"
python3 -c "import sys; sys.exit(0 if float('$mbps') > 1 else 1)" || fail "TCP over raw Ethernet too slow: $mbps Mbit/s"
