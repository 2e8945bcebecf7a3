"""A server's data directory: config, signing key, SQLite store and checkpoint exports.

    DIR/config.toml               origin (the log's name in checkpoints), database, limits
    DIR/keys/server-signing.key   Ed25519 (PKCS#8 PEM, 0600): signs checkpoints
    DIR/keys/server.vkey          the C2SP verifier key that auditors and witnesses configure
    DIR/store/log.db              the SQLite store (when database = "sqlite")
    DIR/checkpoints/              every signed checkpoint, <size>.txt, and latest.txt
"""

from __future__ import annotations

import os
import socket
import stat
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from corral.errors import CorralError
from corral.server import integrity as it
from corral.server.store.base import Store

KEY = "keys/server-signing.key"
VKEY = "keys/server.vkey"


def _err(message: str, hint: str | None = None) -> CorralError:
    return CorralError("server", message, hint)


@dataclass(frozen=True)
class ServerConfig:
    data: Path
    origin: str
    database: str = "sqlite"
    checkpoint_interval: float = 30.0
    max_body_bytes: int = 16 * 1024 * 1024
    max_queue_events: int = 200_000
    max_batch_events: int = 8192
    compliance_window: int = 3600  # seconds per compliance log file window
    compliance_grace: float = 60.0  # wait this long after a window closes before cutting it
    read_rate: float = 50.0  # compliance API requests per second per token (token bucket)
    read_burst: int = 100
    sinks: tuple[Any, ...] = ()  # corral.server.sinks.SinkConfig, from [[sinks]]
    retention: Any = None  # corral.server.retention.Policy, from [retention]; None: 30 days
    retention_interval: float = 600.0  # seconds between retention rounds in `server run`
    analytics: Any = None  # the [analytics] table (teams, team_attribute): docs/analytics.md
    triage: Any = None  # the [triage] table (model, base_url, ...): docs/triage.md

    @property
    def export_dir(self) -> Path:
        return self.data / "checkpoints"

    @property
    def sqlite_path(self) -> Path:
        return self.data / "store" / "log.db"


def init(data: Path, database: str | None = None, origin: str | None = None) -> ServerConfig:
    """Create a data directory (refuses to overwrite an existing one)."""
    if (data / "config.toml").exists():
        raise _err(f"{data} already holds a server (config.toml exists)")
    for sub in ("", "keys", "store", "checkpoints"):
        (data / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data / "keys", 0o700)
    origin = origin or f"{socket.gethostname()}/corral-log/{uuid.uuid4().hex[:12]}"
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(data / KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    (data / VKEY).write_text(it.vkey(origin, key.public_key()) + "\n")
    db = database or "sqlite"
    (data / "config.toml").write_text(
        "# corral server: see docs/server.md\n"
        f'origin = "{_toml_str(origin)}"\n'
        f'database = "{_toml_str(db)}"\n'
        "checkpoint_interval = 30.0\n"
        f"max_body_bytes = {16 * 1024 * 1024}\n")
    cfg = load(data, database)
    open_store(cfg).close()
    return cfg


def _toml_str(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


# Every key a server's config.toml may hold; anything else is refused (a misspelt key must not
# leave a setting at its default in silence).
SERVER_KEYS = frozenset({
    "origin", "database", "checkpoint_interval", "max_body_bytes", "max_queue_events",
    "compliance_window", "compliance_grace", "read_rate", "read_burst", "sinks",
    "analytics", "triage", "retention", "retention_interval",
})
ANALYTICS_KEYS = frozenset({"teams", "team_attribute", "suggest_min_count"})
TRIAGE_KEYS = frozenset({"model", "base_url", "api_key_env", "timeout_seconds",
                         "min_confidence", "window_seconds", "history_events"})
SINK_KEYS = frozenset({
    "name", "type", "url", "payload", "token", "token_env", "ca_file", "directory",
    "event_types", "batch", "interval", "max_backoff",
})


def check_document(doc: dict[str, Any]) -> list[str]:
    """Problems in a server config document (unknown keys, bad sinks); empty when fine."""
    problems = [f"unknown key `{k}`" for k in doc if k not in SERVER_KEYS]
    sinks = doc.get("sinks", [])
    if isinstance(sinks, list):
        for i, t in enumerate(sinks):
            if isinstance(t, dict):
                problems += [f"sinks[{i}]: unknown key `{k}`" for k in t if k not in SINK_KEYS]
    try:
        _sinks(sinks)
    except (TypeError, ValueError) as exc:
        problems.append(str(exc))
    for table, keys in (("analytics", ANALYTICS_KEYS), ("triage", TRIAGE_KEYS)):
        t = doc.get(table, {})
        if not isinstance(t, dict):
            problems.append(f"{table} must be a table ([{table}])")
        else:
            problems += [f"{table}: unknown key `{k}`" for k in t if k not in keys]
    try:
        _retention(doc.get("retention"))
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def load(data: Path, database: str | None = None) -> ServerConfig:
    try:
        doc: dict[str, Any] = tomllib.loads((data / "config.toml").read_text())
    except FileNotFoundError:
        raise _err(f"no server at {data}", f"run: corral server init --data {data}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _err(f"cannot read {data / 'config.toml'}: {exc}") from exc
    problems = check_document(doc)
    if problems:
        raise _err(f"{data / 'config.toml'}: {problems[0]}")
    try:
        return ServerConfig(
            data=data, origin=str(doc["origin"]), database=database or str(doc.get(
                "database", "sqlite")),
            checkpoint_interval=float(doc.get("checkpoint_interval", 30.0)),
            max_body_bytes=int(doc.get("max_body_bytes", 16 * 1024 * 1024)),
            max_queue_events=int(doc.get("max_queue_events", 200_000)),
            compliance_window=_positive_int(doc.get("compliance_window", 3600)),
            compliance_grace=float(doc.get("compliance_grace", 60.0)),
            read_rate=float(doc.get("read_rate", 50.0)),
            read_burst=_positive_int(doc.get("read_burst", 100)),
            sinks=tuple(_sinks(doc.get("sinks", []))), analytics=doc.get("analytics"),
            triage=doc.get("triage"), retention=_retention(doc.get("retention")),
            retention_interval=_positive_float(doc.get("retention_interval", 600.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise _err(f"{data / 'config.toml'}: bad value ({exc})") from exc


def _sinks(doc: Any) -> list[Any]:
    from corral.server.sinks import parse

    if not isinstance(doc, list):
        raise ValueError("sinks must be an array of tables ([[sinks]])")
    return list(parse(doc))


def _retention(doc: Any) -> Any:
    from corral.server.retention import parse_policy

    return parse_policy(doc)


def _positive_float(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
        raise ValueError(f"{v!r} must be a positive number of seconds")
    return float(v)


def _positive_int(v: object) -> int:
    n: int = int(v)  # type: ignore[call-overload]
    if n < 1:
        raise ValueError(f"{v} must be a positive integer")
    return n


def signing_key(cfg: ServerConfig) -> Ed25519PrivateKey:
    path = cfg.data / KEY
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise _err(f"signing key {path} is accessible to other users "
                       f"(mode {stat.S_IMODE(mode):04o})", f"chmod 600 {path}")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise _err(f"cannot use signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise _err(f"signing key {path} is not an Ed25519 key")
    return key


def verifier(cfg: ServerConfig) -> tuple[str, Ed25519PublicKey]:
    try:
        return it.parse_vkey((cfg.data / VKEY).read_text())
    except (OSError, ValueError) as exc:
        raise _err(f"cannot read verifier key {cfg.data / VKEY}: {exc}") from exc


def open_store(cfg: ServerConfig, *, readonly: bool = False) -> Store:
    db = cfg.database
    if db == "sqlite":
        from corral.server.store.sqlite import SqliteStore

        if readonly and not cfg.sqlite_path.exists():
            raise _err(f"no store at {cfg.sqlite_path}")
        return SqliteStore(cfg.sqlite_path, readonly=readonly)
    if db.startswith(("postgresql://", "postgres://")):
        from corral.server.store.postgres import PostgresStore

        try:
            return PostgresStore(db)
        except Exception as exc:  # psycopg.Error, pool timeouts: one line, never a traceback
            raise _err(f"cannot open the PostgreSQL store: {str(exc).splitlines()[0]}") from exc
    raise _err(f"unknown database {db!r}", "use sqlite or a postgresql:// URL")
