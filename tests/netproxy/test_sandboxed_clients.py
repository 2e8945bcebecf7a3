"""Real clients (curl, httpx, pip, git, npm) inside a bubblewrap network namespace whose only
way out is the proxy's unix socket, bridged to loopback inside by
``python -m corral.netproxy.bridge``.

The loopback test servers live outside the namespace; the proxy (outside) reaches them through
``allow_local``. Names like ``web.test`` resolve only in the proxy's resolver, so a client that
tried to bypass the proxy would fail to resolve or connect.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from corral.netproxy import Listen, PolicyInputs, proxy_env
from corral.netproxy.addresses import IPAddress
from corral.netproxy.gate import system_resolver

from .conftest import ProxyFactory, need

pytestmark = pytest.mark.slow


async def fake_dns(host: str, port: int) -> list[IPAddress]:
    if host.endswith(".test"):
        return [ipaddress.ip_address("127.0.0.1")]
    return await system_resolver(host, port)


def sandboxed(tmp: Path, sock: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bwrap = need("bwrap")
    bridge = (
        f"{shlex.quote(sys.executable)} -m corral.netproxy.bridge "
        f"--listen 127.0.0.1:3128 --to {sock} --listen 127.0.0.1:1080 --to {sock} "
        f"> {tmp}/bridge.out 2>&1 &\n"
        "trap 'kill $! 2>/dev/null' EXIT\n"
        f"for i in $(seq 100); do [ $(grep -c listening {tmp}/bridge.out) = 2 ] && break; sleep 0.05; done\n"
    )
    full_env = {"PATH": os.environ["PATH"], "HOME": str(tmp), **env}
    return subprocess.run(
        [bwrap, "--unshare-net", "--unshare-pid", "--die-with-parent", "--dev-bind", "/", "/", "--proc", "/proc",
         "sh", "-ec", bridge + "set -x\n" + script],
        capture_output=True, text=True, env=full_env, timeout=120,
    )


def _wheel(dest: Path) -> Path:
    name = "corraldemo-1.0-py3-none-any.whl"
    path = dest / name
    files = {
        "corraldemo/__init__.py": b"VALUE = 42\n",
        "corraldemo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: corraldemo\nVersion: 1.0\n",
        "corraldemo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{k},,\n" for k in files) + "corraldemo-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
        z.writestr("corraldemo-1.0.dist-info/RECORD", record)
    return path


def test_clients_inside_sandbox_through_bridge(
    web: tuple[int, Path], make_proxy: ProxyFactory, tmp_path: Path, make_tls_server  # type: ignore[no-untyped-def]
) -> None:
    port, root = web
    tls_port, tls_ca = make_tls_server("secure.test")
    need("git")
    # pip simple index
    (root / "simple" / "corraldemo").mkdir(parents=True)
    whl = _wheel(root / "simple" / "corraldemo")
    digest = hashlib.sha256(whl.read_bytes()).hexdigest()
    (root / "simple" / "corraldemo" / "index.html").write_text(
        f'<html><body><a href="{whl.name}#sha256={digest}">{whl.name}</a></body></html>')
    # git repository served by the dumb HTTP protocol
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "README").write_text("cloned through the proxy\n")
    g = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*g, "add", "README"], check=True)
    subprocess.run([*g, "commit", "-qm", "init"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "repo.git")], check=True)
    subprocess.run(["git", "-C", str(root / "repo.git"), "update-server-info"], check=True)

    # a one-package npm registry document
    (root / "corraldemo").write_text(
        '{"name":"corraldemo","dist-tags":{"latest":"1.0.0"},"versions":{"1.0.0":'
        '{"name":"corraldemo","version":"1.0.0","dist":{"tarball":"http://web.test/x.tgz"}}}}')
    npm = need("npm")
    sock = tmp_path / "proxy.sock"
    inp = PolicyInputs(domains={"web.test": "allow", "secure.test": "allow", "denied.test": "deny"},
                       allow_local=[f"web.test:{port}", f"secure.test:{tls_port}"])
    _, events = make_proxy(inp, listen=Listen(http=None, socks=None, unix=str(sock)),
                               resolver=fake_dns)
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    env = proxy_env(3128, 1080)
    base = f"http://web.test:{port}"
    script = f"""
curl -sS --max-time 10 --trace-ascii {tmp_path}/http.trace {base}/hello.txt > {tmp_path}/curl_http.out
curl -sS --max-time 10 -p {base}/hello.txt > {tmp_path}/curl_connect.out
curl -sS --max-time 10 --trace-ascii {tmp_path}/socks.trace -x "$CORRAL_SOCKS_PROXY" {base}/hello.txt > {tmp_path}/curl_socks.out
curl -sS --max-time 10 --cacert {tls_ca} https://secure.test:{tls_port}/ > {tmp_path}/curl_https.out
curl -sS --max-time 10 --cacert {tls_ca} -x "$CORRAL_SOCKS_PROXY" https://secure.test:{tls_port}/ > {tmp_path}/curl_https_socks.out
curl -sS --max-time 10 -i http://denied.test/ > {tmp_path}/curl_denied.out || true
curl -sS --max-time 3 http://127.0.0.1:{port}/hello.txt --noproxy '*' > /dev/null 2>&1 && echo BYPASS > {tmp_path}/bypass.out || true
{shlex.quote(sys.executable)} -c "import httpx; print(httpx.get('{base}/hello.txt').text, end='')" > {tmp_path}/httpx.out
{shlex.quote(sys.executable)} -m pip download -q --no-deps --disable-pip-version-check --no-cache-dir \
    --trusted-host web.test --index-url {base}/simple -d {tmp_path}/dl corraldemo==1.0
git clone -q {base}/repo.git {tmp_path}/clone
{npm} view corraldemo version --registry {base}/ --cache {tmp_path}/npmcache > {tmp_path}/npm.out
"""
    r = sandboxed(tmp_path, sock, script, env)
    traces = "".join(p.read_text()[-3000:] for p in tmp_path.glob("*.trace"))
    assert r.returncode == 0, r.stderr + (tmp_path / "bridge.out").read_text() + traces
    for name in ("curl_http", "curl_connect", "curl_socks", "httpx"):
        assert (tmp_path / f"{name}.out").read_text() == "hello through the proxy\n", name
    for name in ("curl_https", "curl_https_socks"):
        assert (tmp_path / f"{name}.out").read_text() == "secure hello\n", name
    denied = (tmp_path / "curl_denied.out").read_text()
    assert "403" in denied and "x-corral-block: denied" in denied
    assert not (tmp_path / "bypass.out").exists()
    assert (tmp_path / "dl" / whl.name).read_bytes() == whl.read_bytes()
    assert (tmp_path / "clone" / "README").read_text() == "cloned through the proxy\n"
    assert (tmp_path / "npm.out").read_text().strip() == "1.0.0"
    protocols = {e.protocol for e in events if e.decision == "allow"}
    assert protocols == {"http", "https", "socks5_tcp"}
    assert all(e.host in ("web.test", "secure.test", "denied.test") for e in events)
