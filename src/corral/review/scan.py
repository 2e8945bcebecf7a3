"""Scan a shell action: every simple command (from ``corral.rules``' analysis), judged for
destructive scope, credential access, persistence and security weakening; network, publishing
and git are in ``scan_net``. Exfiltration is judged last, over the whole script."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from corral.review import (
    scan_code,
    scan_embed,
    scan_guard,
    scan_net,
    scan_perm,
    scan_sys,
    scan_tamper,
)
from corral.review.findings import Cmd, Scan
from corral.review.places import (
    CORRAL_VAR,
    Place,
    agent_config,
    corral_state,
    credential,
    is_top_level,
    path_candidates,
    persistence,
    trace,
)
from corral.rules.analysis import analyze

BUILD_DIRS = frozenset({
    "node_modules", "dist", "build", "target", "out", "__pycache__", ".pytest_cache",
    ".mypy_cache", ".ruff_cache", ".tox", ".nox", ".venv", "venv", "coverage", "htmlcov",
    ".next", ".nuxt", ".cache", ".parcel-cache", ".turbo", ".gradle", "obj", ".eggs", "tmp",
    ".tmp", "_build", "site", ".svelte-kit", ".angular", ".expo", "DerivedData", ".coverage",
    "bin", "logs", ".hypothesis", "pip-wheel-metadata", ".terraform", "cmake-build-debug",
    "cmake-build-release", "__snapshots__", ".docusaurus", "storybook-static",
})
# commands that use a credential file without printing it (ssh -i key, chmod 600 key)
USE_ONLY = frozenset({"ssh", "sftp", "ssh-add", "ssh-keygen", "chmod", "chown", "ls",
                      "stat", "test", "[", "git", "mkdir", "touch", "rm", "unlink", "shred",
                      "file", "du", "realpath", "readlink", "dirname", "basename", "cd",
                      "sops", "age", "gpg-agent", "code", "vim", "vi", "nano", "emacs"})
DELETERS = frozenset({"rm", "rmdir", "unlink", "shred", "trash", "trash-put", "srm", "wipe"})
# bounded repetitions everywhere: hostile input must not make a regex backtrack quadratically
_SECRET_VAR = re.compile(r"\$\{?([A-Za-z0-9_]{0,64}(?:TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|"
                         r"ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH|_PAT|SESSION_?KEY)"
                         r"[A-Za-z0-9_]{0,64})\}?", re.I)
_SECRET_NAME = re.compile(r"^[A-Z0-9_]{0,64}(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|"
                          r"PRIVATE_?KEY|CREDENTIAL|AUTH)[A-Z0-9_]{0,64}$", re.I)
SECRET_WORDS = re.compile(r"passw|secret|token|api[_-]?key|apikey|akia|private[ _-]?key|"
                          r"BEGIN (RSA|OPENSSH|EC|DSA|PGP)|credential|id_rsa|id_ed25519|"
                          r"\.pem|\.key\b|wallet|mnemonic|bearer", re.I)
_KEY_NAMES = re.compile(r"id_rsa|id_ed25519|id_ecdsa|id_dsa|\.pem|\.key|\.p12|\.pfx|\.env|"
                        r"credentials|secret|passw|token|wallet|\.kdbx|keychain|\.gnupg|"
                        r"\.ssh|\.aws", re.I)
_DEVICE = re.compile(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|mapper/|md|loop|dm-|rdisk)")
_HARMLESS_DEV = re.compile(r"^/dev/(null|zero|stdout|stderr|stdin|tty|fd/\d+|pts/\d+|random|"
                           r"urandom)$")
_COMMON_COMMANDS = frozenset({
    "git", "ls", "cat", "sudo", "su", "ssh", "scp", "python", "python3", "pip", "pip3", "node",
    "npm", "npx", "curl", "wget", "bash", "sh", "zsh", "make", "gcc", "cc", "go", "cargo",
    "docker", "kubectl", "cp", "mv", "rm", "grep", "find", "env", "gpg", "passwd", "login",
    "ps", "top", "id", "whoami", "corral", "codex", "claude", "gemini", "uv", "poetry",
})
_TLS_OFF = re.compile(r"\b(NODE_TLS_REJECT_UNAUTHORIZED=0|GIT_SSL_NO_VERIFY=(1|true)|"
                      r"PYTHONHTTPSVERIFY=0|REQUESTS_CA_BUNDLE=(''|\"\"|$)|CURL_INSECURE=1)")
_FORK_BOMB = re.compile(r"([\w:.-]{1,32})\s*\(\)\s*\{\s*\1\s*\|\s*\1\s*&\s*\}\s*;\s*\1")



def scan_shell(argv: tuple[str, ...], place: Place, scan: Scan | None = None) -> Scan:
    """Scan ``argv`` (a plain command or ``bash -lc SCRIPT``) into findings."""
    scan = scan or Scan.empty()
    a = analyze(argv)
    text = " ".join(argv)
    stdin_shell = False
    cmds = []
    for c in a.commands:
        known = [c.known(i) for i in range(len(c.tokens))]
        cmds.append(Cmd.of(c.tokens, known, c.open_from is not None and c.open_from >= len(c)))
    dec = next((c.name for c in cmds if scan_code.decoder(c)), None)
    for ptext, reason in a.problems:
        fetched = "$(curl" in ptext or "$(wget" in ptext or "`curl" in ptext
        if "standard input" in reason or ("computed at run time" in reason and fetched):
            stdin_shell = True
        elif scan_code.known_setup(ptext):
            continue  # eval "$(ssh-agent -s)": the text is a well-known tool's shell set-up
        elif dec is not None and ("computed at run time" in reason or "eval" in reason or
                                  "stream" in reason):
            scan.add("obfuscation", "high", f"runs decoded or obfuscated commands ({dec}): "
                     f"they cannot be reviewed (`{ptext[:80]}`)")
        else:
            scan.add("unanalysable", "high", f"cannot be judged statically: {reason} "
                                             f"(`{ptext[:80]}`)")
    here = place
    seen: list[tuple[Cmd, Place]] = []
    for cmd in cmds:
        if cmd.name == "cd":  # later relative paths resolve from there (in script order)
            here = _cd(cmd, here, place)
        elif cmd.name:
            _command(cmd, here, scan)
            seen.append((cmd, here))
    for target, rtext in a.writes:
        _write(target, place, scan, f"`{rtext[:60]}`")
        if here.cwd != place.cwd:  # the redirect may run after the cd: judge both readings
            _write(target, here, scan, f"`{rtext[:60]}`")
    _text_checks(text, place, scan)
    if stdin_shell:
        scan_code.piped_code(cmds, scan)
    scan_code.interpreter_from_pipe(cmds, scan)
    scan_code.runs_produced_file(seen, a.writes, place, scan)
    scan_net.combine(scan, place, cmds)
    return scan


def scan_remote(argv: tuple[str, ...], label: str, scan: Scan) -> None:
    """Judge a command that runs on another machine or container (``ssh host CMD``,
    ``kubectl exec POD -- CMD``): nothing there is our workspace."""
    if scan.depth >= 3:
        scan.add("unanalysable", "high", f"remote commands nest too deeply ({label})")
        return
    if argv and argv[0].rsplit("/", 1)[-1] in scan_code.RUNNERS and all(t.startswith("-") for t in
                                                               argv[1:]):
        return  # an interactive shell there: a person types into it, nothing to judge now
    remote = Place.make("/", (), "/root")
    sub = Scan.empty()
    sub.depth = scan.depth + 1
    scan_shell(argv, remote, sub)
    for f in sub.findings:
        if f.category != "scope":
            scan.add(f.category, f.risk, f"on {label}: {f.reason}", f.verbs, (*f.objects, label))


def _cd(cmd: Cmd, here: Place, start: Place) -> Place:
    ops = [(t, k) for t, k in cmd.operands("") if t != "-"]
    if not ops:
        return here.at(start.home)
    tok, known = ops[0]
    target = here.resolve(tok) if known or tok.startswith(("$HOME", "${HOME}", "~")) else None
    return here.at(target) if target is not None else here


def _text_checks(text: str, place: Place, scan: Scan) -> None:
    if "/dev/tcp/" in text or "/dev/udp/" in text:
        m = re.search(r"/dev/(tcp|udp)/([^/\s\"']+)", text)
        host = m.group(2) if m else "?"
        scan.add("exfiltration", "critical", f"opens a raw socket to {host} through /dev/tcp "
                                             "(reverse shell or exfiltration channel)")
        scan.senders.append((host, "other"))
    scan_tamper.text_checks(text, scan)
    scan_guard.text_checks(text, scan)
    if "()" in text and _FORK_BOMB.search(text):
        scan.add("destructive", "critical", "is a fork bomb (exhausts the machine's processes)")
    tls = _TLS_OFF.search(text)
    if tls is not None:
        scan.add("security", "medium", f"turns off TLS certificate checks ({tls.group(1)})",
                 ("certificate", "tls", "ssl", "insecure"), ())
    for m in re.finditer(r"(?<![<>&0-9])<\s*([^\s<>|;&()]+)", text):
        p = place.resolve(m.group(1).replace('"', "").replace("'", ""))
        if p is None:
            continue
        cred = credential(p)
        if cred is not None:
            _secret_read(scan, place, p, cred, "reads")


def _secret_read(scan: Scan, place: Place, path: str, cred: tuple[str, str], verb: str) -> None:
    label, risk = cred
    shown = place.show(path)
    if any(s == shown for s in scan.secrets):
        return
    scan.secrets.append(shown)
    scan.env_secret_only = False
    scan.add("credentials", risk, f"{verb} {shown} ({label})",
             ("secret", "credential", "key", "token", "password", ".env", "config"),
             (posixpath.basename(path), shown))


def _command(cmd: Cmd, place: Place, scan: Scan) -> None:
    name = cmd.name
    raw_dests = _destinations(cmd)
    dests = {d for d in (place.resolve(t) for t in raw_dests) if d is not None}
    if name not in USE_ONLY:
        skip_next = False
        for tok, k in zip(cmd.args, cmd.known_args, strict=False):
            if skip_next:
                skip_next = False
                continue
            if name in ("scp", "rsync") and tok in ("-i", "-F", "-o", "-P", "-S", "-J", "-c",
                                                      "-l", "-e"):
                skip_next = True
                continue
            if tok.startswith("-") and "=" not in tok and not tok.startswith("-v") \
                    and not tok.startswith("--data"):
                continue
            for cand in path_candidates(tok if k else tok.replace('"', "").replace("'", "")):
                p = place.resolve(cand)
                if p is None or p in dests:
                    continue
                cred = credential(p)
                if cred is not None:
                    _secret_read(scan, place, p, cred, "reads")
                    break
    scan_tamper.corral_tokens(cmd, place, scan, raw_dests, name in DELETERS)
    _secret_vars(cmd, scan)
    perm = name in ("chmod", "chown", "chgrp", "chattr", "setfacl")
    for d in raw_dests:
        _write(d, place, scan, f"`{name}`", content=not perm)
    if name == "mv":
        _move_away(cmd, place, scan, dests)
    if name == "truncate":
        for d in dests:
            if place.where(d) in ("home", "system") and not _governed(d):
                scan.add("destructive", "high", f"empties {place.show(d)} outside the "
                         "workspace", ("truncate", "empty", "clear"), (posixpath.basename(d),))
    if name in DELETERS:
        _delete(cmd, place, scan)
    for table in _TABLES:
        handler = table.get(name)
        if handler is not None:
            handler(cmd, place, scan)
    if name in scan_code.INTERPRETERS:
        scan_code.inline_code(cmd, place, scan)
    elif name in ("powershell", "pwsh", "powershell.exe", "pwsh.exe"):
        scan_code.powershell(cmd, place, scan)
    scan_code.mining(cmd, place, scan)
    if "/" in cmd.argv0:
        scan_guard.init_script(cmd, place, scan)
    if name.startswith("mkfs"):
        _disk(cmd, place, scan)


def _secret_vars(cmd: Cmd, scan: Scan) -> None:
    printers = ("echo", "printf", "printenv", "cat", "env")
    for tok, k in zip(cmd.args, cmd.known_args, strict=False):
        names = [m.group(1) for m in _SECRET_VAR.finditer(tok)] if "$" in tok else []
        if cmd.name == "printenv" and k and _SECRET_NAME.match(tok):
            names.append(tok)
        for n in names:
            if f"${n}" not in scan.secrets:
                scan.secrets.append(f"${n}")
            if cmd.name in printers:
                scan.add("credentials", "high", f"prints the secret variable ${n}",
                         ("print", "show", "echo", "debug"), (n, n.lower()))
    if cmd.name in ("env", "printenv", "set", "export", "declare", "compgen") and not [
            t for t in cmd.args if t not in ("-p", "-x", "-0", "--null", "-v")]:
        if "the environment" not in scan.secrets:
            scan.secrets.append("the environment")
        scan.add("credentials", "medium", "prints the whole environment (may include tokens)",
                 ("env", "environment", "variables"), ())


def _destinations(cmd: Cmd) -> list[str]:
    """Paths a command writes (not counting shell redirections)."""
    n = cmd.name
    ops = [t for t, k in cmd.operands("", ()) if k]
    if n in ("cp", "mv", "install", "ln", "rsync", "scp"):
        t = cmd.value("-t", "--target-directory")
        if t:
            return [t]
        ops = [t for t, k in cmd.operands("tSgmo" if n == "install" else "tS", (
            "--target-directory", "--suffix", "--mode", "--owner", "--group")) if k]
        return ops[-1:] if len(ops) >= 2 else []
    if n in ("tee", "truncate", "touch"):
        values = {"truncate": "sr", "touch": "tdrA", "tee": ""}[n]  # -r REF is read, not written
        return [t for t, k in cmd.operands(values, ("--size", "--reference", "--date")) if k]
    if n == "dd":
        return [t[3:] for t in cmd.args if t.startswith("of=")]
    if n in ("sed", "perl") and any(t.startswith("-i") or t == "--in-place" or t.startswith(
            "--in-place=") or (n == "perl" and t.startswith("-p") and "i" in t) for t in cmd.args):
        return ops[1:] if n == "sed" and not cmd.value("-e", "--expression") else ops
    if n in ("chmod", "chown", "chgrp", "chattr", "setfacl"):
        return ops[1:]
    if n in ("curl", "wget"):
        out = cmd.value("-o", "--output", "-O", "--output-document")
        return [out] if out and out != "-" and not (n == "curl" and out == "-O") else []
    if n == "ssh-keygen":
        f = cmd.value("-f")
        return [f] if f else []
    if n == "openssl":
        return [v for v in (cmd.value("-keyout"), cmd.value("-out")) if v]
    return []


def _governed(p: str) -> bool:
    """corral's state, a record of what ran or an agent's configuration (``scan_tamper``)."""
    return bool(corral_state(p) or trace(p) or agent_config(p))


def _write(target: str, place: Place, scan: Scan, how: str, content: bool = True) -> None:
    t = target.replace('"', "").replace("'", "")
    if _HARMLESS_DEV.match(t) or t.startswith(("/dev/tcp/", "/dev/udp/")):
        return
    if _DEVICE.match(t):
        scan.add("destructive", "critical", f"writes raw data to the disk device {t} "
                                            "(destroys its file systems)")
        return
    if CORRAL_VAR.search(t):
        scan.add("tampering", "critical", f"changes corral's own state {t[:60]} (config, "
                 "rules, grants or journal)")
        return
    p = place.resolve(t)
    if p is None:
        return
    if content and scan_tamper.changed(p, place, scan, f"changes ({how})"):
        return
    per = persistence(p) if content else None  # a mode or owner change runs nothing new
    if per is not None:
        label, risk = per
        if label == "a program on the PATH" and posixpath.basename(p) in _COMMON_COMMANDS:
            label, risk = f"shadows the `{posixpath.basename(p)}` command on the PATH", "high"
        scan.add("persistence", risk, f"writes {place.show(p)} ({label}) with {how}",
                 ("add", "append", "edit", "write", "update", "configure", "set up", "install",
                  "change"), (posixpath.basename(p), place.show(p), label.split(" ")[-1]))
        return
    where = place.where(p)
    if where == "home":
        scan.add("scope", "medium", f"writes {place.show(p)} outside the workspace",
                 ("write", "save", "create", "copy", "move"), (posixpath.basename(p),))
    elif where == "system":
        scan.add("scope", "high", f"writes {p} outside the workspace",
                 ("write", "save", "create", "copy", "install", "move"),
                 (posixpath.basename(p), p))


def _move_away(cmd: Cmd, place: Place, scan: Scan, dests: set[str]) -> None:
    """``mv ~/projects /tmp/x``: moving data out of its place outside the workspace."""
    for tok, k in cmd.operands("tS", ("--target-directory", "--suffix"))[:-1]:
        p = place.resolve(tok) if k else None
        if p is None or p in dests:
            continue
        if scan_tamper.changed(p, place, scan, "moves away"):
            continue
        if place.where(p) not in ("home", "system"):
            continue
        if persistence(p) is not None or credential(p) is not None:
            continue  # judged as a write or a secret read
        scan.add("destructive", "critical" if is_top_level(p, place) else "high",
                 f"moves {place.show(p)} away (outside the workspace)",
                 ("move", "rename", "mv", "archive"), (posixpath.basename(p), place.show(p)))


def _delete(cmd: Cmd, place: Place, scan: Scan) -> None:
    short, long = cmd.options()
    recursive = bool(short & {"r", "R"}) or "--recursive" in long or cmd.name in ("rmdir",)
    verb = "shreds" if cmd.name in ("shred", "srm", "wipe") else "deletes"
    verbs = ("delete", "remove", "clean", "wipe", "rm", "erase", "purge", "get rid of",
             "shred", "clear")
    unknown: list[str] = []
    targets = cmd.operands("ns" if cmd.name == "shred" else "", ("--iterations", "--size"))
    if not targets and cmd.open_tail:
        unknown.append("arguments from a pipe")
    for tok, k in targets:
        if "{}" in tok:
            continue  # find -exec rm {}: judged with the find command
        p = place.resolve(tok.replace('"', "").replace("'", "")) if not k or "$" in tok \
            else place.resolve(tok)
        if p is None:
            unknown.append(tok)
            continue
        _delete_one(p, tok, recursive, verb, verbs, place, scan)
    if unknown:
        scan.add("destructive", "high" if recursive or cmd.name != "rm" else "medium",
                 f"{verb} {', '.join(unknown[:3])}: a path computed at run time", verbs, ())


def _delete_one(p: str, tok: str, recursive: bool, verb: str, verbs: tuple[str, ...],
                place: Place, scan: Scan) -> None:
    if scan_tamper.changed(p, place, scan, verb):
        return
    glob = any(c in tok for c in "*?[")
    base = posixpath.basename(p)
    objects = (base, place.show(p), tok)
    where = place.where(p)
    parent = posixpath.dirname(p)
    if where == "workspace":
        if place.is_workspace_root(p) or (glob and place.is_workspace_root(parent)
                                          and base in ("*", ".*", "*.*")):
            scan.add("destructive", "high", f"{verb} the whole workspace ({place.show(p)})",
                     verbs, ("everything", "workspace", "all files"))
        elif base == ".git" or ("/.git/" in p and "/.git/hooks" not in p):
            scan.add("destructive", "high", f"{verb} the git history ({place.show(p)})",
                     verbs, (".git", "git history", "repository"))
        elif verb == "shreds":
            scan.add("destructive", "medium", f"shreds {place.show(p)} (unrecoverable)",
                     verbs, objects)
        elif recursive and not any(part in BUILD_DIRS or part.endswith(".egg-info")
                                   for part in p.split("/")):
            scan.add("destructive", "medium", f"{verb} {place.show(p)} inside the workspace",
                     verbs, objects)
        return
    if where == "scratch":
        return
    wide = is_top_level(p, place) or (glob and is_top_level(parent, place)) or parent == "/"
    if where == "home" and (p == place.home or (glob and parent == place.home)):
        wide = True
    if wide:
        scan.add("destructive", "critical", f"{verb} {place.show(p)}"
                 f"{' (the whole home directory)' if p == place.home else ''} outside the "
                 "workspace", (), ())
    else:
        scan.add("destructive", "high", f"{verb} {place.show(p)} outside the workspace",
                 verbs, objects)


def _disk(cmd: Cmd, place: Place, scan: Scan) -> None:
    target = next((t for t, k in cmd.operands("") if t.startswith("/dev/")), "a disk")
    scan.add("destructive", "critical", f"formats or repartitions {target} (`{cmd.name}`)")


def _dd(cmd: Cmd, place: Place, scan: Scan) -> None:
    for t in cmd.args:
        if t.startswith("if="):
            p = place.resolve(t[3:])
            cred = credential(p) if p else None
            if p is not None and cred is not None:
                _secret_read(scan, place, p, cred, "copies")


def _sudo(cmd: Cmd, place: Place, scan: Scan) -> None:
    inner = [t for t, k in cmd.operands("ughpCDrtTUR") if k and len(t) >= 3]
    what = " ".join(t for t, _ in cmd.operands("ughpCDrtTUR")[:3]) or "a shell"
    scan.add("security", "high", f"runs `{what}` as root ({cmd.name})",
             ("sudo", "as root", "install", "root", "admin"),
             tuple(t for t in inner if not t.startswith("-") and t not in ("install", "apt-get",
                                                                             "apt", "yum", "dnf")))


def _find(cmd: Cmd, place: Place, scan: Scan) -> None:
    roots: list[str] = []
    for t in cmd.args:
        if t.startswith(("-", "(", "!")) or t in ("(", "!"):
            break
        roots.append(t)
    roots = roots or ["."]
    a = cmd.args
    deletes = "-delete" in a or any(
        a[i] in ("-exec", "-execdir", "-ok", "-okdir") and i + 1 < len(a)
        and a[i + 1].rsplit("/", 1)[-1] in (*DELETERS, "truncate") for i in range(len(a)))
    names = [a[i + 1] for i in range(len(a) - 1) if a[i] in ("-name", "-iname", "-path",
                                                              "-ipath", "-regex")]
    for r in roots:
        p = place.resolve(r.replace('"', "").replace("'", ""))
        if p is None:
            continue
        where = place.where(p)
        if deletes and scan_tamper.changed(p, place, scan, "deletes or empties files under"):
            continue
        if deletes and where in ("home", "system"):
            wide = is_top_level(p, place) and not names
            scan.add("destructive", "critical" if wide else "high",
                     f"deletes files{' matching ' + names[0] if names else ''} under "
                     f"{place.show(p)} outside the workspace", ("delete", "remove", "clean"),
                     (place.show(p), posixpath.basename(p)))
        elif deletes and place.is_workspace_root(p) and not names:
            scan.add("destructive", "high", "deletes every file in the workspace (find -delete)",
                     ("delete", "remove"), ("everything",))
        if names and where in ("home", "system") and any(_KEY_NAMES.search(n) for n in names):
            scan.add("credentials", "high", f"searches {place.show(p)} for secrets or keys "
                     f"({names[0]})", ("find", "search", "locate", "look for"),
                     tuple(names))
            scan.secrets.append(f"files named {names[0]}")
            scan.env_secret_only = False


def _grep(cmd: Cmd, place: Place, scan: Scan) -> None:
    pattern = cmd.value("-e", "--regexp")
    ops = [t for t, k in cmd.operands("efABCmdD", ("--regexp", "--file", "--max-count",
                                                   "--context", "--after-context",
                                                   "--before-context", "--type", "-t", "-g",
                                                   "--glob"))]
    if pattern is None and ops:
        pattern = ops[0]
        ops = ops[1:]
    if not pattern or not SECRET_WORDS.search(pattern):
        return
    for t in ops:
        p = place.resolve(t.replace('"', "").replace("'", ""))
        if p is not None and place.where(p) in ("home", "system"):
            scan.add("credentials", "high", f"searches {place.show(p)} for secrets "
                     f"('{pattern[:30]}')", ("search", "grep", "find", "look for"),
                     (place.show(p), pattern))
            scan.secrets.append(f"matches of '{pattern[:30]}'")
            scan.env_secret_only = False
            return
    if "the environment" in scan.secrets:
        scan.add("credentials", "high", f"searches the environment for secrets "
                 f"('{pattern[:30]}')", ("search", "env", "environment"), (pattern,))


_HANDLERS: dict[str, Callable[[Cmd, Place, Scan], None]] = {
    "dd": _dd,
    "sudo": _sudo, "doas": _sudo, "pkexec": _sudo, "su": _sudo, "run0": _sudo,
    "find": _find, "grep": _grep, "egrep": _grep, "fgrep": _grep, "rg": _grep, "ag": _grep,
    "ack": _grep,
    "wipefs": _disk, "fdisk": _disk, "sfdisk": _disk, "parted": _disk, "sgdisk": _disk,
    "mkswap": _disk, "blkdiscard": _disk, "mke2fs": _disk, "gdisk": _disk,
}

_TABLES = (_HANDLERS, scan_sys.HANDLERS, scan_net.HANDLERS, scan_guard.HANDLERS,
           scan_perm.HANDLERS, scan_tamper.HANDLERS, scan_embed.HANDLERS)
