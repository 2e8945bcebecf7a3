"""Numbers from the rollups: ``compute`` (what `corral stats` and the dashboard show) and
``drill`` (the sessions behind one number).

A time window reads whole days from ``roll`` and the partial days at its two edges from
``facts``, so any ``--since``/``--until`` is exact. No filter, or one filter or breakdown (team,
agent, repository), reads the matching rollup; a user, or filters on two dimensions, read the
facts. Domain lists always come from the facts (through the metric index). Teams were resolved
when folding (``Settings.team``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from corral.analytics.rollup import HOUR_NS, RollupStore, Settings, bucket_ms

BY = ("team", "agent", "repo", "user")
TOP = 10
_HOST = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

Row = tuple[Any, ...]  # rollup rows: (group,) metric, k1, k2, k3, k4, n, vsum, vmax


@dataclass(frozen=True)
class Query:
    since_ns: int | None = None
    until_ns: int | None = None  # exclusive
    team: str | None = None
    agent: str | None = None
    repo: str | None = None
    user: str | None = None
    by: str | None = None


DAY_NS = 24 * HOUR_NS
_KEYS = "metric, k1, k2, k3, k4"
# denied and asked domains, as rollup keys, from network facts (the covering index's terms)
_DOMAIN_KEYS = "CASE metric WHEN 'net' THEN 'domain_deny' ELSE 'domain_ask' END, k1, k2, '', ''"
_DOMAIN_WHERE = ("metric IN ('net', 'ask') AND ((metric = 'net' AND k1 = 'deny') "
                 "OR metric = 'ask')")


def _plan(q: Query) -> str | None:
    """The rollup dimension answering ``q`` (``all``, ``team``, ``agent``, ``repo``), or None
    when only the facts can (a user, or filters on two dimensions)."""
    filters = [d for d, v in (("team", q.team), ("agent", q.agent), ("repo", q.repo))
               if v is not None]
    if q.user is not None or q.by == "user" or len(filters) > 1:
        return None
    if filters and q.by is not None and q.by != filters[0]:
        return None
    if filters:
        return filters[0]
    return q.by or "all"


def _filters(q: Query) -> tuple[str, list[Any]]:
    """Conditions on the columns facts and roll_sess share."""
    cond, params = [], []
    for col, val in (("team", q.team), ("agent", q.agent), ("repo", q.repo), ("user", q.user)):
        if val is not None:
            cond.append(f"{col} = ?")
            params.append(val)
    return " AND ".join(cond) or "1", params


def _span(q: Query) -> tuple[str, list[Any], str, list[Any]]:
    """Whole days (on ``day``) and the partial days at the edges (on facts' ``hour``/``t``)."""
    lo, hi = q.since_ns, q.until_ns
    ds = None if lo is None else -(-lo // DAY_NS)  # first whole day
    de = None if hi is None else hi // DAY_NS  # first day not wholly inside
    if lo is not None and hi is not None and ds is not None and de is not None and ds >= de:
        return "0", [], "(hour >= ? AND hour <= ? AND t >= ? AND t < ?)", [
            lo // HOUR_NS, hi // HOUR_NS, lo, hi]
    full: list[str] = ["day >= 0"]  # day -1 holds the all-time totals
    fp: list[Any] = []
    if ds is not None:
        full.append("day >= ?")
        fp.append(ds)
    if de is not None:
        full.append("day < ?")
        fp.append(de)
    edges, ep = [], []
    if lo is not None and ds is not None and lo < ds * DAY_NS:
        edges.append("(hour >= ? AND hour < ? AND t >= ?)")
        ep += [lo // HOUR_NS, ds * 24, lo]
    if hi is not None and de is not None and hi > de * DAY_NS:
        edges.append("(hour >= ? AND hour <= ? AND t < ?)")
        ep += [de * 24, hi // HOUR_NS, hi]
    return " AND ".join(full), fp, " OR ".join(edges) or "0", ep


def _facts_window(q: Query) -> tuple[str, list[Any]]:
    cond, params = [], []
    if q.since_ns is not None:
        cond += ["hour >= ?", "t >= ?"]
        params += [q.since_ns // HOUR_NS, q.since_ns]
    if q.until_ns is not None:
        cond += ["hour <= ?", "t < ?"]
        params += [q.until_ns // HOUR_NS, q.until_ns]
    f, fp = _filters(q)
    return " AND ".join([*cond, f]), [*params, *fp]


def _rows(store: RollupStore, q: Query) -> list[Row]:
    """(group, metric, k1, k2, k3, k4, n, vsum, vmax) for the window, grouped by ``q.by``."""
    grp = q.by or "''"
    dim = _plan(q)
    if dim is None:
        cond, params = _facts_window(q)
        sql = f"""SELECT {grp}, {_KEYS}, count(*), coalesce(sum(v), 0), max(v) FROM facts
            WHERE {cond} AND metric != 'event' GROUP BY {grp}, {_KEYS}"""
        return store.conn.execute(sql, params).fetchall()
    full, fp, edge, ep = _span(q)
    if q.since_ns is None and q.until_ns is None:  # all time: the totals, domains included
        full, fp, edge, ep = "day = -1", [], "0", []
    f, fpar = _filters(q)
    val = {"all": "", "team": q.team, "agent": q.agent, "repo": q.repo}[dim]  # day range
    vcond = "" if val is None else " AND val = ?"
    vpar = [] if val is None else [val]
    # everyone's domains are rolled up per day: the edges add theirs from the facts
    dom = "" if dim != "all" else f"""UNION ALL
        SELECT {grp}, {_DOMAIN_KEYS}, 1, 0, NULL FROM facts
          WHERE ({edge}) AND {f} AND +metric IN ('net', 'ask')
            AND ((+metric = 'net' AND k1 = 'deny') OR +metric = 'ask')"""  # by hour, not metric
    sql = f"""SELECT g, {_KEYS}, sum(n), sum(vsum), max(vmax) FROM (
        SELECT {"val" if q.by else "''"} AS g, {_KEYS}, n, vsum, vmax FROM roll
          WHERE dim = ?{vcond} AND ({full}) AND metric != 'event'
        UNION ALL
        SELECT {grp} AS g, {_KEYS}, 1, coalesce(v, 0), v FROM facts
          WHERE ({edge}) AND {f} AND metric NOT IN ('event', 'ask') {dom})
        GROUP BY g, {_KEYS}"""
    params = [dim, *vpar, *fp, *ep, *fpar] + ([*ep, *fpar] if dom else [])
    return store.conn.execute(sql, params).fetchall()


def _domains(store: RollupStore, q: Query) -> list[Row]:
    """Denied and asked domains, from the facts (rows shaped like ``_rows``)."""
    grp = q.by or "''"
    plan = _plan(q)
    if plan == "all" or (plan is not None and q.since_ns is None and q.until_ns is None):
        return []  # in the rollups
    cond, params = _facts_window(q)
    sql = f"""SELECT {grp}, {_DOMAIN_KEYS}, count(*), 0, NULL FROM facts
        WHERE {_DOMAIN_WHERE} AND {cond} GROUP BY {grp}, metric, k1, k2"""
    return store.conn.execute(sql, params).fetchall()


def _sessions(store: RollupStore, q: Query) -> list[Row]:
    """(group, day, sid, user, agent, aver) for every day a session was active."""
    grp = q.by or "''"
    full, fp, edge, ep = _span(q)
    f, fpar = _filters(q)
    sql = f"""SELECT {grp}, day, sid, user, agent, aver FROM roll_sess WHERE ({full}) AND {f}
        UNION SELECT DISTINCT {grp}, hour / 24, sid, user, agent, aver FROM facts
          WHERE ({edge}) AND {f}"""
    return store.conn.execute(sql, [*fp, *fpar, *ep, *fpar]).fetchall()


def _day(day: int) -> str:
    return dt.datetime.fromtimestamp(day * 86400, dt.UTC).strftime("%Y-%m-%d")


def _week(day: int) -> str:
    y, w, _ = dt.datetime.fromtimestamp(day * 86400, dt.UTC).isocalendar()
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
    wait_n, wait_sum, wait_max, wait_exact = 0, 0.0, None, 0
    waits: Counter[str] = Counter()
    turns = 0
    for metric, k1, k2, k3, k4, n, vsum, vmax in rows:
        if metric == "decision":
            dec[k1] += n
            by_source[k2][k1] += n
            outcomes[k3] += n
            kinds[k4] += n
        elif metric == "wait":
            waits[k3] += n
            wait_n += n
            wait_exact += n if k2 == "exact" else 0
            wait_sum += vsum
            wait_max = vmax if wait_max is None or (vmax is not None and vmax > wait_max) \
                else wait_max
        elif metric == "prompt_cmd":
            prompted[k1][k2] += n
        elif metric == "reviewer":
            reviewer[k1] += n
            if k2 == "fail_closed":
                reviewer["fail_closed"] += n
        elif metric == "net":  # counts only: domains come from the facts (domain_*)
            if k1 in ("allow", "deny"):
                net[k1] += n
            if k4 == "asked":
                net["ask"] += n
        elif metric == "domain_deny":
            denied[k2] += n
        elif metric == "domain_ask":
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
    for day, sid, user, agent, aver in sess:
        sids[sid] = (agent, aver)
        users.add(user)
        per_day[_day(day)].add(user)
        per_week[_week(day)].add(user)
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
        "approval_wait_ms": {"count": wait_n, "exact": wait_exact,
                             "mean": round(wait_sum / wait_n, 3) if wait_n else None,
                             "max": round(wait_max, 3) if wait_max is not None else None,
                             "p50": _pct(waits, 0.5), "p95": _pct(waits, 0.95)},
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


def _pct(hist: Counter[str], p: float) -> float | None:
    """A percentile from the wait histogram: its bucket's upper bound (within 10%)."""
    total = sum(hist.values())
    if not total:
        return None
    rank = p * total
    seen = 0
    for b in sorted(hist, key=int):
        seen += hist[b]
        if seen >= rank:
            return round(bucket_ms(b), 1)
    return None


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


def compute(store: RollupStore, q: Query, settings: Settings) -> dict[str, Any]:
    """The whole `corral stats` JSON for a query (``groups`` when ``q.by`` is set)."""
    rows = _rows(store, q) + _domains(store, q)
    sess = _sessions(store, q)
    out = numbers([r[1:] for r in rows], [s[1:] for s in sess], settings.suggest_min_count)
    out["window"] = {"since_ns": q.since_ns, "until_ns": q.until_ns}
    out["mcp_first_seen"] = {
        str(k): dt.datetime.fromtimestamp(t / 1e9, dt.UTC).isoformat(timespec="seconds")
        for k, t in store.conn.execute(
            "SELECT key, t FROM first_seen WHERE kind = 'mcp' ORDER BY t")}
    if q.by is not None:
        gr: dict[str, list[Row]] = defaultdict(list)
        gs: dict[str, list[Row]] = defaultdict(list)
        for r in rows:
            gr[r[0] or "(none)"].append(r[1:])
        for s in sess:
            gs[s[0] or "(none)"].append(s[1:])
        out["by"] = q.by
        out["groups"] = {k: numbers(gr.get(k, []), gs.get(k, []), settings.suggest_min_count)
                         for k in sorted(set(gr) | set(gs))}
    return out


SERIES = (("decision", "allow"), ("decision", "prompt"), ("decision", "forbidden"),
          ("net", "deny"), ("net", "asked"), ("sandbox", "sandbox_denied"))


def series(store: RollupStore, q: Query, settings: Settings) -> dict[str, Any]:
    """Counts over time for the charts: per day, or per hour when the window (or, without
    one, the data) spans two days or less."""
    f, fpar = _filters(q)
    lo, hi = store.conn.execute(
        f"SELECT min(day), max(day) FROM roll_sess WHERE {f}", fpar).fetchone()
    first = q.since_ns // DAY_NS if q.since_ns is not None else lo
    last = (q.until_ns - 1) // DAY_NS if q.until_ns is not None else hi
    per_hour = first is not None and last is not None and last - first < 2
    metrics = "metric IN ('decision', 'net', 'sandbox')"
    dim = _plan(q)
    if per_hour or dim is None:
        cond, params = _facts_window(q)
        unit = "hour" if per_hour else "hour / 24"
        rows = store.conn.execute(
            f"SELECT {unit}, metric, k1, k4, count(*) FROM facts WHERE {cond} AND {metrics} "
            f"GROUP BY 1, metric, k1, k4", params).fetchall()
    else:
        full, fp, edge, ep = _span(q)
        val = {"all": "", "team": q.team, "agent": q.agent, "repo": q.repo}[dim]  # day range
        vcond, vpar = ("", []) if val is None else (" AND val = ?", [val])
        rows = store.conn.execute(
            f"""SELECT d, metric, k1, k4, sum(n) FROM (
                SELECT day AS d, metric, k1, k4, n FROM roll WHERE dim = ?{vcond} AND ({full})
                  AND {metrics}
                UNION ALL SELECT hour / 24, metric, k1, k4, 1 FROM facts WHERE ({edge})
                  AND {f} AND {metrics}) GROUP BY d, metric, k1, k4""",
            [dim, *vpar, *fp, *ep, *fpar]).fetchall()
    data: dict[str, Counter[int]] = defaultdict(Counter)
    for b, metric, k1, k4, n in rows:
        if metric != "net":
            data[f"{metric}:{k1}"][b] += n
            continue
        if k4 == "asked":
            data["net:asked"][b] += n
        if k1 == "deny":
            data["net:deny"][b] += n
    buckets = sorted({b for c in data.values() for b in c})
    step = 3600 if per_hour else 86400
    labels = [dt.datetime.fromtimestamp(b * step, dt.UTC)
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
        f"SELECT sid, user, team, agent, repo, count(*), min(t), max(t) FROM facts "
        f"WHERE {cond} GROUP BY sid, user, team, agent, repo ORDER BY min(t) LIMIT 5000",
        params).fetchall()
    out = []
    for sid, user, team, agent, repo, n, t0, t1 in rows:
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
    return {"teams": [r[0] for r in conn.execute(
                "SELECT DISTINCT team FROM roll_sess ORDER BY 1")],
            "agents": [r[0] for r in conn.execute(
                "SELECT DISTINCT agent FROM roll_sess ORDER BY 1")],
            "repos": [r[0] for r in conn.execute(
                "SELECT DISTINCT repo FROM roll_sess WHERE repo != '' ORDER BY 1")]}
