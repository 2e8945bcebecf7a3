"""Integrity of the server's log: hash chain, RFC 6962 Merkle tree, C2SP signed checkpoints.

Every stored event is a leaf: its canonical bytes. The tree leaf hash is ``sha256(0x00 +
leaf)`` and interior nodes ``sha256(0x01 + left + right)`` (RFC 6962 §2.1). The chain link is
``sha256(prev_link_hex_ascii + leaf_hash)``: it commits to the leaf through its tree hash, so
each leaf (~2 KB) is hashed once, not twice (verify over a million events is hash-bound).

Nodes are addressed ``(level, index)``: node (k, j) covers leaves ``[j*2^k, (j+1)*2^k)``. A node
is complete once leaf ``(j+1)*2^k - 1`` is appended, so each leaf row stores the nodes it
completes (``tree`` blob: leaf hash, then level 1, 2, …). Any proof then needs O(log n) row
reads and no second table.

Checkpoints are C2SP tlog-checkpoint notes signed per C2SP signed-note with Ed25519, so any
transparency-log witness tool can read them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64
_sha = hashlib.sha256


def chain_link(prev_hex: str, leaf_h: bytes) -> str:
    return _sha(prev_hex.encode("ascii") + leaf_h).hexdigest()


def leaf_hash(leaf: bytes) -> bytes:
    return _sha(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha(b"\x01" + left + right).digest()


def completed_nodes(index: int, leaf_h: bytes, frontier: list[bytes]) -> bytes:
    """Append leaf ``index`` to ``frontier`` (the complete subtrees on the right edge, biggest
    first, updated in place) and return the ``tree`` blob for its row."""
    out = [leaf_h]
    h = leaf_h
    n = index + 1
    while n % 2 == 0:
        h = node_hash(frontier.pop(), h)
        out.append(h)
        n //= 2
    frontier.append(h)
    return b"".join(out)


def frontier_nodes(size: int) -> list[tuple[int, int]]:
    """The ``(level, index)`` of the complete subtrees making up a tree of ``size``, left to
    right."""
    out = []
    for k in range(size.bit_length() - 1, -1, -1):
        if size >> k & 1:
            out.append((k, (size >> k) - 1))
    return out


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    if not frontier:
        return _sha(b"").digest()
    h = frontier[-1]
    for left in reversed(frontier[:-1]):
        h = node_hash(left, h)
    return h


NodeGetter = Callable[[list[tuple[int, int]]], dict[tuple[int, int], bytes]]


def _subtree_nodes(lo: int, hi: int) -> list[tuple[int, int]]:
    """Complete nodes covering leaves [lo, hi) with lo aligned to the largest power of two
    below hi - lo, left to right (RFC 6962 splits trees exactly this way)."""
    out = []
    while lo < hi:
        k = (hi - lo).bit_length() - 1
        while lo % (1 << k):
            k -= 1
        out.append((k, lo >> k))
        lo += 1 << k
    return out


class Tree:
    """Proof computations over stored complete nodes fetched by ``get``."""

    def __init__(self, get: NodeGetter) -> None:
        self._get = get

    def _mth(self, lo: int, hi: int, nodes: dict[tuple[int, int], bytes]) -> bytes:
        parts = [nodes[n] for n in _subtree_nodes(lo, hi)]
        return root_from_frontier(parts)

    def root(self, size: int) -> bytes:
        need = _subtree_nodes(0, size)
        return self._mth(0, size, self._get(need)) if size else _sha(b"").digest()

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 §2.1.1 PATH(m, D[n])."""
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        ranges = _path_ranges(index, 0, size)
        return self._resolve(ranges)

    def consistency(self, first: int, second: int) -> list[bytes]:
        """RFC 6962 §2.1.2 PROOF(m, D[n])."""
        if not 0 < first <= second:
            raise ValueError(f"no consistency proof from {first} to {second}")
        if first == second:
            return []
        return self._resolve(_subproof_ranges(first, 0, second, True))

    def _resolve(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        need = [n for lo, hi in ranges for n in _subtree_nodes(lo, hi)]
        nodes = self._get(need)
        return [self._mth(lo, hi, nodes) for lo, hi in ranges]


def _path_ranges(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if m - lo < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def _subproof_ranges(m: int, lo: int, hi: int, b: bool) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    while True:
        n = hi - lo
        if m == n:
            if not b:
                out.append((lo, hi))
            break
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, b = lo + k, m - k, False
    out.reverse()
    return out


def verify_inclusion(index: int, size: int, leaf_h: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf_h
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, root1: bytes, root2: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2."""
    if first == second:
        return root1 == root2 and not proof
    if not 0 < first < second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, root1)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


# -- C2SP signed notes ---------------------------------------------------------------------------

_ALG_ED25519 = b"\x01"


def raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, pub: Ed25519PublicKey) -> bytes:
    return _sha(name.encode() + b"\n" + _ALG_ED25519 + raw_public(pub)).digest()[:4]


def vkey(name: str, pub: Ed25519PublicKey) -> str:
    """The verifier key string (``name+hash+base64key``) a witness or auditor configures."""
    return (f"{name}+{key_id(name, pub).hex()}+"
            f"{base64.b64encode(_ALG_ED25519 + raw_public(pub)).decode()}")


def parse_vkey(text: str) -> tuple[str, Ed25519PublicKey]:
    try:
        name, kid, b64 = text.strip().split("+", 2)
        raw = base64.b64decode(b64, validate=True)
        if raw[:1] != _ALG_ED25519 or len(raw) != 33:
            raise ValueError("not an Ed25519 verifier key")
        pub = Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError as exc:
        raise ValueError(f"bad verifier key: {exc}") from exc
    if key_id(name, pub).hex() != kid:
        raise ValueError("bad verifier key: key hash does not match")
    return name, pub


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def sign_checkpoint(cp: Checkpoint, name: str, key: Ed25519PrivateKey) -> str:
    text = cp.body()
    sig = key.sign(text.encode())
    blob = base64.b64encode(key_id(name, key.public_key()) + sig).decode()
    return f"{text}\n\u2014 {name} {blob}\n"


def open_checkpoint(note: str, name: str, pub: Ed25519PublicKey) -> Checkpoint:
    """Parse a signed checkpoint and check the signature by (name, pub). Raises ValueError."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise ValueError("not a signed note (no blank line before the signatures)")
    text += "\n"
    kid = key_id(name, pub)
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            raise ValueError("malformed signature line")
        parts = line[2:].split(" ")
        if len(parts) != 2 or parts[0] != name:
            continue
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except ValueError:
            continue
        if blob[:4] != kid:
            continue
        try:
            pub.verify(blob[4:], text.encode())
        except InvalidSignature as exc:
            raise ValueError("checkpoint signature is invalid") from exc
        return _parse_body(text)
    raise ValueError(f"checkpoint is not signed by {name}")


def _parse_body(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or not lines[1].isdigit():
        raise ValueError("malformed checkpoint body")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError as exc:
        raise ValueError("malformed checkpoint root hash") from exc
    if len(root) != 32:
        raise ValueError("malformed checkpoint root hash")
    return Checkpoint(lines[0], int(lines[1]), root)
