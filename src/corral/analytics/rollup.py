"""The rollup database: events folded into daily counts, maintained from a cursor.

One SQLite file next to the journal (``analytics.db``). Each refresh reads only the records
after the cursor, turns every event into one or more *facts* (metric, keys, value) with SQL
inside SQLite (``->>`` on the stored canonical JSON: no per-record parsing in Python), keeps the
facts (for drill-down, per-user views and the partial days at the edges of a time window) and
adds them to ``roll``: counts per day and metric, once for everyone (``dim = 'all'``) and once
per team, per agent and per repository. So the default view and any one filter or breakdown
read a few thousand rows however large the journal; a combination of filters reads the facts.

The cursor remembers the journal id and the chain hash at its seq: another journal, a journal
that lost its tail, or another team map or team attribute rebuilds the rollups from the start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import shlex
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.analytics.source import EventSource, JournalSource

SCHEMA_VERSION = "7"  # 7: an MCP resource read or prompt keyed by its method
BATCH = 100_000
HOUR_NS = 3600 * 1_000_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sess (
    sid TEXT PRIMARY KEY, repo TEXT NOT NULL DEFAULT '', ident TEXT NOT NULL DEFAULT '',
    first_t INTEGER NOT NULL, last_t INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS facts (
    seq INTEGER NOT NULL, t INTEGER NOT NULL, hour INTEGER NOT NULL, sid TEXT NOT NULL,
    user TEXT NOT NULL, team TEXT NOT NULL, agent TEXT NOT NULL, aver TEXT NOT NULL,
    repo TEXT NOT NULL, metric TEXT NOT NULL, k1 TEXT NOT NULL, k2 TEXT NOT NULL,
    k3 TEXT NOT NULL, k4 TEXT NOT NULL, v REAL);
CREATE INDEX IF NOT EXISTS facts_hour ON facts(hour);
CREATE INDEX IF NOT EXISTS facts_metric ON facts(metric, k1, hour);
CREATE INDEX IF NOT EXISTS facts_domain ON facts(metric, k1, hour, k2, team, agent, repo, user, t)
    WHERE metric IN ('net', 'ask');
CREATE TABLE IF NOT EXISTS roll (
    dim TEXT NOT NULL, val TEXT NOT NULL, day INTEGER NOT NULL, metric TEXT NOT NULL,
    k1 TEXT NOT NULL, k2 TEXT NOT NULL, k3 TEXT NOT NULL, k4 TEXT NOT NULL,
    n INTEGER NOT NULL, vsum REAL NOT NULL, vmax REAL,
    PRIMARY KEY (dim, val, day, metric, k1, k2, k3, k4)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roll_sess (
    day INTEGER NOT NULL, sid TEXT NOT NULL, user TEXT NOT NULL, team TEXT NOT NULL,
    agent TEXT NOT NULL, aver TEXT NOT NULL, repo TEXT NOT NULL,
    PRIMARY KEY (day, sid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS first_seen (
    kind TEXT NOT NULL, key TEXT NOT NULL, t INTEGER NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
"""

# One staged row per record: the envelope and the few attributes its event name needs.
_STAGE = """
CREATE TEMP TABLE b AS
SELECT e.seq AS seq, e.session_id AS sid, e.name AS name, e.time_unix_nano AS t,
  coalesce(j ->> '$.user', '') AS user, coalesce(j ->> '$.agent_name', '') AS agent,
  coalesce(j ->> '$.agent_version', '') AS aver,
  coalesce(j ->> '$.attributes."corral.origin"', 'pipeline') AS origin,
  CASE e.name
    WHEN 'agent.tool.decision' THEN j ->> '$.attributes."agent.decision"'
    WHEN 'agent.network.decision' THEN j ->> '$.attributes."network.policy.decision"'
    WHEN 'agent.sandbox.outcome' THEN j ->> '$.attributes."agent.sandbox.outcome"'
    WHEN 'agent.approval.grant' THEN j ->> '$.attributes."agent.approval.scope"'
    WHEN 'agent.mcp.call' THEN j ->> '$.attributes."mcp.server.name"'
    WHEN 'agent.session.start' THEN j ->> '$.attributes."agent.policy.approval"'
    WHEN 'agent.tool.result' THEN j ->> '$.attributes."gen_ai.tool.type"'
    WHEN 'triage.verdict' THEN j ->> '$.attributes."triage.verdict"'
  END AS a1,
  CASE e.name
    WHEN 'agent.tool.decision' THEN j ->> '$.attributes."agent.decision.source"'
    WHEN 'agent.network.decision' THEN j ->> '$.attributes."server.address"'
    WHEN 'agent.sandbox.outcome' THEN j ->> '$.attributes."agent.sandbox.denial"'
    WHEN 'agent.approval.grant' THEN j ->> '$.attributes."agent.approval.granted_by"'
    WHEN 'agent.mcp.call' THEN CASE coalesce(j ->> '$.attributes."mcp.method.name"', 'tools/call')
      WHEN 'tools/call' THEN j ->> '$.attributes."gen_ai.tool.name"'
      ELSE (j ->> '$.attributes."mcp.method.name"') || ' ' || (j ->> '$.attributes."gen_ai.tool.name"')
    END
    WHEN 'agent.session.start' THEN j ->> '$.attributes."agent.policy.sandbox"'
    WHEN 'agent.tool.result' THEN j ->> '$.attributes."agent.tool.success"'
  END AS a2,
  CASE e.name
    WHEN 'agent.tool.decision' THEN j ->> '$.attributes."process.command_line"'
    WHEN 'agent.network.decision' THEN j ->> '$.attributes."network.policy.source"'
    WHEN 'agent.session.start' THEN j ->> '$.attributes."process.working_directory"'
  END AS a3,
  CASE e.name
    WHEN 'agent.tool.decision' THEN j ->> '$.attributes."agent.decision.rationale"'
    WHEN 'agent.session.start' THEN j ->> '$.attributes."agent.policy.network"'
  END AS a4,
  CASE e.name
    WHEN 'agent.tool.decision' THEN j ->> '$.attributes."gen_ai.tool.name"'
  END AS a5,
  CASE e.name
    WHEN 'agent.tool.decision' THEN j ->> '$.attributes."agent.approval.wait_ms"'
  END AS a6,
  coalesce(CASE WHEN :attr = '' THEN '' ELSE j ->> ('$.attributes."' || :attr || '"') END, '')
    AS ident
FROM (SELECT seq, session_id, name, time_unix_nano, CAST(body AS TEXT) AS j FROM {src}
      WHERE seq > :after AND seq <= :until) AS e
"""

# Session dimensions (repository from the start's working directory, team attribute).
_SESS = """
INSERT INTO sess (sid, repo, ident, first_t, last_t)
SELECT sid, coalesce(max(CASE WHEN name = 'agent.session.start' AND origin = 'pipeline'
                              THEN repo_of(a3) END), ''),
       max(ident), min(t), 0 FROM b GROUP BY sid
ON CONFLICT (sid) DO UPDATE SET
  repo = CASE WHEN sess.repo = '' THEN excluded.repo ELSE sess.repo END,
  ident = CASE WHEN sess.ident = '' THEN excluded.ident ELSE sess.ident END,
  first_t = min(sess.first_t, excluded.first_t)
"""

_X = """(SELECT b.*, s.repo AS repo, s.ident AS sident,
   coalesce(lag(b.t) OVER (PARTITION BY b.sid ORDER BY b.seq), nullif(s.last_t, 0)) AS pt
   FROM b JOIN sess s ON s.sid = b.sid)"""

_F = f"seq, t, t / {HOUR_NS} AS hour, sid, user, team_of(user, sident), agent, aver, repo"

# Every event becomes at least one fact; decisions become several (class, wait, command).
_FACTS = f"""
INSERT INTO temp.f (seq, t, hour, sid, user, team, agent, aver, repo, metric, k1, k2, k3, k4, v)
WITH x AS {_X}
SELECT {_F}, 'decision', dclass(a1, a2), coalesce(a2, ''), coalesce(a1, ''),
       tool_kind(a5, a3), NULL FROM x WHERE name = 'agent.tool.decision' AND origin = 'pipeline'
UNION ALL
SELECT {_F}, 'wait', a2, CASE WHEN a6 IS NULL THEN 'bound' ELSE 'exact' END,
       wait_bucket(coalesce(a6, (t - pt) / 1e6)), '', coalesce(a6, (t - pt) / 1e6) FROM x
  WHERE name = 'agent.tool.decision' AND origin = 'pipeline' AND a2 IN ('user', 'hook')
    AND dclass(a1, a2) = 'prompt' AND (a6 IS NOT NULL OR pt IS NOT NULL)
UNION ALL
SELECT {_F}, 'prompt_cmd', cmd_prefix(a3), coalesce(a1, ''), '', '', NULL FROM x
  WHERE name = 'agent.tool.decision' AND origin = 'pipeline' AND a2 = 'user'
    AND dclass(a1, a2) = 'prompt' AND tool_kind(a5, a3) = 'shell'
UNION ALL
SELECT {_F}, 'reviewer', coalesce(a1, ''),
       CASE WHEN a4 LIKE 'reviewer failed closed%' THEN 'fail_closed' ELSE '' END, '', '', NULL
  FROM x WHERE name = 'agent.tool.decision' AND origin = 'pipeline'
    AND a2 = 'automated_reviewer'
UNION ALL
SELECT {_F}, 'net', coalesce(a1, ''), coalesce(a2, ''), coalesce(a3, ''),
       CASE WHEN a1 = 'ask' OR a3 = 'user' THEN 'asked' ELSE '' END, NULL
  FROM x WHERE name = 'agent.network.decision' AND origin = 'pipeline'
UNION ALL
SELECT {_F}, 'ask', coalesce(a1, ''), coalesce(a2, ''), '', '', NULL
  FROM x WHERE name = 'agent.network.decision' AND origin = 'pipeline'
    AND (a1 = 'ask' OR a3 = 'user')
UNION ALL
SELECT {_F}, 'sandbox', coalesce(a1, ''),
       CASE WHEN a1 = 'sandbox_denied' THEN denial_kind(a2) ELSE '' END, '', '', NULL
  FROM x WHERE name = 'agent.sandbox.outcome' AND origin = 'pipeline'
UNION ALL
SELECT {_F}, 'grant', coalesce(a1, ''), coalesce(a2, ''), '', '', NULL
  FROM x WHERE name = 'agent.approval.grant' AND origin = 'pipeline'
UNION ALL
SELECT {_F}, 'mcp', coalesce(a1, ''), coalesce(a2, ''), '', '', NULL
  FROM x WHERE name = 'agent.mcp.call' AND origin = 'pipeline'
UNION ALL
SELECT {_F}, 'session', coalesce(a1, ''), coalesce(a2, ''), coalesce(a4, ''), '', NULL
  FROM x WHERE name = 'agent.session.start' AND origin = 'pipeline'
UNION ALL
SELECT {_F}, 'result', coalesce(a1, ''), coalesce(a2, ''), '', '', NULL
  FROM x WHERE name = 'agent.tool.result' AND origin = 'pipeline'
UNION ALL
SELECT {_F}, 'triage', coalesce(a1, ''), '', '', '', NULL
  FROM x WHERE name = 'triage.verdict' AND origin = 'pipeline'
UNION ALL
SELECT {_F}, 'turn', '', '', '', '', NULL FROM x WHERE name = 'agent.user_prompt'
UNION ALL
SELECT {_F}, 'claim', name, origin, '', '', NULL FROM x
  WHERE origin != 'pipeline' AND name != 'agent.user_prompt'
UNION ALL
SELECT {_F}, 'event', name, '', '', '', NULL FROM x
  WHERE origin = 'pipeline' AND name NOT IN (
    'agent.tool.decision', 'agent.network.decision', 'agent.sandbox.outcome',
    'agent.approval.grant', 'agent.mcp.call', 'agent.session.start', 'agent.tool.result',
    'triage.verdict', 'agent.user_prompt')
"""

_KEYS = "metric, k1, k2, k3, k4"
# Two rollups in one table: per day (``day >= 0``), and all-time totals (``day = -1``) that
# answer the most common question, "everything so far", in one row per key. Domains (hundreds of
# them would multiply every row) are rolled up per day only for everyone; per team, agent and
# repository only in the totals, and windows read them from the facts through a covering index.
_ROLL = """
INSERT INTO roll (dim, val, day, {keys}, n, vsum, vmax)
WITH g AS (SELECT {day} AS day, team, agent, repo, metric, k1,
                  CASE WHEN metric = 'net' THEN '' ELSE k2 END AS k2,
                  CASE WHEN metric = 'net' THEN '' ELSE k3 END AS k3, k4, v
           FROM temp.f WHERE metric != 'ask'
           UNION ALL
           SELECT {day}, team, agent, repo,
                  CASE metric WHEN 'net' THEN 'domain_deny' ELSE 'domain_ask' END, k1, k2, '',
                  '', NULL
           FROM temp.f WHERE (metric = 'net' AND k1 = 'deny') OR metric = 'ask')
SELECT * FROM (
  SELECT 'all', '', day, {keys}, count(*), coalesce(sum(v), 0), max(v)
    FROM g GROUP BY day, {keys}
  UNION ALL SELECT 'team', team, day, {keys}, count(*), coalesce(sum(v), 0), max(v)
    FROM g {narrow} GROUP BY team, day, {keys}
  UNION ALL SELECT 'agent', agent, day, {keys}, count(*), coalesce(sum(v), 0), max(v)
    FROM g {narrow} GROUP BY agent, day, {keys}
  UNION ALL SELECT 'repo', repo, day, {keys}, count(*), coalesce(sum(v), 0), max(v)
    FROM g {narrow} GROUP BY repo, day, {keys}
) WHERE true
ON CONFLICT (dim, val, day, {keys}) DO UPDATE SET n = roll.n + excluded.n,
  vsum = roll.vsum + excluded.vsum,
  vmax = CASE WHEN roll.vmax IS NULL THEN excluded.vmax WHEN excluded.vmax IS NULL
              THEN roll.vmax ELSE max(roll.vmax, excluded.vmax) END
"""
_ROLL_DAYS = _ROLL.format(keys=_KEYS, day="hour / 24",
                          narrow="WHERE metric NOT IN ('domain_deny', 'domain_ask')")
_ROLL_TOTAL = _ROLL.format(keys=_KEYS, day="-1", narrow="")

_ROLL_SESS = """
INSERT OR IGNORE INTO roll_sess (day, sid, user, team, agent, aver, repo)
SELECT DISTINCT hour / 24, sid, user, team, agent, aver, repo FROM temp.f
"""

_FIRST_SEEN = """
INSERT INTO first_seen (kind, key, t)
SELECT * FROM (SELECT metric, k1, min(t) FROM temp.f WHERE metric = 'mcp' GROUP BY metric, k1)
WHERE true
ON CONFLICT (kind, key) DO UPDATE SET t = min(first_seen.t, excluded.t)
"""

_LAST_T = """
INSERT INTO sess (sid, first_t, last_t) SELECT sid, min(t), max(t) FROM b GROUP BY sid
ON CONFLICT (sid) DO UPDATE SET last_t = max(sess.last_t, excluded.last_t)
"""

# Prefixes a rule must never allow wholesale: they run whatever follows them.
RUNNERS = frozenset({"bash", "sh", "zsh", "dash", "fish", "env", "sudo", "doas", "xargs",
                     "python", "python3", "node", "perl", "ruby", "eval", "exec", "command",
                     "nohup", "timeout", "nice", "time", "busybox", "su"})
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_DENIAL = re.compile(r"blocked (write|read|network|exec)")


def dclass(decision: str | None, source: str | None) -> str:
    """allow / prompt / forbidden: what the rules made of the call (a reviewer's or a person's
    answer means it was a prompt)."""
    if decision == "forbidden":
        return "forbidden"
    if decision == "auto_approved" and source in ("rule", "heuristic", "requirements"):
        return "allow"
    return "prompt"


def tool_kind(tool: str | None, cmdline: str | None) -> str:
    line = cmdline or ""
    if tool == "apply_patch" or line.startswith("patch "):
        return "patch"
    if line.startswith("mcp "):
        return "mcp"
    return "shell" if tool in ("shell", None, "") or tool.startswith("exec") else "other"


def cmd_prefix(cmdline: str | None) -> str:
    """The command and its subcommand words (``git push``), as a JSON list; '' when the line
    does not start with a plain word (nothing safe to suggest)."""
    try:
        words = shlex.split(cmdline or "")
    except ValueError:
        return ""
    out: list[str] = []
    for w in words[:2]:
        if not _WORD.fullmatch(w) or (out and out[0] in RUNNERS):
            break
        out.append(w)
    if not out or out[0] in RUNNERS:
        return ""
    return json.dumps(out)


def denial_kind(text: str | None) -> str:
    m = _DENIAL.search(text or "")
    return m.group(1) if m else "other"


def repo_of(path: str | None) -> str:
    return Path(path).name if path else ""


WAIT_BASE = 1.1  # wait-time histogram buckets: each 10% wider than the last


def wait_bucket(ms: float | None) -> str:
    """The histogram bucket of a wait (percentiles come from these, within 10%)."""
    if ms is None or ms <= 1:
        return "0"
    return str(math.ceil(math.log(ms, WAIT_BASE)))


def bucket_ms(bucket: str) -> float:
    """The upper bound of a bucket, in ms."""
    b = int(bucket)
    return 1.0 if b <= 0 else float(WAIT_BASE ** b)


@dataclass(frozen=True)
class Settings:
    """``[analytics]`` config: who is in which team, the event attribute naming a team."""

    teams: dict[str, str] = field(default_factory=dict)  # user -> team
    team_attribute: str = ""
    suggest_min_count: int = 3

    @classmethod
    def from_config(cls, cfg: Any | None) -> Settings:
        if cfg is None:
            return cls()
        return cls.from_table({k: cfg.get(f"analytics.{k}") for k in
                               ("teams", "team_attribute", "suggest_min_count")})

    @classmethod
    def from_table(cls, table: dict[str, Any] | None) -> Settings:
        """From an ``[analytics]`` table (corral's config, or a server's config.toml)."""
        table = table or {}
        teams: dict[str, str] = {}
        for team, users in dict(table.get("teams") or {}).items():
            if not isinstance(users, list | tuple) or not all(isinstance(u, str) for u in users):
                from corral.errors import CorralError

                raise CorralError("analytics", f"analytics.teams.{team} must be a list of "
                                  "user names")
            for u in users:
                teams[u] = str(team)
        return cls(teams=teams, team_attribute=str(table.get("team_attribute") or ""),
                   suggest_min_count=int(table.get("suggest_min_count") or 3))

    def team(self, user: str, ident: str) -> str:
        return ident or self.teams.get(user, "unassigned")


_ATTR = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")


def rollup_path(journal: Path) -> Path:
    return journal.parent / "analytics.db"


class RollupStore:
    """The rollup database. ``refresh`` folds new records in; queries read it."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path) -> RollupStore:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(f"file:{path}", uri=True, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA temp_store=MEMORY")
        if conn.execute("PRAGMA user_version").fetchone()[0] != int(SCHEMA_VERSION):
            for table in ("meta", "sess", "facts", "roll", "roll_sess", "first_seen"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")  # an older layout: start over
            conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")
        conn.executescript(_SCHEMA)
        for name, fn in (("dclass", dclass), ("tool_kind", tool_kind)):
            conn.create_function(name, 2, fn, deterministic=True)
        for name, fn1 in (("cmd_prefix", cmd_prefix), ("denial_kind", denial_kind),
                          ("repo_of", repo_of), ("wait_bucket", wait_bucket)):
            conn.create_function(name, 1, fn1, deterministic=True)
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def cursor(self) -> int:
        return int(self.meta("cursor") or 0)

    def refresh(self, source: EventSource, settings: Settings) -> int:
        """Fold the records after the cursor into the rollups; returns how many were read."""
        attr = settings.team_attribute
        if attr and not _ATTR.fullmatch(attr):
            from corral.errors import CorralError

            raise CorralError("analytics", f"analytics.team_attribute {attr!r} is not an "
                              "attribute name", hint="dotted lower-case, like user.team")
        conn = self.conn
        conn.create_function("team_of", 2, settings.team, deterministic=True)
        with self._attached(source) as src:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._check_identity(source, settings)
                after, last = self.cursor(), source.last_seq()
                done = 0
                while after < last:
                    until = min(after + BATCH, last)
                    self._fold(source, src, attr, after, until)
                    done += until - after
                    after = until
                if done:
                    self._set("cursor", str(after))
                    self._set("cursor_hash", source.hash_at(after) or "")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return done

    def _set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _check_identity(self, source: EventSource, settings: Settings) -> None:
        """Teams are resolved when folding: another journal, a journal that lost its tail, or
        another team map or attribute starts over."""
        teams = hashlib.sha256(json.dumps(sorted(settings.teams.items())).encode()).hexdigest()
        ident = f"{SCHEMA_VERSION}:{source.identity()}:{settings.team_attribute}:{teams[:16]}"
        cur = self.cursor()
        same = self.meta("identity") == ident and (
            cur == 0 or (source.hash_at(cur) or "") == self.meta("cursor_hash"))
        if same:
            return
        for table in ("meta", "sess", "facts", "roll", "roll_sess", "first_seen"):
            self.conn.execute(f"DELETE FROM {table}")
        self._set("identity", ident)

    def _fold(self, source: EventSource, src: str, attr: str, after: int, until: int) -> None:
        conn = self.conn
        if src == "temp.src":  # not a journal: stage a copy of the records
            rows = []
            for seq, body in source.records(after, until):
                rec = json.loads(body)
                rows.append((seq, rec["session_id"], rec["name"], rec["time_unix_nano"],
                             body.decode()))
            conn.execute("DELETE FROM temp.src")
            conn.executemany("INSERT INTO temp.src VALUES (?,?,?,?,?)", rows)
        conn.execute(_STAGE.format(src=src), {"attr": attr, "after": after, "until": until})
        conn.execute("CREATE TEMP TABLE f AS SELECT * FROM facts WHERE 0")
        try:
            conn.execute(_SESS)
            conn.execute(_FACTS)
            conn.execute(_LAST_T)
            conn.execute("INSERT INTO facts SELECT * FROM temp.f")
            conn.execute(_ROLL_DAYS)
            conn.execute(_ROLL_TOTAL)
            conn.execute(_ROLL_SESS)
            conn.execute(_FIRST_SEEN)
        finally:
            conn.execute("DROP TABLE temp.b")
            conn.execute("DROP TABLE temp.f")

    @contextlib.contextmanager
    def _attached(self, source: EventSource) -> Iterator[str]:
        """The table the staging query reads: the journal itself, attached read-only (outside
        any transaction, as SQLite requires), or a temporary table for other sources."""
        conn = self.conn
        if isinstance(source, JournalSource):
            source.last_seq()  # a missing journal is one line, not an attach error
            conn.execute("ATTACH DATABASE ? AS j", (f"file:{source.path}?mode=ro",))
            try:
                yield "j.events"
            finally:
                conn.execute("DETACH DATABASE j")
            return
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS src (seq INTEGER PRIMARY KEY, "
                     "session_id TEXT, name TEXT, time_unix_nano INTEGER, body TEXT)")
        try:
            yield "temp.src"
        finally:
            conn.execute("DROP TABLE IF EXISTS temp.src")
