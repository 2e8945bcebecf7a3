"""Where to forward and with what token: ``[server] url`` and the ingest token.

The token comes from ``CORRAL_SERVER_TOKEN`` or from what ``corral login`` stored: the OS keyring
by default. A plaintext file is used only when config says ``credentials.store = "file"``; with
no usable keyring and no such consent, storing fails (a token is never written in the clear
silently). Keyring backends that are themselves plaintext or no-ops do not count as usable.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from corral.errors import CorralError

TOKEN_ENV = "CORRAL_SERVER_TOKEN"
KEYRING_SERVICE = "corral-server"
STORES = ("keyring", "file")
# keyring backends that keep secrets in the clear or nowhere: not an OS keyring
_NOT_REAL = ("keyring.backends.fail", "keyring.backends.null", "keyring.backends.chainer",
             "keyrings.alt")


class ForwardError(CorralError):
    """A refusal of the forwarder or of login (exit status 1, one line)."""

    exit_code = 1


@dataclass(frozen=True)
class ServerSettings:
    """The server to forward to and the token to present."""

    url: str
    token: str
    token_source: str  # "environment", "keyring" or "file"
    ca_file: str | None = None  # extra trust anchor for https (default: the system's)

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


def credentials_store(cfg: Any) -> str:
    store = cfg.get("credentials.store", "keyring") if cfg is not None else "keyring"
    return str(store) if store in STORES else "keyring"


def resolve(cfg: Any, home: Path, url: str | None = None) -> ServerSettings:
    """The server and token to use, or a one-line refusal saying what is missing."""
    url = normalize_url(url) if url else configured_url(cfg)
    if not url:
        raise ForwardError("forward", "no server configured",
                           hint='set [server] url = "https://..." in config.toml')
    ca = _setting(cfg, "server.ca_file")
    ca_file = str(ca) if ca else None
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return ServerSettings(url, env, "environment", ca_file)
    store = credentials_store(cfg)
    token = _file_get(home, url) if store == "file" else _keyring_get(url)
    if not token:
        raise ForwardError("forward", f"no token for {url}",
                           hint=f"run `corral login --server {url}` or set {TOKEN_ENV}")
    return ServerSettings(url, token, store, ca_file)


# -- the OS keyring ----------------------------------------------------------------------------

def usable_keyring() -> tuple[Any | None, str]:
    """(backend, description) of a real OS keyring, or (None, why there is none)."""
    try:
        import keyring
        from keyring.backends import chainer

        kr = keyring.get_keyring()
        backends = list(kr.backends) if isinstance(kr, chainer.ChainerBackend) else [kr]
    except Exception as exc:  # a broken keyring install is "no keyring", said in one line
        return None, f"keyring unavailable: {exc}"
    real = [b for b in backends if not type(b).__module__.startswith(_NOT_REAL)]
    if not real:
        names = ", ".join(f"{type(b).__module__}.{type(b).__name__}" for b in backends)
        return None, f"no OS keyring backend is usable (found: {names or 'none'})"
    return kr, f"{type(real[0]).__module__}.{type(real[0]).__name__}"


def _keyring_get(url: str) -> str | None:
    kr, _ = usable_keyring()
    if kr is None:
        return None
    try:
        value = kr.get_password(KEYRING_SERVICE, url)
    except Exception as exc:
        raise ForwardError("forward", f"cannot read the token from the OS keyring: {exc}") from exc
    return str(value) if value else None


# -- the consented plaintext file --------------------------------------------------------------

def token_file(home: Path) -> Path:
    return home / "credentials" / "server-tokens.json"


def _file_read(home: Path) -> dict[str, str]:
    path = token_file(home)
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    if st.st_mode & 0o077:
        raise ForwardError("forward", f"token file {path} is accessible to other users",
                           hint=f"chmod 600 {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ForwardError("forward", f"token file {path} is unreadable: {exc}") from exc
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _file_get(home: Path, url: str) -> str | None:
    return _file_read(home).get(url)


def _file_write(home: Path, data: dict[str, str]) -> None:
    path = token_file(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# -- login / logout ----------------------------------------------------------------------------

def login(cfg: Any, home: Path, url: str, token: str) -> str:
    """Store ``token`` for ``url``; returns where it went. Refuses rather than store in clear."""
    url = normalize_url(url)
    token = token.strip()
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise ForwardError("login", "the token read from stdin is empty or not one printable word")
    if credentials_store(cfg) == "file":
        data = _file_read(home)
        data[url] = token
        _file_write(home, data)
        return f"file {token_file(home)} (mode 0600)"
    kr, desc = usable_keyring()
    if kr is None:
        raise ForwardError("login", desc, hint='start an OS keyring, or allow a 0600 file with '
                           'credentials.store = "file" in config.toml')
    try:
        kr.set_password(KEYRING_SERVICE, url, token)
    except Exception as exc:
        raise ForwardError("login", f"the OS keyring refused the token: {exc}") from exc
    return f"OS keyring ({desc})"


def logout(cfg: Any, home: Path, url: str) -> bool:
    """Forget the token for ``url`` (file and keyring); True when one was stored."""
    url = normalize_url(url)
    found = False
    data = _file_read(home)
    if url in data:
        del data[url]
        _file_write(home, data)
        found = True
    kr, _ = usable_keyring()
    if kr is not None:
        try:
            if kr.get_password(KEYRING_SERVICE, url) is not None:
                kr.delete_password(KEYRING_SERVICE, url)
                found = True
        except Exception as exc:
            raise ForwardError("logout", f"the OS keyring refused: {exc}") from exc
    return found
