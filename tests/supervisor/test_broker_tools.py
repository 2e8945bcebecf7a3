"""Brokered credentials for everyday tools under `corral run`: git clone over HTTPS with basic
auth, pip from an authenticated index, npm with a registry token, curl with a bearer token.
One HTTPS server on the host's loopback (a test CA) demands the real secrets; corral's
environment holds them; the sandbox only has placeholders (a git credential helper, a pip
index URL, NPM_TOKEN), and the proxy attaches each secret on its own host only."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import ssl
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

GIT, PIP, NPM = "ghp_REALgit0123456789abcdefABCDEF0123", "pypi-REALpip-0a1b2c3d4e5f", \
    "npm_REALnpm0123456789abcdefABCDEF012345"
SECRETS = (GIT, PIP, NPM)


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def _wheel() -> tuple[str, bytes]:
    name = "brokerdemo-1.0-py3-none-any.whl"
    files = {"brokerdemo/__init__.py": b"VALUE = 42\n",
             "brokerdemo-1.0.dist-info/METADATA":
                 b"Metadata-Version: 2.1\nName: brokerdemo\nVersion: 1.0\n",
             "brokerdemo-1.0.dist-info/WHEEL":
                 b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},"
        f"{len(d)}\n" for p, d in files.items()) + "brokerdemo-1.0.dist-info/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p, d in files.items():
            z.writestr(p, d)
        z.writestr("brokerdemo-1.0.dist-info/RECORD", record)
    return name, buf.getvalue()


class Registry:
    """git (dumb HTTP, static files of a bare repository), a PEP 503 index and npm's whoami,
    each demanding its own secret; every Authorization header seen is kept."""

    def __init__(self, tmp_path: Path) -> None:
        import trustme

        self.seen: list[str] = []
        ca = trustme.CA()
        self.ca = tmp_path / "registry-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(self.ctx)
        src = tmp_path / "src"
        src.mkdir()
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
        subprocess.run([*git, "init", "-q"], cwd=src, check=True)
        (src / "README").write_text("brokered clone works\n")
        subprocess.run([*git, "add", "README"], cwd=src, check=True)
        subprocess.run([*git, "commit", "-qm", "one"], cwd=src, check=True)
        self.bare = tmp_path / "repo.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(src), str(self.bare)], check=True)
        subprocess.run(["git", "update-server-info"], cwd=self.bare, check=True)
        self.wheel = _wheel()

    def start(self) -> Registry:
        reg = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "text/plain",
                      extra: tuple[tuple[str, str], ...] = ()) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization") or ""
                reg.seen.append(auth)
                path = self.path.split("?", 1)[0]
                if path.startswith("/git/"):
                    if auth != _basic("x-access-token", GIT):
                        self._send(401, b"no", extra=(("WWW-Authenticate", 'Basic realm="git"'),))
                        return
                    f = reg.bare / path.removeprefix("/git/repo.git/")
                    self._send(200, f.read_bytes()) if f.is_file() else self._send(404, b"")
                elif path.startswith(("/simple", "/files/")):
                    if auth != _basic("__token__", PIP):
                        self._send(401, b"no", extra=(("WWW-Authenticate", 'Basic realm="pypi"'),))
                    elif path.startswith("/files/"):
                        self._send(200, reg.wheel[1], "application/octet-stream")
                    else:
                        page = f'<a href="/files/{reg.wheel[0]}">{reg.wheel[0]}</a>'.encode()
                        self._send(200, page, "text/html")
                elif path == "/-/whoami":
                    ok = auth == f"Bearer {NPM}"
                    self._send(200 if ok else 401, json.dumps(
                        {"username": "brokered-user"} if ok else {"error": "no"}).encode(),
                        "application/json")
                else:
                    self._send(404, b"")

        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._srv.daemon_threads = True
        self._srv.socket = self.ctx.wrap_socket(self._srv.socket, server_side=True,
                                                do_handshake_on_connect=False)
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        self.port = int(self._srv.server_address[1])
        return self

    def stop(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()


@pytest.fixture
def registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    reg = Registry(tmp_path).start()
    yield reg
    reg.stop()


def test_git_pip_npm_and_curl_through_the_broker(registry: Registry, tmp_path: Path) -> None:
    # localhost: in the sandbox's NO_PROXY, so every client connects to its own loopback,
    # where the allow_local forward takes it to the proxy, which intercepts this brokered host
    here = f"localhost:{registry.port}"
    base = f"https://{here}"
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    (work / ".npmrc").write_text(f"//{here}/:_authToken=${{NPM_TOKEN}}\n")
    home, chome = tmp_path / "home", tmp_path / "chome"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(chome),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"), REAL_GIT=GIT, REAL_PIP=PIP,
               REAL_NPM=NPM)
    creds = {
        "gitserver": f'{{kind="git", hosts=["{here}"], source="env:REAL_GIT"}}',
        "index": f'{{kind="pip", index_url="{base}/simple/", source="env:REAL_PIP"}}',
        "registry": f'{{kind="npm", hosts=["{here}"], source="env:REAL_NPM"}}',
    }
    script = "; ".join([
        f"git clone -q {base}/git/repo.git cloned && cat cloned/README",
        f"{sys.executable} -m pip download -q --no-deps --disable-pip-version-check "
        "--keyring-provider disabled -d wheels brokerdemo && ls wheels",
        f"npm whoami --registry {base}/ 2>&1",
        f'curl -sS -H "Authorization: Bearer $NPM_TOKEN" {base}/-/whoami; echo',
        # the secrets themselves are nowhere inside: the environment, git's config, /proc
        "(env; tr '\\0' '\\n' < /proc/self/environ; git config -l) > inside.txt",
        # a placeholder over plain http, even to its own host: never attached in the clear
        f'curl -sS -i --noproxy "" -x "$HTTP_PROXY" -u "x:$NPM_TOKEN" http://{here}/ | head -2',
    ])
    args = [sys.executable, "-m", "corral", "-c", f'network.allow_local=["{here}"]',
            "-c", f'secrets.broker.upstream_ca_file="{registry.ca}"']
    for name, table in creds.items():
        args += ["-c", f"secrets.broker.credentials.{name}={table}"]
    proc = subprocess.run([*args, "run", "--", "bash", "-c", script], cwd=work, env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    out = proc.stdout
    assert "brokered clone works" in out, out + proc.stderr[-3000:]
    assert "brokerdemo-1.0-py3-none-any.whl" in out, out + proc.stderr[-3000:]
    assert out.count("brokered-user") == 2, out + proc.stderr[-3000:]
    inside = (work / "inside.txt").read_text()
    assert "corral-brokered-registry-" in inside and "corral-brokered-index-" in inside
    assert "corral-brokered-gitserver-" in inside
    # the variables corral read the secrets from hold the placeholders inside
    assert "REAL_PIP=corral-brokered-index-" in inside and "REAL_GIT=corral-brokered-" in inside
    assert not any(s in inside or s in out for s in SECRETS)
    # The placeholder over plain http to the same host: never attached in the clear.
    assert "x-corral-block: credential_exfiltration" in out, out
    # Each secret reached the server, and only with its own placeholder's requests.
    assert _basic("x-access-token", GIT) in registry.seen
    assert _basic("__token__", PIP) in registry.seen
    assert f"Bearer {NPM}" in registry.seen
    files = [p for p in chome.rglob("*") if p.is_file()]
    assert files and all(s.encode() not in p.read_bytes() for p in files for s in SECRETS)
