"""Forwarder catch-up after an outage (issue 12): how fast ``corral forward`` empties a backlog.

A journal of --events realistic records (tool decisions and results, a checkpoint every 1000) is
written once; then, --runs times, the cursor is removed (the server was down the whole time)
and ``Forwarder.catch_up`` ships everything: read from SQLite, encode, gzip, POST batches of
512, wait for each acknowledgement, fsync the cursor. The receiving end is a separate process
on loopback that really decodes each request (gunzip + protobuf parse), de-duplicates by
``event.id`` and acknowledges; with --server URL (and CORRAL_SERVER_TOKEN) a running
``corral server`` is the receiver instead. Goal: >= 20,000 events/s.

Usage: .venv/bin/python benchmarks/bench_forward.py [--runs 5] [--events 100000] [--server URL]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from corral.forward import Forwarder, ServerSettings  # noqa: E402
from corral.forward.cursor import cursor_file  # noqa: E402
from corral.telemetry import ToolDecision, ToolResult, journal_file  # noqa: E402
from corral.telemetry.journal import JournalWriter  # noqa: E402
from corral.telemetry.keys import load_or_create_signing_key  # noqa: E402
from corral.telemetry.schema import Event  # noqa: E402
from corral.telemetry.ulid import new_ulid  # noqa: E402

RECEIVER = r'''
import gzip, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest, ExportLogsServiceResponse)
ACK = ExportLogsServiceResponse().SerializeToString()
seen = set()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = gzip.decompress(self.rfile.read(int(self.headers["Content-Length"])))
        req = ExportLogsServiceRequest.FromString(body)
        for lr in req.resource_logs[0].scope_logs[0].log_records:
            for kv in lr.attributes:
                if kv.key == "event.id":
                    seen.add(kv.value.string_value)
                    break
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(ACK), ACK))
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
'''


def _events(n: int) -> list[Event]:
    out = []
    t = time.time_ns()
    for i in range(n):
        cmd = f"bash -lc 'pytest -q tests/unit/test_module_{i % 97}.py -k case_{i}'"
        body: ToolResult | ToolDecision
        if i % 2:
            body = ToolResult(tool_name="shell", tool_kind="shell", command_line=cmd,
                              exit_code=i % 3, duration_ms=12.0 + i % 500, success=True)
            attrs = {**body.attributes(), "agent.tool.output.sha256": "ab" * 32,
                     "agent.tool.output.bytes": 118}
        else:
            body = ToolDecision(tool_name="shell", decision="approved", source="rule",
                                rule="~/.corral/rules/team.rules:12", command_line=cmd)
            attrs = body.attributes()
        out.append(Event(id=new_ulid(), name=body.NAME, time_unix_nano=t + i,
                         session_id="01JBENCHSESSION0000000000", turn_id=f"turn-{i // 20}",
                         call_id=f"call-{i}", user="dev", host="laptop-17",
                         agent_name="codex", agent_version="0.169.0", corral_version="0.1.0",
                         tier=1, attributes=attrs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--server", help="a running corral server (token in CORRAL_SERVER_TOKEN)")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="corral-bench-forward-") as tmp:
        home = Path(tmp) / "home"
        writer = JournalWriter(journal_file(home), load_or_create_signing_key(home), 1000)
        for start in range(0, args.events, 512):
            writer.append(_events(min(512, args.events - start)))
        writer.close()
        size = journal_file(home).stat().st_size
        print(f"journal: {args.events} records, {size / 1e6:.0f} MB")
        receiver = None
        if args.server:
            url, token = args.server, os.environ.get("CORRAL_SERVER_TOKEN", "")
        else:
            receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE,
                                        text=True)
            assert receiver.stdout is not None
            url, token = f"http://127.0.0.1:{receiver.stdout.readline().strip()}", "bench"
        rates: list[float] = []
        cpu_rates: list[float] = []
        try:
            for run in range(args.runs):
                settings = ServerSettings(url, token, "bench")
                cursor_file(journal_file(home), url).unlink(missing_ok=True)  # the outage
                fwd = Forwarder(settings, journal_file(home), home=home)
                t0, c0 = time.perf_counter(), time.process_time()
                stats = fwd.catch_up(retry_for=60)
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
                fwd.close()
                if stats.records != args.events:
                    raise SystemExit(f"benchmark: forwarded {stats.records} of {args.events}")
                rates.append(stats.records / elapsed)
                cpu_rates.append(stats.records / cpu)
                print(f"run {run + 1}: {stats.records} records + {stats.checkpoints} checkpoints "
                      f"in {stats.batches} batches, {elapsed:.2f} s, "
                      f"{stats.records / elapsed:,.0f} events/s; forwarder CPU {cpu:.2f} s "
                      f"({stats.records / cpu:,.0f} events per CPU-second)")
        finally:
            if receiver is not None:
                receiver.kill()
                receiver.wait()
        print(f"catch-up of {args.events} records after an outage: median "
              f"{statistics.median(rates):,.0f} events/s (min {min(rates):,.0f}, max "
              f"{max(rates):,.0f}; goal >= 20,000); forwarder alone: median "
              f"{statistics.median(cpu_rates):,.0f} events per CPU-second")


if __name__ == "__main__":
    main()
