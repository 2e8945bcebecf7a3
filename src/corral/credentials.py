"""Secrets corral keeps for the user: ingest tokens, the device key, sign-in tokens.

One place for every secret, so they all follow one rule (``credentials.store`` in config):

* ``keyring`` (default): the OS keyring through the ``keyring`` library (the freedesktop Secret
  Service on Linux desktops, the macOS Keychain, the Windows Credential Locker). Backends that
  keep secrets in the clear or nowhere (keyrings.alt, null, fail, the chainer with nothing real
  behind it) do not count: with no real keyring, storing fails with one line.
* ``file``: ``$CORRAL_HOME/credentials/<service>.json``, mode 0600 in a 0700 directory (the
  administrator or user chose it; a file readable by others is refused when read).
* ``auto``: the keyring when there is a real one, else the file, and the caller is told which
  (``put`` returns where the secret went; commands print it). Never a plaintext file silently.

A secret is named by (service, key): ``("corral-server", URL)`` is the ingest token for a
server, ``("corral-device", URL)`` the device's private key, ``("corral-identity", issuer)`` the
sign-in tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from corral.errors import CorralError

STORES = ("keyring", "file", "auto")
# keyring backends that keep secrets in the clear or nowhere: not an OS keyring
_NOT_REAL = ("keyring.backends.fail", "keyring.backends.null", "keyring.backends.chainer",
             "keyrings.alt")


class CredentialError(CorralError):
    """A secret could not be stored, read or removed (exit status 1, one line)."""

    exit_code = 1


def store_of(cfg: Any) -> str:
    """``credentials.store`` from config (``keyring`` when unset)."""
    if isinstance(cfg, dict):  # the merged config values, before an EffectiveConfig exists
        store = (cfg.get("credentials") or {}).get("store", "keyring")
    else:
        store = cfg.get("credentials.store", "keyring") if cfg is not None else "keyring"
    return str(store) if store in STORES else "keyring"


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


def secret_file(home: Path, service: str) -> Path:
    name = "server-tokens" if service == "corral-server" else service
    return home / "credentials" / f"{name}.json"


def _file_read(home: Path, service: str, control: str) -> dict[str, str]:
    path = secret_file(home, service)
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    if st.st_mode & 0o077:
        raise CredentialError(control, f"credential file {path} is accessible to other users",
                              hint=f"chmod 600 {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CredentialError(control, f"credential file {path} is unreadable: {exc}") from exc
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _file_write(home: Path, service: str, data: dict[str, str]) -> None:
    path = secret_file(home, service)
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


def get(cfg: Any, home: Path, service: str, key: str, control: str = "credentials"
        ) -> tuple[str | None, str]:
    """(secret or None, where it came from: ``keyring`` or ``file``)."""
    store = store_of(cfg)
    if store in ("keyring", "auto"):
        kr, _ = usable_keyring()
        if kr is not None:
            try:
                value = kr.get_password(service, key)
            except Exception as exc:
                raise CredentialError(control, f"cannot read {service} from the OS keyring: "
                                      f"{exc}") from exc
            if value:
                return str(value), "keyring"
        if store == "keyring":
            return None, "keyring"
    return _file_read(home, service, control).get(key), "file"


def put(cfg: Any, home: Path, service: str, key: str, value: str,
        control: str = "credentials") -> str:
    """Store a secret; returns where it went (for the command to say). Refuses rather than
    write a plaintext file the configuration did not allow."""
    store = store_of(cfg)
    if store in ("keyring", "auto"):
        kr, desc = usable_keyring()
        if kr is not None:
            try:
                kr.set_password(service, key, value)
            except Exception as exc:
                raise CredentialError(control, f"the OS keyring refused {service}: {exc}"
                                      ) from exc
            return f"OS keyring ({desc})"
        if store == "keyring":
            raise CredentialError(control, desc, hint='start an OS keyring, or allow a 0600 '
                                  'file with credentials.store = "file" (or "auto") in '
                                  'config.toml')
    data = _file_read(home, service, control)
    data[key] = value
    _file_write(home, service, data)
    why = "" if store == "file" else ", no OS keyring: credentials.store = \"auto\""
    return f"file {secret_file(home, service)} (mode 0600{why})"


def delete(cfg: Any, home: Path, service: str, key: str, control: str = "credentials") -> bool:
    """Forget a secret everywhere it may be (file and keyring); True when one was stored."""
    found = False
    data = _file_read(home, service, control)
    if key in data:
        del data[key]
        _file_write(home, service, data)
        found = True
    kr, _ = usable_keyring()
    if kr is not None:
        try:
            if kr.get_password(service, key) is not None:
                kr.delete_password(service, key)
                found = True
        except Exception as exc:
            raise CredentialError(control, f"the OS keyring refused: {exc}") from exc
    return found
