"""The hand-encoded batches are exactly the contract's OTLP request, byte-checked by protobuf."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from corral.forward.cursor import Cursor
from corral.forward.wire import CHECKPOINT, SCOPE_NAME, Source, journal_id, next_batch, open_journal
from corral.telemetry.journal import GENESIS, Checkpoint, JournalWriter, journal_file
from corral.telemetry.keys import load_or_create_signing_key, public_hex
from tests.forward.conftest import event, fill
from tests.forward.peer import attrs


def _source(conn: sqlite3.Connection, home: Path) -> Source:
    jid = journal_id(conn)
    assert jid is not None
    return Source(jid, public_hex(load_or_create_signing_key(home).public_key()), "box", "9.9")


def test_batch_is_the_contract(home: Path) -> None:
    fill(home, 300, checkpoint_every=100)
    conn = open_journal(journal_file(home))
    src = _source(conn, home)
    batch = next_batch(conn, Cursor(src.journal_id), src, 512)
    assert batch is not None and batch.records == 300 and batch.checkpoints == 3
    req = ExportLogsServiceRequest.FromString(batch.body)
    assert len(req.resource_logs) == 1
    rl = req.resource_logs[0]
    assert attrs(rl.resource.attributes) == {
        "service.name": "corral", "service.version": "9.9", "host.name": "box",
        "corral.device.id": src.journal_id, "corral.journal.id": src.journal_id,
        "corral.journal.public_key": src.public_key}
    (sl,) = rl.scope_logs
    assert sl.scope.name == SCOPE_NAME
    stored = conn.execute("SELECT seq, id, name, time_unix_nano, body, hash FROM events "
                          "ORDER BY seq").fetchall()
    cps = {r[0]: Checkpoint(src.journal_id, *r) for r in conn.execute(
        "SELECT seq, head_hash, prev_checkpoint, time_unix_nano, public_key, signature "
        "FROM checkpoints")}
    prev, i, names = GENESIS, 0, []
    for lr in sl.log_records:
        a = attrs(lr.attributes)
        names.append(lr.event_name)
        if lr.event_name == CHECKPOINT:
            cp = cps[a["corral.journal.checkpoint.seq"]]
            assert a == {"event.name": CHECKPOINT, "event.id": f"cp-{src.journal_id}-{cp.seq}",
                         **cp.attributes()}
            assert cp.seq == stored[i - 1][0]  # right after the record it covers
            continue
        seq, eid, name, t_ns, body, h = stored[i]
        i += 1
        assert lr.body.string_value.encode() == body  # the journal's bytes, not re-encoded
        assert (lr.time_unix_nano, lr.event_name) == (t_ns, name)
        assert a == {"event.name": name, "event.id": eid, "corral.journal.seq": seq,
                     "corral.journal.hash": h, "corral.journal.prev_hash": prev}
        assert hashlib.sha256(prev.encode() + body).hexdigest() == h
        prev = h
    assert i == 300 and names.count(CHECKPOINT) == 3
    assert batch.after == Cursor(src.journal_id, 300, prev, 300)


def test_batches_hold_at_most_the_limit_and_resume_exactly(home: Path) -> None:
    fill(home, 1100, checkpoint_every=7)
    conn = open_journal(journal_file(home))
    src = _source(conn, home)
    cur = Cursor(src.journal_id)
    seen: list[int] = []
    cps_seen: list[int] = []
    while (b := next_batch(conn, cur, src, 512)) is not None:
        req = ExportLogsServiceRequest.FromString(b.body)
        recs = req.resource_logs[0].scope_logs[0].log_records
        assert len(recs) == b.records + b.checkpoints <= 512
        for lr in recs:
            (cps_seen if lr.event_name == CHECKPOINT else seen).append(
                attrs(lr.attributes).get("corral.journal.seq")
                or attrs(lr.attributes)["corral.journal.checkpoint.seq"])
        cur = b.after
    assert seen == list(range(1, 1101))
    assert cps_seen == list(range(7, 1101, 7))


def test_a_checkpoint_signed_later_still_goes(home: Path) -> None:
    """The session's closing checkpoint is signed after its records may have been sent."""
    fill(home, 10, checkpoint_every=1000)
    conn = open_journal(journal_file(home))
    src = _source(conn, home)
    b = next_batch(conn, Cursor(src.journal_id), src)
    assert b is not None and (b.records, b.checkpoints) == (10, 0)
    w = JournalWriter(journal_file(home), load_or_create_signing_key(home))
    w.checkpoint()
    w.close()
    late = next_batch(conn, b.after, src)
    assert late is not None and (late.records, late.checkpoints) == (0, 1)
    assert next_batch(conn, late.after, src) is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=300), min_size=1, max_size=20), st.integers(1, 512))
def test_any_text_round_trips(home: Path, texts: list[str], limit: int) -> None:
    w = JournalWriter(journal_file(home), load_or_create_signing_key(home), 5)
    evs = []
    for i, t in enumerate(texts):
        ev = event(i)
        ev.attributes["text"] = t
        evs.append(ev)
    w.append(evs)
    w.close()
    conn = open_journal(journal_file(home))
    src = _source(conn, home)
    cur, bodies = Cursor(src.journal_id), []
    while (b := next_batch(conn, cur, src, limit)) is not None:
        req = ExportLogsServiceRequest.FromString(b.body)
        bodies += [lr.body.string_value.encode() for lr in
                   req.resource_logs[0].scope_logs[0].log_records if lr.event_name != CHECKPOINT]
        cur = b.after
    stored = [r[0] for r in conn.execute("SELECT body FROM events ORDER BY seq")]
    assert bodies == stored
    assert [json.loads(b)["attributes"]["text"] for b in bodies[-len(texts):]] == \
        [json.loads(s)["attributes"]["text"] for s in stored[-len(texts):]]
