#!/usr/bin/env bash
# The README's first command: `meshrouter run --autoconf` on two machines of one LAN (here two
# namespaces joined by a veth) with no configuration at all; they find each other and ping.
. "$(dirname "$0")/lib.sh"

ns_add a
ns_add b
veth_link a b
start=$(now_ms)
for n in a b; do
    MR_NODES+=("$n")
    ip netns exec "$NS_PREFIX$n" "$MR_BIN" run --autoconf --api-socket "$MR_DIR/$n.sock" \
        --crdt-database "$MR_DIR/$n.crdt.redb" >"$MR_DIR/$n.log" 2>&1 &
done
wait_until 5 mr a self || fail "a did not start"
wait_until 5 mr b self || fail "b did not start"
addr_a=$(mr_field a address)
addr_b=$(mr_field b address)
wait_until 15 ping_ok a "$addr_b" || fail "a cannot reach b"
echo "autoconf nodes reach each other $(($(now_ms) - start)) ms after start"
ping_ok b "$addr_a" || fail "b cannot reach a"
