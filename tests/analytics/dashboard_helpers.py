"""A real `corral dashboard` process and a real browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def dashboard(journal: Path, home: Path, *extra: str) -> Iterator[str]:
    """Start `python -m corral dashboard --port 0`; yield the URL it prints (token included)."""
    env = {**os.environ, "CORRAL_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "corral", "dashboard", "--port", "0",
                             "--journal", str(journal), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=home)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("corral dashboard: http://127.0.0.1:"), (
            line, proc.stderr.read() if proc.poll() is not None else "")
        yield line.split(": ", 1)[1].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def wait_ready(page: Any, timeout_s: float = 30) -> None:
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=timeout_s * 1000)


def numbers(page: Any) -> dict[str, str]:
    return dict(page.eval_on_selector_all(
        "[data-num]", "els => els.map(e => [e.dataset.num, e.textContent])"))


def timed_first_load(b: Any, url: str) -> float:
    page = b.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    wait_ready(page)
    page.wait_for_selector("#c-kind", state="visible")
    took = time.perf_counter() - t0
    page.close()
    return took
