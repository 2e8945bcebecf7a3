"""`corral policy check` vs the real `codex execpolicy check` on generated rule sets and commands.

Seeded random generation (reproducible): alternatives in first and later positions, decisions
omitted or explicit, justifications, host_executable declarations (including ``paths=[]``),
absolute/relative/odd program paths, match/not_match examples (some deliberately wrong so both
sides must refuse the file), several files per check, --pretty and --resolve-host-executables.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.rules import check_fast
from corral.rules.check import run_check

PAIRS = int(os.environ.get("CORRAL_DIFF_PAIRS", "5000"))
SEED = 20261122

PROGRAMS = ["git", "rm", "ls", "npm", "cargo", "python3", "curl", "é"]
ARGS = ["status", "commit", "push", "-rf", "-f", "--force", "origin", "main", "-m", "x",
        "a b", "--", "-C", "\"q\"", "\\n", "日本", "", "*", "$HOME", "tab\there"]
PATH_FORMS = ["/usr/bin/{p}", "/opt/bin/{p}", "/usr/../usr/bin/{p}", "//usr/bin/{p}", "./{p}",
              "bin/{p}", "/usr/bin/{p}/", "{p}", "/x/{p}/..", "~/{p}"]


def q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def qlist(items: list[str]) -> str:
    return "[" + ", ".join(q(i) for i in items) + "]"


@dataclass
class Case:
    files: list[str]  # file texts
    argv: list[str]
    resolve: bool
    pretty: bool


def _token(rng: random.Random, pool: list[str]) -> str | list[str]:
    if rng.random() < 0.25:
        return rng.sample(pool, rng.randint(1, 3))
    return rng.choice(pool)


def _pattern(rng: random.Random) -> list[str | list[str]]:
    first: str | list[str] = (rng.sample(PROGRAMS, rng.randint(1, 3)) if rng.random() < 0.3
                              else rng.choice(PROGRAMS))
    if rng.random() < 0.05:
        first = "/usr/bin/" + rng.choice(PROGRAMS)  # a rule for an absolute program
    return [first] + [_token(rng, ARGS) for _ in range(rng.randint(0, 3))]


def _render_token(tok: str | list[str]) -> str:
    return q(tok) if isinstance(tok, str) else qlist(tok)


def _instance(rng: random.Random, pattern: list[str | list[str]]) -> list[str]:
    return [t if isinstance(t, str) else rng.choice(t) for t in pattern]


def _rule_text(rng: random.Random, pattern: list[str | list[str]]) -> str:
    parts = ["pattern=[" + ", ".join(_render_token(t) for t in pattern) + "]"]
    r = rng.random()
    if r < 0.6:
        parts.append("decision=" + q(rng.choice(["allow", "prompt", "forbidden"])))
    elif r < 0.605:
        parts.append("decision=" + q(rng.choice(["deny", "Allow", ""])))  # invalid on both sides
    if rng.random() < 0.4:
        parts.append("justification=" + q(rng.choice(["use the wrapper", "é ok", "a\"b", "x", "  " if rng.random() < 0.05 else "y"])))
    if rng.random() < 0.1:
        # string examples go through shlex on both sides: quotes, escapes, comments
        ex_words = [w if isinstance(w, str) else w[0] for w in pattern]
        text = " ".join(rng.choice([f"'{w}'", f'"{w}"', w.replace(" ", "\\ ")])
                        if all(c not in w for c in "'\"\\$`") else w for w in ex_words)
        text += rng.choice(["", " # trailing", " 'a b'", ' "c\\"d"', " e\\ f", " #x", " a#b",
                            ' "\\$x"', ' "a\\qb"', " a\\\nb", " 'unterminated", " x\\"])
        if rng.random() < 0.5:
            parts.append("match=[" + q(text) + "]")
        else:  # Rust shlex reads "#..." as a comment: an empty example is an error there
            parts.append("not_match=[" + q(rng.choice(["#", "# ", "zz #", "zz"]) + text) + "]")
    elif rng.random() < 0.2:
        ex = _instance(rng, pattern)
        if rng.random() < 0.95:
            parts.append("match=[" + qlist([*ex, "extra"]) + "]")
        else:
            parts.append("match=[" + q("nomatch " + rng.choice(ARGS)) + "]")
    if rng.random() < 0.05:
        parts.append("not_match=[" + qlist([rng.choice(PROGRAMS), "zzz"]) + "]")
    if rng.random() < 0.5:
        return "prefix_rule(" + ", ".join(parts) + ")"
    return "prefix_rule(\n    " + ",\n    ".join(parts) + ",\n)"


def _file_text(rng: random.Random, patterns: list[list[str | list[str]]]) -> str:
    lines = ["# generated"]
    if rng.random() < 0.1:  # ordinary Starlark around the builtins
        lines.append('J = "from a variable"\nPROGS = ["npm", "cargo"]\n'
                     'def deny(p):\n    prefix_rule(pattern = [p, "publish"], '
                     'decision = "forbidden", justification = f"{J} {p}")\n'
                     '[deny(p) for p in PROGS]')
        patterns.append([["npm", "cargo"], "publish"])
    for _ in range(rng.randint(1, 5)):
        pat = _pattern(rng)
        patterns.append(pat)
        lines.append(_rule_text(rng, pat))
    if rng.random() < 0.35:
        name = rng.choice(PROGRAMS)
        paths = rng.sample(["/usr/bin/" + name, "/opt/bin/" + name, "/usr/../opt/bin/" + name],
                           rng.randint(0, 2))
        if rng.random() < 0.03:
            paths.append("relative/" + name)  # invalid on both sides
        lines.insert(rng.randint(1, len(lines)), f"host_executable(name={q(name)}, paths={qlist(paths)})")
    if rng.random() < 0.1:
        lines.append('network_rule(host="Example.COM:443", protocol="https", decision="deny")')
    if rng.random() < 0.01:
        lines.append("x = 1 +")  # syntax error
    return "\n".join(lines) + "\n"


def generate(n: int, seed: int = SEED) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        patterns: list[list[str | list[str]]] = []
        files = [_file_text(rng, patterns) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.8 and patterns:
            argv = _instance(rng, rng.choice(patterns))
            argv = argv[: rng.randint(1, len(argv))] if rng.random() < 0.2 else argv
            argv += [rng.choice(ARGS) for _ in range(rng.randint(0, 2))]
        else:
            argv = [rng.choice(PROGRAMS)] + [rng.choice(ARGS) for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.4:
            argv[0] = rng.choice(PATH_FORMS).format(p=argv[0])
        cases.append(Case(files, argv, rng.random() < 0.5, rng.random() < 0.15))
    return cases


def _run_codex(codex: Path, paths: list[str], case: Case, cwd: Path) -> tuple[int, str, str]:
    cmd = [str(codex), "execpolicy", "check"]
    for p in paths:
        cmd += ["-r", p]
    if case.resolve:
        cmd.append("--resolve-host-executables")
    if case.pretty:
        cmd.append("--pretty")
    cmd += ["--", *case.argv]
    env = dict(os.environ, RUST_BACKTRACE="0", HOME=str(cwd))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=60)
    # codex warns about helper binaries when its home is under /tmp: not part of the contract
    stderr = "".join(ln for ln in proc.stderr.splitlines(True) if not ln.startswith("WARNING: "))
    return proc.returncode, proc.stdout, stderr


@pytest.mark.slow
@pytest.mark.e2e
def test_differential_against_codex(codex_bin: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cases = generate(PAIRS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    file_sets: list[list[str]] = []
    for i, case in enumerate(cases):
        paths = []
        for j, text in enumerate(case.files):
            p = tmp_path / f"c{i}_{j}.rules"
            p.write_text(text, encoding="utf-8")
            paths.append(p.name)
        file_sets.append(paths)

    with ThreadPoolExecutor(max_workers=4) as pool:
        theirs = list(pool.map(lambda ic: _run_codex(codex_bin, file_sets[ic[0]], ic[1], tmp_path),
                               enumerate(cases)))

    mismatches = []
    cache = tmp_path / "cache"
    kinds = {"match": 0, "nomatch": 0, "error": 0, "resolved": 0}
    for case, paths, (tcode, tout, terr) in zip(cases, file_sets, theirs, strict=True):
        code, out, err = run_check(paths, case.argv, case.resolve, case.pretty)
        if code == 0:
            # the cold-start path: compiled policy written to and read back from the disk cache
            assert run_check(paths, case.argv, case.resolve, case.pretty, cache_dir=cache) == (
                code, out, err)
            ident = check_fast.identity(paths)
            assert ident is not None
            data = check_fast.load_cache(check_fast.cache_path(str(cache), ident), ident)
            assert data is not None
            fast = check_fast.check(data, case.argv, case.resolve)
            fast_out = json.dumps(fast, ensure_ascii=False, indent=2) if case.pretty else \
                check_fast.compact_json(fast)
            if fast_out + "\n" != tout:
                mismatches.append((case, (tcode, tout, ""), (0, fast_out, "check_fast")))
        if tcode == 0:
            kinds["match" if '"decision"' in tout else "nomatch"] += 1
            kinds["resolved"] += "resolvedProgram" in tout
        else:
            kinds["error"] += 1
        same = code == tcode and out == tout
        if code != 0 and same:
            same = err.splitlines()[:1] == terr.splitlines()[:1]
        if not same:
            mismatches.append((case, (tcode, tout, terr[:400]), (code, out, err)))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[0]!r}"
    # the generator must exercise every outcome, or the comparison proves little
    n = len(cases)
    assert kinds["match"] > n * 0.3 and kinds["nomatch"] > n * 0.1, kinds
    assert kinds["error"] > n * 0.03 and kinds["resolved"] > n * 0.03, kinds
