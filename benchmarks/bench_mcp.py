"""Added latency per MCP ``tools/call`` through corral's gateway (issue 17).

The same SDK client (``mcp.ClientSession`` over stdio) calls the same tool of the same SDK test
server (tests/mcpgateway/mcp_server.py, ``read_note``: allowed by an ``[mcp.servers]`` rule),
once directly and once through ``corral mcp proxy`` (the server in the sandbox, the decision
and the ``agent.mcp.call`` record in the journal), interleaved in the same run. Reported: the
median round trip of each, over ``--runs`` rounds of ``--calls`` calls (first 5 of a round are
warm-up), and their difference: what the gateway adds. Goal: <= 5 ms median (stdio).

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


async def _round(argv: list[str], env: dict[str, str], cwd: Path, calls: int) -> list[float]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=str(cwd))
    times: list[float] = []
    with open(os.devnull, "w") as err:
        async with stdio_client(params, errlog=err) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            await s.list_tools()
            for i in range(calls + 5):
                t0 = time.perf_counter()
                res = await s.call_tool("read_note", {"name": f"n{i}"})
                dt = (time.perf_counter() - t0) * 1000
                assert not res.is_error, res
                if i >= 5:
                    times.append(dt)
    return times


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
        medians: dict[str, list[float]] = {"direct": [], "gateway": []}
        for _ in range(args.runs):
            for name, argv in (("direct", direct), ("gateway", gateway)):
                times = anyio.run(_round, argv, env, work, args.calls)
                medians[name].append(statistics.median(times))
        d, g = (statistics.median(medians[k]) for k in ("direct", "gateway"))
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"tools/call round trip, median of {args.runs} rounds x {args.calls} calls:")
        print(f"  direct   {d:7.3f} ms   (rounds: {', '.join(f'{x:.3f}' for x in medians['direct'])})")
        print(f"  gateway  {g:7.3f} ms   (rounds: {', '.join(f'{x:.3f}' for x in medians['gateway'])})")
        print(f"  added    {g - d:7.3f} ms   (goal <= 5 ms)")


if __name__ == "__main__":
    main()
