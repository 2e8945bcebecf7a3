"""The generated Gemini CLI system settings, loaded by the installed Gemini CLI's own settings
loader (`loadSettings` of @google/gemini-cli 0.61: its zod schema and its check that the file
and its directories are root-owned and not writable by others) from /etc/gemini-cli in a
private mount namespace."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.agents_managed.conftest import ADMIN, BIN, apply_to, in_private_etc, inputs_for, tool
from tests.integrations.gemini_server import GeminiServer, say, shell

pytestmark = pytest.mark.slow

BUNDLE = BIN.parent / "@google" / "gemini-cli" / "bundle"
SCRIPT = """
const m = await import(process.argv[2]);
const s = m.loadSettings(process.argv[3]);
console.log(JSON.stringify({errors: s.errors, system: s.system.settings,
                            path: s.system.path, merged: s.merged}));
"""


def settings_loader() -> Path:
    """The chunk of the CLI's own entry point that defines loadSettings."""
    entry = BUNDLE / "gemini.js"
    if not entry.exists():
        pytest.fail("Gemini CLI not installed: run scripts/setup --dev (npm @google/gemini-cli)")
    (main,) = set(re.findall(r"gemini-[A-Z0-9]+\.js", entry.read_text()))
    chunks = re.findall(r'"\./(chunk-[A-Z0-9]+\.js)"', (BUNDLE / main).read_text())
    found = [BUNDLE / c for c in chunks
             if "function loadSettings(" in (BUNDLE / c).read_text()]
    assert len(found) == 1, found
    return found[0]


def load(root: Path, tmp_path: Path) -> dict:
    script = tmp_path / "load.mjs"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    home = tmp_path / "gemini-home"
    home.mkdir(exist_ok=True)
    p = subprocess.run(in_private_etc(root, ["node", str(script), str(settings_loader()),
                                             str(work)]),
                       capture_output=True, text=True, timeout=120, cwd=work,
                       env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home)})
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_gemini_loads_the_generated_system_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_CLI_SYSTEM_SETTINGS_PATH", raising=False)
    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, ADMIN + '[agents]\ntelemetry = "server"\n',
                              'server.url = "https://corral.example.org"\n'), ("gemini",))
    got = load(root, tmp_path)
    assert got["errors"] == []
    assert got["path"] == "/etc/gemini-cli/settings.json"
    merged = got["merged"]
    before_tool = merged["hooks"]["BeforeTool"]
    assert before_tool[0]["hooks"][0]["name"] == "corral"
    assert "corral.integrations.hook_main gemini" in before_tool[0]["hooks"][0]["command"]
    assert merged["hooksConfig"]["enabled"] is True
    assert merged["security"]["auth"]["enforcedType"] == "oauth-personal"
    assert merged["security"]["disableYoloMode"] is True
    assert merged["telemetry"]["otlpEndpoint"] == "https://corral.example.org"


def test_gemini_reports_a_bad_file_and_skips_an_insecure_one(tmp_path, monkeypatch):
    """The loader is strict enough to fail: a wrong type is an error it reports, and a file
    others may write is skipped."""
    monkeypatch.delenv("GEMINI_CLI_SYSTEM_SETTINGS_PATH", raising=False)
    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, ADMIN), ("gemini",))
    target = root / "etc/gemini-cli/settings.json"
    doc = json.loads(target.read_text())
    doc["hooksConfig"]["enabled"] = "yes"
    target.write_text(json.dumps(doc))
    errors = load(root, tmp_path)["errors"]
    assert errors and "Invalid configuration in /etc/gemini-cli/settings.json" in \
        errors[0]["message"]
    target.chmod(0o666)
    errors = load(root, tmp_path)["errors"]
    assert errors and "Security Warning: Skipping system settings file" in errors[0]["message"]


# -- the admin policy: corral's forbidden rules refused by Gemini CLI itself ------------------

FORBIDDEN = '''
[[rules.prefix_rules]]
pattern = ["touch", ["denied-by-gemini.txt", "also-denied.txt"]]
decision = "forbidden"
justification = "the admin forbids this file"

[[rules.prefix_rules]]
pattern = ["touch", "my (file).txt"]
decision = "forbidden"

[[rules.prefix_rules]]
pattern = ["npm", "publish"]
decision = "prompt"
'''
DENIED = "Tool execution denied by policy. corral: rules: "  # Gemini's words, then corral's
ALLOW_TOUCH = '''
[[rule]]
toolName = "run_shell_command"
commandPrefix = "touch"
decision = "allow"
priority = 999
'''
MODEL = "gemini-2.5-flash"


def run_gemini(root: Path, tmp_path: Path, work: Path, turns: list, extra: list[str],
               ) -> tuple[subprocess.CompletedProcess[str], GeminiServer]:
    """`gemini -p --approval-mode yolo` (every tool call approved unless a policy denies it)
    as root in a private /etc showing ``root/etc``: API-key auth against a scripted server,
    nothing of corral's hooks in the user's settings."""
    home = tmp_path / "gemini-home"
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False}}))
    srv = GeminiServer(turns).start()
    try:
        argv = [str(tool("gemini")), "-m", MODEL, "--approval-mode", "yolo", "--skip-trust",
                "--output-format", "json", *extra, "-p", "do the task"]
        proc = subprocess.run(in_private_etc(root, argv), cwd=work, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL, env={
                                  "PATH": os.environ["PATH"], "HOME": str(home),
                                  "GEMINI_API_KEY": "test-key",
                                  "GOOGLE_GEMINI_BASE_URL": srv.root_url})
    finally:
        srv.stop()
    return proc, srv


TOUCHES = ["touch denied-by-gemini.txt extra.txt",  # a longer command with the rule's prefix
           "echo start && touch also-denied.txt",  # one part of a compound command
           "bash -c 'touch denied-by-gemini.txt'",  # inside a shell wrapper
           "touch 'my (file).txt'",  # the quoted token, as a shell spells it
           "touch allowed.txt"]
MADE = ["denied-by-gemini.txt", "extra.txt", "also-denied.txt", "my (file).txt"]


def test_gemini_refuses_the_forbidden_commands_by_corrals_admin_policy(tmp_path, monkeypatch):
    """corral's hook is not installed anywhere: Gemini CLI's own policy engine refuses the
    admin's forbidden commands because of /etc/gemini-cli/policies/corral.toml, in yolo mode,
    although the user allows `touch` at the highest user priority (~/.gemini/policies and
    --policy) and passes their own --admin-policy (ignored: the system directory has a
    policy). Without corral's file the same set-up runs every command."""
    monkeypatch.delenv("GEMINI_CLI_SYSTEM_SETTINGS_PATH", raising=False)
    mine = tmp_path / "mine.toml"
    mine.write_text(ALLOW_TOUCH)
    policies = tmp_path / "gemini-home" / ".gemini" / "policies"
    policies.mkdir(parents=True)
    (policies / "allow-touch.toml").write_text(ALLOW_TOUCH)
    extra = ["--policy", str(mine), "--admin-policy", str(mine)]
    turns = [shell(c) for c in TOUCHES] + [say("done")]

    bare = tmp_path / "bare"  # the same, without corral's files: everything runs
    bare.mkdir()
    proc, _ = run_gemini(tmp_path / "bare-root", tmp_path, bare, list(turns), extra)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert sorted(p.name for p in bare.iterdir()) == sorted([*MADE, "allowed.txt"])

    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, FORBIDDEN, hooks={}), ("gemini",))
    assert "hooks" not in json.loads((root / "etc/gemini-cli/settings.json").read_text())
    work = tmp_path / "gemini-work"
    work.mkdir()
    proc, srv = run_gemini(root, tmp_path, work, list(turns), extra)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert json.loads(proc.stdout)["response"] == "done"
    assert [p.name for p in work.iterdir()] == ["allowed.txt"]
    out = srv.tool_outputs()
    assert len(out) == 5, out
    why = "is forbidden by policy (/etc/gemini-cli/policies/corral.toml): "
    assert DENIED + f"`touch denied-by-gemini.txt` {why}the admin forbids this file" in out[0]
    assert DENIED + f"`touch also-denied.txt` {why}the admin forbids this file" in out[1]
    assert DENIED + f"`touch denied-by-gemini.txt` {why}" in out[2]
    assert DENIED + f"`touch 'my (file).txt'` {why}forbidden by the administrator" in out[3]
    assert "denied" not in out[4], out[4]
    assert "Security Warning: Ignoring --admin-policy because system policies are already " \
        "defined in /etc/gemini-cli/policies" in proc.stderr


def test_gemini_skips_a_policy_directory_others_may_write(tmp_path, monkeypatch):
    """The check that makes the Admin tier an administrator's: a group-writable
    /etc/gemini-cli/policies is skipped with a warning, and the forbidden command runs."""
    monkeypatch.delenv("GEMINI_CLI_SYSTEM_SETTINGS_PATH", raising=False)
    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, FORBIDDEN, hooks={}), ("gemini",))
    (root / "etc/gemini-cli/policies").chmod(0o775)
    work = tmp_path / "gemini-work"
    work.mkdir()
    proc, _ = run_gemini(root, tmp_path, work, [shell("touch denied-by-gemini.txt"),
                                                say("done")], [])
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Security Warning: Skipping system policies from /etc/gemini-cli/policies: " \
        "Directory '/etc/gemini-cli/policies' is writable by group or others" in proc.stderr
    assert (work / "denied-by-gemini.txt").exists()


POLICY_SCRIPT = """
import { readFileSync, writeFileSync } from "node:fs";
const m = await import(process.argv[2]);
const defaults = process.argv[6];  // the CLI's built-in policies (yolo's allow-all), tier 1
const { rules, errors } = await m.loadPoliciesFromToml(
  [process.argv[3], defaults], (p) => (p === defaults ? 1 : 5));
const engine = new m.PolicyEngine({ rules, approvalMode: "yolo", nonInteractive: true });
const out = [];
for (const command of JSON.parse(readFileSync(process.argv[4], "utf8"))) {
  const r = await engine.check({ name: "run_shell_command", args: { command } });
  out.push([r.decision, r.rule?.denyMessage ?? null]);
}
const ours = rules.filter((r) => r.source.startsWith("Admin"));
writeFileSync(process.argv[5], JSON.stringify({ errors, count: ours.length,
                                               sources: ours.map((r) => r.source), out }));
"""
WHERE = ["cd x; git push --force", "true | git push --force", "(git push --force)",
         "echo $(git push --force)", 'sh -c "git push --force"']  # parts Gemini checks
MISSED = ["git  push --force", 'git push "--force"', "env git push --force",
          "FOO=1 git push --force", "git push origin --force"]  # a prefix cannot say these
CHARS = "ab -_./=\"'\\()$`*?!;&|<>{}[]#~\t\n\x01\x1b\x7féß€\u2028😀"


def policy_core() -> Path:
    """The chunk of the CLI's own entry point that exports its policy engine."""
    settings_loader()  # fails clearly when the CLI is missing
    (main,) = set(re.findall(r"gemini-[A-Z0-9]+\.js", (BUNDLE / "gemini.js").read_text()))
    chunks = re.findall(r'"\./(chunk-[A-Z0-9]+\.js)"', (BUNDLE / main).read_text())
    found = [BUNDLE / c for c in chunks
             if "async function loadPoliciesFromToml(" in (BUNDLE / c).read_text()]
    assert len(found) == 1, found
    return found[0]


def test_gemini_reads_every_generated_prefix_back(tmp_path):
    """Awkward tokens (quotes, backslashes, parentheses, control characters, DEL, non-ASCII)
    survive tomlkit's quoting and Gemini CLI's own TOML parser (@iarna/toml, in its
    loadPoliciesFromToml): each generated rule denies the command that is its prefix, and
    that prefix followed by more arguments, even in yolo mode; a command no rule names is
    allowed. Gemini checks each part of a compound command and what `sh -c` runs; what a
    prefix cannot say (spacing, quoting, `env`, an assignment, reordered arguments) it allows,
    as the docs say (corral's hook decides those when it runs)."""
    import random
    import shlex

    from corral.agents_managed import Inputs
    from corral.agents_managed.gemini import deny_rules, policy_text

    rng = random.Random(20261202)
    token = lambda: "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 6)))  # noqa: E731
    rules = [{"pattern": ["git", "push", "--force"], "decision": "forbidden"}] + [
        {"pattern": [token() for _ in range(rng.randint(1, 3))], "decision": "forbidden",
         "justification": token()} for _ in range(150)]
    inputs = Inputs(requirements={"rules": {"prefix_rules": rules}})
    text = policy_text(inputs)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "corral.toml").write_text(text)
    prefixes = list(dict.fromkeys(" ".join(shlex.quote(t) for t in r["pattern"])
                                  for r in rules))
    commands = [c for p in prefixes for c in (p, p + " --more args")] + [
        *WHERE, *MISSED, "corral-allowed ok"]
    (tmp_path / "commands.json").write_text(json.dumps(commands))
    script = tmp_path / "policy.mjs"
    script.write_text(POLICY_SCRIPT)
    p = subprocess.run(["node", str(script), str(policy_core()), str(policies),
                        str(tmp_path / "commands.json"), str(tmp_path / "out.json"),
                        str(BUNDLE / "policies")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads((tmp_path / "out.json").read_text())
    assert [e for e in got["errors"] if "corral.toml" in e["fileName"]] == []
    assert got["count"] == len(prefixes)
    assert set(got["sources"]) == {"Admin: corral.toml"}
    decisions = [d for d, _ in got["out"]]
    assert decisions == ["deny"] * (len(commands) - 1 - len(MISSED)) + \
        ["allow"] * len(MISSED) + ["allow"], [
        (c, d) for c, d in zip(commands, got["out"], strict=True) if d[0] != "deny"]
    said = {r["commandPrefix"]: r["denyMessage"] for r in deny_rules(inputs)}
    assert list(said) == prefixes
    for i, prefix in enumerate(prefixes):  # the first rule (in file order) that matches
        message = got["out"][2 * i][1]
        assert message in [said[q] for q in prefixes[:i + 1] if prefix.startswith(q)], prefix
