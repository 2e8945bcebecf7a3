"""Hostile and random input: the reviewers never crash, never fail open, always answer within
the contract (enums, a rationale)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from corral.review.deterministic import DeterministicReviewer
from corral.review.llm import VerdictError, parse_verdict
from corral.review.model import AUTHORIZATIONS, OUTCOMES, RISK_LEVELS, ReviewRequest

REVIEWER = DeterministicReviewer(home="/home/dev")
WORDS = ["rm", "-rf", "~", "/", "..", "*", "curl", "-d", "@-", "@~/.ssh/id_rsa", "|", "&&", ";",
         "sh", "bash", "-c", "git", "push", "--force", "origin", "main", "npm", "publish", ">",
         ">>", "~/.bashrc", "$HOME", "$(cat .env)", "'", '"', "`", "\\", "{}", "-exec", "find",
         "xargs", "nc", "-e", "203.0.113.5", "4444", "https://pastebin.com", "chmod", "777",
         "dig", "sudo", "crontab", "-", "base64", "-d", "<", "<<EOF", "EOF", "(", ")", "=",
         "FOO=1", "env", "printenv", "$GITHUB_TOKEN", "kubectl", "delete", "terraform", "mv",
         "scp", "host:/tmp", "ssh", "-R", "python3", "import socket", "\n", "#", "-i", "&",
         # issue 20: anti-forensics, security tools, tampering, permissions, mining, payloads
         "~/.bash_history", "/var/log/auth.log", "HISTFILE=", "history", "+o", "set", "shred",
         "truncate", "$CORRAL_HOME", "~/.codex/config.toml", ".claude/settings.json", "corral",
         "untrust", "systemctl", "stop", "auditd", "pkill", "falcon-sensor", "setfacl", "-m",
         "chown", "xmrig", "stratum+tcp://p.example:3333", "--donate-level", "-a", "rx/0",
         "eval", '"$(ssh-agent -s)"', "<(", "xxd", "-r", "-p", "python3 -c",
         "exec(base64.b64decode('eA=='))", "pwsh", "-enc", "printf", "'\\x72\\x6d'"]


def _check(req: ReviewRequest) -> None:
    r = REVIEWER.review(req)
    assert not r.failed, r.rationale  # an internal error would show up here
    assert r.outcome in OUTCOMES and r.risk_level in RISK_LEVELS
    assert r.user_authorization in AUTHORIZATIONS
    assert r.rationale
    if r.risk_level == "critical":
        assert r.outcome == "deny"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=14),
       st.one_of(st.none(), st.text(max_size=40)))
def test_random_scripts(words: list[str], intent: str | None) -> None:
    _check(ReviewRequest(("bash", "-lc", " ".join(words)), "/home/dev/proj", intent=intent))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=8), st.text(max_size=30))
def test_random_argv_and_cwd(argv: list[str], cwd: str) -> None:
    _check(ReviewRequest(tuple(argv), cwd or "/"))


_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                     lambda c: st.one_of(st.lists(c, max_size=4),
                                         st.dictionaries(st.text(max_size=8), c, max_size=4)),
                     max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["patch", "network", "mcp", "escalation"]),
       st.dictionaries(st.sampled_from(["files", "patch", "host", "port", "server", "tool",
                                        "arguments", "annotations", "workspace_roots"]),
                       _json, max_size=5))
@example(kind="mcp", details={"files": None, "annotations": [None]})  # found a crash
def test_random_details(kind: str, details: dict[str, Any]) -> None:
    _check(ReviewRequest((), "/home/dev/proj", kind=kind, details=details))  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), _json.map(json.dumps)))
def test_parse_verdict_accepts_only_valid_verdicts(text: str) -> None:
    try:
        outcome, risk, auth, rationale = parse_verdict(text)
    except VerdictError:
        return
    assert outcome in OUTCOMES and risk in RISK_LEVELS and auth in AUTHORIZATIONS
    assert rationale.strip()


def test_malformed_details_are_a_clear_denial_not_a_crash() -> None:
    r = REVIEWER.review(ReviewRequest((), "/w/p", kind="mcp", details={"annotations": [None]}))
    assert not r.failed and r.outcome == "deny"
    assert "details.annotations is not an object" in r.rationale


def _labelled() -> tuple[list[str], list[str]]:
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data" / "review"
    benign, harmful = [], []
    for name in ("actions.jsonl", "holdout.jsonl", "holdout2.jsonl", "holdout3.jsonl"):
        for line in (data / name).read_text(encoding="utf-8").splitlines():
            e = json.loads(line)
            s = e.get("script")
            if not s or e.get("intent") or any(c in s for c in ("<<", "#", "\n")) or \
                    s.rstrip().endswith("&"):
                continue
            if e["expected"] == "allow" and "cd " not in s:
                benign.append(s)
            elif e["expected"] == "deny":
                harmful.append(s)
    return benign, harmful


BENIGN, HARMFUL = _labelled()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(BENIGN), st.sampled_from(HARMFUL), st.booleans())
def test_hiding_a_harmful_command_among_benign_ones_does_not_help(
        benign: str, harmful: str, harmful_first: bool) -> None:
    script = f"{harmful}; {benign}" if harmful_first else f"{benign}; {harmful}"
    r = REVIEWER.review(ReviewRequest(("bash", "-lc", script), "/home/dev/proj"))
    assert r.outcome == "deny", (script, r.rationale)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script", [
    "a" * 130_000,  # took 6 minutes: a fork-bomb regex backtracked quadratically
    "$" + "A" * 130_000,
    "cat " + "a" * 130_000 + ".envx",
    "chmod +" + "w" * 100_000 + "x f",
    'psql -c "DELETE FROM ' + "a" * 100_000 + '"',
    "cat " + "/" * 100_000 + "~/.aws/credentials",
    # issue 20: inline code, awk, AppleScript, miners, history assignments, eval set-up
    "python3 -c \"exec(os.system('" + "a" * 100_000 + "\"",
    "python3 -c \"open('/" + "a/" * 50_000 + "','w')\"",
    "awk 'BEGIN{system(\"" + "\\\"" * 50_000 + "\")}'",
    "osascript -e 'do shell script \"" + "x " * 50_000 + "\"'",
    "node -e \"eval(Buffer.from(" + "(" * 50_000 + "\"",
    "./xmrig" + "-" * 100_000, "HISTFILE=" + "/" * 100_000 + " bash",
    "eval \"$(ssh-agent " + "-s " * 30_000 + ")\"",
    "kill $(pidof " + "a" * 100_000 + ")",
    "awk 'BEGIN{print | \"" + "\"x" * 60_000 + "'", "perl -e '" + "`" * 100_000 + "'",
])
def test_hostile_sizes_do_not_hang_the_reviewer(script: str) -> None:
    r = REVIEWER.review(ReviewRequest(("bash", "-lc", script), "/home/dev/proj"))
    assert not r.failed
