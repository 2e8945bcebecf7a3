"""The typer- and json-free ``corral policy check`` path: its JSON writer and its cache reader."""

from __future__ import annotations

import json
import marshal
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from corral.rules import check_fast

_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_values)
def test_compact_json_writes_what_json_dumps_writes(value: Any) -> None:
    assert check_fast.compact_json(value) == json.dumps(value, ensure_ascii=False,
                                                        separators=(",", ":"))


def test_compact_json_refuses_what_a_result_never_holds() -> None:
    for odd in (1, 1.5, ("a",), b"x"):
        try:
            check_fast.compact_json({"k": odd})
        except TypeError as e:
            assert "unsupported" in str(e)
        else:
            raise AssertionError(f"{odd!r} was written")


def test_a_damaged_or_foreign_cache_entry_is_ignored(tmp_path: Path) -> None:
    """Anything but a dict for the same identity falls through to the full implementation."""
    rules = tmp_path / "r.rules"
    rules.write_text('prefix_rule(pattern=["git"], decision="prompt")\n')
    ident = check_fast.identity([str(rules)])
    assert ident is not None
    path = Path(check_fast.cache_path(str(tmp_path), ident))
    for content in (b"", b"\x00garbage", marshal.dumps([1, 2]), marshal.dumps({"identity": [0]}),
                    marshal.dumps({"identity": ident, "rules": 5})[:-3]):
        path.write_bytes(content)
        assert check_fast.load_cache(str(path), ident) is None
    good = {"identity": ident, "rules": [], "host": {}}
    path.write_bytes(check_fast.dump_cache(good))
    assert check_fast.load_cache(str(path), ident) == good


def test_the_installed_command_checks_without_re_json_or_typing(tmp_path: Path) -> None:
    """`corral policy check` with its cache warm runs on builtins: no `re`, `json` or `typing`
    (each costs more than codex's whole check here). Checked on what bin/corral imports."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    rules = tmp_path / "r.rules"
    rules.write_text('prefix_rule(pattern=["git", "push"], decision="forbidden")\n')
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: print(sorted(m for m in ('re', 'json', 'typing', 'enum')"
             " if m in sys.modules)))\n"
             f"sys.argv = ['corral', 'policy', 'check', '-r', {str(rules)!r}, '--', 'git', "
             "'push']\n"
             f"exec(compile(open({str(root / 'bin' / 'corral')!r}).read(), 'corral', 'exec'))\n")
    env = {"CORRAL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env=env, timeout=120) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith('{"matchedRules":[{"prefixRuleMatch":'), r.stdout
    assert runs[1].stdout.splitlines()[-1] == "[]", runs[1].stdout  # the cached run
