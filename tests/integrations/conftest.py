"""A real session supervisor (pipeline, journal, unix socket) for the integration tests."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.config import load_config
from corral.integrations.session import make_pipeline
from corral.supervisor.api import SessionAPI
from corral.telemetry import Journal, Telemetry

RULES = '''
prefix_rule(pattern=["rm", "-rf"], decision="forbidden",
            justification="deleting whole trees is not allowed in this repository")
'''


@dataclass
class Session:
    api: SessionAPI
    work: Path
    home: Path
    tel: Telemetry

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.api.env}

    def events(self) -> list:
        self.tel.flush(10)
        return list(Journal(self.tel.journal_path).events(session_id=self.tel.session_id))

    def verify(self) -> None:
        """Close the journal and check it with `corral log verify`."""
        self.tel.close()
        verify = subprocess.run([sys.executable, "-m", "corral", "log", "verify", "--journal",
                                 str(self.tel.journal_path)],
                                env={**os.environ, "CORRAL_HOME": str(self.home)},
                                capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stderr

    def run_hook(self, agent: str, payload: bytes | str, env: dict[str, str] | None = None,
                 ) -> subprocess.CompletedProcess[str]:
        data = payload.encode() if isinstance(payload, str) else payload
        return subprocess.run(
            [sys.executable, "-I", "-m", "corral.integrations.hook_main", agent],
            input=data.decode(
                "utf-8", "surrogateescape"), capture_output=True, text=True,
            env=self.env if env is None else env, cwd=self.work, timeout=30)


def yes(question: object) -> object:
    """A corral approval channel that says yes once (stands in for a person at `corral
    approve`)."""
    from corral.supervisor import pipeline as pl

    if "terminal" not in inspect.signature(pl.Pipeline.__init__).parameters:
        return pl.Answer(approved=True, scope="once", who="user")  # type: ignore[attr-defined]
    from corral.approvals.model import Choice

    return Choice.ONCE


class _OldYes:  # the earlier pipeline's asker interface
    def ask(self, question: object) -> object:
        return yes(question)


def _session(tmp_path: Path, asker: object) -> Iterator[Session]:
    home = tmp_path / "home"
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "team.rules").write_text(RULES)
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    cfg = load_config(work, home=home, system=tmp_path / "etc")
    tel = Telemetry.open(cfg, agent="codex")
    from corral.supervisor import pipeline as pl

    if asker is not None and "terminal" not in inspect.signature(
            pl.Pipeline.__init__).parameters:
        asker = _OldYes()
    pipe = make_pipeline(cfg, tel, "on-request", asker, None)
    api = SessionAPI(pipe, tmp_path / "run" / "session.sock")
    api.start()
    try:
        yield Session(api, work, home, tel)
    finally:
        api.stop()
        tel.close()


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    yield from _session(tmp_path, None)


@pytest.fixture
def session_with_channel(tmp_path: Path) -> Iterator[Session]:
    yield from _session(tmp_path, yes)
