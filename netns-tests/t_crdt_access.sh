#!/usr/bin/env bash
# Namespace access between daemons: a triangle a - b - c - a where a owns "~<a's id>/plan". a grants b
# read: b reads it but its writes are refused, and c, with no grant, never receives the namespace
# although it has a direct link to both. a grants b write: b's write reaches a, still not c. Then b is
# cut off; a revokes b's write (b keeps read) and b, not knowing, writes +100. After healing the
# revocation holds on b and b's write made during the partition is cut on every replica: a and b show
# the same value without it, and a counts it as suppressed. c never held the namespace.
. "$(dirname "$0")/lib.sh"

for n in a b c; do ns_add $n; done
veth_link a b
veth_link b c
veth_link a c
in_ns a ip addr add 10.79.1.1/24 dev a-b
in_ns b ip addr add 10.79.1.2/24 dev b-a
in_ns b ip addr add 10.79.2.1/24 dev b-c
in_ns c ip addr add 10.79.2.2/24 dev c-b
in_ns a ip addr add 10.79.3.1/24 dev a-c
in_ns c ip addr add 10.79.3.2/24 dev c-a
for n in a b c; do mr_config $n <<<'listen = ["udp://0.0.0.0:9100"]'; done
did_of() { "$MR_BIN" info --config "$MR_DIR/$1.toml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["did"])'; }
a_did=$(did_of a)
b_did=$(did_of b)
c_did=$(did_of c)
echo 'peers = ["udp://10.79.1.2:9100", "udp://10.79.3.2:9100"]' >>"$MR_DIR/a.toml"
echo 'peers = ["udp://10.79.2.2:9100"]' >>"$MR_DIR/b.toml"
for n in a b c; do mr_start $n; done
NS="~${a_did#did:key:}/plan"

all_linked() { [ "$(links_up a)" = 2 ] && [ "$(links_up b)" = 2 ] && [ "$(links_up c)" = 2 ]; }
wait_until 20 all_linked || fail "the triangle did not come up (links up: a $(links_up a), b $(links_up b), c $(links_up c))"

# value NODE: the document stock's value as canonical JSON (empty if this node cannot show it).
value() {
    mr "$1" crdt get "$NS" stock --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["value"], sort_keys=True))' 2>/dev/null
}
# access NODE FIELD: a field of `crdt access "$NS" --json` on NODE.
access() {
    mr "$1" crdt access "$NS" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}
# you_are NODE LEVEL: true once NODE's own access to the namespace is LEVEL.
you_are() { [ "$(access "$1" you 2>/dev/null)" = "$2" ]; }
# c_never_held: c cannot show the document, and lists nothing of the namespace.
c_never_held() {
    mr c crdt get "$NS" stock --json >/dev/null 2>&1 && fail "c shows the document: $(value c)"
    local held
    held=$(mr c crdt list --json | python3 -c '
import json, sys
print(sum(1 for d in json.load(sys.stdin)["documents"] if d["namespace"] == sys.argv[1]))' "$NS")
    [ "$held" = 0 ] || fail "c holds $held documents of $NS: $(mr c crdt list)"
}
# write_refused NODE: NODE's write to stock is refused (the message is kept in $MR_DIR/refused.txt).
write_refused() {
    ! mr "$1" crdt incr "$NS" stock --key fish >/dev/null 2>"$MR_DIR/refused.txt" &&
        grep -q "refused" "$MR_DIR/refused.txt"
}

# 1. a owns the namespace and writes to it.
[ "$(access a class)" = owned ] || fail "$NS is not an owned namespace on a: $(mr a crdt access "$NS")"
you_are a manage || fail "a does not manage its own namespace: $(mr a crdt access "$NS")"
mr a crdt incr "$NS" stock --key fish --by 3 >/dev/null
[ "$(value a)" = '{"fish": 3}' ] || fail "a's stock is $(value a), expected fish 3"
mr b crdt grant "$NS" "$b_did" write >/dev/null 2>&1 && fail "b granted itself write on a's namespace"
mr c crdt incr "$NS" stock --key fish >/dev/null 2>&1 && fail "c wrote to a's namespace without a grant"
echo "a owns $NS (fish 3); b cannot grant itself access, c cannot write"

# 2. b may read, c nothing.
sleep 2
value b | grep -q . && fail "b shows the document before any grant: $(value b)"
c_never_held
mr a crdt grant "$NS" "$b_did" read >/dev/null
start=$(now_ms)
wait_until 20 you_are b read || fail "the read grant did not reach b (b: $(access b you))"
echo "read grant on a reached b in $(($(now_ms) - start)) ms"
# The grant (a change to _access) is pushed at once; the namespace's other documents reach b with a's
# next full digest (every 10 s, ±50 %).
b_reads() { [ "$(value b)" = '{"fish": 3}' ]; }
wait_until 30 b_reads || fail "b cannot read the namespace after a's grant (b shows '$(value b)')"
echo "b reads fish 3 $(($(now_ms) - start)) ms after the grant"
write_refused b || fail "b (read only) wrote to the namespace: $(cat "$MR_DIR/refused.txt")"
echo "b's write refused at b: $(cat "$MR_DIR/refused.txt")"
sleep 3
c_never_held
echo "c, linked to a and b, does not hold the namespace 3 s after b got it"

# 3. b may write: its write reaches a, not c.
mr a crdt grant "$NS" "$b_did" write >/dev/null
start=$(now_ms)
wait_until 20 you_are b write || fail "the write grant did not reach b (b: $(access b you))"
echo "write grant on a reached b in $(($(now_ms) - start)) ms"
mr b crdt incr "$NS" stock --key fish >/dev/null || fail "b refused its own write after the write grant"
start=$(now_ms)
a_sees() { [ "$(value a)" = "$1" ]; }
wait_until 20 a_sees '{"fish": 4}' || fail "b's write did not reach a (a shows $(value a), expected fish 4)"
echo "b's write reached a in $(($(now_ms) - start)) ms: fish 4"
sleep 3
c_never_held
echo "c still does not hold the namespace"

# 4. b is cut off; a revokes b's write; b writes +100 without knowing.
b_alone() { [ "$(links_up b)" = 0 ]; }
in_ns b ip link set b-a down
in_ns b ip link set b-c down
wait_until 10 b_alone || fail "b still has a link up after the cut"
mr a crdt revoke "$NS" "$b_did" --to read >/dev/null
you_are a manage || fail "a lost manage by revoking b"
mr b crdt incr "$NS" stock --key fish --by 100 >/dev/null || fail "b refused its write while cut off (the revocation crossed the cut?)"
[ "$(value b)" = '{"fish": 104}' ] || fail "b shows $(value b) after its write, expected fish 104"
[ "$(value a)" = '{"fish": 4}' ] || fail "a shows $(value a) while b is cut off, expected fish 4"
echo "b cut off; a revoked b's write; b wrote +100 locally (b: fish 104, a: fish 4)"
in_ns b ip link set b-a up
in_ns b ip link set b-c up
heal=$(now_ms)
wait_until 40 you_are b read || fail "the revocation did not reach b after healing (b: $(access b you))"
echo "revocation made on a while b was cut off holds on b $(($(now_ms) - heal)) ms after healing"
write_refused b || fail "b still writes after the revocation reached it: $(cat "$MR_DIR/refused.txt")"
echo "b's next write refused: $(cat "$MR_DIR/refused.txt")"
# a receives b's +100 (b still may write it to a: a may pull) and cuts it, as b does.
settled() {
    [ "$(access a suppressed)" -ge 1 ] && [ "$(value a)" = "$(value b)" ]
}
wait_until 40 settled || fail "a and b did not settle: a $(value a), b $(value b), suppressed on a $(access a suppressed)"
echo "settled $(($(now_ms) - heal)) ms after healing"
for n in a b; do
    [ "$(value $n)" = '{"fish": 4}' ] || fail "$n shows $(value $n): b's +100 made during the partition was not cut"
done
echo "fish 4 on a and b: b's +100 is cut on both; suppressed: a $(access a suppressed), b $(access b suppressed)"

# 5. c never received the namespace.
c_never_held
you_are c none || fail "c's access is $(access c you), expected none"
mr a crdt access "$NS" --json >"$MR_DIR/access.json"
python3 - "$MR_DIR/access.json" "$b_did" "$c_did" <<'PY' || fail "a's access list is wrong: $(cat "$MR_DIR/access.json")"
import json, sys
acc = json.load(open(sys.argv[1]))
levels = {m["subject"]: m["level"] for m in acc["members"]}
assert levels.get(sys.argv[2]) == "read", levels
assert sys.argv[3] not in levels, levels
revokes = [c for c in acc["changes"] if c["op"] == "revoke"]
assert len(revokes) == 1 and revokes[0]["counts"], revokes
PY
echo "c never held the namespace; a lists b at read and c not at all"
