"""The enrolled machine's check-in: what ``corral server devices`` shows about it.

``report`` gathers, from this machine's own files only: corral's version, the agents and
versions seen in the journal (and whether their hook sessions call in), whether corral's hooks
are installed in each agent's user settings, the policy version applied (the cached server
bundle), how far forwarding lags, the signed-in user, and drift (hooks installed but silent,
hooks missing for an agent that ran, and the agents' managed settings files that ``corral
agents apply`` wrote and that are now missing or changed, from its manifest).
``send`` posts it to ``/v1/fleet/checkin`` with the device's token. The background forwarder
sends one every policy refresh interval, ``corral enroll`` and ``corral whoami`` one each.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from corral.forward.settings import ForwardError, ServerSettings
from corral.paths import agent_user_dir

# corral's hook command line contains this (corral.integrations.install.MARKER; forward may
# not import the integrations, so the string is repeated here)
HOOK_MARKER = "corral.integrations.hook_main"
HOOK_FILES = {"codex": ("hooks.json", "config.toml"), "claude-code": ("settings.json",),
              "gemini": ("settings.json",)}
ACTIVE_DAYS = 7


def hooks_installed(agent: str) -> bool:
    """corral's hook in the agent's user settings, or in the managed settings ``corral agents
    apply`` wrote for it."""
    from corral.agents_managed.files import applied_files, default_root

    paths = [agent_user_dir(agent) / name for name in HOOK_FILES[agent]]
    for path in paths + applied_files(default_root(), agent):
        try:
            if HOOK_MARKER in path.read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


def journal_facts(journal: Path) -> tuple[dict[str, str], dict[str, int]]:
    """(agent -> newest version seen, agent -> newest session start, ns) from the journal's
    recent events (the last 2,000). A session of an agent (a hook session or ``corral run``)
    is what "active" means: its hooks or corral itself governed it."""
    agents: dict[str, str] = {}
    hook_seen: dict[str, int] = {}
    if not journal.exists():
        return agents, hook_seen
    try:
        conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT name, time_unix_nano, body FROM events ORDER BY seq DESC LIMIT 2000"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return agents, hook_seen
    for name, t_ns, body in rows:
        try:
            rec = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            continue
        agent = str(rec.get("agent_name") or "")
        if not agent or agent == "corral":
            continue
        if rec.get("agent_version") and agent not in agents:
            agents[agent] = str(rec["agent_version"])[:64]
        if name == "agent.session.start" and t_ns > hook_seen.get(agent, 0):
            hook_seen[agent] = int(t_ns)
    return agents, hook_seen


def policy_applied(home: Path) -> int:
    """The policy version of the cached (verified when it was stored) server bundle."""
    from corral.config.enrolment import policy_cache

    try:
        v = json.loads(policy_cache(home).read_bytes()).get("policy_version")
    except (OSError, ValueError, AttributeError):
        return 0
    return v if isinstance(v, int) else 0


def managed_settings_drift() -> list[str]:
    """The agents' managed settings corral applied on this machine (``corral agents
    apply``) that are missing or were changed since, from its manifest."""
    from corral.agents_managed.files import default_root, recorded_drift

    return [f"managed settings: {d.line()}" for d in recorded_drift(default_root())]


def report(home: Path, journal: Path, lag: tuple[int, int] | None = None) -> dict[str, Any]:
    from corral import __version__
    from corral.config.enrolment import read_identity

    agents, hook_seen = journal_facts(journal)
    now = time.time_ns()
    hooks: dict[str, str] = {}
    drift: list[str] = []
    for agent in HOOK_FILES:
        installed = hooks_installed(agent)
        seen = hook_seen.get(agent)
        active = seen is not None and now - seen < ACTIVE_DAYS * 86400 * 10**9
        hooks[agent] = ("installed, active" if installed and active else
                        "installed, silent" if installed else
                        "not installed" + (" (sessions seen)" if active else ""))
        if installed and not active and agent in agents:
            drift.append(f"{agent} hooks installed but no session in {ACTIVE_DAYS} days")
        if not installed and agent in agents:
            drift.append(f"{agent} ran here without corral's hooks installed")
    drift += managed_settings_drift()
    try:
        ident = read_identity(home)
    except Exception:
        ident = None
    doc: dict[str, Any] = {
        "corral_version": __version__, "hostname": socket.gethostname(), "agents": agents,
        "hooks": hooks, "policy_applied": policy_applied(home), "drift": drift,
        "identity": ident.display if ident else ""}
    if lag is not None:
        doc["forwarding"] = {"acknowledged": lag[0], "head": lag[1],
                             "behind": max(0, lag[1] - lag[0])}
    return doc


def send(settings: ServerSettings, doc: dict[str, Any], timeout: float = 10.0) -> int:
    """POST the report; the server's published policy version."""
    import json
    import ssl

    from corral.forward.transport import Connection, ProxyRefused, TransportError
    from corral.forward.trust import tls_for

    url = settings.url + "/v1/fleet/checkin"
    try:
        tls = tls_for(url, settings.ca_file)
        conn = Connection(url, tls, {"Authorization": f"Bearer {settings.token}",
                                     "Content-Type": "application/json"},
                          connect_timeout=min(5.0, timeout), read_timeout=timeout)
        try:
            status, _headers, data = conn.post(json.dumps(doc).encode(), 1 << 20)
        finally:
            conn.close()
    except (OSError, ssl.SSLError, ProxyRefused, TransportError) as exc:
        raise ForwardError("fleet", f"check-in to {settings.url} failed: {exc}") from exc
    if status != 200:
        line = " ".join(data[:4096].decode("utf-8", "replace").split())[:200]
        raise ForwardError("fleet", f"check-in refused: HTTP {status} {line}")
    try:
        return int(json.loads(data).get("policy_version", 0))
    except (ValueError, AttributeError, TypeError):
        return 0
