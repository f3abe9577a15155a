#!/usr/bin/env bash
# Junk floods from a LAN neighbour must not lock the mesh out. An attacker on the LAN (namespace x, no
# meshrouter, only flood.py) floods node a from 3 s before its neighbour b starts, and b must still link
# with a and ping a's overlay address within 10 s of its start, with a's daemon below one core (its CPU
# is read from /proc/PID/stat over the first 3 s of the flood and over the whole case):
#
#   init-peer       junk handshake initiations (INIT_LEN bytes, version 2, kind 1, random rest: they
#                   pass the daemon's cheap shape check) from a fresh source port each, >= 300 every 2 s
#                   to every UDP port a has open (listener, discovery-link socket, beacon port); b has a
#                   configured peer to a's listener. A daemon that opens an inbound link for each such
#                   datagram and caps pending inbound links at 256 (held 15 s) refuses b's real one.
#   init-discovery  the same flood; b has no peer and finds a by discovery (its key is made the smaller,
#                   so b is the side that dials, into a's discovery-link port).
#   beacon          junk beacons (BEACON_LEN bytes, "MRB" + version 2, random rest: they pass the beacon
#                   parser, the password MAC fails) to [ff02::6d72]:9101, >= 300 every 2 s, heard by a
#                   and b alike; a and b use discovery with a password. A daemon that spends its budget
#                   of beacon checks (50/s) before the MAC lets the junk starve the real beacons.
#
# `t_flood.sh CASE...` runs only the named cases (default: all three, in this order).
. "$(dirname "$0")/lib.sh"
command -v ping >/dev/null || fail "ping is missing (apt-get install iputils-ping)"

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(init-peer init-discovery beacon)
FLOOD_PY="$(cd "$(dirname "$0")" && pwd)/flood.py"

ns_add lan
in_ns lan ip link add br0 type bridge mcast_snooping 0
in_ns lan ip link set br0 up
for n in a b x; do
    ns_add $n
    veth_link $n lan
    in_ns lan ip link set "lan-$n" master br0
done
in_ns a ip addr add fd77::1/64 dev a-lan
in_ns b ip addr add fd77::2/64 dev b-lan
ll_a=$(link_local a a-lan)
link_local b b-lan >/dev/null
link_local x x-lan >/dev/null

clk_tck=$(getconf CLK_TCK)
# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# cpu_pct PID TICKS MS: CPU use of PID since it had used TICKS at time MS, in % of one core.
cpu_pct() {
    awk -v t="$(cpu_ticks "$1")" -v t0="$2" -v ms="$(($(now_ms) - $3))" -v hz="$clk_tck" \
        'BEGIN { printf "%.1f", (t - t0) * 100000 / hz / ms }'
}
below_one_core() { awk -v p="$1" 'BEGIN { exit !(p < 100) }'; }

# before DEADLINE_MS CMD...: retries CMD every 0.1 s until it succeeds; fails once DEADLINE_MS is past
# (a last try that started in time may succeed after it: callers check the time taken).
before() {
    local deadline="$1"
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

linked() { [ "$(links_up "$1")" -ge 1 ]; }

# mr_stop NAME: kills the daemon of NAME and forgets its CRDT database (the next one has another key).
mr_stop() {
    local pid
    pid=$(cat "$MR_DIR/$1.pid" 2>/dev/null) || return 0
    { kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true
    rm -f "$MR_DIR/$1.pid" "$MR_DIR/$1.crdt.redb"
}

# flood_start KIND TARGET...: starts flood.py in the attacker's namespace. It dies with the namespace
# (ns_cleanup) if the test stops early.
flood_pid=
flood_start() {
    # Not through in_ns: $! must be python itself, so flood_stop reaches it.
    ip netns exec "${NS_PREFIX}x" python3 "$FLOOD_PY" "$@" 2>>"$MR_DIR/flood.log" &
    flood_pid=$!
    sleep 0.2
    kill -0 "$flood_pid" 2>/dev/null || fail "flood.py did not start: $(cat "$MR_DIR/flood.log")"
}
flood_stop() {
    [ -n "$flood_pid" ] || return 0
    kill -TERM "$flood_pid" 2>/dev/null || true
    wait "$flood_pid" 2>/dev/null || true
    flood_pid=
    echo "  $(tail -n 1 "$MR_DIR/flood.log")"
}

# udp_ports NAME: the UDP ports the daemon of NAME has open, one a line.
udp_ports() {
    in_ns "$1" ss -Hulnp | grep "pid=$(cat "$MR_DIR/$1.pid")," |
        awk '{ n = split($4, p, ":"); print p[n] }' | sort -un
}

# Why b is not linked, as seen from a: its links and the driver's non-zero counters.
a_state() {
    local peers counters
    peers=$(mr a peers --json | python3 -c '
import json, sys
p = json.load(sys.stdin)["peers"]
up = sum(1 for x in p if x.get("up"))
print(len(p), "links,", up, "up")') || peers="?"
    counters=$(mr a counters --json | python3 -c '
import json, sys
d = json.load(sys.stdin).get("driver", {})
print(" ".join(f"{k}={v}" for k, v in d.items() if v))') ||
        counters="?"
    echo "a has $peers; a's driver counters: $counters"
}

# flood_case NAME FLOOD_KIND CONFIG_A CONFIG_B: starts a, floods, starts b 3 s later, checks b links and
# pings within 10 s, and that a stays below one core. CONFIG_B may contain KEY_A (replaced by a's key);
# "smaller" as a 5th argument makes b's key the smaller one, so b dials a discovered a.
flood_case() {
    local name="$1" kind="$2" conf_a="$3" conf_b="$4" order="${5:-}" key_a key_b port ports targets
    local t0 ticks0 cpu_before start linked_ms pinged_ms cpu_during addr_a
    echo "== $name"
    mr_config a <<<"$conf_a"
    key_a=$("$MR_BIN" info --config "$MR_DIR/a.toml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
    while :; do
        mr_config b <<<"${conf_b//KEY_A/$key_a}"
        key_b=$("$MR_BIN" info --config "$MR_DIR/b.toml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
        if [ "$order" != smaller ] || [[ "$key_b" < "$key_a" ]]; then break; fi
    done
    mr_start a
    addr_a=$(mr_field a address)

    if [ "$kind" = init ]; then
        # Every UDP port of a: the listener (9100), the beacon port (9101) and the socket of discovered
        # links (an ephemeral port), sent to a's link-local address, so the discovery socket treats the
        # junk as coming from a LAN neighbour.
        wait_until 5 eval 'udp_ports a | grep -x 9101' || fail "$name: a has no beacon socket: $(udp_ports a)"
        ports=$(udp_ports a)
        [ "$(wc -l <<<"$ports")" -ge 3 ] || fail "$name: expected a listener, a beacon and a discovery-link port, a has: $ports"
        targets=()
        for port in $ports; do targets+=("[$ll_a%x-lan]:$port"); done
        echo "  flooding a's UDP ports $(echo $ports) with junk initiations"
    else
        targets=("[ff02::6d72%x-lan]:9101")
        echo "  flooding [ff02::6d72]:9101 with junk beacons"
    fi
    t0=$(now_ms)
    ticks0=$(cpu_ticks "$(cat "$MR_DIR/a.pid")")
    flood_start "$kind" --count 300 --interval 2 "${targets[@]}"
    sleep 3
    cpu_before=$(cpu_pct "$(cat "$MR_DIR/a.pid")" "$ticks0" "$t0")
    echo "  a's CPU during the first 3 s of the flood: $cpu_before % of one core"
    below_one_core "$cpu_before" || fail "$name: a used $cpu_before % of one core under the flood"

    mr_start b
    start=$(now_ms)
    before $((start + 10000)) linked b ||
        fail "$name: b did not link with a within 10 s of its start, during the flood ($(a_state))"
    linked_ms=$(($(now_ms) - start))
    [ "$linked_ms" -le 10000 ] || fail "$name: b linked with a only $linked_ms ms after its start, during the flood"
    echo "  b linked with a $linked_ms ms after its start"
    before $((start + 10000)) ping_ok b "$addr_a" ||
        fail "$name: b linked but could not ping a's overlay address within 10 s of its start ($(a_state))"
    pinged_ms=$(($(now_ms) - start))
    [ "$pinged_ms" -le 10000 ] || fail "$name: b pinged a's overlay address only $pinged_ms ms after its start"
    echo "  b pinged a's overlay address $pinged_ms ms after its start"
    cpu_during=$(cpu_pct "$(cat "$MR_DIR/a.pid")" "$ticks0" "$t0")
    echo "  a's CPU over the whole flood ($((($(now_ms) - t0) / 1000)) s): $cpu_during % of one core"
    below_one_core "$cpu_during" || fail "$name: a used $cpu_during % of one core under the flood"
    echo "  $(a_state)"
    flood_stop
    mr_stop b
    mr_stop a
}

for c in "${cases[@]}"; do
    case "$c" in
    init-peer)
        flood_case init-peer init \
            $'listen = ["udp://[::]:9100"]\n[[discovery]]\ninterfaces = ".*-lan"' \
            'peers = ["udp://[fd77::1]:9100?key=KEY_A"]'
        ;;
    init-discovery)
        flood_case init-discovery init \
            $'listen = ["udp://[::]:9100"]\n[[discovery]]\ninterfaces = ".*-lan"' \
            $'[[discovery]]\ninterfaces = ".*-lan"' smaller
        ;;
    beacon)
        flood_case beacon beacon \
            $'[[discovery]]\ninterfaces = ".*-lan"\npassword = "island"' \
            $'[[discovery]]\ninterfaces = ".*-lan"\npassword = "island"'
        ;;
    *) fail "unknown case $c (init-peer, init-discovery, beacon)" ;;
    esac
done
