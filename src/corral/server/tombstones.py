"""``corral server verify``'s side of retention and erasure: every event whose content was
cleared must be covered by a tombstone in the log, signed by the server's key, that records
exactly the events it cleared (count, seq range or list, event type, and a digest of their
still-stored leaf hashes) and the tree root just before it. Each valid tombstone becomes one
line of the report (what was removed, when, why, signed by whom); anything else is a problem.
"""

from __future__ import annotations

import array
import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from corral.server import retention
from corral.server.retention import TOMBSTONE

if TYPE_CHECKING:
    from corral.server.verify import Report

__all__ = ["TOMBSTONE", "Cleared", "Stone", "check", "merge"]


@dataclass
class Cleared:
    """The cleared rows citing one tombstone, in seq order (compact: a million fit)."""

    seqs: array.array[int] = field(default_factory=lambda: array.array("q"))
    hashes: bytearray = field(default_factory=bytearray)
    names: set[str] = field(default_factory=set)

    def add(self, seq: int, name: str, leaf_hash: bytes) -> None:
        self.seqs.append(seq)
        self.hashes += leaf_hash
        self.names.add(name)


@dataclass(frozen=True)
class Stone:
    seq: int
    leaf: bytes
    root_before: bytes  # the recomputed tree root at size seq - 1


def merge(parts: list[dict[str, Cleared]]) -> dict[str, Cleared]:
    """Parts cover increasing seq ranges, so concatenating keeps seq order."""
    out: dict[str, Cleared] = {}
    for part in parts:
        for tid, c in part.items():
            o = out.setdefault(tid, Cleared())
            o.seqs.extend(c.seqs)
            o.hashes += c.hashes
            o.names |= c.names
    return out


def _span(c: Cleared) -> str:
    return f"seq {c.seqs[0]}..{c.seqs[-1]}" if c.seqs else "no seq"


def check(rep: Report, stones: list[Stone], cleared: dict[str, Cleared], name: str,
          pub: Ed25519PublicKey) -> int:
    """Add a note per valid tombstone and a problem per mismatch; the events cleared."""
    docs: dict[str, tuple[Stone, dict[str, Any]]] = {}
    for st in stones:
        leaf = json.loads(st.leaf)
        doc = leaf.get("record")
        if not isinstance(doc, dict):
            rep.add(f"seq {st.seq}: tombstone without a tombstone record")
            continue
        why = retention.check(doc, name, pub)
        if why is None and doc.get("tree_root") != base64.b64encode(st.root_before).decode():
            why = "its tree root is not the log's root before it"
        if why is None and doc.get("tree_size") != st.seq - 1:
            why = f"its tree size {doc.get('tree_size')} is not {st.seq - 1}"
        if why:
            rep.add(f"seq {st.seq}: tombstone {leaf.get('id')}: {why}")
            continue
        docs[str(leaf.get("id"))] = (st, doc)
    total = 0
    for tid, c in sorted(cleared.items(), key=lambda kv: kv[1].seqs[0] if kv[1].seqs else 0):
        total += len(c.seqs)
        got = docs.pop(tid, None)
        if got is None:
            rep.add(f"{_span(c)}: {len(c.seqs)} events' content cleared citing {tid}, which is "
                    "not a valid tombstone in the log")
            continue
        st, doc = got
        why = _mismatch(doc, c, st.seq)
        if why:
            rep.add(f"{_span(c)}: tombstone {tid} (seq {st.seq}) does not match the events "
                    f"it cleared: {why}")
            continue
        rep.notes.append(f"{_span(c)}: {retention.describe(doc)} (tombstone {tid}, seq "
                         f"{st.seq})")
    for tid, (st, doc) in docs.items():
        if doc.get("count"):
            rep.add(f"seq {st.seq}: tombstone {tid} records {doc.get('count')} deleted events "
                    "but no cleared event cites it")
    return total


def _mismatch(doc: dict[str, Any], c: Cleared, tomb_seq: int) -> str | None:
    if doc.get("count") != len(c.seqs):
        return f"it records {doc.get('count')} events, {len(c.seqs)} cite it"
    if c.seqs and c.seqs[-1] >= tomb_seq:
        return "it is older than events it cleared"
    if doc.get("action") == "retention":
        lo, hi = doc.get("first_seq", 0), doc.get("last_seq", 0)
        if c.names != {doc.get("event_type")}:
            return f"it deletes {doc.get('event_type')} events, cleared were {sorted(c.names)}"
        if c.seqs and not lo <= c.seqs[0] <= c.seqs[-1] <= hi:
            return f"cleared events lie outside its range {lo}..{hi}"
    elif doc.get("action") == "erasure":
        try:
            listed = retention.parse_ranges(str(doc.get("seqs", "")))
        except ValueError:
            return "its seq list is malformed"
        if listed != list(c.seqs):
            return "the cleared seqs differ from those it lists"
    else:
        return f"unknown action {str(doc.get('action'))[:40]}"
    if retention.leaves_digest(bytes(c.hashes[i:i + 32])
                               for i in range(0, len(c.hashes), 32)) != doc.get("leaves_sha256"):
        return "the digest of the cleared events' leaf hashes differs"
    return None
