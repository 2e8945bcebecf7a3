"""Violation feedback: turn a failed command's stderr into "which control blocked what".

Heuristic by nature: tools word errors differently. We only report a path when the error text
names it and the plan explains the denial (protected, hidden, outside the writable roots).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from corral.sandbox.profiles import Access, NetworkMode, effective_access, normalise
from corral.sandbox.protected import is_protected_name

if TYPE_CHECKING:
    from corral.sandbox.plan import SandboxPlan

_FS_ERRORS = re.compile(
    r"Read-only file system|Permission denied|Operation not permitted|Is a directory|"
    r"Device or resource busy|Invalid cross-device link|EROFS|EACCES|EPERM|EBUSY|EISDIR|EXDEV",
    re.IGNORECASE,
)
_NET_ERRORS = re.compile(
    r"Network is unreachable|Temporary failure in name resolution|Could not resolve|"
    r"Name or service not known|Address family not supported|ENETUNREACH|EAI_AGAIN|"
    r"getaddrinfo|socket.*(Operation not permitted|EPERM|Permission denied)|"
    r"(Operation not permitted|Permission denied).*socket|No address associated|"
    r"Failed to establish a new connection|Couldn't connect to server|connect EPERM",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"['\"‘`]([^'\"’`\n]+)['\"’`]")
_TOKEN = re.compile(r"(?:(?<=\s)|^)((?:/|\./|\.\./|~/|\.)?[\w.@+~-]*(?:/[\w.@+~-]*)*)(?=:)")


@dataclass(frozen=True)
class Violation:
    kind: str  # "write" | "read" | "network"
    target: str
    reason: str

    def line(self) -> str:
        if self.kind == "network":
            return f"corral: sandbox: blocked network access ({self.reason})"
        return f"corral: sandbox: blocked {self.kind} {'to' if self.kind == 'write' else 'of'} " \
               f"{self.target} ({self.reason})"


def _candidates(line: str) -> list[str]:
    out = [m.group(1) for m in _QUOTED.finditer(line)]
    out += [m.group(1) for m in _TOKEN.finditer(line) if m.group(1)]
    return [c.strip() for c in out if ("/" in c or c.startswith(".")) and len(c) < 4096]


def classify(path: Path, plan: SandboxPlan, cwd: Path) -> Violation | None:
    entries = normalise(plan.entries)
    shown = os.path.relpath(path, cwd) if cwd in path.parents else str(path)
    acc = effective_access(path, entries)
    if acc is Access.DENY or path == plan.corral_home or plan.corral_home in path.parents:
        return Violation("read", shown, "deny-read: secrets are hidden inside the sandbox")
    if any(path == lk.path or lk.path in path.parents for lk in plan.locked
           if lk.path not in plan.explicit_writes):
        return Violation("write", shown, "locked path: permission settings stay read-only, "
                         "also while missing")
    if is_protected_name(path, plan.writable_roots):
        return Violation("write", shown, "protected path inside writable root")
    if acc is not Access.WRITE:
        return Violation(
            "write", shown, f"outside the writable roots of profile {plan.profile}"
        )
    return None


def explain_stderr(text: str, plan: SandboxPlan, cwd: Path) -> list[Violation]:
    """Violations found in ``text`` (a failed command's stderr), first occurrence each."""
    seen: set[tuple[str, str]] = set()
    out: list[Violation] = []
    home = Path(os.path.expanduser("~"))
    for line in text.splitlines()[-200:]:
        if _FS_ERRORS.search(line):
            for cand in _candidates(line):
                c = str(home) + cand[1:] if cand.startswith("~/") else cand
                p = Path(os.path.normpath(c if os.path.isabs(c) else cwd / c))
                v = classify(p, plan, cwd)
                if v is not None and (v.kind, v.target) not in seen:
                    seen.add((v.kind, v.target))
                    out.append(v)
                    break
        if plan.network.mode is not NetworkMode.HOST and _NET_ERRORS.search(line):
            v = _network_violation(plan)
            if ("network", "") not in seen:
                seen.add(("network", ""))
                out.append(v)
    if (plan.network.mode is not NetworkMode.HOST and ("network", "") not in seen
            and _SOCKET_TRACE.search(text)):
        out.append(_network_violation(plan))
    return out


# A Python traceback: the socket call and the EPERM are on different lines.
_SOCKET_TRACE = re.compile(r"socket[^\n]*\n(?:[^\n]*\n){0,6}?[^\n]*"
                           r"(?:Operation not permitted|Errno 1\])")


def _network_violation(plan: SandboxPlan) -> Violation:
    return Violation("network", "", f"network mode '{plan.network.mode.value}' of profile "
                     f"{plan.profile}; use --network host or a profile that allows it")
