"""Loopback ``allow_local`` entries: one exact entry is enough, and forwards tunnel to it.

Real sockets throughout: a real proxy thread, a real server on 127.0.0.1, unix sockets the way
the sandbox's relay reaches them.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from corral.errors import CorralError
from corral.netproxy import PolicyInputs, build_policy, normalize_host
from corral.netproxy.local import (
    LocalForward,
    check_ports,
    forwards_for,
    listed_forwards,
    model_urls,
    unlisted_forwards,
)
from tests.netproxy.conftest import ProxyFactory
from tests.netproxy.test_http_proxy import curl


def _verdict(inp: PolicyInputs, host: str, port: int) -> tuple[str, str]:
    v = build_policy(inp).evaluate_target(normalize_host(host), port, "http")
    return v.action, v.reason


def test_one_exact_allow_local_entry_is_enough() -> None:
    inp = PolicyInputs(allow_local=["127.0.0.1:11434", "localhost:8080"])
    assert _verdict(inp, "127.0.0.1", 11434) == ("allow", "allow_local")
    assert _verdict(inp, "localhost", 8080) == ("allow", "allow_local")
    # only the exact host:port: another port, or another spelling, is still asked about
    assert _verdict(inp, "127.0.0.1", 11435)[0] == "ask"
    assert _verdict(inp, "localhost", 11434)[0] == "ask"
    assert _verdict(inp, "127.0.0.1", 8080)[0] == "ask"
    assert _verdict(inp, "[::ffff:127.0.0.1]", 11434)[0] == "ask"


def test_a_wildcard_port_or_a_name_resolving_there_is_not_enough() -> None:
    # ``localhost:*`` opens the address check for any port, never the domain policy
    assert _verdict(PolicyInputs(allow_local=["localhost:*"]), "localhost", 80)[0] == "ask"
    inp = PolicyInputs(allow_local=["127.0.0.1:11434"])
    assert _verdict(inp, "evil.example", 11434)[0] == "ask"  # may resolve to 127.0.0.1


def test_deny_prompt_limited_and_managed_rules_still_apply() -> None:
    entry = ["127.0.0.1:11434"]
    assert _verdict(PolicyInputs(allow_local=entry, domains={"127.0.0.1": "deny"}),
                    "127.0.0.1", 11434) == ("deny", "denied")
    v = build_policy(PolicyInputs(allow_local=entry, domains={"127.0.0.1": "limited"})
                     ).evaluate_target(normalize_host("127.0.0.1"), 11434, "http")
    assert v.limited
    inp = PolicyInputs(allow_local=entry,
                       network_rules=[("127.0.0.1", None, "prompt", "r.rules:3")])
    assert _verdict(inp, "127.0.0.1", 11434)[0] == "ask"
    # managed_domains_only: the user's entry is dropped, an admin's entry is enough
    assert _verdict(PolicyInputs(allow_local=entry, managed_only=True),
                    "127.0.0.1", 11434) == ("deny", "not_allowed_managed")
    assert _verdict(PolicyInputs(managed_allow_local=entry, managed_only=True),
                    "127.0.0.1", 11434) == ("allow", "allow_local")


def test_proxy_reaches_a_listed_local_server_without_a_domain_rule(
        web: tuple[int, Path], make_proxy: ProxyFactory) -> None:
    port, _ = web
    proxy, events = make_proxy(PolicyInputs(allow_local=[f"127.0.0.1:{port}"]))
    assert proxy.endpoints is not None
    r = curl("-sS", "-x", proxy.endpoints.http_url(), f"http://127.0.0.1:{port}/hello.txt")
    assert r.stdout.startswith("hello"), r.stdout + r.stderr
    assert [(e.decision, e.reason) for e in events] == [("allow", "allow_local")]


def test_only_loopback_entries_with_a_port_are_forwarded() -> None:
    pol = build_policy(PolicyInputs(allow_local=[
        "127.0.0.1:11434", "localhost:8080", "localhost:*", "10.0.0.5:80", "[::1]:9000",
        "127.0.0.1:8080", "127.0.0.1:80"]))
    lines: list[str] = []
    found = listed_forwards(pol, lines.append)
    assert [(f.host, f.port) for f in found] == [
        ("127.0.0.1", 11434), ("localhost", 8080), ("::1", 9000)]  # ::1 too: bridged on [::1]
    assert [f.address for f in found] == ["127.0.0.1:11434", "localhost:8080", "[::1]:9000"]
    assert lines == ["corral: network: allow_local 127.0.0.1:80: a port below 1024 cannot be "
                     "opened inside the sandbox, so the server there is not forwarded; run it "
                     "on a port above 1023"]


def test_the_agents_loopback_model_url_is_found_where_it_is_configured(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[model_providers.local]\nbase_url = "http://localhost:9999/v1"\n'
                   '[model_providers.cloud]\nbase_url = "https://api.example.com/v1"\n')
    argv = ["codex", "-c", 'model_providers.x={name="x", base_url="http://127.0.0.1:7000/v1"}']
    env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:7001", "HOME": "/root"}
    urls = model_urls(argv, env, [cfg, tmp_path / "missing.json"])
    pol = build_policy(PolicyInputs(allow_local=["127.0.0.1:7001"]))
    got = [(f.address, f.listed, f.origin) for f in forwards_for(pol, argv, env, [cfg])]
    assert ("127.0.0.1:7001", True, "default") in [(a, b, "default") for a, b, _ in got]
    assert ("127.0.0.1:7000", False, "the command line") in got
    assert ("localhost:9999", False, str(cfg)) in got
    assert len(urls) == 4 and not any("api.example.com" in a for a, _, _ in got)


@pytest.mark.parametrize("moved", [False, True])
def test_gemini_settings_are_read_where_gemini_keeps_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moved: bool) -> None:
    """Gemini CLI's GEMINI_CLI_HOME names its home: the settings are in ``.gemini`` inside it
    (the same dir ``install-hooks gemini`` and ``corral run -- gemini`` use)."""
    from corral.netproxy.local import agent_config_files
    from corral.paths import gemini_dir
    from corral.supervisor.run import PRESETS

    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    if moved:
        monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "ghome"))
    else:
        monkeypatch.delenv("GEMINI_CLI_HOME", raising=False)
    settings = (tmp_path / "ghome" if moved else tmp_path / "user") / ".gemini" / "settings.json"
    assert gemini_dir() / "settings.json" == settings
    settings.parent.mkdir(parents=True)
    settings.write_text('{"model": {"baseUrl": "http://127.0.0.1:7002"}}')
    p = PRESETS["gemini"]
    files = agent_config_files(p.config_dir, p.config_env, p.config_subdir)
    assert settings in files
    pol = build_policy(PolicyInputs())
    got = [(f.address, f.listed, f.origin) for f in forwards_for(pol, ["gemini"], {}, files)]
    assert got == [("127.0.0.1:7002", False, str(settings))]


_HOSTS = st.sampled_from([
    "127.0.0.1", "localhost", "127.1", "0x7f.1", "[::1]", "LOCALHOST", "127.0.0.2", "evil.example",
    "[::ffff:127.0.0.1]", "2130706433", "127.0.0.1.", "localhost.evil.example", "", "[",
    "127.0.0.1%00", "127.0.0.1 ", "ex\u00e4mple", "0177.0.0.1", "1.2.3.4.5"])


@given(_HOSTS,
       st.one_of(st.integers(1024, 65535).map(str), st.integers(1024, 65535).map(str),
                 st.sampled_from(["", "0", "80", "65536", "99999", "-1", "80x", ":"])),
       st.sampled_from(["/v1", "", "/", "@evil.example/", "#x", "/\x00"]) | st.text(max_size=40),
       st.sampled_from(["http", "https", "HTTP", "ftp"]))
def test_hostile_config_text_never_breaks_the_scan(host: str, port: str, rest: str,
                                                   scheme: str) -> None:
    """Whatever the agent's config says, the scan yields only well-formed forwards, to
    127.0.0.1, ::1 or localhost on an unprivileged port, never one an exact entry covers."""
    url = f"{scheme}://{host}:{port}{rest}"
    pol = build_policy(PolicyInputs(allow_local=["127.0.0.1:11434"]))
    text = f'base_url = "{url}"\n{{"ANTHROPIC_BASE_URL": "{url}"}}'
    found = unlisted_forwards(model_urls(["agent", text], {"X_BASE_URL": url}), pol)
    event("forwarded" if found else "nothing to forward")
    for f in found:
        assert f.host in ("127.0.0.1", "::1", "localhost") and 1024 <= f.port < 65536, f
        assert f.address != "127.0.0.1:11434" and not f.listed


def test_a_forward_on_a_port_corral_uses_inside_is_refused() -> None:
    with pytest.raises(CorralError, match="port 3128 is taken"):
        check_ports([LocalForward("127.0.0.1", 3128, True)], (3128, 1080))


def _through(sock: Path, payload: bytes, timeout: float = 5.0) -> bytes:
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(timeout)
    c.connect(str(sock))
    try:
        c.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):  # refused before the request was read
        c.close()
        return b""
    out = b""
    try:
        while chunk := c.recv(65536):
            out += chunk
    except ConnectionResetError:  # closed with the request unread: refused, as intended
        pass
    c.close()
    return out


def test_forward_tunnels_to_the_listed_server_with_one_event(
        web: tuple[int, Path], make_proxy: ProxyFactory, tmp_path: Path) -> None:
    port, _ = web
    proxy, events = make_proxy(PolicyInputs(allow_local=[f"127.0.0.1:{port}"]))
    lines: list[str] = []
    sock = tmp_path / "l.sock"
    proxy.forward(LocalForward("127.0.0.1", port, True), str(sock), lines.append)
    assert sock.stat().st_mode & 0o777 == 0o600
    reply = _through(sock, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 200") or reply.startswith(b"HTTP/1.1 200"), reply[:80]
    assert reply.endswith(b"hello through the proxy\n")
    assert [(e.host, e.port, e.decision, e.reason) for e in events] == [
        ("127.0.0.1", port, "allow", "allow_local")]
    assert lines == []


def test_a_listed_server_that_is_down_is_refused_at_once_with_one_line(
        make_proxy: ProxyFactory, tmp_path: Path) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    proxy, _ = make_proxy(PolicyInputs(allow_local=[f"127.0.0.1:{port}"]))
    lines: list[str] = []
    sock = tmp_path / "l.sock"
    proxy.forward(LocalForward("127.0.0.1", port, True), str(sock), lines.append)
    start = time.monotonic()
    for _ in range(3):
        assert _through(sock, b"POST /v1/responses HTTP/1.1\r\n\r\n") == b""
    assert time.monotonic() - start < 2.0
    assert len(lines) == 1, lines  # once per address and reason, not per retry
    assert lines[0].startswith(f"corral: network: 127.0.0.1:{port} (listed in [network] "
                               "allow_local) refused the connection"), lines


def test_an_unlisted_model_url_is_refused_with_the_key_to_set(
        web: tuple[int, Path], make_proxy: ProxyFactory, tmp_path: Path) -> None:
    port, _ = web  # a server is there, but it is not listed
    proxy, events = make_proxy(PolicyInputs())
    lines: list[str] = []
    sock = tmp_path / "l.sock"
    proxy.forward(LocalForward("127.0.0.1", port, False, "$OPENAI_BASE_URL"), str(sock),
                  lines.append)
    assert _through(sock, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    assert lines == [
        f"corral: network: 127.0.0.1:{port} (the agent's model URL, from $OPENAI_BASE_URL) is "
        "not reachable from the sandbox, whose loopback is its own: add "
        f'"127.0.0.1:{port}" to [network] allow_local to reach the server on this machine']
    assert [(e.decision, e.reason) for e in events] == [("deny", "not_allowed_local")]
