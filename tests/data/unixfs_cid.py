#!/usr/bin/env python3
"""A second, independent computation of a file's IPFS CID (UnixFS, CIDv1, raw leaves, SHA-256,
fixed-size chunks, balanced DAG), written from the specs (dag-pb, UnixFS, IPIP-499), standard
library only. Usage: unixfs_cid.py FILE [CHUNK [WIDTH]] (defaults: the unixfs-v1-2025 profile,
1048576 and 1024). Prints the root CID in base32."""
import base64
import hashlib
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(tag, payload):
    return bytes([tag]) + varint(len(payload)) + payload


def cid(codec, block):
    return bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(block).digest()


def text(c):
    return "b" + base64.b32encode(c).decode().rstrip("=").lower()


def node(children):
    """children: [(cid, tsize, filesize)] -> (block bytes, filesize)."""
    links = b"".join(field(0x12, field(0x0A, c) + field(0x12, b"") + b"\x18" + varint(t))
                     for c, t, _ in children)
    total = sum(s for _, _, s in children)
    data = b"\x08\x02" + b"\x18" + varint(total) + b"".join(b"\x20" + varint(s) for _, _, s in children)
    return links + field(0x0A, data), total


def root_of(data, chunk, width):
    level = []
    for i in range(0, max(len(data), 1), chunk):
        leaf = data[i:i + chunk]
        level.append((cid(0x55, leaf), len(leaf), len(leaf)))
    while len(level) > 1:
        parents = []
        for i in range(0, len(level), width):
            group = level[i:i + width]
            block, size = node(group)
            parents.append((cid(0x70, block), len(block) + sum(t for _, t, _ in group), size))
        level = parents
    return level[0][0]


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
    width = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    print(text(root_of(data, chunk, width)))


if __name__ == "__main__":
    main()
