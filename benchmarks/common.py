"""What every benchmark script shares: the machine line it prints first, and the rule that a
peer which cannot run stops the benchmark (a comparison with a peer silently missing would
look like a result).

Every script prints ``machine()`` before its figures, so a table copied into
benchmarks/README.md always says where it was measured.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_BIN = ROOT / ".tools" / "node" / "node_modules" / ".bin"
CODEX_NATIVE = (ROOT / ".tools" / "node" / "node_modules" / "@openai" / "codex-linux-x64" /
                "vendor" / "x86_64-unknown-linux-musl" / "bin" / "codex")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "? GiB"


def machine() -> str:
    """One line: host, CPU, cores, memory, kernel, Python, bubblewrap, load average now."""
    bwrap = shutil.which("bwrap")
    bwrap_version = "no bubblewrap"
    if bwrap:
        bwrap_version = subprocess.run([bwrap, "--version"], capture_output=True,
                                       text=True).stdout.strip()
    return (f"machine: {platform.node()}: {_cpu_model()}, {os.cpu_count()} cpus, "
            f"{_memory_gib()}, Linux {platform.release()}, Python {platform.python_version()}, "
            f"{bwrap_version}, load {os.getloadavg()[0]:.2f}")


def require_peer(name: str, path: Path | str | None, why: str = "scripts/setup --dev") -> str:
    """The peer's path, or exit with a one-line reason: a missing peer is never dropped from a
    side-by-side table without a word."""
    if path is None or not Path(path).exists():
        raise SystemExit(f"benchmark: peer {name} is missing ({path}); install it with {why}, "
                         f"or pass --no-peers to measure corral alone")
    return str(path)
