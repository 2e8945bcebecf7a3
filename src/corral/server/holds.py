"""Legal holds and erasure requests.

A hold names events by user, session, device and/or event time (every criterion given must
match). While it is active, retention deletes no compliance file holding a matching event, and
an erasure request that would touch a matching event is refused with one line naming the hold.
Holds are insert-only rows (a release is a row of its own) and every operation on them (create,
list, release) is also appended to the log as a ``server.hold`` event: who, what, when.

Erasure (``corral server erase --user U``) clears the content of that user's events the way
retention does (hash material kept, so the log still verifies) under one signed tombstone, and
withdraws the compliance files that held them.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from corral.server import integrity as it
from corral.server import query, retention
from corral.server.store.base import Expired, Expiry, Hold, Incoming, Store

HOLD_EVENT = "server.hold"
MAX_REASON = 1000


class Refused(Exception):
    """An operation refused; the message is the one-line reason."""


def operator() -> str:
    """Who runs this command: the OS user (and the one behind sudo)."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    return f"{who} (sudo by {sudo})" if sudo and sudo != who else who


def check_reason(reason: str) -> str:
    r = reason.strip()
    if not r or len(r) > MAX_REASON or not r.isprintable():
        raise Refused(f"--reason must be 1 to {MAX_REASON} printable characters on one line")
    return r


def parse_criteria(user: str | None, session: str | None, device: str | None,
                   since: str | None, until: str | None) -> dict[str, Any]:
    """What a hold (or an erasure) matches, checked like the API's query strings."""
    out: dict[str, Any] = {}
    try:
        for key, val, pat in (("user", user, query._USER), ("session_id", session, query._IDENT),
                              ("device", device, query._IDENT)):
            if val is not None:
                if not pat.fullmatch(val):
                    raise Refused(f"--{key.split('_')[0]} has characters or a length it cannot "
                                  "have")
                out[key] = val
        lo = query.parse_time("--since", since) if since is not None else None
        hi = query.parse_time("--until", until) if until is not None else None
    except query.BadQuery as exc:
        raise Refused(str(exc)) from None
    if lo is not None and hi is not None and hi <= lo:
        raise Refused("--until must be after --since")
    out["since_ns"], out["until_ns"] = lo, hi
    if not any(v is not None for v in out.values()):
        raise Refused("a hold needs at least one of --user, --session, --device, --since, "
                      "--until")
    return out


def matches(h: Hold, doc: dict[str, Any]) -> bool:
    if h.device is not None and doc.get("device") != h.device:
        return False
    t = doc.get("time_unix_nano")
    if h.since_ns is not None and not (isinstance(t, int) and t >= h.since_ns):
        return False
    if h.until_ns is not None and not (isinstance(t, int) and t < h.until_ns):
        return False
    if h.user is None and h.session_id is None:
        return True
    sess, user = query.subject(doc)
    return (h.user is None or user == h.user) and (h.session_id is None or
                                                    sess == h.session_id)


def matching_hold(holds: list[Hold], leaves: Iterable[bytes]) -> Hold | None:
    """The first active hold that any of these stored events falls under."""
    if not holds:
        return None
    for leaf in leaves:
        doc = json.loads(leaf)
        for h in holds:
            if matches(h, doc):
                return h
    return None


def _logged(action: str, doc: dict[str, Any], by: str, now_ns: int) -> Incoming:
    rec = {"action": action, "by": by, "host": socket.gethostname(), **doc}
    return Incoming(f"hold-{action}-{uuid.uuid4().hex}", HOLD_EVENT, now_ns, "server",
                    "corral.server", rec)


def _public(h: Hold) -> dict[str, Any]:
    return {k: v for k, v in asdict(h).items() if v is not None}


def create(store: Store, reason: str, criteria: dict[str, Any], by: str, now_ns: int) -> Hold:
    h = Hold(f"h-{uuid.uuid4().hex[:12]}", now_ns, by, check_reason(reason),
             criteria.get("user"), criteria.get("session_id"), criteria.get("device"),
             criteria.get("since_ns"), criteria.get("until_ns"))
    store.add_hold(h, _logged("create", {"hold": _public(h)}, by, now_ns))
    return h


def release(store: Store, hold_id: str, by: str, now_ns: int) -> None:
    if not query._IDENT.fullmatch(hold_id):
        raise Refused("a hold id looks like h-0123456789ab (see corral server hold list)")
    why = store.release_hold(hold_id, by, now_ns,
                             _logged("release", {"hold": {"id": hold_id}}, by, now_ns))
    if why:
        raise Refused(why)


def listing(store: Store, by: str, now_ns: int) -> list[Hold]:
    """Every hold; the look itself is recorded."""
    holds = store.holds()
    store.append([_logged("list", {"count": len(holds)}, by, now_ns)], now_ns)
    return holds


# -- erasure ---------------------------------------------------------------------------------

def erase(store: Store, signer: retention.Signer, user: str, since_ns: int | None,
          until_ns: int | None, reason: str, by: str, now_ns: int,
          dry_run: bool = False) -> tuple[int, str | None]:
    """Clear the content of ``user``'s events (in the window) under one signed tombstone;
    (count, tombstone id). Refused, touching nothing, when any of them is under a hold."""
    from corral.server.ediscovery import matching

    reason = check_reason(reason)
    rows = [(s, leaf, json.loads(leaf)) for s, leaf in
            matching(store, user, since_ns, until_ns, store.head()[0])]
    rows = [r for r in rows if not str(r[2].get("name", "")).startswith("server.")]
    if not rows:
        return 0, None
    def held(active: list[Hold]) -> str | None:
        for h in active:
            n = sum(1 for _, _, doc in rows if matches(h, doc))
            if n:
                return (f"erase refused: {n} of the {len(rows)} events of user {user} are "
                        f"under legal hold {h.id} ({h.reason}; placed by {h.by}); release the "
                        "hold first")
        return None

    why = held([h for h in store.holds() if h.released_ns is None])
    if why:
        raise Refused(why)
    if dry_run:
        return len(rows), None
    by_name: dict[str, list[int]] = {}
    for s, _, doc in rows:
        by_name.setdefault(str(doc["name"]), []).append(s)
    files = [f.id for f in store.files_of(list(by_name))
             if any(f.first_seq <= s <= f.last_seq for s in by_name[f.event_type])
             and store.withdrawn(f.id) is None]
    seqs = [s for s, _, _ in rows]
    tid = retention.new_id("tombstone-erasure")
    doc = {"v": 1, "action": "erasure", "user": user, "since_unix_nano": since_ns,
           "until_unix_nano": until_ns, "reason": reason, "by": by, "count": len(rows),
           "seqs": retention.ranges(seqs), "first_seq": seqs[0], "last_seq": seqs[-1],
           "files": files, "deleted_unix_nano": now_ns,
           "leaves_sha256": retention.leaves_digest(it.leaf_hash(leaf) for _, leaf, _ in rows)}
    try:
        store.expire(Expiry(tid, retention.tombstone_maker(tid, doc, signer, now_ns), len(rows),
                            tuple(files), seqs=tuple(seqs), recheck=held), now_ns)
    except Expired as exc:  # a hold placed meanwhile: the same one line
        raise Refused(str(exc) if str(exc).startswith("erase refused") else
                      f"erase not applied: {exc}") from None
    return len(rows), tid
