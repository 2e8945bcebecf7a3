"""Policy from the real layered config + requirements, and the ``corral proxy`` command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.config import load_config
from corral.netproxy import policy_from_config

from .conftest import need


def write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_policy_from_layered_config_and_managed_requirements(tmp_path: Path) -> None:
    home, system = tmp_path / "home", tmp_path / "etc"
    write(home / "config.toml", """
[network]
domains = { "pypi.org" = "allow", "**.corp.test" = "allow", "bad.corp.test" = "deny", "user.test" = "allow" }
allow_local = ["127.0.0.1:8080"]
""")
    cfg = load_config(tmp_path, home=home, system=system)
    pol = policy_from_config(cfg, [("github.com", "https", "allow", "default.rules:2")])
    assert pol.evaluate("pypi.org", "https").action == "allow"
    assert pol.evaluate("bad.corp.test", "https").action == "deny"
    assert pol.evaluate("github.com", "https").source == "default.rules:2"
    assert pol.local_grant("127.0.0.1", None, 8080) is not None

    write(system / "requirements.toml", """
[network]
managed_domains_only = true
domains = { "**.corp.test" = "allow" }
""")
    cfg = load_config(tmp_path, home=home, system=system)
    pol = policy_from_config(cfg)
    v = pol.evaluate("user.test", "https")
    assert v.action == "deny" and v.reason == "not_allowed_managed"
    assert "requirements.toml" in v.source
    assert pol.evaluate("a.corp.test", "https").action == "allow"
    assert pol.evaluate("bad.corp.test", "https").action == "deny"  # users may still narrow
    assert pol.allow_local == ()


@pytest.mark.parametrize(("value", "expected"), [("7.5", 7.5), ("0", None)])
def test_idle_timeout_from_config_reaches_the_proxy_limits(
    tmp_path: Path, value: str, expected: float | None
) -> None:
    from corral.netproxy import Proxy

    home = tmp_path / "home"
    write(home / "config.toml", f"[network]\nidle_timeout_seconds = {value}\n")
    pol = policy_from_config(load_config(tmp_path, home=home, system=tmp_path / "etc"))
    proxy = Proxy(pol, None)  # not started: only its limits are looked at
    assert proxy.limits.idle_timeout == expected
    assert proxy._socks.idle_timeout == expected
    write(home / "config.toml", "[network]\nidle_timeout_seconds = -1\n")
    with pytest.raises(Exception, match=r"config.toml:2:1: -1 is out of range"):
        load_config(tmp_path, home=home, system=tmp_path / "etc")


@pytest.mark.slow
def test_corral_proxy_command(tmp_path: Path, web: tuple[int, Path]) -> None:
    port, _ = web
    corral = Path(sys.executable).parent / "corral"
    sock = tmp_path / "p.sock"
    env = {**os.environ, "CORRAL_HOME": str(tmp_path / "home"),
           "CORRAL_SYSTEM_DIR": str(tmp_path / "etc")}
    write(tmp_path / "home" / "config.toml",
          f'[network]\ndomains = {{ "localhost" = "allow" }}\nallow_local = ["localhost:{port}"]\n')
    proc = subprocess.Popen(
        [str(corral), "proxy", "--listen", "127.0.0.1:0", "--socks-listen", "127.0.0.1:0",
         "--unix", str(sock), "--deny", "bad.test", "--events"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("corral: network: proxy listening http=http://127.0.0.1:"), line
        http_url = line.split("http=")[1].split()[0]
        assert f"unix={sock}" in line
        curl = need("curl")
        out = subprocess.run([curl, "-sS", "-x", http_url, f"http://localhost:{port}/hello.txt"],
                             capture_output=True, text=True, timeout=20)
        assert out.stdout.startswith("hello"), out.stderr
        with socket.socket(socket.AF_UNIX) as u:  # the unix listener (what the bridge uses)
            u.connect(str(sock))
            u.sendall(b"GET http://bad.test/ HTTP/1.1\r\nHost: bad.test\r\n\r\n")
            assert b"x-corral-block: denied" in u.recv(4096)
        time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert '"decision": "allow"' in err and '"source": "--deny"' in err


def test_bridge_refuses_bad_arguments_in_one_line() -> None:
    cases = [
        (["--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2", "--to", "/x"], "one --to per --listen"),
        (["--listen", "nohostport", "--to", "/x"], "must be HOST:PORT"),
        (["--listen", "127.0.0.1:²", "--to", "/x"], "must be HOST:PORT"),
    ]
    for args, why in cases:
        r = subprocess.run([sys.executable, "-m", "corral.netproxy.bridge", *args],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2
        assert r.stderr.startswith("corral: network: bridge") and why in r.stderr
        assert r.stderr.count("\n") == 1
