"""``corral doctor --secrets`` shows the credential broker as ``corral run`` would set it up:
enabled or required, each credential's hosts and source, and the agent keys it cannot hold.
The real CLI in a subprocess; secrets are only tested for presence, never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.config.conftest import Env

SECRETS = {"OPENAI_API_KEY": "sk-doctor-openai-0123456789",
           "GH_BROKER_TOKEN": "ghp_doctor0123456789abcdef",
           "ACCESS": "ya29.doctor-access-0123456789"}


def _doctor(env: Env, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("CORRAL_") and not k.endswith(("_API_KEY", "_BASE_URL", "_TOKEN"))
            and k not in ("CODEX_HOME", "CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME")}
    user = env.root / "user"
    user.mkdir(exist_ok=True)
    base.update(HOME=str(user), CORRAL_HOME=str(env.home), CORRAL_SYSTEM_DIR=str(env.system),
                **extra)
    return subprocess.run([sys.executable, "-m", "corral", "doctor", "--secrets", *args],
                          cwd=env.project, env=base, capture_output=True, text=True, timeout=60)


def test_doctor_secrets_shows_what_the_broker_holds_and_what_it_cannot(env: Env) -> None:
    env.user_config('''
        [secrets.broker.credentials.github]
        kind = "git"
        hosts = ["github.com"]
        source = "env:GH_BROKER_TOKEN"

        [secrets.broker.credentials.tracker]
        hosts = ["tracker.example"]
        source = "env:TRACKER_TOKEN_UNSET"
    ''')
    ghome = env.root / "ghome"  # Gemini's login where Gemini reads it: $GEMINI_CLI_HOME/.gemini
    (ghome / ".gemini").mkdir(parents=True)
    (ghome / ".gemini" / "oauth_creds.json").write_text(json.dumps(
        {"access_token": SECRETS["ACCESS"], "refresh_token": "1//doctor-refresh-0123"}))
    codex = env.root / "user" / ".codex" / "config.toml"  # Codex's model: a local gateway
    codex.parent.mkdir(parents=True)
    codex.write_text('[model_providers.gw]\nbase_url = "http://127.0.0.1:9/v1"\n')
    extra = {"OPENAI_API_KEY": SECRETS["OPENAI_API_KEY"],
             "GH_BROKER_TOKEN": SECRETS["GH_BROKER_TOKEN"], "GEMINI_CLI_HOME": str(ghome)}
    r = _doctor(env, extra)
    assert r.returncode == 1, r.stdout + r.stderr  # a key it cannot hold, a missing secret
    out = r.stdout
    assert "credential broker (corral run): enabled\n" in out
    assert ("[brokered    ] github (git) from $GH_BROKER_TOKEN -> github.com") in out
    assert ("[MISSING     ] tracker (api_key) from $TRACKER_TOKEN_UNSET -> tracker.example: "
            "no secret there: corral run refuses to start") in out
    assert ("[NOT BROKERED] openai (codex api_key) from $OPENAI_API_KEY -> api.openai.com: the "
            f"agent's model URL http://127.0.0.1:9/v1 (from {codex}) is not one of its "
            "hosts over https: the agent and its commands see the real key; add the host to "
            "[secrets.broker.credentials.openai] hosts") in out
    login = ghome / ".gemini" / "oauth_creds.json"
    assert (f"[brokered    ] gemini-login (gemini api_key) from {login} (access_token) -> "
            "cloudcode-pa.googleapis.com, generativelanguage.googleapis.com") in out
    assert "not set here (nothing to hold): codex-api-key," in out
    for value in [*SECRETS.values(), "1//doctor-refresh-0123"]:
        assert value not in out and value not in r.stderr

    j = json.loads(_doctor(env, extra, "--json").stdout)["broker"]
    assert j["enabled"] is True and j["required_by"] is None
    states = {c["name"]: c["state"] for c in j["credentials"]}
    assert states["openai"] == "not brokered" and states["github"] == "brokered"
    assert states["tracker"] == "missing" and states["gemini-login-refresh"] == "brokered"
    assert states["anthropic"] == "absent"
    assert not any(v in json.dumps(j) for v in SECRETS.values())


def test_doctor_secrets_says_disabled_and_required(env: Env) -> None:
    env.user_config("[secrets.broker]\nenabled = false\n")
    extra = {"OPENAI_API_KEY": SECRETS["OPENAI_API_KEY"]}
    r = _doctor(env, extra)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "credential broker (corral run): disabled ([secrets.broker] enabled = false)" in r.stdout
    assert ("[off         ] openai (codex api_key) from $OPENAI_API_KEY -> api.openai.com: the "
            "broker is disabled: passed to the sandbox as before") in r.stdout
    req = env.requirements("[secrets.broker]\nrequired = true\n")
    r = _doctor(env, extra)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"credential broker (corral run): enabled, required by {req}" in r.stdout
    assert "[brokered    ] openai (codex api_key) from $OPENAI_API_KEY" in r.stdout
    assert SECRETS["OPENAI_API_KEY"] not in r.stdout
