"""The real Gemini CLI exporting its OpenTelemetry logs straight to a real `corral server run`
(Node's OTLP/JSON exporter: chunked bodies, the ingest token as its header): its
``gemini_cli.*`` events are stored mapped into corral's schema, the raw record kept beside them
(before, they were stored as generic records with no mapping)."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from corral.integrations.otel_map import env_for_agent
from tests.integrations.gemini_server import GeminiServer, say, shell
from tests.integrations.test_gemini_e2e import argv, configure, gemini  # noqa: F401 (fixture)
from tests.server.conftest import Served

pytestmark = pytest.mark.slow


def _events(served: Served) -> list[dict]:
    size = httpx.get(served.url + "/healthz").json()["size"]
    return [json.loads(httpx.get(f"{served.url}/v1/events/{seq}",
                                 headers={"Authorization": f"Bearer {served.read}"}).content)
            for seq in range(1, size + 1)]


def test_gemini_cli_exports_to_the_server_and_is_mapped(gemini, served, tmp_path):  # noqa: F811
    home = tmp_path / "home"
    configure(home)
    (home / ".gemini" / "settings.json").write_text(json.dumps(
        {"security": {"auth": {"selectedType": "gemini-api-key"}},
         "privacy": {"usageStatisticsEnabled": False}}))  # no hooks: no session here
    work = tmp_path / "work"
    work.mkdir()
    srv = GeminiServer([shell("echo hi"), say("done")]).start()
    env = {**os.environ, "HOME": str(home), "GEMINI_API_KEY": "test-key",
           "GOOGLE_GEMINI_BASE_URL": srv.root_url,
           **env_for_agent("gemini", served.url, token=served.ingest, tier=1)}
    try:
        proc = subprocess.run(argv(gemini, "say hi"), env=env, cwd=work, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    evs = _events(served)
    mapped = [e for e in evs if isinstance(e.get("record"), dict) and "event" in e["record"]]
    by_name = {e["record"]["event"]["attributes"]["agent.import.event"]: e for e in mapped}
    tool = by_name["gemini_cli.tool_call"]
    assert tool["name"] == "agent.tool.result"
    attrs = tool["record"]["event"]["attributes"]
    assert (attrs["gen_ai.tool.name"], attrs["gen_ai.tool.type"], attrs["agent.tool.success"],
            attrs["agent.decision"], attrs["agent.import.source"]) == (
        "run_shell_command", "shell", True, "approved", "gemini")
    assert tool["record"]["raw"]["attributes"]["function_name"] == "run_shell_command"
    assert by_name["gemini_cli.api_response"]["name"] == "agent.model.request"
    assert by_name["gemini_cli.user_prompt"]["name"] == "agent.user_prompt"
    assert by_name["gemini_cli.api_request"]["name"] == "agent.import.record"
    # logPrompts off: the prompt is in no mapped event (the raw record is kept as Gemini sent
    # it, and its resource carries the command line, -p prompt included)
    assert not any("say hi" in json.dumps(e["record"]["event"]) for e in mapped)
    assert "<content:" in json.dumps(tool["record"]["event"]["attributes"]["agent.import.raw"])
