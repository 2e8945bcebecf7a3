"""Issue 18: a home directory planted with the credential files and variables a developer
machine holds; ``corral sandbox --profile :workspace`` (the real CLI, real bubblewrap) must hide
every one of them. Before the credential catalogue and value detection, 29 of these 40 files and
11 of these 17 variables were readable inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MARK = "PLANTED-SECRET"
FILES = (
    ".config/gh/hosts.yml", ".config/glab-cli/config.yml", ".git-credentials", ".netrc",
    ".cargo/credentials.toml", ".gem/credentials", ".m2/settings.xml",
    ".m2/settings-security.xml", ".gradle/gradle.properties", ".npmrc", ".pypirc",
    ".config/composer/auth.json", ".nuget/NuGet/NuGet.Config", ".docker/config.json",
    ".pgpass", ".my.cnf", ".vault-token", ".password-store/github.com.gpg",
    ".config/sops/age/keys.txt", ".gnupg/private-keys-v1.d/A1B2.key", ".config/op/config",
    ".terraform.d/credentials.tfrc.json", ".kube/config", ".pulumi/credentials.json",
    ".config/rclone/rclone.conf", ".s3cfg", ".aws/credentials",
    ".config/gcloud/application_default_credentials.json", ".azure/msal_token_cache.json",
    ".ssh/id_ed25519", ".local/share/keyrings/login.keyring",
    ".config/google-chrome/Default/Cookies", ".mozilla/firefox/x1.default-release/logins.json",
    ".bash_history", ".zsh_history", ".psql_history", ".python_history",
    ".codex/auth.json", ".claude/.credentials.json", ".gemini/oauth_creds.json",
)
JWT = ("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwcm9qZWN0X3BhdGg6Z3JvdXAvYXBwIn0."
       "c2lnbmF0dXJlLWJ5dGVzLWhlcmU")
SECRET_ENV = {
    "DATABASE_URL": "postgres://app:Sup3rS3cretPw@db.internal:5432/app",
    "REDIS_URL": "redis://:hunter2hunter2@cache.internal:6379/0",
    "SENTRY_DSN": "https://4f1e0c5b7d2a4e6f8a9b0c1d2e3f4a5b@o450000.ingest.sentry.io/5500000",
    "NOTIFY_HOOK": "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/cCcCcCcCcCcCcCcCcCcCcCcC",
    "DB_PASS": "Tr0ub4dor&3xyz",
    "DOCKER_AUTH_CONFIG": '{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNzd29yZA=="}}}',
    "CI_JOB_JWT": JWT,
    "GITHUB_PAT": "ghp_" + "R8x2" * 9,
    "PUBLISH_WITH": "pypi-AgEIcHlwaS5vcmcCJGE4ZjMyYjM0LTk5YzUtNDk3Ny1hZjE0LWNmNDhkNmE2ZDEwNQ",
    "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=acme;"
                                       "AccountKey=bXlzZWNyZXRrZXlteXNlY3JldGtleQ==;",
    "HF_HUB_LOGIN": "hf_" + "aBcD" * 9,
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "OPENAI_API_KEY": "sk-proj-" + "Zq9" * 12,
    "ANTHROPIC_API_KEY": "sk-ant-api03-" + "Xy7" * 14,
    "GITHUB_TOKEN": "gho_" + "k3J9" * 9,
    "PGPASSWORD": "pgpw-planted",
    "DEPLOY_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
}
EVERYDAY_ENV = {"EDITOR": "vim", "LANG": "C.UTF-8", "NODE_ENV": "production",
                "LOG_LEVEL": "debug", "DATABASE_HOST": "db.internal",
                "API_BASE_URL": "https://api.example.com/v1", "APP_FEATURE_FLAGS": "a,b,c"}

PROBE = r'''
import json, os, sys
paths = json.loads(sys.argv[1])
out = {"files": [], "env": sorted(os.environ)}
for p in paths:
    try:
        with open(p, errors="replace") as f:
            if "PLANTED-SECRET" in f.read():
                out["files"].append(p)
    except OSError:
        pass
for dirpath, _, names in os.walk(os.environ["HOME"]):  # nothing reachable by another name
    for n in names:
        try:
            with open(os.path.join(dirpath, n), errors="replace") as f:
                if "PLANTED-SECRET" in f.read() and os.path.join(dirpath, n) not in paths:
                    out["files"].append(os.path.join(dirpath, n))
        except OSError:
            pass
print(json.dumps(out))
'''


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    home = tmp_path / "home"
    for i, rel in enumerate(FILES):
        p = home / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"token = {MARK}-{i}\n")
    project = home / "src" / "app"
    project.mkdir(parents=True)
    (project / "README").write_text("app\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CORRAL_", "XDG_")) and k not in SECRET_ENV}
    env.update(HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"), **SECRET_ENV,
               **EVERYDAY_ENV)
    return home, project, env


def test_workspace_profile_hides_every_planted_credential(
        planted: tuple[Path, Path, dict[str, str]]) -> None:
    home, project, env = planted
    paths = [str(home / rel) for rel in FILES]
    proc = subprocess.run(
        [sys.executable, "-m", "corral", "sandbox", "--profile", ":workspace", "--",
         sys.executable, "-c", PROBE, json.dumps(paths)],
        cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert len(FILES) >= 28 and len(SECRET_ENV) >= 13
    assert seen["files"] == [], f"readable inside: {seen['files']}"
    assert sorted(set(SECRET_ENV) & set(seen["env"])) == []
    assert set(EVERYDAY_ENV) <= set(seen["env"])  # everyday settings pass untouched
    for v in SECRET_ENV.values():  # no value is ever printed, even by the refusal lines
        assert v not in proc.stderr
    # the project itself is still the workspace
    ok = subprocess.run([sys.executable, "-m", "corral", "sandbox", "--", "sh", "-c",
                         "cat README && echo x > out"], cwd=project, env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout == "app\n", ok.stderr


def test_explain_env_names_each_dropped_variable_never_its_value(
        planted: tuple[Path, Path, dict[str, str]]) -> None:
    _, project, env = planted
    proc = subprocess.run([sys.executable, "-m", "corral", "sandbox", "--explain-env"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    named = {line.split()[3] for line in proc.stderr.splitlines()
             if line.startswith("corral: sandbox: env: ")}
    assert set(SECRET_ENV) <= named
    assert not set(EVERYDAY_ENV) & named
    for v in SECRET_ENV.values():
        assert v not in proc.stderr and v not in proc.stdout


def test_session_start_event_names_the_dropped_variables_never_their_values(
        planted: tuple[Path, Path, dict[str, str]]) -> None:
    _, project, env = planted
    run = subprocess.run([sys.executable, "-m", "corral", "exec", "--", "true"], cwd=project,
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    log = subprocess.run([sys.executable, "-m", "corral", "log", "--json"], cwd=project,
                         env=env, capture_output=True, text=True, timeout=60)
    starts = [e for e in map(json.loads, log.stdout.splitlines())
              if e["name"] == "agent.session.start"]
    summary = json.loads(starts[-1]["attributes"]["agent.policy.summary"])
    assert set(SECRET_ENV) <= set(summary["env_dropped"])
    assert summary["env_dropped"]["DATABASE_URL"] == "secret value: URL with a password"
    assert not set(EVERYDAY_ENV) & set(summary["env_dropped"])
    for v in SECRET_ENV.values():
        assert v not in log.stdout
