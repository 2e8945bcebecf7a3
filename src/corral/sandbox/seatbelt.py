"""macOS: the Seatbelt (SBPL) profile with the same semantics as the Linux launcher.

Run as ``/usr/bin/sandbox-exec -p <text> -- CMD`` (absolute path so PATH cannot hijack it).
Seatbelt matches paths, so protected paths need no placeholders: they are carved out of the
writable roots with ``require-not`` whether they exist or not. Only the text is tested here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from corral.sandbox.plan import SandboxPlan
from corral.sandbox.profiles import Access, NetworkMode, is_under, normalise
from corral.sandbox.protected import ALL_NAMES

SANDBOX_EXEC = "/usr/bin/sandbox-exec"

_BASE = """\
(version 1)
(deny default)
(allow process-exec)
(allow process-fork)
(allow signal (target same-sandbox))
(allow process-info* (target same-sandbox))
(allow sysctl-read)
(allow ipc-posix-sem)
(allow ipc-posix-shm-read-data ipc-posix-shm-write-data ipc-posix-shm-write-create)
(allow mach-lookup
  (global-name "com.apple.system.opendirectoryd.libinfo")
  (global-name "com.apple.system.notification_center")
  (global-name "com.apple.logd")
  (global-name "com.apple.trustd.agent")
  (global-name "com.apple.SecurityServer"))
(allow pseudo-tty)
(allow file-ioctl (literal "/dev/tty") (regex #"^/dev/ttys[0-9]+$"))
(allow file-write-data
  (literal "/dev/null") (literal "/dev/zero") (literal "/dev/dtracehelper")
  (literal "/dev/tty") (regex #"^/dev/ttys[0-9]+$"))
"""


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def glob_regex(pattern: str) -> str:
    """Glob to an anchored regex with path semantics: ``*`` stays within one component,
    ``**/`` spans zero or more directories."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "^" + "".join(out) + "(/.*)?$"


def _glob_regex(pattern: str) -> str:
    return '#"' + glob_regex(pattern).replace('"', '\\"') + '"'


def _filter(path: Path | str, is_glob: bool = False) -> str:
    if is_glob:
        return f"(regex {_glob_regex(str(path))})"
    return f"(subpath {_q(str(path))})"


def protected_filters(root: Path) -> list[str]:
    out = [f"(subpath {_q(str(root / n))})" for n in ALL_NAMES]
    out += [f"(subpath {_q(str(root / '.git' / 'hooks'))})",
            f"(literal {_q(str(root / '.git' / 'config'))})"]
    dotgit = root / ".git"
    if dotgit.is_file():
        out.append(f"(literal {_q(str(dotgit))})")
        from corral.sandbox.protected import _read_gitdir

        gitdir = _read_gitdir(dotgit)
        if gitdir is not None:
            out += [f"(subpath {_q(str(gitdir / 'hooks'))})",
                    f"(literal {_q(str(gitdir / 'config'))})"]
    return out


def profile_text(plan: SandboxPlan) -> str:
    """The SBPL policy for ``plan`` (semantics as on Linux; deny-read wins over everything)."""
    entries = normalise(plan.entries)
    denies = [e for e in entries if e.access is Access.DENY]
    deny_filters = [_filter(e.path) for e in denies]
    deny_filters += [_filter(g, True) for g in plan.deny_read_globs]
    deny_filters.append(_filter(plan.corral_home))
    deny_filters = list(dict.fromkeys(deny_filters))
    lines = [_BASE.rstrip("\n")]
    if plan.full_access:
        return "(version 1)\n(allow default)\n"
    readable = [e for e in entries if e.access is not Access.DENY]
    read_scope = ["(subpath \"/\")"] if plan.root_readable else [_filter(e.path) for e in readable]
    lines.append(";; reads: everything readable except hidden secrets")
    lines.append("(allow file-read*\n  (require-all\n    (require-any " + " ".join(read_scope)
                 + ")\n" + "".join(f"    (require-not {f})\n" for f in deny_filters) + "  ))")
    lines.append("(allow file-read-metadata (literal \"/\"))")
    roots = [e.path for e in entries if e.access is Access.WRITE]
    if roots:
        lines.append(";; writes: writable roots minus protected paths and hidden secrets")
        for root in roots:
            nots = [f for f in protected_filters(root) if not _explicit(f, plan)] + deny_filters
            nots += [_filter(lk.path) for lk in plan.locked if is_under(lk.path, root)
                     and lk.path not in plan.explicit_writes]
            body = "".join(f"    (require-not {f})\n" for f in nots)
            lines.append(f"(allow file-write*\n  (require-all\n    {_filter(root)}\n{body}  ))")
    mode = plan.network.mode
    lines.append(f";; network: {mode.value}")
    if mode is NetworkMode.HOST:
        lines.append("(allow network*)")
    elif mode is NetworkMode.PROXY and plan.network.proxy_socket is not None:
        lines.append(f"(allow network-outbound (literal {_q(str(plan.network.proxy_socket))}))")
    lines.append("(allow system-socket (socket-domain AF_SYSTEM))" if mode is NetworkMode.HOST
                 else ";; no sockets beyond socketpair")
    return "\n".join(lines) + "\n"


def _explicit(filt: str, plan: SandboxPlan) -> bool:
    return any(filt == f"(subpath {_q(str(p))})" for p in plan.explicit_writes)


def command(plan: SandboxPlan, argv: list[str]) -> list[str]:
    """The argv that runs ``argv`` under Seatbelt."""
    return [SANDBOX_EXEC, "-p", profile_text(plan), "--", *argv]


def home_relative(path: str) -> str:
    return os.path.expanduser(path)
