"""Telemetry with the real layered config: user config, admin requirements forcing tier/exporter."""

from __future__ import annotations

from pathlib import Path

from corral.config import load_config
from corral.telemetry import Journal, Telemetry, UserPrompt, journal_file

from .otlp_receiver import Receiver

SECRET = "sk-proj-4fGh7Jk2Lm9Np3Qr5St8Uv1Wx6Yz0AbCdEfGhIjKlMnOpQrStUvWx"


def test_real_config_and_requirements(home: Path, tmp_path: Path) -> None:
    system = tmp_path / "etc-corral"
    system.mkdir()
    project = tmp_path / "proj"
    project.mkdir()
    forced, mine = Receiver(), Receiver()
    try:
        (home / "config.toml").write_text(
            "[telemetry]\ncontent_tier = 2\ncheckpoint_every = 2\n"
            f'[telemetry.exporter]\nendpoint = "{mine.url}"\n')
        cfg = load_config(project, home=home, system=system)
        tel = Telemetry.open(cfg, "cfg-user")
        assert (tel.tier, tel.tier_source) == (2, "config")
        tel.emit_event(UserPrompt(prompt=f"use {SECRET}"))
        tel.close()
        assert mine.wait_for(1)[0].event_name == "agent.user_prompt"
        ev = next(Journal(journal_file(home)).events("cfg-user"))
        assert ev.attributes["prompt"] == "use [REDACTED:openai_key]"

        (system / "requirements.toml").write_text(
            "[telemetry]\ncontent_tier = 0\n"
            f'[telemetry.exporter]\nendpoint = "{forced.url}"\n')
        cfg = load_config(project, home=home, system=system)
        tel = Telemetry.open(cfg, "cfg-forced")
        assert (tel.tier, tel.tier_source) == (0, "requirements")
        tel.emit_event(UserPrompt(prompt=f"use {SECRET}"))
        tel.close()
        assert len(forced.wait_for(1)) == 1
        assert len(mine.records()) == 1  # the user's exporter got nothing this time
        ev = next(Journal(journal_file(home)).events("cfg-forced"))
        assert ev.attributes == {"corral.origin": "pipeline"}  # tier 0: no content at all
    finally:
        forced.close()
        mine.close()
