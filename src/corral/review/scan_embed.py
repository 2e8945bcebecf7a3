"""Shell commands embedded in other languages: AppleScript's ``do shell script``, awk's
``system()``, and literal command strings in inline interpreter code (``python3 -c
"os.system('…')"``, ``perl -e 'system("…")'``, ``node -e "execSync('…')"``), plus files that
inline code opens for writing or deletes. Each is judged as if written in the shell.

Strings in inline code are only guessed to be shell commands, so a string that does not parse
as one adds nothing (no "unanalysable" finding): the guess must never turn everyday code into a
denial.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from corral.review import scan_tamper
from corral.review.findings import Cmd, Scan
from corral.review.places import Place

_APPLESCRIPT_SHELL = re.compile(r'do shell script\s{1,8}"((?:[^"\\]|\\.){1,4000})"'
                                r'(\s{1,8}with administrator privileges)?')
_APPLESCRIPT_DELETE = re.compile(r'\bdelete\s{1,8}\(?\s{0,8}POSIX file\s{1,8}"([^"]{1,4096})"')
# inline programs are short; past this the text is not searched (bounded regex work: each
# pattern below may scan up to 2,000 characters from every quote)
_MAX_CODE = 16_384
# a call that hands a literal string to a shell, in Python, Perl, Ruby, PHP, Node or awk
_SHELL_CALL = re.compile(
    r"(?:\bos\.system|\bos\.popen|\bsubprocess\.(?:run|call|check_call|check_output|Popen|"
    r"getoutput|getstatusoutput)|\bsystem|\bshell_exec|\bpassthru|\bexecSync|\bspawnSync|"
    r"\bchild_process\.exec|\bcp\.exec|\bIO\.popen|\bOpen3\.\w{1,20}|\bpty\.spawn)"
    r"\s{0,4}\(\s{0,4}[rbuf]?(['\"])((?:\\.|(?!\1)[^\\]){1,2000})\1")
_BACKTICKS = re.compile(r"`([^`]{1,2000})`|\bqx\s{0,2}[({\[]([^)}\]]{1,2000})[)}\]]|"
                        r"%x\(([^)]{1,2000})\)")
_AWK_PIPE = re.compile(r"\|\s{0,4}\"((?:[^\"\\]|\\.){1,2000})\"|\"((?:[^\"\\]|\\.){1,2000})\""
                       r"\s{0,4}\|\s{0,4}getline")
# files the code opens for writing, truncates or deletes
_PATH = r"['\"]((?:/|~/)[^'\"\s]{1,400})['\"]"  # no back-reference: it is used three times
_WRITES = re.compile(r"\bopen\s{0,4}\(\s{0,4}" + _PATH + r"\s{0,4},\s{0,4}['\"][wax+]|"
                     r"\b(?:unlink|remove|rmtree|unlinkSync|rmSync|rmdirSync|writeFileSync|"
                     r"appendFileSync|truncate|truncateSync|write_text|write_bytes|"
                     r"File\.(?:delete|write)|FileUtils\.rm\w{0,6}|file_put_contents)"
                     r"\s{0,4}\(\s{0,4}(?:Path\()?(?:glob\()?" + _PATH + r"|"
                     r"\bunlink\s{0,4}\(?\s{0,4}glob\s{0,4}\(\s{0,4}" + _PATH)


def _nested(scripts: list[str], label: str, place: Place, scan: Scan,
            strict: bool = False) -> None:
    """Judge each script as shell; ``strict``: also what cannot be analysed (AppleScript's
    ``do shell script`` is certainly shell, a string in Python only probably)."""
    from corral.review.scan import scan_shell

    if not scripts:
        return
    if scan.depth >= 3:
        scan.add("unanalysable", "high", f"shell commands in {label} nest too deeply")
        return
    sub = Scan.empty()
    sub.depth = scan.depth + 1
    for script in scripts[:8]:
        scan_shell(("sh", "-c", script), place, sub)
    for f in sub.findings:
        if strict or f.category != "unanalysable":
            scan.add(f.category, f.risk, f"{f.reason} (in {label})", f.verbs, f.objects)
    scan.secrets.extend(sub.secrets)
    scan.senders.extend(sub.senders)
    scan.fetches.extend(sub.fetches)
    scan.env_secret_only = scan.env_secret_only and sub.env_secret_only


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\'", "'").replace("\\\\", "\\")


def _osascript(cmd: Cmd, place: Place, scan: Scan) -> None:
    """``osascript -e 'do shell script "rm …"'``: AppleScript that runs a shell or deletes a
    file is judged as that shell command (as root with administrator privileges)."""
    code = "\n".join(cmd.args[i + 1] for i in range(len(cmd.args) - 1)
                     if cmd.args[i] == "-e")[:_MAX_CODE]
    scripts = []
    for m in _APPLESCRIPT_SHELL.finditer(code):
        script = _unescape(m.group(1))
        if m.group(2):
            scan.add("security", "high", f"runs `{script[:40]}` as root (osascript with "
                     "administrator privileges)", ("sudo", "as root", "admin"), ())
        scripts.append(script)
    scripts += [f"rm -- '{m.group(1)}'" for m in _APPLESCRIPT_DELETE.finditer(code)
                if "'" not in m.group(1)]
    _nested(scripts, "AppleScript", place, scan, strict=True)


def inline(cmd: Cmd, code: str, place: Place, scan: Scan) -> None:
    """Literal shell commands and written or deleted files in inline interpreter code."""
    code = code[:_MAX_CODE]
    scripts = [_unescape(m.group(2)) for m in _SHELL_CALL.finditer(code)]
    if cmd.name in ("perl", "ruby", "php"):
        scripts += [next(g for g in m.groups() if g is not None)
                    for m in _BACKTICKS.finditer(code)]
    _nested(scripts, f"inline {cmd.name} code", place, scan)
    for m in _WRITES.finditer(code):
        raw = next((g for g in m.groups() if g is not None), None)
        p = place.resolve(raw) if raw else None
        if p is not None:
            scan_tamper.changed(p, place, scan, f"changes (inline {cmd.name} code)")


def _awk(cmd: Cmd, place: Place, scan: Scan) -> None:
    ops = [t for t, _ in cmd.operands("Fvf", ("--field-separator", "--assign", "--file"))]
    if not ops or cmd.value("-f", "--file"):
        return
    code = ops[0][:_MAX_CODE]
    scripts = [_unescape(m.group(2)) for m in _SHELL_CALL.finditer(code)]
    if "|" in code:
        scripts += [_unescape(next(g for g in m.groups() if g is not None))
                    for m in _AWK_PIPE.finditer(code)]
    _nested(scripts, f"{cmd.name} code", place, scan)


HANDLERS: dict[str, Callable[[Cmd, Place, Scan], None]] = {
    "osascript": _osascript, "awk": _awk, "gawk": _awk, "mawk": _awk, "nawk": _awk,
    "busybox-awk": _awk,
}
