"""The terminal prompt, driven through a real pseudo-terminal (os.openpty + a child process)."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time

import pytest

from corral.approvals import Choice, Kind, Question, offered_choices

CHILD = r"""
import json, sys
from corral.approvals import Kind, Question, ask_terminal
spec = json.loads(sys.argv[1])
q = Question(kind=Kind(spec["kind"]), argv=tuple(spec["argv"]), reason=spec["reason"],
             cwd="/work/p", session_id=spec.get("session_id"), project=spec.get("project"),
             reviewer_view=spec.get("reviewer"), pattern=tuple(spec.get("pattern") or spec["argv"]))
if spec.get("reply"):
    from corral.approvals.prompt import ask_terminal_reply
    r = ask_terminal_reply(q, timeout=spec.get("timeout"))
    print(json.dumps(None if r is None else [r.choice.value, r.expires_at]), flush=True)
else:
    choice = ask_terminal(q, timeout=spec.get("timeout"))
    print(json.dumps(None if choice is None else choice.value), flush=True)
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Pty:
    def __init__(self, spec: dict) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(spec)],
                                     stdin=slave, stderr=slave, stdout=subprocess.PIPE,
                                     text=True, close_fds=True)
        os.close(slave)
        self.screen = ""

    def expect(self, needle: str, timeout: float = 20) -> str:
        deadline = time.time() + timeout
        while needle not in ANSI.sub("", self.screen).replace("\r", ""):
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"never saw {needle!r}; screen:\n{self.text}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"terminal closed before {needle!r}:\n{self.text}")
                self.screen += data.decode("utf-8", "replace")
        return self.text

    @property
    def text(self) -> str:
        return ANSI.sub("", self.screen).replace("\r", "")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def result(self) -> str | None:
        out, _ = self.proc.communicate(timeout=20)
        while select.select([self.master], [], [], 0.5)[0]:  # drain what the child wrote last
            try:
                data = os.read(self.master, 4096)
            except OSError:
                break
            if not data:
                break
            self.screen += data.decode("utf-8", "replace")
        os.close(self.master)
        assert self.proc.returncode == 0
        return json.loads(out)


SPEC = {"kind": "shell", "argv": ["make", "deploy", "--prod"], "reason": "rule at x.rules:3",
        "session_id": "s1", "project": "/work/p", "reviewer": "high risk: production deploy",
        "pattern": ["make", "deploy"]}


@pytest.mark.slow
def test_prompt_shows_everything_and_returns_the_scope() -> None:
    t = Pty(SPEC)
    screen = t.expect("allow [o]nce")
    for part in ("approval needed", "make deploy --prod", "rule at x.rules:3",
                 "high risk: production deploy", "/work/p", "[s]ession", "[p]roject",
                 "[a]lways", "[d]eny", "make deploy …"):
        assert part in screen, part
    t.send("s\n")
    assert t.result() == "session"


@pytest.mark.slow
def test_session_answer_with_an_expiry() -> None:
    t = Pty({**SPEC, "reply": True})
    assert "e.g. `s 2h`" in t.expect("allow [o]nce")
    t.send("o 2h\n")
    t.expect("an expiry goes with session or project answers only")
    t.send("s soon\n")
    t.expect("cannot read expiry 'soon'")
    before = time.time()
    t.send("s 2h\n")
    choice, expires = t.result()  # type: ignore[misc]
    assert choice == "session" and before + 7190 < expires < time.time() + 7210


@pytest.mark.slow
def test_unclear_answer_is_asked_again_then_deny() -> None:
    t = Pty(SPEC)
    t.expect("allow [o]nce")
    t.send("maybe\n")
    t.expect("please answer one of")
    t.send("d\n")
    assert t.result() == "deny"


@pytest.mark.slow
def test_end_of_input_denies() -> None:
    t = Pty(SPEC)
    t.expect("allow [o]nce")
    t.send("\x04")  # Ctrl-D on an empty line: end of input
    assert t.result() == "deny"
    assert "end of input: denied" in t.text


@pytest.mark.slow
def test_over_broad_command_offers_once_or_deny_only() -> None:
    spec = {**SPEC, "argv": ["bash", "-c", "curl x | sh"], "pattern": ["bash", "-c"]}
    t = Pty(spec)
    screen = t.expect("[d]eny")
    assert "[s]ession" not in screen and "[a]lways" not in screen
    t.send("a\n")  # always is not on offer
    t.expect("please answer one of")
    t.send("o\n")
    assert t.result() == "once"


@pytest.mark.slow
def test_timeout_returns_none() -> None:
    t = Pty({**SPEC, "timeout": 0.5})
    t.expect("allow [o]nce")
    assert t.result() is None
    assert "no answer in time" in t.text


def test_no_terminal_returns_none() -> None:
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(SPEC)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) is None
    assert r.stderr == ""


def test_offered_choices() -> None:
    q = Question(kind=Kind.SHELL, argv=("make", "x"), reason="r", session_id="s", project="/p")
    assert offered_choices(q) == (Choice.ONCE, Choice.SESSION, Choice.PROJECT,
                                  Choice.PERSISTENT, Choice.DENY)
    esc = Question(kind=Kind.ESCALATION, argv=("make", "x"), reason="r", session_id="s",
                   project="/p")
    assert offered_choices(esc) == (Choice.ONCE, Choice.SESSION, Choice.DENY)
    broad = Question(kind=Kind.SHELL, argv=("python3",), reason="r", session_id="s")
    assert offered_choices(broad) == (Choice.ONCE, Choice.DENY)
    net = Question(kind=Kind.NETWORK, argv=("a.com", "443", "https"), reason="r",
                   session_id="s", pattern=("a.com", "*", "https"))
    assert Choice.PERSISTENT in offered_choices(net)
    net_port = Question(kind=Kind.NETWORK, argv=("a.com", "443", "https"), reason="r")
    assert offered_choices(net_port) == (Choice.ONCE, Choice.DENY)
