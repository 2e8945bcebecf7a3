"""What ``corral server enroll-token``, ``devices`` and ``policy`` do (typer layer:
corral.cli.server_fleet_cmd). They work on the data directory, like ``token create``."""

from __future__ import annotations

import datetime
import getpass
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corral.errors import CorralError
from corral.server import config as sconfig
from corral.server.fleetdb import FleetRefused, FleetStore, Status, open_fleet
from corral.server.store.base import Store


def _err(message: str, hint: str | None = None) -> CorralError:
    return CorralError("server", message, hint)


@contextmanager
def _open(data: Path, database: str | None) -> Iterator[tuple[Any, Store, FleetStore]]:
    cfg = sconfig.load(data, database)
    store = sconfig.open_store(cfg)
    try:
        fleet = open_fleet(cfg)
    except Exception:
        store.close()
        raise
    try:
        yield cfg, store, fleet
    finally:
        fleet.close()
        store.close()


def author() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ago(ns: int | None, now: int) -> str:
    if ns is None:
        return "never"
    s = max(0, (now - ns) // 10**9)
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


# -- enrolment tokens ---------------------------------------------------------------------------

def enroll_token_create(data: Path, database: str | None, groups: list[str], name: str | None,
                        uses: int | None, expires_days: float | None) -> None:
    with _open(data, database) as (_, store, fleet):
        try:
            tid, secret = fleet.create_enrol_token(groups, name or "", uses, expires_days)
        except ValueError as exc:
            raise _err(str(exc)) from None
        from corral.server.fleetdb import record

        record(store, "corral.fleet.enrol_token.created", {
            "fleet.enrol_token.id": tid, "fleet.enrol_token.groups": sorted(set(groups)),
            "fleet.enrol_token.uses": uses if uses is not None else -1,
            "fleet.created_by": author()})
    print(secret)


def enroll_token_list(data: Path, database: str | None) -> None:
    now = time.time_ns()
    with _open(data, database) as (_, _store, fleet):
        for t in fleet.enrol_tokens():
            state = ("revoked" if t["revoked_ns"] else "expired" if t["expires_ns"] and
                     t["expires_ns"] < now else "used up" if t["uses_left"] == 0 else "active")
            uses = "unlimited" if t["uses_left"] is None else f"{t['uses_left']} uses left"
            print(f"{t['id']}  {state:<7}  groups {','.join(t['groups']) or '-'}  {uses}  "
                  f"created {_when(t['created_ns'])}  expires {_when(t['expires_ns'])}  "
                  f"{t['name']}")


def enroll_token_revoke(data: Path, database: str | None, token_id: str) -> None:
    with _open(data, database) as (_, _store, fleet):
        if not fleet.revoke_enrol_token(token_id):
            raise _err(f"no enrolment token {token_id}", "see: corral server enroll-token list")
    print(f"corral server: enrolment token {token_id} revoked")


# -- devices ------------------------------------------------------------------------------------

def device_rows(fleet: FleetStore) -> list[dict[str, Any]]:
    """One row per device: the fleet view (``corral server devices``)."""
    from corral.server.policy import compose_for

    now = time.time_ns()
    current = fleet.policy_version()
    rows = []
    for d in fleet.devices():
        st: Status = fleet.status(d.id)
        rep = st.report
        lag_s = None
        if st.ingest_ns is not None and st.newest_event_ns is not None:
            lag_s = max(0.0, (st.ingest_ns - st.newest_event_ns) / 1e9)
        fwd_raw = rep.get("forwarding")
        fwd: dict[str, Any] = fwd_raw if isinstance(fwd_raw, dict) else {}
        drift = [str(x) for x in rep.get("drift", []) if isinstance(x, str)] \
            if isinstance(rep.get("drift"), list) else []
        applied = st.policy_applied
        if d.revoked_ns is None and (applied is None or applied < current):
            _, want = compose_for(fleet, d)
            drift.insert(0, f"policy v{applied or 0} applied, v{want} published")
        rows.append({
            "device": d.id, "hostname": d.hostname, "groups": list(d.groups),
            "state": "revoked" if d.revoked_ns else "active",
            "enrolled": _when(d.enrolled_ns), "last_seen": _when(st.seen_ns),
            "last_seen_ago": _ago(st.seen_ns, now),
            "corral_version": st.corral_version or rep.get("corral_version", ""),
            "agents": rep.get("agents", {}), "hooks": rep.get("hooks", {}),
            "identity": rep.get("identity", ""),
            "policy_applied": applied, "policy_published": current,
            "forwarding_lag_seconds": lag_s,
            "forwarding_behind_records": fwd.get("behind"),
            "last_ingest": _when(st.ingest_ns), "drift": drift,
        })
    return rows


def devices_list(data: Path, database: str | None, as_json: bool) -> None:
    with _open(data, database) as (_, _store, fleet):
        rows = device_rows(fleet)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("no devices enrolled (corral server enroll-token create, then corral enroll)")
        return
    for r in rows:
        agents = ", ".join(f"{k} {v}" for k, v in sorted(r["agents"].items())) or "none seen"
        hooks = ", ".join(f"{k} {v}" for k, v in sorted(r["hooks"].items())) or "not reported"
        lag = ("-" if r["forwarding_lag_seconds"] is None
               else f"{r['forwarding_lag_seconds']:.1f}s")
        behind = r["forwarding_behind_records"]
        print(f"{r['device']}  {r['hostname']}  [{r['state']}]  groups "
              f"{','.join(r['groups']) or '-'}  user {r['identity'] or '-'}")
        print(f"    last seen {r['last_seen']} ({r['last_seen_ago']}); corral "
              f"{r['corral_version'] or '?'}; agents: {agents}")
        print(f"    policy v{r['policy_applied'] or 0} applied of v{r['policy_published']}; "
              f"forwarding lag {lag}" + (f", {behind} records behind" if behind else "") +
              f" (last ingest {r['last_ingest']})")
        print(f"    hooks: {hooks}")
        print(f"    drift: {'; '.join(r['drift']) if r['drift'] else 'none'}")


def devices_revoke(data: Path, database: str | None, device_id: str) -> None:
    from corral.server.enroll import revoke

    with _open(data, database) as (_, store, fleet):
        try:
            dev = revoke(fleet, store, device_id, author())
        except FleetRefused as exc:
            raise _err(exc.reason, "see: corral server devices") from None
    print(f"corral server: device {dev.id} ({dev.hostname}) revoked; its ingest token "
          f"{dev.token_id} is refused from its next request")


# -- policy -------------------------------------------------------------------------------------

def policy_set(data: Path, database: str | None, files: list[Path], group: str) -> None:
    from corral.server.policy import read_files, set_policy

    body = read_files(files)
    with _open(data, database) as (_, store, fleet):
        p, diff = set_policy(fleet, store, group, body, author(), [str(f) for f in files])
    if not diff:
        print(f"corral server: policy for {group} unchanged (version {p.version})")
        return
    print(diff, end="" if diff.endswith("\n") else "\n")
    print(f"corral server: policy version {p.version} for {group} by {p.author} "
          f"(sha256 {p.sha256[:16]}); machines fetch it within their refresh interval")


def policy_show(data: Path, database: str | None, group: str | None,
                device: str | None) -> None:
    from corral.server.policy import compose_for

    with _open(data, database) as (_, _store, fleet):
        if device:
            dev = fleet.device(device)
            if dev is None:
                raise _err(f"no device {device}", "see: corral server devices")
            text, version = compose_for(fleet, dev)
            print(f"# device {dev.id}: groups {', '.join(dev.targets)}; version {version}")
            print(text, end="")
            return
        for g, p in sorted(fleet.current_policies().items()):
            if group and g != group:
                continue
            print(f"# group {g}: version {p.version} by {p.author} at {_when(p.created_ns)}")
            print(p.body or "# (cleared)\n", end="")


def policy_history(data: Path, database: str | None, group: str | None) -> None:
    with _open(data, database) as (_, _store, fleet):
        for p in fleet.policy_history(group):
            print(f"v{p.version}  {p.group:<16}  {_when(p.created_ns)}  {p.author}  "
                  f"sha256 {p.sha256[:16]}{'  (cleared)' if not p.body else ''}")
