"""Reliability: kill -9 mid-burst, a full disk, a read-only journal — with real processes and real
(private, unshared) mounts. Needs root and util-linux ``unshare``/``mount``; fails loudly if not."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from corral.telemetry import Journal, journal_file, load_public_key

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

BURST = textwrap.dedent("""
    import sys
    from corral.telemetry import Telemetry
    tel = Telemetry.open(None, "kill9", checkpoint_every=100)
    i = 0
    while True:
        ids = [tel.emit("agent.custom.tick", {"i.n": i + k}).id for k in range(20)]
        i += 20
        tel.flush()                      # acknowledged from here on
        sys.stdout.write("\\n".join(ids) + "\\n")
        sys.stdout.flush()
""")


def test_kill_9_mid_burst_loses_no_acknowledged_event(home: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", BURST], stdout=subprocess.PIPE, text=True,
                            env={**ENV, "CORRAL_HOME": str(home)})
    acked: list[str] = []
    assert proc.stdout is not None
    while len(acked) < 3000:
        line = proc.stdout.readline()
        assert line, "writer died early"
        acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    acked += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    res = Journal(journal_file(home)).verify(load_public_key(home))
    assert res.ok, res.problems
    stored = {e.id for e in Journal(journal_file(home)).events()}
    missing = [i for i in acked if i not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert res.records >= len(acked) and res.checkpoints >= 30


def _need(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is required for this test (util-linux); install it"
    return path


FILL = textwrap.dedent("""
    import sys
    from corral.errors import CorralError
    from corral.telemetry import Journal, Telemetry, journal_file, load_public_key
    from pathlib import Path
    home = Path(sys.argv[1])
    tel = Telemetry.open(None, "full", checkpoint_every=50, home=home)
    n = 0
    try:
        while True:
            tel.emit("agent.custom.tick", {"pad.text": "x" * 2000, "i.n": n}, wait=True)
            n += 1
    except CorralError as exc:
        print("FIRST", exc.line())
    try:
        tel.emit("agent.tool.decision", {"gen_ai.tool.name": "shell", "agent.decision": "approved",
                                         "agent.decision.source": "rule"})
        print("ACCEPTED")
    except CorralError as exc:
        print("REFUSED", exc.line())
    res = Journal(journal_file(home)).verify(load_public_key(home))
    print("WRITTEN", n, "VERIFY", res.ok, res.records)
""")


def test_full_disk_makes_telemetry_refuse_and_say_so(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(FILL)
    cmd = (f"mount -t tmpfs -o size=400k tmpfs {home} && "
           f"exec {sys.executable} {script} {home}")
    out = subprocess.run([_need("unshare"), "-m", "--propagation", "private", "sh", "-c", cmd],
                         capture_output=True, text=True, env=ENV, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert "cannot be written" in lines["FIRST"] and "full" in lines["FIRST"], out.stdout
    assert "no further actions will be approved" in lines["REFUSED"]
    assert "ACCEPTED" not in lines
    written, _, ok, records = lines["WRITTEN"].split()
    assert ok == "True" and int(records) == int(written) > 10


def test_journal_turning_read_only_mid_session_fails_closed(home: Path) -> None:
    """A filesystem remounted read-only under open files cannot be staged without the kernel
    erroring it; SQLite's own read-only switch on the writer's connection gives the same
    SQLITE_READONLY error through the same path."""
    from corral.errors import CorralError
    from corral.telemetry import Telemetry

    tel = Telemetry.open(None, "ro")
    tel.emit("agent.custom.tick", {"i.n": 0}, wait=True)
    tel._writer._conn.execute("PRAGMA query_only=ON")
    with pytest.raises(CorralError, match=r"readonly database.*no further actions"):
        tel.emit("agent.custom.tick", {"i.n": 1}, wait=True)
    with pytest.raises(CorralError, match="cannot be written"):
        tel.emit("agent.tool.decision", {"gen_ai.tool.name": "shell", "agent.decision": "approved",
                                         "agent.decision.source": "rule"})
    with pytest.raises(CorralError):
        tel.close()
    assert Journal(journal_file(home)).verify(load_public_key(home)).records == 1


def test_journal_that_cannot_be_opened_refuses_the_session(tmp_path: Path) -> None:
    """A read-only CORRAL_HOME (bind-mounted read-only by bubblewrap) stops a session at open."""
    home = tmp_path / "h"
    (home / "journal").mkdir(parents=True)
    bwrap = shutil.which("bwrap")
    assert bwrap, "bubblewrap is required (scripts/setup installs it)"
    code = ("from corral.telemetry import Telemetry; from pathlib import Path; import sys\n"
            "Telemetry.open(None, 's', home=Path(sys.argv[1]))")
    out = subprocess.run([bwrap, "--bind", "/", "/", "--dev", "/dev", "--ro-bind", str(home),
                          str(home), sys.executable, "-c", code, str(home)],
                         capture_output=True, text=True, env=ENV, timeout=60, check=False)
    assert out.returncode != 0
    assert "corral: telemetry:" in out.stderr and "Read-only file system" in out.stderr, out.stderr
