#!/usr/bin/env bash
# Runs every netns-tests/t_*.sh scenario (as root), prints one line per scenario and a closing
# "netns: N passed, M failed" line, and exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" -ne 0 ]; then
    echo "netns-tests need root (network namespaces, veth, TUN)" >&2
    exit 1
fi
if [ ! -x ../target/release/meshrouter ] && [ -z "${MR_BIN:-}" ]; then
    echo "== building the daemon (cargo build --release)"
    (cd .. && cargo build --release --bin meshrouter --quiet) || exit 1
fi
passed=0
failed=0
for t in t_*.sh; do
    start=$(date +%s%N)
    # A test killed by the timeout cannot clean up; its namespaces carry this prefix, so we can.
    export MR_NS_PREFIX="mrt$$-$((passed + failed))-"
    log=$(timeout -k 5 300 bash "$t" 2>&1)
    status=$?
    for ns in $(ip netns list | awk '{print $1}' | grep "^$MR_NS_PREFIX"); do
        for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; done
        ip netns delete "$ns" 2>/dev/null
    done
    if [ "$status" -eq 0 ]; then
        passed=$((passed + 1))
        printf 'ok    %-32s %6d ms\n' "$t" $((($(date +%s%N) - start) / 1000000))
    else
        failed=$((failed + 1))
        printf 'FAIL  %s\n' "$t"
        printf '%s\n' "$log" | sed 's/^/      /'
    fi
done
echo "netns: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
