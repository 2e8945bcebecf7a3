"""A real PostgreSQL 15 (Debian's package) in a temporary directory, for tests and benchmarks.

initdb and postgres refuse to run as root, so as root they run as ``nobody`` (runuser). The
server listens on a loopback TCP port only; trust authentication is fine there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres(port: int, *, fsync: bool = False) -> Iterator[str]:
    """Yields a ``postgresql://`` URL of a fresh cluster; removes it afterwards."""
    if not (BIN / "initdb").exists():
        raise RuntimeError("PostgreSQL 15 is missing: run scripts/setup --dev")
    root = Path(tempfile.mkdtemp(prefix="corral-pg-"))
    os.chmod(root, 0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "nobody", "nogroup")
        shutil.chown(sock, "nobody", "nogroup")
    subprocess.run(_as_postgres_user([str(BIN / "initdb"), "-D", str(data), "-U", "corral",
                                      "-A", "trust", "--no-sync", "-E", "UTF8"]),
                   check=True, capture_output=True)
    proc = subprocess.Popen(_as_postgres_user([
        str(BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
        "-c", "listen_addresses=127.0.0.1", "-c", f"fsync={'on' if fsync else 'off'}",
        "-c", "max_connections=100", "-c", "shared_buffers=128MB"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"postgresql://corral@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {proc.stderr.read().decode()}"
                                   if proc.stderr else "postgres did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(root, ignore_errors=True)
