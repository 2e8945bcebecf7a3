"""``corral login/logout`` with a real OS keyring: the freedesktop Secret Service of
gnome-keyring-daemon on a private D-Bus session bus (both real Debian programs, started here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.forward.conftest import corral, fill
from tests.forward.peer import Peer, Store

pytestmark = pytest.mark.slow


@pytest.fixture
def secret_service(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment variables of a private session bus with an unlocked Secret Service."""
    run = tmp_path / "xdg-run"
    run.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "HOME": str(tmp_path / "user"),
           "XDG_DATA_HOME": str(tmp_path / "user" / "data")}
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    procs: list[subprocess.Popen[str]] = [bus]
    try:
        assert bus.stdout is not None
        env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
        daemon = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True, env=env)
        procs.append(daemon)
        assert daemon.stdin is not None
        daemon.stdin.write("test-keyring-password")
        daemon.stdin.close()
        probe = "import keyring; keyring.get_password('probe', 'probe')"
        deadline = time.monotonic() + 20
        while subprocess.run([sys.executable, "-c", probe], env=env,
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "the Secret Service did not come up"
            time.sleep(0.1)
        yield {k: env[k] for k in ("XDG_RUNTIME_DIR", "HOME", "XDG_DATA_HOME",
                                   "DBUS_SESSION_BUS_ADDRESS")}
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait(10)


def _keyring_value(env: dict[str, str], url: str) -> str:
    code = f"import keyring; print(keyring.get_password('corral-server', {url!r}))"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                          capture_output=True, text=True, check=True).stdout.strip()


def test_login_keyring_forward_logout(home: Path, secret_service: dict[str, str],
                                      tmp_path: Path) -> None:
    store = Store(tmp_path / "server.db")
    peer = Peer(store).start()
    peer.control["tokens"] = ["kr-token"]
    try:
        ids = fill(home, 40)
        r = corral(home, "login", "--ingest-token", "--server", peer.url + "/", stdin="kr-token\n",
                   token=None,
                   env=secret_service)
        assert r.returncode == 0, r.stderr
        assert "OS keyring (keyring.backends.SecretService.Keyring)" in r.stdout
        assert _keyring_value(secret_service, peer.url) == "kr-token"
        assert not (home / "credentials").exists()  # nothing in the clear
        r = corral(home, "forward", "--server", peer.url, token=None, env=secret_service)
        assert r.returncode == 0, r.stderr
        assert store.ids() == ids
        r = corral(home, "logout", "--server", peer.url, token=None, env=secret_service)
        assert r.returncode == 0 and "removed" in r.stdout
        assert _keyring_value(secret_service, peer.url) == "None"
        r = corral(home, "forward", "--server", peer.url, token=None, env=secret_service)
        assert r.returncode == 1 and r.stderr.startswith(
            f"corral: forward: no token for {peer.url} (run `corral login")
    finally:
        peer.close()


@pytest.mark.parametrize("backend", [None, "keyring.backends.null.Keyring"])
def test_no_real_keyring_refuses_in_one_line(home: Path, backend: str | None) -> None:
    env = {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"}
    if backend:
        env["PYTHON_KEYRING_BACKEND"] = backend
    r = corral(home, "login", "--ingest-token", "--server", "http://127.0.0.1:1", stdin="t0k\n",
               token=None,
               env=env)
    assert r.returncode == 1
    assert r.stderr.startswith("corral: login: no OS keyring backend is usable (found: ")
    assert 'credentials.store = "file"' in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (home / "credentials").exists()


def test_file_store_only_with_consent_and_0600(home: Path, tmp_path: Path) -> None:
    (home / "config.toml").write_text('[credentials]\nstore = "file"\n')
    store = Store(tmp_path / "server.db")
    peer = Peer(store).start()
    peer.control["tokens"] = ["file-token"]
    try:
        ids = fill(home, 5)
        r = corral(home, "login", "--ingest-token", "--server", peer.url, stdin="file-token\n",
                   token=None)
        assert r.returncode == 0, r.stderr
        f = home / "credentials" / "server-tokens.json"
        assert f.stat().st_mode & 0o777 == 0o600
        assert (home / "credentials").stat().st_mode & 0o777 == 0o700
        r = corral(home, "forward", "--server", peer.url, token=None)
        assert r.returncode == 0, r.stderr
        assert store.ids() == ids
        f.chmod(0o644)
        r = corral(home, "forward", "--server", peer.url, token=None)
        assert r.returncode == 1 and "is accessible to other users" in r.stderr
        for bad in ("", "two words"):
            r = corral(home, "login", "--ingest-token", "--server", peer.url, stdin=bad + "\n",
                       token=None)
            assert r.returncode == 1 and "empty or not one printable word" in r.stderr
    finally:
        peer.close()
