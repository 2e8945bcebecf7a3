"""Retention: whole compliance files past their event type's window are deleted, each leaving a
signed tombstone in the log.

Only whole files go (one event type, one receive-time window, as listed by the file API), and
only once a push sink has delivered them. A file holding any event under a legal hold
(corral.server.holds) stays. Deleting clears the events' content (the leaf) and nothing else:
every row keeps its seq, id, leaf hash, chain link and Merkle nodes, so the hash chain, the tree,
every checkpoint and every proof for the events that remain still verify.

The tombstone is itself an event of the log (``server.tombstone``: chained, in the tree, in the
cursor and file APIs) and is signed with the server's key; it records what went: the file id,
event type, window, count, the file's sha256, the seq range, a digest of the deleted leaf hashes
and the tree root just before it. ``corral server verify`` checks each cleared row against its
tombstone and reports the range as expired, with who signed it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from corral.server import compliance
from corral.server import integrity as it
from corral.server.store.base import (
    ComplianceFile,
    Expired,
    Expiry,
    Hold,
    Incoming,
    Scan,
    Store,
)

TOMBSTONE = "server.tombstone"
DEFAULT_DAYS = 30
_CONTEXT = b"corral tombstone v1\n"
_DURATION = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"[a-z][a-z0-9_.]{0,127}")
_CHUNK = 5000


# -- the policy (config.toml [retention]) ----------------------------------------------------

@dataclass(frozen=True)
class Policy:
    """Seconds to keep each event type (None: forever); ``default`` for types not named."""

    default: int | None = DEFAULT_DAYS * 86400
    per_type: tuple[tuple[str, int | None], ...] = ()

    def for_type(self, name: str) -> int | None:
        if name == TOMBSTONE:  # what proves a deletion is never deleted
            return None
        return dict(self.per_type).get(name, self.default)

    def shortest(self) -> int | None:
        vals = [v for v in (self.default, *(v for _, v in self.per_type)) if v is not None]
        return min(vals) if vals else None


def parse_duration(key: str, value: object) -> int | None:
    """Days as an integer, ``"<n>d|h|m|s"``, or ``"forever"``; seconds (None: forever)."""
    if isinstance(value, bool):
        raise ValueError(f"retention {key}: {value!r} is not a duration")
    if isinstance(value, int):
        if not 1 <= value <= 1_000_000:
            raise ValueError(f"retention {key}: {value} days is out of range (1..1000000)")
        return value * 86400
    if isinstance(value, str):
        if value == "forever":
            return None
        m = _DURATION.fullmatch(value)
        if m:
            return int(m.group(1)) * _UNIT[m.group(2)]
    shown = value[:40] if isinstance(value, str) else type(value).__name__
    raise ValueError(f"retention {key}: {shown!r} is not a duration (days as a number, or "
                     "\"30d\", \"12h\", \"90m\", \"3600s\", \"forever\")")


def parse_policy(doc: object) -> Policy:
    """The ``[retention]`` table: ``default`` and event names, each a duration."""
    if doc is None:
        return Policy()
    if not isinstance(doc, dict):
        raise ValueError("retention must be a table ([retention])")
    default: int | None = DEFAULT_DAYS * 86400
    per: dict[str, int | None] = {}
    for k, v in doc.items():
        if k == "default":
            default = parse_duration(k, v)
            continue
        if not _NAME.fullmatch(k):
            raise ValueError(f"retention: {k[:60]!r} is neither default nor an event name")
        if k == TOMBSTONE:
            raise ValueError(f"retention: {TOMBSTONE} is kept forever (tombstones prove what "
                             "was deleted)")
        per[k] = parse_duration(k, v)
    return Policy(default, tuple(sorted(per.items())))


def shown(seconds: int | None) -> str:
    if seconds is None:
        return "forever"
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


# -- signed tombstones --------------------------------------------------------------------------

def _body(doc: dict[str, Any]) -> bytes:
    rest = {k: v for k, v in doc.items() if k != "signature"}
    return _CONTEXT + json.dumps(rest, sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False).encode()


def sign(doc: dict[str, Any], name: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """``doc`` with ``signed_by`` (the log's name and key hash) and an Ed25519 signature."""
    out = dict(doc, signed_by=f"{name}+{it.key_id(name, key.public_key()).hex()}")
    out["signature"] = base64.b64encode(key.sign(_body(out))).decode()
    return out


def check(doc: dict[str, Any], name: str, pub: Ed25519PublicKey) -> str | None:
    """None when ``doc`` is signed by (name, pub), else the reason."""
    if doc.get("signed_by") != f"{name}+{it.key_id(name, pub).hex()}":
        return f"signed by {str(doc.get('signed_by'))[:80]}, not by this server's key"
    try:
        pub.verify(base64.b64decode(str(doc.get("signature", "")), validate=True), _body(doc))
    except (InvalidSignature, ValueError):
        return "signature is invalid (the tombstone was altered)"
    return None


def leaves_digest(hashes: Iterable[bytes]) -> str:
    """What a tombstone records of the deleted events: SHA-256 over their RFC 6962 leaf
    hashes, in seq order (each is still stored, so verify recomputes it)."""
    h = hashlib.sha256()
    for x in hashes:
        h.update(x)
    return h.hexdigest()


def ranges(seqs: Iterable[int]) -> str:
    """Sorted seqs as ``1-5,8,10-12``."""
    out: list[str] = []
    lo = hi = -2
    for s in sorted(seqs):
        if s == hi + 1:
            hi = s
            continue
        if hi >= 0:
            out.append(f"{lo}-{hi}" if hi > lo else str(lo))
        lo = hi = s
    if hi >= 0:
        out.append(f"{lo}-{hi}" if hi > lo else str(lo))
    return ",".join(out)


def parse_ranges(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def tombstone_item(tid: str, doc: dict[str, Any], now_ns: int) -> Incoming:
    return Incoming(tid, TOMBSTONE, now_ns, "server", "corral.server", doc)


def describe(doc: dict[str, Any]) -> str:
    """One line: what a tombstone removed, when, why and who signed it."""
    when = compliance.iso(int(doc.get("deleted_unix_nano", 0)))
    who = str(doc.get("signed_by", "?")).split("+")[0]
    if doc.get("action") == "erasure":
        return (f"{doc.get('count')} events of user {doc.get('user')} erased on {when} "
                f"(requested by {doc.get('by')}: {doc.get('reason')}), tombstone signed by "
                f"{who}")
    return (f"{doc.get('count')} {doc.get('event_type')} events of compliance file "
            f"{doc.get('file_id')} expired under retention ({doc.get('retention')}) on {when}, "
            f"tombstone signed by {who}")


# -- one retention round ------------------------------------------------------------------------

@dataclass
class Outcome:
    expired: list[tuple[ComplianceFile, str]] = field(default_factory=list)  # (file, tomb id)
    held: list[tuple[ComplianceFile, Hold]] = field(default_factory=list)
    waiting: list[tuple[ComplianceFile, str]] = field(default_factory=list)  # (file, why)

    def lines(self) -> list[str]:
        out = [f"expired {f.id}: {f.count} {f.event_type} events "
               f"({compliance.iso(f.start_ns)}..{compliance.iso(f.end_ns)}), tombstone {t}"
               for f, t in self.expired]
        out += [f"kept {f.id}: under legal hold {h.id} ({h.reason})" for f, h in self.held]
        out += [f"kept {f.id}: {why}" for f, why in self.waiting]
        return out


@dataclass(frozen=True)
class Signer:
    name: str  # the log's name (origin) in the verifier key
    key: Ed25519PrivateKey


def _file_rows(store: Store, f: ComplianceFile) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    after = f.first_seq - 1
    while after < f.last_seq:
        rows = store.scan(Scan(after, f.last_seq, _CHUNK, (f.event_type,)))
        if not rows:
            break
        out += rows
        after = rows[-1][0]
    return out


def sink_floor(sinks: Iterable[Any], data: Path) -> Callable[[ComplianceFile], str | None]:
    """Why a file may not go yet because a push sink has not delivered it (None: it may)."""
    from corral.server.sinks import Cursor

    marks = [(sc, Cursor(data / "sinks" / f"{sc.name}.cursor").load()) for sc in sinks]

    def why(f: ComplianceFile) -> str | None:
        for sc, mark in marks:
            if sc.event_types and f.event_type not in sc.event_types:
                continue
            if (sc.kind == "file" and mark < f.end_ns) or (sc.kind != "file"
                                                           and mark < f.last_seq):
                return f"push sink {sc.name} has not delivered it yet"
        return None

    return why


def run(store: Store, policy: Policy, signer: Signer, now_ns: int, *,
        holds: list[Hold] | None = None, wait: Callable[[ComplianceFile], str | None] = (
            lambda f: None), dry_run: bool = False, limit: int = 1000) -> Outcome:
    """Delete every whole compliance file past its type's retention that no hold and no
    undelivered sink keeps; one signed tombstone each."""
    from corral.server.holds import matching_hold

    out = Outcome()
    shortest = policy.shortest()
    if shortest is None:
        return out
    active = [h for h in (store.holds() if holds is None else holds) if h.released_ns is None]
    for f in store.expirable_files(now_ns - shortest * 10**9, limit):
        keep = policy.for_type(f.event_type)
        if keep is None or f.end_ns + keep * 10**9 > now_ns:
            continue
        why = wait(f)
        if why:
            out.waiting.append((f, why))
            continue
        rows = _file_rows(store, f)
        body = hashlib.sha256(b"".join(compliance.line(s, leaf) for s, leaf in rows))
        if len(rows) != f.count or body.hexdigest() != f.sha256:
            out.waiting.append((f, "it no longer matches its recorded sha256: the log was "
                                   "altered (run corral server verify); nothing deleted"))
            continue
        hold = matching_hold(active, (leaf for _, leaf in rows))
        if hold is not None:
            out.held.append((f, hold))
            continue
        if dry_run:
            out.expired.append((f, "(dry run)"))
            continue
        tid = f"tombstone-{f.id}"
        doc = {"v": 1, "action": "retention", "file_id": f.id, "event_type": f.event_type,
               "start_unix_nano": f.start_ns, "end_unix_nano": f.end_ns,
               "first_seq": f.first_seq, "last_seq": f.last_seq, "count": f.count,
               "file_sha256": f.sha256, "retention": shown(keep),
               "leaves_sha256": leaves_digest(it.leaf_hash(leaf) for _, leaf in rows),
               "deleted_unix_nano": now_ns, "by": "retention"}
        leaves = [leaf for _, leaf in rows]

        def recheck(now_holds: list[Hold], leaves: list[bytes] = leaves) -> str | None:
            h = matching_hold(now_holds, leaves)
            return None if h is None else f"placed under legal hold {h.id} meanwhile"

        try:
            store.expire(Expiry(tid, tombstone_maker(tid, doc, signer, now_ns), f.count, (f.id,),
                                f.event_type, f.first_seq, f.last_seq, recheck=recheck),
                         now_ns)
        except Expired as exc:
            out.waiting.append((f, str(exc)))
            continue
        out.expired.append((f, tid))
    return out


def tombstone_maker(tid: str, doc: dict[str, Any], signer: Signer,
           now_ns: int) -> Callable[[int, bytes], Incoming]:
    """The tombstone, completed inside the expiry transaction with the tree it follows."""

    def make(size: int, root: bytes) -> Incoming:
        full = dict(doc, tree_size=size, tree_root=base64.b64encode(root).decode())
        return tombstone_item(tid, sign(full, signer.name, signer.key), now_ns)

    return make


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"
