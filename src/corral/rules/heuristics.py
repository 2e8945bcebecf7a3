"""Built-in judgements for commands no rule matched: known-safe and dangerous.

Every entry has a name (shown as ``heuristic:<name>``) and a one-line justification shown to
users. The lists are documented in docs/rules.md; keep the two in step.
"""

from __future__ import annotations

import re

from corral.record import Frozen
from corral.rules.argv import Argv
from corral.rules.wrappers import basename, git_normalized


class Verdict(Frozen):
    _fields = ("kind", "name", "justification")
    kind: str  # "safe" | "dangerous" | "unknown"
    name: str
    justification: str

    def __init__(self, kind: str, name: str, justification: str) -> None:
        self._set(kind=kind, name=name, justification=justification)


UNKNOWN = Verdict("unknown", "unmatched", "no rule or built-in list covers this command")

# Always read-only (Codex's list, plus a few plain readers).
ALWAYS_SAFE = frozenset({
    "cat", "cd", "cut", "echo", "expr", "false", "grep", "head", "id", "ls", "nl", "paste",
    "pwd", "rev", "seq", "stat", "tail", "tr", "true", "uname", "uniq", "wc", "which", "whoami",
    "numfmt", "tac",
    # corral additions: they only read files or print
    "printf", "test", "[", "date", "basename", "dirname", "realpath", "readlink", "du", "df",
    "file", "diff", "cmp", "md5sum", "sha1sum", "sha256sum", "sha512sum", "egrep", "fgrep",
    "hostname", "nproc", "printenv", "type", "tree", "comm", "column", "fold", "od", "xxd",
    "hexdump", "strings", "jq", "less", "more", "zcat",
})

SAFE_NOTES = {
    "base64": "safe unless it writes a file (-o/--output)",
    "find": "safe unless -exec/-execdir/-ok/-okdir/-delete/-fls/-fprint*",
    "rg": "safe unless --pre/--hostname-bin/--search-zip/-z (they run programs)",
    "sed": "safe only as `sed -n Np` or `sed -n M,Np` (print lines)",
    "sort": "safe unless -o/--output writes a file",
    "git": "safe for status/log/diff/show/branch (read-only flags) without risky global options",
}

_FIND_UNSAFE = {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fls", "-fprint", "-fprint0",
                "-fprintf"}
_GIT_UNSAFE_GLOBAL = ("-C", "-c", "-p", "--paginate", "--config-env", "--exec-path",
                      "--git-dir", "--namespace", "--super-prefix", "--work-tree")
_GIT_BRANCH_READONLY = {"--list", "-l", "--show-current", "-a", "--all", "-r", "--remotes", "-v",
                        "-vv", "--verbose"}
_SED_PRINT = re.compile(r"^(\d+,)?\d+p$")


def _git_safe(args: tuple[str, ...]) -> bool:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        tok = args[i]
        if tok in _GIT_UNSAFE_GLOBAL or any(tok.startswith(g + "=") for g in _GIT_UNSAFE_GLOBAL
                                            if g.startswith("--")) or tok[:2] in ("-C", "-c"):
            return False
        i += 1
    if i >= len(args):
        return False
    sub, rest = args[i], args[i + 1:]
    if sub not in ("status", "log", "diff", "show", "branch"):
        return False
    for tok in rest:
        if tok in ("--ext-diff", "--textconv") or tok.startswith(("--output", "--exec")):
            return False
    if sub == "branch":
        return all(t in _GIT_BRANCH_READONLY or t.startswith("--format=") for t in rest)
    return True


def is_known_safe(a: Argv) -> bool:
    """Read-only commands (Codex's ``is_known_safe_command`` baseline, by basename)."""
    if not a.fully_static or not a.tokens:
        return False
    name = basename(a.tokens[0])
    args = a.tokens[1:]
    if name in ALWAYS_SAFE:
        return True
    if name == "base64":
        return not any(t in ("-o", "--output") or t.startswith(("--output=", "-o")) for t in args)
    if name == "find":
        return not any(t in _FIND_UNSAFE for t in args)
    if name == "rg":
        return not any(t in ("--pre", "--hostname-bin", "--search-zip", "-z")
                       or t.startswith(("--pre=", "--hostname-bin=")) for t in args)
    if name == "sed":
        return (len(a.tokens) <= 4 and len(args) >= 2 and args[0] == "-n"
                and bool(_SED_PRINT.match(args[1])))
    if name == "sort":
        return not any(t.startswith(("-o", "--output")) for t in args)
    if name == "git":
        return _git_safe(args)
    return False


# ---- dangerous -------------------------------------------------------------------------------

SENSITIVE_PATHS = (
    ".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zshenv", ".zprofile",
    ".zlogin", ".config/fish/config.fish", ".ssh/", "authorized_keys", "/etc/sudoers",
    "/etc/profile", "/etc/bash.bashrc", ".git/hooks/", "/etc/ld.so.preload", "/etc/cron",
    "/var/spool/cron",
)
_DEVICE = re.compile(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|mapper/|md|loop|dm-)")
_WRITERS = frozenset({"tee", "cp", "mv", "install", "ln", "rsync", "scp", "truncate", "dd",
                      "chmod", "chown", "touch", "sed", "perl", "rm", "unlink", "curl", "wget"})
_SECURITY_UNITS = ("apparmor", "selinux", "auditd", "firewalld", "ufw", "iptables", "nftables",
                   "falcon", "crowdstrike", "osquery", "clamav", "sentinel", "defender", "wazuh")

_DANGER_NAMES = frozenset({
    "rm", "sudo", "doas", "pkexec", "su", "run0", "git", "chmod", "dd", "mke2fs", "wipefs",
    "fdisk", "sfdisk", "parted", "sgdisk", "mkswap", "blkdiscard", "shred", "setenforce",
    "aa-teardown", "ufw", "iptables", "auditctl", "systemctl", "service", "crontab", "kill",
    "pkill", "killall"})

DANGEROUS = {
    "rm_recursive_force": "rm with recursive and force flags deletes whole trees without asking",
    "rm_force": "rm -f deletes files without asking (Codex's dangerous-command baseline)",
    "sudo": "runs a command with elevated privileges outside the agent's own user",
    "git_push_force": "a forced or deleting push rewrites or removes history on the remote",
    "git_reset_hard": "git reset --hard throws away uncommitted work",
    "git_clean_force": "git clean -f deletes untracked (possibly unsaved) files",
    "git_branch_force_delete": "git branch -D deletes a branch even if it is not merged",
    "chmod_world_writable": "recursive world-writable permissions expose every file",
    "disk_write": "dd/mkfs/wipefs/partitioning on a block device destroys its data",
    "shred": "shred makes deleted data unrecoverable",
    "write_startup_or_ssh": "writes shell startup files, SSH keys, sudoers, cron or git hooks "
                            "(persistence outside the task)",
    "disable_security": "disables a security control (SELinux, AppArmor, firewall, audit, EDR)",
    "crontab_change": "installs or removes scheduled jobs (persistence)",
    "kill_everything": "kills every process the user may signal",
}


def _flags(args: tuple[str, ...]) -> tuple[set[str], set[str]]:
    short: set[str] = set()
    long: set[str] = set()
    for t in args:
        if t == "--":
            break
        if t.startswith("--"):
            long.add(t.split("=", 1)[0])
        elif t.startswith("-") and len(t) > 1:
            short.update(t[1:])
    return short, long


def _git_dangerous(args: tuple[str, ...]) -> str | None:
    if not args:
        return None
    sub, rest = args[0], args[1:]
    short, long = _flags(rest)
    if sub == "push":
        if ("f" in short or "d" in short or long & {"--force", "--delete", "--mirror",
                                                    "--force-with-lease", "--prune"}
                or any(t.startswith(("+", ":")) and len(t) > 1 for t in rest)):
            return "git_push_force"
    elif sub == "reset" and "--hard" in long:
        return "git_reset_hard"
    elif sub == "clean" and ("f" in short or "--force" in long):
        return "git_clean_force"
    elif sub == "branch" and ("D" in short or ("d" in short and "f" in short)
                              or {"--delete", "--force"} <= long):
        return "git_branch_force_delete"
    return None


def dangerous(a: Argv) -> Verdict | None:
    """The first dangerous-list entry ``a`` hits, if any."""
    if not a.tokens:
        return None
    name = basename(a.tokens[0])
    args = a.tokens[1:]
    if name not in _DANGER_NAMES and not name.startswith("mkfs") and not (
            name in _WRITERS and any(_sensitive(t) for t in args)):
        return None  # the common case: nothing on the list
    hit: str | None = None
    short, long = _flags(args)
    if name == "rm":
        recursive = bool(short & {"r", "R"}) or "--recursive" in long
        force = "f" in short or "--force" in long
        if recursive and force:
            hit = "rm_recursive_force"
        elif args and args[0] in ("-f", "-rf"):
            hit = "rm_force"
    elif name in ("sudo", "doas", "pkexec", "su", "run0"):
        hit = "sudo"
    elif name == "git":
        norm, _ = git_normalized(a)
        hit = _git_dangerous((norm or a).tokens[1:])
    elif name == "chmod" and (short & {"R"} or "--recursive" in long) and any(
            re.fullmatch(r"[0-7]?[0-7][0-7][2367]|[oa]*\+[rwxXst]*w[rwxXst]*|[ao]=[rwxXst]*w[rwxXst]*"
                         r"|\+[rwxX]*w[rwxX]*", t) for t in args):
        hit = "chmod_world_writable"
    elif (name == "dd" and any(t.startswith("of=") and _DEVICE.match(t[3:]) for t in args)) or name.startswith("mkfs") or name in ("mke2fs", "wipefs", "fdisk", "sfdisk", "parted",
                                             "sgdisk", "mkswap", "blkdiscard"):
        hit = "disk_write"
    elif name == "shred":
        hit = "shred"
    elif (name == "setenforce" and args[:1] == ("0",)) or name == "aa-teardown" or (name in ("ufw",) and args[:1] == ("disable",)) or (name == "iptables" and (
            "F" in short or "--flush" in long)) or (name == "auditctl" and "e" in short and "0" in args) or (name in ("systemctl", "service") and any(t in ("stop", "disable", "mask") for t in args) \
            and any(u in t.lower() for t in args for u in _SECURITY_UNITS)):
        hit = "disable_security"
    elif name == "crontab" and not (short & {"l"}):
        hit = "crontab_change"
    elif name in ("kill", "pkill", "killall") and ("-1" in args or (name == "killall" and not args)):
        hit = "kill_everything"
    if hit is None and name in _WRITERS and any(_sensitive(t) for t in args):
        hit = "write_startup_or_ssh"
    if hit is None and name == "dd" and any(t.startswith("of=") and _sensitive(t[3:]) for t in args):
        hit = "write_startup_or_ssh"
    return Verdict("dangerous", hit, DANGEROUS[hit]) if hit else None


def _sensitive(path: str) -> bool:
    return any(s in path for s in SENSITIVE_PATHS)


def dangerous_write(target: str) -> Verdict | None:
    """A redirection target that is a block device or a startup/SSH/sudoers/cron file."""
    if _DEVICE.match(target):
        return Verdict("dangerous", "disk_write", DANGEROUS["disk_write"])
    if _sensitive(target):
        return Verdict("dangerous", "write_startup_or_ssh", DANGEROUS["write_startup_or_ssh"])
    return None


def classify(a: Argv) -> Verdict:
    d = dangerous(a)
    if d is not None:
        return d
    if is_known_safe(a):
        return Verdict("safe", "known_safe", "read-only command on the known-safe list")
    return UNKNOWN
