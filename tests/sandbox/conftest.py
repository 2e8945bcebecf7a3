"""Fixtures for the sandbox tests: a workspace, an outside directory, a fake HOME and
CORRAL_HOME, and a helper that runs a shell script or Python snippet in the real sandbox."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.sandbox import Sandbox, build_plan


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required for this test (run scripts/setup --dev)")
    return path


@dataclass
class Box:
    ws: Path
    outside: Path
    home: Path
    corral_home: Path

    def cli(self, *args: str, stdin: str | None = None, system: Path | None = None,
            extra_env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = (),
            ) -> subprocess.CompletedProcess[str]:
        """``python -m corral ARGS`` in the workspace, as a user runs it, with this box's
        homes and no system config (unless ``system``)."""
        env = dict(os.environ, CORRAL_HOME=str(self.corral_home), HOME=str(self.home),
                   CORRAL_SYSTEM_DIR=str(system or self.home / "no-system"),
                   **(extra_env or {}))
        env.pop("TMPDIR", None)
        return subprocess.run([sys.executable, "-m", "corral", *args], cwd=self.ws, env=env,
                              input=stdin, capture_output=True, text=True, timeout=60,
                              pass_fds=pass_fds)

    def sandbox(self, **kw: Any) -> Sandbox:
        kw.setdefault("exclude_slash_tmp", True)
        kw.setdefault("exclude_tmpdir", True)
        kw.setdefault("home", self.home)
        return Sandbox(build_plan(kw.pop("profile", ":workspace"), self.ws, **kw))

    def sh(
        self, script: str, *, env_extra: Mapping[str, str] | None = None,
        cwd: Path | None = None, timeout: float = 60, **kw: Any,
    ) -> subprocess.CompletedProcess[str]:
        sb = self.sandbox(**kw)
        proc = sb.spawn(["/bin/sh", "-c", script], cwd or self.ws, env_extra,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=timeout)
        sb.close()  # wait for placeholder cleanup, so tests see the host as the user will
        return subprocess.CompletedProcess(proc.args, proc.returncode, _text(out), _text(err))

    def py(self, code: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        sb = self.sandbox(**{k: v for k, v in kw.items() if k != "timeout"})
        proc = sb.spawn([sys.executable, "-c", code], self.ws, None,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=kw.get("timeout", 60))
        sb.close()
        return subprocess.CompletedProcess(proc.args, proc.returncode, _text(out), _text(err))


def _text(data: bytes | str) -> str:
    """Output of a ``text=True`` spawn (``SandboxedProcess`` is typed as a bytes Popen)."""
    return data if isinstance(data, str) else data.decode()


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Box]:
    require_tool("bwrap")
    ws, outside, home, ch = (tmp_path / n for n in ("ws", "outside", "home", "corral-home"))
    for d in (ws, outside, home, ch):
        d.mkdir()
    monkeypatch.setenv("CORRAL_HOME", str(ch))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TMPDIR", raising=False)
    yield Box(ws, outside, home, ch)


def running(argv: list[str]) -> list[int]:
    """Host pids whose command line is exactly ``argv``."""
    want = ("\0".join(argv) + "\0").encode()
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{d}/cmdline").read_bytes() == want:
                    found.append(int(d))
    return found


def kill_at_once(sb: Sandbox, argv: list[str], ws: Path) -> list[str | None]:
    """Spawn ``argv`` and SIGKILL its bwrap within its first milliseconds, 16 times; then
    nothing may be left running it (bwrap's --die-with-parent alone leaves some). Returns each
    run's pids cgroup."""
    cgroups: list[str | None] = []
    try:
        for delay in (0, 0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.007) * 2:
            proc = sb.spawn(argv, ws)
            cgroups.append(proc.corral_cgroup)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        sb.close()
        time.sleep(0.2)  # a leftover would be running the command by now
        assert running(argv) == []
    finally:
        for pid in running(argv):
            os.kill(pid, signal.SIGKILL)
    return cgroups
