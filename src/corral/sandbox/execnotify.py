"""Seccomp user notification for ``execve``/``execveat``: the kernel half of the exec boundary.

Inside the sandbox, the init (``proxyinit``) forks the agent, which installs
:func:`install_listener` (a filter answering ``SECCOMP_RET_USER_NOTIF`` for both exec calls,
stacked on top of the sandbox's own filter, which stays) and hands the listener fd to the init
over a socketpair; the init passes it to the supervisor over the session's exec socket
(``SCM_RIGHTS``). From then on every exec in the agent's tree waits in the kernel until the
supervisor answers: :func:`receive`, :func:`read_exec` (path and argv from its memory),
:func:`still_waiting` (``SECCOMP_IOCTL_NOTIF_ID_VALID``), :func:`answer`.

The read race: the path and argv are read from the waiting process's memory, which another
thread of that process (or a process sharing its memory) can change between the read and the
kernel's own copy. The answer is therefore advice about what the agent asked for, not a
security boundary: the sandbox (filesystem, network, seccomp) bounds what any exec can do.

Stdlib only: ``proxyinit`` (started with ``python -I -S`` by path) loads this file by path.
"""

from __future__ import annotations

import array
import ctypes
import errno
import os
import platform
import socket
import struct
import sys
from typing import Any

SECCOMP_SET_MODE_FILTER, SECCOMP_GET_ACTION_AVAIL, SECCOMP_GET_NOTIF_SIZES = 1, 2, 3
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
RET_ALLOW, RET_USER_NOTIF, RET_ERRNO = 0x7FFF0000, 0x7FC00000, 0x00050000
FLAG_CONTINUE = 1
IOCTL_RECV, IOCTL_SEND, IOCTL_ID_VALID = 0xC0502100, 0xC0182101, 0x40082102
PR_SET_NO_NEW_PRIVS = 38
AT_FDCWD = -100
MAX_ARGS = 65536
MAX_BYTES = 3 << 20  # above the kernel's own ARG_MAX in practice: argv is never truncated
HELLO = b"corral-exec-listener\n"

# machine -> (seccomp syscall nr, [(audit arch, (execve, execveat) numbers, 64-bit pointers)])
_X32 = 0x40000000
ARCHES: dict[str, tuple[int, tuple[tuple[int, tuple[int, ...], bool], ...]]] = {
    "x86_64": (317, ((0xC000003E, (59, 322, _X32 | 520, _X32 | 545), True),
                     (0x40000003, (11, 358), False))),
    "aarch64": (277, ((0xC00000B7, (221, 281), True), (0x40000028, (11, 387), False))),
}
_EXECVEAT = {322, _X32 | 545, 358, 281, 387}


class Unsupported(OSError):
    """The kernel (or this architecture) cannot notify on exec."""


def _arch() -> tuple[int, tuple[tuple[int, tuple[int, ...], bool], ...]]:
    machine = platform.machine()
    if machine not in ARCHES:
        raise Unsupported(errno.ENOSYS, f"exec notification is not supported on {machine}")
    return ARCHES[machine]


def filter_program() -> bytes:
    """The BPF program: exec calls of the native and compat ABIs -> USER_NOTIF, the rest
    allowed (the sandbox's own filter, below this one, still decides them)."""
    _, abis = _arch()
    ld, jeq, ret = 0x20, 0x15, 0x06
    out: list[tuple[int, int, int, int]] = []
    for arch, nrs, _ in abis:
        block = [(ld, 0, 0, 0)]  # A = nr
        for i, nr in enumerate(nrs):
            # jump to the USER_NOTIF return just after the block's ALLOW
            block.append((jeq, len(nrs) - i, 0, nr))
        block += [(ret, 0, 0, RET_ALLOW), (ret, 0, 0, RET_USER_NOTIF)]
        out += [(ld, 0, 0, 4), (jeq, 0, len(block), arch), *block]  # A = arch
    out.append((ret, 0, 0, RET_ERRNO | errno.EPERM))  # an ABI this kernel should not have
    return b"".join(struct.pack("HBBI", *ins) for ins in out)


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Data(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32), ("ip", ctypes.c_uint64),
                ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", _Data)]


class _Resp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def install_listener() -> int:
    """Stack the exec filter onto this process (and everything it starts); the listener fd."""
    nr, _ = _arch()
    bpf = filter_program()
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _Fprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = _c()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot set no_new_privs")
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
                      ctypes.c_long(SECCOMP_FILTER_FLAG_NEW_LISTENER), ctypes.byref(prog))
    if fd < 0:
        err = ctypes.get_errno()
        raise Unsupported(err, f"cannot install the exec notification filter: "
                          f"{os.strerror(err)}")
    return int(fd)


def kernel_support() -> str | None:
    """None when this kernel can notify on exec and let a call continue, else why not
    (``SECCOMP_GET_ACTION_AVAIL`` for USER_NOTIF, ``SECCOMP_GET_NOTIF_SIZES``, the CONTINUE
    flag of 5.5 and ``pidfd_getfd`` of 5.6, which the reason line needs)."""
    try:
        nr, _ = _arch()
    except Unsupported as exc:
        return exc.strerror
    libc = _c()
    action = ctypes.c_uint32(RET_USER_NOTIF)
    if libc.syscall(ctypes.c_long(nr), ctypes.c_long(SECCOMP_GET_ACTION_AVAIL),
                    ctypes.c_long(0), ctypes.byref(action)) != 0:
        return f"seccomp user notification unavailable ({os.strerror(ctypes.get_errno())})"
    sizes = (ctypes.c_uint16 * 3)()
    if libc.syscall(ctypes.c_long(nr), ctypes.c_long(SECCOMP_GET_NOTIF_SIZES),
                    ctypes.c_long(0), ctypes.byref(sizes)) != 0:
        return f"seccomp notification sizes unavailable ({os.strerror(ctypes.get_errno())})"
    if sizes[0] < ctypes.sizeof(_Notif) or sizes[1] < ctypes.sizeof(_Resp):
        return f"unexpected seccomp notification sizes {tuple(sizes)}"
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 9):
        return (f"kernel {platform.release()} is older than 5.9 (needs the CONTINUE answer, "
                "pidfd_getfd and the fixed ID_VALID ioctl)")
    return None


# --- passing the listener -----------------------------------------------------------------

def send_listener(sock: socket.socket, fd: int, note: bytes = HELLO) -> None:
    socket.send_fds(sock, [note], [fd])


def recv_listener(sock: socket.socket) -> tuple[bytes, int | None]:
    """(the note, the one fd passed) — extra fds are closed."""
    msg, fds, _, _ = socket.recv_fds(sock, 256, 4)
    for extra in fds[1:]:
        os.close(extra)
    return msg, (fds[0] if fds else None)


def is_listener(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:seccomp notify"
    except OSError:
        return False


# --- the supervisor's side ----------------------------------------------------------------

class Notification:
    __slots__ = ("arch", "args", "id", "nr", "pid")

    def __init__(self, raw: _Notif) -> None:
        self.id = raw.id
        self.pid = raw.pid
        data = raw.data
        self.nr = data.nr
        self.arch = data.arch
        self.args = tuple(data.args)


_ioctls: list[Any] = []


def _ioctl() -> Any:
    """``ioctl(int, unsigned long, void *)``, typed once (the hot path's three calls)."""
    if not _ioctls:
        f = _c()["ioctl"]  # a function object of our own: its argtypes are ours alone
        f.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
        f.restype = ctypes.c_int
        _ioctls.append(f)
    return _ioctls[0]


def receive(listener: int) -> Notification | None:
    """The next waiting exec (blocks; poll the fd first). None when the process went away
    before it could be received."""
    raw = _Notif()
    if _ioctl()(listener, IOCTL_RECV, ctypes.byref(raw)) != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOENT, errno.EINTR):
            return None
        raise OSError(err, f"seccomp notification receive: {os.strerror(err)}")
    return Notification(raw)


def still_waiting(listener: int, notif_id: int) -> bool:
    value = ctypes.c_uint64(notif_id)
    return bool(_ioctl()(listener, IOCTL_ID_VALID, ctypes.byref(value)) == 0)


def answer(listener: int, notif_id: int, error: int = 0) -> bool:
    """Let the exec continue (``error`` 0) or fail it with ``error`` (EACCES). False when the
    process is no longer waiting (it died, or a signal interrupted the call)."""
    resp = _Resp(notif_id, 0, -error if error else 0, 0 if error else FLAG_CONTINUE)
    return bool(_ioctl()(listener, IOCTL_SEND, ctypes.byref(resp)) == 0)


class ExecRequest:
    """What a waiting exec asked for, as read from its memory (see the module's race note)."""

    __slots__ = ("addrs", "argv", "cwd", "env_raw", "path", "raw")

    def __init__(self, path: str, argv: tuple[str, ...], cwd: str,
                 raw: tuple[bytes, ...] = (), addrs: tuple[int, ...] = ()) -> None:
        self.path, self.argv, self.cwd = path, argv, cwd
        self.raw, self.addrs = raw, addrs  # each argument's bytes and address in the process
        self.env_raw: list[bytes] = []  # NAME=value entries the program gets (when read)


PAGE = 4096
_MASK = ~(PAGE - 1)
IOV_MAX = 1024
_readv: list[Any] = []


def _process_vm_readv() -> Any:
    if not _readv:
        f = _c()["process_vm_readv"]
        f.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p,
                      ctypes.c_ulong, ctypes.c_ulong)
        f.restype = ctypes.c_ssize_t
        _readv.append(f)
    return _readv[0]


class _Mem:
    """One waiting process's memory, each page read once, the pages wanted together in one
    ``process_vm_readv`` (an exec's strings are spread over a few pages of its heap), else
    (where that call is refused) through ``/proc/PID/mem``."""

    __slots__ = ("fd", "pages", "pid")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd: int | None = None
        self.pages: dict[int, bytes] = {}

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def fetch(self, bases: set[int]) -> None:
        """Read the pages at ``bases`` not read yet, in one call (a page that cannot be read
        is left out, and read alone when it is asked for)."""
        want = sorted(bases.difference(self.pages))
        if len(want) < 2 or self.fd is not None:
            return
        want = want[:IOV_MAX]
        buf = ctypes.create_string_buffer(len(want) * PAGE)
        at = ctypes.addressof(buf)
        local = struct.pack("PN" * len(want), *[x for i in range(len(want))
                                                 for x in (at + i * PAGE, PAGE)])
        remote = struct.pack("PN" * len(want), *[x for b in want for x in (b, PAGE)])
        got = _process_vm_readv()(self.pid, local, len(want), remote, len(want), 0)
        if got <= 0:
            return
        raw = buf.raw
        for i in range(got // PAGE):
            self.pages[want[i]] = raw[i * PAGE:(i + 1) * PAGE]

    def page(self, addr: int) -> tuple[bytes, int]:
        """(the page holding ``addr``, ``addr``'s offset in it); the page is short or empty
        where the memory cannot be read."""
        base = addr & _MASK
        data = self.pages.get(base)
        if data is None:
            data = self.pages[base] = self._one(base)
        return data, addr - base

    def _one(self, base: int) -> bytes:
        if self.fd is None:
            buf = ctypes.create_string_buffer(PAGE)
            local = struct.pack("PN", ctypes.addressof(buf), PAGE)
            got = _process_vm_readv()(self.pid, local, 1, struct.pack("PN", base, PAGE), 1, 0)
            if got > 0:
                return buf.raw[:got]
            if got < 0 and ctypes.get_errno() not in (errno.ENOSYS, errno.EPERM):
                return b""  # unmapped (EFAULT), or the process is gone (ESRCH)
            self.fd = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(self.fd, PAGE, base)
        except OSError:
            return b""

    def read(self, addr: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``addr`` (fewer where the memory ends)."""
        data, off = self.page(addr)
        if len(data) - off >= size:
            return data[off:off + size]
        parts = [data[off:]]
        total = len(parts[0])
        while total < size and len(data) == PAGE and (addr + total) % PAGE == 0:
            data, _ = self.page(addr + total)  # on into the next page
            parts.append(data)
            total += len(data)
        return b"".join(parts)[:size]

    def cstr(self, addr: int, limit: int) -> bytes:
        """The NUL-terminated string at ``addr`` (at most ``limit`` bytes)."""
        data, off = self.page(addr)
        end = data.find(b"\0", off)
        if end >= 0 and end - off <= limit:
            return data[off:end]
        parts: list[bytes] = []
        total = 0
        while end < 0:
            if off >= len(data):
                raise OSError(errno.EFAULT, "unreadable string")
            parts.append(data[off:])
            total += len(data) - off
            if total > limit:
                raise OSError(errno.E2BIG, "argument too long to read")
            addr += len(data) - off
            data, off = self.page(addr)
            end = data.find(b"\0", off)
        parts.append(data[off:end])
        if total + end - off > limit:
            raise OSError(errno.E2BIG, "argument too long to read")
        return b"".join(parts)

    def pointers(self, addr: int, wide: bool) -> list[int]:
        """A NULL-terminated pointer array (argv, envp) at ``addr``; NULL is an empty one."""
        size = 8 if wide else 4
        out: list[int] = []
        while addr:
            data = self.read(addr, max(size, PAGE - addr % PAGE))
            whole = len(data) - len(data) % size
            if not whole:
                raise OSError(errno.EFAULT, "unreadable pointer array")
            ptrs = array.array("Q" if wide else "I", data[:whole])
            if sys.byteorder != "little":  # pragma: no cover (x86_64 and aarch64 are)
                ptrs.byteswap()
            try:
                end = ptrs.index(0)
            except ValueError:
                end = -1
            out += ptrs if end < 0 else ptrs[:end]
            if len(out) > MAX_ARGS:
                raise OSError(errno.E2BIG, "too many arguments to read")
            if end >= 0:
                return out
            addr += whole
        return out

    def strings(self, ptrs: list[int], limit: int) -> list[bytes]:
        out, total = [], 0
        for ptr in ptrs:
            text = self.cstr(ptr, max(0, limit - total))
            total += len(text) + 1
            if total > limit:
                raise OSError(errno.E2BIG, "arguments too long to read")
            out.append(text)
        return out


class EnvFilter:
    """Which variables of an exec's environment to read: the names and name prefixes the rules
    look at. Of the other variables only the names are looked at (remembering environments
    by their bytes does not pay: their pages hold the shell's changing heap too)."""

    __slots__ = ("longest", "names", "prefixes")

    def __init__(self, names: frozenset[bytes], prefixes: tuple[bytes, ...] = ()) -> None:
        self.names, self.prefixes = names, prefixes
        self.longest = max(map(len, (*names, *prefixes)), default=0) + 1

    def pick(self, mem: _Mem, ptrs: list[int]) -> list[bytes]:
        longest, names, prefixes = self.longest, self.names, self.prefixes
        mem.fetch(set(map(_MASK.__and__, ptrs)))
        pages = mem.pages
        found = []
        for ptr in ptrs:
            base = ptr & _MASK
            data = pages.get(base)
            if data is None:
                data, _ = mem.page(ptr)
            off = ptr - base
            if len(data) - off < longest:  # near the end of its page
                data, off = mem.read(ptr, longest), 0
                if not data:
                    raise OSError(errno.EFAULT, "unreadable string")
            eq = data.find(b"=", off, off + longest)
            if (eq >= 0 and data[off:eq] in names) or data.startswith(prefixes, off):
                found.append(mem.cstr(ptr, MAX_BYTES))
        return found


_ABIS: dict[tuple[int, int], tuple[bool, bool]] = {}


def _abi(n: Notification) -> tuple[bool, bool]:
    """(64-bit pointers, execveat) for this notification's ABI and call."""
    found = _ABIS.get((n.arch, n.nr))
    if found is not None:
        return found
    for arch, nrs, wide in _arch()[1]:
        if n.arch == arch and n.nr in nrs:
            found = _ABIS[(n.arch, n.nr)] = (wide, n.nr in _EXECVEAT)
            return found
    raise OSError(errno.ENOSYS, f"not an exec call (arch {n.arch:#x}, nr {n.nr})")


def read_exec(n: Notification, env: bool = False,
              env_filter: EnvFilter | None = None) -> ExecRequest:
    """Path, argv and working directory of the waiting exec ``n`` (with ``env`` its whole
    environment; with ``env_filter`` only the variables it wants). Raises
    OSError when they cannot be read (the caller refuses: nothing unread is allowed)."""
    wide, at = _abi(n)
    mask = (1 << 64) - 1 if wide else 0xFFFFFFFF
    path_ptr, argv_ptr, envp_ptr = n.args[1:4] if at else n.args[0:3]
    mem = _Mem(n.pid)
    try:
        mem.fetch({path_ptr & mask & _MASK, argv_ptr & mask & _MASK,
                   envp_ptr & mask & _MASK if env or env_filter else 0} - {0})
        raw_path = mem.cstr(path_ptr & mask, 4096)
        addrs = mem.pointers(argv_ptr & mask, wide)
        mem.fetch(set(map(_MASK.__and__, addrs)))
        argv = mem.strings(addrs, MAX_BYTES)
        environ: list[bytes] = []
        if env:
            ptrs = mem.pointers(envp_ptr & mask, wide)
            mem.fetch(set(map(_MASK.__and__, ptrs)))
            environ = mem.strings(ptrs, MAX_BYTES)
        elif env_filter is not None:
            environ = env_filter.pick(mem, mem.pointers(envp_ptr & mask, wide))
    finally:
        mem.close()
    cwd = os.readlink(f"/proc/{n.pid}/cwd")
    path = os.fsdecode(raw_path)
    if at:
        dirfd = n.args[0] & 0xFFFFFFFF
        if dirfd != AT_FDCWD & 0xFFFFFFFF and not path.startswith("/"):
            base = os.readlink(f"/proc/{n.pid}/fd/{dirfd}")
            path = os.path.join(base, path) if path else base
    if path and not path.startswith("/") and "/" in path:
        path = os.path.normpath(os.path.join(cwd, path))
    req = ExecRequest(path, tuple(map(os.fsdecode, argv)), cwd, tuple(argv), tuple(addrs))
    req.env_raw = environ
    return req


def environment(items: list[bytes], without: frozenset[bytes] = frozenset()) -> dict[str, str]:
    """``NAME=value`` entries (as read with ``read_exec(env=True)``) as a mapping, leaving out
    those in ``without`` (the same entries the agent started with: decoded only when new)."""
    out: dict[str, str] = {}
    for item in items:
        if item in without:
            continue
        name, eq, value = item.partition(b"=")
        if eq:
            out[name.decode("utf-8", "surrogateescape")] = value.decode("utf-8",
                                                                        "surrogateescape")
    return out


def rewrite_arg(pid: int, addr: int, old: bytes, new: bytes) -> bool:
    """Replace the waiting exec's argument at ``addr`` (still ``old``) with ``new`` padded with
    spaces to the same length, in place: the refusal of a shell tool call runs ``exit 126``
    instead of the script, so an agent that drops a failed spawn's stderr still reads why."""
    if len(new) > len(old):
        return False
    fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
    try:
        if os.pread(fd, len(old) + 1, addr) != old + b"\0":
            return False
        return os.pwrite(fd, new.ljust(len(old), b" "), addr) == len(old)
    finally:
        os.close(fd)


def proc_stat(pid: int) -> tuple[int, int]:
    """(parent's thread group id, start time) of ``pid``: one read, the hot path's."""
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        stat = os.read(fd, 4096)
    finally:
        os.close(fd)
    fields = stat[stat.rindex(b")") + 2:].split()  # comm may hold anything: after the last ')'
    return int(fields[1]), int(fields[19])


def proc_identity(pid: int) -> tuple[int, int, int]:
    """(thread group id, parent's thread group id, start time) of ``pid``."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # comm is in parentheses and may hold anything: split after the last ')'
    fields = stat[stat.rindex(b")") + 2:].split()
    ppid, start = int(fields[1]), int(fields[19])
    tgid = pid
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"Tgid:"):
                tgid = int(line.split()[1])
                break
    return tgid, ppid, start


PIDFD_OPEN, PIDFD_GETFD = 434, 438  # the same on every architecture since 5.3


def write_to_stderr(pid: int, text: str) -> bool:
    """Write ``text`` to fd 2 of ``pid`` (``pidfd_getfd``: the reason a refused exec reaches
    the command's own stderr). Best effort; False when it could not be written."""
    libc = _c()
    pidfd = libc.syscall(ctypes.c_long(PIDFD_OPEN), ctypes.c_long(pid), ctypes.c_long(0))
    if pidfd < 0:
        return False
    try:
        fd = libc.syscall(ctypes.c_long(PIDFD_GETFD), ctypes.c_long(pidfd), ctypes.c_long(2),
                          ctypes.c_long(0))
        if fd < 0:
            return False
        try:
            return _write_nonblocking(fd, text.encode("utf-8", "replace")[:4096])
        except OSError:
            return False
        finally:
            os.close(fd)
    finally:
        os.close(pidfd)


def _write_nonblocking(fd: int, data: bytes) -> bool:
    """Write without ever blocking and without touching the shared file status flags (the
    command still owns this file description): a pipe only when it has room for the whole
    (atomic, at most PIPE_BUF) line, a socket with MSG_DONTWAIT, anything else directly."""
    import fcntl
    import stat
    import termios

    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode):
        unread = ctypes.c_int(0)
        size = fcntl.fcntl(fd, 1032)  # F_GETPIPE_SZ
        if fcntl.ioctl(fd, termios.FIONREAD, unread) != 0 or size - unread.value < len(data):
            return False
        return os.write(fd, data) == len(data)
    if stat.S_ISSOCK(mode):
        s = socket.socket(fileno=os.dup(fd))
        try:
            return s.send(data, socket.MSG_DONTWAIT) == len(data)
        finally:
            s.close()
    return os.write(fd, data) == len(data)


def probe(timeout: float = 5.0) -> str | None:
    """End to end, as a sandbox's init does it: a child installs the filter and hands over the
    listener; its exec of /bin/true is received, read and let through. None when it works,
    else what failed (``corral doctor``)."""
    import select

    problem = kernel_support()
    if problem is not None:
        return problem
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            mine.close()
            try:
                fd = install_listener()
            except OSError as exc:
                theirs.send(b"E" + str(exc.strerror or exc).encode())
                os._exit(3)
            send_listener(theirs, fd)
            os.close(fd)
            theirs.recv(1)
            os.execv("/bin/true", ["true", "corral-probe"])
        finally:
            os._exit(code)
    theirs.close()
    listener = None
    try:
        mine.settimeout(timeout)
        note, listener = recv_listener(mine)
        if listener is None:
            return (note[1:].decode(errors="replace") or "the probe process failed") + \
                " (installing the exec notification filter)"
        mine.send(b"k")
        if not select.select([listener], [], [], timeout)[0]:
            return "no notification arrived for the probe's exec"
        n = receive(listener)
        if n is None:
            return "the probe's exec notification vanished"
        req = read_exec(n)
        ok = still_waiting(listener, n.id) and answer(listener, n.id)
        if req.argv != ("true", "corral-probe") or not ok:
            return f"the probe's exec was misread ({req.argv!r}) or could not be answered"
        return None
    except OSError as exc:
        return f"exec notification probe failed: {exc.strerror or exc}"
    finally:
        if listener is not None:
            os.close(listener)
        mine.close()
        os.waitpid(pid, 0)
