"""The compliance API over real HTTP against a real `corral server run`: the event cursor
(paging while ingest continues), compliance log files, scoped tokens, access records and rate
limits."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.server.compliance_helpers import (
    auth,
    mixed_journal,
    page_all,
    read_token,
    server_with,
    start,
)
from tests.server.helpers import corral, forward_request, post, token

PAGE_EVENTS = 20_000  # CI size; benchmarks/bench_compliance.py pages through 100,000


def test_cursor_paging_while_ingest_continues_loses_and_repeats_nothing(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data, read_rate=10_000.0, read_burst=10_000)
    ing, rd = token(data, "ingest"), read_token(data, "--content")
    j = mixed_journal(tmp_path, PAGE_EVENTS)
    srv = start(data)
    try:
        assert post(srv.url, forward_request(j, 1, 2000), ing).status_code == 200
        done = threading.Event()
        errors: list[str] = []

        def feed() -> None:
            for first in range(2001, PAGE_EVENTS + 1, 1000):
                r = post(srv.url, forward_request(j, first, first + 999), ing)
                if r.status_code != 200:
                    errors.append(r.text)
            done.set()

        t = threading.Thread(target=feed)
        t.start()
        seen: list[str] = []
        seqs: list[int] = []
        cur = None
        pages = 0
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            while True:
                finished = done.is_set()  # read before the page: the page then sees it all
                params: dict[str, Any] = {"limit": 1000}
                if cur:
                    params["after"] = cur
                r = c.get("/v1/events", params=params, headers=auth(rd))
                assert r.status_code == 200, r.text
                doc = r.json()
                pages += 1
                for e in doc["data"]:
                    seqs.append(e["seq"])
                    if e["name"] != "server.access":
                        seen.append(e["id"])
                cur = doc["next_cursor"]
                assert (r.headers["corral-next-cursor"], r.headers["corral-has-more"]) == (
                    cur, json.dumps(doc["has_more"]))  # for clients that pipeline pages
                if finished and not doc["has_more"]:
                    break
                if not doc["data"]:
                    time.sleep(0.02)
        t.join()
        assert not errors
        assert pages > PAGE_EVENTS // 1000  # paged, interleaved with ingest
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
        assert len(seen) == len(set(seen)) == PAGE_EVENTS
        assert set(seen) == {r[1] for r in j.rows()}
    finally:
        srv.stop()


def test_filters_by_name_session_user_device_and_time(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data)
    ing, rd = token(data, "ingest"), read_token(data, "--content")
    a = mixed_journal(tmp_path, 30, session="sa", user="alice")
    (tmp_path / "b").mkdir()
    b = mixed_journal(tmp_path / "b", 12, session="sb", user="bob")
    srv = start(data)
    try:
        assert post(srv.url, forward_request(a), ing).status_code == 200
        assert post(srv.url, forward_request(b), ing).status_code == 200
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            def ids(**params: Any) -> list[str]:
                return [e["id"] for d in page_all(c, rd, limit=7, **params) for e in d["data"]]

            assert len(ids(name="agent.tool.decision")) == 10 + 4
            assert ids(session_id="sb") == [f"ev-sb-{i:08d}" for i in range(12)]
            assert len(ids(user="alice")) == 30
            assert ids(user="alice", name="agent.user_prompt") == [
                f"ev-sa-{i:08d}" for i in range(1, 30, 3)]
            assert len(ids(device=b.id)) == 12
            # time_unix_nano of event i is T0 + i*1000 ns
            assert ids(session_id="sa", since="1700000000000005000",
                       until="1700000000000008000") == [f"ev-sa-{i:08d}" for i in (5, 6, 7)]
            assert ids(name=["agent.user_prompt", "agent.network.decision"],
                       session_id="sb") == [f"ev-sb-{i:08d}" for i in range(12) if i % 3]
            assert ids(session_id="nobody") == []
            assert ids(since="2023-11-14T22:13:20.000005Z", until="2023-11-14T22:13:20.000006Z",
                       session_id="sa") == ["ev-sa-00000005"]
    finally:
        srv.stop()


def test_compliance_files_are_immutable_per_type_and_window(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data, compliance_window=1, compliance_grace=0.1)
    ing, rd = token(data, "ingest"), read_token(data, "--content")
    j = mixed_journal(tmp_path, 30)
    srv = start(data)
    try:
        assert post(srv.url, forward_request(j, 1, 12), ing).status_code == 200
        time.sleep(1.1)
        assert post(srv.url, forward_request(j, 13, 30), ing).status_code == 200
        with httpx.Client(base_url=srv.url, timeout=30, headers=auth(rd)) as c:
            files: list[dict[str, Any]] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = c.get("/v1/compliance/logs", params={"limit": 1000}).json()["data"]
                files = [f for f in got if f["event_type"] != "server.access"]
                if sum(f["count"] for f in files) == 30:
                    break
                time.sleep(0.2)
            assert sum(f["count"] for f in files) == 30
            types = {f["event_type"] for f in files}
            assert types == {"agent.tool.decision", "agent.user_prompt",
                             "agent.network.decision"}
            assert len({f["start_time"] for f in files}) >= 2  # two windows, cut separately
            ids_seen: list[str] = []
            for f in files:
                r1 = c.get(f"/v1/compliance/logs/{f['id']}")
                r2 = c.get(f"/v1/compliance/logs/{f['id']}")
                assert r1.status_code == 200, r1.text
                assert r1.content == r2.content
                assert hashlib.sha256(r1.content).hexdigest() == f["sha256"]
                assert r1.headers["etag"] == f'"{f["sha256"]}"'
                r3 = c.get(f"/v1/compliance/logs/{f['id']}",
                           headers={"If-None-Match": r1.headers["etag"]})
                assert r3.status_code == 304
                lines = r1.content.splitlines()
                assert len(lines) == f["count"]
                for ln in lines:
                    doc = json.loads(ln)
                    leaf = c.get(f"/v1/events/{doc['seq']}").content
                    assert doc["leaf_hash"] == hashlib.sha256(b"\0" + leaf).hexdigest()
                    assert doc["event"]["name"] == f["event_type"]
                    ids_seen.append(doc["event"]["id"])
            assert sorted(ids_seen) == sorted(r[1] for r in j.rows())
            # the next page is the same call with after=last_end_time; no file twice
            listed: list[str] = []
            after = None
            while True:
                params: dict[str, Any] = {"limit": 2}
                if after:
                    params["after"] = after
                doc = c.get("/v1/compliance/logs", params=params).json()
                listed += [f["id"] for f in doc["data"]]
                if not doc["has_more"]:
                    break
                after = doc["last_end_time"]
            assert len(listed) == len(set(listed))
            assert {f["id"] for f in files} <= set(listed)
            one = c.get("/v1/compliance/logs",
                        params={"event_type": "agent.user_prompt"}).json()["data"]
            assert {f["event_type"] for f in one} == {"agent.user_prompt"}
            assert sum(f["count"] for f in one) == 10
            assert c.get("/v1/compliance/logs/cl_nope").status_code == 404
    finally:
        srv.stop()


def test_scoped_tokens_content_tier_and_access_records(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data)
    ing = token(data, "ingest")
    full = read_token(data, "--content", name="ediscovery")
    meta = read_token(data, name="soc")
    net = read_token(data, "--event-type", "agent.network.decision", name="netops")
    j = mixed_journal(tmp_path, 9)
    srv = start(data)
    try:
        assert post(srv.url, forward_request(j), ing).status_code == 200
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            prompts = c.get("/v1/events", params={"name": "agent.user_prompt"},
                            headers=auth(full)).json()["data"]
            assert len(prompts) == 3
            assert all("please fix bug" in e["record"] for e in prompts)
            red = c.get("/v1/events", params={"name": "agent.user_prompt"},
                        headers=auth(meta)).json()["data"]
            assert [e["id"] for e in red] == [e["id"] for e in prompts]
            for e in red:
                assert e["redacted"] is True
                assert "please fix bug" not in json.dumps(e)
                attrs = json.loads(e["record"])["attributes"]
                text = f"please fix bug {int(e['id'][-8:])}".encode()
                assert attrs["prompt.sha256"] == hashlib.sha256(text).hexdigest()
                assert attrs["prompt.length"] == len(text)
            # decisions hold no content: served as stored
            dec = c.get("/v1/events", params={"name": "agent.tool.decision"},
                        headers=auth(meta)).json()["data"]
            assert dec and all("redacted" not in e for e in dec)
            # a token narrowed to network decisions sees only those
            only = c.get("/v1/events", headers=auth(net)).json()["data"]
            assert {e["name"] for e in only} == {"agent.network.decision"}
            r = c.get("/v1/events", params={"name": "agent.user_prompt"}, headers=auth(net))
            assert r.status_code == 403
            assert r.text == "corral: server: token netops may not read agent.user_prompt events\n"
            # an ingest token may not read
            assert c.get("/v1/events", headers=auth(ing)).status_code == 403
            assert c.get("/v1/events").status_code == 401
            # every read above is in the log, with token name, endpoint, filters and count
            acc = [e for d in page_all(c, full, name="server.access", limit=100)
                   for e in d["data"]]
            recs = [e["record"] for e in acc]
            assert {"token": "soc", "endpoint": "/v1/events", "count": 3} .items() <= {
                k: v for k, v in recs[1].items() if k in ("token", "endpoint", "count")
            }.items()
            assert recs[1]["filters"]["name"] == ["agent.user_prompt"]
            assert [r["token"] for r in recs[:4]] == ["ediscovery", "soc", "soc", "netops"]
            assert recs[3]["count"] == 3
            # the page that listed the access records was itself recorded afterwards
            again = c.get("/v1/events", params={"name": "server.access", "limit": 1000},
                          headers=auth(full)).json()["data"]
            assert again[-1]["record"]["filters"]["name"] == ["server.access"]
        ver = corral("server", "verify", "--data", str(data), check=False)
        assert ver.returncode == 0, ver.stdout  # access records are ordinary, chained events
    finally:
        srv.stop()


def test_rate_limit_per_token_answers_429_with_retry_after(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data, read_rate=0.5, read_burst=3)
    a, b = read_token(data, name="a"), read_token(data, name="b")
    srv = start(data)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            codes = [c.get("/v1/events", headers=auth(a)).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            r = c.get("/v1/events", headers=auth(a))
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert r.text.startswith("corral: server: token a is over its rate limit")
            assert c.get("/v1/events", headers=auth(b)).status_code == 200  # per token
            time.sleep(2.1)
            assert c.get("/v1/events", headers=auth(a)).status_code == 200
    finally:
        srv.stop()
