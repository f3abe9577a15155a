#!/usr/bin/env bash
# Installs the package on a fresh Debian 12 root and starts it as its systemd units would: a
# debootstrap chroot (from the Debian mirror this machine already uses), `apt-get install` of the
# .deb, the first-start one-shot (config mode 0640 root:meshrouter, its fresh key in its own file, mode
# 0600 meshrouter, so the group that may use the API cannot read the key), then the
# daemon as the meshrouter user with only CAP_NET_ADMIN, in a network namespace of its own, until its
# API answers. Then an upgrade (reinstall) keeps the configuration, and purge removes it.
# Needs root. Usage: test-install.sh target/debian/meshrouter_*.deb
set -euo pipefail
deb=$(readlink -f "$1")
root=${MR_DEB_ROOT:-/var/tmp/meshrouter-bookworm}
ns=mrdeb$$
fail() { echo "FAIL: $*" >&2; exit 1; }

if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
if [ ! -x "$root/usr/bin/apt-get" ]; then
    # The mirror this machine already uses for bookworm.
    mirror=$(awk '/^URIs:/{u=$2} /^Suites:.*bookworm( |$)/{print u; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3=="bookworm"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || fail "no bookworm mirror configured on this machine"
    rm -rf "$root"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
fi
cleanup() {
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
    for m in proc dev/pts dev; do umount -l "$root/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
# A /dev as a stock Debian host has it: udev makes /dev/net/tun mode 0666 (some containers, this
# test machine among them, have it 0600), so the unprivileged daemon can open it.
mount -t tmpfs -o mode=0755 dev "$root/dev"
mkdir -p "$root/dev/net" "$root/dev/pts"
mknod -m 0666 "$root/dev/null" c 1 3
mknod -m 0666 "$root/dev/zero" c 1 5
mknod -m 0666 "$root/dev/urandom" c 1 9
mknod -m 0666 "$root/dev/random" c 1 8
mknod -m 0666 "$root/dev/net/tun" c 10 200
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" && ln -sf pts/ptmx "$root/dev/ptmx"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" "$@"; }

# A root kept from an earlier run starts without the package.
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq meshrouter >/dev/null 2>&1 || true
cp "$deb" "$root/tmp/meshrouter.deb"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/meshrouter.deb >/dev/null
in_root getent passwd meshrouter >/dev/null || fail "postinst made no meshrouter user"
for f in /usr/bin/meshrouter /lib/systemd/system/meshrouter.service /lib/systemd/system/meshrouter-genconf.service \
    /usr/share/man/man8/meshrouter.8.gz /usr/share/doc/meshrouter/config.example.toml; do
    [ -e "$root$f" ] || fail "$f not installed"
done
echo "installed: $(in_root dpkg-query -W -f='${Package} ${Version} ${Architecture}' meshrouter), user meshrouter made"

# First start: the one-shot's command, then the service's, as the unit files give them.
unit_exec() { sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/$1"; }
install -d -m 0755 "$root/etc/meshrouter"
install -d -m 0750 -o "$(in_root id -u meshrouter)" -g "$(in_root id -g meshrouter)" "$root/var/lib/meshrouter" "$root/run/meshrouter"
in_root $(unit_exec meshrouter-genconf.service) 2>/dev/null
# (stat inside the root: user and group names are the root's own.)
mode=$(in_root stat -c '%a %U:%G' /etc/meshrouter/config.toml)
[ "$mode" = '640 root:meshrouter' ] || fail "config is $mode, expected 640 root:meshrouter"
key_mode=$(in_root stat -c '%a %U:%G' /etc/meshrouter/config.key)
[ "$key_mode" = '600 meshrouter:meshrouter' ] || fail "key file is $key_mode, expected 600 meshrouter:meshrouter"
grep -q '^private_key = ' "$root/etc/meshrouter/config.toml" && fail "the configuration holds the key inline"
grep -qx 'private_key_file = "config.key"' "$root/etc/meshrouter/config.toml" || fail "the configuration does not name config.key"
grep -qx 'user = "meshrouter"' "$root/etc/meshrouter/config.toml" || fail "the configuration does not name the user meshrouter"
in_root $(unit_exec meshrouter-genconf.service) 2>/dev/null && fail "a second genconf overwrote the configuration"
key_before=$(cat "$root/etc/meshrouter/config.key")

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
# The unit's user, group and ambient capability (CAP_NET_ADMIN only), via setpriv.
ip netns exec "$ns" chroot "$root" setpriv --reuid=meshrouter --regid=meshrouter --init-groups \
    --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin \
    $(unit_exec meshrouter.service) >"$root/tmp/meshrouter.log" 2>&1 &
for _ in $(seq 100); do
    ip netns exec "$ns" chroot "$root" meshrouter self >/dev/null 2>&1 && break
    sleep 0.1
done
ip netns exec "$ns" chroot "$root" meshrouter self >/dev/null || { cat "$root/tmp/meshrouter.log"; fail "the daemon did not start"; }
addresses=$(ip netns exec "$ns" ip -6 addr show dev meshrouter0)
grep -q 'inet6 2' <<<"$addresses" || fail "no 200::/7 address on the TUN device: $addresses"
grep -qi "warn\|error" "$root/tmp/meshrouter.log" && { cat "$root/tmp/meshrouter.log"; fail "the daemon logged warnings"; }
echo "first start: config 640 root:meshrouter naming user meshrouter, key 600 meshrouter, daemon up as meshrouter with CAP_NET_ADMIN, TUN has its 200::/7 address"
for p in $(ip netns pids "$ns"); do kill "$p"; done
sleep 0.5

# Upgrade (reinstall) keeps the configuration; purge removes it.
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall /tmp/meshrouter.deb >/dev/null
[ "$(cat "$root/etc/meshrouter/config.key")" = "$key_before" ] || fail "reinstall changed the node key"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq meshrouter >/dev/null
[ ! -e "$root/etc/meshrouter/config.toml" ] || fail "purge left the configuration"
[ ! -e "$root/etc/meshrouter/config.key" ] || fail "purge left the node key"
echo "reinstall kept the node key; purge removed the configuration"
