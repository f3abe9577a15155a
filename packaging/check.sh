#!/usr/bin/env bash
# Checks the packaging (as root, on a Debian machine): the systemd unit's hardening score, the
# OpenWrt init script's UCI -> TOML translation, and the Debian package built, installed and
# started on a fresh Debian 12 root. Prints "packaging: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
check() {
    local name="$1" start out
    shift
    start=$(date +%s%N)
    if out=$("$@" 2>&1); then
        passed=$((passed + 1))
        printf 'ok    %-32s %6d ms\n' "$name" $((($(date +%s%N) - start) / 1000000))
        printf '%s\n' "$out" | tail -n 3 | sed 's/^/      /'
    else
        failed=$((failed + 1))
        printf 'FAIL  %s\n' "$name"
        printf '%s\n' "$out" | sed 's/^/      /'
    fi
}

# The unit's exposure as `systemd-analyze security` rates it: at most 2.0.
unit_score() {
    command -v systemd-analyze >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
    }
    local line score
    line=$(systemd-analyze security --offline=true packaging/systemd/meshrouter.service 2>&1 | grep 'Overall exposure')
    score=$(sed -n 's/.*: \([0-9.]*\) .*/\1/p' <<<"$line")
    echo "$line"
    awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
}

bin=target/release/meshrouter
[ -x "$bin" ] || cargo build --release --bin meshrouter --quiet
check "systemd unit exposure <= 2.0" unit_score
check "openwrt init (UCI -> TOML)" sh packaging/openwrt/test-init.sh "$bin"
deb_package() {
    bash packaging/debian/build.sh >/dev/null &&
        bash packaging/debian/test-install.sh target/debian/meshrouter_*.deb
}
check "debian package on bookworm" deb_package
echo "packaging: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
