"""What the ``corral server`` subcommands do (the typer layer is corral.cli.server_cmd)."""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from corral.errors import CorralError
from corral.server import config as sconfig

if TYPE_CHECKING:
    from corral.server.retention import Signer
    from corral.server.store.base import Hold, Store

T = TypeVar("T")


def _err(message: str, hint: str | None = None) -> CorralError:
    return CorralError("server", message, hint)


def init(data: Path, database: str | None, origin: str | None) -> None:
    cfg = sconfig.init(data, database, origin)
    name, pub = sconfig.verifier(cfg)
    from corral.server import integrity as it

    print(f"corral server: initialised {data} (log {cfg.origin}, store {cfg.database})")
    print(f"verifier key: {it.vkey(name, pub)}")


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise _err(f"bad --listen {listen!r}", "use HOST:PORT, e.g. 127.0.0.1:4318")
    return host.strip("[]") or "127.0.0.1", int(port)


def run(data: Path, listen: str, database: str | None, tls_cert: Path | None,
        tls_key: Path | None) -> None:
    import uvicorn

    from corral.server.app import build

    if (tls_cert is None) != (tls_key is None):
        raise _err("--tls-cert and --tls-key go together")
    host, port = parse_listen(listen)
    cfg = sconfig.load(data, database)
    for sc in cfg.sinks:  # refuse to start rather than run a sink that can never send
        if sc.kind == "hec" and not sc.token and not os.environ.get(sc.token_env):
            raise _err(f"sink {sc.name}: environment variable {sc.token_env} is not set")
    app, _ = build(cfg)
    # Background threads (the folds, the writer, cuts) share the GIL with the request
    # handlers; with CPython's default 5 ms switch interval a request woken by its I/O could
    # wait up to 5 ms for the GIL each time (corral.server.foreground).
    sys.setswitchinterval(0.0005)
    scheme = "https" if tls_cert else "http"
    print(f"corral server: listening on {scheme}://{listen} (log {cfg.origin})",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                ssl_certfile=str(tls_cert) if tls_cert else None,
                ssl_keyfile=str(tls_key) if tls_key else None,
                timeout_graceful_shutdown=10, limit_concurrency=1024, backlog=2048)


def token_create(data: Path, database: str | None, scope: str, name: str | None,
                 expires_days: int | None, event_types: list[str] | None = None,
                 content: bool = False) -> None:
    from corral.server import tokens

    if scope not in tokens.SCOPES:
        raise _err(f"unknown scope {scope!r}", f"use {', '.join(tokens.SCOPES)}")
    store = sconfig.open_store(sconfig.load(data, database))
    try:
        try:
            print(tokens.create(store, scope, name or "", expires_days, event_types, content))
        except ValueError as exc:
            raise _err(str(exc)) from None
    finally:
        store.close()


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_list(data: Path, database: str | None) -> None:
    store = sconfig.open_store(sconfig.load(data, database))
    try:
        now = time.time_ns()
        for t in store.tokens():
            state = ("revoked" if t.revoked_ns else
                     "expired" if t.expires_ns and t.expires_ns < now else "active")
            print(f"{t.id}  {t.scope:<6}  {state:<7}  created {_when(t.created_ns)}  "
                  f"expires {_when(t.expires_ns)}  {t.name}")
    finally:
        store.close()


def token_revoke(data: Path, database: str | None, token_id: str) -> None:
    store = sconfig.open_store(sconfig.load(data, database))
    try:
        if not store.revoke_token(token_id, time.time_ns()):
            raise _err(f"no token {token_id}", "see: corral server token list")
    finally:
        store.close()
    print(f"corral server: token {token_id} revoked")


def status(data: Path, database: str | None, as_json: bool) -> None:
    from corral.server import integrity as it

    cfg = sconfig.load(data, database)
    name, pub = sconfig.verifier(cfg)
    store = sconfig.open_store(cfg)
    try:
        size, head = store.head()
        latest = store.latest_checkpoint()
        toks = store.tokens()
        doc = {
            "origin": cfg.origin, "engine": store.engine, "events": size, "chain_head": head,
            "latest_checkpoint": latest[0] if latest else None,
            "store_bytes": store.size_bytes(),
            "tokens_active": sum(1 for t in toks if not t.revoked_ns),
            "verifier_key": it.vkey(name, pub),
        }
    finally:
        store.close()
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    for k, v in doc.items():
        print(f"{k + ':':<20}{v}")


def verify(data: Path, database: str | None, checkpoints: list[Path]) -> int:
    from corral.server.verify import read_notes
    from corral.server.verify import verify as run_verify

    cfg = sconfig.load(data, database)
    name, pub = sconfig.verifier(cfg)
    try:
        extra = read_notes([cfg.export_dir, *checkpoints])
    except OSError as exc:
        raise _err(f"cannot read checkpoint: {exc}") from exc
    store = sconfig.open_store(cfg, readonly=True)
    try:
        rep = run_verify(store, name, pub, cfg.origin, extra,
                         opener=functools.partial(sconfig.open_store, cfg, readonly=True),
                         # forked workers must not inherit a live PostgreSQL pool
                         parts=min(4, os.cpu_count() or 1) if store.engine == "sqlite" else 1)
    finally:
        store.close()
    for line in rep.notes:
        print(f"expired: {line}")
    for line in rep.problems:
        print(f"corral: server verify: {line}")
    if rep.problems:
        return 1
    gone = (f" ({rep.expired} of them deleted under signed tombstones, their hashes kept)"
            if rep.expired else "")
    print(f"ok: {rep.events} events{gone}, chain and tree intact, {rep.checkpoints} checkpoint "
          f"signatures valid, {rep.journals} machine journals continuous")
    return 0


def verify_proof(event: Path, proof: Path, checkpoint: Path, key: str) -> int:
    from corral.server.verify import verify_proof as check

    try:
        vkey = Path(key).read_text().strip() if Path(key).is_file() else key
        line = check(event.read_bytes(), json.loads(proof.read_text()),
                     checkpoint.read_text(), vkey)
    except (OSError, ValueError) as exc:
        print(f"corral: server verify-proof: {exc}")
        return 1
    print(f"ok: {line}")
    return 0


def export_bundle(data: Path, database: str | None, user: str, since: str | None,
                  until: str | None, out: Path) -> None:
    from corral.server import ediscovery, query

    try:
        lo = query.parse_time("--since", since) if since else None
        hi = query.parse_time("--until", until) if until else None
    except query.BadQuery as exc:
        raise _err(str(exc)) from None
    if out.exists():
        raise _err(f"{out} exists", "export into a new directory")
    cfg = sconfig.load(data, database)
    store = sconfig.open_store(cfg)
    try:
        m = ediscovery.export(cfg, store, user, lo, hi, out)
    except ValueError as exc:
        raise _err(str(exc)) from None
    finally:
        store.close()
    print(f"corral server: exported {m['count']} events of {user} to {out} "
          f"(tree size {m['tree_size']})")


def verify_bundle(bundle: Path, key: str | None) -> int:
    from corral.server import ediscovery

    vkey = None
    if key:
        vkey = Path(key).read_text().strip() if Path(key).is_file() else key
    problems, m = ediscovery.verify_bundle(bundle, vkey)
    for line in problems:
        print(f"corral: server verify-bundle: {line}")
    if problems:
        return 1
    print(f"ok: {m['count']} events of {m['user']}, every one in {m['origin']} at tree size "
          f"{m['tree_size']} (signed checkpoint and inclusion proofs checked)")
    return 0


# -- retention, legal holds, erasure (corral.server.retention, corral.server.holds) ---------

def _signer(cfg: sconfig.ServerConfig) -> Signer:
    from corral.server.retention import Signer

    name, _ = sconfig.verifier(cfg)
    return Signer(name, sconfig.signing_key(cfg))


def retention_run(data: Path, database: str | None, dry_run: bool) -> None:
    from corral.server import retention

    cfg = sconfig.load(data, database)
    signer = _signer(cfg)
    store = sconfig.open_store(cfg)
    try:
        out = retention.run(store, cfg.retention or retention.Policy(), signer, time.time_ns(),
                            wait=retention.sink_floor(cfg.sinks, cfg.data), dry_run=dry_run)
    finally:
        store.close()
    for line in out.lines():
        print(line)
    verb = "would delete" if dry_run else "deleted"
    print(f"corral server: retention {verb} {len(out.expired)} compliance files, kept "
          f"{len(out.held)} under legal hold and {len(out.waiting)} for other reasons")


def _with_store(data: Path, database: str | None, op: Callable[[Store], T]) -> T:
    from corral.server.holds import Refused

    store = sconfig.open_store(sconfig.load(data, database))
    try:
        return op(store)
    except Refused as exc:
        raise _err(str(exc)) from None
    finally:
        store.close()


def hold_create(data: Path, database: str | None, reason: str, user: str | None,
                session: str | None, device: str | None, since: str | None,
                until: str | None) -> None:
    from corral.server import holds

    def op(store: Store) -> Hold:
        crit = holds.parse_criteria(user, session, device, since, until)
        return holds.create(store, reason, crit, holds.operator(), time.time_ns())

    h = _with_store(data, database, op)
    print(f"corral server: hold {h.id} placed: {hold_line(h)}")


def hold_line(h: Hold) -> str:
    parts = [f"{k}={v}" for k, v in (("user", h.user), ("session", h.session_id),
                                     ("device", h.device)) if v is not None]
    parts += [f"{k}={_when(v)}" for k, v in (("since", h.since_ns), ("until", h.until_ns))
              if v is not None]
    return f"{' '.join(parts)}  reason: {h.reason}"


def hold_list(data: Path, database: str | None, as_json: bool) -> None:
    from dataclasses import asdict

    from corral.server import holds

    got = _with_store(data, database,
                      lambda store: holds.listing(store, holds.operator(), time.time_ns()))
    if as_json:
        print(json.dumps([asdict(h) for h in got], indent=1))
        return
    for h in got:
        state = (f"released {_when(h.released_ns)} by {h.released_by}" if h.released_ns
                 else "active")
        print(f"{h.id}  {state}  placed {_when(h.created_ns)} by {h.by}  {hold_line(h)}")


def hold_release(data: Path, database: str | None, hold_id: str) -> None:
    from corral.server import holds

    _with_store(data, database,
                lambda store: holds.release(store, hold_id, holds.operator(), time.time_ns()))
    print(f"corral server: hold {hold_id} released")


def erase(data: Path, database: str | None, user: str, since: str | None, until: str | None,
          reason: str, dry_run: bool) -> None:
    from corral.server import holds, query

    try:
        lo = query.parse_time("--since", since) if since else None
        hi = query.parse_time("--until", until) if until else None
    except query.BadQuery as exc:
        raise _err(str(exc)) from None
    if not query._USER.fullmatch(user):
        raise _err("--user has characters or a length it cannot have")
    signer = _signer(sconfig.load(data, database))
    n, tid = _with_store(data, database, lambda store: holds.erase(
        store, signer, user, lo, hi, reason, holds.operator(), time.time_ns(), dry_run))
    if dry_run:
        print(f"corral server: erase would clear {n} events of {user}")
    elif n == 0:
        print(f"corral server: no events of {user} to erase")
    else:
        print(f"corral server: erased the content of {n} events of {user} (tombstone {tid}, "
              "signed; corral server verify still passes)")
