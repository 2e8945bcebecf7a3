"""Fleet fixtures: a real ``corral server run`` with fleet settings, a local OIDC issuer
(tests/fleet/issuer.py, authlib's server components), machines as separate CORRAL_HOMEs driven
through the real CLI, and the Secret Service of gnome-keyring on a private D-Bus session bus
(the fixture of tests/forward/test_login.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleet.issuer import Issuer
from tests.forward.test_login import secret_service  # noqa: F401  (a fixture, used by tests)
from tests.server.helpers import ServerProc, init_server

REFRESH = 1.0  # seconds between policy fetches (fleet.toml refresh_seconds)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    iss = Issuer().start()
    iss.add_user("alice", email="alice@acme.example", name="Alice", org_id="acme")
    iss.add_user("mallory", email="mallory@evil.example", name="Mallory", org_id="evilcorp")
    yield iss
    iss.close()


@dataclass
class Fleet:
    data: Path
    srv: ServerProc
    issuer: Issuer

    @property
    def url(self) -> str:
        return self.srv.url

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "corral", "server", *args, "--data",
                            str(self.data)], capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, f"corral server {args}: {r.stdout}\n{r.stderr}"
        return r

    def enrol_token(self, *groups: str, uses: int = 5) -> str:
        args = ["enroll-token", "create", "--uses", str(uses)]
        for g in groups:
            args += ["--group", g]
        return self.admin(*args).stdout.strip()

    def policy(self, path: Path, text: str, group: str = "*") -> str:
        path.write_text(text)
        return self.admin("policy", "set", str(path), "--group", group).stdout

    def devices(self) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.admin("devices", "--json").stdout)
        return {r["device"]: r for r in rows}


@pytest.fixture
def fleet(tmp_path: Path, issuer: Issuer) -> Iterator[Fleet]:
    data = tmp_path / "srv"
    init_server(data)
    (data / "fleet.toml").write_text(
        f'refresh_seconds = {REFRESH}\n[oidc]\nissuer = "{issuer.url}"\n'
        'client_id = "corral-cli"\nworkspace_claim = "org_id"\n')
    srv = ServerProc(data)
    try:
        yield Fleet(data, srv, issuer)
    finally:
        srv.stop()


@dataclass
class Machine:
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        """Where commands run (CORRAL_HOME itself is hidden inside the sandbox)."""
        w = self.home.with_name(self.home.name + "-work")
        w.mkdir(exist_ok=True)
        return w

    def run(self, *args: str, stdin: str | None = None, timeout: float = 90
            ) -> subprocess.CompletedProcess[str]:
        e = {k: v for k, v in os.environ.items() if k != "CORRAL_SERVER_TOKEN"}
        e.update({"CORRAL_HOME": str(self.home), **self.env})
        return subprocess.run([sys.executable, "-m", "corral", *args], input=stdin, env=e,
                              capture_output=True, text=True, timeout=timeout,
                              cwd=self.work)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        r = self.run(*args, stdin=stdin)
        assert r.returncode == 0, f"corral {args}: {r.stdout}\n{r.stderr}"
        return r.stdout

    def requirements(self) -> dict[str, Any]:
        """The effective requirements as this machine's loader composes them now."""
        code = ("import json; from corral.config import load_config; c = load_config(); "
                "print(json.dumps({'data': c.requirements.data, 'sources': "
                "c.requirements.sources, 'restrictive': c.requirements.restrictive_reason, "
                "'warnings': c.warnings}))")
        e = {**os.environ, "CORRAL_HOME": str(self.home), **self.env}
        out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True,
                             text=True, timeout=60, cwd=self.work, check=True).stdout
        doc: dict[str, Any] = json.loads(out)
        return doc

    def login(self, issuer: Issuer, username: str) -> subprocess.CompletedProcess[str]:
        """``corral login`` as a real subprocess; the user approves the code at the issuer
        (what their browser would post) once corral has shown it."""
        e = {k: v for k, v in os.environ.items() if k != "CORRAL_SERVER_TOKEN"}
        e.update({"CORRAL_HOME": str(self.home), **self.env})
        p = subprocess.Popen([sys.executable, "-m", "corral", "login"], env=e,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=self.work)
        assert p.stdout is not None
        first = p.stdout.readline()
        m = re.search(r"enter the code (\S+)", first)
        if m is None:
            out, err = p.communicate(timeout=30)
            return subprocess.CompletedProcess(p.args, p.returncode, first + out, err)
        r = httpx.post(issuer.url + "/activate",
                       data={"user_code": m.group(1), "username": username})
        assert r.status_code == 200, r.text
        out, err = p.communicate(timeout=60)
        return subprocess.CompletedProcess(p.args, p.returncode, first + out, err)


def machine(tmp_path: Path, name: str, store: str = "file",
            env: dict[str, str] | None = None) -> Machine:
    home = tmp_path / name
    home.mkdir()
    (home / "config.toml").write_text(f'[credentials]\nstore = "{store}"\n')
    return Machine(home, dict(env or {}))


def wait_for(pred: Any, timeout: float, step: float = 0.2) -> float:
    """Seconds until ``pred()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not pred():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(step)
    return time.monotonic() - start
