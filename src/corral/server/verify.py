"""``corral server verify``: recompute the whole log from its rows and report every problem.

Checks, in one pass over the events in seq order: seq continuity (deleted rows), the hash chain
(an edited, inserted or reordered row breaks it at that row), the Merkle nodes stored with each
row, and the indexed columns against the leaf. Then every signed checkpoint (stored, exported,
and any given on the command line): its signature, and its root against the recomputed tree; a
checkpoint larger than the log means the tail was truncated. Last, each machine's forwarded
journal: gaps, a seq stored with two contents (rewritten history), checkpoints that do not
match the records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from corral.server import integrity as it
from corral.server import tombstones
from corral.server.store.base import JournalCheckpoint, Store, checkpoint_signature_ok

MAX_PROBLEMS = 1000


@dataclass
class Report:
    events: int = 0
    checkpoints: int = 0
    journals: int = 0
    problems: list[str] = field(default_factory=list)
    expired: int = 0  # events whose content a tombstone cleared (hash material kept)
    notes: list[str] = field(default_factory=list)  # what was removed, when, why, signed by

    def add(self, line: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(line)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("too many problems; stopped listing")


@dataclass
class _Journal:
    device: str = ""
    key: str | None = None
    hashes: dict[int, str] = field(default_factory=dict)  # journal seq -> first hash stored
    rewritten: dict[int, set[str]] = field(default_factory=dict)  # seqs with other contents
    checkpoints: list[tuple[int, bytes]] = field(default_factory=list)  # (server seq, leaf)


@dataclass
class _Part:
    """What scanning one seq range found (picklable: parts run in worker processes)."""

    count: int = 0
    problems: list[str] = field(default_factory=list)
    roots: dict[int, bytes] = field(default_factory=dict)
    journals: dict[str, _Journal] = field(default_factory=dict)
    cleared: dict[str, tombstones.Cleared] = field(default_factory=dict)  # by tombstone id
    tombstones: list[tombstones.Stone] = field(default_factory=list)


def verify(store: Store, name: str, pub: Ed25519PublicKey, origin: str,
           extra: list[tuple[str, str]], opener: Callable[[], Store] | None = None,
           parts: int = 1, min_parallel: int = 100_000) -> Report:
    """``extra``: (label, note text) of checkpoints to check besides the stored ones. With
    ``opener`` and ``parts`` > 1 the seq range is split over that many processes (each opens
    its own store): every check is local to a row, its predecessor and the tree's right edge
    before it, so the parts are independent."""
    rep = Report()
    notes: list[tuple[str, str]] = [(f"stored checkpoint {s}", n) for s, n in store.checkpoints()]
    notes += extra
    parsed: list[tuple[str, it.Checkpoint]] = []
    for label, note in notes:
        try:
            cp = it.open_checkpoint(note, name, pub)
        except ValueError as exc:
            rep.add(f"{label}: {exc}")
            continue
        if cp.origin != origin:
            rep.add(f"{label}: checkpoint is for another log ({cp.origin})")
            continue
        parsed.append((label, cp))
    rep.checkpoints = len(parsed)
    sizes = sorted({cp.size for _, cp in parsed})
    top = store.head()[0]
    if opener is None or parts <= 1 or top < min_parallel:
        results = [_scan(store, 1, None, sizes)]
    else:
        import concurrent.futures
        import multiprocessing

        step = -(-top // parts)
        bounds: list[tuple[int, int | None]] = [
            (lo, min(top, lo + step - 1)) for lo in range(1, top + 1, step)]
        bounds[-1] = (bounds[-1][0], None)  # the last part reads to whatever the end is
        ctx = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(len(bounds), mp_context=ctx) as pool:
            results = list(pool.map(_scan_part, [opener] * len(bounds),
                                    [lo for lo, _ in bounds], [hi for _, hi in bounds],
                                    [sizes] * len(bounds)))
    journals: dict[str, _Journal] = {}
    roots: dict[int, bytes] = {}
    count = 0
    for part in results:
        for line in part.problems:
            rep.add(line)
        count += part.count
        roots.update(part.roots)
        for jid, pj in part.journals.items():
            j = journals.setdefault(jid, _Journal())
            j.device = j.device or pj.device
            j.key = j.key or pj.key
            for js, h in pj.hashes.items():
                first = j.hashes.setdefault(js, h)
                if first != h:
                    j.rewritten.setdefault(js, {first}).add(h)
            for js, hs in pj.rewritten.items():
                j.rewritten.setdefault(js, set()).update(hs)
            j.checkpoints += pj.checkpoints
    rep.events = count
    stones = [t for part in results for t in part.tombstones]
    rep.expired = tombstones.check(rep, stones, tombstones.merge(
        [part.cleared for part in results]), name, pub)
    for label, cp in parsed:
        if cp.size > count:
            rep.add(f"{label}: log truncated: the checkpoint covers {cp.size} events, the "
                    f"store holds {count}")
        elif roots.get(cp.size) != cp.root:
            rep.add(f"{label}: tree root at size {cp.size} differs from the signed one "
                    "(events before it were rewritten)")
    rep.journals = len(journals)
    keys = store.journal_keys([jid for jid, j in journals.items() if j.key is None])
    for jid, j in sorted(journals.items()):
        j.key = j.key or keys.get(jid)  # its records' content expired: the pinned key
        _journal(rep, jid, j)
    return rep


def _scan_part(opener: Callable[[], Store], lo: int, hi: int | None,
               sizes: list[int]) -> _Part:
    store = opener()
    try:
        return _scan(store, lo, hi, sizes)
    finally:
        store.close()


def _scan(store: Store, lo: int, hi: int | None, sizes: list[int]) -> _Part:
    """Check rows lo..hi (hi None: to the end) against the stored row before lo and the stored
    right edge of the tree of size lo - 1."""
    part = _Part()
    add = part.problems.append
    want = {s for s in sizes if s >= lo and (hi is None or s <= hi)}
    sha = hashlib.sha256
    quote = json.encoder.encode_basestring
    prev = store.chain_before(lo).encode()
    try:
        edge = it.frontier_nodes(lo - 1)
        got = store.nodes(edge)
        frontier = [got[n] for n in edge]
    except LookupError as exc:
        add(f"seq {lo}: {exc}")
        frontier = []
    expected = lo
    count = lo - 1  # leaves before this part
    journals = part.journals
    # The hot loop (a million rows in a few seconds): hashing inlined, no per-row objects.
    cleared = part.cleared
    for (seq, eid, leaf, chain_b, tree, jid, jseq, jhash, kind, flag, name,
         tomb) in store.rows(lo - 1, hi):
        if seq != expected:
            add(f"seq {expected}..{seq - 1}: events missing (deleted)")
        gone = False
        if tomb is not None:  # content cleared under a tombstone: the stored leaf hash stands
            gone = True
            h = tree[:32]
            c = cleared.get(tomb)
            if c is None:
                c = cleared[tomb] = tombstones.Cleared()
            c.add(seq, name, h)
            if leaf:
                add(f"seq {seq} (event {eid}): marked as deleted by {tomb} but still holds "
                    "content")
        elif not leaf:
            add(f"seq {seq} (event {eid}): content deleted without a tombstone")
            gone = True
            h = tree[:32]
        else:
            h = sha(b"\x00" + leaf).digest()
        if sha(prev + h).hexdigest().encode() != chain_b:
            add(f"seq {seq} (event {eid}): hash does not match the chain: event edited, "
                "inserted or reordered here")
        elif not gone and (b',"seq":%d,"source":' % seq not in leaf
                           or b'],"id":' + quote(eid).encode() + b',' not in leaf):
            add(f"seq {seq} (event {eid}): indexed columns do not match the event "
                "(seq or id edited)")
        if name == tombstones.TOMBSTONE and not gone:
            part.tombstones.append(tombstones.Stone(seq, leaf, it.root_from_frontier(frontier)))
        ok = tree[:32] == h
        n = count + 1
        level = 1
        while not n & 1:
            h = sha(b"\x01" + frontier.pop() + h).digest() if frontier else b""
            ok = ok and tree[32 * level:32 * level + 32] == h
            level += 1
            n >>= 1
        frontier.append(h)
        count += 1
        if not ok or len(tree) != 32 * level:
            add(f"seq {seq}: stored Merkle nodes do not match the event")
        if count in want:
            part.roots[count] = it.root_from_frontier(frontier)
        if jid is not None:
            if not gone:
                # the journal columns drive the per-machine checks: they must be the leaf's own
                at = leaf.find(b'"journal":{"hash":' + quote(jhash or "").encode() + b',"id":'
                               + quote(jid).encode() + b',')
                end = leaf.find(b'},"kind":"' + kind.encode() + b'",', at)
                if at < 0 or end < 0 or (
                        leaf.rfind(b'"seq":%d}' % (jseq or 0), at, end + 1) < 0
                        and leaf.find(b'"seq":%d,"signature":' % (jseq or 0), at, end) < 0):
                    add(f"seq {seq} (event {eid}): journal columns do not match the event "
                        "(journal id, seq, hash or kind edited)")
            j = journals.get(jid)
            if j is None:
                j = journals[jid] = _Journal()
            if kind == "record":
                js = int(jseq or 0)
                first = j.hashes.setdefault(js, jhash or "")
                if first != jhash:
                    j.rewritten.setdefault(js, {first}).add(jhash or "")
                if j.key is None and not gone:
                    doc = json.loads(leaf)
                    j.key = str(doc["journal"]["public_key"])
                    j.device = str(doc["device"])
            elif kind == "checkpoint" and not gone:
                j.checkpoints.append((seq, leaf))
        if flag and ("does not match its body" in flag or "signed by another key" in flag):
            add(f"seq {seq} (event {eid}): flagged at ingest: {flag}")
        if len(part.problems) > MAX_PROBLEMS:
            break
        prev = chain_b
        expected = seq + 1
    if hi is not None and expected <= hi:
        add(f"seq {expected}..{hi}: events missing (deleted)")
    part.count = count - (lo - 1)
    return part


def _journal(rep: Report, jid: str, j: _Journal) -> None:
    who = f"journal {jid}" + (f" (device {j.device})" if j.device else "")
    top = max(j.hashes, default=0)
    missing_from = None
    for s in range(1, top + 2):
        if s <= top and s not in j.hashes:
            missing_from = missing_from or s
        elif missing_from is not None:
            rep.add(f"{who}: gap: journal seqs {missing_from}..{s - 1} never arrived")
            missing_from = None
    for s in sorted(j.rewritten):
        rep.add(f"{who}: rewritten history: journal seq {s} arrived with "
                f"{len(j.rewritten[s])} different contents")
    for seq, leaf in j.checkpoints:
        d = json.loads(leaf)["journal"]
        cp = JournalCheckpoint(jid, int(d["seq"]), str(d["hash"]), int(d["prev_seq"]),
                               int(d["time_unix_nano"]), str(d["public_key"]),
                               str(d["signature"]))
        if j.key is None or not checkpoint_signature_ok(cp, j.key):
            rep.add(f"{who}: checkpoint {cp.seq} (server seq {seq}): signature invalid or by "
                    "another key")
        elif cp.seq not in j.hashes:
            rep.add(f"{who}: checkpoint {cp.seq}: covers a record never received (gap)")
        elif cp.head_hash != j.hashes[cp.seq] and cp.head_hash not in j.rewritten.get(
                cp.seq, ()):
            rep.add(f"{who}: rewritten history: checkpoint {cp.seq} signs another head than "
                    "the records received")


def read_notes(paths: list[Path]) -> list[tuple[str, str]]:
    out = []
    for p in paths:
        if p.is_dir():
            out += [(str(f), f.read_text()) for f in sorted(p.glob("*.txt"))]
        else:
            out.append((str(p), p.read_text()))
    return out


def verify_proof(event: bytes, proof: dict[str, object], note: str, vkey: str) -> str:
    """Check an event against a published checkpoint, offline. Returns a one-line summary;
    raises ValueError with the reason."""
    name, pub = it.parse_vkey(vkey)
    cp = it.open_checkpoint(note, name, pub)
    import base64

    try:
        seq = int(str(proof["seq"]))
        size = int(str(proof["tree_size"]))
        hashes = [base64.b64decode(str(h), validate=True)
                  for h in proof["hashes"]]  # type: ignore[attr-defined]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed proof ({exc})") from exc
    if size != cp.size:
        raise ValueError(f"the proof is for tree size {size}, the checkpoint is {cp.size}")
    try:
        doc = json.loads(event)
    except ValueError as exc:
        raise ValueError(f"event is not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("seq") != seq:
        raise ValueError(f"the event is not seq {seq}")
    if not it.verify_inclusion(seq - 1, size, it.leaf_hash(event), hashes, cp.root):
        raise ValueError(f"event {doc.get('id')} (seq {seq}) is NOT in the log at tree size "
                         f"{size}: the proof does not lead to the signed root")
    return f"event {doc.get('id')} (seq {seq}) is in {cp.origin} at tree size {size}"
