#!/usr/bin/env bash
# Builds the Debian package: target/debian/meshrouter_<version>_<arch>.deb.
# Installs what it needs on a fresh machine (cargo-deb, help2man), then builds the release binary,
# the man page (from --help) and the package.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install --locked cargo-deb
fi
if ! command -v help2man >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq help2man >/dev/null
fi
cargo build --release --bin meshrouter
mkdir -p target/man
help2man --no-info --section 8 --name "mesh overlay router with key-derived IPv6 addresses" \
    --version-string "$(target/release/meshrouter --version | awk '{print $2}')" \
    target/release/meshrouter | gzip -9n >target/man/meshrouter.8.gz
cargo deb --no-build --strip "$@"
ls -l target/debian/*.deb
