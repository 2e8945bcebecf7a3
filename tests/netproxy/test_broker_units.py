"""The broker's data paths without sockets: hostile header values, every chunking of a stream
(hypothesis), and the configuration's strict validation."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.errors import CorralError
from corral.netproxy.broker import Broker, Credential, Destination, Leak, Redactor, mask

SECRET = "sk-live-0123456789abcdefghij"


def _broker() -> tuple[Broker, Credential, Credential]:
    a = Credential.new("openai", ["api.openai.com"], SECRET)
    b = Credential.new("github", ["github.com", "*.github.com:8443"], "ghp_" + "x" * 36)
    return Broker([a, b]), a, b


def test_outbound_swaps_only_own_placeholders_over_tls() -> None:
    br, a, b = _broker()
    hdrs = [(b"authorization", f"Bearer {a.placeholder}".encode())]
    ob = br.outbound("api.openai.com", 443, "/v1", hdrs, tls=True)
    assert ob.leaked is None and ob.headers == [(b"authorization", f"Bearer {SECRET}".encode())]
    assert ob.used == ("openai",)
    for host, port, tls in (("api.openai.com", 443, False), ("github.com", 443, True),
                            ("api.openai.com", 8443, True), ("evil.example", 443, True)):
        ob = br.outbound(host, port, "/", hdrs, tls)
        assert ob.leaked is a and ob.where == "the authorization header", (host, port, tls)
    # both placeholders in one value to openai's host: github's is refused
    mixed = [(b"x", f"{a.placeholder},{b.placeholder}".encode())]
    assert br.outbound("api.openai.com", 443, "/", mixed, True).leaked is b
    # a placeholder in another case is not swapped, and so refused (never half-handled)
    up = [(b"x-api-key", a.placeholder.upper().encode())]
    assert br.outbound("api.openai.com", 443, "/", up, True).leaked is a
    # wildcard subdomains with a port
    ob = br.outbound("api.github.com", 8443, f"/?t={b.placeholder}", [], True)
    assert ob.leaked is None and ob.target == f"/?t={b.secret}"
    assert br.outbound("github.com", 8443, f"/?t={b.placeholder}", [], True).leaked is b


def test_basic_credentials_and_their_encoding_masked() -> None:
    br, a, _ = _broker()
    value = b"Basic " + base64.b64encode(f"me:{a.placeholder}".encode())
    ob = br.outbound("api.openai.com", 443, "/", [(b"Authorization", value)], True)
    sent = ob.headers[0][1]
    assert base64.b64decode(sent.split()[1]) == f"me:{SECRET}".encode()
    red = br.redactor("api.openai.com", 443, ob.injected)
    assert red is not None and sent.split()[1] not in red.value(b"echo " + sent)
    # malformed Basic values carrying the placeholder in clear are swapped as plain text
    weird = f"Basic !!{a.placeholder}".encode()
    ob = br.outbound("api.openai.com", 443, "/", [(b"Authorization", weird)], True)
    assert ob.leaked is None and SECRET.encode() in ob.headers[0][1]


@pytest.mark.parametrize("text", ["*", "**.example.com", "a.example:0", "a.example:70000",
                                  "a.example:x", "bad host", "", "1.2.3.4.5"])
def test_bad_destinations(text: str) -> None:
    with pytest.raises(CorralError):
        Destination.parse(text)


@pytest.mark.parametrize(("name", "secret"), [("ok", ""), ("ok", "a b"), ("ok", "a\r\nX: y"),
                                               ("ok", "é"), ("ok", "x" * 20000),
                                               ("bad name", "s"), ("", "s"), ("x" * 64, "s")])
def test_bad_credentials(name: str, secret: str) -> None:
    with pytest.raises(CorralError):
        Credential.new(name, ["a.example"], secret)


def test_placeholders_differ_per_session_and_hide_the_secret() -> None:
    one, two = (Credential.new("openai", ["a.example"], SECRET) for _ in range(2))
    assert one.placeholder != two.placeholder and SECRET not in repr(one)
    assert Destination.parse("[::1]:8443").port == 8443
    assert Destination.parse("127.0.0.2:9000").matches("127.0.0.2", 9000)
    with pytest.raises(CorralError, match="defined twice"):
        Broker([one, Credential.new("openai", ["b.example"], "y")])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200), st.lists(st.integers(0, 500),
                                                                    max_size=8))
def test_redactor_never_lets_a_secret_through_and_keeps_lengths(pre: bytes, post: bytes,
                                                                cuts: list[int]) -> None:
    secret = SECRET.encode()
    data = pre + secret + post + secret[:7]  # and a tail that looks like its start
    r = Redactor((secret,))
    out = b""
    last = 0
    for c in sorted(min(c, len(data)) for c in cuts):
        out += r.feed(data[last:c])
        last = c
    out += r.feed(data[last:]) + r.flush()
    assert len(out) == len(data) and secret not in out
    assert out == data.replace(secret, mask(len(secret)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 10_000), st.sampled_from(["plain", "upper",
                                                                         "b64"]))
def test_body_guard_finds_a_split_placeholder(noise: bytes, cut: int, form: str) -> None:
    br, a, _ = _broker()
    ph = a.placeholder.encode()
    token = {"plain": ph, "upper": ph.upper(), "b64": base64.b64encode(b"k=" + ph)}[form]
    data = noise + token + noise
    guard = br.body_guard("evil.example", 443, True)
    assert guard is not None and br.body_guard("api.openai.com", 443, True) is None
    assert br.body_guard("api.openai.com", 443, False) is not None
    cut = cut % (len(data) + 1)
    with pytest.raises(Leak) as info:
        guard.feed(data[:cut])
        guard.feed(data[cut:])
    assert info.value.credential is a


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_outbound_on_arbitrary_header_values(value: bytes) -> None:
    br = _broker()[0]
    ob = br.outbound("api.openai.com", 443, "/", [(b"x", value)], True)
    # nothing without a placeholder is touched; nothing with one leaves unswapped
    if br.find(value) is None:
        assert ob.headers == [(b"x", value)] and ob.leaked is None
    elif ob.leaked is None:
        assert br.find(ob.headers[0][1]) is None


# -- configuration -------------------------------------------------------------------------------

def _cfg(tmp_path: Path, text: str, req: str = "", *flags: str):  # type: ignore[no-untyped-def]
    from corral.config import load_config

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(text)
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    if req:
        (etc / "requirements.toml").write_text(req)
    overrides = [f for f in flags]
    return load_config(tmp_path, home=home, system=etc, overrides=overrides)


def test_config_is_strict(tmp_path: Path) -> None:
    from corral.errors import ConfigError

    with pytest.raises(ConfigError, match="hostss"):
        _cfg(tmp_path, '[secrets.broker.credentials.x]\nhostss = ["a.example"]\n')
    with pytest.raises(ConfigError, match="invalid value 'ssh'"):
        _cfg(tmp_path, '[secrets.broker.credentials.x]\nkind = "ssh"\n')
    with pytest.raises(ConfigError, match="expected true or false"):
        _cfg(tmp_path, '[secrets.broker]\nenabled = "yes"\n')


@pytest.mark.parametrize(("table", "msg"), [
    ('hosts = ["a.example"]\nsource = "vault:x"', "unknown source"),
    ('hosts = ["a.example"]\nsource = "env:A-B"', "not a variable name"),
    ("source = \"env:A\"", "no host"),
    ('kind = "pip"\nsource = "env:A"', "needs index_url"),
    ('kind = "pip"\nindex_url = "http://i.example/simple/"', "https"),
    ('kind = "pip"\nindex_url = "https://u:p@i.example/simple/"', "without credentials"),
    ('kind = "git"\nhosts = ["g.example"]\nenv = "X"', "credential helper"),
    ('kind = "npm"\nhosts = ["g.example"]\nindex_url = "https://g.example/"', "only for"),
    ('kind = "git"\nhosts = ["g.example"]\nusername = "a:b"', "cannot hold"),
])
def test_credential_tables_are_validated(tmp_path: Path, table: str, msg: str) -> None:
    from corral.netproxy.brokerconfig import specs

    cfg = _cfg(tmp_path, f"[secrets.broker.credentials.x]\n{table}\n")
    with pytest.raises(CorralError, match=msg):
        specs(cfg, None)


def test_agent_presets_and_overrides(tmp_path: Path) -> None:
    from corral.netproxy.brokerconfig import sandbox_env, specs

    cfg = _cfg(tmp_path, '[secrets.broker.credentials.openai]\nhosts = ["gw.example:8443"]\n'
               '[secrets.broker.credentials.anthropic]\nhosts = ["not.for.codex"]\n')
    got = {s.name: s for s in specs(cfg, "codex")}
    # claude's credential is only for claude; Codex's login file (ChatGPT) fields too
    assert set(got) == {"openai", "codex-api-key", "openai-login", "chatgpt", "chatgpt-refresh"}
    assert got["chatgpt"].source == ("file", "auth.json:tokens.access_token")
    assert got["chatgpt"].model and not got["chatgpt-refresh"].model
    assert got["openai"].hosts == ("gw.example:8443",) and got["openai"].source == (
        "env", "OPENAI_API_KEY")
    assert got["codex-api-key"].hosts == ("api.openai.com",)
    bad = _cfg(tmp_path, '[secrets.broker.credentials.openai]\nkind = "git"\n')
    with pytest.raises(CorralError, match="preset"):
        specs(bad, "codex")
    bad = _cfg(tmp_path, '[secrets.broker.credentials.chatgpt]\nsource = "env:X"\n')
    with pytest.raises(CorralError, match="only hosts may be set"):
        specs(bad, "codex")
    env = sandbox_env([(got["openai"], "PH", ["gw.example:8443"])])
    assert env == {"OPENAI_API_KEY": "PH"}


def test_project_config_may_not_touch_the_broker_and_requirements_force_it(
        tmp_path: Path) -> None:
    from corral.config import load_config
    from corral.errors import CorralError as Err
    from corral.netproxy.brokerconfig import enabled

    proj = tmp_path / "proj"
    (proj / ".corral").mkdir(parents=True)
    (proj / ".corral" / "config.toml").write_text(
        '[secrets.broker.credentials.x]\nhosts = ["evil.example"]\nsource = "env:HOME"\n')
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text(f'[projects."{proj}"]\ntrust_level = "trusted"\n')
    cfg = load_config(proj, home=home, system=tmp_path / "e")
    assert cfg.get("secrets.broker.credentials") is None
    assert any("`secrets` may not be set by project config" in w for w in cfg.warnings), \
        cfg.warnings
    req = "[secrets.broker]\nrequired = true\n"
    cfg = _cfg(tmp_path, "[secrets.broker]\nenabled = false\n", req)
    assert enabled(cfg) and any("broker is required" in w for w in cfg.warnings)
    with pytest.raises(Err, match="required"):
        _cfg(tmp_path, "", req, "secrets.broker.enabled=false")


def test_login_file_placeholders() -> None:
    from corral.netproxy.brokerconfig import LOGIN_FILES, login_field, placeholder_login

    doc = {"OPENAI_API_KEY": None, "tokens": {"id_token": "h.claims.sig", "access_token": "A",
                                              "refresh_token": "R", "account_id": "x"}}
    lf = LOGIN_FILES["codex"]
    out = placeholder_login(doc, lf, {"chatgpt": "PA", "chatgpt-refresh": "PR"})
    assert out["tokens"] == {"id_token": "h.claims.corral-brokered-signature-removed",
                             "access_token": "PA", "refresh_token": "PR", "account_id": "x"}
    assert doc["tokens"]["access_token"] == "A"  # a copy
    assert placeholder_login(doc, lf, {}) is None  # nothing held: no copy
    assert placeholder_login({"tokens": "weird"}, lf, {"chatgpt": "PA"}) is None
    assert login_field(doc, ("OPENAI_API_KEY",)) is None
    assert login_field(doc, ("tokens", "access_token")) == "A"
    assert login_field([1, 2], ("tokens",)) is None
