"""What inline interpreter code makes run: shell text, argv lists, or why it cannot be told."""

from __future__ import annotations

from corral.rules.argv import Argv

MAX_CODE = 16 * 1024  # characters of inline Python or makefile analysed; more is asked about
MAX_COMMANDS = 256  # commands read from one piece of inline code; more are asked about
MAX_DYNAMIC = 4 * 1024  # a shell string built at run time longer than this is not parsed
COMPUTED = "${computed}"  # stands for a value only known at run time inside shell text


class Inline:
    """Commands inline code runs: ``scripts`` go through the shell analyser, ``argvs`` are run
    directly (no shell), ``problems`` make the decision at least ``prompt``."""

    __slots__ = ("argvs", "problems", "scripts")

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.argvs: list[Argv] = []
        self.problems: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.scripts or self.argvs or self.problems)

    def _full(self) -> bool:
        if len(self.scripts) + len(self.argvs) < MAX_COMMANDS:
            return False
        why = f"inline code runs more than {MAX_COMMANDS} commands; the rest are not analysed"
        if why not in self.problems:
            self.problems.append(why)
        return True

    def shell(self, text: str, dynamic: bool, where: str) -> None:
        """Shell text built by the code; a computed part could add commands of its own."""
        if self._full():
            return
        if dynamic and len(text) > MAX_DYNAMIC:  # asked about anyway: no need to parse it
            self.problems.append(f"{where} builds a shell command of more than "
                                 f"{MAX_DYNAMIC // 1024} KiB at run time; what it runs cannot "
                                 "be checked")
            return
        self.scripts.append(text)
        if dynamic:
            self.problems.append(f"{where} builds a shell command at run time "
                                 f"(`{_short(text)}`); what it runs cannot be checked")

    def argv(self, a: Argv, where: str) -> None:
        if not a.tokens:
            self.problems.append(f"{where} runs a command computed at run time")
            return
        if not a.known(0):
            self.problems.append(f"{where} runs a program computed at run time")
        if not self._full():
            self.argvs.append(a)


def _short(text: str) -> str:
    return shown(text, 80)


def shown(text: str, limit: int = 60) -> str:
    """Text quoted in a one-line reason: control characters escaped, cut short."""
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
