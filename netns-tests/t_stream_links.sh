#!/usr/bin/env bash
# Stream links: a star around b, where a-b is UDP, b-c is TCP and b-d is TLS. Every pair pings; each
# stream connection is then killed (`ss -K`) under a 20 ms ping: the link must come back within 5 s and
# the ping outage stay within 3 s. Then c's connection is cut silently (nftables drops it for 6 s): the
# link must be found down and come back within 5 s of the path's return. Last, links with a wrong
# pinned key and a wrong password must say why in `meshrouter peers` (last_error).
. "$(dirname "$0")/lib.sh"
command -v nft >/dev/null || fail "nft is missing (apt-get install nftables)"

for n in a b c d; do ns_add $n; done
veth_link a b
veth_link b c
veth_link b d
in_ns a ip addr add 10.91.1.1/24 dev a-b
in_ns b ip addr add 10.91.1.2/24 dev b-a
in_ns b ip addr add 10.91.2.1/24 dev b-c
in_ns c ip addr add 10.91.2.2/24 dev c-b
in_ns b ip addr add 10.91.3.1/24 dev b-d
in_ns d ip addr add 10.91.3.2/24 dev d-b

mr_config a <<<'peers = ["udp://10.91.1.2:9100"]'
mr_config b <<<'listen = ["udp://0.0.0.0:9100", "tcp://0.0.0.0:9200", "tls://0.0.0.0:443", "tcp://0.0.0.0:9300?password=right"]'
mr_config c <<<'peers = ["tcp://10.91.2.1:9200"]'
# Somebody's key, not b's.
wrong_key=ffbbc89ea3b287796ada7a79689641e27b782b79b461c1063ba8d4a594115013
mr_config d <<EOF2
peers = ["tls://10.91.3.1:443", "tcp://10.91.3.1:9200?key=$wrong_key", "tcp://10.91.3.1:9300?password=wrong"]
EOF2
for n in a b c d; do mr_start $n; done
declare -A addr
for n in a b c d; do addr[$n]=$(mr_field $n address); done
for from in a b c d; do
    for to in a b c d; do
        [ $from = $to ] && continue
        wait_until 10 ping_ok $from "${addr[$to]}" || fail "$from cannot reach $to"
    done
done
echo "all 12 pairs ping (a-b udp, b-c tcp, b-d tls)"
mr d peers

# link_via NODE TRANSPORT: succeeds if NODE has an up link over TRANSPORT.
link_via() {
    mr "$1" peers --json | python3 -c "
import json, sys
sys.exit(0 if any(p['up'] and p['transport'] == '$2' for p in json.load(sys.stdin)['peers']) else 1)"
}
link_via c tcp || fail "c has no tcp link up"
link_via d tls || fail "d has no tls link up"

# cut NODE PORT TRANSPORT: kills NODE's connection to b:PORT under a 20 ms ping from a to NODE.
cut() {
    local node=$1 port=$2 transport=$3 log="$MR_DIR/ping-$1.log" flow start back gap
    in_ns a ping -6 -D -i 0.02 -W 1 -w 8 "${addr[$node]}" >"$log" 2>&1 &
    flow=$!
    sleep 2
    start=$(now_ms)
    local cut_at
    cut_at=$(date +%s.%N)
    in_ns "$node" ss -tnK dst "10.91.${4}.1" dport = ":$port"
    wait_until 5 link_via "$node" "$transport" || fail "$node's $transport link not back within 5 s"
    back=$(($(now_ms) - start))
    wait $flow || true
    gap=$(python3 - "$log" "$cut_at" <<'PY'
import re, sys
times = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", open(sys.argv[1]).read(), re.M)]
cut = float(sys.argv[2])
before = [t for t in times if t <= cut]
after = [t for t in times if t > cut]
if not before or not after:
    print("inf"); sys.exit()
gaps = [b - a for a, b in zip([before[-1]] + after, after)]
print(f"{max(gaps):.3f}")
PY
)
    echo "$transport connection of $node killed: link back in $back ms, longest ping gap $gap s ($(grep -o "[0-9]* received, [0-9.]*% packet loss" "$log"))"
    python3 -c "import sys; sys.exit(0 if float('$gap') <= 3.0 else 1)" || fail "outage $gap s (goal: 3 s)"
}
cut c 9200 tcp 2
cut d 443 tls 3

# A silent cut: every packet between c and b's port 9200 dropped for 6 s, no RST, no FIN (a half-open
# connection). The link's liveness must notice, the connection be dropped and dialled again, and the
# link be back within 5 s of the path's return.
in_ns c nft -f - <<'NFT'
table inet cut {
    chain out { type filter hook output priority 0; policy accept; tcp dport 9200 drop; }
    chain in { type filter hook input priority 0; policy accept; tcp sport 9200 drop; }
}
NFT
start=$(now_ms)
link_down() { ! link_via c tcp; }
wait_until 6 link_down || fail "c's tcp link still up 6 s into a silent cut"
echo "silent cut: c's tcp link found down after $(($(now_ms) - start)) ms"
sleep $(((6000 - ($(now_ms) - start)) / 1000)).5
in_ns c nft delete table inet cut
start=$(now_ms)
wait_until 5 link_via c tcp || fail "c's tcp link not back within 5 s of the path's return"
echo "silent cut healed: link back $(($(now_ms) - start)) ms after the path returned"

# Wrong key and wrong password: refused, and `peers` says why.
configured_error() {
    mr d peers --json | python3 -c "
import json, sys
for p in json.load(sys.stdin)['configured']:
    if p['uri'] == '$1':
        print(p.get('last_error') or '')"
}
has_error() { configured_error "$1" | grep -q "$2"; }
wait_until 15 has_error tcp://10.91.3.1:9200 "peer key not allowed" || fail "wrong key: last_error is '$(configured_error tcp://10.91.3.1:9200)'"
wait_until 15 has_error tcp://10.91.3.1:9300 "no answer to the link handshake" || fail "wrong password: last_error is '$(configured_error tcp://10.91.3.1:9300)'"
echo "wrong key: $(configured_error tcp://10.91.3.1:9200)"
echo "wrong password: $(configured_error tcp://10.91.3.1:9300)"
mr d peers
echo "PASS"
