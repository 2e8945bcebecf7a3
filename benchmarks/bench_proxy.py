"""Managed network proxy benchmark: corral's proxy vs a direct connection vs srt's proxy.

Everything runs on loopback, each party in its own process (backend, proxy, client):

1. bulk: SIZE bytes (default 1 GiB) through one CONNECT tunnel; MB/s, median of RUNS, runs
   interleaved across parties; ratio = median of (proxy run / direct run just before it);
   the proxy process's CPU seconds per GiB (a number that load from elsewhere disturbs less).
2. setup: 2,000 sequential new tunnels (connect, CONNECT, 200, one echo round trip) vs the same
   round trip direct; median added latency.
3. concurrent: 200 tunnels held open at once, each moving PER_TUNNEL bytes; aggregate MB/s.
4. http: sequential keep-alive GETs forwarded by the proxy vs direct; requests/s and added
   median latency.

Reference party: haproxy (C, ``option splice-auto``) as a plain TCP forwarder to the backend (no
CONNECT handshake, no policy: strictly less work than a CONNECT proxy), to show what one userspace
TCP hop costs on this machine at all. Included when ``haproxy`` is on PATH (scripts/setup --dev).

With ``--compare-src DIR`` a second corral proxy runs from another source tree (for example
``git archive BASE src | tar -x -C DIR``), as the party "base", in the same run: before/after
numbers for a change. HTTP requests are then measured in RUNS interleaved rounds (direct, corral,
base, direct, ...) and reported as medians of the rounds.

Usage: .venv/bin/python benchmarks/bench_proxy.py [--size-mib 1024] [--runs 3] [--quick]
       [--compare-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine  # noqa: E402

ROOT = HERE.parent
CHUNK = 1 << 20

BACKEND = r"""
import asyncio, sys
BLOCK = b"x" * (1 << 20)
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

async def handle(r, w):
    try:
        line = await r.readline()
        if line.startswith(b"SEND "):
            n = int(line.split()[1])
            while n > 0:
                w.write(BLOCK[: min(n, len(BLOCK))])
                n -= min(n, len(BLOCK))
                await w.drain()
        elif line.startswith(b"ECHO"):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        elif line.startswith(b"GET "):
            while True:
                while (h := await r.readline()) not in (b"\r\n", b""):
                    pass
                if not h:
                    break
                w.write(RESP)
                await w.drain()
                line = await r.readline()
                if not line:
                    break
    except ConnectionError:
        pass
    finally:
        w.close()

async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()

asyncio.run(main())
"""


def start(cmd: list[str], *, from_stderr: bool = False, env: dict[str, str] | None = None
          ) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    stream = proc.stderr if from_stderr else proc.stdout
    assert stream is not None
    line = stream.readline()
    # corral prints "corral: network: proxy listening http=http://127.0.0.1:PORT" on stderr
    text = line.split("http://127.0.0.1:")[1].split()[0] if from_stderr else line.strip()
    return proc, int(text)


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_tunnel(proxy_port: int | None, backend: int, handshake: bool = True) -> socket.socket:
    if proxy_port is None:
        return socket.create_connection(("127.0.0.1", backend))
    if not handshake:  # a plain TCP forwarder (haproxy reference)
        return socket.create_connection(("127.0.0.1", proxy_port))
    s = socket.create_connection(("127.0.0.1", proxy_port))
    s.sendall(f"CONNECT 127.0.0.1:{backend} HTTP/1.1\r\nHost: 127.0.0.1:{backend}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("proxy closed the tunnel")
        buf += chunk
    if not buf.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(buf.decode(errors="replace"))
    return s


def bulk(proxy_port: int | None, backend: int, size: int, handshake: bool = True) -> float:
    s = open_tunnel(proxy_port, backend, handshake)
    buf = bytearray(CHUNK)
    t0 = time.perf_counter()
    s.sendall(f"SEND {size}\n".encode())
    got = 0
    while got < size:
        n = s.recv_into(buf)
        if not n:
            break
        got += n
    dt = time.perf_counter() - t0
    s.close()
    assert got == size, (got, size)
    return size / dt / 1e6


def setup_latency(proxy_port: int | None, backend: int, n: int, handshake: bool = True
                  ) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        s = open_tunnel(proxy_port, backend, handshake)
        s.sendall(b"ECHO\nx")
        s.recv(1)
        out.append(time.perf_counter() - t0)
        s.close()
    return out


async def _one_concurrent(proxy_port: int | None, backend: int, per: int, gate: asyncio.Event,
                          handshake: bool) -> int:
    r, w = await asyncio.open_connection("127.0.0.1", proxy_port or backend)
    if proxy_port is not None and handshake:
        w.write(f"CONNECT 127.0.0.1:{backend} HTTP/1.1\r\n\r\n".encode())
        head = await r.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
    await gate.wait()  # all tunnels open before anyone transfers
    w.write(f"SEND {per}\n".encode())
    got = 0
    while chunk := await r.read(1 << 18):
        got += len(chunk)
    w.close()
    return got


async def concurrent(proxy_port: int | None, backend: int, count: int, per: int,
                     handshake: bool = True) -> float:
    gate = asyncio.Event()
    tasks = [asyncio.create_task(_one_concurrent(proxy_port, backend, per, gate, handshake))
             for _ in range(count)]
    await asyncio.sleep(0.5)
    t0 = time.perf_counter()
    gate.set()
    got = await asyncio.gather(*tasks)
    dt = time.perf_counter() - t0
    assert all(g == per for g in got), got[:5]
    return sum(got) / dt / 1e6


def http_requests(proxy_port: int | None, backend: int, n: int) -> list[float]:
    s = socket.create_connection(("127.0.0.1", proxy_port or backend))
    target = f"http://127.0.0.1:{backend}/" if proxy_port else "/"
    req = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{backend}\r\n\r\n".encode()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(req)
        buf = b""
        while not buf.endswith(b"ok"):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed")
            buf += chunk
        out.append(time.perf_counter() - t0)
    s.close()
    return out


HAPROXY_CFG = """
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
listen forward
    bind 127.0.0.1:{port}
    option splice-auto
    server backend 127.0.0.1:{backend}
"""


def start_haproxy(backend: int, tmp: str) -> tuple[subprocess.Popen[str], int] | None:
    exe = shutil.which("haproxy")
    if exe is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = Path(tmp) / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=port, backend=backend))
    proc = subprocess.Popen([exe, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("haproxy did not start")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tunnels", type=int, default=2000)
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--per-tunnel-mib", type=int, default=4)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="small sizes, to check the script works")
    ap.add_argument("--compare-src", metavar="DIR",
                    help="also run corral's proxy from DIR/src (party 'base'), same run")
    a = ap.parse_args()
    if a.quick:
        a.size_mib, a.runs, a.tunnels, a.concurrent, a.per_tunnel_mib, a.requests = 64, 1, 200, 50, 1, 200
    py = sys.executable
    procs = []
    try:
        be, backend = start([py, "-c", BACKEND])
        procs.append(be)
        corral, cport = start(
            [str(Path(py).parent / "corral"), "proxy", "--no-config", "--listen", "127.0.0.1:0",
             "--allow", "127.0.0.1", "--allow-local", "127.0.0.1:*"], from_stderr=True)
        procs.append(corral)
        base_port = None
        if a.compare_src:
            env = {**os.environ, "PYTHONPATH": str(Path(a.compare_src).resolve() / "src")}
            base, base_port = start(
                [py, "-m", "corral", "proxy", "--no-config", "--listen", "127.0.0.1:0",
                 "--allow", "127.0.0.1", "--allow-local", "127.0.0.1:*"], from_stderr=True,
                env=env)
            procs.append(base)
        srt_port = None
        if (ROOT / ".tools/node/node_modules/@anthropic-ai/sandbox-runtime").is_dir():
            srt, srt_port = start(["node", str(HERE / "srt_proxy.mjs")])
            procs.append(srt)
        parties: list[tuple[str, int | None]] = [("direct", None), ("corral", cport)]
        if base_port:
            parties.append(("base", base_port))
        if srt_port:
            parties.append(("srt", srt_port))
        pids = {"corral": corral.pid}
        if base_port:
            pids["base"] = base.pid
        if srt_port:
            pids["srt"] = srt.pid
        tmp = tempfile.mkdtemp(prefix="bench-proxy-")
        hap = start_haproxy(backend, tmp)
        if hap is not None:
            procs.append(hap[0])
            parties.append(("haproxy", hap[1]))
            pids["haproxy"] = hap[0].pid
        handshake = {"haproxy": False}  # a TCP forwarder: no CONNECT
        size = a.size_mib << 20
        print(machine())
        print(f"# bench_proxy: "
              f"bulk {a.size_mib} MiB x {a.runs}, {a.tunnels} tunnels, {a.concurrent} concurrent x "
              f"{a.per_tunnel_mib} MiB, {a.requests} HTTP requests")
        results: dict[str, dict[str, float]] = {name: {} for name, _ in parties}
        # Bulk runs interleave the parties (direct, corral, srt, direct, ...) so a change in load
        # from other processes hits all of them alike; each proxy ratio is taken against the
        # direct run just before it, and the proxy's own CPU time is read from /proc.
        speeds: dict[str, list[float]] = {name: [] for name, _ in parties}
        ratios: dict[str, list[float]] = {name: [] for name, _ in parties}
        cpu: dict[str, list[float]] = {name: [] for name in pids}
        for _ in range(a.runs):
            for name, port in parties:
                c0 = proc_cpu(pids[name]) if name in pids else 0.0
                speeds[name].append(bulk(port, backend, size, handshake.get(name, True)))
                if name in pids:
                    cpu[name].append((proc_cpu(pids[name]) - c0) / (size / (1 << 30)))
                ratios[name].append(speeds[name][-1] / speeds["direct"][-1])
        for name, _ in parties:
            results[name]["bulk_MBps"] = statistics.median(speeds[name])
            results[name]["bulk_ratio"] = statistics.median(ratios[name])
            if name in cpu:
                results[name]["bulk_cpu_s_per_GiB"] = statistics.median(cpu[name])
        # New tunnels: RUNS rounds interleaved across the parties, percentiles over all samples.
        lats: dict[str, list[float]] = {name: [] for name, _ in parties}
        per_round = max(1, a.tunnels // a.runs)
        setup_cpu: dict[str, list[float]] = {name: [] for name in pids}
        for _ in range(a.runs):
            for name, port in parties:
                c0 = proc_cpu(pids[name]) if name in pids else 0.0
                lats[name] += setup_latency(port, backend, per_round, handshake.get(name, True))
                if name in pids:
                    setup_cpu[name].append((proc_cpu(pids[name]) - c0) / per_round * 1e6)
        for name, port in parties:
            r = results[name]
            lat = sorted(lats[name])
            r["setup_median_ms"] = statistics.median(lat) * 1e3
            r["setup_p99_ms"] = lat[int(len(lat) * 0.99) - 1] * 1e3
            if name in setup_cpu:
                r["setup_cpu_us"] = statistics.median(setup_cpu[name])
            r["concurrent_MBps"] = asyncio.run(
                concurrent(port, backend, a.concurrent, a.per_tunnel_mib << 20,
                           handshake.get(name, True)))
        # HTTP forwarding: RUNS rounds interleaved across direct and the corral parties, medians.
        http_parties = [(n, p) for n, p in parties if n not in ("srt", "haproxy")]
        rps: dict[str, list[float]] = {n: [] for n, _ in http_parties}
        med: dict[str, list[float]] = {n: [] for n, _ in http_parties}
        http_cpu: dict[str, list[float]] = {n: [] for n, _ in http_parties if n in pids}
        for _ in range(a.runs):
            for name, port in http_parties:
                c0 = proc_cpu(pids[name]) if name in pids else 0.0
                req = http_requests(port, backend, a.requests)
                if name in pids:
                    http_cpu[name].append((proc_cpu(pids[name]) - c0) / a.requests * 1e6)
                rps[name].append(len(req) / sum(req))
                med[name].append(statistics.median(req))
        for name, _ in http_parties:
            results[name]["http_rps"] = statistics.median(rps[name])
            results[name]["http_median_ms"] = statistics.median(med[name]) * 1e3
            if name in http_cpu:
                results[name]["http_cpu_us"] = statistics.median(http_cpu[name])
        for name, _ in parties:
            print(name, {k: round(v, 3) for k, v in results[name].items()}, flush=True)
        d, c = results["direct"], results["corral"]
        refs = [n for n in ("base", "srt", "haproxy") if n in results]
        print("\n| measure | direct | corral | " + " | ".join(refs) + " | corral vs direct |")
        print("|---|---|---|" + "---|" * len(refs) + "---|")

        def row(label: str, key: str, fmt: str, cmp: str, direct: bool = True) -> None:
            cells = [format(results[n][key], fmt) if key in results[n] else "n/a"
                     for n in ["direct", "corral", *refs]]
            if not direct:
                cells[0] = "—"
            print(f"| {label} | " + " | ".join(cells) + f" | {cmp} |")

        row("1 tunnel bulk, MB/s", "bulk_MBps", ".0f", f"{c['bulk_ratio']:.0%} (median paired ratio)")
        row("1 tunnel bulk, paired ratio to direct", "bulk_ratio", ".0%", "")
        row("1 tunnel bulk, proxy CPU s/GiB", "bulk_cpu_s_per_GiB", ".2f", "", direct=False)
        row("new tunnel + echo, median ms", "setup_median_ms", ".3f",
            f"+{c['setup_median_ms'] - d['setup_median_ms']:.3f} ms")
        row("new tunnel + echo, p99 ms", "setup_p99_ms", ".3f", "")
        row("new tunnel, proxy CPU µs", "setup_cpu_us", ".0f", "", direct=False)
        row(f"{a.concurrent} concurrent tunnels, MB/s", "concurrent_MBps", ".0f",
            f"{c['concurrent_MBps'] / d['concurrent_MBps']:.0%}")
        row("HTTP keep-alive GET, req/s", "http_rps", ".0f", f"{c['http_rps'] / d['http_rps']:.0%}")
        row("HTTP keep-alive GET, median ms", "http_median_ms", ".3f",
            f"+{c['http_median_ms'] - d['http_median_ms']:.3f} ms")
        row("HTTP keep-alive GET, proxy CPU µs per request", "http_cpu_us", ".0f", "",
            direct=False)
    finally:
        for p in procs:
            p.terminate()
            p.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
