#!/usr/bin/env bash
# The overlay firewall. a and b peer with c; host h sits behind c's /64. c denies inbound by default,
# allows TCP 8080 from b's key only, rejects TCP 8081, allows ICMPv6 echo from everyone, and TCP 443 to
# members with role "medic" in the member registry (a is the mesh's admin). Checked: b reaches h:8080
# and c:8080, a does not (and is told so on 8081); everybody pings; c's own connections to a work both
# ways; a role granted on a opens 443 to b and its revocation closes it (timed); a rule changed with
# SIGHUP applies within 1 s while an iperf3 between allowed peers goes on; relayed traffic is not ours.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

mesh_node a
mesh_node b
admin=$("$MR_BIN" info --config "$MR_DIR/a.toml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["did"])')
b_did=$("$MR_BIN" info --config "$MR_DIR/b.toml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["did"])')
for n in a b; do echo "identity.admins = [\"$admin\"]" >>"$MR_DIR/$n.toml"; done
rules() {
    cat <<EOF
identity.admins = ["$admin"]
firewall.inbound = "deny"
firewall.rule = [
  { action = "allow", proto = "tcp", port = 8080, from = ["${MESH_KEY[b]}"], comment = "b only" },
  { action = "reject", proto = "tcp", port = 8081 },
  { action = "allow", proto = "ping" },
  { action = "allow", proto = "tcp", port = 443, role = "medic" },
  $1
]
EOF
}
mesh_node c "$(rules "")"
mesh_link c a
mesh_link c b

subnet_host() {
    python3 -c "import ipaddress, sys; print(ipaddress.ip_network(sys.argv[1])[int(sys.argv[2])])" "$1" "$2"
}
ns_add h
veth_link c h
gw=$(subnet_host "${MESH_SUBNET[c]}" 1)
h_addr=$(subnet_host "${MESH_SUBNET[c]}" 2)
in_ns c sysctl -qw net.ipv6.conf.all.forwarding=1
in_ns c ip -6 addr add "$gw/64" dev c-h
in_ns h ip -6 addr add "$h_addr/64" dev h-c nodad
in_ns h ip -6 route add default via "$gw" dev h-c
mesh_start c a b
mesh_wait_links 15 a b c
c_addr=${MESH_ADDR[c]}
a_addr=${MESH_ADDR[a]}

# Echo servers and connection probes (tcp_probe.py).
PROBE="$(cd "$(dirname "$0")" && pwd)/tcp_probe.py"
serve() { in_ns "$1" python3 "$PROBE" serve "$2" "$3" >/dev/null 2>&1 & }
try() { in_ns "$1" python3 "$PROBE" try "$2" "$3" "${4:-2}"; }
serve h "$h_addr" 8080
serve c "$c_addr" 8080
serve c "$c_addr" 8081
serve c "$c_addr" 443
serve a "$a_addr" 5000
serve b "${MESH_ADDR[b]}" 9999
sleep 0.5

expect() {
    local got
    got=$(try "$1" "$2" "$3" "${5:-2}")
    [ "$got" = "$4" ] || fail "$1 -> [$2]:$3: $got, expected $4"
}
expect b "$h_addr" 8080 open
expect b "$c_addr" 8080 open
expect a "$h_addr" 8080 timeout
expect a "$c_addr" 8080 timeout
start=$(now_ms)
expect a "$c_addr" 8081 prohibited
echo "b reaches h:8080 and c:8080; a times out on both and is refused on 8081 in $(($(now_ms) - start)) ms (ICMPv6 administratively prohibited)"
# a and b link only to c, so c relays between them: relayed traffic is never filtered.
expect a "${MESH_ADDR[b]}" 9999 open
before=$(mr c firewall --json | python3 -c 'import json,sys; f=json.load(sys.stdin); print(f["inbound"]["packets"] + f["counters"]["established"])')
expect a "${MESH_ADDR[b]}" 9999 open
after=$(mr c firewall --json | python3 -c 'import json,sys; f=json.load(sys.stdin); print(f["inbound"]["packets"] + f["counters"]["established"])')
[ "$before" = "$after" ] || fail "c's firewall judged traffic it only relayed ($before -> $after)"
echo "a reaches b:9999 through c, which relays it unjudged"
for n in a b; do
    for dest in "$c_addr" "$h_addr"; do
        ping_ok "$n" "$dest" || fail "$n cannot ping $dest"
    done
done
expect c "$a_addr" 5000 open
in_ns a iperf3 -s -1 -B "$a_addr" >/dev/null 2>&1 &
sleep 0.3
up=$(in_ns c iperf3 -c "$a_addr" -t 1 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')
in_ns a iperf3 -s -1 -B "$a_addr" >/dev/null 2>&1 &
sleep 0.3
down=$(in_ns c iperf3 -c "$a_addr" -t 1 -R -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')
echo "everybody pings c and h; c's own connections to a work both ways (c->a $up Mbit/s, a->c $down Mbit/s)"
[ "$up" -gt 0 ] && [ "$down" -gt 0 ] || fail "c's own connection to a carried nothing"

# Roles: 443 is for medics. a (the admin) enrolls b's node as a medic, then revokes it.
expect b "$c_addr" 443 timeout 1
start=$(now_ms)
mr a id enroll "$b_did" --role medic >/dev/null || fail "a could not enroll b"
opened=""
for _ in $(seq 100); do
    [ "$(try b "$c_addr" 443 0.5)" = open ] && { opened=$(($(now_ms) - start)); break; }
done
[ -n "$opened" ] || fail "b, enrolled as a medic, never reached c:443"
expect a "$c_addr" 443 timeout 1
echo "role medic: b reaches c:443 $opened ms after a enrolled it (the registry's propagation); a, not a member, does not"
in_ns b python3 "$PROBE" hold "$c_addr" 443 >"$MR_DIR/hold.log" 2>&1 &
hold_pid=$!
wait_until 5 grep -q held "$MR_DIR/hold.log" || fail "b could not hold a connection to c:443"
start_s=$(date +%s.%N)
start=$(now_ms)
mr a id revoke "$b_did" --reason "left the clinic" >/dev/null || fail "a could not revoke b"
closed=""
for _ in $(seq 200); do
    [ "$(try b "$c_addr" 443 0.3)" = timeout ] && { closed=$(($(now_ms) - start)); break; }
done
[ -n "$closed" ] || fail "b still reaches c:443 after its revocation"
wait_until 10 grep -q stopped "$MR_DIR/hold.log" || fail "b's open connection to c:443 survived the revocation"
held_ms=$(python3 -c "import sys; print(int((float(sys.argv[1].split()[1]) - float(sys.argv[2])) * 1000))" "$(grep stopped "$MR_DIR/hold.log")" "$start_s")
kill "$hold_pid" 2>/dev/null || true
echo "revocation on a: b's new connections to c:443 refused after $closed ms, its open one cut after $held_ms ms"

# Reload: an iperf3 from b to c:8080 (allowed) runs while c's rules change (8080 opened to a too).
pkill -f "tcp_probe.py serve $c_addr 8080" || true
sleep 0.2
in_ns c iperf3 -s -1 -p 8080 -B "$c_addr" >/dev/null 2>&1 &
sleep 0.3
in_ns b iperf3 -c "$c_addr" -p 8080 -t 5 -i 0.5 -J >"$MR_DIR/iperf-reload.json" 2>&1 &
iperf_pid=$!
sleep 2
serve c "$c_addr" 8082
python3 - "$MR_DIR/c.toml" "${MESH_KEY[a]}" <<'PY'
import sys
path, key = sys.argv[1], sys.argv[2]
text = open(path).read()
text = text.replace('  { action = "reject", proto = "tcp", port = 8081 },',
                    '  { action = "reject", proto = "tcp", port = 8081 },\n'
                    f'  {{ action = "allow", proto = "tcp", port = 8082, from = ["{key}"] }},')
open(path, "w").write(text)
PY
expect a "$c_addr" 8082 timeout 1
start=$(now_ms)
kill -HUP "$(cat "$MR_DIR/c.pid")"
applied=""
for _ in $(seq 50); do
    [ "$(try a "$c_addr" 8082 0.2)" = open ] && { applied=$(($(now_ms) - start)); break; }
done
[ -n "$applied" ] || fail "the rule added on SIGHUP did not apply"
[ "$applied" -le 1000 ] || fail "the rule added on SIGHUP took $applied ms"
wait "$iperf_pid" || fail "iperf3 b -> c:8080 failed across the reload: $(cat "$MR_DIR/iperf-reload.json")"
read -r mbps zero < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(round(r["end"]["sum_received"]["bits_per_second"] / 1e6), sum(1 for i in r["intervals"] if i["sum"]["bytes"] == 0))' "$MR_DIR/iperf-reload.json")
[ "$zero" = 0 ] || fail "iperf3 stalled across the reload ($zero empty half-second intervals)"
echo "SIGHUP: the new rule applied within $applied ms; iperf3 b -> c:8080 went on ($mbps Mbit/s, no empty interval)"
# A config with an error is refused, the running one stays.
echo "firewall.bogus = 1" >>"$MR_DIR/c.toml"
out=$(mr c reload 2>&1) && fail "a broken config was accepted: $out"
echo "$out" | grep -q "bogus" || fail "the reload error does not name the problem: $out"
expect a "$c_addr" 8082 open

mr c firewall
mr c firewall --json | python3 -c '
import json, sys
f = json.load(sys.stdin)
c = f["counters"]
assert f["rules"][0]["packets"] >= 2, f["rules"][0]
assert c["rejected"] >= 1 and c["denied"] >= 1 and c["revoked"] >= 1, c
print("counters: established %d, allowed %d, denied %d, rejected %d, revoked %d; %d connections tracked"
      % (c["established"], c["allowed"], c["denied"], c["rejected"], c["revoked"], f["connections"]["tracked"]))'
