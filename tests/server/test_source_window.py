"""StoreSource.window over a real SQLite store: every event of the window, across chunks, and
the store read once to its head when the window's events fit in one chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.server import source as source_mod
from corral.server.source import StoreSource
from corral.server.store.base import Incoming, Scan
from corral.server.store.sqlite import SqliteStore

T0 = 1_790_000_000 * 10**9
SEC = 10**9


def _store(path: Path, n: int) -> SqliteStore:
    st = SqliteStore(path)
    items = []
    for i in range(n):
        rec = {"v": 1, "id": f"e{i}", "name": "agent.tool.decision", "time_unix_nano":
               T0 + i * 60 * SEC, "session_id": f"s{i // 10}", "user": "dev", "host": "h",
               "attributes": {"corral.origin": "pipeline"}}
        items.append(Incoming(f"e{i}", rec["name"], rec["time_unix_nano"], "dev1", "otlp",
                              rec))
    st.append(items, T0 + n * 60 * SEC)  # received after the last one happened
    return st


@pytest.mark.parametrize("chunk", [5000, 7])
def test_window_returns_every_event_in_it_and_reads_the_store_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(source_mod, "_CHUNK", chunk)
    st = _store(tmp_path / "log.db", 300)
    scans: list[Scan] = []
    real = st.scan

    def counted(q: Scan) -> list[tuple[int, bytes]]:
        scans.append(q)
        return real(q)

    monkeypatch.setattr(st, "scan", counted)
    src = StoreSource(st, "test", lambda sid: None)
    t = T0 + 150 * 60 * SEC
    events, cut = src.window(t - 600 * SEC, t + 600 * SEC)
    want = [f"e{i}" for i in range(300)
            if t - 630 * SEC <= T0 + i * 60 * SEC <= t + 630 * SEC]
    assert [e.id for e in events] == want and not cut
    # 21 events: one query when they fit in a chunk, else as many as the chunks need
    assert len(scans) == (1 if chunk > len(want) else -(-len(want) // chunk) + (
        len(want) % chunk == 0))
    st.close()
