"""Helpers for the compliance API tests: a server with its own settings, mixed events, and a
reader that pages through the cursor API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from corral.telemetry.journal import JournalWriter
from corral.telemetry.schema import Event
from tests.server.helpers import Journal, ServerProc, corral, init_server

T0 = 1_700_000_000_000_000_000


def server_with(data: Path, **settings: object) -> None:
    """``corral server init`` plus extra config.toml keys."""
    init_server(data)
    cfg = data / "config.toml"
    extra = "".join(f"{k} = {v!r}\n" if not isinstance(v, str) else f'{k} = "{v}"\n'
                    for k, v in settings.items())
    cfg.write_text(cfg.read_text() + extra)


def read_token(data: Path, *opts: str, name: str = "siem") -> str:
    out = corral("server", "token", "create", "--data", str(data), "--scope", "read",
                 "--name", name, *opts).stdout.strip()
    assert "\n" not in out
    return out


def mixed(i: int, session: str = "s1", user: str = "dev") -> Event:
    """Event ``i`` of a mixed stream: decisions, prompts (with content) and network calls."""
    kind = i % 3
    base: dict[str, Any] = dict(id=f"ev-{session}-{i:08d}", time_unix_nano=T0 + i * 1000,
                                session_id=session, turn_id="t1", call_id=f"call-{i}",
                                user=user, host="laptop", agent_name="codex",
                                agent_version="0.50", corral_version="0.1.0", tier=2)
    if kind == 0:
        return Event(name="agent.tool.decision", attributes={
            "gen_ai.tool.name": "shell", "agent.decision": "approved",
            "agent.decision.source": "rule", "process.command_line": f"ls {i}"}, **base)
    if kind == 1:
        text = f"please fix bug {i}"
        return Event(name="agent.user_prompt", attributes={
            "prompt": text, "prompt.length": len(text),
            "prompt.sha256": hashlib.sha256(text.encode()).hexdigest()}, **base)
    return Event(name="agent.network.decision", attributes={
        "server.address": "example.com", "agent.decision": "denied"}, **base)


def mixed_journal(tmp: Path, n: int, session: str = "s1", user: str = "dev") -> Journal:
    key = Ed25519PrivateKey.generate()
    path = tmp / f"journal-{session}.db"
    w = JournalWriter(path, key, checkpoint_every=10**9)
    if n:
        w.append([mixed(i, session, user) for i in range(n)])
    return Journal(w, key, path)


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def page_all(client: httpx.Client, tok: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of GET /v1/events until has_more is false."""
    cur: str | None = None
    while True:
        q = dict(params)
        if cur:
            q["after"] = cur
        r = client.get("/v1/events", params=q, headers=auth(tok))
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        yield doc
        cur = doc["next_cursor"]
        if not doc["has_more"]:
            return


def start(data: Path) -> ServerProc:
    return ServerProc(data)
