"""What the ``corral server`` subcommands do (the typer layer is corral.cli.server_cmd)."""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
import time
from pathlib import Path

from corral.errors import CorralError
from corral.server import config as sconfig


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
        raise _err(f"unknown scope {scope!r}", "use ingest, read or admin")
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
    for line in rep.problems:
        print(f"corral: server verify: {line}")
    if rep.problems:
        return 1
    print(f"ok: {rep.events} events, chain and tree intact, {rep.checkpoints} checkpoint "
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
