"""``corral sandbox`` as a user runs it (real subprocesses of ``python -m corral``), plus the
refusal / weaker-mode behaviour of the launcher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral.errors import CorralError
from corral.sandbox import Sandbox, build_plan
from tests.sandbox.conftest import Box


def test_exit_status_and_stdio_pass_through(box: Box) -> None:
    r = box.cli("sandbox", "--", "sh", "-c", "cat; echo out; echo err >&2; exit 7",
             stdin="from-stdin\n")
    assert r.returncode == 7
    assert r.stdout == "from-stdin\nout\n"
    assert r.stderr == "err\n"


def test_options_after_command_belong_to_the_command(box: Box) -> None:
    r = box.cli("sandbox", "ls", "-a", "--profile")
    assert r.returncode != 0  # ls rejects --profile: it was not taken as ours
    assert "ls" in r.stderr


def test_violation_line_for_protected_path(box: Box) -> None:
    (box.ws / ".git" / "hooks").mkdir(parents=True)
    r = box.cli("sandbox", "--", "sh", "-c", "echo x > .git/hooks/pre-push")
    assert r.returncode != 0
    assert ("corral: sandbox: blocked write to .git/hooks/pre-push "
            "(protected path inside writable root)") in r.stderr.splitlines()


def test_violation_line_for_write_outside(box: Box) -> None:
    r = box.cli("sandbox", "--", "sh", "-c", "touch /usr/corral-test-x")
    assert r.returncode != 0
    assert any(line.startswith("corral: sandbox: blocked write to ")
               and "outside the writable roots of profile :workspace" in line
               for line in r.stderr.splitlines()), r.stderr


def test_writable_root_flag_and_read_only_profile(box: Box) -> None:
    r = box.cli("sandbox", "--writable-root", str(box.outside), "--", "touch",
             f"{box.outside}/ok")
    assert r.returncode == 0, r.stderr
    r = box.cli("sandbox", "--profile", ":read-only", "--", "touch", "x")
    assert r.returncode != 0 and not (box.ws / "x").exists()


def test_domain_flags_need_proxy_mode_and_valid_patterns(box: Box) -> None:
    for args, word in ((["--allow-domain", "example.com"], "--network proxy"),
                       (["--network", "proxy", "--allow-domain", "ex*ample.com"], "pattern")):
        r = box.cli("sandbox", *args, "--", "true")
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("corral: "), r.stderr
        assert word in lines[0]
    r = box.cli("sandbox", "--network", "wifi", "--", "true")
    assert r.returncode == 2 and "none, proxy or host" in r.stderr


def test_profile_forbidden_by_requirements(box: Box, tmp_path: Path) -> None:
    system = tmp_path / "etc"
    system.mkdir()
    (system / "requirements.toml").write_text(
        'allowed_permission_profiles = [":read-only", ":workspace"]\n')
    r = box.cli("sandbox", "--profile", ":danger-full-access", "--", "true", system=system)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "danger-full-access" in lines[0]
    assert str(system / "requirements.toml") in lines[0]


def test_user_profile_from_config(box: Box) -> None:
    (box.corral_home / "config.toml").write_text(
        'default_permissions = "tight"\n'
        '[permissions.tight]\nextends = ":workspace"\n'
        f'filesystem = {{ "{box.ws}/vendor" = "read" }}\n')
    (box.ws / "vendor").mkdir()
    r = box.cli("sandbox", "--", "sh", "-c", "touch vendor/x; touch y")
    assert not (box.ws / "vendor" / "x").exists()
    assert (box.ws / "y").exists(), r.stderr


def test_env_policy_from_config(box: Box) -> None:
    (box.corral_home / "config.toml").write_text(
        '[shell_environment_policy]\ninherit = "core"\nset = { FOO = "bar" }\n')
    r = box.cli("sandbox", "--", "env", extra_env={"EDITOR": "vi", "MY_TOKEN": "t0k3n"})
    assert r.returncode == 0, r.stderr
    assert "FOO=bar" in r.stdout and "CORRAL_SANDBOX=1" in r.stdout
    assert "EDITOR=" not in r.stdout and "t0k3n" not in r.stdout


def test_missing_bwrap_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap anywhere
    monkeypatch.setattr(Sandbox, "_probe_cache", {})
    plan = build_plan(":workspace", tmp_path, bwrap=str(tmp_path / "no-bwrap"))
    with pytest.raises(CorralError) as exc:
        Sandbox(plan)
    line = exc.value.line()
    assert line.startswith("corral: sandbox: refusing to run unsandboxed: bubblewrap (bwrap) "
                           "is not installed")
    assert "apt-get install bubblewrap" in line and "allow_weaker" in line


def test_weaker_mode_must_be_named_and_is_recorded(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(Sandbox, "_probe_cache", {})
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    plan = build_plan(":workspace", tmp_path, bwrap=str(fake))
    with pytest.raises(CorralError, match="cannot create user namespaces: bwrap: setting up uid"):
        Sandbox(plan)
    plan = build_plan(":workspace", tmp_path, bwrap=str(fake), allow_weaker=["unsandboxed"])
    sb = Sandbox(plan)
    assert sb.weaker_mode == "unsandboxed"
    out = tmp_path / "o"
    res = sb.run(["sh", "-c", f"echo $CORRAL_SANDBOX > {out}"], tmp_path)
    assert res.weaker_mode == "unsandboxed" and res.returncode == 0
    assert out.read_text() == "0\n"  # not sandboxed: the marker says so


def test_danger_full_access_runs_without_bwrap(box: Box) -> None:
    r = box.sh("echo x > " + str(box.outside / "f"), profile=":danger-full-access")
    assert r.returncode == 0 and (box.outside / "f").exists()


@pytest.mark.parametrize(("argv", "expected"), [
    (["sandbox", "--", "true"], ({}, {}, ["true"])),
    (["-c", "a=1", "--profile", "ci", "sandbox", "-P", ":read-only", "--network=host", "ls",
      "-la", "--profile"],
     ({"config": ["a=1"], "profile": ["ci"]}, {"profile": [":read-only"], "network": ["host"]},
      ["ls", "-la", "--profile"])),
    (["sandbox", "--writable-root", "/a", "--writable-root", "/b", "--", "--weird"],
     ({}, {"writable_root": ["/a", "/b"]}, ["--weird"])),
    (["sandbox", "--help"], None),
    (["sandbox", "--unknown", "x", "--", "true"], None),
    (["sandbox", "--"], None),
    (["config", "explain"], None),
    (["--verbose", "sandbox", "--", "true"], None),
    (["sandbox", "--network"], None),
])
def test_fast_path_parser(argv: list[str], expected: object) -> None:
    from corral.cli.sandbox_fast import parse

    assert parse(argv) == expected


def test_fast_path_runs_like_the_full_cli(box: Box) -> None:
    """The fast path and the Typer ``sandbox`` command, each run on its own, behave alike.

    ``corral`` itself dispatches to the fast path, so the Typer side is run through
    ``corral.cli.app`` directly (the fast path must decline nothing here: it returns a status).
    """
    code = ("import sys; from corral.cli.sandbox_fast import main; "
            "s = main(sys.argv[1:]); assert s is not None, 'fast path declined'; sys.exit(s)")
    typer_code = ("import sys; sys.argv = ['corral', *sys.argv[1:]]; "
                  "from corral.cli.app import main; main()")
    env = dict(os.environ, CORRAL_HOME=str(box.corral_home), HOME=str(box.home),
               CORRAL_SYSTEM_DIR=str(box.home / "no-system"))
    env.pop("TMPDIR", None)
    (box.ws / ".git" / "hooks").mkdir(parents=True)
    for args in (["sandbox", "--", "sh", "-c", "cat; echo x > .git/hooks/h; exit 5"],
                 ["sandbox", "--deny-domain", "example.com", "--", "true"]):
        fast = subprocess.run([sys.executable, "-c", code, *args], cwd=box.ws, env=env,
                              input="in\n", capture_output=True, text=True, timeout=60)
        full = subprocess.run([sys.executable, "-c", typer_code, *args], cwd=box.ws, env=env,
                              input="in\n", capture_output=True, text=True, timeout=60)
        assert (fast.returncode, fast.stdout, fast.stderr) == (
            full.returncode, full.stdout, full.stderr)
    assert full.returncode == 2


def test_ctrl_c_ends_sandbox_without_traceback(box: Box) -> None:
    import signal
    import time

    env = dict(os.environ, CORRAL_HOME=str(box.corral_home), HOME=str(box.home),
               CORRAL_SYSTEM_DIR=str(box.home / "no-system"))
    p = subprocess.Popen([sys.executable, "-m", "corral", "sandbox", "--", "sleep", "30"],
                         cwd=box.ws, env=env, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    time.sleep(1.5)
    os.killpg(p.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    _, err = p.communicate(timeout=10)
    assert p.returncode == 130
    assert "Traceback" not in err


def test_violation_line_for_blocked_network(box: Box) -> None:
    r = box.cli("sandbox", "--", sys.executable, "-c",
             "import socket; socket.create_connection(('127.0.0.1', 9), 1)")
    assert r.returncode == 1
    assert "corral: sandbox: blocked network access (network mode 'none' of profile " \
           ":workspace; use --network host or a profile that allows it)" in r.stderr.splitlines()


def test_no_seccomp_weaker_mode(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    """libseccomp missing (simulated at the seam): refuse unless 'no-seccomp' is accepted, and
    then still run inside bubblewrap (filesystem and namespaces enforced)."""
    from corral.sandbox import launcher

    def broken(*a: object, **k: object) -> bytes:
        raise CorralError("sandbox", "seccomp unavailable: cannot load libseccomp",
                          "apt-get install libseccomp2")

    monkeypatch.setattr(launcher, "build_bpf", broken)
    with pytest.raises(CorralError, match="refusing to run without the seccomp filter"):
        box.sandbox()
    sb = box.sandbox(allow_weaker=["no-seccomp"])
    assert sb.weaker_mode == "no-seccomp"
    r = box.sh(f"grep Seccomp: /proc/self/status; echo x > {box.outside}/f",
               allow_weaker=["no-seccomp"])
    assert "Seccomp:\t0" in r.stdout and "Read-only file system" in r.stderr
    assert not (box.outside / "f").exists()
