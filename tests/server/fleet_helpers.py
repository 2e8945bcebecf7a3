"""A real `corral server run` fed by the real forwarder from a journal, with a token per scope:
what the fleet tests of triage (POST /v1/triage, `corral triage --server`) and analytics (the
mounted dashboard, `corral stats --server`) stand on."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.server.helpers import ServerProc, corral, init_server, token

SCOPES = ("ingest", "read", "analyst", "investigator", "admin")


@dataclass
class FleetServer:
    data: Path
    srv: ServerProc
    home: Path  # the forwarded machine's CORRAL_HOME
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.srv.url

    def env(self, scope: str | None, **extra: str) -> dict[str, str]:
        """The environment of an analyst's `corral` command holding a ``scope`` token."""
        env = {"CORRAL_HOME": str(self.home.parent / "analyst-home"), **extra}
        if scope is not None:
            env["CORRAL_SERVER_TOKEN"] = self.tokens[scope]
        return env


def copy_home(src: Path, dst: Path) -> Path:
    """A private copy of a machine's CORRAL_HOME (the forwarder keeps its cursor there)."""
    shutil.copytree(src, dst)
    return dst


@contextmanager
def fleet_server(root: Path, home: Path, *, database: str | None = None,
                 config: str = "") -> Iterator[FleetServer]:
    """Init and run a server (SQLite, or ``database``), forward ``home``'s journal to it."""
    data = root / "srv"
    init_server(data, database)
    if config:
        with (data / "config.toml").open("a") as fh:
            fh.write(config)
    toks = {s: token(data, s, database) for s in SCOPES}
    srv = ServerProc(data, database)
    try:
        out = corral("forward", "--server", srv.url, "--retry-for", "30",
                     env={"CORRAL_HOME": str(home), "CORRAL_SERVER_TOKEN": toks["ingest"]})
        assert "acknowledged through seq" in out.stdout, out.stdout
        (root / "analyst-home").mkdir(exist_ok=True)
        yield FleetServer(data, srv, home, toks)
    finally:
        srv.stop()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "CORRAL_SERVER_TOKEN"}
