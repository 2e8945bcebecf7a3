"""Hostile MCP traffic, both ways: malformed JSON-RPC, huge messages, a server that never
answers or dies. Each is one clear error to the agent (and one line on stderr), never a hang.
The gateway runs in-process between real pipes and a real (hostile) server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.mcpgateway.gateway import Gateway, Verdict
from corral.mcpgateway.wire import FdChannel, WireError, parse

HOSTILE = Path(__file__).with_name("hostile_server.py")


class AllowAll:
    """The pipeline is not under test here (test_gateway.py has it): every call allowed."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def decide(self, tool: str, arguments: str, annotations: Any,
               method: str = "tools/call") -> Verdict:
        return Verdict(tool != "refused_tool", "corral: rules: refused for the test", "c-1")

    def tools_seen(self, tools: dict[str, str], complete: bool) -> None:
        pass

    def record(self, verdict: Verdict, tool: str, arguments: str, outcome: str,
               duration_ms: float, error: str | None, method: str = "tools/call") -> None:
        self.records.append((tool, outcome))


class Rig:
    """Pipes for the agent's side, the hostile server as a process, the gateway on a thread."""

    def __init__(self, mode: str, *, timeout: float = 2.0, max_bytes: int = 1 << 20) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HOSTILE), mode],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        to_gw_r, self.to_gw = os.pipe()
        self.from_gw, from_gw_w = os.pipe()
        self.lines: list[str] = []
        self.decider = AllowAll()
        assert self.proc.stdin and self.proc.stdout

        async def main() -> None:
            agent = FdChannel(to_gw_r, from_gw_w, "the agent", max_bytes=max_bytes)
            upstream = FdChannel(self.proc.stdout.fileno(),  # type: ignore[union-attr]
                                 self.proc.stdin.fileno(),  # type: ignore[union-attr]
                                 "MCP server 'h'", max_bytes=max_bytes)
            gw = Gateway("h", agent, upstream, self.decider, timeout=timeout,
                         log=self.lines.append, exit_status=self.proc.poll)
            await gw.run()
            os.close(from_gw_w)

        self.thread = threading.Thread(target=anyio.run, args=(main,), daemon=True)
        self.thread.start()
        self.reader = os.fdopen(self.from_gw, "rb")

    def send(self, data: bytes | dict[str, Any]) -> None:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode() + b"\n"
        os.write(self.to_gw, raw)

    def answer(self, limit: float = 15.0) -> dict[str, Any]:
        box: list[bytes] = []
        t = threading.Thread(target=lambda: box.append(self.reader.readline()), daemon=True)
        t.start()
        t.join(limit)
        assert box, f"no answer within {limit} s (the gateway hung)"
        assert box[0], "the gateway closed the stream"
        doc: dict[str, Any] = json.loads(box[0])
        return doc

    def records(self, n: int) -> list[tuple[str, str]]:
        """The first ``n`` call records (written off the event loop, soon after the answer)."""
        import time

        deadline = time.monotonic() + 10
        while len(self.decider.records) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.decider.records

    def close(self) -> None:
        os.close(self.to_gw)
        self.thread.join(15)
        assert not self.thread.is_alive(), "the gateway did not end with the agent's stream"
        self.proc.kill()
        self.proc.wait()


def call(rid: Any, tool: str = "t") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
            "params": {"name": tool, "arguments": {}}}


@pytest.fixture
def rig_factory():
    rigs: list[Rig] = []

    def make(mode: str, **kw: Any) -> Rig:
        rigs.append(Rig(mode, **kw))
        return rigs[-1]

    yield make
    for r in rigs:
        r.close()


def test_malformed_json_from_the_agent_is_one_parse_error(rig_factory) -> None:
    rig = rig_factory("echo")
    rig.send(b'{"jsonrpc": "2.0", "id": 1, "method": \n')
    err = rig.answer()
    assert err["id"] is None and err["error"]["code"] == -32700
    assert err["error"]["message"] == "corral: mcp: the agent sent a line that is not JSON (38 bytes)"
    rig.send(call(2))  # the gateway carries on
    assert rig.answer()["result"]["content"][0]["text"] == "ok"
    assert len(rig.lines) == 1


def test_json_that_is_not_json_rpc_gets_its_id_back(rig_factory) -> None:
    rig = rig_factory("echo")
    rig.send({"id": 7, "method": "tools/call"})  # no "jsonrpc": "2.0"
    err = rig.answer()
    assert err["id"] == 7 and err["error"]["code"] == -32600
    assert "not a JSON-RPC 2.0 message" in err["error"]["message"]


def test_a_huge_message_from_the_agent_is_dropped_with_its_id(rig_factory) -> None:
    rig = rig_factory("echo", max_bytes=64 * 1024)
    big = call(9)
    big["params"]["arguments"] = {"blob": "y" * (1 << 20)}
    rig.send(json.dumps(big).encode() + b"\n")
    err = rig.answer()
    assert err["id"] == 9 and "more than 65536 bytes; it was dropped" in err["error"]["message"]
    rig.send(call(10))
    assert rig.answer()["id"] == 10


def test_a_server_that_sends_garbage(rig_factory) -> None:
    rig = rig_factory("garbage", timeout=1.0)
    rig.send(call(1))
    res = rig.answer()  # garbage has no id: the request ends at its deadline, as one error
    assert res["id"] == 1 and res["result"]["isError"] is True
    assert "did not answer tools/call t within 1 s" in res["result"]["content"][0]["text"]
    assert any("MCP server 'h' sent a line that is not JSON" in line for line in rig.lines)


def test_a_server_that_answers_json_but_not_json_rpc(rig_factory) -> None:
    rig = rig_factory("invalid")
    rig.send(call(4))
    res = rig.answer()
    assert res["id"] == 4 and res["result"]["isError"] is True
    assert "sent an unusable answer" in res["result"]["content"][0]["text"]
    assert rig.records(1) == [("t", "server_error")]


def test_a_huge_answer_from_the_server(rig_factory) -> None:
    rig = rig_factory("huge", max_bytes=1 << 20)
    rig.send(call(5))
    res = rig.answer()
    assert res["id"] == 5 and res["result"]["isError"] is True
    assert "more than 1048576 bytes" in res["result"]["content"][0]["text"]


def test_a_server_that_never_answers(rig_factory) -> None:
    rig = rig_factory("silent", timeout=1.0)
    rig.send(call(6))
    rig.send({"jsonrpc": "2.0", "id": 7, "method": "resources/list"})
    rig.send({"jsonrpc": "2.0", "id": 8, "method": "resources/read",
              "params": {"uri": "note://x"}})
    got = {r["id"]: r for r in (rig.answer(), rig.answer(), rig.answer())}
    assert got[6]["result"]["isError"] is True  # the model reads a tool error
    assert got[7]["error"]["code"] == -32603 and "did not answer resources/list" in \
        got[7]["error"]["message"]
    assert got[8]["error"]["code"] == -32603 and "did not answer resources/read note://x" in \
        got[8]["error"]["message"]
    assert sorted(rig.records(2)) == [("note://x", "timeout"), ("t", "timeout")]


def test_a_server_that_dies_mid_call(rig_factory) -> None:
    rig = rig_factory("exit")
    rig.send(call(8))
    res = rig.answer()
    assert res["result"]["isError"] is True
    assert "closed the connection (exit status 3)" in res["result"]["content"][0]["text"]


def test_a_refused_call_never_reaches_the_server(rig_factory) -> None:
    rig = rig_factory("exit")  # would exit at the first tools/call it sees
    rig.send(call(1, "refused_tool"))
    res = rig.answer()
    assert res["result"] == {"content": [{"type": "text", "text":
                                          "corral: rules: refused for the test"}],
                             "isError": True}
    rig.send(call(2))
    assert "exit status 3" in rig.answer()["result"]["content"][0]["text"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)
messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
     "id": st.integers() | st.text(max_size=8) | st.none(),
     "method": st.sampled_from(["tools/call", "tools/list", "resources/read", "prompts/get",
                                "x", 3])},
    optional={"params": json_values})


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values.map(lambda v: json.dumps(v).encode()),
                 messages.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
def test_any_line_parses_to_a_message_or_one_error(line: bytes) -> None:
    got = parse(line, "the agent")
    assert not isinstance(got, Exception) or isinstance(got, WireError)
    if isinstance(got, WireError):
        assert got.code in (-32700, -32600) and got.message


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(messages, min_size=1, max_size=6))
def test_every_agent_request_gets_exactly_one_answer(rig_factory, batch) -> None:
    """Valid or not, each request with an id is answered once: by the server, or by the
    gateway with the reason."""
    rig = rig_factory("echo")
    for i, m in enumerate(batch):
        rig.send({**m, "id": 1000 + i})  # distinct ids: a reused id is its own error
    expected = len(batch)
    seen = [rig.answer()["id"] for _ in range(expected)]
    assert sorted(seen) == [1000 + i for i in range(len(batch))]
