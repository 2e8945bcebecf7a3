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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One PostgreSQL 15 cluster for the session; each test gets its own database."""
    from tests.server.helpers import free_port
    from tests.server.pg import postgres

    with postgres(free_port()) as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> str:
    import uuid

    import psycopg

    name = "t" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_server.rsplit("/", 1)[0] + "/" + name
