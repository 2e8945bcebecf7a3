"""The inline-code readers on hostile input: never a crash, always a clear result.

Random text, NULs, undecodable bytes (surrogate escapes), huge and deeply nested code in every
language; a result is an ``Inline`` (or a decision) whose problems are one-line reasons. The
time bound is only a hang guard; speed is measured in benchmarks/bench_rules.py.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corral.rules import Policy, decide
from corral.rules.argv import Argv
from corral.rules.hidden_env import NAMES, classify
from corral.rules.inline import interpreter_code
from corral.rules.inline_make import makefile_commands
from corral.rules.inline_python import python_commands
from corral.rules.inline_result import Inline
from corral.rules.inline_scan import scan
from corral.types import RuleDecision

HANG_GUARD_S = 2.0
LANGS = ("perl", "ruby", "js", "awk")
# characters that matter to the readers, so random code hits their branches often
_ALPHABET = st.sampled_from([
    *"()[]{}'\"`$@%#|&;:.,=+-/\\\n\t ", "system", "exec", "qx", "open", "popen", "%x",
    "child_process", "require", "os", "import ", "subprocess", "run", "shell=True", "getline", "print", "eval", "execSync", "spawn", "\0",
    "\udcff", "rm -rf x", "#{", "${", "s/a/b/e", "<<", "\u00e9"])
_CODE = st.lists(_ALPHABET, max_size=60).map("".join) | st.text(max_size=200)
_SETTINGS = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _check(out: Inline) -> None:
    assert isinstance(out, Inline)
    for why in out.problems:
        assert why and "\n" not in why
    for a in out.argvs:
        assert isinstance(a, Argv)


@_SETTINGS
@given(_CODE)
@example("import os\0; os.system('x')")
@example("os.system('\udcff')")
@example("f" + "()" * 20_000)
@example("-" * 50_000 + "1")
def test_python_reader_never_crashes(code: str) -> None:
    _check(python_commands(code))


@_SETTINGS
@given(st.sampled_from(LANGS), _CODE)
@example("perl", "system(" * 5000)
@example("ruby", '"' * 5001)
@example("js", "`${" * 3000)
@example("awk", "/" * 9999)
@example("perl", "qx" + "{" * 5000)
@example("ruby", "%x(" * 5000)
def test_scanners_never_crash(lang: str, code: str) -> None:
    _check(scan(code, lang))


@_SETTINGS
@given(_CODE)
@example("$(shell " * 5000)
@example("\t" + "$(" * 5000)
def test_makefile_reader_never_crashes(text: str) -> None:
    _check(makefile_commands(text))


_PROGRAMS = st.sampled_from(["python3", "perl", "ruby", "node", "awk", "gawk", "make"])
_WORDS = st.lists(st.sampled_from(["-c", "-e", "-E", "-f", "-", "-m", "-lne", "-Mx", "-pe",
                                   "--eval", "--eval=x", "-F:", "-v", "--", "--file=-",
                                   "x", "print(1)", "system('ls')"]) | st.text(max_size=20),
                  max_size=6)


@_SETTINGS
@given(_PROGRAMS, _WORDS, st.none() | st.text(max_size=100))
@example("awk", ["\u00b9"], None)  # found by this test: str.isdigit() is true for "¹"
def test_option_walks_never_crash(prog: str, words: list[str], stdin: str | None) -> None:
    out = interpreter_code(Argv((prog, *words)), prog, stdin)
    if out is not None:
        _check(out)


@_SETTINGS
@given(st.sampled_from([*sorted(NAMES), "GIT_CONFIG_KEY_3", "GIT_CONFIG_VALUE_3"]),
       st.none() | st.text(max_size=60))
def test_environment_classifier_never_crashes(name: str, value: str | None) -> None:
    found = classify(name, value)
    assert found.problem is None or "\n" not in found.problem
    if value is None:
        assert found.problem is not None  # a computed value is never waved through


@_SETTINGS
@given(st.sampled_from(["python3 -c", "perl -e", "ruby -e", "node -e", "awk"]), _CODE)
def test_decisions_on_hostile_inline_code(prefix: str, code: str) -> None:
    argv = [*prefix.split(), code]
    start = time.perf_counter()
    d = decide(argv, Policy())
    assert time.perf_counter() - start < HANG_GUARD_S
    assert d.decision in (RuleDecision.ALLOW, RuleDecision.PROMPT, RuleDecision.FORBIDDEN)
    d.to_json()  # serialisable, undecodable bytes included


HOSTILE = {  # each just under its size limit (the worst case), or over it
    "py_over_limit": ["python3", "-c", "x = 1\n" * 3000],
    "py_deep_calls": ["python3", "-c", "f" + "()" * 8_000],
    "py_deep_unary": ["python3", "-c", "-" * 16_000 + "1"],
    "py_many_systems": ["python3", "-c", "import os\n" + "os.system('ls')\n" * 1000],
    "perl_over_limit": ["perl", "-e", "print 1;" * 1100],
    "perl_many_calls": ["perl", "-e", "system('ls');" * 620],
    "ruby_nested": ["ruby", "-e", "system(" * 1150],
    "node_nested_templates": ["node", "-e", "require('child_process').execSync(" + "`${" * 2700],
    "awk_many_pipes": ["awk", "{ print | \"sort\" }" * 430],
    "make_many_recipes": ["make", "--eval", "all:\n" + "\techo $@\n" * 1600],
    "env_many": ["env", *[f"PAGER=p{i}" for i in range(2000)], "ls"],
    "nul_code": ["python3", "-c", "import os\0os.system('x')"],
    "undecodable_code": ["perl", "-e", b"system('\xff')".decode("utf-8", "surrogateescape")],
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_inline_input_gets_a_clear_decision(name: str) -> None:
    start = time.perf_counter()
    d = decide(HOSTILE[name], Policy())
    elapsed = time.perf_counter() - start
    assert elapsed < HANG_GUARD_S, f"{name} took {elapsed:.2f}s"
    d.to_json()
    if name not in ("env_many", "py_over_limit"):  # plain programs / data: allow is right
        assert d.decision is not RuleDecision.ALLOW, d.reason[:300]
        assert d.reason
