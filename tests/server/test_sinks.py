"""Push sinks from a real `corral server run` into receivers the tests start: syslog (RFC 5424
over TCP and TLS, JSON and CEF), Splunk HEC, a file drop. A receiver that is down catches up
and loses nothing; a server restart resumes from the durable cursor."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.server.compliance_helpers import auth, mixed_journal, read_token, start
from tests.server.helpers import forward_request, free_port, init_server, post, token
from tests.server.sink_receivers import HecReceiver, SyslogReceiver, self_signed

RFC5424 = re.compile(rb"<(\d{1,3})>1 (\S+) (\S+) corral - (\S+) - (.*)", re.S)


def _server(data: Path, sinks: str, extra: str = "") -> None:
    init_server(data)
    cfg = data / "config.toml"
    cfg.write_text(cfg.read_text() + extra + sinks)


def _wait(cond: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_syslog_tcp_down_then_up_catches_up_and_resumes_after_restart(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "srv"
    _server(data, f'[[sinks]]\nname = "soc"\ntype = "syslog"\nurl = "tcp://127.0.0.1:{port}"\n'
                  'batch = 100\ninterval = 0.1\nmax_backoff = 0.3\n')
    ing = token(data, "ingest")
    j = mixed_journal(tmp_path, 400)
    srv = start(data)
    recv: SyslogReceiver | None = None
    try:
        assert post(srv.url, forward_request(j, 1, 300), ing).status_code == 200
        time.sleep(1.0)  # the receiver is down: the sink retries from its cursor
        assert not (data / "sinks" / "soc.cursor").exists()
        recv = SyslogReceiver(port)
        r = recv
        _wait(lambda: len(r.messages) >= 300)
        srv.stop()
        srv = start(data)  # the cursor survives the restart
        assert post(srv.url, forward_request(j, 301, 400), ing).status_code == 200
        _wait(lambda: len(r.messages) >= 400)
        time.sleep(0.5)
    finally:
        srv.stop()
        if recv:
            recv.stop()
    ids = []
    for m in recv.messages:
        hit = RFC5424.fullmatch(m)
        assert hit, m[:200]
        pri, ts, host, msgid, msg = hit.groups()
        assert int(pri) in (16 * 8 + 4, 16 * 8 + 6) and host == b"laptop"
        assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", ts)
        ev = json.loads(msg)
        assert msgid == ev["name"].encode()[:32]
        ids.append(ev["id"])
    assert len(ids) == len(set(ids)) == 400  # none lost, none twice
    assert set(ids) == {r[1] for r in j.rows()}


def test_syslog_tls_with_cef_payload(tmp_path: Path) -> None:
    port = free_port()
    crt, key = self_signed(tmp_path)
    data = tmp_path / "srv"
    _server(data, f'[[sinks]]\nname = "arcsight"\ntype = "syslog"\n'
                  f'url = "tls://127.0.0.1:{port}"\nca_file = "{crt}"\npayload = "cef"\n'
                  'event_types = ["agent.tool.decision", "agent.network.decision"]\n'
                  'interval = 0.1\n')
    ing = token(data, "ingest")
    recv = SyslogReceiver(port, (crt, key))
    srv = start(data)
    try:
        assert post(srv.url, forward_request(mixed_journal(tmp_path, 30)), ing).status_code == 200
        _wait(lambda: len(recv.messages) >= 20)
        time.sleep(0.3)
    finally:
        srv.stop()
        recv.stop()
    assert len(recv.messages) == 20  # 10 decisions, 10 network decisions: no prompts
    cefs = [RFC5424.fullmatch(m).group(5).decode() for m in recv.messages]  # type: ignore[union-attr]
    net = [c for c in cefs if "|agent.network.decision|" in c]
    assert len(net) == 10
    assert net[0].startswith("CEF:0|corral|corral|1|agent.network.decision|"
                             "agent.network.decision|3|")
    assert "act=denied" in net[0] and "dhost=example.com" in net[0]
    dec = next(c for c in cefs if "|agent.tool.decision|" in c)
    assert "suser=dev" in dec and "cs1Label=session cs1=s1" in dec
    assert re.search(r"externalId=ev-s1-\d{8}", dec)


def test_hec_sink_survives_503s_and_sends_ocsf(tmp_path: Path) -> None:
    port = free_port()
    recv = HecReceiver(port, "hec-secret")
    recv.down = True
    data = tmp_path / "srv"
    _server(data, f'[[sinks]]\nname = "splunk"\ntype = "hec"\nurl = "{recv.url}"\n'
                  'token_env = "CORRAL_TEST_HEC"\npayload = "ocsf"\nbatch = 50\n'
                  'interval = 0.1\nmax_backoff = 0.3\n')
    ing = token(data, "ingest")
    import os

    os.environ["CORRAL_TEST_HEC"] = "hec-secret"
    try:
        srv = start(data)
    finally:
        del os.environ["CORRAL_TEST_HEC"]
    j = mixed_journal(tmp_path, 120)
    try:
        assert post(srv.url, forward_request(j), ing).status_code == 200
        time.sleep(1.0)
        assert recv.events == []
        recv.down = False
        _wait(lambda: len(recv.events) >= 120)
        time.sleep(0.3)
    finally:
        srv.stop()
        recv.stop()
    ids = [e["event"]["metadata"]["uid"] for e in recv.events]
    assert len(ids) == len(set(ids)) == 120
    assert set(ids) == {r[1] for r in j.rows()}
    e = recv.events[0]
    assert e["sourcetype"] == "corral:ocsf" and e["host"] == "laptop"
    assert e["event"]["class_uid"] == 6003 and e["time"] == 1_700_000_000.0


def test_file_drop_copies_compliance_files_byte_for_byte(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    data = tmp_path / "srv"
    _server(data, f'[[sinks]]\nname = "archive"\ntype = "file"\ndirectory = "{drop}"\n'
                  'interval = 0.1\n', "compliance_window = 1\ncompliance_grace = 0.1\n")
    ing, rd = token(data, "ingest"), read_token(data, "--content")
    srv = start(data)
    try:
        assert post(srv.url, forward_request(mixed_journal(tmp_path, 30)), ing).status_code == 200
        _wait(lambda: len(list(drop.glob("*.jsonl"))) >= 3)
        with httpx.Client(base_url=srv.url, headers=auth(rd)) as c:
            files = c.get("/v1/compliance/logs").json()["data"]
            for f in files:
                body = (drop / f"{f['id']}.jsonl").read_bytes()
                assert hashlib.sha256(body).hexdigest() == f["sha256"]
    finally:
        srv.stop()
    assert not list(drop.glob(".*"))  # no temp files left behind
