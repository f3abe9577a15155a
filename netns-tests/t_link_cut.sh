#!/usr/bin/env bash
# Failover: a 4-node ring n1-n2-n3-n4-n1, a ping flow n1 -> n3 every 20 ms; the link carrying it is
# cut (`ip link set down`). Measures the longest gap between replies (goal: at most 3 s), then
# restores the link and checks that it comes back up.
. "$(dirname "$0")/lib.sh"

for n in n1 n2 n3 n4; do ns_add $n; done
pairs=("n1 n2" "n2 n3" "n3 n4" "n4 n1")
i=0
for p in "${pairs[@]}"; do
    set -- $p
    i=$((i + 1))
    veth_link $1 $2
    in_ns $1 ip addr add "10.88.$i.1/24" dev "$1-$2"
    in_ns $2 ip addr add "10.88.$i.2/24" dev "$2-$1"
done
# Each node listens; the first of each pair dials the second.
for n in n1 n2 n3 n4; do mr_config $n <<<'listen = ["udp://0.0.0.0:9100"]' ; done
echo 'peers = ["udp://10.88.1.2:9100"]' >>"$MR_DIR/n1.toml"
echo 'peers = ["udp://10.88.2.2:9100"]' >>"$MR_DIR/n2.toml"
echo 'peers = ["udp://10.88.3.2:9100"]' >>"$MR_DIR/n3.toml"
echo 'peers = ["udp://10.88.4.2:9100"]' >>"$MR_DIR/n4.toml"
for n in n1 n2 n3 n4; do mr_start $n; done
addr3=$(mr_field n3 address)
wait_until 10 ping_ok n1 "$addr3" || fail "n1 cannot reach n3"

tx_to() { # tx bytes of n1's link to node $1
    local key
    key=$(mr_field "$1" public_key)
    mr n1 peers --json | python3 -c "
import json, sys
print(sum(p['tx_bytes'] for p in json.load(sys.stdin)['peers'] if p['key'] == '$key'))"
}
before2=$(tx_to n2)
before4=$(tx_to n4)
in_ns n1 ping -6 -c 20 -i 0.01 -s 1000 "$addr3" >/dev/null
if [ $(($(tx_to n2) - before2)) -gt $(($(tx_to n4) - before4)) ]; then via=n2; else via=n4; fi
echo "flow n1 -> n3 goes through $via"

log="$MR_DIR/ping.log"
in_ns n1 ping -6 -D -i 0.02 -W 1 -w 10 "$addr3" >"$log" 2>&1 &
flow=$!
sleep 2
cut=$(date +%s.%N)
in_ns n1 ip link set "n1-$via" down
wait $flow || true
gap=$(python3 - "$log" "$cut" <<'PY'
import re, sys
times = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", open(sys.argv[1]).read(), re.M)]
cut = float(sys.argv[2])
after = [t for t in times if t > cut]
before = [t for t in times if t <= cut]
if not after or not before:
    print("inf"); sys.exit()
print(f"{after[0] - before[-1]:.2f}")
PY
)
echo "delivery gap after cutting n1-$via: $gap s"
python3 -c "import sys; sys.exit(0 if float('$gap') <= 3.0 else 1)" || fail "failover took $gap s (goal: 3 s)"

in_ns n1 ip link set "n1-$via" up
link_up() {
    mr n1 peers --json | python3 -c "
import json, sys
sys.exit(0 if sum(p['up'] for p in json.load(sys.stdin)['peers']) == 2 else 1)"
}
start=$(now_ms)
wait_until 15 link_up || fail "the restored link did not come back up"
echo "restored link up again after $(($(now_ms) - start)) ms"
