#!/usr/bin/env python3
"""Writes the seed corpus of the node_link fuzz target into fuzz/seeds/node_link/.

Each seed is a config byte and operations in the target's input format (see
fuzz_targets/node_link.rs: `World::op` and `World::message`): one seed per operation and per
message kind, and a few stories (a packet to C: lookup, session, delivery; the same in a closed
overlay; fragments on a small MTU; rekeys after minutes). Run from anywhere:
    python3 fuzz/seeds/node_link.py
"""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_link")

# Key selectors (World::key) and signers (World::signer).
A, B, C, D = 0, 1, 2, 3
# Coordinate selectors (World::coords).
CO_A, CO_B, CO_C, CO_EMPTY = 0, 1, 2, 3


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def blob(b):
    assert len(b) < 0x8000
    if len(b) < 0x80:
        return bytes([len(b)]) + b
    return bytes([0x80 | len(b) >> 8, len(b) & 0xFF]) + b


def packet(src, dst, payload=b"ping", next_header=59):
    # address selectors, payload, traffic class nibble, next header, truncation byte (non-zero
    # low nibble: kept whole)
    return bytes([src, dst]) + blob(payload) + bytes([0, next_header, 1])


# Messages (World::message), each an opcode and its fields.
def keepalive(flags=1):
    return bytes([0]) + u32(1000) + u32(0) + u16(0) + bytes([flags])


def fragment(index, count, data):
    return bytes([1]) + u32(1) + bytes([index, count]) + blob(data)


def sig_req_last():
    return bytes([2, 1]) + u64(5) + u64(6)


def sig_res_valid(signer=B, port=1):
    return bytes([3, 1]) + u64(5) + u64(6) + u16(port) + bytes([signer])


def announce_signed(key=C, parent=B, root=False, seq=7, port=9, flags=0):
    out = bytes([4, key, parent, 1 if root else 0, 1, seq - 1]) + u64(42)
    if not root:
        out += u16(port)
    return out + bytes([flags, 1])


def announce_held(index=0, mode=1, arg=5):
    return bytes([5, index, mode, arg])


def announce_ack(key=A, seq=1):
    return bytes([6, 1, key]) + u64(seq)


def traffic(dest_path, src_path, dest, src, kind, payload=b"probe"):
    # watermark u64::MAX, kind selector, raw payload
    return bytes([7, dest_path, src_path, dest, src, 0, kind, 1]) + blob(payload)


def lookup_reply(signer=C):
    # to A from C, kind LOOKUP_REPLY, signed payload for A's last lookup
    # (signed over the packet's source path, CO_C)
    return bytes([7, CO_A, CO_C, A, C, 0, 1, 0, signer, 1]) + u64(9)


def path_broken(key=C):
    return bytes([7, CO_A, CO_B, A, B, 0, 2, 0, key])


def subtree(target_a=1, target_b=2):
    return bytes([9, 0, target_a, target_b, 0])


def subtree_ack():
    return bytes([10, 1, 0])


def lookup(target=0, source=B):
    return bytes([11]) + u64(77) + bytes([source, CO_B, target])


def neighbors(entries=(C, D)):
    out = bytes([12, 0, 1, len(entries)])
    for e in entries:
        out += bytes([e, 1])
    return out


def neighbors_ack():
    return bytes([13, 1, 0])


def msg_packet(src=B, dst=A):
    return bytes([14]) + packet(src, dst)


def msg_service(port=7):
    return bytes([15]) + u16(port) + blob(b"service")


def msg_super(src=B, dst=A):
    return bytes([16]) + packet(src, dst, b"x" * 200, 6) + u16(100) + bytes([0])


def msg_raw(kind=0x77):
    return bytes([17, kind]) + blob(b"unknown") + bytes([1])


# Operations (World::op).
def frame(data, traffic=False):
    return bytes([0]) + blob(data) + bytes([1 if traffic else 0])


def messages(*ms):
    assert 1 <= len(ms) <= 6
    return bytes([1, len(ms) - 1]) + b"".join(ms)


def raw_datagram(mode, data=b""):
    if mode == 0:
        return bytes([4, 0]) + blob(data)
    if mode == 1:
        return bytes([4, 1])
    return bytes([4, 2]) + u16(20) + bytes([3])


def advance_ms(ms):
    return bytes([5, 2]) + u16(ms)


def advance_s(s):
    return bytes([5, 3, s])


def local_packet(dst, payload=b"hello", super_packet=False):
    head = bytes([7]) + packet(A, dst, payload, 6 if super_packet else 59)
    if super_packet:
        return head + bytes([0]) + u16(1200) + bytes([0])
    return head + bytes([1])


def service(dest=C, port=7):
    return bytes([9, dest]) + u16(port) + blob(b"svc")


def session_send(from_c, *ms):
    return bytes([10, 1 if from_c else 0, 0, len(ms) - 1]) + b"".join(ms)


def session_raw(from_c, data):
    return bytes([10, 1 if from_c else 0, 1]) + blob(data)


def route(from_c, kind, payload):
    return bytes([12, 1 if from_c else 0, kind]) + blob(payload)


def fragments(pad, *ms):
    return bytes([13, len(ms) - 1]) + b"".join(ms) + u16(pad)


def seeds():
    settle = advance_ms(300)
    every_message = [
        keepalive(),
        fragment(0, 2, b"half"),
        sig_req_last(),
        sig_res_valid(),
        announce_signed(),
        announce_signed(key=D, parent=D, root=True, port=0),
        announce_held(),
        announce_ack(),
        traffic(CO_A, CO_C, A, C, 0),
        traffic(CO_C, CO_A, C, A, 3),
        lookup_reply(),
        path_broken(),
        subtree(),
        subtree_ack(),
        lookup(0),
        lookup(1),
        neighbors(),
        neighbors_ack(),
        msg_packet(),
        msg_service(),
        msg_super(),
        msg_raw(),
    ]
    out = {}
    for i, m in enumerate(every_message):
        out[f"message-{i:02}"] = bytes([0]) + messages(m) + settle
    out["all-messages"] = (
        bytes([0])
        + b"".join(messages(*every_message[i : i + 6]) for i in range(0, len(every_message), 6))
        + settle
    )
    story = (
        local_packet(C)
        + advance_ms(200)
        + session_send(True, msg_packet(C, A), msg_service())
        + local_packet(C, b"again")
        + advance_s(3)
    )
    for config in (0x00, 0x02, 0x04, 0x06, 0x09, 0x1B):
        out[f"story-{config:02x}"] = bytes([config]) + story
    out["neighbour-packet"] = bytes([0]) + local_packet(B) + local_packet(B, b"t" * 300, True)
    out["closed-neighbour"] = bytes([4]) + local_packet(B) + advance_ms(100) + session_send(False, msg_packet(B, A))
    out["stranger"] = bytes([0]) + local_packet(D) + advance_s(10)
    out["service"] = bytes([0]) + service(C) + advance_ms(100) + service(B)
    out["raw"] = bytes([0]) + frame(b"\x01\x0b" + b"\x00" * 11) + raw_datagram(0, b"\x01\x04junk") + raw_datagram(1) + raw_datagram(2)
    out["routed"] = bytes([0]) + route(True, 0, b"probe") + route(False, 2, b"\x00" * 32) + route(True, 3, b"not a session")
    out["session-raw"] = bytes([0]) + session_raw(True, b"\x40\x05hello") + advance_ms(50)
    out["fragments"] = bytes([0x08]) + fragments(2000, keepalive(), msg_packet()) + fragments(600, traffic(CO_A, CO_C, A, C, 0))
    out["rekey"] = bytes([0]) + local_packet(C) + b"".join(advance_s(40) for _ in range(6)) + local_packet(C)
    out["rekey-b-initiates"] = bytes([0x13]) + b"".join(advance_s(50) for _ in range(5)) + local_packet(B)
    out["long-jump"] = bytes([0]) + bytes([5, 3, 200]) + local_packet(B)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds())} seeds in {OUT}")


if __name__ == "__main__":
    main()
