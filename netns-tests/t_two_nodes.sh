#!/usr/bin/env bash
# Two nodes over a configured UDP peering (IPv6, bound to the interface): ping6 both ways, a TCP transfer (iperf3) through the
# overlay, `peers --json` lists exactly the one neighbour, and the API socket is closed to an
# unprivileged user.
. "$(dirname "$0")/lib.sh"

ns_add a
ns_add b
veth_link a b
in_ns a ip addr add fd77::1/64 dev a-b
in_ns b ip addr add fd77::2/64 dev b-a

mr_config a <<<'listen = ["udp://[::]:9100", "udp://0.0.0.0:9100"]'
key_a=$("$MR_BIN" info --config "$MR_DIR/a.toml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
mr_config b <<<"peers = [\"udp://[fd77::1]:9100?key=$key_a&interface=b-a\"]"
mr_start a
mr_start b
addr_a=$(mr_field a address)
addr_b=$(mr_field b address)

start=$(now_ms)
wait_until 10 ping_ok a "$addr_b" || fail "a cannot reach b"
echo "first ping a->b after $(($(now_ms) - start)) ms"
in_ns b ping -6 -c 3 -i 0.2 -W 1 "$addr_a" >/dev/null || fail "b cannot ping a"
in_ns a ping -6 -c 3 -i 0.2 -W 1 "$addr_b" >/dev/null || fail "a cannot ping b"

# Exactly one neighbour each, the expected key, up.
key_b=$(mr_field b public_key)
mr a peers --json | python3 -c "
import json, sys
peers = json.load(sys.stdin)['peers']
assert len(peers) == 1, peers
assert peers[0]['key'] == '$key_b' and peers[0]['up'] and peers[0]['inbound'], peers
" || fail "a's peer list is wrong"
mr b peers --json | python3 -c "
import json, sys
peers = json.load(sys.stdin)['peers']
assert len(peers) == 1 and peers[0]['key'] == '$key_a' and not peers[0]['inbound'], peers
" || fail "b's peer list is wrong"

rss() { awk '/VmRSS/ {print $2, $3}' /proc/"$(cat "$MR_DIR/$1.pid")"/status; }
sleep 2
echo "RSS of the idle daemon a (one peer, TUN up): $(rss a)"

# TCP through the overlay.
in_ns b iperf3 -s -1 -B "$addr_b" >/dev/null 2>&1 &
sleep 0.5
result=$(in_ns a iperf3 -c "$addr_b" -t 3 -J) || fail "iperf3 failed"
mbps=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['end']['sum_received']['bits_per_second']/1e6, 1))" "$result")
echo "iperf3 TCP a->b: $mbps Mbit/s"
python3 -c "import sys; sys.exit(0 if float('$mbps') > 1 else 1)" || fail "TCP transfer too slow: $mbps Mbit/s"

# A UDP train sent with UDP_SEGMENT (one send, five datagrams; the TUN device takes it whole where the
# kernel has USO, and meshrouter cuts it): b receives five intact 1000-byte datagrams.
in_ns b python3 -c "
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('$addr_b', 7000))
s.settimeout(5)
got = [s.recv(2000) for _ in range(5)]
expected = [bytes((i + j) % 256 for j in range(1000)) for i in range(5)]
sys.exit(0 if sorted(got) == sorted(expected) else 1)
" &
receiver=$!
sleep 0.3
in_ns a python3 -c "
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT
s.sendto(b''.join(bytes((i + j) % 256 for j in range(1000)) for i in range(5)), ('$addr_b', 7000))
" || fail "sending a UDP_SEGMENT train failed"
wait "$receiver" || fail "b did not receive the UDP train as five intact datagrams"
echo "a UDP_SEGMENT train of 5 x 1000 bytes arrived as 5 datagrams"

# The API socket: mode 0660, root's, refused to nobody.
[ "$(stat -c %a "$MR_DIR/a.sock")" = 660 ] || fail "API socket mode is $(stat -c %a "$MR_DIR/a.sock")"
chmod 755 "$MR_DIR"
if out=$(in_ns a setpriv --reuid=65534 --regid=65534 --clear-groups "$MR_BIN" peers --socket "$MR_DIR/a.sock" 2>&1); then
    fail "an unprivileged user could use the API: $out"
fi
echo "$out" | grep -q "permission denied" || fail "unclear refusal: $out"

echo "RSS of a after the transfer: $(rss a)"
