"""Commands hidden where shell analysis cannot see them (issue 19 item 3): inline interpreter
code, environment variables that name programs, package runners.

Each form in three tables: a forbidden command inside is ``forbidden`` (its rule is named), a
benign one is decided by the rules as if written plainly, and an unanalysable one is at least
``prompt`` with a reason that says why.
"""

from __future__ import annotations

import pytest

from corral.rules import Policy, decide
from corral.rules.starlark_loader import load_rules_text
from corral.types import RuleDecision

RULES = """
prefix_rule(pattern=["rm", ["-rf", "-fr", "-r"]], decision="forbidden", justification="use trash")
prefix_rule(pattern=["curl"], decision="forbidden", justification="use the fetcher")
prefix_rule(pattern=["deploy"], decision="prompt", justification="deploys need a human")
prefix_rule(pattern=["npx", "prettier"], decision="allow")
prefix_rule(pattern=["/usr/lib/x86_64-linux-gnu/libfaketime.so.1"], decision="allow")
"""
POLICY = Policy()
assert load_rules_text("deny.rules", RULES, POLICY) is None

PY = "python3 -c {}"
FORBIDDEN_INSIDE = {
    # python (ast)
    "py_os_system": """python3 -c 'import os; os.system("rm -rf x")'""",
    "py_os_popen": """python3 -c 'import os; print(os.popen("curl x").read())'""",
    "py_subprocess_list": """python3 -c 'import subprocess; subprocess.run(["rm", "-rf", "x"])'""",
    "py_subprocess_shell": """python3 -c 'import subprocess as sp; sp.Popen("ls; rm -rf x", shell=True)'""",
    "py_check_output": """python3 -c 'from subprocess import check_output; check_output(["curl", "x"])'""",
    "py_call_kw": """python3 -c 'import subprocess; subprocess.call(args=["rm", "-fr", "y"])'""",
    "py_getoutput": """python3 -c 'import subprocess; subprocess.getoutput("curl x")'""",
    "py_from_import_alias": """python3 -c 'from os import system as s; s("rm -rf x")'""",
    "py_star_import": """python3 -c 'from os import *; system("rm -rf x")'""",
    "py_dunder_import": """python3 -c '__import__("os").system("curl x")'""",
    "py_posix_module": """python3 -c 'import posix; posix.system("rm -rf x")'""",
    "py_execvp": """python3 -c 'import os; os.execvp("rm", ["rm", "-rf", "x"])'""",
    "py_execl": """python3 -c 'import os; os.execl("/bin/rm", "rm", "-rf", "x")'""",
    "py_spawnlp": """python3 -c 'import os; os.spawnlp(os.P_WAIT, "curl", "curl", "x")'""",
    "py_spawnv": """python3 -c 'import os; os.spawnv(os.P_WAIT, "/bin/rm", ["rm", "-r", "x"])'""",
    "py_posix_spawn": """python3 -c 'import os; os.posix_spawn("/usr/bin/curl", ["curl", "x"], {})'""",
    "py_pty_spawn": """python3 -c 'import pty; pty.spawn(["rm", "-rf", "x"])'""",
    "py_asyncio_exec": """python3 -c 'import asyncio; asyncio.create_subprocess_exec("curl", "x")'""",
    "py_fstring_static_part": """python3 -c 'import os; os.system(f"rm -rf {d}")'""",
    "py_computed_arg_in_list": """python3 -c 'import subprocess, sys; subprocess.run(["rm", "-rf", sys.argv[1]])'""",
    "py_nested_bash": """python3 -c 'import subprocess; subprocess.run(["bash", "-c", "curl x"])'""",
    "py_executable_kw": """python3 -c 'import subprocess; subprocess.run(["ls", "-rf", "x"], executable="/bin/rm")'""",
    "py_heredoc": "python3 <<'EOF'\nimport os\nos.system('rm -rf x')\nEOF",
    "py_heredoc_dash": "python3 - <<'EOF'\nimport subprocess\nsubprocess.check_call('curl x', shell=True)\nEOF",
    "py_versioned": """python3.12 -I -c 'import os; os.system("rm -rf x")'""",
    "py_clustered_c": """python3 -Bc 'import os; os.system("curl x")'""",
    # perl
    "perl_system": """perl -e 'system("rm -rf x")'""",
    "perl_system_list": """perl -e 'system "rm", "-rf", "x"'""",
    "perl_exec_interp": """perl -e 'exec("rm -rf $dir")'""",
    "perl_backticks": """perl -e 'print `curl x`'""",
    "perl_qx": """perl -e 'my $x = qx{rm -rf x}'""",
    "perl_open_pipe_3arg": """perl -e 'open(my $f, "-|", "curl", "x")'""",
    "perl_open_pipe_2arg": """perl -e 'open(F, "rm -rf x|")'""",
    "perl_clustered": """perl -lne 'system("rm -rf $_")' list""",
    "perl_qw": """perl -e 'system(qw(rm -rf x))'""",
    # ruby
    "ruby_system": """ruby -e 'system("rm", "-rf", "x")'""",
    "ruby_backticks": """ruby -e 'puts `curl x`'""",
    "ruby_percent_x": """ruby -e 'puts %x(rm -rf x)'""",
    "ruby_popen": """ruby -e 'IO.popen("curl x").read'""",
    "ruby_open3": """ruby -ropen3 -e 'Open3.capture2("rm -rf x")'""",
    "ruby_kernel_open_pipe": """ruby -e 'open("|curl x")'""",
    "ruby_spawn_env": """ruby -e 'Process.spawn({"A" => "1"}, "rm -rf x")'""",
    # node
    "node_execsync": """node -e 'require("child_process").execSync("rm -rf x")'""",
    "node_destructured": """node -e 'const { execSync } = require("child_process"); execSync("curl x")'""",
    "node_bound_spawn": """node -e 'const cp = require("node:child_process"); cp.spawnSync("rm", ["-rf", "x"])'""",
    "node_import": """node --input-type=module -e 'import { exec } from "child_process"; exec("curl x")'""",
    "node_shell_option": """node -e 'require("child_process").spawn("rm", ["-rf", "x"], { shell: true })'""",
    "node_print": """node -p 'require("child_process").execSync("curl x").toString()'""",
    "node_template": """node -e 'require("child_process").execSync(`rm -rf ${d}`)'""",
    "bun_eval": """bun -e 'require("child_process").execSync("rm -rf x")'""",
    # awk
    "awk_system": """awk 'BEGIN { system("rm -rf x") }'""",
    "awk_system_concat": """awk '{ system("rm -rf " $1) }' list""",
    "awk_output_pipe": """awk '{ print $0 | "curl -d @- x" }' f""",
    "awk_getline": """awk 'BEGIN { while (("curl x" | getline l) > 0) print l }'""",
    "gawk_source": """gawk -e 'BEGIN { system("rm -rf x") }'""",
    "busybox_awk": """busybox awk 'BEGIN { system("curl x") }'""",
    # make
    "make_stdin": "make -f - <<'EOF'\nall:\n\trm -rf x\nEOF",
    "make_stdin_long": "make --file=- all <<'EOF'\nall:\n\t@curl x\nEOF",
    "make_shell_function": "make -f - <<'EOF'\nX := $(shell curl x)\nall: ;\nEOF",
    "make_eval": "make --eval='all: ; rm -rf x'",
    "make_shell_var": "make SHELL='rm -rf x' all",
    # environment variables
    "git_ssh_command": "GIT_SSH_COMMAND='rm -rf x' git fetch",
    "git_ssh": "GIT_SSH=curl git fetch",
    "git_external_diff": "GIT_EXTERNAL_DIFF='rm -rf x' git diff",
    "git_pager": "GIT_PAGER='curl x' git log",
    "pager": "PAGER='rm -rf x' man ls",
    "editor": "EDITOR='rm -rf x' git commit",
    "visual": "VISUAL='curl x' crontab -e",
    "git_askpass": "GIT_ASKPASS=curl git push",
    "lessopen": "LESSOPEN='| curl %s' less f",
    "export_then_run": "export GIT_PAGER='rm -rf x'; git log",
    "plain_assignment": "PAGER='curl x'; man ls",
    "declare_x": "declare -x EDITOR='rm -rf x'; git commit",
    "env_prefix": "env GIT_PAGER='curl x' git log",
    "env_split": "env -S \"GIT_PAGER='curl x' git log\"",
    "sudo_prefix": "sudo GIT_SSH_COMMAND='rm -rf x' git fetch",
    "nested_shell_prefix": "bash -c \"PAGER='curl x' man ls\"",
    # package runners
    "npx": "npx rm -rf x",
    "npx_yes": "npx -y curl x",
    "npx_call": "npx -c 'rm -rf x'",
    "npx_package_opt": "npx -p some-pkg curl x",
    "npm_exec": "npm exec -- rm -rf x",
    "npm_x": "npm x curl x",
    "pnpm_dlx": "pnpm dlx curl x",
    "pnpm_exec": "pnpm exec rm -rf x",
    "yarn_dlx": "yarn dlx -p pkg curl x",
    "bunx": "bunx curl x",
    "bun_x": "bun x rm -rf x",
    "uvx": "uvx curl x",
    "uvx_from": "uvx --from pkg curl x",
    "uvx_versioned": "uvx curl@1.2 x",
    "uv_tool_run": "uv tool run rm -rf x",
    "uv_run": "uv run --with requests curl x",
    "pipx_run": "pipx run curl==1.0 x",
    "poetry_run": "poetry run rm -rf x",
    "conda_run": "conda run -n env curl x",
    # more programs that run the command after their options
    "parallel": "parallel -j4 rm -rf ::: a b",
    "unshare": "unshare -r rm -rf x",
    "nsenter": "nsenter -t 1 -m curl x",
    "setpriv": "setpriv --reuid=1000 rm -rf x",
    "prlimit": "prlimit --nofile=10 curl x",
    "faketime": "faketime '2020-01-01' rm -rf x",
    "xvfb_run": "xvfb-run -a curl x",
    "systemd_run": "systemd-run --user -p X=1 rm -rf x",
    "firejail": "firejail --quiet curl x",
    "torsocks": "torsocks curl x",
    "valgrind": "valgrind --tool=memcheck rm -rf x",
    # the already-handled wrappers, through the new forms
    "python_to_xargs": """python3 -c 'import subprocess; subprocess.run("ls | xargs rm -rf", shell=True)'""",
    "npx_timeout": "npx -y timeout 5 curl x",
}


@pytest.mark.parametrize("name", sorted(FORBIDDEN_INSIDE))
def test_forbidden_inside_is_forbidden(name: str) -> None:
    script = FORBIDDEN_INSIDE[name]
    d = decide(["bash", "-lc", script], POLICY)
    assert d.decision is RuleDecision.FORBIDDEN, d.to_json()
    assert any(m.source.startswith("deny.rules:") and m.decision is RuleDecision.FORBIDDEN
               for m in d.matches), d.to_json()
    assert "[deny.rules:" in d.reason


BENIGN = {
    # (script, decision under on-request)
    "py_print": "python3 -c 'print(1 + 1)'",
    "py_json_stdin": "python3 -c 'import json, sys; print(json.load(sys.stdin)[\"a\"])'",
    "py_os_harmless": "python3 -c 'import os; print(os.getcwd(), os.path.join(\"a\", \"b\"))'",
    "py_platform_system": "python3 -c 'import platform; print(platform.system())'",
    "py_importlib_metadata": "python3 -c 'import importlib.metadata as m; print(m.version(\"pip\"))'",
    "py_subprocess_git_status": "python3 -c 'import subprocess; subprocess.run([\"git\", \"status\"])'",
    "py_open_file": "python3 -c \"open('out.txt', 'w').write('x')\"",
    "py_script_file": "python3 script.py --flag",
    "py_module": "python3 -m pytest -q",
    "py_version": "python3 --version",
    "perl_print": "perl -e 'print 1 + 1'",
    "perl_inplace": "perl -pi -e 's/foo/bar/g' file.txt",
    "perl_filter": "perl -ne 'print if /rm -rf/' log",
    "perl_open_read": "perl -e 'open(my $f, \"<\", \"x\") or die; print <$f>'",
    "ruby_puts": "ruby -e 'puts 10 % 3'",
    "ruby_file_open": "ruby -e 'File.open(\"x\") { |f| puts f.read }'",
    "node_log": "node -e 'console.log(1)'",
    "node_fs": "node -e 'const fs = require(\"fs\"); console.log(fs.readFileSync(\"x\", \"utf8\"))'",
    "node_regex_exec": "node -p '/a/.exec(\"abc\")'",
    "node_cp_git": "node -e 'require(\"child_process\").execSync(\"git status\")'",
    "node_script": "node build.js",
    "awk_print": "awk -F: '{ print $1 }' /etc/passwd",
    "awk_regex_alternation": "awk '/foo|bar/ { n++ } END { print n }' f",
    "awk_division": "awk '{ s += $2 / 2 } END { print s }' f",
    "awk_pipe_sort": "awk '{ print $1 | \"sort -u\" }' f",
    "awk_file": "awk -f prog.awk data",
    "make_plain": "make -j4 test",
    "make_stdin_benign": "make -f - <<'EOF'\nall:\n\techo $@\nEOF",
    "pager_cat": "PAGER=cat git log",
    "editor_true": "GIT_EDITOR=true git commit --amend",
    "ld_preload_empty": "LD_PRELOAD= ls",
    "ld_preload_allowed": "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libfaketime.so.1 date",
    "bash_env_devnull": "BASH_ENV=/dev/null bash -c ls",
    "node_options_memory": "NODE_OPTIONS=--max-old-space-size=4096 npm test",
    "ordinary_assignment": "FOO='rm -rf x' make",
    "npx_prettier": "npx prettier --write .",
    "npx_cowsay": "npx cowsay@1.5 hi",
    "uvx_ruff": "uvx ruff check .",
    "npm_test": "npm test",
    "npm_install": "npm install",
    "uv_sync": "uv sync",
    "pipx_install": "pipx install black",
}


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_inside_is_decided_by_rules(name: str) -> None:
    d = decide(["bash", "-lc", BENIGN[name]], POLICY)
    assert d.decision is RuleDecision.ALLOW, d.to_json()


def test_benign_inside_is_judged_like_a_plain_command() -> None:
    """Under ``untrusted`` an unmatched program prompts: also when code or a variable runs it,
    and a known-safe one does not."""
    for script in ("python3 -c 'import os; os.system(\"frobnicate\")'", "PAGER=frobnicate man ls",
                   "perl -e 'system(\"deploy now\")'"):
        d = decide(["bash", "-lc", script], POLICY, "untrusted")
        assert d.decision is RuleDecision.PROMPT, d.to_json()
    d = decide(["bash", "-lc", "GIT_PAGER=cat git log"], POLICY, "untrusted")
    assert d.decision is RuleDecision.ALLOW, d.to_json()
    # a prompt rule inside code prompts, naming its rule
    d = decide(["bash", "-lc", "python3 -c 'import os; os.system(\"deploy now\")'"], POLICY)
    assert d.decision is RuleDecision.PROMPT and "deploys need a human" in d.reason
    assert ["deploy", "now"] in d.commands


def test_runner_rules_keep_codex_semantics() -> None:
    """A rule written for the runner's line still decides it (``npx prettier`` allowed under
    ``untrusted``); what it runs adds its deny rules, and fetched code keeps the sandbox."""
    d = decide(["npx", "prettier", "--write", "."], POLICY, "untrusted")
    assert d.decision is RuleDecision.ALLOW, d.to_json()
    assert not d.sandbox_bypass
    assert ["prettier", "--write", "."] in d.commands
    assert POLICY.check(["npx", "prettier", "--write", "."])["decision"] == "allow"
    assert decide(["npx", "left-pad"], POLICY, "untrusted").decision is RuleDecision.PROMPT


UNANALYSABLE = {
    # (script, words the reason must contain)
    "py_computed_command": ("python3 -c 'import os, sys; os.system(sys.argv[1])' x",
                            "computed at run time"),
    "py_alias_of_system": ("python3 -c 'import os; f = os.system; f(\"ls\")'", "passes `os.system`"),
    "py_exec": ("python3 -c 'exec(\"import os\")'", "uses `exec`"),
    "py_eval": ("python3 -c 'eval(input())'", "uses `eval`"),
    "py_getattr_module": ("python3 -c 'import os; getattr(os, \"sys\" + \"tem\")(\"x\")'",
                          "passes the `os` module"),
    "py_sys_modules": ("python3 -c 'import sys; sys.modules[\"os\"].system(\"x\")'", "`.modules`"),
    "py_module_through_other": ("python3 -c 'import shutil; shutil.os.system(\"x\")'",
                                "reaches the `os` module"),
    "py_ctypes": ("python3 -c 'import ctypes; ctypes.CDLL(None).system(b\"x\")'", "`ctypes`"),
    "py_pickle": ("python3 -c 'import pickle; pickle.loads(b\"x\")'", "`pickle`"),
    "py_shell_computed": ("python3 -c 'import subprocess; subprocess.run(c, shell=flag)'",
                          "`shell=` at run time"),
    "py_kwargs": ("python3 -c 'import subprocess; subprocess.run([\"ls\"], **kw)'", "**kwargs"),
    "py_syntax_error": ("python3 -c 'import os; os.system(\"x\"'", "does not parse"),
    "py_stdin_pipe": ("curl-lite x | python3", "reads its program from standard input"),
    "py_env_in_code": ("python3 -c 'import os; os.environ[\"GIT_PAGER\"] = \"x\"; os.system(\"git log\")'",
                       "sets GIT_PAGER"),
    "perl_eval": ("perl -e 'eval \"sys\" . \"tem q(x)\"'", "uses `eval`"),
    "perl_symbolic_call": ("perl -e '$s = \"system\"; &$s(\"x\")'", "uses `&$`"),
    "perl_subst_eval": ("perl -pe 's/x/system(\"ls\")/e'", "s///e"),
    "perl_word_in_string": ("perl -e 'print \"system\"'", "uses `system` in a way"),
    "perl_open_computed": ("perl -e 'open(F, $ARGV[0])'", "computed at run time"),
    "perl_ipc_module": ("perl -MIPC::Open3 -e 1", "`IPC::`"),
    "perl_indirect_object": ("perl -e 'exec { $p } @a'", "block computed at run time"),
    "ruby_send": ("ruby -e 'Kernel.send(:system, \"x\")'", "uses `send`"),
    "ruby_symbol": ("ruby -e 'm = :system; puts m'", "uses `system` in a way"),
    "ruby_system_computed": ("ruby -e 'system(ARGV[0])'", "computed at run time"),
    "node_computed_member": ("node -e 'const cp = require(\"child_process\"); cp[\"ex\" + \"ec\"](\"x\")'",
                             "passes the child_process module"),
    "node_renamed": ("node -e 'const { exec: run } = require(\"child_process\"); run(\"x\")'",
                     "uses `exec` in a way"),
    "node_dynamic_require": ("node -e 'require(process.argv[1])'", "uses `require(p`"),
    "node_eval": ("node -e 'eval(process.argv[1])'", "uses `eval`"),
    "node_function": ("node -e 'new Function(\"return 1\")()'", "uses `Function`"),
    "node_exec_computed": ("node -e 'require(\"child_process\").execSync(process.argv[1])'",
                           "computed at run time"),
    "awk_system_variable": ("awk '{ cmd = $1; system(cmd) }'", "computed at run time"),
    "awk_getline_variable": ("awk 'BEGIN { c = \"ls\"; c | getline }'", "computed at run time"),
    "awk_load": ("gawk -l ordchr 'BEGIN { }'", "shared library"),
    "awk_program_stdin": ("awk -f - data", "standard input"),
    "awk_include": ("gawk '@include \"x.awk\"; BEGIN { }'", "`@include`"),
    "make_stdin_pipe": ("gen | make -f -", "reads its makefile from standard input"),
    "make_include": ("make -f - <<'EOF'\ninclude other.mk\nEOF", "includes other makefiles"),
    "make_user_variable": ("make -f - <<'EOF'\nall:\n\t$(CMD) x\nEOF", "builds a shell command"),
    "env_computed": ("GIT_SSH_COMMAND=$X git fetch", "GIT_SSH_COMMAND is computed"),
    "ld_preload": ("LD_PRELOAD=/tmp/evil.so ls", "LD_PRELOAD makes every program load /tmp/evil.so"),
    "ld_audit_export": ("export LD_AUDIT=/tmp/a.so; ls", "LD_AUDIT"),
    "bash_env": ("BASH_ENV=/tmp/x bash -c ls", "BASH_ENV=/tmp/x makes bash run startup code"),
    "node_options_require": ("NODE_OPTIONS='--require ./hook.js' npm test", "NODE_OPTIONS"),
    "perl5opt": ("PERL5OPT=-MEvil perl x.pl", "PERL5OPT"),
    "git_config_env": ("GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.pager GIT_CONFIG_VALUE_0=x git log",
                       "GIT_CONFIG_KEY_0=core.pager"),
    "git_config_global": ("GIT_CONFIG_GLOBAL=/tmp/cfg git log", "GIT_CONFIG_GLOBAL"),
    "npx_computed": ("npx $PKG", "computed at run time"),
    "npm_computed_sub": ("npm $SUB x", "computed at run time"),
    "npx_call_computed": ("npx -c \"$CMD\"", "computed at run time"),
    "parallel_from_stdin": ("cat cmds | parallel", "computed at run time"),
}


@pytest.mark.parametrize("name", sorted(UNANALYSABLE))
def test_unanalysable_is_prompt_with_reason(name: str) -> None:
    script, needle = UNANALYSABLE[name]
    d = decide(["bash", "-lc", script], Policy())
    assert d.decision is RuleDecision.PROMPT, d.to_json()
    reasons = " | ".join(m.justification or "" for m in d.matches if m.decision is RuleDecision.PROMPT)
    assert needle in reasons, (needle, d.to_json())
    assert decide(["bash", "-lc", script], Policy(), "never").decision is RuleDecision.FORBIDDEN


def test_argv_forms_without_a_shell() -> None:
    """What the exec boundary sees: the interpreter's own argv, no ``bash -lc``."""
    for argv in (["python3", "-c", "import os; os.system('rm -rf x')"],
                 ["/usr/bin/perl", "-e", "system('curl x')"],
                 ["node", "-e", "require('child_process').execSync('rm -rf x')"],
                 ["env", "GIT_SSH_COMMAND=rm -rf x", "git", "fetch"],
                 ["npx", "--yes", "curl", "x"],
                 ["awk", "BEGIN{system(\"rm -rf x\")}"]):
        assert decide(argv, POLICY).decision is RuleDecision.FORBIDDEN, argv


def test_environment_of_the_exec_is_judged() -> None:
    """``decide(env=...)``: the variables the program will get, judged like prefixes."""
    argv = ["git", "fetch"]
    assert decide(argv, POLICY, env={"HOME": "/h"}).decision is RuleDecision.ALLOW
    d = decide(argv, POLICY, env={"GIT_SSH_COMMAND": "rm -rf /", "HOME": "/h"})
    assert d.decision is RuleDecision.FORBIDDEN and "use trash" in d.reason
    d = decide(["ls"], POLICY, env={"LD_PRELOAD": "/tmp/x.so"})
    assert d.decision is RuleDecision.PROMPT and "heuristic:preload_library" in d.reason
    d = decide(["ls"], POLICY, env={"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libfaketime.so.1"})
    assert d.decision is RuleDecision.ALLOW, d.to_json()
    # variables that do not name programs are not judged
    d = decide(argv, POLICY, env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_COUNT": "0",
                                  "LD_LIBRARY_PATH": "/opt/lib", "PAGER": ""})
    assert d.decision is RuleDecision.ALLOW, d.to_json()
    # the cache keys on the relevant variables: the same argv decides differently
    assert decide(argv, POLICY).decision is RuleDecision.ALLOW
    assert decide(argv, POLICY, env={"GIT_PAGER": "curl x"}).decision is RuleDecision.FORBIDDEN


def test_hidden_commands_are_listed_and_never_skip_the_sandbox() -> None:
    allow = Policy()
    assert load_rules_text("allow.rules", 'prefix_rule(pattern=["python3"], decision="allow")\n'
                           'prefix_rule(pattern=["ls"], decision="allow")\n'
                           'prefix_rule(pattern=["git"], decision="allow")\n', allow) is None
    plain = decide(["python3", "-c", "print(1)"], allow)
    assert plain.decision is RuleDecision.ALLOW and plain.sandbox_bypass
    d = decide(["python3", "-c", "import os; os.system('ls')"], allow)
    assert d.decision is RuleDecision.ALLOW and not d.sandbox_bypass
    assert ["ls"] in d.commands
    d = decide(["bash", "-lc", "PAGER=ls git log"], allow)
    assert d.decision is RuleDecision.ALLOW and not d.sandbox_bypass and ["ls"] in d.commands


def test_dash_before_heredoc_is_kept() -> None:
    """tree-sitter-bash drops a ``-`` word right before ``<<`` without an error."""
    from corral.rules.shell import parse_script

    parsed = parse_script("make -f - <<'EOF'\nall:\nEOF")
    assert parsed.commands[0].argv.tokens == ("make", "-f", "-")
    parsed = parse_script("python3 - x <<EOF\nprint(1)\nEOF")
    assert parsed.commands[0].argv.tokens == ("python3", "-", "x")
