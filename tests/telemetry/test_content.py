"""Content tiers are enforced centrally; requirements can force a tier."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from corral.errors import CorralError
from corral.telemetry import Journal, Telemetry, ToolResult, UserPrompt, journal_file
from corral.telemetry.content import apply_tier, resolve_tier

from .conftest import make_cfg

PROMPT = "deploy with token ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R please"


def test_tier_0_records_no_content_at_all() -> None:
    out = apply_tier("agent.user_prompt", {}, {"prompt": PROMPT}, 0)
    assert out == {}


def test_tier_1_records_length_and_hash_only() -> None:
    out = apply_tier("agent.user_prompt", {}, {"prompt": PROMPT}, 1)
    assert out == {"prompt.length": len(PROMPT.encode()),
                   "prompt.sha256": hashlib.sha256(PROMPT.encode()).hexdigest()}


def test_tier_2_records_redacted_content() -> None:
    out = apply_tier("agent.user_prompt", {}, {"prompt": PROMPT}, 2)
    assert out["prompt"] == "deploy with token [REDACTED:github_token] please"
    assert out["prompt.sha256"] == hashlib.sha256(PROMPT.encode()).hexdigest()


@pytest.mark.parametrize("tier", [0, 1, 2])
def test_command_lines_are_redacted_at_every_tier(tier: int) -> None:
    ev = ToolResult(tool_name="shell", tool_kind="shell",
                    command_line="curl -H 'Authorization: Bearer abcdefghijklmnop1234' x")
    out = apply_tier(ev.NAME, ev.attributes(), None, tier)
    assert "abcdefghijklmnop1234" not in str(out["process.command_line"])


def test_resolve_tier_precedence(home: Path) -> None:
    assert resolve_tier(None) == (1, "default")
    assert resolve_tier(make_cfg(home, {"telemetry": {"content_tier": 2}})) == (2, "config")
    forced = make_cfg(home, {"telemetry": {"content_tier": 2}},
                      {"telemetry": {"content_tier": 0}})
    assert resolve_tier(forced) == (0, "requirements")
    with pytest.raises(CorralError, match="must be 0, 1 or 2"):
        resolve_tier(make_cfg(home, {"telemetry": {"content_tier": 7}}))


def test_requirements_force_the_tier_end_to_end(home: Path) -> None:
    cfg = make_cfg(home, {"telemetry": {"content_tier": 2}}, {"telemetry": {"content_tier": 0}})
    tel = Telemetry.open(cfg, "s-forced", tier=2)  # even an explicit argument loses
    assert (tel.tier, tel.tier_source) == (0, "requirements")
    tel.emit_event(UserPrompt(prompt=PROMPT))
    tel.close()
    (ev,) = list(Journal(journal_file(home)).events())
    assert ev.tier == 0 and ev.attributes == {"corral.origin": "pipeline"}
    raw = journal_file(home).read_bytes()
    assert b"ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R" not in raw


def test_secrets_never_reach_the_journal_file_at_tier_2(home: Path) -> None:
    tel = Telemetry.open(make_cfg(home, {"telemetry": {"content_tier": 2}}), "s-t2")
    tel.emit_event(UserPrompt(prompt=PROMPT))
    tel.emit_event(ToolResult(tool_name="shell", tool_kind="shell", output=f"echo {PROMPT}"))
    tel.close()
    data = b"".join(p.read_bytes() for p in journal_file(home).parent.iterdir())
    assert b"ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R" not in data
    assert b"deploy with token [REDACTED:github_token]" in data


def test_huge_tier_2_content_is_truncated_without_leaking_a_secret_prefix() -> None:
    from corral.telemetry.content import MAX_CONTENT_CHARS

    secret = "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R"
    text = "x" * (MAX_CONTENT_CHARS - 10) + " " + secret + " tail" * 100_000
    out = apply_tier("agent.tool.result", {}, {"output": text}, 2)
    kept = str(out["gen_ai.tool.call.result"])
    assert len(kept) == MAX_CONTENT_CHARS and out["gen_ai.tool.call.result.truncated"] is True
    assert "ghp_1a2B" not in kept and kept.endswith("[REDACTED")
    assert out["gen_ai.tool.call.result.length"] == len(text.encode())


def test_writer_thread_failure_of_any_kind_fails_closed(home: Path) -> None:
    tel = Telemetry.open(None, "s-boom")

    def boom(events: object) -> list[int]:
        raise TypeError("unexpected")

    tel._writer.append = boom  # type: ignore[method-assign,assignment]
    with pytest.raises(CorralError, match="cannot be written"):
        tel.emit_event(UserPrompt(prompt="x"), wait=True)
    with pytest.raises(CorralError):
        tel.close()


def test_bad_tier_and_checkpoint_interval_are_refused(home: Path) -> None:
    with pytest.raises(CorralError, match="content tier must be 0, 1 or 2"):
        Telemetry.open(None, "s", tier=3)
    with pytest.raises(CorralError, match="checkpoint_every must be a positive integer"):
        Telemetry.open(make_cfg(home, {"telemetry": {"checkpoint_every": "often"}}), "s")
