"""A real corral server and two enrolled machines (separate CORRAL_HOMEs, one keeping its
secrets in the Secret Service of gnome-keyring, the other in a 0600 file by configuration):
enrolment, forwarding bound to the device, a policy change reaching both within the refresh
interval, the fleet view, a forced workspace, and revocation."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fleet.conftest import REFRESH, Fleet, machine, wait_for

pytestmark = pytest.mark.slow


def _keyring(env: dict[str, str], service: str, key: str) -> str:
    code = f"import keyring; print(keyring.get_password({service!r}, {key!r}))"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                          capture_output=True, text=True, check=True).stdout.strip()


def test_two_machines_policy_fleet_view_revocation(fleet: Fleet, tmp_path: Path,
                                                    secret_service: dict[str, str]) -> None:
    token = fleet.enrol_token("eng", uses=2)
    a = machine(tmp_path, "laptop-a", store="keyring", env=secret_service)
    b = machine(tmp_path, "laptop-b", store="file")

    out_a = a.ok("enroll", "--server", fleet.url, stdin=token + "\n")
    out_b = b.ok("enroll", "--server", fleet.url, stdin=token + "\n")
    assert "device key: OS keyring (keyring.backends.SecretService" in out_a
    assert "device key: file " in out_b and "(mode 0600)" in out_b
    enr_a = json.loads((a.home / "fleet" / "enrolment.json").read_text())
    enr_b = json.loads((b.home / "fleet" / "enrolment.json").read_text())
    assert enr_a["device_id"] != enr_b["device_id"]
    assert enr_a["policy_public_key"] == enr_b["policy_public_key"]  # pinned, the same key
    # A's secrets are in the keyring and nowhere on disk; B's in 0600 files
    assert _keyring(secret_service, "corral-server", fleet.url).startswith("corral_")
    assert len(_keyring(secret_service, "corral-device", fleet.url)) == 44
    assert not (a.home / "credentials").exists()
    for f in (b.home / "credentials").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    # the token had two uses
    c = machine(tmp_path, "laptop-c")
    r = c.run("enroll", "--server", fleet.url, stdin=token + "\n")
    assert r.returncode == 1 and "enrolment token used up" in r.stderr

    # forwarding started: an action on each machine reaches the server under its device id
    for m in (a, b):
        m.ok("exec", "--", "true")
        m.ok("forward", "--retry-for", "10")
    devices = fleet.devices()
    assert set(devices) == {enr_a["device_id"], enr_b["device_id"]}
    for row in devices.values():
        assert row["state"] == "active" and row["groups"] == ["eng"]
        assert row["last_seen"] != "-" and row["corral_version"]
        assert row["forwarding_lag_seconds"] is not None
        assert row["hooks"] == {"codex": "not installed", "claude-code": "not installed",
                                "gemini": "not installed"}

    # a policy change reaches both machines within the refresh interval
    fleet.policy(tmp_path / "all.toml", 'allowed_approval_policies = ["untrusted", '
                 '"on-request"]\n[network.domains]\n"evil.example" = "deny"\n')
    published = time.monotonic()
    for m in (a, b):
        wait_for(lambda m=m: m.requirements()["data"].get("allowed_approval_policies")
                 == ["untrusted", "on-request"], REFRESH + 15)
    took = time.monotonic() - published
    assert took < REFRESH + 15
    req = a.requirements()
    assert req["data"]["network"]["domains"]["evil.example"] == "deny"
    assert any(s.startswith(f"server policy {fleet.url}/v1/fleet/policy (version 1")
               for s in req["sources"])
    # the group's policy reaches only its members; device:ID only that device
    fleet.policy(tmp_path / "a.toml", '[filesystem]\ndeny_read = ["/srv/secrets"]\n',
                 group=f"device:{enr_a['device_id']}")
    wait_for(lambda: "/srv/secrets" in a.requirements()["data"].get("filesystem", {}).get(
        "deny_read", []), REFRESH + 15)
    assert "filesystem" not in b.requirements()["data"]

    # each change is an event in the log: who, what, the diff
    history = fleet.admin("policy", "history").stdout.splitlines()
    assert len(history) == 2 and history[0].startswith("v1  *")
    read = fleet.admin("token", "create", "--scope", "read").stdout.strip()
    evs = httpx.get(fleet.url + "/v1/events?name=corral.fleet.policy.set",
                    headers={"Authorization": f"Bearer {read}"}).json()["data"]
    assert len(evs) == 2
    attrs = evs[0]["record"]["attributes"]
    assert attrs["fleet.policy.version"] == 1 and "@" in attrs["fleet.policy.author"]
    assert '+"evil.example" = "deny"' in attrs["fleet.policy.diff"]

    # the fleet view: applied policy versions arrive with the next check-in
    for m in (a, b):
        m.run("whoami")  # checks in (exit 1: nobody signed in)
    rows = fleet.devices()
    assert rows[enr_a["device_id"]]["policy_applied"] == 2
    assert rows[enr_b["device_id"]]["policy_applied"] in (1, 2)
    text = fleet.admin("devices").stdout
    assert enr_a["device_id"] in text and "policy v2 applied of v2" in text

    # revoke B: its token is refused from its next request, its policy fetch too
    out = fleet.admin("devices", "revoke", enr_b["device_id"]).stdout
    assert "revoked" in out
    b.ok("exec", "--", "true")
    r = b.run("forward", "--retry-for", "5")
    assert r.returncode == 1 and "token revoked" in r.stderr
    (b.home / "state" / "fleet-policy-bundle.json").unlink()
    req_b = b.requirements()
    assert req_b["restrictive"] and "server policy refused" in req_b["restrictive"]
    assert req_b["data"]["allowed_approval_policies"] == ["untrusted"]  # most restrictive
    assert fleet.devices()[enr_b["device_id"]]["state"] == "revoked"
    # A is unaffected
    a.ok("exec", "--", "true")
    a.ok("forward", "--retry-for", "10")


def test_forced_workspace(fleet: Fleet, tmp_path: Path) -> None:
    token = fleet.enrol_token("eng")
    a = machine(tmp_path, "alice-box")
    m = machine(tmp_path, "mallory-box")
    a.ok("enroll", "--server", fleet.url, stdin=token + "\n")
    m.ok("enroll", "--server", fleet.url, stdin=token + "\n")

    # mallory signs in (no login requirement yet) to her own organisation
    r = m.login(fleet.issuer, "mallory")
    assert r.returncode == 0, r.stderr
    assert "signed in as mallory@evil.example" in r.stdout and "org_id evilcorp" in r.stdout

    fleet.policy(tmp_path / "login.toml", '[login]\nforced_method = "oidc"\n'
                 'forced_workspace_id = "acme"\nworkspace_claim = "org_id"\n', group="eng")
    for box in (a, m):
        wait_for(lambda box=box: box.requirements()["data"].get("login", {}).get(
            "forced_workspace_id") == "acme", REFRESH + 15)

    # not signed in: refused, one line naming the requirement and its source
    r = a.run("exec", "--", "true")
    assert r.returncode == 1
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("corral: login: requirements (server policy ") and \
        "need a sign-in with oidc to workspace acme: not signed in; refusing to run agents" \
        in line
    # signed in to the wrong workspace: refused
    r = m.run("exec", "--", "true")
    assert r.returncode == 1
    assert ("mallory@evil.example is signed in to workspace 'evilcorp', but requirements "
            "(server policy") in r.stderr and "pin org_id to acme" in r.stderr
    # and a new sign-in to the wrong organisation is refused before anything is stored
    m.ok("logout")
    r = m.login(fleet.issuer, "mallory")
    assert r.returncode == 1 and "pin org_id to acme" in r.stderr
    assert not (m.home / "fleet" / "identity.json").exists()

    # alice signs in to acme: agents run, and every event carries her and the device
    r = a.login(fleet.issuer, "alice")
    assert r.returncode == 0, r.stderr
    out = a.ok("whoami")
    assert "user: alice@acme.example (subject user-alice, org_id acme) via oidc" in out
    a.ok("exec", "--", "true")
    a.ok("forward", "--retry-for", "10")
    device = json.loads((a.home / "fleet" / "enrolment.json").read_text())["device_id"]
    read = fleet.admin("token", "create", "--scope", "read").stdout.strip()
    evs = httpx.get(fleet.url + "/v1/events?name=agent.sandbox.outcome",
                    headers={"Authorization": f"Bearer {read}"}).json()["data"]
    assert evs and all(e["device"] == device for e in evs)
    rec = json.loads(evs[-1]["record"])
    assert rec["attributes"]["corral.user.id"] == "alice@acme.example"
    assert rec["attributes"]["corral.device.id"] == device
    # the refusals were journaled too
    refused = httpx.get(fleet.url + "/v1/events?name=agent.login.refused",
                        headers={"Authorization": f"Bearer {read}"}).json()["data"]
    assert any("not signed in" in json.loads(e["record"])["attributes"]["login.refusal"]
               for e in refused)
