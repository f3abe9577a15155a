#!/usr/bin/env bash
# Mesh names under conflict (issue 22). Line s - a - b - c, and t, whose link to a is down at first. c
# claims "server" (name = "server" in its config). Then a - b is cut; s, on a's side and knowing c's
# claim, claims "server" too; t, alone, claims it without knowing c's. Checked: server.mesh is c on
# every node that knows c's claim, before and after the cut heals and t joins (s's claim is reachable as
# server.<s's key prefix>.mesh); c releases the name and another owner's claim takes it on every node;
# c claims it again and does not get it back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

mesh_node s
mesh_node a
mesh_node b
mesh_node c 'name = "server"'
mesh_node t
mesh_link a s
mesh_link a b
mesh_link b c
mesh_link a t
in_ns t ip link set t-a down
mesh_start s a b c t

# resolve NODE NAME: the address NAME resolves to on NODE (empty if none).
resolve() { mr "$1" resolve "$2" 2>/dev/null || true; }
# all_resolve NAME ADDRESS NODES...: NAME is ADDRESS on each of NODES.
all_resolve() {
    local name="$1" want="$2" n
    shift 2
    for n in "$@"; do [ "$(resolve "$n" "$name")" = "$want" ] || return 1; done
}
c_addr=${MESH_ADDR[c]}
start=$(now_ms)
wait_until 20 all_resolve server.mesh "$c_addr" s a b c || fail "server.mesh is not c everywhere: s $(resolve s server.mesh), a $(resolve a server.mesh), b $(resolve b server.mesh)"
echo "c's claim on server.mesh known on s, a, b, c $(($(now_ms) - start)) ms after start"

# The cut: s and a on one side, b and c on the other.
in_ns a ip link set a-b down
in_ns b ip link set b-a down
mr s names claim server >/dev/null || fail "s could not claim"
mr t names claim server >/dev/null || fail "t could not claim"
s_prefix=${MESH_KEY[s]:0:16}
wait_until 5 all_resolve "server.$s_prefix.mesh" "${MESH_ADDR[s]}" s a || fail "s's claim did not reach a"
for n in s a b c; do
    [ "$(resolve $n server.mesh)" = "$c_addr" ] || fail "during the cut, server.mesh on $n is $(resolve $n server.mesh), not c"
done
[ "$(resolve t server.mesh)" = "${MESH_ADDR[t]}" ] || fail "t, alone, does not see its own claim"
echo "cut: s claimed server (knowing c's claim): server.mesh stays c on s, a, b, c; s is server.$s_prefix.mesh"

in_ns a ip link set a-b up
in_ns b ip link set b-a up
in_ns t ip link set t-a up
in_ns a ip link set a-t up
heal=$(now_ms)
wait_until 30 all_resolve "server.$s_prefix.mesh" "${MESH_ADDR[s]}" b c t || fail "s's claim did not cross the healed cut"
wait_until 10 all_resolve server.mesh "$c_addr" s a b c t || fail "after healing server.mesh is not c everywhere (t: $(resolve t server.mesh))"
echo "healed: every node (t too, whose own claim came later) resolves server.mesh to c, $(($(now_ms) - heal)) ms after healing"
mr a names --json | python3 -c '
import json, sys
claims = [c for l in json.load(sys.stdin)["names"] if l["label"] == "server" for c in l["claims"]]
assert len(claims) == 3 and sum(c["holds"] for c in claims) == 1, claims
print("claims on server:", ", ".join(c["name"] for c in claims))'

# Released: the next claim holds the name, the same on every node.
mr c names release server >/dev/null || fail "c could not release"
released=$(now_ms)
next_holder() {
    local want
    want=$(resolve a server.mesh)
    [ -n "$want" ] && [ "$want" != "$c_addr" ] && all_resolve server.mesh "$want" s a b c t
}
wait_until 10 next_holder || fail "after c released, the nodes disagree: s $(resolve s server.mesh) a $(resolve a server.mesh) b $(resolve b server.mesh) c $(resolve c server.mesh) t $(resolve t server.mesh)"
holder=$(resolve a server.mesh)
echo "c released server: every node resolves it to $holder ($( [ "$holder" = "${MESH_ADDR[s]}" ] && echo s || echo t)) within $(($(now_ms) - released)) ms"
mr c names claim server >/dev/null || fail "c could not claim again"
sleep 2
all_resolve server.mesh "$holder" s a b c t || fail "c took server back by claiming again"
echo "c claimed again: the new holder keeps it on every node"
echo "PASS"
