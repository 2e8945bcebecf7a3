"""Bad config input: one clear line naming file and position, non-zero exit, nothing applied."""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.config.toml_io import parse_toml_text
from corral.errors import ConfigError


def test_malformed_toml_names_file_line_col(env):
    f = env.user_config('approval_policy = "never"\n[sandbox\nnetwork = "host"\n')
    with pytest.raises(ConfigError) as ei:
        env.load()
    assert ei.value.message.startswith(f"{f}:2:")
    assert "malformed TOML" in ei.value.message


def test_wrong_type_names_position(env):
    f = env.user_config('approval_policy = "never"\n\n[telemetry]\ncontent_tier = "two"\n')
    with pytest.raises(ConfigError) as ei:
        env.load()
    assert ei.value.message == f"{f}:4:1: expected an integer, got string"


def test_unknown_key_with_did_you_mean(env):
    f = env.user_config('[sandbox]\nnetwrk = "none"\n')
    with pytest.raises(ConfigError) as ei:
        env.load()
    assert ei.value.message == f"{f}:2:1: unknown key `sandbox.netwrk` (did you mean `network`?)"


def test_bad_enum_value_suggests(env):
    f = env.user_config('approval_policy = "on_request"\n')
    with pytest.raises(ConfigError) as ei:
        env.load()
    assert str(f) + ":1:1:" in ei.value.message
    assert 'did you mean "on-request"' in ei.value.message


def test_symlink_loop(env):
    (env.home / "config.toml").symlink_to(env.home / "config.toml")
    with pytest.raises(ConfigError, match="symlink loop"):
        env.load()


def test_oversize_file(env):
    env.user_config("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="limited to 1 MiB"):
        env.load()


def test_directory_instead_of_file(env):
    (env.home / "config.toml").mkdir()
    with pytest.raises(ConfigError, match="not a regular file"):
        env.load()


def test_invalid_utf8_position(env):
    (env.home / "config.toml").write_bytes(b'approval_policy = "never"\nx = "\xff"\n')
    with pytest.raises(ConfigError, match=r"config.toml:2:6: invalid UTF-8"):
        env.load()


def test_trusted_project_bad_file_fails_whole_load(env):
    env.trust()
    f = env.project_config('approval_policy = 3\n')
    with pytest.raises(ConfigError, match=rf"{f}:1:1: "):
        env.load()


def test_unreadable_file_as_unprivileged_user():
    """Root reads everything, so run the CLI as `nobody` to see a real permission error."""
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*cmd, "true"], capture_output=True)
    assert probe.returncode == 0, "setpriv (util-linux) must be able to drop to nobody"
    base = Path(tempfile.mkdtemp(prefix="corral-unreadable-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        home, system, proj = base / "home", base / "etc", base / "proj"
        for d in (home, system, proj):
            d.mkdir(mode=0o755)
        f = home / "config.toml"
        f.write_text('approval_policy = "never"\n')
        os.chmod(f, 0o000)
        r = subprocess.run(
            [*cmd, sys.executable, "-m", "corral", "config", "explain"],
            env=dict(os.environ, CORRAL_HOME=str(home), CORRAL_SYSTEM_DIR=str(system)),
            cwd=proj, capture_output=True, text=True, timeout=60,
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip() == f"corral: config: {f}: cannot read: Permission denied"
    finally:
        shutil.rmtree(base)


def test_cli_error_is_one_line_nonzero(env):
    env.user_config('[sandbox]\nnetwork = 5\n')
    r = env.cli("config", "explain")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("corral: config: ") and "config.toml:2:1:" in lines[0]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_parser_never_crashes(text):
    """Any text either parses or gives a ConfigError naming a position; nothing else escapes."""
    try:
        tf = parse_toml_text(text, "fuzz.toml")
    except ConfigError as exc:
        assert exc.message.startswith("fuzz.toml")
    else:
        assert isinstance(tf.data, dict)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes_never_crash(raw):
    try:
        parse_toml_text(raw, "fuzz.toml")
    except ConfigError as exc:
        assert exc.message.startswith("fuzz.toml")


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.one_of(st.integers(), st.text(max_size=10), st.booleans(),
                  st.lists(st.text(max_size=5), max_size=3)),
        lambda children: st.dictionaries(
            st.text(min_size=1, max_size=12), children, max_size=4
        ),
        max_leaves=12,
    ).filter(lambda v: isinstance(v, dict))
)
def test_fuzz_positions_for_valid_documents(doc):
    """Every top-level key of a valid document written by tomlkit gets a position."""
    import tomlkit

    text = tomlkit.dumps(doc)
    tf = parse_toml_text(text, "doc.toml")
    assert tf.data == doc
    for k, v in doc.items():
        if not (isinstance(v, dict) and not v):
            assert (k,) in tf.positions or any(p[0] == k for p in tf.positions), (k, text)
