"""Everyday work that must still succeed inside the :workspace sandbox."""

from __future__ import annotations

import base64
import hashlib
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.sandbox.conftest import Box, require_tool

pytestmark = pytest.mark.slow

GIT_ID = ("-c user.name=t -c user.email=t@example.invalid -c init.defaultBranch=main "
          "-c commit.gpgsign=false")


def test_git_init_add_commit(box: Box) -> None:
    require_tool("git")
    (box.ws / "a.txt").write_text("one\n")
    r = box.sh(f"git {GIT_ID} init -q . && git {GIT_ID} add -A && "
               f"git {GIT_ID} commit -qm first && git log --oneline")
    assert r.returncode == 0, r.stderr
    assert "first" in r.stdout
    # a second run sees an existing .git: hooks/config are now protected, commits still work
    (box.ws / "b.txt").write_text("two\n")
    r = box.sh(f"git {GIT_ID} add -A && git {GIT_ID} commit -qm second && "
               f"git status --porcelain && git log --oneline | wc -l")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == ["2"], r.stdout  # clean tree: no placeholders
    assert not any(p.name.startswith(".envrc") for p in box.ws.iterdir())


def _wheel(dest: Path) -> Path:
    """A minimal pure-Python wheel, built by hand (no network, no build backend)."""
    name, ver = "corraldemo", "1.0"
    files = {
        f"{name}/__init__.py": b"def hello():\n    return 'hello from wheel'\n",
        f"{name}-{ver}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n".encode(),
        f"{name}-{ver}.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-{ver}.dist-info/RECORD,,")
    whl = dest / f"{name}-{ver}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr(f"{name}-{ver}.dist-info/RECORD", "\n".join(record) + "\n")
    return whl


def test_venv_and_pip_install_local_wheel(box: Box) -> None:
    whl = _wheel(box.ws)
    py = sys.executable
    r = box.sh(f"{py} -m venv venv && venv/bin/pip install -q --no-index {whl.name} && "
               f"venv/bin/python -c 'import corraldemo; print(corraldemo.hello())'",
               timeout=180)
    assert r.returncode == 0, r.stderr
    assert "hello from wheel" in r.stdout


def test_pytest_runs(box: Box) -> None:
    (box.ws / "test_x.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    r = box.sh(f"{sys.executable} -m pytest -q test_x.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout


def test_make(box: Box) -> None:
    require_tool("make")
    (box.ws / "Makefile").write_text(textwrap.dedent("""\
        out.txt: in.txt
        \tcp in.txt out.txt
        \techo built >> out.txt
        """))
    (box.ws / "in.txt").write_text("src\n")
    r = box.sh("make")
    assert r.returncode == 0, r.stderr
    assert (box.ws / "out.txt").read_text() == "src\nbuilt\n"


def test_npm_test(box: Box) -> None:
    require_tool("node")
    require_tool("npm")
    (box.ws / "package.json").write_text(
        '{"name": "demo", "version": "1.0.0", "scripts": {"test": "node test.js"}}\n')
    (box.ws / "test.js").write_text(
        "const assert = require('assert');\nassert.strictEqual(1 + 1, 2);\n"
        "require('fs').writeFileSync('result.txt', 'ok');\nconsole.log('tests passed');\n")
    r = box.sh("npm test", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tests passed" in r.stdout
    assert (box.ws / "result.txt").read_text() == "ok"
