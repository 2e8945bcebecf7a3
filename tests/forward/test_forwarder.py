"""The forwarder against a real in-process ingest peer: exactly once, in order, never skipping."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.forward import Backoff, Forwarder, ForwardError, ServerSettings
from corral.forward import cursor as cursors
from corral.forward.forwarder import retry_after_seconds
from corral.telemetry.journal import journal_file
from tests.forward.conftest import TOKEN, checkpoint_now, fill
from tests.forward.peer import Peer, Store, chain_ok


def _fwd(home: Path, peer: Peer, token: str = TOKEN, timeout: float = 5.0) -> Forwarder:
    return Forwarder(ServerSettings(peer.url, token, "test"), journal_file(home), timeout=timeout)


def _fast() -> Backoff:
    return Backoff(base=0.01, cap=0.05)


def _exactly_once(store: Store, ids: list[str]) -> None:
    rows = store.rows()
    assert [r[0] for r in rows] == ids  # every id, once, in journal order
    assert chain_ok(rows)


def test_catch_up_sends_everything_once_with_checkpoints(home: Path, peer: Peer,
                                                         store: Store) -> None:
    ids = fill(home, 1500, checkpoint_every=500)
    fwd = _fwd(home, peer)
    stats = fwd.catch_up()
    assert (stats.records, stats.checkpoints, stats.seq) == (1500, 3, 1500)
    assert stats.batches == 3  # 511 records + 1 checkpoint, 511 + 1, 478 + 1
    _exactly_once(store, ids)
    assert [s for _, s in store.checkpoints()] == [500, 1000, 1500]
    # nothing more to send: no request at all
    before = peer.requests
    assert fwd.catch_up().records == 0 and peer.requests == before
    # new records and a late checkpoint go on the next run, and only they
    more = fill(home, 20)
    checkpoint_now(home)
    stats = fwd.catch_up()
    assert (stats.records, stats.checkpoints) == (20, 1)
    _exactly_once(store, ids + more)
    assert store.received() == 1500 + 3 + 20 + 1
    fwd.close()


def test_cursor_is_persisted_and_atomic(home: Path, peer: Peer, store: Store) -> None:
    ids = fill(home, 600)
    fwd = _fwd(home, peer)
    fwd.catch_up()
    fwd.close()
    path = cursors.cursor_file(journal_file(home), peer.url)
    assert path.parent == journal_file(home).parent and os.stat(path).st_mode & 0o077 == 0
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    received = store.received()
    again = _fwd(home, peer)  # a new process would start here
    assert again.catch_up().records == 0 and store.received() == received
    _exactly_once(store, ids)


def test_retry_after_is_honoured(home: Path, peer: Peer, store: Store) -> None:
    ids = fill(home, 10)
    peer.control["retry_after"] = 1
    peer.schedule = ["503", "429"]
    t0 = time.monotonic()
    stats = _fwd(home, peer).catch_up(retry_for=10, backoff=_fast())
    assert time.monotonic() - t0 >= 2.0 and stats.retries == 2
    _exactly_once(store, ids)


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) == 0.0 and retry_after_seconds("soon") == 0.0
    assert retry_after_seconds("99999") == 600.0
    assert 9 <= retry_after_seconds("Wed, 02 Dec 2026 00:00:10 GMT",
                                    now=1_796_169_600.0) <= 10


def test_backoff_grows_with_jitter_and_caps() -> None:
    b = Backoff(base=1, cap=8)
    waits = [b.next() for _ in range(6)]
    assert 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2 and 2 <= waits[2] <= 4
    assert all(4 <= w <= 8 for w in waits[3:])
    assert b.next(retry_after=30) == 30


@pytest.mark.parametrize(("mode", "words"), [
    ("400", "refused the batch (HTTP 400: malformed: test says so)"),
    ("partial", "rejected 1 of 10 records (one record is not acceptable)"),
])
def test_refusals_stop_without_advancing(home: Path, peer: Peer, store: Store, mode: str,
                                         words: str) -> None:
    ids = fill(home, 10)
    peer.control["mode"] = mode
    fwd = _fwd(home, peer)
    with pytest.raises(ForwardError) as err:
        fwd.catch_up(backoff=_fast())
    assert words in err.value.line() and "\n" not in err.value.line()
    assert fwd.position() is not None and fwd.position().seq == 0  # type: ignore[union-attr]
    peer.control["mode"] = "ok"
    fwd.catch_up()
    _exactly_once(store, ids)


def test_wrong_token_is_one_line(home: Path, peer: Peer) -> None:
    fill(home, 3)
    with pytest.raises(ForwardError) as err:
        _fwd(home, peer, token="nope").catch_up()
    assert err.value.line().startswith(f"corral: forward: server {peer.url} refused the token "
                                       "(HTTP 401: token revoked or unknown)")
    assert err.value.exit_code == 1


def test_unreachable_gives_up_with_one_line(home: Path) -> None:
    fill(home, 3)
    s = ServerSettings("http://127.0.0.1:9", TOKEN, "test")  # discard port: refused
    t0 = time.monotonic()
    with pytest.raises(ForwardError) as err:
        Forwarder(s, journal_file(home)).catch_up(retry_for=0.5, backoff=_fast())
    assert time.monotonic() - t0 < 5
    assert err.value.line().startswith("corral: forward: server http://127.0.0.1:9 unreachable")


def test_a_replaced_journal_starts_over_rather_than_skip(home: Path, peer: Peer,
                                                         store: Store) -> None:
    """A journal whose tail was lost (or that was replaced) must not be skipped up to the old
    cursor: records now at those seqs are new events."""
    old = fill(home, 50)
    fwd = _fwd(home, peer)
    fwd.catch_up()
    fwd.close()
    db = journal_file(home)
    jid_cursor = cursors.cursor_file(db, peer.url).read_text()
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    new = fill(home, 30)
    fwd = _fwd(home, peer)
    assert fwd.catch_up().records == 30
    assert set(store.ids()) == set(old + new)
    assert cursors.cursor_file(db, peer.url).read_text() != jid_cursor


def test_a_journal_that_lost_its_tail_is_not_skipped(home: Path, peer: Peer,
                                                     store: Store) -> None:
    """Power cut: SQLite (synchronous=NORMAL) loses the last commits after the cursor was saved.
    Same journal id, and new events now sit at the seqs the cursor already passed."""
    import shutil
    import sqlite3

    db = journal_file(home)
    kept = fill(home, 20)
    backup = home / "backup.db"
    src = sqlite3.connect(db)
    dst = sqlite3.connect(backup)
    src.backup(dst)
    src.close()
    dst.close()
    lost = fill(home, 30)
    fwd = _fwd(home, peer)
    fwd.catch_up()
    fwd.close()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.copy(backup, db)  # the journal as the disk had it: seq 20
    new = fill(home, 30)  # seqs 21..50 again, other events
    fwd = _fwd(home, peer)
    fwd.catch_up()
    fwd.close()
    assert set(store.ids()) == set(kept + lost + new)
    assert len(store.ids()) == 80


def test_concurrent_forwarders_never_move_the_cursor_back(home: Path, peer: Peer,
                                                          store: Store) -> None:
    ids = fill(home, 3000)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            f = Forwarder(ServerSettings(peer.url, TOKEN, "t"), journal_file(home),
                          batch_size=100)
            f.catch_up()
            f.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    _exactly_once(store, ids)
    assert _fwd(home, peer).position().seq == 3000  # type: ignore[union-attr]


FAULTS = st.lists(st.sampled_from(["ok", "503", "429", "die", "slow"]), max_size=12)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=FAULTS, n=st.integers(0, 700), batch=st.sampled_from([5, 64, 512]))
def test_any_fault_schedule_ends_exactly_once(tmp_path: Path, schedule: list[str], n: int,
                                              batch: int) -> None:
    d = Path(os.urandom(6).hex())
    home = tmp_path / d / "home"
    home.mkdir(parents=True)
    ids = fill(home, n, checkpoint_every=97)
    store = Store(tmp_path / d / "server.db")
    peer = Peer(store).start()
    peer.schedule = list(schedule)
    peer.control["delay"] = 0.001
    try:
        f = Forwarder(ServerSettings(peer.url, TOKEN, "t"), journal_file(home),
                      batch_size=batch, timeout=5)
        f.catch_up(retry_for=30, backoff=_fast())
        f.close()
        _exactly_once(store, ids)
        assert len(store.checkpoints()) == n // 97
    finally:
        peer.close()


def test_plain_http_to_loopback_loads_no_trust_store(home: Path, peer: Peer, store: Store,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """http (loopback only) never uses TLS: the system's trust store is not loaded for it
    (~20 ms of every forwarded ``corral exec`` here); https still gets it, or ca_file."""
    import ssl

    made: list[object] = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context",
                        lambda *a, **k: made.append(k) or real(*a, **k))
    ids = fill(home, 50)
    assert peer.url.startswith("http://127.0.0.1:")
    _fwd(home, peer).catch_up()
    _exactly_once(store, ids)
    assert made == []
    from corral.forward.trust import tls_for

    ctx = tls_for("https://corral.example:8443/x", None)
    assert ctx is not None and ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert made == [{"cafile": None}]
    with pytest.raises((OSError, ssl.SSLError)):
        tls_for("https://corral.example", str(home / "missing-ca.pem"))
