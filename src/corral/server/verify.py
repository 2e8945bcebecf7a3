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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from corral.server import integrity as it
from corral.server.store.base import JournalCheckpoint, Store, checkpoint_signature_ok

MAX_PROBLEMS = 1000


@dataclass
class Report:
    events: int = 0
    checkpoints: int = 0
    journals: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(line)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("too many problems; stopped listing")


@dataclass
class _Journal:
    device: str = ""
    key: str | None = None
    hashes: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    checkpoints: list[tuple[int, bytes]] = field(default_factory=list)  # (server seq, leaf)


def verify(store: Store, name: str, pub: Ed25519PublicKey, origin: str,
           extra: list[tuple[str, str]]) -> Report:
    """``extra``: (label, note text) of checkpoints to check besides the stored ones."""
    rep = Report()
    notes: list[tuple[str, str]] = [(f"stored checkpoint {s}", n) for s, n in store.checkpoints()]
    notes += extra
    sizes: dict[int, bytes] = {}
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
        sizes[cp.size] = b""
    rep.checkpoints = len(parsed)

    journals: dict[str, _Journal] = defaultdict(_Journal)
    # The hot loop (a million rows in a few seconds): hashing inlined, no per-row objects.
    sha = hashlib.sha256
    quote = json.encoder.encode_basestring
    prev = it.GENESIS.encode()
    expected = 1
    frontier: list[bytes] = []
    count = 0
    for seq, eid, leaf, chain, tree, jid, jseq, jhash, kind, flag in store.rows():
        if seq != expected:
            if seq > expected:
                rep.add(f"seq {expected}..{seq - 1}: events missing (deleted)")
            else:
                rep.add(f"seq {seq}: out of order")
        chain_b = chain.encode()
        h = sha(b"\x00" + leaf).digest()
        if sha(prev + h).hexdigest().encode() != chain_b:
            rep.add(f"seq {seq} (event {eid}): hash does not match the chain: event edited, "
                    "inserted or reordered here")
        elif (b',"seq":%d,"source":' % seq not in leaf
              or b'],"id":' + quote(eid).encode() + b',' not in leaf):
            rep.add(f"seq {seq} (event {eid}): indexed columns do not match the event "
                    "(seq or id edited)")
        tree = bytes(tree)
        ok = tree[:32] == h
        n = count + 1
        level = 1
        while not n & 1:
            h = sha(b"\x01" + frontier.pop() + h).digest()
            ok = ok and tree[32 * level:32 * level + 32] == h
            level += 1
            n >>= 1
        frontier.append(h)
        count += 1
        if not ok or len(tree) != 32 * level:
            rep.add(f"seq {seq}: stored Merkle nodes do not match the event")
        if count in sizes:
            sizes[count] = it.root_from_frontier(frontier)
        if jid is not None:
            j = journals[jid]
            if kind == "record":
                j.hashes[int(jseq or 0)].add(str(jhash))
                if j.key is None:
                    doc = json.loads(leaf)
                    j.key = str(doc["journal"]["public_key"])
                    j.device = str(doc["device"])
            elif kind == "checkpoint":
                j.checkpoints.append((seq, leaf))
        if flag and ("does not match its body" in flag or "signed by another key" in flag):
            rep.add(f"seq {seq} (event {eid}): flagged at ingest: {flag}")
        prev = chain_b
        expected = seq + 1
    rep.events = count

    for label, cp in parsed:
        if cp.size > count:
            rep.add(f"{label}: log truncated: the checkpoint covers {cp.size} events, the "
                    f"store holds {count}")
        elif sizes.get(cp.size) != cp.root:
            rep.add(f"{label}: tree root at size {cp.size} differs from the signed one "
                    "(events before it were rewritten)")
    rep.journals = len(journals)
    for jid, j in sorted(journals.items()):
        _journal(rep, jid, j)
    return rep


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
    for s in sorted(j.hashes):
        if len(j.hashes[s]) > 1:
            rep.add(f"{who}: rewritten history: journal seq {s} arrived with "
                    f"{len(j.hashes[s])} different contents")
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
        elif cp.head_hash not in j.hashes[cp.seq]:
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
