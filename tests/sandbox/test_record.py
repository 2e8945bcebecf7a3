"""corral.record: the dataclass-free value classes keep dataclass semantics (eq, hash, repr,
frozen), and the cold ``corral sandbox`` path stays free of imports it does not need."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral.config.model import Constraint, EffectiveConfig, Origin, Requirements
from corral.sandbox.envpolicy import EnvPolicy
from corral.sandbox.profiles import Access, FsEntry


def test_frozen_records_compare_hash_and_refuse_assignment() -> None:
    a = FsEntry(Path("/w"), Access.WRITE)
    assert a == FsEntry(Path("/w"), Access.WRITE, literal=True)
    assert a != FsEntry(Path("/w"), Access.READ)
    assert len({a, FsEntry(Path("/w"), Access.WRITE)}) == 1
    assert repr(a) == ("FsEntry(path=PosixPath('/w'), access=<Access.WRITE: 'write'>, "
                       "literal=True, enforced=False, protected=False)")
    with pytest.raises(AttributeError):
        a.path = Path("/x")  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.access
    assert Origin("user", "/c.toml", 3) == Origin("user", file="/c.toml", line=3)
    assert Origin("user") != Constraint("user", "x")  # different classes never compare equal
    assert hash(Constraint("k", "s", ("a",))) == hash(Constraint("k", "s", ("a",)))


def test_mutable_records_compare_but_do_not_hash_and_get_fresh_defaults() -> None:
    r1, r2 = Requirements(), Requirements()
    assert r1 == r2
    r1.data["x"] = 1
    assert r2.data == {} and r1 != r2
    with pytest.raises(TypeError):
        hash(r1)
    cfg = EffectiveConfig({}, {}, r2)
    assert cfg.constraints == {} and cfg.warnings == [] and cfg.cwd == Path.cwd()
    cfg.warnings.append("w")
    assert EffectiveConfig({}, {}, r2).warnings == []


def test_envpolicy_still_validates() -> None:
    from corral.errors import CorralError

    with pytest.raises(CorralError, match=r"inherit must be all\|core\|none, got .some."):
        EnvPolicy(inherit="some")
    assert EnvPolicy().set == {}


def test_replace_copies_with_changes_and_refuses_unknown_fields() -> None:
    """``Frozen.replace`` serves every record class (``dataclasses.replace``)."""
    from corral.sandbox import NetworkPlan

    a = FsEntry(Path("/w"), Access.WRITE)
    b = a.replace(access=Access.READ)
    assert (type(b), b.path, b.access, a.access) == (FsEntry, Path("/w"), Access.READ,
                                                     Access.WRITE)
    net = NetworkPlan(bridge_ports=(3128,))
    more = net.replace(extra_bridges=((8080, Path("/s.sock")),))
    assert more.extra_bridges == ((8080, Path("/s.sock")),) and more.bridge_ports == (3128,)
    with pytest.raises(TypeError, match="NetworkPlan has no field 'bridges'"):
        net.replace(bridges=())


def test_cold_sandbox_path_skips_unneeded_imports(tmp_path: Path) -> None:
    """No config files: the TOML parser, difflib and shutil are never imported; nor gitguard
    (and dataclasses with it) when the command made no repository."""
    # the fast path ends with os._exit after the atexit handlers: the probe is one of them
    code = (
        "import atexit, sys\n"
        "sys.argv = ['corral', 'sandbox', '--', 'true']\n"
        "atexit.register(lambda: print('imported:', ' '.join(m for m in ('tomllib', 'difflib', "
        "'shutil', 'corral.sandbox.feedback', 'corral.sandbox.gitguard', 'dataclasses') "
        "if m in sys.modules)))\n"
        "from corral.cli.entry import main\n"
        "main()\n"
    )
    home = tmp_path / "home"
    (home / ".corral").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "CORRAL_HOME": str(home / ".corral")}
    # first run fills the bwrap probe and seccomp caches, the second is the steady state
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "imported:"


def test_plan_replace_returns_a_changed_copy(tmp_path: Path) -> None:
    from corral.sandbox import build_plan

    plan = build_plan(":workspace", tmp_path)
    extra = FsEntry(tmp_path / "more", Access.WRITE)
    wider = plan.replace(entries=(*plan.entries, extra))
    assert wider.entries[-1] == extra and extra not in plan.entries
    assert wider.cwd == plan.cwd and wider.network == plan.network
    with pytest.raises(TypeError):
        plan.replace(no_such_field=1)
