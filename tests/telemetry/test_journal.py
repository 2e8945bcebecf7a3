"""The journal's chain and signed checkpoints: every tampering kind is found, and where.

Tampering is done the way an attacker with file access would: open the SQLite file directly, drop
the append-only triggers, and edit rows.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from corral.errors import CorralError
from corral.telemetry import Journal, Telemetry, ToolDecision, journal_file, load_public_key
from corral.telemetry.journal import GENESIS


def fill(home: Path, n: int, every: int = 10, session: str = "s1") -> list[str]:
    tel = Telemetry.open(None, session, agent="codex", checkpoint_every=every)
    ids = []
    for i in range(n):
        ev = tel.emit_event(ToolDecision(tool_name="shell", decision="approved", source="rule",
                                         rule=f"default.rules:{i}", command_line=f"echo {i}"),
                            call_id=f"c{i}")
        ids.append(ev.id)
    tel.close()
    return ids


def tamper(home: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(journal_file(home), isolation_level=None)
    for trig in ("events_no_update", "events_no_delete", "checkpoints_no_update",
                 "checkpoints_no_delete"):
        conn.execute(f"DROP TRIGGER {trig}")
    return conn


def verify(home: Path):  # type: ignore[no-untyped-def]
    return Journal(journal_file(home)).verify(load_public_key(home))


def test_intact_journal_verifies(home: Path) -> None:
    fill(home, 25)
    res = verify(home)
    assert res.ok, res.problems
    assert (res.records, res.last_seq) == (25, 25)
    assert res.checkpoints == 3 and res.last_checkpoint_seq == 25  # at 10, 20 and close


def test_append_only_triggers_stop_casual_edits(home: Path) -> None:
    fill(home, 3)
    conn = sqlite3.connect(journal_file(home))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events WHERE seq = 2")


def test_modified_record_is_found(home: Path) -> None:
    ids = fill(home, 25)
    conn = tamper(home)
    body = conn.execute("SELECT body FROM events WHERE seq=5").fetchone()[0]
    conn.execute("UPDATE events SET body=? WHERE seq=5", (body.replace(b"echo 4", b"echo X"),))
    res = verify(home)
    assert not res.ok
    assert [(p.seq, p.event_id) for p in res.problems] == [(5, ids[4])]
    assert "modified" in res.problems[0].message


def test_deleted_record_is_found(home: Path) -> None:
    fill(home, 25)
    tamper(home).execute("DELETE FROM events WHERE seq=7")
    res = verify(home)
    assert not res.ok
    assert res.problems[0].seq == 8 and "7..7 are missing" in res.problems[0].message


def test_inserted_record_is_found(home: Path) -> None:
    ids = fill(home, 25)
    conn = tamper(home)
    conn.execute("UPDATE events SET seq = seq + 1000 WHERE seq >= 5")
    conn.execute("UPDATE events SET seq = seq - 999 WHERE seq >= 1005")
    body, h = conn.execute("SELECT body, hash FROM events WHERE seq=4").fetchone()
    forged = body.replace(b'"seq":4,', b'"seq":5,').replace(ids[3].encode(), b"01FORGED")
    conn.execute("INSERT INTO events VALUES (5, '01FORGED', 's1', 'agent.tool.decision', 0, ?, ?)",
                 (forged, hashlib.sha256(h.encode() + forged).hexdigest()))
    res = verify(home)
    assert not res.ok
    # the forged record chains, but everything after it no longer does
    assert any(p.seq == 6 and p.event_id == ids[4] for p in res.problems), res.problems


def test_reordered_records_are_found(home: Path) -> None:
    ids = fill(home, 25)
    conn = tamper(home)
    conn.execute("UPDATE events SET seq = -1 WHERE seq = 5")
    conn.execute("UPDATE events SET seq = 5 WHERE seq = 6")
    conn.execute("UPDATE events SET seq = 6 WHERE seq = -1")
    res = verify(home)
    assert not res.ok
    assert res.problems[0].seq == 5 and res.problems[0].event_id == ids[5]


def test_truncation_behind_last_checkpoint_is_found(home: Path) -> None:
    fill(home, 25)
    tamper(home).execute("DELETE FROM events WHERE seq > 20")
    res = verify(home)
    assert not res.ok
    assert any(p.seq == 25 and "truncated" in p.message and "last record is seq 20" in p.message
               for p in res.problems), res.problems


def test_rechained_rewrite_is_caught_by_the_signed_checkpoint(home: Path) -> None:
    """An attacker without the key rewrites a record and recomputes every later hash."""
    fill(home, 25)
    conn = tamper(home)
    rows = conn.execute("SELECT seq, body FROM events ORDER BY seq").fetchall()
    prev = GENESIS
    for seq, body in rows:
        if seq == 3:
            body = body.replace(b"echo 2", b"rm -rf /")
        prev = hashlib.sha256(prev.encode() + body).hexdigest()
        conn.execute("UPDATE events SET body=?, hash=? WHERE seq=?", (body, prev, seq))
    res = verify(home)
    assert not res.ok
    assert [p.seq for p in res.problems] == [10, 20, 25]
    assert all("rewritten" in p.message for p in res.problems)


def test_deleted_checkpoint_is_found(home: Path) -> None:
    fill(home, 25)
    tamper(home).execute("DELETE FROM checkpoints WHERE seq = 10")
    res = verify(home)
    assert not res.ok and "checkpoint was deleted" in res.problems[0].message


def test_checkpoint_signed_by_another_key_is_rejected(home: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from corral.telemetry.journal import checkpoint_message
    from corral.telemetry.keys import public_hex

    fill(home, 25)
    conn = tamper(home)
    jid = conn.execute("SELECT value FROM meta WHERE key='journal_id'").fetchone()[0]
    seq, head, prev_cp, t = conn.execute(
        "SELECT seq, head_hash, prev_checkpoint, time_unix_nano FROM checkpoints WHERE seq=25"
    ).fetchone()
    evil = Ed25519PrivateKey.generate()
    sig = evil.sign(checkpoint_message(jid, seq, head, prev_cp, t)).hex()
    conn.execute("UPDATE checkpoints SET public_key=?, signature=? WHERE seq=25",
                 (public_hex(evil.public_key()), sig))
    res = verify(home)
    assert [p.message for p in res.problems] == ["checkpoint signed by an unknown key"]
    conn.execute("UPDATE checkpoints SET public_key=(SELECT public_key FROM checkpoints "
                 "WHERE seq=10) WHERE seq=25")
    assert [p.message for p in verify(home).problems] == ["checkpoint signature is invalid"]


def test_indexed_column_edit_is_found(home: Path) -> None:
    ids = fill(home, 5)
    tamper(home).execute("UPDATE events SET session_id='other' WHERE seq=4")
    res = verify(home)
    assert [(p.seq, p.event_id) for p in res.problems] == [(4, ids[3])]


def test_corrupt_database_is_reported_not_papered_over(home: Path) -> None:
    fill(home, 400, every=100)
    path = journal_file(home)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(os.urandom(8192))
    res = verify(home)
    assert not res.ok, "random bytes over the journal went unnoticed"


def test_missing_public_key_fails_verification(home: Path) -> None:
    fill(home, 3)
    for f in (home / "keys").iterdir():
        f.unlink()
    res = verify(home)
    assert not res.ok and "no journal public key" in res.problems[0].message


def test_signing_key_is_private_and_refused_when_exposed(home: Path) -> None:
    fill(home, 1)
    key = home / "keys" / "journal-signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    key.chmod(0o644)
    with pytest.raises(CorralError, match="accessible to other users"):
        Telemetry.open(None, "s2")


def test_the_key_corral_wrote_is_read_without_cryptography_and_signs(home: Path) -> None:
    """``corral exec`` opens the journal on every action: its key is checked at open without
    importing cryptography (ms), and the checkpoints it signs later still verify."""
    fill(home, 1)  # writes the key
    code = ("import sys\n"
            "from corral.telemetry import Telemetry\n"
            "tel = Telemetry.open(None, 's2')\n"
            "print('cryptography' in sys.modules, flush=True)\n"
            "tel.emit('agent.custom.tick', {'i.n': 1}, wait=True)\n"
            "tel.close()\n"
            "print('cryptography.hazmat.primitives' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "CORRAL_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
    res = verify(home)
    assert res.ok and res.checkpoints == 2


def test_the_key_from_its_seed_is_the_public_apis_key() -> None:
    """``key_from_seed`` (the Rust binding, without cryptography's Python modules) makes the
    same key as ``Ed25519PrivateKey.from_private_bytes``: same public key, same signatures."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from corral.telemetry.keys import key_from_seed, public_hex

    seed = os.urandom(32)
    ours, theirs = key_from_seed(seed), Ed25519PrivateKey.from_private_bytes(seed)
    assert isinstance(ours, Ed25519PrivateKey)
    assert public_hex(ours.public_key()) == public_hex(theirs.public_key())
    assert ours.sign(b"checkpoint") == theirs.sign(b"checkpoint")  # Ed25519 is deterministic
    with pytest.raises(ValueError):
        key_from_seed(b"short")


def test_the_signing_key_is_made_after_a_waited_commit_not_before(home: Path,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    """The writer thread makes the signing key (an import of ms) only once a caller that
    waited for a commit has it (a decision: its command then runs), never while events are
    queued or before the first decision, which would otherwise be committed behind it."""
    from corral.telemetry.journal import JournalWriter

    seen: list[tuple[int, int]] = []  # (events committed, queue length) when the key is made
    real = JournalWriter.prepare_signing

    def prepare(self: JournalWriter) -> None:
        row = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()
        seen.append((int(row[0]), tel._queue.qsize()))
        real(self)

    monkeypatch.setattr(JournalWriter, "prepare_signing", prepare)
    tel = Telemetry.open(None, "s-sign")
    tel.emit("agent.custom.tick", {"i.n": 0})  # not waited for (a session start)
    deadline = time.monotonic() + 5
    while tel._committed < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert seen == []  # committed, idle, but nobody waited: the key is not made yet
    tel.emit("agent.custom.tick", {"i.n": 1}, wait=True)  # a decision
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [(2, 0)]
    tel.emit("agent.custom.tick", {"i.n": 2}, wait=True)
    tel.close()
    assert seen == [(2, 0)]  # once per session
    res = verify(home)
    assert res.ok and res.checkpoints == 1 and res.last_checkpoint_seq == 3


def test_a_key_file_in_another_form_is_loaded_or_refused_at_open(home: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from corral.telemetry.keys import load_or_create_signing_key, public_hex

    fill(home, 1)
    key = home / "keys" / "journal-signing.key"
    ed = Ed25519PrivateKey.generate()
    key.write_bytes(ed.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.OpenSSH,
                                     serialization.NoEncryption()))
    with pytest.raises(CorralError, match="cannot use journal signing key"):
        Telemetry.open(None, "s2")  # one line saying so, not a traceback
    pem_ec = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    key.write_bytes(pem_ec)
    with pytest.raises(CorralError, match="is not an Ed25519 key"):
        Telemetry.open(None, "s3")
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\n!!not base64!!\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CorralError, match="cannot use journal signing key"):
        Telemetry.open(None, "s4")
    # the PKCS#8 form, CRLF line ends: read without cryptography, the same key
    key.write_bytes(ed.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).replace(b"\n", b"\r\n"))
    loaded = load_or_create_signing_key(home)
    assert public_hex(loaded.public_key()) == public_hex(ed.public_key())
    ed.public_key().verify(loaded.sign(b"message"), b"message")


def test_two_writers_share_one_chain(home: Path) -> None:
    a = Telemetry.open(None, "sa", checkpoint_every=7)
    b = Telemetry.open(None, "sb", checkpoint_every=7)

    def burst(t: Telemetry) -> None:
        for i in range(300):
            t.emit("agent.custom.tick", {"i.n": i})

    threads = [threading.Thread(target=burst, args=(t,)) for t in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a.close()
    b.close()
    res = verify(home)
    assert res.ok, res.problems
    j = Journal(journal_file(home))
    assert res.records == 600
    assert [e.attributes["i.n"] for e in j.events("sb")] == list(range(300))


def test_cli_verify_exit_codes_and_message(home: Path) -> None:
    ids = fill(home, 12)
    corral = [sys.executable, "-m", "corral"]
    ok = subprocess.run([*corral, "log", "verify"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "journal OK" in ok.stdout, ok.stderr
    conn = tamper(home)
    conn.execute("UPDATE events SET body = CAST(replace(body, 'echo 8', 'echo 9') AS BLOB) WHERE seq = 9")
    bad = subprocess.run([*corral, "log", "verify"], capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert f"seq 9 (event {ids[8]})" in bad.stderr
    assert bad.stderr.startswith("corral: telemetry: journal verification failed:")


def test_verify_finds_the_key_beside_the_journal(home: Path) -> None:
    fill(home, 3)
    assert Journal(journal_file(home)).verify().ok


def test_corrupt_journal_refuses_a_new_session(home: Path) -> None:
    fill(home, 3)
    path = journal_file(home)
    data = bytearray(path.read_bytes())
    data[:16] = b"not a database!!"
    path.write_bytes(bytes(data))
    with pytest.raises(CorralError, match="cannot open journal"):
        Telemetry.open(None, "s-after-corruption")
    res = Journal(path).verify()
    assert not res.ok and "corrupt" in res.problems[0].message


def test_verify_while_a_session_is_writing_has_no_false_alarms(home: Path) -> None:
    tel = Telemetry.open(None, "busy", checkpoint_every=50)
    tel.emit("agent.custom.tick", {"i.n": -1}, wait=True)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            tel.emit("agent.custom.tick", {"i.n": i})
            i += 1
            if i % 100 == 0:
                tel.flush()

    t = threading.Thread(target=write)
    t.start()
    results = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
                len(results) < 10 or results[-1].checkpoints < 3):
            results.append(verify(home))
    finally:
        stop.set()
        t.join()
        tel.close()
    assert all(r.ok for r in results), [r.problems for r in results if not r.ok][:1]
    assert results[-1].records > results[0].records


def test_the_recorded_user_is_getpass_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event's ``user`` is what ``getpass.getuser()`` says (read without importing it)."""
    import getpass

    from corral.telemetry.api import _user

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    assert _user() == getpass.getuser()  # from the password database
    monkeypatch.setenv("USERNAME", "u4")
    monkeypatch.setenv("USER", "u2")
    assert _user() == getpass.getuser() == "u2"
    monkeypatch.setenv("LOGNAME", "u1")
    assert _user() == getpass.getuser() == "u1"


def test_the_public_key_comes_from_the_key_files_without_cryptographys_python_modules(
        tmp_path: Path) -> None:
    """``load_public_key`` (the forwarder sends its hex to identify the journal's key) gives
    the key the public API gives, from corral's private key file without importing
    cryptography's Python modules, or, without it, from the .pub file."""
    import subprocess
    import sys

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from corral.telemetry.keys import (
        KEY_NAME,
        key_dir,
        load_or_create_signing_key,
        load_public_key,
        public_hex,
    )

    load_or_create_signing_key(tmp_path)
    priv = serialization.load_pem_private_key((key_dir(tmp_path) / KEY_NAME).read_bytes(), None)
    assert isinstance(priv, Ed25519PrivateKey)
    expected = public_hex(priv.public_key())  # the public API's answer
    pub = load_public_key(tmp_path)
    assert pub is not None and public_hex(pub) == expected
    code = ("import sys; from pathlib import Path; from corral.telemetry.keys import "
            "load_public_key, public_hex; h = public_hex(load_public_key(Path(sys.argv[1]))); "
            "print(h, 'cryptography.hazmat.primitives' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [expected, "False"]
    (key_dir(tmp_path) / KEY_NAME).unlink()  # a verifier's machine: only the .pub file
    pub = load_public_key(tmp_path)
    assert pub is not None and public_hex(pub) == expected
    assert load_public_key(tmp_path / "nothing") is None
