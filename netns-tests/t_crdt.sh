#!/usr/bin/env bash
# CRDT service between daemons: three nodes in a line a - b - c; c is cut off and both sides write
# (the same keys, a counter, a set) while apart; after healing every node shows the same values.
# Then a is killed with SIGKILL in the middle of a run of writes: every write the CLI acknowledged is
# there after restart. Last, d shares no link with anyone: a sneakernet drop carries a's documents to
# d and d's back, and a refuses a damaged drop without changing anything.
. "$(dirname "$0")/lib.sh"

line_abc_and_d
for n in a b c d; do mr_start $n; done

# value NODE DOC: the document's value as canonical JSON (empty if absent).
value() {
    mr "$1" crdt get island "$2" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["value"], sort_keys=True))' 2>/dev/null
}
# same DOC NODES...: true if every node shows the same, non-empty value of DOC.
same() {
    local doc="$1" first v
    shift
    first=$(value "$1" "$doc") || return 1
    [ -n "$first" ] || return 1
    for n in "${@:2}"; do
        v=$(value "$n" "$doc") || return 1
        [ "$v" = "$first" ] || return 1
    done
}

mr a crdt put island inventory 10 --key rice >/dev/null
wait_until 15 same inventory a b c || fail "a's first write did not reach b and c"
echo "a write on a reached b and c"

c_alone() { [ "$(links_up c)" = 0 ]; }

# Partition: c loses its only link.
in_ns b ip link set b-c down
wait_until 10 c_alone || fail "c still has a link up after the cut"
start=$(now_ms)
for i in $(seq 20); do
    mr a crdt incr island ledger --key fish --by 2 >/dev/null
    mr c crdt incr island ledger --key fish --by 3 >/dev/null
    mr a crdt add island members "west$i" >/dev/null
    mr c crdt add island members "east$i" >/dev/null
done
mr a crdt put island inventory 7 --key rice >/dev/null
mr c crdt put island inventory 9 --key rice >/dev/null
mr c crdt put island inventory 4 --key salt >/dev/null
same ledger a c && fail "c was not cut off: the sides already agree"
in_ns b ip link set b-c up
heal=$(now_ms)
for doc in inventory ledger members; do
    wait_until 40 same $doc a b c || {
        for n in a b c; do echo "$n: $(value $n $doc)"; done
        fail "$doc did not converge after healing"
    }
done
echo "converged $(($(now_ms) - heal)) ms after healing (80 writes while apart)"
ledger=$(value a ledger)
[ "$ledger" = '{"fish": 100}' ] || fail "ledger is $ledger, expected fish 100 (20x2 + 20x3)"
members=$(value a members | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$members" = 40 ] || fail "members has $members entries, expected 40"
inventory=$(value b inventory)
[ "$(echo "$inventory" | python3 -c 'import json,sys; print(json.load(sys.stdin)["salt"])')" = 4 ] ||
    fail "inventory lost salt: $inventory"
echo "ledger fish = 100, 40 members, inventory $inventory everywhere"

# kill -9 in the middle of writes: every acknowledged write survives.
acked="$MR_DIR/acked"
: >"$acked"
(
    for i in $(seq 1000); do
        mr a crdt add island durable "item$i" >/dev/null 2>&1 && echo "item$i" >>"$acked"
    done
) &
writer=$!
sleep 1.5
pid_a=$(cat "$MR_DIR/a.pid")
kill -9 "$pid_a"
wait "$pid_a" 2>/dev/null || true
wait $writer || true
count=$(wc -l <"$acked")
[ "$count" -gt 0 ] || fail "no write was acknowledged before the kill"
mr_start a
missing=$(mr a crdt get island durable --json | python3 -c '
import json, sys
held = set(json.load(sys.stdin)["value"])
acked = [l.strip() for l in open(sys.argv[1]) if l.strip()]
print(sum(1 for a in acked if a not in held))' "$acked")
[ "$missing" = 0 ] || fail "$missing of $count acknowledged writes lost to kill -9"
echo "kill -9 during writes: all $count acknowledged writes kept"

# Sneakernet: d has no link at all.
mr d crdt put island weather calm --key today >/dev/null
mr a crdt export -o "$MR_DIR/a-to-d.bin" 2>/dev/null
mr d crdt import "$MR_DIR/a-to-d.bin" >/dev/null
mr d crdt have >"$MR_DIR/d.have"
mr d crdt export --since "$MR_DIR/a.have.missing" -o /dev/null 2>/dev/null &&
    fail "export accepted a missing --since file"
mr a crdt have >"$MR_DIR/a.have"
mr d crdt export --since "$MR_DIR/a.have" -o "$MR_DIR/d-to-a.bin" 2>"$MR_DIR/d-export.txt"
grep -q "exported 1 changes" "$MR_DIR/d-export.txt" || fail "d exported $(cat "$MR_DIR/d-export.txt"), expected only its 1 change"
head -c 200 "$MR_DIR/d-to-a.bin" >"$MR_DIR/damaged.bin"
mr a crdt import "$MR_DIR/damaged.bin" >/dev/null 2>&1 && fail "a accepted a truncated drop"
value a weather | grep -q . && fail "a truncated drop changed a"
mr a crdt import "$MR_DIR/d-to-a.bin" >/dev/null
again=$(mr a crdt import "$MR_DIR/d-to-a.bin" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["applied"])')
[ "$again" = 0 ] || fail "re-importing applied $again changes"
for doc in inventory ledger members durable weather; do
    same $doc a d || fail "$doc differs between a and d after the drops"
done
wait_until 15 same weather a b c || fail "d's change did not spread from a to b and c"
echo "sneakernet: a and d converged through two drop files; a damaged drop was refused; d's write spread to b and c"
