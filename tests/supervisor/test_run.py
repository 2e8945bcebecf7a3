"""`corral run -- AGENT` with a scripted stand-in agent: the whole agent process is sandboxed,
reaches the session API only over the bridged loopback port, the network only through the
managed proxy, and cannot rewrite its own permission settings."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

AGENT = r'''#!/usr/bin/env python3
import json, os, sys, urllib.error, urllib.request
sys.path.insert(0, os.environ["CORRAL_SRC"])
from corral.supervisor.api import call
out = {}
out["api"] = os.environ["CORRAL_SUPERVISOR_SOCKET"]
out["rm"] = call("decide", argv=["bash", "-lc", "FOO=1 rm -rf /"], cwd=os.getcwd())
out["ls"] = call("decide", argv=["ls"], cwd=os.getcwd())
for k in ("NO_PROXY", "no_proxy"):  # loopback is exempt by default; go through the proxy
    os.environ.pop(k, None)
opener = urllib.request.build_opener(urllib.request.ProxyHandler(
    {"http": os.environ["HTTP_PROXY"], "https": os.environ["HTTP_PROXY"]}))
for name, url in [("local", os.environ["LOCAL_URL"]), ("unknown", "http://unknown.example/")]:
    try:
        r = opener.open(url, timeout=10)
        out[name] = [r.status, r.read().decode()]
    except urllib.error.HTTPError as e:
        out[name] = [e.code, e.headers.get("x-corral-block")]
try:
    open(os.path.expanduser("~/.codex/config.toml"), "a").write("approval_policy='never'\n")
    out["config"] = "written"
except OSError as e:
    out["config"] = e.errno
open(os.path.expanduser("~/.codex/history.jsonl"), "a").write("{}\n")
try:
    open(os.environ["CORRAL_HOME_PROBE"] + "/journal/journal.db", "rb").read(1)
    out["journal"] = "readable"
except OSError as e:
    out["journal"] = e.errno
print(json.dumps(out))
'''


@pytest.fixture
def web():
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the model api"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


@pytest.mark.slow
def test_corral_run_governs_a_whole_agent(tmp_path: Path, web: int):
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    home = tmp_path / "userhome"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text('model = "gpt-test"\n')
    agent = tmp_path / "bin" / "codex"  # the preset is chosen by the program's name
    agent.parent.mkdir()
    agent.write_text(AGENT)
    agent.chmod(0o755)
    chome = tmp_path / "corral-home"
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(chome),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"),
               CORRAL_SRC=str(Path(__file__).resolve().parents[2] / "src"),
               LOCAL_URL=f"http://127.0.0.1:{web}/", CORRAL_HOME_PROBE=str(chome))
    r = subprocess.run(
        [sys.executable, "-m", "corral", "-c", f'network.allow_local=["127.0.0.1:{web}"]',
         "run", "--allow-domain", "127.0.0.1", "--", str(agent)],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["api"] == "tcp:127.0.0.1:7878"
    assert out["rm"]["ok"] and out["rm"]["allowed"] is False
    assert "rm_recursive_force" in out["rm"]["message"]
    assert out["ls"]["allowed"] is True
    assert out["local"] == [200, "hello from the model api"]
    assert out["unknown"][0] == 403 and out["unknown"][1]
    assert out["config"] == 30  # EROFS: the agent cannot rewrite its own settings
    assert (home / ".codex" / "history.jsonl").read_text() == "{}\n"  # but it can work
    assert (home / ".codex" / "config.toml").read_text() == 'model = "gpt-test"\n'
    assert out["journal"] in (2, 13)  # CORRAL_HOME is hidden from the agent
    # The journal tells the story, and verifies.
    log = subprocess.run([sys.executable, "-m", "corral", "log", "--json"], env=env,
                         capture_output=True, text=True, timeout=60)
    events = [json.loads(line) for line in log.stdout.splitlines()]
    names = [e["name"] for e in events]
    assert names[0] == "agent.session.start" and events[0]["agent_name"] == "codex"
    nets = {(e["attributes"]["server.address"], e["attributes"]["network.policy.decision"])
            for e in events if e["name"] == "agent.network.decision"}
    assert ("unknown.example", "deny") in nets and ("127.0.0.1", "allow") in nets
    decisions = [e["attributes"]["agent.decision"] for e in events
                 if e["name"] == "agent.tool.decision"]
    assert decisions == ["denied", "auto_approved"]
    v = subprocess.run([sys.executable, "-m", "corral", "log", "verify"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr
