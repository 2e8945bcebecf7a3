"""sandbox.max_processes (issue 21.7d): a fork bomb inside the sandbox is bounded, the host's
process table is not touched beyond the cap, and a cap that cannot be enforced is said so (or
refused when the user asked for it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from corral.errors import CorralError
from corral.sandbox import pidcap
from tests.sandbox.conftest import Box, kill_at_once

FORKS = r"""
import os, sys, time
n = 0
for _ in range(int(sys.argv[1])):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    n += 1
print(n, flush=True)
"""


def _host_tasks() -> int:
    return sum(1 for d in os.listdir("/proc") if d.isdigit())


def _in_namespace_of(pid: int) -> int:
    """Tasks in the pid namespace of ``pid``'s child (the sandbox's), counted from the host."""
    try:
        child = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0]
        ns = os.readlink(f"/proc/{child}/ns/pid")
    except (OSError, IndexError):
        return 0
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                n += os.readlink(f"/proc/{d}/ns/pid") == ns
    return n


def test_a_fork_bomb_is_bounded_and_the_host_stays_fine(box: Box) -> None:
    assert pidcap.probe().kind, pidcap.probe().why_not  # this host enforces a cap
    before = _host_tasks()
    sb = box.sandbox(max_processes=64)
    bomb = sb.spawn(["bash", "-c", "b() { b | b & }; b; sleep 30"], box.ws,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True)
    try:
        peak = host_peak = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            peak = max(peak, _in_namespace_of(bomb.pid))
            host_peak = max(host_peak, _host_tasks() - before)
            time.sleep(0.05)
        cg = bomb.corral_cgroup
        if cg is not None:
            assert int(Path(cg, "pids.current").read_text()) <= 64
        assert 30 < peak <= 64, peak  # it did fork, up to the cap
        assert host_peak < 64 + 40, host_peak  # (other work on the host adds some)
        # and the host can still start processes
        assert subprocess.run(["true"], timeout=10).returncode == 0
    finally:
        bomb.send_signal(signal.SIGKILL)
        bomb.wait(10)
    sb.close()
    time.sleep(0.3)
    assert _host_tasks() - before < 30
    if cg is not None:
        assert not os.path.exists(cg)  # removed after the run


def test_the_cap_is_on_by_default_and_0_turns_it_off(box: Box) -> None:
    out = box.py(FORKS.replace("int(sys.argv[1])", "300"))
    assert out.returncode == 0 and 250 < int(out.stdout) <= 300  # below the default 4096
    capped = box.py(FORKS.replace("int(sys.argv[1])", "300"), max_processes=40)
    assert 30 <= int(capped.stdout) < 40, capped.stdout
    sb = box.sandbox()
    proc = sb.spawn(["true"], box.ws)
    cg = proc.corral_cgroup
    if cg is not None:
        assert Path(cg, "pids.max").read_text().strip() == str(pidcap.DEFAULT_MAX)
    proc.wait()
    off = box.sandbox(max_processes=0).spawn(["true"], box.ws)
    assert off.corral_cgroup is None and "prlimit" not in " ".join(off.args)
    off.wait()


def test_an_unenforceable_cap_is_refused_when_asked_for_and_off_by_default(
        box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pidcap, "_probed", pidcap.Mechanism("", None, "no way here"))
    with pytest.raises(CorralError) as e:
        box.sandbox(max_processes=10)
    assert "cannot cap processes at 10: no way here" in str(e.value.message)
    assert box.sh("echo ok").stdout == "ok\n"  # the default cap is best effort


def test_corral_sandbox_takes_the_cap_from_config(box: Box) -> None:
    r = subprocess.run([sys.executable, "-m", "corral", "-c", "sandbox.max_processes=40",
                        "sandbox", "--", "python3", "-c", FORKS, "200"], cwd=box.ws,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert 30 <= int(r.stdout) < 40, r.stdout
    bad = subprocess.run([sys.executable, "-m", "corral", "-c", "sandbox.max_processes=-1",
                          "sandbox", "--", "true"], cwd=box.ws, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "max_processes" in bad.stderr


def test_as_a_regular_user_rlimit_nproc_caps_only_the_sandbox() -> None:
    """No writable cgroup for an unprivileged user here: RLIMIT_NPROC, lowered inside the
    sandbox's user namespace, is what binds (counting the sandbox's tasks only)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.fail("needs root and setpriv to become a regular user")
    tmp_path = Path(tempfile.mkdtemp(prefix="corral-nproc-"))  # pytest's tmp is root-only
    tmp_path.chmod(0o777)
    ws = tmp_path / "ws"
    ws.mkdir()
    ws.chmod(0o777)
    src = Path(__file__).resolve().parents[2] / "src"
    code = (f"import sys; sys.path.insert(0, {str(src)!r})\n"
            "from corral.sandbox import Sandbox, build_plan, pidcap\n"
            "print(pidcap.probe().kind, flush=True)\n"
            f"sb = Sandbox(build_plan(':workspace', {str(ws)!r}, max_processes=30))\n"
            f"r = sb.run(['python3', '-c', {FORKS!r}, '200'], {str(ws)!r}, {{}})\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(ws), "CORRAL_HOME": str(tmp_path / "ch")}
    try:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=60, cwd=ws)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert r.returncode == 0, r.stderr
    kind, forked = r.stdout.split()
    assert kind == "rlimit"
    assert 20 <= int(forked) < 30, r.stdout


def _pids_cgroup_of(pid: int) -> str:
    """The pids cgroup ``pid`` is in, as /proc shows it (v1 pids line, else the v2 line)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    v1 = [ln for ln in lines if "pids" in ln.split(":")[1].split(",")]
    return (v1 or [ln for ln in lines if ln.startswith("0::")])[0].split(":", 2)[2]


def test_bwrap_starts_inside_its_cgroup_and_outlives_the_thread_that_started_it(
        box: Box) -> None:
    mech = pidcap.probe()
    assert mech.kind == "cgroup", mech.why_not
    pidcap.prepare()  # as the CLI does before reading the config
    prepared = pidcap._ready
    if not mech.threads:  # cgroup v2: no thread of ours can enter the cgroup; a shell does
        assert prepared is None
    sb = box.sandbox(max_processes=50)
    proc = sb.spawn(["sleep", "5"], box.ws)
    try:
        cg = proc.corral_cgroup
        assert cg is not None
        if prepared is not None:
            assert cg == prepared.cgroup  # the prepared cgroup, with the plan's cap
        # bwrap itself is counted
        assert _pids_cgroup_of(proc.pid).endswith("/" + os.path.basename(cg))
        assert Path(cg, "pids.max").read_text().strip() == "50"
        time.sleep(0.3)
        # --die-with-parent fires when the thread that forked bwrap ends: it must not have
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    sb.close()
    assert not os.path.exists(cg)
    if prepared is not None:
        assert prepared._ended.is_set()  # released once bwrap was reaped


@pytest.mark.parametrize("command", ["sandbox", "exec"])
def test_the_cgroup_move_starts_before_the_heavy_imports(tmp_path: Path, command: str) -> None:
    """The kernel's wait for the move (an RCU grace period, 6-15 ms here) passes while the
    modules load: ``corral sandbox``/``exec`` prepare the cgroup before importing pathlib, the
    launcher or the config."""
    code = (
        "import sys\n"
        "from corral.sandbox import pidcap\n"
        "seen = []\n"
        "real = pidcap.prepare\n"
        "def prepare(*a, **k):\n"
        "    seen.append([m for m in ('pathlib', 'subprocess', 'corral.sandbox.launcher', "
        "'corral.config') if m in sys.modules])\n"
        "    return real(*a, **k)\n"
        "pidcap.prepare = prepare\n"
        "import atexit\n"
        "atexit.register(lambda: print('before prepare:', seen))\n"
        "imported = [m for m in ('pathlib', 'corral.sandbox.launcher') if m in sys.modules]\n"
        "print('with pidcap:', imported)\n"
        f"sys.argv = ['corral', '-c', 'approval_policy=\"never\"', {command!r}, '--', 'true']\n"
        "from corral.cli.entry import main\n"
        "main()\n"
    )
    home = tmp_path / "home"
    (home / ".corral").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "CORRAL_HOME": str(home / ".corral")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "with pidcap: []" in out.stdout, out.stdout
    assert "before prepare: [[]]" in out.stdout, out.stdout


def test_a_prepared_cgroup_takes_the_cap_the_config_sets(box: Box) -> None:
    pidcap.prepare()  # made with the default cap, 4096
    capped = box.py(FORKS.replace("int(sys.argv[1])", "200"), max_processes=40)
    assert capped.returncode == 0, capped.stderr
    assert 30 <= int(capped.stdout) < 40, capped.stdout


def test_later_spawns_of_one_sandbox_find_their_cgroup_ready(box: Box) -> None:
    mech = pidcap.probe()
    sb = box.sandbox()
    for _ in range(2):
        assert sb.spawn(["true"], box.ws).wait() == 0
    prepared = pidcap._ready
    if not mech.threads:
        assert prepared is None
        return
    assert prepared is not None  # made during the second run, for the third
    third = sb.spawn(["true"], box.ws)
    assert third.corral_cgroup == prepared.cgroup
    assert third.wait() == 0
    fourth = pidcap._ready  # prepared for a spawn that will not come
    assert fourth is not None
    sb.close()  # lets it go: no thread or cgroup left behind by a closed sandbox
    assert pidcap._ready is None
    assert fourth._ended.is_set() and not os.path.exists(fourth.cgroup)


def test_a_one_shot_corral_sandbox_leaves_no_cgroup_behind_for_long(box: Box) -> None:
    """`corral sandbox` does not wait for the kernel to let its cgroup go; a cgroup it left
    (its tasks were still leaving) is removed by a later run's sweep, so at most the last
    finished run's is ever left."""
    mech = pidcap.probe()
    if mech.kind != "cgroup" or mech.base is None:
        pytest.fail(f"this host enforces no cgroup cap: {mech.why_not}")

    def ours() -> set[str]:
        """Empty cgroups of finished corral processes (one with tasks is never swept)."""
        found = set()
        for e in os.scandir(mech.base):
            if e.name.startswith("corral-") and not os.path.exists(
                    f"/proc/{e.name.split('-')[1]}"):
                with contextlib.suppress(FileNotFoundError):  # swept meanwhile
                    if not Path(e.path, "cgroup.procs").read_text().strip():
                        found.add(e.name)
        return found

    for _ in range(3):
        r = subprocess.run([sys.executable, "-m", "corral", "sandbox", "--", "true"],
                           cwd=box.ws, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    left = ours()
    assert len(left) <= 1, left  # at most the last run's, still being let go
    # a later run sweeps it (the next one may start while the kernel still holds its tasks)
    for _ in range(5):
        r = subprocess.run([sys.executable, "-m", "corral", "sandbox", "--", "true"],
                           cwd=box.ws, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        if not left & ours():
            break
    assert not (left & ours()), left


def test_a_sandbox_whose_bwrap_is_killed_at_once_leaves_nothing_running(box: Box) -> None:
    """bwrap's --die-with-parent misses a namespace whose outer bwrap dies in its first
    milliseconds: before the fix its init went on running the command, reparented to the
    host's init (found in a whole-suite run; here most kills in the first 5 ms left one). The
    run's cgroup still holds such a leftover: cleanup kills it."""
    mech = pidcap.probe()
    assert mech.kind == "cgroup", mech.why_not
    cgroups = kill_at_once(box.sandbox(), ["sleep", "7.4321"], box.ws)
    assert None not in cgroups and not any(os.path.exists(cg) for cg in cgroups if cg is not None)


def test_the_sweep_ends_a_sandbox_a_gone_corral_left_running() -> None:
    """A cgroup named for a corral process that no longer exists, with something still in it:
    the next corral's probe kills that and removes the cgroup; also when the kernel has given
    that pid to another process meanwhile (pid_max is 32768 here: the name's start time tells
    them apart). Pids a live corral owns, and corral's own, are never touched."""
    mech = pidcap.probe()
    assert mech.kind == "cgroup" and mech.base is not None, mech.why_not
    proc = subprocess.Popen(["true"])
    proc.wait()
    dead = proc.pid  # a pid that just ended (and is not reused within this test)
    me = os.getpid()
    start = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]
    mine = pidcap.new_cgroup(mech.base, 5)
    pidcap.remove_cgroup(mine)
    assert mine.rsplit("/", 1)[1].startswith(f"corral-{me}-{start}-")
    stale = [Path(mech.base, f"corral-{dead}-0"),  # the name before start times
             Path(mech.base, f"corral-{dead}-{start}-0"),
             Path(mech.base, f"corral-{me}-{int(start) - 1}-0"),  # this pid, another process
             Path(mech.base, f"corral-probe-{dead}")]  # a probe whose corral was killed
    live = [Path(mech.base, f"corral-{me}-999"), Path(mech.base, f"corral-{me}-{start}-998")]
    left = [subprocess.Popen(["sleep", "30"]) for _ in stale]
    kept = [subprocess.Popen(["sleep", "30"]) for _ in live]
    try:
        for cg, p in [*zip(stale, left, strict=True), *zip(live, kept, strict=True)]:
            cg.mkdir()
            (cg / "cgroup.procs").write_text(f"{p.pid}\n")
        pidcap._remove_stale(mech.base)
        assert [p.wait(5) for p in left] == [-signal.SIGKILL] * len(left)
        assert [p.poll() for p in kept] == [None] * len(kept)
        assert all(cg.exists() for cg in live)
        pidcap._remove_stale(mech.base)  # the killed tasks have left: the cgroups go
        assert not any(cg.exists() for cg in stale)
    finally:
        for p in (*left, *kept):
            p.kill()
            p.wait()
        for cg in (*stale, *live):
            pidcap.remove_cgroup(str(cg))


def test_latch_is_an_event_for_one_waiter() -> None:
    """``pidcap.Latch`` (Ready's events without importing threading): unset waits time out,
    a set one stays set for every later wait, setting twice is harmless, and a waiter
    blocked on another thread is woken by the set."""
    import _thread

    latch = pidcap.Latch()
    assert not latch.is_set() and latch.wait(0.01) is False
    woke: list[bool] = []
    _thread.start_new_thread(lambda: woke.append(latch.wait(10)), ())
    time.sleep(0.05)
    assert woke == []
    latch.set()
    latch.set()
    deadline = time.monotonic() + 10
    while not woke and time.monotonic() < deadline:
        time.sleep(0.005)
    assert woke == [True]
    assert latch.is_set() and latch.wait(0) is True and latch.wait() is True
