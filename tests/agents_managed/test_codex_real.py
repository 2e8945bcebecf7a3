"""The real Codex CLI (0.169) reads the files `corral agents apply` generates, from
/etc/codex in a private mount namespace: it refuses the sandbox mode and approval policy the
requirements forbid, logs out a sign-in of the wrong kind, runs corral's managed hook without
being asked to trust it, and refuses a command corral's forbidden rule names."""

from __future__ import annotations

import json
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
from tests.integrations.model_server import ModelServer, message, shell_call

pytestmark = pytest.mark.slow

LOCKED = ADMIN.replace('["untrusted", "on-request"]', '["untrusted"]').replace(
    '[":read-only", ":workspace"]', '[":read-only"]')
# (no deny-read globs: with them Codex allows no danger-full-access, whatever the list says)
OPEN = ADMIN.replace('[filesystem]\ndeny_read = ["/etc/shadow"]\n', "").replace('["untrusted", "on-request"]', '["untrusted", "on-request", "never"]') \
    .replace('[":read-only", ":workspace"]', '[":read-only", ":workspace", ":danger-full-access"]') \
    + '''
[[rules.prefix_rules]]
pattern = ["touch", "forbidden.txt"]
decision = "forbidden"
justification = "the admin forbids this file"
'''


def codex_home(tmp_path: Path, srv: ModelServer) -> Path:
    home = tmp_path / "codex-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        'model = "test-model"\nmodel_provider = "scripted"\napproval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\n'
        f'[model_providers.scripted]\nname = "scripted"\nbase_url = "{srv.base_url}"\n'
        'wire_api = "responses"\nenv_key = "SCRIPTED_KEY"\nrequest_max_retries = 0\n'
        'stream_max_retries = 0\n')
    return home


def run_codex(root: Path, tmp_path: Path, work: Path, turns: list, env: dict[str, str],
              ) -> tuple[subprocess.CompletedProcess[str], ModelServer]:
    srv = ModelServer(turns).start()
    # Codex makes its sandbox helper (an alias of itself) in CODEX_HOME, but never under the
    # temporary directory, and tmp_path is under /tmp: point TMPDIR elsewhere.
    codex_tmp = tmp_path / "codex-tmp"
    codex_tmp.mkdir(exist_ok=True)
    try:
        argv = [str(tool("codex")), "exec", "--skip-git-repo-check", "-s", "danger-full-access",
                "-C", str(work), "do the task"]
        proc = subprocess.run(in_private_etc(root, argv), capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL, env={
                                  **env, "CODEX_HOME": str(codex_home(tmp_path, srv)),
                                  "SCRIPTED_KEY": "k", "TMPDIR": str(codex_tmp)})
    finally:
        srv.stop()
    return proc, srv


def test_codex_refuses_what_the_generated_requirements_forbid(tmp_path, secret_service):
    """(Credentials go to the keyring, so Codex gets a Secret Service on a private bus.)"""
    env = {**os.environ, **secret_service}
    work = tmp_path / "work"
    work.mkdir()
    turns = [shell_call("touch made.txt", "c0"), message("done")]
    # control: the same run without managed files creates the file
    bare = tmp_path / "bare-root"
    proc, _ = run_codex(bare, tmp_path, work, turns, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (work / "made.txt").exists()
    (work / "made.txt").unlink()

    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, LOCKED, hooks={}), ("codex",))
    proc, _ = run_codex(root, tmp_path, work, turns, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    err = proc.stderr
    assert "invalid value for `sandbox_mode`: `DangerFullAccess` is not in the allowed set " \
        "[ReadOnly] (set by /etc/codex/requirements.toml)" in err
    assert "invalid value for `approval_policy`: `Never` is not in the allowed set " \
        "[UnlessTrusted] (set by /etc/codex/requirements.toml)" in err
    assert "sandbox: read-only" in err and "approval: untrusted" in err
    assert not (work / "made.txt").exists()


def codex_status(root: Path, home: Path, env: dict[str, str] | None = None) -> str:
    p = subprocess.run(in_private_etc(root, [str(tool("codex")), "login", "status"]),
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env={**os.environ, **(env or {}), "CODEX_HOME": str(home)})
    return p.stdout + p.stderr


def test_codex_logs_out_a_sign_in_of_the_wrong_kind(tmp_path):
    """managed_config.toml forces ChatGPT sign-in: a stored API key no longer counts. (The
    file store here, so that the stored key is read at all.)"""
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": "sk-test-0123",
                                                "auth_mode": "apikey"}))
    assert "API key configured" in codex_status(tmp_path / "bare-root", home)
    file_store = '[credentials]\nstore = "file"\n'
    root = tmp_path / "root"
    unforced = ADMIN[:ADMIN.index("[login.codex]")]
    apply_to(root, inputs_for(tmp_path, unforced, file_store, hooks={}), ("codex",))
    assert "API key configured" in codex_status(root, home)
    apply_to(root, inputs_for(tmp_path, ADMIN, file_store, hooks={}), ("codex",))
    out = codex_status(root, home)
    assert "Not logged in" in out and "API key configured" not in out


def test_codex_keyring_store_without_a_keyring(tmp_path):
    """cli_auth_credentials_store = "keyring" holds: with no Secret Service Codex refuses to
    load credentials, and the stored API key file is not used."""
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": "sk-test-0123",
                                                "auth_mode": "apikey"}))
    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, "", hooks={}), ("codex",))
    out = codex_status(root, home, {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"})
    assert "API key configured" not in out, out
    assert "failed to load CLI auth from keyring" in out, out
    assert "API key configured" in codex_status(tmp_path / "bare-root", home)  # the control


def test_codex_runs_the_managed_hook_and_the_requirement_rule(tmp_path, session,
                                                             secret_service):
    """corral's hook from requirements.toml (no user hooks, no trust flag) asks the
    supervisor about every command; the admin's forbidden rule refuses inside Codex."""
    (session.work / "build").mkdir()
    (session.work / "build" / "keep.txt").write_text("precious")
    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, OPEN, hooks=hooks_for(("codex",))), ("codex",))
    proc, srv = run_codex(root, tmp_path, session.work, [
        shell_call("echo hi > out.txt", "c0"),
        shell_call("rm -rf build", "c1"),
        shell_call("touch forbidden.txt", "c2"),
        message("done")], {**session.env, **secret_service})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (session.work / "out.txt").read_text() == "hi\n"
    assert (session.work / "build" / "keep.txt").read_text() == "precious"
    assert not (session.work / "forbidden.txt").exists()
    outputs = "\n".join(srv.tool_outputs())  # each request repeats the earlier outputs
    assert "Command blocked by PreToolUse hook: corral: rules: `bash -lc 'rm -rf build'` is " \
        "forbidden by policy" in outputs  # corral's managed hook, asked without trust
    assert "`/bin/bash -lc 'touch forbidden.txt'` rejected: the admin forbids this " \
        "file" in outputs  # Codex's own requirements rule
    assert "hook: SessionStart Completed" in proc.stderr
    decisions = [(e.attributes["agent.decision"], e.attributes.get("process.command_line"))
                 for e in session.events() if e.name == "agent.tool.decision"]
    assert ("auto_approved", "bash -lc 'echo hi > out.txt'") in decisions
    assert ("forbidden", "bash -lc 'rm -rf build'") in decisions


def test_telemetry_stays_with_corral_run_unless_the_server_is_asked_for(tmp_path, session,
                                                                        secret_service):
    """Why agents.telemetry defaults to "sessions": managed_config.toml outranks the
    `-c otel.exporter=...` corral run gives Codex. With the default files Codex's export
    reaches the session's receiver; with "server" it goes to the managed endpoint instead."""
    from corral.integrations.otel_map import args_for_agent
    from corral.integrations.otlp_receiver import Receiver

    server, run = Receiver(session.tel, token=""), Receiver(session.tel, token="")
    server_url, run_url = server.start(), run.start()
    try:
        counts = {}
        for mode in ("sessions", "server"):
            root = tmp_path / f"root-{mode}"
            apply_to(root, inputs_for(tmp_path / mode, OPEN + f'[agents]\ntelemetry = "{mode}"\n',
                                      f'[server]\nurl = "{server_url}"\n', hooks={}), ("codex",))
            srv = ModelServer([shell_call("echo hi", "c0"), message("done")]).start()
            codex_tmp = tmp_path / "codex-tmp"
            codex_tmp.mkdir(exist_ok=True)
            before = (server.accepted, run.accepted)
            try:
                argv = [str(tool("codex")), "exec", "--skip-git-repo-check",
                        *args_for_agent("codex", run_url, tier=1), "-C", str(session.work), "hi"]
                proc = subprocess.run(in_private_etc(root, argv), capture_output=True, text=True,
                                      timeout=120, stdin=subprocess.DEVNULL, env={
                                          **os.environ, **secret_service, "SCRIPTED_KEY": "k",
                                          "CODEX_HOME": str(codex_home(tmp_path / mode, srv)),
                                          "TMPDIR": str(codex_tmp)})
            finally:
                srv.stop()
            assert proc.returncode == 0, proc.stderr[-2000:]
            counts[mode] = (server.accepted - before[0], run.accepted - before[1])
    finally:
        server.stop()
        run.stop()
    assert counts["sessions"][0] == 0 and counts["sessions"][1] > 0, counts
    assert counts["server"][0] > 0 and counts["server"][1] == 0, counts
