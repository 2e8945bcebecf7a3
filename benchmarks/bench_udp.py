"""SOCKS5 UDP benchmark: datagrams direct vs through the proxy (IP client) vs from inside a
``proxy``-mode sandbox (proxyinit frames them over the unix socket), plus the cost of
proxyinit's SOCKS5 handshake watch on CONNECT setup.

Each party is its own process: a UDP/TCP echo backend, the proxy (this process, own thread),
and the client (outside, or inside a real bubblewrap sandbox). Every figure is the median of RUNS.

1. rtt: sequential 64-byte round trips; median microseconds.
2. rate: 1,200-byte datagrams with WINDOW in flight for SECONDS; replies per second and MB/s.
3. setup (inside a sandbox only): new SOCKS5 CONNECT (handshake watched by proxyinit) and new
   HTTP CONNECT (opaque relay) to the same backend; median milliseconds per tunnel. With
   ``--baseline REV`` the same is timed for proxyinit.py as of REV and as now, both under plain
   ``bwrap --unshare-net`` (no seccomp), so the watch's cost shows as a difference.

Usage: .venv/bin/python benchmarks/bench_udp.py [--runs 5] [--pings 2000] [--seconds 2]
       [--setup 300] [--baseline 3454d3d^]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

BACKEND = r"""
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
t = socket.create_server(("127.0.0.1", 0), backlog=1024)
def tcp():
    while True:
        c, _ = t.accept()
        c.close()
threading.Thread(target=tcp, daemon=True).start()
print(u.getsockname()[1], t.getsockname()[1], flush=True)
while True:
    data, addr = u.recvfrom(65535)
    u.sendto(data, addr)
"""

CLIENT = r"""
import json, socket, statistics, struct, sys, time
P = json.loads(sys.argv[1])
E, T = P["echo"], P["tcp"]
HDR = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", E)

def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

def socks(port, cmd, atyp_addr, dport):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(b"\x05\x01\x00")
    recvn(c, 2)
    c.sendall(bytes([5, cmd, 0]) + atyp_addr + struct.pack(">H", dport))
    return c, recvn(c, 10)

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
u.settimeout(2)
out = {}
if P["pings"] == 0:
    pass
elif P["via"] is None:
    dest, head = ("127.0.0.1", E), b""
else:
    ctl, rep = socks(P["via"], 3, b"\x01" + bytes(4), u.getsockname()[1])
    dest, head = (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0]), HDR
if P["pings"]:
    small = head + b"p" * 64
    lat = []
    for _ in range(P["pings"]):
        t0 = time.perf_counter()
        u.sendto(small, dest)
        u.recv(70000)
        lat.append(time.perf_counter() - t0)
    out["rtt_us"] = statistics.median(lat) * 1e6
    big = head + b"d" * 1200
    u.settimeout(0.5)
    got, inflight, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < P["seconds"]:
        while inflight < P["window"]:
            u.sendto(big, dest)
            inflight += 1
        try:
            u.recv(70000)
            got += 1
            inflight -= 1
        except socket.timeout:
            inflight = 0  # lost datagrams: refill the window
            out["stalls"] = out.get("stalls", 0) + 1
    el = time.perf_counter() - t0
    out["rate_dps"] = got / el
    out["rate_mbs"] = got * 1200 / el / 1e6
if P.get("setup"):
    for name, fn in (("socks_connect_ms", lambda: socks(1080, 1, b"\x01" + socket.inet_aton("127.0.0.1"), T)[0]),
                     ("http_connect_ms", None)):
        times = []
        for _ in range(P["setup"]):
            t0 = time.perf_counter()
            if fn is not None:
                c = fn()
            else:
                c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
                c.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % T)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += c.recv(4096)
            times.append(time.perf_counter() - t0)
            c.close()
        out[name] = statistics.median(times) * 1e3
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pings", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--setup", type=int, default=300)
    ap.add_argument("--baseline", metavar="REV", default=None,
                    help="also time tunnel setup through proxyinit.py as of this git revision "
                         "(both proxyinit versions then run under plain bwrap --unshare-net)")
    args = ap.parse_args()

    from corral.netproxy import Listen, PolicyInputs, Proxy, build_policy, proxy_env
    from corral.sandbox import NetworkPlan, Sandbox, build_plan
    from corral.sandbox.profiles import NetworkMode

    backend = subprocess.Popen([sys.executable, "-c", BACKEND], stdout=subprocess.PIPE, text=True)
    assert backend.stdout is not None
    echo, tcp = (int(x) for x in backend.stdout.readline().split())
    tmp = Path(tempfile.mkdtemp(prefix="bench-udp-"))
    os.environ["CORRAL_HOME"] = str(tmp / "home")
    sock = tmp / "proxy.sock"
    policy = build_policy(PolicyInputs(domains={"127.0.0.1": "allow"}, allow_udp=True,
                                       allow_local=[f"127.0.0.1:{echo}", f"127.0.0.1:{tcp}"]))
    proxy = Proxy(policy, listen=Listen(http=None, socks=("127.0.0.1", 0), unix=str(sock)))
    ep = proxy.start()
    assert ep.socks is not None
    (tmp / "ws").mkdir()
    net = NetworkPlan(mode=NetworkMode.PROXY, proxy_socket=sock, proxy_env=proxy_env(3128, 1080))
    sandbox = Sandbox(build_plan(":workspace", tmp / "ws", network=net, home=tmp,
                                 exclude_slash_tmp=True, exclude_tmpdir=True))
    base = {"echo": echo, "tcp": tcp, "pings": args.pings, "seconds": args.seconds,
            "window": args.window}
    parties = {
        "direct": lambda: [sys.executable, "-c", CLIENT, json.dumps({**base, "via": None})],
        "proxy, IP client": lambda: [sys.executable, "-c", CLIENT,
                                     json.dumps({**base, "via": ep.socks[1]})],
        "sandbox (proxyinit, framed)": lambda: [sys.executable, "-c", CLIENT,
                                                json.dumps({**base, "via": 1080,
                                                            "setup": args.setup})],
    }
    if args.baseline:
        old = tmp / "proxyinit_baseline.py"
        old.write_text(subprocess.run(
            ["git", "-C", str(HERE.parent), "show", f"{args.baseline}:src/corral/sandbox/proxyinit.py"],
            check=True, capture_output=True, text=True).stdout)
        new = HERE.parent / "src/corral/sandbox/proxyinit.py"
        setup_only = json.dumps({**base, "via": None, "pings": 0, "setup": args.setup})
        # baseline, now, baseline again: "now" sits between two copies that show the noise
        for label, path in ((f"proxyinit @ {args.baseline}", old), ("proxyinit now", new),
                            (f"proxyinit @ {args.baseline} (again)", old)):
            parties[label] = lambda path=path: [  # type: ignore[misc]
                "bwrap", "--unshare-net", "--die-with-parent", "--dev-bind", "/", "/",
                "--proc", "/proc", sys.executable, "-I", "-S", str(path), "--port", "3128",
                "--port", "1080", "--to", str(sock), "--bpf-fd", "none", "--",
                sys.executable, "-c", CLIENT, setup_only]
    results: dict[str, list[dict[str, float]]] = {k: [] for k in parties}
    print(machine())
    print(f"# bench_udp: {os.cpu_count()} cpus, python {sys.version.split()[0]}, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    try:
        for _ in range(args.runs):
            for name, argv in parties.items():
                if name.startswith("sandbox"):
                    proc = sandbox.spawn(argv(), tmp / "ws", None, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
                    out, err = proc.communicate(timeout=120)
                else:
                    r = subprocess.run(argv(), capture_output=True, text=True, timeout=120)
                    out, err = r.stdout, r.stderr
                if not out.strip():
                    raise SystemExit(f"{name} failed: {err}")
                results[name].append(json.loads(out))
                print(name, {k: round(v, 2) for k, v in results[name][-1].items()}, flush=True)
    finally:
        sandbox.close()
        proxy.stop()
        backend.kill()
    print("\n| measure | " + " | ".join(parties) + " |")
    print("|---|" + "---|" * len(parties))
    for key, label in (("rtt_us", "64 B round trip, median µs"),
                       ("rate_dps", "1,200 B datagrams/s (window 32)"),
                       ("rate_mbs", "MB/s"),
                       ("socks_connect_ms", "new SOCKS5 CONNECT, ms"),
                       ("http_connect_ms", "new HTTP CONNECT, ms")):
        cells = []
        for name in parties:
            vals = [r[key] for r in results[name] if key in r]
            cells.append(f"{statistics.median(vals):.1f}" if vals else "—")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
