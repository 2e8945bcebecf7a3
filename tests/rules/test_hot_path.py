"""The cold-decision shortcuts give the same answers as the general paths they skip.

``Policy.candidates`` (rules indexed by first argument), the plain-word split that bypasses the
script cache and the ``sh -c`` reading are checked against a full rule scan, ``parse_script`` and
``shell_script`` on random inputs.
"""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from corral.rules import Policy, analysis, decide
from corral.rules.argv import Argv
from corral.rules.model import PrefixRule
from corral.rules.runtime import rule_matches
from corral.rules.shell import fast_split, parse_script
from corral.rules.wrappers import shell_script
from corral.types import RuleDecision

WORDS = ["a", "b", "c", "-f", "push", "x"]
word = st.sampled_from(WORDS)
rule = st.tuples(
    st.sampled_from(["p", "q"]),
    st.lists(st.lists(word, min_size=1, max_size=3, unique=True), max_size=3),
    st.sampled_from(list(RuleDecision)),
)


def _policy(rules: list[tuple[str, list[list[str]], RuleDecision]]) -> Policy:
    p = Policy()
    for i, (prog, alts, dec) in enumerate(rules):
        p.add_rule(PrefixRule(prog, tuple(frozenset(a) for a in alts),
                              tuple(tuple(a) for a in alts), dec, f"r{i}", f"t.rules:{i}"))
    return p


def _full_scan(p: Policy, tokens: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for r in p.rules_by_program.get(tokens[0], []):
        prefix = r.matches(tokens)
        if prefix is not None:
            out.append((r.source, prefix))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(rule, max_size=12), st.lists(rule, max_size=3),
       st.lists(st.tuples(st.sampled_from(["p", "q", "r"]), st.lists(word, max_size=4)),
                min_size=1, max_size=6))
def test_indexed_matching_equals_a_full_scan_even_after_rules_are_added(
        first: list[tuple[str, list[list[str]], RuleDecision]],
        later: list[tuple[str, list[list[str]], RuleDecision]],
        cmds: list[tuple[str, list[str]]]) -> None:
    p = _policy(first)
    for phase in (0, 1):
        for prog, args in cmds:
            tokens = (prog, *args)
            got = [(m.source, m.matched_prefix) for m in rule_matches(p, Argv(tokens))]
            assert got == _full_scan(p, tokens)
        if phase == 0:  # the index must notice new rules (add_rule and direct list edits)
            for prog, alts, dec in later:
                p.add_rule(PrefixRule(prog, tuple(frozenset(a) for a in alts),
                                      tuple(tuple(a) for a in alts), dec, "late", "late:1"))
            p.rules_by_program.setdefault("q", []).append(
                PrefixRule("q", (frozenset({"x"}),), (("x",),), RuleDecision.FORBIDDEN, None,
                           "direct:1"))


def test_a_rule_added_after_a_decision_changes_the_next_decision() -> None:
    p = _policy([("p", [["a"]], RuleDecision.ALLOW)])
    assert decide(["bash", "-lc", "p b"], p).decision is not RuleDecision.FORBIDDEN
    p.add_rule(PrefixRule("p", (frozenset({"b"}),), (("b",),), RuleDecision.FORBIDDEN, "no",
                          "t.rules:9"))
    d = decide(["bash", "-lc", "p b"], p)
    assert d.decision is RuleDecision.FORBIDDEN and d.commands == [["p", "b"]]


# Mostly scripts the shortcut takes (plain words joined by operators), with some quoted words
# and assignments so that it also has to decline; assume() makes hypothesis fail the test if the
# shortcut declines so often that it is hardly exercised (its filter_too_much health check).
plain_word = st.text(alphabet="abx/-._", min_size=1, max_size=6)
odd_word = st.sampled_from(["'a b'", '"x|y"', "'&&'", "a'b'", '"-f"', "k=v", "a=b"])
word = st.one_of(plain_word, plain_word, plain_word, plain_word, odd_word)
joiner = st.sampled_from([" ", " ", " ", " | ", " && ", " || ", "; ", ";", "|"])


@st.composite
def plain(draw: st.DrawFn) -> str:
    words = draw(st.lists(word, min_size=1, max_size=6))
    out = [draw(plain_word)]
    for w in words:
        out += [draw(joiner), w]
    return "".join(out)


@settings(max_examples=400, deadline=None)
@given(plain())
def test_plain_word_scripts_skip_nothing_the_cached_parse_would_report(script: str) -> None:
    fast = fast_split(script)
    assume(fast is not None)
    assert fast is not None
    parsed = parse_script(script)
    assert not parsed.problems and not parsed.writes
    assert [(c.argv.tokens, c.argv.unknown, c.argv.open_from, c.stdin_script, c.assigns)
            for c in parsed.commands] == [(w, frozenset(), None, None, False) for w in fast]
    assert [a.tokens for a in analysis.analyze(["bash", "-c", "--", script]).commands] == fast


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["sh", "bash", "/bin/bash"]), st.sampled_from(["-c", "-lc", "-l", "-x"]),
       st.text(alphabet="ab-+ ", max_size=6))
def test_sh_c_shortcut_reads_like_the_option_walk(shell: str, flag: str, script: str) -> None:
    a = Argv((shell, flag, script))
    got = analysis._shell_c(a)
    if got is not None:
        assert got == shell_script(a)
