"""What this host can enforce. ``checks()`` feeds ``corral doctor``; each failed check says how
to fix it, because the launcher refuses to run when a control cannot be enforced."""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LANDLOCK_CREATE_RULESET = 444
LANDLOCK_CREATE_RULESET_VERSION = 1


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def landlock_abi() -> int:
    """Landlock ABI version (0 when unavailable): landlock_create_ruleset(NULL, 0, VERSION)."""
    if platform.machine() not in ("x86_64", "aarch64", "riscv64"):
        return 0  # 444 is the generic syscall number; other arches not probed
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        res = libc.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                           ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    except OSError:
        return 0
    return int(res) if res > 0 else 0


def _bwrap_checks(bwrap: str | None) -> list[Check]:
    if bwrap is None:
        return [Check("bubblewrap", False, "bwrap not found on PATH or at /usr/bin/bwrap",
                      "apt-get install bubblewrap (or dnf install bubblewrap)")]
    out: list[Check] = []
    try:
        ver = subprocess.run([bwrap, "--version"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Check("bubblewrap", False, f"{bwrap} cannot run: {exc}",
                      "reinstall bubblewrap")]
    st = os.stat(bwrap)
    setuid = bool(st.st_mode & 0o4000)
    out.append(Check("bubblewrap", True, f"{bwrap} ({ver}{', setuid' if setuid else ''})"))
    p = subprocess.run(
        [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
         "--unshare-uts", "--disable-userns", "--ro-bind", "/", "/", "--", "/bin/true"],
        capture_output=True, text=True, timeout=10,
    )
    err = (p.stderr.strip().splitlines() or [""])[-1]
    out.append(Check(
        "user namespaces", p.returncode == 0,
        "bwrap can create user, pid, net, ipc and uts namespaces" if p.returncode == 0
        else f"bwrap failed: {err}",
        "sysctl -w kernel.unprivileged_userns_clone=1; on Ubuntu 24.04+ "
        "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 or add an AppArmor profile "
        "for bwrap; in a container, run it with --security-opt seccomp=unconfined or "
        "allow CLONE_NEWUSER",
    ))
    return out


def checks() -> list[Check]:
    """Every check relevant to the Linux sandbox (on other systems: what applies there)."""
    out: list[Check] = []
    system = platform.system()
    if system == "Darwin":
        ok = os.path.exists("/usr/bin/sandbox-exec")
        return [Check("seatbelt", ok, "/usr/bin/sandbox-exec" + ("" if ok else " missing"),
                      "sandbox-exec ships with macOS; it cannot be installed separately")]
    if system != "Linux":
        return [Check("platform", False, f"{system} has no supported sandbox backend",
                      "run corral on Linux or macOS")]
    out.append(Check("kernel", True, platform.release(), required=False))
    bwrap = "/usr/bin/bwrap" if os.path.exists("/usr/bin/bwrap") else shutil.which("bwrap")
    out += _bwrap_checks(bwrap)
    maxns = _read("/proc/sys/user/max_user_namespaces")
    if maxns is not None:
        out.append(Check("max_user_namespaces", maxns != "0", f"user.max_user_namespaces={maxns}",
                         "sysctl -w user.max_user_namespaces=15000"))
    clone = _read("/proc/sys/kernel/unprivileged_userns_clone")
    if clone is not None:
        out.append(Check("unprivileged_userns_clone", clone == "1" or os.geteuid() == 0,
                         f"kernel.unprivileged_userns_clone={clone}",
                         "sysctl -w kernel.unprivileged_userns_clone=1"))
    aa = _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if aa is not None:
        out.append(Check("apparmor userns restriction", aa == "0" or os.geteuid() == 0,
                         f"kernel.apparmor_restrict_unprivileged_userns={aa}",
                         "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 or install "
                         "an AppArmor profile granting userns to /usr/bin/bwrap",
                         required=False))
    status = _read("/proc/self/status") or ""
    has_seccomp = any(line.startswith("Seccomp:") for line in status.splitlines())
    try:
        from corral.sandbox.profiles import NetworkMode
        from corral.sandbox.seccomp import build_bpf

        size = len(build_bpf(NetworkMode.NONE)) // 8
        out.append(Check("seccomp", has_seccomp,
                         f"libseccomp builds the filter ({size} BPF instructions)"
                         if has_seccomp else "kernel without CONFIG_SECCOMP_FILTER",
                         "use a kernel with CONFIG_SECCOMP_FILTER=y"))
    except Exception as exc:
        out.append(Check("seccomp", False, f"cannot build the seccomp filter: {exc}",
                         "apt-get install libseccomp2 && pip install pyseccomp"))
    abi = landlock_abi()
    out.append(Check("landlock", abi > 0,
                     f"Landlock ABI {abi}" if abi else "Landlock not available (not used yet)",
                     "boot with lsm=landlock,... (kernel >= 5.13)", required=False))
    from corral.sandbox import pidcap

    cap = pidcap.probe()
    out.append(Check("process cap", bool(cap.kind),
                     f"sandbox.max_processes enforced by {cap.describe()}" if cap.kind
                     else f"sandbox.max_processes not enforced: {cap.why_not}",
                     "delegate a cgroup with the pids controller, or run corral as a regular "
                     "user (RLIMIT_NPROC, Linux 5.14+, prlimit)", required=False))
    in_container = os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")
    out.append(Check("container", True,
                     "running inside a container" if in_container else "not in a container",
                     required=False))
    return out
