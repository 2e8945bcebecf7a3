"""The forwarding cursor: how far the server has acknowledged this journal.

One small JSON file per server next to the journal (``journal/forward-<hash of url>.json``). It is
replaced atomically (temporary file, fsync, rename, fsync of the directory), only ever after the
server acknowledged, and never moves backwards when several forwarders share it (a background
forwarder per session plus ``corral forward``): each save takes a short ``flock`` and keeps the
furthest position. It also stores the chain hash at its seq, so a journal that lost its tail
(power cut before SQLite synced) or was replaced is noticed and forwarding restarts from the
beginning rather than skip the records that now sit at those seqs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

from corral.record import Frozen
from corral.telemetry.journal import GENESIS


class Cursor(Frozen):
    """Acknowledged up to record ``seq`` (whose chain hash is ``hash``) and checkpoint
    ``checkpoint_seq`` of journal ``journal_id``."""

    _fields = ("journal_id", "seq", "hash", "checkpoint_seq")
    journal_id: str
    seq: int
    hash: str
    checkpoint_seq: int

    def __init__(self, journal_id: str, seq: int = 0, hash: str = GENESIS,
                 checkpoint_seq: int = 0) -> None:
        self._set(journal_id=journal_id, seq=seq, hash=hash, checkpoint_seq=checkpoint_seq)

    def ahead_of(self, other: Cursor) -> bool:
        return (self.seq, self.checkpoint_seq) > (other.seq, other.checkpoint_seq)


def cursor_file(journal_path: Path, url: str) -> Path:
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return journal_path.parent / f"forward-{key}.json"


def load(path: Path, journal_id: str) -> Cursor:
    """The stored cursor, or the start when there is none, it is unreadable, or it belongs to
    another journal (starting over is always safe: the server de-duplicates)."""
    try:
        data = json.loads(path.read_text())
        cur = Cursor(journal_id=str(data["journal_id"]), seq=int(data["seq"]),
                     hash=str(data["hash"]), checkpoint_seq=int(data["checkpoint_seq"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Cursor(journal_id)
    if cur.journal_id != journal_id or cur.seq < 0 or cur.checkpoint_seq < 0:
        return Cursor(journal_id)
    return cur


def save(path: Path, cur: Cursor, url: str, *, force: bool = False,
         durable: bool = True) -> Cursor:
    """Persist ``cur`` unless the stored cursor is already further; returns what is stored.
    ``force`` moves it back (the journal no longer holds what the cursor points at). Without
    ``durable`` the rename is still atomic (a killed process leaves the old or the new cursor)
    but only a power cut before the next ``sync`` can lose it, which costs a re-send."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = load(path, cur.journal_id)
        if not force and not cur.ahead_of(stored) and path.exists():
            return stored
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({**cur.as_dict(), "server": url}, fh)
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if durable:
            sync_dir(path.parent)
        return cur
    finally:
        os.close(lock)  # closing the descriptor releases the lock


def sync_dir(d: Path) -> None:
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def sync(path: Path) -> None:
    """Make the last (non-durable) save durable."""
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        sync_dir(path.parent)
