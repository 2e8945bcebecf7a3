"""`corral server` commands as a user runs them: init, keys, tokens, TLS, one-line refusals,
and the import boundary (the server never loads the supervisor, sandbox or integrations)."""

from __future__ import annotations

import ssl
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import trustme

from tests.server.helpers import ServerProc, corral, forward_request, journal, token


def test_init_refuses_to_overwrite_and_key_is_private(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    out = corral("server", "init", "--data", str(data)).stdout
    assert "verifier key: " in out
    key = data / "keys" / "server-signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = corral("server", "init", "--data", str(data), check=False)
    assert again.returncode == 2
    assert again.stderr.strip() == f"corral: server: {data} already holds a server (config.toml exists)"
    key.chmod(0o644)
    run = corral("server", "run", "--data", str(data), "--listen", "127.0.0.1:1", check=False)
    assert run.returncode == 2 and run.stderr.strip().startswith(
        f"corral: server: signing key {key} is accessible to other users")
    bad = corral("server", "run", "--data", str(data), "--listen", "nope", check=False)
    assert bad.stderr.strip().startswith("corral: server: bad --listen 'nope'")
    missing = corral("server", "status", "--data", str(tmp_path / "none"), check=False)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    tok = corral("server", "token", "create", "--data", str(data), "--scope", "ingest",
                 "--expires-days", "1").stdout
    assert tok.count("\n") == 1 and tok.startswith("corral_")
    assert tok.strip() not in (data / "store" / "log.db").read_bytes().decode("latin-1")
    wrong = corral("server", "token", "create", "--data", str(data), "--scope", "root",
                   check=False)
    assert wrong.returncode == 2 and "unknown scope 'root'" in wrong.stderr


def test_tls(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    corral("server", "init", "--data", str(data))
    tok = token(data, "ingest")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    srv = ServerProc(data, tls=(tmp_path / "cert.pem", tmp_path / "key.pem"), verify=ctx)
    try:
        url = srv.url
        assert url.startswith("https://127.0.0.1:")
        r = httpx.post(url + "/v1/logs", content=forward_request(journal(tmp_path, 3)),
                       verify=ctx, headers={"Authorization": f"Bearer {tok}",
                                            "Content-Type": "application/x-protobuf"})
        assert r.status_code == 200
        assert httpx.get(url + "/healthz", verify=ctx).json()["size"] == 3
    finally:
        srv.stop()


def test_server_never_imports_the_machine_side() -> None:
    code = """
import sys, json
from corral.server import app, cli, ingest, verify
from corral.server.store import sqlite, postgres
doc = {"resourceLogs": [{"scopeLogs": [{"scope": {"name": "x"}, "logRecords": [
    {"eventName": "codex.tool_decision", "attributes": []}]}]}]}
ingest.decode(ingest.parse(json.dumps(doc).encode(), "application/json"))
print(" ".join(sorted(m for m in sys.modules if m.startswith("corral."))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert "corral.integrations.otel_map" in out  # the native-log path ran
    forbidden = [m for m in out if m.startswith(("corral.supervisor", "corral.sandbox"))
                 or (m.startswith("corral.integrations.") and m not in (
                     "corral.integrations.otel_map", "corral.integrations.hooks"))]
    assert forbidden == []


def test_a_misspelt_server_config_key_is_refused_not_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from corral.errors import CorralError
    from corral.server import config as server_config

    data = tmp_path / "srv"
    server_config.init(data)
    text = (data / "config.toml").read_text()
    (data / "config.toml").write_text(text + "checkpoint_intervall = 5\n")
    with pytest.raises(CorralError, match="unknown key `checkpoint_intervall`"):
        server_config.load(data)
    (data / "config.toml").write_text(
        text + '[[sinks]]\nname = "soc"\ntype = "syslog"\nurl = "tcp://127.0.0.1:1"\nbatchsize = 9\n')
    with pytest.raises(CorralError, match=r"sinks\[0\]: unknown key `batchsize`"):
        server_config.load(data)
