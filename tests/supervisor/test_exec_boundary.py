"""The exec boundary (issue 19) with plain script agents under a real `corral run`: the agent's
own execs are decided by the rules in the supervisor (seccomp user notification in the
sandbox's init), refused ones fail with EACCES and the reason on the command's stderr and in
the journal; `all` mode decides every exec in the tree; storms and fork bombs do not wedge the
supervisor; an agent killed while an exec waits for approval leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from corral.sandbox import execnotify

pytestmark = pytest.mark.slow  # each test is a real `corral run` (still run in CI)

RULES = '''
prefix_rules(pattern=["rm"], decision="forbidden",
             justification="EB-JUSTIFY: deleting is not allowed in this repository")
prefix_rules(pattern=["touch", "asked"], decision="prompt", justification="EB-ASK")
'''.replace("prefix_rules", "prefix_rule")


@pytest.fixture
def eb(cli):
    (cli.home / "rules" / "team.rules").write_text(RULES)
    (cli.work / "x").mkdir()
    (cli.work / "x" / "keep").write_text("kept")
    return cli


def _events(cli, name: str) -> list[dict]:
    log = cli("log", "--json")
    assert log.returncode == 0, log.stderr
    return [e for line in log.stdout.splitlines() if line.strip()
            for e in [json.loads(line)] if e["name"] == name]


def _exec_decisions(cli) -> list[tuple[str, str]]:
    return [(e["attributes"]["process.command_line"], e["attributes"]["agent.decision"])
            for e in _events(cli, "agent.tool.decision")
            if e["attributes"].get("gen_ai.tool.name") == "exec"]


def test_kernel_supports_exec_notification():
    assert execnotify.kernel_support() is None  # this machine: the tests below need it


def test_script_agent_forbidden_rm_is_refused_with_the_reason_on_its_stderr(eb):
    r = eb("run", "--", "sh", "-c", "rm -r x; echo rc=$?; ls x")
    assert r.returncode == 0, r.stderr
    assert "rc=126" in r.stdout and "keep" in r.stdout  # EACCES: nothing deleted
    # the reason, on the stderr of the shell whose exec failed (what an agent reads)
    assert "corral: rules: `rm -r x` is forbidden by policy" in r.stderr, r.stderr
    assert "EB-JUSTIFY" in r.stderr
    assert (eb.work / "x" / "keep").exists()
    assert ("rm -r x", "forbidden") in _exec_decisions(eb)
    modes = [e["attributes"]["agent.exec.mode"] for e in _events(eb, "agent.exec.boundary")]
    assert modes == ["top"]  # the default, and the journal says so


def test_top_mode_lets_what_a_tool_call_starts_run_and_all_mode_decides_it(eb):
    # the agent (sh) starts `sh -c SCRIPT` as a tool call: decided as the script
    top = eb("run", "--", "sh", "-c", "sh -c 'rm -r x'; echo rc=$?")
    assert top.returncode == 0 and "rc=126" in top.stdout, top.stdout + top.stderr
    assert (eb.work / "x" / "keep").exists()
    # a program the rules allow, which itself runs rm: free in top, decided in all
    tool = eb.work / "tool.sh"
    tool.write_text("#!/bin/sh\nrm -r x\n")
    tool.chmod(0o755)
    every = eb("-c", "rules.exec_boundary=all", "run", "--", "sh", "-c", "./tool.sh; ls x")
    assert "keep" in every.stdout, every.stdout + every.stderr
    assert "is forbidden by policy" in every.stderr and "EB-JUSTIFY" in every.stderr
    assert ("rm -r x", "forbidden") in _exec_decisions(eb)
    top = eb("run", "--", "sh", "-c", "./tool.sh; echo rc=$?")
    assert "rc=0" in top.stdout, top.stdout + top.stderr
    assert not (eb.work / "x").exists()


def test_all_mode_refuses_a_command_hidden_in_inline_python(eb):
    code = 'import os; os.system("rm -rf x"); print("after", os.path.exists("x/keep"))'
    # refused at the exec of python3 (the rules read inline code) or, where they would not,
    # at the exec of the shell it starts (mode all): either way the reason is on stderr
    r = eb("-c", "rules.exec_boundary=all", "run", "--", "sh", "-c",
           f"python3 -c '{code}'; echo done")
    assert r.returncode == 0 and "done" in r.stdout, r.stderr
    assert (eb.work / "x" / "keep").exists()
    assert "is forbidden by policy" in r.stderr and "EB-JUSTIFY" in r.stderr, r.stderr
    assert any(verdict == "forbidden" for _, verdict in _exec_decisions(eb))


def test_a_command_named_in_the_environment_is_decided_from_the_exec(eb):
    """The variables an exec gets that differ from the agent's own start are passed to the
    rules (GIT_EXTERNAL_DIFF names a program git runs): a hook would never have seen them."""
    r = eb("run", "--", "sh", "-c",
           "GIT_EXTERNAL_DIFF='rm -r x' git diff; echo rc=$?; git --version")
    assert "rc=126" in r.stdout and "git version" in r.stdout, r.stdout + r.stderr
    assert "is forbidden by policy" in r.stderr and "EB-JUSTIFY" in r.stderr, r.stderr
    assert (eb.work / "x" / "keep").exists()


def test_off_decides_nothing_at_the_exec_boundary(eb):
    r = eb("-c", "rules.exec_boundary=off", "run", "--", "sh", "-c", "rm -r x; echo rc=$?")
    assert r.returncode == 0 and "rc=0" in r.stdout, r.stdout + r.stderr
    assert not (eb.work / "x").exists()
    assert [e["attributes"]["agent.exec.mode"] for e in _events(eb, "agent.exec.boundary")] \
        == ["off"]


def test_bad_config_values_are_refused(eb):
    r = eb("-c", "rules.exec_boundary=everything", "run", "--", "true")
    assert r.returncode == 2 and "rules.exec_boundary" in r.stderr, r.stderr
    r = eb("-c", "rules.exec_boundary_unavailable=ignore", "run", "--", "true")
    assert r.returncode == 2 and "exec_boundary_unavailable" in r.stderr, r.stderr


def test_requirements_can_force_the_exec_boundary(eb, tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "requirements.toml").write_text(
        '[rules]\nallowed_exec_boundary = ["all"]\nallowed_exec_boundary_unavailable = '
        '["refuse"]\n')
    r = eb("-c", "rules.exec_boundary=off", "run", "--", "true")
    assert r.returncode == 2 and "allowed_exec_boundary" in r.stderr, r.stderr
    r = eb("run", "--", "python3", "-c", 'import os; os.system("rm -r x")')
    assert "is forbidden by policy" in r.stderr, r.stderr  # all, from the requirement
    assert (eb.work / "x" / "keep").exists()


def test_exec_storm_and_fork_bomb_do_not_wedge_the_supervisor(eb):
    bomb = eb.work / "bomb.sh"
    # every level execs the script again, until the deadline (then all die out by themselves).
    # dash exits on a failed fork ("Cannot fork"): the EXIT trap still waits for the child it
    # did start, so no level leaves an orphan forking on after bomb.sh returned (which made the
    # following `rm` fail with "Cannot fork" under the pids cap, now and then, in CI)
    bomb.write_text('#!/bin/sh\ntrap wait EXIT\n[ "$(date +%s)" -lt "$END" ] || exit 0\n'
                    '"$0" & "$0" & wait\n')
    bomb.chmod(0o755)
    script = ("for i in $(seq 500); do /bin/true; done; echo storm-done; "
              "END=$(( $(date +%s) + 4 )) ./bomb.sh 2>/dev/null; echo bomb-done; rm -r x; "
              "/bin/echo alive")
    t0 = time.monotonic()
    r = eb("-c", "rules.exec_boundary=all", "-c", "sandbox.max_processes=64", "run", "--",
           "sh", "-c", script, timeout=120)
    took = time.monotonic() - t0
    assert "storm-done" in r.stdout and "bomb-done" in r.stdout, r.stdout + r.stderr[-2000:]
    assert "alive" in r.stdout, r.stdout  # still deciding after the bomb
    assert "is forbidden by policy" in r.stderr  # and still refusing
    assert (eb.work / "x" / "keep").exists()
    assert took < 90, took


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (by each process's parent, any thread may have forked)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_bytes()
            except OSError:
                continue
            parents[int(d.name)] = int(stat[stat.rindex(b")") + 2:].split()[1])
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out.update(kids)
        todo += kids
    return out


def _kill_bwrap(below: int) -> bool:
    killed = False
    for p in _descendants(below):
        try:
            if Path(f"/proc/{p}/comm").read_text().strip() == "bwrap":
                os.kill(p, signal.SIGKILL)
                killed = True
        except OSError:
            continue
    return killed


def test_agent_killed_while_an_exec_waits_for_approval_leaves_nothing_behind(eb):
    proc = eb("-c", "approvals.queue_timeout_seconds=120", "run", "--", "sh", "-c",
              "touch asked; echo never", wait=False)
    db = eb.home / "state" / "grants.db"
    deadline = time.monotonic() + 60
    pending: list[tuple[str, str]] = []
    while time.monotonic() < deadline and not pending:
        time.sleep(0.2)
        if db.exists():
            with contextlib.closing(sqlite3.connect(db)) as con, \
                    contextlib.suppress(sqlite3.OperationalError):
                pending = con.execute("SELECT id, session_id FROM pending WHERE answered IS "
                                      "NULL").fetchall()
    assert pending, "the exec never became a queued question"
    tree = _descendants(proc.pid)
    try:
        assert _kill_bwrap(proc.pid), tree  # the agent (its whole sandbox) dies mid-question
    finally:
        if proc.poll() is None and not tree:
            proc.kill()
    out, _ = proc.communicate(timeout=30)  # not after the 120 s queue timeout
    assert "never" not in out
    assert not (eb.work / "asked").exists()
    deadline = time.monotonic() + 5  # a killed process may take a moment to be reaped
    while (alive := [p for p in tree if Path(f"/proc/{p}").exists()]) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive, {p: Path(f"/proc/{p}/stat").read_text() for p in alive
                       if Path(f"/proc/{p}").exists()}
    with contextlib.closing(sqlite3.connect(db)) as con:
        left = con.execute("SELECT id, answered FROM pending").fetchall()
    assert left and all(a is not None for _, a in left), left  # cancelled, not waiting
    v = eb("log", "verify")
    assert v.returncode == 0, v.stdout + v.stderr


def test_in_process_session_leaks_no_fds_or_threads(tmp_path, monkeypatch):
    """The same, inside this process: after a run whose agent was killed mid-question, the
    supervisor's fds and threads are back where they were."""
    from corral.config import load_config
    from corral.supervisor.run import RunSession

    home = tmp_path / "home"
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "team.rules").write_text(RULES)
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    monkeypatch.setenv("CORRAL_HOME", str(home))
    cfg = load_config(work, home=home, system=tmp_path / "etc",
                      overrides=["approvals.queue_timeout_seconds=120"])
    before_fds = set(os.listdir("/proc/self/fd"))
    before_threads = {t.ident for t in threading.enumerate()}
    me = os.getpid()
    # in a whole-suite run this process already has children (session-wide servers of other
    # tests); only what this session starts counts
    before_children = _descendants(me)
    rs = RunSession(cfg, ["sh", "-c", "touch asked"], approval_policy="on-request",
                    reviewer="user", profile=None)
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(rs.run()))
    t.start()
    deadline = time.monotonic() + 60
    killed = False
    while time.monotonic() < deadline and not killed:
        time.sleep(0.2)
        db = home / "state" / "grants.db"
        if not db.exists():
            continue
        with contextlib.closing(sqlite3.connect(db)) as con, \
                contextlib.suppress(sqlite3.OperationalError):
            if not con.execute("SELECT 1 FROM pending WHERE answered IS NULL").fetchall():
                continue
        killed = _kill_bwrap(me)
    assert killed
    t.join(30)
    assert not t.is_alive()
    time.sleep(0.5)  # the sandbox's cleanup thread
    leaked = set(os.listdir("/proc/self/fd")) - before_fds
    leaked = {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked, sorted(os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1]
                              for fd in leaked)
    extra = [t.name for t in threading.enumerate() if t.ident not in before_threads
             and t.name.startswith("corral-exec")]
    assert not extra, extra
    assert not _descendants(me) - before_children


# A kernel without seccomp user notification, for real: corral runs under a filter that makes
# seccomp(2) itself fail with ENOSYS (bwrap and the sandbox's init load their filters through
# prctl, so the sandbox is unchanged; only the exec boundary's kernel half is missing).
NO_NOTIF = '''
import errno, os, sys
import pyseccomp as sc
f = sc.SyscallFilter(sc.ALLOW)
f.add_rule(sc.ERRNO(errno.ENOSYS), "seccomp")
f.load()
os.execv(sys.executable, [sys.executable, "-m", "corral", *sys.argv[1:]])
'''


def _without_notification(cli, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CORRAL_HOME=str(cli.home),
               CORRAL_SYSTEM_DIR=str(cli.home.parent / "etc"))
    return subprocess.run([sys.executable, "-c", NO_NOTIF, *args], cwd=cli.work, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def test_unavailable_refuses_by_default_and_says_so(eb):
    r = _without_notification(eb, "run", "--", "sh", "-c", "rm -r x")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "exec boundary" in r.stderr and "cannot be enforced here" in r.stderr, r.stderr
    assert "refused" in r.stderr and "exec_boundary_unavailable" in r.stderr
    assert (eb.work / "x" / "keep").exists()  # nothing ran
    doctor = _without_notification(eb, "doctor", "--json")
    check = [c for c in json.loads(doctor.stdout) if c["name"] == "exec boundary"]
    assert check and not check[0]["ok"] and "corral run refuses" in check[0]["detail"], check


def test_unavailable_with_warn_runs_without_it_and_says_so(eb):
    r = _without_notification(eb, "-c", "rules.exec_boundary_unavailable=warn", "run", "--",
                              "sh", "-c", "rm -r x; echo rc=$?")
    assert r.returncode == 0 and "rc=0" in r.stdout, r.stdout + r.stderr
    assert "running WITHOUT it" in r.stderr, r.stderr  # never silently weaker
    boundary = _events(eb, "agent.exec.boundary")
    assert [e["attributes"]["agent.exec.mode"] for e in boundary] == ["off"]
    assert "seccomp" in boundary[0]["attributes"]["agent.exec.problem"]


def test_doctor_reports_kernel_support(eb):
    r = eb("doctor", "--json")
    check = [c for c in json.loads(r.stdout) if c["name"] == "exec boundary"]
    assert check and check[0]["ok"], check
    assert 'rules.exec_boundary = "top"' in check[0]["detail"]


def test_a_prompt_waits_for_the_person_at_corrals_terminal(eb):
    """No hooks: the exec of `touch asked` waits while corral asks on its own terminal; the
    person denies, the exec fails, and the agent's command says why."""
    from tests.ptyterm import on_a_pty

    env = dict(os.environ, CORRAL_HOME=str(eb.home), CORRAL_SYSTEM_DIR=str(eb.home.parent / "etc"),
               TERM="xterm-256color", COLUMNS="300")
    proc, screen = on_a_pty([sys.executable, "-m", "corral", "run", "--", "sh", "-c",
                             "touch asked; echo rc=$?"], eb.work, env)
    try:
        assert screen.pump(b"allow", proc, 60), screen.out.decode(errors="replace")
        assert not (eb.work / "asked").exists()  # waiting: nothing ran yet
        os.write(screen.master, b"d\n")
        screen.pump(b"\0never\0", proc, 10)
    finally:
        assert proc.wait(30) == 0
        os.close(screen.master)
    drawn = screen.out.decode("utf-8", "replace")
    assert "rc=126" in drawn and "denied by the user" in drawn, drawn[-2000:]
    assert not (eb.work / "asked").exists()
    assert ("touch asked", "denied") in _exec_decisions(eb)


HOSTILE_EXEC_SOCKET = '''
import os, socket
print("exists", os.path.exists("/dev/corral/exec.sock"))
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("/dev/corral/exec.sock")
    s.sendall(b"forged listener")
    print("CONNECTED")
except OSError as e:
    print("refused", e.errno)
print("status", os.waitstatus_to_exitcode(os.system("rm -r x")))
'''


def test_the_agent_cannot_reach_the_exec_socket_and_the_boundary_holds(eb):
    """A hostile caller inside the sandbox: the supervisor's exec socket is mounted there, but
    only the sandbox's init holds its one connection; the agent's own connect is refused and
    the boundary keeps deciding its execs afterwards."""
    (eb.work / "hostile.py").write_text(HOSTILE_EXEC_SOCKET)
    r = eb("-c", "rules.exec_boundary=all", "run", "--", "python3", "hostile.py")
    assert r.returncode == 0, r.stderr
    assert "exists True" in r.stdout, r.stdout  # the socket is there to try
    assert "CONNECTED" not in r.stdout and "refused" in r.stdout, r.stdout
    # the shell os.system starts is refused at its exec (system() reports 127), nothing deleted
    assert "status 127" in r.stdout and (eb.work / "x" / "keep").exists(), r.stdout + r.stderr
    assert "`sh -c 'rm -r x'` is forbidden by policy" in r.stdout + r.stderr


SCRIPT_AGENT = '''
import subprocess
try:
    subprocess.run(["python3", "tool.py"], check=False)
    print("tool started")
except PermissionError as e:
    print("tool refused", e.errno)
'''


def test_a_script_agents_children_are_its_tool_calls_whatever_their_program(eb):
    """`corral run -- python3 agent.py`: the agent is its first process, not every python3;
    a python3 it starts is a tool call, decided like any other."""
    (eb.home / "rules" / "tool.rules").write_text(
        'prefix_rule(pattern=["python3", "tool.py"], decision="forbidden", '
        'justification="EB-TOOL")\n')
    (eb.work / "agent.py").write_text(SCRIPT_AGENT)
    (eb.work / "tool.py").write_text("open('made', 'w').write('x')\n")
    r = eb("run", "--", "python3", "agent.py")
    assert r.returncode == 0, r.stderr
    assert "tool refused 13" in r.stdout, r.stdout + r.stderr
    assert "EB-TOOL" in r.stderr and not (eb.work / "made").exists()
    assert ("python3 tool.py", "forbidden") in _exec_decisions(eb)


LAUNCHER = '#!/bin/sh\n"$(dirname "$0")/../vendor/codex" "$@"\necho launcher-done\n'
NATIVE = ('#!/bin/sh\necho native-ran\n./tools/codex nested; echo nested-rc=$?\n'
          'rm -r x; echo rm-rc=$?\n')


def test_a_known_agents_launcher_starts_its_own_binary_and_only_that(eb):
    """Codex's launcher (node) starting its native `codex` is the agent starting; a `codex`
    that the native binary (the agent) starts is a tool call, decided."""
    (eb.home / "rules" / "nested.rules").write_text(
        'prefix_rule(pattern=["codex", "nested"], decision="forbidden", '
        'justification="EB-NESTED")\n')
    for rel, text in (("bin/codex", LAUNCHER), ("vendor/codex", NATIVE),
                      ("tools/codex", "#!/bin/sh\ntouch nested-ran\n")):
        f = eb.work / rel
        f.parent.mkdir(exist_ok=True)
        f.write_text(text)
        f.chmod(0o755)
    r = eb("run", "--", "./bin/codex")
    assert "native-ran" in r.stdout and "launcher-done" in r.stdout, r.stdout + r.stderr
    assert "nested-rc=126" in r.stdout and "EB-NESTED" in r.stderr, r.stdout + r.stderr
    assert not (eb.work / "nested-ran").exists()
    assert "rm-rc=126" in r.stdout and (eb.work / "x" / "keep").exists()


def test_an_allowed_exec_is_decided_again_once_the_policy_changes(tmp_path, monkeypatch,
                                                                  capfd):
    """Execs the rules allowed are remembered; a rule added to the session's policy mid-run
    (as an amendment would be) makes the same exec be decided again, and refused."""
    from corral.config import load_config
    from corral.rules import load_policy
    from corral.supervisor import execboundary
    from corral.supervisor.run import RunSession

    home = tmp_path / "home"
    (home / "rules").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    monkeypatch.setenv("CORRAL_HOME", str(home))
    cfg = load_config(work, home=home, system=tmp_path / "etc")
    later = tmp_path / "later.rules"
    later.write_text('prefix_rule(pattern=["echo", "same"], decision="forbidden", '
                     'justification="EB-LATER")\n')
    added = load_policy(cfg, extra_files=[str(later)], include_configured=False)
    boundaries: list[execboundary.ExecBoundary] = []
    real_init = execboundary.ExecBoundary.__init__

    def keep(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        boundaries.append(self)

    monkeypatch.setattr(execboundary.ExecBoundary, "__init__", keep)
    script = ("/bin/echo same; /bin/echo same; touch first; while [ ! -e go ]; do "
              "/bin/sleep 0.1; done; /bin/echo same; echo rc=$?")
    rs = RunSession(cfg, ["sh", "-c", script], approval_policy="on-request", reviewer="user",
                    profile=None)
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(rs.run()))
    t.start()
    deadline = time.monotonic() + 60
    while not (work / "first").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert boundaries and (work / "first").exists()
    policy = boundaries[0].pipeline.policy
    for rules in added.rules_by_program.values():
        for rule in rules:
            policy.add_rule(rule)
    (work / "go").touch()
    t.join(60)
    assert result == [0]
    out, err = capfd.readouterr()
    assert out.count("same") == 2 and "rc=126" in out, out + err
    assert "EB-LATER" in err, err
