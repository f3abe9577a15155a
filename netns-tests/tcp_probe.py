#!/usr/bin/env python3
"""TCP probes for the firewall tests (run inside a namespace):

  tcp_probe.py serve ADDR PORT         echo server, one thread per connection
  tcp_probe.py try ADDR PORT [SECS]    one connection attempt: prints open, prohibited (ICMPv6
                                       administratively prohibited: EACCES), refused or timeout
  tcp_probe.py hold ADDR PORT          holds a connection, echoing a byte every 0.05 s; prints "held",
                                       then "stopped TIME after N" when it stops answering
  tcp_probe.py flood ADDR PORT COUNT   COUNT raw TCP SYNs from random ports (the kernel fills in the
                                       IPv6 header and the checksum); prints "COUNT SECONDS"
"""
import errno, random, socket, struct, sys, threading, time

mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "serve":
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1024)

    def echo(c):
        with c:
            while data := c.recv(4096):
                c.sendall(data)

    while True:
        threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
elif mode == "try":
    s = socket.socket(socket.AF_INET6)
    s.settimeout(float(sys.argv[4]) if len(sys.argv) > 4 else 2)
    try:
        s.connect((addr, port))
        s.sendall(b"hi")
        print("open" if s.recv(2) == b"hi" else "broken")
    except PermissionError:
        print("prohibited")
    except ConnectionRefusedError:
        print("refused")
    except OSError as e:
        print("timeout" if isinstance(e, socket.timeout) or e.errno == errno.ETIMEDOUT else f"error {e}")
elif mode == "hold":
    s = socket.socket(socket.AF_INET6)
    s.settimeout(2)
    s.connect((addr, port))
    s.settimeout(0.5)
    print("held", flush=True)
    answered = 0
    while True:
        try:
            s.sendall(b"x")
            if s.recv(1) != b"x":
                break
            answered += 1
        except OSError:
            break
        time.sleep(0.05)
    print(f"stopped {time.time():.3f} after {answered}", flush=True)
elif mode == "flood":
    count = int(sys.argv[4])
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.setsockopt(socket.IPPROTO_IPV6, 7, 16)  # IPV6_CHECKSUM: the kernel sums at offset 16
    start = time.time()
    for i in range(count):
        header = struct.pack("!HHIIBBHHH", random.randrange(1024, 65536), port,
                             random.getrandbits(32), 0, 5 << 4, 0x02, 1024, 0, 0)
        s.sendto(header, (addr, 0))
        if i % 500 == 499:
            time.sleep(0.01)  # let the overlay carry them rather than the TUN queue drop them
    print(f"{count} {time.time() - start:.2f}")
else:
    sys.exit(f"unknown mode {mode}")
