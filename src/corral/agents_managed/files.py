"""Where the managed files go, what changing them would do, writing them, and drift.

``root`` re-roots every production path (``/etc/codex/requirements.toml`` under ``--root DIR``
is ``DIR/etc/codex/requirements.toml``); production uses ``/``. Files are written the way the
agents trust administrator files: owned by root, mode 0644, in root-owned 0755 directories,
atomically (a temporary file in the same directory, fsynced, renamed over). What was written
is recorded in a manifest (``/var/lib/corral/managed-agents.json``, SHA-256 per file) so that
``check`` can tell a file edited by hand from one that is merely behind the requirements.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.agents_managed.model import ManagedFile

MANIFEST = "/var/lib/corral/managed-agents.json"
MODE = 0o644
ROOT_ENV = "CORRAL_AGENTS_ROOT"  # tests and images: where "/" is


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or "/").absolute()


class NeedsRoot(Exception):
    pass


def placed(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Change:
    file: ManagedFile
    target: Path
    old: str | None  # None: missing (or unreadable as text)
    diff: str  # unified diff, "" when the file already says exactly this

    @property
    def changed(self) -> bool:
        return self.old != self.file.text


@dataclass(frozen=True)
class Drift:
    agent: str
    path: str  # the production path
    kind: str  # missing | changed by hand | stale | not written by corral | owner/mode
    detail: str

    def line(self) -> str:
        return f"{self.path} ({self.agent}): {self.kind}: {self.detail}"


def _read(target: Path) -> str | None:
    try:
        return target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"<unreadable: {exc}>"


def plan(root: Path, files: list[ManagedFile]) -> list[Change]:
    out = []
    for f in files:
        target = placed(root, f.path)
        old = _read(target)
        diff = "" if old == f.text else "".join(difflib.unified_diff(
            (old or "").splitlines(keepends=True), f.text.splitlines(keepends=True),
            fromfile=f.path if old is not None else "/dev/null", tofile=f.path))
        out.append(Change(f, target, old, diff))
    return out


def read_manifest(root: Path) -> dict[str, Any]:
    try:
        doc = json.loads(placed(root, MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    files = doc.get("files") if isinstance(doc, dict) else None
    return files if isinstance(files, dict) else {}


def _mkdirs(root: Path, target: Path, as_root: bool) -> None:
    missing = []
    d = target.parent
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        d.mkdir(mode=0o755)
        os.chmod(d, 0o755)
        if as_root:
            os.chown(d, 0, 0)


def write_atomic(root: Path, target: Path, data: bytes) -> None:
    """``data`` to ``target``: 0644, root:root when we are root, atomically."""
    as_root = os.geteuid() == 0
    _mkdirs(root, target, as_root)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), MODE)
            if as_root:
                os.fchown(f.fileno(), 0, 0)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def check_writable(root: Path, changes: list[Change]) -> None:
    """NeedsRoot (one line) when the production paths would be written by a non-root user."""
    if os.geteuid() == 0 or root.resolve() != Path("/"):
        return
    first = next((c.file.path for c in changes if c.changed), MANIFEST)
    raise NeedsRoot(f"writing {first} needs root (the agents trust administrator files only "
                    "when root owns them): run it as root, or --root DIR to write elsewhere")


def apply(root: Path, changes: list[Change], sources: tuple[str, ...]) -> list[Change]:
    """Write every changed file, then the manifest; the changes written."""
    check_writable(root, changes)
    written = []
    for c in changes:
        if c.changed or _owner_mode(c.target):
            write_atomic(root, c.target, c.file.text.encode())
            written.append(c)
    manifest = read_manifest(root)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for c in changes:
        rec = manifest.get(c.file.path)
        kept = rec.get("applied_at") if isinstance(rec, dict) and not c.changed else None
        manifest[c.file.path] = {"agent": c.file.agent, "sha256": sha256(c.file.text.encode()),
                                 "applied_at": kept or now}
    doc = {"version": 1, "sources": list(sources), "files": dict(sorted(manifest.items()))}
    text = json.dumps(doc, indent=2) + "\n"
    if _read(placed(root, MANIFEST)) != text:
        write_atomic(root, placed(root, MANIFEST), text.encode())
    return written


def _owner_mode(target: Path) -> str:
    """What is wrong with the file's owner or mode ("" when nothing, or when it is missing)."""
    try:
        st = target.stat()
    except OSError:
        return ""
    problems = []
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
        problems.append(f"owned by {st.st_uid}:{st.st_gid}, not root")
    if st.st_mode & 0o7777 != MODE:
        problems.append(f"mode {st.st_mode & 0o7777:04o}, not {MODE:04o}")
    return ", ".join(problems)


def check(root: Path, files: list[ManagedFile]) -> list[Drift]:
    """Every way the files on disk differ from what the requirements generate now."""
    manifest = read_manifest(root)
    out = []
    for c in plan(root, files):
        f = c.file
        rec = manifest.get(f.path) if isinstance(manifest.get(f.path), dict) else None
        if c.old is None:
            out.append(Drift(f.agent, f.path, "missing", "run `corral agents apply`"))
            continue
        if not c.changed:
            pass
        elif rec is not None and sha256(c.old.encode()) != rec.get("sha256"):
            out.append(Drift(f.agent, f.path, "changed by hand",
                             f"differs from what corral wrote at {rec.get('applied_at')}"))
        elif rec is not None:
            out.append(Drift(f.agent, f.path, "stale",
                             "the requirements have changed since it was applied"))
        else:
            out.append(Drift(f.agent, f.path, "not written by corral",
                             "differs from what the requirements generate"))
        problem = _owner_mode(c.target)
        if problem:
            out.append(Drift(f.agent, f.path, "owner/mode", problem))
    return out


def applied_files(root: Path, agent: str) -> list[Path]:
    """Where corral wrote ``agent``'s managed files (from the manifest), under ``root``."""
    return [placed(root, path) for path, rec in sorted(read_manifest(root).items())
            if isinstance(rec, dict) and rec.get("agent") == agent]


def recorded_drift(root: Path) -> list[Drift]:
    """Drift against the manifest alone (no rendering, so nothing of the session side is
    needed: the fleet check-in calls this): files corral applied that are now missing,
    changed by hand, or lost their owner or mode. Staleness against the requirements is
    ``check``'s to say."""
    out = []
    for path, rec in sorted(read_manifest(root).items()):
        if not isinstance(rec, dict):
            continue
        agent = str(rec.get("agent", "?"))
        target = placed(root, path)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            out.append(Drift(agent, path, "missing", "run `corral agents apply`"))
            continue
        except OSError as exc:
            out.append(Drift(agent, path, "unreadable", str(exc.strerror)))
            continue
        if sha256(data) != rec.get("sha256"):
            out.append(Drift(agent, path, "changed by hand",
                             f"differs from what corral wrote at {rec.get('applied_at')}"))
        problem = _owner_mode(target)
        if problem:
            out.append(Drift(agent, path, "owner/mode", problem))
    return out
