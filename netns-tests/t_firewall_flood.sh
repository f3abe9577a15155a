#!/usr/bin/env bash
# The firewall's connection tracking under a SYN flood: c allows TCP 8080 to everyone and tracks at
# most 512 connections; b holds a connection to c:8080 while a sends 20 000 SYNs from random ports
# (raw packets: a's kernel answers c's SYN-ACKs with resets, as a flooder's would). The table must
# stay within its bound, evicting the flood's half-open entries, and b's connection must keep working.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

FLOOD=${FLOOD:-20000}
mesh_node a
mesh_node b
mesh_node c 'firewall.inbound = "deny"
firewall.max_connections = 512
firewall.rule = [ { action = "allow", proto = "tcp", port = 8080 }, { action = "allow", proto = "ping" } ]'
mesh_link c a
mesh_link c b
mesh_start c a b
mesh_wait_links 15 a b c
c_addr=${MESH_ADDR[c]}

PROBE="$(cd "$(dirname "$0")" && pwd)/tcp_probe.py"
in_ns c python3 "$PROBE" serve "$c_addr" 8080 >/dev/null 2>&1 &
sleep 0.5
in_ns b python3 "$PROBE" hold "$c_addr" 8080 >"$MR_DIR/hold.log" 2>&1 &
wait_until 5 grep -q held "$MR_DIR/hold.log" || fail "b could not connect to c:8080"

tracked() {
    mr c firewall --json | python3 -c 'import json,sys; t=json.load(sys.stdin)["connections"]; print(t["tracked"], t["max"], t["evicted"])'
}
in_ns a python3 "$PROBE" flood "$c_addr" 8080 "$FLOOD" >"$MR_DIR/flood.log" 2>&1 &
flood_pid=$!
most=0
while kill -0 "$flood_pid" 2>/dev/null; do
    read -r now max _ < <(tracked)
    [ "$now" -gt "$most" ] && most=$now
    [ "$now" -le "$max" ] || fail "c tracks $now connections, above its bound $max"
    sleep 0.2
done
wait "$flood_pid" || fail "the flood failed: $(cat "$MR_DIR/flood.log")"
read -r sent secs <"$MR_DIR/flood.log"
sleep 1
read -r now max evicted < <(tracked)
[ "$now" -le "$max" ] || fail "c tracks $now connections, above its bound $max"
[ "$evicted" -gt 0 ] || fail "the flood evicted nothing: it did not fill the table"
grep -q stopped "$MR_DIR/hold.log" && fail "b's connection to c:8080 broke during the flood: $(cat "$MR_DIR/hold.log")"
answer=$(in_ns b python3 "$PROBE" try "$c_addr" 8080)
[ "$answer" = open ] || fail "b cannot open a new connection to c:8080 after the flood: $answer"
ping_ok a "$c_addr" || fail "a cannot ping c after the flood"
echo "SYN flood: $sent SYNs in $secs s from random ports; c's table peaked at $most of $max (now $now), $evicted evicted; b's open connection kept echoing and b connects anew"
