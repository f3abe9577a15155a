#!/usr/bin/env bash
# Idle connections must not lock a stream listener out. An attacker (namespace x, no meshrouter) opens
# 1500 TCP connections to b's tcp:// listener and 1500 to its tls:// listener, then keeps opening 100
# more a second to each, and sends nothing on any. b runs with 1024 file descriptors (systemd's default
# soft limit): a daemon that kept every accepted connection would run out and could take no more, nor
# dial; one that refused new connections beyond a limit would refuse the real ones too. With b's limits
# (64 accepted connections without a link and 8 per source, 32 TLS handshakes at once and 4 per source,
# the oldest closed for the newest; 15 s to bring a link up) a real peer c must link over both
# listeners within 5 s, and b must hold at most 300 descriptors.
. "$(dirname "$0")/lib.sh"

ulimit -Sn 1024
for n in b c x; do ns_add $n; done
veth_link b c
veth_link b x
in_ns b ip addr add 10.92.1.1/24 dev b-c
in_ns c ip addr add 10.92.1.2/24 dev c-b
in_ns b ip addr add 10.92.2.1/24 dev b-x
in_ns x ip addr add 10.92.2.2/24 dev x-b
# Room for the attacker's SYNs (the namespaces' default backlog limits would slow it, not b).
in_ns b sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096

mr_config b <<<'listen = ["tcp://0.0.0.0:9200", "tls://0.0.0.0:443"]'
mr_config c <<<'peers = ["tls://10.92.1.1:443", "tcp://10.92.1.1:9200"]'
mr_start b
pid_b=$(cat "$MR_DIR/b.pid")

in_ns x python3 - "$MR_DIR/attack.log" <<'PY' &
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
held = []


def open_one(port):
    """Starts a connection to b and keeps it, sending nothing."""
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("10.92.2.1", port))
    except BlockingIOError:
        pass
    held.append(s)


for port in (9200, 443):
    for _ in range(1500):
        open_one(port)
time.sleep(1)
with open(sys.argv[1], "w") as log:
    log.write(f"opened {len(held)}\n")
# Then 100 new ones a second to each listener; the oldest are let go (the attacker's own limit).
end = time.time() + 40
while time.time() < end:
    for port in (9200, 443):
        for _ in range(10):
            open_one(port)
    while len(held) > 6000:
        held.pop(0).close()
    time.sleep(0.1)
PY
attacker=$!
wait_until 10 test -s "$MR_DIR/attack.log" || fail "the attacker did not start"
sleep 2
echo "attacker: $(cat "$MR_DIR/attack.log") idle connections; b holds $(ls /proc/$pid_b/fd | wc -l) descriptors"

start=$(now_ms)
mr_start c
both_up() {
    mr c peers --json | python3 -c "
import json, sys
up = {p['transport'] for p in json.load(sys.stdin)['peers'] if p['up']}
sys.exit(0 if {'tcp', 'tls'} <= up else 1)"
}
wait_until 5 both_up || { mr c peers; fail "c did not link over tcp and tls within 5 s of its start"; }
echo "c linked over tcp:// and tls:// $(($(now_ms) - start)) ms after its start"
fds=$(ls /proc/$pid_b/fd | wc -l)
echo "b holds $fds descriptors"
[ "$fds" -le 300 ] || fail "b holds $fds descriptors (limit 300)"
counter() { mr b counters --json | python3 -c "import json, sys; print(json.load(sys.stdin)['driver']['$1'])"; }
evicted=$(counter connections_evicted)
echo "b closed $evicted idle connections for newer ones"
[ "$evicted" -gt 0 ] || fail "b evicted no connection"
sleep 16
echo "16 s later, attacker still at it: b evicted $(counter connections_evicted), timed out $(counter connections_closed), holds $(ls /proc/$pid_b/fd | wc -l) descriptors"
both_up || fail "c's links did not stay up"
listeners=$(mr b listeners --json)
mr b listeners
python3 -c "
import json, sys
for l in json.loads(sys.argv[1])['listeners']:
    assert l['links_up'] == 1 and l['waiting'] <= 8, l" "$listeners" || fail "listeners: $listeners"
fds=$(ls /proc/$pid_b/fd | wc -l)
[ "$fds" -le 300 ] || fail "b holds $fds descriptors (limit 300)"
kill "$attacker" 2>/dev/null || true
echo "PASS"
