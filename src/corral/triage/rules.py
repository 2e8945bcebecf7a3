"""Hard rules (before any model, never lowered by one) and the rules-only verdict.

Hard rules escalate: credential stores touched outside the workspace, persistence, attempts to
disable the sandbox, the proxy or the journal, evidence destruction, data sent to destinations
corral did not approve, a process that ran although corral refused it, and a forged or unknown
corral stamp. They look at the alert itself and at the commands of the correlated calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from corral.triage.alerts import Alert
from corral.triage.correlate import MEDIUM, STRONG, Correlation
from corral.triage.evidence import EvidencePack

CREDENTIALS = re.compile(
    r"(^|/)(\.aws/(credentials|config)|\.ssh/(id_[a-z0-9_]+|.*_key)(\.pub)?$|\.netrc$|"
    r"\.git-credentials$|\.config/gh/hosts\.yml$|\.docker/config\.json$|\.kube/config$|"
    r"\.gnupg/|\.npmrc$|\.pypirc$|\.config/gcloud/|\.azure/|\.password-store/|"
    r"\.vault-token$|Login Data$|Cookies$|keychain|\.local/share/keyrings/|"
    r"etc/shadow$|etc/gshadow$|\.config/corral/|\.corral/keys/)", re.I)
CRED_WORDS = re.compile(r"(\.aws\b|\.ssh\b|\.aws/credentials|\.ssh/id_|\.netrc|\.git-credentials|"
                        r"gh/hosts\.yml|\.docker/config\.json|\.kube/config|/etc/shadow|"
                        r"\.gnupg|\.password-store|\.vault-token|keyring get|"
                        r"security find-generic-password|\.corral/keys)", re.I)
PERSISTENCE = re.compile(
    r"(^|/)(\.bashrc|\.bash_profile|\.profile|\.zshrc|\.zprofile|\.config/fish/config\.fish|"
    r"\.config/autostart/|\.config/systemd/|etc/systemd/|etc/cron|var/spool/cron|"
    r"Library/LaunchAgents/|Library/LaunchDaemons/|\.ssh/authorized_keys|etc/rc\.local|"
    r"etc/profile\.d/|etc/ld\.so\.preload|\.git/hooks/)", re.I)
PERSIST_WORDS = re.compile(r"(\bcrontab\b(?! -l)|\bsystemctl (--user )?enable\b|"
                           r"\bat now\b|>>? ?~?/?\S*\.(bashrc|zshrc|profile)\b|"
                           r"authorized_keys|launchctl load|\bupdate-rc\.d\b)", re.I)
WEAKEN = re.compile(
    r"(journal\.db|\.corral/|\bcorral (config|trust|grants add)\b|pkill\b.*(corral|bwrap)|"
    r"killall\b.*(corral|bwrap)|\bkill\b[^|;&]*(\$PPID|\$\(pgrep|`pgrep)|\bunset (HTTPS?_PROXY|ALL_PROXY|https?_proxy)\b|"
    r"(HTTPS?_PROXY|ALL_PROXY|NO_PROXY)=\S*|--dangerously|--no-sandbox|"
    r"approval_policy\s*=\s*['\"]?never|sandbox_mode\s*=|danger-full-access|"
    r"\.codex/config\.toml|\.claude/settings(\.local)?\.json|\.gemini/settings\.json|"
    r"\biptables -F\b|\bsetenforce 0\b|\bnsenter\b|/proc/1/root|\bdocker run .*--privileged)",
    re.I)
DESTROY = re.compile(r"(\bhistory -c\b|\bunset HISTFILE\b|HISTFILE=/dev/null|"
                     r"\.bash_history|\.zsh_history|\bshred\b|\bwipe\b|"
                     r"\brm\b[^|;&]*(/var/log|journal\.db|\.codex/(history|sessions|log)|"
                     r"\.claude/projects|\.gemini/tmp|\.corral)|\bjournalctl --vacuum|"
                     r"truncate -s ?0 [^|;&]*(log|history))", re.I)
DESTROY_PATH = re.compile(r"(^|/)(\.bash_history|\.zsh_history|var/log/|journal\.db|"
                          r"\.codex/history\.jsonl|\.claude/projects/)", re.I)
INJECTION = re.compile(r"(ignore (all |any )?(the )?(previous|prior|above|earlier) instructions|"
                       r"disregard (all |the )?(previous|prior|above)|this is expected[^.]{0,40}"
                       r"ignore|ignore (this|the) alert|you are now (in )?|new instructions:|"
                       r"</?(system|instructions)>|do not (tell|inform) the user)", re.I)
REMOTE_CODE = re.compile(r"((curl|wget)\b[^|;&]*\|\s*(sudo )?(ba|z|da)?sh\b|base64 (-d|--decode)"
                         r"[^|;&]*\|\s*(ba)?sh\b|\bbash -i >& /dev/tcp/|/dev/tcp/\S+|"
                         r"\bnc\b[^|;&]* -e\b|\bmkfifo\b.*\bnc\b)", re.I)
EXFIL = re.compile(r"(\bcurl\b[^|;&]*(\s(-d|--data(-binary|-raw|-urlencode)?|-F|--form|-T|"
                   r"--upload-file)\s*@)|\|\s*curl\b[^|;&]*(-d|--data\S*|-T|-F)\s*@-|"
                   r"\bnc\b[^|;&]*<|\bscp\b\s+\S+\s+\S+@\S+:|\brsync\b.*\s\S+@\S+:)", re.I)
URL_HOST = re.compile(r"(?:https?|ftp)://(?:[^/@\s]*@)?([^/:\s'\"]+)", re.I)
LOOPBACK = re.compile(r"^(localhost|127\.|::1$|\[::1\])", re.I)
REFUSED = ("denied", "forbidden", "timed_out", "abort")
DESTRUCTIVE = re.compile(r"(\brm\s|\bgit (reset --hard|clean -[a-z]*f|push (-f|--force)|"
                         r"checkout -- |restore\b|stash\b|rm\b|branch -D)|\bdrop (table|database)\b|"
                         r"\bchmod -R\b|\bmkfs\b|\bdd\b.*of=|\bfind\b.*\s-delete\b|"
                         r"\btruncate\b|\bshred\b)", re.I)
INSTALL = re.compile(r"\b(pip3? install|npm (i|install)|yarn add|pnpm add|apt(-get)? install|"
                     r"brew install|cargo install|gem install|go install)\b", re.I)


@dataclass(frozen=True)
class RuleHit:
    rule: str  # credential_access | persistence | weaken_controls | evidence_destruction |
    #            unapproved_destination | refused_but_ran | stamp_problem | claimed_only
    why: str
    event_ids: tuple[str, ...] = ()


def _outside(path: str, workspace: str | None) -> bool:
    if not workspace:
        return True
    ws = workspace.rstrip("/") + "/"
    return not (path + "/").startswith(ws)


def _commands(alert: Alert, pack: EvidencePack) -> list[tuple[str, tuple[str, ...]]]:
    """(command text, event ids) of the alert's process chain and the correlated calls."""
    out: list[tuple[str, tuple[str, ...]]] = []
    p, depth = alert.process, 0
    while p is not None and depth < 4:
        if p.command_line:
            out.append((p.command_line, ()))
        p, depth = p.parent, depth + 1
    for d in pack.decisions + pack.results:
        cl = d.get("process.command_line")
        if isinstance(cl, str) and d.get("call_id") in pack.call_ids:
            out.append((cl, (d["event_id"],)))
    return out


def hard_rules(alert: Alert, corr: Correlation, pack: EvidencePack) -> list[RuleHit]:
    """Every hard rule the alert and its evidence trip (empty: none)."""
    hits: list[RuleHit] = []
    if corr.session_id is None:  # no agent: back to the SOC (not_agent), not ours to judge
        return [RuleHit("stamp_problem", corr.marker_problem)] if corr.marker_problem else []
    ws = pack.workspace
    path = alert.file.path if alert.file else None
    if path and CREDENTIALS.search(path) and _outside(path, ws):
        hits.append(RuleHit("credential_access", f"{path} is a credential store outside the "
                                                 "workspace"))
    if path and PERSISTENCE.search(path) and _outside(path, ws):
        hits.append(RuleHit("persistence", f"{path} makes code run again later"))
    action = ((alert.file.action if alert.file else None) or "").lower()
    if path and DESTROY_PATH.search(path) and action not in ("read", "open", "opened"):
        hits.append(RuleHit("evidence_destruction", f"{path} is a log or history file"))
    if path and WEAKEN.search(path):
        hits.append(RuleHit("weaken_controls", f"{path} belongs to corral or an agent's "
                                               "permission settings"))
    for cmd, ids in _commands(alert, pack):
        for rule, rx, why in (
                ("credential_access", CRED_WORDS, "reads a credential store"),
                ("persistence", PERSIST_WORDS, "installs persistence"),
                ("weaken_controls", WEAKEN, "touches the sandbox, proxy, journal or agent "
                                            "permission settings"),
                ("evidence_destruction", DESTROY, "destroys logs or history"),
                ("remote_code", REMOTE_CODE, "runs code fetched from the network or a "
                                             "reverse shell")):
            m = rx.search(cmd)
            if m and not (rule == "credential_access" and ws and ws in cmd
                          and not _cred_outside(cmd, ws)):
                hits.append(RuleHit(rule, f"command {why} ({m.group(0)[:60]!r})", ids))
        for word in _paths(cmd):
            if not _outside(word, ws):
                continue
            for rule, rx in (("credential_access", CREDENTIALS), ("persistence", PERSISTENCE)):
                if rx.search(word):
                    hits.append(RuleHit(rule, f"command names {word[:80]} outside the "
                                              "workspace", ids))
        if EXFIL.search(cmd):
            allowed = {str(n.get("server.address", "")).lower() for n in pack.network
                       if n.get("trusted") and n.get("network.policy.decision") == "allow"}
            hosts = {h.lower() for h in URL_HOST.findall(cmd)}
            if not hosts or not hosts <= allowed:
                hits.append(RuleHit("exfiltration", "command sends local data to a "
                                                    "destination corral did not allow", ids))
    if corr.marker_problem:
        hits.append(RuleHit("stamp_problem", corr.marker_problem))
    for r in pack.results + pack.context + pack.requests:
        text = r.get("gen_ai.tool.call.result") or r.get("prompt")
        if isinstance(text, str) and (m := INJECTION.search(text)):
            hits.append(RuleHit("prompt_injection", f"recorded {r['name']} text reads like an "
                                                    f"injected instruction ({m.group(0)[:50]!r})",
                                (r["event_id"],)))
    hits += _network(alert, corr, pack)
    hits += _refused_but_ran(alert, corr, pack)
    if corr.strength < MEDIUM and corr.claimed_strength >= MEDIUM:
        hits.append(RuleHit("claimed_only", "only the agent's own reports (not corral's "
                                            "record) link it to the alert"))
    unique: dict[tuple[str, str], RuleHit] = {}
    for h in hits:
        unique.setdefault((h.rule, h.why), h)
    return list(unique.values())


def _paths(cmd: str) -> list[str]:
    """Absolute or home-relative path words of a command line (inside ``sh -c`` too)."""
    out = []
    for w in re.split(r"[\s'\"=;&|<>()]+", cmd):
        if w.startswith(("/", "~/", "$HOME/")) and len(w) > 2:
            out.append(w.rstrip(".,"))
    return out


def _cred_outside(cmd: str, ws: str) -> bool:
    return any(CRED_WORDS.search(w) and _outside(w, ws) for w in cmd.split())


NETWORK_WORDS = ("fetch", "download", "install", "update", "upgrade", "http", "url", "web",
                 "api", "online", "internet", "latest", "curl", "wget", "request", "upload",
                 "publish", "push", "pull", "clone", "deploy", "ping", "connect", "docs",
                 "package", "registry", "site", "server", "endpoint", "network")


def _unrequested(dest: str, pack: EvidencePack) -> bool:
    """The recorded request (text only, tier 2) calls for no network at all and does not name
    the destination: an outbound attempt nobody asked for (injected instructions look so)."""
    asked_for = [r for r in pack.requests if r.get("for_matched_call")] or pack.requests
    texts = [str(r["prompt"]).lower() for r in asked_for if r.get("prompt")]
    if not texts:
        return False
    text = " ".join(texts)
    return dest.lower() not in text and not any(w in text for w in NETWORK_WORDS)


def _network(alert: Alert, corr: Correlation, pack: EvidencePack) -> list[RuleHit]:
    if alert.network is None:
        return []
    dests = {d.lower() for d in (alert.network.host, alert.network.ip) if d}
    if any(LOOPBACK.match(d) for d in dests):
        return []
    seen = [n for n in pack.network if n.get("trusted")
            and str(n.get("server.address", "")).lower() in dests]
    if any(n.get("network.policy.decision") == "allow" for n in seen):
        return []
    dest = alert.network.host or alert.network.ip or ""
    if seen:  # asked or denied, never allowed: the proxy stopped it (contained, unless the
        #       request never called for the network)
        if _unrequested(dest, pack):
            return [RuleHit("unrequested_destination", f"the agent tried to reach {dest}, "
                                                       "which the user's request did not call "
                                                       "for (the proxy refused it)",
                            tuple(n["event_id"] for n in seen))]
        return []
    return [RuleHit("unapproved_destination", f"the agent's session reached {dest}, which no "
                                              "network decision of corral's allowed (the "
                                              "managed proxy was bypassed)")]


def _refused_but_ran(alert: Alert, corr: Correlation, pack: EvidencePack) -> list[RuleHit]:
    if alert.process is None:
        return []
    strong_cmd = {lk.event.call_id for lk in corr.links
                  if lk.key == "command" and lk.strength == STRONG and lk.trusted}
    out = []
    for d in pack.decisions:
        if d.get("trusted") and d.get("agent.decision") in REFUSED and d["call_id"] in strong_cmd:
            ran = any(r.get("trusted") and r.get("call_id") == d["call_id"]
                      and r.get("agent.mcp.outcome") != "refused" for r in pack.results)
            if not ran:
                out.append(RuleHit("refused_but_ran", "the alerted process ran although corral "
                                                      f"refused it ({d['agent.decision']})",
                                   (d["event_id"],)))
    return out


def contained(alert: Alert, pack: EvidencePack) -> list[str]:
    """Event ids showing corral blocked the alerted action as designed."""
    ids = [d["event_id"] for d in pack.decisions
           if d.get("trusted") and d.get("agent.decision") in REFUSED]
    ids += [s["event_id"] for s in pack.sandbox
            if s.get("trusted") and s.get("agent.sandbox.outcome") in ("sandbox_denied",
                                                                         "escalation_denied")]
    if alert.network is not None:
        dests = {d.lower() for d in (alert.network.host, alert.network.ip) if d}
        net = [n for n in pack.network if n.get("trusted")
               and str(n.get("server.address", "")).lower() in dests]
        if net and not any(n.get("network.policy.decision") == "allow" for n in net):
            ids += [n["event_id"] for n in net]
    return ids


def mistake_signals(pack: EvidencePack) -> list[tuple[str, str]]:
    """(event id, why) for destructive or installing commands the recorded request does not
    mention (only when a request text is recorded)."""
    asked_for = [r for r in pack.requests if r.get("for_matched_call")] or pack.requests
    texts = [str(r.get("prompt", "")).lower() for r in asked_for if r.get("prompt")]
    if not texts:
        return []
    asked = " ".join(texts)
    out = []
    for d in pack.decisions:
        cl = str(d.get("process.command_line", ""))
        if not d.get("trusted") or not cl or d.get("call_id") not in pack.call_ids:
            continue
        for rx, what, words in ((DESTRUCTIVE, "destructive", ("delete", "remove", "clean",
                                                               "reset", "wipe", "drop", "rm ",
                                                               "discard", "undo", "empty",
                                                               "stash", "restore")),
                                (INSTALL, "installs software", ("install", "add ", "dependenc",
                                                                "upgrade", "set up", "setup"))):
            if rx.search(cl) and not any(w in asked for w in words):
                out.append((d["event_id"], f"{what} command the user did not ask for: "
                                           f"{cl[:80]}"))
    return out


def rules_verdict(alert: Alert, corr: Correlation, pack: EvidencePack,
                  hits: list[RuleHit]) -> dict[str, Any]:
    """The deterministic verdict: what ``--model none`` answers, and the floor for a model."""
    if hits:
        return {"verdict": "escalate", "confidence": 0.95,
                "rationale": "; ".join(h.why for h in hits)}
    if corr.session_id is None:
        why = "no agent session in this journal explains the alert"
        if alert.time_unix_nano is None:
            why += " (the alert has no time, so only corral's stamp could have linked it)"
        return {"verdict": "not_agent", "confidence": 0.8, "rationale": why}
    signals = mistake_signals(pack)  # not asked for, even if corral then stopped it
    if signals:
        return {"verdict": "mistake", "confidence": 0.6,
                "rationale": "; ".join(w for _, w in signals), "cited": [i for i, _ in signals]}
    blocked = contained(alert, pack)
    if blocked:
        return {"verdict": "expected", "confidence": 0.85,
                "rationale": "the agent tried it and corral's policy blocked it as designed",
                "cited": blocked}
    approved = [d for d in pack.decisions if d.get("trusted")
                and str(d.get("agent.decision", "")).startswith(("approved", "auto_approved"))]
    if approved:
        src = sorted({str(d.get("agent.decision.source")) for d in approved})
        content = any(lk.trusted and lk.key != "marker" for lk in corr.links)
        conf = 0.75 if corr.strength >= STRONG and content else 0.6 if content else 0.55
        why = f"the agent did it and corral approved it ({', '.join(src)})"
        if not content:  # a child the call started, or a stamp copied from one
            why += "; linked by corral's stamp only, nothing in the call names what the alert saw"
        return {"verdict": "expected", "confidence": conf, "rationale": why,
                "cited": [d["event_id"] for d in approved]}
    if pack.network and alert.network is not None:
        return {"verdict": "expected", "confidence": 0.6,
                "rationale": "the destination was allowed by corral's network policy"}
    return {"verdict": "escalate", "confidence": 0.5,
            "rationale": "an agent session is linked but no decision of corral's covers the "
                         "alerted action: too little evidence to clear it"}
