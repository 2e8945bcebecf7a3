"""Every ```toml example in the docs is valid TOML that corral's own schema accepts.

A user copies these blocks into their config; one that does not parse, or names a key corral
does not know, fails them at the first step.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest

from corral.config.schema import CONFIG_SCHEMA, REQUIREMENTS_SCHEMA, validate

ROOT = Path(__file__).resolve().parents[2]
# the keys of a rule in Gemini CLI 0.61's policy files (PolicyRuleSchema in its bundle;
# tests/agents_managed/test_gemini_real.py loads corral's with the real CLI)
GEMINI_RULE_KEYS = {"toolName", "subagent", "mcpName", "argsPattern", "commandPrefix",
                    "commandRegex", "decision", "priority", "modes", "interactive",
                    "toolAnnotations", "allowRedirection", "allow_redirection", "denyMessage",
                    "deny_message"}
FENCE = re.compile(r"^([ \t]*)```toml\n(.*?)^\1```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    out = []
    for path in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        text = path.read_text()
        for m in FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append((f"{path.relative_to(ROOT)}:{line}", textwrap.dedent(m.group(2))))
    return out


BLOCKS = _blocks()


def test_the_docs_have_toml_examples() -> None:
    assert len(BLOCKS) >= 8  # the scan finds them (indented ones in lists included)


@pytest.mark.parametrize(("where", "body"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_toml_example_parses_and_fits_the_schema(where: str, body: str) -> None:
    try:
        data = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        pytest.fail(f"{where}: not valid TOML: {exc}")
    if set(data) == {"rule"}:  # a Gemini CLI policy file (what corral agents apply writes)
        for rule in data["rule"]:
            assert set(rule) <= GEMINI_RULE_KEYS, f"{where}: {sorted(set(rule) - GEMINI_RULE_KEYS)}"
            assert rule["decision"] in ("allow", "deny", "ask_user"), where
            assert isinstance(rule["priority"], int) and 0 <= rule["priority"] <= 999, where
        return
    as_config = validate(data, CONFIG_SCHEMA)
    as_requirements = validate(data, REQUIREMENTS_SCHEMA)
    if as_config and as_requirements and ("sinks" in data or "retention" in data):
        # a `corral server` config.toml
        from corral.server.config import check_document

        assert not check_document(data), f"{where}: {check_document(data)}"
        return
    if as_config and as_requirements and "oidc" in data:  # a corral server fleet.toml
        from corral.server.enroll import check_document as check_fleet

        assert not check_fleet(data), f"{where}: {check_fleet(data)}"
        return
    assert not as_config or not as_requirements, (
        f"{where}: fits neither config.toml ({as_config}) nor requirements.toml "
        f"({as_requirements})")
