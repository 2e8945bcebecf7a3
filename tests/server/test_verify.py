"""`corral server verify` finds every kind of tampering with the store (an attacker with write
access to the database file: triggers dropped first)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.server import config as sconfig
from corral.server.app import Server, export
from corral.server.ingest import decode, parse
from tests.server.helpers import corral, forward_request, journal


def _log(tmp: Path, n: int = 30) -> Path:
    data = tmp / "srv"
    cfg = sconfig.init(data)
    j = journal(tmp, n, checkpoint_every=10)
    srv = Server(cfg)
    items = decode(parse(forward_request(j), "application/x-protobuf")).items
    srv.writer_store.append(items[:20], 1)
    srv.cut_checkpoint()
    srv.writer_store.append(items[20:], 2)
    srv.cut_checkpoint()
    for st in (srv.writer_store, srv.reader, srv.cp_store):
        st.close()
    return data


def _verify(data: Path, *extra: str) -> tuple[int, list[str]]:
    res = corral("server", "verify", "--data", str(data), *extra, check=False)
    return res.returncode, res.stdout.splitlines()


def _tamper(data: Path, *sql: str) -> None:
    c = sqlite3.connect(data / "store" / "log.db")
    for t in ("events_expiry_only", "events_no_delete", "checkpoints_no_delete"):
        c.execute(f"DROP TRIGGER {t}")
    for s in sql:
        c.execute(s)
    c.commit()
    c.close()


def test_clean_log_verifies(tmp_path: Path) -> None:
    code, out = _verify(_log(tmp_path))
    assert code == 0, out
    assert out[0].startswith("ok: 33 events")  # 30 records + checkpoints 10, 20, 30


EDITS: dict[str, tuple[Callable[[Path], None], str]] = {
    "edited": (lambda d: _tamper(d, "UPDATE events SET leaf = CAST(replace(leaf, 'approved', "
                                "'denied') AS BLOB) WHERE seq = 5"),
               "seq 5 (event ev-s1-00000004): hash does not match the chain"),
    "deleted": (lambda d: _tamper(d, "DELETE FROM events WHERE seq = 7"),
                "seq 7..7: events missing (deleted)"),
    "inserted": (lambda d: _tamper(
        d, "INSERT INTO events SELECT 1000, 'forged', received_ns, device_id, NULL, NULL, "
           "NULL, kind, name, time_unix_nano, flag, leaf, chain, tree, NULL FROM events WHERE "
           "seq = 3"), "seq 1000 (event forged): hash does not match the chain"),
    "journal column": (lambda d: _tamper(d, "UPDATE events SET journal_seq = 99 WHERE seq = 8"),
                       "seq 8 (event ev-s1-00000007): journal columns do not match the event"),
    "reordered": (lambda d: _tamper(
        d, "UPDATE events SET seq = -1 WHERE seq = 4", "UPDATE events SET seq = 4 WHERE "
           "seq = 5", "UPDATE events SET seq = 5 WHERE seq = -1"),
        "seq 4 (event ev-s1-00000004): hash does not match the chain"),
}


@pytest.mark.parametrize("kind", list(EDITS))
def test_tampering_is_found(tmp_path: Path, kind: str) -> None:
    data = _log(tmp_path)
    tamper, expected = EDITS[kind]
    tamper(data)
    code, out = _verify(data)
    assert code == 1
    assert any(line.startswith(f"corral: server verify: {expected}") for line in out), out


def test_truncated_tail_behind_an_exported_checkpoint(tmp_path: Path) -> None:
    data = _log(tmp_path)
    published = tmp_path / "published.txt"
    shutil.copy(data / "checkpoints" / "latest.txt", published)
    _tamper(data, "DELETE FROM events WHERE seq > 25", "DELETE FROM checkpoints WHERE size > 25")
    for f in (data / "checkpoints").glob("*.txt"):
        f.unlink()  # the attacker cleans the export directory too; the witness kept a copy
    code, out = _verify(data, "--checkpoint", str(published))
    assert code == 1
    assert (f"corral: server verify: {published}: log truncated: the checkpoint covers 33 "
            "events, the store holds 25") in out


def test_rewrite_behind_a_checkpoint_with_recomputed_chain(tmp_path: Path) -> None:
    """An attacker who rewrites an event and recomputes every later chain link and node still
    cannot match the signed root."""
    data = _log(tmp_path)
    from corral.server import integrity as it

    c = sqlite3.connect(data / "store" / "log.db")
    c.execute("DROP TRIGGER events_expiry_only")
    rows = c.execute("SELECT seq, leaf FROM events ORDER BY seq").fetchall()
    prev, frontier = it.GENESIS, []
    for i, (seq, leaf) in enumerate(rows):
        if seq == 2:
            leaf = leaf.replace(b"approved", b"denied")
        prev = it.chain_link(prev, it.leaf_hash(leaf))
        tree = it.completed_nodes(i, it.leaf_hash(leaf), frontier)
        c.execute("UPDATE events SET leaf = ?, chain = ?, tree = ? WHERE seq = ?",
                  (leaf, prev, tree, seq))
    c.commit()
    c.close()
    code, out = _verify(data)
    assert code == 1
    assert any("stored checkpoint 20: tree root at size 20 differs from the signed one" in line for line in out), out


def test_bad_exported_checkpoint_signature(tmp_path: Path) -> None:
    data = _log(tmp_path)
    cfg = sconfig.load(data)
    note = (data / "checkpoints" / "latest.txt").read_text()
    export(cfg, 99, note.replace("\n33\n", "\n34\n"))
    code, out = _verify(data)
    assert code == 1
    assert any("checkpoint signature is invalid" in line for line in out), out


def test_parallel_verify_finds_the_same_problems(tmp_path: Path) -> None:
    """Split over processes, a deletion right at a part boundary and an edit inside a part are
    still found, and a clean log is still clean."""
    import functools

    from corral.server.verify import verify

    data = _log(tmp_path)
    cfg = sconfig.load(data)
    name, pub = sconfig.verifier(cfg)
    opener = functools.partial(sconfig.open_store, cfg, readonly=True)

    def run(parts: int) -> list[str]:
        st = opener()
        try:
            return verify(st, name, pub, cfg.origin, [], opener=opener, parts=parts,
                          min_parallel=1).problems
        finally:
            st.close()

    assert run(3) == [] and run(1) == []
    _tamper(data, "DELETE FROM events WHERE seq = 11",  # 33 rows in 3 parts: 1-11, 12-22, 23-
            "UPDATE events SET leaf = CAST(replace(leaf, 'approved', 'denied') AS BLOB) "
            "WHERE seq = 15")
    for problems in (run(1), run(3)):  # the follow-on lines after a deletion may differ
        assert "seq 11..11: events missing (deleted)" in problems, problems
        assert any(p.startswith("seq 15 (event ev-s1-00000013): hash does not match")
                   for p in problems), problems
