"""The seccomp filter handed to bubblewrap (``--seccomp FD``), built with libseccomp.

Default allow; listed calls fail with EPERM (not kill) so tools degrade gracefully. Compiled
once per network mode and cached as BPF bytes: each spawn only writes them into a pipe.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from typing import Any

from corral.errors import CorralError
from corral.sandbox.profiles import NetworkMode

# Denied in every mode: debugging/injection into other processes, kernel attack surface,
# kernel keyrings, namespace and mount manipulation, handle-based path escapes.
ALWAYS_DENIED: tuple[str, ...] = (
    "ptrace", "process_vm_readv", "process_vm_writev",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "bpf", "perf_event_open", "userfaultfd",
    "add_key", "request_key", "keyctl",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "mount_setattr", "setns", "unshare",
    "open_by_handle_at", "name_to_handle_at",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "reboot", "acct", "syslog", "quotactl", "lookup_dcookie",
    "iopl", "ioperm", "vhangup",
)

AF_UNIX, AF_INET, AF_NETLINK, AF_INET6 = 1, 2, 16, 10
AF_MAX = 64  # every family number at or above this is denied outright
TIOCSTI, TIOCLINUX = 0x5412, 0x541C

# socket() families each network mode allows. AF_UNIX is never allowed: a new unix socket
# could reach a host service (docker, the agent's own supervisor). socketpair() stays usable.
SOCKET_FAMILIES: dict[NetworkMode, frozenset[int]] = {
    NetworkMode.NONE: frozenset(),
    NetworkMode.PROXY: frozenset({AF_INET, AF_INET6}),
    NetworkMode.HOST: frozenset({AF_INET, AF_INET6, AF_NETLINK}),
}


def _load_pyseccomp() -> Any:
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:  # OSError: libseccomp.so missing
        raise CorralError(
            "sandbox", f"seccomp unavailable: cannot load libseccomp ({exc})",
            "apt-get install libseccomp2 && pip install pyseccomp",
        ) from None
    return pyseccomp


@functools.lru_cache(maxsize=8)
def build_bpf(mode: NetworkMode) -> bytes:
    """Compile the filter for ``mode`` to raw BPF (what ``bwrap --seccomp`` reads)."""
    sc = _load_pyseccomp()
    eperm = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(sc.ALLOW)
    for name in ALWAYS_DENIED:
        try:
            f.add_rule(eperm, name)
        except (ValueError, RuntimeError, OSError):
            continue  # syscall unknown on this architecture
    for cmd in (TIOCSTI, TIOCLINUX):
        f.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, cmd))
    allowed = SOCKET_FAMILIES[mode]
    for fam in range(AF_MAX):
        if fam not in allowed:
            f.add_rule(eperm, "socket", sc.Arg(0, sc.EQ, fam))
        if fam != AF_UNIX:
            f.add_rule(eperm, "socketpair", sc.Arg(0, sc.EQ, fam))
    f.add_rule(eperm, "socket", sc.Arg(0, sc.GE, AF_MAX))
    f.add_rule(eperm, "socketpair", sc.Arg(0, sc.GE, AF_MAX))
    with tempfile.TemporaryFile() as tmp:
        f.export_bpf(tmp)
        tmp.seek(0)
        data = tmp.read()
    if not data or len(data) % 8:
        raise CorralError("sandbox", "seccomp: libseccomp produced an invalid BPF program")
    return bytes(data)


def bpf_fd(data: bytes) -> int:
    """A readable fd holding ``data`` (a pipe; the BPF is far below the pipe buffer size)."""
    r, w = os.pipe()
    try:
        os.write(w, data)
    finally:
        os.close(w)
    return r
