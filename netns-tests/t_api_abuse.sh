#!/usr/bin/env bash
# A member of the API group misusing the local API: (a) a 1 MiB body for POST /v1/peers (whose limit is
# 1 KiB) is answered 413 from the request head, at once, without the daemon reading it; (b) 32 clients
# that connect and never send, 32 long-polls whose answers nobody reads, and 32 clients that never read
# a large answer each leave a 33rd client its answer within a few seconds. Prints every time measured.
. "$(dirname "$0")/lib.sh"

ns_add a
mr_config a </dev/null
mr_start a

in_ns a python3 - "$MR_DIR/a.sock" <<'EOF'
import json, socket, sys, threading, time

path = sys.argv[1]
failures = []


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def reply_of(s, timeout):
    """The status and body of the reply on s (status 0: none within timeout)."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, body


def ask(request, timeout=10.0):
    start = time.monotonic()
    s = connect()
    s.sendall(request)
    status, body = reply_of(s, timeout)
    s.close()
    return status, body, time.monotonic() - start


def post(path, value):
    body = json.dumps(value).encode()
    return b"POST %s HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        path.encode(), len(body), body)


def check(what, ok, took):
    print(f"{what}: {took * 1000:.0f} ms{'' if ok else '  <-- FAIL'}")
    if not ok:
        failures.append(what)


# (a) A megabyte for a peer URI, sent as an ordinary client sends it: head and body at once.
body = json.dumps({"uri": "udp://[::1]:9100?password=" + "x" * (1 << 20)}).encode()[: 1 << 20]
start = time.monotonic()
s = connect()
s.sendall(b"POST /v1/peers HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))


def send_body():
    try:
        s.sendall(body)
    except OSError:
        pass  # the daemon closed without reading it


sender = threading.Thread(target=send_body)
sender.start()
status, _ = reply_of(s, 10)
took = time.monotonic() - start
s.close()
sender.join()
check(f"(a) 1 MiB body to POST /v1/peers: status {status} (want 413)", status == 413 and took < 0.5, took)

# Data for large answers: a drop of about 1 MiB of base64.
for i in range(16):
    status, reply, _ = ask(post("/v1/crdt/write", {
        "namespace": "abuse", "document": f"d{i}", "kind": "lww", "op": "write", "value": "x" * 60000}))
    if status != 200:
        sys.exit(f"FAIL: crdt write: {status} {reply[:200]!r}")
status, reply, _ = ask(b"GET /v1/crdt HTTP/1.1\r\n\r\n")
version = json.loads(reply)["version"]

SELF = b"GET /v1/self HTTP/1.1\r\n\r\n"

# (b1) 32 clients that connect and never send anything.
idle = [connect() for _ in range(32)]
time.sleep(0.2)
status, _, took = ask(SELF)
check(f"(b) 33rd client after 32 silent ones: status {status}", status == 200 and took < 2, took)
for c in idle:
    c.close()

# (b2) 32 five-minute long-polls whose answers nobody reads.
watches = []
for _ in range(32):
    c = connect()
    c.sendall(b"GET /v1/crdt/watch?since=%d&timeout=300 HTTP/1.1\r\n\r\n" % (version + 1000))
    watches.append(c)
time.sleep(0.2)
status, _, took = ask(SELF)
check(f"(b) 33rd client after 32 unread long-polls: status {status}", status == 200 and took < 2, took)

# (b3) 32 clients that ask for a 1 MiB answer and never read it.
unread = []
for _ in range(32):
    c = connect()
    c.sendall(post("/v1/crdt/export", {}))
    unread.append(c)
time.sleep(0.2)
status, _, took = ask(SELF)
check(f"(b) 33rd client after 32 unread 1 MiB answers: status {status}", status == 200 and took < 5, took)
# Those readers were cut off: what they can still read is less than the answer.
time.sleep(4)
unread[-1].setblocking(False)
got = 0
try:
    while True:
        chunk = unread[-1].recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
except (BlockingIOError, ConnectionResetError):
    pass
print(f"(b) an unread 1 MiB answer was cut off after {got} bytes")
if got >= 1 << 20:
    failures.append("an unread answer was not cut off")
for c in watches + unread:
    c.close()

status, _, took = ask(SELF)
check(f"afterwards: status {status}", status == 200 and took < 1, took)
if failures:
    sys.exit("FAIL: " + "; ".join(failures))
EOF
grep -q "panicked" "$MR_DIR/a.log" && fail "the daemon panicked"
kill -0 "$(cat "$MR_DIR/a.pid")" || fail "the daemon died"
echo "the API stayed available to other clients"
