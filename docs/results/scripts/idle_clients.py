#!/usr/bin/env python3
"""idle_clients.py HOST PORT N PIDFILE: opens N connections, each sends 64 bytes and
reads the echo, then stays idle; prints the server's VmRSS before and after
(from /proc/PID/status) and the difference per client."""
import os, resource, socket, sys, time
host, port, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, max(n + 100, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
time.sleep(0.5)
before = rss()
socks = []
for i in range(n):
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = bytes([(i + j) % 251 for j in range(64)])
    s.sendall(msg)
    got = b""
    while len(got) < 64:
        got += s.recv(64 - len(got))
    assert got == msg
    socks.append(s)
time.sleep(1.0)
after = rss()
print(f"clients={n} rss_before_kb={before} rss_after_kb={after} per_client_bytes={(after - before) * 1024 / n:.0f}")
for s in socks: s.close()
