"""eDiscovery bundles: one user's events with what proves them, checkable offline.

    DIR/events.jsonl     the events, one stored leaf per line, exactly as stored
    DIR/proofs.jsonl     an RFC 6962 inclusion proof per event, at the checkpoint's tree size
    DIR/checkpoint.txt   the signed checkpoint (C2SP signed note) the proofs lead to
    DIR/server.vkey      the server's verifier key
    DIR/manifest.json    who, when, the filters, every file's sha256, and each event's seq, id
                         and leaf hash

``verify_bundle`` needs nothing but the directory: it checks the manifest's hashes, the
checkpoint's signature, every proof against the signed root, and that every event is the
requested user's and inside the time window. Hand the verifier key to the recipient through
another channel (or compare it with the published one) so a forged bundle cannot bring its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from corral.server import config as sconfig
from corral.server import integrity as it
from corral.server import query
from corral.server.store.base import Scan, Store
from corral.server.verify import verify_proof

FILES = ("events.jsonl", "proofs.jsonl", "checkpoint.txt", "server.vkey")
_CHUNK = 5000


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def matching(store: Store, user: str, since_ns: int | None, until_ns: int | None,
             upto: int) -> list[tuple[int, bytes]]:
    out = []
    after = 0
    while after < upto:
        rows = store.scan(Scan(after, upto, _CHUNK, (), None, since_ns, until_ns))
        if not rows:
            break
        for seq, leaf in rows:
            if query.subject(json.loads(leaf))[1] == user:
                out.append((seq, leaf))
        after = rows[-1][0]
    return out


def export(cfg: sconfig.ServerConfig, store: Store, user: str, since_ns: int | None,
           until_ns: int | None, out: Path) -> dict[str, Any]:
    """Write the bundle; signs a fresh checkpoint first when the log grew past the latest."""
    from corral.server.app import export as export_checkpoint

    name, _ = sconfig.verifier(cfg)
    size, _ = store.head()
    latest = store.latest_checkpoint()
    if size and (latest is None or latest[0] < size):
        note = it.sign_checkpoint(it.Checkpoint(cfg.origin, size, store.tree().root(size)),
                                  name, sconfig.signing_key(cfg))
        store.add_checkpoint(size, note, time.time_ns())
        export_checkpoint(cfg, size, note)
        latest = (size, note)
    if latest is None:
        raise ValueError("the log is empty: nothing to export")
    tree_size, note = latest
    rows = matching(store, user, since_ns, until_ns, tree_size)
    out.mkdir(parents=True, exist_ok=False)
    tree = store.tree()
    entries = []
    with open(out / "events.jsonl", "wb") as ev, open(out / "proofs.jsonl", "w") as pf:
        for seq, leaf in rows:
            ev.write(leaf + b"\n")
            proof = {"seq": seq, "leaf_index": seq - 1, "tree_size": tree_size,
                     "leaf_hash": base64.b64encode(it.leaf_hash(leaf)).decode(),
                     "hashes": [base64.b64encode(h).decode()
                                for h in tree.inclusion(seq - 1, tree_size)]}
            pf.write(json.dumps(proof, separators=(",", ":")) + "\n")
            entries.append({"seq": seq, "id": json.loads(leaf).get("id"),
                            "leaf_hash": it.leaf_hash(leaf).hex()})
    (out / "checkpoint.txt").write_text(note)
    (out / "server.vkey").write_text((cfg.data / sconfig.VKEY).read_text())
    manifest = {"v": 1, "kind": "corral ediscovery bundle", "origin": cfg.origin,
                "user": user, "since_unix_nano": since_ns, "until_unix_nano": until_ns,
                "created_unix_nano": time.time_ns(), "tree_size": tree_size,
                "count": len(entries), "files": {f: _sha(out / f) for f in FILES},
                "events": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def verify_bundle(d: Path, vkey: str | None = None) -> tuple[list[str], dict[str, Any]]:
    """(problems, manifest). ``vkey``: the key the recipient trusts (default: the bundle's)."""
    try:
        manifest: dict[str, Any] = json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"manifest.json: {exc}"], {}
    problems = []
    for f in FILES:
        want = manifest.get("files", {}).get(f)
        try:
            got = _sha(d / f)
        except OSError as exc:
            problems.append(f"{f}: {exc}")
            continue
        if got != want:
            problems.append(f"{f}: sha256 {got[:16]}… does not match the manifest "
                            f"({str(want)[:16]}…): the file was changed")
    if problems:
        return problems, manifest
    key = vkey or (d / "server.vkey").read_text().strip()
    if vkey and vkey.strip() != (d / "server.vkey").read_text().strip():
        problems.append("server.vkey in the bundle is not the key you trust")
    note = (d / "checkpoint.txt").read_text()
    events = (d / "events.jsonl").read_bytes().splitlines()
    proofs = (d / "proofs.jsonl").read_text().splitlines()
    listed = manifest.get("events", [])
    if not len(events) == len(proofs) == len(listed) == manifest.get("count"):
        problems.append(f"counts differ: {len(events)} events, {len(proofs)} proofs, "
                        f"{len(listed)} in the manifest, count {manifest.get('count')}")
        return problems, manifest
    seen: set[int] = set()
    for leaf, line, ent in zip(events, proofs, listed, strict=True):
        try:
            verify_proof(leaf, json.loads(line), note, key)
        except ValueError as exc:
            problems.append(f"seq {ent.get('seq')}: {exc}")
            continue
        doc = json.loads(leaf)
        if doc.get("seq") != ent.get("seq") or it.leaf_hash(leaf).hex() != ent.get("leaf_hash"):
            problems.append(f"seq {ent.get('seq')}: does not match the manifest entry")
        if doc["seq"] in seen:
            problems.append(f"seq {doc['seq']}: listed twice")
        seen.add(doc["seq"])
        if query.subject(doc)[1] != manifest.get("user"):
            problems.append(f"seq {doc['seq']}: not an event of user {manifest.get('user')}")
        t = doc.get("time_unix_nano", 0)
        lo, hi = manifest.get("since_unix_nano"), manifest.get("until_unix_nano")
        if (lo is not None and t < lo) or (hi is not None and t >= hi):
            problems.append(f"seq {doc['seq']}: outside the bundle's time window")
    return problems, manifest
