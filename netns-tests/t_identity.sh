#!/usr/bin/env bash
# Identity service between daemons: a line a - b - c where c trusts a as its admin. A user enrolled
# on a signs in on c, two hops away, also while a is cut off (c checks the replicated registry
# offline). A revocation made on a while it is cut off reaches c when the link returns, and c then
# refuses that user.
. "$(dirname "$0")/lib.sh"

for n in a b c; do ns_add $n; done
veth_link a b
veth_link b c
in_ns a ip addr add 10.78.1.1/24 dev a-b
in_ns b ip addr add 10.78.1.2/24 dev b-a
in_ns b ip addr add 10.78.2.1/24 dev b-c
in_ns c ip addr add 10.78.2.2/24 dev c-b
for n in a b c; do mr_config $n <<<'listen = ["udp://0.0.0.0:9100"]'; done
did_of() { "$MR_BIN" info --config "$MR_DIR/$1.toml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["did"])'; }
a_did=$(did_of a)
c_did=$(did_of c)
echo 'peers = ["udp://10.78.1.2:9100"]' >>"$MR_DIR/a.toml"
echo 'peers = ["udp://10.78.2.2:9100"]' >>"$MR_DIR/b.toml"
echo "identity.admins = [\"$a_did\"]" >>"$MR_DIR/c.toml"
for n in a b c; do mr_start $n; done

user_key="$MR_DIR/user.key"
user_did=$("$MR_BIN" id keygen -o "$user_key")
login() { mr c id login --key "$user_key" "$@"; }

login >/dev/null 2>"$MR_DIR/refused.txt" && fail "c let a stranger sign in"
grep -q "not an enrolled member" "$MR_DIR/refused.txt" || fail "unexpected refusal: $(cat "$MR_DIR/refused.txt")"
mr a id enroll "$user_did" --role medic >/dev/null
wait_until 20 login >/dev/null || fail "the enrollment on a did not reach c"
token=$(login)
mr b id jwt verify "$token" >/dev/null 2>&1 && fail "b took c's session token (aud c) for its own"
mr b id jwt verify "$token" --audience "$c_did" >/dev/null || fail "b refused c's session token"
echo "enrolled on a, signed in on c (2 hops), c's session token verified on b on c's behalf (refused as b's own)"

# a is cut off: c still signs the user in from its copy of the registry.
a_alone() { [ "$(links_up a)" = 0 ]; }
in_ns a ip link set a-b down
wait_until 10 a_alone || fail "a still has a link up after the cut"
mr c id prove "$a_did" >/dev/null 2>&1 && fail "a still answers c: not cut off"
login >/dev/null || fail "c refused the member while a was unreachable"
echo "a unreachable (proof request timed out); the member still signs in on c"

mr a id revoke "$user_did" --reason "lost phone" >/dev/null
login >/dev/null || fail "the revocation reached c across the cut?"
in_ns a ip link set a-b up
heal=$(now_ms)
refused() { ! login >/dev/null 2>"$MR_DIR/refused.txt" && grep -q "lost phone" "$MR_DIR/refused.txt"; }
wait_until 40 refused || fail "c still accepts the revoked member after healing"
echo "revocation made on a while cut off reached c $(($(now_ms) - heal)) ms after healing; c refuses: $(cat "$MR_DIR/refused.txt")"
mr c id jwt verify "$token" >/dev/null 2>&1 && fail "c still accepts the revoked member's session token"
mr c id prove "$a_did" >/dev/null || fail "a does not prove its key to c after healing"
echo "the revoked member's earlier session token is refused too; a proves its key to c again"
