#!/usr/bin/env bash
# Discovery only: four nodes on one bridged LAN with no peers configured form a full mesh by
# themselves (beacons on IPv6 link-local multicast), and every node reaches every other. A fifth node
# with another discovery password hears the beacons but is not linked.
. "$(dirname "$0")/lib.sh"

ns_add lan
in_ns lan ip link add br0 type bridge mcast_snooping 0
in_ns lan ip link set br0 up
nodes=(n1 n2 n3 n4 n5)
for n in "${nodes[@]}"; do
    ns_add $n
    veth_link $n lan
    in_ns lan ip link set "lan-$n" master br0
done
for n in n1 n2 n3 n4; do
    mr_config $n <<<$'[[discovery]]\ninterfaces = ".*"\npassword = "island"'
done
mr_config n5 <<<$'[[discovery]]\ninterfaces = ".*"\npassword = "other"'
start=$(now_ms)
for n in "${nodes[@]}"; do mr_start $n; done

peers_up() {
    mr "$1" peers --json | python3 -c "import json,sys; print(sum(p['up'] for p in json.load(sys.stdin)['peers']))"
}
full_mesh() {
    local n
    for n in n1 n2 n3 n4; do [ "$(peers_up $n)" -eq 3 ] || return 1; done
}
wait_until 15 full_mesh || fail "no full mesh: $(for n in n1 n2 n3 n4; do echo -n "$n=$(peers_up $n) "; done)"
echo "full mesh of 4 after $(($(now_ms) - start)) ms"
[ "$(peers_up n5)" -eq 0 ] || fail "n5 (other password) got linked"

failures=$(mktemp)
jobs=()
for a in n1 n2 n3 n4; do
    for b in n1 n2 n3 n4; do
        [ $a = $b ] && continue
        addr=$(mr_field $b address)
        (wait_until 5 ping_ok $a "$addr" || echo "$a->$b" >>"$failures") &
        jobs+=($!)
    done
done
wait "${jobs[@]}"
[ ! -s "$failures" ] || fail "unreachable: $(cat "$failures")"
echo "12/12 pairs reachable"
