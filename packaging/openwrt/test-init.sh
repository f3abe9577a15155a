#!/bin/sh
# Checks the procd init script's UCI -> TOML translation without an OpenWrt system: the UCI reading
# functions are stubbed with the values of files/meshrouter.config plus a listen and a peer, the
# script's write_config runs with the real binary (first boot: it makes the key), and
# `meshrouter info` must load the TOML it wrote. Usage: test-init.sh [path/to/meshrouter]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$(readlink -f "${1:-$here/../../target/release/meshrouter}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Stubs of OpenWrt's /lib/functions.sh for one 'main' section and one discovery section.
config_load() { :; }
config_get() {
	local var="$1" section="$2" option="$3" default="${4:-}" value
	case "$section.$option" in
	main.private_key_file) value="$tmp/etc/node.key" ;;
	main.tun_mtu) value=1400 ;;
	main.user) value="${TEST_USER:-$default}" ;;
	main.name) value='clinic' ;;
	cfg1.interfaces) value='br-lan|lan[0-9]*|eth[0-9]+' ;;
	cfg1.password) value='our "island"' ;;
	*) value="$default" ;;
	esac
	eval "$var=\$value"
}
config_get_bool() { eval "$1=1"; }
config_list_foreach() {
	case "$2" in
	listen) "$3" 'udp://[::]:9100' "$4" ;;
	peers) "$3" 'udp://192.0.2.1:9100' "$4"; "$3" 'udp://[2001:db8::1]:9100' "$4" ;;
	firewall_open) "$3" 'tcp/22' "$4"; "$3" 'udp/8000-8100' "$4" ;;
	lan) "$3" 'br-lan' "$4" ;;
	dns_upstream) "$3" '127.0.0.1' "$4" ;;
	esac
}
config_foreach() { "$1" cfg1; }
logger() { :; }
user_exists() { [ "$1" = meshrouter ] || [ "$1" = root ]; }

# The init script without its rc.common wrapper; PROG and CONF point into the sandbox.
. "$here/meshrouter/files/meshrouter.init"
PROG="$bin"
CONF="$tmp/meshrouter.toml"
write_config
[ -s "$tmp/etc/node.key" ] || { echo "FAIL: no node key made"; exit 1; }
key_mode=$(stat -c %a "$tmp/etc/node.key")
[ "$key_mode" = 600 ] || { echo "FAIL: node key mode $key_mode"; exit 1; }
"$bin" info --config "$CONF" >/dev/null || { cat "$CONF"; echo "FAIL: meshrouter refused the generated TOML"; exit 1; }
key1=$(cat "$tmp/etc/node.key")
write_config
[ "$(cat "$tmp/etc/node.key")" = "$key1" ] || { echo "FAIL: a second start changed the key"; exit 1; }
grep -q '^peers = \["udp://192.0.2.1:9100", "udp://\[2001:db8::1\]:9100"\]$' "$CONF" || { cat "$CONF"; echo "FAIL: peers"; exit 1; }
grep -q 'password = "our \\"island\\""' "$CONF" || { cat "$CONF"; echo "FAIL: quoting"; exit 1; }
# Unprivileged by default; a user the system lacks stops the start instead of running as root.
grep -qx 'user = "meshrouter"' "$CONF" || { cat "$CONF"; echo "FAIL: no user = \"meshrouter\""; exit 1; }
grep -qx 'firewall.inbound = "deny"' "$CONF" || { cat "$CONF"; echo "FAIL: the firewall is not on by default"; exit 1; }
grep -q 'proto = "udp", port = "8000-8100"' "$CONF" || { cat "$CONF"; echo "FAIL: firewall_open"; exit 1; }
grep -qx 'lan = \["br-lan"\]' "$CONF" && grep -qx 'name = "clinic"' "$CONF" && grep -qx 'dns.upstream = \["127.0.0.1"\]' "$CONF" ||
	{ cat "$CONF"; echo "FAIL: lan, name, dns_upstream"; exit 1; }
rm "$CONF"
if TEST_USER=no-such-user write_config || [ -e "$CONF" ]; then
	echo "FAIL: a missing user did not stop the start"
	exit 1
fi
echo "openwrt init: UCI -> TOML accepted by meshrouter; key made once (mode 600) and kept; runs as user meshrouter; firewall denies inbound but ping and the ports opened; lan, name and dns_upstream pass through"
