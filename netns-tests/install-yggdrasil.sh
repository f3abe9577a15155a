#!/usr/bin/env bash
# Installs the reference Yggdrasil (0.5.x) and iperf3 from Debian's packages, for netns-tests/bench.sh:
# enables the bookworm-backports suite on the Debian mirror this machine's apt already uses (no other
# source is added), then installs. Idempotent. Needs root and a Debian bookworm system.
#
# bench.sh runs this only when given --install-yggdrasil.
set -euo pipefail
if yggdrasil -version 2>/dev/null | grep -q 'Build version: *0\.5'; then
    yggdrasil -version | grep 'Build version'
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-yggdrasil.sh needs root" >&2
    exit 1
fi
# deb822 style (/etc/apt/sources.list.d/*.sources): add the suite next to bookworm-updates.
src=$(grep -l '^Suites:.*bookworm-updates' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
if [ -n "$src" ]; then
    if ! grep -q 'bookworm-backports' "$src"; then
        sed -i '0,/^Suites:.*bookworm-updates/ s/^\(Suites:.*bookworm-updates\)/\1 bookworm-backports/' "$src"
    fi
elif ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # One-line style (/etc/apt/sources.list): same mirror URI as the existing "bookworm" line.
    uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
    if [ -z "$uri" ]; then
        echo "no Debian bookworm source found in apt's configuration; install yggdrasil 0.5 by hand" >&2
        exit 1
    fi
    echo "deb $uri bookworm-backports main" >/etc/apt/sources.list.d/bookworm-backports.list
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports yggdrasil iperf3 iputils-ping >/dev/null
yggdrasil -version | grep 'Build version'
