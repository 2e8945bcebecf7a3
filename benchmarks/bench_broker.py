"""Credential broker benchmark: a brokered HTTPS request vs the same request through a plain
CONNECT tunnel, through the same corral proxy, in the same run.

Three processes on loopback: an HTTPS backend (asyncio, keep-alive) listening on two ports,
corral's proxy (``Proxy`` with a ``Broker`` whose one credential belongs to the first port; the
second port is an ordinary allowed host, so its CONNECT stays an opaque tunnel), and this
client (``http.client`` through the tunnel, an ``Authorization: Bearer <placeholder>`` header
on every request). Measured, interleaved per round, medians over rounds:

1. new connection per request: TCP to the proxy, CONNECT, TLS handshake (to corral's leaf for
   the brokered host, to the backend for the tunnel), one GET of 100 bytes; ms per request;
2. keep-alive: sequential GETs of 100 bytes on one connection; ms per request;
3. throughput: one GET of SIZE MiB on one connection; MB/s.

Usage: .venv/bin/python benchmarks/bench_broker.py [--runs 5] [--new 200] [--keepalive 1000]
       [--size-mib 64] [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import ROOT, machine  # noqa: E402

BACKEND = r"""
import asyncio, ssl, sys
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[1])
BLOCK = b"x" * (1 << 20)

async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            if path.startswith(b"/big/"):
                n = int(path[5:]) << 20
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
                while n:
                    k = min(n, len(BLOCK))
                    w.write(BLOCK[:k])
                    n -= k
                    await w.drain()
            else:
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 100)
                await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        w.close()

async def main():
    a = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    b = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    print(a.sockets[0].getsockname()[1], b.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

PROXY = r"""
import sys, time
from pathlib import Path
from corral.netproxy import PolicyInputs, Proxy, build_policy
from corral.netproxy.broker import Broker, Credential
from corral.netproxy.mitm import Mitm
a, b, ca, home = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
cred = Credential.new("bench", [f"127.0.0.1:{a}"], "sk-bench-real-secret-0123456789abcdef")
mitm = Mitm(home / "proxy-ca", upstream_cafile=ca)
policy = build_policy(PolicyInputs(allow_local=[f"127.0.0.1:{a}", f"127.0.0.1:{b}"]))
proxy = Proxy(policy, mitm=mitm, broker=Broker([cred]))
ep = proxy.start()
print(ep.http[1], cred.placeholder, mitm.bundle(home / "bundle.pem"), flush=True)
time.sleep(10**6)
"""


def _conn(proxy: int, port: int, ctx: ssl.SSLContext) -> http.client.HTTPSConnection:
    c = http.client.HTTPSConnection("127.0.0.1", proxy, context=ctx, timeout=30)
    c.set_tunnel("127.0.0.1", port)
    return c


def _get(c: http.client.HTTPSConnection, path: str, auth: str) -> int:
    c.request("GET", path, headers={"Authorization": f"Bearer {auth}"})
    r = c.getresponse()
    n = 0
    while chunk := r.read(1 << 20):
        n += len(chunk)
    return n


def new_connections(proxy: int, port: int, ctx: ssl.SSLContext, auth: str, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        c = _conn(proxy, port, ctx)
        _get(c, "/small", auth)
        c.close()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def keepalive(proxy: int, port: int, ctx: ssl.SSLContext, auth: str, n: int) -> float:
    c = _conn(proxy, port, ctx)
    _get(c, "/small", auth)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        _get(c, "/small", auth)
        times.append(time.perf_counter() - t)
    c.close()
    return statistics.median(times) * 1000


def bulk(proxy: int, port: int, ctx: ssl.SSLContext, auth: str, mib: int) -> float:
    c = _conn(proxy, port, ctx)
    t = time.perf_counter()
    got = _get(c, f"/big/{mib}", auth)
    dt = time.perf_counter() - t
    c.close()
    assert got == mib << 20, got
    return got / dt / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--new", type=int, default=200)
    ap.add_argument("--keepalive", type=int, default=1000)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.new, args.keepalive, args.size_mib = 2, 30, 100, 8
    print(machine())
    import trustme

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(home / "ca.pem"))
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
            str(home / "server.pem"))
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(home / "server.pem")],
                                   stdout=subprocess.PIPE, text=True)
        assert backend.stdout is not None
        brokered, tunnel = backend.stdout.readline().split()
        proxy_p = subprocess.Popen([sys.executable, "-c", PROXY, brokered, tunnel,
                                    str(home / "ca.pem"), str(home)], stdout=subprocess.PIPE,
                                   text=True, env=env)
        assert proxy_p.stdout is not None
        port_s, placeholder, bundle = proxy_p.stdout.readline().split()
        proxy = int(port_s)
        try:
            via_broker = ssl.create_default_context(cafile=bundle)
            via_tunnel = ssl.create_default_context(cafile=str(home / "ca.pem"))
            parties = {"plain CONNECT": (int(tunnel), via_tunnel),
                       "brokered": (int(brokered), via_broker)}
            res: dict[str, dict[str, list[float]]] = {p: {"new": [], "ka": [], "bulk": []}
                                                      for p in parties}
            for _ in range(args.runs):
                for name, (port, ctx) in parties.items():
                    res[name]["new"].append(new_connections(proxy, port, ctx, placeholder,
                                                            args.new))
                    res[name]["ka"].append(keepalive(proxy, port, ctx, placeholder,
                                                     args.keepalive))
                    res[name]["bulk"].append(bulk(proxy, port, ctx, placeholder,
                                                  args.size_mib))
        finally:
            proxy_p.kill()
            backend.kill()
    med = {p: {k: statistics.median(v) for k, v in r.items()} for p, r in res.items()}
    print(f"runs {args.runs}; per run: {args.new} new connections, {args.keepalive} keep-alive "
          f"requests, one {args.size_mib} MiB download; medians over runs")
    print(f"{'':16} {'new conn + GET, ms':>20} {'keep-alive GET, ms':>20} {'bulk, MB/s':>12}")
    for p, m in med.items():
        print(f"{p:16} {m['new']:20.3f} {m['ka']:20.3f} {m['bulk']:12.0f}")
    b, t = med["brokered"], med["plain CONNECT"]
    print(f"{'added':16} {b['new'] - t['new']:+20.3f} {b['ka'] - t['ka']:+20.3f} "
          f"{100 * b['bulk'] / t['bulk']:11.0f}%")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
