"""`corral exec` with a permission profile whose network is the managed proxy: one action through
the whole pipeline reaches allowed hosts through the proxy (curl, pip from a local index, git
clone over http), denied and unknown hosts are refused, and every network decision is in the
journal. Before the session object, such a profile failed with an internal message."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _wheel(path: Path) -> str:
    """A minimal pure-Python wheel (tinypkg 1.0); returns its file name."""
    name = "tinypkg-1.0-py3-none-any.whl"
    files = {"tinypkg/__init__.py": b"VALUE = 42\n",
             "tinypkg-1.0.dist-info/METADATA":
                 b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
             "tinypkg-1.0.dist-info/WHEEL":
                 b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
        z.writestr("tinypkg-1.0.dist-info/RECORD",
                   "".join(f"{n},,\n" for n in files) + "tinypkg-1.0.dist-info/RECORD,,\n")
    (path / name).write_bytes(buf.getvalue())
    return name


@pytest.fixture
def site(tmp_path: Path) -> Iterator[int]:
    """A local web server: a file, a PEP 503 index with one wheel, a git repo over dumb http."""
    root = tmp_path / "site"
    (root / "simple" / "tinypkg").mkdir(parents=True)
    (root / "hello.txt").write_text("hello via the managed proxy\n")
    wheel = _wheel(root / "simple" / "tinypkg")
    digest = hashlib.sha256((root / "simple" / "tinypkg" / wheel).read_bytes()).hexdigest()
    (root / "simple" / "tinypkg" / "index.html").write_text(
        f'<html><body><a href="{wheel}#sha256={digest}">{wheel}</a></body></html>\n')
    src = tmp_path / "src-repo"
    src.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=src, check=True)
    (src / "README").write_text("cloned through the proxy\n")
    subprocess.run([*git, "add", "README"], cwd=src, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=src, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(root / "repo.git")], check=True)
    subprocess.run(["git", "update-server-info"], cwd=root / "repo.git", check=True)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield int(httpd.server_address[1])
    httpd.shutdown()


def _journal(cli: Any) -> list[dict[str, Any]]:
    log = cli("log", "--json")
    return [json.loads(line) for line in log.stdout.splitlines()]


def test_exec_with_a_proxy_profile_curl_pip_git(cli: Any, site: int) -> None:
    (cli.home / "config.toml").write_text(
        '[permissions.web]\nextends = ":workspace"\nnetwork = { mode = "proxy" }\n'
        f'[network]\nallow_local = ["localhost:{site}"]\n')
    base = f"http://localhost:{site}"
    # The sandbox's NO_PROXY sends localhost to its own loopback: these clients are told to use
    # the proxy for it, as a client reaching any named host would.
    script = (
        "unset NO_PROXY no_proxy; "
        f"curl -sS --max-time 10 {base}/hello.txt; "
        "curl -sS --max-time 10 -o /dev/null -w '%{http_code}\\n' http://denied.example/; "
        "curl -sS --max-time 10 -o /dev/null -w '%{http_code}\\n' http://unknown.example/; "
        f"{sys.executable} -m pip download -q --no-cache-dir --disable-pip-version-check "
        f"--no-deps --index-url {base}/simple/ -d dl tinypkg && ls dl; "
        f"git clone -q {base}/repo.git cloned && cat cloned/README")
    r = cli("exec", "-P", "web", "--allow-domain", "localhost", "--deny-domain", "denied.example",
            "--", "sh", "-c", script, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "hello via the managed proxy", "403", "403", "tinypkg-1.0-py3-none-any.whl",
        "cloned through the proxy"], r.stdout + r.stderr
    events = _journal(cli)
    nets = [(e["attributes"]["server.address"], e["attributes"]["network.policy.decision"])
            for e in events if e["name"] == "agent.network.decision"]
    assert ("localhost", "allow") in nets
    assert ("denied.example", "deny") in nets and ("unknown.example", "deny") in nets
    start = events[0]
    assert start["name"] == "agent.session.start"
    assert start["attributes"]["agent.policy.network"] == "proxy"


def test_exec_with_sandbox_network_proxy_asks_through_corral_approve(cli: Any, site: int) -> None:
    """`sandbox.network = "proxy"`: an unknown host is a network question answered through the
    same channel as commands (`corral approve` here), and the answer is journaled."""
    (cli.home / "config.toml").write_text(
        'sandbox.network = "proxy"\n[approvals]\nqueue_timeout_seconds = 30\n')
    p = cli("exec", "--", "curl", "-sS", "--max-time", "40", "-o", "/dev/null", "-w",
            "%{http_code}\n", "http://asked.example/", wait=False)
    pending: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not pending and time.monotonic() < deadline:
        r = cli("approve", "--json")
        pending = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        time.sleep(0.2)
    assert pending, "the network question never reached the queue"
    assert pending[0]["kind"] == "network"
    answered = cli("approve", str(pending[0]["id"]), "--deny")
    out, err = p.communicate(timeout=60)
    assert answered.returncode == 0, answered.stderr
    assert out.strip() == "403", err
    events = _journal(cli)
    nets = [e["attributes"] for e in events if e["name"] == "agent.network.decision"]
    assert [(a["server.address"], a["network.policy.decision"]) for a in nets] == [
        ("asked.example", "deny")]
    assert nets[0]["network.policy.source"] == "user"


def test_exec_with_a_proxy_profile_reaches_a_loopback_allow_local_entry_at_its_address(
        cli: Any, site: int) -> None:
    """As under `corral run` and `corral sandbox --network proxy`: 127.0.0.1:PORT listed in
    allow_local answers at 127.0.0.1:PORT inside, with NO_PROXY left as it is (the sandbox's own
    loopback), and the connection is a network decision in the journal."""
    (cli.home / "config.toml").write_text(
        '[permissions.web]\nextends = ":workspace"\nnetwork = { mode = "proxy" }\n'
        f'[network]\nallow_local = ["127.0.0.1:{site}"]\n')
    r = cli("exec", "-P", "web", "--", "curl", "-sS", "--max-time", "10", "--noproxy", "*",
            f"http://127.0.0.1:{site}/hello.txt", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello via the managed proxy\n"
    nets = [(e["attributes"]["server.address"], e["attributes"]["network.policy.decision"])
            for e in _journal(cli) if e["name"] == "agent.network.decision"]
    assert ("127.0.0.1", "allow") in nets, nets
