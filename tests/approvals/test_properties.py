"""Property tests: prefix matching, expiry parsing, and an interrupted wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.approvals import Grant, GrantStore, Kind, PendingQueue, Scope, parse_expiry
from corral.errors import CorralError

_tok = st.text(max_size=6)


@given(st.lists(_tok, min_size=1, max_size=4), st.lists(_tok, max_size=6))
def test_shell_match_is_exactly_prefix(pattern: list[str], argv: list[str]) -> None:
    g = Grant(id="g", scope=Scope.PERSISTENT, kind=Kind.SHELL, pattern=tuple(pattern),
              session_id=None, project=None, granted_by="user", granted_at=0)
    assert g.matches(argv) == (argv[: len(pattern)] == pattern)
    assert g.matches([*pattern, *argv])


@given(st.text(max_size=40))
def test_parse_expiry_never_crashes(text: str) -> None:
    try:
        ts = parse_expiry(text, 1_000_000.0)
    except CorralError as exc:
        assert "\n" not in exc.line()
        return
    assert ts > 1_000_000.0


@pytest.mark.slow
def test_interrupted_wait_marks_the_question_cancelled(home: Path) -> None:
    code = ("from corral.approvals import *\n"
            "s = GrantStore()\n"
            "print('ready', flush=True)\n"
            "PendingQueue(s).submit(Question(kind=Kind.SHELL, argv=('make','x'), reason='r'),"
            " timeout=60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, CORRAL_HOME=str(home)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    store = GrantStore()
    queue = PendingQueue(store)
    deadline = time.time() + 20
    while not queue.pending():
        assert time.time() < deadline
        time.sleep(0.02)
    (item,) = queue.pending()
    p.send_signal(signal.SIGINT)
    p.wait(timeout=20)
    assert queue.get(item.id).answered == "cancelled"  # type: ignore[union-attr]
    assert queue.pending() == []
    with pytest.raises(CorralError, match="is already cancelled"):
        queue.answer(item.id, "once")
    store.close()
