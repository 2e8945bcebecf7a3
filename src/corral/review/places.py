"""Where a path points, as the reviewer judges it: the workspace, scratch space, the home
directory, the system; and which well-known files hold credentials or make things persist.

Paths are judged as text (no file-system access): the reviewer must be fast and must judge
what a command *would* touch, not what exists now.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

_VAR_HOME = re.compile(r"^(\$HOME|\$\{HOME\})(?=/|$)")
_QUOTES = "\"'"


@dataclass(frozen=True)
class Place:
    """The reviewer's frame of reference for one request."""

    cwd: str
    home: str
    workspaces: tuple[str, ...]
    scratch: tuple[str, ...] = ("/tmp", "/var/tmp", "/dev/shm")

    @classmethod
    def make(cls, cwd: str, roots: tuple[str, ...] = (), home: str | None = None) -> Place:
        home = posixpath.normpath(home or os.path.expanduser("~") or "/root")
        cwd_n = posixpath.normpath(cwd if posixpath.isabs(cwd) else posixpath.join("/", cwd))
        spaces = []
        for r in (cwd_n, *roots):
            r = posixpath.normpath(r if posixpath.isabs(r) else posixpath.join(cwd_n, r))
            # the whole home, the root or a system directory is never "the workspace"
            if r in ("/", home) or home.startswith(r + "/") or _system(r):
                continue
            spaces.append(r)
        scratch = ["/tmp", "/var/tmp", "/dev/shm"]
        tmpdir = os.environ.get("TMPDIR")
        if tmpdir and posixpath.isabs(tmpdir) and tmpdir not in ("/", home):
            scratch.append(posixpath.normpath(tmpdir))
        return cls(cwd_n, home, tuple(spaces), tuple(scratch))

    def at(self, cwd: str) -> Place:
        """The same workspace, home and scratch, seen from another directory (after ``cd``)."""
        return Place(cwd, self.home, self.workspaces, self.scratch)

    def resolve(self, token: str) -> str | None:
        """An absolute, normalised path for a word, or None when it depends on run time."""
        t = token.strip()
        if len(t) >= 2 and t[0] == t[-1] and t[0] in _QUOTES:
            t = t[1:-1]
        if not t:
            return None
        if t == "~" or t.startswith("~/"):
            t = self.home + t[1:]
        elif t.startswith("~"):  # ~user: another account's home
            user, _, rest = t[1:].partition("/")
            t = ("/root" if user == "root" else f"/home/{user}") + ("/" + rest if rest else "")
        else:
            t = _VAR_HOME.sub(self.home, t)
        if "$" in t or "`" in t or len(t) > 4096:  # longer than PATH_MAX: not a real path
            return None
        if not posixpath.isabs(t):
            t = posixpath.join(self.cwd, t)
        return posixpath.normpath(t) if t != "//" else "/"

    def where(self, path: str) -> str:
        """``workspace`` | ``scratch`` | ``home`` | ``system`` (outside all the others)."""
        if any(_under(path, w) for w in self.workspaces):
            return "workspace"
        if _under(path, self.home) or (path != "/" and _under(self.home, path)):
            return "home"  # before scratch: a home under /tmp is still someone's home
        if any(_under(path, s) for s in self.scratch):
            return "scratch"
        return "system"

    def is_workspace_root(self, path: str) -> bool:
        return path in self.workspaces

    def show(self, path: str) -> str:
        """A path as a person would write it: ``~/x`` under home, relative inside the cwd."""
        if path.startswith(self.cwd + "/") and self.cwd in self.workspaces:
            return path[len(self.cwd) + 1:]
        if path == self.home:
            return "~/"
        if path.startswith(self.home + "/"):
            return "~" + path[len(self.home):]
        return path


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


_SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/var", "/opt",
                "/root", "/home", "/srv", "/proc", "/sys", "/dev", "/Users", "/System",
                "/Library", "/Applications", "/private")


def _system(path: str) -> bool:
    return path in _SYSTEM_DIRS


def is_top_level(path: str, place: Place) -> bool:
    """/, a top-level system directory, the home directory or a direct child of /home."""
    return (path == "/" or path == place.home or path in _SYSTEM_DIRS
            or posixpath.dirname(path) in ("/", "/home", "/Users"))


# ---- credential files ---------------------------------------------------------------------

_CRED: list[tuple[re.Pattern[str], str, str]] = [(re.compile(p), label, risk) for p, label, risk in (
    (r"/\.ssh/(id_[^/.]+|[^/]*_key|identity)$", "an SSH private key", "high"),
    (r"/\.ssh/?$", "the SSH key directory", "high"),
    (r"/\.aws/(credentials|config)$", "AWS credentials", "high"),
    (r"/\.aws/?$", "the AWS credentials directory", "high"),
    (r"/\.config/gcloud(/|$)", "Google Cloud credentials", "high"),
    (r"/\.azure(/|$)", "Azure credentials", "high"),
    (r"/\.kube(/config)?/?$", "the Kubernetes config (cluster credentials)", "high"),
    (r"/\.docker/config\.json$", "Docker registry credentials", "high"),
    (r"/\.(netrc|git-credentials|pypirc|vault-token)$", "a stored credentials file", "high"),
    (r"^(/home/[^/]+|/root|/Users/[^/]+)/\.npmrc$", "the user's npm config (auth tokens)",
     "high"),
    (r"/\.npmrc$", "the npm config (may hold an auth token)", "medium"),
    (r"/\.gnupg(/|$)", "GPG private keys", "high"),
    (r"/\.password-store(/|$)", "the password store", "high"),
    (r"/\.config/gh/hosts\.yml$", "the GitHub CLI token", "high"),
    (r"/\.(terraform\.d/credentials\.tfrc\.json|cargo/credentials(\.toml)?|gem/credentials)$",
     "a stored credentials file", "high"),
    (r"^/etc/g?shadow-?$", "the system password hashes", "high"),
    (r"^/etc/ssh/ssh_host_[^/]*_key$", "the SSH host keys", "high"),
    (r"(^|/)\.env(\.(?!example$|sample$|template$|dist$|defaults?$|schema$)[\w.-]+)?$",
     "a .env secrets file", "high"),
    (r"[^/]\.env$", "an env secrets file", "high"),
    (r"(^|/)\.?secrets?/[^/]+$", "a file in a secrets directory", "high"),
    (r"\.(key|p12|pfx|jks|keystore)$", "a private key file", "high"),
    (r"(^|/)(Library/Keychains|\.local/share/keyrings)(/|$)", "the keychain", "high"),
    (r"/(Cookies|Login Data|logins\.json|key4\.db)$", "browser saved passwords or cookies",
     "high"),
    (r"^/proc/(self|\d+|\*|\[[^/]*\]\*?)/environ$", "a process environment (tokens)", "high"),
    (r"/\.(bash|zsh|python|psql|mysql)_history$", "shell history (often holds secrets)",
     "medium"),
    (r"/\.codex/auth\.json$|/\.claude/\.credentials\.json$|/\.gemini/oauth_creds\.json$",
     "the coding agent's login token", "high"),
)]

_TAMPER = re.compile(r"/\.corral(/|$)|^/etc/corral(/|$)")
# ``$CORRAL_HOME`` / ``$CORRAL_SYSTEM_DIR`` in a word: corral's state wherever it lives
CORRAL_VAR = re.compile(r"\$\{?CORRAL_(HOME|SYSTEM_DIR)\b")


def credential(path: str) -> tuple[str, str] | None:
    """(what it is, risk of reading it) when ``path`` holds credentials or secrets."""
    if path.endswith(".pub"):
        return None
    for pattern, label, risk in _CRED:
        if pattern.search(path):
            return label, risk
    return None


def corral_state(path: str) -> bool:
    """corral's own config, rules, grants and journal: never the agent's to touch."""
    return bool(_TAMPER.search(path))


# ---- evidence: history, logs, audit trails ------------------------------------------------

_TRACES: list[tuple[re.Pattern[str], str, bool]] = [(re.compile(p), label, ask) for p, label, ask in (
    # (pattern, what it is, may the user's request authorize changing it?)
    (r"/\.(bash|zsh|sh|ksh|python|psql|mysql|sqlite|node_repl|rediscli|lesshst|irb|"
     r"php)_history$|/\.zhistory$|/\.histfile$|/\.local/share/fish/fish_history$",
     "the shell history", False),
    (r"^/var/log/audit(/|$)|^/etc/audit/(audit\.rules|rules\.d)(/|$)|^/var/audit(/|$)",
     "the audit trail", False),
    (r"^/var/(log|run)/(wtmp|btmp|utmp|lastlog|faillog)$|^/run/utmp$",
     "the login records", False),
    (r"^/var/log/journal(/|$)|^/run/log/journal(/|$)", "the systemd journal", False),
    (r"/\.codex/(sessions|log|archived_sessions)(/|$)|/\.codex/history\.jsonl$|"
     r"/\.claude/(projects|todos|shell-snapshots)(/|$)|/\.claude/history\.jsonl$",
     "the coding agent's session records", False),
    (r"^/var/log(/|$)|^/private/var/log(/|$)|/Library/Logs(/|$)|^/var/db/diagnostics(/|$)",
     "system logs", True),
)]


def trace(path: str) -> tuple[str, bool] | None:
    """(what it is, authorizable?) when changing ``path`` destroys or forges a record of what
    ran: shell history, logs, audit trails, login records, agent transcripts."""
    for pattern, label, ask in _TRACES:
        if pattern.search(path):
            return label, ask
    return None


_AGENT_CONFIG = re.compile(
    r"/\.codex(/|$)|/\.claude(/(settings(\.local)?\.json|CLAUDE\.md|commands|agents|skills|"
    r"plugins|hooks|output-styles)(/|$)|/?$)|/\.claude\.json$|/\.mcp\.json$|/\.gemini(/|$)|"
    r"/\.cursor/(mcp\.json|rules)(/|$)|/\.config/(claude|codex|gemini)(/|$)")


def agent_config(path: str) -> bool:
    """A coding agent's own configuration (approval mode, sandbox, hooks, MCP servers, global
    instructions): changing it changes what the agent may do next time."""
    return bool(_AGENT_CONFIG.search(path))


# ---- persistence targets ------------------------------------------------------------------

_PERSIST: list[tuple[re.Pattern[str], str, str]] = [(re.compile(p), label, risk) for p, label, risk in (
    (r"/\.ssh/authorized_keys2?$", "SSH authorized_keys (grants remote login)", "critical"),
    (r"^/etc/sudoers(\.d(/.*)?)?$", "sudoers (grants root)", "critical"),
    (r"^/etc/ld\.so\.preload$", "the dynamic loader preload list", "critical"),
    (r"^/etc/(passwd|group|shadow)$", "the system account database", "critical"),
    (r"/\.(bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zshenv|zprofile|zlogin|"
     r"kshrc|cshrc|tcshrc|xprofile|xinitrc)$|/\.config/fish/config\.fish$",
     "a shell startup file", "high"),
    (r"^/etc/(profile|bash\.bashrc|zsh/zshrc|environment)$|^/etc/profile\.d/",
     "a system-wide shell startup file", "high"),
    (r"/\.ssh/(config|rc|environment)$", "the SSH client config", "high"),
    (r"^/etc/cron|^/var/spool/cron|^/etc/anacrontab", "a cron job", "high"),
    (r"/\.config/systemd(/|$)|^/etc/systemd/|^/(usr/)?lib/systemd/|^/etc/init\.d/|"
     r"^/etc/rc\.local$",
     "a systemd/init service", "high"),
    (r"/Library/Launch(Agents|Daemons)(/|$)", "a launchd job", "high"),
    (r"/\.config/autostart(/|$)|^/etc/xdg/autostart(/|$)", "a desktop autostart entry", "high"),
    (r"(^|/)\.git/hooks(/|$)", "a git hook (runs on every commit/checkout)", "high"),
    (r"(^|/)\.git/config$", "the repository's git config", "medium"),
    (r"/\.(gitconfig|condarc|yarnrc|pypirc)$|/\.pip/pip\.conf$|/\.config/pip/pip\.conf$|"
     r"/\.npmrc$|/\.config/git/config$", "a global tool config", "medium"),
    (r"^/(usr/(local/)?)?s?bin/|^/(usr/)?lib(64)?/|^/boot/|^/etc/", "system files", "high"),
    (r"/\.local/bin/[^/]+$|^/home/[^/]+/bin/[^/]+$", "a program on the PATH", "medium"),
)]


def persistence(path: str) -> tuple[str, str] | None:
    """(what it is, risk of writing it) when writing ``path`` changes what runs later."""
    for pattern, label, risk in _PERSIST:
        if pattern.search(path):
            return label, risk
    return None


def path_candidates(token: str) -> list[str]:
    """The path-like parts of one argument: ``@file``, ``key=value``, ``a:b`` (mounts, scp)."""
    t = token.strip().strip(_QUOTES)
    out = [t]
    if t.startswith("@") and len(t) > 1:
        out.append(t[1:])
    if "=" in t:
        v = t.rsplit("=", 1)[1]
        out.append(v[1:] if v.startswith("@") else v)
    if ":" in t and "://" not in t:
        out.extend(p for p in t.split(":") if p)
    return out
