"""The shell parser is used by a session API's concurrent threads: each parse must see only its
own script (one tree-sitter parser and one source buffer per thread)."""

from __future__ import annotations

import sys
import threading

from corral.rules.shell import parse_script


def _script(tag: str) -> str:
    # Not plain (a quote and $( ) keep it off the fast path) and longer than the snippet bound,
    # so the command's text is cut from the source buffer.
    return f'echo "$(date)" {tag * 300}; ls "{tag}" | wc -l; cat "{tag * 300}"'


def test_concurrent_parses_never_mix_scripts() -> None:
    tags = "QWZXJKVY"  # letters no other part of the scripts has
    wrong: list[str] = []
    barrier = threading.Barrier(len(tags))

    def work(tag: str) -> None:
        script = _script(tag)
        barrier.wait()
        for _ in range(300):
            out = parse_script(script)
            texts = [c.text for c in out.commands]
            if len(out.commands) != 5 or any(
                    other in t for t in texts for other in tags if other != tag):
                wrong.append(f"{tag}: {texts!r:.200}")
                return

    threads = [threading.Thread(target=work, args=(t,)) for t in tags]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show at once
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []
