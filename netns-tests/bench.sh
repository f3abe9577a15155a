#!/usr/bin/env bash
# Benchmark: meshrouter and the reference Yggdrasil (0.5) side by side, in network namespaces, as root.
# Not a test (not a t_*.sh, so netns-tests/run.sh and CI never run it); its numbers depend on the machine.
#
# For each router and topology ("two": a-b on one veth; "line": a-b-c, b relays) it measures, from a to
# the last node, over the overlay:
#   - iperf3 TCP throughput, 1 stream and 4 streams (-P 4);
#   - iperf3 UDP, 1232-byte datagrams (a full 1280-byte IPv6 packet) sent as fast as possible
#     (-b 0): packets/s received and loss;
#   - ping6 RTT p50/p99, idle (100 pings, 20 ms apart) and under load (the same pings while the 1-stream
#     TCP test runs);
#   - CPU seconds per GB carried: utime+stime of all the router daemons during the 1-stream TCP test,
#     divided by the GB iperf3 received;
#   - RSS of the daemons idle (peered, before the throughput tests) and the largest under load (sampled
#     every 0.2 s during the TCP tests).
# Only one router runs at a time; every namespace (named mr<pid>-<node>, see lib.sh) is deleted at exit.
# Each topology is measured --repeat times (default 3) with the routers taking turns (meshrouter,
# yggdrasil, meshrouter, ...), and every figure reported is the median of its repetitions: a shared
# machine's speed drifts by tens of percent within minutes, and alternating keeps that drift out of
# the ratios. The JSON keeps every repetition's figures.
#
# Prints a table per topology (meshrouter, yggdrasil, ratio meshrouter/yggdrasil) and writes
# OUT/bench-results.json (all raw numbers, the machine and the versions) and OUT/bench-chart.svg (TCP
# throughput), OUT being docs/ unless --out says otherwise.
#
# Usage: netns-tests/bench.sh [options]
#   --duration S          seconds of each iperf3 test (default 5)
#   --mtu N               TUN MTU of both routers (default: each router's own default, meshrouter 1280,
#                         yggdrasil 65535); meshrouter accepts 1280..65535
#   --both-mtus           run each router at its default MTU and at the --mtu value (1280 if not given)
#   --routers LIST        comma-separated, of meshrouter,yggdrasil (default both)
#   --link KIND           udp (default: meshrouter over udp://, yggdrasil over its usual tcp://),
#                         tcp (both over tcp://), or tls: both over tls:// on TCP port 443, with
#                         nftables dropping UDP and every other TCP port on the veths (an uplink that
#                         lets out only HTTPS)
#   --topos LIST          comma-separated, of two,line (default both)
#   --pings N             pings per RTT measurement (default 100, 20 ms apart)
#   --repeat N            measurements of each router and topology, alternating routers; figures are
#                         their medians (default 3)
#   --out DIR             where bench-results.json and bench-chart.svg go (default docs/)
#   --firewall            meshrouter with its firewall on every node: inbound denied by default, 10
#                         rules (the last ones allow the iperf3 port and ping), to measure its cost
#   --raw DIR             also keep the raw outputs (iperf3 JSON, ping output, samples, logs) in DIR
#   --install-yggdrasil   if yggdrasil 0.5 is missing, install it (and iperf3) from Debian's packages
#                         with netns-tests/install-yggdrasil.sh; without it, the yggdrasil column is
#                         skipped with a note
# The default run (both routers, both topologies, 5 s tests, 3 repetitions) takes about 5 minutes;
# --both-mtus about 8.

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

usage() { sed -n '/^# Usage:/,/^# The default run/p' "$0" | sed 's/^# \{0,1\}//'; }

ORIG_ARGS="$*"
duration=5 mtu="" both_mtus=0 routers="meshrouter,yggdrasil" topos="two,line" pings=100 repeat=3
out="$ROOT/docs" install_ygg=0 raw="" link=udp firewall=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --mtu) mtu="$2"; shift 2 ;;
        --both-mtus) both_mtus=1; shift ;;
        --routers) routers="$2"; shift 2 ;;
        --topos) topos="$2"; shift 2 ;;
        --link) link="$2"; shift 2 ;;
        --pings) pings="$2"; shift 2 ;;
        --repeat) repeat="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --install-yggdrasil) install_ygg=1; shift ;;
        --raw) raw="$2"; shift 2 ;;
        --firewall) firewall=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
int_ok() { [[ "$1" =~ ^[0-9]+$ ]]; }
if ! int_ok "$duration" || [ "$duration" -lt 1 ]; then
    echo "--duration must be a whole number of seconds >= 1" >&2
    exit 2
fi
if ! int_ok "$pings" || [ "$pings" -lt 1 ]; then
    echo "--pings must be >= 1" >&2
    exit 2
fi
if ! int_ok "$repeat" || [ "$repeat" -lt 1 ] || [ "$repeat" -gt 20 ]; then
    echo "--repeat must be 1..20" >&2
    exit 2
fi
if [ -n "$mtu" ] && { ! int_ok "$mtu" || [ "$mtu" -lt 1280 ] || [ "$mtu" -gt 65535 ]; }; then
    echo "--mtu must be 1280..65535" >&2
    exit 2
fi
IFS=, read -r -a ROUTERS <<<"$routers"
IFS=, read -r -a TOPOS <<<"$topos"
for r in "${ROUTERS[@]}"; do
    case "$r" in meshrouter | yggdrasil) ;; *) echo "unknown router: $r" >&2; exit 2 ;; esac
done
for t in "${TOPOS[@]}"; do
    case "$t" in two | line) ;; *) echo "unknown topology: $t" >&2; exit 2 ;; esac
done
case "$link" in udp | tcp | tls) ;; *) echo "--link must be udp, tcp or tls" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
    echo "bench.sh needs root (network namespaces, veth, TUN)" >&2
    exit 1
fi
for tool in iperf3 ping ip python3 ss; do
    command -v "$tool" >/dev/null || { echo "bench.sh needs $tool" >&2; exit 1; }
done
if [ "$link" = tls ] && ! command -v nft >/dev/null; then
    echo "== installing nftables (for --link tls)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null || { echo "bench.sh --link tls needs nft" >&2; exit 1; }
fi
if [ ! -x "$ROOT/target/release/meshrouter" ] && [ -z "${MR_BIN:-}" ]; then
    echo "== building the daemon (cargo build --release)"
    (cd "$ROOT" && cargo build --release --bin meshrouter --quiet) || exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

. "$HERE/lib.sh"
. "$HERE/mesh_lib.sh"
# On ^C or SIGTERM: stop the run under way, then exit, so that the EXIT trap deletes the namespaces.
RUN_PID=
trap '[ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null; exit 130' INT
trap '[ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null; exit 143' TERM

NOTES=()
note() { NOTES+=("$*"); echo "note: $*"; }
if [ "$link" = tls ]; then
    note "links: tls:// on TCP port 443 for both routers; nftables drops UDP and all other TCP ports on the veths"
    MESH_SCHEME=tls MESH_PORT=443 MESH_LISTEN=tls://0.0.0.0:443
    ygg_port=443
elif [ "$link" = tcp ]; then
    note "links: tcp:// for both routers"
    MESH_SCHEME=tcp MESH_PORT=9100 MESH_LISTEN=tcp://0.0.0.0:9100
fi

# ---- yggdrasil availability -------------------------------------------------------------------------
ygg_ok() { yggdrasil -version 2>/dev/null | grep -q 'Build version: *0\.5'; }
YGG=0
if [[ " ${ROUTERS[*]} " == *" yggdrasil "* ]]; then
    if ygg_ok; then
        YGG=1
    elif [ "$install_ygg" = 1 ]; then
        echo "== installing yggdrasil (netns-tests/install-yggdrasil.sh)"
        if bash "$HERE/install-yggdrasil.sh" && ygg_ok; then YGG=1; else note "yggdrasil could not be installed: its column is skipped"; fi
    else
        note "yggdrasil 0.5 is not installed: its column is skipped (run with --install-yggdrasil to install it from Debian's bookworm-backports)"
    fi
    if [ "$YGG" = 1 ] && pgrep -x yggdrasil >/dev/null; then
        note "a yggdrasil process outside this benchmark is running (e.g. the packaged service); it competes for CPU"
    fi
fi
if pgrep -x meshrouter >/dev/null; then
    note "a meshrouter process outside this benchmark is running; it competes for CPU"
fi

# ---- MTU settings -------------------------------------------------------------------------------------
# A setting is "default" (each router's own default) or a number (both routers).
SETTINGS=()
if [ "$both_mtus" = 1 ]; then
    SETTINGS=(default "${mtu:-1280}")
elif [ -n "$mtu" ]; then
    SETTINGS=("$mtu")
else
    SETTINGS=(default)
fi
# eff_mtu ROUTER SETTING: the TUN MTU that router gets under that setting.
eff_mtu() {
    local r="$1" s="$2"
    if [ "$s" = default ]; then
        [ "$r" = meshrouter ] && echo 1280 || echo 65535
    else
        echo "$s"
    fi
}

# ---- one measurement --------------------------------------------------------------------------------
exec 3>&1 # progress lines of the runs (whose own output goes to their run.log)
say() { echo "$*" >&3; }

clk_tck=$(getconf CLK_TCK)
ygg_port=${ygg_port:-7000}
ygg_scheme=tcp
[ "$link" = tls ] && ygg_scheme=tls

# only_https NODE: on NODE's veths (a-b, b-a, b-c, c-b), drops UDP and TCP other than port 443, in
# either direction; the overlay's own TUN traffic is left alone.
only_https() {
    in_ns "$1" nft -f - <<'NFT'
table inet only_https {
    # Accept rules first: nftables 1.0.6 merges "tcp sport != 443 tcp dport != 443" into one wrong
    # 4-byte comparison.
    chain input {
        type filter hook input priority 0; policy accept;
        iifname { "a-b", "b-a", "b-c", "c-b" } tcp dport 443 accept
        iifname { "a-b", "b-a", "b-c", "c-b" } tcp sport 443 accept
        iifname { "a-b", "b-a", "b-c", "c-b" } meta l4proto { tcp, udp } counter drop
    }
    chain output {
        type filter hook output priority 0; policy accept;
        oifname { "a-b", "b-a", "b-c", "c-b" } tcp dport 443 accept
        oifname { "a-b", "b-a", "b-c", "c-b" } tcp sport 443 accept
        oifname { "a-b", "b-a", "b-c", "c-b" } meta l4proto { tcp, udp } counter drop
    }
}
NFT
}

# rss_kib PID: VmRSS of PID in KiB (empty if it is gone).
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
# cpu_ticks PID: "utime stime" of PID (all its threads), in clock ticks.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12, $13}'; }

# ygg_config NODE MTU PEER: writes $MR_DIR/NODE.json, listening on TCP $ygg_port on every address of the
# namespace, peering to PEER (a URI, or nothing), no multicast discovery, admin socket in $MR_DIR.
ygg_config() {
    yggdrasil -genconf -json | python3 -c '
import json, sys
c = json.load(sys.stdin)
c["MulticastInterfaces"] = []
c["IfName"] = "ygg0"
c["IfMTU"] = int(sys.argv[1])
c["Listen"] = [sys.argv[5] + "://0.0.0.0:" + sys.argv[2]]
c["Peers"] = [p for p in sys.argv[3:4] if p]
c["AdminListen"] = "unix://" + sys.argv[4]
json.dump(c, sys.stdout, indent=1)' "$2" "$ygg_port" "$3" "$MR_DIR/$1.ygg.sock" "$ygg_scheme" >"$MR_DIR/$1.json"
    chmod 600 "$MR_DIR/$1.json"
}

# run_one ROUTER TOPO MTU DIR: builds the topology, runs every measurement and leaves the raw results in
# DIR (meta.txt, ping_*.txt, tcp1.json, tcp4.json, udp.json, cpu_*.txt, rss_*.txt). Runs in a subshell:
# any failure ends only this run.
run_one() {
    local router="$1" topo="$2" tun_mtu="$3" dir="$4"
    local nodes=(a b) n src dst src_addr dst_addr t0 count me=$BASHPID
    [ "$topo" = line ] && nodes=(a b c)
    src=a dst=${nodes[-1]}
    declare -A PID=()
    meta() { echo "$1=$2" >>"$dir/meta.txt"; }
    meta nodes "${nodes[*]}"
    meta src "$src"
    meta dst "$dst"

    t0=$(now_ms)
    if [ "$router" = meshrouter ]; then
        fw=""
        if [ "$firewall" = 1 ]; then
            # Ten rules, the matching ones last, so a new flow is tried against all of them.
            fw=$'firewall.inbound = "deny"\nfirewall.rule = ['
            for p in 22 25 53 80 110 143 443; do fw+="{ action = \"allow\", proto = \"tcp\", port = $p, from = [\"200:1::/64\"] }, "; done
            fw+='{ action = "allow", proto = "tcp", port = 5201 }, { action = "allow", proto = "udp", port = 5201 }, { action = "allow", proto = "ping" } ]'
        fi
        for n in "${nodes[@]}"; do mesh_node "$n" "tun_mtu = $tun_mtu"$'\n'"$fw"; done
        mesh_link a b
        [ "$topo" = line ] && mesh_link b c
        if [ "$link" = tls ]; then for n in "${nodes[@]}"; do only_https "$n"; done; fi
        mesh_start "${nodes[@]}"
        for n in "${nodes[@]}"; do PID[$n]=$(cat "$MR_DIR/$n.pid"); done
        dst_addr=${MESH_ADDR[$dst]} src_addr=${MESH_ADDR[$src]}
        mesh_wait_links 15 "${nodes[@]}"
    else
        for n in "${nodes[@]}"; do ns_add "$n"; MESH_DEGREE[$n]=0; done
        mesh_veth a b
        ygg_config a "$tun_mtu" ""
        ygg_config b "$tun_mtu" "$ygg_scheme://${MESH_IP[a-b]}:$ygg_port"
        if [ "$topo" = line ]; then
            mesh_veth b c
            ygg_config c "$tun_mtu" "$ygg_scheme://${MESH_IP[b-c]}:$ygg_port"
        fi
        if [ "$link" = tls ]; then for n in "${nodes[@]}"; do only_https "$n"; done; fi
        for n in "${nodes[@]}"; do
            ip netns exec "$NS_PREFIX$n" yggdrasil -useconffile "$MR_DIR/$n.json" -logto stdout >>"$MR_DIR/$n.log" 2>&1 &
            PID[$n]=$!
            echo "${PID[$n]}" >"$MR_DIR/$n.pid"
        done
        # Yggdrasil's address follows from its key alone, so the config tells it without asking the daemon.
        dst_addr=$(yggdrasil -useconffile "$MR_DIR/$dst.json" -address)
        src_addr=$(yggdrasil -useconffile "$MR_DIR/$src.json" -address)
    fi
    meta dst_addr "$dst_addr"
    meta src_addr "$src_addr"
    for n in "${nodes[@]}"; do meta "pid_$n" "${PID[$n]}"; done
    # Yggdrasil 0.5 sometimes never answers a->c in the line (a holds a path to c, but no session comes
    # up) until c sends to a once; so after 10 s of silence, one ping the other way, noted in the results.
    if ! wait_until 10 ping_ok "$src" "$dst_addr"; then
        meta nudged "no answer $src->$dst within 10 s; pinged $dst->$src once, then waited again"
        ping_ok "$dst" "$src_addr" || true
        wait_until 20 ping_ok "$src" "$dst_addr" || fail "$src cannot reach $dst ($dst_addr) within 30 s"
    fi
    meta setup_ms $(($(now_ms) - t0))
    meta tun_dev "$(in_ns "$src" ip -6 route get "$dst_addr" | sed -n 's/.* dev \([^ ]*\).*/\1/p')"

    sleep 1
    for n in "${nodes[@]}"; do echo "$n $(rss_kib "${PID[$n]}")"; done >"$dir/rss_idle.txt"

    in_ns "$dst" iperf3 -s -B "$dst_addr" >"$dir/iperf3-server.log" 2>&1 &
    wait_until 5 eval "in_ns $dst ss -Hltn 'sport = :5201' | grep -q ." || fail "iperf3 server did not start"

    say "   ping idle ($pings x 20 ms)"
    in_ns "$src" ping -6 -n -c "$pings" -i 0.02 -W 1 "$dst_addr" >"$dir/ping_idle.txt" 2>&1 || true

    # RSS of every daemon every 0.2 s, through all the TCP tests.
    (
        while kill -0 "$me" 2>/dev/null; do # ends with this run, however it ends
            t=$(now_ms)
            for n in "${nodes[@]}"; do echo "$t $n $(rss_kib "${PID[$n]}")"; done
            sleep 0.2
        done
    ) >"$dir/rss_load.txt" 2>/dev/null &
    local sampler=$!

    say "   TCP 1 stream, ${duration} s (with ping under load)"
    for n in "${nodes[@]}"; do echo "$n $(cpu_ticks "${PID[$n]}")"; done >"$dir/cpu_before.txt"
    meta cpu_t0_ms "$(now_ms)"
    timeout $((duration + 30)) ip netns exec "$NS_PREFIX$src" iperf3 -c "$dst_addr" -t "$duration" -J >"$dir/tcp1.json" 2>"$dir/tcp1.err" &
    local client=$!
    # Pings under load: start once TCP is past its slow start (1 s in, less in short tests), end before
    # the transfer does.
    local delay_ms=1000
    [ "$duration" -lt 3 ] && delay_ms=$((duration * 250))
    count=$(((duration * 1000 - delay_ms - 500) / 20))
    [ "$count" -gt "$pings" ] && count=$pings
    [ "$count" -lt 5 ] && count=5
    meta load_ping_count "$count"
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    in_ns "$src" ping -6 -n -c "$count" -i 0.02 -W 1 "$dst_addr" >"$dir/ping_load.txt" 2>&1 || true
    wait "$client" || say "   (iperf3 TCP 1 stream failed: $(head -c 300 "$dir/tcp1.err"))"
    for n in "${nodes[@]}"; do echo "$n $(cpu_ticks "${PID[$n]}")"; done >"$dir/cpu_after.txt"
    meta cpu_t1_ms "$(now_ms)"

    sleep 1
    say "   TCP 4 streams, ${duration} s"
    timeout $((duration + 30)) ip netns exec "$NS_PREFIX$src" iperf3 -c "$dst_addr" -t "$duration" -P 4 -J >"$dir/tcp4.json" 2>"$dir/tcp4.err" ||
        say "   (iperf3 TCP 4 streams failed)"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true

    sleep 1
    say "   UDP 1232-byte datagrams, unlimited rate, ${duration} s"
    timeout $((duration + 30)) ip netns exec "$NS_PREFIX$src" iperf3 -c "$dst_addr" -t "$duration" -u -l 1232 -b 0 -J >"$dir/udp.json" 2>"$dir/udp.err" ||
        say "   (iperf3 UDP failed)"
    if [ "$router" = meshrouter ]; then
        for n in "${nodes[@]}"; do
            { echo "--- $n"; mr "$n" counters 2>&1 || true; } >>"$dir/counters.txt"
        done
    fi
    meta status ok
}

# teardown NODES...: kills everything in the namespaces of the last run and deletes them.
teardown() {
    local n pid
    for n in "$@"; do
        for pid in $(ip netns pids "$NS_PREFIX$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns delete "$NS_PREFIX$n" 2>/dev/null || true
    done
}
# Registered now, so lib.sh's exit trap deletes them even if a run is cut short.
NS_CREATED+=("${NS_PREFIX}a" "${NS_PREFIX}b" "${NS_PREFIX}c")

WORK="$MR_DIR/bench"
mkdir -p "$WORK"
declare -A MEASURED=() # "router/topo/mtu" -> run dir already measured
START=$(date +%s)
for s in "${SETTINGS[@]}"; do
    for topo in "${TOPOS[@]}"; do
        for rep in $(seq "$repeat"); do
            for router in "${ROUTERS[@]}"; do
                dir="$WORK/$s/$router/$topo/$rep"
                mkdir -p "$dir"
                m=$(eff_mtu "$router" "$s")
                printf 'router=%s\ntopology=%s\nsetting=%s\ntun_mtu=%s\n' "$router" "$topo" "$s" "$m" >"$dir/meta.txt"
                if [ "$router" = yggdrasil ] && [ "$YGG" = 0 ]; then
                    printf 'status=skipped\nreason=yggdrasil 0.5 not installed\n' >>"$dir/meta.txt"
                    continue
                fi
                key="$router/$topo/$m/$rep"
                if [ -n "${MEASURED[$key]:-}" ]; then
                    say "== $router, $topo, TUN MTU $m, repetition $rep: same as measured above, reused"
                    grep -v '^\(router\|topology\|setting\|tun_mtu\)=' "${MEASURED[$key]}/meta.txt" >>"$dir/meta.txt"
                    find "${MEASURED[$key]}" -maxdepth 1 -type f ! -name meta.txt -exec cp {} "$dir/" \;
                    echo "reused_from=${MEASURED[$key]#"$WORK/"}" >>"$dir/meta.txt"
                    continue
                fi
                say "== $router, $topo, TUN MTU $m, repetition $rep of $repeat"
                t=$(date +%s)
                # In the background and waited for, so that errexit holds inside (it would not in an if).
                rc=0
                (run_one "$router" "$topo" "$m" "$dir") >"$dir/run.log" 2>&1 &
                RUN_PID=$!
                wait "$RUN_PID" || rc=$?
                RUN_PID=
                if [ "$rc" = 0 ]; then
                    MEASURED[$key]=$dir
                else
                    printf 'status=failed\nreason=%s\n' "$(grep -m1 '^FAIL' "$dir/run.log" || tail -n 1 "$dir/run.log")" >>"$dir/meta.txt"
                    say "   FAILED; end of its log:"
                    tail -n 15 "$dir/run.log" | sed 's/^/      /' >&3
                    for n in a b c; do
                        [ -f "$MR_DIR/$n.log" ] && { say "   --- daemon log of $n"; tail -n 10 "$MR_DIR/$n.log" | sed 's/^/      /' >&3; }
                    done
                fi
                teardown a b c
                for n in a b c; do [ -f "$MR_DIR/$n.log" ] && mv "$MR_DIR/$n.log" "$dir/daemon-$n.log"; done
                say "   ($(($(date +%s) - t)) s)"
            done
        done
    done
done
ELAPSED=$(($(date +%s) - START))

notes_file="$WORK/notes.txt"
printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}" >"$notes_file"
status=0
python3 "$HERE/bench_report.py" --work "$WORK" --out "$out" --duration "$duration" --pings "$pings" --repeat "$repeat" \
    --settings "${SETTINGS[*]}" --routers "${ROUTERS[*]}" --topos "${TOPOS[*]}" --clk-tck "$clk_tck" \
    --mr-bin "$MR_BIN" --notes "$notes_file" --elapsed "$ELAPSED" --command "$0 $ORIG_ARGS" || status=$?
if [ -n "$raw" ]; then
    mkdir -p "$raw"
    cp -r "$WORK"/. "$raw"/
    echo "raw outputs: $raw"
fi
exit "$status"
