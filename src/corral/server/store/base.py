"""The repository interface both engines implement, and the append logic they share.

An engine provides a transaction (``Tx``) that reads the log head and a few rows and inserts;
``append_batch`` does the rest, identically for SQLite and PostgreSQL: deduplicate on event id,
assign server seqs, link the hash chain, complete the Merkle nodes, and check each machine's
forwarded journal chain (a gap or a rewrite is stored and flagged, never dropped).

Everything is insert-only: token revocations and journal key pins are rows of their own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from corral.server import integrity as it

JOURNAL_GENESIS = "0" * 64


@dataclass(slots=True)  # not frozen: a frozen __init__ is 1.7 µs, this 0.25 µs (hot path)
class JournalLink:
    """Where a forwarded record sits in its machine's journal (from the wire contract)."""

    journal_id: str
    public_key: str
    seq: int
    hash: str
    prev_hash: str


@dataclass(frozen=True)
class JournalCheckpoint:
    journal_id: str
    seq: int
    head_hash: str
    prev_seq: int
    time_unix_nano: int
    public_key: str
    signature: str


@dataclass(slots=True)  # not frozen: a frozen __init__ is 1.7 µs, this 0.25 µs (hot path)
class Incoming:
    """One event to store. ``record`` is the JSON value kept verbatim in the leaf (for a
    forwarded journal record: its canonical JSON text, so the machine's chain can be
    recomputed byte for byte)."""

    event_id: str
    name: str
    time_unix_nano: int
    device_id: str
    source: str
    record: Any
    kind: str = "event"  # event | record (forwarded journal record) | checkpoint
    journal: JournalLink | None = None
    checkpoint: JournalCheckpoint | None = None


class Row(NamedTuple):
    """A stored event as the store returns it for verification."""

    seq: int
    event_id: str
    leaf: bytes
    chain: bytes  # the link's hex digits as ASCII bytes
    tree: bytes
    journal_id: str | None
    journal_seq: int | None
    journal_hash: str | None
    kind: str
    flag: str | None
    name: str
    tombstone: str | None  # the event id of the tombstone that cleared its content


@dataclass
class AppendResult:
    stored: int = 0
    duplicates: int = 0
    flagged: int = 0
    size: int = 0


@dataclass
class Token:
    id: str
    name: str
    scope: str
    created_ns: int
    expires_ns: int | None
    revoked_ns: int | None = None


@dataclass(frozen=True)
class ComplianceFile:
    """One immutable compliance log file: the events of one type in one seq range, cut when
    its receive-time window closed (docs/compliance-api.md)."""

    id: str
    event_type: str
    start_ns: int
    end_ns: int
    first_seq: int
    last_seq: int
    count: int
    sha256: str


@dataclass(frozen=True)
class Hold:
    """A legal hold: events matching every criterion given are kept (docs/compliance-api.md)."""

    id: str
    created_ns: int
    by: str
    reason: str
    user: str | None = None
    session_id: str | None = None
    device: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    released_ns: int | None = None
    released_by: str | None = None


@dataclass(frozen=True)
class Expiry:
    """What one tombstone clears: the events of ``name`` with ``first <= seq <= last`` (a
    whole compliance file), or exactly ``seqs`` (an erasure); ``count`` must match."""

    tombstone_id: str
    make: Callable[[int, bytes], Incoming]  # (tree size, root) just before it -> the tombstone
    count: int
    files: tuple[str, ...] = ()
    name: str | None = None
    first: int = 0
    last: int = 0
    seqs: tuple[int, ...] = ()
    # given the active holds read inside the transaction, why it must not happen (a hold
    # placed while the expiry was being prepared), or None
    recheck: Callable[[list[Hold]], str | None] | None = None


class Expired(Exception):
    """The expiry did not apply as planned (already done by another replica, or the rows
    differ); the transaction was rolled back."""


@dataclass(frozen=True)
class Scan:
    """A bounded read of the log in seq order (the cursor API)."""

    after: int
    upto: int
    limit: int
    names: tuple[str, ...] = ()
    device: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None


class Tx(Protocol):
    """What ``append_batch`` needs inside one serialized write transaction (plus ``run`` for
    the few other writes made under the same lock: expiry, holds)."""

    def head(self) -> tuple[int, str]: ...
    def nodes(self, need: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]: ...
    def existing(self, ids: list[str]) -> dict[str, str | None]: ...
    def journal_heads(self, ids: list[str]) -> dict[str, tuple[int, str]]: ...
    def journal_keys(self, ids: list[str]) -> dict[str, str]: ...
    def journal_hash_at(self, journal_id: str, seq: int) -> str | None: ...
    def insert(self, rows: list[tuple[Any, ...]], journals: list[tuple[str, str, str]]) -> None: ...
    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Execute ``sql`` (``?`` placeholders); the number of rows it changed."""
        ...
    def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


# Column order of ``events`` rows produced by append_batch.
COLUMNS = ("seq", "event_id", "received_ns", "device_id", "journal_id", "journal_seq",
           "journal_hash", "kind", "name", "time_unix_nano", "flag", "leaf", "chain", "tree")


_q = json.encoder.encode_basestring


def leaf_doc(seq: int, item: Incoming, received_ns: int, flags: list[str]) -> bytes:
    """The leaf: canonical JSON (sorted keys, no spaces, UTF-8), written out by hand because
    this runs for every stored event (``json.dumps(sort_keys=True)`` gives the same bytes at
    twice the cost; tests/server/test_integrity.py checks they agree)."""
    rec = item.record
    rec_json = _q(rec) if isinstance(rec, str) else _dumps(rec)
    journal = ""
    if item.journal is not None:
        j = item.journal
        journal = (f'"journal":{{"hash":{_q(j.hash)},"id":{_q(j.journal_id)},'
                   f'"prev_hash":{_q(j.prev_hash)},"public_key":{_q(j.public_key)},'
                   f'"seq":{j.seq}}},')
    elif item.checkpoint is not None:
        c = item.checkpoint
        journal = '"journal":' + _dumps({
            "id": c.journal_id, "seq": c.seq, "hash": c.head_hash, "prev_seq": c.prev_seq,
            "time_unix_nano": c.time_unix_nano, "public_key": c.public_key,
            "signature": c.signature}) + ","
    text = (f'{{"device":{_q(item.device_id)},"flags":{_dumps(flags) if flags else "[]"},"id":{_q(item.event_id)},'
            f'{journal}"kind":{_q(item.kind)},"name":{_q(item.name)},'
            f'"received_unix_nano":{received_ns},"record":{rec_json},"seq":{seq},'
            f'"source":{_q(item.source)},"time_unix_nano":{item.time_unix_nano},"v":1}}')
    return text.encode()


def _dumps(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def checkpoint_signature_ok(cp: JournalCheckpoint, pinned_key: str) -> bool:
    from corral.telemetry.journal import checkpoint_message

    if cp.public_key != pinned_key:
        return False
    try:
        pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(pinned_key))
        pub.verify(bytes.fromhex(cp.signature), checkpoint_message(
            cp.journal_id, cp.seq, cp.head_hash, cp.prev_seq, cp.time_unix_nano))
    except (InvalidSignature, ValueError):
        return False
    return True


def record_hash_ok(link: JournalLink, body: str) -> bool:
    """The machine journal's rule: sha256(prev_hash_hex + body)."""
    return hashlib.sha256(link.prev_hash.encode() + body.encode("utf-8")).hexdigest() == link.hash


@dataclass
class _JState:
    seq: int
    hash: str
    key: str | None
    hashes: dict[int, str] = field(default_factory=dict)


def append_batch(tx: Tx, items: list[Incoming], received_ns: int) -> AppendResult:
    """Store ``items`` in order inside ``tx`` (already holding the append lock)."""
    res = AppendResult()
    ids = list(dict.fromkeys(i.event_id for i in items))
    seen = tx.existing(ids)
    jids = list(dict.fromkeys(
        i.journal.journal_id if i.journal else i.checkpoint.journal_id  # type: ignore[union-attr]
        for i in items if i.journal or i.checkpoint))
    jstate: dict[str, _JState] = {}
    if jids:
        heads = tx.journal_heads(jids)
        keys = tx.journal_keys(jids)
        for jid in jids:
            s, h = heads.get(jid, (0, JOURNAL_GENESIS))
            jstate[jid] = _JState(s, h, keys.get(jid))
    size, chain = tx.head()
    frontier_idx = it.frontier_nodes(size)
    got = tx.nodes(frontier_idx) if frontier_idx else {}
    frontier = [got[n] for n in frontier_idx]
    rows: list[tuple[Any, ...]] = []
    new_journals: list[tuple[str, str, str]] = []
    for item in items:
        eid = item.event_id
        flags: list[str] = []
        if eid in seen:
            prior = seen[eid]
            if item.journal is None or prior is None or prior == item.journal.hash:
                res.duplicates += 1
                continue
            # Same producer id, different content: a rewrite. Keep both, flag the new one.
            eid = f"{eid}~{item.journal.hash[:16]}"
            if eid in seen:
                res.duplicates += 1
                continue
            flags.append(f"rewritten history: journal {item.journal.journal_id} seq "
                         f"{item.journal.seq} was already stored with other content")
        jid, jseq, jhash = None, None, None
        if item.journal is not None:
            link = item.journal
            jid, jseq, jhash = link.journal_id, link.seq, link.hash
            st = jstate[jid]
            if st.key is None:
                st.key = link.public_key
                new_journals.append((jid, item.device_id, link.public_key))
            elif st.key != link.public_key:
                flags.append(f"journal {jid} is now signed by another key")
            if not isinstance(item.record, str) or not record_hash_ok(link, item.record):
                flags.append(f"journal {jid} seq {jseq}: record hash does not match its body")
            if link.seq > st.seq + 1:
                flags.append(f"gap: journal {jid} seqs {st.seq + 1}..{link.seq - 1} are missing")
            elif link.seq <= st.seq and not flags:
                at = st.hashes.get(link.seq) or tx.journal_hash_at(jid, link.seq)
                if at is None:  # batches out of order: it fills a gap, nothing rewritten
                    flags.append(f"late: journal {jid} seq {link.seq} arrived after seq "
                                 f"{st.seq}")
                else:
                    flags.append(f"rewritten history: journal {jid} seq {link.seq} was "
                                 "already stored" + ("" if at == link.hash else
                                                     " with other content"))
            elif link.seq == st.seq + 1 and link.prev_hash != st.hash:
                flags.append(f"rewritten history: journal {jid} seq {link.seq} does not "
                             "continue the chain (prev_hash differs)")
            if link.seq > st.seq:
                st.seq, st.hash = link.seq, link.hash
            st.hashes.setdefault(link.seq, link.hash)
        elif item.checkpoint is not None:
            cp = item.checkpoint
            jid, jseq, jhash = cp.journal_id, cp.seq, cp.head_hash
            st = jstate[jid]
            if st.key is None:
                st.key = cp.public_key
                new_journals.append((jid, item.device_id, cp.public_key))
            if not checkpoint_signature_ok(cp, st.key):
                flags.append(f"journal {jid} checkpoint {cp.seq}: signature invalid or by "
                             "another key")
            at = st.hashes.get(cp.seq) or tx.journal_hash_at(jid, cp.seq)
            if at is None:
                flags.append(f"gap: journal {jid} checkpoint {cp.seq} covers a record never "
                             "received")
            elif at != cp.head_hash:
                flags.append(f"rewritten history: journal {jid} checkpoint {cp.seq} signs "
                             "another head than the records received")
        size += 1
        leaf = leaf_doc(size, item if eid == item.event_id else _renamed(item, eid),
                        received_ns, flags)
        lh = it.leaf_hash(leaf)
        chain = it.chain_link(chain, lh)
        tree = it.completed_nodes(size - 1, lh, frontier)
        rows.append((size, eid, received_ns, item.device_id, jid, jseq, jhash, item.kind,
                     item.name, item.time_unix_nano, flags[0] if flags else None, leaf, chain,
                     tree))
        seen[eid] = jhash if item.journal else None
        res.stored += 1
        res.flagged += bool(flags)
    if rows:
        tx.insert(rows, new_journals)
    res.size = size
    return res


def scan_sql(q: Scan, ph: str) -> tuple[str, list[Any]]:
    """The cursor query for both engines (``ph`` is the placeholder: ``?`` or ``%s``); every
    value is a bound parameter."""
    where = [f"seq > {ph}", f"seq <= {ph}"]
    args: list[Any] = [q.after, q.upto]
    if q.names:
        where.append(f"name IN ({','.join([ph] * len(q.names))})")
        args += q.names
    if q.device is not None:
        where.append(f"device_id = {ph}")
        args.append(q.device)
    if q.since_ns is not None:
        where.append(f"time_unix_nano >= {ph}")
        args.append(q.since_ns)
    if q.until_ns is not None:
        where.append(f"time_unix_nano < {ph}")
        args.append(q.until_ns)
    args.append(q.limit)
    return (f"SELECT seq, leaf FROM events WHERE {' AND '.join(where)} AND tombstone IS NULL "
            f"ORDER BY seq LIMIT {ph}", args)


def files_sql(event_type: str | None, after_ns: int, limit: int, ph: str
              ) -> tuple[str, list[Any]]:
    """The compliance file listing for both engines: files a tombstone withdrew (expired under
    retention, or holding erased events) are no longer listed."""
    where = f"f.end_ns > {ph} AND NOT EXISTS (SELECT 1 FROM withdrawn_files w WHERE w.file_id = f.id)"
    args: list[Any] = [after_ns]
    if event_type is not None:
        where += f" AND f.event_type = {ph}"
        args.append(event_type)
    return (f"SELECT f.* FROM compliance_files f WHERE {where} ORDER BY f.end_ns, "
            f"f.event_type LIMIT {ph}", [*args, limit])


def _renamed(item: Incoming, eid: str) -> Incoming:
    from dataclasses import replace

    return replace(item, event_id=eid)


class Store(ABC):
    """The repository: one log (events + tree + chain), checkpoints, tokens."""

    engine: str

    @abstractmethod
    def append(self, items: list[Incoming], received_ns: int) -> AppendResult: ...

    @abstractmethod
    def head(self) -> tuple[int, str]: ...

    @abstractmethod
    def nodes(self, need: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]: ...

    @abstractmethod
    def leaf(self, seq: int) -> bytes | None: ...

    @abstractmethod
    def rows(self, after: int = 0, until: int | None = None) -> Iterator[Row]: ...

    @abstractmethod
    def chain_before(self, seq: int) -> str:
        """The chain link of the last row before ``seq`` (genesis when there is none)."""

    @abstractmethod
    def add_checkpoint(self, size: int, note: str, t_ns: int) -> None: ...

    @abstractmethod
    def checkpoints(self) -> list[tuple[int, str]]: ...

    @abstractmethod
    def latest_checkpoint(self) -> tuple[int, str] | None: ...

    @abstractmethod
    def add_token(self, token: Token, digest: str) -> None: ...

    @abstractmethod
    def revoke_token(self, token_id: str, t_ns: int) -> bool: ...

    @abstractmethod
    def tokens(self) -> list[Token]: ...

    @abstractmethod
    def token_by_digest(self, digest: str) -> Token | None: ...

    @abstractmethod
    def size_bytes(self) -> int: ...

    # -- reads for the compliance API (corral.server.query, corral.server.compliance) -------
    @abstractmethod
    def scan(self, q: Scan) -> list[tuple[int, bytes]]:
        """(seq, leaf) of matching events with ``q.after < seq <= q.upto``, at most
        ``q.limit``, in seq order."""

    @abstractmethod
    def last_seq_before(self, received_ns: int, after: int) -> int:
        """The seq before the first event above ``after`` received at or after
        ``received_ns`` (the head when there is none). Receive times rise with seq, so this
        reads only the window's rows; an event received earlier but stored after that one (a
        slow transaction on another replica) goes into the next window."""

    @abstractmethod
    def received_at(self, seq: int) -> int | None: ...

    @abstractmethod
    def name_counts(self, first: int, last: int) -> dict[str, int]: ...

    @abstractmethod
    def add_compliance_cut(self, start_ns: int, end_ns: int, last_seq: int,
                           files: list[ComplianceFile]) -> bool:
        """Record one window's files in one transaction; False when the window was cut
        already (another replica): files are never rewritten."""

    @abstractmethod
    def last_compliance_cut(self) -> tuple[int, int] | None:
        """(window end ns, last seq) of the latest cut."""

    @abstractmethod
    def compliance_files(self, event_type: str | None, after_ns: int,
                         limit: int) -> list[ComplianceFile]: ...

    @abstractmethod
    def compliance_file(self, file_id: str) -> ComplianceFile | None: ...

    @abstractmethod
    def close(self) -> None: ...

    def tree(self) -> it.Tree:
        return it.Tree(self.nodes)

    # -- retention, erasure and legal holds (corral.server.retention, corral.server.holds) ----
    # The engines provide a read (``_fetch``) and the serialized write transaction
    # (``_write_tx``, holding the append lock); the statements are the same for both.
    _ID_TABLE = "events"  # where an event id finds its seq (PostgreSQL: event_ids)

    @abstractmethod
    def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read with ``?`` placeholders."""

    @abstractmethod
    def _write_tx(self) -> contextlib.AbstractContextManager[Tx]:
        """One write transaction holding the append lock (rolled back on an exception)."""

    def leaf_hash(self, seq: int) -> bytes | None:
        """The stored RFC 6962 leaf hash of event ``seq`` (kept when its content expired)."""
        rows = self._fetch("SELECT substr(tree, 1, 32) FROM events WHERE seq = ?", (seq,))
        return bytes(rows[0][0]) if rows else None

    def _tombstone_leaf(self, tombstone_id: str) -> bytes | None:
        rows = self._fetch(f"SELECT leaf FROM events WHERE seq = (SELECT seq FROM "
                           f"{self._ID_TABLE} WHERE event_id = ?)", (tombstone_id,))
        return bytes(rows[0][0]) if rows else None

    def tombstone_for(self, seq: int) -> bytes | None:
        """The tombstone event (its leaf) that cleared event ``seq``; None while it is whole."""
        rows = self._fetch("SELECT tombstone FROM events WHERE seq = ?", (seq,))
        if not rows or rows[0][0] is None:
            return None
        return self._tombstone_leaf(str(rows[0][0]))

    def withdrawn(self, file_id: str) -> bytes | None:
        """The tombstone (its leaf) that withdrew compliance file ``file_id``, if any."""
        rows = self._fetch("SELECT tombstone FROM withdrawn_files WHERE file_id = ?",
                           (file_id,))
        return self._tombstone_leaf(str(rows[0][0])) if rows else None

    def expirable_files(self, ended_before_ns: int, limit: int = 1000) -> list[ComplianceFile]:
        """Compliance files whose window ended at or before ``ended_before_ns`` and that no
        tombstone withdrew yet, oldest first."""
        return [ComplianceFile(*r) for r in self._fetch(
            "SELECT f.id, f.event_type, f.start_ns, f.end_ns, f.first_seq, f.last_seq, f.count, "
            "f.sha256 FROM compliance_files f WHERE f.end_ns <= ? AND NOT EXISTS (SELECT 1 "
            "FROM withdrawn_files w WHERE w.file_id = f.id) ORDER BY f.end_ns, f.event_type "
            "LIMIT ?", (ended_before_ns, limit))]

    def files_of(self, names: Sequence[str]) -> list[ComplianceFile]:
        """Every compliance file of these event types (withdrawn ones included)."""
        if not names:
            return []
        return [ComplianceFile(*r) for r in self._fetch(
            "SELECT id, event_type, start_ns, end_ns, first_seq, last_seq, count, sha256 FROM "
            f"compliance_files WHERE event_type IN ({','.join('?' * len(names))}) "
            "ORDER BY first_seq", list(names))]

    def expire(self, exp: Expiry, now_ns: int) -> int:
        """Append the tombstone and clear the content of what it names, in one transaction:
        the rows keep their seq, ids, leaf hash, chain link and tree nodes, so the chain, the
        tree and every proof still verify. Raises ``Expired`` (rolled back) when it does not
        apply exactly."""
        tid = exp.tombstone_id
        with self._write_tx() as tx:
            for f in exp.files:
                if tx.fetch("SELECT 1 FROM withdrawn_files WHERE file_id = ?", (f,)):
                    raise Expired(f"compliance file {f} was withdrawn already")
            if exp.recheck is not None:
                why = exp.recheck([h for h in (Hold(*r) for r in tx.fetch(self._HOLDS))
                                   if h.released_ns is None])
                if why:
                    raise Expired(why)
            size, _ = tx.head()
            edge = it.frontier_nodes(size)
            got = tx.nodes(edge) if edge else {}
            item = exp.make(size, it.root_from_frontier([got[n] for n in edge]))
            if item.event_id != tid or append_batch(tx, [item], now_ns).stored != 1:
                raise Expired(f"tombstone {tid} is stored already")
            if exp.name is not None:
                n = tx.run("UPDATE events SET leaf = ?, tombstone = ? WHERE seq >= ? AND "
                           "seq <= ? AND name = ? AND tombstone IS NULL",
                           (b"", tid, exp.first, exp.last, exp.name))
            else:
                n = 0
                for i in range(0, len(exp.seqs), 500):
                    part = exp.seqs[i:i + 500]
                    n += tx.run(f"UPDATE events SET leaf = ?, tombstone = ? WHERE seq IN "
                                f"({','.join('?' * len(part))}) AND tombstone IS NULL",
                                (b"", tid, *part))
            if n != exp.count:
                raise Expired(f"{n} events matched, the tombstone records {exp.count}: the log "
                              "changed under it (nothing was deleted)")
            for f in exp.files:
                tx.run("INSERT INTO withdrawn_files VALUES (?, ?, ?)", (f, tid, now_ns))
        return n

    def add_hold(self, hold: Hold, logged: Incoming) -> None:
        """Store a hold and the event that records its creation, in one transaction."""
        with self._write_tx() as tx:
            append_batch(tx, [logged], hold.created_ns)
            tx.run("INSERT INTO holds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                hold.id, hold.created_ns, hold.by, hold.reason, hold.user, hold.session_id,
                hold.device, hold.since_ns, hold.until_ns))

    def release_hold(self, hold_id: str, by: str, now_ns: int, logged: Incoming) -> str | None:
        """Release a hold (a row of its own) and record it; the reason it cannot, or None."""
        with self._write_tx() as tx:
            if not tx.fetch("SELECT 1 FROM holds WHERE id = ?", (hold_id,)):
                return f"no hold {hold_id}"
            if tx.fetch("SELECT 1 FROM hold_releases WHERE id = ?", (hold_id,)):
                return f"hold {hold_id} is released already"
            append_batch(tx, [logged], now_ns)
            tx.run("INSERT INTO hold_releases VALUES (?, ?, ?)", (hold_id, now_ns, by))
        return None

    _HOLDS = ("SELECT h.id, h.created_ns, h.created_by, h.reason, h.user_name, h.session_id, "
              "h.device, h.since_ns, h.until_ns, r.released_ns, r.released_by FROM holds h LEFT "
              "JOIN hold_releases r ON r.id = h.id ORDER BY h.created_ns, h.id")

    def holds(self) -> list[Hold]:
        return [Hold(*r) for r in self._fetch(self._HOLDS)]

    def journal_keys(self, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        return {str(j): str(k) for j, k in self._fetch(
            f"SELECT journal_id, public_key FROM journals WHERE journal_id IN "
            f"({','.join('?' * len(ids))})", list(ids))}
