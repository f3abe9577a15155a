#!/usr/bin/env bash
# Runs every meshrouter test: formatting, lints, the Rust unit/integration/simulator tests (release build)
# and, as root, the network-namespace tests. Installs what it needs on a fresh Debian machine when run as
# root. Prints a closing "total: N passed, M failed" line and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v ip >/dev/null || need_packages+=(iproute2)
command -v ping >/dev/null || need_packages+=(iputils-ping)
command -v iperf3 >/dev/null || need_packages+=(iperf3)
command -v python3 >/dev/null || need_packages+=(python3)
command -v setpriv >/dev/null || need_packages+=(util-linux)
command -v tc >/dev/null || need_packages+=(iproute2)
command -v nft >/dev/null || need_packages+=(nftables)
# t_metrics.sh checks the metrics with promtool.
command -v promtool >/dev/null || need_packages+=(prometheus)
# t_apps.sh drives the example notes page in headless browsers.
command -v chromium >/dev/null || need_packages+=(chromium)
# The JWT interoperability test checks our tokens against PyJWT.
python3 -c 'import jwt, cryptography' 2>/dev/null || /usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null ||
    need_packages+=(python3-jwt python3-cryptography)
if [ "${#need_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "== installing ${need_packages[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
    else
        echo "missing ${need_packages[*]}: install them (the netns tests need them)" >&2
    fi
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings
echo "== cargo check of the fuzz targets (they are run with cargo fuzz, see fuzz/)"
cargo check --quiet --manifest-path fuzz/Cargo.toml --bins
echo "== cargo clippy --no-default-features (the router-only build for small routers)"
cargo clippy --quiet --no-default-features --all-targets -- -D warnings

echo "== cargo test --release (without the release profile's LTO: a dozen test binaries each linked with fat LTO would take longer than the tests)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_PANIC=unwind
cargo test --release 2>&1 | tee "$log"
read -r rust_passed rust_failed < <(
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { print p + 0, f + 0 }' "$log")

netns_passed=0
netns_failed=0
if [ "$(id -u)" -eq 0 ]; then
    echo "== netns-tests"
    netns_log=$(mktemp)
    trap 'rm -f "$log" "$netns_log"' EXIT
    netns-tests/run.sh 2>&1 | tee "$netns_log" || true
    read -r netns_passed netns_failed < <(sed -n 's/^netns: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$netns_log")
    : "${netns_passed:=0}" "${netns_failed:=1}"
    echo "== packaging"
    packaging/check.sh 2>&1 | tee "$netns_log" || true
    read -r packaging_passed packaging_failed < <(sed -n 's/^packaging: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$netns_log")
    netns_passed=$((netns_passed + ${packaging_passed:-0}))
    netns_failed=$((netns_failed + ${packaging_failed:-1}))
elif [ "${CI:-}" = "true" ]; then
    echo "CI must run as root: the netns tests cannot be skipped there" >&2
    netns_failed=1
else
    echo "== netns-tests skipped: they need root (run this script with sudo to include them)"
fi

echo "total: $((rust_passed + netns_passed)) passed, $((rust_failed + netns_failed)) failed"
[ "$((rust_failed + netns_failed))" -eq 0 ]
