#!/usr/bin/env bash
# Failing cleanly: a bad config exits 2 with a one-line message naming the place; a second daemon on
# a TUN name or API socket already in use exits with a clear message and leaves the first one working;
# SIGTERM removes the TUN device and the API socket.
. "$(dirname "$0")/lib.sh"

ns_add a
mr_config a </dev/null
mr_config bad <<<'tun_mtu = 100'
set +e
out=$(in_ns a "$MR_BIN" run --config "$MR_DIR/bad.toml" 2>&1)
status=$?
set -e
[ $status -eq 2 ] || fail "bad config: exit $status, expected 2 ($out)"
echo "$out" | grep -q "bad.toml:[0-9]*:[0-9]*: tun_mtu: must be 1280 to 9000" || fail "unclear message: $out"
[ "$(echo "$out" | wc -l)" -eq 1 ] || fail "message is not one line: $out"
echo "bad config: exit 2, \"$out\""

mr_start a
# Same TUN name, another API socket.
mr_config a2 <<<''
set +e
out=$(in_ns a timeout 10 "$MR_BIN" run --config "$MR_DIR/a2.toml" 2>&1)
status=$?
set -e
[ $status -eq 1 ] || fail "second daemon on the same TUN: exit $status ($out)"
echo "$out" | grep -q "TUN device meshrouter0: already in use" || fail "unclear message: $out"
echo "same TUN name: exit 1, \"$(echo "$out" | tail -1)\""
# Same API socket, another TUN name.
mr_config a3 <<<'tun_name = "mr1"'
sed -i "s|a3.sock|a.sock|" "$MR_DIR/a3.toml"
set +e
out=$(in_ns a timeout 10 "$MR_BIN" run --config "$MR_DIR/a3.toml" 2>&1)
status=$?
set -e
[ $status -eq 1 ] || fail "second daemon on the same socket: exit $status ($out)"
echo "$out" | grep -q "another meshrouter is already serving it" || fail "unclear message: $out"
echo "same API socket: exit 1, \"$(echo "$out" | tail -1)\""
in_ns a ip link show mr1 >/dev/null 2>&1 && fail "the failed daemon left its TUN device behind"
mr a self >/dev/null || fail "the first daemon stopped answering"

# Clean stop.
kill -TERM "$(cat "$MR_DIR/a.pid")"
wait_until 5 bash -c "! kill -0 $(cat "$MR_DIR/a.pid") 2>/dev/null" || fail "SIGTERM did not stop the daemon"
in_ns a ip link show meshrouter0 >/dev/null 2>&1 && fail "TUN device left behind"
[ ! -e "$MR_DIR/a.sock" ] || fail "API socket left behind"
grep -q "SIGTERM: stopping" "$MR_DIR/a.log" || fail "no log line for the stop"
echo "SIGTERM: TUN device and API socket removed"
