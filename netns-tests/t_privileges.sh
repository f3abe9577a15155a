#!/usr/bin/env bash
# Least privilege: one daemon starts as root and drops to `user = "nobody"`, keeping only
# CAP_NET_ADMIN; another never is root: it starts as nobody with only CAP_NET_ADMIN (ambient), under a
# seccomp filter that refuses capset as systemd's unit does, with `user = "nobody"` too. They peer and
# ping each other. A third runs as root without `user`: it keeps only CAP_NET_ADMIN, and under the
# filter, unable to give up the rest, it refuses to run. All of them set no_new_privs.
. "$(dirname "$0")/lib.sh"

ns_add a
ns_add b
ns_add c
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
    set +e # or `(exit "$status")` would end the trap before mr_cleanup when the test failed
    (exit "$status")
    mr_cleanup
}
trap restore_tun EXIT
chmod 666 /dev/net/tun

# no_capset.py CMD...: runs CMD with the capset system call refused (EPERM), as systemd's
# SystemCallFilter=~@privileged does (libseccomp through ctypes; it also sets no_new_privs).
cat >"$MR_DIR/no_capset.py" <<'PY'
import ctypes, errno, os, sys
seccomp = ctypes.CDLL("libseccomp.so.2")
seccomp.seccomp_init.restype = ctypes.c_void_p
allow, refuse = 0x7FFF0000, 0x00050000 | errno.EPERM
ctx = ctypes.c_void_p(seccomp.seccomp_init(ctypes.c_uint32(allow)))
capset = seccomp.seccomp_syscall_resolve_name(b"capset")
assert capset >= 0 and seccomp.seccomp_rule_add(ctx, ctypes.c_uint32(refuse), capset, 0) == 0
assert seccomp.seccomp_load(ctx) == 0
os.execv(sys.argv[1], sys.argv[1:])
PY
chmod 644 "$MR_DIR/no_capset.py"
# The system's python (a per-user one, such as pyenv's under /root, is out of nobody's reach).
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)

# status_field PID FIELD: a field of /proc/PID/status.
status_field() {
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}

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
[ "$(status_field "$pid_a" NoNewPrivs)" = 1 ] || fail "a did not set no_new_privs"
echo "a: uid $uid, CapEff $capeff (CAP_NET_ADMIN only), no_new_privs"

mr_config b <<EOT
peers = ["udp://10.66.0.1:9100"]
api_socket = "$MR_DIR/run/b.sock"
user = "nobody"
group = "$(id -gn 65534)"
EOT
sed -i "0,/^api_socket/{/^api_socket = \".*b.sock\"$/d}" "$MR_DIR/b.toml"
chown nobody "$MR_DIR/b.toml"
MR_NODES+=(b)
ip netns exec "${NS_PREFIX}b" setpriv --reuid=65534 --regid=65534 --clear-groups \
    --inh-caps=+net_admin --ambient-caps=+net_admin \
    "$python" "$MR_DIR/no_capset.py" "$MR_BIN" run --config "$MR_DIR/b.toml" >"$MR_DIR/b.log" 2>&1 &
pid_b=$!
wait_until 5 in_ns b "$MR_BIN" self --socket "$MR_DIR/run/b.sock" || fail "b (unprivileged) did not start"
[ "$(status_field "$pid_b" Uid)" = 65534 ] || fail "b is not nobody"
[ "$(status_field "$pid_b" CapPrm)" = 0000000000001000 ] || fail "b holds $(status_field "$pid_b" CapPrm)"
[ "$(status_field "$pid_b" NoNewPrivs)" = 1 ] || fail "b did not set no_new_privs"
addr_b=$(in_ns b "$MR_BIN" self --socket "$MR_DIR/run/b.sock" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["address"])')
wait_until 10 ping_ok a "$addr_b" || fail "a cannot reach b"
ping_ok b "$(mr_field a address)" || fail "b cannot reach a"
echo "b: started as its configured user nobody with CAP_NET_ADMIN only, capset refused; a and b ping each other"

# c: root without `user` (as `run --autoconf`): only CAP_NET_ADMIN left, uid 0, no_new_privs.
mr_config c </dev/null
mr_start c
pid_c=$(cat "$MR_DIR/c.pid")
[ "$(status_field "$pid_c" Uid)" = 0 ] || fail "c is not root"
[ "$(status_field "$pid_c" CapPrm)" = 0000000000001000 ] &&
    [ "$(status_field "$pid_c" CapEff)" = 0000000000001000 ] ||
    fail "c (root) keeps CapPrm $(status_field "$pid_c" CapPrm), expected only CAP_NET_ADMIN"
[ "$(status_field "$pid_c" NoNewPrivs)" = 1 ] || fail "c did not set no_new_privs"
kill "$pid_c"
wait "$pid_c" 2>/dev/null || true
echo "c: root without user keeps only CAP_NET_ADMIN, no_new_privs"
# The same under a filter that refuses capset: it cannot give up the rest, so it must not run.
status=0
ip netns exec "${NS_PREFIX}c" timeout 10 "$python" "$MR_DIR/no_capset.py" \
    "$MR_BIN" run --config "$MR_DIR/c.toml" >"$MR_DIR/c.log" 2>&1 || status=$?
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || fail "c ran on (status $status) although capset was refused"
grep -q "could not give up capabilities" "$MR_DIR/c.log" &&
    grep -q "needs only CAP_NET_ADMIN" "$MR_DIR/c.log" ||
    fail "c's error does not say what to do: $(cat "$MR_DIR/c.log")"
echo "c: with capset refused, refuses to run (exit $status): $(grep -o 'could not give up[^.]*' "$MR_DIR/c.log")"
