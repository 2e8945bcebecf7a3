"""One helper adds `--allow-domain`, `--deny-domain` and an agent preset's hosts to the network
policy, for `corral run` as for `corral exec` and `corral sandbox`: under
`network.managed_domains_only` the user's denials still hold (corral run dropped them) and the
user's allows are void with one warning line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.netproxy import DomainPattern
from corral.netproxy.policy import DomainRule, NetworkPolicy
from corral.supervisor.network import with_domains


def _managed(*hosts: str) -> NetworkPolicy:
    return NetworkPolicy(rules=tuple(DomainRule(DomainPattern.parse(h), "allow", "managed", True)
                                     for h in hosts), managed_only=True)


def test_managed_only_keeps_denials_and_voids_allows() -> None:
    policy, warnings = with_domains(_managed("ok.example", "denied.example"),
                                    allow=["extra.example"], deny=["denied.example"],
                                    preset=("codex", ("api.openai.com",)))
    assert policy.evaluate("denied.example", "https").action == "deny"
    assert policy.evaluate("extra.example", "https").action == "deny"
    assert policy.evaluate("api.openai.com", "https").action == "deny"
    assert policy.evaluate("ok.example", "https").action == "allow"
    assert warnings == ["corral: network: warning: api.openai.com, extra.example not "
                        "allowed: network.managed_domains_only (only the administrator's "
                        "domains may be allowed)"]
    # hosts the administrator allows are not reported as void
    _, warnings = with_domains(_managed("api.openai.com"), allow=["api.openai.com"],
                               preset=("codex", ("api.openai.com",)))
    assert warnings == []


def test_without_managed_only_all_extra_rules_apply() -> None:
    policy, warnings = with_domains(NetworkPolicy(), allow=["extra.example"],
                                    deny=["api.openai.com"], preset=("codex", ("api.openai.com",)))
    assert policy.evaluate("extra.example", "https").action == "allow"
    assert policy.evaluate("api.openai.com", "https").action == "deny"  # a denial wins
    assert policy.evaluate("other.example", "https").action == "ask"
    assert warnings == []


@pytest.mark.slow
def test_corral_run_deny_domain_under_managed_domains_only(cli: Any, tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "requirements.toml").write_text(
        '[network]\nmanaged_domains_only = true\n'
        '[network.domains]\n"ok.example" = "allow"\n"denied.example" = "allow"\n')
    script = "; ".join(
        f"curl -sS --max-time 10 -o /dev/null -w '%{{http_code}}\\n' http://{h}/"
        for h in ("denied.example", "extra.example"))
    r = cli("run", "--deny-domain", "denied.example", "--allow-domain", "extra.example",
            "--", "sh", "-c", script, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["403", "403"], r.stdout + r.stderr
    assert "extra.example" in r.stderr and "managed_domains_only" in r.stderr
    events = [json.loads(x) for x in cli("log", "--json").stdout.splitlines()]
    nets = {e["attributes"]["server.address"]: e["attributes"]["network.policy.reason"]
            for e in events if e["name"] == "agent.network.decision"}
    assert "--deny-domain" in nets["denied.example"]
    assert "not_allowed_managed" in nets["extra.example"]


ASK = r'''import json, os, sys
sys.path.insert(0, SRC)
from corral.supervisor.api import call
print(json.dumps(call("decide", argv=["npm", "publish"], cwd=os.getcwd())))
'''


@pytest.mark.slow
def test_corral_run_intent_is_what_the_reviewer_weighs(cli: Any, tmp_path: Path) -> None:
    """`corral run --intent`: the user's request from corral's own command line, trusted by
    the reviewer as `corral exec --intent` is (a prompt the agent reports never is)."""
    import sys

    (cli.home / "rules" / "team.rules").write_text(
        'prefix_rule(pattern=["npm", "publish"], decision="prompt")\n')
    agent = tmp_path / "agent.py"
    src = Path(__file__).resolve().parents[2] / "src"
    agent.write_text(ASK.replace("SRC", repr(str(src)), 1))
    base = ("run", "--approval-policy", "untrusted", "--reviewer", "auto_review")
    plain = cli(*base, "--", sys.executable, str(agent), timeout=120)
    asked = cli(*base, "--intent", "publish the package to npm", "--", sys.executable,
                str(agent), timeout=120)
    assert plain.returncode == 0 and asked.returncode == 0, plain.stderr + asked.stderr
    assert json.loads(plain.stdout.splitlines()[-1])["allowed"] is False
    reply = json.loads(asked.stdout.splitlines()[-1])
    assert reply["allowed"] is True and reply["verdict"] == "auto_approved", reply
