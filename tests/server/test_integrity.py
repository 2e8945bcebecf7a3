"""The Merkle tree, proofs and signed checkpoints against a straight RFC 6962 reference."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.server import integrity as it


def _ref_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return it.leaf_hash(leaves[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return it.node_hash(_ref_mth(leaves[:k]), _ref_mth(leaves[k:]))


def _ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n <= 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_ref_path(m, leaves[:k]), _ref_mth(leaves[k:])]
    return [*_ref_path(m - k, leaves[k:]), _ref_mth(leaves[:k])]


def _ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [_ref_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_ref_subproof(m, leaves[:k], b), _ref_mth(leaves[k:])]
    return [*_ref_subproof(m - k, leaves[k:], False), _ref_mth(leaves[:k])]


def _build(n: int) -> tuple[list[bytes], it.Tree]:
    leaves = [b"leaf %d" % i for i in range(n)]
    blobs: list[bytes] = []
    frontier: list[bytes] = []
    for i, leaf in enumerate(leaves):
        blobs.append(it.completed_nodes(i, it.leaf_hash(leaf), frontier))

    def get(need: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out = {}
        for k, j in need:
            row = ((j + 1) << k) - 1
            out[(k, j)] = blobs[row][32 * k:32 * k + 32]
        return out

    return leaves, it.Tree(get)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70), st.data())
def test_roots_and_proofs_match_the_rfc(n: int, data: st.DataObject) -> None:
    leaves, tree = _build(n)
    size = data.draw(st.integers(1, n))
    m = data.draw(st.integers(0, size - 1))
    root = _ref_mth(leaves[:size])
    assert tree.root(size) == root
    proof = tree.inclusion(m, size)
    assert proof == _ref_path(m, leaves[:size])
    assert it.verify_inclusion(m, size, it.leaf_hash(leaves[m]), proof, root)
    assert not it.verify_inclusion(m, size, it.leaf_hash(b"other"), proof, root)
    first = data.draw(st.integers(1, size))
    cproof = tree.consistency(first, size)
    assert cproof == (_ref_subproof(first, leaves[:size], True) if first < size else [])
    old = _ref_mth(leaves[:first])
    assert it.verify_consistency(first, size, old, root, cproof)
    if first < size:
        assert not it.verify_consistency(first, size, _ref_mth([b"x"] * first), root, cproof)


def test_frontier_root_matches() -> None:
    frontier: list[bytes] = []
    for i in range(37):
        it.completed_nodes(i, it.leaf_hash(b"%d" % i), frontier)
        assert it.root_from_frontier(frontier) == _ref_mth([b"%d" % j for j in range(i + 1)])
        assert len(frontier) == len(it.frontier_nodes(i + 1))


def test_signed_checkpoint_round_trip_and_tamper() -> None:
    key = Ed25519PrivateKey.generate()
    cp = it.Checkpoint("example.com/log", 12, hashlib.sha256(b"r").digest())
    note = it.sign_checkpoint(cp, "example.com/log", key)
    lines = note.split("\n")
    assert lines[:3] == ["example.com/log", "12", cp.body().split("\n")[2]] and lines[3] == ""
    assert lines[4].startswith("\u2014 example.com/log ")
    name, pub = it.parse_vkey(it.vkey("example.com/log", key.public_key()))
    assert it.open_checkpoint(note, name, pub) == cp
    with pytest.raises(ValueError, match="invalid"):
        it.open_checkpoint(note.replace("\n12\n", "\n13\n"), name, pub)
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ValueError):
        it.open_checkpoint(note, name, other)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.dictionaries(st.text(), st.integers() | st.text()), st.booleans(),
       st.lists(st.text(), max_size=2))
def test_leaf_is_canonical_json(text: str, rec: dict[str, object], forwarded: bool,
                                flags: list[str]) -> None:
    import json

    from corral.server.store.base import Incoming, JournalLink, leaf_doc

    link = JournalLink("j\u00e9", "a" * 64, 3, "b" * 64, "c" * 64) if forwarded else None
    item = Incoming(text or "id", "n\"ame", 5, "dev\n", "src", text if forwarded else rec,
                    "record" if forwarded else "event", journal=link)
    leaf = leaf_doc(7, item, 9, flags)
    doc = json.loads(leaf)
    assert leaf == json.dumps(doc, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode()
