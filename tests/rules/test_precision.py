"""Everyday agent commands must stay allowed: precision matters as much as recall."""

from __future__ import annotations

import pytest

from corral.rules import Policy, decide
from corral.rules.argv import Argv
from corral.rules.heuristics import classify
from corral.rules.starlark_loader import load_rules_text
from corral.types import RuleDecision

RULES = """
prefix_rule(pattern=["rm", ["-rf", "-fr"]], decision="forbidden")
prefix_rule(pattern=["git", "push", ["--force", "-f"]], decision="forbidden")
prefix_rule(pattern=["npm", ["install", "ci", "test", "run"]])
prefix_rule(pattern=["cargo", ["build", "test", "check", "fmt", "clippy"]])
"""

EVERYDAY = [
    "ls -la",
    "git status",
    "git diff HEAD~1 -- src/",
    "git log --oneline -20",
    "git add -A && git commit -m 'fix: handle rm in docs'",
    "git push origin main",
    "git fetch --all",
    "git checkout -b feature/x",
    "git stash && git pull --rebase && git stash pop",
    "npm install && npm test",
    "npm run build -- --watch=false",
    "cargo build --release 2>&1 | tail -20",
    "cargo test -- --nocapture",
    "python3 -m pytest -q tests/",
    "python -c 'print(1)'",
    "pip install -e '.[dev]'",
    "make -j4",
    "cd src && grep -rn 'TODO' .",
    "rg -n 'fn main' --type rust",
    "find . -name '*.py' -not -path './.venv/*' | head -50",
    "cat README.md | head -20",
    "sed -n '1,40p' src/main.rs",
    "echo \"rm -rf /\" > notes.txt",
    "echo 'rm -rf x\n'",
    "grep rm Makefile",
    "printf '%s\\n' rm",
    "mkdir -p build && cd build && cmake ..",
    "tar -xzf archive.tar.gz -C /tmp/x",
    "rm build/output.o",
    "rm -r build",
    "mv a.txt b.txt",
    "cp -r src/ backup/",
    "touch src/new_file.py",
    "for f in *.py; do python3 -m black \"$f\"; done",
    "if [ -f Cargo.toml ]; then cargo check; fi",
    "export PATH=$HOME/.cargo/bin:$PATH && cargo fmt",
    "FOO=1 npm test",
    "node scripts/build.js",
    "docker ps",
    "wc -l src/*.py",
    "diff -u a.txt b.txt",
    "jq '.name' package.json",
    "cat <<'EOF' > config.json\n{\"rm\": \"-rf\"}\nEOF",
    "python3 - <<'PY'\nimport os\nprint(os.getcwd())\nPY",
    "ls | wc -l",
    "go test ./...",
    "pytest -k 'not slow' -x",
    "curl -s http://localhost:8080/health",
    "uv run pytest",
    "git branch -d merged-branch",
    "git clean -n",
    "git reset --soft HEAD~1",
    "chmod +x scripts/run.sh",
    "./scripts/run.sh --fast",
    "timeout 60 npm test",
    "env NODE_ENV=test npm test",
    "time cargo build",
    "xargs -n1 echo < list.txt",
    "npm test 2>&1 | tee test.log",
    "echo '- item' >> notes.md",
    "python3 -c 'import sys; print(sys.argv)' a b",
    "ls *.py && wc -l $(git ls-files '*.py')",
    "for f in $(ls src); do echo \"$f\"; done",
    "cd \"$(git rev-parse --show-toplevel)\" && make test",
    "source .venv/bin/activate && pytest -q",
    ". ./env.sh && ./run",
    "grep -rn \"foo\" . | head -20",
    "sed -i 's/old/new/g' src/*.py",
    "git push -u origin feature/login",
    "git commit -am \"wip: don't rm -rf here\"",
    "chmod -R 755 public/",
    "chmod -R u+w build/",
    "docker compose up -d",
    "kill -9 12345",
    "npx prettier --write .",
    "test -f package.json && npm ci",
    "[ -d node_modules ] || npm install",
    "mkdir -p ~/.cache/myapp && touch ~/.cache/myapp/x",
    "command -v node",
    "which python3 && python3 --version",
    "git log --format='%H %s' -n 5",
    "date +%Y-%m-%d",
]


@pytest.fixture(scope="module")
def policy() -> Policy:
    p = Policy()
    assert load_rules_text("team.rules", RULES, p) is None
    return p


@pytest.mark.parametrize("script", EVERYDAY)
def test_everyday_command_is_allowed(policy: Policy, script: str) -> None:
    result = decide(["bash", "-lc", script], policy, "on-request")
    assert result.decision is RuleDecision.ALLOW, result.to_json()


@pytest.mark.parametrize(
    "script",
    ["ls -la", "git status", "git log -p", "cat a | grep b | wc -l", "sed -n '5p' f",
     "find . -name x", "rg foo", "git branch --show-current", "echo hi && pwd"],
)
def test_known_safe_allowed_even_when_untrusted(policy: Policy, script: str) -> None:
    result = decide(["bash", "-lc", script], policy, "untrusted")
    assert result.decision is RuleDecision.ALLOW, result.to_json()


@pytest.mark.parametrize(
    "script",
    ["make", "find . -delete", "git -C x status", "sed -i s/a/b/ f", "rg --pre x foo",
     "base64 -o out in", "git branch -D x", "sort -o out in"],
)
def test_not_safe_prompts_when_untrusted(policy: Policy, script: str) -> None:
    assert decide(["bash", "-lc", script], policy, "untrusted").decision is RuleDecision.PROMPT


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["rm", "-fr", "x"], "rm_recursive_force"),
        (["rm", "-r", "-f", "x"], "rm_recursive_force"),
        (["rm", "--recursive", "--force", "x"], "rm_recursive_force"),
        (["rm", "-Rfv", "x"], "rm_recursive_force"),
        (["rm", "-f", "x"], "rm_force"),
        (["git", "push", "--force"], "git_push_force"),
        (["git", "push", "origin", "--delete", "b"], "git_push_force"),
        (["git", "push", "origin", ":b"], "git_push_force"),
        (["git", "push", "origin", "+main"], "git_push_force"),
        (["git", "reset", "--hard"], "git_reset_hard"),
        (["git", "clean", "-fdx"], "git_clean_force"),
        (["chmod", "-R", "777", "/"], "chmod_world_writable"),
        (["chmod", "-R", "a+w", "."], "chmod_world_writable"),
        (["chmod", "-R", "776", "x"], "chmod_world_writable"),
        (["chmod", "-R", "o+rw", "x"], "chmod_world_writable"),
        (["dd", "if=/dev/zero", "of=/dev/sda"], "disk_write"),
        (["mkfs.ext4", "/dev/sdb1"], "disk_write"),
        (["tee", "-a", "/root/.bashrc"], "write_startup_or_ssh"),
        (["cp", "k", "/home/u/.ssh/authorized_keys"], "write_startup_or_ssh"),
        (["setenforce", "0"], "disable_security"),
        (["systemctl", "stop", "apparmor"], "disable_security"),
        (["sudo", "ls"], "sudo"),
        (["crontab", "-r"], "crontab_change"),
    ],
)
def test_dangerous_list(argv: list[str], name: str) -> None:
    verdict = classify(Argv.of(argv))
    assert (verdict.kind, verdict.name) == ("dangerous", name)
    assert verdict.justification


def test_dangerous_prompts_and_never_refuses() -> None:
    p = Policy()
    r = decide(["bash", "-lc", "git reset --hard && echo x >> ~/.zshrc"], p)
    assert r.decision is RuleDecision.PROMPT
    sources = {m.source for m in r.matches}
    assert {"heuristic:git_reset_hard", "heuristic:write_startup_or_ssh"} <= sources
    assert decide(["git", "reset", "--hard"], p, "never").decision is RuleDecision.FORBIDDEN
    assert "approval_policy is never" in decide(["git", "reset", "--hard"], p, "never").reason


def test_unmatched_commands_by_approval_policy() -> None:
    p = Policy()
    assert decide(["make"], p, "on-request").decision is RuleDecision.ALLOW
    assert decide(["make"], p, "on-failure").decision is RuleDecision.ALLOW
    assert decide(["make"], p, "never").decision is RuleDecision.ALLOW
    assert decide(["make"], p, "untrusted").decision is RuleDecision.PROMPT


def test_sandbox_bypass_only_when_every_command_allow_ruled(policy: Policy) -> None:
    assert decide(["bash", "-lc", "npm test && cargo build"], policy).sandbox_bypass
    assert not decide(["bash", "-lc", "npm test && make"], policy).sandbox_bypass
    # the environment or a wrapper could change what the allowed program does
    assert not decide(["bash", "-lc", "LD_PRELOAD=/tmp/x.so npm test"], policy).sandbox_bypass
    assert not decide(["env", "LD_PRELOAD=/tmp/x.so", "npm", "test"], policy).sandbox_bypass
    assert not decide(["bash", "-lc", "export PATH=/tmp; npm test"], policy).sandbox_bypass


def test_allow_rules_need_exact_program_or_declared_host_executable() -> None:
    p = Policy()
    assert load_rules_text("a.rules", 'prefix_rule(pattern=["deploy"])\n'
                           'prefix_rule(pattern=["tool"])\n'
                           'host_executable(name="tool", paths=["/opt/bin/tool"])\n', p) is None
    r = decide(["/tmp/evil/deploy"], p, "untrusted")
    assert r.decision is RuleDecision.PROMPT  # an allow rule for `deploy` is not `/tmp/evil/deploy`
    assert decide(["/opt/bin/tool"], p, "untrusted").decision is RuleDecision.ALLOW
    assert decide(["/tmp/tool"], p, "untrusted").decision is RuleDecision.PROMPT
    # relative program paths resolve against the command's cwd, not ours
    assert decide(["./tool"], p, "untrusted", cwd="/opt/bin").decision is RuleDecision.ALLOW
    assert decide(["./tool"], p, "untrusted", cwd="/tmp").decision is RuleDecision.PROMPT
