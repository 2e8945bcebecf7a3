"""The config commands as a user runs them: real subprocesses of `python -m corral`."""

from __future__ import annotations

import json
import subprocess
import sys


def test_explain_shows_value_origin_file_line_and_constraint(env):
    req = env.requirements('allowed_approval_policies = ["untrusted", "on-request"]\n')
    user = env.user_config('# comment\napproval_policy = "never"\n[sandbox]\nnetwork = "host"\n')
    r = env.cli("config", "explain")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert 'approval_policy = "on-request"' in out
    assert f"constrained: allowed: untrusted, on-request; set by {req}" in out
    assert 'sandbox.network = "host"' in out
    assert f"from: user ({user}:4)" in out
    # The fallback is announced on stderr, naming both files.
    assert "warning:" in r.stderr and str(req) in r.stderr and str(user) in r.stderr


def test_explain_single_key_and_json(env):
    env.user_config('[telemetry]\ncontent_tier = 2\n')
    r = env.cli("-c", "sandbox.network=proxy", "config", "explain", "sandbox", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["values"] == [{"key": "sandbox.network", "value": "proxy",
                               "origin": "-c sandbox.network=proxy", "constraint": None}]
    r = env.cli("config", "explain", "nope.key")
    assert r.returncode == 2 and "no effective config key `nope.key`" in r.stderr


def test_profile_flag_on_root(env):
    env.user_config('[profiles.ci]\napproval_policy = "never"\n')
    r = env.cli("--profile", "ci", "config", "explain", "approval_policy")
    assert r.returncode == 0 and 'approval_policy = "never"' in r.stdout
    assert "profile ci" in r.stdout


def test_explicit_forbidden_flag_exits_nonzero_with_one_line(env):
    req = env.requirements('allowed_approval_policies = ["untrusted"]\n')
    r = env.cli("-c", "approval_policy=never", "config", "explain")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"corral: requirements: -c approval_policy=never is not allowed: "
        f"`allowed_approval_policies` in {req} permits only untrusted"
    ]


def test_validate_reports_all_problems_with_positions(env, tmp_path):
    f = env.write(tmp_path / "c.toml", 'approval_policy = "nevr"\n[sandbox]\nwritable_root = []\n'
                  '[telemetry]\ncontent_tier = 7\n')
    r = env.cli("config", "validate", str(f))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith(f"{f}:1:1: invalid value 'nevr'") and 'did you mean "never"' in lines[0]
    assert lines[1] == f"{f}:3:1: unknown key `sandbox.writable_root` (did you mean `writable_roots`?)"
    assert lines[2] == f"{f}:5:1: 7 is out of range [0, 2]"
    good = env.write(tmp_path / "ok.toml", 'approval_policy = "never"\n')
    r = env.cli("config", "validate", str(good))
    assert r.returncode == 0 and r.stdout.strip() == f"{good}: ok"


def test_validate_requirements_and_project_kinds(env):
    req = env.requirements('[[rules.prefix_rules]]\npattern = ["rm"]\ndecision = "allow"\n')
    r = env.cli("config", "validate", str(req))
    assert r.returncode == 1 and "`allow` is not permitted here" in r.stderr
    proj = env.project_config('[login]\nmethod = "api"\n')
    r = env.cli("config", "validate", str(proj))
    assert r.returncode == 1
    assert f"{proj}:1:1: `login` may not be set by project config" in r.stderr
    r = env.cli("config", "validate", "/nonexistent/x.toml")
    assert r.returncode == 1 and "cannot read" in r.stderr


def test_trust_and_untrust_round_trip(env):
    env.user_config("# my settings\napproval_policy = \"on-request\"\n")
    env.project_config('approval_policy = "never"\n')
    sub = env.project / "deep" / "dir"
    sub.mkdir(parents=True)
    r = env.cli("trust", cwd=sub)
    assert r.returncode == 0 and f"{env.project}: trusted" in r.stdout
    text = (env.home / "config.toml").read_text()
    assert "# my settings" in text  # comments and formatting survive
    assert env.cli("config", "explain", "approval_policy").stdout.startswith(
        'approval_policy = "never"'
    )
    assert env.cli("untrust").returncode == 0
    r = env.cli("config", "explain", "approval_policy")
    assert r.stdout.startswith('approval_policy = "on-request"')
    assert "not trusted" in r.stderr


def test_doctor_reports_each_control(env):
    env.home.chmod(0o700)
    r = env.cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert "corral home" in checks and checks["corral home"]["ok"]
    for name in ("bubblewrap", "user namespaces", "seccomp", "landlock"):
        assert name in checks, name
    assert "keyring" in checks and "requirements" in checks
    # this machine can enforce everything required (scripts/setup installs bubblewrap)
    assert r.returncode == 0, r.stdout


def test_doctor_warns_about_a_corral_home_others_can_read(env):
    env.home.chmod(0o755)
    r = env.cli("doctor")
    line = next(x for x in r.stdout.splitlines() if x.startswith("[") and "corral home" in x)
    assert line.startswith("[warn]") and "lets others read the journal and keys" in line
    assert f"fix: chmod 700 {env.home}" in r.stdout
    assert r.returncode == 0  # a warning, not a control that cannot be enforced


def test_doctor_fails_with_the_fix_when_a_required_control_cannot_be_enforced(env):
    """Where user namespaces cannot be created (a locked-down container, here a namespace with
    user namespaces disabled) doctor fails: exit 1, the failing check and its fix, in plain text
    and in JSON."""
    import os

    env.home.chmod(0o700)
    base = dict(os.environ, CORRAL_HOME=str(env.home), CORRAL_SYSTEM_DIR=str(env.system))
    jail = ["bwrap", "--dev-bind", "/", "/", "--unshare-user", "--disable-userns", "--"]
    text = subprocess.run([*jail, sys.executable, "-m", "corral", "doctor"], env=base,
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 1, text.stdout + text.stderr
    line = next(x for x in text.stdout.splitlines() if "user namespaces:" in x)
    assert line.startswith("[NO ]") and "bwrap failed" in line
    assert "fix: sysctl -w kernel.unprivileged_userns_clone=1" in text.stdout
    assert "partially enforced: user namespaces" in text.stdout
    js = subprocess.run([*jail, sys.executable, "-m", "corral", "doctor", "--json"], env=base,
                        capture_output=True, text=True, timeout=60)
    assert js.returncode == 1
    checks = {c["name"]: c for c in json.loads(js.stdout)}
    assert checks["user namespaces"]["ok"] is False and checks["user namespaces"]["required"]


def test_help_lists_every_command_group(env):
    r = env.cli("--help")
    assert r.returncode == 0
    for cmd in ("run", "exec", "demo", "sandbox", "proxy", "policy", "review", "approve",
                "grants", "hook", "install-hooks", "log", "config", "trust", "untrust", "doctor"):
        assert f"  {cmd} " in r.stdout or f"  {cmd}\n" in r.stdout, cmd


def test_root_help_without_typer_is_the_page_click_renders(env):
    """`corral --help` is laid out by corral.cli.commands without loading typer or click; it must
    be byte for byte what the Typer app prints, at any terminal width, and exit alike."""
    import os

    corral = os.path.join(os.path.dirname(sys.executable), "corral")
    click_side = ("import sys; sys.argv = ['corral', *sys.argv[1:]]; "
                  "from corral.cli.app import main; main()")
    for columns in ("30", "52", "80", "200"):
        envc = dict(os.environ, COLUMNS=columns)
        for args in (["--help"], ["-h"], []):
            fast = subprocess.run([corral, *args], capture_output=True, text=True, env=envc)
            full = subprocess.run([sys.executable, "-c", click_side, *args], capture_output=True,
                                  text=True, env=envc)
            assert (fast.returncode, fast.stdout, fast.stderr) == (
                full.returncode, full.stdout, full.stderr), (columns, args)
            assert (fast.stdout or fast.stderr).startswith("Usage: corral [OPTIONS] COMMAND")
    mod = subprocess.run([sys.executable, "-m", "corral", "--help"], capture_output=True,
                         text=True)
    assert mod.stdout.startswith("Usage: python -m corral [OPTIONS] COMMAND")
    probe = ("import sys; sys.argv = ['corral', '--help']\n"
             "from corral.cli.entry import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('typer' in sys.modules, 'click' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert r.stderr.strip() == "False False" and r.stdout.startswith("Usage: corral"), r


def test_command_table_matches_what_the_modules_register():
    """`corral --help` is served from a static table; it must name exactly the real commands."""
    import importlib

    import typer
    import typer.main

    from corral.cli.app import COMMAND_MODULES, COMMANDS

    registered: dict[str, str] = {}
    for module in COMMAND_MODULES:
        sub = typer.Typer()
        importlib.import_module(module).register(sub)
        for name in typer.main.get_group(sub).commands:
            registered[name] = module
    assert registered == {name: module for name, (module, _) in COMMANDS.items()}
