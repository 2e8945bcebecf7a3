"""A command line as the analyser sees it: tokens, some of whose values are unknown."""

from __future__ import annotations


class Argv:
    """``tokens`` with ``unknown`` single words (``"$x"``) and ``open_from``: from that index on,
    unquoted expansions may produce any number of words, so positions are unknown too.

    Immutable by convention; a plain slotted class because it is built on the hot path.
    """

    __slots__ = ("open_from", "tokens", "unknown")

    def __init__(self, tokens: tuple[str, ...], unknown: frozenset[int] = frozenset(),
                 open_from: int | None = None) -> None:
        self.tokens = tokens
        self.unknown = unknown
        self.open_from = open_from

    def __repr__(self) -> str:
        return f"Argv(tokens={self.tokens!r}, unknown={set(self.unknown)!r}, open_from={self.open_from!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Argv) and (self.tokens, self.unknown, self.open_from) == (
            other.tokens, other.unknown, other.open_from)

    def __hash__(self) -> int:
        return hash((self.tokens, self.unknown, self.open_from))

    @classmethod
    def of(cls, tokens: list[str] | tuple[str, ...]) -> Argv:
        return cls(tuple(tokens))

    def __len__(self) -> int:
        return len(self.tokens)

    def known(self, i: int) -> bool:
        """Whether token ``i`` is a literal we can trust (exists, not an expansion)."""
        if i >= len(self.tokens):
            return False
        return i not in self.unknown and (self.open_from is None or i < self.open_from)

    def sub(self, start: int, end: int | None = None) -> Argv:
        stop = len(self.tokens) if end is None else end
        unknown = frozenset(i - start for i in self.unknown if start <= i < stop)
        open_from = None
        if self.open_from is not None and self.open_from < stop:
            open_from = max(self.open_from - start, 0)
        return Argv(self.tokens[start:stop], unknown, open_from)

    def with_first(self, first: str) -> Argv:
        return Argv((first, *self.tokens[1:]), self.unknown - {0}, self.open_from)

    def plus_open_tail(self) -> Argv:
        """Arguments will be appended at run time (``xargs``, ``find -exec {} +``)."""
        n = len(self.tokens)
        return Argv(self.tokens, self.unknown, n if self.open_from is None else self.open_from)

    @property
    def fully_static(self) -> bool:
        return not self.unknown and self.open_from is None
