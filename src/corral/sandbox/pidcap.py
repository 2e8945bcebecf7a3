"""A cap on the tasks (processes and threads) of one sandboxed command: a fork bomb inside must
not fill the host's process table.

Two mechanisms, the first that works here:

- a **pids cgroup** per spawn (cgroup v1 ``pids`` hierarchy, or cgroup v2 where ``pids`` is
  enabled for the children of this process's cgroup): ``pids.max`` counts every task in it,
  whatever its uid, root included. bwrap is started through ``/bin/sh`` that first moves itself
  into the cgroup, so nothing forks before it is counted;
- **RLIMIT_NPROC**, lowered *inside* the sandbox's user namespace by ``prlimit`` (the kernel
  counts it per user namespace since Linux 5.14, so only the sandbox's own tasks count; set
  before bwrap it would also count the user's tasks on the host). It never binds real root
  (the kernel exempts uid 0), so as root only a cgroup works.

``probe()`` says which one applies, or why none does (``corral doctor`` shows it). A cap the
user set explicitly that cannot be enforced refuses the spawn; the default one is then off.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX = 4096
_PREFIX = "corral-"
_counter = itertools.count()


@dataclass(frozen=True)
class Mechanism:
    kind: str  # "cgroup" | "rlimit" | ""
    base: Path | None = None  # the cgroup directory children are made in
    why_not: str = ""  # when kind == ""

    def describe(self) -> str:
        if self.kind == "cgroup":
            return f"pids cgroup under {self.base}"
        if self.kind == "rlimit":
            return "RLIMIT_NPROC inside the sandbox's user namespace (prlimit)"
        return self.why_not


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) from /proc/self/mountinfo."""
    out: list[tuple[str, str, str]] = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(f) >= 5 and len(r) >= 3:
            out.append((f[4].replace("\\040", " "), r[0], r[2]))
    return out


def _cgroup_candidates() -> list[Path]:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    mounts = _mounts()
    out: list[Path] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for point, fstype, opts in mounts:
            if fstype == "cgroup" and "pids" in controllers.split(",") and \
                    "pids" in opts.split(","):
                out.append(Path(point + path.rstrip("/")))
            elif fstype == "cgroup2" and controllers == "":
                base = Path(point + path.rstrip("/"))
                with contextlib.suppress(OSError):
                    if "pids" in (base / "cgroup.subtree_control").read_text().split():
                        out.append(base)
    return out


def _works(base: Path) -> bool:
    probe = base / f"{_PREFIX}probe-{os.getpid()}"
    try:
        probe.mkdir()
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        return (probe / "pids.max").exists()
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        nums = [int(x) for x in platform.release().split("-")[0].split(".")[:2]]
    except ValueError:
        return False
    return tuple(nums) >= (major, minor)


_probed: Mechanism | None = None


def probe() -> Mechanism:
    """Which mechanism caps processes on this host (cached per process)."""
    global _probed
    if _probed is not None:
        return _probed
    for base in _cgroup_candidates():
        if _works(base):
            _remove_stale(base)
            _probed = Mechanism("cgroup", base)
            return _probed
    if os.geteuid() == 0:
        why = ("no writable pids cgroup, and RLIMIT_NPROC does not bind root "
               "(run as a regular user, or delegate a cgroup with the pids controller)")
    elif not _kernel_at_least(5, 14):
        why = (f"no writable pids cgroup, and Linux {platform.release()} counts RLIMIT_NPROC "
               "across the whole user, not per sandbox (needs 5.14)")
    elif _which("prlimit") is None:
        why = "no writable pids cgroup, and prlimit (util-linux) is not installed"
    else:
        _probed = Mechanism("rlimit")
        return _probed
    _probed = Mechanism("", None, why)
    return _probed


def _which(name: str) -> str | None:
    import shutil  # ~5 ms: not on the common path (a cgroup found first)

    return shutil.which(name)


def _remove_stale(base: Path) -> None:
    """Empty cgroups left by a killed corral (rmdir refuses a cgroup with tasks in it)."""
    with contextlib.suppress(OSError):
        for e in os.scandir(base):
            if e.name.startswith(_PREFIX) and e.is_dir(follow_symlinks=False):
                pid = e.name[len(_PREFIX):].split("-")[0]
                if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                    with contextlib.suppress(OSError):
                        os.rmdir(e.path)


def cap_for(limit: int | None) -> tuple[Mechanism, int] | None:
    """The cap to apply at each spawn: the default where this host can enforce one; a limit
    the user set, or a refusal (CorralError) when it cannot be enforced."""
    n = DEFAULT_MAX if limit is None else limit
    if n == 0:
        return None
    mech = probe()
    if mech.kind:
        return mech, n
    if limit is None:
        return None  # the default is best effort; corral doctor says it is not enforced
    from corral.errors import CorralError

    raise CorralError("sandbox", f"cannot cap processes at {n}: {mech.why_not}",
                      "set sandbox.max_processes = 0 to run without a cap")


def new_cgroup(base: Path, limit: int) -> Path:
    """A fresh cgroup with ``pids.max`` = ``limit``; raises OSError if it cannot be made."""
    cg = base / f"{_PREFIX}{os.getpid()}-{next(_counter)}"
    cg.mkdir()
    try:
        (cg / "pids.max").write_text(f"{limit}\n")
    except OSError:
        with contextlib.suppress(OSError):
            cg.rmdir()
        raise
    return cg


def enter_cgroup_argv(cg: Path, argv: list[str]) -> list[str]:
    """``argv`` started by a shell that first moves itself into ``cg``."""
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cg / "cgroup.procs"), *argv]


def rlimit_argv(limit: int, argv: list[str]) -> list[str]:
    prlimit = _which("prlimit") or "/usr/bin/prlimit"
    return [prlimit, f"--nproc={limit}:{limit}", "--", *argv]


def remove_cgroup(cg: Path, wait: float = 2.0) -> None:
    """rmdir once the last task is gone (killed tasks of the pid namespace linger briefly)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.rmdir(cg)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return  # left for _remove_stale of a later run
            time.sleep(0.002)
