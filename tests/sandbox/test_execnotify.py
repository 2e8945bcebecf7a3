"""Seccomp user notification for exec (``corral.sandbox.execnotify``) against the real kernel,
outside any sandbox: a forked child installs the filter and hands over the listener, as the
sandbox's init does."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.sandbox import execnotify as en


@contextmanager
def child(run: Callable[[], None]) -> Iterator[tuple[int, int, socket.socket]]:
    """(pid, listener, the child's report socket): ``run`` executes in the child after the
    filter is installed; whatever it raises is reported as one line."""
    mine, theirs = socket.socketpair()
    report_r, report_w = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            mine.close()
            fd = en.install_listener()
            en.send_listener(theirs, fd)
            os.close(fd)
            theirs.recv(1)
            run()
        except OSError as exc:
            report_w.send(f"{type(exc).__name__} {exc.errno}".encode())
        finally:
            os._exit(0)
    theirs.close()
    report_w.close()
    _, fd = en.recv_listener(mine)
    assert fd is not None and en.is_listener(fd)
    mine.send(b"k")
    try:
        yield pid, fd, report_r
    finally:
        os.close(fd)
        with contextlib.suppress(ChildProcessError):  # reaped by the test already
            os.waitpid(pid, 0)
        mine.close()
        report_r.close()


def next_exec(fd: int) -> en.Notification:
    assert select.select([fd], [], [], 10)[0], "no exec notification"
    n = en.receive(fd)
    assert n is not None
    return n


def test_probe_works_on_this_kernel():
    assert en.kernel_support() is None
    assert en.probe() is None


def test_a_refused_exec_fails_with_eacces_in_the_process():
    with child(lambda: os.execv("/bin/true", ["true", "refuse-me"])) as (_, fd, report):
        n = next_exec(fd)
        req = en.read_exec(n)
        assert req.path == "/bin/true" and req.argv == ("true", "refuse-me")
        assert en.still_waiting(fd, n.id)
        assert en.answer(fd, n.id, errno.EACCES)
        assert report.recv(100) == f"PermissionError {errno.EACCES}".encode()


def test_long_argv_and_the_environment_are_read_whole():
    args = ["/bin/true", *[f"arg-{i}-" + "x" * (i % 300) for i in range(3000)]]
    env = {f"V{i}": "y" * (i % 500) for i in range(400)}
    env["GIT_EXTERNAL_DIFF"] = "rm -rf x"
    with child(lambda: os.execve("/bin/true", args, env)) as (_, fd, _):
        n = next_exec(fd)
        req = en.read_exec(n, env=True)
        assert req.argv == tuple(args)
        assert en.environment(req.env_raw) == env
        base = frozenset(e for e in req.env_raw if not e.startswith(b"GIT_"))
        assert en.environment(req.env_raw, base) == {"GIT_EXTERNAL_DIFF": "rm -rf x"}
        assert en.answer(fd, n.id)


def test_fexecve_is_read_as_the_file_it_runs():
    def run() -> None:
        exe = os.open("/bin/true", os.O_RDONLY)
        os.execve(exe, ["true", "by-fd"], {})  # execveat(fd, "", ..., AT_EMPTY_PATH)

    with child(run) as (_, fd, _):
        n = next_exec(fd)
        req = en.read_exec(n)
        assert os.path.realpath(req.path) == os.path.realpath("/bin/true")
        assert req.argv == ("true", "by-fd")
        assert en.answer(fd, n.id)


def test_a_shell_script_is_replaced_in_place_before_the_exec_continues():
    r, w = os.pipe()

    def run() -> None:
        os.dup2(w, 1)
        os.execv("/bin/sh", ["sh", "-c", "echo the-original-script-ran"])

    with child(run) as (_, fd, _):
        n = next_exec(fd)
        req = en.read_exec(n)
        assert en.rewrite_arg(n.pid, req.addrs[2], req.raw[2], b"echo replaced")
        assert not en.rewrite_arg(n.pid, req.addrs[2], b"something else", b"x")  # checked
        assert en.answer(fd, n.id)
        os.close(w)
        out = b""
        while chunk := os.read(r, 1024):
            out += chunk
        os.close(r)
    assert out == b"replaced\n"


def test_a_dead_process_is_no_longer_waiting():
    with child(lambda: os.execv("/bin/true", ["true"])) as (pid, fd, _):
        n = next_exec(fd)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        assert not en.still_waiting(fd, n.id)
        assert not en.answer(fd, n.id)


HIDDEN = en.EnvFilter(frozenset({b"GIT_EXTERNAL_DIFF", b"PAGER"}), (b"GIT_CONFIG_KEY_",))


def test_only_the_variables_asked_for_are_read_whole():
    env = {f"V{i}": "y" * (i % 500) for i in range(400)}
    env.update({"GIT_EXTERNAL_DIFF": "rm -rf x", "GIT_CONFIG_KEY_0": "core.pager",
                "PAGERX": "not this", "PAGE": "nor this", "PAGER": "less " + "z" * 9000})
    with child(lambda: os.execve("/bin/true", ["/bin/true", "a"], env)) as (_, fd, _):
        n = next_exec(fd)
        req = en.read_exec(n, env_filter=HIDDEN)
        assert req.argv == ("/bin/true", "a")
        assert sorted(req.env_raw) == sorted(f"{k}={env[k]}".encode() for k in (
            "GIT_EXTERNAL_DIFF", "GIT_CONFIG_KEY_0", "PAGER"))
        assert en.answer(fd, n.id)


def _exec_from_crafted_memory() -> None:
    """In the child: execve with argv, envp and their strings laid across page boundaries
    of an anonymous mapping whose fourth page is inaccessible (PROT_NONE)."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    area = mmap.mmap(-1, 4 * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.execve.argtypes = (ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p)

    def put(off: int, data: bytes) -> int:
        area[off:off + len(data)] = data
        return base + off

    path = put(16, b"/bin/true\0")
    straddling = put(page - 50, b"straddle-" + b"s" * 100 + b"\0")  # pages 0 and 1
    last = b"PAGER=l\0"  # shorter than the longest name asked for; its NUL is the last byte
    at_end = put(3 * page - len(last), last)
    other = put(page + 200, b"PAGERX=no\0")
    diff = put(page + 300, b"GIT_EXTERNAL_DIFF=rm\0")
    argv = put(2 * page - 12, struct.pack("<QQQ", path, straddling, 0))  # straddles too
    envp = put(1024, struct.pack("<QQQQ", other, at_end, diff, 0))
    assert libc.mprotect(base + 3 * page, page, 0) == 0
    libc.execve(b"/bin/true", argv, envp)
    raise OSError(ctypes.get_errno(), "execve")


def test_strings_and_pointer_arrays_across_pages_and_before_unreadable_memory():
    with child(_exec_from_crafted_memory) as (_, fd, _):
        n = next_exec(fd)
        req = en.read_exec(n, env_filter=HIDDEN)
        assert req.path == "/bin/true"
        assert req.argv == ("/bin/true", "straddle-" + "s" * 100)
        assert req.env_raw == [b"PAGER=l", b"GIT_EXTERNAL_DIFF=rm"]
        assert en.read_exec(n, env=True).env_raw == [
            b"PAGERX=no", b"PAGER=l", b"GIT_EXTERNAL_DIFF=rm"]
        assert en.answer(fd, n.id)


_NAMES = st.sampled_from([b"PAGER", b"PAGERX", b"PAGE", b"GIT_EXTERNAL_DIFF",
                          b"GIT_CONFIG_KEY_3", b"GIT_CONFIG", b"HOME", b"X"])
_TEXT = st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"") or b"x")


@settings(max_examples=25, deadline=None)
@given(argv=st.lists(_TEXT, min_size=1, max_size=12),
       env=st.lists(st.tuples(_NAMES, st.binary(max_size=200).map(
           lambda b: b.replace(b"\0", b""))), max_size=12))
def test_any_argv_and_environment_read_back_exactly(argv, env):
    with child(lambda: os.execve(b"/bin/true", argv, dict(env))) as (_, fd, _):
        n = next_exec(fd)
        whole = en.read_exec(n, env=True)
        picked = en.read_exec(n, env_filter=HIDDEN)
        assert en.answer(fd, n.id)
    assert list(whole.raw) == argv
    kept = {k: v for k, v in env}  # execve with a dict: the last value of each name
    assert sorted(whole.env_raw) == sorted(k + b"=" + v for k, v in kept.items())
    assert sorted(picked.env_raw) == sorted(
        e for e in (k + b"=" + v for k, v in kept.items())
        if e.partition(b"=")[0] in (b"PAGER", b"GIT_EXTERNAL_DIFF")
        or e.startswith(b"GIT_CONFIG_KEY_"))


FALLBACK = '''
import errno, os, sys
import pyseccomp as sc
f = sc.SyscallFilter(sc.ALLOW)
f.add_rule(sc.ERRNO(errno.EPERM), "process_vm_readv")
f.load()
sys.path.insert(0, sys.argv[1])
from tests.sandbox import test_execnotify as t
opened = []
real_open = os.open
def counting_open(path, *a, **kw):
    opened.append(str(path))
    return real_open(path, *a, **kw)
t.en.os.open = counting_open
t.test_long_argv_and_the_environment_are_read_whole()
t.test_only_the_variables_asked_for_are_read_whole()
t.test_strings_and_pointer_arrays_across_pages_and_before_unreadable_memory()
t.test_any_argv_and_environment_read_back_exactly()
assert sum(p.endswith("/mem") for p in opened) >= 2, opened
print("fallback-ok")
'''


def test_where_process_vm_readv_is_refused_proc_pid_mem_reads_the_same():
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    r = subprocess.run([sys.executable, "-c", FALLBACK, root], capture_output=True, text=True,
                       timeout=60, cwd=root)
    assert r.returncode == 0 and "fallback-ok" in r.stdout, r.stdout + r.stderr
