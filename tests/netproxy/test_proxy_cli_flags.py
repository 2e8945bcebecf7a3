"""`corral proxy` flags, each run as a user would: --allow, --allow-local, --ask, --mitm and
--no-config change what a real curl through the proxy gets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import need


@contextmanager
def corral_proxy(tmp_path: Path, *flags: str, config: str | None = None,
                 env_extra: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if config is not None:
        (home / "config.toml").write_text(config)
    env = {**os.environ, "CORRAL_HOME": str(home), "CORRAL_SYSTEM_DIR": str(tmp_path / "etc"),
           **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, "-m", "corral", "proxy", "--listen", "127.0.0.1:0",
                             *flags], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line.startswith("corral: network: HTTPS interception"):
            line = proc.stderr.readline()
        assert line.startswith("corral: network: proxy listening http="), line
        yield line.split("http=")[1].split()[0], proc
    finally:
        proc.terminate()
        proc.wait(10)


def fetch(proxy: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need("curl"), "-sS", "-i", "--max-time", "10", "-x", proxy, *extra,
                           url], capture_output=True, text=True, timeout=30)


def status(r: subprocess.CompletedProcess[str]) -> int:
    return int(r.stdout.split()[1]) if r.stdout.startswith("HTTP/") else -1


@pytest.mark.slow
def test_allow_and_allow_local_flags_open_a_local_host(tmp_path: Path, web: tuple[int, Path]
                                                       ) -> None:
    port, _ = web
    url = f"http://localhost:{port}/hello.txt"
    with corral_proxy(tmp_path, "--no-config") as (proxy, _):
        assert status(fetch(proxy, url)) == 403  # nothing allowed
    with corral_proxy(tmp_path, "--no-config", "--allow", "localhost",
                      "--allow-local", f"localhost:{port}") as (proxy, _):
        r = fetch(proxy, url)
        assert status(r) == 200 and "hello" in r.stdout, r.stdout + r.stderr
    with corral_proxy(tmp_path, "--no-config", "--allow", "localhost") as (proxy, _):
        r = fetch(proxy, url)  # the name is allowed, but a loopback address needs --allow-local
        assert status(r) == 403 and "x-corral-block" in r.stdout.lower()
    with corral_proxy(tmp_path, "--no-config", "--allow-local", f"localhost:{port}") as (
            proxy, _):
        r = fetch(proxy, url)  # the exact host:port in allow_local is enough on its own
        assert status(r) == 200 and "hello" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_no_config_ignores_the_config_file(tmp_path: Path, web: tuple[int, Path]) -> None:
    port, _ = web
    url = f"http://localhost:{port}/hello.txt"
    config = (f'[network]\ndomains = {{ "localhost" = "allow" }}\n'
              f'allow_local = ["localhost:{port}"]\n')
    with corral_proxy(tmp_path, config=config) as (proxy, _):
        assert status(fetch(proxy, url)) == 200
    with corral_proxy(tmp_path, "--no-config", config=config) as (proxy, _):
        assert status(fetch(proxy, url)) == 403


@pytest.mark.slow
def test_ask_flag_asks_on_the_terminal_and_obeys_the_answer(tmp_path: Path,
                                                            web: tuple[int, Path]) -> None:
    port, _ = web
    url = f"http://localhost:{port}/hello.txt"
    for answer, expected in (("y", 200), ("n", 403)):
        # any port (``*``): the address check opens, the host is still asked about (an exact
        # entry alone would be allowed without a question)
        with corral_proxy(tmp_path, "--no-config", "--ask",
                          "--allow-local", "localhost:*") as (proxy, proc):
            assert proc.stdin is not None and proc.stderr is not None
            proc.stdin.write(answer + "\n")
            proc.stdin.flush()
            r = fetch(proxy, url)
            assert status(r) == expected, (answer, r.stdout, r.stderr)
            proc.terminate()
            err = proc.stderr.read()
        assert "corral: network:" in err and "localhost" in err and "[y/N/s(ession)]" in err
    with corral_proxy(tmp_path, "--no-config", "--allow-local", "localhost:*") as (proxy, _):
        assert status(fetch(proxy, url)) == 403  # --no-ask (default): unknown hosts are denied


@pytest.mark.slow
def test_mitm_flag_lets_limited_hosts_be_read_over_https(tmp_path: Path,
                                                         make_tls_server) -> None:  # type: ignore[no-untyped-def]
    port, upstream_pem = make_tls_server("localhost", "127.0.0.1")
    url = f"https://localhost:{port}/"
    config = (f'[network]\ndomains = {{ "localhost" = "limited" }}\n'
              f'allow_local = ["localhost:{port}"]\n')
    # the proxy must trust the test server's CA upstream; clients trust the proxy's CA
    upstream = {"SSL_CERT_FILE": str(upstream_pem)}
    with corral_proxy(tmp_path, config=config, env_extra=upstream) as (proxy, _):
        r = fetch(proxy, url, "--cacert", str(upstream_pem))
        assert r.returncode != 0 and "403" in r.stdout + r.stderr  # limited needs interception
    with corral_proxy(tmp_path, "--mitm", config=config, env_extra=upstream) as (proxy, _):
        ca_dir = tmp_path / "home" / "proxy-ca"
        bundles = sorted(ca_dir.glob("*.pem"))
        assert bundles, list(ca_dir.iterdir())
        ok = [fetch(proxy, url, "--cacert", str(b)) for b in bundles]
        got = next((r for r in ok if status(r) == 200), None)
        assert got is not None and got.stdout.rstrip().endswith("secure hello"), \
            [(r.stdout, r.stderr) for r in ok]
        post = fetch(proxy, url, "--cacert", str(bundles[0]), "-d", "x=1")
        assert "method_not_allowed" in (post.stdout + post.stderr).lower() or status(post) == 403
