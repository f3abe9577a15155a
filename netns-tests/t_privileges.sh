#!/usr/bin/env bash
# Least privilege: one daemon starts as root and drops to `user = "nobody"`, keeping only
# CAP_NET_ADMIN; another never is root: it starts as nobody with only CAP_NET_ADMIN (ambient). They
# peer and ping each other.
. "$(dirname "$0")/lib.sh"

ns_add a
ns_add b
veth_link a b
in_ns a ip addr add 10.66.0.1/24 dev a-b
in_ns b ip addr add 10.66.0.2/24 dev b-a
chmod 755 "$MR_DIR"
mkdir "$MR_DIR/run" && chown nobody "$MR_DIR/run"
# Debian makes /dev/net/tun 0666; some containers make it 0600. Open it up for this test only.
tun_mode=$(stat -c %a /dev/net/tun)
restore_tun() {
    local status=$?
    chmod "$tun_mode" /dev/net/tun
    (exit "$status")
    mr_cleanup
}
trap restore_tun EXIT
chmod 666 /dev/net/tun

group=$(id -gn nobody)
mr_config a <<EOT
listen = ["udp://0.0.0.0:9100"]
user = "nobody"
api_group = "$group"
EOT
mr_start a
[ "$(stat -c '%a %U %G' "$MR_DIR/a.sock")" = "660 root $group" ] ||
    fail "API socket is $(stat -c '%a %U %G' "$MR_DIR/a.sock"), expected 660 root $group"
in_ns a setpriv --reuid=65534 --regid="$(id -g nobody)" --clear-groups "$MR_BIN" self \
    --socket "$MR_DIR/a.sock" >/dev/null || fail "a member of api_group cannot use the API"
echo "a: API socket 660 root:$group, usable by that group's members"
pid_a=$(cat "$MR_DIR/a.pid")
uid=$(awk '/^Uid:/ {print $2}' /proc/$pid_a/status)
capeff=$(awk '/^CapEff:/ {print $2}' /proc/$pid_a/status)
capprm=$(awk '/^CapPrm:/ {print $2}' /proc/$pid_a/status)
[ "$uid" = 65534 ] || fail "a runs as uid $uid, expected nobody"
# CAP_NET_ADMIN is bit 12.
[ "$capeff" = 0000000000001000 ] && [ "$capprm" = 0000000000001000 ] ||
    fail "a keeps capabilities eff=$capeff prm=$capprm, expected only CAP_NET_ADMIN"
echo "a: uid $uid, CapEff $capeff (CAP_NET_ADMIN only)"

mr_config b <<EOT
peers = ["udp://10.66.0.1:9100"]
api_socket = "$MR_DIR/run/b.sock"
EOT
sed -i "0,/^api_socket/{/^api_socket = \".*b.sock\"$/d}" "$MR_DIR/b.toml"
chown nobody "$MR_DIR/b.toml"
MR_NODES+=(b)
ip netns exec "${NS_PREFIX}b" setpriv --reuid=65534 --regid=65534 --clear-groups \
    --inh-caps=+net_admin --ambient-caps=+net_admin \
    "$MR_BIN" run --config "$MR_DIR/b.toml" >"$MR_DIR/b.log" 2>&1 &
pid_b=$!
wait_until 5 in_ns b "$MR_BIN" self --socket "$MR_DIR/run/b.sock" || fail "b (unprivileged) did not start"
[ "$(awk '/^Uid:/ {print $2}' /proc/$pid_b/status)" = 65534 ] || fail "b is not nobody"
addr_b=$(in_ns b "$MR_BIN" self --socket "$MR_DIR/run/b.sock" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["address"])')
wait_until 10 ping_ok a "$addr_b" || fail "a cannot reach b"
ping_ok b "$(mr_field a address)" || fail "b cannot reach a"
echo "b: started as nobody with CAP_NET_ADMIN only; a and b ping each other"
