"""Where to forward and with what token: ``[server] url`` and the ingest token.

The token comes from ``CORRAL_SERVER_TOKEN`` or from what ``corral login --server`` or
``corral enroll`` stored, through ``corral.credentials`` (the OS keyring by default; a 0600 file
only with ``credentials.store = "file"`` or ``"auto"`` and no keyring, and then said so).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from corral import credentials
from corral.errors import CorralError
from corral.record import Frozen

TOKEN_ENV = "CORRAL_SERVER_TOKEN"
KEYRING_SERVICE = "corral-server"


class ForwardError(CorralError):
    """A refusal of the forwarder or of login (exit status 1, one line)."""

    exit_code = 1


class ServerSettings(Frozen):
    """The server to forward to and the token to present. ``token_source``: "environment",
    "keyring" or "file"; ``ca_file``: the one trust anchor for https when set (otherwise the
    system's store)."""

    _fields = ("url", "token", "token_source", "ca_file")
    url: str
    token: str
    token_source: str
    ca_file: str | None

    def __init__(self, url: str, token: str, token_source: str,
                 ca_file: str | None = None) -> None:
        self._set(url=url, token=token, token_source=token_source, ca_file=ca_file)

    def __repr__(self) -> str:  # the token never goes into a log line or a traceback
        return (f"ServerSettings(url={self.url!r}, token='***', "
                f"token_source={self.token_source!r}, ca_file={self.ca_file!r})")

    @property
    def logs_url(self) -> str:
        return self.url + "/v1/logs"


def normalize_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash; anything else is refused,
    and so is plain http beyond loopback (the token and the journal would cross the network
    in the clear)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForwardError("forward", f"server URL {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ForwardError("forward", f"server URL {url!r} is plain http to another machine: "
                           "the token and the journal would cross the network in the clear",
                           hint="use https:// (corral server run --tls-cert/--tls-key, or a TLS "
                           "proxy in front of it)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ForwardError("forward", f"server URL {url!r} must not carry a query, fragment or "
                           "credentials")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _setting(cfg: Any, key: str) -> Any:
    """A ``server.*`` value: requirements win over config."""
    if cfg is None:
        return None
    return cfg.requirements.get(key) or cfg.get(key)


def configured_url(cfg: Any) -> str | None:
    """``server.url`` from requirements (wins) or config, normalised; None when unset."""
    url = _setting(cfg, "server.url")
    return normalize_url(str(url)) if url else None


def configured_ca_file(cfg: Any) -> str | None:
    """``server.ca_file`` from requirements (wins) or config; None when unset."""
    ca = _setting(cfg, "server.ca_file")
    return str(ca) if ca else None


def credentials_store(cfg: Any) -> str:
    return credentials.store_of(cfg)


def resolve(cfg: Any, home: Path, url: str | None = None) -> ServerSettings:
    """The server and token to use, or a one-line refusal saying what is missing."""
    url = normalize_url(url) if url else configured_url(cfg)
    if not url:
        raise ForwardError("forward", "no server configured",
                           hint='set [server] url = "https://..." in config.toml')
    ca_file = configured_ca_file(cfg)
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return ServerSettings(url, env, "environment", ca_file)
    token, store = credentials.get(cfg, home, KEYRING_SERVICE, url, control="forward")
    if not token:
        raise ForwardError("forward", f"no token for {url}",
                           hint=f"run `corral login --server {url}` or set {TOKEN_ENV}")
    return ServerSettings(url, token, store, ca_file)


# -- where tokens are kept (corral.credentials) -------------------------------------------

def usable_keyring() -> tuple[Any | None, str]:
    return credentials.usable_keyring()


def token_file(home: Path) -> Path:
    return credentials.secret_file(home, KEYRING_SERVICE)


# -- login / logout ----------------------------------------------------------------------------

def login(cfg: Any, home: Path, url: str, token: str) -> str:
    """Store ``token`` for ``url``; returns where it went. Refuses rather than store in clear."""
    url = normalize_url(url)
    token = token.strip()
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise ForwardError("login", "the token read from stdin is empty or not one printable word")
    return credentials.put(cfg, home, KEYRING_SERVICE, url, token, control="login")


def logout(cfg: Any, home: Path, url: str) -> bool:
    """Forget the token for ``url`` (file and keyring); True when one was stored."""
    return credentials.delete(cfg, home, KEYRING_SERVICE, normalize_url(url), control="logout")
