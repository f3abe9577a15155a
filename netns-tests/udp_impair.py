#!/usr/bin/env python3
"""A UDP relay that impairs what it carries, like `tc qdisc ... netem delay D J loss L reorder R`.

    udp_impair.py LISTEN_IP:PORT TARGET_IP:PORT [--delay MS] [--jitter MS] [--loss P] [--reorder P]

Datagrams from a client to LISTEN go on to TARGET from a socket of their own (one per client address),
and TARGET's answers come back to the client from LISTEN. In both directions each datagram is dropped
with probability --loss; of the rest, a share --reorder is sent at once and the others after a delay
drawn uniformly from [delay - jitter, delay + jitter], so datagrams overtake one another. Used where the
kernel has no sch_netem. Runs until killed; on SIGTERM prints its counts to stderr.
"""

import argparse
import asyncio
import random
import signal
import socket
import sys


def address(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


class Relay:
    def __init__(self, args):
        self.args = args
        self.loop = asyncio.get_running_loop()
        self.passed = 0
        self.dropped = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.listener.bind(args.listen)
        self.listener.setblocking(False)
        self.upstreams = {}  # client address -> socket connected to the target
        self.loop.add_reader(self.listener, self.from_client)

    def impair(self, send):
        """Calls send() later, at once or never, as the impairment decides."""
        a = self.args
        if random.random() < a.loss:
            self.dropped += 1
            return
        self.passed += 1
        if random.random() < a.reorder:
            delay = 0.0
        else:
            delay = max(0.0, random.uniform(a.delay - a.jitter, a.delay + a.jitter)) / 1000
        self.loop.call_later(delay, send)

    @staticmethod
    def quietly(f, *args):
        try:
            f(*args)
        except OSError:
            pass  # a full buffer or an unreachable port: the datagram is lost, as on a real link

    def from_client(self):
        while True:
            try:
                data, client = self.listener.recvfrom(65536)
            except BlockingIOError:
                return
            up = self.upstreams.get(client)
            if up is None:
                up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                up.connect(self.args.target)
                up.setblocking(False)
                self.upstreams[client] = up
                self.loop.add_reader(up, self.from_target, up, client)
            self.impair(lambda up=up, data=data: self.quietly(up.send, data))

    def from_target(self, up, client):
        while True:
            try:
                data = up.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                continue  # e.g. ECONNREFUSED while the target is down
            self.impair(lambda data=data: self.quietly(self.listener.sendto, data, client))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("listen", type=address)
    p.add_argument("target", type=address)
    p.add_argument("--delay", type=float, default=20.0)
    p.add_argument("--jitter", type=float, default=5.0)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--seed", type=int)
    args = p.parse_args()
    if args.seed is not None:
        random.seed(args.seed)
    relay = Relay(args)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    print("ready", flush=True)
    await stop
    print(f"passed {relay.passed} dropped {relay.dropped}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
