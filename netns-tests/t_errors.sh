#!/usr/bin/env bash
# Failing cleanly: a bad config exits 2 with a one-line message naming the place; a second daemon on
# a TUN name or API socket already in use exits with a clear message and leaves the first one working;
# SIGTERM removes the TUN device and the API socket.
. "$(dirname "$0")/lib.sh"

ns_add a

# expect_failure CONFIG STATUS PATTERN WHAT: runs a daemon in namespace a with $MR_DIR/CONFIG.toml and
# checks that it exits with STATUS and a last line matching PATTERN.
expect_failure() {
    local out status
    set +e
    out=$(in_ns a timeout 10 "$MR_BIN" run --config "$MR_DIR/$1.toml" 2>&1)
    status=$?
    set -e
    [ "$status" -eq "$2" ] || fail "$4: exit $status, expected $2 ($out)"
    echo "$out" | tail -1 | grep -q "$3" || fail "$4: unclear message: $out"
    echo "$4: exit $status, \"$(echo "$out" | tail -1)\""
}

mr_config a </dev/null
mr_config bad <<<'tun_mtu = 100'
expect_failure bad 2 "bad.toml:[0-9]*:[0-9]*: tun_mtu: must be 1280 to 65535" "bad config"
[ "$(in_ns a "$MR_BIN" run --config "$MR_DIR/bad.toml" 2>&1 | wc -l)" -eq 1 ] ||
    fail "the bad-config message is not one line"

mr_start a
mr_config a2 <<<''
expect_failure a2 1 "TUN device meshrouter0: already in use" "same TUN name"
mr_config a3 <<<'tun_name = "mr1"'
sed -i "s|a3.sock|a.sock|" "$MR_DIR/a3.toml"
expect_failure a3 1 "another meshrouter is already serving it" "same API socket"
in_ns a ip link show mr1 >/dev/null 2>&1 && fail "the failed daemon left its TUN device behind"
mr a self >/dev/null || fail "the first daemon stopped answering"

# Clean stop.
kill -TERM "$(cat "$MR_DIR/a.pid")"
wait_until 5 bash -c "! kill -0 $(cat "$MR_DIR/a.pid") 2>/dev/null" || fail "SIGTERM did not stop the daemon"
in_ns a ip link show meshrouter0 >/dev/null 2>&1 && fail "TUN device left behind"
[ ! -e "$MR_DIR/a.sock" ] || fail "API socket left behind"
grep -q "SIGTERM: stopping" "$MR_DIR/a.log" || fail "no log line for the stop"
echo "SIGTERM: TUN device and API socket removed"
