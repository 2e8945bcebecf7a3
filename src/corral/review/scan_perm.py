"""Permission changes: world-writable files, setuid bits, mass (recursive) changes of mode,
owner or ACL over the system, the home directory or ``/``, and private keys made readable.

``chmod +x script.sh``, ``chmod -R u+w build/`` and ``chown -R me ./data`` in the workspace are
everyday work and stay allowed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from corral.review.findings import Cmd, Scan
from corral.review.places import Place, credential, is_top_level

_VERBS = ("chmod", "chown", "permission", "permissions", "ownership", "owner", "acl")
_WORLD_NUM = re.compile(r"0?[0-7]?[0-7][0-7][2367]")
# "a+w", "o+rwx", "go+w", "ugo=rwx", "a=rwx"; "+w" alone follows the umask (no world bit)
_WORLD_SYM = re.compile(r"[ug]{0,2}[ao][ugo]{0,2}[+=][rwxXt]{0,8}w[rwxXt]{0,8}")
_OTHERS_READ_SYM = re.compile(r"(?:[ugoa]{0,3}[goa][ugoa]{0,3})?[+=][rwxXts]{0,8}[rw][rwxXts]{0,8}")
_SETUID = re.compile(r"0?[2467][0-7]{3}|[ug]{0,2}\+[rwx]{0,3}s[rwx]{0,3}")


def _recursive(cmd: Cmd) -> bool:
    short, long = cmd.options()
    return "R" in short or "--recursive" in long


def _wide(p: str, place: Place) -> bool:
    """A path whose subtree is the system or a whole home: a mass change there breaks things."""
    return is_top_level(p, place) or place.where(p) == "system"


def _exposes_secret(mode: str, targets: list[str], place: Place, scan: Scan, how: str) -> None:
    """``chmod 644 ~/.ssh/id_ed25519``: a private key or token file opened to other users."""
    num = re.fullmatch(r"0?[0-7]?[0-7]([0-7])([0-7])", mode)
    opens = (num is not None and (int(num.group(1)) & 6 or int(num.group(2)) & 6)) or (
        _OTHERS_READ_SYM.fullmatch(mode) is not None)
    if not opens:
        return
    for t in targets:
        cred = credential(t)
        if cred is not None and cred[1] == "high":
            scan.add("permissions", "high", f"opens {place.show(t)} ({cred[0]}) to other users "
                     f"({how} {mode})", _VERBS, (posixpath.basename(t),))
            return


def _operands(cmd: Cmd) -> list[str]:
    """chmod's operands: ``-x``/``-rw`` are modes (chmod has no such options); ``$HOME`` is
    resolved, other run-time words are kept for the caller to drop."""
    out: list[str] = []
    dashdash = False
    for t in cmd.args:
        if not dashdash and t == "--":
            dashdash = True
        elif dashdash or not t.startswith("-") or t == "-" or (
                not out and cmd.name == "chmod" and re.fullmatch(r"-[rwxXst]{1,8}", t)):
            out.append(t)
    return out


def _paths(words: list[str], place: Place) -> list[str]:
    return [p for p in (place.resolve(w.replace('"', "").replace("'", "")) for w in words) if p]


def chmod(cmd: Cmd, place: Place, scan: Scan) -> None:
    ops = _operands(cmd)
    mode = ops[0] if ops and len(ops[0]) <= 32 else ""
    targets = _paths(ops[1:], place)
    shown = ", ".join(place.show(t) for t in targets) or "files"
    rec = _recursive(cmd)
    world = _WORLD_NUM.fullmatch(mode) is not None or _WORLD_SYM.fullmatch(mode) is not None
    wide = [t for t in targets if _wide(t, place)]
    everything = [t for t in wide if t == "/" or is_top_level(t, place)]
    if world:
        risk = "critical" if wide and rec else "high"
        scan.add("permissions", risk, f"makes {shown} world-writable (chmod {mode}"
                 f"{' -R' if rec else ''})", ("chmod", "permission", "writable", "777"),
                 (mode, *(posixpath.basename(t) for t in targets)))
    elif _SETUID.fullmatch(mode) is not None:
        scan.add("permissions", "high", f"sets the setuid/setgid bit on {shown} (chmod {mode})",
                 ("setuid", "chmod"), (mode,))
    elif rec and everything:
        root = [t for t in everything if place.where(t) == "system"]
        scan.add("permissions", "critical" if root else "high",
                 f"changes the mode of everything under {place.show(everything[0])} "
                 f"(chmod -R {mode})", () if root else _VERBS, (place.show(everything[0]),))
    elif wide:
        scan.add("permissions", "high", f"changes permissions of system path {shown}",
                 ("chmod", "permission"), (shown,))
    else:
        _exposes_secret(mode, targets, place, scan, "chmod")
    for t in targets:
        if "/.git/hooks/" in t and "x" in mode:
            scan.add("persistence", "high", f"makes the git hook {place.show(t)} executable",
                     ("hook",), (posixpath.basename(t),))


def chown(cmd: Cmd, place: Place, scan: Scan) -> None:
    rec = _recursive(cmd)
    for p in _paths(_operands(cmd)[1:], place):
        if not _wide(p, place):
            continue
        if rec and (p == "/" or is_top_level(p, place)):
            root = p == "/" or place.where(p) == "system"
            scan.add("permissions", "critical" if root else "high", f"changes the owner of "
                     f"everything under {place.show(p)} ({cmd.name} -R)", () if root else
                     _VERBS, (posixpath.basename(p),))
        else:
            scan.add("permissions", "high", f"changes ownership of {place.show(p)}",
                     ("chown", "ownership", "owner"), (posixpath.basename(p),))
        return


def setfacl(cmd: Cmd, place: Place, scan: Scan) -> None:
    """ACL entries: the same effect as chmod/chown, hidden from ``ls -l``."""
    spec = cmd.value("-m", "--modify", "-M", "--modify-file", "--set", "--set-file") or ""
    removes = any(t in ("-b", "--remove-all", "-k", "--remove-default", "-x", "--remove")
                  for t in cmd.args)
    ops = [t for t, k in cmd.operands("mMxX", ("--modify", "--modify-file", "--set",
                                               "--set-file", "--remove", "--remove-file"))
           if k]
    targets = [t for t in (place.resolve(o) for o in ops) if t]
    wide = [t for t in targets if _wide(t, place)]
    short, long = cmd.options()
    changes = bool(spec or removes or short & set("mMxXbk") or long & {
        "--modify", "--modify-file", "--set", "--set-file", "--remove", "--remove-all"})
    if wide and changes:
        rec = _recursive(cmd)
        scan.add("permissions", "critical" if rec and "/" in wide else "high",
                 f"changes the access control lists of {place.show(wide[0])}"
                 f"{' and everything under it' if rec else ''} (setfacl)", _VERBS,
                 (posixpath.basename(wide[0]),))
        return
    if re.search(r"(^|,)(o|other|u:nobody|g:nogroup)?:[^,:]{0,32}:?r?w", spec):
        _exposes_secret("o+rw", targets, place, scan, "setfacl")


_ATTRS = re.compile(r"[-+=][aAcCdDeijPsStTux]{1,16}")
_UNFLAG = re.compile(r"no(s|u)?(chg|immutable|appnd|append|unlnk|unlink)|no(s|u)?(schg|uchg)")


def chattr(cmd: Cmd, place: Place, scan: Scan) -> None:
    """``chattr -i /var/spool/cron/root``, ``chflags noschg …``: the immutable or append-only
    protection removed from a system file, so it can be rewritten (often a log or a job)."""
    if cmd.name == "chattr":
        attrs = [t for t in cmd.args if _ATTRS.fullmatch(t)]
        drops = any(t[0] == "-" and set(t[1:]) & {"i", "a"} for t in attrs)
        paths = [t for t in cmd.args if t not in attrs and not t.startswith("-")]
    else:
        ops = [t for t, _ in cmd.operands("")]
        drops = bool(ops) and _UNFLAG.fullmatch(ops[0].lower()) is not None
        paths = ops[1:]
    if not drops:
        return
    for p in _paths(paths, place):
        if place.where(p) in ("home", "system"):
            scan.add("permissions", "high", f"removes the immutable/append-only protection "
                     f"from {place.show(p)} ({cmd.name})", _VERBS, (posixpath.basename(p),))
            return


_PERM_CMDS = frozenset({"chmod", "chown", "chgrp", "setfacl"})


def find_exec(cmd: Cmd, place: Place, scan: Scan) -> None:
    """``find ~ -exec chmod 777 {} +``: a permission change over every file found."""
    a = cmd.args
    runs = [a[i + 1].rsplit("/", 1)[-1] for i in range(len(a) - 1)
            if a[i] in ("-exec", "-execdir", "-ok", "-okdir")]
    perm = [r for r in runs if r in _PERM_CMDS]
    if not perm:
        return
    roots = []
    for t in a:
        if t.startswith(("-", "(", "!")):
            break
        roots.append(t)
    for r in roots or ["."]:
        p = place.resolve(r.replace('"', "").replace("'", ""))
        if p is not None and _wide(p, place):
            scan.add("permissions", "critical" if p == "/" else "high", f"runs {perm[0]} on "
                     f"every file found under {place.show(p)} (find -exec)", _VERBS,
                     (place.show(p), posixpath.basename(p)))
            return


HANDLERS: dict[str, Callable[[Cmd, Place, Scan], None]] = {
    "chmod": chmod, "chown": chown, "chgrp": chown, "setfacl": setfacl, "find": find_exec,
    "chattr": chattr, "chflags": chattr,
}
