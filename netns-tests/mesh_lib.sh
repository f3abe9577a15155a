# Helpers for multi-node scenarios: build a mesh of namespaces joined by veths with static UDP peerings,
# start its daemons, ping between them. Source it after lib.sh; do not run it.
#
#   mesh_node n1; mesh_node n2; mesh_link n1 n2; mesh_start n1 n2; mesh_ping_all 10 n1 n2
#
# Every veth gets its own IPv4 /24 (10.77.K.0/24): the first node named in mesh_link gets .1 and listens
# (every node listens on udp://0.0.0.0:9100), the second gets .2 and peers to it with its key pinned.

# Results for the scripts that source this file (read there, so shellcheck cannot see the use).
# shellcheck disable=SC2034
declare -A MESH_KEY=() MESH_ADDR=() MESH_SUBNET=() MESH_PEERS=() MESH_IP=() MESH_DEGREE=()
MESH_NET=0

# At exit, kill and reap this shell's daemons before lib.sh's cleanup deletes the namespaces, so bash
# prints no "Killed" job notices; then run that cleanup (which prints the logs if the test failed).
mesh_exit() {
    local status=$? n pid
    set +e  # errexit would end the trap at the first failing command, before the cleanup
    for n in "${MR_NODES[@]}"; do
        pid=$(cat "$MR_DIR/$n.pid") || continue
        kill -9 "$pid"
        wait "$pid"
    done 2>/dev/null
    (exit "$status")  # mr_cleanup reads the test's status from $?
    mr_cleanup
}
trap mesh_exit EXIT

# mesh_node NAME [CONFIG]: a namespace and a config that listens on UDP 9100, plus the lines CONFIG
# (top-level keys only: the peers line is appended later by mesh_start).
mesh_node() {
    local n="$1" info
    ns_add "$n"
    printf 'listen = ["%s"]\n%s\n' "${MESH_LISTEN:-udp://0.0.0.0:9100}" "${2:-}" | mr_config "$n"
    info=$("$MR_BIN" info --config "$MR_DIR/$n.toml" --json)
    read -r "MESH_KEY[$n]" "MESH_ADDR[$n]" "MESH_SUBNET[$n]" < <(python3 -c '
import json, sys
i = json.loads(sys.argv[1])
print(i["public_key"], i["address"], i["subnet"])' "$info")
    MESH_PEERS[$n]=""
    MESH_DEGREE[$n]=0
}

# mesh_peer NAME URI: adds URI to NAME's configured peers (before mesh_start).
mesh_peer() {
    MESH_PEERS[$1]+="${MESH_PEERS[$1]:+, }\"$2\""
}

# mesh_veth A B: veth A-B with 10.77.K.1/24 on A's end and 10.77.K.2/24 on B's, no peering (see
# mesh_link). MESH_IP[A-B] / MESH_IP[B-A] hold the addresses of the A and B ends.
mesh_veth() {
    local a="$1" b="$2"
    MESH_NET=$((MESH_NET + 1))
    veth_link "$a" "$b"
    in_ns "$a" ip addr add "10.77.$MESH_NET.1/24" dev "$a-$b"
    in_ns "$b" ip addr add "10.77.$MESH_NET.2/24" dev "$b-$a"
    MESH_IP[$a-$b]="10.77.$MESH_NET.1"
    MESH_IP[$b-$a]="10.77.$MESH_NET.2"
    MESH_DEGREE[$a]=$((MESH_DEGREE[$a] + 1))
    MESH_DEGREE[$b]=$((MESH_DEGREE[$b] + 1))
}

# mesh_link A B: mesh_veth A B, and B peers to A's end (A listens), with A's key pinned. The link is
# udp://...:9100 unless MESH_SCHEME and MESH_PORT say otherwise (with a MESH_LISTEN to match).
mesh_link() {
    mesh_veth "$1" "$2"
    mesh_peer "$2" "${MESH_SCHEME:-udp}://${MESH_IP[$1-$2]}:${MESH_PORT:-9100}?key=${MESH_KEY[$1]}"
}

# mesh_start NAMES...: writes each node's peers into its config and starts the daemons, one after the
# other. Sets MESH_T0_MS to the time (now_ms) when the first was launched and MESH_STARTED_MS to when the
# last one's API answered.
mesh_start() {
    local n
    for n in "$@"; do
        echo "peers = [${MESH_PEERS[$n]}]" >>"$MR_DIR/$n.toml"
    done
    MESH_T0_MS=$(now_ms)
    for n in "$@"; do
        mr_start "$n"
    done
    # shellcheck disable=SC2034
    MESH_STARTED_MS=$(now_ms)
}

# mesh_links_up NAME: succeeds when NAME has as many links up as mesh_link gave it (and no others).
mesh_links_up() {
    mr "$1" peers --json | python3 -c "
import json, sys
peers = json.load(sys.stdin)['peers']
sys.exit(0 if len(peers) == ${MESH_DEGREE[$1]} and all(p['up'] for p in peers) else 1)"
}

# mesh_wait_links LIMIT NAMES...: waits until every node has all its links up; fails after LIMIT seconds.
# Sets MESH_LINKS_MS to when the last link came up (from the links' uptimes), in ms from MESH_T0_MS.
mesh_wait_links() {
    local limit="$1" n last=0 t
    shift
    for n in "$@"; do
        wait_until "$limit" mesh_links_up "$n" || fail "$n: links not all up: $(mr "$n" peers 2>&1)"
    done
    for n in "$@"; do
        t=$(mr "$n" peers --json | python3 -c "
import json, sys
print(int($(now_ms) - 1000 * min(p['uptime'] for p in json.load(sys.stdin)['peers'])))")
        [ "$t" -gt "$last" ] && last=$t
    done
    # shellcheck disable=SC2034
    MESH_LINKS_MS=$((last - MESH_T0_MS))
}

# mesh_stop NAMES...: kills the daemons and everything else in these namespaces and deletes them.
mesh_stop() {
    local n ns pid
    # Reaped here with stderr closed, so bash does not report the daemons "Killed".
    for n in "$@"; do
        ns="$NS_PREFIX$n"
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        [ -f "$MR_DIR/$n.pid" ] && { wait "$(cat "$MR_DIR/$n.pid")" || true; }
        ip netns delete "$ns" || true
    done 2>/dev/null
}

# mesh_ping_pairs "PING OPTIONS" NAMES...: every ordered pair of NAMES pings the other's overlay address
# with these options, all pairs in parallel. Sets MESH_LAST_OK_MS to the time (now_ms) when the last
# successful ping ended; returns 1 and prints the pairs whose ping failed.
mesh_ping_pairs() {
    local opts="$1" a b dir pids=() failed
    shift
    dir=$(mktemp -d "$MR_DIR/ping.XXXXXX")
    for a in "$@"; do
        for b in "$@"; do
            [ "$a" = "$b" ] && continue
            (
                # shellcheck disable=SC2086
                if in_ns "$a" ping -6 -n -q $opts "${MESH_ADDR[$b]}" >/dev/null 2>&1; then
                    now_ms >"$dir/ok.$a.$b"
                else
                    touch "$dir/fail.$a.$b"
                fi
            ) &
            pids+=($!)
        done
    done
    wait "${pids[@]}"
    failed=$(cd "$dir" && find . -name 'fail.*' | sed 's|^\./||' | sort | sed 's/^fail\.//; s/\./->/' | tr '\n' ' ')
    # shellcheck disable=SC2034
    MESH_LAST_OK_MS=0
    if ls "$dir"/ok.* >/dev/null 2>&1; then
        MESH_LAST_OK_MS=$(cat "$dir"/ok.* | sort -n | tail -n 1)
    fi
    if [ -n "$failed" ]; then
        echo "ping $opts failed: $failed" >&2
        return 1
    fi
}

# mesh_ping_all LIMIT NAMES...: every ordered pair, in parallel, pings every 0.2 s until a first reply,
# for at most LIMIT seconds each (see mesh_ping_pairs).
mesh_ping_all() {
    local limit="$1"
    shift
    mesh_ping_pairs "-c 1 -i 0.2 -w $limit" "$@"
}
