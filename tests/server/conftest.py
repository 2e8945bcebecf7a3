from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server.helpers import ServerProc, init_server, running, token


@dataclass
class Served:
    data: Path
    srv: ServerProc
    ingest: str
    read: str

    @property
    def url(self) -> str:
        return self.srv.url


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data = tmp_path / "srv"
    init_server(data)
    ing, rd = token(data, "ingest"), token(data, "read")
    for srv in running(data):
        yield Served(data, srv, ing, rd)
