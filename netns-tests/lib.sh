# Shared helpers for the network-namespace tests. Source it; do not run it.
#
# Every namespace a test makes is named "mr<pid>-<name>" and deleted by the EXIT trap, also when the test
# fails, so a crashed run leaves nothing behind and two runs never collide. Traffic stays inside these
# namespaces.

set -euo pipefail

NS_PREFIX="mr$$-"
NS_CREATED=()

# Deletes every namespace this test made (processes inside are killed with it).
ns_cleanup() {
    local ns pid
    for ns in "${NS_CREATED[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns delete "$ns" 2>/dev/null || true
    done
}
trap ns_cleanup EXIT

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
