"""The real Claude Code CLI (2.1.328) reads the managed-settings.json `corral agents apply`
generates, from /etc/claude-code in a private mount namespace: it runs corral's managed hook
(nothing installed in the user's settings), refuses a command the generated deny rules name,
and refuses a sign-in other than the forced one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.agents_managed.conftest import (
    ADMIN,
    apply_to,
    hooks_for,
    in_private_etc,
    inputs_for,
    tool,
)
from tests.integrations.model_server import AnthropicServer, bash_use, text

pytestmark = pytest.mark.slow

UNFORCED = ADMIN[:ADMIN.index("[login.codex]")] + '''
[[rules.prefix_rules]]
pattern = ["touch", "denied-by-claude.txt"]
decision = "forbidden"
justification = "the admin forbids this file"

[[rules.prefix_rules]]
pattern = ["touch", "my (file).txt"]
decision = "forbidden"
'''


def run_claude(root: Path, tmp_path: Path, work: Path, turns: list, env: dict[str, str],
               ) -> tuple[subprocess.CompletedProcess[str], AnthropicServer]:
    srv = AnthropicServer(turns).start()
    home = tmp_path / "user-home"
    home.mkdir(exist_ok=True)
    try:
        argv = [str(tool("claude")), "-p", "--output-format", "json", "--model",
                "claude-sonnet-4-5", "do the task"]
        proc = subprocess.run(in_private_etc(root, argv), cwd=work, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL, env={
                                  **env, "HOME": str(home), "ANTHROPIC_BASE_URL": srv.root_url,
                                  "ANTHROPIC_API_KEY": "sk-test-key", "DISABLE_AUTOUPDATER": "1",
                                  "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
    finally:
        srv.stop()
    return proc, srv


def test_claude_runs_the_managed_hooks_and_the_deny_rules(tmp_path, session):
    (session.work / "build").mkdir()
    (session.work / "build" / "keep.txt").write_text("precious")
    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, UNFORCED, hooks=hooks_for(("claude-code",))),
             ("claude-code",))
    proc, srv = run_claude(root, tmp_path, session.work, [
        bash_use("echo hi > out.txt", "toolu_0"),
        bash_use("rm -rf build", "toolu_1"),
        bash_use("touch denied-by-claude.txt also.txt", "toolu_2"),  # a prefix match
        bash_use("touch 'my (file).txt'", "toolu_3"),  # quoted and escaped in the rule
        text("done")], session.env)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    outputs = "\n".join(srv.tool_outputs())  # each request repeats the earlier outputs
    assert (session.work / "out.txt").read_text() == "hi\n"
    assert (session.work / "build" / "keep.txt").read_text() == "precious"
    assert not (session.work / "denied-by-claude.txt").exists()
    assert not (session.work / "also.txt").exists()
    assert not (session.work / "my (file).txt").exists()
    # corral's managed hook (nothing in the user's settings) refused with corral's reason
    assert "PreToolUse:Bash hook error: corral: rules: `bash -lc 'rm -rf build'` is forbidden " \
        "by policy" in outputs
    # Claude Code's own deny rule, generated from the admin's forbidden rule
    assert "Permission to use Bash with command touch denied-by-claude.txt also.txt has " \
        "been denied." in outputs
    assert "Permission to use Bash with command touch 'my (file).txt' has been denied." \
        in outputs
    decisions = [(e.attributes["agent.decision"], e.attributes.get("process.command_line"))
                 for e in session.events() if e.name == "agent.tool.decision"]
    assert ("auto_approved", "bash -lc 'echo hi > out.txt'") in decisions
    assert ("forbidden", "bash -lc 'rm -rf build'") in decisions


def test_claude_refuses_a_sign_in_other_than_the_forced_one(tmp_path):
    """forceLoginMethod = claudeai (and the pinned organisation): an API key is not it."""
    work = tmp_path / "work"
    work.mkdir()
    bare, _ = run_claude(tmp_path / "bare-root", tmp_path, work, [text("hello")],
                         dict(os.environ))
    assert bare.returncode == 0, (bare.stdout[-2000:], bare.stderr[-2000:])
    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, ADMIN, hooks={}), ("claude-code",))
    proc, srv = run_claude(root, tmp_path, work, [text("hello")], dict(os.environ))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "This machine's managed settings require a first-party login: they pin Anthropic " \
        "sign-ins to your organization (forceLoginOrgUUID)" in out, out[-2000:]
    assert srv.requests == []  # nothing reached the model


def test_claude_exports_telemetry_with_the_token_from_the_headers_helper(tmp_path, session):
    """The managed env points Claude Code's OTel export at the corral server, and
    otelHeadersHelper (`corral agents otel-headers`) hands it the ingest token stored for
    that server: the token is in neither the managed file nor the environment. (A corral
    OTLP receiver with a bearer token stands in for the server.)"""
    import sys

    from corral.integrations.otlp_receiver import Receiver
    from tests.agents_managed.conftest import corral

    rx = Receiver(session.tel)
    endpoint = rx.start()
    try:
        home = tmp_path / "user-corral"
        home.mkdir()
        (home / "config.toml").write_text(f'[server]\nurl = "{endpoint}"\n'
                                          '[credentials]\nstore = "file"\n')
        env = {**os.environ, "CORRAL_HOME": str(home)}
        stored = subprocess.run([sys.executable, "-m", "corral", "login", "--ingest-token",
                                 "--server", endpoint], input=rx.token + "\n", env=env,
                                capture_output=True, text=True, timeout=60)
        assert stored.returncode == 0, stored.stderr
        helper = corral("agents", "otel-headers", env=env)
        assert helper.stdout.strip() == f'{{"Authorization": "Bearer {rx.token}"}}', helper.stderr
        root = tmp_path / "root"
        inputs = inputs_for(tmp_path, UNFORCED + '[agents]\ntelemetry = "server"\n',
                            f'[server]\nurl = "{endpoint}"\n', hooks={},
                            otel_headers_command=f"{sys.executable} -I -m corral agents "
                            "otel-headers")
        apply_to(root, inputs, ("claude-code",))
        managed = (root / "etc/claude-code/managed-settings.json").read_text()
        assert rx.token not in managed
        proc, _ = run_claude(root, tmp_path, session.work, [bash_use("echo hi", "toolu_0"),
                                                            text("done")], env)
        assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
        session.tel.flush(10)
    finally:
        rx.stop()
    assert rx.accepted > 0 and rx.rejected == 0
    imported = {e.attributes.get("agent.import.event") for e in session.events()}
    assert "tool_result" in imported or "api_request" in imported, imported


def test_telemetry_stays_with_corral_run_unless_the_server_is_asked_for(tmp_path, session):
    """Why agents.telemetry defaults to "sessions": Claude Code's managed env outranks the
    environment corral run gives it. With the default file its export reaches the session's
    receiver; with "server" it goes to the managed endpoint instead."""
    from corral.integrations.otel_map import env_for_agent
    from corral.integrations.otlp_receiver import Receiver

    server, run = Receiver(session.tel, token=""), Receiver(session.tel, token="")
    server_url, run_url = server.start(), run.start()
    try:
        counts = {}
        for mode in ("sessions", "server"):
            root = tmp_path / f"root-{mode}"
            apply_to(root, inputs_for(tmp_path / mode, UNFORCED +
                                      f'[agents]\ntelemetry = "{mode}"\n',
                                      f'[server]\nurl = "{server_url}"\n', hooks={}),
                     ("claude-code",))
            before = (server.accepted, run.accepted)
            proc, _ = run_claude(root, tmp_path, session.work, [text("hello")], {
                **os.environ, **env_for_agent("claude-code", run_url, tier=1)})
            assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
            counts[mode] = (server.accepted - before[0], run.accepted - before[1])
    finally:
        server.stop()
        run.stop()
    assert counts["sessions"][0] == 0 and counts["sessions"][1] > 0, counts
    assert counts["server"][0] > 0 and counts["server"][1] == 0, counts
