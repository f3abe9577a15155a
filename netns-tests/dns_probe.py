#!/usr/bin/env python3
"""A small DNS client for the netns tests (the namespaces have no resolver), standard library only.

    dns_probe.py query SERVER NAME [TYPE] [tcp]  -> JSON {"rcode", "answers": [...], "aa"}
    dns_probe.py fetch SERVER URL                 -> resolves the URL's host (AAAA) at SERVER, then
                                                     GETs the URL from that address; prints the body
    dns_probe.py serve [ADDR]:PORT ADDRESS        -> an upstream server for the tests: answers every
                                                     AAAA query with ADDRESS, over UDP and TCP
    dns_probe.py bench SERVER NAME SECONDS        -> JSON {"queries", "answered", "per_second",
                                                     "p50_ms", "p99_ms"}: a window of 64 queries in
                                                     flight over UDP for SECONDS

SERVER is an IPv6 address (port 53) or [ADDR]:PORT."""
import ipaddress
import json
import random
import select
import socket
import struct
import sys
import time
import urllib.parse

TYPES = {"A": 1, "PTR": 12, "AAAA": 28, "TXT": 16, "ANY": 255}


def server_address(text):
    if text.startswith("["):
        host, port = text[1:].split("]:")
        return host, int(port)
    return text, 53


def build(name, qtype, qid):
    out = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00" + struct.pack("!HH", TYPES[qtype], 1)


def read_name(msg, pos):
    labels, jumped, end = [], False, None
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = pos + 2
            pos, jumped = ((n & 0x3F) << 8) | msg[pos + 1], True
            continue
        pos += 1
        if n == 0:
            break
        labels.append(msg[pos:pos + n].decode())
        pos += n
    return ".".join(labels), (end if jumped else pos)


def parse(msg):
    qid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    pos = 12
    for _ in range(qd):
        _, pos = read_name(msg, pos)
        pos += 4
    answers = []
    for _ in range(an):
        _, pos = read_name(msg, pos)
        rtype, _, ttl, length = struct.unpack("!HHIH", msg[pos:pos + 10])
        pos += 10
        data = msg[pos:pos + length]
        if rtype == 28:
            answers.append(str(ipaddress.IPv6Address(data)))
        elif rtype == 12:
            answers.append(read_name(msg, pos)[0])
        else:
            answers.append(data.hex())
        pos += length
    return {"id": qid, "rcode": flags & 0xF, "aa": bool(flags & 0x400), "answers": answers}


def query(server, name, qtype="AAAA", tcp=False, timeout=2.0):
    host, port = server_address(server)
    qid = random.randrange(65536)
    message = build(name, qtype, qid)
    if tcp:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(message)) + message)
            length = struct.unpack("!H", s.recv(2))[0]
            reply = b""
            while len(reply) < length:
                reply += s.recv(length - len(reply))
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.sendto(message, (host, port))
        reply = s.recv(4096)
    out = parse(reply)
    assert out["id"] == qid
    return out


def fetch(server, url):
    parts = urllib.parse.urlsplit(url)
    answer = query(server, parts.hostname)
    if not answer["answers"]:
        raise SystemExit(f"{parts.hostname}: no address ({answer})")
    address = answer["answers"][0]
    with socket.create_connection((address, parts.port or 80), timeout=5) as s:
        s.sendall(f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {parts.hostname}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"HTTP: {head.split(chr(13).encode())[0]!r}")
    sys.stdout.write(body.decode(errors="replace"))


def bench(server, name, seconds):
    host, port = server_address(server)
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setblocking(False)
    pending, latencies, sent = {}, [], 0
    end = time.time() + seconds
    qid = 0
    while time.time() < end:
        while len(pending) < 64:
            qid = (qid + 1) & 0xFFFF
            s.sendto(build(name, "AAAA", qid), (host, port))
            pending[qid] = time.perf_counter()
            sent += 1
        ready, _, _ = select.select([s], [], [], 0.5)
        if not ready:
            pending.clear()  # lost: start a fresh window
            continue
        while True:
            try:
                reply = s.recv(4096)
            except BlockingIOError:
                break
            rid = struct.unpack("!H", reply[:2])[0]
            started = pending.pop(rid, None)
            if started is not None:
                latencies.append(time.perf_counter() - started)
    latencies.sort()
    pick = lambda q: round(latencies[int(q * (len(latencies) - 1))] * 1000, 3) if latencies else None
    print(json.dumps({"queries": sent, "answered": len(latencies),
                      "per_second": round(len(latencies) / seconds),
                      "p50_ms": pick(0.5), "p99_ms": pick(0.99)}))


def serve(listen, address):
    import threading
    host, port = server_address(listen)

    def reply(query):
        qid, _, _, _, _, _ = struct.unpack("!HHHHHH", query[:12])
        _, end = read_name(query, 12)
        question = query[12:end + 4]
        qtype = struct.unpack("!H", query[end:end + 2])[0]
        answers = 1 if qtype == 28 else 0
        out = struct.pack("!HHHHHH", qid, 0x8180, 1, answers, 0, 0) + question
        if answers:
            out += b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 60, 16) + ipaddress.IPv6Address(address).packed
        return out

    def tcp():
        t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((host, port))
        t.listen(16)
        while True:
            conn, _ = t.accept()
            with conn:
                length = struct.unpack("!H", conn.recv(2))[0]
                query = b""
                while len(query) < length:
                    query += conn.recv(length - len(query))
                answer = reply(query)
                conn.sendall(struct.pack("!H", len(answer)) + answer)

    threading.Thread(target=tcp, daemon=True).start()
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.bind((host, port))
    while True:
        query, peer = u.recvfrom(4096)
        u.sendto(reply(query), peer)


def main():
    mode = sys.argv[1]
    if mode == "query":
        qtype = sys.argv[4] if len(sys.argv) > 4 else "AAAA"
        tcp = len(sys.argv) > 5 and sys.argv[5] == "tcp"
        print(json.dumps(query(sys.argv[2], sys.argv[3], qtype, tcp)))
    elif mode == "fetch":
        fetch(sys.argv[2], sys.argv[3])
    elif mode == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif mode == "bench":
        bench(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
