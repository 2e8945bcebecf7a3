"""Compliance log files (the shape of OpenAI's Compliance Logs Platform): immutable JSONL files,
one per event type and receive-time window.

A window is cut once it closed and a grace period passed (so transactions that took their
receive time inside it have committed). A cut takes every event with a seq above the previous
cut and received before the window's end, groups them by event name, and records one file per
name (id, window, seq range, count, sha256) in one insert-only transaction; a window is cut once,
by whichever replica gets there first. The bytes are not stored twice: they are a pure function
of the seq range and the stored leaves, rebuilt on each read and checked against the recorded
sha256, so a file never changes and an altered log is refused rather than served.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import time
from collections.abc import Iterator

from corral.server import integrity as it
from corral.server.store.base import ComplianceFile, Scan, Store

_CHUNK = 10_000


@functools.lru_cache(maxsize=4096)  # a window's bounds repeat for every type in it
def iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 10**9))


def file_id(event_type: str, start_ns: int) -> str:
    dt = datetime.datetime.fromtimestamp(start_ns // 10**9, datetime.UTC)
    return f"cl_{dt:%Y%m%dT%H%M%SZ}_{event_type}"


def line(seq: int, leaf: bytes) -> bytes:
    """One event per line: its seq, its RFC 6962 leaf hash and the leaf exactly as stored."""
    return (b'{"seq":%d,"leaf_hash":"%s","event":' % (seq, it.leaf_hash(leaf).hex().encode())
            + leaf + b"}\n")


def chunks(store: Store, event_type: str, first: int, last: int) -> Iterator[bytes]:
    after = first - 1
    while after < last:
        rows = store.scan(Scan(after, last, _CHUNK, (event_type,)))
        if not rows:
            return
        yield b"".join(line(s, leaf) for s, leaf in rows)
        after = rows[-1][0]


def render(store: Store, f: ComplianceFile) -> bytes:
    return b"".join(chunks(store, f.event_type, f.first_seq, f.last_seq))


def cut(store: Store, now_ns: int, window_s: int, grace_s: float) -> int:
    """Cut every closed window not cut yet; returns the number of files recorded."""
    window = window_s * 10**9
    made = 0
    while True:
        last = store.last_compliance_cut()
        end, last_seq = last if last else (0, 0)
        if last_seq >= store.head()[0]:
            return made
        nxt = store.received_at(last_seq + 1)
        if nxt is None:
            return made
        start = max(end, nxt - nxt % window)
        wend = start + window
        if wend + int(grace_s * 1e9) > now_ns:
            return made
        upto = store.last_seq_before(wend, last_seq)
        first = last_seq + 1
        files = []
        for name, _ in sorted(store.name_counts(first, upto).items()):
            h = hashlib.sha256()
            n = 0
            for part in chunks(store, name, first, upto):
                h.update(part)
                n += part.count(b"\n")
            files.append(ComplianceFile(file_id(name, start), name, start, wend, first, upto,
                                        n, h.hexdigest()))
        if not store.add_compliance_cut(start, wend, upto, files):
            continue  # another replica cut it: read its record and go on
        made += len(files)


def listing(store: Store, event_type: str | None, after_ns: int,
            limit: int) -> tuple[list[ComplianceFile], bool]:
    """One page in (end_time, event_type) order. A page never splits a window's files, so
    ``after=last_end_time`` resumes exactly where it stopped."""
    rows = store.compliance_files(event_type, after_ns, limit + 1)
    if len(rows) <= limit:
        return rows, False
    page = rows[:limit]
    if event_type is None and rows[limit].end_ns == page[-1].end_ns:
        cut_at = page[-1].end_ns
        page = [f for f in page if f.end_ns != cut_at]
        if not page:  # one window holds more types than a page: return the whole window
            page = [f for f in store.compliance_files(None, after_ns, 100_000)
                    if f.end_ns == cut_at]
    return page, True


def describe(f: ComplianceFile) -> dict[str, object]:
    return {"id": f.id, "event_type": f.event_type, "start_time": iso(f.start_ns),
            "end_time": iso(f.end_ns), "count": f.count, "sha256": f.sha256}
