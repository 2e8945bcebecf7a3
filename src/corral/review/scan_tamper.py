"""Tampering: destroying the record of what ran (shell history, logs, audit trails, agent
transcripts, corral's journal) and changing what governs the agent (corral's own state, the
coding agent's settings, hooks and MCP servers, nested agents with their checks off).

An agent that hides its tracks or loosens its own controls is the case the journal and the
reviewer exist for, so these findings carry no authorizing words unless a person plausibly asks
for them in a request (rotating system logs); the rest must be decided by a person.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from corral.review.findings import Cmd, Scan
from corral.review.places import CORRAL_VAR, Place, agent_config, corral_state, trace

_LOG_VERBS = ("clear", "clean", "delete", "remove", "truncate", "rotate", "empty", "wipe",
              "erase", "purge")
_HIST_VAR = re.compile(r"(?:^|[\s;&|('\"])(?:export\s+|declare\s+-x\s+|typeset\s+-x\s+)?"
                       r"(HISTFILE=(?:/dev/null|''|\"\")?(?=[\s;&|)]|$)|HISTSIZE=0\b|"
                       r"HISTFILESIZE=0\b|SAVEHIST=0\b|HISTIGNORE=['\"]?\*)")
_CORRAL_ENV = re.compile(r"(?:^|[\s;&|('\"])(?:export\s+|declare\s+-x\s+)?(CORRAL_(?:HOME|"
                         r"SYSTEM_DIR|SUPERVISOR_SOCKET|SUPERVISOR_TOKEN))=")
_WIN_LOGS = re.compile(r"\bwevtutil(\.exe)?\s+(cl|clear-log)\b|\b(Clear|Remove)-EventLog\b|"
                       r"\bfsutil(\.exe)?\s+usn\s+deletejournal\b", re.I)


def changed(p: str, place: Place, scan: Scan, how: str) -> bool:
    """Judge a change to ``p`` (written, deleted, moved away, edited): True when it is corral's
    state, a record of what ran, or an agent's configuration (judged here, nothing else)."""
    shown = place.show(p)
    if corral_state(p):
        scan.add("tampering", "critical", f"{how} corral's own state {shown} (config, rules, "
                 "grants or journal)")
        return True
    tr = trace(p)
    if tr is not None:
        label, ask = tr
        base = posixpath.basename(p)
        scan.add("anti-forensics", "high", f"{how} {shown} ({label}): destroys the record of "
                 "what ran", _LOG_VERBS if ask else (), (base, shown, "logs", "/var/log")
                 if ask else ())
        return True
    if agent_config(p):
        scan.add("tampering", "high", f"{how} {shown} (a coding agent's own configuration: "
                 "approvals, sandbox, hooks, MCP servers)")
        return True
    return False


# every operand is changed; or only the last one (the destination)
_CHANGERS = frozenset({"truncate", "tee", "touch", "shred", "chmod", "chown", "chgrp", "chattr",
                       "setfacl", "sqlite3"})
_COPIERS = frozenset({"cp", "mv", "ln", "install", "rsync"})


def corral_tokens(cmd: Cmd, place: Place, scan: Scan, raw_dests: list[str],
                  deleter: bool) -> None:
    """``corral`` subcommands that approve, trust or rewire the agent's own controls, and any
    argument naming corral's state (``$CORRAL_HOME/...``, ``~/.corral/...``)."""
    if cmd.name == "corral":
        sub = cmd.sub()
        words = [t for t in cmd.args if not t.startswith("-")]
        if sub == "grants" and words[1:2] in ([], ["list"]):
            return  # reading the standing approvals changes nothing
        if sub in ("approve", "grants", "grant", "trust"):
            scan.add("tampering", "critical", f"runs `corral {sub}`: the agent would approve, "
                     "grant or trust its own actions")
        elif sub in ("untrust", "install-hooks", "uninstall-hooks"):
            scan.add("tampering", "high", f"runs `corral {sub}`: changes which configuration "
                     "and hooks govern the agent")
        elif sub in ("config", "policy") and any(a in ("set", "add", "edit", "trust")
                                                 for a in cmd.args):
            scan.add("tampering", "high", f"changes corral's own policy (`corral {sub}`)")
        return
    ops = [t for t, _ in cmd.operands("")]
    for tok in cmd.args:
        if CORRAL_VAR.search(tok):
            in_place = cmd.name == "sed" and any(t.startswith(("-i", "--in-place"))
                                                 for t in cmd.args)
            crit = deleter or in_place or tok in raw_dests or cmd.name in _CHANGERS or (
                cmd.name in _COPIERS and ops[-1:] == [tok])
            scan.add("tampering", "critical" if crit else "high",
                     f"{'changes' if crit else 'touches'} corral's own state {tok[:60]} "
                     "(config, rules, grants or journal)")
            return
        p = place.resolve(tok.replace('"', "").replace("'", ""))
        if p is not None and corral_state(p):
            if deleter or tok in raw_dests:
                return  # judged as a change (``changed``) with the write or the deletion
            scan.add("tampering", "high", f"touches corral's own state {place.show(p)} "
                                          "(config, rules, grants or journal)")
            return


def text_checks(text: str, scan: Scan) -> None:
    """Settings written as assignments (``HISTFILE= cmd``, ``CORRAL_HOME=/tmp/x corral``):
    the shell analysis drops assignment prefixes, so they are found in the text."""
    m = _HIST_VAR.search(text) if "HIST" in text else None
    if m is not None:
        scan.add("anti-forensics", "high", f"turns off shell history ({m.group(1)[:30]}): hides "
                 "what ran")
    m = _CORRAL_ENV.search(text) if "CORRAL_" in text else None
    if m is not None:
        scan.add("tampering", "high", f"points corral at another home or supervisor "
                 f"({m.group(1)}=…)")
    m = _WIN_LOGS.search(text) if ("ev" in text or "Ev" in text or "usn" in text) else None
    if m is not None:
        scan.add("anti-forensics", "high", f"clears the Windows event logs ({m.group(0)})")


def _history(cmd: Cmd, place: Place, scan: Scan) -> None:
    a = cmd.args
    if cmd.name == "history" and ("-c" in a or "-d" in a or ("-w" in a and "/dev/null" in a)):
        scan.add("anti-forensics", "high", "erases the shell history (hides what ran)")
    elif cmd.name == "unset" and "HISTFILE" in a:
        scan.add("anti-forensics", "high", "turns off shell history (unset HISTFILE)")
    elif cmd.name == "unset" and any(t.startswith("CORRAL_") for t in a):
        scan.add("tampering", "high", "unsets corral's settings "
                 f"({next(t for t in a if t.startswith('CORRAL_'))})")
    elif cmd.name in ("set", "shopt") and any(a[i] in ("+o", "-u", "-ou") and a[i + 1] in (
            "history",) for i in range(len(a) - 1)):
        scan.add("anti-forensics", "high", f"turns off shell history (`{cmd.name} "
                 f"{' '.join(a[:2])}`)")


def _logs(cmd: Cmd, place: Place, scan: Scan) -> None:
    a = cmd.args
    short, long = cmd.options()
    hit = ""
    if cmd.name == "journalctl" and any(t.startswith(("--vacuum", "--rotate", "--flush"))
                                        and not t.startswith("--flush-") for t in a):
        hit = "deletes or rotates away the systemd journal (journalctl --vacuum)"
    elif cmd.name == "dmesg" and ("c" in short or "C" in short or long & {"--clear",
                                                                         "--read-clear"}):
        hit = "clears the kernel log (dmesg --clear)"
    elif cmd.name == "lastlog" and ("C" in short or "--clear" in long):
        hit = "clears the login records (lastlog --clear)"
    elif cmd.name == "faillog" and ("r" in short or "--reset" in long):
        hit = "clears the failed-login records (faillog -r)"
    elif cmd.name == "log" and cmd.sub() == "erase":
        hit = "erases the macOS unified log (log erase)"
    if hit:
        scan.add("anti-forensics", "high", hit)


_AGENT_BYPASS = re.compile(r"^--(dangerously-bypass-approvals-and-sandbox|yolo|"
                           r"dangerously-skip-permissions)$|danger-full-access|bypassPermissions|"
                           r"approval_policy\s{0,3}=\s{0,3}['\"]?never")


def _agent_cli(cmd: Cmd, place: Place, scan: Scan) -> None:
    """``claude mcp add``, ``codex mcp add``: the agent adding tools to its own setup; a nested
    agent started with its approvals and sandbox off."""
    a = cmd.args
    words = [t for t in a if not t.startswith("-")]
    if words[:1] == ["mcp"] and words[1:2] and words[1] in ("add", "add-json", "remove",
                                                            "add-from-claude-desktop"):
        scan.add("tampering", "high", f"changes the MCP servers of {cmd.name} "
                 f"(`{cmd.name} mcp {words[1]}`): new tools for the agent")
        return
    if words[:1] == ["config"] and words[1:2] and words[1] in ("set", "add", "remove"):
        scan.add("tampering", "high", f"changes {cmd.name}'s settings (`{cmd.name} config "
                 f"{words[1]}`)")
        return
    bypass = next((t[:60] for t in a if _AGENT_BYPASS.search(t[:400])), None)
    if bypass is None and cmd.name == "gemini" and "-y" in a:
        bypass = "-y"
    if bypass is not None:
        scan.add("tampering", "high", f"starts {cmd.name} with its approvals or sandbox off "
                 f"({bypass})")


def _timestamp(cmd: Cmd, place: Place, scan: Scan) -> None:
    """``touch -t 197001010000 /usr/bin/x``: a false timestamp outside the workspace hides when
    a file was planted or changed (timestomping)."""
    a = cmd.args
    if cmd.name == "touch":
        forged = any(t in ("-t", "-d", "-r", "-A") or t.startswith(("--date", "--reference",
                     "-t", "-d", "-r")) for t in a)
        ops = [t for t, k in cmd.operands("tdrA", ("--date", "--reference")) if k]
    else:  # SetFile -d/-m DATE FILE (macOS)
        forged = "-d" in a or "-m" in a
        ops = [t for t, k in cmd.operands("dmacPt") if k]
    if not forged:
        return
    for t in ops:
        p = place.resolve(t)
        if p is not None and place.where(p) in ("home", "system"):
            scan.add("anti-forensics", "high", f"sets a false timestamp on {place.show(p)} "
                     f"({cmd.name}): hides when it was changed")
            return


HANDLERS: dict[str, Callable[[Cmd, Place, Scan], None]] = {
    "touch": _timestamp, "SetFile": _timestamp,
    "history": _history, "unset": _history, "set": _history, "shopt": _history,
    "journalctl": _logs, "dmesg": _logs, "lastlog": _logs, "faillog": _logs, "log": _logs,
    "claude": _agent_cli, "codex": _agent_cli, "gemini": _agent_cli,
}
