"""``DirectProcess``: the posix_spawn start of a one-shot run gives the child what ``Popen``
would (that ``corral sandbox`` then imports neither subprocess nor threading:
tests/test_entry.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from corral.sandbox.process import DirectProcess, tee
from tests.sandbox.conftest import Box

# The shell's own ignored and blocked signals, read with builtins only: while it forks a
# command (dash blocks every signal around its vfork), its mask is not what it was given.
SIGNALS = ('while read -r k v; do case $k in SigIgn:|SigBlk:) echo "$k $v";; esac; '
           'done < /proc/$$/status')
# its own descriptors, its signals, one variable
PROBE = f'exec >"$OUT"; for f in /proc/$$/fd/*; do echo "${{f##*/}}"; done; {SIGNALS}; echo "X=$X"'


def _probe(tmp_path: Path, start: str, pass_fd: int) -> list[str]:
    out = tmp_path / f"{start}.out"
    env = {"PATH": os.environ["PATH"], "OUT": str(out), "X": "from-env"}
    argv = ["/bin/sh", "-c", PROBE]
    if start == "direct":
        proc = DirectProcess(argv, env, (pass_fd,))
        assert proc.wait() == 0
    else:
        assert subprocess.Popen(argv, env=env, pass_fds=(pass_fd,)).wait() == 0
    return out.read_text().splitlines()


def test_the_child_sees_what_popen_gives_it(tmp_path: Path) -> None:
    """Same descriptors (stdio, the passed one; not an inheritable one this process holds),
    same ignored and blocked signals (SIGPIPE back to its default), same environment."""
    stray_r, stray_w = os.pipe()
    passed_r, passed_w = os.pipe()
    os.set_inheritable(stray_r, True)  # what an agent calling corral may leave open
    try:
        direct = _probe(tmp_path, "direct", passed_r)
        popen = _probe(tmp_path, "popen", passed_r)
    finally:
        for fd in (stray_r, stray_w, passed_r, passed_w):
            os.close(fd)
    ignored = {name: _ignored(lines) for name, lines in (("direct", direct), ("popen", popen))}
    # glibc's posix_spawn leaves its two internal signals ignored in the child
    assert ignored["direct"] == ignored["popen"] | GLIBC_INTERNAL
    assert [x for x in direct if not x.startswith("SigIgn:")] == \
        [x for x in popen if not x.startswith("SigIgn:")]
    assert str(passed_r) in direct and str(stray_r) not in direct
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # ignored here, by Python
    assert not ignored["direct"] & (1 << (signal.SIGPIPE - 1))
    assert "X=from-env" in direct


GLIBC_INTERNAL = (1 << 31) | (1 << 32)  # SIGCANCEL (32) and SIGSETXID (33)


def _ignored(lines: list[str]) -> int:
    return int(next(x for x in lines if x.startswith("SigIgn:")).split()[1], 16)


def test_the_sandboxed_command_sees_the_same_signals_either_way(box: Box) -> None:
    """Through bwrap, the command's blocked signals are the same whether the run was started
    with posix_spawn (``corral sandbox``) or with Popen (``Sandbox.spawn``), and so are its
    ignored ones but glibc's two internal signals (installed by glibc on first use)."""
    direct = box.cli("sandbox", "--", "/bin/sh", "-c", SIGNALS).stdout.splitlines()
    popen = box.sh(SIGNALS).stdout.splitlines()
    assert len(direct) == 2 and len(popen) == 2
    assert _ignored(direct) == _ignored(popen) | GLIBC_INTERNAL
    assert [x for x in direct if x.startswith("SigBlk:")] == \
        [x for x in popen if x.startswith("SigBlk:")]


def test_a_program_started_so_still_gets_glibc_internal_signals_when_it_uses_them(
        tmp_path: Path) -> None:
    """Why the difference above is harmless: glibc installs its handler for the inherited,
    ignored internal signal when the program first needs it (here ``pthread_cancel``)."""
    out = tmp_path / "out"
    code = ("import ctypes, sys, threading, time\n"
            "def state():\n"
            "    lines = dict(x.split(':', 1) for x in open('/proc/self/status'))\n"
            "    return [bool(int(lines[k], 16) & (1 << 31)) for k in ('SigIgn', 'SigCgt')]\n"
            "before = state()\n"
            "t = threading.Thread(target=time.sleep, args=(5,), daemon=True)\n"
            "t.start()\n"
            "ctypes.CDLL(None).pthread_cancel(ctypes.c_ulong(t.ident))\n"
            "open(sys.argv[1], 'w').write(f'{before} {state()}')\n")
    proc = DirectProcess([sys.executable, "-c", code, str(out)], dict(os.environ), ())
    assert proc.wait() == 0
    # ignored and not caught at start; caught once used
    assert out.read_text() == "[True, False] [False, True]"


def test_stderr_to_a_pipe_status_and_signals(tmp_path: Path) -> None:
    proc = DirectProcess(["/bin/sh", "-c", "echo err >&2; exit 3"], {}, (),
                         capture_stderr=True)
    assert proc.stderr is not None
    kept: list[str] = []

    class Sink:
        text = ""

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    sink = Sink()
    tee(proc.stderr, sink, kept)  # type: ignore[arg-type]
    assert proc.wait() == 3 and sink.text == "err\n" and kept == ["err\n"]
    assert proc.poll() == 3

    sleeper = DirectProcess(["/bin/sleep", "30"], {}, ())
    assert sleeper.poll() is None
    sleeper.send_signal(signal.SIGTERM)
    assert sleeper.wait() == -signal.SIGTERM
    sleeper.send_signal(signal.SIGKILL)  # reaped: its pid is not ours to signal any more


def test_a_failed_exec_raises_and_leaves_no_descriptor(tmp_path: Path) -> None:
    before = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        DirectProcess([str(tmp_path / "missing")], {}, (), capture_stderr=True)
    with pytest.raises(ValueError, match="absolute program path"):
        DirectProcess(["true"], {}, ())
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_corral_sandbox_keeps_its_callers_descriptors_out(box: Box) -> None:
    """An inheritable descriptor the caller handed corral (a pipe to the agent, a socket)
    does not reach the sandboxed command."""
    r, w = os.pipe()
    try:
        got = box.cli("sandbox", "--", "/bin/sh", "-c",
                      "for f in /proc/$$/fd/*; do echo ${f##*/}; done", pass_fds=(r, w))
    finally:
        os.close(r)
        os.close(w)
    assert got.returncode == 0, got.stderr
    seen = got.stdout.split()
    assert seen[:3] == ["0", "1", "2"] and str(w) not in seen and str(r) not in seen
