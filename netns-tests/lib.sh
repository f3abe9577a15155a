# Shared helpers for the network-namespace tests. Source it; do not run it.
#
# Every namespace a test makes is named "mr<pid>-<name>" and deleted by the EXIT trap, also when the test
# fails, so a crashed run leaves nothing behind and two runs never collide. Traffic stays inside these
# namespaces.

set -euo pipefail

NS_PREFIX="${MR_NS_PREFIX:-mr$$-}"
NS_CREATED=()

# Deletes every namespace this test made (processes inside are killed with it).
ns_cleanup() {
    local ns pid
    for ns in "${NS_CREATED[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns delete "$ns" 2>/dev/null || true
    done
}
trap ns_cleanup EXIT  # replaced by mr_cleanup below

# ns_add NAME: creates namespace NAME (prefixed), with loopback up and IPv6 DAD off so addresses are usable
# at once.
ns_add() {
    local ns="$NS_PREFIX$1"
    ip netns add "$ns"
    NS_CREATED+=("$ns")
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# in_ns NAME CMD...: runs CMD inside namespace NAME.
in_ns() {
    local ns="$NS_PREFIX$1"
    shift
    ip netns exec "$ns" "$@"
}

# veth_link A B: joins namespaces A and B with a veth pair named "A-B" / "B-A" (15 characters at most) and
# brings both ends up.
veth_link() {
    local a="$1" b="$2"
    ip link add "$a-$b" netns "$NS_PREFIX$a" type veth peer name "$b-$a" netns "$NS_PREFIX$b"
    ip -n "$NS_PREFIX$a" link set "$a-$b" up
    ip -n "$NS_PREFIX$b" link set "$b-$a" up
}

# link_local NAME IFACE: prints the IPv6 link-local address of IFACE in namespace NAME, waiting up to 5 s.
link_local() {
    local addr i
    for i in $(seq 50); do
        addr=$(ip -n "$NS_PREFIX$1" -6 -o addr show dev "$2" scope link | awk '{print $4}' | cut -d/ -f1)
        if [ -n "$addr" ]; then echo "$addr"; return 0; fi
        sleep 0.1
    done
    echo "no link-local address on $1/$2" >&2
    return 1
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# ---- meshrouter daemons ---------------------------------------------------------------------------
#
# Each test gets a scratch folder ($MR_DIR) for configs, logs and API sockets, removed at exit. When a
# test fails, the daemons' logs are printed so the failure explains itself.

MR_BIN="${MR_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/meshrouter}"
MR_DIR=$(mktemp -d /tmp/mr-netns.XXXXXX)
MR_NODES=()

mr_cleanup() {
    local status=$?
    disown -a 2>/dev/null || true # no "Killed" notices for the daemons ns_cleanup stops
    if [ "$status" -ne 0 ]; then
        local n
        for n in "${MR_NODES[@]}"; do
            [ -f "$MR_DIR/$n.log" ] && { echo "--- log of $n"; tail -n 40 "$MR_DIR/$n.log"; }
        done
    fi
    ns_cleanup
    rm -rf "$MR_DIR"
    return "$status"
}
trap mr_cleanup EXIT
# A timeout or Ctrl-C must clean up too: bash runs the EXIT trap only when it exits, not when a signal
# kills it.
trap 'exit 143' TERM
trap 'exit 130' INT

# mr_config NAME: writes $MR_DIR/NAME.toml (a fresh key, its own API socket and CRDT database)
# followed by standard input.
mr_config() {
    local n="$1"
    {
        "$MR_BIN" genconf | grep -v '^#' | grep -v '^$'
        echo "api_socket = \"$MR_DIR/$n.sock\""
        echo "crdt.database = \"$MR_DIR/$n.crdt.redb\""
        echo "blobs.store = \"$MR_DIR/$n.blobs\""
        cat
    } >"$MR_DIR/$n.toml"
    chmod 600 "$MR_DIR/$n.toml"
}

# mr_start NAME: starts the daemon of namespace NAME with $MR_DIR/NAME.toml and waits for its API.
mr_start() {
    local n="$1" i
    [[ " ${MR_NODES[*]} " == *" $n "* ]] || MR_NODES+=("$n")
    # Not through in_ns: $! must be the daemon itself (ip netns exec execs it), not a subshell.
    ip netns exec "$NS_PREFIX$n" "$MR_BIN" run --config "$MR_DIR/$n.toml" >>"$MR_DIR/$n.log" 2>&1 &
    echo $! >"$MR_DIR/$n.pid"
    for i in $(seq 100); do
        mr "$n" self >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    fail "daemon $n did not start"
}

# mr NAME ARGS...: runs a meshrouter control command against the daemon of NAME.
mr() {
    local n="$1"
    shift
    in_ns "$n" "$MR_BIN" "$@" --socket "$MR_DIR/$n.sock"
}

# mr_field NAME FIELD: prints a field of `meshrouter self --json` (address, public_key, subnet, ...).
mr_field() {
    mr "$1" self --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}

# wait_until SECONDS CMD...: retries CMD every 0.1 s until it succeeds; fails after SECONDS.
wait_until() {
    local limit="$1" start
    shift
    start=$(date +%s%N)
    until "$@" >/dev/null 2>&1; do
        [ $(($(date +%s%N) - start)) -lt $((limit * 1000000000)) ] || return 1
        sleep 0.1
    done
}

# ping_ok NAME ADDR: one ping from NAME to ADDR (IPv6), waiting at most 1 s for the reply.
ping_ok() {
    in_ns "$1" ping -6 -c 1 -W 1 "$2" >/dev/null 2>&1
}

# links_up NODE: how many of NODE's links are up.
links_up() {
    mr "$1" peers --json | python3 -c '
import json, sys
print(sum(1 for p in json.load(sys.stdin)["peers"] if p.get("up")))'
}

# now_ms: wall-clock milliseconds.
now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# line_abc_and_d: namespaces a - b - c in a line (10.77.1.0/24 between a and b, 10.77.2.0/24 between b
# and c) and d with no link at all; daemon configurations for the four, a peering with b and b with c
# over UDP port 9100. The daemons are not started.
line_abc_and_d() {
    local n
    for n in a b c d; do ns_add $n; done
    veth_link a b
    veth_link b c
    in_ns a ip addr add 10.77.1.1/24 dev a-b
    in_ns b ip addr add 10.77.1.2/24 dev b-a
    in_ns b ip addr add 10.77.2.1/24 dev b-c
    in_ns c ip addr add 10.77.2.2/24 dev c-b
    for n in a b c d; do mr_config $n <<<'listen = ["udp://0.0.0.0:9100"]'; done
    echo 'peers = ["udp://10.77.1.2:9100"]' >>"$MR_DIR/a.toml"
    echo 'peers = ["udp://10.77.2.2:9100"]' >>"$MR_DIR/b.toml"
}
