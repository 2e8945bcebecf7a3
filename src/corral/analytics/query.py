"""Numbers from the rollups: ``compute`` (what `corral stats` and the dashboard show) and
``drill`` (the sessions behind one number).

A time window reads whole hours from ``roll`` and the partial hours at its two edges from
``facts``, so any ``--since``/``--until`` is exact. Teams are resolved here, not in the rollup
(a changed ``[analytics.teams]`` needs no rebuild): the team attribute on the session's events
wins, else the configured map, else ``unassigned``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from corral.analytics.rollup import HOUR_NS, RollupStore, Settings

BY = ("team", "agent", "repo", "user")
TOP = 10
_HOST = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

Row = tuple[Any, ...]  # user, ident, agent, aver, repo, metric, k1, k2, k3, k4, n, vsum, vmax


@dataclass(frozen=True)
class Query:
    since_ns: int | None = None
    until_ns: int | None = None  # exclusive
    team: str | None = None
    agent: str | None = None
    repo: str | None = None
    user: str | None = None
    by: str | None = None


def _window(q: Query) -> tuple[str, list[Any], str, list[Any]]:
    """SQL conditions for whole hours (on ``roll``/``roll_sess``) and for the edges (on
    ``facts``), with their parameters."""
    lo, hi = q.since_ns, q.until_ns
    hs = None if lo is None else -(-lo // HOUR_NS)  # first whole hour
    he = None if hi is None else hi // HOUR_NS  # first hour not wholly inside
    if hs is not None and he is not None and hs >= he:  # inside one or two partial hours
        return "0", [], "t >= ? AND t < ?", [lo, hi]
    full, fp = [], []
    if hs is not None:
        full.append("hour >= ?")
        fp.append(hs)
    if he is not None:
        full.append("hour < ?")
        fp.append(he)
    edges, ep = [], []
    if lo is not None and hs is not None and lo < hs * HOUR_NS:
        edges.append("(hour = ? AND t >= ?)")
        ep += [hs - 1, lo]
    if hi is not None and he is not None and hi > he * HOUR_NS:
        edges.append("(hour = ? AND t < ?)")
        ep += [he, hi]
    return " AND ".join(full) or "1", fp, " OR ".join(edges) or "0", ep


def _dims(q: Query) -> tuple[str, list[Any]]:
    cond, params = [], []
    for col, val in (("agent", q.agent), ("repo", q.repo), ("user", q.user)):
        if val is not None:
            cond.append(f"{col} = ?")
            params.append(val)
    return " AND ".join(cond) or "1", params


_COLS = "user, ident, agent, aver, repo, metric, k1, k2, k3, k4"


def _rows(store: RollupStore, q: Query) -> list[Row]:
    full, fp, edge, ep = _window(q)
    dims, dp = _dims(q)
    sql = f"""SELECT {_COLS}, sum(n), sum(vsum), max(vmax) FROM (
        SELECT {_COLS}, n, vsum, vmax FROM roll WHERE ({full}) AND {dims} AND metric != 'event'
        UNION ALL
        SELECT {_COLS}, 1, coalesce(v, 0), v FROM facts WHERE ({edge}) AND {dims}
          AND metric != 'event')
        GROUP BY {_COLS}"""
    return store.conn.execute(sql, [*fp, *dp, *ep, *dp]).fetchall()


def _sessions(store: RollupStore, q: Query) -> list[Row]:
    """(hour, sid, user, ident, agent, aver, repo) for every hour a session was active."""
    full, fp, edge, ep = _window(q)
    dims, dp = _dims(q)
    cols = "hour, sid, user, ident, agent, aver, repo"
    sql = f"""SELECT {cols} FROM roll_sess WHERE ({full}) AND {dims}
        UNION SELECT DISTINCT {cols} FROM facts WHERE ({edge}) AND {dims}"""
    return store.conn.execute(sql, [*fp, *dp, *ep, *dp]).fetchall()


def _day(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%Y-%m-%d")


def _week(hour: int) -> str:
    y, w, _ = dt.datetime.fromtimestamp(hour * 3600, dt.UTC).isocalendar()
    return f"{y}-W{w:02d}"


def _rate(n: int, calls: int) -> float | None:
    return round(100.0 * n / calls, 2) if calls else None


def _top(c: Counter[str], n: int = TOP) -> list[dict[str, Any]]:
    return [{"domain": k, "count": v} for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def numbers(rows: Iterable[Row], sess: Iterable[Row], min_count: int = 3) -> dict[str, Any]:
    """Every figure of `corral stats` from grouped rollup rows and session-hour rows."""
    dec: Counter[str] = Counter()
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    outcomes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    net: Counter[str] = Counter()
    denied: Counter[str] = Counter()
    asked: Counter[str] = Counter()
    asked_allowed: Counter[str] = Counter()
    sandbox: Counter[str] = Counter()
    denials: Counter[str] = Counter()
    grants: Counter[str] = Counter()
    grants_by: Counter[str] = Counter()
    reviewer: Counter[str] = Counter()
    triage: Counter[str] = Counter()
    mcp: Counter[str] = Counter()
    mcp_tools: Counter[str] = Counter()
    policies: dict[str, Counter[str]] = defaultdict(Counter)
    results: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    claims: Counter[str] = Counter()
    prompted: dict[str, Counter[str]] = defaultdict(Counter)
    wait_n, wait_sum, wait_max = 0, 0.0, None
    turns = 0
    for _u, _i, _a, _v, _r, metric, k1, k2, k3, k4, n, vsum, vmax in rows:
        if metric == "decision":
            dec[k1] += n
            by_source[k2][k1] += n
            outcomes[k3] += n
            kinds[k4] += n
        elif metric == "wait":
            wait_n += n
            wait_sum += vsum
            wait_max = vmax if wait_max is None or (vmax is not None and vmax > wait_max) \
                else wait_max
        elif metric == "prompt_cmd":
            prompted[k1][k2] += n
        elif metric == "reviewer":
            reviewer[k1] += n
            if k2 == "fail_closed":
                reviewer["fail_closed"] += n
        elif metric == "net":
            if k1 in ("allow", "deny"):
                net[k1] += n
            if k1 == "deny":
                denied[k2] += n
            if k4 == "asked":
                net["ask"] += n
                asked[k2] += n
                if k1 == "allow":
                    asked_allowed[k2] += n
        elif metric == "sandbox":
            sandbox[k1] += n
            if k1 == "sandbox_denied":
                denials[k2] += n
        elif metric == "grant":
            grants[k1] += n
            grants_by[k2] += n
        elif metric == "mcp":
            mcp[k1] += n
            mcp_tools[f"{k1}.{k2}"] += n
        elif metric == "session":
            policies["approval"][k1 or "unknown"] += n
            policies["sandbox"][k2 or "unknown"] += n
            policies["network"][k3 or "unknown"] += n
        elif metric == "result":
            results[k1] += n
            if k2 in ("0", "false"):
                failures[k1] += n
        elif metric == "triage":
            triage[k1] += n
        elif metric == "turn":
            turns += n
        elif metric == "claim":
            claims[f"{k1} ({k2})"] += n
    sids: dict[str, tuple[str, str]] = {}
    users: set[str] = set()
    per_day: dict[str, set[str]] = defaultdict(set)
    per_week: dict[str, set[str]] = defaultdict(set)
    for hour, sid, user, _ident, agent, aver, _repo in sess:
        sids[sid] = (agent, aver)
        users.add(user)
        per_day[_day(hour)].add(user)
        per_week[_week(hour)].add(user)
    calls = sum(dec.values())
    agents = Counter(a for a, _ in sids.values())
    versions = Counter(f"{a} {v}".strip() for a, v in sids.values())
    return {
        "sessions": len(sids),
        "active_users": len(users),
        "active_users_per_day": {d: len(u) for d, u in sorted(per_day.items())},
        "active_users_per_week": {w: len(u) for w, u in sorted(per_week.items())},
        "turns": turns,
        "agents": dict(agents.most_common()),
        "agent_versions": dict(versions.most_common()),
        "policies": {k: dict(v.most_common()) for k, v in sorted(policies.items())},
        "tool_calls": calls,
        "tools": {"by_kind": dict(kinds.most_common()), "results": dict(results.most_common()),
                  "failures": dict(failures.most_common())},
        "mcp_servers": dict(mcp.most_common()),
        "mcp_tools": dict(mcp_tools.most_common()),
        "decisions": {"allow": dec["allow"], "prompt": dec["prompt"],
                      "forbidden": dec["forbidden"],
                      "by_source": {s: {c: v[c] for c in ("allow", "prompt", "forbidden")}
                                    for s, v in sorted(by_source.items())},
                      "outcomes": dict(outcomes.most_common())},
        "approval_wait_ms": {"count": wait_n,
                             "mean": round(wait_sum / wait_n, 3) if wait_n else None,
                             "max": round(wait_max, 3) if wait_max is not None else None},
        "grants": {"by_scope": dict(grants.most_common()),
                   "by_grantor": dict(grants_by.most_common())},
        "network": {"allow": net["allow"], "deny": net["deny"], "ask": net["ask"],
                    "per_100_tool_calls": {k: _rate(net[k], calls)
                                           for k in ("allow", "deny", "ask")}},
        "top_denied_domains": _top(denied),
        "top_asked_domains": _top(asked),
        "sandbox": {"outcomes": dict(sandbox.most_common()),
                    "denials_by_kind": dict(denials.most_common())},
        "reviewer": {k: reviewer[k] for k in
                     ("auto_approved", "denied", "abort", "fail_closed")},
        "triage": dict(triage.most_common()),
        "claims": dict(claims.most_common()),
        "suggestions": suggestions(prompted, asked, asked_allowed, min_count),
    }


def suggestions(prompted: dict[str, Counter[str]], asked: Counter[str],
                asked_allowed: Counter[str], min_count: int) -> list[dict[str, Any]]:
    """Prompts people always say yes to, as a rule or config line ready to paste."""
    out: list[dict[str, Any]] = []
    for prefix, outs in sorted(prompted.items()):
        total = sum(outs.values())
        yes = sum(v for k, v in outs.items() if k.startswith("approved"))
        if not prefix or total < min_count or yes != total:
            continue
        words = json.loads(prefix)
        pattern = ", ".join(json.dumps(w) for w in words)
        out.append({"kind": "prefix_rule", "pattern": words, "count": total,
                    "rule": f"prefix_rule(pattern = [{pattern}], decision = \"allow\")"})
    for domain, total in sorted(asked.items()):
        if total < min_count or asked_allowed[domain] != total or not _HOST.fullmatch(domain):
            continue
        out.append({"kind": "network_domain", "domain": domain, "count": total,
                    "line": f"{json.dumps(domain)} = \"allow\"",
                    "config": f"[network.domains]\n{json.dumps(domain)} = \"allow\""})
    return out


def _group_key(by: str, settings: Settings, user: str, ident: str, agent: str,
               repo: str) -> str:
    if by == "team":
        return settings.team(user, ident)
    return {"agent": agent, "repo": repo or "(none)", "user": user}[by]


def compute(store: RollupStore, q: Query, settings: Settings,
            *, percentiles: bool = True) -> dict[str, Any]:
    """The whole `corral stats` JSON for a query (``groups`` when ``q.by`` is set)."""
    rows = _rows(store, q)
    sess = _sessions(store, q)
    if q.team is not None:
        rows = [r for r in rows if settings.team(r[0], r[1]) == q.team]
        sess = [s for s in sess if settings.team(s[2], s[3]) == q.team]
    out = numbers(rows, sess, settings.suggest_min_count)
    out["window"] = {"since_ns": q.since_ns, "until_ns": q.until_ns}
    if percentiles:
        out["approval_wait_ms"].update(_wait_percentiles(store, q, settings))
        out["mcp_first_seen"] = _first_seen(store, q, settings)
    if q.by is not None:
        gr: dict[str, list[Row]] = defaultdict(list)
        gs: dict[str, list[Row]] = defaultdict(list)
        for r in rows:
            gr[_group_key(q.by, settings, r[0], r[1], r[2], r[4])].append(r)
        for s in sess:
            gs[_group_key(q.by, settings, s[2], s[3], s[4], s[6])].append(s)
        out["by"] = q.by
        out["groups"] = {k: numbers(gr.get(k, []), gs.get(k, []), settings.suggest_min_count)
                         for k in sorted(set(gr) | set(gs))}
    return out


def _facts_window(q: Query) -> tuple[str, list[Any]]:
    cond, params = [], []
    if q.since_ns is not None:
        cond += ["hour >= ?", "t >= ?"]
        params += [q.since_ns // HOUR_NS, q.since_ns]
    if q.until_ns is not None:
        cond += ["hour <= ?", "t < ?"]
        params += [q.until_ns // HOUR_NS, q.until_ns]
    dims, dp = _dims(q)
    return " AND ".join([*cond, dims]), [*params, *dp]


def _wait_percentiles(store: RollupStore, q: Query, settings: Settings) -> dict[str, Any]:
    cond, params = _facts_window(q)
    vals = sorted(float(v) for user, ident, v in store.conn.execute(
        f"SELECT user, ident, v FROM facts WHERE metric = 'wait' AND {cond}", params)
        if q.team is None or settings.team(user, ident) == q.team)
    if not vals:
        return {"p50": None, "p95": None}

    def pct(p: float) -> float:
        return round(vals[min(len(vals) - 1, int(p * len(vals)))], 3)

    return {"p50": pct(0.5), "p95": pct(0.95)}


def _first_seen(store: RollupStore, q: Query, settings: Settings) -> dict[str, str]:
    """When each MCP server was first called (ever, not only in the window)."""
    out: dict[str, str] = {}
    for server, user, ident, t in store.conn.execute(
            "SELECT k1, user, ident, min(t) FROM facts WHERE metric = 'mcp' "
            "GROUP BY k1, user, ident"):
        if q.team is not None and settings.team(user, ident) != q.team:
            continue
        iso = dt.datetime.fromtimestamp(t / 1e9, dt.UTC).isoformat(timespec="seconds")
        if server not in out or iso < out[server]:
            out[server] = iso
    return out


SERIES = (("decision", "allow"), ("decision", "prompt"), ("decision", "forbidden"),
          ("net", "deny"), ("net", "asked"), ("sandbox", "sandbox_denied"))


def series(store: RollupStore, q: Query, settings: Settings) -> dict[str, Any]:
    """Counts over time for the charts: per day, or per hour for windows of two days or less."""
    full, fp, edge, ep = _window(q)
    dims, dp = _dims(q)
    sql = f"""SELECT hour, user, ident, metric, k1, k4, n FROM roll WHERE ({full}) AND {dims}
          AND metric IN ('decision', 'net', 'sandbox')
        UNION ALL SELECT hour, user, ident, metric, k1, k4, 1 FROM facts WHERE ({edge})
          AND {dims} AND metric IN ('decision', 'net', 'sandbox')"""
    rows = store.conn.execute(sql, [*fp, *dp, *ep, *dp]).fetchall()
    hours = [r[0] for r in rows]
    span = (max(hours) - min(hours)) if hours else 0
    per_hour = span <= 48
    data: dict[str, Counter[int]] = defaultdict(Counter)
    for hour, user, ident, metric, k1, k4, n in rows:
        if q.team is not None and settings.team(user, ident) != q.team:
            continue
        b = hour if per_hour else hour // 24
        if metric != "net":
            data[f"{metric}:{k1}"][b] += n
            continue
        if k4 == "asked":
            data["net:asked"][b] += n
        if k1 == "deny":
            data["net:deny"][b] += n
    buckets = sorted({b for c in data.values() for b in c})
    labels = [dt.datetime.fromtimestamp(b * (3600 if per_hour else 86400), dt.UTC)
              .strftime("%Y-%m-%d %H:00" if per_hour else "%Y-%m-%d") for b in buckets]
    return {"unit": "hour" if per_hour else "day", "labels": labels,
            "series": {f"{m}:{k}": [data[f"{m}:{k}"][b] for b in buckets] for m, k in SERIES}}


DRILL_KEYS = ("k1", "k2", "k3", "k4")


def drill(store: RollupStore, q: Query, settings: Settings, metric: str | None,
          keys: dict[str, str], *, with_users: bool) -> list[dict[str, Any]]:
    """The sessions behind one number: each with how many of the events it holds."""
    cond, params = _facts_window(q)
    if metric is not None:
        cond += " AND metric = ?"
        params.append(metric)
    for k, v in keys.items():
        if k not in DRILL_KEYS:
            continue
        cond += f" AND {k} = ?"
        params.append(v)
    rows = store.conn.execute(
        f"SELECT sid, user, ident, agent, repo, count(*), min(t), max(t) FROM facts "
        f"WHERE {cond} GROUP BY sid, user, ident, agent, repo ORDER BY min(t) LIMIT 5000",
        params).fetchall()
    out = []
    for sid, user, ident, agent, repo, n, t0, t1 in rows:
        team = settings.team(user, ident)
        if q.team is not None and team != q.team:
            continue
        item = {"session_id": sid, "team": team, "agent": agent, "repo": repo, "count": n,
                "first": dt.datetime.fromtimestamp(t0 / 1e9, dt.UTC).isoformat(timespec="seconds"),
                "last": dt.datetime.fromtimestamp(t1 / 1e9, dt.UTC).isoformat(timespec="seconds")}
        if with_users:
            item["user"] = user
        out.append(item)
    return out


def options(store: RollupStore, settings: Settings) -> dict[str, Sequence[str]]:
    """Values for the dashboard's filters."""
    conn = store.conn
    users = conn.execute("SELECT DISTINCT user, ident FROM roll_sess").fetchall()
    return {"teams": sorted({settings.team(u, i) for u, i in users}),
            "agents": [r[0] for r in conn.execute(
                "SELECT DISTINCT agent FROM roll_sess ORDER BY 1")],
            "repos": [r[0] for r in conn.execute(
                "SELECT DISTINCT repo FROM roll_sess WHERE repo != '' ORDER BY 1")]}
