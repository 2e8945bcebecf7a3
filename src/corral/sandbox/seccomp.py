"""The seccomp filter handed to bubblewrap (``--seccomp FD``), built with libseccomp.

Default allow; listed calls fail with EPERM (not kill) so tools degrade gracefully. Compiled
once per network mode and cached as BPF bytes: each spawn only writes them into a pipe.
"""

from __future__ import annotations

import errno
import functools
import os
from pathlib import Path

from corral.errors import CorralError
from corral.sandbox.profiles import NetworkMode

# Denied in every mode: debugging/injection into other processes, kernel attack surface,
# kernel keyrings, namespace and mount manipulation, handle-based path escapes.
ALWAYS_DENIED: tuple[str, ...] = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
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

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

FILTER_VERSION = 1  # bump when the rules below change meaning
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


def _families(mode: NetworkMode, allow_unix: bool) -> frozenset[int]:
    return SOCKET_FAMILIES[mode] | ({AF_UNIX} if allow_unix else set())


def _spec_key(mode: NetworkMode, allow_unix: bool) -> str:
    spec = repr((FILTER_VERSION, mode.value, ALWAYS_DENIED, sorted(_families(mode, allow_unix)),
                 AF_MAX, TIOCSTI, TIOCLINUX, os.uname().machine))
    # The key only names a cache file: a hash of the spec's bytes as a tuple of ints, which
    # (unlike a str's) is the same in every process of one Python version, without importing
    # zlib or hashlib (extension modules, ~0.2 ms of every `corral sandbox` here).
    digest = hash(tuple(spec.encode())) & 0xFFFF_FFFF_FFFF_FFFF
    return f"{mode.value}-{int(allow_unix)}-{digest:016x}"


@functools.lru_cache(maxsize=8)
def build_bpf(mode: NetworkMode, cache_dir: Path | None = None, allow_unix: bool = False
              ) -> bytes:
    """The filter for ``mode`` as raw BPF (what ``bwrap --seccomp`` reads).

    Compiling imports libseccomp and takes ~20 ms, so the result is cached in ``cache_dir``
    (under $CORRAL_HOME, which sandboxed commands can neither read nor write).
    """
    cached = cache_dir / f"{_spec_key(mode, allow_unix)}.bpf" if cache_dir is not None else None
    if cached is not None:
        try:
            data = cached.read_bytes()
            if data and len(data) % 8 == 0:
                return data
        except OSError:
            pass
    data = _compile(mode, allow_unix)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        except OSError:
            pass
    return data


def _compile(mode: NetworkMode, allow_unix: bool) -> bytes:
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
    allowed = _families(mode, allow_unix)
    for fam in range(AF_MAX):
        if fam not in allowed:
            f.add_rule(eperm, "socket", sc.Arg(0, sc.EQ, fam))
        if fam != AF_UNIX:
            f.add_rule(eperm, "socketpair", sc.Arg(0, sc.EQ, fam))
    f.add_rule(eperm, "socket", sc.Arg(0, sc.GE, AF_MAX))
    f.add_rule(eperm, "socketpair", sc.Arg(0, sc.GE, AF_MAX))
    import tempfile

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
