"""git: history-destroying commands, pushes to protected branches or foreign URLs, and config
that makes git run programs."""

from __future__ import annotations

import re

from corral.review import hosts
from corral.review.findings import Cmd, Scan
from corral.review.places import Place

_PROTECTED = frozenset({"main", "master", "production", "prod", "release", "trunk", "stable",
                        "live", "gh-pages"})
_GLOBAL_VALUE = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace",
                           "--exec-path", "--config-env", "--super-prefix"})
_RISKY_CONFIG = ("core.hookspath", "core.fsmonitor", "core.sshcommand", "core.pager",
                 "core.editor", "sequence.editor", "diff.external", "gpg.program",
                 "core.askpass", "credential.helper")
_URLISH = re.compile(r"://|^[^@/\s]+@[^:/\s]+:|^/|^\.\.?/")


def _split(cmd: Cmd) -> tuple[str, list[str]]:
    args = list(cmd.args)
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in _GLOBAL_VALUE else 1
    if i >= len(args):
        return "", []
    return args[i], args[i + 1:]


def _positional(rest: list[str], with_value: tuple[str, ...] = ()) -> list[str]:
    out = []
    skip = False
    for t in rest:
        if skip:
            skip = False
            continue
        if t in with_value:
            skip = True
            continue
        if t.startswith("-") and t != "-":
            continue
        out.append(t)
    return out


def git(cmd: Cmd, place: Place, scan: Scan) -> None:
    sub, rest = _split(cmd)
    flags = {t for t in rest if t.startswith("-")}
    short = {c for t in flags if not t.startswith("--") for c in t[1:]}
    pos = _positional(rest, ("-o", "--push-option", "--repo", "--receive-pack", "--exec", "-m",
                             "-b", "-B", "--message", "-C", "-F", "--file"))
    discard = ("reset", "discard", "throw away", "drop", "undo", "revert", "restore", "clean",
               "start over")
    if sub == "push":
        _push(rest, flags, short, pos, scan)
    elif sub in ("pull", "fetch", "clone", "ls-remote"):
        url = pos[0] if pos else "origin"
        h = hosts.host_of(url) or "?"
        scan.senders.append((h, hosts.kind(h) if h != "?" else "dev"))
    elif sub == "reset" and "--hard" in flags:
        target = pos[0] if pos else "HEAD"
        scan.add("destructive", "high", f"throws away uncommitted work (git reset --hard "
                 f"{target})", discard, ("--hard", "hard", "uncommitted", "changes", target))
    elif sub == "clean" and ("f" in short or "--force" in flags) and not (
            "n" in short or "--dry-run" in flags):
        extra = ", including ignored files such as .env" if "x" in short else ""
        scan.add("destructive", "high", f"deletes untracked files (git clean "
                 f"{' '.join(sorted(flags))}){extra}", ("clean", "delete", "remove", *discard),
                 ("untracked", "git clean"))
    elif sub in ("checkout", "restore") and ("--staged" not in flags or "--worktree" in flags):
        paths = rest[rest.index("--") + 1:] if "--" in rest else (pos if sub == "restore"
                                                                   or pos == ["."] else [])
        if "." in paths or ":/" in paths or (sub == "checkout" and ("-f" in flags or
                                                                    "--force" in flags)):
            scan.add("destructive", "high", f"discards all uncommitted changes (git {sub} "
                     f"{' '.join(rest)[:30]})", discard, ("changes", "uncommitted", "all"))
        elif paths:
            scan.add("destructive", "medium", f"discards uncommitted changes to "
                     f"{', '.join(paths[:3])}", discard, tuple(paths))
    elif sub == "branch" and ("D" in short or ("d" in short and "f" in short)):
        scan.add("destructive", "medium", f"force-deletes branch {' '.join(pos[:2])}",
                 ("delete", "remove"), tuple(pos))
    elif sub == "stash" and pos[:1] in (["drop"], ["clear"]):
        scan.add("destructive", "medium", f"deletes stashed work (git stash {pos[0]})",
                 ("drop", "clear", "stash"), ("stash",))
    elif sub in ("filter-branch", "filter-repo"):
        scan.add("destructive", "high", f"rewrites the whole repository history (git {sub})",
                 ("rewrite", "remove from history", "purge"), ("history",))
    elif (sub == "reflog" and pos[:1] == ["expire"]) or (sub == "gc" and any(
            t.startswith("--prune=now") or t == "--prune=all" for t in rest)):
        scan.add("destructive", "high", "permanently drops unreachable commits (reflog "
                 "expire / gc --prune=now)", (), ())
    elif sub == "config":
        _config(rest, flags, pos, scan)
    elif sub == "remote" and pos[:1] in (["add"], ["set-url"]) and len(pos) >= 3:
        h = hosts.host_of(pos[2]) or pos[2]
        kind = hosts.kind(h)
        if kind != "dev" and kind != "local":
            scan.add("exfiltration", "high" if kind == "drop" else "medium",
                     f"points git remote {pos[1]} at {h}", ("remote", "mirror"), (h, pos[1]))
    elif sub == "credential" and pos[:1] in (["fill"], ["approve"]):
        scan.add("credentials", "high", "asks git for stored credentials (git credential "
                 "fill)", (), ())
        scan.secrets.append("git's stored credentials")
        scan.env_secret_only = False
    elif sub == "update-ref" and "-d" in flags:
        scan.add("destructive", "medium", f"deletes ref {' '.join(pos[:1])}", ("delete",), ())


def _push(rest: list[str], flags: set[str], short: set[str], pos: list[str], scan: Scan) -> None:
    remote = pos[0] if pos else ""
    specs = pos[1:]
    verbs = ("push",)
    if remote and _URLISH.search(remote):
        h = hosts.host_of(remote) or remote.split("@")[-1].split(":")[0]
        kind = hosts.kind(h)
        scan.senders.append((h, kind))
        if kind != "local":
            scan.add("exfiltration", "high", f"pushes the repository to {h or remote} (not a "
                     "configured remote)", ("push", "mirror"), (h, remote))
        return
    scan.senders.append(("the git remote", "dev"))
    branches = [s.lstrip("+").split(":")[-1].removeprefix("refs/heads/") for s in specs]
    shown = ", ".join(b for b in branches if b != "HEAD")
    where = f"{shown or 'the current branch'} on {remote or 'the default remote'}"
    force = "f" in short or "--force" in flags or any(s.startswith("+") for s in specs) or \
        "--mirror" in flags
    lease = any(t.startswith("--force-with-lease") for t in flags)
    protected = [b for b in branches if b in _PROTECTED or b.startswith("release/")]
    if "d" in short or "--delete" in flags or any(s.startswith(":") for s in specs):
        scan.add("destructive", "high", f"deletes remote branch {where}",
                 ("delete", "remove"), tuple(branches))
    elif force:
        scan.add("destructive", "high", f"force-pushes {where}, rewriting its history",
                 ("force push", "force-push", "--force", "force"), tuple(branches))
    elif lease and protected:
        scan.add("destructive", "high", f"force-pushes {where}, rewriting its history",
                 ("force push", "force-push", "force"), tuple(branches))
    elif lease:
        scan.add("publishing", "medium", f"force-pushes (with lease) {where}", verbs,
                 tuple(branches))
    elif protected:
        scan.add("publishing", "high", f"pushes directly to {where}", verbs, tuple(protected))
    elif not specs or branches == ["HEAD"] or "--all" in flags or "--tags" in flags:
        what = "all branches/tags" if flags & {"--all", "--tags"} else where
        scan.add("publishing", "medium", f"pushes {what}", verbs, ())


def _config(rest: list[str], flags: set[str], pos: list[str], scan: Scan) -> None:
    if not pos or flags & {"--get", "--list", "-l", "--get-all", "--get-regexp", "--unset"}:
        return
    key = pos[0].lower()
    value = pos[1] if len(pos) > 1 else ""
    where = "global " if flags & {"--global", "--system"} else ""
    if key in _RISKY_CONFIG or (key.startswith("alias.") and value.startswith("!")) or (
            key.startswith("filter.") and key.endswith((".clean", ".smudge"))):
        risk = "medium" if key == "credential.helper" and not value.startswith("!") else "high"
        scan.add("persistence", risk, f"sets {where}git config {key} (makes git run "
                 f"`{value[:40]}`)", ("config", "configure", "set"), (key, value))
    elif key == "http.sslverify" and value.lower() in ("false", "0", "no", "off"):
        scan.add("security", "high", f"turns off TLS checks in {where}git config "
                 "(http.sslVerify false)", ("ssl", "tls", "certificate"), ())
    elif key.endswith(".insteadof") or key.endswith(".pushurl"):
        scan.add("exfiltration", "medium", f"redirects git URLs ({key} {value[:40]})",
                 ("config", "remote", "mirror"), (key,))
