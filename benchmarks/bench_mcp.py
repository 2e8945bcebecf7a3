"""Added latency per MCP ``tools/call`` through corral's gateway (issue 17).

The same SDK client (``mcp.ClientSession`` over stdio) calls the same tool of the same SDK test
server (tests/mcpgateway/mcp_server.py, ``read_note``: allowed by an ``[mcp.servers]`` rule),
once directly and once through ``corral mcp proxy`` (the server in the sandbox, the decision
and the ``agent.mcp.call`` record in the journal). Both sessions are open at once and the calls
alternate (direct then gateway, then the other way round), so each gateway call has a direct
call beside it taken under the same load. Reported, over ``--runs`` rounds of ``--calls`` pairs
(the first 5 of a round are warm-up): the median round trip of each, and the median of the
paired differences: what the gateway adds. Goal: <= 5 ms median (stdio).

Usage: .venv/bin/python benchmarks/bench_mcp.py [--runs 5] [--calls 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine

SERVER = ROOT / "tests" / "mcpgateway" / "mcp_server.py"
CONFIG = '[mcp.servers.notes]\ntools = { "read_*" = "allow" }\n'


async def _round(direct: list[str], gateway: list[str], env: dict[str, str], cwd: Path,
                 calls: int) -> tuple[list[float], list[float]]:
    """``calls`` pairs of calls, one through each session, alternating which goes first."""
    from contextlib import AsyncExitStack

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    out: tuple[list[float], list[float]] = ([], [])
    with open(os.devnull, "w") as err:
        async with AsyncExitStack() as stack:
            sessions = []
            for argv in (direct, gateway):
                params = StdioServerParameters(command=argv[0], args=argv[1:], env=env,
                                               cwd=str(cwd))
                r, w = await stack.enter_async_context(stdio_client(params, errlog=err))
                s = await stack.enter_async_context(ClientSession(r, w))
                await s.initialize()
                await s.list_tools()
                sessions.append(s)
            for i in range(calls + 5):
                order = (0, 1) if i % 2 == 0 else (1, 0)
                for k in order:
                    t0 = time.perf_counter()
                    res = await sessions[k].call_tool("read_note", {"name": f"n{i}"})
                    dt = (time.perf_counter() - t0) * 1000
                    assert not res.is_error, res
                    if i >= 5:
                        out[k].append(dt)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        home, work = Path(tmp) / "home", Path(tmp) / "work"
        home.mkdir()
        work.mkdir()
        (home / "config.toml").write_text(CONFIG)
        subprocess.run(["git", "init", "-q"], cwd=work, check=True)
        env = {**os.environ, "CORRAL_HOME": str(home), "CORRAL_SYSTEM_DIR": str(Path(tmp) / "etc")}
        for k in ("CORRAL_SUPERVISOR_SOCKET", "CORRAL_SUPERVISOR_TOKEN", "CORRAL_SANDBOX"):
            env.pop(k, None)
        direct = [sys.executable, str(SERVER)]
        gateway = [sys.executable, "-m", "corral", "mcp", "proxy", "notes", "--", *direct]
        medians: dict[str, list[float]] = {"direct": [], "gateway": [], "added": []}
        for _ in range(args.runs):
            d_times, g_times = anyio.run(_round, direct, gateway, env, work, args.calls)
            medians["direct"].append(statistics.median(d_times))
            medians["gateway"].append(statistics.median(g_times))
            medians["added"].append(statistics.median(
                g - d for d, g in zip(d_times, g_times, strict=True)))
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"tools/call round trip, median of {args.runs} rounds x {args.calls} call pairs:")
        for k in ("direct", "gateway", "added"):
            m = statistics.median(medians[k])
            rounds = ", ".join(f"{x:.3f}" for x in medians[k])
            note = "   (goal <= 5 ms; median of the paired differences)" if k == "added" else ""
            print(f"  {k:8} {m:7.3f} ms   (rounds: {rounds}){note}")


if __name__ == "__main__":
    main()
