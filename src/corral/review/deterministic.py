"""The built-in reviewer: no network, well under a millisecond, every verdict explained.

It scans the action for concrete risky effects (``scan``), scores how far the user's request
authorizes the riskiest one (``intent``), then applies Codex's thresholds, slightly stricter:
low and medium risk are allowed; high risk only when the request names both the act and its
object (user_authorization ``high``); critical never. Recent context is not read at all: it is
untrusted, and a deterministic verdict must not be steerable by text an agent produced.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
from typing import Any

from corral.review import hosts, scan_code, scan_tamper
from corral.review.findings import Finding, Scan, strongest
from corral.review.intent import authorization
from corral.review.model import RISK_LEVELS, Authorization, Review, ReviewRequest, RiskLevel
from corral.review.places import Place, credential, persistence
from corral.review.scan import scan_shell

NAME = "deterministic"
_AWS_KEY = re.compile(r"\bAKIA[0-9A-Z]{16}\b|-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----|"
                      r"\bghp_[A-Za-z0-9]{36}\b|\bsk-[A-Za-z0-9_-]{20,}\b|\bxox[bap]-[\w-]{10,}")
_MCP_DESTRUCTIVE = re.compile(r"delete|drop|remove|destroy|purge|wipe|truncate|revoke|"
                              r"terminate|erase", re.I)
_MCP_PUBLISH = re.compile(r"publish|deploy|merge|release|send|post|transfer|pay|charge|"
                          r"email|tweet|message", re.I)


class DeterministicReviewer:
    """Judges destructive scope, credential access, exfiltration, persistence, security
    weakening, publishing/deployment, and fit with the user's request."""

    def __init__(self, home: str | None = None) -> None:
        self._home = home

    def review(self, req: ReviewRequest) -> Review:
        t0 = time.perf_counter()
        try:
            findings = self.findings(req)
        except Exception as exc:
            return Review("deny", "high", "unknown", f"reviewer failed closed: internal error "
                          f"({type(exc).__name__}: {exc})", NAME, failed=True,
                          duration_ms=(time.perf_counter() - t0) * 1000)
        review = decide(findings, req.intent, req)
        return Review(review.outcome, review.risk_level, review.user_authorization,
                      review.rationale, NAME, duration_ms=(time.perf_counter() - t0) * 1000)

    def findings(self, req: ReviewRequest) -> list[Finding]:
        scan = Scan.empty()
        details = req.details if isinstance(req.details, dict) else {}
        roots = _strs(details, "workspace_roots", scan)
        place = Place.make(req.cwd or "/", tuple(roots), self._home)
        if req.kind in ("shell", "escalation") and req.argv:
            scan_shell(tuple(req.argv), place, scan)
        elif req.kind == "patch":
            _patch(details, place, scan)
        elif req.kind == "network":
            _network(details, place, scan)
            if req.argv:
                scan_shell(tuple(req.argv), place, scan)
        elif req.kind == "mcp":
            _mcp(details, place, scan)
        elif req.kind != "escalation" or not req.argv:
            scan.add("unanalysable", "high", f"nothing to judge: kind {req.kind!r} with "
                     f"{'no command' if not req.argv else 'a command'}")
        if req.kind == "escalation":
            scan.add("scope", "medium", "runs outside the sandbox (escalation)",
                     ("outside the sandbox", "escalate", "without sandbox"), ())
        return scan.findings


def decide(findings: list[Finding], intent: str | None, req: ReviewRequest) -> Review:
    """Thresholds: critical → deny; high → allow only with ``high`` authorization."""
    top = strongest(findings)
    if top is None:
        # nothing risky to authorize: "unknown" says the request was not needed to decide
        return Review("allow", "low", "unknown", f"no risky effect found in {_summary(req)}",
                      NAME)
    risky = [f for f in findings if f.rank == top.rank]
    auths = [authorization(intent, f) for f in risky]
    auth: Authorization = min(auths, key=_auth_order)
    blocking = [f for f, a in zip(risky, auths, strict=False) if f.risk == "critical" or (
        f.risk == "high" and a != "high")]
    others = [f.reason for f in findings if f not in risky and f.rank >= 1][:2]
    if blocking:
        reason = "; ".join(_dedupe(f.reason for f in blocking[:3]))
        why = _why_denied(blocking[0], auths[risky.index(blocking[0])])
        return Review("deny", _level(top.risk), auth, f"{reason}{why}", NAME)
    reason = "; ".join(_dedupe(f.reason for f in risky[:3]))
    if top.risk == "high":
        reason += " (the user's request asks for this)"
    if others:
        reason += "; also " + "; ".join(others)
    return Review("allow", _level(top.risk), auth, reason, NAME)


def _level(risk: str) -> RiskLevel:
    for level in RISK_LEVELS:
        if level == risk:
            return level
    return "critical"


def _auth_order(a: str) -> int:
    return ("unknown", "low", "medium", "high").index(a)


def _dedupe(items: Any) -> list[str]:
    seen: list[str] = []
    for i in items:
        if i not in seen:
            seen.append(i)
    return seen


def _why_denied(f: Finding, auth: str) -> str:
    if f.risk == "critical":
        return " (critical risk: never auto-approved)"
    if not f.verbs:
        return " (cannot be authorized by the request; a person must decide)"
    return {"unknown": " (no user request says to do this)",
            "low": " (the user's request does not ask for this)",
            "medium": " (the user's request does not name this target)"}.get(auth, "")


def _summary(req: ReviewRequest) -> str:
    if req.kind == "patch":
        files = req.details.get("files") or []
        return f"a patch to {len(files)} file(s)"
    if req.kind == "network":
        return f"a request to {req.details.get('host', '?')}"
    if req.kind == "mcp":
        return f"MCP tool {req.details.get('server', '?')}.{req.details.get('tool', '?')}"
    text = " ".join(req.argv)
    if len(req.argv) >= 3 and req.argv[1] in ("-lc", "-c"):
        text = req.argv[2]
    return f"`{text[:80]}`"


def _strs(details: dict[str, Any], key: str, scan: Scan) -> list[str]:
    """A list-of-strings detail; anything else is bad input, judged as unanalysable."""
    value = details.get(key)
    if value is None:
        return []
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    scan.add("unanalysable", "high", f"details.{key} is not a list of strings")
    return []


def _obj(details: dict[str, Any], key: str, scan: Scan) -> dict[str, Any]:
    value = details.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    scan.add("unanalysable", "high", f"details.{key} is not an object")
    return {}


def _patch(details: dict[str, Any], place: Place, scan: Scan) -> None:
    files = _strs(details, "files", scan)
    if not files and not details.get("patch"):
        scan.add("unanalysable", "high", "a patch without files to judge")
    for f in files:
        p = place.resolve(f)
        if p is None:
            scan.add("unanalysable", "high", f"edits a file whose path is not literal ({f})")
            continue
        shown = place.show(p)
        if scan_tamper.changed(p, place, scan, "edits"):
            continue  # corral's state, a record of what ran, an agent's configuration
        per = persistence(p)
        if per is not None:
            label, risk = per
            scan.add("persistence", risk, f"edits {shown} ({label})", ("edit", "add",
                     "change", "update", "configure"), (posixpath.basename(p), shown))
            continue
        cred = credential(p)
        if cred is not None:
            scan.add("credentials", "medium", f"edits {shown} ({cred[0]})", ("edit", "add",
                     "update", "set"), (posixpath.basename(p),))
        where = place.where(p)
        if where == "home":
            scan.add("scope", "high", f"edits {shown} outside the workspace", ("edit",
                     "change", "update"), (posixpath.basename(p), shown))
        elif where == "system":
            scan.add("scope", "high", f"edits {p} outside the workspace", ("edit", "change"),
                     (posixpath.basename(p), p))
        elif "/.github/workflows/" in p or p.endswith((".gitlab-ci.yml", "Jenkinsfile")):
            scan.add("publishing", "medium", f"changes CI configuration ({shown})",
                     ("ci", "workflow", "pipeline"), ())
    patch = str(details.get("patch") or "")[:1_000_000]
    m = _AWS_KEY.search(patch)
    if m:
        scan.add("credentials", "high", "writes a credential (key or token) into a file",
                 ("key", "token", "credential"), ())


def _network(details: dict[str, Any], place: Place, scan: Scan) -> None:
    host = str(details.get("host") or "?").lower()
    port = details.get("port")
    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        scan.add("unanalysable", "high", f"details.port is not a port number ({port!r:.20})")
        port = None
    if host == "?":
        scan.add("unanalysable", "high", "a network request without a host")
    kind = hosts.kind(host) if host != "?" else "other"
    at = f"{host}:{port}" if port else host
    if scan_code.is_pool(host):
        scan.add("mining", "high", f"connects to the cryptocurrency mining pool {at}",
                 ("mine", "mining", "miner"), (host,))
    if kind == "metadata":
        scan.add("credentials", "critical", f"reaches the cloud metadata service {at} "
                 "(instance credentials)")
    elif kind == "drop":
        scan.add("exfiltration", "high", f"connects to {at}, a public paste/file-drop site",
                 ("upload", "paste", "share"), (host,))
    elif kind == "private":
        scan.add("scope", "medium", f"connects to the private-network address {at}",
                 ("connect",), (host,))
    elif kind == "ip":
        scan.add("scope", "medium", f"connects to the raw IP address {at}", ("connect",),
                 (host,))
    elif kind == "other":
        scan.add("scope", "low" if port in (None, 80, 443) else "medium",
                 f"connects to {at}", ("connect", "fetch", "download"), (host,))


def _mcp(details: dict[str, Any], place: Place, scan: Scan) -> None:
    server = str(details.get("server") or "?")
    tool = str(details.get("tool") or "?")
    name = f"{server}.{tool}"
    ann = _obj(details, "annotations", scan)
    args = _obj(details, "arguments", scan)
    words = tuple(w for w in re.split(r"[_.\-\s]+", tool.lower()) if len(w) >= 3)
    if ann.get("read_only_hint") is True and not _MCP_DESTRUCTIVE.search(tool):
        pass
    elif ann.get("destructive_hint") is True or _MCP_DESTRUCTIVE.search(tool):
        scan.add("destructive", "high", f"calls MCP tool {name}, which can destroy data",
                 ("delete", "remove", "drop", "destroy", *words), (server, tool, *words))
    elif _MCP_PUBLISH.search(tool):
        scan.add("publishing", "high", f"calls MCP tool {name}, which acts outside this "
                 "machine (publishes, sends or merges)", ("send", "post", "publish", "merge",
                                                          "deploy", *words), (server, *words))
    elif ann.get("open_world_hint") is True:
        scan.add("scope", "medium", f"calls MCP tool {name}, which reaches external systems",
                 words, (server,))
    text = json.dumps(args, default=str)[:20_000]
    if _AWS_KEY.search(text):
        scan.add("exfiltration", "critical", f"passes a credential (key or token) to MCP tool "
                 f"{name}")
    for value in _strings(args):
        p = place.resolve(value) if value.startswith(("/", "~", "$HOME")) else None
        cred = credential(p) if p else None
        if p and cred:
            scan.add("credentials", "high", f"gives MCP tool {name} {place.show(p)} "
                     f"({cred[0]})", ("secret", "credential"), (posixpath.basename(p),))
    for key in ("command", "cmd", "script"):
        cmd = args.get(key)
        if isinstance(cmd, str) and cmd.strip():
            scan_shell(("bash", "-lc", cmd), place, scan)
        elif isinstance(cmd, list) and cmd and all(isinstance(c, str) for c in cmd):
            scan_shell(tuple(cmd), place, scan)


def _strings(value: Any, depth: int = 0) -> list[str]:
    if depth > 8:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v, depth + 1)][:200]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v, depth + 1)][:200]
    return []
