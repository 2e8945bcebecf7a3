"""Every documented flag of `corral exec`, `corral run`, `trust`/`untrust` and `approve`/`grants`
changes what happens: each is run as a user would (real `python -m corral` subprocesses)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.ptyterm import on_a_terminal

EXIT_DENIED = 241


def _events(cli, name: str) -> list[dict]:
    r = cli("log", "--json")
    return [e for e in map(json.loads, r.stdout.splitlines()) if e["name"] == name]


# -- corral exec ---------------------------------------------------------------------------------

def test_exec_intent_is_what_the_reviewer_weighs(cli):
    (cli.home / "rules" / "team.rules").write_text(
        'prefix_rule(pattern=["npm", "publish"], decision="prompt")\n')
    base = ("exec", "--approval-policy", "untrusted", "--reviewer", "auto_review")
    denied = cli(*base, "--", "npm", "publish")
    assert denied.returncode == EXIT_DENIED, denied.stderr
    asked = cli(*base, "--intent", "publish the package to npm", "--", "npm", "publish")
    # approved: npm itself runs (and fails on the empty workspace with its own status)
    assert asked.returncode not in (240, 241, 242), asked.stderr
    assert "package.json" in asked.stderr
    last = _events(cli, "agent.tool.decision")[-1]["attributes"]
    assert last["agent.decision"] == "auto_approved"
    assert last["agent.decision.source"] == "automated_reviewer"


def test_exec_cwd_flag_runs_there(cli):
    sub = cli.work / "sub" / "dir"
    sub.mkdir(parents=True)
    r = cli("exec", "-C", str(sub), "--", "pwd")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(sub.resolve())
    r = cli("exec", "--cwd", "sub", "--", "pwd")
    assert r.stdout.strip() == str((cli.work / "sub").resolve())


def test_exec_profile_flag_changes_the_boundary(cli):
    script = ["sh", "-c", "echo hi > made.txt"]
    r = cli("exec", "-P", ":read-only", "--", *script)
    assert r.returncode != 0 and not (cli.work / "made.txt").exists()
    assert "Read-only file system" in r.stderr
    r = cli("exec", "--profile", ":workspace", "--", *script)
    assert r.returncode == 0, r.stderr
    assert (cli.work / "made.txt").read_text() == "hi\n"


def test_exec_verbose_prints_the_decision_and_its_source(cli):
    quiet = cli("exec", "--", "true")
    assert quiet.returncode == 0 and "corral: decision:" not in quiet.stderr
    loud = cli("exec", "-v", "--", "true")
    assert loud.returncode == 0
    line = next(x for x in loud.stderr.splitlines() if x.startswith("corral: decision:"))
    assert "allow" in line and "auto_approved" in line


# -- corral run ----------------------------------------------------------------------------------

def test_run_flags_choose_workspace_profile_policy_and_reviewer(cli, tmp_path: Path):
    ws = tmp_path / "elsewhere"
    ws.mkdir()
    agent = ["sh", "-c", "pwd; touch probe && echo wrote || echo refused"]
    r = cli("run", "-C", str(ws), "-P", ":read-only", "--approval-policy", "never",
            "--reviewer", "auto_review", "--", *agent)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == str(ws.resolve()) and lines[-1] == "refused"
    assert not (ws / "probe").exists()
    start = _events(cli, "agent.session.start")[-1]["attributes"]
    summary = json.loads(start["agent.policy.summary"])
    assert (summary["approval_policy"], summary["reviewer"], summary["profile"]) == (
        "never", "auto_review", ":read-only")
    assert start["process.working_directory"] == str(ws.resolve())

    r = cli("run", "--cwd", str(ws), "--", *agent)  # defaults: workspace writable, on-request
    assert r.stdout.splitlines()[-1] == "wrote" and (ws / "probe").exists()
    summary = json.loads(_events(cli, "agent.session.start")[-1]["attributes"][
        "agent.policy.summary"])
    assert summary["approval_policy"] == "on-request" and summary["reviewer"] == "user"


def test_run_terminal_flag_gives_or_withholds_the_terminal(cli):
    """--terminal: the agent owns the terminal (its /dev/tty opens, corral says it will not
    prompt there); --no-terminal: the agent is detached from it (no controlling terminal)."""
    env = dict(os.environ, CORRAL_HOME=str(cli.home),
               CORRAL_SYSTEM_DIR=str(cli.home.parent / "etc"))
    probe = ["--", "sh", "-c", "(: > /dev/tty) 2>/dev/null && echo has-ctty || echo no-ctty"]
    argv = [sys.executable, "-m", "corral", "run"]
    rc, text = on_a_terminal([*argv, "--terminal", *probe], cli.work, env)
    assert rc == 0, text
    assert "has-ctty" in text and "the agent has this terminal" in text
    rc, text = on_a_terminal([*argv, "--no-terminal", *probe], cli.work, env)
    assert rc == 0, text
    assert "no-ctty" in text and "the agent has this terminal" not in text


# -- trust / untrust PATH ------------------------------------------------------------------------

def test_trust_and_untrust_take_a_path(cli, tmp_path: Path):
    proj = tmp_path / "proj"
    (proj / ".corral").mkdir(parents=True)
    (proj / ".corral" / "config.toml").write_text('approval_policy = "untrusted"\n')

    def policy() -> str:
        r = subprocess.run([sys.executable, "-m", "corral", "config", "explain",
                            "approval_policy"], cwd=proj, capture_output=True, text=True,
                           env=dict(os.environ, CORRAL_HOME=str(cli.home),
                                    CORRAL_SYSTEM_DIR=str(cli.home.parent / "etc")))
        return r.stdout

    assert 'approval_policy = "on-request"' in policy()  # not trusted: ignored
    r = cli("trust", str(proj))
    assert r.returncode == 0 and f"{proj.resolve()}: trusted" in r.stdout
    assert 'approval_policy = "untrusted"' in policy()
    r = cli("untrust", str(proj))
    assert r.returncode == 0
    assert 'approval_policy = "on-request"' in policy()


# -- approve / grants --db -----------------------------------------------------------------------

def test_approve_and_grants_use_the_database_named_by_db(cli, tmp_path: Path):
    other = tmp_path / "elsewhere" / "grants.db"
    r = cli("grants", "add", "--db", str(other), "--scope", "project", "--project",
            str(cli.work), "make", "deploy")
    assert r.returncode == 0, r.stderr
    there = cli("grants", "list", "--db", str(other))
    assert "make deploy" in there.stdout, there.stdout + there.stderr
    assert "make deploy" not in cli("grants", "list").stdout  # the default store is untouched
    r = cli("approve", "--db", str(other), "--json")
    assert r.returncode == 0 and r.stdout == ""  # nothing pending in that store
    # the grant in the named store answers the question there, and nowhere else
    (cli.home / "rules" / "team.rules").write_text(
        'prefix_rule(pattern=["make", "deploy"], decision="prompt")\n')
    assert cli("exec", "--", "make", "deploy").returncode == 242
    assert other.exists() and sqlite3.connect(other).execute(
        "SELECT count(*) FROM sqlite_master").fetchone()[0] > 0


# -- the typer-free exec path --------------------------------------------------------------------

def test_exec_fast_path_behaves_like_the_typer_command(cli):
    """`corral exec` is served without typer (an agent pays its start on every action); run
    through the Typer app directly, every case must give the same status, stdout and stderr."""
    (cli.work / "sub").mkdir()
    (cli.home / "rules" / "team.rules").write_text(
        'prefix_rule(pattern=["git", "push"], decision="forbidden", justification="no")\n')
    env = dict(os.environ, CORRAL_HOME=str(cli.home),
               CORRAL_SYSTEM_DIR=str(cli.home.parent / "etc"))
    typer_side = ("import sys; sys.argv = ['corral', *sys.argv[1:]]; "
                  "from corral.cli.app import main; main()")
    cases = [
        ["exec", "-v", "--", "sh", "-c", "echo hi; echo err >&2; exit 3"],
        ["exec", "--approval-policy", "never", "--", "git", "push", "--force"],
        ["exec", "-C", "sub", "--", "pwd"],
        ["exec", "--cwd=sub", "--intent", "list files", "--verbose", "ls"],
        ["exec", "--", "git", "push"],
        ["-c", "approval_policy=never", "exec", "--", "git", "push", "--force", "origin"],
        ["exec", "-C", "missing-dir", "--", "true"],
        ["exec", "--approval-policy", "sometimes", "--", "true"],
    ]
    for args in cases:
        fast = subprocess.run([sys.executable, "-m", "corral", *args], cwd=cli.work, env=env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        full = subprocess.run([sys.executable, "-c", typer_side, *args], cwd=cli.work, env=env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert (fast.returncode, fast.stdout, fast.stderr) == (
            full.returncode, full.stdout, full.stderr), args
    # the fast path ends with os._exit after the atexit handlers: the probe is one of them
    probe = ("import atexit, sys; sys.argv = ['corral', 'exec', '--', 'true']\n"
             "atexit.register(lambda: print('typer' in sys.modules, 'click' in sys.modules, "
             "file=sys.stderr))\n"
             "from corral.cli.entry import main\nmain()\n")
    r = subprocess.run([sys.executable, "-c", probe], cwd=cli.work, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stderr.strip().splitlines()[-1] == "False False", r.stderr


def test_exec_fast_path_leaves_out_the_imports_it_does_not_need(cli):
    """What each `corral exec` no longer pays for (ms each, measured in benchmarks/README.md):
    typing, hashlib (OpenSSL's libcrypto), cryptography's Python modules (the signing key comes
    from the Rust binding), queue and getpass. The action still runs and is journaled, signed."""
    env = dict(os.environ, CORRAL_HOME=str(cli.home),
               CORRAL_SYSTEM_DIR=str(cli.home.parent / "etc"))
    assert cli("exec", "--", "true").returncode == 0  # the first one makes the signing key
    heavy = ("typing", "hashlib", "cryptography.hazmat.primitives", "queue", "getpass")
    probe = ("import atexit, sys; sys.argv = ['corral', 'exec', '--approval-policy', 'never', "
             "'--', 'true']\n"
             f"atexit.register(lambda: print([m for m in {heavy!r} if m in sys.modules], "
             "'cryptography.hazmat.bindings._rust' in sys.modules, file=sys.stderr))\n"
             "from corral.cli.entry import main\nmain()\n")
    r = subprocess.run([sys.executable, "-c", probe], cwd=cli.work, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "[] True", r.stderr  # signed at close
    assert cli("log", "verify").returncode == 0
