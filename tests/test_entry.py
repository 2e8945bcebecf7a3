"""``corral.cli.entry.exit_now``: the fast paths' exit skips module teardown, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, sys, threading, time
from corral.cli.entry import exit_now
atexit.register(lambda: print("atexit ran", flush=True))
sys.stdout.write("buffered, not flushed")
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print(" thread finished"))).start()
exit_now(7)
"""


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          timeout=60)


def test_atexit_handlers_run_and_stdout_is_flushed() -> None:
    got = _run("plain")
    assert got.returncode == 7
    assert got.stdout == "buffered, not flushedatexit ran\n"


def test_a_live_non_daemon_thread_gets_the_normal_exit() -> None:
    got = _run("thread")
    assert got.returncode == 7
    assert "thread finished" in got.stdout and "atexit ran" in got.stdout


def test_stdout_that_cannot_be_flushed_is_an_error_status() -> None:
    code = ("import sys; from corral.cli.entry import exit_now\n"
            "class Gone:\n"
            "    def flush(self): raise BrokenPipeError(32, 'Broken pipe')\n"
            "sys.stdout = Gone(); exit_now(0)")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert got.returncode == 120


def test_a_reader_that_went_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """``corral policy check ... | head -c 0`` on a cache miss (the full check writes its
    answer) and ``corral --help | head -c 0``: before, a BrokenPipeError traceback; now no
    traceback, and status 141 (as for a process killed by SIGPIPE) when a write failed, or 120
    (as the interpreter reports it) when only the last flush did."""
    rules = tmp_path / "r.rules"
    rules.write_text('prefix_rule(pattern=["git", "push"], decision="forbidden")\n')
    env = {"CORRAL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    big = ["policy", "check", "-r", str(rules), "--", "git", "push", "x" * 70_000]  # > a buffer
    for args in (["policy", "check", "-r", str(rules), "--", "git", "push"], big, ["--help"]):
        read, write = os.pipe()
        os.close(read)  # nobody will read: the first write fails with EPIPE
        try:
            got = subprocess.run([sys.executable, "-m", "corral", *args], stdout=write,
                                 stderr=subprocess.PIPE, text=True, env=env, timeout=60)
        finally:
            os.close(write)
        assert got.returncode in (120, 141), got.stderr
        assert "Traceback" not in got.stderr and "BrokenPipe" not in got.stderr


def test_one_shot_paths_collect_cycles_less_often_the_full_cli_as_usual(tmp_path: Path) -> None:
    """The raised gen-0 threshold is for the fast paths' imports; a command of the full CLI
    (``corral run``, ``corral server`` run for days) gets the interpreter's defaults back."""
    code = ("import atexit, gc, sys\n"
            "default = gc.get_threshold()\n"
            "atexit.register(lambda: print(gc.get_threshold() == default, "
            "gc.get_threshold()[0], flush=True))\n"
            "sys.argv = ['corral', *sys.argv[1:]]\n"
            "from corral.cli.entry import main\n"
            "main()\n")
    env = {**os.environ, "HOME": str(tmp_path), "CORRAL_HOME": str(tmp_path / ".corral")}
    one_shot = subprocess.run([sys.executable, "-c", code, "sandbox", "--", "true"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert one_shot.returncode == 0, one_shot.stderr
    assert one_shot.stdout.split() == ["False", "50000"]
    full = subprocess.run([sys.executable, "-c", code, "doctor", "--json"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert full.stdout.split()[-2:] == ["True", "700"], full.stdout[-300:] + full.stderr


ROOT = Path(__file__).resolve().parent.parent


def _fake_env(tmp_path: Path, *, pth: str = "", system_site: bool = False) -> tuple[Path, Path]:
    """A virtual environment holding bin/corral as setup installs it (``#!... -S``), with corral
    and its dependencies reached through .pth files, and a sitecustomize that leaves a mark
    when ``site`` runs. Returns (the command, the mark)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    if system_site:
        cfg = venv / "pyvenv.cfg"
        cfg.write_text(cfg.read_text().replace("include-system-site-packages = false",
                                               "include-system-site-packages = true"))
    site_dir = next((venv / "lib").glob("python3*/site-packages"))
    custom = tmp_path / "custom"
    custom.mkdir()
    mark = tmp_path / "site-ran"
    (custom / "sitecustomize.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    import sysconfig

    import corral

    deps = Path(sysconfig.get_paths()["purelib"])  # typer and the rest, for the full CLI
    src = Path(corral.__file__).parent.parent
    (site_dir / "paths.pth").write_text(f"# comment\n{src}\n{deps}\n{custom}\n")
    (site_dir / "distutils-precedence.pth").write_text("import os; os.environ.get('X')\n")
    if pth:
        (site_dir / "extra.pth").write_text(pth)
    script = ROOT / "bin" / "corral"
    text = script.read_text().split("\n", 1)[1]
    cmd = venv / "bin" / "corral"
    cmd.write_text(f"#!{venv / 'bin' / 'python'} -S\n{text}")
    cmd.chmod(0o755)
    return cmd, mark


def _policy_check(cmd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "r.rules"
    rules.write_text('prefix_rule(pattern=["git", "push"], decision="forbidden")\n')
    env = {"CORRAL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    return subprocess.run([str(cmd), "policy", "check", "-r", str(rules), "--", "git", "push"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)


def test_the_command_skips_site_on_a_one_shot_path_and_runs_it_for_the_full_cli(
        tmp_path: Path) -> None:
    """bin/corral starts without ``site`` (~2 ms of every agent action) and puts the
    environment's paths on sys.path itself: the one-shot path finds corral through a .pth file
    without site having run; the full CLI (typer, from the environment) runs site first."""
    cmd, mark = _fake_env(tmp_path)
    got = _policy_check(cmd, tmp_path)
    assert got.returncode == 0, got.stderr
    assert '"decision":"forbidden"' in got.stdout
    assert not mark.exists()
    full = subprocess.run([str(cmd), "doctor", "--help"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert full.returncode == 0, full.stderr
    assert "Usage:" in full.stdout
    assert mark.exists()


def test_a_pth_file_that_runs_code_or_system_packages_get_site_as_usual(tmp_path: Path) -> None:
    """Where the script cannot tell what site would do (a .pth line that runs code other than
    setuptools' distutils shim, an environment that also sees the system's packages), site
    runs before anything else, on the one-shot paths too."""
    cmd, mark = _fake_env(tmp_path / "a", pth="import os\n")
    got = _policy_check(cmd, tmp_path / "a")
    assert got.returncode == 0, got.stderr
    assert mark.exists()
    cmd, mark = _fake_env(tmp_path / "b", system_site=True)
    got = _policy_check(cmd, tmp_path / "b")
    assert got.returncode == 0, got.stderr
    assert mark.exists()


def test_deferred_modules_load_on_first_use_and_then_are_the_real_modules() -> None:
    """``corral sandbox``/``corral exec`` enter ipaddress and locale as stand-ins: a plain
    run never loads them; the first lookup does, from-imports and isinstance work, later
    importers get the real module, and the stand-in follows the module's state."""
    code = (
        "import sys\n"
        "from corral.cli.entry import defer_unused_modules\n"
        "defer_unused_modules()\n"
        "import pathlib, subprocess, ipaddress, locale\n"
        "print(type(sys.modules['ipaddress']).__name__, type(sys.modules['locale']).__name__)\n"
        "from ipaddress import ip_address\n"
        "addr = ip_address('127.0.0.1')\n"
        "print(isinstance(addr, ipaddress.IPv4Address), addr.is_loopback)\n"
        "import ipaddress as again\n"
        "print(type(again).__name__, again is not ipaddress, again.IPv4Address is "
        "ipaddress.IPv4Address)\n"
        "again.MARK = 1\n"
        "print(ipaddress.MARK, bool(locale.getpreferredencoding(False)))\n"
        "out = subprocess.run(['echo', 'text'], capture_output=True, text=True).stdout\n"
        "print(out.strip())\n"
    )
    assert _lines_without_site(code) == ["Deferred Deferred", "True True", "module True True",
                                         "1 True", "text"]


def _lines_without_site(code: str) -> list[str]:
    """What ``code`` prints, run with ``python -S`` and corral's sources on the path."""
    got = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert got.returncode == 0, got.stderr
    return got.stdout.split("\n")[:-1]


def test_a_deferred_submodule_serves_from_imports_and_its_package_until_first_call() -> None:
    """``urllib.parse`` is deferred with ``quote_from_bytes`` forwarded (pathlib imports it
    by name): importing pathlib and taking the function leaves the module unloaded; calling
    it loads the real module, which then is the package's attribute and in ``sys.modules``;
    a from-import of another name loads it too."""
    code = (
        "import sys\n"
        "from corral.cli.entry import defer_unused_modules\n"
        "defer_unused_modules()\n"
        "import pathlib, urllib\n"
        "from urllib.parse import quote_from_bytes\n"
        "print(type(sys.modules['urllib.parse']).__name__, urllib.parse is "
        "sys.modules['urllib.parse'], type(sys.modules['ntpath']).__name__)\n"
        "print(pathlib.Path('/a b').as_uri(), quote_from_bytes(b'c d'))\n"
        "real = sys.modules['urllib.parse']\n"
        "print(type(real).__name__, urllib.parse is real, hasattr(real, '__path__'))\n"
        "import ntpath\n"
        "from ntpath import join\n"
        "print(join('c:', 'x'), type(sys.modules['ntpath']).__name__)\n"
    )
    assert _lines_without_site(code) == ["Deferred True Deferred", "file:///a%20b c%20d",
                                         "module True False", "c:x module"]


def test_the_sandbox_path_leaves_the_deferred_modules_unloaded(tmp_path: Path) -> None:
    """A real ``corral sandbox -- true`` loads none of the deferred modules, and imports
    none of those its posix_spawn start does without (``sandbox.process.DirectProcess``)."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print(sorted(n for n in ('ipaddress', 'locale', "
            "'ntpath', 'urllib.parse') "
            "if type(sys.modules.get(n)).__name__ == 'module'), sorted(n for n in "
            "('subprocess', 'threading', 'contextlib', 'selectors') if n in sys.modules), "
            "flush=True))\n"
            "sys.argv = ['corral', 'sandbox', '--', 'true']\n"
            "from corral.cli.entry import main\n"
            "main()\n")
    env = {**os.environ, "HOME": str(tmp_path), "CORRAL_HOME": str(tmp_path / ".corral")}
    import sysconfig

    # as bin/corral starts it: without site (which imports locale itself), with the
    # environment's packages (pyseccomp) on the path
    path = f"{ROOT / 'src'}:{sysconfig.get_paths()['purelib']}"
    # the first run in a fresh home probes bwrap and compiles the seccomp filter (both cached)
    runs = [subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path, env={**env, "PYTHONPATH": path})
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert runs[1].stdout.strip() == "[] []"
