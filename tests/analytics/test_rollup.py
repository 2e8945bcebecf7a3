"""The rollup's cursor: only new records are read, a replaced or truncated journal is folded
again from the start, and any ``EventSource`` (not only a journal file) gives the same numbers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from corral.analytics import JournalSource, Query, RollupStore, Settings, compute, rollup_path
from corral.telemetry.schema import Event
from tests.analytics.fleet import generate, tally


class ListSource:
    """An ``EventSource`` that is not a journal file (what a server store would be)."""

    def __init__(self, journal: JournalSource) -> None:
        self.recs = list(journal.records(0, journal.last_seq()))
        self.hashes = {seq: journal.hash_at(seq) for seq, _ in self.recs}
        self.ident = journal.identity()
        self.journal = journal

    def identity(self) -> str:
        return "list:" + self.ident

    def last_seq(self) -> int:
        return len(self.recs)

    def hash_at(self, seq: int) -> str | None:
        return self.hashes.get(seq)

    def records(self, after_seq: int, until_seq: int) -> Iterator[tuple[int, bytes]]:
        return iter([r for r in self.recs if after_seq < r[0] <= until_seq])

    def session(self, session_id: str) -> list[Event]:
        return self.journal.session(session_id)


def test_only_new_records_are_read_and_another_source_agrees(tmp_path: Path) -> None:
    fleet = generate(tmp_path / "a", days=2)
    src = JournalSource(fleet.path)
    store = RollupStore.open(rollup_path(fleet.path))
    assert store.refresh(src, Settings()) == src.last_seq()
    assert store.refresh(src, Settings()) == 0  # nothing new: nothing read
    want = compute(store, Query(by="agent"), Settings())
    store.close()
    other = RollupStore.open(tmp_path / "other.db")
    other.refresh(ListSource(src), Settings())
    assert compute(other, Query(by="agent"), Settings()) == want
    other.close()


def test_a_replaced_or_truncated_journal_is_folded_again(tmp_path: Path) -> None:
    big = generate(tmp_path / "big", days=3, seed=1)
    small = generate(tmp_path / "small", days=1, seed=2)
    target = tmp_path / "home" / "journal" / "journal.db"
    target.parent.mkdir(parents=True)
    shutil.copy(big.path, target)
    store = RollupStore.open(rollup_path(target))
    store.refresh(JournalSource(target), Settings())
    assert compute(store, Query(), Settings())["tool_calls"] == tally(big.recs)["tool_calls"]
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    shutil.copy(small.path, target)  # another journal in the same place
    store.refresh(JournalSource(target), Settings())
    got = compute(store, Query(), Settings())
    assert got["tool_calls"] == tally(small.recs)["tool_calls"]
    assert got["sessions"] == tally(small.recs)["sessions"]
    store.close()


def test_a_journal_that_lost_its_tail_is_folded_again(tmp_path: Path) -> None:
    import sqlite3

    fleet = generate(tmp_path / "a", days=2, seed=3)
    store = RollupStore.open(rollup_path(fleet.path))
    store.refresh(JournalSource(fleet.path), Settings())
    conn = sqlite3.connect(fleet.path)  # same journal id, last 60 records gone
    conn.execute("DROP TRIGGER events_no_delete")
    conn.execute("DELETE FROM events WHERE seq > (SELECT max(seq) - 60 FROM events)")
    conn.commit()
    conn.close()
    store.refresh(JournalSource(fleet.path), Settings())
    got = compute(store, Query(), Settings())
    kept = tally(fleet.recs[:-60])
    assert got["tool_calls"] == kept["tool_calls"] and got["turns"] == kept["turns"]
    assert got["network"]["deny"] == kept["network"]["deny"]
    store.close()
