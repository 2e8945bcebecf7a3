"""Small value classes without ``dataclasses``.

``corral sandbox -- CMD`` runs once per agent command, so its imports are its cost: each
``@dataclass`` generates and compiles code at import (~1 ms per class on a busy machine).
``Record`` gives the same equality, hash and repr from a ``_fields`` tuple; subclasses write a
plain ``__init__`` (fast, and typed for mypy).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported on the fast paths
if TYPE_CHECKING:
    from typing import Any, Self


class Record:
    """Equality and repr over ``_fields``, like ``@dataclass``; unhashable, like a mutable one."""

    __slots__ = ()  # subclasses choose: __slots__ of their own, or a __dict__
    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, object]:
        """The fields by name (``dataclasses.asdict``, without copying nested values)."""
        return {f: getattr(self, f) for f in self._fields}

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__qualname__}({inner})"


class Frozen(Record):
    """An immutable, hashable ``Record`` (``@dataclass(frozen=True)``); ``__init__`` sets the
    fields with ``self._set(...)``."""

    def _set(self, **values: object) -> None:
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values())

    def replace(self, **changes: object) -> Self:
        """A copy with ``changes`` (``dataclasses.replace``), for a subclass whose ``__init__``
        takes each field under its own name."""
        values = self.as_dict()
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        cls: Any = type(self)
        copy: Self = cls(**values)
        return copy
