"""Retention, legal holds and erasure under a simulated clock, on both engines (SQLite and a real
PostgreSQL 15): whole compliance files past retention lose their content under a signed
tombstone, the chain, tree, checkpoints and proofs still verify, holds keep files and refuse
erasure, and every way of faking a deletion is reported by verify."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.server import compliance, holds, retention
from corral.server import config as sconfig
from corral.server import integrity as it
from corral.server.ingest import decode, parse
from corral.server.store.base import Scan, Store
from corral.server.verify import Report, verify
from tests.server.compliance_helpers import mixed_journal
from tests.server.helpers import forward_request, init_server

S = 10**9
H = 3600 * S
BASE = 1_800_000_000 * S - (1_800_000_000 * S) % H  # a whole hour
DAY = 24 * H


class Log:
    def __init__(self, data: Path, store: Store) -> None:
        self.data, self.store = data, store
        cfg = sconfig.load(data)
        self.cfg = cfg
        self.name, self.pub = sconfig.verifier(cfg)
        self.signer = retention.Signer(self.name, sconfig.signing_key(cfg))

    def add(self, tmp: Path, n: int, session: str, user: str, at_ns: int) -> None:
        (tmp / session).mkdir()
        j = mixed_journal(tmp / session, n, session=session, user=user)
        items = decode(parse(forward_request(j, with_checkpoints=False),
                             "application/x-protobuf")).items
        self.store.append(items, at_ns)

    def checkpoint(self) -> str:
        size = self.store.head()[0]
        note = it.sign_checkpoint(it.Checkpoint(self.cfg.origin, size,
                                                self.store.tree().root(size)),
                                  self.name, self.signer.key)
        self.store.add_checkpoint(size, note, BASE)
        return note

    def verify(self, extra: list[tuple[str, str]] | None = None) -> Report:
        return verify(self.store, self.name, self.pub, self.cfg.origin, extra or [])

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        rows = self.store.scan(Scan(0, self.store.head()[0], 100_000,
                                    (name,) if name else ()))
        return [json.loads(leaf) for _, leaf in rows]


@pytest.fixture(params=["sqlite", "postgresql"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    data = tmp_path / "srv"
    db = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    init_server(data, db)
    st = sconfig.open_store(sconfig.load(data))
    try:
        yield Log(data, st)
    finally:
        st.close()


POLICY = retention.Policy(30 * 86400, (("agent.user_prompt", 86400),))


def _two_windows(log: Log, tmp: Path) -> None:
    log.add(tmp, 9, "a", "alice", BASE + 10 * S)  # window 1: 3 of each type
    log.add(tmp, 6, "b", "bob", BASE + H + 10 * S)  # window 2
    assert compliance.cut(log.store, BASE + 3 * H, 3600, 60) == 6


def test_whole_files_expire_under_signed_tombstones_and_the_log_still_verifies(
        log: Log, tmp_path: Path) -> None:
    _two_windows(log, tmp_path)
    before = log.checkpoint()  # signed before anything was deleted
    survivor = next(e for e in log.events() if e["name"] == "agent.tool.decision")
    # a day after window 1 closed: only its prompts are past their one-day retention
    out = retention.run(log.store, POLICY, log.signer, BASE + H + DAY)
    assert [(f.event_type, f.start_ns, t) for f, t in out.expired] == [
        ("agent.user_prompt", BASE, f"tombstone-{compliance.file_id('agent.user_prompt', BASE)}")]
    assert not out.held and not out.waiting
    assert [e["record"] for e in log.events("agent.user_prompt")].__len__() == 2  # window 2
    gone = compliance.file_id("agent.user_prompt", BASE)
    assert gone not in {f.id for f in log.store.compliance_files(None, 0, 100)}
    stone = json.loads(log.store.withdrawn(gone) or b"{}")
    doc = stone["record"]
    assert stone["name"] == "server.tombstone" and doc["count"] == 3
    assert doc["file_id"] == gone and doc["retention"] == "1d"
    assert retention.check(doc, log.name, log.pub) is None
    # a second round deletes nothing more; nothing is ever deleted twice
    assert not retention.run(log.store, POLICY, log.signer, BASE + H + DAY).expired
    # the chain, the tree, the checkpoint signed before and one signed after all verify
    after = log.checkpoint()
    rep = log.verify([("before", before), ("after", after)])
    assert rep.problems == [] and rep.expired == 3
    assert len(rep.notes) == 1 and "expired under retention (1d)" in rep.notes[0]
    assert f"signed by {log.name}" in rep.notes[0]
    # proofs: a surviving event and an expired one (by its stored leaf hash) are both in the
    # tree the checkpoint signed
    size = log.store.head()[0]
    root = log.store.tree().root(size)
    seq = survivor["seq"]
    leaf = log.store.leaf(seq) or b""
    assert it.verify_inclusion(seq - 1, size, it.leaf_hash(leaf),
                               log.store.tree().inclusion(seq - 1, size), root)
    expired_seq = doc["first_seq"] + 1  # window 1 is seqs 1..9, the prompt at index 1
    assert log.store.leaf(expired_seq) == b""
    lh = log.store.leaf_hash(expired_seq) or b""
    assert it.verify_inclusion(expired_seq - 1, size, lh,
                               log.store.tree().inclusion(expired_seq - 1, size), root)
    assert json.loads(log.store.tombstone_for(expired_seq) or b"{}")["id"] == stone["id"]


def test_the_log_refuses_any_other_change(log: Log, tmp_path: Path) -> None:
    _two_windows(log, tmp_path)
    for sql in ("UPDATE events SET leaf = ? WHERE seq = 1",
                "UPDATE events SET leaf = ?, tombstone = 'no-such-tombstone' WHERE seq = 1",
                "DELETE FROM events WHERE seq = 1 AND leaf <> ?"):
        # (PostgreSQL's ingest role may not even DELETE: refused before the trigger)
        with pytest.raises(Exception, match=r"append-only|permission denied"), \
                log.store._write_tx() as tx:
            tx.run(sql, (b"",))
    retention.run(log.store, POLICY, log.signer, BASE + H + DAY)
    stone = f"tombstone-{compliance.file_id('agent.user_prompt', BASE)}"
    for sql, args in (  # even with a real tombstone: other columns, tombstones, re-expiry
            ("UPDATE events SET leaf = ?, tombstone = ?, name = 'x' WHERE seq = 1",
             (b"", stone)),
            ("UPDATE events SET leaf = ?, tombstone = ? WHERE name = 'server.tombstone'",
             (b"", stone)),
            ("UPDATE events SET leaf = ?, tombstone = ? WHERE seq = 2", (b"", stone))):
        with pytest.raises(Exception, match=r"append-only|permission denied"), \
                log.store._write_tx() as tx:
            tx.run(sql, args)
    assert log.verify().problems == []


def test_a_hold_keeps_the_files_holding_its_events_and_is_logged(
        log: Log, tmp_path: Path) -> None:
    _two_windows(log, tmp_path)
    crit = holds.parse_criteria("alice", None, None, None, None)
    h = holds.create(log.store, "case 4711", crit, "counsel", BASE + 3 * H)
    later = BASE + 40 * DAY  # every file is past retention
    out = retention.run(log.store, POLICY, log.signer, later)
    assert {f.start_ns for f, _ in out.expired} == {BASE + H}  # bob's window went
    assert {(f.start_ns, hh.id) for f, hh in out.held} == {(BASE, h.id)}
    assert len(log.events("agent.tool.decision")) == 3  # alice's window, whole
    holds.release(log.store, h.id, "counsel", later)
    with pytest.raises(holds.Refused, match="released already"):
        holds.release(log.store, h.id, "counsel", later)
    assert len(retention.run(log.store, POLICY, log.signer, later).expired) == 3
    logged = [e["record"] for e in log.events("server.hold")]
    assert [(r["action"], r["by"]) for r in logged] == [("create", "counsel"),
                                                         ("release", "counsel")]
    assert logged[0]["hold"]["user"] == "alice" and logged[0]["hold"]["reason"] == "case 4711"
    assert log.verify().problems == []


def test_erasure_is_refused_under_a_hold_and_verifies_once_done(
        log: Log, tmp_path: Path) -> None:
    _two_windows(log, tmp_path)
    crit = holds.parse_criteria(None, "a", None, None, None)  # alice's session
    h = holds.create(log.store, "litigation 9", crit, "counsel", BASE + 3 * H)
    with pytest.raises(holds.Refused) as exc:
        holds.erase(log.store, log.signer, "alice", None, None, "GDPR request 1", "dpo",
                    BASE + 4 * H)
    assert str(exc.value).startswith("erase refused: 9 of the 9 events of user alice are "
                                     f"under legal hold {h.id} (litigation 9")
    assert len(log.events()) >= 15  # nothing touched
    n, tid = holds.erase(log.store, log.signer, "bob", None, None, "GDPR request 2", "dpo",
                         BASE + 4 * H)
    assert n == 6 and tid
    assert not [e for e in log.events() if e["record"] and "bob" in str(e["record"])
                and e["name"].startswith("agent.")]
    # bob's three files (window 2) are withdrawn, alice's stay listed
    listed = log.store.compliance_files(None, 0, 100)
    assert {f.start_ns for f in listed} == {BASE}
    rep = log.verify()
    assert rep.problems == [] and rep.expired == 6
    assert "erased" in rep.notes[0] and "GDPR request 2" in rep.notes[0]


def test_verify_reports_every_faked_deletion(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    init_server(data)
    st = sconfig.open_store(sconfig.load(data))
    log = Log(data, st)
    try:
        _two_windows(log, tmp_path)
        retention.run(log.store, POLICY, log.signer, BASE + H + DAY)
        assert log.verify().problems == []
        stone = f"tombstone-{compliance.file_id('agent.user_prompt', BASE)}"
        c = sqlite3.connect(data / "store" / "log.db")
        c.execute("DROP TRIGGER events_expiry_only")
        # 1. content cleared with no tombstone; 2. a decision cleared citing the prompts'
        # tombstone; 3. the tombstone's record edited (signature no longer matches)
        c.execute("UPDATE events SET leaf = x'' WHERE seq = 1")
        c.execute("UPDATE events SET leaf = x'', tombstone = ? WHERE seq = 13", (stone,))
        c.commit()
        problems = log.verify().problems
        assert any("seq 1 " in p and "content deleted without a tombstone" in p
                   for p in problems)
        assert any(stone in p and "records 3 events, 4 cite it" in p for p in problems)
        c.execute("UPDATE events SET leaf = CAST(replace(leaf, '\"retention\":\"1d\"', "
                  "'\"retention\":\"9d\"') AS BLOB) WHERE name = 'server.tombstone'")
        c.commit()
        c.close()
        problems = log.verify().problems
        assert any("hash does not match the chain" in p for p in problems)
        assert any("signature is invalid" in p for p in problems)
    finally:
        st.close()


def test_files_a_sink_has_not_delivered_wait(log: Log, tmp_path: Path) -> None:
    from corral.server.sinks import Cursor, SinkConfig

    _two_windows(log, tmp_path)
    sink = SinkConfig("soc", "syslog", "tcp://127.0.0.1:1")
    Cursor(log.data / "sinks" / "soc.cursor").save(5)  # delivered seqs 1..5 only
    out = retention.run(log.store, POLICY, log.signer, BASE + 40 * DAY,
                        wait=retention.sink_floor([sink], log.data))
    assert not out.expired
    assert {why for _, why in out.waiting} == {"push sink soc has not delivered it yet"}
    Cursor(log.data / "sinks" / "soc.cursor").save(log.store.head()[0])
    out = retention.run(log.store, POLICY, log.signer, BASE + 40 * DAY,
                        wait=retention.sink_floor([sink], log.data))
    assert len(out.expired) == 6


def test_a_hold_placed_while_a_deletion_is_prepared_still_stops_it(
        log: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_windows(log, tmp_path)
    h = holds.create(log.store, "late hold", holds.parse_criteria("alice", None, None, None,
                                                                  None), "counsel", BASE)
    monkeypatch.setattr(log.store, "holds", lambda: [])  # the preparation does not see it
    out = retention.run(log.store, POLICY, log.signer, BASE + 40 * DAY)
    assert {f.start_ns for f, _ in out.expired} == {BASE + H}
    assert {why for f, why in out.waiting} == {f"placed under legal hold {h.id} meanwhile"}
    with pytest.raises(holds.Refused, match=f"erase refused: 9 of the 9 .* legal hold {h.id}"):
        holds.erase(log.store, log.signer, "alice", None, None, "GDPR 3", "dpo", BASE)
    assert len(log.events("agent.tool.decision")) == 3  # alice's, whole


def test_a_store_from_before_retention_is_migrated(tmp_path: Path) -> None:
    """The tombstone column and the expiry trigger are added to an existing SQLite store (a
    read-only open, as verify does, reads it as it is)."""
    from corral.server.store.sqlite import SqliteStore

    data = tmp_path / "srv"
    init_server(data)
    db = data / "store" / "log.db"
    st = sconfig.open_store(sconfig.load(data))
    log = Log(data, st)
    _two_windows(log, tmp_path)
    st.close()
    c = sqlite3.connect(db)
    c.executescript("DROP TRIGGER events_expiry_only; ALTER TABLE events DROP COLUMN tombstone;"
                    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN "
                    "SELECT RAISE(ABORT, 'the log is append-only'); END;")
    c.close()
    old = SqliteStore(db, readonly=True)
    try:
        assert Log(data, old).verify().problems == []
    finally:
        old.close()
    st = sconfig.open_store(sconfig.load(data))
    try:
        log = Log(data, st)
        assert len(retention.run(st, POLICY, log.signer, BASE + H + DAY).expired) == 1
        assert log.verify().problems == [] and log.verify().expired == 3
    finally:
        st.close()
    c = sqlite3.connect(db)
    assert not c.execute("SELECT 1 FROM sqlite_master WHERE name = 'events_no_update'").fetchone()
    c.close()


def test_the_stateful_summaries_stop_counting_what_expired_or_was_erased(
        log: Log, tmp_path: Path) -> None:
    """The state folded before a retention round and an erasure drops what they cleared at the
    next refresh, and then agrees with a fold made from scratch (a restarted server)."""
    from corral.server.state import State

    def summaries(st: State) -> dict[str, Any]:
        st.refresh()
        return {k: st.listing(k) for k in ("sessions", "users", "devices", "mcp-servers",
                                           "tools")}

    _two_windows(log, tmp_path)
    state = State(log.store)
    first = summaries(state)
    a = next(s for s in first["sessions"] if s["id"] == "a")
    assert (a["events"], a["prompts"]) == (9, 3)
    assert {u["name"]: u["events"] for u in first["users"]} == {"alice": 9, "bob": 6}
    retention.run(log.store, POLICY, log.signer, BASE + H + DAY)  # window 1's prompts
    after = summaries(state)
    a = next(s for s in after["sessions"] if s["id"] == "a")
    assert (a["events"], a["prompts"]) == (6, 0)
    assert {u["name"]: u["events"] for u in after["users"]} == {"alice": 6, "bob": 6}
    assert after == summaries(State(log.store))
    holds.erase(log.store, log.signer, "bob", None, None, "GDPR request 3", "dpo",
                BASE + H + DAY)
    erased = summaries(state)
    assert [s["id"] for s in erased["sessions"]] == ["a"]
    assert [u["name"] for u in erased["users"]] == ["alice"]
    assert erased == summaries(State(log.store))
