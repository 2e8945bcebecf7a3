"""Compliance file cutting under a simulated clock, on both engines (SQLite and a real
PostgreSQL 15): windows cut once after their grace period, empty windows skipped, stragglers
kept, a window never cut twice, bytes rebuilt identically."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.server import compliance
from corral.server import config as sconfig
from corral.server.ingest import decode, parse
from corral.server.store.base import Scan, Store
from tests.server.compliance_helpers import mixed_journal
from tests.server.helpers import forward_request, init_server

S = 10**9
BASE = 1_800_000_000 * S  # a whole minute
W = 60  # window seconds
GRACE = 5


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    data = tmp_path / "srv"
    db = None
    if request.param == "postgresql":
        db = request.getfixturevalue("pg_url")
    init_server(data, db)
    st = sconfig.open_store(sconfig.load(data))
    try:
        yield st
    finally:
        st.close()


def _items(tmp: Path, n: int, session: str) -> list:  # type: ignore[type-arg]
    (tmp / session).mkdir()
    j = mixed_journal(tmp / session, n, session=session)
    return decode(parse(forward_request(j, with_checkpoints=False),
                        "application/x-protobuf")).items


def test_windows_are_cut_once_after_grace(store: Store, tmp_path: Path) -> None:
    store.append(_items(tmp_path, 9, "a"), BASE + 10 * S)
    store.append(_items(tmp_path, 3, "b"), BASE + 50 * S)
    end = BASE + W * S
    assert compliance.cut(store, end - 1, W, GRACE) == 0  # window still open
    assert compliance.cut(store, end + GRACE * S - 1, W, GRACE) == 0  # grace not over
    assert compliance.cut(store, end + GRACE * S, W, GRACE) == 3
    assert compliance.cut(store, end + 10 * GRACE * S, W, GRACE) == 0  # never again
    files = store.compliance_files(None, 0, 100)
    assert [(f.event_type, f.count) for f in files] == [
        ("agent.network.decision", 4), ("agent.tool.decision", 4), ("agent.user_prompt", 4)]
    assert {(f.start_ns, f.end_ns) for f in files} == {(BASE, end)}
    # an hour later, after nine empty windows: one new window, no empty files
    store.append(_items(tmp_path, 3, "c"), BASE + 600 * S + 1)
    # a straggler received inside the first window but committed after it was cut
    store.append(_items(tmp_path, 1, "d"), BASE + 30 * S)
    assert compliance.cut(store, BASE + 700 * S, W, GRACE) == 3
    later = store.compliance_files(None, end, 100)
    assert {(f.start_ns, f.end_ns) for f in later} == {(BASE + 600 * S, BASE + 660 * S)}
    assert sum(f.count for f in later) == 4  # the straggler lands in the next file
    for f in files + later:
        body = compliance.render(store, f)
        assert hashlib.sha256(body).hexdigest() == f.sha256
        assert body == compliance.render(store, f)
        assert store.compliance_file(f.id) == f
    # a second replica that computed the same window loses the race and writes nothing
    assert not store.add_compliance_cut(BASE, end, 5, [])
    # a page never splits a window (after=last_end_time would skip the rest of it): when one
    # window holds more types than the limit, the whole window comes back
    page, more = compliance.listing(store, None, 0, 2)
    assert more and page == files
    page, more = compliance.listing(store, None, 0, 4)
    assert more and page == files
    page, more = compliance.listing(store, None, end, 4)
    assert not more and page == later


def test_scan_filters_in_sql(store: Store, tmp_path: Path) -> None:
    store.append(_items(tmp_path, 12, "a"), BASE)
    head = store.head()[0]
    got = store.scan(Scan(0, head, 100, ("agent.user_prompt",)))
    assert [s for s, _ in got] == [2, 5, 8, 11]
    assert [s for s, _ in store.scan(Scan(5, head, 2))] == [6, 7]
    assert store.scan(Scan(0, head, 100, (), "no-such-device")) == []
    t0 = 1_700_000_000_000_000_000
    got = store.scan(Scan(0, head, 100, (), None, t0 + 3000, t0 + 5000))
    assert [s for s, _ in got] == [4, 5]
