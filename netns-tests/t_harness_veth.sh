#!/usr/bin/env bash
# The harness itself: two namespaces joined by a veth reach each other over IPv6 link-local, and the
# namespaces disappear when the test ends. Every daemon scenario builds on exactly this.
. "$(dirname "$0")/lib.sh"

ns_add a
ns_add b
veth_link a b
addr_b=$(link_local b b-a)
in_ns a ping -6 -c 2 -i 0.2 -W 2 "$addr_b%a-b" >/dev/null || fail "a cannot ping b over the veth"
ip netns list | grep -q "^${NS_PREFIX}a" || fail "namespace not visible"
