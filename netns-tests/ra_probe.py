#!/usr/bin/env python3
"""What a phone learns from the Router Advertisements on its LAN, as JSON.

    ra_probe.py IFACE [SECONDS]

Sends a Router Solicitation on IFACE and prints the first Router Advertisement that arrives within
SECONDS (default 5): {"source", "hop_limit", "router_lifetime", "prefixes": [[prefix, len, valid,
preferred]], "routes": [[prefix, len, lifetime]], "rdnss": [[address, lifetime]], "slla"}. Exits 1
if none arrives. Standard library only (the test namespaces have no resolver or RA daemon)."""
import ipaddress
import json
import select
import socket
import struct
import sys
import time


def options(body):
    while len(body) >= 8:
        kind, length = body[0], body[1] * 8
        if length == 0 or length > len(body):
            return
        yield kind, body[:length]
        body = body[length:]


def decode(message, source, hop_limit):
    lifetime = struct.unpack("!H", message[6:8])[0]
    out = {"source": source, "hop_limit": hop_limit, "router_lifetime": lifetime,
           "prefixes": [], "routes": [], "rdnss": [], "slla": None}
    for kind, option in options(message[16:]):
        if kind == 1:
            out["slla"] = option[2:8].hex(":")
        elif kind == 3:
            length = option[2]
            valid, preferred = struct.unpack("!II", option[4:12])
            prefix = str(ipaddress.IPv6Address(option[16:32]))
            out["prefixes"].append([prefix, length, valid, preferred])
        elif kind == 24:
            length = option[2]
            lifetime = struct.unpack("!I", option[4:8])[0]
            raw = option[8:] + bytes(16)
            out["routes"].append([str(ipaddress.IPv6Address(raw[:16])), length, lifetime])
        elif kind == 25:
            lifetime = struct.unpack("!I", option[4:8])[0]
            for i in range(8, len(option), 16):
                out["rdnss"].append([str(ipaddress.IPv6Address(option[i:i + 16])), lifetime])
    return out


def main():
    iface = sys.argv[1]
    wait = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    index = socket.if_nametoindex(iface)
    s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, index))
    deadline = time.time() + wait
    while time.time() < deadline:
        ready, _, _ = select.select([s], [], [], max(0.0, deadline - time.time()))
        if not ready:
            break
        message, ancillary, _, address = s.recvmsg(4096, 64)
        if len(message) < 16 or message[0] != 134:
            continue
        hop_limit = None
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                hop_limit = struct.unpack("i", data[:4])[0]
        print(json.dumps(decode(message, address[0].split("%")[0], hop_limit)))
        return 0
    print("no Router Advertisement", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
